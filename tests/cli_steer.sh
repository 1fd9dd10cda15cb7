#!/usr/bin/env bash
# reprshift run, steer stage (docs/pipeline.md "Stage 4b: steer"): on the bundled tiny models
# and COCO sample, steer.json / steer.csv have every field; alpha = 0 gives a change of exactly
# 0; the random directions and the probe directions have unit norm (so both add alpha*s);
# the fitted probes are saved where steer.json says; a rerun skips the stage; the report has the
# section; bad steer config (alpha not finite, unknown key, unknown target name, a word that
# tokenizes to nothing, a hook that is not captured) is one clear error. The steering passes
# themselves are matched to transformers in test_steer.
set -u
. "$(dirname "$0")/shared.sh"
cli_init
command -v jq >/dev/null || { echo "RS-SKIP: cli_steer: needs jq (to read the JSON output)"; exit 77; }

M=$PWD/examples/quickstart/models
C=$PWD/examples/data/coco-sample
config() { # $1 = file, $2 = the steer section, $3 = the split (optional)
  local split='{"train": 0.6, "val": 0.1, "test": 0.3}'
  [ $# -ge 3 ] && split=$3
  cat >"$1" <<JSON
{"output_dir": "unused",
 "models": {"llm": "$M/gemma2-tiny", "vlm": "$M/paligemma-tiny"},
 "layers": [1, 2],
 "conditions": ["llm", "vlm_text"],
 "dataset": {"instances": ["$C/annotations/instances_train2017.json", "$C/annotations/instances_val2017.json"],
             "captions": ["$C/annotations/captions_train2017.json", "$C/annotations/captions_val2017.json"],
             "images": ["$C/train2017", "$C/val2017"], "groups": {"animals": ["animal"], "vehicles": ["vehicle"]},
             "n_per_group": 8, "split": $split},
 "edits": [{"name": "contrast", "values": [0.5]}],
 "probes": {"which": ["concept", "contrast"], "seeds": 2, "folds": 2, "bootstrap": 20, "min_test_groups": 1,
            "permutations": 0},
 "steer": $2}
JSON
}
config "$T/s.json" '{"hooks": ["blocks.2.hook_resid_post"], "alphas": [-3, 0, 1.5], "n_items": 4, "random_directions": 3,
                      "targets": {"animals": ["dog", "cat"]}}'
expect 0 "report.html" -- "$CLI" run "$T/s.json" --out "$T/r" --threads 1 --quiet
J=$T/r/results/steer.json
[ -s "$J" ] && [ -s "$T/r/results/steer.csv" ] || fail "no steer.json / steer.csv"
[ "$(jq '.n_items' "$J")" = 4 ] || fail "n_items $(jq '.n_items' "$J")"
[ "$(jq -c '.alphas' "$J")" = "[-3,0,1.5]" ] || fail "alphas"
[ "$(jq '.hooks | length' "$J")" = 1 ] || fail "hooks"
[ "$(jq -r '.hooks[0].hook' "$J")" = blocks.2.hook_resid_post ] || fail "hook name"
# directions: the two concept classes and the one contrast edit, toward "edited"
[ "$(jq -c '[.hooks[0].directions[] | [.kind, .name]]' "$J")" = \
  '[["concept","animals"],["concept","vehicles"],["attribute","contrast 0.5"]]' ] || fail "directions $(jq -c '[.hooks[0].directions[].name]' "$J")"
# targets: the config's words for animals (two tokens), the name itself otherwise
[ "$(jq -c '[.hooks[0].directions[0].targets[].word]' "$J")" = '[" dog"," cat"]' ] || fail "animals targets"
[ "$(jq -c '[.hooks[0].directions[1].targets[].word]' "$J")" = '[" vehicles"]' ] || fail "vehicles targets"
[ "$(jq -c '[.hooks[0].directions[2].targets[].word]' "$J")" = '[" contrast"]' ] || fail "contrast targets"
# every point has both measures and the three series with value, ci_lo, ci_hi, n
[ "$(jq '[.hooks[0].directions[].points[] | .target_logprob, .caption_ce | .probe, .random, .probe_minus_random
          | select(has("value") and has("ci_lo") and has("ci_hi") and (.n == 4))] | length' "$J")" = 54 ] || fail "point fields"
[ "$(jq '[.hooks[0].directions[].points[].target_logprob.random | select(has("sd_over_directions"))] | length' "$J")" = 9 ] \
  || fail "random spread"
# alpha = 0: exactly no change, for the probe, the control and their difference, CIs included
[ "$(jq '[.hooks[0].directions[].points[] | select(.alpha == 0) | .target_logprob, .caption_ce
          | .probe, .random, .probe_minus_random | .value, .ci_lo, .ci_hi | select(. != 0)] | length' "$J")" = 0 ] \
  || fail "alpha 0 is not a zero change"
# alpha != 0 moves the targets (probe and random)
[ "$(jq '[.hooks[0].directions[].points[] | select(.alpha != 0) | .target_logprob.probe.value, .target_logprob.random.value
          | select(. == 0)] | length' "$J")" = 0 ] || fail "a nonzero alpha left the targets unchanged"
