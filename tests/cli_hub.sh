#!/usr/bin/env bash
# Hub names and SAE names on the command line, against tests/fixtures/hf_cache (a cache written
# by huggingface_hub itself: tools/reference/gen_hf_cache.py). A Hub-named model must give the
# same checkpoint as its folder; a named SAE gives Neuronpedia links in the CSV, results and
# report, an SAE given by path none; not-cached names fail with the download command and no output.
set -u
. "$(dirname "$0")/shared.sh"
cli_init
export HF_HUB_CACHE=$PWD/tests/fixtures/hf_cache
unset HF_HOME HUGGINGFACE_HUB_CACHE
M=tests/fixtures/models
SNAP_MAIN=$HF_HUB_CACHE/models--tiny-org--gemma2-tiny/snapshots/2cbd7cc36601a5880687f53704a894e4de998f86

# inspect: the Hub name (sharded main, symlinks into blobs/) lists the folder's checkpoint
"$CLI" inspect $M/gemma2-tiny-bf16 | grep -v golden >"$T/folder.txt" || fail "inspect folder"
"$CLI" inspect tiny-org/gemma2-tiny | grep -v golden >"$T/hub.txt" || fail "inspect hub name"
diff "$T/folder.txt" "$T/hub.txt" || fail "hub-named checkpoint differs from the folder"
grep -q "in 7 shard" "$T/hub.txt" || fail "not the sharded revision"
"$CLI" inspect tiny-org/gemma2-tiny --revision f16 | grep -q "hidden 32, layers 3" || fail "--revision f16"
"$CLI" inspect tiny-org/gemma2-tiny --revision 4884e5d368dc525e9276b799082c710524f6b59b | grep -q "hidden 32" \
  || fail "--revision COMMIT"

