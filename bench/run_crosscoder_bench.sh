#!/usr/bin/env bash
# Crosscoder training steps/s, reprshift vs torch (same objective, Adam), same run, 2 threads,
# alternating sides ROUNDS times (default 3) for each shape.
# usage: bench/run_crosscoder_bench.sh BUILD_DIR [PYTHON]
set -euo pipefail
B=${1:?build dir}
PY=${2:-/work/refenv/bin/python}
ROUNDS=${ROUNDS:-3}
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
RS_KERNEL=$("$B/reprshift" --version | sed -n 's/^BLAS kernel: \([^ ]*\) .*/\1/p')
[ -n "$RS_KERNEL" ] && export OPENBLAS_CORETYPE=$RS_KERNEL && echo "# reprshift BLAS kernel: $RS_KERNEL" >&2
cd "$(dirname "$0")/.."
REF_ENV="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
uptime
# 1: L1 with a lambda that makes f sparse within the run (L0 about 100 of 4096 at the end, as
#    in real training): reprshift's sparse path takes over as f sparsifies; torch stays dense
# 2: the dense regime (lambda 1e-3: L0 above 2000 of 4096 throughout): both sides all-sgemm
# 3: BatchTopK, k 32; 4: the quickstart's size (d 64, 256 latents, batch 64)
for shape in "--d 256 --m 4096 --batch 512 --steps 60 --l1 1" "--d 256 --m 4096 --batch 512 --steps 40 --l1 0.001" \
             "--d 256 --m 4096 --batch 512 --steps 40 --sparsity batchtopk --k 32" \
             "--d 64 --m 256 --batch 64 --steps 800 --rows 400 --l1 0.5"; do
  for r in $(seq "$ROUNDS"); do
    # shellcheck disable=SC2086
    "$B/bench_crosscoder" $shape
    # shellcheck disable=SC2086
    $REF_ENV "$PY" bench/bench_crosscoder_ref.py $shape
  done
done
uptime
