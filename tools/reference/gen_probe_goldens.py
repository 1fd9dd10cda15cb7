#!/usr/bin/env python3
"""Parity goldens for the probe module (tests/test_probe_logreg.c), from scikit-learn.

Writes tests/fixtures/probe/*.safetensors. Each fixture holds sklearn's outputs
(coef, intercept, objective, test predictions, scaler) and, for the small real datasets
that ship in sklearn, the data itself (as f32). Synthetic high-dimensional data is NOT
stored: it is regenerated bit-for-bit in C from the counter-based generator below
(splitmix64 + Box-Muller, mirrored by src/probe/synth.c), so only sklearn's results are
committed. Every fixture records the sklearn/numpy versions in __metadata__.

Conventions shared with the C tests:
  * features are rounded to f32 before sklearn sees them (the C side works on f32);
  * standardised cases use StandardScaler fitted on the train rows, and the standardised
    matrix is rounded to f32 again, exactly what rs_scaler_apply produces;
  * objective = 0.5*||W||^2 + C * sum_i s_i * loss_i (float64, from sklearn's coef).

Run: /work/refenv/bin/python tools/reference/gen_probe_goldens.py
"""
import json
import os
import sys

import numpy as np
import sklearn
from safetensors.numpy import save_file
from sklearn import datasets
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix,
                             f1_score)
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "probe")
GAMMA = np.uint64(0x9E3779B97F4A7C15)
M64 = (1 << 64) - 1


# ---- generator (mirror of src/probe/synth.c) ----
def splitmix64_at(seed, idx):
    idx = np.asarray(idx, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed & M64) + (idx + np.uint64(1)) * GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_at(seed, idx):
    return (splitmix64_at(seed, idx) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def normal_at(seed, idx):
    idx = np.asarray(idx, dtype=np.uint64)
    u1 = uniform_at(seed, np.uint64(2) * idx)
    u2 = uniform_at(seed, np.uint64(2) * idx + np.uint64(1))
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)


def synth_classification(seed, n, d, K, sep, aniso, imbalanced):
    w = np.arange(1, K + 1, dtype=np.float64) if imbalanced else np.ones(K)
    u = uniform_at(seed + 2, np.arange(n)) * w.sum()
    cum = np.cumsum(w)[:-1]
    y = np.searchsorted(cum, u, side="right").astype(np.int32)  # first k with u < cum[k]
    j = np.arange(d, dtype=np.uint64)
    m = sep * normal_at(seed + 1, y.astype(np.uint64)[:, None] * np.uint64(d) + j[None, :])
    s = np.exp(aniso * normal_at(seed + 4, j))
    z = normal_at(seed + 3, np.arange(n, dtype=np.uint64)[:, None] * np.uint64(d) + j[None, :])
    X = ((m + z) * s[None, :]).astype(np.float32)
    return X, y


# ---- reference computations ----
def objective(coef, intercept, X, y, C, sw):
    coef = np.atleast_2d(coef).astype(np.float64)
    Z = X @ coef.T + intercept
    if coef.shape[0] == 1:
        z = Z[:, 0]
        loss = np.logaddexp(0.0, z) - (y == 1) * z
    else:
        mx = Z.max(axis=1, keepdims=True)
        lse = (mx + np.log(np.exp(Z - mx).sum(axis=1, keepdims=True)))[:, 0]
        loss = lse - Z[np.arange(len(y)), y]
    return 0.5 * float((coef**2).sum()) + C * float((sw * loss).sum())


