"""The per-entry profile table of bench_gemma2/bench_paligemma --profile runs (RS_BENCH_PROFILE=1),
shared by gemma2_summary.py and paligemma_summary.py. A row's "profile" list holds the
{"profile": ...} lines of its reprshift runs; shares are averaged over them."""

ORDER = ("linear_sgemm", "linear_widen_bias", "attention", "attention_kv", "geglu", "gelu", "linear_gelu_rest",
         "rms_norm", "layer_norm", "add_layer_norm", "rope", "add", "embed", "softcap", "softmax", "im2col",
         "add_periodic", "gemm_nt", "linear_decode", "untimed")


def shares(p):
    """One profile line's shares of the run's time, the linear and linear_gelu entries split into
    their sgemm (together) and the rest (widening and bias; widening, bias and GELU)."""
    s = {k: v["share"] for k, v in p["entries"].items() if k not in ("linear", "linear_gelu")}
    s["linear_sgemm"] = p["linear_sgemm_share"]
    s["linear_widen_bias"] = p["linear_widen_bias_share"]
    s["linear_gelu_rest"] = p.get("linear_gelu_rest_share", 0.0)
    s["untimed"] = p["untimed_share"]
    return s


def print_profiles(rows, label):
    """rows: {row name: {"profile": [profile lines], ...}}; label(row name) names a row."""
    prof = {k: [shares(p) for p in row.get("profile", [])] for k, row in rows.items()}
    prof = {k: v for k, v in prof.items() if v}
    if not prof:
        return
    cols = [c for c in ORDER if any(c in s for v in prof.values() for s in v)]
    print("\nPer-entry profile of our forward pass (share of the run's time, mean over the profiled runs):")
    print("| row | runs | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for k, v in prof.items():
        cells = ["%.1f%%" % (100 * sum(s.get(c, 0.0) for s in v) / len(v)) for c in cols]
        print(f"| {label(k)} | {len(v)} | " + " | ".join(cells) + " |")
