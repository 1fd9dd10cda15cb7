# Sourced by bench/run_gemma2_bench.sh and bench/run_paligemma_bench.sh (from the repository
# root, after `set -euo pipefail`): the set-up both share and their results plumbing.
#   REF_ENV   runs the reference: numpy/scipy bundle a current OpenBLAS, so the machine's
#             OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides are removed (they exist for older
#             OpenBLAS builds, like the Debian one reprshift links, and would force slower
#             kernels on it)
#   REFENV (default /work/refenv), DATA (../shared/data), TOKJSON (RS_TOKENIZER_JSON or the
#   shared tokenizer), BUILD (RS_BUILD_DIR or build), OUT (bench/out, created)
REF_ENV="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
REFENV=${REFENV:-/work/refenv}
DATA=../shared/data
TOKJSON=${RS_TOKENIZER_JSON:-$DATA/tokenizer/tokenizer.json}
BUILD=${RS_BUILD_DIR:-build}
OUT=bench/out; mkdir -p "$OUT"

# bench_rs_env: 2 threads on both sides, and RS_ENV, which runs reprshift's side on the
# OpenBLAS kernel the CLI would run (docs/pipeline.md, "BLAS kernel"; the bench programs link
# the library directly and would get OpenBLAS's own choice).
bench_rs_env() {
  export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
  RS_KERNEL=$("$BUILD/reprshift" --version | sed -n 's/^BLAS kernel: \([^ ]*\) .*/\1/p')
  if [ -n "$RS_KERNEL" ]; then echo "# reprshift BLAS kernel: $RS_KERNEL" >&2; fi
  RS_ENV="env ${RS_KERNEL:+OPENBLAS_CORETYPE=$RS_KERNEL}"
  # RS_BENCH_PROFILE=1: reprshift's runs also time every backend entry (--profile; the
  # summary prints a per-entry table). The timers cost a few calls per layer: negligible.
  PROFILE_ARG=$([ "${RS_BENCH_PROFILE:-0}" = 1 ] && echo --profile || true)
  # RS_BENCH_REPEAT (default 2): reprshift's forward passes per process, the fastest reported.
  # The first pass pays the page-in of the memory-mapped weights (7.6 s of 72 s for the
  # 256 captions through 26 layers, 2026-12-03); the reference loads its weights before timing
  # and runs an untimed warm-up forward, so its passes are all warm.
  RS_REPEAT=${RS_BENCH_REPEAT:-2}
  # RS_BENCH_REF_REPEAT (default 2): the reference's timed passes per mode after its warm-up,
  # the fastest reported and every one listed in the summary, so each side gets the faster of
  # two passes. One reference pass against our best of two would flatter the ratio: its speed
  # moves by up to 11% between passes and 32% between processes on these VMs (256 captions,
  # 26 layers: 26.1 tok/s in one single-pass run, 30.2-34.4 in later ones; bench/README.md,
  # "The reference timed at its best").
  REF_REPEAT=${RS_BENCH_REF_REPEAT:-2}
  # RS_BENCH_REF_PROCS (default 2): reference processes per row (1 or 2), run after each of our
  # two runs, for the same reason: the swing between its processes is the larger one.
  REF_PROCS=${RS_BENCH_REF_PROCS:-2}
  case $REF_PROCS in 1|2) ;; *) echo "RS_BENCH_REF_PROCS must be 1 or 2 (got '$REF_PROCS')" >&2; exit 2 ;; esac
}

# bench_results FILE: the JSON-lines file stamp and tag append to (J); emptied first when
# RS_BENCH_FRESH=1.
bench_results() {
  J=$1
  if [ "${RS_BENCH_FRESH:-0}" = 1 ]; then : > "$J"; fi
  touch "$J"
}
# stamp EVENT: a timestamped event line (UTC time, load average) into J and on stdout.
stamp() { echo "{\"event\": \"$1\", \"utc\": \"$(date -u +%FT%TZ)\", \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" | tee -a "$J"; }
# tag ROW: stdin's JSON lines with "row": ROW in front, into J and on stdout.
tag() { sed "s/^{/{\"row\": \"$1\", /" | tee -a "$J"; }

# bench_gemm_survey LOG: the fp32 GEMM survey of this run (OpenBLAS: the kernel reprshift runs
# and the other AVX-512 ones, BLIS, oneDNN: bench/run_gemm_survey.sh; torch's MKL:
# bench_gemm_torch.py) into LOG, its rows into J as JSON; skipped when RS_BENCH_GEMM=0 (no
# fractions of the GEMM rate for the rows of that invocation).
bench_gemm_survey() {
  stamp gemm_start
  [ "${RS_BENCH_GEMM:-1}" = 0 ] && return 0
  KERNELS=${KERNELS:-"SkylakeX SapphireRapids"} bench/run_gemm_survey.sh "$BUILD" > "$1" 2>&1 || true
  $REF_ENV "$REFENV/bin/python" bench/bench_gemm_torch.py >> "$1" 2>&1 || true
  grep '^gemm ' "$1" | sed 's/^/# /'
  grep '^gemm ' "$1" | "$REFENV/bin/python" -c '
import json, sys
for l in sys.stdin:
    f = l.split()
    if f[3] == "shape": print(json.dumps({"gemm": f[1] + " " + f[2], "shape": f[4], "T": int(f[6]), "IN": int(f[8]), "OUT": int(f[10]), "gflops": float(f[12])}))
    elif f[3] == "correct": print(json.dumps({"gemm": f[1] + " " + f[2], "correct": f[4] == "yes", "worst_ratio": float(f[6])}))
' >> "$J"
}
