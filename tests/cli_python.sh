#!/usr/bin/env bash
# The Python package's pytest suite (python/tests; docs/python.md) against this build's
# libreprshift.so and CLI: parity with the transformers goldens, zero-copy, exceptions,
# shift = `reprshift shift`, Ctrl-C, RSS over 1,000 calls. Python: RS_PYTHON if set, else
# python3 when it has numpy and pytest, else a venv made once in BUILD/pyvenv (pip installs
# numpy and pytest from PyPI). Without python3-venv or PyPI the test reports itself skipped
# (RS-SKIP, exit 77: never a pass; CI fails on it). Tests pytest skips (torch.from_dlpack
# when torch is absent) are listed by scripts/test.sh.
set -u
CLI=${RS_CLI:?RS_CLI not set}
BUILD=$(cd "$(dirname "$CLI")" && pwd)
LIB=$BUILD/libreprshift.so
[ -f "$LIB" ] || { echo "FAIL: $LIB not built (configure with -DRS_SHARED_LIB=ON, the default)"; exit 1; }
skip() {
  echo "RS-SKIP: cli_python: needs $1, not found; to run it: $2"
  exit 77
}
PY=${RS_PYTHON:-}
if [ -z "$PY" ]; then
  command -v python3 >/dev/null || skip "python3 (the Python package's tests)" "apt-get install python3 python3-venv"
  if python3 -c 'import numpy, pytest' 2>/dev/null; then
    PY=python3
  else
    VENV=$BUILD/pyvenv
    if ! "$VENV/bin/python" -c 'import numpy, pytest' 2>/dev/null; then
      rm -rf "$VENV"
      { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q numpy pytest; } >"$BUILD/pyvenv.log" 2>&1 ||
        skip "python3-venv and PyPI (numpy, pytest into $VENV; see $BUILD/pyvenv.log)" \
             "apt-get install python3-venv, and let pip reach PyPI, or set RS_PYTHON to a python with numpy and pytest"
    fi
    PY=$VENV/bin/python
  fi
fi
# A sanitizer build (scripts/ci-sanitize.sh): the library needs the ASan/UBSan runtimes loaded
# first in the (uninstrumented) interpreter; Python's own allocations at exit are not ours
# (detect_leaks=0), and ASan's quarantine makes RSS grow by design, so the RSS loop is left
# out there (it runs in the normal build).
PYTEST_EXTRA=()
asan=$(ldd "$LIB" | awk '/libasan\.so/ {print $3}')
if [ -n "$asan" ]; then
  ubsan=$(ldd "$LIB" | awk '/libubsan\.so/ {print $3}')
  export LD_PRELOAD="$asan${ubsan:+ $ubsan}"
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:${ASAN_OPTIONS:+$ASAN_OPTIONS}"
  ASAN_OPTIONS=${ASAN_OPTIONS//detect_leaks=1/detect_leaks=0}
  PYTEST_EXTRA=(-k "not rss_flat")
  echo "sanitizer build: LD_PRELOAD=$LD_PRELOAD; the RSS loop is left out (ASan's quarantine grows RSS)"
fi
echo "python: $("$PY" -c 'import sys, numpy; print(sys.executable, sys.version.split()[0], "numpy", numpy.__version__)')"
REPRSHIFT_LIB=$LIB RS_CLI=$CLI PYTHONDONTWRITEBYTECODE=1 "$PY" -m pytest -q -rs -p no:cacheprovider "${PYTEST_EXTRA[@]}" python/tests
rc=$?
case $rc in
  0) exit 0 ;;
  5) echo "FAIL: pytest collected no tests in python/tests"; exit 1 ;;
  *) echo "FAIL: pytest exited $rc"; exit 1 ;;
esac
