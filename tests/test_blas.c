/* The BLAS seam (include/reprshift/blas.h): the sgemm check passes on the kernel this process
 * runs and catches wrong products; the kernel preference replaces only pre-AVX2 fallbacks and
 * only with a kernel the CPU can run; the fp32 linear layers' route (BLAS by default, oneDNN
 * on request, refused when its check fails) gives products within the fp32 error bound on
 * either route. The CLI side (re-exec, --version, RS_SGEMM) is tests/cli_blas.sh. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "reprshift/blas.h"
#include "reprshift/ops.h"

static void test_info(void **state) {
    (void)state;
    rs_blas_info bi;
    rs_blas_info_get(&bi);
    assert_true(bi.library[0] != '\0');
    if (!strcmp(bi.library, "OpenBLAS")) {
        assert_true(bi.kernel[0] != '\0');
        assert_non_null(strstr(bi.config, "OpenBLAS"));
    }
    printf("BLAS %s kernel %s\n", bi.library, bi.kernel);
}

static void test_check_passes(void **state) {
    (void)state;
    int n = 0;
    double w = rs_blas_check(&n);
    printf("sgemm check: worst %.3g x u over %d products (bound %g)\n", w, n, rs_blas_check_bound());
    assert_true(n >= 500);
    assert_true(w <= rs_blas_check_bound());
    /* any summation order of a correct fp32 dot product stays within (K−1)·u·Σ|ab|, K ≤ 130 */
    assert_true(w <= 130);
}

static void test_preference(void **state) {
    (void)state;
    /* recognised AVX2-or-newer kernels and unknown names are left alone */
    const char *keep[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "NEOVERSEN1", "", "bogus"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) assert_null(rs_blas_preferred_kernel(keep[i]));
    assert_null(rs_blas_preferred_kernel(NULL));
    const char *p = rs_blas_preferred_kernel("Prescott");
#if defined(__x86_64__)
    __builtin_cpu_init();
    const char *want = __builtin_cpu_supports("avx512bf16") ? "Cooperlake"
                       : (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl"))
                           ? "SkylakeX"
                       : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? "Haswell"
                                                                                             : NULL;
    if (want) assert_string_equal(p, want);
    else assert_null(p);
    /* the same for every pre-AVX2 class name, case-insensitively */
    const char *old[] = {"Core2", "NEHALEM", "Sandybridge", "Atom", "Barcelona", "Bulldozer"};
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++) {
        const char *q = rs_blas_preferred_kernel(old[i]);
        if (want) assert_string_equal(q, want);
        else assert_null(q);
    }
    printf("preferred over Prescott on this CPU: %s\n", p ? p : "(none)");
#else
    assert_null(p);
#endif
}

/* op_linear on a ragged shape with a bias against a double reference: the worst
 * |y − y_ref| / (u·(Σ|xw| + |b|)), which a correct fp32 product keeps below IN. */
static double linear_worst(int T, int IN, int OUT, uint64_t seed) {
    float *x = malloc(sizeof(float) * (size_t)T * IN), *W = malloc(sizeof(float) * (size_t)OUT * IN);
    float *b = malloc(sizeof(float) * (size_t)OUT), *y = malloc(sizeof(float) * (size_t)T * OUT);
    assert_non_null(x), assert_non_null(W), assert_non_null(b), assert_non_null(y);
    uint64_t s = seed;
#define U01() (s ^= s << 13, s ^= s >> 7, s ^= s << 17, (float)((s >> 11) * (1.0 / 9007199254740992.0)))
    for (size_t i = 0; i < (size_t)T * IN; i++) x[i] = U01() - 0.5f;
    for (size_t i = 0; i < (size_t)OUT * IN; i++) W[i] = U01() - 0.5f;
    for (int j = 0; j < OUT; j++) b[j] = U01();
#undef U01
    for (size_t i = 0; i < (size_t)T * OUT; i++) y[i] = NAN;
    op_linear(y, x, W, b, T, IN, OUT);
    double worst = 0, u = ldexp(1.0, -24);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OUT; o++) {
            double ref = b[o], mag = fabs(b[o]);
            for (int k = 0; k < IN; k++) {
                ref += (double)x[(size_t)t * IN + k] * W[(size_t)o * IN + k];
                mag += fabs((double)x[(size_t)t * IN + k] * W[(size_t)o * IN + k]);
            }
            double r = fabs(y[(size_t)t * OUT + o] - ref) / (u * mag);
            if (!(r <= worst)) worst = r; /* NaN (an entry never written) makes it NaN */
        }
    free(x), free(W), free(b), free(y);
    return worst;
}

