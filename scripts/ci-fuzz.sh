#!/usr/bin/env bash
# Build the libFuzzer targets (fuzz/fuzz_*.c, clang + ASan + UBSan) and run each for a short
# bounded time from its seed corpus (fuzz/corpus/<target>/), after replaying the saved
# regression inputs (fuzz/regressions/<target>/). Fails on any crash, leak, timeout, OOM
# or sanitizer report; the failing input is kept under $RS_FUZZ_OUT/artifacts/<target>/.
# usage: scripts/ci-fuzz.sh [target...]      (default: every fuzz/fuzz_*.c)
# env: RS_FUZZ_SECONDS (per target, default 15), RS_JOBS (parallel targets, default nproc),
#      RS_FUZZ_BUILD_DIR (default build-fuzz), RS_FUZZ_OUT (default: a temp dir),
#      RS_FUZZ_MIN_RUNS (a target with fewer executions runs once more; default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${RS_FUZZ_BUILD_DIR:-build-fuzz}
SECS=${RS_FUZZ_SECONDS:-15}
JOBS=${RS_JOBS:-$(nproc)}

# clang, its libFuzzer/sanitizer runtimes and its OpenMP runtime (Debian 12 package names).
missing=""
for p in clang libclang-rt-14-dev libomp-14-dev; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then echo "ci-fuzz: missing Debian packages:$missing" >&2; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null; }
fi

if [ $# -gt 0 ]; then TARGETS="$*"; else
  TARGETS=$(cd fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
fi
cmake -S . -B "$BUILD" -DRS_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release >/dev/null
# shellcheck disable=SC2046
cmake --build "$BUILD" -j"$JOBS" --target $(for t in $TARGETS; do printf 'fuzz_%s ' "$t"; done) >/dev/null

OUT=${RS_FUZZ_OUT:-}
[ -n "$OUT" ] || { OUT=$(mktemp -d); KEEP_OUT=0; }
mkdir -p "$OUT"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 RS_SOURCE_DIR=$ROOT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

run_one() {  # run_one TARGET: regressions, then SECS seconds of fuzzing; prints one summary line
  local t=$1 bin=$BUILD/fuzz/fuzz_$1 log=$OUT/$1.log
  mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
  if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
    if ! "$bin" -runs=0 fuzz/regressions/"$t"/* > "$OUT/$t.regressions.log" 2>&1; then
      echo "FAIL $t: a regression input fails again (see $OUT/$t.regressions.log)"; return 1
    fi
  fi
  local rc n r note='' try
  # A target whose start-up is slow (the tokenizer targets load a 17 MB tokenizer) can spend
  # most of its seconds starting while another target holds the other core: below MIN_RUNS
  # executions it runs once more, and the line says so.
  for try in 1 2; do
    "$bin" "$OUT/corpus/$t" "fuzz/corpus/$t" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2560 \
      -artifact_prefix="$OUT/artifacts/$t/" -print_final_stats=1 > "$log" 2>&1
    rc=$?
    n=$(grep -o 'number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    r=$(grep -o 'average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    if [ $rc -ne 0 ] || ! [ "$n" -lt "$MIN_RUNS" ] 2>/dev/null || [ $try -eq 2 ]; then break; fi
    note="  (first attempt: $n runs, below $MIN_RUNS; run again)"
  done
  if [ $rc -ne 0 ]; then
    echo "FAIL $t (exit $rc after $n runs): $(grep -m1 -E 'SUMMARY|ERROR' "$log")"
    grep -A30 -m1 -E '^==[0-9]+==ERROR|runtime error' "$log" | head -40
    echo "  input: $(ls "$OUT/artifacts/$t" | head -1) in $OUT/artifacts/$t (log $log)"
    return 1
  fi
  printf 'ok   %-18s %9s runs  %7s exec/s%s\n' "$t" "$n" "$r" "$note"
}
export -f run_one
MIN_RUNS=${RS_FUZZ_MIN_RUNS:-1000}
export BUILD SECS OUT MIN_RUNS
echo "ci-fuzz: $(echo $TARGETS | wc -w) targets x ${SECS}s, $JOBS at a time (logs in $OUT)"
if printf '%s\n' $TARGETS | xargs -P "$JOBS" -I{} bash -c 'run_one {}'; then
  echo "ci-fuzz: all targets clean"
  [ "${KEEP_OUT:-1}" = 0 ] && rm -rf "$OUT"
else
  echo "ci-fuzz: FAILED"; exit 1
fi
