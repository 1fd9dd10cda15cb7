/* Shared trainer pieces (train_common.h). */
#include "sae/train_common.h"

#include <math.h>

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
