#!/usr/bin/env bash
# reprshift run, crosscoder stage (docs/crosscoder.md): on the bundled tiny models and COCO
# sample, crosscoder.json has every field with its n and CI (class fractions with Wilson
# intervals that contain them, counts that add up to the alive latents, the histogram over
# the alive latents), the per-latent CSV matches it, the saved model has the documented
# layout; a rerun skips the stage; a killed run resumes from its checkpoint and gives the same
# model bit for bit; the report has the section; bad config is one clear error. The training
# itself is checked against torch in test_crosscoder.
set -u
. "$(dirname "$0")/shared.sh"
command -v jq >/dev/null || { echo "RS-SKIP: cli_crosscoder: needs jq (to read the JSON output)"; exit 77; }
cli_init

M=$PWD/examples/quickstart/models
config() { stage_config "$1" crosscoder "$2"; } # $1 = file, $2 = the crosscoder section
XC='{"hooks": ["blocks.2.hook_resid_post"], "n_latents": 128, "steps": 300, "batch": 32, "lr": 0.003,
     "resample_every": 100, "dead_after": 3200, "checkpoint_every": 50, "bootstrap": 50}'
config "$T/x.json" "$XC"
expect 0 "report.html" -- "$CLI" run "$T/x.json" --out "$T/r" --threads 1 --quiet
J=$T/r/results/crosscoder.json
[ -s "$J" ] && [ -s "$T/r/results/crosscoder_latents.csv" ] || fail "no crosscoder.json / crosscoder_latents.csv"
[ "$(jq '.hooks | length' "$J")" = 1 ] || fail "hooks"
H='.hooks[0]'
[ "$(jq -r "$H.hook" "$J")" = blocks.2.hook_resid_post ] || fail "hook name"
[ "$(jq "$H.n_latents" "$J")" = 128 ] || fail "n_latents"
[ "$(jq -r "$H.sparsity" "$J")" = l1 ] || fail "sparsity"
jq -e '.ci | test("bootstrap over images")' "$J" >/dev/null || fail "ci"
jq -e '.class_ci | test("Wilson")' "$J" >/dev/null || fail "class_ci"
jq -e "$H.eval | test(\"held out\")" "$J" >/dev/null || fail "eval is not held out"
# fit: both sides with fvu and explained variance {value, ci_lo, ci_hi, n}, ev = 1 - fvu, l0
for s in llm vlm; do
  jq -e "$H.fit.$s.fvu | (.value|type==\"number\") and .ci_lo <= .value and .value <= .ci_hi and .n > 0" "$J" >/dev/null ||
    fail "fit.$s.fvu $(jq -c "$H.fit.$s" "$J")"
  jq -e "$H.fit.$s | ((.fvu.value + .explained_variance.value - 1) | fabs) < 1e-12" "$J" >/dev/null || fail "ev != 1 - fvu"
done
jq -e "$H.fit.l0 | .value > 0 and .n == $(jq "$H.fit.n_rows" "$J")" "$J" >/dev/null || fail "l0"
# classes: counts add up to the alive latents; each fraction = count / alive inside its interval, n = alive
ALIVE=$(jq "$H.latents.alive" "$J")
[ "$(jq "[$H.classes[].count] | add" "$J")" = "$ALIVE" ] || fail "class counts do not add up to $ALIVE"
[ "$(jq "$H.latents.alive + $H.latents.dead" "$J")" = 128 ] || fail "alive + dead"
jq -e "[$H.classes[] | (.fraction.value - .count / $ALIVE | fabs) < 1e-12 and .fraction.ci_lo <= .fraction.value
        and .fraction.value <= .fraction.ci_hi and .fraction.n == $ALIVE] | all" "$J" >/dev/null || fail "class fractions"
