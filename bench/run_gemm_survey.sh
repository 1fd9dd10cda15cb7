#!/usr/bin/env bash
# fp32 GEMM survey on this machine: every candidate the Debian packages offer, the same
# shapes, the same run, 2 threads, passive wait. Each candidate first passes a correctness
# sweep (bench_gemm.c: ragged shapes, all transposes, against a double reference) — a fast
# wrong kernel does not count.
#   OpenBLAS (the library reprshift links): its own choice (the machine's OPENBLAS_CORETYPE /
#     OPENBLAS_L2_SIZE removed) and each kernel named in KERNELS forced by OPENBLAS_CORETYPE
#     (a kernel the CPU cannot run is skipped: the probe below checks the CPU flags);
#   BLIS (libblis4-openmp) and oneDNN (libdnnl3/libdnnl-dev) when installed: both its
#     dnnl_sgemm and its matmul primitive (the API its own frameworks call).
# Options after BUILD_DIR go to every bench_gemm: --quick, --reps N, --rows N (every shape with
# N rows: a pass's token count), --cold (weights read cold, as in a forward pass).
# usage: bench/run_gemm_survey.sh BUILD_DIR [--quick] [--rows N] [--cold]
#        output also in bench/out/gemm_survey.txt (OUT=file to change)
set -uo pipefail
B=${1:?build dir}
shift
Q=("$@")
KERNELS=${KERNELS:-"Prescott Haswell SkylakeX Cooperlake SapphireRapids"}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2} OMP_WAIT_POLICY=PASSIVE
cd "$(dirname "$0")/.."
mkdir -p bench/out
OUT=${OUT:-bench/out/gemm_survey.txt}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
[ -x "$B/bench_gemm" ] || { echo "no $B/bench_gemm: build first (cmake --build $B --target bench_gemm)"; exit 1; }
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $flags " == *" $1 "* ]]; }
runs() { # can the CPU run this OpenBLAS kernel?
  case $1 in
    Haswell) has avx2 && has fma ;;
    SkylakeX) has avx512f && has avx512bw && has avx512vl ;;
    Cooperlake) has avx512_bf16 ;;
    SapphireRapids) has amx_bf16 || has avx512_fp16 ;;
    *) true ;;
  esac
}
{
  echo "# $(date -u +%FT%TZ) bench_gemm ${Q[*]:-}: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) ; $(nproc) CPUs; threads $OMP_NUM_THREADS"
  echo "# machine's OpenBLAS overrides: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$B/bench_gemm" "${Q[@]}" | sed 's/^gemm OpenBLAS /gemm OpenBLAS(auto) /'
  for k in $KERNELS; do
    if runs "$k"; then env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=$k "$B/bench_gemm" "${Q[@]}" | sed "s/^gemm OpenBLAS /gemm OpenBLAS(forced:$k) /"
    else echo "# OpenBLAS $k: skipped (the CPU lacks its instructions)"; fi
  done
  BLIS=$(ls /usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4 2>/dev/null)
  if [ -n "$BLIS" ]; then
    gcc -O2 -D_GNU_SOURCE -I"$(dirname "$(find /usr/include -name cblas.h | head -1)")" bench/bench_gemm.c -o "$T/gemm_blis" \
        "$BLIS" -lm -fopenmp && BLIS_NUM_THREADS=$OMP_NUM_THREADS "$T/gemm_blis" "${Q[@]}"
  else echo "# BLIS: not installed (apt-get install libblis4-openmp)"; fi
  if [ -e /usr/include/dnnl.h ]; then
    gcc -O2 -DRS_GEMM_DNNL bench/bench_gemm.c -o "$T/gemm_dnnl" -ldnnl -lm && "$T/gemm_dnnl" "${Q[@]}"
    gcc -O2 -DRS_GEMM_DNNL_MATMUL bench/bench_gemm.c -o "$T/gemm_dnnl_mm" -ldnnl -lm && "$T/gemm_dnnl_mm" "${Q[@]}"
  else echo "# oneDNN: not installed (apt-get install libdnnl-dev)"; fi
} 2>&1 | tee "$OUT"
echo
echo "summary (best correct first):"
# "gemm LIB KERNEL summary best_gflops B overall_gflops O correct yes|NO"
grep ' summary ' "$OUT" | awk '{ if ($NF == "yes") printf "%7.1f GFLOP/s overall (best shape %6.1f)  %s %s\n", $8, $6, $2, $3;
                                 else printf "  WRONG RESULTS  %s %s\n", $2, $3 }' | sort -rn | tee -a "$OUT"
