#!/usr/bin/env bash
# Fit-time comparison, reprshift vs scikit-learn lbfgs, same data, same run, 2 threads.
# usage: bench/run_probe_bench.sh BUILD_DIR [PYTHON]
set -euo pipefail
B=${1:?build dir}
PY=${2:-/work/refenv/bin/python}
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
cd "$(dirname "$0")/.."
"$B/bench_probe" | tee /tmp/bench_probe_c.txt
"$PY" bench/bench_probe_ref.py | tee /tmp/bench_probe_py.txt
for c in standardised unstandardised_aniso; do
  a=$(awk -v c=$c '$2==c{print $3}' /tmp/bench_probe_c.txt)
  b=$(awk -v c=$c '$2==c{print $3}' /tmp/bench_probe_py.txt)
  echo "$c: sklearn ${b}s / reprshift ${a}s = $(awk -v a=$a -v b=$b 'BEGIN{printf "%.1f", b/a}')x"
done
