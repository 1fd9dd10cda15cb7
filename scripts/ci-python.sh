#!/usr/bin/env bash
# CI: the Python package as a new user installs it. Clones this repository (its committed
# HEAD) into a temporary folder, builds the wheel there with `pip wheel .` (scikit-build-core
# driving the project's CMake; Debian build dependencies from scripts/install-deps.sh, pip
# reaching PyPI), checks that it is one wheel for every Python 3 (tag py3-none-<platform>:
# ctypes, no extension module), installs it into a fresh venv, runs the example script
# (python/examples/notebook.py) and the pytest suite against the installed package.
# usage: scripts/ci-python.sh   (RS_CLI: the reprshift binary for the CLI-parity tests,
#                                default build/reprshift of this checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "ci-python: FAIL: $*" >&2; exit 1; }
bash scripts/install-deps.sh --tests
CLI=$(realpath "${RS_CLI:-build/reprshift}")
[ -x "$CLI" ] || fail "no reprshift binary at $CLI (run scripts/test.sh first, or set RS_CLI)"
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
git clone -q . "$d/reprshift"
python3 -m venv "$d/venv"
"$d/venv/bin/pip" install -q --upgrade pip
echo "== pip wheel . (fresh clone) =="
t0=$(date +%s)
(cd "$d/reprshift" && "$d/venv/bin/pip" wheel -q --no-deps -w "$d/wheels" .) || fail "pip wheel . failed"
whl=$(ls "$d"/wheels/reprshift-*.whl)
echo "built $(basename "$whl") in $(( $(date +%s) - t0 )) s"
case "$(basename "$whl")" in *-py3-none-linux_*.whl|*-py3-none-manylinux*.whl) ;; *) fail "not a py3-none wheel: $whl" ;; esac
echo "== pip install (fresh venv) =="
"$d/venv/bin/pip" install -q "$whl" pytest || fail "pip install of the wheel failed"
cd "$d"  # import the installed package, not the checkout
"$d/venv/bin/python" -c 'import reprshift, os; print("reprshift", reprshift.__version__, "from", os.path.dirname(reprshift.__file__))'
echo "== example script =="
"$d/venv/bin/python" "$d/reprshift/python/examples/notebook.py" | tee "$d/notebook.out"
grep -q '^notebook: ok$' "$d/notebook.out" || fail "the example script did not finish"
echo "== pytest against the installed package =="
RS_PYTEST_INSTALLED=1 RS_CLI=$CLI "$d/venv/bin/python" -m pytest -q -rs -p no:cacheprovider "$d/reprshift/python/tests" ||
  fail "pytest failed against the installed package"
echo "ci-python: ok"