def fit_case(name, Xtr32, ytr, Xte32, yte, K, C, standardize, balanced, store_data):
    Xtr = Xtr32.astype(np.float64)
    Xte = Xte32.astype(np.float64)
    t = {}
    if standardize:
        sc = StandardScaler().fit(Xtr)
        Xtr = ((Xtr - sc.mean_) / sc.scale_).astype(np.float32).astype(np.float64)
        Xte = ((Xte - sc.mean_) / sc.scale_).astype(np.float32).astype(np.float64)
        t["scaler_mean"] = sc.mean_.astype(np.float64)
        t["scaler_scale"] = sc.scale_.astype(np.float64)
    cw = "balanced" if balanced else None
    lr = LogisticRegression(C=C, tol=1e-10, max_iter=100000, class_weight=cw)
    lr.fit(Xtr, ytr)
    sw = np.ones(len(ytr))
    if balanced:
        sw = compute_class_weight("balanced", classes=np.arange(K), y=ytr)[ytr]
    obj = objective(lr.coef_, lr.intercept_, Xtr, ytr, C, sw)
    t["coef"] = lr.coef_.astype(np.float64)
    t["intercept"] = lr.intercept_.astype(np.float64)
    t["objective"] = np.array([obj], dtype=np.float64)
    t["pred_test"] = lr.predict(Xte).astype(np.int32)
    t["proba_test"] = lr.predict_proba(Xte).astype(np.float64)
    if store_data:
        t["X_train"] = Xtr32
        t["y_train"] = ytr.astype(np.int32)
        t["X_test"] = Xte32
        t["y_test"] = yte.astype(np.int32)
    meta = {
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "case": name,
        "C": repr(float(C)),
        "standardize": str(int(standardize)),
        "balanced": str(int(balanced)),
        "n_classes": str(K),
        "sklearn_n_iter": str(int(np.max(lr.n_iter_))),
        "tol": "1e-10",
    }
    return t, meta


def save(name, t, meta):
    path = os.path.join(OUT, name + ".safetensors")
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, path, metadata=meta)
    obj = t["objective"][0] if "objective" in t else float("nan")
    print(f"{name}: obj={obj:.10g} n_iter={meta.get('sklearn_n_iter')} "
          f"{os.path.getsize(path)} bytes", flush=True)


