#!/usr/bin/env python3
"""Goldens for the paired probe comparison (rs_paired_probe_test, tests/test_probe_paired.c).

An independent numpy implementation of the definition in include/reprshift/probe_eval.h /
docs/probes.md ("Paired probe comparison"), with the same random draws: the counter-based
generator (splitmix64, uniform = top 53 bits) mirrored from src/probe/synth.c, imported
from gen_probe_goldens.py.

  * difference  = mean over seeds of (acc_B - acc_A) on the seed's test rows;
  * CI          = nested bootstrap: slot j of replicate b draws seed
                  s = floor(u(boot_seed, b*S + j) * S), then G_s groups of seed s (numbered by
                  first appearance within the seed) g_k = floor(u(boot_seed + 1 + b*S + j, k) * G_s);
                  the slot value is acc_B - acc_A on the drawn rows (with multiplicity), the
                  replicate the mean over slots; np.percentile (linear) 2.5 / 97.5;
  * p           = paired sign-flip test: groups numbered by first appearance over all rows;
                  in flip q group g negates its rows' B - A differences when
                  u(perm_seed, q*G + g) < 0.5 (the same flip in every seed); null = mean over
                  seeds of the seed's mean signed difference;
                  p = (1 + #{|null| >= |obs| - 1e-12}) / (1 + n_perm).

Sums are accumulated in the C code's order (rows, then seeds / slots) in Python floats, so
the doubles agree to the last bit or nearly; the test allows 1e-12.

Run: /work/refenv/bin/python tools/reference/gen_paired_goldens.py
Writes tests/fixtures/probe/paired.safetensors (a few KB).
"""
import os
import sys

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_probe_goldens import uniform_at  # noqa: E402  (the shared generator)

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "probe")


def dense_first_appearance(g):
    """ids 0..G-1 in order of first appearance (rs_group_dense)."""
    _, first, inv = np.unique(g, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inv], len(first)


def paired_reference(ca, cb, group, n_rows, n_boot, boot_seed, n_perm, perm_seed):
    S = len(n_rows)
    off = np.concatenate([[0], np.cumsum(n_rows)])
    d = cb.astype(np.int64) - ca.astype(np.int64)
    seed_diff = np.array([float(d[off[s]:off[s + 1]].sum()) / n_rows[s] for s in range(S)])
    diff = 0.0
    for s in range(S):
        diff += seed_diff[s]
    diff /= S
    acc_a = sum(float(ca[off[s]:off[s + 1]].sum()) / n_rows[s] for s in range(S)) / S
    acc_b = sum(float(cb[off[s]:off[s + 1]].sum()) / n_rows[s] for s in range(S)) / S
    # bootstrap
    per_seed = []
    for s in range(S):
        gs, G = dense_first_appearance(group[off[s]:off[s + 1]])
        ds = d[off[s]:off[s + 1]]
        rows = [np.flatnonzero(gs == g) for g in range(G)]
        per_seed.append((G, ds, rows))
    rep = np.empty(n_boot)
    for b in range(n_boot):
        r = 0.0
        for j in range(S):
            s = min(int(uniform_at(boot_seed, b * S + j) * S), S - 1)
            G, ds, rows = per_seed[s]
            draw = np.minimum((uniform_at(boot_seed + 1 + b * S + j, np.arange(G)) * G).astype(np.int64), G - 1)
            idx = np.concatenate([rows[g] for g in draw])
            r += float(ds[idx].sum()) / len(idx)
        rep[b] = r / S
    lo, hi = np.percentile(rep, [2.5, 97.5])
    # sign flips
    gall, GT = dense_first_appearance(group)
    p = np.nan
    nulls = np.empty(n_perm)
    if n_perm > 0:
        ge = 0
        for q in range(n_perm):
            u = uniform_at(perm_seed, np.uint64(q) * np.uint64(GT) + np.arange(GT, dtype=np.uint64))
            sign = np.where(u < 0.5, -1, 1)
            sd = sign[gall] * d
            nul = 0.0
            for s in range(S):
                nul += float(sd[off[s]:off[s + 1]].sum()) / n_rows[s]
            nul /= S
            nulls[q] = nul
            ge += abs(nul) >= abs(diff) - 1e-12
        p = (1.0 + ge) / (1.0 + n_perm)
    return dict(diff=diff, acc_a=acc_a, acc_b=acc_b, seed_diff=seed_diff, lo=lo, hi=hi, p=p, n_groups=GT,
                n_test_groups=per_seed[0][0], n_items=int(n_rows[0]), rep=rep, nulls=nulls)


