/* Small shared helpers (src/base/util.h). */
#include "base/util.h"

#include <math.h>
#include <string.h>

int rs_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int rs_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double rs_percentile_sorted(const double *v, int n, double q_percent) {
    double pos = q_percent / 100.0 * (n - 1);
    int lo = (int)floor(pos);
    if (lo >= n - 1) return v[n - 1];
    double fr = pos - lo;
    return v[lo] + fr * (v[lo + 1] - v[lo]);
}
