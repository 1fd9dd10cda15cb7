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

uint64_t rs_train_next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float rs_train_gauss(uint64_t *s) {
    double u1 = ((rs_train_next_u64(s) >> 11) + 1.0) / 9007199254740993.0,
           u2 = (rs_train_next_u64(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}
