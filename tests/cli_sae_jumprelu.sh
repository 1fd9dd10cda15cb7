#!/usr/bin/env bash
# reprshift sae train --arch jumprelu: a trained SAE that sae fit loads; option refusals.
# (The objective's gradients and planted recovery are checked in test_sae_jumprelu.)
set -u
. "$(dirname "$0")/shared.sh"
cli_init
F=tests/fixtures/sae
A=$F/acts_a.safetensors
H=blocks.3.hook_resid_post

expect 0 "sae train: jumprelu" -- "$CLI" sae train --acts $A --hook $H --arch jumprelu --d-sae 48 --steps 200 --batch 16 \
  --l0-coef 0.02 --bandwidth 0.05 --init-threshold 0.05 --l0-warmup 20 --out "$T/jr"
grep -q '"architecture":	"jumprelu"' "$T/jr/cfg.json" || fail "cfg.json architecture is not jumprelu"
grep -q '"apply_b_dec_to_input":	false' "$T/jr/cfg.json" || fail "jumprelu SAE should not subtract b_dec"
expect 0 '"architecture": "jumprelu"' -- "$CLI" sae fit --acts $A --sae "$T/jr"
ev=$(sed -n 's/.*"fit": {[^}]*"explained_variance": \([-0-9.e]*\).*/\1/p' "$T/out")
awk -v e="$ev" 'BEGIN { exit !(e > 0.5) }' || fail "trained JumpReLU SAE explains only $ev of the variance"
# the default stays TopK
expect 0 "sae train" -- "$CLI" sae train --acts $A --hook $H --d-sae 32 --k 4 --steps 20 --batch 16 --out "$T/tk"
grep -q '"architecture":	"topk"' "$T/tk/cfg.json" || fail "default architecture is not topk"
# refusals: exit 2, nothing written
expect 2 '--arch must be topk or jumprelu (got "gated")' -- "$CLI" sae train --acts $A --hook $H --arch gated --out "$T/x"
expect 2 "--k is a TopK option" -- "$CLI" sae train --acts $A --hook $H --arch jumprelu --k 4 --out "$T/x"
expect 2 "need --arch jumprelu" -- "$CLI" sae train --acts $A --hook $H --l0-coef 0.1 --out "$T/x"
expect 2 '--bandwidth must be a number in (0, inf) (got "0")' -- "$CLI" sae train --acts $A --hook $H --arch jumprelu --bandwidth 0 --out "$T/x"
expect 2 '--l0-coef must be a number in [0, inf) (got "-1")' -- "$CLI" sae train --acts $A --hook $H --arch jumprelu --l0-coef -1 --out "$T/x"
expect 2 '--init-threshold must be a number in (0, inf) (got "nan")' -- "$CLI" sae train --acts $A --hook $H --arch jumprelu --init-threshold nan --out "$T/x"
[ ! -e "$T/x" ] || fail "a refused command wrote output"
expect 0 "--arch jumprelu" -- "$CLI" sae --help
echo ok
