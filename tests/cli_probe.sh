#!/usr/bin/env bash
# reprshift probe train|eval|predict on a small activation file (iris as fake
# activations): the CLI's predictions must equal sklearn's (tests/fixtures/probe/
# cli_sklearn_pred.txt, from tools/reference/gen_probe_goldens.py), and bad input
# (missing/mismatched hook, single class, missing label, NaN, width mismatch) must fail
# with a message and a non-zero exit.
set -u
CLI=${RS_CLI:?RS_CLI not set}
F=tests/fixtures/probe
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok()   { echo "ok: $1"; }
bad()  { echo "FAIL: $1"; fails=$((fails + 1)); }
# expect_fail NAME PATTERN CMD...: non-zero exit and stderr matching PATTERN
expect_fail() {
    local name=$1 pat=$2; shift 2
    if "$@" >"$T/out" 2>"$T/err"; then bad "$name: exit 0"; return; fi
    if grep -q -- "$pat" "$T/err"; then ok "$name"; else bad "$name: stderr lacks '$pat': $(cat "$T/err")"; fi
}

H=blocks.1.hook_resid_post
"$CLI" probe train --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.txt --C 1 \
    --tol 1e-10 --out "$T/p.safetensors" 2>"$T/err" || bad "train: $(cat "$T/err")"
[ -s "$T/p.safetensors" ] && [ -s "$T/p.json" ] && ok "train wrote probe + card" || bad "train outputs missing"
grep -Eq '"hook":[[:space:]]*"blocks.1.hook_resid_post"' "$T/p.json" && grep -q '"versicolor"' "$T/p.json" \
    && grep -q data_hash "$T/p.json" && ok "card content" || bad "card content"
"$CLI" probe predict --probe "$T/p.safetensors" --acts $F/cli_acts.safetensors --out "$T/pred.txt" \
    2>"$T/err" || bad "predict: $(cat "$T/err")"
cmp -s "$T/pred.txt" $F/cli_sklearn_pred.txt && ok "predictions equal sklearn's" || bad "predictions differ from sklearn"
"$CLI" probe train --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.csv \
    --label-column species --Cs 0.1,1,10 --cv 3 --out "$T/q.safetensors" 2>"$T/err" || bad "train csv+cv: $(cat "$T/err")"
grep -q cv_grid "$T/q.json" && ok "cv grid in card" || bad "cv grid missing"
# iris has 150 rows (each its own group): 30 test groups per split, below the default minimum of 50
"$CLI" probe eval --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.txt --seeds 5 \
    --boot 200 --permutations 20 --min-test-groups 30 --json "$T/e.json" 2>"$T/err" || bad "eval: $(cat "$T/err")"
grep -q '"selectivity"' "$T/e.json" && grep -q '"ci95"' "$T/e.json" && grep -q '"p_value": 0.047619' "$T/e.json" \
    && grep -q '"test_groups_per_split": 30' "$T/e.json" && ok "eval json" || bad "eval json: $(cat "$T/e.json")"
expect_fail "too few test groups" "leaves 30 test groups (150 groups, test fraction 0.2), fewer than the minimum of 50" \
    "$CLI" probe eval --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.txt --json "$T/x.json"
[ ! -e "$T/x.json" ] && ok "no eval json after failure" || bad "eval json written after failure"

expect_fail "unknown hook" "no activations for hook" "$CLI" probe train --acts $F/cli_acts.safetensors \
    --hook blocks.9.hook_resid_post --labels $F/cli_labels.txt --out "$T/x.safetensors"
expect_fail "single class" "one class" "$CLI" probe train --acts $F/cli_acts.safetensors --hook $H \
    --labels $F/cli_labels_one_class.txt --out "$T/x.safetensors"
expect_fail "missing label" "line 21: missing label" "$CLI" probe train --acts $F/cli_acts.safetensors \
    --hook $H --labels $F/cli_labels_missing.txt --out "$T/x.safetensors"
expect_fail "NaN features" "non-finite" "$CLI" probe train --acts $F/cli_acts.safetensors \
    --hook blocks.3.hook_resid_post --labels $F/cli_labels.txt --out "$T/x.safetensors"
expect_fail "probe for another hook" "trained on hook" "$CLI" probe predict --probe "$T/p.safetensors" \
    --acts $F/cli_acts.safetensors --hook blocks.2.hook_resid_post
# same hook name, narrower features: copy layer 2 under layer 1's name via a train/predict mismatch
"$CLI" probe train --acts $F/cli_acts.safetensors --hook blocks.2.hook_resid_post --labels $F/cli_labels.txt \
    --C 1 --out "$T/w3.safetensors" 2>/dev/null || bad "train width-3 probe"
