#!/usr/bin/env python3
"""Golden fixtures for the crosscoder (tests/test_crosscoder.c, docs/crosscoder.md).

Run with the reference venv:  /work/refenv/bin/python tools/reference/gen_crosscoder_goldens.py
Writes tests/fixtures/crosscoder/{l1,batchtopk}.safetensors. The expected values come from
torch autograd (float64) on the objective written out below (Anthropic's crosscoder note,
L1 of the decoder norms; and BatchTopK over the batch on f_i * sum_s ||W_dec,s,i||), from
torch.optim.Adam for three optimiser steps, and from numpy for the per-row fit and the
relative decoder norms. Nothing here calls reprshift.

Layout of each file (float32 unless noted):
  inputs   X [B, 2d] (already scaled), W_enc [2d, m], b_enc [m], W_dec [m, 2d], b_dec [2d]
  loss     mse, sparsity (scalars as [1], float64)
  grads    g_W_enc, g_b_enc, g_W_dec, g_b_dec (float64)
  adam     after3_W_enc, after3_b_enc, after3_W_dec, after3_b_dec: parameters after three
           Adam steps (lr 0.01, betas 0.9/0.999, eps 1e-8) on the same batch
  eval     x0, x1 [B, d] (unscaled = X / scale), scale [2]; err0, err1, l0 [B] (float64): per-row
           squared error per side in the original units and active latents, inference form
           (BatchTopK: the threshold `threshold`); rel [m] (float64) relative decoder norms
  metadata l1, k, threshold, torch, numpy versions
"""
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "crosscoder")
D, M, B = 5, 7, 9
LR = 0.01


def objective(X, We, be, Wd, bd, mode, lam, k):
    pre = X @ We + be
    a = torch.relu(pre)
    nrm = torch.stack([Wd[:, :D].norm(dim=1), Wd[:, D:].norm(dim=1)])  # [2, m]
    wsum = nrm.sum(0)
    if mode == "l1":
        f = a
    else:
        score = (a * wsum).flatten()
        kk = min(B * k, int((score > 0).sum()))
        idx = torch.topk(score.detach(), kk).indices
        mask = torch.zeros_like(score).scatter(0, idx, 1.0).reshape(a.shape)
        f = a * mask
    xhat = f @ Wd + bd
    mse = ((xhat - X) ** 2).sum(1).mean()
    sp = (lam * (f * wsum).sum(1)).mean() if mode == "l1" else torch.zeros((), dtype=X.dtype)
    return mse, sp, f


def main():
    os.makedirs(OUT, exist_ok=True)
    for mode, lam, k, seed in (("l1", 0.3, 0, 1), ("batchtopk", 0.0, 2, 2)):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(B, 2 * D)).astype(np.float32)
        X[:, D:] *= 1.5  # the two sides differ in scale
        We = (rng.normal(size=(2 * D, M)) * 0.4).astype(np.float32)
        be = (rng.normal(size=M) * 0.2).astype(np.float32)
        Wd = (rng.normal(size=(M, 2 * D)) * 0.3).astype(np.float32)
        Wd[1, :D] *= 0.02  # a nearly VLM-only and a nearly LLM-only latent
        Wd[2, D:] *= 0.02
        bd = (rng.normal(size=2 * D) * 0.1).astype(np.float32)
        t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)
        P = [t(We), t(be), t(Wd), t(bd)]
        Xt = torch.tensor(X, dtype=torch.float64)
        mse, sp, f = objective(Xt, *P, mode, lam, k)
        (mse + sp).backward()
        out = {"X": X, "W_enc": We, "b_enc": be, "W_dec": Wd, "b_dec": bd,
               "mse": np.array([mse.item()]), "sparsity": np.array([sp.item()]),
               "g_W_enc": P[0].grad.numpy(), "g_b_enc": P[1].grad.numpy(),
               "g_W_dec": P[2].grad.numpy(), "g_b_dec": P[3].grad.numpy()}
        # three Adam steps (float32, as the C side runs them)
        Q = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in (We, be, Wd, bd)]
        opt = torch.optim.Adam(Q, lr=LR, betas=(0.9, 0.999), eps=1e-8)
        X32 = torch.tensor(X)
        for _ in range(3):
            opt.zero_grad()
            m_, s_, _ = objective(X32, *Q, mode, lam, k)
            (m_ + s_).backward()
            opt.step()
        for name, q in zip(("W_enc", "b_enc", "W_dec", "b_dec"), Q):
            out["after3_" + name] = q.detach().numpy()
        # evaluation in the original units (numpy)
        scale = np.array([0.8, 1.25], dtype=np.float32)
        x0 = (X[:, :D] / scale[0]).astype(np.float32)
        x1 = (X[:, D:] / scale[1]).astype(np.float32)
        Xs = np.concatenate([x0.astype(np.float64) * scale[0], x1.astype(np.float64) * scale[1]], 1)
        pre = Xs @ We.astype(np.float64) + be
        a = np.maximum(pre, 0)
        n0 = np.linalg.norm(Wd[:, :D].astype(np.float64), axis=1)
        n1 = np.linalg.norm(Wd[:, D:].astype(np.float64), axis=1)
        threshold = 0.0
        if mode == "l1":
            fe = a
        else:
            sc = a * (n0 + n1)
            threshold = float(np.float32(np.median(sc[sc > 0])))
            fe = np.where(sc > threshold, a, 0)
        xh = fe @ Wd.astype(np.float64) + bd
        err0 = ((x0 - xh[:, :D] / scale[0]) ** 2).sum(1)
        err1 = ((x1 - xh[:, D:] / scale[1]) ** 2).sum(1)
        out.update({"x0": x0, "x1": x1, "scale": scale, "err0": err0, "err1": err1,
                    "l0": (fe > 0).sum(1).astype(np.float64), "rel": n1 / (n0 + n1)})
        meta = {"mode": mode, "l1": repr(lam), "k": str(k), "threshold": repr(threshold), "lr": repr(LR),
                "torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}
        save_file({n: np.ascontiguousarray(v) for n, v in out.items()}, os.path.join(OUT, mode + ".safetensors"), meta)
        print(mode, "mse", mse.item(), "sparsity", sp.item())


if __name__ == "__main__":
    main()
