# Sourced by the tests/cli_*.sh scripts: where the shared data folder is, and how a test that
# needs a missing real asset reports itself skipped: an "RS-SKIP:" line (scripts/test.sh
# collects them) and exit 77 (CTest's SKIP_RETURN_CODE), never a pass. Same rule as
# tu_shared() in testutil.c: env RS_SHARED_DIR, else the folder CMake was configured with
# (RS_SHARED_DIR_DEFAULT), else ../shared.
SHARED=${RS_SHARED_DIR:-${RS_SHARED_DIR_DEFAULT:-../shared}}
RS_SKIPPED=
# have_shared REL WHAT: true when $SHARED/REL exists; else print the RS-SKIP line, remember
# the skip (the script must end with `skip_exit`) and return false.
have_shared() {
  [ -e "$SHARED/$1" ] && return 0
  echo "RS-SKIP: $(basename "$0" .sh): needs $SHARED/$1 ($2), not found; to run it: put the shared data folder at ../shared beside the repository or set RS_SHARED_DIR=/path/to/shared"
  RS_SKIPPED=1
  return 1
}
# need_shared REL WHAT: the whole script needs it: exit 77 when it is missing.
need_shared() { have_shared "$@" || exit 77; }
# skip_exit: last line of a script that used have_shared: exit 77 if anything was skipped.
skip_exit() { [ -z "$RS_SKIPPED" ] || exit 77; }
