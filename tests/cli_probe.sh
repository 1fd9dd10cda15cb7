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
"$CLI" probe eval --acts $F/cli_acts.safetensors --hook $H --labels $F/cli_labels.txt --seeds 5 \
    --boot 200 --json "$T/e.json" 2>"$T/err" || bad "eval: $(cat "$T/err")"
grep -q '"selectivity"' "$T/e.json" && grep -q '"ci95"' "$T/e.json" && ok "eval json" || bad "eval json"

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
[ ! -e "$T/x.safetensors" ] && ok "no output after failures" || bad "partial output left behind"
expect_fail "bad option" "unknown option" "$CLI" probe train --bogus
echo "$fails failure(s)"
[ $fails -eq 0 ]
