#!/usr/bin/env bash
# The whole reprshift pipeline on the bundled tiny demo models (examples/quickstart/models:
# toy stand-ins, NOT Gemma 2 / PaliGemma 2) and the real COCO mini sample
# (../shared/data/coco/mini; RS_SHARED_DIR overrides): build, then
#   reprshift run examples/quickstart.json
# (dataset -> activation stores -> SAE shift -> probes -> HTML report), and print the
# report's path. Re-running skips what is done; an interrupted run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD=${RS_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target reprshift_cli >/dev/null
OUT=${RS_OUT:-runs/quickstart}
CONFIG=examples/quickstart.json
if [ -n "${RS_SHARED_DIR:-}" ]; then
  # the shared data folder is elsewhere: a copy of the config with absolute paths
  mkdir -p "$OUT"
  sed -e "s|\"../../shared/|\"$(cd "$RS_SHARED_DIR" && pwd)/|g" \
      -e "s|\"quickstart/models/|\"$PWD/examples/quickstart/models/|g" "$CONFIG" > "$OUT/quickstart.json"
  CONFIG="$OUT/quickstart.json"
fi
REPORT=$("$BUILD/reprshift" run "$CONFIG" --out "$OUT")
echo "report: $REPORT"
