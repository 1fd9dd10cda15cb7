#!/usr/bin/env bash
# Build the library, CLI and every test with AddressSanitizer + UndefinedBehaviorSanitizer
# (-DRS_SANITIZE=ON, Debug) in a separate build folder and run the whole CTest suite: any
# out-of-bounds access, use-after-free, leak or undefined behaviour fails the run.
# usage: scripts/ci-sanitize.sh [ctest args...]   (RS_ASAN_BUILD_DIR overrides the folder)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${RS_ASAN_BUILD_DIR:-build-asan}
JOBS=${RS_JOBS:-$(nproc)}
# -O1: ASan's recommended level; -O0 makes the image and model tests several times slower.
cmake -S . -B "$BUILD" -DRS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" >/dev/null
cmake --build "$BUILD" -j"$JOBS"
# halt on the first report; leaks are errors; one BLAS/OpenMP thread keeps runs
# deterministic and cheap on the 2-core CI machine.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# cli_slurm starts a Slurm cluster to check the scheduler integration: run once, in the main
# suite (scripts/test.sh); the sharding code it drives runs here in cli_shard.
RS_QUIET=1 ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" -E '^cli_slurm$' "$@" | tee "$BUILD/ctest-summary.txt"
# CI has the shared data: a test skipped for want of it has not been checked under the sanitizers
if grep -q '(Skipped)$' "$BUILD/ctest-summary.txt"; then
  echo "skipped tests under the sanitizers (the shared data folder is missing?); see scripts/test.sh" >&2
  exit 1
fi
