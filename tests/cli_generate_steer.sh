#!/usr/bin/env bash
# Steered generation from the command line: `reprshift generate --spec` and `reprshift
# intervene --generate N` give the clean and the steered greedy ids of transformers' generate
# with the same forward hook (tests/fixtures/generate/steer_cli_expected.json, made by
# tools/reference/gen_steer_goldens.py; the logits are compared in tests/test_generate_steer.c),
# --specs-file, text output, PaliGemma, and bad input: one message on stderr, non-zero exit,
# nothing on stdout.
set -u
CLI=${RS_CLI:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export RS_QUIET=1
fail() { echo "FAIL: $*"; exit 1; }
M=tests/fixtures/models/gemma2-tiny-f32
Q=examples/quickstart/models
D=tests/fixtures/intervene/dir.safetensors
E=tests/fixtures/generate/steer_cli_expected.json
# field of the "gemma2" object of the expected file: a list as "[a, b, ...]" or the spec string
exp_list() { sed 's/.*"gemma2": {\(.*\)}, "generator".*/\1/' "$E" | sed "s/.*\"$1\": \(\[[^]]*\]\).*/\1/"; }
PROMPT=$(exp_list prompt | tr -d '[] ')
SPEC=$(sed 's/.*"gemma2": {.*"spec": "\([^"]*\)"}, "generator".*/\1/' "$E")
CLEAN=$(exp_list clean); STEER=$(exp_list intervened)
[ -n "$PROMPT" ] && [ -n "$SPEC" ] && [ "$CLEAN" != "$STEER" ] || fail "expected file: $PROMPT / $SPEC / $CLEAN / $STEER"
N=$(echo "$CLEAN" | tr ',' '\n' | wc -l)

out=$("$CLI" generate --model $M --ids "$PROMPT" --max-new-tokens "$N" --spec "$SPEC" --json) || fail "generate --spec"
echo "$out" | grep -qF "\"clean\": {\"ids\": $CLEAN," || fail "clean ids: $out (want $CLEAN)"
echo "$out" | grep -qF "\"intervened\": {\"ids\": $STEER," || fail "steered ids: $out (want $STEER)"
echo "$out" | grep -qF '"ids":'"$(echo "$STEER" | tr -d ' ')" || fail "top-level ids are not the steered run: $out"
echo "$out" | grep -q '"alpha_units":"mean_l2_norm","scale":26.198' || fail "scale: $out"
out=$("$CLI" intervene --model $M --ids "$PROMPT" --spec "$SPEC" --generate "$N" --json) || fail "intervene --generate"
echo "$out" | grep -qF "\"generation\": {\"max_new_tokens\": $N, \"clean\": {\"ids\": $CLEAN," || fail "intervene clean: $out"
echo "$out" | grep -qF "\"intervened\": {\"ids\": $STEER," || fail "intervene steered: $out"
# the same spec from a file
printf '# steer\n%s\n' "$SPEC" > "$T/specs.txt"
out2=$("$CLI" generate --model $M --ids "$PROMPT" --max-new-tokens "$N" --specs-file "$T/specs.txt" --json) || fail "specs file"
[ "$out2" = "$("$CLI" generate --model $M --ids "$PROMPT" --max-new-tokens "$N" --spec "$SPEC" --json)" ] ||
  fail "--specs-file differs from --spec: $out2"
# text output with a tokenizer; pos= on prompt rows only; PaliGemma image + prompt
out=$("$CLI" generate --model $Q/gemma2-tiny --text "a red cat" --max-new-tokens 16 \
  --spec "add@blocks.1.hook_resid_post:dir=$D:alpha=0.5") || fail "text output"
[ "$(echo "$out" | grep -c '^  clean: ')" = 1 ] && [ "$(echo "$out" | grep -c '^  intervened: ')" = 1 ] || fail "text lines: $out"
out=$("$CLI" generate --model $Q/gemma2-tiny --text "a red cat" --max-new-tokens 8 --json \
  --spec "add@blocks.0.hook_resid_post:dir=$D:alpha_abs=50:pos=-1") || fail "pos= run"
echo "$out" | grep -q '"scale":1}' || fail "alpha_abs scale: $out"
I1=tests/fixtures/images/resize_chelsea_224.png
out=$("$CLI" generate --model $Q/paligemma-tiny --image $I1 --max-new-tokens 8 --json \
  --spec "project@blocks.1.hook_resid_post:dir=$D") || fail "paligemma generate --spec"
echo "$out" | grep -q '"clean": {"ids": \[' || fail "paligemma: $out"
out=$("$CLI" intervene --model $Q/paligemma-tiny --image $I1 --generate 8 --spec "project@blocks.1.hook_resid_post:dir=$D") ||
  fail "paligemma intervene --generate"
echo "$out" | grep -q '^  intervened: ' || fail "paligemma intervene text: $out"

bad() { # expected-substring, then the command's arguments
  want=$1; shift
  "$CLI" "$@" > "$T/o" 2> "$T/e"; rc=$?
  [ $rc -ne 0 ] || fail "accepted: $*"
  [ ! -s "$T/o" ] || fail "partial output for: $* : $(cat "$T/o")"
  [ "$(wc -l < "$T/e")" -le 2 ] || fail "more than one message for: $*: $(cat "$T/e")"
  grep -qF -- "$want" "$T/e" || fail "message for '$*' lacks '$want': $(cat "$T/e")"
}
G="generate --model $M --ids $PROMPT --max-new-tokens 4"
bad "patch cannot be used with generation" $G --spec "patch@blocks.1.hook_resid_post:from=1"
bad "patch cannot be used with generation" intervene --model $M --ids "$PROMPT" --source-ids "$PROMPT" --generate 4 \
  --spec "patch@blocks.1.hook_resid_post:from=1"
bad "alpha must be a finite number" $G --spec "add@blocks.1.hook_resid_post:dir=$D:alpha=inf"
bad "alpha must be a finite number" $G --spec "add@blocks.1.hook_resid_post:dir=$D:alpha=nan"
bad "alpha_abs must be a finite number" intervene --model $M --ids "$PROMPT" --generate 4 --spec "add@blocks.1.hook_resid_post:dir=$D:alpha_abs=-inf"
bad "outside the prompt" $G --spec "add@blocks.1.hook_resid_post:dir=$D:alpha=1:pos=7"
bad "$T/none.txt" $G --specs-file "$T/none.txt"
bad "width 64" $G --spec "add@blocks.1.hook_resid_post:dir=$D:narrow:alpha=1"
bad "give --image" intervene --model $Q/paligemma-tiny --image $I1 --text "a red" --generate 4 --spec "project@blocks.1.hook_resid_post:dir=$D"
"$CLI" intervene --model $M --ids "$PROMPT" --generate 0 --spec "project@blocks.1.hook_resid_post:dir=$D" >"$T/o" 2>/dev/null
[ $? = 2 ] && [ ! -s "$T/o" ] || fail "--generate 0: usage exit code"
echo ok
