#!/usr/bin/env bash
# reprshift generate: --json output against transformers' generate (greedy,
# tests/fixtures/generate/cli_expected.json from tools/reference/gen_generate_goldens.py) on the
# quickstart Gemma-2 (text prompts) and PaliGemma (COCO images + "caption en") models and on a
# tokenizer-less fixture (--ids); plain output; seeded sampling reproducible, top-k 1 = greedy;
# bad input: one clear error, non-zero exit, nothing on stdout.
set -u
CLI=${RS_CLI:?}
PY=$(command -v python3) || { echo "RS-SKIP: cli_generate: needs python3 (to read the JSON output)"; exit 77; }
Q=examples/quickstart/models
EXP=tests/fixtures/generate/cli_expected.json
TINY=tests/fixtures/models/gemma2-tiny-f32
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export RS_QUIET=1

# 1. Gemma-2 text prompts, one JSON object per input, in order
args=()
while IFS= read -r s; do args+=(--text "$s"); done < <("$PY" -c 'import json,sys; [print(r["text_in"]) for r in json.load(open(sys.argv[1]))["gemma2"]]' $EXP)
"$CLI" generate --model $Q/gemma2-tiny "${args[@]}" --max-new-tokens 24 --json > "$T/g.jsonl" 2> "$T/err" || fail "gemma2: $(cat "$T/err")"
# 2. PaliGemma images
args=()
while IFS= read -r s; do args+=(--image "$s"); done < <("$PY" -c 'import json,sys; [print(r["image"]) for r in json.load(open(sys.argv[1]))["paligemma"]]' $EXP)
"$CLI" generate --model $Q/paligemma-tiny "${args[@]}" --prompt "caption en" --max-new-tokens 24 --json > "$T/p.jsonl" 2> "$T/err" || fail "paligemma: $(cat "$T/err")"
# 3. no tokenizer: --ids, text null
args=()
while IFS= read -r s; do args+=(--ids "$s"); done < <("$PY" -c 'import json,sys; [print(",".join(map(str, r["ids_in"]))) for r in json.load(open(sys.argv[1]))["gemma2_tiny_f32_ids"]]' $EXP)
"$CLI" generate --model $TINY "${args[@]}" --max-new-tokens 20 --json > "$T/t.jsonl" 2> "$T/err" || fail "ids: $(cat "$T/err")"
"$PY" - "$EXP" "$T" <<'PYEOF' || fail "JSON output differs from transformers"
import json, sys
exp = json.load(open(sys.argv[1])); d = sys.argv[2]
def rows(f): return [json.loads(l) for l in open(f"{d}/{f}")]
ok = True
for name, f, key_in, exp_rows in (("gemma2", "g.jsonl", "text_in", exp["gemma2"]), ("paligemma", "p.jsonl", "image", exp["paligemma"])):
    got = rows(f)
    if len(got) != len(exp_rows): print(f"{name}: {len(got)} objects, expected {len(exp_rows)}"); ok = False; continue
    for g, e in zip(got, exp_rows):
        if g["input"] != e[key_in] or g["ids"] != e["ids"] or g["text"] != e["text"]:
            print(f"{name}: got {g}, expected {e}"); ok = False
        want_stop = "eos" if e["ids"] and e["ids"][-1] == 1 else "max_new_tokens"
        if g["stop"] != want_stop: print(f"{name}: stop {g['stop']} != {want_stop}"); ok = False
        if name == "paligemma" and g.get("prompt") != "caption en": print("prompt missing"); ok = False
got = rows("t.jsonl")
for g, e in zip(got, exp["gemma2_tiny_f32_ids"]):
    if g["ids"] != e["ids"] or g["text"] is not None or g["stop"] != "max_new_tokens":
        print(f"ids: got {g}, expected {e}"); ok = False
if len(got) != len(exp["gemma2_tiny_f32_ids"]): ok = False
print("cli_generate: %d + %d + %d inputs compared" % (len(rows("g.jsonl")), len(rows("p.jsonl")), len(got)))
sys.exit(0 if ok else 1)
PYEOF

