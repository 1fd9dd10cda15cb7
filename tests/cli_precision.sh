#!/usr/bin/env bash
# --precision on reprshift extract and generate (docs/precision.md): fp32 is the default and the explicit
# fp32 file is byte-identical to it; bf16 gives different values, every one a bf16 value,
# and records "precision" in the file; PaliGemma runs its vision tower, projector and decoder in bf16; a bad value is
# refused with exit status 2 and no file. Parity of the bf16 values with transformers is
# tested in test_bf16.
set -u
CLI=${RS_CLI:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export RS_QUIET=1
M=tests/fixtures/models/gemma2-tiny-bf16
H=blocks.0.hook_resid_pre,blocks.4.attn.hook_z,blocks.4.hook_resid_post,ln_final.hook_out
x() { "$CLI" extract --model "$1" --hook "$H" --ids 2,17,99,5,300,7,8 --out "$2" "${@:3}" 2>/dev/null; }
x $M "$T/def.st" || fail "extract (default)"
x $M "$T/f32.st" --precision fp32 || fail "extract --precision fp32"
x $M "$T/b16.st" --precision bf16 || fail "extract --precision bf16"
cmp -s "$T/def.st" "$T/f32.st" || fail "--precision fp32 differs from the default"
cmp -s "$T/def.st" "$T/b16.st" && fail "--precision bf16 gave the fp32 values"
grep -aq '"precision":"bf16"' "$T/b16.st" || fail "bf16 file does not record its precision"
grep -aq '"precision"' "$T/def.st" && fail "fp32 file records a precision key (fp32 files must stay unchanged)"
# every F32 value of the bf16 file is a bf16 value: its low 16 bits are zero
hl=$(od -An -tu8 -N8 "$T/b16.st" | tr -d ' ')
bad=$(od -An -v -tx4 -j $((8 + hl)) "$T/b16.st" | tr -s ' ' '\n' | grep -v '^$' | head -c 100000000 | grep -c -v '0000$')
# the I32/I64 token ids and offsets hold small integers (low halves non-zero): 7 ids + 2×2 offset words
[ "$bad" -le 11 ] || fail "$bad words of the bf16 file are not bf16 values"
x $M "$T/b16b.st" --precision bf16 || fail "extract --precision bf16 (again)"
cmp -s "$T/b16.st" "$T/b16b.st" || fail "bf16 extract is not deterministic"
# the product route (RS_BF16_GEMM): emulated always works; an unknown route is refused
RS_BF16_GEMM=emulated x $M "$T/b16e.st" --precision bf16 || fail "RS_BF16_GEMM=emulated extract"
RS_BF16_GEMM=emulated "$CLI" --version | grep -q '^bf16 compute (--precision bf16): emulated (forced' || fail "RS_BF16_GEMM=emulated not applied"
err=$(RS_BF16_GEMM=fast "$CLI" --version 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] || fail "RS_BF16_GEMM=fast: exit status $rc, want 2"
echo "$err" | grep -q 'RS_BF16_GEMM=fast: unknown route' || fail "RS_BF16_GEMM=fast: message was: $err"
# PaliGemma: the decoder in bf16
P=tests/fixtures/models/paligemma-tiny-bf16
"$CLI" extract --model $P --hook blocks.1.hook_resid_post --image tests/fixtures/images/resize_chelsea_224.png \
  --prompt-ids 207,9,100 --out "$T/p16.st" --precision bf16 2>/dev/null || fail "PaliGemma extract --precision bf16"
"$CLI" extract --model $P --hook blocks.1.hook_resid_post --image tests/fixtures/images/resize_chelsea_224.png \
  --prompt-ids 207,9,100 --out "$T/p32.st" 2>/dev/null || fail "PaliGemma extract"
cmp -s "$T/p16.st" "$T/p32.st" && fail "PaliGemma --precision bf16 gave the fp32 values"
grep -aq '"precision":"bf16"' "$T/p16.st" || fail "PaliGemma bf16 file does not record its precision"
# refusals
err=$("$CLI" extract --model $M --hook "$H" --ids 2,5 --out "$T/bad.st" --precision fp16 2>&1); rc=$?
[ $rc -eq 2 ] || fail "--precision fp16: exit status $rc, want 2"
echo "$err" | grep -q -- '--precision must be fp32 or bf16 (got "fp16")' || fail "--precision fp16: message was: $err"
[ -e "$T/bad.st" ] && fail "--precision fp16 left a file"
# generate: bf16 runs (its parity with transformers' bf16 generate is in test_bf16); a bad value is refused
"$CLI" generate --model $M --ids 2,17,99,5 --max-new-tokens 3 --precision bf16 >/dev/null 2>&1 || fail "generate --precision bf16"
err=$("$CLI" generate --model $M --ids 2,17 --max-new-tokens 3 --precision half 2>&1); rc=$?
[ $rc -eq 2 ] || fail "generate --precision half: exit status $rc, want 2"
echo "$err" | grep -q -- '--precision must be fp32 or bf16' || fail "generate --precision half: message was: $err"
# the automatic product route follows the CPU (/proc/cpuinfo read here, independently of the
# library's cpuid): native with AMX-BF16, or with AVX512-BF16 on AMD; emulated on other CPUs
# with AVX512-BF16 and without bf16 instructions; always emulated in a build without oneDNN
bl=$("$CLI" --version | sed -n 's/^bf16 compute (--precision bf16): //p')
echo "bf16 compute: $bl"
flags=$(grep -m1 '^flags' /proc/cpuinfo)
if echo "$bl" | grep -q 'built without oneDNN'; then want='^emulated ('
elif [[ " $flags " == *" amx_bf16 "* ]]; then want='^native (oneDNN [0-9.]* bf16 matmul, AMX-BF16)'
elif [[ " $flags " == *" avx512_bf16 "* ]] && grep -q AuthenticAMD /proc/cpuinfo; then
  want="^native (oneDNN [0-9.]* bf16 matmul, AVX512-BF16, whose vdpbf16ps outruns this CPU's fp32 FMAs)"
elif [[ " $flags " == *" avx512_bf16 "* ]]; then want='^emulated (f32 sgemm on bf16 values: this CPU has AVX512-BF16 but no AMX-BF16'
else want='^emulated (f32 sgemm on bf16 values; this CPU lacks AVX512-BF16/AMX-BF16)'; fi
echo "$bl" | grep -q "$want" || fail "automatic bf16 route: \"$bl\", want /$want/"

# reprshift run with models.precision bf16: the quickstart config (paths made absolute; 6 images a
# group instead of 8, to keep the test short under the sanitizers) runs every
# stage in bf16 (extract, shift, conditions, downstream, steer open their models with it), and its
# results differ from the fp32 run's
EX="$(pwd)/examples"
for prec in fp32 bf16; do
  sed -e "s#\"quickstart/#\"$EX/quickstart/#g" -e "s#\"data/#\"$EX/data/#g" \
      -e "s#\"output_dir\": \"[^\"]*\"#\"output_dir\": \"$T/run-$prec\"#" \
      -e 's#"n_per_group": 8#"n_per_group": 6#' -e 's#"min_test_groups": 5#"min_test_groups": 2#' \
      -e "s#\"vlm\": \"\([^\"]*\)\"\$#\"vlm\": \"\1\", \"precision\": \"$prec\"#" \
      "$EX/quickstart.json" > "$T/qs-$prec.json"
  grep -q "\"precision\": \"$prec\"" "$T/qs-$prec.json" || fail "could not set models.precision in the quickstart config"
  "$CLI" run "$T/qs-$prec.json" --quiet >"$T/run-$prec.log" 2>&1 || { cat "$T/run-$prec.log"; fail "run with models.precision $prec"; }
  for f in shift.json conditions.json downstream.json steer.json; do
    [ -s "$T/run-$prec/results/$f" ] || fail "run ($prec): results/$f missing"
  done
done
cmp -s "$T/run-fp32/acts/vlm_image/shard-00000.safetensors" "$T/run-bf16/acts/vlm_image/shard-00000.safetensors" \
  && fail "run: the image store is the same in fp32 and bf16"
for f in shift.json downstream.json steer.json; do
  cmp -s "$T/run-fp32/results/$f" "$T/run-bf16/results/$f" && fail "run: results/$f equal in fp32 and bf16"
done
echo "cli_precision: ok"
