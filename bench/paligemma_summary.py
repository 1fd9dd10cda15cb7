#!/usr/bin/env python3
"""Table of bench/run_paligemma_bench.sh: reads OUT/paligemma.jsonl (each row uses the GEMM
survey of its own invocation and its latest run), OUT/pg_suffix.ids and the checkpoint's
config.json.

FLOPs per image (useful work only; padding not counted):
  SigLIP tower, N patches, width Dv, MLP Fv, Lv layers:
      patch embedding 2·N·(3·p²)·Dv + Lv·[N·(2·Dv·3Dv + 2·Dv·Dv + 2·2·Dv·Fv) + 2·2·N²·Dv]
      (So400m at 224 px: 218 GFLOP)
  projector 2·N·Dv·D (decoder rows only)
  decoder, L layers, T tokens (prefix P = N + 4, suffix s = caption + <eos>), prefix-LM:
      L·[T·lin + 2·2·H·hd·(P² + s·P + s(s+1)/2)], lin = the Gemma-2 linear FLOPs per token
      (gemma2_summary.py; 155.7 MFLOP per layer)
fraction of the GEMM rate = t_ideal / t, t_ideal = F_vision / G_siglip + F_decoder / G_gemma,
G = the best correct candidate's rate over that model's shapes in the run's survey
(Σ flop / Σ time over siglip.qkv, .fc1, .fc2, resp. gemma2.qkv, .o, .gate_up, .down);
for the tower alone this is achieved GFLOP/s ÷ G_siglip. "GEMM right after": the same with
each reprshift run's own G_now (bench/gemm_now.h, measured in its process after the run).
usage: paligemma_summary.py OUT_DIR CHECKPOINT_DIR"""
import json, os, sys
import numpy as np
from profile_summary import print_profiles
from ref_runs import add_ref, passes

