#!/usr/bin/env python3
"""Fits the polynomial of rs_vtanhf (src/tensor/vexp.h): tanh(x) = x + x^3 * Q(x^2) on
|x| < 0.625, Q of degree 4, minimising the largest relative error of tanh (Lawson's iteratively
reweighted least squares on 4000 Chebyshev nodes, as fit_vexp.py), then prints Q's
coefficients rounded to float32. Above 0.625 rs_vtanhf uses 1 - 2/(exp(2|x|) + 1) with
rs_vexpf. Only numpy is needed. The accuracy of the resulting function is measured in C
(tests/test_ops_isa.c, test_vtanh_accuracy) against tanh in double."""
import numpy as np

from lawson_fit import lawson_fit

T = 0.625
x = (np.cos(np.pi * (np.arange(4000) + 0.5) / 4000) + 1) / 2 * T
x = x[x > 1e-4]
z = x * x
target = (np.tanh(x) - x) / x**3
w = x**3 / np.tanh(x)  # an error in Q, times x^3 / tanh(x), is the relative error of tanh
V = np.vstack([z**k for k in range(5)]).T
c, err = lawson_fit(V, target, w)
print("max relative error of tanh in double: %.3g" % err)
for k, v in enumerate(c):
    print("Q%d = %.9ef" % (k, np.float32(v)))
