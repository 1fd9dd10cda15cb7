#!/usr/bin/env bash
# reprshift run, languages (docs/languages.md), on the bundled tiny models and COCO sample with
# its Spanish/German translations:
#  - the identity check: "language" en read from the translations file's en column (the COCO
#    captions verbatim) with the prompt "caption en" must reproduce the English stores byte for
#    byte, and every statistic of the stage must say so (cosine 1, recall 1, shift difference 0,
#    the English probe scoring the same on both sides);
#  - es and de: stores, manifests, languages.json shape, n, CIs around values, q >= p, BH counts,
#    the report section; a rerun skips everything; a code dropped from the config loses its stores;
#  - bad input: a translations file without a caption of the run, a missing column, a bad code,
#    prompts of the wrong length, no translations anywhere: one clear error, nothing written.
set -u
. "$(dirname "$0")/shared.sh"
command -v jq >/dev/null || { echo "RS-SKIP: cli_languages: needs jq (to read the JSON output)"; exit 77; }
cli_init
TR=$PWD/examples/data/coco-sample/annotations/captions_translated.csv
[ -s "$TR" ] || fail "no $TR"
config() { stage_config "$1" languages "$2" "[1, 2]" 1; }

# ---- identity: the en column as a language ----
config "$T/en.json" "{\"codes\": [\"en\"], \"translations\": \"$TR\", \"bootstrap\": 50, \"permutations\": 50, \"transfer_seeds\": 2}"
expect 0 "report.html" -- "$CLI" run "$T/en.json" --out "$T/e" --threads 1 --quiet
for s in llm_text vlm_text vlm_caption; do
  n=0
  for f in "$T/e/acts/$s"/shard-*.safetensors; do
    cmp -s "$f" "$T/e/acts/lang_en/$s/$(basename "$f")" || fail "lang_en/$s/$(basename "$f") differs from the English store"
    n=$((n + 1))
  done
  [ $n -gt 0 ] || fail "no shards in acts/$s"
done
J=$T/e/results/languages.json
N=$(grep -c '^text,' "$T/e/dataset/manifest.csv")
[ "$(jq '.n_captions' "$J")" = "$N" ] || fail "n_captions $(jq '.n_captions' "$J") != $N manifest captions"
jq -e '.languages | length == 1 and .[0].code == "en" and .[0].prompt == "caption en" and (.[0].layers | length == 2)' "$J" >/dev/null ||
  fail "languages shape"
# cosine 1 and recall 1 in every condition; the shift the same in both; the probe scores alike
jq -e '[.languages[0].layers[].similarity[] | (.cos_matched.value > 0.999999) and .recall1_en_to_lang.value == 1
        and .recall1_lang_to_en.value == 1 and .n_captions == '"$N"'] | length == 6 and all' "$J" >/dev/null ||
  fail "identity: similarity $(jq -c '[.languages[0].layers[].similarity[] | [.condition, .cos_matched.value]]' "$J")"
jq -e '[.languages[0].layers[].shift[] | (.difference.value | fabs) < 1e-12 and .shift_en.value == .shift_lang.value]
       | length == 4 and all' "$J" >/dev/null || fail "identity: shift $(jq -c '[.languages[0].layers[].shift[]]' "$J")"
jq -e '[.languages[0].layers[].transfer[] | .en_to_lang.accuracy == .en_to_en.accuracy and .lang_to_lang.accuracy == .en_to_en.accuracy]
       | length == 6 and all' "$J" >/dev/null || fail "identity: transfer"
jq -e '[.languages[0].layers[].shift_tokens | .en.shift.cos_raw.value == .lang.shift.cos_raw.value] | length == 2 and all' "$J" \
  >/dev/null || fail "identity: token-aligned shift"

# ---- es and de ----
config "$T/x.json" "{\"codes\": [\"es\", \"de\"], \"translations\": \"$TR\", \"bootstrap\": 50, \"permutations\": 50, \"transfer_seeds\": 2}"
expect 0 "report.html" -- "$CLI" run "$T/x.json" --out "$T/r" --threads 1 --quiet
J=$T/r/results/languages.json
for L in es de; do
  for s in llm_text vlm_text vlm_caption; do
    [ -s "$T/r/acts/lang_$L/$s/index.json" ] || fail "no acts/lang_$L/$s"
    [ -e "$T/r/stages/lang_$L/store_$s.done" ] || fail "no marker stages/lang_$L/store_$s.done"
  done
  [ "$(grep -c '^text,' "$T/r/dataset/manifest_$L.csv")" = "$N" ] || fail "manifest_$L.csv captions"
  [ "$(jq -r "select(.input == 0) | .text" "$T/r/acts/lang_$L/llm_text/shard-00000.rows.jsonl")" != \
    "$(jq -r "select(.input == 0) | .text" "$T/r/acts/llm_text/shard-00000.rows.jsonl")" ] || fail "$L: the text is the English one"
