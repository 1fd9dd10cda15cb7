/* StandardScaler equivalent: mean and population standard deviation in double; features
 * whose variance is at rounding level (sklearn's _is_constant_feature bound) get scale 1. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "reprshift/probe.h"

int rs_check_finite(const float *X, int n, int d, rs_err *err) {
    for (size_t i = 0; i < (size_t)n; i++)
        for (size_t j = 0; j < (size_t)d; j++)
            if (!isfinite(X[i * d + j]))
                return rs_errf(err, "non-finite feature value (%g) at row %zu, column %zu",
                               (double)X[i * d + j], i, j);
    return 0;
}

int rs_check_labels(const int *y, int n, int K, rs_err *err) {
    if (K < 2) return rs_errf(err, "need at least two classes, got %d", K);
    int first = n > 0 ? y[0] : -1, two = 0;
    for (int i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= K)
            return rs_errf(err, "label %d at row %d outside 0..%d", y[i], i, K - 1);
        if (y[i] != first) two = 1;
    }
    if (!two) return rs_errf(err, "only one class present in %d labelled rows; a probe needs two", n);
    return 0;
}

int rs_scaler_fit(rs_scaler *s, const float *X, int n, int d, rs_err *err) {
    s->d = 0;
    s->mean = s->scale = NULL;
    if (n < 1 || d < 1) return rs_errf(err, "scaler: empty matrix (%d x %d)", n, d);
    if (rs_check_finite(X, n, d, err)) return -1;
    s->mean = calloc((size_t)d, sizeof(double));
    s->scale = calloc((size_t)d, sizeof(double));
    if (!s->mean || !s->scale) {
        rs_scaler_free(s);
        return rs_errk(err, RS_ENOMEM, "scaler: out of memory (d=%d)", d);
    }
    s->d = d;
    for (size_t i = 0; i < (size_t)n; i++)
        for (size_t j = 0; j < (size_t)d; j++) s->mean[j] += X[i * d + j];
    for (int j = 0; j < d; j++) s->mean[j] /= n;
    /* two-pass variance: exact enough and simple */
    for (size_t i = 0; i < (size_t)n; i++)
        for (size_t j = 0; j < (size_t)d; j++) {
            double c = X[i * d + j] - s->mean[j];
            s->scale[j] += c * c;
        }
    for (int j = 0; j < d; j++) {
        double var = s->scale[j] / n;
        double bound = n * DBL_EPSILON * var + pow(n * s->mean[j] * DBL_EPSILON, 2);
        s->scale[j] = (var <= bound || sqrt(var) < 10 * DBL_EPSILON) ? 1.0 : sqrt(var);
    }
    return 0;
}

void rs_scaler_apply(const rs_scaler *s, const float *X, int n, float *out) {
    for (size_t i = 0; i < (size_t)n; i++)
        for (size_t j = 0; j < (size_t)s->d; j++)
            out[i * s->d + j] = (float)((X[i * s->d + j] - s->mean[j]) / s->scale[j]);
}

void rs_scaler_free(rs_scaler *s) {
    free(s->mean);
    free(s->scale);
    s->mean = s->scale = NULL;
    s->d = 0;
}
