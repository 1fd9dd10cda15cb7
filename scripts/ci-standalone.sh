#!/usr/bin/env bash
# CI: what a new user meets. Clones this repository (its committed HEAD) into a temporary
# folder with nothing beside it (no ../shared, RS_SHARED_DIR unset) and runs the README's two
# commands there: scripts/quickstart.sh must end with a report that exists, scripts/test.sh
# must pass and must list the tests it skipped for want of the shared data.
# usage: scripts/ci-standalone.sh   (RS_STANDALONE_DIR keeps the clone there instead)
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "ci-standalone: FAIL: $*" >&2; exit 1; }
if [ -n "${RS_STANDALONE_DIR:-}" ]; then
  d=$RS_STANDALONE_DIR; mkdir -p "$d"
else
  d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
fi
git clone -q . "$d/reprshift"
cd "$d/reprshift"
[ ! -e ../shared ] || fail "$d/shared exists: not a standalone clone"
unset RS_SHARED_DIR RS_SHARED_DIR_DEFAULT RS_TOKENIZER_JSON RS_REQUIRE_ALL_TESTS RS_BUILD_DIR RS_OUT
echo "== standalone clone in $d/reprshift: scripts/quickstart.sh =="
scripts/quickstart.sh >../quickstart.out || fail "scripts/quickstart.sh exited $?"
cat ../quickstart.out
report=$(sed -n 's/^report: //p' ../quickstart.out)
case "$report" in /*) ;; *) fail "report path is not absolute: '$report'" ;; esac
[ -s "$report" ] || fail "no report at '$report'"
echo "== standalone clone: scripts/test.sh =="
export RS_SLURM_TEST=0 # the main suite has started Slurm once already (tests/cli_slurm.sh)
scripts/test.sh >../test.out 2>&1 || { tail -n 60 ../test.out; fail "scripts/test.sh failed"; }
sed -n '/tests passed/,$p' ../test.out
grep -q '^== .* skipped in whole or in part' ../test.out || fail "no list of skipped tests (expected some without ../shared)"
echo "ci-standalone: ok"