[ "$(jq "[$H.rel_norm_hist.counts[]] | add" "$J")" = "$ALIVE" ] || fail "histogram total"
[ "$(jq "$H.rel_norm_hist.edges | length" "$J")" = 21 ] || fail "histogram edges"
# CSV: one line per latent, classes as in the JSON
CSV=$T/r/results/crosscoder_latents.csv
[ "$(head -1 "$CSV")" = "hook,latent,norm_llm,norm_vlm,rel_norm,fires_train,freq_train,class" ] || fail "CSV header"
[ "$(tail -n +2 "$CSV" | wc -l)" = 128 ] || fail "CSV rows"
[ "$(grep -c ',shared$' "$CSV")" = "$(jq "$H.classes.shared.count" "$J")" ] || fail "CSV shared count"
[ "$(grep -c ',dead$' "$CSV")" = "$(jq "$H.latents.dead" "$J")" ] || fail "CSV dead count"
# the model file: documented tensors and metadata
MF=$T/r/results/$(jq -r "$H.file" "$J")
[ -s "$MF" ] || fail "no model file $MF"
HDR=$(python3 - "$MF" <<'PY' 2>/dev/null || true
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
print(json.dumps({k: v["shape"] for k, v in h.items() if k != "__metadata__"}, sort_keys=True), h["__metadata__"]["format"],
      h["__metadata__"]["hook"], h["__metadata__"]["sparsity"])
PY
)
if [ -n "$HDR" ]; then
  [ "$HDR" = '{"W_dec": [128, 2, 64], "W_enc": [2, 64, 128], "b_dec": [2, 64], "b_enc": [128], "scale": [2]} reprshift-crosscoder-v1 blocks.2.hook_resid_post l1' ] ||
    fail "model file layout: $HDR"
fi
[ ! -e "$T/r/crosscoder_state" ] || fail "training state left behind"
# report section
grep -q '<section id="crosscoder">' "$T/r/report.html" || fail "no crosscoder section in the report"
grep -q 'Relative decoder norm' "$T/r/report.html" || fail "no histogram in the report"
grep -q "alive latents" "$T/r/report.html" || fail "no n in the figure caption"
jq -e "$H | has(\"null_side_swap\") | not" "$J" >/dev/null || fail "a null without null_runs"
# side-swap null (null_runs 2): per run the class counts add up to its alive latents; per class
# the null's mean / min / max fractions are those of the runs, p = (1 + runs at least as extreme) / 3
XCN='{"hooks": ["blocks.2.hook_resid_post"], "n_latents": 128, "steps": 300, "batch": 32, "lr": 0.003,
      "resample_every": 100, "dead_after": 3200, "checkpoint_every": 50, "bootstrap": 50, "null_runs": 2}'
config "$T/n.json" "$XCN"
expect 0 "report.html" -- "$CLI" run "$T/n.json" --out "$T/n" --threads 1 --quiet
JN=$T/n/results/crosscoder.json
jq -e "$H.null_side_swap | .runs == 2 and (.alive | length) == 2 and (.definition | test(\"swapped\"))" "$JN" >/dev/null ||
  fail "null_side_swap: $(jq -c "$H.null_side_swap" "$JN")"
for q in 0 1; do
  [ "$(jq "[$H.null_side_swap.counts[][$q]] | add" "$JN")" = "$(jq "$H.null_side_swap.alive[$q]" "$JN")" ] ||
    fail "null run $q: counts do not add up to its alive latents"
