#!/usr/bin/env bash
# reprshift run with "image_processor" (bundled tiny models + COCO sample, no shared data):
# the resolved config and provenance.json record the processor; switching it on resume
# rebuilds exactly the stores that hold images (the caption-only stores are kept); a bad
# value is refused before any work.
set -u
CLI=${RS_CLI:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
EX=$PWD/examples
cfg() {  # cfg PROCESSOR > file
  cat <<JSON
{"name": "image processor test", "output_dir": "$T/run",
 "models": {"llm": "$EX/quickstart/models/gemma2-tiny", "vlm": "$EX/quickstart/models/paligemma-tiny"},
 "layers": [1], "hooks": ["blocks.{layer}.hook_resid_post"], "image_processor": "$1",
 "dataset": {"instances": ["$EX/data/coco-sample/annotations/instances_val2017.json"],
             "captions": ["$EX/data/coco-sample/annotations/captions_val2017.json"],
             "images": ["$EX/data/coco-sample/val2017"],
             "groups": {"animals": ["animal"], "vehicles": ["vehicle"], "food": ["food"]},
             "n_per_group": 2, "allow_fewer": true},
 "edits": [{"name": "brightness", "values": [0.6]}],
 "probes": {"which": ["concept"], "seeds": 1, "folds": 2, "bootstrap": 10, "min_test_groups": 1, "permutations": 10}}
JSON
}
cfg torchvision > "$T/tv.json"
cfg pil > "$T/pil.json"
cfg fast > "$T/bad.json"

"$CLI" run "$T/tv.json" > "$T/log1.txt" 2>&1 || fail "run (torchvision): $(tail -5 "$T/log1.txt")"
grep -q '"image_processor":[[:space:]]*"torchvision"' "$T/run/config.resolved.json" || fail "resolved config"
tr -d ' \n\t' < "$T/run/provenance.json" > "$T/prov.txt"
grep -q '"image_processor":{"name":"torchvision","transformers_class":"SiglipImageProcessor"}' "$T/prov.txt" \
  || fail "provenance: $(cat "$T/prov.txt" | head -c 600)"

"$CLI" run "$T/pil.json" > "$T/log2.txt" 2>&1 || fail "run (pil): $(tail -5 "$T/log2.txt")"
tr -d ' \n\t' < "$T/run/provenance.json" > "$T/prov.txt"
grep -q '"image_processor":{"name":"pil","transformers_class":"SiglipImageProcessorPil"}' "$T/prov.txt" \
  || fail "provenance after switching to pil"
grep -q 'llm_text: complete (skipped)' "$T/log2.txt" || fail "llm_text was not kept: $(grep extract "$T/log2.txt")"
grep -q 'vlm_text: complete (skipped)' "$T/log2.txt" || fail "vlm_text was not kept"
grep -q 'vlm_image: inputs changed since it was written; rebuilding' "$T/log2.txt" || fail "vlm_image not rebuilt"
grep -q 'vlm_edits: inputs changed since it was written; rebuilding' "$T/log2.txt" || fail "vlm_edits not rebuilt"

"$CLI" run "$T/pil.json" > "$T/log3.txt" 2>&1 || fail "rerun (pil)"
grep -q 'vlm_image: complete (skipped)' "$T/log3.txt" || fail "unchanged pil run rebuilt vlm_image"

"$CLI" config check "$T/bad.json" > "$T/bad.txt" 2>&1 && fail "config check accepted image_processor \"fast\""
grep -q 'image_processor' "$T/bad.txt" && grep -q 'torchvision' "$T/bad.txt" || fail "message: $(cat "$T/bad.txt")"
echo "cli_run_image_processor: ok"
