#!/usr/bin/env python3
"""Golden fixtures for the cross-language similarity (tests/test_crosslang.c, docs/metrics.md
"Cross-language similarity", include/reprshift/crosslang.h).

Run with the reference venv:  /work/refenv/bin/python tools/reference/gen_crosslang_goldens.py
Writes tests/fixtures/crosslang/similarity.json and compare.json. numpy only, float64 from the
float32 inputs; the definitions are written out directly (masks over the n x n cosine matrix),
not in the C code's row-sum form. Nothing here calls reprshift. Only the deterministic values
are written (no bootstrap intervals or permutation p-values: those depend on the C generator,
and the C test checks their properties instead).

similarity.json: {"cases": [{name, n, d, center, group (list of ints or null = one group per
item), X, Y (row-major float32 values, [n*d]), expect: {cos_matched, cos_other, gap, r1 [x->y,
y->x], chance, m, o, s (per item)}}]}
  rotation      40 items in 20 groups of 2 (arbitrary group ids, items shuffled), d 12,
                X = image + caption noise, Y = X Q + noise (Q a rotation near the identity): gap > 0, recall high
  rotation_raw  the same data without centring
  unrelated     40 items in uneven groups (1-4 items), d 12, X and Y independent: gap ~ 0
  offset        30 items in 10 groups of 3, d 16, a large common offset o (|o| ~ 50):
                X = o + signal, Y = o + signal Q + noise; raw (center 0) and centred (center 1)
  offset_raw
  ties          n 3, d 3, X = [e0, e1, e2], Y = [e0, e0, e2], one group per item, no centring:
                exact ties; the strict rule gives r1 = [1/3, 2/3] (first-index argmax would give
                [2/3, 2/3])
  singletons    15 items, group null (one per item), d 8, Y = X Q + noise
compare.json: {"cases": [{name, n, group, s_a, s_b, diff = mean(s_a - s_b)}]}
  planted       30 items in 10 groups of 3, s_a = s_b + 0.05 + N(0, 0.01)
  null          36 items in uneven groups, s_a = s_b + N(0, 0.05)
"""
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "crosslang")


def rotation(rng, d, angle=0.35):
    """A rotation near the identity (Cayley transform of a small skew-symmetric matrix; mean
    cos(x, xQ) ~ tr(Q)/d ~ 0.9). A uniformly random rotation would not do: cosine is not
    rotation invariant, cos(x, xQ) ~ 0 for a random Q, so the matched pairs would not stand out."""
    M = rng.normal(size=(d, d)) * angle / np.sqrt(d)
    S = M - M.T
    I = np.eye(d)
    return (I - S) @ np.linalg.inv(I + S)


def reference(X, Y, group, center):
    """The definitions of crosslang.h in numpy, float64."""
    n = X.shape[0]
    g = np.arange(n) if group is None else np.asarray(group)
    Xd, Yd = X.astype(np.float64), Y.astype(np.float64)
    if center:
        Xd = Xd - Xd.mean(axis=0)
        Yd = Yd - Yd.mean(axis=0)

    def unit(Z):
        nr = np.sqrt((Z * Z).sum(axis=1))
        out = np.zeros_like(Z)
        ok = nr > 0
        out[ok] = Z[ok] / nr[ok, None]
        return out

    C = unit(Xd) @ unit(Yd).T
    same = g[:, None] == g[None, :]
    m = np.diag(C).copy()
    o = np.array([C[i, ~same[i]].mean() for i in range(n)])
    s = m - o
    h0 = np.array([C[i, same[i]].max() > C[i, ~same[i]].max() for i in range(n)], dtype=np.float64)
    h1 = np.array([C[same[:, j], j].max() > C[~same[:, j], j].max() for j in range(n)], dtype=np.float64)
    size = same.sum(axis=1)
    return {
        "cos_matched": float(m.mean()),
        "cos_other": float(o.mean()),
        "gap": float(s.mean()),
        "r1": [float(h0.mean()), float(h1.mean())],
        "chance": float(size.mean() / n),
        "m": m.tolist(),
        "o": o.tolist(),
        "s": s.tolist(),
    }


def case(name, X, Y, group, center):
    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float32)
    n, d = X.shape
    return {
        "name": name, "n": n, "d": d, "center": center,
        "group": None if group is None else [int(v) for v in group],
        "X": [float(v) for v in X.ravel()], "Y": [float(v) for v in Y.ravel()],
        "expect": reference(X, Y, group, center),
    }


