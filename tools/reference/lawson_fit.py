"""Lawson's iteratively reweighted least squares, shared by fit_vexp.py and fit_vtanh.py: the
coefficients c minimising max |(V c - target) * w| (the largest weighted error) over the nodes,
and that error. Only numpy is needed."""
import numpy as np


def lawson_fit(V, target, w, iters=200):
    u = np.ones(len(target))
    for _ in range(iters):
        s = w * np.sqrt(u)
        c, *_ = np.linalg.lstsq(V * s[:, None], target * s, rcond=None)
        e = np.abs((V @ c - target) * w)
        u = u * e
        u /= u.sum()
    return c, e.max()
