#!/usr/bin/env python3
"""sae-lens/torch reference for bench/bench_sae.c: JumpReLU SAE encode at d_in 2304,
d_sae 16384 on CPU, random weights; prints vectors/s. Threads follow OMP_NUM_THREADS."""
import os
import sys
import time

import torch
import sae_lens
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
d, m = 2304, 16384
sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d, d_sae=m, apply_b_dec_to_input=False))
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    sae.W_enc.copy_((torch.rand(d, m, generator=g) * 2 - 1) * 0.03)
    sae.W_dec.copy_((torch.rand(m, d, generator=g) * 2 - 1) * 0.03)
    sae.b_enc.copy_((torch.rand(m, generator=g) * 2 - 1) * 0.1)
    sae.threshold.copy_(0.5 + 0.5 * (torch.rand(m, generator=g) * 2 - 1))
    x = (torch.rand(n, d, generator=g) * 2 - 1) * 3
    sae.encode(x)
    best = 1e30
    for _ in range(5):
        t0 = time.perf_counter()
        a = sae.encode(x)
        best = min(best, time.perf_counter() - t0)
print(f"sae-lens {sae_lens.__version__} torch {torch.__version__} encode jumprelu d_in {d} d_sae {m} n {n}: "
      f"{n / best:.0f} vec/s (best of 5, {best:.3f} s; threads {torch.get_num_threads()}; "
      f"mean L0 {(a != 0).sum().item() / n:.1f})")
