#!/usr/bin/env python3
"""Goldens for the statistics core (src/analysis/stats.c, the nulls in src/analysis/shift.c):
debiased linear CKA (unbiased HSIC, Song et al. 2012, written out on explicit Gram matrices),
centred cosine, group-bootstrap intervals (replaying given resample counts on repeated rows),
permutation p-values and null bands (replaying the C generator's permutation stream:
splitmix64 + Fisher-Yates re-implemented below), Benjamini-Hochberg q-values (statsmodels
multipletests fdr_bh, cross-checked with scipy.stats.false_discovery_control).

    /work/refenv/bin/python tools/reference/gen_stats_goldens.py [--out tests/fixtures/stats]

Output: stats_golden.safetensors (tensor names below; metric order = shift.h SHIFT_* enum).
"""
import argparse
import json
import os

import numpy as np
import scipy
import scipy.stats
import statsmodels
from statsmodels.stats.multitest import multipletests
from safetensors.numpy import save_file

VERSIONS = {"numpy": np.__version__, "scipy": scipy.__version__, "statsmodels": statsmodels.__version__}
NAMES = ["cos_raw", "l2_raw", "cos_feat", "l2_feat", "jaccard_token", "js_token_bits", "jaccard_feature",
         "js_mass_bits", "pearson_mean_feat", "cka_linear", "cos_centred", "cka_debiased"]
DIST = {"l2_raw", "l2_feat", "js_token_bits", "js_mass_bits"}
PERMUTABLE = [n not in ("js_mass_bits", "pearson_mean_feat") for n in NAMES]
M64 = (1 << 64) - 1


# ------------------------------------------------------------ the C generator, re-implemented
def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def c_permutation(seed, rep, n):
    s = (seed ^ ((0x9E3779B97F4A7C15 * (rep + 1)) & M64)) & M64
    out = list(range(n))
    for i in range(n - 1, 0, -1):
        s, z = splitmix(s)
        j = z % (i + 1)
        out[i], out[j] = out[j], out[i]
    return np.array(out, dtype=np.int64)


# ------------------------------------------------------------ statistics (numpy, direct)
def cos_rows(x, y):
    nx, ny = np.linalg.norm(x, axis=-1), np.linalg.norm(y, axis=-1)
    c = (x * y).sum(-1) / np.where(nx * ny > 0, nx * ny, 1)
    return np.where((nx == 0) & (ny == 0), 1.0, np.where((nx == 0) | (ny == 0), 0.0, c))


def js_bits(p, q):
    sp, sq = p.sum(), q.sum()
    if sp <= 0 and sq <= 0:
        return 0.0
    if sp <= 0 or sq <= 0:
        return 1.0
    p, q = p / sp, q / sq
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log2(p / m), 0.0)
        b = np.where(q > 0, q * np.log2(q / m), 0.0)
    return float(np.clip(0.5 * a.sum() + 0.5 * b.sum(), 0, 1))


def cka_biased(X, Y):
    """tr(KHLH)/sqrt(tr(KHKH) tr(LHLH)) on uncentred Gram matrices (Kornblith et al. 2019)."""
    n = len(X)
    H = np.eye(n) - 1.0 / n
    K, L = X @ X.T, Y @ Y.T
    hkl = np.trace(K @ H @ L @ H)
    return hkl / np.sqrt(np.trace(K @ H @ K @ H) * np.trace(L @ H @ L @ H))


def hsic_unbiased(K, L, origin=None):
    """Song et al. 2012, eq. (5): K, L with zeroed diagonals. In a bootstrap replicate
    (origin[i] = original row of resampled row i) pairs of copies of one row are zeroed too."""
    n = len(K)
    if origin is None:
        origin = np.arange(n)
    same = origin[:, None] == origin[None, :]
    Kt, Lt = np.where(same, 0.0, K), np.where(same, 0.0, L)
    t1 = (Kt * Lt).sum()
    t2 = Kt.sum() * Lt.sum() / ((n - 1) * (n - 2))
    t3 = 2.0 / (n - 2) * (Kt.sum(0) @ Lt.sum(0))
    return (t1 + t2 - t3) / (n * (n - 3))


