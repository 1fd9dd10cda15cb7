#!/usr/bin/env python3
"""Golden fixture for the contrastive (InfoNCE) alignment learner (tests/test_align.c,
docs/probes.md "Contrastive alignment").

Run with the reference venv:  /work/refenv/bin/python tools/reference/gen_align_goldens.py
Writes tests/fixtures/align/infonce.safetensors. The expected values come from torch autograd
(float64) on the CLIP objective written out below (two linear projections, L2-normalised
embeddings, logit scale exp(tau), symmetric cross-entropy over the batch's similarity matrix)
and from torch.optim.Adam (float32) for STEPS full-batch steps with tau clamped to [0, ln 100]
after each step, as open_clip clamps the logit scale. Nothing here calls reprshift.

Layout (float32 unless noted):
  inputs  Xt [B, DT], Xi [B, DI] raw rows; St, Si the same standardised (train mean, population
          sd, float64 then float32); Wt [DT, E], Wi [DI, E], tau [1] initial parameters
  loss    loss [1] (float64) at the initial parameters on St, Si
  grads   g_Wt, g_Wi, g_tau (float64)
  adam    after_Wt, after_Wi, after_tau: parameters after STEPS Adam steps (lr LR) on the
          whole batch, standardised as above; after_loss [1] (float64): the loss of the last step
  embed   Zt [B, E], Zi [B, E] (float64): unit-norm embeddings of the raw rows with the
          trained parameters
  metadata steps, lr, torch, numpy versions
"""
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "align")
DT, DI, E, B = 6, 5, 3, 8
STEPS, LR = 5, 0.05
LN100 = float(np.log(100.0))


def clip_loss(St, Si, Wt, Wi, tau):
    zt = St @ Wt
    zi = Si @ Wi
    zt = zt / zt.norm(dim=1, keepdim=True)
    zi = zi / zi.norm(dim=1, keepdim=True)
    L = tau.exp() * zt @ zi.T
    lab = torch.arange(L.shape[0])
    return 0.5 * (torch.nn.functional.cross_entropy(L, lab) + torch.nn.functional.cross_entropy(L.T, lab))


def standardise(X):
    X64 = X.astype(np.float64)
    mu = X64.mean(0)
    sd = X64.std(0)
    sd[sd == 0] = 1
    return ((X64 - mu) / sd).astype(np.float32), mu, sd


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    Xt = (rng.normal(size=(B, DT)) * 2 + 1).astype(np.float32)
    Xi = (0.5 * Xt[:, :DI] + rng.normal(size=(B, DI))).astype(np.float32)  # partly paired
    Wt = (rng.normal(size=(DT, E)) / np.sqrt(DT)).astype(np.float32)
    Wi = (rng.normal(size=(DI, E)) / np.sqrt(DI)).astype(np.float32)
    tau = np.array([np.log(1 / 0.07)], dtype=np.float32)
    St, mut, sdt = standardise(Xt)
    Si, mui, sdi = standardise(Xi)
    t64 = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)
    P = [t64(Wt), t64(Wi), t64(tau)]
    loss = clip_loss(torch.tensor(St, dtype=torch.float64), torch.tensor(Si, dtype=torch.float64), *P)
    loss.backward()
    out = {"Xt": Xt, "Xi": Xi, "St": St, "Si": Si, "Wt": Wt, "Wi": Wi, "tau": tau,
           "loss": np.array([loss.item()]), "g_Wt": P[0].grad.numpy(), "g_Wi": P[1].grad.numpy(),
           "g_tau": P[2].grad.numpy()}
    Q = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in (Wt, Wi, tau)]
    opt = torch.optim.Adam(Q, lr=LR, betas=(0.9, 0.999), eps=1e-8)
    S32t, S32i = torch.tensor(St), torch.tensor(Si)
    last = None
    for _ in range(STEPS):
        opt.zero_grad()
        l = clip_loss(S32t, S32i, *Q)
        l.backward()
        last = l.item()
        opt.step()
        with torch.no_grad():
            Q[2].clamp_(0, LN100)
    for name, q in zip(("Wt", "Wi", "tau"), Q):
        out["after_" + name] = q.detach().numpy()
    out["after_loss"] = np.array([last])
    W1t = Q[0].detach().numpy().astype(np.float64)
    W1i = Q[1].detach().numpy().astype(np.float64)
    zt = ((Xt.astype(np.float64) - mut) / sdt).astype(np.float32).astype(np.float64) @ W1t
    zi = ((Xi.astype(np.float64) - mui) / sdi).astype(np.float32).astype(np.float64) @ W1i
    out["Zt"] = zt / np.linalg.norm(zt, axis=1, keepdims=True)
    out["Zi"] = zi / np.linalg.norm(zi, axis=1, keepdims=True)
    meta = {"steps": str(STEPS), "lr": repr(LR), "torch": torch.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}
    save_file({n: np.ascontiguousarray(v) for n, v in out.items()}, os.path.join(OUT, "infonce.safetensors"), meta)
    print("loss", loss.item(), "after", STEPS, "steps", last, "tau", Q[2].item())


if __name__ == "__main__":
    main()
