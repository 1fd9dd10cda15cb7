#!/usr/bin/env bash
# PaliGemma-2-3B-shaped benchmark at 224 px, reprshift vs transformers in the same run (CPU,
# 2 threads): images/s, fraction of the best fp32 GEMM rate and peak RSS through the SigLIP
# tower (batch 8) and through decoder layer 12 on image + prompt + caption.
# Needs: a built tree (build/ or RS_BUILD_DIR), the reference venv (REFENV, default
# /work/refenv), the shared data (../shared/data: COCO images and captions, tokenizer) and a
# random bf16 checkpoint (made on first use, ~4 GB, with tools/reference/make_bench_paligemma.py).
# usage: bench/run_paligemma_bench.sh [CHECKPOINT_DIR]
#   RS_BENCH_ROWS  any of: vision dec13 (default both); results append to
#                  bench/out/paligemma.jsonl unless RS_BENCH_FRESH=1
#   RS_BENCH_GEMM=0 skips the GEMM survey (no fractions; for trying the script on a toy model
#   with RS_BENCH_PROMPT_IDS and RS_TOKENIZER_JSON set to ids and a tokenizer it knows)
#   RS_BENCH_PROFILE=1 also times every backend entry of reprshift's runs (per-entry table)
#   RS_BENCH_REPEAT  reprshift forward passes per process, fastest reported (default 2: one warm pass)
#   RS_BENCH_REF_REPEAT  the reference's timed passes per mode after its warm-up, fastest
#                  reported, all listed (default 2)
#   RS_BENCH_REF_PROCS  reference processes per row, 1 or 2 (default 2): ours, reference,
#                  ours, reference; the fastest pass over all of them is the reference's figure
#   RS_BENCH_IMAGES_VISION (8), RS_BENCH_IMAGES_DECODER (8): the first val2017 images of
#                  shared/data/coco/mini/image_table.tsv; decoder inputs get that image's
#                  caption0 as the suffix (caption tokens + <eos>), batches of 4
# Per row: reprshift, the reference (bench_paligemma_ref.py: bucket:eager first, then the
# other modes), reprshift again, then (RS_BENCH_REF_PROCS=2) the reference again; the table
# uses the mean of the two reprshift runs and each reference mode's fastest pass.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bench_common.sh   # REF_ENV REFENV DATA TOKJSON BUILD OUT, stamp/tag, the GEMM survey
CKPT=${1:-${RS_BENCH_PALIGEMMA:-/work/benchmodels/paligemma2-3b-224-rand}}
ROWS=${RS_BENCH_ROWS:-vision dec13}
NV=${RS_BENCH_IMAGES_VISION:-8}
ND=${RS_BENCH_IMAGES_DECODER:-8}
[ -f "$DATA/coco/mini/image_table.tsv" ] || { echo "no $DATA/coco/mini/image_table.tsv: the benchmark reads the shared data (../shared/data) beside the repository" >&2; exit 1; }
[ -f "$CKPT/config.json" ] || "$REFENV/bin/python" tools/reference/make_bench_paligemma.py "$CKPT"
# images and their first caption (columns file, caption0 of the val2017 rows)
# (awk stops by itself: `| head` would end it with SIGPIPE, which pipefail turns into a failed run)
awk -F'\t' -v n="$((NV > ND ? NV : ND))" '$1 == "val2017" && c++ < n { print $3 "\t" $NF }' \
    "$DATA/coco/mini/image_table.tsv" > "$OUT/pg_images.tsv"
mapfile -t IMGS < <(cut -f1 "$OUT/pg_images.tsv" | sed "s|^|$DATA/coco/|")
cut -f2 "$OUT/pg_images.tsv" > "$OUT/pg_captions.txt"
# suffix = caption tokens (no <bos>) + <eos> (id 1)
"$BUILD/reprshift" tokenize --tokenizer "$TOKJSON" --no-bos --texts "$OUT/pg_captions.txt" | tr -d '[] ' | sed 's/$/,1/' > "$OUT/pg_suffix.ids"
bench_rs_env
bench_results "$OUT/paligemma.jsonl"
bench_gemm_survey "$OUT/gemm_run_pg.txt"
PROMPT=(--prompt-ids "${RS_BENCH_PROMPT_IDS:-21209,659,108}")
for row in $ROWS; do
  stamp "${row}_start"
  if [ "$row" = vision ]; then
    ours=("${PROMPT[@]}" --hook vision.ln_post --batch 8 "${IMGS[@]:0:$NV}")
    ref=("${PROMPT[@]}" --through vision --batch 8 --modes bucket:eager,bucket:vsdpa "${IMGS[@]:0:$NV}")
  else
    L=${row#dec}
    ours=("${PROMPT[@]}" --hook "blocks.$((L - 1)).hook_resid_post" --batch 4 --suffix-ids "$OUT/pg_suffix.ids" "${IMGS[@]:0:$ND}")
    ref=("${PROMPT[@]}" --through "$L" --batch 4 --suffix-ids "$OUT/pg_suffix.ids" --modes bucket:eager,bucket:vsdpa,padded:eager "${IMGS[@]:0:$ND}")
  fi
  for pass in 1 2; do
    $RS_ENV "$BUILD/bench_paligemma" --model "$CKPT" --save "$OUT/pg_${row}.f32" --repeat "$RS_REPEAT" $PROFILE_ARG "${ours[@]}" | sed "s/^{/{\"pass\": $pass, /" | tag "$row"
    if [ $pass -le "$REF_PROCS" ]; then
      $REF_ENV "$REFENV/bin/python" bench/bench_paligemma_ref.py --model "$CKPT" "${ref[@]}" --repeat "$REF_REPEAT" \
          --save-prefix "$OUT/pgref_${row}_" 2>/dev/null | tag "$row"
    fi
  done
  stamp "${row}_end"
done
"$REFENV/bin/python" bench/paligemma_summary.py "$OUT" "$CKPT"
