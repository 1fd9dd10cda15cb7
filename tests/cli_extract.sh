#!/usr/bin/env bash
# reprshift extract on the tiny Gemma-2 fixture: output layout, pooling, and bad input
# (clear one-line error, non-zero exit, nothing left behind).
set -u
CLI=${RS_CLI:?}
M=tests/fixtures/models/gemma2-tiny-f32
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export RS_QUIET=1

# pooled and unpooled outputs
"$CLI" extract --model $M --hook blocks.1.hook_resid_post,blocks.0.attn.hook_z --ids 2,17,300,4 --out "$T/a.safetensors" 2>/dev/null || fail "extract"
[ -s "$T/a.safetensors" ] && [ -s "$T/a.safetensors.rows.jsonl" ] || fail "outputs missing"
"$CLI" inspect "$T/a.safetensors" > "$T/inspect.txt" || fail "inspect output"
grep -q 'blocks.1.hook_resid_post  *F32  *\[4, 64\]' "$T/inspect.txt" || fail "resid shape: $(cat "$T/inspect.txt")"
grep -q 'blocks.0.attn.hook_z  *F32  *\[4, 128\]' "$T/inspect.txt" || fail "hook_z shape"
grep -q 'token_ids  *I32  *\[4\]' "$T/inspect.txt" || fail "token_ids"
grep -q 'offsets  *I64  *\[2\]' "$T/inspect.txt" || fail "offsets"
printf '2,5,6\n2,9,10,11,12\n' > "$T/ids.txt"
"$CLI" extract --model $M --hook blocks.2.hook_resid_post --ids-file "$T/ids.txt" --pool mean --out "$T/m.safetensors" 2>/dev/null || fail "mean"
"$CLI" inspect "$T/m.safetensors" | grep -q 'blocks.2.hook_resid_post  *F32  *\[2, 64\]' || fail "pooled shape"
[ "$(wc -l < "$T/m.safetensors.rows.jsonl")" = 2 ] || fail "row index lines"

# bad input: each exits non-zero with one line naming the problem and leaves no output
expect_fail() {  # expect_fail NEEDLE ARGS...
  local needle=$1; shift
  rm -f "$T/bad.safetensors" "$T/bad.safetensors.rows.jsonl"
  "$CLI" extract "$@" --out "$T/bad.safetensors" 2> "$T/err.txt" && fail "should fail: $*"
  grep -q -- "$needle" "$T/err.txt" || fail "message for '$*' lacks '$needle': $(cat "$T/err.txt")"
  [ "$(wc -l < "$T/err.txt")" -le 2 ] || fail "long error for $*"
  ls "$T" | grep -q '^bad\.' && fail "partial output left for $*"
  return 0
}
expect_fail "unknown hook" --model $M --hook blocks.9.hook_resid_post --ids 2,3
expect_fail "valid hooks" --model $M --hook resid_post --ids 2,3
expect_fail "outside the vocabulary" --model $M --hook blocks.0.hook_resid_post --ids 2,99999
expect_fail "no tokenizer.json" --model $M --hook blocks.0.hook_resid_post --text "hello"
expect_fail "model folder not found" --model "$T/nowhere" --hook blocks.0.hook_resid_post --ids 2
printf '2,5\n\n2,6\n' > "$T/blank.txt"
expect_fail "empty line" --model $M --hook blocks.0.hook_resid_post --ids-file "$T/blank.txt"
expect_fail "only special tokens" --model $M --hook blocks.0.hook_resid_post --ids 2 --pool mean
# a truncated checkpoint: copy the fixture and cut its weights file
mkdir "$T/trunc"; cp $M/config.json "$T/trunc/"; head -c 5000 $M/model.safetensors > "$T/trunc/model.safetensors"
expect_fail "truncated" --model "$T/trunc" --hook blocks.0.hook_resid_post --ids 2,3
# config that disagrees with the tensors
mkdir "$T/mism"; cp $M/model.safetensors "$T/mism/"; sed 's/"intermediate_size": 128/"intermediate_size": 96/' $M/config.json > "$T/mism/config.json"
expect_fail "shape" --model "$T/mism" --hook blocks.0.hook_resid_post --ids 2,3
# malformed config.json
mkdir "$T/badcfg"; cp $M/model.safetensors "$T/badcfg/"; printf '{"model_type": "gemma2", ' > "$T/badcfg/config.json"
expect_fail "malformed JSON" --model "$T/badcfg" --hook blocks.0.hook_resid_post --ids 2,3
# a tensor missing from the checkpoint (same-length rename inside the header)
mkdir "$T/miss"; cp $M/config.json "$T/miss/"; sed 's/model\.norm\.weight/model.norX.weight/' $M/model.safetensors > "$T/miss/model.safetensors"
expect_fail 'missing tensor "model.norm.weight"' --model "$T/miss" --hook ln_final.hook_out --ids 2,3
# a weight stored with a non-float dtype
mkdir "$T/dt"; cp $M/config.json "$T/dt/"; sed '0,/"F32"/s//"I32"/' $M/model.safetensors > "$T/dt/model.safetensors"
expect_fail "dtype I32" --model "$T/dt" --hook blocks.0.hook_resid_post --ids 2,3
# empty text, malformed tokenizer.json
printf '{"model": {"type": "BPE", "vocab": ' > "$T/tok.json"
expect_fail "tok.json" --model $M --tokenizer "$T/tok.json" --hook blocks.0.hook_resid_post --text "a cat"
# (any tokenizer.json will do here: the committed one of the quickstart's tiny model)
expect_fail "empty" --model $M --tokenizer examples/quickstart/models/gemma2-tiny/tokenizer.json --hook blocks.0.hook_resid_post --text ""
# usage errors exit 2
"$CLI" extract --model $M --ids 2 --out "$T/x.safetensors" 2>/dev/null; [ $? = 2 ] || fail "missing --hook should exit 2"
"$CLI" extract --help | grep -q "usage: reprshift extract" || fail "--help"
echo "cli_extract: all checks passed"
