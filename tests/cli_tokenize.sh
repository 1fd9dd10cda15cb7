#!/usr/bin/env bash
# `reprshift tokenize`: exit codes, error messages, and real output vs the tokenizers golden
# (tests/fixtures/tokenizer/coco_ids.txt.gz, from tools/reference/gen_tokenizer_goldens.py).
set -u
CLI=${RS_CLI:?set RS_CLI to the reprshift binary}
. "$(dirname "$0")/shared.sh"
[ -n "${RS_TOKENIZER_JSON:-}" ] || need_shared data/tokenizer/tokenizer.json "the 17 MB Gemma tokenizer; or set RS_TOKENIZER_JSON"
need_shared data/text/coco_val2017_captions.txt "the 25,014 COCO val2017 captions"
TOK=${RS_TOKENIZER_JSON:-$SHARED/data/tokenizer/tokenizer.json}
CAPS=$SHARED/data/text/coco_val2017_captions.txt
GOLD=tests/fixtures/tokenizer/coco_ids.txt.gz
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

expect() { # expect CODE DESCRIPTION -- command...
    local want=$1 what=$2; shift 3
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL: $what: exit $got, want $want"; cat "$T/err"; fails=$((fails + 1))
    elif [ "$want" = 1 ] && [ "$(wc -l <"$T/err")" != 1 ]; then
        echo "FAIL: $what: want one line on stderr, got:"; cat "$T/err"; fails=$((fails + 1))
    else
        echo "ok: $what (exit $got) $(head -n 1 "$T/err")"
    fi
}

expect 0 "--help" -- "$CLI" tokenize --help
grep -q -- "--tokenizer FILE" "$T/out" || { echo "FAIL: --help text"; fails=$((fails + 1)); }
expect 2 "no arguments" -- "$CLI" tokenize
expect 2 "unknown option" -- "$CLI" tokenize --tokenizer "$TOK" --text x --bogus
expect 2 "both --text and --texts" -- "$CLI" tokenize --tokenizer "$TOK" --text x --texts "$CAPS"
expect 2 "both --model and --tokenizer" -- "$CLI" tokenize --model "$T" --tokenizer "$TOK" --text x
expect 2 "missing value" -- "$CLI" tokenize --tokenizer
expect 2 "--skip-special without --decode" -- "$CLI" tokenize --tokenizer "$TOK" --text x --skip-special
expect 1 "missing tokenizer file" -- "$CLI" tokenize --tokenizer "$T/nope.json" --text x
grep -q "$T/nope.json" "$T/err" || { echo "FAIL: message does not name the file"; fails=$((fails + 1)); }
expect 1 "model dir without tokenizer.json" -- "$CLI" tokenize --model "$T" --text x
grep -q "$T/tokenizer.json" "$T/err" || { echo "FAIL: message does not name DIR/tokenizer.json"; fails=$((fails + 1)); }
printf '{"model": {"type": "BPE", "vocab": ' >"$T/bad.json"
expect 1 "truncated tokenizer.json" -- "$CLI" tokenize --tokenizer "$T/bad.json" --text x
grep -q "malformed JSON" "$T/err" || { echo "FAIL: no 'malformed JSON' in message"; fails=$((fails + 1)); }
printf '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}' >"$T/wp.json"
expect 1 "non-BPE model" -- "$CLI" tokenize --tokenizer "$T/wp.json" --text x
expect 1 "missing --texts file" -- "$CLI" tokenize --tokenizer "$TOK" --texts "$T/none.txt"
printf 'good line\nbad \xff line\n' >"$T/badutf8.txt"
expect 1 "invalid UTF-8 line" -- "$CLI" tokenize --tokenizer "$TOK" --texts "$T/badutf8.txt"
grep -q "badutf8.txt:2" "$T/err" || { echo "FAIL: message does not name file:line"; fails=$((fails + 1)); }
expect 1 "decode of an id outside the vocab" -- "$CLI" tokenize --tokenizer "$TOK" --decode --text '[2, 999999]'
expect 1 "decode of a non-array" -- "$CLI" tokenize --tokenizer "$TOK" --decode --text '{"a": 1}'

# Real output: the first 200 captions against the golden ids (with and without <bos>).
head -n 200 "$CAPS" >"$T/caps.txt"
zcat "$GOLD" | sed -n '2,201p' | sed 's/ /, /g; s/^/[/; s/$/]/' >"$T/want_bos.txt"
sed 's/^\[2, /[/' "$T/want_bos.txt" >"$T/want_nobos.txt"
mkdir "$T/model" && ln -s "$(cd "$(dirname "$TOK")" && pwd)/$(basename "$TOK")" "$T/model/tokenizer.json"
expect 0 "--model DIR --texts (200 captions)" -- "$CLI" tokenize --model "$T/model" --texts "$T/caps.txt"
cmp -s "$T/out" "$T/want_bos.txt" && echo "ok: 200 captions identical to tokenizers (with <bos>)" ||
    { echo "FAIL: ids differ from golden"; diff "$T/out" "$T/want_bos.txt" | head; fails=$((fails + 1)); }
expect 0 "--no-bos" -- "$CLI" tokenize --tokenizer "$TOK" --no-bos --texts "$T/caps.txt"
cmp -s "$T/out" "$T/want_nobos.txt" && echo "ok: 200 captions identical to tokenizers (no <bos>)" ||
    { echo "FAIL: --no-bos ids differ from golden"; diff "$T/out" "$T/want_nobos.txt" | head; fails=$((fails + 1)); }
# --decode --skip-special turns the golden ids back into the captions (as JSON strings).
expect 0 "--decode --skip-special" -- "$CLI" tokenize --tokenizer "$TOK" --decode --skip-special --texts "$T/want_bos.txt"
sed 's/^/"/; s/$/"/' "$T/caps.txt" >"$T/want_text.txt"
cmp -s "$T/out" "$T/want_text.txt" && echo "ok: decode round trip of 200 captions" ||
    { echo "FAIL: decode differs"; diff "$T/out" "$T/want_text.txt" | head; fails=$((fails + 1)); }
# --paligemma: <image> and <loc> ids as tokenizers assigns them (fixture paligemma_cases.jsonl).
expect 0 "--paligemma" -- "$CLI" tokenize --tokenizer "$TOK" --paligemma --no-bos --text $'<image><image><bos>detect cat ; dog\n'
want=$(grep '"name": "detect"' tests/fixtures/tokenizer/paligemma_cases.jsonl | sed 's/.*"ids": \(\[[^]]*\]\).*/\1/')
[ "$(cat "$T/out")" = "$want" ] && echo "ok: PaliGemma prompt $want" ||
    { echo "FAIL: PaliGemma prompt: got $(cat "$T/out"), want $want"; fails=$((fails + 1)); }

if [ "$fails" != 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all cli_tokenize checks passed"