# the stated norm: unit directions (probe and the K random ones), s > 0 for every item
[ "$(jq '[.hooks[0].random_direction_norms[] | select(. > 1 - 1e-6 and . < 1 + 1e-6)] | length' "$J")" = 3 ] || fail "random norms"
[ "$(jq '[.hooks[0].directions[].direction_norm | select(. > 1 - 1e-6 and . < 1 + 1e-6)] | length' "$J")" = 3 ] || fail "probe norms"
[ "$(jq '[.hooks[0].scale[] | select(. > 0)] | length' "$J")" = 4 ] || fail "scale"
# the probes used are saved (reprshift probe files, raw units via coef_raw)
[ "$(jq '[.hooks[0].directions[].probe_file | select(endswith(".safetensors"))] | length' "$J")" = 3 ] || fail "probe_file"
for f in $(jq -r '.hooks[0].directions[].probe_file' "$J"); do [ -f "$T/r/results/$f" ] && [ -s "$T/r/results/$f" ] || fail "missing $f"; done
# ... and `reprshift intervene` steers with them (the same file, a class row by name)
IMG=$(ls "$C"/val2017/*.jpg | head -1)
PF=$T/r/results/$(jq -r '.hooks[0].directions[0].probe_file' "$J")
expect 0 "kl" -- "$CLI" intervene --model "$M/paligemma-tiny" --image "$IMG" \
  --spec "add@blocks.2.hook_resid_post:dir=$PF:animals:alpha=2" --json
PA=$T/r/results/$(jq -r '.hooks[0].directions[2].probe_file' "$J")
expect 0 "kl" -- "$CLI" intervene --model "$M/paligemma-tiny" --image "$IMG" \
  --spec "add@blocks.2.hook_resid_post:dir=$PA:edited:alpha=2" --json
# the CSV: header + 3 directions x 3 alphas x 2 measures x 3 series
head -1 "$T/r/results/steer.csv" | grep -qx 'hook,layer,direction_kind,direction,alpha,measure,series,value,ci_lo,ci_hi,n' \
  || fail "csv header"
[ "$(wc -l <"$T/r/results/steer.csv")" = 55 ] || fail "csv rows $(wc -l <"$T/r/results/steer.csv")"
grep -qF '<section id="steer">' "$T/r/report.html" || fail "no steering section in the report"
# again: skipped, same bytes
cp "$J" "$T/first.json"
expect 0 "report.html" -- "$CLI" run "$T/s.json" --out "$T/r" --threads 1
grep -qF "[steer] complete (skipped)" "$T/err" || { cat "$T/err"; fail "steer not skipped on a rerun"; }
cmp -s "$J" "$T/first.json" || fail "steer.json changed on a rerun"

# bad config: one line, exit 1
config "$T/b1.json" '{"alphas": [1e999]}'
expect 1 "'steer.alphas[0]' must be a number" -- "$CLI" run "$T/b1.json" --out "$T/r"
one_line_err
config "$T/b2.json" '{"alpha": [1]}'
expect 1 "unknown key 'steer.alpha' (did you mean 'steer.alphas'?)" -- "$CLI" run "$T/b2.json" --out "$T/r"
one_line_err
config "$T/b3.json" '{"hooks": ["blocks.3.hook_resid_post"]}'
expect 1 "'steer.hooks[0]': \"blocks.3.hook_resid_post\" is not a captured hook" -- "$CLI" run "$T/b3.json" --out "$T/r"
one_line_err
config "$T/b4.json" '{"hooks": ["blocks.2.hook_resid_post"], "targets": {"cats": ["cat"]}}'
expect 1 "'steer.targets.cats': no class or edit family of this run is called that (valid: animals, vehicles, contrast)" \
  -- "$CLI" run "$T/b4.json" --out "$T/r" --threads 1 --quiet
one_line_err
config "$T/b5.json" '{"hooks": ["blocks.2.hook_resid_post"], "targets": {"animals": [""]}}'
expect 1 "'steer.targets.animals': \"\" tokenizes to no token" -- "$CLI" run "$T/b5.json" --out "$T/r" --threads 1 --quiet
one_line_err
[ -e "$T/r/results/steer.json" ] && fail "a failed steer stage left steer.json"
# no test-split image: the stage is skipped with a note, nothing written, the run succeeds
config "$T/nt.json" '{"hooks": ["blocks.2.hook_resid_post"]}' '{"train": 0.8, "val": 0.2, "test": 0}'
expect 0 "report.html" -- "$CLI" run "$T/nt.json" --out "$T/nt" --threads 1 --quiet
grep -qF "[steer] skipped: the manifest has no test-split image to steer" "$T/nt/run.log" || fail "no skip line"
[ -e "$T/nt/results/steer.json" ] && fail "steer.json without test images"
grep -qF '<section id="steer">' "$T/nt/report.html" && fail "a steering section without steer.json"
# the report: a malformed steer.json is an error naming the file and the field, no output
mkdir -p "$T/res"
jq 'del(.n_items)' "$T/first.json" >"$T/res/steer.json"
expect 1 "steer.json: (top level): \"n_items\"" -- "$CLI" report --results "$T/res" --out "$T/res/r.html"
one_line_err
[ -e "$T/res/r.html" ] && fail "a malformed steer.json wrote a report"
jq '.hooks[0].directions[0].points[1].target_logprob.probe = "x"' "$T/first.json" >"$T/res/steer.json"
expect 1 "hooks[0].directions[0].points[1].target_logprob.probe: expected a number" -- "$CLI" report --results "$T/res" --out "$T/res/r.html"
echo "cli_steer: ok"