static void test_sgemm_route(void **state) {
    (void)state;
    char d[400];
    /* the default: automatic, oneDNN where the CPU rule says so (its check passed), else the
     * BLAS; --version's line says which and why */
    assert_int_equal(rs_sgemm_route(), RS_SGEMM_AUTO);
    int rule = rs_sgemm_auto_onednn();
    assert_int_equal(rs_sgemm_use_onednn(), rule);
    rs_sgemm_describe(d, sizeof d);
    printf("default (rule %d): %s\n", rule, d);
    assert_non_null(strstr(d, rule ? "(the automatic choice on AMD CPUs with AVX-512" : "BLAS (the "));
    /* both answers of the rule, forced */
    rs_sgemm_inject_auto_rule(0);
    assert_int_equal(rs_sgemm_auto_onednn(), 0);
    assert_int_equal(rs_sgemm_use_onednn(), 0);
    rs_sgemm_describe(d, sizeof d);
    assert_true(strstr(d, "BLAS (the automatic choice on this CPU;") || strstr(d, "BLAS (the default; this build has no oneDNN)"));
    rs_sgemm_inject_auto_rule(1);
    if (rs_sgemm_auto_onednn()) { /* a build with oneDNN */
        assert_int_equal(rs_sgemm_use_onednn(), 1);
        assert_string_equal(rs_sgemm_path(), "oneDNN");
        rs_sgemm_inject_check_failure(1); /* an automatic oneDNN failing its check keeps the BLAS and says why */
        assert_int_equal(rs_sgemm_use_onednn(), 0);
        rs_sgemm_describe(d, sizeof d);
        printf("automatic, check failed: %s\n", d);
        assert_non_null(strstr(d, "BLAS (the automatic choice on this CPU would be oneDNN"));
        assert_non_null(strstr(d, "worst error inf"));
        rs_sgemm_inject_check_failure(0);
    } else {
        assert_int_equal(rs_sgemm_use_onednn(), 0);
    }
    rs_sgemm_inject_auto_rule(-1);
    assert_int_equal(rs_sgemm_auto_onednn(), rule);
    /* the BLAS asked for */
    assert_int_equal(rs_sgemm_set_route(RS_SGEMM_BLAS), 0);
    assert_int_equal(rs_sgemm_use_onednn(), 0);
    assert_string_equal(rs_sgemm_path(), "BLAS");
    rs_sgemm_describe(d, sizeof d);
    assert_string_equal(d, "BLAS (asked for: RS_SGEMM=blas)");
    double wb = linear_worst(37, 300, 129, 11);
    printf("op_linear on the BLAS: worst %.3g x u\n", wb);
    assert_true(wb <= 300);
    assert_int_equal(rs_sgemm_route_parse("blas"), RS_SGEMM_BLAS);
    assert_int_equal(rs_sgemm_route_parse("onednn"), RS_SGEMM_ONEDNN);
    assert_int_equal(rs_sgemm_route_parse("auto"), RS_SGEMM_AUTO);
    assert_int_equal(rs_sgemm_route_parse("fast"), -1);
    assert_int_equal(rs_sgemm_route_parse(NULL), -1);
    assert_int_equal(rs_sgemm_set_route(7), -1);
    assert_int_equal(rs_sgemm_route(), RS_SGEMM_BLAS);
    if (rs_sgemm_set_route(RS_SGEMM_ONEDNN)) {
        /* a build without oneDNN (or one whose engine does not start) refuses the route */
        assert_int_equal(rs_sgemm_route(), RS_SGEMM_BLAS);
        int n = -1;
        assert_true(isinf(rs_sgemm_check(&n)));
        assert_int_equal(n, 0);
        printf("no oneDNN here: RS_SGEMM_ONEDNN refused\n");
        return;
    }
    /* oneDNN: its check passes and its products are as accurate as the BLAS's */
    int n = 0;
    double w = rs_sgemm_check(&n);
    printf("oneDNN check: worst %.3g x u over %d products\n", w, n);
    assert_true(n >= 200);
    assert_true(w <= rs_blas_check_bound());
    assert_int_equal(rs_sgemm_use_onednn(), 1);
    assert_string_equal(rs_sgemm_path(), "oneDNN");
    rs_sgemm_describe(d, sizeof d);
    printf("onednn: %s\n", d);
    assert_non_null(strstr(d, "RS_SGEMM=onednn; its check passed"));
    double wd = linear_worst(37, 300, 129, 11), wd1 = linear_worst(1, 2304, 7, 5), wdb = linear_worst(300, 33, 1000, 3);
    printf("op_linear on oneDNN: worst %.3g, %.3g, %.3g x u\n", wd, wd1, wdb);
    assert_true(wd <= 300 && wd1 <= 2304 && wdb <= 33);
    /* a failed check (fault injection) keeps the BLAS and says why */
    rs_sgemm_inject_check_failure(1);
    assert_int_equal(rs_sgemm_use_onednn(), 0);
    rs_sgemm_describe(d, sizeof d);
    printf("refused: %s\n", d);
    assert_non_null(strstr(d, "RS_SGEMM=onednn refused"));
    assert_non_null(strstr(d, "worst error inf"));
    assert_true(linear_worst(37, 300, 129, 11) <= 300);
    rs_sgemm_inject_check_failure(0);
    assert_int_equal(rs_sgemm_use_onednn(), 1);
    assert_int_equal(rs_sgemm_set_route(RS_SGEMM_BLAS), 0);
    assert_int_equal(rs_sgemm_use_onednn(), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_check_passes),
        cmocka_unit_test(test_preference),
        cmocka_unit_test(test_sgemm_route),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
