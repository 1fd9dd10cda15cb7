#!/usr/bin/env bash
# Malformed-input suite, CLI half: every row of tests/malformed/cases.tsv whose command is
# not "lib:..." runs `reprshift <command>` on a hand-made bad file and must exit non-zero
# (1, not a crash or usage error), print exactly one line on stderr naming the file and
# containing the row's keyword, and leave no output (nor temp file) behind.
set -u
CLI=${RS_CLI:?set RS_CLI to the reprshift binary}
D=tests/malformed
MODEL=tests/fixtures/models/gemma2-tiny-f32
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export RS_QUIET=1
n=0; bad=0
while IFS=$'\t' read -r file cmd kw; do
  case "$file" in ''|'#'*) continue ;; esac
  case "$cmd" in lib:*) continue ;; esac
  n=$((n + 1))
  name=$(basename "$file")
  rm -rf "$T/out" "$T/m"; mkdir -p "$T/out"
  if [[ $cmd == *'{cfgdir}'* ]]; then
    mkdir "$T/m"; cp "$D/$file" "$T/m/config.json"; ln -s "$PWD/$MODEL/model.safetensors" "$T/m/model.safetensors"
    name=config.json
  fi
  args=${cmd//'{f}'/$D/$file}; args=${args//'{cfgdir}'/$T/m}; args=${args//'{out}'/$T/out/result.safetensors}
  # shellcheck disable=SC2086  # the command is a word list from the table (no spaces in paths)
  "$CLI" $args > "$T/stdout" 2> "$T/stderr"
  rc=$?
  why=""
  if [ $rc -eq 0 ]; then why="exit status 0"
  elif [ $rc -ne 1 ]; then why="exit status $rc (want 1: not a crash or usage error)"
  elif [ "$(grep -c . "$T/stderr")" -ne 1 ]; then why="stderr is not exactly one line"
  elif ! grep -qF -- "$name" "$T/stderr"; then why="error does not name $name"
  elif ! grep -qiF -- "$kw" "$T/stderr"; then why="error lacks keyword '$kw'"
  elif [ -n "$(ls -A "$T/out")" ]; then why="output left behind: $(ls -A "$T/out" | tr '\n' ' ')"
  fi
  if [ -n "$why" ]; then
    bad=$((bad + 1))
    echo "FAIL $file ($cmd): $why: $(head -c 400 "$T/stderr")"
  elif [ -n "${RS_MALFORMED_VERBOSE:-}" ]; then
    echo "ok   $file: $(cat "$T/stderr")"
  fi
done < "$D/cases.tsv"
echo "cli_malformed: $n CLI cases, $bad failed"
[ "$n" -ge 40 ] || { echo "FAIL: expected >= 40 CLI cases"; exit 1; }
[ "$bad" -eq 0 ]
