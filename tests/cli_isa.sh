#!/usr/bin/env bash
# The kernels' ISA level in the CLI (src/cli/main.c, src/tensor/isa.h): `--version` names the
# active level; RS_ISA=default forces the baseline; an unknown level is refused with one
# clear message and exit status 2.
set -u
CLI=${RS_CLI:?set RS_CLI to the reprshift binary}
fail() { echo "FAIL: $*"; exit 1; }
v=$(env -u RS_ISA "$CLI" --version) || fail "--version exited non-zero"
echo "$v" | grep -q '^Kernels: \(default\|avx2\|avx512\) (the best level this CPU supports' || fail "no Kernels line: $v"
d=$(RS_ISA=default "$CLI" --version | grep '^Kernels:') || fail "RS_ISA=default: --version failed"
echo "$d" | grep -q '^Kernels: default (' || fail "RS_ISA=default not applied: $d"
err=$(RS_ISA=sse9 "$CLI" --version 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] || fail "RS_ISA=sse9: exit status $rc, want 2"
echo "$err" | grep -q 'RS_ISA=sse9: unknown ISA level' || fail "RS_ISA=sse9: message was: $err"
echo "cli_isa: ok"
