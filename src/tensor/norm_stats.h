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

/* Σ term(x[d]) over the row in RS_NSUM lanes, then the tree: term is x (RS_SUM_X), x²
 * (RS_SUM_SQ) or (x − mu)² (RS_SUM_DEV), in double. Inlined with a constant `what`, each use
 * compiles to its own loop. */
enum { RS_SUM_X, RS_SUM_SQ, RS_SUM_DEV };
static inline __attribute__((always_inline)) double rs_term(float x, int what, double mu) {
    return what == RS_SUM_X ? (double)x : what == RS_SUM_SQ ? (double)x * x : ((double)x - mu) * ((double)x - mu);
}
static inline __attribute__((always_inline)) double rs_row_lanes(const float *x, int D, int what, double mu) {
    double a[RS_NSUM] = {0};
    int d = 0;
    for (; d + RS_NSUM <= D; d += RS_NSUM)
        for (int j = 0; j < RS_NSUM; j++) a[j] += rs_term(x[d + j], what, mu);
    for (int j = 0; d + j < D; j++) a[j] += rs_term(x[d + j], what, mu);
    return rs_lanes_total(a);
}

/* LayerNorm's row statistics: *m = (float)mean, *r = 1/sqrt((float)var + eps), the variance
 * about the double mean (two passes). */
static inline __attribute__((always_inline)) void rs_layernorm_stats(const float *xr, int D, float eps, float *m,
                                                                     float *r) {
    double mu = rs_row_lanes(xr, D, RS_SUM_X, 0.0) / D;
    double var = rs_row_lanes(xr, D, RS_SUM_DEV, mu) / D;
    *r = 1.0f / sqrtf((float)var + eps);
    *m = (float)mu;
}

/* RMSNorm's 1/sqrt(mean(x²) + eps) */
static inline __attribute__((always_inline)) float rs_rms_inv(const float *xr, int D, float eps) {
    return 1.0f / sqrtf((float)(rs_row_lanes(xr, D, RS_SUM_SQ, 0.0) / D) + eps);
}

#endif
