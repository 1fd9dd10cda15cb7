#!/usr/bin/env bash
# reprshift intervene / reprshift lens: results tied to the transformers goldens
# (tests/fixtures/intervene, tools/reference/gen_intervene_goldens.py; the full comparison
# is tests/test_intervene.c), text output, PaliGemma with an image, and bad input: one
# line on stderr naming the problem, non-zero exit, nothing on stdout.
set -u
CLI=${RS_CLI:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export RS_QUIET=1
fail() { echo "FAIL: $*"; exit 1; }
M=tests/fixtures/models/gemma2-tiny-f32
Q=examples/quickstart/models
D=tests/fixtures/intervene/dir.safetensors
S=tests/fixtures/splice/sae_l1_jumprelu
IDS=2,17,300,4,9,33,120,77
SRC=2,45,46,47,250,11,400,5
# the "kl" of the last read-out position, compared with the golden value to 1e-4
kl_is() { # json want label
  got=$(echo "$1" | sed 's/.*"kl": \([-0-9.e+]*\).*/\1/')
  awk -v g="$got" -v w="$2" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= 1e-4) }' || fail "$3: KL $got, reference $2"
}
out=$("$CLI" intervene --model $M --ids $IDS --spec "add@blocks.1.hook_resid_post:dir=$D:alpha=2" --target-ids 5,17 --json) ||
  fail "add run"
kl_is "$out" 2.609421867152473 "add"
for k in logit_clean logit_intervened delta_logit prob_clean prob_intervened delta_prob top_clean top_intervened '"scale"'; do
  echo "$out" | grep -q "$k" || fail "missing $k in $out"
done
echo "$out" | grep -q '"alpha_units": "mean_l2_norm"' || fail "alpha units: $out"
out=$("$CLI" intervene --model $M --ids $IDS --source-ids $SRC --spec "patch@blocks.2.hook_resid_pre:from=1:pos=3" --json) ||
  fail "patch run"
kl_is "$out" 0.14531612427935303 "patch"
# (the golden's SAE feature is recorded in its metadata; 190 when generated)
out=$("$CLI" intervene --model $M --ids $IDS --spec "sae@blocks.1.hook_resid_post:sae=$S:feature=190:zero" --json) ||
  fail "sae run"
kl_is "$out" 0.06705636834317222 "sae zero"
# several read-out positions; text output with targets given as strings
out=$("$CLI" intervene --model $Q/gemma2-tiny --text "a red cat sat on the" --spec "project@blocks.2.hook_resid_post:dir=$D" \
  --targets " cat, dog" --positions 0,-1) || fail "text run"
echo "$out" | grep -q "position 0 " || fail "position 0 missing: $out"
echo "$out" | grep -q "' cat'" || fail "target cat missing: $out"
echo "$out" | grep -q "KL(clean || intervened)" || fail "KL missing: $out"
# PaliGemma: image + prompt prefix, patch the image rows from another image
I1=tests/fixtures/images/resize_chelsea_224.png; I2=tests/fixtures/images/resize_000000069468_224.png
out=$("$CLI" intervene --model $Q/paligemma-tiny --image $I1 --text "a red" --source-image $I2 \
  --spec "patch@blocks.0.hook_resid_post:from=1:pos=0,1,2,3" --json) || fail "paligemma run"
echo "$out" | grep -q '"n_image_tokens": 16' || fail "paligemma image tokens: $out"
# lens: every layer, top-k ids; --json
out=$("$CLI" lens --model $M --ids $IDS --top-k 3 --json) || fail "lens run"
[ "$(echo "$out" | grep -o '"layer": ' | wc -l)" = 4 ] || fail "lens layers: $out"
out=$("$CLI" lens --model $Q/paligemma-tiny --image $I1 --text "a" --layers -1 --positions 0,-1) || fail "paligemma lens"
echo "$out" | grep -q "\[img\]" || fail "lens image rows: $out"

bad() { # expected-substring, then the command's arguments
  want=$1; shift
  "$CLI" "$@" > "$T/o" 2> "$T/e"; rc=$?
  [ $rc -ne 0 ] || fail "accepted: $*"
  [ ! -s "$T/o" ] || fail "partial output for: $* : $(cat "$T/o")"
  [ "$(wc -l < "$T/e")" -le 2 ] || fail "more than one message for: $*: $(cat "$T/e")"
  grep -qF -- "$want" "$T/e" || fail "message for '$*' lacks '$want': $(cat "$T/e")"
}
IV="intervene --model $M --ids $IDS"
# a probe from `reprshift probe train` as the direction (raw activation units, docs/interventions.md)
printf '2,17,300,4\n2,45,46,47\n2,9,33,120\n2,250,11,400\n2,17,9,5\n2,46,300,77\n' > "$T/ids.txt"
printf 'a\nb\na\nb\na\nb\n' > "$T/labels.txt"
"$CLI" extract --model $M --hook blocks.1.hook_resid_post --ids-file "$T/ids.txt" --pool mean --out "$T/acts.safetensors" \
  >/dev/null 2>&1 || fail "extract for the probe"
