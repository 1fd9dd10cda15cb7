#!/usr/bin/env bash
# reprshift config / dataset: exit codes, messages and no partial output on bad input;
# the dataset part on the real COCO mini set (counts from ../shared/data/PROVENANCE.md).
set -u
. "$(dirname "$0")/shared.sh"
cli_init
# config check: resolved defaults; typo suggestion
expect 0 "ok (4 hook(s), 4 layer(s)" -- "$CLI" config check examples/quickstart.json
grep -q '"n_per_group":	8' "$T/out" || fail "resolved config lacks n_per_group"
grep -q '"bootstrap":	200' "$T/out" || fail "resolved config lacks probes.bootstrap"
sed 's/"n_per_group"/"n_per_grup"/' examples/quickstart.json >"$T/typo.json"
expect 1 "unknown key 'dataset.n_per_grup' (did you mean 'dataset.n_per_group'?)" -- "$CLI" config check "$T/typo.json"

# the rest counts on the COCO mini set of the shared data folder
need_shared data/coco/mini "the 159-image COCO mini set"
S=$SHARED/data/coco/mini
A="$S/annotations"
ok3=(--instances "$A/instances_train2017.json" --captions "$A/captions_train2017.json" --images "$S/train2017"
     --instances "$A/instances_val2017.json" --captions "$A/captions_val2017.json" --images "$S/val2017"
     --group animals=animal --group vehicles=vehicle --group food=food)

expect 0 "animals             24" -- "$CLI" dataset sample "${ok3[@]}" --n 20 --seed 3 --out "$T/m.csv"
[ "$(wc -l <"$T/m.csv")" -eq 121 ] || fail "want 120 rows + header"
expect 0 "split train 84, val 18, test 18" -- "$CLI" dataset check "$T/m.csv"
expect 0 "person 75, vehicle 34" -- "$CLI" dataset stats "${ok3[@]}"

# too few images: error with counts, no manifest written
expect 1 "eligible: animals 24, vehicles 29, food 25" -- "$CLI" dataset sample "${ok3[@]}" --n 30 --out "$T/few.csv"
[ ! -e "$T/few.csv" ] || fail "partial manifest left behind"
ls "$T" | grep -q tmp && fail "temp file left behind"
expect 0 "warning: only 24 images per group" -- "$CLI" dataset sample "${ok3[@]}" --n 30 --allow-fewer --out "$T/few.csv"

# captions file for other images
expect 1 "covers none of the 80 annotated images" -- "$CLI" dataset sample --instances "$A/instances_train2017.json" \
  --captions "$A/captions_val2017.json" --images "$S/train2017" --out "$T/x.csv"
# malformed JSON names file and line
printf '{"images": [{"id": 1,\n "file_name": "a.jpg" "width": 3}]}' >"$T/bad.json"
expect 1 "bad.json: line 2 column" -- "$CLI" dataset stats --instances "$T/bad.json"
# wrong images dir: missing files listed
expect 1 "image files missing" -- "$CLI" dataset sample --instances "$A/instances_train2017.json" \
  --captions "$A/captions_train2017.json" --images "$S/val2017" --n 1 --out "$T/y.csv"
[ ! -e "$T/y.csv" ] || fail "manifest written despite missing images"
# manifest with a missing image
printf 'modality,input,label\nimage,nope.jpg,a\n' >"$T/miss.csv"
expect 1 "line 2: $T/nope.jpg" -- "$CLI" dataset check "$T/miss.csv"
# usage errors
expect 2 "unknown option '--nn'" -- "$CLI" dataset sample "${ok3[@]}" --nn 3 --out "$T/z.csv"
expect 2 "--split wants three fractions" -- "$CLI" dataset sample "${ok3[@]}" --split 0.5,0.5,0.5 --out "$T/z.csv"

echo "cli_dataset: all checks passed"
