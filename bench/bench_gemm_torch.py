#!/usr/bin/env python3
"""torch's fp32 matmul (the GEMM the transformers reference runs on: MKL on x86) at the
same linear-layer shapes and in the same output format as bench_gemm.c, so that the
"best fp32 GEMM rate" a benchmark run divides by also covers the reference's own GEMM.
y = x · Wᵀ via torch.nn.functional.linear, 2 threads (torch.set_num_threads), best of
--reps after one warm-up. Correctness: the worst |C − C_ref| / (u · Σ|a||b|) (u = 2⁻²⁴)
over products at the model's inner dimensions and small ragged shapes, against float64;
"correct" as in bench_gemm.c (≤ 4·K_max).
usage: bench_gemm_torch.py [--reps 5]"""
import argparse, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=5)
a = p.parse_args()
torch.set_num_threads(2)
torch.manual_seed(0)
kern = "MKL" if torch.backends.mkl.is_available() else "native"
lib = f"torch{torch.__version__.split('+')[0]}"
u = 2.0 ** -24
worst, kmax, cases = 0.0, 0, 0
with torch.inference_mode():
    for M, K, N in [(1, 1, 1), (3, 5, 7), (17, 33, 15), (65, 129, 100), (7, 2304, 300), (9, 9216, 130),
                    (5, 1152, 257), (3, 4304, 200), (33, 256, 512)]:
        x = torch.rand(M, K) - 0.5
        w = torch.rand(N, K) - 0.5
        c = torch.nn.functional.linear(x, w).double()
        ref = x.double() @ w.double().T
        bound = u * (x.double().abs() @ w.double().abs().T)
        worst = max(worst, float(((c - ref).abs() / bound.clamp_min(1e-30)).max()))
        kmax = max(kmax, K)
        cases += 1
    correct = worst <= 4.0 * kmax
    print(f"gemm {lib} {kern} correct {'yes' if correct else 'NO'} worst_ratio {worst:.3g} cases {cases} kmax {kmax}", flush=True)
    shapes = [("gemma2.qkv", 512, 2304, 4096), ("gemma2.o", 512, 2048, 2304), ("gemma2.gate_up", 512, 2304, 18432),
              ("gemma2.down", 512, 9216, 2304), ("gemma2.down.T64", 64, 9216, 2304), ("siglip.qkv", 256, 1152, 3456),
              ("siglip.fc1", 256, 1152, 4304), ("siglip.fc2", 256, 4304, 1152)]
    best, flop_all, t_all = 0.0, 0.0, 0.0
    for name, T, IN, OUT in shapes:
        x = torch.rand(T, IN) - 0.5
        w = torch.rand(OUT, IN) - 0.5
        torch.nn.functional.linear(x, w)
        tb = 1e30
        for _ in range(a.reps):
            t0 = time.perf_counter()
            torch.nn.functional.linear(x, w)
            tb = min(tb, time.perf_counter() - t0)
        flop = 2.0 * T * IN * OUT
        g = flop / tb / 1e9
        flop_all += flop
        t_all += tb
        best = max(best, g)
        print(f"gemm {lib} {kern} shape {name} T {T} IN {IN} OUT {OUT} gflops {g:.1f}", flush=True)
    print(f"gemm {lib} {kern} summary best_gflops {best:.1f} overall_gflops {flop_all / t_all / 1e9:.1f} "
          f"correct {'yes' if correct else 'NO'}")
