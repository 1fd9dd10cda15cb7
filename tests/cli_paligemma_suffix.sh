#!/usr/bin/env bash
# reprshift extract with caption suffixes (image + prompt prefix, caption suffix) on the tiny
# PaliGemma fixture and the tiny Gemma-style tokenizer of tests/fixtures/suffix: --suffix per
# --image in order, --suffix-ids, the manifest "suffix" column, pooled @suffix, the row index;
# bad input (one clear error, non-zero exit, nothing left behind). Values vs transformers are
# tested in test_paligemma_suffix.
set -u
CLI=${RS_CLI:?}
. "$(dirname "$0")/shared.sh"
need_shared data/images "the real test images of the shared data folder"
D=$SHARED/data
M=tests/fixtures/models/paligemma-tiny-f32
TOK=tests/fixtures/suffix/tiny_tokenizer/tokenizer.json
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export RS_QUIET=1
IMG1=$D/coco/mini/val2017/000000000139.jpg
IMG2=$D/images/skimage/coffee.png
H=blocks.1.hook_resid_post

# two images, each with its own caption: prefix 4 image + <bos> + "caption en\n" (3) = 8 tokens,
# suffixes of 14 and 10 tokens (caption + <eos>, as PaliGemmaProcessor builds them)
"$CLI" extract --model $M --tokenizer $TOK --hook $H --image "$IMG1" --suffix $'two dogs\nplaying in the snow' \
  --image "$IMG2" --suffix '  a cup of coffee on a table  ' --out "$T/a.safetensors" 2> "$T/err.txt" || fail "extract: $(cat "$T/err.txt")"
"$CLI" inspect "$T/a.safetensors" > "$T/i.txt" || fail "inspect"
grep -q "$H  *F32  *\[40, 64\]" "$T/i.txt" || fail "decoder rows: $(cat "$T/i.txt")"
grep -q 'token_kind  *U8  *\[40\]' "$T/i.txt" || fail "token_kind"
head -1 "$T/a.safetensors.rows.jsonl" | grep -q '"prefix_len":8,.*"suffix_len":14,"suffix":"two dogs\\nplaying in the snow"' \
  || fail "row index 1: $(head -1 "$T/a.safetensors.rows.jsonl")"
sed -n 2p "$T/a.safetensors.rows.jsonl" | grep -q '"suffix_len":10,"suffix":"  a cup of coffee on a table  "' \
  || fail "row index 2 (spaces kept): $(sed -n 2p "$T/a.safetensors.rows.jsonl")"

# --suffix-ids (no tokenizer needed with --prompt-ids): <eos> appended -> 4 + 1 + 4 + 3 + 1 tokens
"$CLI" extract --model $M --hook $H --image "$IMG1" --prompt-ids 207,9,100 --suffix-ids 5,6,7 \
  --out "$T/b.safetensors" 2> "$T/err.txt" || fail "suffix-ids: $(cat "$T/err.txt")"
"$CLI" inspect "$T/b.safetensors" | grep -q "$H  *F32  *\[13, 64\]" || fail "suffix-ids rows"
grep -q '"suffix_len":4' "$T/b.safetensors.rows.jsonl" || fail "suffix-ids row index"
grep -q '"suffix":' "$T/b.safetensors.rows.jsonl" && fail "suffix-ids: no suffix text in the row index"

# manifest "suffix" column: an image row with one, one without; pooled H, @image, @text, @suffix
mkdir "$T/man"; cp "$IMG1" "$T/man/dogs.jpg"
printf 'modality,input,label,suffix\nimage,dogs.jpg,animal,two dogs playing\nimage,dogs.jpg,animal,\n' > "$T/man/m.csv"
"$CLI" extract --model $M --tokenizer $TOK --hook $H --manifest "$T/man/m.csv" --pool mean --out "$T/c.safetensors" \
  2> "$T/err.txt" || fail "manifest suffix: $(cat "$T/err.txt")"
"$CLI" inspect "$T/c.safetensors" > "$T/i.txt"
for n in "$H " "$H@image" "$H@text" "$H@suffix"; do
  grep -q "$n  *F32  *\[2, 64\]" "$T/i.txt" || fail "pooled tensor $n: $(cat "$T/i.txt")"
done
[ "$(grep -c '"suffix":"two dogs playing"' "$T/c.safetensors.rows.jsonl")" = 1 ] || fail "manifest suffix in row index"
# without any suffix there is no @suffix tensor
"$CLI" extract --model $M --tokenizer $TOK --hook $H --image "$IMG1" --pool mean --out "$T/d.safetensors" 2>/dev/null || fail "no suffix"
"$CLI" inspect "$T/d.safetensors" | grep -q "@suffix" && fail "@suffix without suffixes"

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
expect_fail "--suffix needs --image" --model $M --tokenizer $TOK --hook $H --ids 2,5,6 --suffix "a cat"
expect_fail "--suffix needs --image" --model $M --tokenizer $TOK --hook $H --text "a cat" --suffix-ids 5,6
expect_fail "more --suffix/--suffix-ids (2) than --image (1)" --model $M --tokenizer $TOK --hook $H --image "$IMG1" \
  --suffix "a cat" --suffix "a dog"
expect_fail "fewer --suffix/--suffix-ids (1) than --image (2)" --model $M --tokenizer $TOK --hook $H --image "$IMG1" \
  --image "$IMG2" --suffix "a cat"
expect_fail "need PaliGemma" --model tests/fixtures/models/gemma2-tiny-f32 --hook $H --text "a cat" --suffix "a cat"
expect_fail "need PaliGemma" --model tests/fixtures/models/gemma2-tiny-f32 --hook $H --ids 2,5 --suffix-ids 5
expect_fail "needs a PaliGemma checkpoint with its image tower" --model tests/malformed/pali_text_only --hook $H \
  --image "$IMG1" --prompt-ids 5 --suffix-ids 5
expect_fail "empty suffix" --model $M --tokenizer $TOK --hook $H --image "$IMG1" --suffix ""
expect_fail "suffix token 2 (id 256)" --model $M --hook $H --image "$IMG1" --prompt-ids 207 --suffix-ids 5,256
expect_fail "not a text token" --model $M --hook $H --image "$IMG1" --prompt-ids 207 --suffix-ids 5,900
expect_fail "--suffix-ids" --model $M --hook $H --image "$IMG1" --prompt-ids 207 --suffix-ids 5,x
expect_fail "no tokenizer.json" --model $M --hook $H --image "$IMG1" --prompt-ids 207 --suffix "a cat"
printf 'modality,input,label,suffix\nimage,dogs.jpg,animal,a dog\ntext,a dog,animal,a dog\n' > "$T/man/bad.csv"
expect_fail "bad.csv:3: a text row has a suffix" --model $M --tokenizer $TOK --hook $H --manifest "$T/man/bad.csv"
"$CLI" extract --help | grep -q -- "--suffix-ids" || fail "--help lists --suffix-ids"
echo "cli_paligemma_suffix: all checks passed"
