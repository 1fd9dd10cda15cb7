/* LayerNorm's row statistics, shared by the fp32 and bf16 kernels (internal to the tensor
 * kernels): mean and variance as sequential double sums, then *m = (float)mean and
 * *r = 1/sqrt((float)var + eps). */
#ifndef RS_TENSOR_NORM_STATS_H
#define RS_TENSOR_NORM_STATS_H

#include <math.h>

static inline __attribute__((always_inline)) void rs_layernorm_stats(const float *xr, int D, float eps, float *m,
                                                                     float *r) {
    double mu = 0, var = 0;
    for (int d = 0; d < D; d++) mu += xr[d];
    mu /= D;
    for (int d = 0; d < D; d++) var += ((double)xr[d] - mu) * ((double)xr[d] - mu);
    var /= D;
    *r = 1.0f / sqrtf((float)var + eps);
    *m = (float)mu;
}

#endif
