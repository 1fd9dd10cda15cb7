#!/usr/bin/env python3
"""Golden fixtures for the SAE dictionary matching (tests/test_sae_match.c, docs/sae-training.md).

Run with the reference venv:  /work/refenv/bin/python tools/reference/gen_sae_match_goldens.py
Writes tests/fixtures/sae_match/lsa.safetensors. Expected assignments come from
scipy.optimize.linear_sum_assignment (min cost; maximize=True for the cosine matching) and
the cosines from numpy in float64. Nothing here calls reprshift.

  cost_rect [7, 10], cost_sq [12, 12], cost_wide_int [6, 6] (small integers: many equal
  costs, so only the optimal total is compared): float32 costs; *_col [rows] float64 the
  column scipy assigns to each row, *_total [1] float64 the optimal total.
  dec_a [9, 5], dec_b [6, 5] float32 decoder rows; match_a, match_b float64 the pairs of
  scipy's cosine-maximising assignment (sorted by a), match_cos float64 their cosines.
"""
import os
import sys

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "sae_match")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(5)
    out = {}
    for name, shape in (("cost_rect", (7, 10)), ("cost_sq", (12, 12))):
        c = rng.normal(size=shape).astype(np.float32)
        r, col = linear_sum_assignment(c.astype(np.float64))
        out[name] = c
        out[name + "_col"] = col.astype(np.float64)
        out[name + "_total"] = np.array([c.astype(np.float64)[r, col].sum()])
    c = rng.integers(0, 4, size=(6, 6)).astype(np.float32)
    r, col = linear_sum_assignment(c.astype(np.float64))
    out["cost_wide_int"] = c
    out["cost_wide_int_total"] = np.array([c.astype(np.float64)[r, col].sum()])
    A = rng.normal(size=(9, 5)).astype(np.float32)
    B = rng.normal(size=(6, 5)).astype(np.float32)
    An = A.astype(np.float64) / np.linalg.norm(A.astype(np.float64), axis=1, keepdims=True)
    Bn = B.astype(np.float64) / np.linalg.norm(B.astype(np.float64), axis=1, keepdims=True)
    cos = An @ Bn.T
    ra, cb = linear_sum_assignment(cos, maximize=True)
    order = np.argsort(ra)
    out.update({"dec_a": A, "dec_b": B, "match_a": ra[order].astype(np.float64), "match_b": cb[order].astype(np.float64),
                "match_cos": cos[ra[order], cb[order]]})
    save_file({n: np.ascontiguousarray(v) for n, v in out.items()}, os.path.join(OUT, "lsa.safetensors"),
              {"scipy": scipy.__version__, "numpy": np.__version__, "python": sys.version.split()[0]})
    print("totals", out["cost_rect_total"], out["cost_sq_total"], out["cost_wide_int_total"], "pairs", ra[order], cb[order])


if __name__ == "__main__":
    main()