"$CLI" probe train --acts "$T/acts.safetensors" --hook blocks.1.hook_resid_post --labels "$T/labels.txt" --C 1 \
  --out "$T/probe.safetensors" >/dev/null 2>&1 || fail "probe train"
out=$("$CLI" intervene --model $M --ids $IDS --spec "add@blocks.1.hook_resid_post:dir=$T/probe.safetensors:alpha=1" --json) ||
  fail "probe direction run"
echo "$out" | grep -q '"kl": [0-9]' || fail "probe direction: $out"
# toward classes[0] = minus toward classes[1]
a=$("$CLI" intervene --model $M --ids $IDS --spec "add@blocks.1.hook_resid_post:dir=$T/probe.safetensors:a:alpha=1" --json) ||
  fail "probe class a"
b=$("$CLI" intervene --model $M --ids $IDS --spec "add@blocks.1.hook_resid_post:dir=$T/probe.safetensors:b:alpha=-1" --json) ||
  fail "probe class b"
[ "$(echo "$a" | sed 's/"spec": "[^"]*"//')" = "$(echo "$b" | sed 's/"spec": "[^"]*"//; s/"alpha": -1/"alpha": 1/')" ] ||
  fail "class a with alpha 1 differs from class b with alpha -1: $a vs $b"
bad "no class 'c'" $IV --spec "add@blocks.1.hook_resid_post:dir=$T/probe.safetensors:c:alpha=1"
# specs from a file (one per line, # comments), as a config would list them
printf '# steer\nadd@blocks.1.hook_resid_post:dir=%s:alpha=2\n\n' "$D" > "$T/specs.txt"
out=$("$CLI" intervene --model $M --ids $IDS --specs-file "$T/specs.txt" --json) || fail "specs file"
kl_is "$out" 2.609421867152473 "specs file"
bad "$T/nospecs.txt" $IV --specs-file "$T/nospecs.txt"
printf '# nothing\n' > "$T/empty.txt"
bad "no specs" $IV --specs-file "$T/empty.txt"

# ---- bad input ----
bad "blocks.7.hook_resid_post" $IV --spec "add@blocks.7.hook_resid_post:dir=$D:alpha=1"
bad "hook_resid_postt" $IV --spec "add@blocks.1.hook_resid_postt:dir=$D:alpha=1"
bad "unknown kind 'steer'" $IV --spec "steer@blocks.1.hook_resid_post:dir=$D:alpha=1"
bad "width 64" $IV --spec "add@blocks.1.hook_resid_post:dir=$D:narrow:alpha=1"
bad "no tensor 'nope'" $IV --spec "add@blocks.1.hook_resid_post:dir=$D:nope:alpha=1"
bad "$T/none.safetensors" $IV --spec "add@blocks.1.hook_resid_post:dir=$T/none.safetensors:alpha=1"
bad "alpha must be a finite number" $IV --spec "add@blocks.1.hook_resid_post:dir=$D:alpha=nan"
bad "alpha_abs must be a finite number" $IV --spec "add@blocks.1.hook_resid_post:dir=$D:alpha_abs=inf"
bad "alpha=A" $IV --spec "add@blocks.1.hook_resid_post:dir=$D"
bad "trained on hook 'blocks.1.hook_resid_post', not blocks.2.hook_resid_post" $IV --spec "sae@blocks.2.hook_resid_post:sae=$S:feature=3:zero"
bad "feature 5000 is out of range" $IV --spec "sae@blocks.1.hook_resid_post:sae=$S:feature=5000:zero"
bad "from=2" $IV --source-ids $SRC --spec "patch@blocks.1.hook_resid_post:from=2"
bad "position 9" $IV --spec "project@blocks.1.hook_resid_post:dir=$D:pos=9"
bad "equal lengths" $IV --source-ids 2,5 --spec "patch@blocks.1.hook_resid_post:from=1"
bad "token id 600" $IV --target-ids 600 --spec "project@blocks.1.hook_resid_post:dir=$D"
bad "not one token" intervene --model $Q/gemma2-tiny --text "a cat" --targets " cat,the" --spec "project@blocks.1.hook_resid_post:dir=$D"
bad "no tokenizer.json" intervene --model $M --text "a cat" --spec "project@blocks.1.hook_resid_post:dir=$D"
bad "--image needs a PaliGemma model" intervene --model $Q/gemma2-tiny --image $I1 --spec "project@blocks.1.hook_resid_post:dir=$D"
bad "--positions: 8 is outside" $IV --positions 8 --spec "project@blocks.1.hook_resid_post:dir=$D"
bad "--top-k" $IV --top-k -1 --spec "project@blocks.1.hook_resid_post:dir=$D"
bad "--layers" lens --model $M --ids $IDS --layers 4
bad "token id 9999" lens --model $M --ids 2,9999
"$CLI" intervene --model $M --ids $IDS 2>/dev/null >/dev/null; [ $? = 2 ] || fail "no --spec: usage exit code"
"$CLI" lens --model $M 2>/dev/null >/dev/null; [ $? = 2 ] || fail "lens without input: usage exit code"
echo ok
