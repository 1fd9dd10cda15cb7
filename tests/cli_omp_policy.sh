#!/usr/bin/env bash
# OpenMP threads of the CLI do not spin-wait by default (src/cli/main.c re-executes itself
# once with OMP_WAIT_POLICY=PASSIVE), and a policy the user set wins. Checked through what
# libgomp itself reports at start-up (OMP_DISPLAY_ENV=VERBOSE prints GOMP_SPINCOUNT, the
# busy-wait length it will use: 300000 by default, 0 when passive). The last report is the
# one of the process that runs the command.
set -u
CLI=${RS_CLI:?RS_CLI not set}
if ! ldd "$CLI" 2>/dev/null | grep -q libgomp; then
  echo "RS-SKIP: cli_omp_policy: $CLI is not linked with libgomp (the check reads libgomp's OMP_DISPLAY_ENV report)"
  exit 77
fi
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
spin() { env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=VERBOSE "$@" "$CLI" inspect tests/fixtures/models/gemma2-tiny-f16 2>&1 >/dev/null |
         sed -n "s/.*GOMP_SPINCOUNT = '\([0-9]*\)'.*/\1/p" | tail -1; }
got=$(spin); [ "$got" = 0 ] || bad "default: GOMP_SPINCOUNT '$got', want 0 (passive)"
got=$(spin OMP_WAIT_POLICY=ACTIVE); [ -n "$got" ] && [ "$got" -gt 1000 ] || bad "user OMP_WAIT_POLICY=ACTIVE: GOMP_SPINCOUNT '$got', want the active spin count"
got=$(spin GOMP_SPINCOUNT=12345); [ "$got" = 12345 ] || bad "user GOMP_SPINCOUNT=12345: got '$got'"
# the re-executed command still gets its arguments, stdin and exit status
printf 'hello' | env -u OMP_WAIT_POLICY "$CLI" tokenize --tokenizer tests/fixtures/tokenizer/tiny_bpe.json --texts /dev/stdin > /dev/null ||
  bad "tokenize from stdin after the re-exec"
env -u OMP_WAIT_POLICY "$CLI" inspect /nonexistent 2>/dev/null; [ $? -eq 1 ] || bad "exit status not kept through the re-exec"
echo "cli_omp_policy: $fails failure(s)"
[ $fails -eq 0 ]
