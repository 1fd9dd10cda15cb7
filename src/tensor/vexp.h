/* exp(x) for float x, written so that the vectoriser turns a loop over it into SIMD code at
 * every ISA level with the same bits (no libm call, no FMA: -ffp-contract=off, no
 * reassociation). Internal to the tensor kernels.
 *
 * x = k·ln2 + r with k = rint(x·log2 e) and |r| ≤ ln2/2 (Cody–Waite: ln2 = LN2_HI + LN2_LO,
 * LN2_HI with 9 significant bits, so k·LN2_HI is exact for every k used); exp(r) =
 * 1 + r + r²·P(r), P of degree 5 fitted here (Lawson-weighted least squares on relative error,
 * tools/reference/fit_vexp.py); 2^k is applied as 2^⌊k/2⌋ · 2^(k−⌊k/2⌋) so that subnormal
 * results and overflow to +inf come out right. Accuracy against the correctly rounded exp,
 * measured on every float in [−104, 89] (test_ops_isa, test_vexp_accuracy): at most 1 ulp for
 * normal results (2 ulp budget in the test), exact 0 below −103.98, +inf above 88.73; NaN in,
 * NaN out. glibc's expf is correctly rounded in almost all cases, so the two differ by at most
 * one ulp where they differ. */
#ifndef RS_TENSOR_VEXP_H
#define RS_TENSOR_VEXP_H

#include <stdint.h>
#include <string.h>

/* c ? a : b for floats as a bitwise blend: the same value, but no branch for the vectoriser to
 * if-convert. GCC 12 vectorises a loop over rs_vexpf at the AVX-512 level with the ternary
 * form (masked moves) and not at the baseline and AVX2 levels ("control flow in loop"). */
static inline __attribute__((always_inline)) float rs_fsel(int c, float a, float b) {
    uint32_t m = (uint32_t)0 - (uint32_t)(c != 0), ab, bb;
    memcpy(&ab, &a, 4);
    memcpy(&bb, &b, 4);
    bb = (ab & m) | (bb & ~m);
    memcpy(&b, &bb, 4);
    return b;
}

static inline __attribute__((always_inline)) float rs_vexpf(float x) {
    const float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
    const float MAGIC = 12582912.0f; /* 1.5·2^23: adding it rounds to an integer, kept in the low bits */
    const float P0 = 5.000000000e-01f, P1 = 1.666666567e-01f, P2 = 4.166629538e-02f, P3 = 8.333496749e-03f,
                P4 = 1.394464867e-03f, P5 = 1.979035296e-04f;
    float xc = rs_fsel(x > 89.0f, 89.0f, x); /* NaN passes both comparisons unchanged */
    xc = rs_fsel(xc < -104.0f, -104.0f, xc);
    float t = xc * LOG2E + MAGIC;
    float kf = t - MAGIC;
    float r = (xc - kf * LN2_HI) - kf * LN2_LO;
    float p = ((((P5 * r + P4) * r + P3) * r + P2) * r + P1) * r + P0;
    float e = (p * (r * r) + r) + 1.0f;
    uint32_t tb, mb;
    memcpy(&tb, &t, 4);
    memcpy(&mb, &MAGIC, 4);
    int32_t k = (int32_t)(tb - mb); /* k in [−150, 128] for every non-NaN input */
    int32_t k1 = k / 2, k2 = k - k1;
    uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    float y = (e * s1) * s2;
    return rs_fsel(x != x, x, y);
}

/* tanh(x) for float x, vectorisable like rs_vexpf, for the attention soft-cap. For |x| < 0.625:
 * x + x³·Q(x²), Q of degree 4 fitted here (tools/reference/fit_vtanh.py, the method of
 * fit_vexp.py); above: 1 − 2/(exp(2|x|) + 1) with rs_vexpf (no cancellation there: the result
 * is ≥ 0.55); the sign is x's (so tanh(−0) = −0). Accuracy against the correctly rounded tanh,
 * measured on every 61st float (test_ops_isa, test_vtanh_accuracy): at most 1.298 ulp (1.5 ulp
 * budget in the test), within 2 ulp of glibc's tanhf; ±1 for large |x|, NaN in, NaN out. glibc's tanhf, which it replaces in the fp32 attention
 * rows, is a libm call the loop cannot vectorise (about 5 ns a value here). */
static inline __attribute__((always_inline)) float rs_vtanhf(float x) {
    const float Q0 = -3.333328068e-01f, Q1 = 1.333144158e-01f, Q2 = -5.373971537e-02f, Q3 = 2.063908800e-02f,
                Q4 = -5.704987328e-03f;
    uint32_t xb, ab, sign;
    memcpy(&xb, &x, 4);
    sign = xb & 0x80000000u;
    ab = xb & 0x7fffffffu;
    float a;
    memcpy(&a, &ab, 4);
    float z = a * a;
    float p = (((Q4 * z + Q3) * z + Q2) * z + Q1) * z + Q0;
    float small = a + (a * z) * p;
    float big = 1.0f - 2.0f / (rs_vexpf(2.0f * a) + 1.0f);
    float y = rs_fsel(a < 0.625f, small, big); /* NaN: not < 0.625, and big is NaN */
    uint32_t yb;
    memcpy(&yb, &y, 4);
    yb |= sign;
    memcpy(&y, &yb, 4);
    return y;
}

#endif
