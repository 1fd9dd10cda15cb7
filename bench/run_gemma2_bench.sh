#!/usr/bin/env bash
# Gemma-2-2B-shaped prefill benchmark, reprshift vs transformers in the same run.
# Needs: a built tree (build/), the reference venv (REFENV, default /work/refenv), and a
# random bf16 checkpoint (made on first use with tools/reference/make_bench_checkpoint.py).
# usage: bench/run_gemma2_bench.sh [CHECKPOINT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
# The reference's numpy/scipy bundle a current OpenBLAS: run it with the machine's
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides removed (they exist for older OpenBLAS
# builds, like the Debian one reprshift links, and would force slower kernels on it).
REF_ENV="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
REFENV=${REFENV:-/work/refenv}
CKPT=${1:-${RS_BENCH_MODEL:-/work/benchmodels/gemma2-2b-rand}}
TOKJSON=${RS_TOKENIZER_JSON:-../shared/data/tokenizer/tokenizer.json}
BUILD=${RS_BUILD_DIR:-build}
OUT=bench/out; mkdir -p "$OUT"
[ -f "$CKPT/config.json" ] || "$REFENV/bin/python" tools/reference/make_bench_checkpoint.py "$CKPT"
# Workloads: (a) 64 real COCO captions, (b) one 512-token text (captions joined), real tokenizer.
head -n 64 ../shared/data/text/coco_val2017_captions.txt > "$OUT/captions64.txt"
"$BUILD/reprshift" tokenize --tokenizer "$TOKJSON" --texts "$OUT/captions64.txt" | tr -d '[] ' > "$OUT/captions64.ids"
head -n 400 ../shared/data/text/coco_val2017_captions.txt | tr '\n' ' ' > "$OUT/long.txt"
"$BUILD/reprshift" tokenize --tokenizer "$TOKJSON" --texts "$OUT/long.txt" | tr -d '[] ' | cut -d, -f1-512 > "$OUT/long512.ids"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
# reprshift's side runs the OpenBLAS kernel the CLI would run (docs/pipeline.md, "BLAS kernel";
# the bench programs link the library directly and would get OpenBLAS's own choice)
RS_KERNEL=$("$BUILD/reprshift" --version | sed -n 's/^BLAS kernel: \([^ ]*\) .*/\1/p')
[ -n "$RS_KERNEL" ] && export OPENBLAS_CORETYPE=$RS_KERNEL && echo "# reprshift BLAS kernel: $RS_KERNEL" >&2
"$BUILD/bench_gemma2" --sgemm | tee "$OUT/results.jsonl"
for w in captions64 long512; do
  for L in 13 26; do
    hook=$([ $L = 26 ] && echo blocks.25.hook_resid_post || echo blocks.12.hook_resid_post)
    "$BUILD/bench_gemma2" --model "$CKPT" --ids-file "$OUT/$w.ids" --hook "$hook" --repeat 2 --save "$OUT/c_${w}_$L.safetensors" | sed "s/^{/{\"workload\": \"$w\", /" | tee -a "$OUT/results.jsonl"
    $REF_ENV "$REFENV/bin/python" bench/bench_gemma2_ref.py --model "$CKPT" --ids-file "$OUT/$w.ids" --layers $L --repeat 2 --save "$OUT/ref_${w}_$L.safetensors" | sed "s/^{/{\"workload\": \"$w\", /" | tee -a "$OUT/results.jsonl"
  done
done
"$REFENV/bin/python" - "$OUT" <<'PY'
import json, sys, glob, os
import numpy as np
from safetensors.numpy import load_file
out = sys.argv[1]
print("\nparity on the benchmark checkpoint (max|diff| / max|ref|, hook output of the last layer run):")
for c in sorted(glob.glob(os.path.join(out, "c_*.safetensors"))):
    r = c.replace("/c_", "/ref_")
    a = load_file(c); b = load_file(r)["resid_post"]
    x = [v for k, v in a.items() if k.startswith("blocks.")][0]
    print(f"  {os.path.basename(c)[2:-12]}: {np.abs(x - b).max() / np.abs(b).max():.2e}")
sys.argv = [sys.argv[0], os.path.join(out, "results.jsonl")]
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| workload | through | reprshift tok/s | transformers tok/s | ratio | reprshift RSS GB | transformers RSS GB |")
print("|---|---|---|---|---|---|---|")
ours = [r for r in rows if r.get("impl") == "reprshift"]
refs = [r for r in rows if r.get("impl") == "transformers"]
for o, r in zip(ours, refs):
    depth = "layer 12" if "12" in o["hook"] else "all 26"
    print(f"| {o['workload']} | {depth} | {o['tokens_per_s']:.1f} | {r['tokens_per_s']:.1f} | {o['tokens_per_s']/r['tokens_per_s']:.2f}x | {o['peak_rss_gb']:.2f} | {r['peak_rss_gb']:.2f} |")
PY
