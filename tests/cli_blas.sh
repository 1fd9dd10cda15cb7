#!/usr/bin/env bash
# The CLI's BLAS kernel choice (src/cli/main.c, docs/limits.md "BLAS kernel"): --version names
# the library and the kernel and why; a kernel pinned in OPENBLAS_CORETYPE and
# RS_BLAS_KERNEL=auto are obeyed; where OpenBLAS falls back to a generic kernel on this CPU,
# reprshift's choice passes the sgemm check, and a failed check (fault injection) goes back
# to OpenBLAS's own choice and says so. On a CPU OpenBLAS recognises, only the first three
# apply (printed). The fp32 linear layers' route (RS_SGEMM, include/reprshift/blas.h): automatic
# by default (oneDNN on AMD CPUs with AVX-512 in builds with oneDNN, the BLAS elsewhere; both
# branches forced by RS_TEST_SGEMM_AUTO_RULE) and said so, an automatic oneDNN failing its check
# keeps the BLAS and says why; RS_SGEMM=blas is obeyed; an unknown route is an error;
# RS_SGEMM=onednn (builds with oneDNN) reports its passed check and runs a command, and a failed
# check (fault injection) is an error naming it, not a silent fallback. The fp32 attention's
# route (RS_ATTN, ops.h op_attn_route_*): --version names it; an unknown route is an error;
# RS_ATTN=blas and RS_ATTN=fused (where the CPU has AVX-512; an error naming the reason
# elsewhere) give the same hook values to rounding (|diff| <= 1e-5 of max).
set -u
CLI=${RS_CLI:?RS_CLI not set}
fail() { echo "FAIL: $*"; exit 1; }
sg=$(env -u RS_SGEMM "$CLI" --version | sed -n 's/^fp32 linear layers: //p')
echo "fp32 linear layers: $sg"
line() { env -u RS_SGEMM "$@" "$CLI" --version | sed -n 's/^fp32 linear layers: //p'; }
dnnl=1; echo "$sg" | grep -q 'this build has no oneDNN' && dnnl=0
amd512=0; grep -q AuthenticAMD /proc/cpuinfo && grep -qw avx512f /proc/cpuinfo && amd512=1
auto_on='^oneDNN [0-9.]+ f32 matmul, .*\(the automatic choice on AMD CPUs with AVX-512, .*its check passed'
auto_off='^BLAS \(the automatic choice on this CPU; RS_SGEMM=onednn runs them'
if [ $dnnl = 0 ]; then echo "$sg" | grep -q '^BLAS (the default; this build has no oneDNN)' || fail "default route line: $sg"
elif [ $amd512 = 1 ]; then echo "$sg" | grep -Eq "$auto_on" || fail "default route on an AMD CPU with AVX-512: $sg"
else echo "$sg" | grep -Eq "$auto_off" || fail "default route: $sg"; fi
[ "$(line RS_SGEMM=auto)" = "$sg" ] || fail "RS_SGEMM=auto differs from the default: $(line RS_SGEMM=auto)"
[ "$(line RS_SGEMM=blas)" = "BLAS (asked for: RS_SGEMM=blas)" ] || fail "RS_SGEMM=blas: $(line RS_SGEMM=blas)"
if [ $dnnl = 1 ]; then
  on=$(line RS_TEST_SGEMM_AUTO_RULE=1); off=$(line RS_TEST_SGEMM_AUTO_RULE=0)
  echo "automatic rule forced: on \"$on\", off \"$off\""
  echo "$on" | grep -Eq "$auto_on" || fail "automatic rule forced on: $on"
  echo "$off" | grep -Eq "$auto_off" || fail "automatic rule forced off: $off"
  out=$(env -u RS_SGEMM RS_TEST_SGEMM_AUTO_RULE=1 RS_TEST_SGEMM_CHECK_FAIL=1 "$CLI" --version 2>&1); rc=$?
  [ $rc = 0 ] || fail "automatic oneDNN failing its check: exit $rc ($out)"
  echo "$out" | grep -q '^fp32 linear layers: BLAS (the automatic choice on this CPU would be oneDNN .* failed its check, worst error inf' \
    || fail "automatic oneDNN failing its check: $out"
fi
if [ $dnnl = 1 ]; then
  on=$(RS_SGEMM=onednn "$CLI" --version | sed -n 's/^fp32 linear layers: //p')
  echo "RS_SGEMM=onednn: $on"
  echo "$on" | grep -Eq '^oneDNN [0-9.]+ f32 matmul, .*its check passed: worst error [0-9.e+-]+ x the rounding unit over [0-9]+ products' \
    || fail "RS_SGEMM=onednn line: $on"
  out=$(RS_SGEMM=onednn RS_TEST_SGEMM_CHECK_FAIL=1 "$CLI" --version 2>&1); rc=$?
  [ $rc = 2 ] || fail "failed oneDNN check: exit $rc"
  echo "$out" | grep -q 'error: RS_SGEMM=onednn: BLAS (RS_SGEMM=onednn refused: .* failed its check, worst error inf' \
    || fail "failed oneDNN check: $out"
  [ "$(echo "$out" | wc -l)" = 1 ] || fail "failed oneDNN check printed more than its error: $out"
  # a command runs on the route (its parity with transformers: test_gemma2, test_paligemma)
  T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
  RS_SGEMM=onednn "$CLI" extract --model tests/fixtures/models/gemma2-tiny-f32 --hook blocks.1.hook_resid_post \
    --ids 2,17,300,4 --out "$T/a.safetensors" > "$T/log" 2>&1 || { cat "$T/log"; fail "extract with RS_SGEMM=onednn"; }
  [ -s "$T/a.safetensors" ] || fail "extract with RS_SGEMM=onednn wrote nothing"
