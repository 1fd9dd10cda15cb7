#!/usr/bin/env bash
# The main job on the bundled tiny models: build, then extract activations from the tiny
# Gemma-2 checkpoint for a few token sequences and show where the results are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD=${RS_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
OUT=${RS_OUT:-out/quickstart}
mkdir -p "$OUT"
M=tests/fixtures/models/gemma2-tiny-f32
printf '2,17,300,4,9\n2,45,46,47\n2,100,101,102,103,104,105\n' > "$OUT/ids.txt"
"$BUILD/reprshift" extract --model "$M" --hook blocks.1.hook_resid_post,blocks.3.hook_resid_post \
    --ids-file "$OUT/ids.txt" --pool mean --out "$OUT/acts.safetensors"
"$BUILD/reprshift" inspect "$OUT/acts.safetensors"
echo "results: $OUT/acts.safetensors (+ $OUT/acts.safetensors.rows.jsonl)"