def shuffled_groups(rng, sizes):
    """Arbitrary (non-contiguous, negative too) group ids, items in shuffled order."""
    ids = rng.choice(np.arange(-500, 5000, 7), size=len(sizes), replace=False)
    g = np.repeat(ids, sizes)
    return g[rng.permutation(len(g))]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261203)
    cases = []

    # (a) 40 items in 20 groups of 2, d 12, Y = X Q + noise
    d = 12
    g = shuffled_groups(rng, [2] * 20)
    img = {v: rng.normal(size=d) for v in np.unique(g)}
    X = np.stack([img[v] for v in g]) + 0.5 * rng.normal(size=(40, d))
    Y = X @ rotation(rng, d) + 0.3 * rng.normal(size=(40, d))
    cases.append(case("rotation", X, Y, g, 1))
    cases.append(case("rotation_raw", X, Y, g, 0))

    # (b) unrelated, uneven groups
    sizes = [1, 2, 3, 4, 2, 3, 1, 4, 2, 3, 1, 4, 3, 2, 2, 3]
    sizes = sizes[: next(k for k in range(len(sizes) + 1) if sum(sizes[:k]) >= 40)]
    sizes[-1] -= sum(sizes) - 40
    g = shuffled_groups(rng, sizes)
    cases.append(case("unrelated", rng.normal(size=(40, d)), rng.normal(size=(40, d)), g, 1))

    # large common offset: raw cosines all ~ 1, centring separates
    d = 16
    g = shuffled_groups(rng, [3] * 10)
    off = 12.5 * rng.normal(size=d)
    img = {v: rng.normal(size=d) for v in np.unique(g)}
    sig = np.stack([img[v] for v in g]) + 0.3 * rng.normal(size=(30, d))
    X = off + sig
    Y = off + sig @ rotation(rng, d) + 0.2 * rng.normal(size=(30, d))
    cases.append(case("offset", X, Y, g, 1))
    cases.append(case("offset_raw", X, Y, g, 0))

    # exact ties (values exactly representable: products are exact)
    E = np.eye(3)
    cases.append(case("ties", E, E[[0, 0, 2]], [0, 1, 2], 0))

    # one group per item (group null)
    d = 8
    X = rng.normal(size=(15, d))
    Y = X @ rotation(rng, d) + 0.5 * rng.normal(size=(15, d))
    cases.append(case("singletons", X, Y, None, 1))

    with open(os.path.join(OUT, "similarity.json"), "w") as f:
        json.dump({"generator": "tools/reference/gen_crosslang_goldens.py", "numpy": np.__version__,
                   "cases": cases}, f, indent=1)
        f.write("\n")

    comp = []
    g = shuffled_groups(rng, [3] * 10)
    sb = rng.normal(size=30) * 0.2
    sa = sb + 0.05 + 0.01 * rng.normal(size=30)
    comp.append({"name": "planted", "n": 30, "group": [int(v) for v in g], "s_a": sa.tolist(), "s_b": sb.tolist(),
                 "diff": float((sa - sb).mean())})
    sizes = [1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3, 2, 4]
    g = shuffled_groups(rng, sizes)
    n = len(g)
    sb = rng.normal(size=n) * 0.2
    sa = sb + 0.05 * rng.normal(size=n)
    comp.append({"name": "null", "n": n, "group": [int(v) for v in g], "s_a": sa.tolist(), "s_b": sb.tolist(),
                 "diff": float((sa - sb).mean())})
    with open(os.path.join(OUT, "compare.json"), "w") as f:
        json.dump({"generator": "tools/reference/gen_crosslang_goldens.py", "numpy": np.__version__,
                   "cases": comp}, f, indent=1)
        f.write("\n")
    for c in cases:
        e = c["expect"]
        print(f"{c['name']:13s} n {c['n']:3d} cos_matched {e['cos_matched']:+.4f} cos_other {e['cos_other']:+.4f} "
              f"gap {e['gap']:+.4f} r1 {e['r1'][0]:.3f}/{e['r1'][1]:.3f} chance {e['chance']:.4f}")
    for c in comp:
        print(f"compare {c['name']:8s} n {c['n']} diff {c['diff']:+.5f}")


if __name__ == "__main__":
    main()
