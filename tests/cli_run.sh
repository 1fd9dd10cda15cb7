#!/usr/bin/env bash
# reprshift run: exit codes, --help, one-line errors on bad input, and SIGKILL of the real
# binary at random points followed by a resume that ends byte-identical (stores, manifest,
# results, markers) to an uninterrupted run. Values are checked in test_pipeline_golden
# (against transformers/Pillow) and test_pipeline (kill chains, disk full, schemas).
set -u
. "$(dirname "$0")/shared.sh"
cli_init

expect 0 "byte-identical" -- "$CLI" run --help
expect 2 "missing CONFIG" -- "$CLI" run
expect 2 "usage" -- "$CLI" run --bogus x.json
expect 2 "--shard-inputs must be" -- "$CLI" run --shard-inputs 0 x.json
expect 2 "--threads must be" -- "$CLI" run --threads x x.json
expect 1 "$T/none.json" -- "$CLI" run "$T/none.json"
one_line_err
printf '{"output_dir": "o", "modles": {}}' >"$T/typo.json"
expect 1 "did you mean 'models'" -- "$CLI" run "$T/typo.json"
one_line_err
[ -e "$T/o" ] && fail "a config error created the run folder"
# a missing dataset input is refused before the run folder is made
M=$PWD/examples/quickstart/models
cat >"$T/nodata.json" <<JSON
{"output_dir": "unused", "models": {"llm": "$M/gemma2-tiny", "vlm": "$M/paligemma-tiny"}, "layers": [1],
 "dataset": {"instances": "$T/none/instances.json", "captions": "$T/none/captions.json", "images": "$T/none"}}
JSON
expect 1 "$T/none/instances.json: No such file" -- "$CLI" run "$T/nodata.json" --out "$T/o2"
one_line_err
[ -e "$T/o2" ] && fail "a missing dataset input created the run folder"

# a small experiment on the bundled COCO sample: 2 groups x 5 images, layers 1-2, one edit
small_config "$T/small.json"
expect 0 "report.html" -- "$CLI" run "$T/small.json" --out "$T/ref" --shard-inputs 2 --threads 1 --quiet
[ "$(cat "$T/out")" = "$T/ref/report.html" ] || fail "stdout is not the report path: $(cat "$T/out")"
[ -s "$T/err" ] && { cat "$T/err"; fail "--quiet printed on stderr"; }
for f in config.resolved.json provenance.json run.log dataset/manifest.csv results/shift.json results/sae_fit.json \
         results/probes.json acts/vlm_edits/index.json; do
  [ -s "$T/ref/$f" ] || fail "missing $f"
done
# the same folder again: everything skipped
expect 0 "complete (skipped)" -- "$CLI" run "$T/small.json" --out "$T/ref" --shard-inputs 2 --threads 1

# kill -9 the binary at random points (RS_KILL_SEED), then finish
RANDOM=${RS_KILL_SEED:-7}
for i in 1 2 3 4 5 6; do
  "$CLI" run "$T/small.json" --out "$T/k" --shard-inputs 2 --threads 1 --quiet >/dev/null 2>&1 &
  pid=$!
  sleep "0.$(printf '%02d' $((RANDOM % 60 + 5)))"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  [ -e "$T/k/report.html" ] && [ ! -e "$T/k/stages/report.done" ] && fail "report.html without its done-marker"
done
expect 0 "report.html" -- "$CLI" run "$T/small.json" --out "$T/k" --shard-inputs 2 --threads 1 --quiet
for d in acts dataset results stages; do
  diff -r "$T/ref/$d" "$T/k/$d" >"$T/diff" || { head "$T/diff"; fail "$d differs after kill + resume"; }
done
# the report names its own folder; otherwise identical
diff <(sed "s|$T/ref||g" "$T/ref/report.html") <(sed "s|$T/k||g" "$T/k/report.html") >/dev/null ||
  fail "report differs after kill + resume"

# bad input through the CLI: a hook the models lack -> one line, nothing complete
grep -v '"saes"' "$T/small.json" | sed 's/"layers": \[1, 2\],/"layers": [7],/' >"$T/bad.json"
expect 1 "blocks.7.hook_resid_post" -- "$CLI" run "$T/bad.json" --out "$T/bad" --quiet
one_line_err
# an SAE folder that does not exist for a layer
sed 's/"layers": \[1, 2\]/"layers": [1, 3, 5]/' "$T/small.json" >"$T/bad2.json"
expect 1 "saes.path: no SAE for layer 5" -- "$CLI" run "$T/bad2.json" --out "$T/bad" --quiet
one_line_err
ls "$T/bad/stages"/*.done >/dev/null 2>&1 && fail "a done-marker after a config error"
echo "cli_run: ok"
