#!/usr/bin/env bash
# A/B of two ways to run the same forward passes, in real passes: the same bench binary (AB=build:
# two builds), the two sides alternating ROUNDS times, so load drifts hit both alike.
#   AB=route (default): the fp32 linear layers on the BLAS vs on oneDNN's f32 matmul
#     (--sgemm-route blas | onednn; the CLI's RS_SGEMM, docs/pipeline.md);
#   AB=ckpt: the benchmark checkpoint as made (bf16 weights, widened to f32 before each
#     product) vs its F32 copy (tools/reference/bench_checkpoint_f32.py; the layout the Hub's
#     Gemma-2 2B ships in): the same values, read as they are;
#   AB=attn: the fp32 attention's products on the BLAS vs the fused AVX-512 kernel
#     (--attn-route blas | fused; the CLI's RS_ATTN), on G2_CKPT / PG_CKPT as given (point
#     them at the F32 copies to leave the widening out).
#   AB=precision: fp32 on the F32 copy (the fastest fp32 pass) vs --precision bf16 on the bf16
#     checkpoint with each product route (--bf16-route native | emulated; the CLI's
#     RS_BF16_GEMM; native only where the build and CPU have it): three sides, the parity
#     column showing what bf16 costs against the fp32 reference.
# One line per run: the pass rate, where its time went, the in-pass sgemm rate (linear layers
# only), the GEMM rate measured right after through the same route (G), our rate as a
# fraction of both, the parity of the hook with transformers (max|ours - ref| / max|ref|,
# where the side-by-side benches left the reference's output in bench/out; REFENV's numpy)
# and max|this side - the other side| of the round.
# Needs the inputs the side-by-side benchmarks write (bench/run_gemma2_bench.sh: cap.ids,
# long.ids; bench/run_paligemma_bench.sh: pg_images.tsv, pg_suffix.ids) and their random
# real-size checkpoints.
# usage: [AB=route|ckpt|attn|precision|build] bench/run_pass_ab.sh ROW...     ROW: cap26 | long26 | tower | dec13
#   AB=build: two builds of the benchmarks, BASE_BUILD_DIR (side "base", e.g. a worktree of the
#   commit before a change, built in Release) against RS_BUILD_DIR (side "new"), each as built
#   ROUNDS (default 2); G2_CKPT / PG_CKPT (default /work/benchmodels/gemma2-2b-rand and
#   /work/benchmodels/paligemma2-3b-224-rand) and their F32 copies G2_CKPT_F32 / PG_CKPT_F32
#   (default: the same path + "-f32"); RS_BUILD_DIR (default build); REFENV (/work/refenv)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${RS_BUILD_DIR:-build}
G2=${G2_CKPT:-/work/benchmodels/gemma2-2b-rand}
PG=${PG_CKPT:-/work/benchmodels/paligemma2-3b-224-rand}
G2F=${G2_CKPT_F32:-$G2-f32}
PGF=${PG_CKPT_F32:-$PG-f32}
AB=${AB:-route}
DATA=../shared/data
PY=${REFENV:-/work/refenv}/bin/python
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
[ $# -gt 0 ] || { sed -n '2,/^set -e/{/^set -e/!p}' "$0"; exit 2; }
case $AB in
  route) SIDES="blas onednn" ;;
  ckpt) SIDES="bf16 f32"; for d in "$G2F" "$PGF"; do [ -f "$d/config.json" ] || { echo "no $d: make it with tools/reference/bench_checkpoint_f32.py" >&2; exit 1; }; done ;;
  attn) SIDES="blas fused" ;;
  precision) SIDES="fp32 bf16.native bf16.emulated"; [ -f "$G2F/config.json" ] || { echo "no $G2F: make it with tools/reference/bench_checkpoint_f32.py" >&2; exit 1; } ;;
  build) SIDES="base new"; [ -x "${BASE_BUILD_DIR:-}/bench_paligemma" ] || { echo "AB=build needs BASE_BUILD_DIR with bench_gemma2/bench_paligemma built" >&2; exit 1; } ;;
  *) echo "AB=$AB: route, ckpt, attn, precision or build" >&2; exit 2 ;;
