#!/usr/bin/env python3
"""Table of bench/run_gemma2_bench.sh: reads OUT/results.jsonl (rows of possibly several
invocations; each row uses the GEMM survey of its own invocation and its latest run), the
token ids (OUT/cap.ids, OUT/long.ids) and the checkpoint's config.json.

FLOPs of a row (useful work only, the same for every side; padding is not counted):
  per layer, per token, linear layers: 2·D·(q + 2·kv) + 2·q·D + 2·D·2F + 2·F·D
      (D hidden, q = heads·head_dim, kv = kv_heads·head_dim, F intermediate; Gemma-2 2B:
       155.7 MFLOP, ×26 = 4.05 GFLOP per token)
  per layer, per sequence of T tokens, causal attention: QKᵀ and AV over the kept
      entries, 2·2·heads·head_dim·T(T+1)/2
  × the layers run (13 or 26). Norms, RoPE, soft-cap, GeGLU are not counted.
fraction of the GEMM rate = (FLOPs / seconds) / G. G = the best correct candidate's rate
over the Gemma-2 shapes of the run's survey (Σ flop / Σ time over gemma2.qkv, .o, .gate_up,
.down at 512 rows; candidates: OpenBLAS kernels, BLIS, oneDNN, torch/MKL); and for each
reprshift run, G_now = the same shapes' rate with its own BLAS measured in its process just
after the run (bench/gemm_now.h), the denominator closest in time on a machine whose load
swings within minutes.
usage: gemma2_summary.py OUT_DIR CHECKPOINT_DIR"""
import json, os, sys
import numpy as np
from profile_summary import print_profiles
from ref_runs import add_ref, passes

out, ckpt = sys.argv[1], sys.argv[2]
cfg = json.load(open(os.path.join(ckpt, "config.json")))
cfg = cfg.get("text_config", cfg)
D, F, H, KV, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
q, kv = H * hd, KV * hd
lin_tok = 2 * D * (q + 2 * kv) + 2 * q * D + 2 * D * 2 * F + 2 * F * D
lens = {w: [len(l.replace(",", " ").split()) for l in open(os.path.join(out, w + ".ids")) if l.strip()] for w in ("cap", "long")}


def flops(w, L):
    return L * (lin_tok * sum(lens[w]) + sum(4 * H * hd * T * (T + 1) / 2 for T in lens[w]))


SHAPES = ("gemma2.qkv", "gemma2.o", "gemma2.gate_up", "gemma2.down")
rows = {}
cur = None
for line in open(os.path.join(out, "results.jsonl")):
    if not line.strip():
        continue
    r = json.loads(line)
    if r.get("event") == "gemm_start":
        cur = {"cand": {}, "loadavg": r["loadavg"], "utc": r["utc"]}
        continue
    if "event" in r:
        if r["event"].endswith("_start"):
            rows[r["event"][:-6]] = {"gemm": cur, "ours": [], "ref": {}, "load": [r["loadavg"]], "utc": r["utc"]}
        elif r["event"].endswith("_end") and r["event"][:-4] in rows:
            rows[r["event"][:-4]]["load"].append(r["loadavg"])
        continue
    if "gemm" in r:
        c = cur["cand"].setdefault(r["gemm"], {"correct": None, "shapes": {}})
        if "correct" in r:
            c["correct"] = r["correct"]
        else:
            c["shapes"][r["shape"]] = r
        continue
    row = rows.get(r.get("row"))
    if row is None:
        continue
    if "profile" in r:
        row.setdefault("profile", []).append(r["profile"])
        continue
    if r["impl"] == "reprshift":
        row["ours"].append(r)
    else:
        add_ref(row["ref"], r, "tokens")


# a row "cap26p" holds only the padded reference of "cap26" (run_gemma2_bench.sh)
for k in [k for k in rows if k.endswith("p")]:
    if k[:-1] in rows:
        for m, r in rows[k]["ref"].items():
            rows[k[:-1]]["ref"][m] = dict(r, saved=f"ref_{k}_")
    del rows[k]


def best_rate(g):
    best = (float("nan"), "no survey")
    if g is None:
        return best
    for name, c in g["cand"].items():
        if not c["correct"] or not all(s in c["shapes"] for s in SHAPES):
            continue
        fl = [2.0 * c["shapes"][s]["T"] * c["shapes"][s]["IN"] * c["shapes"][s]["OUT"] for s in SHAPES]
        t = sum(f / (c["shapes"][s]["gflops"] * 1e9) for f, s in zip(fl, SHAPES))
        if not best[0] >= sum(fl) / t / 1e9:
            best = (sum(fl) / t / 1e9, name)
    return best


