#!/usr/bin/env bash
# SAE encode throughput, reprshift vs sae-lens/torch, same run, 2 threads.
# usage: bench/run_sae_bench.sh BUILD_DIR [PYTHON]
set -euo pipefail
B=${1:?build dir}
PY=${2:-/work/refenv/bin/python}
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
# reprshift's side runs the OpenBLAS kernel the CLI would run (docs/pipeline.md, "BLAS kernel";
# the bench programs link the library directly and would get OpenBLAS's own choice)
RS_KERNEL=$("$B/reprshift" --version | sed -n 's/^BLAS kernel: \([^ ]*\) .*/\1/p')
[ -n "$RS_KERNEL" ] && export OPENBLAS_CORETYPE=$RS_KERNEL && echo "# reprshift BLAS kernel: $RS_KERNEL" >&2
cd "$(dirname "$0")/.."
# The reference's numpy/scipy bundle a current OpenBLAS: run it with the machine's
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides removed (they exist for older OpenBLAS
# builds, like the Debian one reprshift links, and would force slower kernels on it).
REF_ENV="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
"$B/bench_sae" --n 2048
$REF_ENV "$PY" bench/bench_sae_ref.py 2048
