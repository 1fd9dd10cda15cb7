#!/usr/bin/env bash
# The whole reprshift pipeline on what ships with the repository: the tiny demo models
# (examples/quickstart/models: toy stand-ins, NOT Gemma 2 / PaliGemma 2) and a real COCO 2017
# sample (examples/data/coco-sample: 24 CC BY / CC BY-SA photos with their COCO captions and
# instances, see its ATTRIBUTION.md). Builds, then runs
#   reprshift run examples/quickstart.json
# (dataset -> activation stores -> SAE shift -> probes -> HTML report) and prints the report's
# absolute path on stdout (progress goes to stderr). Re-running skips what is done; an
# interrupted run resumes.
# env: RS_BUILD_DIR build folder (default build); RS_OUT run folder (default runs/quickstart in
#      the repository; a relative RS_OUT is taken from where you run this)
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD
OUT=${RS_OUT:-$root/runs/quickstart}
case "$OUT" in /*) ;; *) OUT=$caller/$OUT ;; esac
CONFIG=examples/quickstart.json
# everything the run reads ships with the repository: say so now, not after the build
for f in "$CONFIG" examples/data/coco-sample/annotations/instances_train2017.json \
         examples/data/coco-sample/annotations/captions_val2017.json examples/data/coco-sample/val2017 \
         examples/quickstart/models/gemma2-tiny/model.safetensors examples/quickstart/models/paligemma-tiny/model.safetensors; do
  [ -e "$f" ] || { echo "quickstart: $root/$f is missing; it is part of the repository (restore it with: git checkout -- $f)" >&2; exit 1; }
done
bash scripts/install-deps.sh
BUILD=${RS_BUILD_DIR:-build}
echo "quickstart: building reprshift in $BUILD/ (the first build takes about a minute on 2 cores)" >&2
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target reprshift_cli >&2
echo "quickstart: reprshift run $CONFIG --out $OUT" >&2
REPORT=$("$BUILD/reprshift" run "$CONFIG" --out "$OUT")
case "$REPORT" in /*) ;; *) REPORT=$root/$REPORT ;; esac
echo "report: $REPORT"
