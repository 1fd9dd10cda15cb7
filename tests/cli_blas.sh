#!/usr/bin/env bash
# The CLI's BLAS kernel choice (src/cli/main.c, docs/limits.md "BLAS kernel"): --version names
# the library and the kernel and why; a kernel pinned in OPENBLAS_CORETYPE and
# RS_BLAS_KERNEL=auto are obeyed; where OpenBLAS falls back to a generic kernel on this CPU,
# reprshift's choice passes the sgemm check, and a failed check (fault injection) goes back
# to OpenBLAS's own choice and says so. On a CPU OpenBLAS recognises, only the first three
# apply (printed).
set -u
CLI=${RS_CLI:?RS_CLI not set}
fail() { echo "FAIL: $*"; exit 1; }
v=$(env -u OPENBLAS_CORETYPE -u RS_BLAS_KERNEL "$CLI" --version) || fail "--version exited non-zero"
echo "$v"
echo "$v" | head -1 | grep -q '^reprshift [0-9]' || fail "no version line"
echo "$v" | grep -q '^BLAS: ' || fail "no BLAS line"
lib=$(echo "$v" | sed -n 's/^BLAS: \([^ ]*\).*/\1/p')
[ "$lib" = OpenBLAS ] || { echo "BLAS is $lib: no kernel choice to test"; exit 0; }
k=$(echo "$v" | sed -n 's/^BLAS kernel: \([^ ]*\) .*/\1/p')
[ -n "$k" ] || fail "no BLAS kernel line"
auto=$(env -u OPENBLAS_CORETYPE RS_BLAS_KERNEL=auto "$CLI" --version | sed -n 's/^BLAS kernel: //p')
echo "$auto" | grep -q "(OpenBLAS's own choice for this CPU)" || fail "RS_BLAS_KERNEL=auto: $auto"
detected=${auto%% *}
pin=$(env -u RS_BLAS_KERNEL OPENBLAS_CORETYPE=$detected "$CLI" --version | sed -n 's/^BLAS kernel: //p')
[ "$pin" = "$detected (pinned by OPENBLAS_CORETYPE=$detected in the environment)" ] || fail "pinned: $pin"
if echo "$v" | grep -q "chosen by reprshift"; then
  echo "$v" | grep -q "OpenBLAS detected $detected on this CPU" || fail "chosen line does not name the detected kernel"
  echo "$v" | grep -Eq "sgemm check passed: worst error [0-9.e+-]+ x the rounding unit over [0-9]+ products" || fail "no check result"
  [ "$k" != "$detected" ] || fail "chose the detected kernel"
  bad=$(env -u OPENBLAS_CORETYPE -u RS_BLAS_KERNEL RS_TEST_BLAS_CHECK_FAIL=1 "$CLI" --version | sed -n 's/^BLAS kernel: //p')
  echo "$bad"
  [ "${bad%% *}" = "$detected" ] || fail "a failed check kept the chosen kernel: $bad"
  echo "$bad" | grep -q "reprshift refused $k (sgemm check: worst error inf" || fail "refusal not reported: $bad"
  # a command still works after the refusal
  env -u OPENBLAS_CORETYPE -u RS_BLAS_KERNEL RS_TEST_BLAS_CHECK_FAIL=1 "$CLI" tokenize --help >/dev/null || fail "command after refusal"
else
  echo "OpenBLAS's own kernel ($k) kept on this CPU: no choice made, refusal path not applicable"
fi
echo ok
