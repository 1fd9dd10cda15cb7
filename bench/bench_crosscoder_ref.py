#!/usr/bin/env python3
"""Torch side of bench/bench_crosscoder.c: the same crosscoder objective and optimiser, steps/s.

usage: bench_crosscoder_ref.py [--d D] [--m M] [--batch B] [--steps S] [--rows N] [--sparsity l1|batchtopk] [--k K]
                               [--l1 LAMBDA]

Same shapes and work per step as reprshift's xc_train: each step draws a batch from a seeded
shuffle of the rows (indexing into the data), encodes f = ReLU([x0|x1] W_enc + b_enc),
decodes, loss = mean over the batch of sum_s ||x_s - x_hat_s||^2 + lambda * sum_i f_i *
sum_s ||W_dec,s,i|| (l1) or BatchTopK over f_i * sum_s ||W_dec,s,i|| (batchtopk), backward
(autograd), torch.optim.Adam (default foreach implementation). fp32, torch's intra-op threads
= OMP_NUM_THREADS. The timed run excludes the first 3 steps (warm-up), as the C side does.
"""
import argparse
import os
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--m", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--sparsity", default="l1")
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--l1", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    d, m, B = a.d, a.m, a.batch
    rng = np.random.default_rng(0)
    D = rng.uniform(-1, 1, size=(64, 2 * d)).astype(np.float32)
    X = np.zeros((a.rows, 2 * d), np.float32)
    for r in range(a.rows):
        for f, c in zip(rng.integers(0, 64, 6), rng.uniform(0.5, 2.5, 6)):
            X[r, :d] += c * D[f, :d]
            X[r, d:] += 3 * c * D[f, d:]
    X = torch.from_numpy(X)
    # per-side scaling to mean norm sqrt(d), as xc_train does
    for s in (slice(0, d), slice(d, 2 * d)):
        X[:, s] *= d ** 0.5 / X[:, s].norm(dim=1).mean()
    g = torch.Generator().manual_seed(1)
    Wd = torch.randn(m, 2 * d, generator=g)
    Wd[:, :d] *= 0.1 / Wd[:, :d].norm(dim=1, keepdim=True)
    Wd[:, d:] *= 0.1 / Wd[:, d:].norm(dim=1, keepdim=True)
    W_dec = Wd.clone().requires_grad_(True)
    W_enc = Wd.t().contiguous().requires_grad_(True)
    b_enc = torch.zeros(m, requires_grad=True)
    b_dec = X.mean(0).clone().requires_grad_(True)
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=1e-3)
    lam = a.l1
    perm = torch.randperm(a.rows, generator=g)
    pos = 0

    def step():
        nonlocal perm, pos
        if pos + B > a.rows:
            perm = torch.randperm(a.rows, generator=g)
            pos = 0
        x = X[perm[pos:pos + B]]
        pos += B
        pre = x @ W_enc + b_enc
        f = torch.relu(pre)
        wsum = W_dec[:, :d].norm(dim=1) + W_dec[:, d:].norm(dim=1)
        if a.sparsity == "batchtopk":
            score = (f * wsum).flatten()
            idx = torch.topk(score.detach(), B * a.k).indices
            mask = torch.zeros_like(score).scatter_(0, idx, 1.0).view_as(f)
            f = f * mask
        xhat = f @ W_dec + b_dec
        loss = ((xhat - x) ** 2).sum(1).mean()
        if a.sparsity == "l1":
            loss = loss + lam * (f * wsum).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item(), (f > 0).sum().item() / B

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        last, l0 = step()
    t = time.perf_counter() - t0
    print(f"torch {torch.__version__} crosscoder {a.sparsity} d={d} m={m} batch={B} l1={a.l1:g}: {a.steps} steps in "
          f"{t:.3f} s = {a.steps / t:.2f} steps/s (last loss {last:.4g}, L0 of the last batch {l0:.1f})")


if __name__ == "__main__":
    main()
