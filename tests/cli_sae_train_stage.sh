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