done
for k in llm_only shared vlm_only other; do
  jq -e "$H as \$h | (\$h.null_side_swap) as \$n | (\$h.classes.$k) as \$c | [range(2)] | map(\$n.counts.$k[.] / \$n.alive[.]) as \$f |
         ((\$f | add / 2) - \$c.null_side_swap.fraction_mean | fabs) < 1e-12 and \$c.null_side_swap.fraction_min == (\$f | min)
         and \$c.null_side_swap.fraction_max == (\$f | max) and \$c.null_side_swap.runs == 2
         and ((\$c.null_side_swap.p - (1 + (\$f | map(if \"$k\" == \"shared\" then . <= \$c.fraction.value else . >= \$c.fraction.value end)
                                              | map(select(.)) | length)) / 3) | fabs) < 1e-12" "$JN" >/dev/null ||
    fail "null class $k: $(jq -c "$H.classes.$k" "$JN")"
done
# the real crosscoder is the same as without the null (same seed, same rows)
cmp -s "$T/r/results/crosscoder/blocks.2.hook_resid_post.safetensors" "$T/n/results/crosscoder/blocks.2.hook_resid_post.safetensors" ||
  fail "the null runs changed the real crosscoder"
grep -q "side-swap null" "$T/n/report.html" || fail "no null column in the report"
[ ! -e "$T/n/crosscoder_state" ] || fail "null training state left behind"
# across seeds (seeds 3, with the side-swap null): three fractions per class; mean, min, max and the 95%
# t-interval (t(2, 0.975) = 4.302652729749462, scipy.stats.t.ppf) recomputed from them; the first seed's
# fractions, counts and model are the single-seed run's; the other two use seed + 1001 and seed + 2002
XCS='{"hooks": ["blocks.2.hook_resid_post"], "n_latents": 128, "steps": 300, "batch": 32, "lr": 0.003,
      "resample_every": 100, "dead_after": 3200, "checkpoint_every": 50, "bootstrap": 50, "null_runs": 2, "seeds": 3}'
