#!/usr/bin/env bash
# reprshift run, sae_train stage (docs/sae-training.md): on the bundled tiny models and COCO
# sample, a JumpReLU SAE per hook trained on PaliGemma's caption tokens (vlm_caption), saved
# as a sae-lens folder that `sae match` reads and that reproduces the stage's matching numbers;
# sae_train.json has n, CIs and both nulls; a hook without a configured SAE is trained and
# its match skipped with a reason; a rerun skips the stage; bad config is one clear error.
set -u
. "$(dirname "$0")/shared.sh"
command -v jq >/dev/null || { echo "RS-SKIP: cli_sae_train_stage: needs jq (to read the JSON output)"; exit 77; }
cli_init

M=$PWD/examples/quickstart/models
config() { stage_config "$1" sae_train "$2" "${3:-[1, 2]}" 1; } # $1 = file, $2 = the sae_train section, $3 = the layers
config "$T/x.json" '{"steps": 200, "batch": 32, "bootstrap": 100, "null_reps": 2}'
expect 0 "report.html" -- "$CLI" run "$T/x.json" --out "$T/r" --threads 1 --quiet
J=$T/r/results/sae_train.json
[ -s "$J" ] || fail "no sae_train.json"
[ "$(jq -r '.store + " " + .arch' "$J")" = "vlm_caption jumprelu" ] || fail "store / arch"
[ "$(jq '.hooks | length' "$J")" = 2 ] || fail "one entry per captured hook"
for h in 0 1; do
  H=".hooks[$h]"
  hook=$(jq -r "$H.hook" "$J")
  D=$T/r/$(jq -r "$H.sae_dir" "$J")
  [ -s "$D/cfg.json" ] && [ -s "$D/sae_weights.safetensors" ] && [ -s "$D/pairs.csv" ] || fail "$hook: SAE folder / pairs"
  grep -q '"architecture":	"jumprelu"' "$D/cfg.json" || fail "$hook: saved architecture"
  jq -e "$H | .n_rows > 0 and .d_in == 64 and .d_sae == 256 and .train.final_fvu > 0 and .train.final_fvu < 1
         and .train.final_l0 > 0" "$J" >/dev/null || fail "$hook: train fields $(jq -c "$H" "$J")"
  jq -e "$H.match | .n_pairs == 256 and .frac_matched.n == 256 and .frac_matched.ci_lo <= .frac_matched.value
         and .frac_matched.value <= .frac_matched.ci_hi and .mean_cos.ci_lo <= .mean_cos.value
         and .mean_cos.value <= .mean_cos.ci_hi and .mean_cos.n == 256 and .null_random.replicates == 2 and .null_permuted.replicates == 2
         and (.beats_null | type == \"boolean\")" "$J" >/dev/null || fail "$hook: match fields $(jq -c "$H.match" "$J")"
  # a null that reused the trainer's random stream would reproduce its initial rows (frac ≫ 0)
  jq -e "$H.match.null_random.frac_matched_max < 0.05" "$J" >/dev/null || fail "$hook: random null too high"
  [ "$(wc -l < "$D/pairs.csv")" -eq 257 ] || fail "$hook: pairs rows"
  # sae match on the saved folder reproduces the stage's numbers
  expect 0 "sae match" -- "$CLI" sae match --a "$D" --b "$M/sae/$hook" --bootstrap 100 --null-reps 2 --out "$T/m.json"
  for k in frac_matched mean_cos null_random null_permuted beats_null; do
    [ "$(jq -c ".$k" "$T/m.json")" = "$(jq -c "$H.match.$k" "$J")" ] || fail "$hook: sae match .$k differs from the stage"
  done
done
# the report's section: one row per hook with the fraction, its CI and n pairs
grep -q '<section id="sae_train">' "$T/r/report.html" || fail "no sae_train section in the report"
grep -q "<tr><td><code>$(jq -r '.hooks[0].hook' "$J")</code></td><td>256</td><td>$(jq '.hooks[0].n_rows' "$J")</td>" "$T/r/report.html" ||
  fail "report row of hooks[0]"
# held out (sae_train.held_out): trained on the captions of the images outside the test split, the fit
# also on the test images' captions: n_images = the test-split images with a caption in the manifest
# (counted here from dataset/manifest.csv: image rows of split test whose image_id has a text row;
# fields counted from the end because captions may hold commas), n_rows + the training rows = all
# rows, CIs bracket the values, FVU >= 0; held_out false leaves sae_train.json byte-identical
config "$T/h.json" '{"steps": 200, "batch": 32, "bootstrap": 100, "null_reps": 2, "held_out": true}'
expect 0 "report.html" -- "$CLI" run "$T/h.json" --out "$T/h" --threads 1 --quiet
JH=$T/h/results/sae_train.json
NTEST=$(awk -F, '$1 == "image" && $(NF-1) == "test" { img[$(NF-3)] = 1 } $1 == "text" { cap[$(NF-3)] = 1 }
                 END { n = 0; for (k in img) if (k in cap) n++; print n }' "$T/h/dataset/manifest.csv")
[ "$NTEST" -ge 2 ] || fail "the test setup has $NTEST test images"
for h in 0 1; do
  H=".hooks[$h]"
  jq -e --argjson nt "$NTEST" --argjson all "$(jq "$H.n_rows" "$J")" "$H | .eval_held_out as \$e |
         \$e.n_images == \$nt and \$e.n_rows > 0 and .n_rows + \$e.n_rows == \$all
         and ([\$e.fvu, \$e.l0, \$e.dead_fraction] | map(.ci_lo <= .value and .value <= .ci_hi) | all)
         and \$e.fvu.value >= 0 and \$e.fvu.n == \$e.n_rows and \$e.l0.n == \$e.n_rows and \$e.l0.value > 0
         and \$e.dead_fraction.n == 256 and \$e.dead_fraction.value >= 0 and \$e.dead_fraction.value <= 1
         and \$e.dead_latents == (\$e.dead_fraction.value * 256 | round)
         and (\$e.ci | test(\"bootstrap over the held-out images\")) and (.train.note | test(\"outside the test split\"))" "$JH" >/dev/null ||
    fail "hooks[$h].eval_held_out: $(jq -c "$H | {n_rows, eval_held_out}" "$JH") (test images: $NTEST)"
done
grep -q "held-out FVU \[95% CI\] (n images)" "$T/h/report.html" || fail "no held-out column in the report"
grep -q "<td>[0-9.e-]* \[[0-9.e-]*, [0-9.e-]*\] ($NTEST)</td>" "$T/h/report.html" || fail "held-out report cell"
jq -e '.hooks[0] | has("eval_held_out") | not' "$J" >/dev/null || fail "eval_held_out without held_out"
config "$T/f.json" '{"steps": 200, "batch": 32, "bootstrap": 100, "null_reps": 2, "held_out": false}'
expect 0 "report.html" -- "$CLI" run "$T/f.json" --out "$T/f" --threads 1 --quiet
cmp -s "$J" "$T/f/results/sae_train.json" || fail "held_out false changed sae_train.json"
# no test image: one clear error naming the manifest, nothing written
config "$T/e.json" '{"steps": 20, "batch": 16, "d_sae": 32, "held_out": true}' '[1]'
sed -i 's/"split": {"train": 0.6, "val": 0.1, "test": 0.3}/"split": {"train": 0.85, "val": 0.15, "test": 0}/' "$T/e.json"
grep -q '"test": 0}' "$T/e.json" || fail "test setup: split not replaced"
expect 1 "manifest.csv: sae_train.held_out needs at least 2 images with captions in the test split" -- \
  "$CLI" run "$T/e.json" --out "$T/e" --threads 1 --quiet
one_line_err
[ ! -e "$T/e/results/sae_train.json" ] && [ ! -e "$T/e/results/sae_train" ] || fail "a refused held-out run wrote results"
# rerun: skipped
"$CLI" run "$T/x.json" --out "$T/r" --threads 1 --quiet >/dev/null 2>&1 || fail "rerun"
grep -q "\[sae_train\] complete (skipped)" "$T/r/run.log" || fail "rerun did not skip the stage"
# no saes section: the SAE is trained (TopK here), its match skipped with the reason
config "$T/y.json" '{"arch": "topk", "k": 4, "d_sae": 32, "steps": 50, "batch": 16, "hooks": ["blocks.3.hook_resid_post"]}' '[3]'
sed -i '/^ "saes":/d' "$T/y.json"
expect 0 "report.html" -- "$CLI" run "$T/y.json" --out "$T/y" --threads 1 --quiet
jq -e '.arch == "topk" and .hooks[0].d_sae == 32 and .hooks[0].match == null
       and (.hooks[0].match_skipped | test("no saes section"))' "$T/y/results/sae_train.json" >/dev/null ||
  fail "no-SAE hook: $(jq -c '.hooks[0]' "$T/y/results/sae_train.json")"
# bad config: one clear error
config "$T/b1.json" '{"hooks": ["blocks.3.hook_resid_post"]}'
expect 1 "'sae_train.hooks[0]'" -- "$CLI" run "$T/b1.json" --out "$T/b1" --quiet
config "$T/b2.json" '{"arch": "gated"}'
expect 1 "sae_train.arch" -- "$CLI" run "$T/b2.json" --out "$T/b2" --quiet
config "$T/b3.json" '{"match_threshold": 2}'
expect 1 "sae_train.match_threshold" -- "$CLI" run "$T/b3.json" --out "$T/b3" --quiet
[ ! -e "$T/b3" ] || fail "a refused config left a run folder"
echo "cli_sae_train_stage: ok"