def real_datasets():
    loaders = {"iris": datasets.load_iris, "wine": datasets.load_wine,
               "breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}
    # (dataset, C, standardize, balanced, store data)
    cases = [("iris", 1.0, True, False), ("iris", 100.0, False, False),
             ("wine", 1.0, True, True), ("wine", 0.05, False, False),
             ("breast_cancer", 1.0, True, False), ("breast_cancer", 0.1, False, True),
             ("digits", 1.0, True, False), ("digits", 0.01, False, False)]
    for ds, C, st, bal in cases:
        X, y = loaders[ds](return_X_y=True)
        X = X.astype(np.float32)
        test = np.arange(len(y)) % 4 == 0  # deterministic 75/25 split, shared with C
        K = int(y.max()) + 1
        name = f"lr_{ds}_{'std' if st else 'raw'}_C{C:g}{'_bal' if bal else ''}"
        t, meta = fit_case(name, X[~test], y[~test], X[test], y[test], K, C, st, bal, False)
        meta["dataset"] = ds
        save(name, t, meta)
        # the data itself, once per dataset (digits are integers 0..16: stored as U8)
        Xs = X.astype(np.uint8) if ds == "digits" else X
        if ds == "digits":
            assert np.array_equal(Xs.astype(np.float32), X)
        save(f"data_{ds}", {"X": Xs, "y": y.astype(np.int32)},
             {"sklearn_version": sklearn.__version__, "dataset": ds,
              "split": "test rows: index % 4 == 0"})


SYNTH = [
    # name, seed, n_train, n_test, d, K, sep, aniso, imbalanced, C, standardize, balanced
    ("lr_syn_bin_sep", 11, 1000, 500, 2304, 2, 0.05, 0.0, 0, 1.0, True, False),
    ("lr_syn_k4_noisy_bal", 21, 3000, 1000, 2304, 4, 0.02, 0.0, 1, 0.1, True, True),
    ("lr_syn_k10_aniso_raw", 31, 2000, 500, 2304, 10, 0.05, 1.0, 0, 0.01, False, False),
]


def synthetic():
    for (name, seed, ntr, nte, d, K, sep, aniso, imb, C, st, bal) in SYNTH:
        X, y = synth_classification(seed, ntr + nte, d, K, sep, aniso, imb)
        t, meta = fit_case(name, X[:ntr], y[:ntr], X[ntr:], y[ntr:], K, C, st, bal, False)
        meta.update(seed=str(seed), n_train=str(ntr), n_test=str(nte), d=str(d), sep=repr(sep),
                    aniso=repr(aniso), imbalanced=str(imb))
        t["checksum_X"] = np.array([X.astype(np.float64).sum(), (X.astype(np.float64) ** 2).sum()])
        t["y_all"] = y
        t["coef"] = t["coef"].astype(np.float32)  # 1e-3 parity needs no more; keeps files small
        t.pop("proba_test")
        save(name, t, meta)


def prng_and_folds():
    t = {"normal_s42": normal_at(42, np.arange(16)),
         "uniform_s42": uniform_at(42, np.arange(16)),
         "u64_s42_hi": (splitmix64_at(42, np.arange(4)) >> np.uint64(32)).astype(np.uint32),
         "u64_s42_lo": (splitmix64_at(42, np.arange(4)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)}
    # StratifiedKFold(5, shuffle=False) fold index per row on the digits training labels
    _, y = datasets.load_digits(return_X_y=True)
    y = y[np.arange(len(y)) % 4 != 0]
    fold = np.full(len(y), -1, dtype=np.int32)
    for f, (_, te) in enumerate(StratifiedKFold(5).split(np.zeros(len(y)), y)):
        fold[te] = f
    t["skf5_digits_fold"] = fold
    # metrics on a fixed (y, pred) pair drawn from the generator (class 4 never predicted,
    # class 5 predicted but absent from y: exercises sklearn's macro-F1 label set)
    yy = (uniform_at(7, np.arange(300)) * 5).astype(np.int32)
    pp = np.where(uniform_at(8, np.arange(300)) < 0.6, yy,
                  (uniform_at(9, np.arange(300)) * 6).astype(np.int32)).astype(np.int32)
    pp[pp == 4] = 3
    t["metrics_y"], t["metrics_pred"] = yy, pp
    t["metrics_acc_bal_f1"] = np.array([accuracy_score(yy, pp), balanced_accuracy_score(yy, pp),
                                        f1_score(yy, pp, average="macro")])
    t["metrics_confusion"] = confusion_matrix(yy, pp, labels=np.arange(6)).astype(np.int32)
    # LogisticRegressionCV over a C grid on standardised breast_cancer training rows
    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    tr = np.arange(len(y)) % 4 != 0
    Xtr = X[tr].astype(np.float64)
    sc = StandardScaler().fit(Xtr)
    Xs = ((Xtr - sc.mean_) / sc.scale_).astype(np.float32).astype(np.float64)
    Cs = np.array([1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0])
    cv = LogisticRegressionCV(Cs=Cs, cv=StratifiedKFold(5), tol=1e-10, max_iter=100000,
                              scoring="accuracy").fit(Xs, y[tr])
    t["cv_Cs"] = Cs
    t["cv_mean_acc"] = np.asarray(list(cv.scores_.values())[0]).mean(axis=0)
    t["cv_best_C"] = np.array([float(np.atleast_1d(cv.C_)[0])])
    save("prng_folds", t, {"sklearn_version": sklearn.__version__,
                           "numpy_version": np.__version__})


def protocol():
    """Goldens for the evaluation protocol (tests/test_probe_eval.c): the nested group
    bootstrap with the resample indices drawn by the shared generator (the draw rule of
    rs_nested_group_bootstrap, see probe_eval.h), sklearn metrics on each replicate and
    numpy's percentile; GridSearchCV(LogisticRegression) with GroupKFold(5) folds; the
    permutation p-value (1 + #{null >= observed}) / (1 + n)."""
    t = {}
    # ---- nested group bootstrap: 3 seeds of test predictions, groups of 1-4 rows ----
    S, K, B, bseed = 3, 3, 500, 99
    ys, ps, gs, nr = [], [], [], []
    for s in range(S):
        G = 20 + 7 * s
        sizes = 1 + (uniform_at(300 + s, np.arange(G)) * 4).astype(np.int64)
        gid = np.repeat(np.arange(G), sizes)
        n = len(gid)
        y = (uniform_at(310 + s, np.arange(n)) * K).astype(np.int64)
        wrong = (uniform_at(320 + s, np.arange(n)) * K).astype(np.int64)
        pred = np.where(uniform_at(330 + s, np.arange(n)) < 0.7, y, wrong)
        ys.append(y); ps.append(pred); gs.append(gid); nr.append(n)
    rep = np.zeros((3, B))
    for b in range(B):
        acc = bal = f1 = 0.0
        for j in range(S):
            s = min(int(uniform_at(bseed, b * S + j) * S), S - 1)
            G = int(gs[s].max()) + 1
            draw = np.minimum((uniform_at(bseed + 1 + b * S + j, np.arange(G)) * G).astype(np.int64), G - 1)
            rows = np.concatenate([np.flatnonzero(gs[s] == g) for g in draw])
            yt, yp = ys[s][rows], ps[s][rows]
            acc += accuracy_score(yt, yp)
            bal += balanced_accuracy_score(yt, yp)
            f1 += f1_score(yt, yp, average="macro")
        rep[:, b] = [acc / S, bal / S, f1 / S]
    t["boot_y"] = np.concatenate(ys).astype(np.int32)
    t["boot_pred"] = np.concatenate(ps).astype(np.int32)
    t["boot_gid"] = np.concatenate(gs).astype(np.int32)
    t["boot_n_rows"] = np.array(nr, dtype=np.int32)
    t["boot_rep_acc"] = rep[0]
    t["boot_lo_hi"] = np.array([np.percentile(r, q) for r in rep for q in (2.5, 97.5)])
    t["boot_params"] = np.array([S, K, B, bseed], dtype=np.int32)
    # ---- group-aware inner CV: GridSearchCV with GroupKFold(5) on standardised breast_cancer ----
    from sklearn.model_selection import GridSearchCV, GroupKFold
    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    tr = np.arange(len(y)) % 4 != 0
    Xtr = X[tr].astype(np.float64)
    sc = StandardScaler().fit(Xtr)
    Xs = ((Xtr - sc.mean_) / sc.scale_).astype(np.float32).astype(np.float64)
    ytr = y[tr]
    groups = (uniform_at(21, np.arange(len(ytr))) * 90).astype(np.int64)
    gkf = GroupKFold(5)
    fold = np.full(len(ytr), -1, dtype=np.int32)
    for f, (_, te) in enumerate(gkf.split(Xs, ytr, groups)):
        fold[te] = f
    Cs = np.array([1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0])
    gs_cv = GridSearchCV(LogisticRegression(tol=1e-10, max_iter=100000), {"C": list(Cs)},
                         cv=list(gkf.split(Xs, ytr, groups)), scoring="accuracy").fit(Xs, ytr)
    t["gcv_groups"] = groups.astype(np.int32)
    t["gcv_fold"] = fold
    t["gcv_Cs"] = Cs
    t["gcv_mean_acc"] = gs_cv.cv_results_["mean_test_score"]
    t["gcv_best_C"] = np.array([float(gs_cv.best_params_["C"])])
    # ---- permutation p-value ----
    null = np.round(uniform_at(5, np.arange(100)), 2)
    t["perm_null"] = null
    t["perm_obs_p"] = np.array([[o, (1 + np.sum(null >= o)) / (1 + len(null))] for o in (0.5, 0.9, 0.99, 1.0)])
    save("protocol", t, {"sklearn_version": sklearn.__version__, "numpy_version": np.__version__})
    print("gcv mean acc", gs_cv.cv_results_["mean_test_score"], "best", gs_cv.best_params_)
    print("boot lo/hi", t["boot_lo_hi"])


def cli_inputs():
    """Small activation file + label files for tests/cli_probe.sh (iris as fake activations),
    and sklearn's predictions for the probe the CLI trains on them (C=1, standardised)."""
    X, y = datasets.load_iris(return_X_y=True)
    X = X.astype(np.float32)
    names = np.array(["setosa", "versicolor", "virginica"])
    bad = X.copy()
    bad[7, 2] = np.nan
    save_file({"blocks.1.hook_resid_post": X, "blocks.2.hook_resid_post": np.ascontiguousarray(X[:, :3]),
               "blocks.3.hook_resid_post": bad},
              os.path.join(OUT, "cli_acts.safetensors"), metadata={"sklearn_version": sklearn.__version__})
    with open(os.path.join(OUT, "cli_labels.txt"), "w") as f:
        f.write("".join(n + "\n" for n in names[y]))
    with open(os.path.join(OUT, "cli_labels.csv"), "w") as f:
        f.write("id,species,split\n" + "".join(f"{i},{n},x\n" for i, n in enumerate(names[y])))
    with open(os.path.join(OUT, "cli_labels_one_class.txt"), "w") as f:
        f.write("same\n" * len(y))
    with open(os.path.join(OUT, "cli_labels_missing.txt"), "w") as f:
        f.write("".join(("" if i == 20 else n) + "\n" for i, n in enumerate(names[y])))
    Xd = X.astype(np.float64)
    sc = StandardScaler().fit(Xd)
    Xs = ((Xd - sc.mean_) / sc.scale_).astype(np.float32).astype(np.float64)
    pred = LogisticRegression(C=1.0, tol=1e-10, max_iter=100000).fit(Xs, y).predict(Xs)
    with open(os.path.join(OUT, "cli_sklearn_pred.txt"), "w") as f:
        f.write("".join(n + "\n" for n in names[pred]))
    print("cli inputs written")

    # CLI transfer inputs: the first 300 items of transfer(); B's rows shuffled, 5 extra
    # unpaired B rows, paired through id files (written by transfer(), see below)


def cli_transfer_inputs(A, B, y):
    rng = np.random.default_rng(9)
    n = 300
    A, B, y = A[:n], B[:n], y[:n]
    perm = rng.permutation(n)
    Bx = np.concatenate([B[perm], rng.normal(size=(5, B.shape[1])).astype(np.float32)])
    ids_b = [f"item{p}" for p in perm] + [f"extra{i}" for i in range(5)]
    save_file({"blocks.1.hook_resid_post": np.ascontiguousarray(A)},
              os.path.join(OUT, "cli_transfer_a.safetensors"), metadata={"sklearn_version": sklearn.__version__})
    save_file({"blocks.1.hook_resid_post": np.ascontiguousarray(Bx)},
              os.path.join(OUT, "cli_transfer_b.safetensors"), metadata={"sklearn_version": sklearn.__version__})
    names = np.array(["cat", "dog", "bird"])
    with open(os.path.join(OUT, "cli_transfer_labels_a.txt"), "w") as f:
        f.write("".join(names[v] + "\n" for v in y))
    with open(os.path.join(OUT, "cli_transfer_ids_a.txt"), "w") as f:
        f.write("".join(f"item{i}\n" for i in range(n)))
    with open(os.path.join(OUT, "cli_transfer_ids_b.txt"), "w") as f:
        f.write("".join(i + "\n" for i in ids_b))
    with open(os.path.join(OUT, "cli_transfer_ids_b_dup.txt"), "w") as f:
        f.write("".join(i + "\n" for i in ids_b[:-1] + [ids_b[0]]))
    print("cli transfer inputs written")


def transfer():
    """Cross-modal transfer goldens (tests/test_probe_transfer.c): paired synthetic items
    whose modality B is a rotated, rescaled, shifted and noisier copy of A's class signal;
    sklearn/scipy give the alignment maps (orthogonal_procrustes, Ridge), their held-out
    R^2 and every cell's predictions on the split test = index % 4 == 0."""
    import scipy
    from scipy.linalg import orthogonal_procrustes
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    rng = np.random.default_rng(5)
    n, d, K = 800, 16, 3
    y = rng.integers(0, K, n)
    mu = rng.normal(size=(K, d)) * 0.8
    A = mu[y] + rng.normal(size=(n, d))
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    B = 3.0 * (mu[y] + 0.3 * rng.normal(size=(n, d))) @ Q + 5.0 + 0.8 * rng.normal(size=(n, d))
    A = A.astype(np.float32)
    B = B.astype(np.float32)
    test = np.arange(n) % 4 == 0
    t = {"XA": A, "XB": B, "y": y.astype(np.int32)}
    cli_transfer_inputs(A, B, y)
    X = {0: A.astype(np.float64), 1: B.astype(np.float64)}
    alpha = 0.1
    probes = {}
    for m in (0, 1):
        Xtr = X[m][~test]
        sc = StandardScaler().fit(Xtr)
        Xs = ((Xtr - sc.mean_) / sc.scale_).astype(np.float32).astype(np.float64)
        probes[m] = (sc, LogisticRegression(C=1.0, tol=1e-10, max_iter=100000).fit(Xs, y[~test]))

    def predict(m, Z):
        sc, lr = probes[m]
        return lr.predict(((Z - sc.mean_) / sc.scale_).astype(np.float32).astype(np.float64))

    cells = [(0, 0, None), (1, 1, None), (0, 1, None), (1, 0, None), (0, 1, "moments"),
             (1, 0, "moments"), (0, 1, "procrustes"), (1, 0, "procrustes"), (0, 1, "ridge"),
             (1, 0, "ridge")]
    preds, r2s = [], []
    for (tr, te, mp) in cells:
        if mp is None:
            preds.append(predict(tr, X[te][test]))
            r2s.append(np.nan)
            continue
        S, T = X[te][~test], X[tr][~test]          # map test modality -> probe's space
        ms, mt = S.mean(0), T.mean(0)
        if mp == "moments":
            M = np.diag(T.std(0) / S.std(0))
            s = 1.0
        elif mp == "procrustes":
            R, w = orthogonal_procrustes(S - ms, T - mt)
            M, s = R, w / ((S - ms) ** 2).sum()
        else:
            lam = alpha * ((S - ms) ** 2).sum() / S.shape[1]
            rg = Ridge(alpha=lam).fit(S, T)
            M, s = rg.coef_.T, 1.0
            np.testing.assert_allclose(rg.intercept_, mt - ms @ M, rtol=1e-8, atol=1e-8)
        if mp != "moments":
            t[f"map_{'AB'[te]}to{'AB'[tr]}_{mp}"] = (s * M).astype(np.float64)
        Z = (mt + s * (X[te][test] - ms) @ M).astype(np.float32).astype(np.float64)
        r2s.append(r2_score(X[tr][test], Z, multioutput="variance_weighted"))
        preds.append(predict(tr, Z))
    t["pred_cells"] = np.array(preds, dtype=np.int32)
    t["r2_cells"] = np.array(r2s, dtype=np.float64)
    t["acc_cells"] = np.array([(p == y[test]).mean() for p in preds])
    meta = {"sklearn_version": sklearn.__version__, "numpy_version": np.__version__,
            "scipy_version": scipy.__version__, "ridge_alpha": repr(alpha), "C": "1.0",
            "split": "test rows: index % 4 == 0",
            "cells": json.dumps([f"{'AB'[a]}->{'AB'[b]} {m or ''}".strip() for a, b, m in cells])}
    save("transfer_rot", t, meta)
    # ridge in its dual form (fewer pairs than source features) and unequal widths
    S = rng.normal(size=(30, 40)).astype(np.float32)
    T = (S.astype(np.float64) @ rng.normal(size=(40, 12)) + rng.normal(size=(30, 12))).astype(np.float32)
    rg = Ridge(alpha=0.5).fit(S.astype(np.float64), T.astype(np.float64))
    save("transfer_ridge_dual", {"S": S, "T": T, "M": rg.coef_.T.copy(), "intercept": rg.intercept_,
                                 "r2_train": np.array([r2_score(T, rg.predict(S), multioutput="variance_weighted")])},
         {"sklearn_version": sklearn.__version__, "lambda": "0.5"})


def mlp():
    """MLP probe goldens (tests/test_probe_mlp.c): sklearn MLPClassifier test accuracies
    over 10 seeds (one hidden ReLU layer, Adam, L2 alpha, early stopping on a stratified
    10% validation split). The C side uses its own random numbers, so the comparison is
    of the seed-mean accuracy (issue: within 1 percentage point)."""
    from sklearn.neural_network import MLPClassifier
    seeds = list(range(10))
    cases = []
    # digits, standardised on the train rows (test = index % 4 == 0), as f32
    X, y = datasets.load_digits(return_X_y=True)
    X = X.astype(np.float32).astype(np.float64)
    te = np.arange(len(y)) % 4 == 0
    sc = StandardScaler().fit(X[~te])
    Xs = ((X - sc.mean_) / sc.scale_).astype(np.float32).astype(np.float64)
    cases.append(("mlp_digits", Xs[~te], y[~te], Xs[te], y[te], 100, 1e-4, {"dataset": "digits", "standardize": "1"}))
    # XOR in 2 of 10 dimensions (logistic regression is at chance): x_ij = normal(77, i*d+j)
    n, d = 3000, 10
    Z = normal_at(77, np.arange(n * d, dtype=np.uint64)).reshape(n, d).astype(np.float32).astype(np.float64)
    yx = (Z[:, 0] * Z[:, 1] > 0).astype(np.int32)
    cases.append(("mlp_xor", Z[:2000], yx[:2000], Z[2000:], yx[2000:], 64, 1e-4,
                  {"generator": "x_ij = normal_at(77, i*10+j) as f32, y = x_i0*x_i1 > 0", "n": str(n), "d": str(d),
                   "n_train": "2000"}))
    for name, Xtr, ytr, Xte, yte, h, alpha, extra in cases:
        accs, iters = [], []
        for s in seeds:
            m = MLPClassifier(hidden_layer_sizes=(h,), alpha=alpha, early_stopping=True, random_state=s,
                              max_iter=200).fit(Xtr, ytr)
            accs.append(float((m.predict(Xte) == yte).mean()))
            iters.append(m.n_iter_)
        lin = float((LogisticRegression(max_iter=10000).fit(Xtr, ytr).predict(Xte) == yte).mean())
        meta = {"sklearn_version": sklearn.__version__, "numpy_version": np.__version__, "hidden": str(h),
                "alpha": repr(alpha), "early_stopping": "1", "validation_fraction": "0.1", "n_iter_no_change": "10",
                "tol": "1e-4", "learning_rate_init": "0.001", "batch_size": "min(200, n)", "max_iter": "200"}
        meta.update(extra)
        save(name, {"acc_seeds": np.array(accs), "n_iter_seeds": np.array(iters, dtype=np.int32),
                    "logreg_acc": np.array([lin])}, meta)
        print(f"  {name}: mean acc {np.mean(accs):.4f} sd {np.std(accs):.4f} iters {np.mean(iters):.1f} logreg {lin:.4f}")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    what = sys.argv[1:] or ["prng", "real", "synth", "cli", "transfer", "mlp", "protocol"]
    if "cli" in what:
        cli_inputs()
    if "prng" in what:
        prng_and_folds()
    if "real" in what:
        real_datasets()
    if "synth" in what:
        synthetic()
    if "transfer" in what:
        transfer()
    if "mlp" in what:
        mlp()
    if "protocol" in what:
        protocol()
