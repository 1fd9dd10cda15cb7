#!/usr/bin/env bash
# Greedy decoding with a KV cache, reprshift vs transformers generate in the same run (CPU,
# 2 threads, fp32 math): decode tok/s, prefill + first token time, peak RSS, and whether the
# generated ids agree. reprshift runs before and after the reference (A-B-A, so a change of
# the machine's load during the run hits both sides alike); the ratio uses the mean of its two. Workload: caption-length prompts (12-20 random ids), 32 new tokens,
# EOS off. Needs a built tree (build/ or RS_BUILD_DIR), the reference venv (REFENV), and a
# random bf16 Gemma-2 2B checkpoint (made on first use, ~5 GB, make_bench_checkpoint.py).
# usage: bench/run_generate_bench.sh [CHECKPOINT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
REF_ENV="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
REFENV=${REFENV:-/work/refenv}
CKPT=${1:-${RS_BENCH_GEMMA2:-/work/benchmodels/gemma2-2b-rand}}
BUILD=${RS_BUILD_DIR:-build}
NEW=${RS_BENCH_NEW:-32}
NP=${RS_BENCH_PROMPTS:-3}
OUT=bench/out; mkdir -p "$OUT"
[ -f "$CKPT/config.json" ] || "$REFENV/bin/python" tools/reference/make_bench_checkpoint.py "$CKPT"
"$REFENV/bin/python" -c "
import random; random.seed(5)
for k in range($NP): print(','.join(['2'] + [str(random.randrange(3, 256000)) for _ in range(11 + 4 * k)]))" > "$OUT/generate_ids.txt"
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
RS_KERNEL=$("$BUILD/reprshift" --version | sed -n 's/^BLAS kernel: \([^ ]*\) .*/\1/p')
[ -n "$RS_KERNEL" ] && export OPENBLAS_CORETYPE=$RS_KERNEL && echo "# reprshift BLAS kernel: $RS_KERNEL" >&2
echo "# load average before reprshift: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$BUILD/bench_generate" --model "$CKPT" --ids-file "$OUT/generate_ids.txt" --new "$NEW" | tee "$OUT/generate.jsonl"
echo "# load average before transformers: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
$REF_ENV "$REFENV/bin/python" bench/bench_generate_ref.py --model "$CKPT" --ids-file "$OUT/generate_ids.txt" --new "$NEW" | tee -a "$OUT/generate.jsonl"
echo "# load average before reprshift (again): $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$BUILD/bench_generate" --model "$CKPT" --ids-file "$OUT/generate_ids.txt" --new "$NEW" | tee -a "$OUT/generate.jsonl"
"$REFENV/bin/python" - "$OUT/generate.jsonl" <<'PY'
import json, sys
o1, r, o2 = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
same = sum(a["ids"] == b["ids"] == c["ids"] for a, b, c in zip(o1["runs"], r["runs"], o2["runs"]))
o1["side"], o2["side"] = "reprshift (before the reference)", "reprshift (after the reference)"
print("\n| side | decode tok/s | prefill + first token (s) | load (s) | peak RSS GB |")
print("|---|---|---|---|---|")
for s in (o1, r, o2):
    print(f"| {s['side']} | {s['decode_tok_s']:.3f} | {s['prefill_first_s']:.3f} | {s['load_s']:.2f} | {s['peak_rss_gb']:.2f} |")
ours = (o1["decode_tok_s"] + o2["decode_tok_s"]) / 2
print(f"\ndecode ratio reprshift (mean of the runs before and after) / transformers: {ours / r['decode_tok_s']:.2f}x "
      f"({o1['decode_tok_s'] / r['decode_tok_s']:.2f}x and {o2['decode_tok_s'] / r['decode_tok_s']:.2f}x); "
      f"identical greedy ids in {same} of {len(r['runs'])} prompts ({r['new_tokens']} new tokens each)")
PY
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
