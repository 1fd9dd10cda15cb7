#!/usr/bin/env bash
# Refusals leave nothing behind and say what to do (issue 12 part 8):
#  - a refused `shift` removes the --out folder it created, also after an earlier layer of a
#    sweep had written its per-layer CSV; a folder that existed before is kept;
#  - an SAE that records no hook (a Gemma Scope params.npz outside a layer_N folder) gets a
#    hint naming the option that exists (`--sae-hook`), and that option then works;
#  - `extract --pool mean` numbers inputs from 0 in errors, as rows.jsonl does.
set -u
CLI=${RS_CLI:?RS_CLI not set}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export RS_QUIET=1
F=tests/fixtures/sae
GS=$F/gemma-scope-2b-pt-res/layer_3/width_128/average_l0_5
A=$F/acts_a.safetensors
B=$F/acts_b.safetensors
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# run CODE CMD...: exit status must be CODE; stderr in $T/err
run() { local code=$1; shift; "$@" >"$T/out" 2>"$T/err"; local rc=$?; [ $rc -eq "$code" ] || bad "exit $rc (want $code): $* : $(head -c 300 "$T/err")"; }

# shift: refused before any output
run 1 "$CLI" shift --a $A --b $B --sae $F/bad_arch --out "$T/s1"
[ -e "$T/s1" ] && bad "refused shift left $T/s1: $(ls -A "$T/s1" | tr '\n' ' ')"
# shift sweep: layer 3 succeeds and writes features_*.csv, layer 4 has no activations
run 1 "$CLI" shift --a $A --b $B --sae "$F/gemma-scope-2b-pt-res/layer_{layer}/width_128/average_l0_5" \
  --layers 3,4 --bootstrap 0 --out "$T/s2"
grep -q "blocks.4.hook_resid_post" "$T/err" || bad "sweep error does not name the missing hook: $(cat "$T/err")"
[ -e "$T/s2" ] && bad "refused sweep left $T/s2: $(ls -A "$T/s2" | tr '\n' ' ')"
# the same sweep with layer 3 only succeeds (so the refusal above came from layer 4)
run 0 "$CLI" shift --a $A --b $B --sae "$F/gemma-scope-2b-pt-res/layer_{layer}/width_128/average_l0_5" \
  --layers 3 --bootstrap 0 --out "$T/s3"
ls "$T/s3"/features_*.csv >/dev/null 2>&1 || bad "layer-3 sweep wrote no features CSV"
# a folder that existed is left in place (with what was in it)
mkdir "$T/s4" && echo keep > "$T/s4/mine.txt"
run 1 "$CLI" shift --a $A --b $B --sae $F/bad_arch --out "$T/s4"
[ "$(cat "$T/s4/mine.txt" 2>/dev/null)" = keep ] || bad "refused shift touched a folder that existed before"

# SAE without a hook: the hint names --sae-hook, which then works
cp $GS/params.npz "$T/params.npz"
run 1 "$CLI" sae fit --acts $A --sae "$T/params.npz"
grep -q -- "--sae-hook" "$T/err" || bad "sae fit hint does not name --sae-hook: $(cat "$T/err")"
grep -q -- "pass --hook" "$T/err" && bad "sae fit hint names --hook: $(cat "$T/err")"
run 0 "$CLI" sae fit --acts $A --sae "$T/params.npz" --sae-hook blocks.3.hook_resid_post
grep -q '"explained_variance"' "$T/out" || bad "sae fit with --sae-hook printed no fit"
run 1 "$CLI" shift --a $A --b $B --sae "$T/params.npz" --out "$T/s5"
grep -q -- "--sae-hook" "$T/err" || bad "shift hint does not name --sae-hook: $(cat "$T/err")"
[ -e "$T/s5" ] && bad "refused shift left $T/s5"