esac
for f in "$B/bench_gemma2" "$B/bench_paligemma"; do [ -x "$f" ] || { echo "no $f: build first" >&2; exit 1; }; done
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for row in "$@"; do
  case $row in
    cap26|long26) ids=bench/out/${row%26}.ids; [ -s "$ids" ] || { echo "no $ids: run bench/run_gemma2_bench.sh once" >&2; exit 1; }
      prog=$B/bench_gemma2; m16=$G2; m32=$G2F
      args=(--ids-file "$ids" --hook blocks.25.hook_resid_post --repeat 2 --profile)
      ext=safetensors; ref=bench/out/ref_${row}_bucket_eager.safetensors ;;
    tower|dec13) [ -s bench/out/pg_images.tsv ] || { echo "no bench/out/pg_images.tsv: run bench/run_paligemma_bench.sh once" >&2; exit 1; }
      mapfile -t IMGS < <(cut -f1 bench/out/pg_images.tsv | sed "s|^|$DATA/coco/|")
      prog=$B/bench_paligemma; m16=$PG; m32=$PGF
      if [ $row = tower ]; then args=(--hook vision.ln_post --batch 8 --repeat 2 --profile "${IMGS[@]:0:8}")
      else args=(--prompt-ids 21209,659,108 --hook blocks.12.hook_resid_post --batch 4 \
                 --suffix-ids bench/out/pg_suffix.ids --repeat 2 --profile "${IMGS[@]:0:8}"); fi
      ext=f32; ref=bench/out/pgref_$([ $row = tower ] && echo vision || echo dec13)_bucket_eager.f32 ;;
    *) echo "unknown row $row (cap26, long26, tower, dec13)" >&2; exit 2 ;;
  esac
  for r in $(seq 1 "${ROUNDS:-2}"); do first=; for side in $SIDES; do
    case $side in
      blas|onednn) if [ $AB = attn ]; then extra=(--model "$m16" --attn-route $side); else extra=(--model "$m16" --sgemm-route $side); fi ;;
      fused) extra=(--model "$m16" --attn-route fused) ;;
      bf16) extra=(--model "$m16") ;;
      f32|fp32) extra=(--model "$m32") ;;
      bf16.*) extra=(--model "$m16" --precision bf16 --bf16-route "${side#bf16.}") ;;
      base|new) extra=(--model "$m16") ;;
    esac
    run=$prog; [ $side = base ] && run=$BASE_BUILD_DIR/$(basename "$prog")
    "$run" "${extra[@]}" "${args[@]}" --save "$T/$side.$ext" > "$T/out" 2> "$T/err" || { cat "$T/err" >&2; exit 1; }
    par="no reference output in bench/out" other=""
    if [ -x "$PY" ]; then
      cmp() { "$PY" - "$1" "$2" "$3" <<'EOP'
import sys, numpy as np
def load(p):
    if p.endswith(".f32"): return np.fromfile(p, dtype=np.float32)
    from safetensors.numpy import load_file
    d = load_file(p)
    return [v for k, v in d.items() if k.startswith("blocks.") or k == "resid_post"][0]
a, b = load(sys.argv[1]), load(sys.argv[2])
if a.size != b.size: print("sizes differ")
elif sys.argv[3] == "rel": print("%.1e (n %d)" % (np.abs(a.reshape(-1) - b.reshape(-1)).max() / np.abs(b).max(), b.size))
else: print("%.3g (max|a| %.3g)" % (np.abs(a.reshape(-1) - b.reshape(-1)).max(), np.abs(a).max()))
EOP
      }
      [ -s "$ref" ] && { par=$(cmp "$T/$side.$ext" "$ref" rel) || par="parity failed"; }
      [ -n "$first" ] && { other="; max|$side - $first| $(cmp "$T/$side.$ext" "$T/$first.$ext" abs || echo failed)"; }
    fi
    first=${first:-$side}
    tail -2 "$T/out" | ROW=$row SIDE=$side PARITY="$par$other" python3 -c '
import json, os, sys, time
row = os.environ["ROW"]
# GFLOP per token (Gemma-2 2B, 26 layers) or per image (SigLIP So400m tower); none for dec13
fl = {"tower": 219.0, "cap26": 4.05, "long26": 4.05}.get(row)
out = ["%s %s %s load %s" % (time.strftime("%H:%M:%S", time.gmtime()), row, os.environ["SIDE"], open("/proc/loadavg").read().split()[0])]
for l in sys.stdin:
    d = json.loads(l)
    if "profile" in d:
        p = d["profile"]
        out.append("total %.3f s, linear sgemm %.3f s, widen+bias %.3f s, fc1 bias+GELU %.3f s, attention %.3f s" % (p["total_s"], p.get("linear_sgemm_s", 0.0), p.get("linear_widen_bias_s", 0.0), p.get("linear_gelu_rest_s", 0.0), p["entries"].get("attention", {}).get("s", 0.0)))
        continue
    rate = d.get("images_per_s", d.get("tokens_per_s"))
    unit = "img/s" if "images_per_s" in d else "tok/s"
    g = d.get("gemm_now_gflops") or d.get("gemm_now_siglip_gflops" if row == "tower" else "gemm_now_gemma2_gflops")
    lin = d["linear_sgemm_gflops"]
    s = "%s %.3f, in-pass sgemm %.0f GFLOP/s, G %.0f, route %s, attention %s, peak RSS %.2f GB" % (unit, rate, lin, g, d["linear_route"], d.get("attention_route", "?"), d["peak_rss_gb"])
    if d.get("precision") == "bf16": s += ", bf16 products %s" % d.get("bf16_products", "?")
    if fl and lin > 0 and g: s += ", of own sgemm %.1f%%, of G %.1f%%" % (100 * rate * fl / lin, 100 * rate * fl / g)
    out.append(s)
out.append("parity vs transformers " + os.environ["PARITY"])
print(" | ".join(out), flush=True)
'
  done; done
done
