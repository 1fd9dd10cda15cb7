/* Counter-based random numbers and synthetic classification data, defined so that
 * tools/reference/gen_probe_goldens.py reproduces the same matrices with numpy; the
 * high-dimensional parity fixtures then only need sklearn's outputs committed. */
#include <math.h>

#include "reprshift/probe.h"

uint64_t rs_splitmix64_at(uint64_t seed, uint64_t idx) {
    uint64_t z = seed + (idx + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double rs_uniform_at(uint64_t seed, uint64_t idx) {
    return (double)(rs_splitmix64_at(seed, idx) >> 11) * 0x1.0p-53;
}

double rs_normal_at(uint64_t seed, uint64_t idx) {
    double u1 = rs_uniform_at(seed, 2 * idx), u2 = rs_uniform_at(seed, 2 * idx + 1);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

void rs_synth_classification(uint64_t seed, int n, int d, int K, double sep, double aniso,
                             int imbalanced, float *X, int *y) {
    double total = imbalanced ? 0.5 * K * (K + 1) : K;
    for (int i = 0; i < n; i++) {
        double u = rs_uniform_at(seed + 2, (uint64_t)i) * total, acc = 0;
        int k = 0;
        for (; k < K - 1; k++) {
            acc += imbalanced ? k + 1 : 1;
            if (u < acc) break;
        }
        y[i] = k;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double m = sep * rs_normal_at(seed + 1, (uint64_t)y[i] * d + j);
            double s = exp(aniso * rs_normal_at(seed + 4, (uint64_t)j));
            X[(size_t)i * d + j] = (float)((m + rs_normal_at(seed + 3, (uint64_t)i * d + j)) * s);
        }
}