sed 's/blocks.2.hook_resid_post/blocks.1.hook_resid_post/' "$T/w3.safetensors" > "$T/w3b.safetensors"
expect_fail "width mismatch" "does not match the probe" "$CLI" probe predict --probe "$T/w3b.safetensors" \
    --acts $F/cli_acts.safetensors
expect_fail "not a probe" "not a reprshift probe" "$CLI" probe predict --probe $F/cli_acts.safetensors \
    --acts $F/cli_acts.safetensors
# cross-modal transfer: B is a rotated, rescaled copy of A's signal with shuffled rows paired
# by id files (sklearn's fixed-split accuracies in transfer_rot: direct ~0.34, procrustes 1.0)
TA="--a $F/cli_transfer_a.safetensors --b $F/cli_transfer_b.safetensors --hook $H"
"$CLI" probe transfer $TA --labels $F/cli_transfer_labels_a.txt --ids-a $F/cli_transfer_ids_a.txt \
    --ids-b $F/cli_transfer_ids_b.txt --Cs 0.1,1,10 --cv 3 --boot 200 --json "$T/t.json" >"$T/t.txt" 2>"$T/err" \
    || bad "transfer: $(cat "$T/err")"
acc() { awk -v c="$1" 'index($0, c " ") == 1 { $0 = substr($0, length(c) + 1); print $1 + 0 }' "$T/t.txt"; }
awk -v a="$(acc 'A->B procrustes')" -v d="$(acc 'A->B direct')" -v i="$(acc 'B->B')" \
    'BEGIN { exit !(a > 0.95 && d < 0.5 && i > 0.95) }' && ok "transfer matrix" || bad "transfer matrix: $(cat "$T/t.txt")"
grep -q 'A->B: present but not aligned' "$T/t.txt" && ok "transfer diagnosis" || bad "transfer diagnosis"
grep -q '"map_r2_heldout"' "$T/t.json" && grep -q '"paired_items": 300' "$T/t.json" && ok "transfer json" || bad "transfer json"
"$CLI" probe transfer $TA --labels $F/cli_transfer_labels_a.txt --ids-a $F/cli_transfer_ids_a.txt \
    --ids-b $F/cli_transfer_ids_b.txt --model mlp --hidden 32 --seeds 2 --boot 50 --json "$T/tm.json" >/dev/null 2>"$T/err" \
    && grep -q '"kind": "mlp"' "$T/tm.json" && ok "transfer with mlp probes" || bad "transfer mlp: $(cat "$T/err")"
expect_fail "transfer unpaired rows" "pair them with --ids-a" "$CLI" probe transfer $TA \
    --labels $F/cli_transfer_labels_a.txt
expect_fail "transfer duplicate id" "occurs twice" "$CLI" probe transfer $TA --labels $F/cli_transfer_labels_a.txt \
    --ids-a $F/cli_transfer_ids_a.txt --ids-b $F/cli_transfer_ids_b_dup.txt
expect_fail "transfer label count" "has 150 labels" "$CLI" probe transfer --a $F/cli_transfer_a.safetensors \
    --b $F/cli_transfer_a.safetensors --hook $H --labels $F/cli_labels.txt
expect_fail "transfer needs labels" "required" "$CLI" probe transfer $TA

# MLP probe through the CLI: train/predict round trip, eval JSON, bad model name
"$CLI" probe train --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.txt --model mlp --hidden 32 \
    --epochs 50 --out "$T/mlp.safetensors" 2>"$T/err" || bad "mlp train: $(cat "$T/err")"
grep -q 'reprshift-probe-mlp-v1' "$T/mlp.json" && ok "mlp card" || bad "mlp card"
"$CLI" probe predict --probe "$T/mlp.safetensors" --acts $F/cli_acts.safetensors --labels $F/cli_labels.txt \
    --out "$T/mpred.txt" 2>"$T/err" && [ "$(wc -l <"$T/mpred.txt")" -eq 150 ] && ok "mlp predict" || bad "mlp predict: $(cat "$T/err")"
"$CLI" probe eval --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.txt --model mlp --seeds 2 \
    --boot 50 --permutations 5 --min-test-groups 30 --json "$T/me.json" 2>"$T/err" && grep -q '"kind": "mlp"' "$T/me.json" && ok "mlp eval" || bad "mlp eval: $(cat "$T/err")"
expect_fail "bad model" "bad value for --model" "$CLI" probe train --acts $F/cli_acts.safetensors --hook $H \
    --labels $F/cli_labels.txt --model svm --out "$T/x.safetensors"

[ ! -e "$T/x.safetensors" ] && ok "no output after failures" || bad "partial output left behind"
expect_fail "bad option" "unknown option" "$CLI" probe train --bogus
echo "$fails failure(s)"
[ $fails -eq 0 ]
