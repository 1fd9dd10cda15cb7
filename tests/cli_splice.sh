#!/usr/bin/env bash
# reprshift sae splice: JSON output, the two CE conventions, batching, and bad input (SAE
# width / hook mismatch, missing SAE, unknown convention).
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
# default: the sae-lens convention, predictions made at <bos> not counted (4 + 2)
echo "$out" | grep -q '"ce_convention": "sae-lens"' || fail "convention not reported: $out"
echo "$out" | grep -q '"n_predictions": 6' || fail "prediction count: $out"
echo "$out" | grep -q '"delta_lm_loss": [0-9.-]' || fail "missing delta_lm_loss in $out"
out=$("$CLI" sae splice --model $M --sae $S --ids-file "$T/ids.txt" --ce-convention reprshift-v1) || fail "v1 run"
echo "$out" | grep -q '"ce_convention": "reprshift-v1"' || fail "v1 convention not reported: $out"
echo "$out" | grep -q '"n_predictions": 8' || fail "v1 prediction count: $out"
out=$("$CLI" sae splice --model $M --sae $S --ids-file "$T/ids.txt" --splice-bos) || fail "splice-bos run"
echo "$out" | grep -q '"n_predictions": 8' || fail "splice-bos prediction count: $out"
"$CLI" sae splice --model $M --sae $S --ids-file "$T/ids.txt" --ce-convention gemma 2> "$T/e"; [ $? = 2 ] || fail "bad convention exit code"
grep -q "reprshift-v1" "$T/e" || fail "bad convention message: $(cat "$T/e")"
# one batch per input, one of which counts no prediction (<bos> x): same totals as one batch
printf '2,17,300,4,9,33\n2,45\n2,45,46,47\n' > "$T/ids3.txt"
a=$("$CLI" sae splice --model $M --sae $S --ids-file "$T/ids3.txt" | sed 's/.*"n_predictions"//') || fail "one batch"
b=$("$CLI" sae splice --model $M --sae $S --ids-file "$T/ids3.txt" --batch-tokens 1 | sed 's/.*"n_predictions"//') ||
  fail "batches of one input"
# the same predictions are counted; the CEs agree to rounding (a GEMM kernel may block a
# 6-row batch differently from a 12-row one: last-digit differences, not a wrong count)
same=$(awk -v a="$a" -v b="$b" 'BEGIN {
  na = split(a, x, /[^0-9.eE+-]+/); nb = split(b, y, /[^0-9.eE+-]+/); ok = (na == nb)
  for (i = 1; ok && i <= na; i++) if (x[i] != y[i]) {
    d = x[i] - y[i]; if (d < 0) d = -d; m = (x[i] < 0 ? -x[i] : x[i]); if (d > 1e-5 * (m > 1 ? m : 1) + 1e-6) ok = 0 }
  print ok }')
[ "$same" = 1 ] || fail "batching changes the totals: $a vs $b"
[ "$(echo "$a" | sed 's/^[^0-9]*\([0-9]*\).*/\1/')" = "$(echo "$b" | sed 's/^[^0-9]*\([0-9]*\).*/\1/')" ] \
  || fail "batching changes the prediction count: $a vs $b"
echo "$a" | grep -q '^: 6, "ce_clean": [0-9]' || fail "totals with an input that counts nothing: $a"
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
