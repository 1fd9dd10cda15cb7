#!/usr/bin/env bash
# reprshift sae match: an SAE matched with itself (every pair at cosine 1, above both nulls),
# the JSON and pairs CSV, and refusals (different d_in, different hooks, the width cap).
# The solver itself is checked against scipy in test_sae_match.
set -u
. "$(dirname "$0")/shared.sh"
cli_init
F=tests/fixtures/sae
GS=$F/gemma-scope-2b-pt-res/layer_3/width_128/average_l0_5
command -v jq >/dev/null || fail "jq is needed (scripts/install-deps.sh --tests)"

expect 0 "sae match: 128 pairs" -- "$CLI" sae match --a $GS --b $F/saelens_jumprelu --out "$T/self.json" --pairs "$T/p.csv" --allow-hook-mismatch
expect 0 "sae match" -- "$CLI" sae match --a $GS --b $GS --out "$T/self.json" --pairs "$T/p.csv" --bootstrap 200 --null-reps 2
[ "$(jq '.frac_matched.value' "$T/self.json")" = 1 ] || fail "self-match fraction is not 1"
[ "$(jq '.frac_matched.n' "$T/self.json")" = 128 ] || fail "n is not 128"
[ "$(jq '.beats_null' "$T/self.json")" = true ] || fail "self-match does not beat the null"
jq -e '.null_random.frac_matched_max < 0.1 and .null_permuted.replicates == 2 and .bootstrap == 200' "$T/self.json" >/dev/null \
  || fail "nulls / options not as asked: $(cat "$T/self.json")"
[ "$(head -1 "$T/p.csv")" = "a_latent,b_latent,cos" ] || fail "pairs header"
[ "$(wc -l < "$T/p.csv")" -eq 129 ] || fail "pairs rows"
awk -F, 'NR > 1 && ($1 != $2 || $3 < 0.9999) { bad = 1 } END { exit bad }' "$T/p.csv" || fail "self-match is not the identity"
# refusals
expect 1 "exceed the exact-matching cap of 100" -- "$CLI" sae match --a $GS --b $GS --max-width 100 --out "$T/x.json"
expect 0 "sae train" -- "$CLI" sae train --acts $F/acts_wide.safetensors --hook blocks.3.hook_resid_post --d-sae 16 --k 2 \
  --steps 5 --batch 8 --out "$T/wide"
expect 1 "has d_in 64 but $T/wide has d_in 128" -- "$CLI" sae match --a $GS --b "$T/wide" --out "$T/x.json"
expect 0 "sae train" -- "$CLI" sae train --acts $F/acts_l4.safetensors --hook blocks.4.hook_resid_post --d-sae 16 --k 2 \
  --steps 5 --batch 8 --out "$T/l4"
expect 1 "on hook 'blocks.3.hook_resid_post' but $T/l4 on 'blocks.4.hook_resid_post'" -- "$CLI" sae match --a $GS --b "$T/l4" --out "$T/x.json"
expect 0 "16 pairs" -- "$CLI" sae match --a $GS --b "$T/l4" --allow-hook-mismatch --out "$T/l4.json"
expect 2 "missing required options" -- "$CLI" sae match --a $GS --out "$T/x.json"
expect 2 '--threshold must be a number in [-1, 1] (got "2")' -- "$CLI" sae match --a $GS --b $GS --threshold 2 --out "$T/x.json"
expect 1 "nope" -- "$CLI" sae match --a $F/nope --b $GS --out "$T/x.json"
[ ! -e "$T/x.json" ] || fail "a refused match wrote output"
echo ok