def make_case(seed0, S, n_images, n_test, pa, pb, shared):
    """S splits of n_images images (1-3 caption rows each); each split tests n_test images;
    A right with prob pa, B with pb, B copying A's outcome with prob `shared` (paired)."""
    sizes = 1 + (uniform_at(seed0, np.arange(n_images)) * 3).astype(np.int64)
    ca, cb, grp, nr = [], [], [], []
    for s in range(S):
        order = np.argsort(uniform_at(seed0 + 10 + s, np.arange(n_images)), kind="stable")
        test = np.sort(order[:n_test])
        g = np.repeat(test, sizes[test]) * 7 + 1000  # arbitrary, non-dense image ids
        n = len(g)
        a = (uniform_at(seed0 + 20 + s, np.arange(n)) < pa).astype(np.int32)
        b_own = (uniform_at(seed0 + 30 + s, np.arange(n)) < pb).astype(np.int32)
        copy = uniform_at(seed0 + 40 + s, np.arange(n)) < shared
        b = np.where(copy, a, b_own).astype(np.int32)
        ca.append(a); cb.append(b); grp.append(g.astype(np.int32)); nr.append(n)
    return np.concatenate(ca), np.concatenate(cb), np.concatenate(grp), np.array(nr, dtype=np.int32)


def main():
    t = {}
    cases = [
        # name, data seed, S, images, test images, pA, pB, shared, boot, boot seed, perm, perm seed
        ("gain", 500, 3, 60, 18, 0.65, 0.85, 0.3, 400, 0xB00B + 3, 1000, 77),
        ("null", 600, 5, 40, 12, 0.7, 0.7, 0.5, 300, 12345, 500, 78),
        ("one_seed", 700, 1, 50, 20, 0.6, 0.55, 0.6, 200, 9, 0, 79),
    ]
    for (name, s0, S, ni, nt, pa, pb, sh, B, bs, NP, ps) in cases:
        ca, cb, g, nr = make_case(s0, S, ni, nt, pa, pb, sh)
        r = paired_reference(ca, cb, g, nr, B, bs, NP, ps)
        t[name + "_ca"] = ca
        t[name + "_cb"] = cb
        t[name + "_group"] = g
        t[name + "_n_rows"] = nr
        t[name + "_params"] = np.array([S, B, bs, NP, ps], dtype=np.int64)
        t[name + "_out"] = np.array([r["diff"], r["lo"], r["hi"], r["p"], r["acc_a"], r["acc_b"]])
        t[name + "_seed_diff"] = r["seed_diff"]
        t[name + "_counts"] = np.array([r["n_test_groups"], r["n_items"], r["n_groups"]], dtype=np.int32)
        print(f"{name}: diff {r['diff']:.6f} [{r['lo']:.6f}, {r['hi']:.6f}] p {r['p']:.6f} "
              f"acc A {r['acc_a']:.4f} B {r['acc_b']:.4f} groups/split {r['n_test_groups']} items/split "
              f"{r['n_items']} groups tested {r['n_groups']}")
    os.makedirs(OUT, exist_ok=True)
    save_file(t, os.path.join(OUT, "paired.safetensors"), metadata={"numpy_version": np.__version__})


if __name__ == "__main__":
    main()
