#!/usr/bin/env bash
# reprshift inspect MODEL_DIR validates the whole checkpoint against its config (the bad
# cases are rows of tests/malformed/cases.tsv). Here: every valid checkpoint passes — the
# transformers-written fixtures (Gemma-2 f32/bf16 sharded/f16, PaliGemma in the Hub,
# transformers-5 and model.-prefixed layouts), the quickstart bundle, and the hand-made
# valid counterparts of the malformed cases (tests/fixtures/inspect, written by
# tests/malformed/make_cases.py) including an lm_head that is a copy of the tied embedding.
set -u
CLI=${RS_CLI:?RS_CLI not set}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; n=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
for m in tests/fixtures/models/* examples/quickstart/models/gemma2-tiny examples/quickstart/models/paligemma-tiny \
         tests/fixtures/inspect/*; do
  n=$((n + 1))
  "$CLI" inspect "$m" > "$T/out" 2> "$T/err" || { bad "$m: exit $?: $(cat "$T/err")"; continue; }
  [ -s "$T/err" ] && bad "$m: stderr not empty: $(cat "$T/err")"
  want=$(grep -c '^' "$T/out")
  # the table has one row per tensor, and the last line says they were all checked
  k=$(sed -n 's/^\([0-9]*\) tensors in [0-9]* shard(s)$/\1/p' "$T/out")
  tail -1 "$T/out" | grep -q "^checkpoint matches its config: $k tensors, all read by the" ||
    bad "$m: no 'checkpoint matches' line for $k tensors: $(tail -1 "$T/out")"
  [ "$want" -gt "$k" ] || bad "$m: table shorter than $k tensors"
done
grep -q "copy of the tied embedding" <("$CLI" inspect tests/fixtures/inspect/gemma_tied_head) || bad "tied head not reported"
grep -q "copy of the tied embedding" <("$CLI" inspect tests/fixtures/inspect/pali_tied_head) || bad "PaliGemma tied head not reported"
# a lone .safetensors file: headers only, said so
"$CLI" inspect tests/fixtures/models/gemma2-tiny-f32/model.safetensors | tail -1 | grep -q "^no config.json: headers validated" ||
  bad "single file: no 'headers validated' line"
echo "cli_inspect: $n checkpoints, $fails failure(s)"
[ "$n" -ge 13 ] && [ $fails -eq 0 ]