done
jq -e '[.languages[].code] == ["es", "de"] and [.languages[].prompt] == ["caption es", "caption de"]' "$J" >/dev/null || fail "codes"
jq -e '[.languages[].layers[].similarity[] | .n_captions == '"$N"' and .gap.ci_lo <= .gap.value and .gap.value <= .gap.ci_hi
        and .p_value > 0 and .p_value <= 1 and .q_value >= .p_value and .recall1_chance > 0 and .recall1_chance < 1]
       | length == 12 and all' "$J" >/dev/null || fail "similarity fields"
jq -e '[.languages[].layers[] | (.similarity_vs_llm | length) == 2 and (.shift | length) == 2 and (.transfer | length) == 3
        and .shift_tokens.pair == "a-c"] | all' "$J" >/dev/null || fail "sections per layer"
jq -e '[.languages[].layers[].transfer[] | .en_to_lang.ci_lo <= .en_to_lang.accuracy and .en_to_lang.accuracy <= .en_to_lang.ci_hi
        and .majority > 0 and .majority < 1] | all' "$J" >/dev/null || fail "transfer fields"
# one BH family: every finite p-value of the file has its q, and n_tests counts them
[ "$(jq '[.languages[].layers[] | (.similarity[], .similarity_vs_llm[], .shift[]) | select(.p_value != null)
          | select(.q_value >= .p_value)] | length' "$J")" = "$(jq .n_tests "$J")" ] || fail "n_tests"
[ "$(wc -l < "$T/r/results/languages_summary.csv")" -gt 60 ] || fail "summary csv"
grep -q '<section id="languages">' "$T/r/report.html" || fail "no report section"
grep -q 'caption de' "$T/r/report.html" || fail "report: no German part"
# a rerun skips everything
expect 0 "report.html" -- "$CLI" run "$T/x.json" --out "$T/r" --threads 1
grep -q "\[extract es\] vlm_caption: complete (skipped)" "$T/err" || fail "rerun: es store not skipped"
grep -q "\[languages\] complete (skipped)" "$T/err" || fail "rerun: stage not skipped"
# de dropped: its stores, markers and manifest go
config "$T/y.json" "{\"codes\": [\"es\"], \"translations\": \"$TR\", \"bootstrap\": 50, \"permutations\": 50, \"transfer_seeds\": 2}"
expect 0 "de: no longer in languages.codes" -- "$CLI" run "$T/y.json" --out "$T/r" --threads 1
[ -e "$T/r/acts/lang_de" ] || [ -e "$T/r/stages/lang_de" ] || [ -e "$T/r/dataset/manifest_de.csv" ] && fail "lang_de left behind"
[ -s "$T/r/acts/lang_es/vlm_caption/index.json" ] || fail "es removed too"
grep -q "\[extract es\] vlm_caption: complete (skipped)" "$T/err" || fail "es store redone after dropping de"
[ "$(jq '.languages | length' "$T/r/results/languages.json")" = 1 ] || fail "languages.json still lists de"

# ---- bad input ----
head -3 "$TR" > "$T/short.csv"
config "$T/b.json" "{\"codes\": [\"es\"], \"translations\": \"$T/short.csv\"}"
expect 1 "no \"es\" translation of caption_id" -- "$CLI" run "$T/b.json" --out "$T/b" --quiet
grep -qF "$T/short.csv" "$T/err" || fail "the error does not name the file"
one_line_err
[ -e "$T/b/acts/lang_es" ] && fail "a store of a refused language was written"
config "$T/b.json" "{\"codes\": [\"fr\"], \"translations\": \"$TR\"}"
expect 1 "no column \"fr\"" -- "$CLI" run "$T/b.json" --out "$T/b2" --quiet
config "$T/b.json" "{\"codes\": [\"e s\"], \"translations\": \"$TR\"}"
expect 1 "is not a language code" -- "$CLI" run "$T/b.json" --out "$T/b3" --quiet
config "$T/b.json" "{\"codes\": [\"es\", \"de\"], \"prompts\": [\"caption es\"], \"translations\": \"$TR\"}"
expect 1 "one prompt per code" -- "$CLI" run "$T/b.json" --out "$T/b4" --quiet
config "$T/b.json" "{\"codes\": [\"es\"]}"
expect 1 "has no \"caption_es\" column" -- "$CLI" run "$T/b.json" --out "$T/b5" --quiet
config "$T/b.json" "{\"codes\": [\"es\", \"es\"], \"translations\": \"$TR\"}"
expect 1 "\"es\" is listed twice" -- "$CLI" run "$T/b.json" --out "$T/b6" --quiet
echo "cli_languages: ok"
