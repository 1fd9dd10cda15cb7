#!/usr/bin/env bash
# reprshift shift / sae: exit codes and messages on good and bad input (fixtures from
# tools/reference/gen_sae_goldens.py: extract-layout activation files, sae-lens and Gemma
# Scope SAEs). Metric values themselves are checked in test_shift / test_shift_run.
set -u
. "$(dirname "$0")/shared.sh"
cli_init
F=tests/fixtures/sae
GS=$F/gemma-scope-2b-pt-res/layer_3/width_128/average_l0_5
A=$F/acts_a.safetensors
B=$F/acts_b.safetensors

expect 0 "results" -- "$CLI" shift --a $A --b $B --sae $F/saelens_jumprelu --bootstrap 50 --out "$T/o1"
for f in results.json summary.csv features_blocks.3.hook_resid_post.csv tokens_blocks.3.hook_resid_post.csv; do
  [ -s "$T/o1/$f" ] || fail "missing $f"
done
grep -q '"special_tokens_excluded":	true' "$T/o1/results.json" || fail "BOS not excluded by default"
grep -q '"n_rows":	32' "$T/o1/results.json" || fail "want 40 tokens - 8 BOS = 32 rows"
# Gemma Scope npz with the hook derived from layer_3, a {layer} sweep
expect 0 "results" -- "$CLI" shift --a $A --b $B --sae "$F/gemma-scope-2b-pt-res/layer_{layer}/width_128/average_l0_5" \
  --layers 3 --bootstrap 0 --out "$T/o2"
grep -q '"hook_source":	"derived from path"' "$T/o2/results.json" || fail "hook not derived from path"
# raw-only (no SAE)
expect 0 "results" -- "$CLI" shift --a $A --b $B --bootstrap 10 --out "$T/o3"
# permutation nulls (default 200) and BH q-values in results.json and summary.csv
grep -q '"permutations":	200' "$T/o1/results.json" || fail "default is not 200 permutations"
grep -q '"p_value":	0.004975' "$T/o1/results.json" || fail "no p-value 1/201"
grep -q '"q_value"' "$T/o1/results.json" || fail "no q-values"
head -1 "$T/o1/summary.csv" | grep -qx 'layer,hook,metric,value,ci_lo,ci_hi,p_value,null_lo,null_hi,q_value' || fail "summary.csv header"
grep -q ',cka_debiased,' "$T/o1/summary.csv" && grep -q ',cos_centred,' "$T/o1/summary.csv" || fail "new metrics missing from summary.csv"
[ -s "$T/o1/token_types_blocks.3.hook_resid_post.csv" ] || fail "missing token_types csv"
head -1 "$T/o1/token_types_blocks.3.hook_resid_post.csv" | grep -qx 'token_id,token,count,mean_cos_raw,ci_lo,ci_hi,freq_bin,excess' || fail "token_types header"
expect 2 "--min-count must be an integer in [1, 2147483647] (got \"0\")" -- "$CLI" shift --a $A --b $B --min-count 0 --out "$T/x"
# zero permutations: metrics without p-values, and the output says so
expect 0 "without p-values" -- "$CLI" shift --a $A --b $B --bootstrap 0 --permutations 0 --out "$T/o5"
grep -q '"p_value":	null' "$T/o5/results.json" || fail "p-value not null with 0 permutations"
grep -q '"permutation_test":	"not run' "$T/o5/results.json" || fail "results.json does not say the test was not run"
expect 2 "--permutations must be an integer in [0, 1000000] (got \"-1\")" -- "$CLI" shift --a $A --b $B --permutations -1 --out "$T/x"
expect 2 "--permutations must be an integer in [0, 1000000] (got \"x\")" -- "$CLI" shift --a $A --b $B --permutations x --out "$T/x"

# bad input: clear message, exit 1
expect 2 "required" -- "$CLI" shift --a $A --out "$T/x"
expect 1 "nope.safetensors" -- "$CLI" shift --a $F/nope.safetensors --b $B --out "$T/x"
expect 1 "unknown SAE architecture 'gated_mystery'" -- "$CLI" shift --a $A --b $B --sae $F/bad_arch --out "$T/x"
expect 1 "missing array 'threshold'" -- "$CLI" shift --a $A --b $B --sae $F/bad_missing --sae-hook blocks.3.hook_resid_post --out "$T/x"
expect 1 "has shape" -- "$CLI" shift --a $A --b $B --sae $F/bad_shape --sae-hook blocks.3.hook_resid_post --out "$T/x"
expect 1 "NaN" -- "$CLI" shift --a $A --b $F/acts_nan.safetensors --sae $GS --out "$T/x"
expect 1 "does not match the activation width 128" -- "$CLI" shift --a $F/acts_wide.safetensors --b $F/acts_wide.safetensors --sae $GS --out "$T/x"
expect 1 "trained on hook 'blocks.3.hook_resid_post'" -- "$CLI" shift --a $F/acts_l4.safetensors --b $F/acts_l4.safetensors --sae $GS --out "$T/x"
expect 0 "results" -- "$CLI" shift --a $F/acts_l4.safetensors --b $F/acts_l4.safetensors --sae $GS --allow-hook-mismatch --bootstrap 0 --out "$T/o4"
[ ! -e "$T/x/results.json" ] || fail "results written despite errors"

# sae fit / train
expect 0 '"explained_variance"' -- "$CLI" sae fit --acts $A --sae $GS
expect 1 "NaN" -- "$CLI" sae fit --acts $F/acts_nan.safetensors --sae $GS
expect 0 "sae train" -- "$CLI" sae train --acts $A --hook blocks.3.hook_resid_post --d-sae 32 --k 4 --steps 50 --batch 16 --out "$T/sae"
[ -s "$T/sae/cfg.json" ] && [ -s "$T/sae/sae_weights.safetensors" ] || fail "trained SAE not saved"
expect 0 '"fit"' -- "$CLI" sae fit --acts $A --sae "$T/sae"
echo ok
