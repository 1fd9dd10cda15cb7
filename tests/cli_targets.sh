#!/usr/bin/env bash
# probes.targets (docs/probes.md, Target probes; docs/datasets.md, Targets) through `reprshift
# run` on the bundled tiny models and COCO sample: dataset/targets.csv (one record per
# manifest row, 80 + 12 + 11 + 22 target columns, categories equal to the image's COCO
# instances), probes.json "targets" and results/probe_targets.csv with their invariants (CI
# around the value, q >= p, transfer gap = within - transfer, every skipped target with its
# reason), a repeat run that skips every stage, no targets file or key without the option, and
# a bad target name refused with one line.
set -u
. "$(dirname "$0")/shared.sh"
cli_init
command -v jq >/dev/null || { echo "RS-SKIP: cli_targets: needs jq (to read the JSON output)"; exit 77; }

small_config "$T/base.json"
jq '.probes.targets = ["groups","categories","supercategories","colours","actions"] | .probes.min_positives = 1' \
  "$T/base.json" >"$T/tg.json"
expect 0 "report.html" -- "$CLI" run "$T/tg.json" --out "$T/r" --threads 1 --quiet
D=$T/r/dataset/targets.csv
[ -s "$D" ] || fail "no dataset/targets.csv"
head -1 "$D" | grep -q '^row,modality,image_id,caption_id,category:person,category:bicycle,' || fail "header: $(head -c 120 "$D")"
ncol=$(head -1 "$D" | tr ',' '\n' | wc -l)
[ "$ncol" -eq $((4 + 80 + 12 + 11 + 22)) ] || fail "$ncol columns"
nrec=$(($(wc -l <"$D") - 1))
nman=$(($(wc -l <"$T/r/dataset/manifest.csv") - 1))
[ "$nrec" -eq "$nman" ] || fail "$nrec target records for $nman manifest rows"
# an image of the animals group has supercategory:animal = 1 (column 4 + 80 + 2: accessory, animal)
grep -q '^0,image,' "$D" || fail "row 0 is not an image row"
a=$(awk -F, 'NR == 2 { print $(4 + 80 + 2) }' "$D")
[ "$a" = 1 ] || fail "the first (animals) image has supercategory:animal = $a"

J=$T/r/results/probes.json
jq -e '.targets.metric == "balanced_accuracy" and .targets.chance == 0.5 and .targets.min_positives == 1' "$J" >/dev/null ||
  fail "targets header"
np=$(jq '.targets.probes | length' "$J")
nt=$(jq '.targets.transfer | length' "$J")
ns=$(jq '.targets.skipped | length' "$J")
[ "$np" -gt 0 ] || fail "no target probe evaluated"
[ "$nt" -gt 0 ] || fail "no transfer cell"
[ "$ns" -gt 0 ] || fail "nothing skipped (most targets are too rare in 10 images)"
# every (target, modality) pair is either evaluated (at each of the 2 hooks) or skipped once
[ $((np / 2 + ns)) -eq $((2 * 125)) ] || fail "$np probes / 2 + $ns skipped != 250"
jq -e '[.targets.skipped[] | .reason | test("probes.min_positives = 1")] | all' "$J" >/dev/null || fail "skip reasons"
jq -e '[.targets.probes[] | .balanced_accuracy as $b |
        ($b.ci_lo <= $b.value + 1e-12 and $b.value <= $b.ci_hi + 1e-12 and .q >= .p - 1e-12 and .q <= 1 and
         .p > 0 and .n_test_images > 0 and .positives_test >= 1 and .n_images == 10)] | all' "$J" >/dev/null ||
  fail "a probe's CI, p, q or counts"
jq -e '[.targets.transfer[] | ((.gap.value - (.within.value - .transfer.value)) | fabs) < 1e-12 and
        .gap.ci_lo <= .gap.value + 1e-12 and .gap.value <= .gap.ci_hi + 1e-12 and .q >= .p - 1e-12] | all' "$J" \
  >/dev/null || fail "a transfer cell's gap, CI or q"
# the within cell of text->image is the VLM-image probe of the same target and hook
jq -e '.targets as $t | [$t.transfer[] | select(.direction == "text->image") | . as $x |
        ($t.probes[] | select(.model == "VLM images" and .target == $x.target and .hook == $x.hook) |
         .balanced_accuracy.value) == $x.within.value] | all' "$J" >/dev/null || fail "within != the image probe"
# the image probes' test images are the VLM-image concept probe's (the same splits)
jq -e '(.tasks[] | select(.task == "concept" and .model == "VLM images") | .layers | map({(.layer | tostring): .n_test}) | add)
       as $nt | [.targets.probes[] | select(.model == "VLM images") | .n_test_images == $nt[.layer | tostring]] | all' \
  "$J" >/dev/null || fail "image target probes do not test the concept probe's test images"
# prevalence x n_images = the positive image rows of targets.csv (counted here with awk)
jq -r '.targets.probes[] | select(.model == "VLM images" and .layer == 1) |
       "\(.kind | sub("ies$"; "y") | sub("s$"; "")):\(.target) \(.prevalence * .n_images | round)"' "$J" >"$T/prev"
[ -s "$T/prev" ] || fail "no image probe at layer 1"
while read -r col want; do
  got=$(awk -F, -v c="$col" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
                               $2 == "image" && $k == 1 { n++ } END { print n + 0 }' "$D")
  [ "$got" = "$want" ] || fail "$col: $got positive images in targets.csv, probes.json says $want"
done <"$T/prev"
C=$T/r/results/probe_targets.csv
[ "$(($(wc -l <"$C") - 1))" -eq $((np + nt)) ] || fail "probe_targets.csv rows"
head -1 "$C" | grep -q '^kind,target,model,hook,layer,n_images,n_test_images,positives_test,balanced_accuracy,' || fail "csv header"

# the report's compact table
grep -q '<section id="targets">' "$T/r/report.html" || fail "no target section in the report"
grep -q 'target &times; modality pairs skipped' "$T/r/report.html" || fail "the report does not count the skipped targets"

# the same folder again: nothing redone
expect 0 "complete (skipped)" -- "$CLI" run "$T/tg.json" --out "$T/r" --threads 1
grep -q "\[probes\] complete (skipped)" "$T/err" || fail "the probes stage ran again"

# the option turned off in the same folder: the targets files are gone
expect 0 "report.html" -- "$CLI" run "$T/base.json" --out "$T/r" --threads 1 --quiet
[ -e "$T/r/dataset/targets.csv" ] && fail "targets.csv left after turning the targets off"
[ -e "$T/r/results/probe_targets.csv" ] && fail "probe_targets.csv left after turning the targets off"
jq -e 'has("targets") | not' "$T/r/results/probes.json" >/dev/null || fail "targets key left after turning them off"

# without the option: no targets file, no targets key
expect 0 "report.html" -- "$CLI" run "$T/base.json" --out "$T/b" --threads 1 --quiet
[ -e "$T/b/dataset/targets.csv" ] && fail "targets.csv without probes.targets"
jq -e 'has("targets") | not' "$T/b/results/probes.json" >/dev/null || fail "targets key without probes.targets"
[ -e "$T/b/results/probe_targets.csv" ] && fail "probe_targets.csv without probes.targets"
grep -q 'id="targets"' "$T/b/report.html" && fail "a target section without probes.targets"

jq '.probes.targets = ["colors"]' "$T/base.json" >"$T/bad.json"
expect 1 "probes.targets" -- "$CLI" run "$T/bad.json" --out "$T/bad" --quiet
one_line_err
echo "cli_targets: ok"
