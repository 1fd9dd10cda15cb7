#!/usr/bin/env bash
# Every command and subcommand answers --help (and -h) with its help on stdout, nothing on
# stderr and exit status 0. Commands come from `reprshift --help`; subcommands from each
# command's own help ("reprshift CMD SUB ..."), so a new one is covered without editing this.
set -u
CLI=${RS_CLI:?set RS_CLI to the reprshift binary}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
n=0; bad=0
check() { # args: the command words before --help
  for h in --help -h; do
    n=$((n + 1))
    "$CLI" "$@" "$h" > "$T/out" 2> "$T/err" < /dev/null
    rc=$?
    why=""
    if [ $rc -ne 0 ]; then why="exit status $rc"
    elif [ -s "$T/err" ]; then why="stderr not empty"
    elif ! grep -q "usage" "$T/out"; then why="no usage line on stdout"
    elif [ $# -ge 2 ] && ! grep -qF -- "$2" "$T/out"; then why="help does not mention '$2'"
    fi
    if [ -n "$why" ]; then
      bad=$((bad + 1)); echo "FAIL reprshift $* $h: $why: $(head -c 300 "$T/err")"
    fi
  done
}
"$CLI" --help > "$T/top" || { echo "FAIL: reprshift --help"; exit 1; }
cmds=$(sed -n '/^commands:/,$p' "$T/top" | awk 'NR > 1 && NF { print $1 }')
[ "$(echo "$cmds" | wc -w)" -ge 11 ] || { echo "FAIL: expected >= 11 commands, got: $cmds"; exit 1; }
nsub=0
for c in $cmds; do
  check "$c"
  "$CLI" "$c" --help 2>/dev/null | grep -oE "reprshift $c [a-z][a-z-]*" | awk '{ print $3 }' | sort -u > "$T/subs"
  while read -r s; do
    nsub=$((nsub + 1))
    check "$c" "$s"
  done < "$T/subs"
done
echo "cli_help: $n invocations ($nsub subcommands), $bad failed"
[ "$nsub" -ge 12 ] || { echo "FAIL: expected >= 12 subcommands"; exit 1; }
[ "$bad" -eq 0 ]
