#!/usr/bin/env bash
# SAE encode throughput, reprshift vs sae-lens/torch, same run, 2 threads.
# usage: bench/run_sae_bench.sh BUILD_DIR [PYTHON]
set -euo pipefail
B=${1:?build dir}
PY=${2:-/work/refenv/bin/python}
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
cd "$(dirname "$0")/.."
"$B/bench_sae" --n 2048
"$PY" bench/bench_sae_ref.py 2048