# plain output: the text, one line per input
"$CLI" generate --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 24 > "$T/plain.txt" 2>/dev/null || fail "plain"
want=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["gemma2"][0]["text"])' $EXP)
[ "$(cat "$T/plain.txt")" = "$want" ] || fail "plain output: $(cat "$T/plain.txt") != $want"

# sampling: a seed reproduces; another seed differs; top-k 1 is greedy
S=(--model $Q/gemma2-tiny --text "A dog" --text "A man riding" --max-new-tokens 24 --json)
"$CLI" generate "${S[@]}" --temperature 1.5 --top-p 0.95 --seed 7 > "$T/s1" 2>/dev/null || fail "sample"
"$CLI" generate "${S[@]}" --temperature 1.5 --top-p 0.95 --seed 7 > "$T/s2" 2>/dev/null || fail "sample"
"$CLI" generate "${S[@]}" --temperature 1.5 --top-p 0.95 --seed 8 > "$T/s3" 2>/dev/null || fail "sample"
cmp -s "$T/s1" "$T/s2" || fail "same seed, different output"
cmp -s "$T/s1" "$T/s3" && fail "seeds 7 and 8 gave the same samples"
"$CLI" generate "${S[@]}" > "$T/greedy" 2>/dev/null || fail "greedy"
"$CLI" generate "${S[@]}" --temperature 3 --top-k 1 --seed 99 > "$T/k1" 2>/dev/null || fail "top-k 1"
cmp -s "$T/greedy" "$T/k1" || fail "top-k 1 differs from greedy"
cmp -s "$T/greedy" "$T/s1" && fail "temperature 1.5 gave the greedy output"

# bad input: non-zero exit, a message naming the problem, nothing on stdout
expect_fail() {  # expect_fail NEEDLE ARGS...
  local needle=$1; shift
  "$CLI" generate "$@" > "$T/out" 2> "$T/err" && fail "should fail: $*"
  grep -q -- "$needle" "$T/err" || fail "message for '$*' lacks '$needle': $(cat "$T/err")"
  [ "$(grep -c 'reprshift generate:' "$T/err")" = 1 ] || fail "not one error line for $*: $(cat "$T/err")"
  [ -s "$T/out" ] && fail "output on stdout for $*"
  return 0
}
printf 'not an image' > "$T/bad.jpg"
expect_fail "nowhere" --model "$T/nowhere" --text "A cat" --max-new-tokens 4
expect_fail "missing.jpg" --model $Q/paligemma-tiny --image "$T/missing.jpg" --max-new-tokens 4
expect_fail "bad.jpg" --model $Q/paligemma-tiny --image examples/data/coco-sample/val2017/000000062554.jpg --image "$T/bad.jpg" --max-new-tokens 4
expect_fail "max-new-tokens must be" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 0
expect_fail "max-new-tokens must be" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens -3
expect_fail "max-new-tokens must be" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 5x
expect_fail "max-new-tokens is required" --model $Q/gemma2-tiny --text "A cat"
expect_fail "temperature must be a finite" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 4 --temperature nan
expect_fail "temperature must be a finite" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 4 --temperature inf
expect_fail "temperature must be a finite" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 4 --temperature -0.5
expect_fail "temperature must be a number" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 4 --temperature warm
expect_fail "top-p must be in (0, 1]" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 4 --temperature 1 --top-p 0
expect_fail "top-p must be in (0, 1]" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 4 --temperature 1 --top-p 1.5
expect_fail "top-p must be in (0, 1]" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 4 --temperature 1 --top-p nan
expect_fail "top-k must be" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 4 --top-k -1
expect_fail "seed must be" --model $Q/gemma2-tiny --text "A cat" --max-new-tokens 4 --seed -1
expect_fail "needs a PaliGemma" --model $Q/gemma2-tiny --image examples/data/coco-sample/val2017/000000062554.jpg --max-new-tokens 4
expect_fail "PaliGemma checkpoint" --model $Q/paligemma-tiny --text "A cat" --max-new-tokens 4
expect_fail "no tokenizer.json" --model $TINY --text "A cat" --max-new-tokens 4
expect_fail "outside the vocabulary" --model $TINY --ids 2,99999 --max-new-tokens 4
expect_fail "give an input" --model $TINY --max-new-tokens 4
echo "cli_generate: ok"
