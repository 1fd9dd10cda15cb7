#!/usr/bin/env bash
# The fp32 linear layers on the BLAS or on oneDNN's f32 matmul (RS_SGEMM, docs/pipeline.md),
# A/B in real forward passes: the same bench binary, --sgemm-route blas then onednn,
# alternating, ROUNDS times, so load drifts hit both sides alike. One line per run: the pass
# rate, the in-pass sgemm rate (linear layers only), the GEMM rate measured right after
# through the same route (G), and our rate as a fraction of both; and the parity of the
# hook's activations with transformers' (max|ours - ref| / max|ref|) where the side-by-side
# benches left the reference's output in bench/out (read with REFENV's numpy).
# Needs the inputs the side-by-side benchmarks write (bench/run_gemma2_bench.sh: cap.ids,
# long.ids; bench/run_paligemma_bench.sh: pg_images.tsv, pg_suffix.ids) and the random
# real-size checkpoints they use.
# usage: bench/run_sgemm_route_ab.sh ROW...     ROW: cap26 | long26 | tower | dec13
#   ROUNDS (default 2), G2_CKPT / PG_CKPT (default /work/benchmodels/gemma2-2b-rand and
#   /work/benchmodels/paligemma2-3b-224-rand), RS_BUILD_DIR (default build), REFENV (default
#   /work/refenv)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${RS_BUILD_DIR:-build}
G2=${G2_CKPT:-/work/benchmodels/gemma2-2b-rand}
PG=${PG_CKPT:-/work/benchmodels/paligemma2-3b-224-rand}
DATA=../shared/data
PY=${REFENV:-/work/refenv}/bin/python
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
[ $# -gt 0 ] || { sed -n 2,13p "$0"; exit 2; }
for f in "$B/bench_gemma2" "$B/bench_paligemma"; do [ -x "$f" ] || { echo "no $f: build first" >&2; exit 1; }; done
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for row in "$@"; do
  case $row in
    cap26|long26) ids=bench/out/${row%26}.ids; [ -s "$ids" ] || { echo "no $ids: run bench/run_gemma2_bench.sh once" >&2; exit 1; }
      cmd=("$B/bench_gemma2" --model "$G2" --ids-file "$ids" --hook blocks.25.hook_resid_post --repeat 2 --profile)
      ext=safetensors; ref=bench/out/ref_${row}_bucket_eager.safetensors ;;
    tower|dec13) [ -s bench/out/pg_images.tsv ] || { echo "no bench/out/pg_images.tsv: run bench/run_paligemma_bench.sh once" >&2; exit 1; }
      mapfile -t IMGS < <(cut -f1 bench/out/pg_images.tsv | sed "s|^|$DATA/coco/|")
      if [ $row = tower ]; then cmd=("$B/bench_paligemma" --model "$PG" --hook vision.ln_post --batch 8 --repeat 2 --profile "${IMGS[@]:0:8}")
      else cmd=("$B/bench_paligemma" --model "$PG" --prompt-ids 21209,659,108 --hook blocks.12.hook_resid_post --batch 4 \
                --suffix-ids bench/out/pg_suffix.ids --repeat 2 --profile "${IMGS[@]:0:8}"); fi
      ext=f32; ref=bench/out/pgref_$([ $row = tower ] && echo vision || echo dec13)_bucket_eager.f32 ;;
    *) echo "unknown row $row (cap26, long26, tower, dec13)" >&2; exit 2 ;;
  esac
  for r in $(seq 1 "${ROUNDS:-2}"); do for side in blas onednn; do
    "${cmd[@]}" --sgemm-route $side --save "$T/act.$ext" > "$T/out" 2> "$T/err" || { cat "$T/err" >&2; exit 1; }
    par="no reference output in bench/out"
    if [ -s "$ref" ] && [ -x "$PY" ]; then
      par=$("$PY" - "$T/act.$ext" "$ref" <<'EOP'
import sys, numpy as np
def load(p):
    if p.endswith(".f32"): return np.fromfile(p, dtype=np.float32)
    from safetensors.numpy import load_file
    d = load_file(p)
    return [v for k, v in d.items() if k.startswith("blocks.") or k == "resid_post"][0]
a, b = load(sys.argv[1]), load(sys.argv[2])
print("sizes differ" if a.size != b.size else "%.1e (n %d)" % (np.abs(a.reshape(-1) - b.reshape(-1)).max() / np.abs(b).max(), b.size))
EOP
) || par="parity failed"
    fi
    tail -2 "$T/out" | ROW=$row ROUTE=$side PARITY="$par" python3 -c '
import json, os, sys, time
row = os.environ["ROW"]
# GFLOP per token (Gemma-2 2B, 26 layers) or per image (SigLIP So400m tower); none for dec13
fl = {"tower": 219.0, "cap26": 4.05, "long26": 4.05}.get(row)
out = ["%s %s %s load %s" % (time.strftime("%H:%M:%S", time.gmtime()), row, os.environ["ROUTE"], open("/proc/loadavg").read().split()[0])]
for l in sys.stdin:
    d = json.loads(l)
    if "profile" in d:
        p = d["profile"]
        out.append("total %.3f s, linear sgemm %.3f s, widen+bias %.3f s, attention %.3f s" % (p["total_s"], p["linear_sgemm_s"], p["linear_widen_bias_s"], p["entries"]["attention"]["s"]))
        continue
    rate = d.get("images_per_s", d.get("tokens_per_s"))
    unit = "img/s" if "images_per_s" in d else "tok/s"
    g = d.get("gemm_now_gflops") or d.get("gemm_now_siglip_gflops" if row == "tower" else "gemm_now_gemma2_gflops")
    s = "%s %.3f, in-pass sgemm %.0f GFLOP/s, G %.0f, route %s" % (unit, rate, d["linear_sgemm_gflops"], g, d["linear_route"])
    if fl: s += ", of own sgemm %.1f%%, of G %.1f%%" % (100 * rate * fl / d["linear_sgemm_gflops"], 100 * rate * fl / g)
    out.append(s)
out.append("parity vs transformers " + os.environ["PARITY"])
print(" | ".join(out), flush=True)
'
  done; done
done
