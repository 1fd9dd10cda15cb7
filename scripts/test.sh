#!/usr/bin/env bash
# Install missing build dependencies, build (Release) and run every test with CTest.
# usage: scripts/test.sh [ctest args...]   (RS_BUILD_DIR overrides the build folder)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD=${RS_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
RS_QUIET=1 ctest --test-dir "$BUILD" --output-on-failure "$@"
