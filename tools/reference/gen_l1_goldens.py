#!/usr/bin/env python3
"""L1-penalised logistic regression goldens for tests/test_probe_l1.c.

Fits scikit-learn's LogisticRegression with the L1 penalty (solver "saga", which, unlike
liblinear, does not penalise the intercept: the objective our solver minimises,
    f(W, b) = ||W||_1 + C * sum_i l_i ,
) at a tight tolerance on small committed data (tests/fixtures/probe/data_*.safetensors),
training rows = index % 4 != 0, features standardised on those rows and rounded to f32 as the
C side sees them. Each fixture tests/fixtures/probe/l1_<case>.safetensors holds X (f32), y,
coef, intercept, objective (f64, recomputed here from coef/intercept), and the KKT residual of
sklearn's solution (max over weights of the minimum-norm subgradient of f / (C n), the
measure our solver's tol bounds), which documents how converged the reference is.

Usage: /work/refenv/bin/python tools/reference/gen_l1_goldens.py
"""
import os
import warnings

import numpy as np
import sklearn
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "probe")


def loss_grad(coef, intercept, X, y):
    """sum_i l_i and its gradient w.r.t. coef (R x d) and intercept (R)."""
    Z = X @ coef.T + intercept
    if coef.shape[0] == 1:
        z = Z[:, 0]
        loss = np.logaddexp(0.0, z) - (y == 1) * z
        r = (1.0 / (1.0 + np.exp(-z)) - (y == 1))[:, None]
    else:
        mx = Z.max(axis=1, keepdims=True)
        lse = mx + np.log(np.exp(Z - mx).sum(axis=1, keepdims=True))
        loss = lse[:, 0] - Z[np.arange(len(y)), y]
        P = np.exp(Z - lse)
        P[np.arange(len(y)), y] -= 1
        r = P
    return float(loss.sum()), r.T @ X, r.sum(axis=0)


def kkt(coef, intercept, X, y, C):
    """max minimum-norm subgradient of f / (C n) (original coordinates)."""
    n = len(y)
    _, gW, gb = loss_grad(coef, intercept, X, y)
    gW = gW / n
    gb = gb / n
    lam = 1.0 / (C * n)
    s = np.where(coef > 0, gW + lam, np.where(coef < 0, gW - lam, np.sign(gW) * np.maximum(np.abs(gW) - lam, 0)))
    return max(float(np.abs(s).max()), float(np.abs(gb).max()))


def case(name, data, C, max_iter=2_000_000):
    d = load_file(os.path.join(FIX, f"data_{data}.safetensors"))
    X32, y = d["X"], d["y"].astype(np.int64)
    tr = np.arange(len(y)) % 4 != 0
    Xtr = X32[tr].astype(np.float64)
    sc = StandardScaler().fit(Xtr)
    Xs32 = ((Xtr - sc.mean_) / sc.scale_).astype(np.float32)
    Xs = Xs32.astype(np.float64)
    ytr = y[tr]
    K = int(ytr.max()) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        lr = LogisticRegression(C=C, l1_ratio=1.0, solver="saga", tol=1e-14, max_iter=max_iter, random_state=0)
        lr.fit(Xs, ytr)
    coef, b = lr.coef_.astype(np.float64), lr.intercept_.astype(np.float64)
    # saga leaves weights that should be zero at ~1e-17: exact zeros below 1e-12
    coef = np.where(np.abs(coef) < 1e-12, 0.0, coef)
    loss, _, _ = loss_grad(coef, b, Xs, ytr)
    obj = float(np.abs(coef).sum()) + C * loss
    res = kkt(coef, b, Xs, ytr, C)
    nz = int((coef != 0).sum())
    t = {"X": np.ascontiguousarray(Xs32), "y": ytr.astype(np.int32), "coef": coef, "intercept": b,
         "objective": np.array([obj]), "kkt": np.array([res])}
    meta = {"sklearn_version": sklearn.__version__, "numpy_version": np.__version__, "case": name,
            "C": repr(float(C)), "n_classes": str(K), "solver": "saga", "l1_ratio": "1.0", "tol": "1e-14",
            "sklearn_n_iter": str(int(np.max(lr.n_iter_))), "nonzero": str(nz)}
    path = os.path.join(FIX, f"l1_{name}.safetensors")
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, path, metadata=meta)  # saga coef_ is F-ordered
    print(f"l1_{name}: K={K} n={len(ytr)} d={Xs.shape[1]} C={C} obj={obj:.12g} nonzero={nz}/{coef.size} "
          f"kkt={res:.2e} n_iter={meta['sklearn_n_iter']} {os.path.getsize(path)} bytes", flush=True)


def cli_case(C=0.05):
    """`reprshift probe train --penalty l1 --C 0.05` on tests/fixtures/probe/cli_acts.safetensors
    (every row, standardised): sklearn's objective -> tests/fixtures/probe/l1_cli_expected.txt."""
    d = load_file(os.path.join(FIX, "cli_acts.safetensors"))
    X = d["blocks.1.hook_resid_post"].astype(np.float64)
    names = [l.strip() for l in open(os.path.join(FIX, "cli_labels.txt")) if l.strip()]
    classes = sorted(set(names))
    y = np.array([classes.index(v) for v in names])
    sc = StandardScaler().fit(X)
    Xs = ((X - sc.mean_) / sc.scale_).astype(np.float32).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        lr = LogisticRegression(C=C, l1_ratio=1.0, solver="saga", tol=1e-14, max_iter=2_000_000, random_state=0).fit(Xs, y)
    coef = np.where(np.abs(lr.coef_) < 1e-12, 0.0, lr.coef_)
    loss, _, _ = loss_grad(coef, lr.intercept_, Xs, y)
    obj = float(np.abs(coef).sum()) + C * loss
    with open(os.path.join(FIX, "l1_cli_expected.txt"), "w") as f:
        f.write(f"{obj:.15g} {int((coef != 0).sum())}\n")
    print(f"l1_cli_expected.txt: objective {obj:.15g}, nonzero {int((coef != 0).sum())}/{coef.size}, "
          f"kkt {kkt(coef, lr.intercept_, Xs, y, C):.2e}")


if __name__ == "__main__":
    cli_case()
    case("bc_C0.02", "breast_cancer", 0.02)   # the lasso path: most weights exactly zero
    case("bc_C1", "breast_cancer", 1.0)
    case("wine_C0.1", "wine", 0.1)            # multinomial, K = 3
    case("iris_C1", "iris", 1.0)              # multinomial, K = 3
