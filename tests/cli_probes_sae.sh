#!/usr/bin/env bash
# SAE-feature probes in `reprshift run` (probes.features ["raw", "sae"], docs/probes.md): on the
# small bundled experiment every hook with an SAE gets the two caption concept probes on SAE
# features, with n, a CI over images and the permutation null, the raw probe of the same rows
# beside it (equal to the tasks' entry) and the paired SAE-minus-raw difference (equal to the
# difference of the two accuracies); the CSVs; probes.penalty "l1" with probes.l1_C refits every
# probe with the lasso (sparser SAE weights); config errors are one line.
set -u
. "$(dirname "$0")/shared.sh"
cli_init
command -v jq >/dev/null || fail "jq is needed (scripts/install-deps.sh --tests)"

small_config "$T/base.json"
jq '.probes.features = ["raw", "sae"]' "$T/base.json" >"$T/sae.json"
expect 0 "report.html" -- "$CLI" run "$T/sae.json" --out "$T/o" --threads 1 --quiet
P=$T/o/results/probes.json
[ "$(jq '.sae_features | length' "$P")" = 4 ] || fail "want 4 SAE-feature probes (2 layers x LLM/VLM captions): $(jq -c '.sae_features | length' "$P")"
[ "$(jq '.sae_n_tests' "$P")" = 4 ] || fail "sae_n_tests"
jq -e '.penalty == null' "$P" >/dev/null || fail "penalty key without probes.penalty l1"
# every entry: n, images, CI, null, q, the raw probe equal to the tasks' entry, the paired difference
jq -e '[.sae_features[] | .n > 0 and .n_images > 0 and .n_test_groups > 0 and .d_sae == 256
        and (.accuracy.ci_lo <= .accuracy.value) and (.accuracy.value <= .accuracy.ci_hi)
        and (.permuted_label_accuracy | type == "number") and (.permutation_p > 0) and (.permutation_q >= .permutation_p)
        and (.top_features | length) > 0 and (.neuronpedia_id == null)
        and ([.top_features[] | .neuronpedia_url == null] | all)] | all' "$P" >/dev/null ||
  fail "an SAE-feature entry lacks n / CI / null / top features: $(jq -c '.sae_features[0]' "$P")"
for k in 0 1 2 3; do
  m=$(jq -r ".sae_features[$k].model" "$P"); h=$(jq -r ".sae_features[$k].hook" "$P")
  raw=$(jq ".sae_features[$k].raw.accuracy.value" "$P")
  task=$(jq --arg m "$m" --arg h "$h" '.tasks[] | select(.task == "concept" and .model == $m) | .layers[] | select(.hook == $h) | .accuracy.value' "$P")
  [ "$raw" = "$task" ] || fail "raw accuracy $raw != the concept task's $task ($m, $h)"
  jq -e ".sae_features[$k] | ((.accuracy.value - .raw.accuracy.value) - .sae_minus_raw.difference.value | fabs) < 1e-12" "$P" >/dev/null ||
    fail "sae_minus_raw is not SAE minus raw accuracy ($m, $h)"
  # the top list is ranked by |coef|
  jq -e ".sae_features[$k].top_features | [.[].coef | fabs] | . == (sort | reverse)" "$P" >/dev/null || fail "top features not ranked"
done
[ "$(wc -l <"$T/o/results/probes_sae.csv")" = 5 ] || fail "probes_sae.csv: want a header and 4 rows"
head -1 "$T/o/results/probes_sae_features.csv" | grep -q '^model,layer,hook,rank,feature,class,coef' || fail "probes_sae_features.csv header"
grep -q "SAE features" "$T/o/report.html" || fail "no SAE-feature section in the report"

# lasso: the same run with probes.penalty l1 (only the probes stage and later are redone)
jq '.probes.penalty = "l1" | .probes.l1_C = [0.1, 1, 10]' "$T/sae.json" >"$T/l1.json"
expect 0 "report.html" -- "$CLI" run "$T/l1.json" --out "$T/o" --threads 1 --quiet
jq -e '.penalty | startswith("l1")' "$P" >/dev/null || fail "no penalty note"
jq -e '[.sae_features[] | .penalty == "l1" and .n_nonzero < .d_sae and (.C_final | IN(0.1, 1, 10))] | all' "$P" >/dev/null ||
  fail "l1 SAE probes: $(jq -c '[.sae_features[] | {penalty, n_nonzero, C_final}]' "$P")"

# config errors
jq '.probes.features = ["sae"]' "$T/base.json" >"$T/bad1.json"
expect 1 "must include \"raw\"" -- "$CLI" run "$T/bad1.json" --out "$T/b1"
one_line_err
jq 'del(.saes) | .probes.features = ["raw", "sae"]' "$T/base.json" >"$T/bad2.json"
expect 1 "needs an SAE per layer" -- "$CLI" run "$T/bad2.json" --out "$T/b2"
one_line_err
jq '.probes.penalty = "l3"' "$T/base.json" >"$T/bad3.json"
expect 1 "probes.penalty" -- "$CLI" run "$T/bad3.json" --out "$T/b3"
one_line_err
exit 0
