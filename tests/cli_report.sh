#!/usr/bin/env bash
# reprshift report: the fixture results render to one HTML file (exit 0, path on stdout);
# bad input (missing --results, unknown option, malformed JSON, missing directory) fails
# with a one-line message naming the problem, a non-zero exit and no output file.
set -u
CLI=${RS_CLI:?RS_CLI not set}
F=tests/fixtures/report
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok()   { echo "ok: $1"; }
bad()  { echo "FAIL: $1"; fails=$((fails + 1)); }
expect_fail() {
    local name=$1 code=$2 pat=$3; shift 3
    "$@" >"$T/out" 2>"$T/err"; local rc=$?
    if [ $rc -ne "$code" ]; then bad "$name: exit $rc, expected $code: $(cat "$T/err")"; return; fi
    if grep -q -- "$pat" "$T/err"; then ok "$name"; else bad "$name: stderr lacks '$pat': $(cat "$T/err")"; fi
}

out=$("$CLI" report --results $F/full --out "$T/r.html" 2>"$T/err") || bad "render: $(cat "$T/err")"
[ "$out" = "$T/r.html" ] && ok "prints the report path" || bad "stdout was '$out'"
grep -q '<footer id="report-end">' "$T/r.html" && ok "report written" || bad "report incomplete"
grep -q 'report: 29 figures' "$T/err" && ok "figure count" || bad "figure count: $(cat "$T/err")"
"$CLI" report --help | grep -q -- '--results' && ok "--help" || bad "--help"

expect_fail "no args" 2 "required" "$CLI" report
expect_fail "unknown option" 2 "unknown option" "$CLI" report --results $F/full --out "$T/x.html" --bogus
expect_fail "missing dir" 1 "results directory not found" "$CLI" report --results "$T/nope" --out "$T/x.html"
mkdir "$T/badres"
printf '{"ci": "x", "layers": [' > "$T/badres/shift.json"
expect_fail "malformed json" 1 "badres/shift.json: malformed JSON" "$CLI" report --results "$T/badres" --out "$T/x.html"
[ ! -e "$T/x.html" ] && ! ls "$T" | grep -q '\.tmp\.' && ok "no output on error" || bad "output left behind"
[ $(wc -l < "$T/err") -eq 1 ] && ok "one-line error" || bad "error not one line"

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all ok"
