#!/usr/bin/env bash
# reprshift run with probes.alignment (docs/probes.md, "Contrastive alignment"): on the bundled
# tiny models and COCO sample, alignment.json has, per decoder hook, recall@1/5/10 in both
# directions for InfoNCE, Procrustes and ridge, each with n = the held-out pairs, a bootstrap CI
# that contains it, the shuffled-pair null and the chance k/n; the same config twice gives the
# same file; with splits 3 / null_draws 4 the split mean, its nested CI, the null distribution and p, q; text "llm" pairs Gemma-2 captions; the report has the section; without the key
# there is no file (a rerun removes a stale one) and no section; a bad key is one clear error. The learner itself is checked against torch in test_align.
set -u
. "$(dirname "$0")/shared.sh"
command -v jq >/dev/null || { echo "RS-SKIP: cli_alignment: needs jq (to read the JSON output)"; exit 77; }
cli_init

M=$PWD/examples/quickstart/models
C=$PWD/examples/data/coco-sample
config() { # $1 = file, $2 = the alignment section
  cat >"$1" <<JSON
{"output_dir": "unused",
 "models": {"llm": "$M/gemma2-tiny", "vlm": "$M/paligemma-tiny"},
 "layers": [1, 2],
 "conditions": ["llm", "vlm_text"],
 "permutations": 0,
 "downstream": {"enabled": false},
 "dataset": {"instances": ["$C/annotations/instances_train2017.json", "$C/annotations/instances_val2017.json"],
             "captions": ["$C/annotations/captions_train2017.json", "$C/annotations/captions_val2017.json"],
             "images": ["$C/train2017", "$C/val2017"],
             "groups": {"animals": ["animal"], "vehicles": ["vehicle"], "food": ["food"]}, "n_per_group": 8},
 "probes": {"which": ["concept"], "seeds": 1, "folds": 2, "bootstrap": 100, "min_test_groups": 1, "permutations": 0,
            "test_frac": 0.3, "alignment": $2}}
JSON
}
AL='{"infonce": {"dim": 16, "steps": 100, "batch": 16, "lr": 0.01}}'
config "$T/a.json" "$AL"
expect 0 "report.html" -- "$CLI" run "$T/a.json" --out "$T/r" --threads 1 --quiet
J=$T/r/results/alignment.json
[ -s "$J" ] || fail "no alignment.json"
[ "$(jq '.hooks | length' "$J")" = 2 ] || fail "hooks"
jq -e '.ci | test("bootstrap over the held-out pairs")' "$J" >/dev/null || fail "ci"
jq -e '.null | test("chance = k / n_test") and test("images permuted")' "$J" >/dev/null || fail "null"
NT=$(jq '.hooks[0].n_test' "$J")
[ "$NT" -ge 4 ] && [ "$(jq '.hooks[0].n_train + .hooks[0].n_test' "$J")" = 24 ] || fail "n_train + n_test != 24 pairs"
[ "$(jq -r '.hooks[0].text' "$J")" = "VLM captions" ] || fail "text side"
# chance = min(k, n) / n
jq -e --argjson n "$NT" '.hooks[0].chance | (.["1"] - 1/$n | fabs) < 1e-12 and (.["5"] - ([5,$n]|min)/$n | fabs) < 1e-12
      and .["10"] == ([10,$n]|min)/$n' "$J" >/dev/null || fail "chance"
# every recall: a share in [0, 1] with its n and a CI that contains it, real and shuffled, all methods and directions
jq -e --argjson n "$NT" '[.hooks[].methods[] | select(. != null) | .text_to_image, .image_to_text
      | .recall[], .shuffled_recall[] | .n == $n and .ci_lo <= .value and .value <= .ci_hi and .value >= 0
      and .value <= 1 and ((.value * $n) | . == floor)] | length == 2 * 3 * 2 * 2 * 3' "$J" >/dev/null ||
  fail "recall entries: $(jq -c '.hooks[0].methods.infonce' "$J")"
# recall@k grows with k
jq -e '[.hooks[].methods[] | .text_to_image.recall | .["1"].value <= .["5"].value and .["5"].value <= .["10"].value] | all' \
  "$J" >/dev/null || fail "recall not monotone in k"
jq -e '.hooks[0].infonce_fit | .loss_last_step < .loss_first_step and .temperature > 0' "$J" >/dev/null || fail "infonce_fit"
# defaults splits 1, null_draws 1: one split, one null draw (p is 1/2 or 1), q >= p
jq -e '[.hooks[] | .splits == 1 and .null_draws == 1 and (.n_test_per_split | length == 1)] | all' "$J" >/dev/null ||
  fail "splits/null_draws defaults"
