#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

const char *tu_shared(const char *rel) {
    static char buf[4096];
    const char *base = getenv("RS_SHARED_DIR");
    if (!base) base = "../shared";
    snprintf(buf, sizeof buf, "%s/%s", base, rel);
    return buf;
}

const char *tu_tmpdir(void) {
    static char buf[256];
    snprintf(buf, sizeof buf, "/tmp/rs_test_XXXXXX");
    if (!mkdtemp(buf)) fail_msg("mkdtemp failed");
    return buf;
}

double tu_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

double tu_max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

void tu_assert_close_rel(const float *ref, const float *got, size_t n, double rel, const char *label) {
    double d = tu_max_abs_diff(ref, got, n), m = tu_max_abs(ref, n);
    if (!(d <= rel * m)) fail_msg("%s: max|diff| %.3g > %.3g x max|ref| %.3g", label, d, rel, m);
}

int tu_system(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}
