#!/usr/bin/env bash
# reprshift sae splice: JSON output, and bad input (SAE width / hook mismatch, missing SAE).
# The CE values themselves are checked against transformers + sae-lens in test_splice.c.
set -u
CLI=${RS_CLI:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export RS_QUIET=1
fail() { echo "FAIL: $*"; exit 1; }
M=tests/fixtures/models/gemma2-tiny-f32
S=tests/fixtures/splice/sae_l1_jumprelu
printf '2,17,300,4,9,33\n2,45,46,47\n' > "$T/ids.txt"
out=$("$CLI" sae splice --model $M --sae $S --ids-file "$T/ids.txt") || fail "splice run"
for k in ce_clean ce_spliced ce_zero ce_loss_recovered n_predictions; do
  echo "$out" | grep -q "\"$k\": [0-9.-]" || fail "missing $k in $out"
done
echo "$out" | grep -q '"n_predictions": 8' || fail "prediction count: $out"
# splicing at another hook needs --allow-hook-mismatch
"$CLI" sae splice --model $M --sae $S --hook blocks.2.hook_resid_post --ids-file "$T/ids.txt" 2> "$T/e" && fail "hook mismatch accepted"
grep -q "hook" "$T/e" || fail "hook mismatch message: $(cat "$T/e")"
"$CLI" sae splice --model $M --sae $S --hook blocks.2.hook_resid_post --allow-hook-mismatch --ids-file "$T/ids.txt" >/dev/null || fail "allow mismatch"
# SAE width 64 on a 32-wide model
"$CLI" sae splice --model tests/fixtures/models/gemma2-tiny-f16 --sae $S --allow-hook-mismatch --ids-file "$T/ids.txt" 2> "$T/e" && fail "width mismatch accepted"
grep -q "d_in" "$T/e" || fail "width message: $(cat "$T/e")"
"$CLI" sae splice --model $M --sae "$T/none" --ids-file "$T/ids.txt" 2> "$T/e" && fail "missing SAE accepted"
grep -q "$T/none" "$T/e" || fail "missing SAE message: $(cat "$T/e")"
"$CLI" sae splice --model $M --ids-file "$T/ids.txt" 2>/dev/null; [ $? = 2 ] || fail "usage exit code"
# a params.npz outside a layer_N folder records no hook: --hook names it, and is required
cp tests/fixtures/sae/gemma-scope-2b-pt-res/layer_3/width_128/average_l0_5/params.npz "$T/params.npz"
"$CLI" sae splice --model $M --sae "$T/params.npz" --ids-file "$T/ids.txt" 2> "$T/e" && fail "hookless SAE without --hook accepted"
grep -q "pass --hook" "$T/e" || fail "hookless SAE message: $(cat "$T/e")"
out=$("$CLI" sae splice --model $M --sae "$T/params.npz" --hook blocks.1.hook_resid_post --ids-file "$T/ids.txt") ||
  fail "hookless SAE with --hook"
echo "$out" | grep -q '"hook": "blocks.1.hook_resid_post"' || fail "hook not reported: $out"
echo "cli_splice: all checks passed"