# extract: same activations from the folder and from the Hub name (data after the header)
data() { local n; n=$(od -An -t u8 -N8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1" | md5sum; }
expect 0 "wrote" -- "$CLI" extract --model $M/gemma2-tiny-bf16 --hook blocks.2.hook_resid_post --ids 2,5,9,14 --out "$T/f.safetensors"
expect 0 "wrote" -- "$CLI" extract --model tiny-org/gemma2-tiny --hook blocks.2.hook_resid_post --ids 2,5,9,14 --out "$T/h.safetensors"
[ "$(data "$T/f.safetensors")" = "$(data "$T/h.safetensors")" ] || fail "activations differ between folder and hub name"
grep -q '"model":"tiny-org/gemma2-tiny"' "$T/h.safetensors" || fail "metadata does not record the Hub name"

# not cached: where it looked + the download command, exit 1, nothing written
expect 1 "huggingface-cli download tiny-org/absent" -- "$CLI" extract --model tiny-org/absent --hook blocks.0.hook_resid_post --ids 2,5 --out "$T/x.safetensors"
grep -qF "looked for $HF_HUB_CACHE/models--tiny-org--absent" "$T/err" || fail "no 'looked for' in: $(cat "$T/err")"
[ $(wc -l <"$T/err") -eq 1 ] || fail "more than one error line"
expect 1 "huggingface-cli download tiny-org/gemma2-tiny --revision v2" -- "$CLI" inspect tiny-org/gemma2-tiny --revision v2
expect 1 "not to a folder" -- "$CLI" extract --model $M/gemma2-tiny-f16 --revision main --hook blocks.0.hook_resid_post --ids 2,5 --out "$T/x.safetensors"
[ ! -e "$T/x.safetensors" ] || fail "output written despite errors"
expect 1 "looked for $T/emptyhome/hub/models--tiny-org--gemma2-tiny; cache $T/emptyhome/hub, from HF_HOME" -- \
  env -u HF_HUB_CACHE HF_HOME="$T/emptyhome" "$CLI" inspect tiny-org/gemma2-tiny

# a snapshot file whose blob is gone (interrupted download): named, not mistaken for "no config.json"
cp -a "$HF_HUB_CACHE" "$T/cache2"
rm "$T/cache2/models--tiny-org--gemma2-tiny/blobs/$(basename "$(readlink "$T/cache2/models--tiny-org--gemma2-tiny/snapshots/4884e5d368dc525e9276b799082c710524f6b59b/config.json")")"
expect 1 "config.json is a broken link" -- env HF_HUB_CACHE="$T/cache2" "$CLI" inspect tiny-org/gemma2-tiny --revision f16
grep -qF "download it again with \`huggingface-cli download tiny-org/gemma2-tiny --revision f16\`" "$T/err" || fail "broken link: $(cat "$T/err")"

# sae list
expect 0 "name	hook	d_sae" -- "$CLI" sae list
[ $(grep -c . "$T/out") -eq 323 ] || fail "sae list: $(grep -c . "$T/out") lines, want 322 + header"
[ $("$CLI" sae list --release gemma-scope-2b-pt-res-canonical --width 65k | tail -n +2 | wc -l) -eq 26 ] || fail "26 canonical 65k"
"$CLI" sae list --layer 3 --width 16k --release gemma-scope-2b-pt-res-canonical | grep -q "layer_3/width_16k/canonical.*gemma-2-2b/3-gemmascope-res-16k	yes$" \
  || fail "cached canonical layer_3 not listed as cached"
expect 1 "unknown release" -- "$CLI" sae list --release gemma-scope-9b
expect 2 "--width" -- "$CLI" sae list --width 3k

# shift with a named SAE: Neuronpedia links in CSV, results and report
F=tests/fixtures/sae
NAME=gemma-scope-2b-pt-res-canonical/layer_3/width_16k/canonical
expect 0 "results" -- "$CLI" shift --a $F/acts_a.safetensors --b $F/acts_b.safetensors --sae $NAME --bootstrap 0 --out "$T/named"
CSV="$T/named/features_blocks.3.hook_resid_post.csv"
head -1 "$CSV" | grep -q ',neuronpedia_url$' || fail "no neuronpedia_url column"
sed -n 2p "$CSV" | grep -Eq '^([0-9]+),.*,https://www\.neuronpedia\.org/gemma-2-2b/3-gemmascope-res-16k/\1$' || fail "row has no matching link: $(sed -n 2p "$CSV")"
[ $(tail -n +2 "$CSV" | grep -vc 'https://www.neuronpedia.org/gemma-2-2b/3-gemmascope-res-16k/') -eq 0 ] || fail "a feature without a link"
grep -q '"neuronpedia":	"gemma-2-2b/3-gemmascope-res-16k"' "$T/named/results.json" || fail "results.json lacks the Neuronpedia id"
grep -q '"hook_source":	"SAE registry (sae-lens)"' "$T/named/results.json" || fail "hook not from the registry"
mkdir "$T/rep" && cp "$T/named/results.json" "$T/rep/shift.json"
expect 0 "report" -- "$CLI" report --results "$T/rep" --out "$T/rep/r.html"
grep -q '<a href="https://www.neuronpedia.org/gemma-2-2b/3-gemmascope-res-16k/[0-9]*">#[0-9]*</a>' "$T/rep/r.html" || fail "report has no Neuronpedia links"
# the same SAE by path: no links anywhere
expect 0 "results" -- "$CLI" shift --a $F/acts_a.safetensors --b $F/acts_b.safetensors --sae "$SNAP_MAIN/../../../models--google--gemma-scope-2b-pt-res/snapshots/98c76cffabad28879b07d54a0e9f30263f2516df/layer_3/width_16k/average_l0_59/params.npz" --bootstrap 0 --out "$T/path"
! grep -q neuronpedia.org "$T/path/features_blocks.3.hook_resid_post.csv" || fail "links for an unnamed SAE"
sed -n 2p "$T/path/features_blocks.3.hook_resid_post.csv" | grep -q ',$' || fail "unnamed SAE: neuronpedia_url not empty"
mkdir "$T/rep2" && cp "$T/path/results.json" "$T/rep2/shift.json"
expect 0 "report" -- "$CLI" report --results "$T/rep2" --out "$T/rep2/r.html"
! grep -q 'neuronpedia.org' "$T/rep2/r.html" || fail "report links an unnamed SAE"
# same features either way (the name resolves to that file)
cmp <(cut -d, -f1-10 "$CSV") <(cut -d, -f1-10 "$T/path/features_blocks.3.hook_resid_post.csv") || fail "named and path SAE differ"
# named SAE not cached / unknown id
expect 1 "huggingface-cli download google/gemma-scope-2b-pt-res layer_3/width_65k/average_l0_" -- "$CLI" sae fit --acts $F/acts_a.safetensors --sae gemma-scope-2b-pt-res-canonical/layer_3/width_65k/canonical
expect 1 "like: layer_3/width_16k/canonical" -- "$CLI" sae fit --acts $F/acts_a.safetensors --sae gemma-scope-2b-pt-res-canonical/layer_3/width_16k/canonicl

# configs: Hub names stay names (not joined to the config's folder); run resolves them
cat >"$T/c.json" <<JSON
{"output_dir": "out", "models": {"llm": "tiny-org/absent", "vlm": "google/paligemma2-3b-pt-224", "llm_revision": "main"},
 "layers": [3], "hooks": ["blocks.{layer}.hook_resid_post"],
 "saes": {"path": "gemma-scope-2b-pt-res-canonical/layer_{layer}/width_16k/canonical"},
 "dataset": {"manifest": "m.csv"}}
JSON
expect 0 '"llm":	"tiny-org/absent"' -- "$CLI" config check "$T/c.json"
grep -qF '"path":	"gemma-scope-2b-pt-res-canonical/layer_{layer}/width_16k/canonical"' "$T/out" || fail "SAE name rewritten: $(grep path "$T/out")"
grep -qF "\"manifest\":	\"$T/m.csv\"" "$T/out" || fail "paths no longer resolved against the config folder"
printf 'modality,input,label\ntext,a cat,animal\n' >"$T/m.csv"
expect 1 "models.llm: tiny-org/absent: not a folder, and not in the Hugging Face cache" -- "$CLI" run "$T/c.json" --quiet
grep -qF "huggingface-cli download tiny-org/absent" "$T/err" || fail "run: no download command"
# a whole run by names: both models and the SAE from the cache, Neuronpedia links in the report
Q=$PWD/examples/data/coco-sample
cat >"$T/named.json" <<JSON
{"output_dir": "unused",
 "models": {"llm": "tiny-org/quickstart-gemma2", "vlm": "tiny-org/quickstart-paligemma", "vlm_revision": "main"},
 "layers": [2],
 "saes": {"path": "gemma-scope-2b-pt-res-canonical/layer_{layer}/width_16k/canonical"},
 "dataset": {"instances": ["$Q/annotations/instances_val2017.json"], "captions": ["$Q/annotations/captions_val2017.json"],
             "images": ["$Q/val2017"], "groups": {"animals": ["animal"], "vehicles": ["vehicle"]}, "n_per_group": 4,
             "allow_fewer": true},
 "probes": {"seeds": 1, "folds": 2, "bootstrap": 0, "min_test_groups": 1, "permutations": 0}}
JSON
expect 0 "report.html" -- "$CLI" run "$T/named.json" --out "$T/run" --threads 1 --quiet
R="$T/run/results"
grep -q '<a href="https://www.neuronpedia.org/gemma-2-2b/2-gemmascope-res-16k/[0-9]*">#[0-9]*</a>' "$T/run/report.html" \
  || fail "run report has no Neuronpedia links"
ls "$R"/features_*.csv >/dev/null 2>&1 || fail "no feature CSV in $(ls "$R")"
for f in "$R"/features_*.csv; do
  head -1 "$f" | grep -q ',neuronpedia_url$' || fail "$f: no neuronpedia_url column"
  sed -n 2p "$f" | grep -Eq '^([0-9]+),.*,https://www\.neuronpedia\.org/gemma-2-2b/2-gemmascope-res-16k/\1$' || fail "$f: $(sed -n 2p "$f")"
done
grep -qF "$HF_HUB_CACHE/models--tiny-org--quickstart-gemma2/snapshots/" "$T/run/provenance.json" || fail "provenance lacks the snapshot files"
grep -qF "models--google--gemma-scope-2b-pt-res/snapshots/98c76cffabad28879b07d54a0e9f30263f2516df/layer_2/width_16k/average_l0_141/params.npz" \
  "$T/run/provenance.json" || fail "provenance lacks the SAE file"
grep -q '"sae":	"gemma-scope-2b-pt-res-canonical/layer_2/width_16k/canonical"' "$R/sae_fit.json" || fail "sae_fit.json lacks the SAE name"
# checksums of files the cache keeps as blobs/<sha256> are read from that name (not hashed),
# and equal sha256sum's; small files (blobs named by their 40-hex git id) are hashed
command -v python3 >/dev/null || { echo "RS-SKIP: cli_hub: needs python3 (to read provenance.json)"; exit 77; }
python3 - "$T/run/provenance.json" <<'PYEOF' || fail "provenance sha256 sources"
import json, hashlib, os, sys
n = {"hf-cache-blob": 0, "computed": 0}
for f in json.load(open(sys.argv[1]))["files"]:
    h = hashlib.sha256(open(f["path"], "rb").read()).hexdigest()
    assert f["sha256"] == h, (f["path"], f["sha256"], h)
    blob = os.path.basename(os.path.realpath(f["path"]))
    want = "hf-cache-blob" if len(blob) == 64 and os.path.basename(os.path.dirname(os.path.realpath(f["path"]))) == "blobs" else "computed"
    assert f["sha256_source"] == want, (f["path"], f["sha256_source"], want)
    n[want] += 1
assert n["hf-cache-blob"] >= 3 and n["computed"] >= 1, n
print("provenance sources:", n)
PYEOF
echo ok
