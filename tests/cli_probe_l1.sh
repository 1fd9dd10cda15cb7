#!/usr/bin/env bash
# reprshift probe train|eval --penalty l1: the lasso fit's objective equals scikit-learn's
# (tools/reference/gen_l1_goldens.py -> tests/fixtures/probe/l1_cli_expected.txt: saga at
# tol 1e-14 on the same standardised rows), the card and the weights file say l1 (and a
# loaded l1 probe predicts as trained), eval runs the protocol with l1, bad values and
# transfer --penalty l1 are refused. L2 cards carry no penalty key (as before).
set -u
. "$(dirname "$0")/shared.sh"
cli_init
command -v jq >/dev/null || fail "jq is needed (scripts/install-deps.sh --tests)"
F=tests/fixtures/probe H=blocks.1.hook_resid_post

expect 0 "C=0.05" -- "$CLI" probe train --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.txt --C 0.05 \
  --penalty l1 --tol 1e-10 --out "$T/l1.safetensors"
read -r want _ <$F/l1_cli_expected.txt
got=$(jq '.objective' "$T/l1.json")
jq -n --argjson a "$got" --argjson b "$want" '(($a - $b) / $b | fabs) < 1e-9' | grep -q true ||
  fail "l1 objective $got, sklearn $want"
jq -e '.penalty | startswith("l1")' "$T/l1.json" >/dev/null || fail "the card does not say l1"
jq -e '.metrics.train_accuracy == 0.94' "$T/l1.json" >/dev/null || fail "train accuracy $(jq .metrics.train_accuracy "$T/l1.json")"
expect 0 "accuracy" -- "$CLI" probe predict --probe "$T/l1.safetensors" --acts $F/cli_acts.safetensors --labels $F/cli_labels.txt \
  --out "$T/pred.txt"
grep -q "accuracy 0.94" "$T/err" "$T/out" || { cat "$T/err" "$T/out"; fail "predict after load: not the training accuracy"; }
# l2 (default): no penalty key in the card
expect 0 "C=1" -- "$CLI" probe train --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.txt --C 1 \
  --out "$T/l2.safetensors"
jq -e '.penalty == null' "$T/l2.json" >/dev/null || fail "l2 card has a penalty key"
# the protocol with l1
"$CLI" probe eval --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.txt --seeds 2 \
  --Cs 0.1,1 --cv 3 --boot 50 --permutations 5 --min-test-groups 5 --penalty l1 --json "$T/e.json" 2>"$T/err" || fail "eval --penalty l1: $(cat "$T/err")"
jq -e '.accuracy.mean > 0.8 and .model.penalty == "l1"' "$T/e.json" >/dev/null || fail "l1 eval accuracy: $(jq -c .accuracy "$T/e.json")"
# refusals
expect 2 "bad value for --penalty" -- "$CLI" probe train --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.txt \
  --penalty l3 --out "$T/x.safetensors"
expect 2 "--penalty l1 is not supported" -- "$CLI" probe transfer --a $F/cli_acts.safetensors --b $F/cli_acts.safetensors \
  --hook $H --labels $F/cli_labels.txt --penalty l1
exit 0