def parity(row):
    from safetensors.numpy import load_file
    try:
        a = load_file(os.path.join(out, f"c_{row}.safetensors"))
        b = load_file(os.path.join(out, f"ref_{row}_bucket_eager.safetensors"))["resid_post"]
    except (FileNotFoundError, OSError):
        return "—"
    x = [v for k, v in a.items() if k.startswith("blocks.")][0]
    return f"{np.abs(x - b).max() / np.abs(b).max():.1e}"


names = {"cap": f"{len(lens['cap'])} COCO captions", "long": "one 512-token text"}
print("\nGEMM survey of each invocation (best correct candidate over the Gemma-2 shapes, GFLOP/s):")
seen = set()
for k, row in rows.items():
    g = row["gemm"]
    if g and id(g) not in seen:
        seen.add(id(g))
        G, who = best_rate(g)
        print(f"  {g['utc']}: {G:.1f} ({who}); load average at start {g['loadavg']}")
        for name, c in sorted(g["cand"].items()):
            if all(s_ in c["shapes"] for s_ in SHAPES):
                fl = [2.0 * c["shapes"][s_]["T"] * c["shapes"][s_]["IN"] * c["shapes"][s_]["OUT"] for s_ in SHAPES]
                t = sum(f / (c["shapes"][s_]["gflops"] * 1e9) for f, s_ in zip(fl, SHAPES))
                print(f"    {name}: {sum(fl) / t / 1e9:.1f} (correct: {c['correct']})")
print("\n| row | tokens | reprshift tok/s (runs) | transformers used well tok/s (its passes) | transformers padded tok/s "
      "| ratio vs used well | ratio vs padded | fraction of best GEMM (G) ours / used well | ours vs GEMM right after each run | linear sgemm share of our time "
      "| peak RSS GB ours / ref | parity (max rel) | load avg start → end |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in sorted(rows, key=lambda k: (k.rstrip("0123456789") != "cap", int(k.lstrip("caplong")))):
    if not rows[k]["ours"]:
        continue
    row = rows[k]
    w = k.rstrip("0123456789")
    L = int(k[len(w):])
    ours = row["ours"][-2:]
    o = sum(r["tokens_per_s"] for r in ours) / len(ours)
    uw = row["ref"].get("bucket:eager")
    pd = row["ref"].get("padded:eager")
    G, who = best_rate(row["gemm"]) if row["gemm"] else (0.0, "?")
    fl = flops(w, L)
    f_o = fl / (ours[0]["tokens"] / o) / 1e9 / G
    f_r = fl / uw["seconds"] / 1e9 / G
    # each reprshift run against the GEMM rate measured in its own process right after it
    # (bench/gemm_now.h: the same BLAS and kernel, the Gemma-2 shapes)
    now = ["%.0f%% of %.0f" % (100 * fl / r["seconds"] / 1e9 / r["gemm_now_gflops"], r["gemm_now_gflops"])
           for r in ours if r.get("gemm_now_gflops")]
    lin = sum(r["linear_sgemm_s"] for r in ours) / sum(r["seconds"] for r in ours)
    lin_g = sum(r["linear_sgemm_gflops"] for r in ours) / len(ours)
    load = " → ".join(row["load"])
    depth = "all %d layers" % L if L == cfg["num_hidden_layers"] else "through layer %d" % (L - 1)
    pad = "%.1f (%d padded tokens)" % (pd["tokens_per_s"], pd["padded_tokens"]) if pd else ("— (one sequence: no padding)" if w == "long" else "— (not run)")
    runs = " / ".join("%.1f" % r["tokens_per_s"] for r in ours)
    # the reference's timed passes (RS_BENCH_REF_REPEAT, _PROCS): the fastest is the figure used
    uw_runs = passes(uw, "%.1f")
    uw_runs += "; " if uw_runs else ""
    rpad = "%.2f×" % (o / pd["tokens_per_s"]) if pd else "—"
    print(f"| {names[w]}, {depth} | {ours[0]['tokens']} | {o:.1f} ({runs}) "
          f"| {uw['tokens_per_s']:.1f} ({uw_runs}{uw['padded_tokens']} padded tokens) | {pad} | {o / uw['tokens_per_s']:.2f}× "
          f"| {rpad} | {f_o:.0%} / {f_r:.0%} ({G:.0f} GFLOP/s, {who}) | {' / '.join(now) or '—'} "
          f"| {lin:.0%} (at {lin_g:.0f} GFLOP/s) | {max(r['peak_rss_gb'] for r in ours):.2f} / {uw['peak_rss_gb']:.2f} "
          f"| {parity(k)} | {load} |")
print_profiles(rows, lambda k: f"{names[k.rstrip('0123456789')]}, {k.lstrip('caplong')} layers")
