#!/usr/bin/env bash
# reprshift preprocess: output tensors on success; truncated / missing / unsupported images
# and bad options give a one-line error, a non-zero exit and no output file.
set -u
CLI=${RS_CLI:?}
. "$(dirname "$0")/shared.sh"
# a committed PNG (Pillow's 224 px resize of skimage's chelsea.png, tests/fixtures/images)
IMG=tests/fixtures/images/resize_chelsea_224.png
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$CLI" preprocess --help | grep -q 'pixel_values' || fail "--help"
"$CLI" preprocess --image "$IMG" --size 224 --edit brightness=1.2 \
  --edit rotate=15 --out "$T/ok.safetensors" || fail "preprocess"
[ -s "$T/ok.safetensors" ] || fail "no output"
"$CLI" inspect "$T/ok.safetensors" > "$T/inspect.txt" || fail "inspect output"
grep -q 'pixels_u8  *U8  *\[224, 224, 3\]' "$T/inspect.txt" || fail "pixels_u8: $(cat "$T/inspect.txt")"
grep -q 'pixel_values  *F32  *\[3, 224, 224\]' "$T/inspect.txt" || fail "pixel_values"
# size is exact: 8-byte length + header + 224*224*3 + 224*224*3*4 bytes
[ "$(stat -c %s "$T/ok.safetensors")" -gt $((224*224*15)) ] || fail "file too small"

expect_fail() {  # expect_fail STATUS NEEDLE ARGS...
  local want=$1 needle=$2; shift 2
  rm -f "$T/bad.safetensors"
  "$CLI" preprocess "$@" --out "$T/bad.safetensors" 2> "$T/err.txt"
  local st=$?
  [ "$st" = "$want" ] || fail "exit $st (want $want) for $*: $(cat "$T/err.txt")"
  grep -q -- "$needle" "$T/err.txt" || fail "message for '$*' lacks '$needle': $(cat "$T/err.txt")"
  [ "$(wc -l < "$T/err.txt")" = 1 ] || fail "not one line for $*: $(cat "$T/err.txt")"
  ls "$T" | grep -q '^bad\.' && fail "partial output left for $*"
  return 0
}
if have_shared data/images "the real truncated JPEGs of the shared data folder"; then
  expect_fail 1 "truncated" --image "$SHARED/data/images/skimage/truncated.jpg" --size 224
  expect_fail 1 "african_elephants_truncated_file.jpg" --image "$SHARED/data/images/cameratrapai/african_elephants_truncated_file.jpg" --size 224
fi
expect_fail 1 "cannot open" --image "$T/missing.jpg" --size 224
expect_fail 1 "unsupported image format" --image tests/fixtures/images/bad/not_an_image.png --size 224
expect_fail 1 "zero size" --image tests/fixtures/images/bad/zero_width.png --size 224
expect_fail 1 "limit" --image tests/fixtures/images/bad/huge.png --size 224
expect_fail 2 "unknown edit" --image "$IMG" --size 224 --edit sharpen=2
expect_fail 2 "--size" --image "$IMG" --size 0
expect_fail 2 "--image is required" --size 224
expect_fail 2 "bad option" --image x.jpg --size 224 --bogus
skip_exit
echo "cli_preprocess: ok"