config "$T/s.json" "$XCS"
expect 0 "report.html" -- "$CLI" run "$T/s.json" --out "$T/s" --threads 1 --quiet
JS=$T/s/results/crosscoder.json
jq -e "$H.across_seeds | .n_seeds == 3 and .seeds == [0, 1001, 2002] and (.alive | length) == 3
       and (.ci | contains(\"t(S-1, 0.975)\"))" "$JS" >/dev/null || fail "across_seeds: $(jq -c "$H.across_seeds" "$JS")"
[ "$(jq -c "$H.across_seeds.alive[0]" "$JS")" = "$ALIVE" ] || fail "seed 0 alive differs from the single-seed run"
for k in llm_only shared vlm_only other; do
  jq -e --argjson one "$(jq "$H.classes.$k" "$J")" "$H as \$h | \$h.classes.$k.across_seeds as \$a |
         [range(3)] | map(\$h.across_seeds.counts.$k[.] / \$h.across_seeds.alive[.]) as \$f |
         (\$a.fractions | length) == 3 and \$a.n_seeds == 3
         and ([range(3)] | map((\$a.fractions[.] - \$f[.]) | fabs < 1e-12) | all)
         and \$a.fractions[0] == \$one.fraction.value and \$h.across_seeds.counts.$k[0] == \$one.count
         and ((\$f | add / 3) as \$m | (\$f | map((. - \$m) * (. - \$m)) | add / 2 | sqrt) as \$sd |
              (4.302652729749462 * \$sd / (3 | sqrt)) as \$h2 |
              ((\$a.mean - \$m) | fabs) < 1e-12 and \$a.min == (\$f | min) and \$a.max == (\$f | max)
              and ((\$a.ci_lo - ([\$m - \$h2, 0] | max)) | fabs) < 1e-9 and ((\$a.ci_hi - ([\$m + \$h2, 1] | min)) | fabs) < 1e-9)
         and \$a.ci_lo <= \$a.mean and \$a.mean <= \$a.ci_hi
         and (\$a.beats_null == (if \"$k\" == \"shared\" then \$a.ci_hi < \$h.classes.$k.null_side_swap.fraction_min
                                 else \$a.ci_lo > \$h.classes.$k.null_side_swap.fraction_max end))" "$JS" >/dev/null ||
    fail "across_seeds $k: $(jq -c "$H.classes.$k.across_seeds" "$JS") counts $(jq -c "$H.across_seeds.counts" "$JS")"
done
# the saved model and the CSV are the first seed's: the single-seed run's bytes
cmp -s "$T/r/results/crosscoder/blocks.2.hook_resid_post.safetensors" "$T/s/results/crosscoder/blocks.2.hook_resid_post.safetensors" ||
  fail "seeds 3 changed the saved crosscoder"
cmp -s "$T/r/results/crosscoder_latents.csv" "$T/s/results/crosscoder_latents.csv" || fail "seeds 3 changed the latents CSV"
jq -e "$H.classes | del(.[].across_seeds) == $(jq -c "$H.classes" "$JN")" "$JS" >/dev/null ||
  fail "seeds 3 changed the single-seed class entries"
grep -q "across 3 seeds: mean \[95% CI\]; beats the null" "$T/s/report.html" || fail "no across-seeds column in the report"
[ ! -e "$T/s/crosscoder_state" ] || fail "seed training state left behind"
jq -e "$H | has(\"across_seeds\") | not" "$J" >/dev/null || fail "across_seeds with one seed"
# rerun: skipped, outputs unchanged
cp "$MF" "$T/model1"
"$CLI" run "$T/x.json" --out "$T/r" --threads 1 --quiet >/dev/null 2>&1 || fail "rerun"
grep -q "\[crosscoder\] complete (skipped)" "$T/r/run.log" || fail "rerun did not skip the stage"
# kill during training, then resume: the same model bit for bit (the stage trains 3000 steps)
XCL='{"hooks": ["blocks.2.hook_resid_post"], "n_latents": 128, "steps": 3000, "batch": 32, "lr": 0.003,
      "resample_every": 100, "dead_after": 3200, "checkpoint_every": 50, "bootstrap": 50}'
config "$T/k.json" "$XCL"
"$CLI" run "$T/k.json" --out "$T/k" --threads 1 --quiet >/dev/null 2>&1 || fail "long run"
cp "$T/k/results/crosscoder/blocks.2.hook_resid_post.safetensors" "$T/model_full"
rm -f "$T/k/stages/crosscoder.done"
"$CLI" run "$T/k.json" --out "$T/k" --threads 1 --quiet >/dev/null 2>&1 &
PID=$!
for _ in $(seq 200); do [ -e "$T/k/crosscoder_state/blocks.2.hook_resid_post.state.safetensors" ] && break; sleep 0.05; done
sleep 0.3
kill -9 $PID 2>/dev/null
wait $PID 2>/dev/null
[ -e "$T/k/crosscoder_state/blocks.2.hook_resid_post.state.safetensors" ] || fail "no checkpoint after the kill"
"$CLI" run "$T/k.json" --out "$T/k" --threads 1 --quiet >/dev/null 2>&1 || fail "resumed run"
grep -q "resumed" "$T/k/run.log" || fail "the stage did not resume"
cmp -s "$T/model_full" "$T/k/results/crosscoder/blocks.2.hook_resid_post.safetensors" || fail "resumed model differs"
# bad config: one clear error, nothing run
config "$T/b1.json" '{"hooks": ["blocks.3.hook_resid_post"]}'
expect 1 "'crosscoder.hooks[0]'" -- "$CLI" run "$T/b1.json" --out "$T/b1" --quiet
config "$T/b2.json" '{"sparsity": "topk"}'
expect 1 "crosscoder.sparsity" -- "$CLI" run "$T/b2.json" --out "$T/b2" --quiet
config "$T/b3.json" '{"n_latnets": 5}'
expect 1 "n_latents" -- "$CLI" run "$T/b3.json" --out "$T/b3" --quiet
config "$T/b4.json" '{"sparsity": "batchtopk", "n_latents": 16, "k": 32}'
expect 1 "'crosscoder.k' = 32 is more than 'crosscoder.n_latents' = 16" -- "$CLI" run "$T/b4.json" --out "$T/b4" --quiet
[ ! -e "$T/b4" ] || fail "a refused config left a run folder"
echo "cli_crosscoder: ok"
