#!/usr/bin/env bash
# Install missing build dependencies, build (Release) and run every test with CTest, then list
# the tests that were skipped, each with what it needs and how to enable it: a few tests need
# large real assets that are not in the repository (the 17 MB Gemma tokenizer, the COCO mini
# set, the full caption file, real test images), found in the shared data folder: ../shared
# beside the repository, or RS_SHARED_DIR. A skipped test is never counted as passed.
# usage: scripts/test.sh [ctest args...]
# env: RS_BUILD_DIR  build folder (default build)
#      RS_SHARED_DIR the shared data folder (default ../shared); RS_TOKENIZER_JSON the Gemma
#                    tokenizer.json; relative paths are taken from where you run this
#      RS_REQUIRE_ALL_TESTS=1  any skipped test fails the run (CI sets it)
set -euo pipefail
abspath() { # a path given relative to the caller's folder, made absolute (it must exist)
  local p=$1 what=$2
  [ -e "$p" ] || { echo "$what=$p: no such file or folder" >&2; exit 1; }
  if [ -d "$p" ]; then (cd "$p" && pwd); else echo "$(cd "$(dirname "$p")" && pwd)/$(basename "$p")"; fi
}
if [ -n "${RS_SHARED_DIR:-}" ]; then RS_SHARED_DIR=$(abspath "$RS_SHARED_DIR" RS_SHARED_DIR); export RS_SHARED_DIR; fi
if [ -n "${RS_TOKENIZER_JSON:-}" ]; then RS_TOKENIZER_JSON=$(abspath "$RS_TOKENIZER_JSON" RS_TOKENIZER_JSON); export RS_TOKENIZER_JSON; fi
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --tests
BUILD=${RS_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
rc=0
RS_QUIET=1 ctest --test-dir "$BUILD" --output-on-failure "$@" | tee "$BUILD/ctest-summary.txt" || rc=$?
# Each skipped test printed "RS-SKIP: TEST: needs PATH (WHAT), not found; to run it: ..." (tests/testutil.c,
# tests/shared.sh); CTest keeps the output of every test in LastTest.log.
skips=$(grep -h '^RS-SKIP: ' "$BUILD/Testing/Temporary/LastTest.log" 2>/dev/null | sort -u || true)
nskip=$(grep -c '(Skipped)$' "$BUILD/ctest-summary.txt" || true)
if [ "$nskip" -gt 0 ] || [ -n "$skips" ]; then
  echo
  echo "== $nskip test program(s) skipped in whole or in part: they need real assets that are not in the repository =="
  printf '%s\n' "$skips" | sed -e 's/^RS-SKIP: /  /' -e 's/, not found; to run it:.*$//'
  echo "To run them: put the shared data folder at ../shared beside the repository, or set RS_SHARED_DIR=/path/to/shared"
  echo "(and RS_TOKENIZER_JSON=/path/to/gemma/tokenizer.json for the tokenizer tests), then run scripts/test.sh again."
  if [ -n "${RS_REQUIRE_ALL_TESTS:-}" ]; then
    echo "RS_REQUIRE_ALL_TESTS is set: skipped tests fail this run." >&2
    rc=1
  fi
fi
# pytest's own skips inside tests/cli_python.sh (optional packages such as torch): listed, never counted as passed
pyskips=$(grep -h '^SKIPPED \[' "$BUILD/Testing/Temporary/LastTest.log" 2>/dev/null | sort -u || true)
if [ -n "$pyskips" ]; then
  echo
  echo "== Python tests skipped for want of optional packages (python/tests; not counted as passed) =="
  printf '%s\n' "$pyskips" | sed 's/^SKIPPED \[[0-9]*\] /  /'
fi
exit $rc
