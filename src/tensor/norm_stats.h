/* Row statistics of the norms, shared by the fp32 and bf16 kernels (internal to the tensor
 * kernels).
 *
 * A row's sum runs in RS_NSUM interleaved double partial sums: lane j adds elements j,
 * j + RS_NSUM, j + 2·RS_NSUM, … in order, and the lanes are then added pairwise in a fixed
 * tree. The lanes are independent, so the vectoriser runs them side by side at every ISA
 * level, with the same operations in the same order, and so the same bits (tensor/isa.h). A
 * single sequential sum is one chain of D dependent additions; that chain bounded the norms
 * (bench/README.md, "Norm statistics in 32 lanes"). In double precision the order of the sum
 * sits far inside the float result's rounding: test_ops_isa finds the outputs bit-identical to
 * the sequential sums' (legacy_rmsnorm, legacy_layernorm) on all its rows, ragged D included. */
#ifndef RS_TENSOR_NORM_STATS_H
#define RS_TENSOR_NORM_STATS_H

#include <math.h>

enum { RS_NSUM = 32 };

/* a[0] + … + a[RS_NSUM-1], pairwise: a[j] += a[j + w] for w = 16, 8, 4, 2, 1 (a is consumed) */
static inline __attribute__((always_inline)) double rs_lanes_total(double *a) {
    for (int w = RS_NSUM / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) a[j] += a[j + w];
    return a[0];
}

/* Σ x[d] */
static inline __attribute__((always_inline)) double rs_row_sum(const float *x, int D) {
    double a[RS_NSUM] = {0};
    int d = 0;
    for (; d + RS_NSUM <= D; d += RS_NSUM)
        for (int j = 0; j < RS_NSUM; j++) a[j] += x[d + j];
    for (int j = 0; d + j < D; j++) a[j] += x[d + j];
    return rs_lanes_total(a);
}

/* Σ x[d]² */
static inline __attribute__((always_inline)) double rs_row_sumsq(const float *x, int D) {
    double a[RS_NSUM] = {0};
    int d = 0;
    for (; d + RS_NSUM <= D; d += RS_NSUM)
        for (int j = 0; j < RS_NSUM; j++) a[j] += (double)x[d + j] * x[d + j];
    for (int j = 0; d + j < D; j++) a[j] += (double)x[d + j] * x[d + j];
    return rs_lanes_total(a);
}

/* Σ (x[d] − mu)² */
static inline __attribute__((always_inline)) double rs_row_sqdev(const float *x, int D, double mu) {
    double a[RS_NSUM] = {0};
    int d = 0;
    for (; d + RS_NSUM <= D; d += RS_NSUM)
        for (int j = 0; j < RS_NSUM; j++) a[j] += ((double)x[d + j] - mu) * ((double)x[d + j] - mu);
    for (int j = 0; d + j < D; j++) a[j] += ((double)x[d + j] - mu) * ((double)x[d + j] - mu);
    return rs_lanes_total(a);
}

/* LayerNorm's row statistics: *m = (float)mean, *r = 1/sqrt((float)var + eps), the variance
 * about the double mean (two passes). */
static inline __attribute__((always_inline)) void rs_layernorm_stats(const float *xr, int D, float eps, float *m,
                                                                     float *r) {
    double mu = rs_row_sum(xr, D) / D;
    double var = rs_row_sqdev(xr, D, mu) / D;
    *r = 1.0f / sqrtf((float)var + eps);
    *m = (float)mu;
}

/* RMSNorm's 1/sqrt(mean(x²) + eps) */
static inline __attribute__((always_inline)) float rs_rms_inv(const float *xr, int D, float eps) {
    return 1.0f / sqrtf((float)(rs_row_sumsq(xr, D) / D) + eps);
}

#endif
