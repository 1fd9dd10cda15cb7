#!/usr/bin/env bash
# reprshift preprocess --image-processor pil|torchvision on a committed image (no shared data
# needed): --help names both transformers classes, the choice is recorded in the output's
# metadata, the two processors give different bytes on a hard-edged image while each is
# deterministic, and a bad value is a one-line usage error with no output. Same option on
# extract (PaliGemma fixture): recorded in the metadata, changes the activations.
# (Value parity with each processor: test_image_processors.)
set -u
CLI=${RS_CLI:?}
IMG=tests/fixtures/images/processors/edges_640x480.png
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$CLI" preprocess --help > "$T/help.txt" || fail "--help"
grep -q 'SiglipImageProcessorPil' "$T/help.txt" || fail "--help lacks SiglipImageProcessorPil"
grep -q 'SiglipImageProcessor (the torchvision backend' "$T/help.txt" || fail "--help lacks the torchvision class"
grep -q -- '--image-processor' "$T/help.txt" || fail "--help lacks --image-processor"

for p in pil torchvision; do
  "$CLI" preprocess --image "$IMG" --size 224 --image-processor $p --out "$T/$p.safetensors" || fail "preprocess $p"
  [ -s "$T/$p.safetensors" ] || fail "no output for $p"
done
"$CLI" preprocess --image "$IMG" --size 224 --out "$T/default.safetensors" || fail "preprocess (default)"
cmp -s "$T/default.safetensors" "$T/pil.safetensors" || fail "the default is not pil"
"$CLI" preprocess --image "$IMG" --size 224 --image-processor torchvision --out "$T/tv2.safetensors" || fail "rerun"
cmp -s "$T/tv2.safetensors" "$T/torchvision.safetensors" || fail "torchvision output not deterministic"
cmp -s "$T/pil.safetensors" "$T/torchvision.safetensors" && fail "pil and torchvision outputs are identical"
head -c 4096 "$T/torchvision.safetensors" | grep -a -q '"image_processor":"torchvision"' || fail "metadata image_processor (torchvision)"
head -c 4096 "$T/torchvision.safetensors" | grep -a -q 'transformers SiglipImageProcessor (torchvision backend' \
  || fail "metadata preprocess (torchvision)"
head -c 4096 "$T/pil.safetensors" | grep -a -q '"image_processor":"pil"' || fail "metadata image_processor (pil)"
head -c 4096 "$T/pil.safetensors" | grep -a -q 'SiglipImageProcessorPil' || fail "metadata preprocess (pil)"

rm -f "$T/bad.safetensors"
"$CLI" preprocess --image "$IMG" --size 224 --image-processor fast --out "$T/bad.safetensors" 2> "$T/err.txt"
st=$?
[ "$st" = 2 ] || fail "exit $st for --image-processor fast"
grep -q 'pil or torchvision' "$T/err.txt" || fail "message: $(cat "$T/err.txt")"
[ "$(wc -l < "$T/err.txt")" = 1 ] || fail "not one line: $(cat "$T/err.txt")"
[ -e "$T/bad.safetensors" ] && fail "output written for a bad option"
# extract --image-processor: recorded in the output's metadata, changes the vision activations.
M=tests/fixtures/models/paligemma-tiny-f32
for p in pil torchvision; do
  "$CLI" extract --model $M --hook vision.ln_post --image "$IMG" --prompt-ids 5,7 --image-processor $p \
    --out "$T/x_$p.safetensors" 2> "$T/x_err.txt" || fail "extract $p: $(cat "$T/x_err.txt")"
done
head -c 4096 "$T/x_torchvision.safetensors" | grep -a -q '"image_processor":"torchvision"' || fail "extract metadata (torchvision)"
head -c 4096 "$T/x_torchvision.safetensors" | grep -a -q '"image_processor_class":"SiglipImageProcessor"' \
  || fail "extract metadata class (torchvision)"
head -c 4096 "$T/x_pil.safetensors" | grep -a -q '"image_processor":"pil"' || fail "extract metadata (pil)"
cmp -s "$T/x_pil.safetensors" "$T/x_torchvision.safetensors" && fail "extract: same activations for both processors"
"$CLI" extract --model $M --hook vision.ln_post --image "$IMG" --prompt-ids 5,7 --image-processor slow \
  --out "$T/x_bad.safetensors" 2> "$T/err.txt"
st=$?
[ "$st" = 2 ] || fail "extract: exit $st for --image-processor slow"
grep -q 'pil or torchvision' "$T/err.txt" || fail "extract message: $(cat "$T/err.txt")"
[ -e "$T/x_bad.safetensors" ] && fail "extract wrote output for a bad option"
echo "cli_preprocess_processors: ok"
