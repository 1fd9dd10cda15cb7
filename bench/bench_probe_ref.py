#!/usr/bin/env python3
"""sklearn side of bench/bench_probe.c: same data (shared generator), LogisticRegression
(lbfgs, C=1, tol=1e-4, max_iter=1000) on f32 input. Run with 2 threads, passive waits:
  OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE python bench/bench_probe_ref.py"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "reference"))
from gen_probe_goldens import objective, synth_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402

# which BLAS kernels the reference really runs (stderr: stdout is parsed by the harness)
print("sklearn BLAS: " + ", ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')} x{i['num_threads']}"
                                   for i in threadpool_info() if i["internal_api"] != "openmp"), file=sys.stderr)

n, d, K = 4000, 2304, 4
reps = int(os.environ.get("REPS", "1"))
only = os.environ.get("CASE")
for name, aniso in (("standardised", 0.0), ("unstandardised_aniso", 1.0)):
    if only and name != only:
        continue
    X, y = synth_classification(101, n, d, K, 0.02, aniso, 0)
    if aniso == 0.0:
        sc = StandardScaler().fit(X.astype(np.float64))
        X = ((X.astype(np.float64) - sc.mean_) / sc.scale_).astype(np.float32)
    best = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        lr = LogisticRegression(C=1.0, tol=1e-4, max_iter=1000).fit(X, y)
        best = min(best, time.perf_counter() - t0)
    obj = objective(lr.coef_, lr.intercept_, X.astype(np.float64), y, 1.0, np.ones(n))
    print(f"sklearn   {name:<22s} {best:8.3f} s  objective {obj:.10g}  iters {int(np.max(lr.n_iter_))}",
          flush=True)
