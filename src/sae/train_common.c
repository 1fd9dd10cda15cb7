/* Shared trainer pieces (train_common.h). */
#include "sae/train_common.h"

#include <math.h>
#include <omp.h>

void rs_adam_update(float *w, const float *g, float *m1, float *m2, size_t n, float lr, float beta1, float beta2,
                    float eps, double c1, double c2) {
    long long nn = (long long)n;
#pragma omp parallel for schedule(static) if (nn > (1LL << 18))
    for (long long i = 0; i < nn; i++) {
        m1[i] = beta1 * m1[i] + (1 - beta1) * g[i];
        m2[i] = beta2 * m2[i] + (1 - beta2) * g[i] * g[i];
        double mh = m1[i] / c1, vh = m2[i] / c2;
        w[i] -= (float)(lr * mh / (sqrt(vh) + eps));
    }
}

/* m2 >= 0, so sqrtf never sets errno: without math-errno the loop vectorises (sqrtps) */
__attribute__((optimize("no-math-errno"))) static void adam_f32_range(float *restrict w, const float *restrict g,
                                                                      float *restrict m1, float *restrict m2, long long i0,
                                                                      long long i1, float step_size, float c2s, float beta2,
                                                                      float w1, float w2, float eps) {
    for (long long i = i0; i < i1; i++) {
        float gi = g[i];
        m1[i] += w1 * (gi - m1[i]);
        m2[i] = beta2 * m2[i] + w2 * gi * gi;
        w[i] -= step_size * m1[i] / (sqrtf(m2[i]) / c2s + eps);
    }
}

void rs_adam_update_f32(float *w, const float *g, float *m1, float *m2, size_t n, float lr, float beta1, float beta2,
                        float eps, long long step) {
    double c1 = 1 - pow((double)beta1, (double)step), c2 = 1 - pow((double)beta2, (double)step);
    const float step_size = (float)(lr / c1), c2s = (float)sqrt(c2), w1 = 1 - beta1, w2 = 1 - beta2;
    long long nn = (long long)n;
#pragma omp parallel if (nn > (1LL << 18))
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        long long per = (nn + nt - 1) / nt, i0 = (long long)t * per, i1 = i0 + per < nn ? i0 + per : nn;
        if (i0 < i1) adam_f32_range(w, g, m1, m2, i0, i1, step_size, c2s, beta2, w1, w2, eps);
    }
}