jq -e '[.hooks[].methods[] | select(. != null) | .text_to_image, .image_to_text
      | (.null.p == 0.5 or .null.p == 1) and .null.q >= .null.p and .null.draws == 1
      and .null.mean["1"] == .shuffled_recall["1"].value and .recall_per_split["1"][0] == .recall["1"].value] | all' \
  "$J" >/dev/null || fail "null with one draw: $(jq -c '.hooks[0].methods.infonce.text_to_image.null' "$J")"
# splits 3, null_draws 4: split-mean recall with a nested CI around it, the null distribution, p in {1..5}/5
config "$T/s.json" '{"infonce": {"dim": 8, "steps": 40, "batch": 16, "lr": 0.01}, "splits": 3, "null_draws": 4}'
expect 0 "report.html" -- "$CLI" run "$T/s.json" --out "$T/s" --threads 1 --quiet
JS=$T/s/results/alignment.json
[ "$(jq "[.hooks[].methods[] | select(. != null)] | length" "$JS")" = 6 ] || fail "splits 3: hooks/methods"
jq -e '[.hooks[] | .splits == 3 and .null_draws == 4 and (.n_test_per_split | length == 3)
        and (.n_train_per_split | add) + (.n_test_per_split | add) == 72] | all' "$JS" >/dev/null || fail "splits 3"
jq -e '.ci | test("nested")' "$JS" >/dev/null || fail "ci with splits"
jq -e '[.hooks[].methods[] | select(. != null) | .text_to_image, .image_to_text
      | (.recall_per_split["1"] | length == 3) and ((.recall_per_split["1"] | add / 3) - .recall["1"].value | fabs) < 1e-12
      and .recall["1"].ci_lo <= .recall["1"].value and .recall["1"].value <= .recall["1"].ci_hi
      and .null.draws == 4 and .null.mean["1"] <= .null.p95["1"] + 1e-12 and .null.q >= .null.p - 1e-15 and .null.q <= 1] | all' \
  "$JS" >/dev/null || fail "split-mean entries: $(jq -c '.hooks[0].methods.ridge.text_to_image' "$JS")"
jq -e '[.hooks[].methods[] | select(. != null) | .text_to_image, .image_to_text | .null.p as $p
      | [0.2, 0.4, 0.6, 0.8, 1] | any(. - $p | fabs < 1e-12)] | all' "$JS" >/dev/null || fail "p not in {1..5}/5"
grep -q 'null 95th pct' "$T/s/report.html" || fail "report has no null table"
grep -q '<section id="alignment">' "$T/r/report.html" || fail "report has no alignment section"
grep -q 'InfoNCE, shuffled pairs' "$T/r/report.html" || fail "report has no null row"
# deterministic: the same config in a fresh directory gives the same file
expect 0 "report.html" -- "$CLI" run "$T/a.json" --out "$T/r2" --threads 1 --quiet
cmp -s "$J" "$T/r2/results/alignment.json" || fail "alignment.json differs between two identical runs"
# Gemma-2 captions on the text side
config "$T/l.json" '{"text": "llm", "infonce": {"dim": 8, "steps": 20}}'
expect 0 "report.html" -- "$CLI" run "$T/l.json" --out "$T/l" --threads 1 --quiet
[ "$(jq -r '.hooks[0].text' "$T/l/results/alignment.json")" = "LLM captions" ] || fail "text llm"
# without probes.alignment: no file, no section (also when rerun in a directory that had them)
config "$T/n.json" 'null'
sed -i 's/, "alignment": null//' "$T/n.json"
grep -q alignment "$T/n.json" && fail "test config still has alignment"
for out in "$T/n" "$T/r"; do
  expect 0 "report.html" -- "$CLI" run "$T/n.json" --out "$out" --threads 1 --quiet
  [ ! -e "$out/results/alignment.json" ] || fail "alignment.json in $out without probes.alignment"
  ! grep -q 'id="alignment"' "$out/report.html" || fail "alignment section without alignment.json ($out)"
done
# bad config: one clear error, nothing run
config "$T/b1.json" '{"infonce": {"dimm": 8}}'
expect 1 "did you mean 'probes.alignment.infonce.dim'" -- "$CLI" run "$T/b1.json" --out "$T/b1" --quiet
one_line_err
config "$T/b2.json" '{"text": "siglip"}'
expect 1 "probes.alignment.text" -- "$CLI" run "$T/b2.json" --out "$T/b2" --quiet
config "$T/b3.json" '{"infonce": {"batch": 1}}'
expect 1 "probes.alignment.infonce.batch" -- "$CLI" run "$T/b3.json" --out "$T/b3" --quiet
config "$T/b4.json" '{"splits": 0}'
expect 1 "probes.alignment.splits" -- "$CLI" run "$T/b4.json" --out "$T/b4" --quiet
config "$T/b5.json" '{"null_draws": 0}'
expect 1 "probes.alignment.null_draws" -- "$CLI" run "$T/b5.json" --out "$T/b5" --quiet
[ ! -e "$T/b1/results" ] || fail "partial output after a config error"
echo OK