def cka_debiased(X, Y, origin=None):
    """Translation invariant without origin (checked below); with copies masked it is not
    exactly, so bootstrap replicates use rows centred with the full-data means."""
    K, L = X @ X.T, Y @ Y.T
    return hsic_unbiased(K, L, origin) / np.sqrt(hsic_unbiased(K, K, origin) * hsic_unbiased(L, L, origin))


def all_stats(a, b, fa, fb, mu_a, mu_b, alive, origin=None):
    """Every metric on aligned rows (a[t] with b[t]); mu_* = centring means (full data)."""
    acta, actb = fa != 0, fb != 0
    uni = (acta | actb).sum(-1)
    jac = np.where(uni > 0, (acta & actb).sum(-1) / np.maximum(uni, 1), 1.0)
    js_tok = np.array([js_bits(fa[t], fb[t]) for t in range(len(a))])
    ta, tb = fa.sum(0)[alive], fb.sum(0)[alive]
    tboth = (acta & actb).sum(0)[alive]
    tuni = (acta | actb).sum(0)[alive]
    jf = (tboth[tuni > 0] / tuni[tuni > 0]).mean()
    return np.array([
        cos_rows(a, b).mean(), np.linalg.norm(a - b, axis=-1).mean(),
        cos_rows(fa, fb).mean(), np.linalg.norm(fa - fb, axis=-1).mean(),
        jac.mean(), js_tok.mean(), jf, js_bits(ta, tb), np.corrcoef(ta, tb)[0, 1],
        cka_biased(a, b), cos_rows(a - mu_a, b - mu_b).mean(), cka_debiased(a - mu_a, b - mu_b, origin)])


def null_summary(obs, vals, dist):
    ext = (vals <= obs) if dist else (vals >= obs)
    return (1 + ext.sum()) / (1 + len(vals)), np.percentile(vals, 2.5), np.percentile(vals, 97.5), vals.mean()


