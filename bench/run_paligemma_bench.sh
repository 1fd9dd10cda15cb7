#!/usr/bin/env bash
# PaliGemma-2-3B-shaped benchmark at 224 px, reprshift vs transformers in the same run (CPU,
# 2 threads): images/s and peak RSS through the vision tower only and through decoder layer 12.
# Needs: a built tree (build/ or RS_BUILD_DIR), the reference venv (REFENV, default
# /work/refenv), and a random bf16 checkpoint (made on first use, ~4 GB, with
# tools/reference/make_bench_paligemma.py).
# usage: bench/run_paligemma_bench.sh [CHECKPOINT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
# The reference's numpy/scipy bundle a current OpenBLAS: run it with the machine's
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides removed (they exist for older OpenBLAS
# builds, like the Debian one reprshift links, and would force slower kernels on it).
REF_ENV="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
REFENV=${REFENV:-/work/refenv}
CKPT=${1:-${RS_BENCH_PALIGEMMA:-/work/benchmodels/paligemma2-3b-224-rand}}
BUILD=${RS_BUILD_DIR:-build}
NV=${RS_BENCH_IMAGES_VISION:-8}   # images for the tower-only run
ND=${RS_BENCH_IMAGES_DECODER:-4}  # images for the through-layer-12 run
OUT=bench/out; mkdir -p "$OUT"
[ -f "$CKPT/config.json" ] || "$REFENV/bin/python" tools/reference/make_bench_paligemma.py "$CKPT"
mapfile -t IMGS < <(ls ../shared/data/coco/mini/val2017/*.jpg | head -n "$NV")
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
# reprshift's side runs the OpenBLAS kernel the CLI would run (docs/pipeline.md, "BLAS kernel";
# the bench programs link the library directly and would get OpenBLAS's own choice)
RS_KERNEL=$("$BUILD/reprshift" --version | sed -n 's/^BLAS kernel: \([^ ]*\) .*/\1/p')
[ -n "$RS_KERNEL" ] && export OPENBLAS_CORETYPE=$RS_KERNEL && echo "# reprshift BLAS kernel: $RS_KERNEL" >&2
: > "$OUT/paligemma.jsonl"
"$BUILD/bench_paligemma" --model "$CKPT" --hook vision.ln_post --batch 8 "${IMGS[@]:0:$NV}" | tee -a "$OUT/paligemma.jsonl"
$REF_ENV "$REFENV/bin/python" bench/bench_paligemma_ref.py --model "$CKPT" --through vision --batch 8 "${IMGS[@]:0:$NV}" | tee -a "$OUT/paligemma.jsonl"
"$BUILD/bench_paligemma" --model "$CKPT" --hook blocks.12.hook_resid_post --batch 4 "${IMGS[@]:0:$ND}" | tee -a "$OUT/paligemma.jsonl"
$REF_ENV "$REFENV/bin/python" bench/bench_paligemma_ref.py --model "$CKPT" --through 13 --batch 4 "${IMGS[@]:0:$ND}" | tee -a "$OUT/paligemma.jsonl"
"$REFENV/bin/python" - "$OUT/paligemma.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| through | images | reprshift img/s | transformers img/s | ratio | reprshift RSS GB | transformers RSS GB |")
print("|---|---|---|---|---|---|---|")
for o, r in zip(rows[0::2], rows[1::2]):
    what = "vision tower (ln_post)" if o["hook"].startswith("vision") else "decoder layer 12"
    print(f"| {what} | {o['images']} | {o['images_per_s']:.3f} | {r['images_per_s']:.3f} | "
          f"{o['images_per_s'] / r['images_per_s']:.2f}x | {o['peak_rss_gb']:.2f} | {r['peak_rss_gb']:.2f} |")
PY