out, ckpt = sys.argv[1], sys.argv[2]
cfg = json.load(open(os.path.join(ckpt, "config.json")))
tc, vc = cfg["text_config"], cfg["vision_config"]
D, F, H, KV, hd = tc["hidden_size"], tc["intermediate_size"], tc["num_attention_heads"], tc["num_key_value_heads"], tc["head_dim"]
lin = 2 * D * (H * hd + 2 * KV * hd) + 2 * H * hd * D + 2 * D * 2 * F + 2 * F * D
Dv, Fv, Lv, ps, S = vc["hidden_size"], vc["intermediate_size"], vc["num_hidden_layers"], vc["patch_size"], vc["image_size"]
N = (S // ps) ** 2
f_vision = 2 * N * 3 * ps * ps * Dv + Lv * (N * (2 * Dv * 3 * Dv + 2 * Dv * Dv + 4 * Dv * Fv) + 4 * N * N * Dv)
sfx = [len(l.replace(",", " ").split()) for l in open(os.path.join(out, "pg_suffix.ids")) if l.strip()]
P = N + 4


def f_decoder(L, n):
    return sum(2 * N * Dv * D + L * ((P + s) * lin + 4 * H * hd * (P * P + s * P + s * (s + 1) / 2)) for s in sfx[:n])


GSH = {"siglip": ("siglip.qkv", "siglip.fc1", "siglip.fc2"), "gemma2": ("gemma2.qkv", "gemma2.o", "gemma2.gate_up", "gemma2.down")}
rows, cur = {}, None
for line in open(os.path.join(out, "paligemma.jsonl")):
    if not line.strip():
        continue
    r = json.loads(line)
    if r.get("event") == "gemm_start":
        cur = {"cand": {}, "loadavg": r["loadavg"], "utc": r["utc"]}
    elif "event" in r:
        if r["event"].endswith("_start"):
            rows[r["event"][:-6]] = {"gemm": cur, "ours": [], "ref": {}, "load": [r["loadavg"]]}
        elif r["event"][:-4] in rows:
            rows[r["event"][:-4]]["load"].append(r["loadavg"])
    elif "gemm" in r:
        c = cur["cand"].setdefault(r["gemm"], {"correct": None, "shapes": {}})
        if "correct" in r:
            c["correct"] = r["correct"]
        else:
            c["shapes"][r["shape"]] = r
    elif r.get("row") in rows:
        row = rows[r["row"]]
        if "profile" in r:
            row.setdefault("profile", []).append(r["profile"])
        elif r["impl"] == "reprshift":
            row["ours"].append(r)
        else:
            add_ref(row["ref"], r, "images")


def best_rate(g, which):
    best = (float("nan"), "no survey")
    if g is None:
        return best
    for name, c in g["cand"].items():
        if not c["correct"] or not all(s in c["shapes"] for s in GSH[which]):
            continue
        fl = [2.0 * c["shapes"][s]["T"] * c["shapes"][s]["IN"] * c["shapes"][s]["OUT"] for s in GSH[which]]
        t = sum(f / (c["shapes"][s]["gflops"] * 1e9) for f, s in zip(fl, GSH[which]))
        if not best[0] >= sum(fl) / t / 1e9:
            best = (sum(fl) / t / 1e9, name)
    return best


def parity(row):
    try:
        x = np.fromfile(os.path.join(out, f"pg_{row}.f32"), dtype=np.float32)
        y = np.fromfile(os.path.join(out, f"pgref_{row}_bucket_eager.f32"), dtype=np.float32)
    except OSError:
        return "—"
    return f"{np.abs(x - y).max() / np.abs(y).max():.1e}" if x.shape == y.shape else f"sizes differ {x.size} / {y.size}"


print(f"\nFLOPs: SigLIP tower {f_vision / 1e9:.1f} GFLOP per image; decoder lin {lin / 1e6:.1f} MFLOP per token per layer")
print("\n| row | images | reprshift img/s (runs) | transformers used well img/s (mode) | other reference modes img/s (vs eager) "
      "| ratio vs used well | ratio vs padded | fraction of best GEMM ours / used well (G) | ours vs GEMM right after each run | linear sgemm share of our time "
      "| peak RSS GB ours / ref | parity (max rel) | load avg start → end |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k, row in rows.items():
    if not row["ours"] or not row["ref"]:
        continue
    ours = row["ours"][-2:]
    n = ours[0]["images"]
    o = sum(r["images_per_s"] for r in ours) / len(ours)
    # used well: the fastest bucketed mode whose output is within 1e-4 of eager's
    ok = [r for m, r in row["ref"].items() if m.startswith("bucket:") and r["vs_first"] <= 1e-4]
    uw = max(ok, key=lambda r: r["images_per_s"])
    pd = row["ref"].get("padded:eager")
    others = "; ".join("%s %.3f (%.1e)" % (m, r["images_per_s"], r["vs_first"]) for m, r in row["ref"].items())
    gs, ws = best_rate(row["gemm"], "siglip")
    gg, wg = best_rate(row["gemm"], "gemma2")
    if k == "vision":
        t_ideal = n * f_vision / (gs * 1e9)
        what, G = "SigLIP tower (batch 8)", f"{gs:.0f} GFLOP/s {ws}"
    else:
        L = int(k[3:])
        t_ideal = n * f_vision / (gs * 1e9) + f_decoder(L, n) / (gg * 1e9)
        what = f"image + prompt + caption through decoder layer {L - 1} (batch 4)"
        G = f"siglip {gs:.0f} {ws}, gemma2 {gg:.0f} {wg}"
    f_o = t_ideal / (n / o)
    now = []
    for r in ours:
        if "gemm_now_siglip_gflops" in r:
            ti = n * f_vision / (r["gemm_now_siglip_gflops"] * 1e9)
            if k != "vision":
                ti += f_decoder(L, n) / (r["gemm_now_gemma2_gflops"] * 1e9)
            now.append("%.0f%%" % (100 * ti / r["seconds"]))
    f_r = t_ideal / uw["seconds"]
    lin_share = sum(r["linear_sgemm_s"] for r in ours) / sum(r["seconds"] for r in ours)
    lin_g = sum(r["linear_sgemm_gflops"] for r in ours) / len(ours)
    runs = " / ".join("%.3f" % r["images_per_s"] for r in ours)
    # the reference's timed passes (RS_BENCH_REF_REPEAT, _PROCS): the fastest is the figure used
    uw_runs = passes(uw, "%.3f")
    uw_runs = "; " + uw_runs if uw_runs else ""
    rpad = "%.2f×" % (o / pd["images_per_s"]) if pd else "—"
    print(f"| {what} | {n} | {o:.3f} ({runs}) | {uw['images_per_s']:.3f} ({uw['mode']}{uw_runs}) | {others} "
          f"| {o / uw['images_per_s']:.2f}× | {rpad} | {f_o:.0%} / {f_r:.0%} ({G}) | {' / '.join(now) or '—'} | {lin_share:.0%} (at {lin_g:.0f} GFLOP/s) "
          f"| {max(r['peak_rss_gb'] for r in ours):.2f} / {uw['peak_rss_gb']:.2f} | {parity(k)} | {' → '.join(row['load'])} |")
print_profiles(rows, lambda k: "SigLIP tower (batch 8)" if k == "vision" else f"through decoder layer {int(k[3:]) - 1}")
