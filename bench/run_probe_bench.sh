#!/usr/bin/env bash
# Fit-time comparison, reprshift vs scikit-learn lbfgs, same data, same run, 2 threads.
# usage: bench/run_probe_bench.sh BUILD_DIR [PYTHON]
#   env RUNS (default 3): repeat the whole comparison, report every ratio and the median;
#   env CASES (default "standardised unstandardised_aniso"); env TOLS (default "1e-4 1e-5").
# Both sides report the best of 3 fits (sklearn: 1 fit for the slow anisotropic case).
# For each case reprshift is run at each tolerance in TOLS; the ratio uses the first
# tolerance whose objective is <= sklearn's (equal-or-lower objective), so a faster but
# less converged fit never counts.
set -euo pipefail
B=${1:?build dir}
PY=${2:-/work/refenv/bin/python}
RUNS=${RUNS:-3}
CASES=${CASES:-"standardised unstandardised_aniso"}
TOLS=${TOLS:-"1e-4 1e-5"}
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
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for c in $CASES; do : >"$T/ratios_$c"; done
for r in $(seq "$RUNS"); do
  for c in $CASES; do
    : >"$T/c.txt"
    for tol in $TOLS; do "$B/bench_probe" --case "$c" --tol "$tol" --reps 3 | tee -a "$T/c.txt"; done
    # best of 3 sklearn fits (the first fit in a process pays one-off start-up costs); the
    # anisotropic case takes 15-100 s per fit, where start-up is negligible: one fit
    reps=3; [ "$c" = unstandardised_aniso ] && reps=1
    CASE=$c REPS=$reps $REF_ENV "$PY" bench/bench_probe_ref.py | tee "$T/py.txt"
    b=$(awk '{print $3}' "$T/py.txt"); bo=$(awk '{print $6}' "$T/py.txt")
    line=$(awk -v bo="$bo" '$6 <= bo * (1 + 1e-9) { print; exit }' "$T/c.txt")
    if [ -z "$line" ]; then echo "run $r $c: no tolerance in '$TOLS' reached sklearn's objective $bo"; continue; fi
    a=$(echo "$line" | awk '{print $3}'); at=$(echo "$line" | awk '{print $NF}' | tr -d ')')
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", b/a}')
    echo "run $r $c: sklearn ${b}s (obj $bo) / reprshift ${a}s (tol $at, obj $(echo "$line" | awk '{print $6}')) = ${ratio}x"
    echo "$ratio" >>"$T/ratios_$c"
  done
done
for c in $CASES; do
  echo "$c: ratios $(tr '\n' ' ' <"$T/ratios_$c")-> median $(sort -g "$T/ratios_$c" | awk '{a[NR]=$1} END{if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}')x"
done
