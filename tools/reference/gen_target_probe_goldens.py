#!/usr/bin/env python3
"""Goldens for the target probes' core (pl_targets_eval, src/pipeline/probes_targets.c) from
scikit-learn, for tests/test_target_probes.c -> tests/fixtures/probe/target_probes.json.

Synthetic data, one row per image (48 images, d = 6), two modalities (text, image), given splits
(2 seeds, 12 test images each), three targets:
  t0  the same label in both modalities, carried by the same direction (transfer works)
  t1  the same label, carried by feature 0 in text and feature 3 in image (transfer fails)
  t2  text label unknown (-1) for 8 images, image label known; a weaker signal
Per target, modality and seed: StandardScaler fitted on the training images with a known label,
LogisticRegression(C=1, class_weight="balanced", tol=1e-10, max_iter=10000), predictions on
the own modality's test images and (text<->image transfer) on the other modality's test images
with a known label there; balanced_accuracy_score, accuracy, majority accuracy; seed means.
X is rounded to float32 (the C side reads floats). Run: /work/refenv/bin/python this file."""
import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

rng = np.random.default_rng(20261203)
n, d, S = 48, 6, 2
y0 = (np.arange(n) % 3 == 0).astype(int)          # 16 positives
y1 = (np.arange(n) % 2 == 0).astype(int)          # 24 positives
y2 = (np.arange(n) % 4 == 1).astype(int)          # 12 positives
XT = rng.normal(size=(n, d))
XI = rng.normal(size=(n, d)) + 0.5
XT[:, 1] += 1.6 * y0
XI[:, 1] += 1.6 * y0
XT[:, 0] += 1.8 * y1
XI[:, 3] += 1.8 * y1
XT[:, 2] += 1.0 * y2
XI[:, 2] += 1.0 * y2
XT = XT.astype(np.float32)
XI = XI.astype(np.float32)
labels = {"text": [y0.copy(), y1.copy(), y2.copy()], "image": [y0.copy(), y1.copy(), y2.copy()]}
labels["text"][2] = labels["text"][2].copy()
unknown = [3, 7, 10, 20, 27, 33, 40, 46]
labels["text"][2][unknown] = -1
is_test = np.zeros((S, n), dtype=int)
for s in range(S):
    # stratified by t0 so every target has both classes on both sides
    pos = np.flatnonzero(y0 == 1)
    neg = np.flatnonzero(y0 == 0)
    r = np.random.default_rng(100 + s)
    is_test[s, r.choice(pos, 4, replace=False)] = 1
    is_test[s, r.choice(neg, 8, replace=False)] = 1

X = {"text": XT, "image": XI}
MOD = ["text", "image"]
probes, transfer = [], []
for k in range(3):
    per = {}
    for m in MOD:
        o = "image" if m == "text" else "text"
        ym, yo = labels[m][k], labels[o][k]
        bal = acc = maj = xbal = 0.0
        preds_own, preds_oth = [], []
        for s in range(S):
            tr = (is_test[s] == 0) & (ym >= 0)
            te = (is_test[s] == 1) & (ym >= 0)
            tx = (is_test[s] == 1) & (yo >= 0)
            sc = StandardScaler().fit(X[m][tr].astype(np.float64))
            lr = LogisticRegression(C=1.0, class_weight="balanced", tol=1e-10, max_iter=10000)
            lr.fit(sc.transform(X[m][tr].astype(np.float64)), ym[tr])
            p = lr.predict(sc.transform(X[m][te].astype(np.float64)))
            px = lr.predict(sc.transform(X[o][tx].astype(np.float64)))
            bal += balanced_accuracy_score(ym[te], p) / S
            acc += float(np.mean(p == ym[te])) / S
            npos = int(ym[te].sum())
            maj += max(npos, int(te.sum()) - npos) / int(te.sum()) / S
            xbal += balanced_accuracy_score(yo[tx], px) / S
            preds_own.append(p.tolist())
            preds_oth.append(px.tolist())
        te0 = (is_test[0] == 1) & (ym >= 0)
        tr0 = (is_test[0] == 0) & (ym >= 0)
        per[m] = dict(bal=bal, xbal=xbal)
        probes.append({"target": k, "modality": m, "balanced_accuracy": bal, "accuracy": acc,
                       "majority_accuracy": maj, "n_images": int((ym >= 0).sum()),
                       "n_test_images": int(te0.sum()), "positives_train": int(ym[tr0].sum()),
                       "positives_test": int(ym[te0].sum()), "prevalence": float((ym == 1).sum() / (ym >= 0).sum()),
                       "pred_own": preds_own, "pred_other": preds_oth})
    for m in MOD:
        o = "image" if m == "text" else "text"
        transfer.append({"target": k, "direction": "%s->%s" % (m, o), "within": per[o]["bal"],
                         "transfer": per[m]["xbal"], "gap": per[o]["bal"] - per[m]["xbal"]})

out = {
    "sklearn": sklearn.__version__, "numpy": np.__version__,
    "n": n, "d": d, "seeds": S,
    "X_text": [[float(v) for v in row] for row in XT],
    "X_image": [[float(v) for v in row] for row in XI],
    "y_text": [labels["text"][k].tolist() for k in range(3)],
    "y_image": [labels["image"][k].tolist() for k in range(3)],
    "is_test": is_test.tolist(),
    "probes": probes, "transfer": transfer,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/fixtures/probe/target_probes.json")
with open(path, "w") as f:
    json.dump(out, f, indent=0)
for p in probes:
    print(p["target"], p["modality"], round(p["balanced_accuracy"], 4), round(p["accuracy"], 4))
for t in transfer:
    print(t["target"], t["direction"], round(t["within"], 4), round(t["transfer"], 4))
