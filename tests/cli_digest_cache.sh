#!/usr/bin/env bash
# provenance.json checksums: where each file's sha256 comes from (sha256_source) and that
# every source gives the file's true SHA-256 (sha256sum): "computed" on a first run,
# "digest-cache" on a run into another folder, "computed" again for a file whose mtime
# changed, "provenance.json" when the same folder is resumed, nothing read or written with
# --no-digest-cache or RS_DIGEST_CACHE=off, unreadable cache lines skipped with a note.
# Hugging Face cache names ("hf-cache-blob") are checked in cli_hub.sh.
set -u
CLI=${RS_CLI:?RS_CLI not set}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
PY=$(command -v python3) || { echo "RS-SKIP: cli_digest_cache: needs python3 (to read provenance.json)"; exit 77; }

# private copies of the tiny models (their mtimes are changed below)
cp -r examples/quickstart/models "$T/models"
M=$T/models
C=$PWD/examples/data/coco-sample
cat >"$T/small.json" <<JSON
{"output_dir": "unused",
 "models": {"llm": "$M/gemma2-tiny", "vlm": "$M/paligemma-tiny"},
 "layers": [1],
 "saes": {"path": "$M/sae/blocks.{layer}.hook_resid_post"},
 "dataset": {"instances": ["$C/annotations/instances_train2017.json", "$C/annotations/instances_val2017.json"],
             "captions": ["$C/annotations/captions_train2017.json", "$C/annotations/captions_val2017.json"],
             "images": ["$C/train2017", "$C/val2017"], "groups": {"animals": ["animal"], "vehicles": ["vehicle"]}, "n_per_group": 4},
 "conditions": ["llm", "vlm_text"], "probes": {"which": ["concept"], "seeds": 1, "folds": 2, "bootstrap": 10, "min_test_groups": 1, "permutations": 0},
 "permutations": 0}
JSON
DC=$T/cache/sub/sha256.tsv
run() { RS_DIGEST_CACHE=$1 "$CLI" run "$T/small.json" --out "$2" --threads 1 --quiet "${@:3}" >/dev/null 2>"$T/err" \
          || { cat "$T/err"; fail "run into $2 failed"; }; }
# sources SOURCE...: every file's source is one of them and its sha256 equals sha256sum's
check() {
  "$PY" - "$1/provenance.json" "${@:2}" <<'PYEOF' || fail "provenance of $1"
import json, hashlib, sys
p = json.load(open(sys.argv[1])); want = sys.argv[2:]
for f in p["files"]:
    h = hashlib.sha256(open(f["path"], "rb").read()).hexdigest()
    assert f["sha256"] == h, (f["path"], f["sha256"], h)
    assert f["sha256_source"] in want, (f["path"], f["sha256_source"], want)
print(len(p["files"]), "files:", sorted(set(f["sha256_source"] for f in p["files"])))
PYEOF
}
run "$DC" "$T/r1"
check "$T/r1" computed
[ -s "$DC" ] || fail "the digest cache was not written (or its folder not made)"
n=$(wc -l <"$DC")
nf=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["files"]))' "$T/r1/provenance.json")
[ "$n" -eq "$nf" ] || fail "digest cache has $n lines for $nf files"
grep -q "0 from the digest cache, $nf computed" "$T/r1/run.log" || fail "run.log does not count the sources"

run "$DC" "$T/r2"
check "$T/r2" digest-cache
grep -q "$nf from the digest cache, 0 computed" "$T/r2/run.log" || fail "second run did not use the cache"

# a file whose mtime changed is hashed again; the others still come from the cache
touch -d '2001-02-03 04:05:06' "$M/gemma2-tiny/config.json"
run "$DC" "$T/r3"
check "$T/r3" digest-cache computed
"$PY" - "$T/r3/provenance.json" <<'PYEOF' || fail "the touched file was not recomputed"
import json, sys
src = {f["path"].split("/models/")[1]: f["sha256_source"] for f in json.load(open(sys.argv[1]))["files"]}
assert src["gemma2-tiny/config.json"] == "computed", src
assert sum(v == "computed" for v in src.values()) == 1, src
PYEOF
[ "$(wc -l <"$DC")" -eq "$n" ] || fail "the cache grew instead of replacing the changed file's line"

# resuming the same folder takes its own provenance.json first
run "$DC" "$T/r3"
check "$T/r3" provenance.json

# unreadable lines: skipped with a note, dropped on the next save
printf 'not a digest line\n' >>"$DC"
touch -d '2001-02-03 04:05:07' "$M/gemma2-tiny/config.json"
run "$DC" "$T/r4"
check "$T/r4" digest-cache computed
grep -q "1 unreadable line skipped" "$T/r4/run.log" || fail "no note about the unreadable line"
grep -q "not a digest line" "$DC" && fail "the unreadable line survived the save"

# off: nothing read or written
rm -f "$DC"
run off "$T/r5"
check "$T/r5" computed
[ -e "$DC" ] && fail "RS_DIGEST_CACHE=off wrote the cache"
run "$DC" "$T/r6" --no-digest-cache
[ -e "$DC" ] && fail "--no-digest-cache wrote the cache"
"$CLI" run --help | grep -q -- "--no-digest-cache" || fail "--help does not list --no-digest-cache"
echo "cli_digest_cache: ok ($nf files)"