def gen(out):
    rng = np.random.default_rng(11)
    lens = np.array([4, 6, 3, 7, 5, 8, 4, 6, 5, 2])
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    n, d, m, G = int(offsets[-1]), 16, 24, len(lens)
    A = (rng.standard_normal((n, d)) * 1.3 + 0.7).astype(np.float32)
    B = (0.12 * A + 0.6 * rng.standard_normal((n, d)) - 0.3).astype(np.float32)
    # sparse non-negative features: B keeps most of A's support, drops/adds some
    FA = np.where(rng.random((n, m)) < 0.25, rng.exponential(1.0, (n, m)), 0.0)
    keep = rng.random((n, m)) < 0.12
    FB = np.where((FA > 0) & keep, FA * rng.uniform(0.5, 1.5, (n, m)), 0.0)
    FB = np.where(rng.random((n, m)) < 0.22, rng.exponential(1.0, (n, m)), FB)
    FA[5] = 0.0           # an empty A row
    FA[9] = FB[9] = 0.0   # a row empty in both
    FA, FB = FA.astype(np.float32).astype(np.float64), FB.astype(np.float32).astype(np.float64)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    alive = (FA != 0).any(0) | (FB != 0).any(0)
    mu_a, mu_b = A64.mean(0), B64.mean(0)

    # translation invariance of the unbiased estimator, and biased CKA = the d×d formula
    Xc, Yc = A64 - mu_a, B64 - mu_b
    assert abs(cka_debiased(A64, B64) - cka_debiased(Xc, Yc)) < 1e-10
    assert abs(cka_biased(A64, B64) - np.linalg.norm(Xc.T @ Yc) ** 2 /
               (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))) < 1e-10

    value = all_stats(A64, B64, FA, FB, mu_a, mu_b, alive)
    # group bootstrap: replicate = rows of the drawn groups repeated (centring means fixed)
    nb = 30
    counts = np.stack([np.bincount(rng.integers(0, G, G), minlength=G) for _ in range(nb)]).astype(np.int32)
    reps = []
    for c in counts:
        rows = np.concatenate([np.repeat(np.arange(offsets[g], offsets[g + 1])[None], k, 0).ravel()
                               for g, k in enumerate(c) if k > 0])
        reps.append(all_stats(A64[rows], B64[rows], FA[rows], FB[rows], mu_a, mu_b, alive, rows))
    reps = np.stack(reps)
    lo, hi = np.percentile(reps, 2.5, axis=0), np.percentile(reps, 97.5, axis=0)

    # permutation null from the C generator's stream
    seed, P = 777, 60
    perms = np.stack([c_permutation(seed, r, n) for r in range(P)])
    nullv = np.stack([all_stats(A64, B64[p], FA, FB[p], mu_a, mu_b, alive) for p in perms])
    p_val, n_lo, n_hi, n_mean = (np.full(len(NAMES), np.nan) for _ in range(4))
    for k, name in enumerate(NAMES):
        if not PERMUTABLE[k]:
            nullv[:, k] = np.nan
            continue
        # no near-ties: an exact p-value comparison must not hinge on rounding
        assert np.min(np.abs(nullv[:, k] - value[k])) > 1e-9, name
        p_val[k], n_lo[k], n_hi[k], n_mean[k] = null_summary(value[k], nullv[:, k], name in DIST)

    # CKA on larger independent data (n = 60, d = 200): biased well above 0, debiased ≈ 0
    Xi = rng.standard_normal((60, 200)).astype(np.float32)
    Yi = rng.standard_normal((60, 200)).astype(np.float32)
    cka_ind = np.array([cka_biased(Xi.astype(np.float64), Yi.astype(np.float64)),
                        cka_debiased(Xi.astype(np.float64), Yi.astype(np.float64))])

    # split-half noise floor of model A: per group, mean of even-position rows vs odd-position rows
    h1 = np.stack([A64[offsets[g]:offsets[g + 1]][0::2].mean(0) for g in range(G) if lens[g] >= 2])
    h2 = np.stack([A64[offsets[g]:offsets[g + 1]][1::2].mean(0) for g in range(G) if lens[g] >= 2])
    split_half = np.array([cos_rows(h1, h2).mean(), np.linalg.norm(h1 - h2, axis=-1).mean(), cka_biased(h1, h2),
                           cos_rows(h1 - h1.mean(0), h2 - h2.mean(0)).mean(), cka_debiased(h1, h2)])

    # token-type ranking: per key (min count 3) mean, group-bootstrap interval on the same
    # resamples, frequency-matched excess over min(3, k//5) equal-size count bins
    rank_key = rng.integers(0, 12, n).astype(np.int32)
    rank_key[[0, 7]] = 99  # a key seen twice: below the minimum count, not ranked
    rank_val = cos_rows(A64, B64).astype(np.float32)
    kk, kc = np.unique(rank_key, return_counts=True)
    kept = kk[kc >= 3]
    grp = np.repeat(np.arange(G), lens)
    rk = []
    for key in kept:
        sel = rank_key == key
        v = rank_val[sel].astype(np.float64)
        reps_k = []
        for c in counts:
            wt = c[grp[sel]].astype(np.float64)
            reps_k.append((wt * v).sum() / wt.sum() if wt.sum() > 0 else np.nan)
        reps_k = np.array(reps_k)
        reps_k = reps_k[np.isfinite(reps_k)]
        rk.append([key, sel.sum(), v.mean(), np.percentile(reps_k, 2.5), np.percentile(reps_k, 97.5), 0.0])
    rk = np.array(rk)
    order = np.lexsort((rk[:, 0], rk[:, 1]))  # by count, ties by key
    for b, part in enumerate(np.array_split(order, min(3, max(1, len(order) // 5)))):
        rk[part, 5] = rk[part, 2] - rk[part, 2].mean()

    # feature rankings: group-bootstrap intervals of Δfreq and Δmean for a few features
    feat_sel = np.array([0, 3, 5, 10, 23], dtype=np.int32)
    fci = np.zeros((len(feat_sel), 4))
    rf, rm = [], []
    for c in counts:
        rows = np.concatenate([np.repeat(np.arange(offsets[g], offsets[g + 1])[None], k, 0).ravel()
                               for g, k in enumerate(c) if k > 0])
        fa_r, fb_r = FA[rows][:, feat_sel], FB[rows][:, feat_sel]
        rf.append(((fb_r != 0).sum(0) - (fa_r != 0).sum(0)) / len(rows))
        rm.append((fb_r.sum(0) - fa_r.sum(0)) / len(rows))
    rf, rm = np.array(rf), np.array(rm)
    fci[:, 0], fci[:, 1] = np.percentile(rf, 2.5, axis=0), np.percentile(rf, 97.5, axis=0)
    fci[:, 2], fci[:, 3] = np.percentile(rm, 2.5, axis=0), np.percentile(rm, 97.5, axis=0)

    # replicate (caption-to-caption) floor: pairs of rows of model A
    pair_i = np.array([0, 4, 10, 13, 20, 27, 33, 40], dtype=np.int64)
    pair_j = np.array([1, 5, 12, 19, 21, 30, 34, 41], dtype=np.int64)
    P1, P2 = A64[pair_i], A64[pair_j]
    pair_floor = np.array([cos_rows(P1, P2).mean(), np.linalg.norm(P1 - P2, axis=-1).mean(), cka_biased(P1, P2),
                           cos_rows(P1 - P1.mean(0), P2 - P2.mean(0)).mean(), cka_debiased(P1, P2)])

    # Benjamini-Hochberg: ties, an exact 1, small values; NaN = untested (dropped from m)
    p_bh = np.array([0.01, 0.04, 0.03, 0.04, 0.5, 0.0005, 1.0, np.nan, 0.2, 0.049, 0.011, np.nan, 0.9])
    fin = np.isfinite(p_bh)
    q_bh = np.full(len(p_bh), np.nan)
    q_bh[fin] = multipletests(p_bh[fin], method="fdr_bh")[1]
    assert np.allclose(q_bh[fin], scipy.stats.false_discovery_control(p_bh[fin], method="bh"), rtol=1e-12)

    save_file({"a": A, "b": B, "fa": FA.astype(np.float32), "fb": FB.astype(np.float32), "offsets": offsets,
               "boot_counts": counts, "value": value, "lo": lo, "hi": hi,
               "perms": perms, "null": nullv, "p": p_val, "null_lo": n_lo, "null_hi": n_hi, "null_mean": n_mean,
               "split_half_a": split_half, "pair_i": pair_i, "pair_j": pair_j, "pair_floor": pair_floor, "rank_key": rank_key, "rank_val": rank_val, "rank_expected": rk, "feat_sel": feat_sel, "feat_ci": fci, "ind_a": Xi, "ind_b": Yi, "ind_cka": cka_ind, "bh_p": p_bh, "bh_q": q_bh},
              os.path.join(out, "stats_golden.safetensors"),
              metadata={"generator": "tools/reference/gen_stats_goldens.py", "versions": json.dumps(VERSIONS),
                        "stats": json.dumps(NAMES), "perm_seed": str(seed), "n_alive": str(int(alive.sum()))})
    for k, name in enumerate(NAMES):
        print(f"{name:18s} {value[k]: .6f} [{lo[k]: .6f}, {hi[k]: .6f}]  p={p_val[k]:.4f} "
              f"null [{n_lo[k]: .4f}, {n_hi[k]: .4f}]")
    print("split-half A (cos_raw, l2_raw, cka_linear, cos_centred, cka_debiased):", split_half.round(6))
    print("independent n=60 d=200: biased CKA %.4f, debiased %.4f" % tuple(cka_ind))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/stats")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    gen(a.out)


if __name__ == "__main__":
    main()
