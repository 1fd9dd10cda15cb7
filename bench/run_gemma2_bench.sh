#!/usr/bin/env bash
# Gemma-2-2B-shaped prefill benchmark, reprshift vs transformers in the same run.
# Needs: a built tree (build/), the reference venv (REFENV, default /work/refenv), a random
# bf16 checkpoint (made on first use with tools/reference/make_bench_checkpoint.py) and the
# shared data (../shared/data: COCO captions, tokenizer).
# usage: bench/run_gemma2_bench.sh [CHECKPOINT_DIR]
#   RS_BENCH_ROWS   rows to run, any of: cap13 cap26 cap26p long13 long26 (default all). Each
#                   invocation first measures the fp32 GEMM survey (bench/out/gemm_run.txt),
#                   so a long set of rows can be split over several invocations (e.g. to keep
#                   each under a lock's time budget); results append to bench/out/results.jsonl
#                   unless RS_BENCH_FRESH=1.
#                   A row name ending in "p" (cap26p) runs only the reference's padded batch of
#                   that row (the summary adds it to cap26): with the machine loaded, the
#                   all-layers caption row does not fit in one ~15 min invocation with all
#                   its runs, so cap26 runs reprshift, the used-well reference, reprshift, and
#                   cap26p the padded reference.
#   RS_BENCH_GEMM=0 skips the GEMM survey (no fractions for the rows of that invocation)
#   RS_BENCH_CAP26_MODES  reference modes of cap26 (default bucket:eager; e.g.
#                   bucket:eager,padded:eager when the machine is quiet enough to fit)
#   RS_BENCH_CAPTIONS  number of COCO captions (default 256)
#   RS_BENCH_PROFILE=1 also times every backend entry of reprshift's runs (per-entry table)
#   RS_BENCH_REPEAT  reprshift forward passes per process, fastest reported (default 2: one warm pass)
#   RS_BENCH_REF_REPEAT  the reference's timed passes per mode after its warm-up, fastest
#                   reported, all listed (default 2)
#   RS_BENCH_REF_PROCS  reference processes per row, 1 or 2 (default 2): ours, reference,
#                   ours, reference; the fastest pass over all of them is the reference's figure
# Rows: capL = the first N captions of shared/data/text/coco_val2017_captions.txt; longL =
# one 512-token text (the first 400 captions joined, cut at 512 ids); L = 13 (through layer
# 12) or 26 (all layers). Per row: reprshift, then the reference (bucketed "used well", then
# padded: bench_gemma2_ref.py), then reprshift again, then (RS_BENCH_REF_PROCS=2) the reference
# again; the table uses the mean of our two runs and the reference's fastest pass. The summary (bench/gemma2_summary.py) prints
# the table with ratios, fractions of the best GEMM rate and parity.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_common.sh   # REF_ENV REFENV DATA TOKJSON BUILD OUT, stamp/tag, the GEMM survey
CKPT=${1:-${RS_BENCH_MODEL:-/work/benchmodels/gemma2-2b-rand}}
ROWS=${RS_BENCH_ROWS:-cap13 cap26 cap26p long13 long26}
NCAP=${RS_BENCH_CAPTIONS:-256}
[ -f "$DATA/text/coco_val2017_captions.txt" ] || { echo "no $DATA/text/coco_val2017_captions.txt: the benchmark reads the shared data (../shared/data) beside the repository" >&2; exit 1; }
[ -f "$CKPT/config.json" ] || "$REFENV/bin/python" tools/reference/make_bench_checkpoint.py "$CKPT"
# Workloads: N real COCO captions, and one 512-token text (captions joined); real tokenizer.
head -n "$NCAP" "$DATA/text/coco_val2017_captions.txt" > "$OUT/cap.txt"
"$BUILD/reprshift" tokenize --tokenizer "$TOKJSON" --texts "$OUT/cap.txt" | tr -d '[] ' > "$OUT/cap.ids"
head -n 400 "$DATA/text/coco_val2017_captions.txt" | tr '\n' ' ' > "$OUT/long.txt"
"$BUILD/reprshift" tokenize --tokenizer "$TOKJSON" --texts "$OUT/long.txt" | tr -d '[] ' | cut -d, -f1-512 > "$OUT/long.ids"
bench_rs_env
bench_results "$OUT/results.jsonl"
bench_gemm_survey "$OUT/gemm_run.txt"
for row in $ROWS; do
  w=${row%%[0-9]*}; L=${row#"$w"}; only_padded=0
  case $L in *p) L=${L%p}; only_padded=1 ;; esac
  modes=$([ "$w" = cap ] && echo bucket:eager,padded:eager || echo bucket:eager)
  [ "$row" = cap26 ] && modes=${RS_BENCH_CAP26_MODES:-bucket:eager}
  if [ $only_padded = 1 ]; then
    stamp "${row}_start"
    $REF_ENV "$REFENV/bin/python" bench/bench_gemma2_ref.py --model "$CKPT" --ids-file "$OUT/$w.ids" \
        --layers "$L" --modes padded:eager --repeat "$REF_REPEAT" --save-prefix "$OUT/ref_${row}_" 2>/dev/null | tag "$row"
    stamp "${row}_end"
    continue
  fi
  hook=$([ "$L" = 26 ] && echo blocks.25.hook_resid_post || echo blocks.$((L - 1)).hook_resid_post)
  stamp "${row}_start"
  for pass in 1 2; do
    $RS_ENV "$BUILD/bench_gemma2" --model "$CKPT" --ids-file "$OUT/$w.ids" --hook "$hook" \
        --save "$OUT/c_${row}.safetensors" --repeat "$RS_REPEAT" $PROFILE_ARG | sed "s/^{/{\"pass\": $pass, /" | tag "$row"
    if [ $pass -le "$REF_PROCS" ]; then
      $REF_ENV "$REFENV/bin/python" bench/bench_gemma2_ref.py --model "$CKPT" --ids-file "$OUT/$w.ids" \
          --layers "$L" --modes "$modes" --repeat "$REF_REPEAT" \
          --save-prefix "$OUT/ref_${row}_" 2>/dev/null | tag "$row"
    fi
  done
  stamp "${row}_end"
done
"$REFENV/bin/python" bench/gemma2_summary.py "$OUT" "$CKPT"
