/* Kernels at the start of the vision tower: patch extraction and the position-embedding add. */
#include "reprshift/ops.h"

#include <string.h>

void op_im2col(float *x, const float *pixels, int n_images, int C, int S, int P) {
    int G = S / P, N = G * G, K = C * P * P;
    for (int n = 0; n < n_images; n++) {
        const float *img = pixels + (size_t)n * C * S * S;
        for (int p = 0; p < N; p++) {
            int r = p / G, cc = p % G;
            float *row = x + ((size_t)n * N + p) * K;
            for (int ch = 0; ch < C; ch++)
                for (int ky = 0; ky < P; ky++)
                    memcpy(row + ((size_t)ch * P + ky) * P,
                           img + ((size_t)ch * S + (size_t)r * P + ky) * S + (size_t)cc * P, (size_t)P * sizeof(float));
        }
    }
}

void op_add_periodic(float *h, const float *table, int T, int N, int D) {
#pragma omp parallel for schedule(static) if (T > 64)
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++) h[(size_t)t * D + d] += table[(size_t)(t % N) * D + d];
}
