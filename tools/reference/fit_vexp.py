#!/usr/bin/env python3
"""Fits the polynomial of rs_vexpf (src/tensor/vexp.h): exp(r) = 1 + r + r^2 * P(r) on
|r| <= ln2/2, P of degree 5, minimising the largest relative error of exp (Lawson's iteratively
reweighted least squares on 4000 Chebyshev nodes), then prints P's coefficients rounded to
float32. Only numpy is needed. The accuracy of the resulting function is measured in C
(tests/test_ops_isa.c, test_vexp_accuracy) against exp in double."""
import numpy as np

from lawson_fit import lawson_fit

half = np.log(2.0) / 2
r = np.cos(np.pi * (np.arange(4000) + 0.5) / 4000) * half
target = (np.exp(r) - 1 - r) / r**2
w = r**2 / np.exp(r)  # an error in P, times r^2 / exp(r), is the relative error of exp
V = np.vstack([r**k for k in range(6)]).T
c, err = lawson_fit(V, target, w)
print("max relative error of exp in double: %.3g" % err)
for k, x in enumerate(c):
    print("P%d = %.9ef" % (k, np.float32(x)))