# extract --pool mean: input 1 (0-based) is BOS only
M=tests/fixtures/models/gemma2-tiny-f32
printf '2,17,300\n2\n2,45,46\n' > "$T/ids.txt"
run 1 "$CLI" extract --model $M --hook blocks.0.hook_resid_post --ids-file "$T/ids.txt" --pool mean --out "$T/x.safetensors"
grep -q "input 1 (0-based" "$T/err" || bad "pool-mean error does not number the BOS-only input as 1 (0-based): $(cat "$T/err")"
[ -e "$T/x.safetensors" ] && bad "refused extract wrote its output"
# rows.jsonl numbers the same inputs from 0
printf '2,17,300\n2,45,46\n' > "$T/ok.txt"
run 0 "$CLI" extract --model $M --hook blocks.0.hook_resid_post --ids-file "$T/ok.txt" --pool mean --out "$T/y.safetensors"
head -1 "$T/y.safetensors.rows.jsonl" | grep -q '"input":0' || bad "rows.jsonl does not start at input 0: $(head -1 "$T/y.safetensors.rows.jsonl")"

# integer options are parsed whole and range-checked (atol took "12abc" as 12, "x" as 0)
for v in 12abc x "" 0 -5 99999999999999999999 16777217; do
  run 2 "$CLI" extract --model $M --hook blocks.0.hook_resid_post --ids-file "$T/ok.txt" --batch-tokens "$v" --out "$T/z.safetensors"
  grep -qF -- "--batch-tokens must be an integer in [1, 16777216] (got \"$v\")" "$T/err" || bad "extract --batch-tokens $v: $(cat "$T/err")"
  [ -e "$T/z.safetensors" ] && bad "refused --batch-tokens $v wrote output"
  run 2 "$CLI" sae splice --model $M --sae $GS --ids-file "$T/ok.txt" --batch-tokens "$v"
  grep -qF -- "--batch-tokens must be an integer in [1, 16777216] (got \"$v\")" "$T/err" || bad "sae splice --batch-tokens $v: $(cat "$T/err")"
done
run 0 "$CLI" extract --model $M --hook blocks.0.hook_resid_post --ids-file "$T/ok.txt" --batch-tokens 16777216 --out "$T/z.safetensors"

# every subcommand's numeric options go through the same helpers (src/cli/main.c): the whole
# string, no overflow, the range in the message, exit 2 before any work
# numopt EXPECTED-MESSAGE CMD...
numopt() { local want=$1; shift; run 2 "$@"; grep -qF -- "$want" "$T/err" || bad "$*: $(head -c 300 "$T/err")"; }
numopt '--k must be an integer in [1, 2147483647] (got "4x")' "$CLI" sae train --acts $A --hook x --out "$T/t" --k 4x
numopt '--steps must be an integer in [1, ' "$CLI" sae train --acts $A --hook x --out "$T/t" --steps 0
numopt '--seed must be an integer in [0, 18446744073709551615] (got "-1")' "$CLI" sae train --acts $A --hook x --out "$T/t" --seed -1
numopt '--lr must be a number in (0, inf) (got "0")' "$CLI" sae train --acts $A --hook x --out "$T/t" --lr 0
numopt '--layer must be an integer in [0, 1000] (got "3.5")' "$CLI" sae list --layer 3.5
numopt '--seed must be an integer in [0, 18446744073709551615] (got "")' "$CLI" shift --a $A --b $B --seed "" --out "$T/x"
numopt '--bootstrap must be an integer in [0, 1000000] (got "99999999999")' "$CLI" shift --a $A --b $B --bootstrap 99999999999 --out "$T/x"
numopt '--cv must be an integer in [0, 2147483647] (got "5 folds")' "$CLI" probe train --acts $A --hook x --labels x --cv "5 folds" --out "$T/p"
numopt '--C must be a number in (0, inf) (got "nan")' "$CLI" probe train --acts $A --hook x --labels x --C nan --out "$T/p"
numopt '--test-frac must be a number in (0, 1] (got "1e400")' "$CLI" probe eval --acts $A --hook x --labels x --test-frac 1e400
numopt '--seed must be an integer in [0, ' "$CLI" dataset sample --config examples/quickstart.json --seed 1x --out "$T/d"
numopt '--size must be an integer in [1, 8192] (got "0")' "$CLI" preprocess --image x.png --size 0 --out "$T/pp"
numopt '--threads must be an integer in [1, 4096] (got "0")' "$CLI" run examples/quickstart.json --threads 0 --out "$T/r"
[ -e "$T/t" ] || [ -e "$T/x" ] || [ -e "$T/p" ] || [ -e "$T/d" ] || [ -e "$T/pp" ] || [ -e "$T/r" ] && bad "a refused numeric option left output"

echo "cli_refusals: $fails failure(s)"
[ $fails -eq 0 ]