else
  echo "this build has no oneDNN: RS_SGEMM=onednn not applicable"
  out=$(RS_SGEMM=onednn "$CLI" --version 2>&1); [ $? = 2 ] || fail "RS_SGEMM=onednn without oneDNN accepted"
fi
v=$(env -u OPENBLAS_CORETYPE -u RS_BLAS_KERNEL "$CLI" --version) || fail "--version exited non-zero"
echo "$v"
echo "$v" | head -1 | grep -q '^reprshift [0-9]' || fail "no version line"
echo "$v" | grep -q '^BLAS: ' || fail "no BLAS line"
lib=$(echo "$v" | sed -n 's/^BLAS: \([^ ]*\).*/\1/p')
[ "$lib" = OpenBLAS ] || { echo "BLAS is $lib: no kernel choice to test"; exit 0; }
k=$(echo "$v" | sed -n 's/^BLAS kernel: \([^ ]*\) .*/\1/p')
[ -n "$k" ] || fail "no BLAS kernel line"
auto=$(env -u OPENBLAS_CORETYPE RS_BLAS_KERNEL=auto "$CLI" --version | sed -n 's/^BLAS kernel: //p')
echo "$auto" | grep -q "(OpenBLAS's own choice for this CPU)" || fail "RS_BLAS_KERNEL=auto: $auto"
detected=${auto%% *}
pin=$(env -u RS_BLAS_KERNEL OPENBLAS_CORETYPE=$detected "$CLI" --version | sed -n 's/^BLAS kernel: //p')
[ "$pin" = "$detected (pinned by OPENBLAS_CORETYPE=$detected in the environment)" ] || fail "pinned: $pin"
if echo "$v" | grep -q "chosen by reprshift"; then
  echo "$v" | grep -q "OpenBLAS detected $detected on this CPU" || fail "chosen line does not name the detected kernel"
  echo "$v" | grep -Eq "sgemm check passed: worst error [0-9.e+-]+ x the rounding unit over [0-9]+ products" || fail "no check result"
  [ "$k" != "$detected" ] || fail "chose the detected kernel"
  bad=$(env -u OPENBLAS_CORETYPE -u RS_BLAS_KERNEL RS_TEST_BLAS_CHECK_FAIL=1 "$CLI" --version | sed -n 's/^BLAS kernel: //p')
  echo "$bad"
  [ "${bad%% *}" = "$detected" ] || fail "a failed check kept the chosen kernel: $bad"
  echo "$bad" | grep -q "reprshift refused $k (sgemm check: worst error inf" || fail "refusal not reported: $bad"
  # a command still works after the refusal
  env -u OPENBLAS_CORETYPE -u RS_BLAS_KERNEL RS_TEST_BLAS_CHECK_FAIL=1 "$CLI" tokenize --help >/dev/null || fail "command after refusal"
else
  echo "OpenBLAS's own kernel ($k) kept on this CPU: no choice made, refusal path not applicable"
fi
# RS_ATTN
T=${T:-$(mktemp -d)}; trap 'rm -rf "$T"' EXIT
at=$(env -u RS_ATTN -u RS_ISA "$CLI" --version | sed -n 's/^fp32 attention: //p')
echo "fp32 attention: $at"
[ -n "$at" ] || fail "--version has no 'fp32 attention:' line"
out=$(RS_ATTN=gpu "$CLI" --version 2>&1); rc=$?
[ $rc = 2 ] || fail "RS_ATTN=gpu: exit $rc"
echo "$out" | grep -q 'error: RS_ATTN=gpu: unknown route (use auto, blas or fused)' || fail "RS_ATTN=gpu: $out"
RS_ATTN=blas "$CLI" --version | grep -q '^fp32 attention: two BLAS sgemm per (sequence, head), the softmax rows between them (.*)$' \
  || fail "RS_ATTN=blas not reported"
run_attn() { # route, output: 40 tokens (the fused kernel takes blocks of 32 queries)
  RS_ATTN=$1 "$CLI" extract --model tests/fixtures/models/gemma2-tiny-f32 --hook blocks.1.hook_resid_post \
    --ids $(seq -s, 2 41) --out "$2" > "$T/log" 2>&1 || { cat "$T/log"; fail "extract with RS_ATTN=$1"; }
}
# which branch: what the library says of this CPU (--version), not a second CPU check here;
# test_ops_isa fails (skips, which CI counts as failing) if an AVX-512 level loses the kernel
if ! echo "$at" | grep -q '(the fused kernel needs AVX-512)$'; then
  echo "$at" | grep -q '^the fused AVX-512 kernel' || fail "AVX-512 CPU, default route not fused: $at"
  RS_ISA=avx2 "$CLI" --version | grep -q '^fp32 attention: two BLAS sgemm .*(the fused kernel follows RS_ISA=avx512)' \
    || fail "RS_ISA=avx2 should take the BLAS route"
  run_attn blas "$T/ab.safetensors"
  run_attn fused "$T/af.safetensors"
  [ -s "$T/ab.safetensors" ] && [ -s "$T/af.safetensors" ] || fail "RS_ATTN extract wrote nothing"
  # the values: test_ops_isa (test_attention_fused), test_gemma2 / test_siglip (both routes vs transformers)
else
  out=$(RS_ATTN=fused "$CLI" --version 2>&1); rc=$?
  [ $rc = 2 ] || fail "RS_ATTN=fused without AVX-512 accepted"
  echo "$out" | grep -q 'error: RS_ATTN=fused: the fused kernel needs a CPU with AVX-512' || fail "RS_ATTN=fused: $out"
fi
echo ok
