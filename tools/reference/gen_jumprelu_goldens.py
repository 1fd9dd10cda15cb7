#!/usr/bin/env python3
"""Golden fixtures for the JumpReLU SAE trainer (tests/test_sae_jumprelu.c, docs/sae-training.md).

Run with the reference venv:  /work/refenv/bin/python tools/reference/gen_jumprelu_goldens.py
Writes tests/fixtures/jumprelu/step.safetensors. Expected values come from torch autograd
(float64) on the objective written out below, with the straight-through estimators as
torch.autograd.Function classes (the JumpReLU paper's pseudo-derivatives, arXiv 2407.14435
Eq. 11-12; the same as sae-lens' Step / JumpReLU with ste_to_input False), and from
torch.optim.Adam (float32) for three steps of the full update: gradient, removal of the
W_dec-row-parallel gradient component, Adam, W_dec rows renormalised to unit norm.
Nothing here calls reprshift.

  pre = x W_enc + b_enc ; theta = exp(log_threshold) ; f = pre * H(pre - theta)
  loss = mean_rows ||f W_dec + b_dec - x||^2 + lam * mean_rows sum_i H(pre_i - theta_i)

Layout (float32 unless noted): X [B, d], W_enc [d, m], b_enc [m], W_dec [m, d], b_dec [d],
log_threshold [m]; mse, l0 [1] float64; g_* float64 raw gradients (before the projection);
after3_* parameters after three steps. Metadata: lambda, bandwidth, lr, beta1, beta2,
min_margin (the smallest distance of any pre - theta from 0 and from +-eps/2 over the four
forward passes, so that float32 rounding cannot flip a mask), versions.
"""
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "jumprelu")
D, M, B = 6, 8, 10
LAM, EPS, LR, BETAS = 0.05, 0.4, 0.01, (0.0, 0.999)


def rect(u):
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class JumpReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, th):
        ctx.save_for_backward(z, th)
        return z * (z > th).to(z.dtype)

    @staticmethod
    def backward(ctx, g):
        z, th = ctx.saved_tensors
        return (z > th).to(z.dtype) * g, (-(th / EPS) * rect((z - th) / EPS) * g).sum(0)


class StepFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, th):
        ctx.save_for_backward(z, th)
        return (z > th).to(z.dtype)

    @staticmethod
    def backward(ctx, g):
        z, th = ctx.saved_tensors
        return torch.zeros_like(z), (-(1.0 / EPS) * rect((z - th) / EPS) * g).sum(0)


def objective(X, We, be, Wd, bd, lt):
    pre = X @ We + be
    th = torch.exp(lt)
    f = JumpReLUFn.apply(pre, th)
    mse = ((f @ Wd + bd - X) ** 2).sum(1).mean()
    l0 = StepFn.apply(pre, th).sum(1).mean()
    u = (pre - th).detach().double()
    margin = min(u.abs().min().item(), (u.abs() - EPS / 2).abs().min().item())
    return mse, l0, margin


def main():
    os.makedirs(OUT, exist_ok=True)
    for seed in range(1, 200):  # first seed whose masks sit clear of every boundary
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(B, D)).astype(np.float32) * 0.5
        Wd = rng.normal(size=(M, D))
        Wd = (Wd / np.linalg.norm(Wd, axis=1, keepdims=True)).astype(np.float32)
        We = (Wd.T + rng.normal(size=(D, M)) * 0.2).astype(np.float32)
        be = (rng.normal(size=M) * 0.1).astype(np.float32)
        bd = (rng.normal(size=D) * 0.1).astype(np.float32)
        lt = np.log(rng.uniform(0.05, 0.4, size=M)).astype(np.float32)
        P = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (We, be, Wd, bd, lt)]
        Xt = torch.tensor(X, dtype=torch.float64)
        mse, l0, margin = objective(Xt, *P)
        (mse + LAM * l0).backward()
        # three full steps in float32
        Q = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in (We, be, Wd, bd, lt)]
        opt = torch.optim.Adam(Q, lr=LR, betas=BETAS, eps=1e-8)
        X32 = torch.tensor(X)
        for _ in range(3):
            opt.zero_grad()
            m_, l_, mg = objective(X32, *Q)
            margin = min(margin, mg)
            (m_ + LAM * l_).backward()
            with torch.no_grad():
                w, g = Q[2], Q[2].grad
                g -= (g * w).sum(1, keepdim=True) / (w * w).sum(1, keepdim=True) * w
            opt.step()
            with torch.no_grad():
                Q[2] /= Q[2].norm(dim=1, keepdim=True)
        _, _, mg = objective(X32, *Q)
        margin = min(margin, mg)
        n_kernel = int(rect((Xt @ P[0] + P[1] - torch.exp(P[4])) / EPS).sum().item())
        active = int(((Xt @ P[0] + P[1]) > torch.exp(P[4])).sum().item())
        if margin > 2e-3 and n_kernel >= 6 and 10 <= active <= B * M - 10:
            break
    out = {"X": X, "W_enc": We, "b_enc": be, "W_dec": Wd, "b_dec": bd, "log_threshold": lt,
           "mse": np.array([mse.item()]), "l0": np.array([l0.item()])}
    for name, p in zip(("W_enc", "b_enc", "W_dec", "b_dec", "log_threshold"), P):
        out["g_" + name] = p.grad.numpy()
        out["after3_" + name] = Q[("W_enc", "b_enc", "W_dec", "b_dec", "log_threshold").index(name)].detach().numpy()
    meta = {"lambda": repr(LAM), "bandwidth": repr(EPS), "lr": repr(LR), "beta1": repr(BETAS[0]),
            "beta2": repr(BETAS[1]), "seed": str(seed), "min_margin": repr(margin), "kernel_entries": str(n_kernel),
            "active_entries": str(active), "torch": torch.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}
    save_file({n: np.ascontiguousarray(v) for n, v in out.items()}, os.path.join(OUT, "step.safetensors"), meta)
    print("seed", seed, "mse", mse.item(), "l0", l0.item(), "margin", margin, "kernel entries", n_kernel,
          "active", active)


if __name__ == "__main__":
    main()
