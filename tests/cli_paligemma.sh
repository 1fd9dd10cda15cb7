#!/usr/bin/env bash
# reprshift extract on the tiny PaliGemma fixtures: images, manifest, text-only inputs,
# mixed vision/decoder hooks, pooled variants; bad input (clear one-line error, non-zero
# exit, nothing left behind). Parity of the values is tested in test_paligemma.
set -u
CLI=${RS_CLI:?}
. "$(dirname "$0")/shared.sh"
D=$SHARED/data
M=tests/fixtures/models/paligemma-tiny-f32
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export RS_QUIET=1
# committed images: a PNG (Pillow's 224 px resize of skimage's chelsea.png) and a COCO JPEG
IMG1=tests/fixtures/images/resize_chelsea_224.png
IMG2=examples/data/coco-sample/val2017/000000397133.jpg

# images + a text-only input, unpooled: N=4 image tokens, prompt 3 ids + "\n"
"$CLI" extract --model $M --hook vision.ln_post,projector.hook_out,blocks.1.hook_resid_post \
  --image "$IMG1" --image "$IMG2" --prompt-ids 207,9,100 --ids 2,5,6,7 --out "$T/a.safetensors" 2>/dev/null || fail "extract"
"$CLI" inspect "$T/a.safetensors" > "$T/i.txt" || fail "inspect"
grep -q 'blocks.1.hook_resid_post  *F32  *\[22, 64\]' "$T/i.txt" || fail "decoder rows: $(cat "$T/i.txt")"
grep -q 'vision.ln_post  *F32  *\[8, 32\]' "$T/i.txt" || fail "vision rows"
grep -q 'projector.hook_out  *F32  *\[8, 64\]' "$T/i.txt" || fail "projector rows"
grep -q 'token_kind  *U8  *\[22\]' "$T/i.txt" || fail "token_kind"
grep -q 'vision_offsets  *I64  *\[4\]' "$T/i.txt" || fail "vision_offsets"
[ "$(grep -c '"modality":"image"' "$T/a.safetensors.rows.jsonl")" = 2 ] || fail "row index modality"

# manifest (relative image paths, text rows), pooled: H, H@image, H@text
mkdir "$T/man"; cp "$IMG1" "$T/man/cat.png"
printf 'modality,input,label\nimage,cat.png,animal\ntext,"a cat, sleeping",animal\n' > "$T/man/m.csv"
"$CLI" extract --model $M --hook blocks.0.hook_resid_post,vision.blocks.1.hook_resid_post --manifest "$T/man/m.csv" \
  --prompt-ids 207 --pool mean --out "$T/b.safetensors" 2> "$T/err.txt"
if grep -q "tokenizer" "$T/err.txt"; then
  : # the tiny fixture has no tokenizer.json, so text rows need one: the error must say so
else
  fail "manifest with text rows and no tokenizer should ask for one: $(cat "$T/err.txt")"
fi
printf 'modality,input,label\nimage,cat.png,animal\nimage,cat.png,animal2\n' > "$T/man/m2.csv"
"$CLI" extract --model $M --hook blocks.0.hook_resid_post,vision.blocks.1.hook_resid_post --manifest "$T/man/m2.csv" \
  --prompt-ids 207 --pool mean --out "$T/b.safetensors" 2>/dev/null || fail "manifest extract"
"$CLI" inspect "$T/b.safetensors" > "$T/i.txt"
for n in 'blocks.0.hook_resid_post ' 'blocks.0.hook_resid_post@image' 'blocks.0.hook_resid_post@text'; do
  grep -q "$n  *F32  *\[2, 64\]" "$T/i.txt" || fail "pooled tensor $n: $(cat "$T/i.txt")"
done
grep -q 'vision.blocks.1.hook_resid_post  *F32  *\[2, 32\]' "$T/i.txt" || fail "pooled vision"
grep -q '"label":"animal2"' "$T/b.safetensors.rows.jsonl" || fail "labels in row index"

# bad input
expect_fail() {  # expect_fail NEEDLE ARGS...
  local needle=$1; shift
  rm -f "$T/bad.safetensors" "$T/bad.safetensors.rows.jsonl"
  "$CLI" extract "$@" --out "$T/bad.safetensors" 2> "$T/err.txt" && fail "should fail: $*"
  grep -q -- "$needle" "$T/err.txt" || fail "message for '$*' lacks '$needle': $(cat "$T/err.txt")"
  [ "$(wc -l < "$T/err.txt")" -le 2 ] || fail "long error for $*: $(cat "$T/err.txt")"
  ls "$T" | grep -q '^bad\.' && fail "partial output left for $*"
  return 0
}
H=blocks.0.hook_resid_post
if have_shared data/images "the real truncated JPEGs of the shared data folder"; then
  expect_fail "truncated" --model $M --hook $H --image "$D/images/skimage/truncated.jpg" --prompt-ids 207
  expect_fail "truncated.jpg" --model $M --hook vision.ln_post --image "$D/images/skimage/truncated.jpg" --prompt-ids 207
  expect_fail "african_elephants_truncated_file.jpg" --model $M --hook $H --image "$D/images/cameratrapai/african_elephants_truncated_file.jpg" --prompt-ids 207
fi
printf 'GIF89a not really' > "$T/x.gif"
expect_fail "x.gif" --model $M --hook $H --image "$T/x.gif" --prompt-ids 207
expect_fail "not found" --model $M --hook $H --image "$T/nope.jpg" --prompt-ids 207
printf 'modality,input,label\nimage,missing.png,x\n' > "$T/man/bad.csv"
expect_fail "missing.png" --model $M --hook $H --manifest "$T/man/bad.csv" --prompt-ids 207
expect_fail "no tokenizer.json" --model $M --hook $H --image "$IMG1"
expect_fail "not defined for the vision hook" --model $M --hook vision.ln_post --image "$IMG1" --prompt-ids 207 --pool last
expect_fail "vision.blocks.{0..1}" --model $M --hook vision.blocks.7.hook_resid_post --image "$IMG1" --prompt-ids 207
expect_fail "<image> token" --model $M --hook $H --ids 2,256,5
expect_fail "not a text token" --model $M --hook $H --image "$IMG1" --prompt-ids 256
# the prompt through a real tokenizer ("caption en\n" = 21209 659 108): ids beyond the tiny vocabulary
if have_shared data/tokenizer/tokenizer.json "the 17 MB Gemma tokenizer"; then
  expect_fail "not a text token" --model $M --hook $H --image "$IMG1" --tokenizer "$D/tokenizer/tokenizer.json"
fi
expect_fail "need PaliGemma" --model tests/fixtures/models/gemma2-tiny-f32 --hook $H --image "$IMG1"
# config whose projector width disagrees with the tensors
mkdir "$T/mism"; cp $M/model.safetensors "$T/mism/"
sed 's/"hidden_size": 32,/"hidden_size": 40,/' $M/config.json > "$T/mism/config.json"
expect_fail "patch_embedding.weight" --model "$T/mism" --hook $H --image "$IMG1" --prompt-ids 207
sed 's/"projection_dim": 64/"projection_dim": 48/g' $M/config.json > "$T/mism/config.json"
expect_fail "projection_dim 48" --model "$T/mism" --hook $H --image "$IMG1" --prompt-ids 207
"$CLI" extract --help | grep -q -- "--manifest" || fail "--help lists --manifest"
skip_exit
echo "cli_paligemma: all checks passed"
