/* The BLAS seam (include/reprshift/blas.h): the sgemm check passes on the kernel this process
 * runs and catches wrong products; the kernel preference replaces only pre-AVX2 fallbacks and
 * only with a kernel the CPU can run. The CLI side (re-exec, --version) is tests/cli_blas.sh. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "reprshift/blas.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_check_passes),
        cmocka_unit_test(test_preference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
