/* Shift metrics: hand-checkable tiny cases, then every statistic (point estimate and
 * bootstrap interval, replaying the same resamples) against numpy formulas applied directly
 * to the resampled rows (tools/reference/gen_sae_goldens.py, shift_golden.safetensors). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/safetensors.h"
#include "reprshift/shift.h"

#define FX "tests/fixtures/sae/"

static void test_hand_cases(void **st) {
    (void)st;
    float x[2] = {1, 0}, y[2] = {0, 1}, z[2] = {0, 0}, w[2] = {3, 4}, v[2] = {6, 8};
    assert_true(fabs(shift_cosine(x, y, 2)) < 1e-15);
    assert_true(fabs(shift_cosine(w, v, 2) - 1) < 1e-15);
    assert_true(fabs(shift_cosine(x, w, 2) - 0.6) < 1e-15);
    assert_true(shift_cosine(z, z, 2) == 1.0);
    assert_true(shift_cosine(z, x, 2) == 0.0);
    /* JS in bits: disjoint → 1, identical (up to scale) → 0,
     * p=(1,0) q=(½,½): ½·log2(4/3) + ½(½·log2(2/3) + ½·log2 2) = 0.311278... */
    double p1[2] = {1, 0}, q1[2] = {0, 1}, q2[2] = {0.5, 0.5}, p3[3] = {1, 2, 3}, q3[3] = {2, 4, 6};
    assert_true(fabs(shift_js_bits(p1, q1, 2) - 1) < 1e-15);
    assert_true(fabs(shift_js_bits(p3, q3, 3)) < 1e-15);
    double ref = 0.5 * log2(4.0 / 3) + 0.5 * (0.5 * log2(2.0 / 3) + 0.5);
    assert_true(fabs(shift_js_bits(p1, q2, 2) - ref) < 1e-12);
    assert_true(fabs(ref - 0.3112781244591328) < 1e-12);
    /* Pearson: perfectly linear → 1, reversed → -1 */
    double a[4] = {1, 2, 3, 4}, b[4] = {3, 5, 7, 9}, c[4] = {4, 3, 2, 1};
    assert_true(fabs(shift_pearson(a, b, 4) - 1) < 1e-12);
    assert_true(fabs(shift_pearson(a, c, 4) + 1) < 1e-12);
    /* CKA: invariant to scale + translation (B = 2A + 1) → 1; and to rotations */
    float A[8] = {1, 0, 0, 1, 2, 1, -1, 3}, B[8], R[8];
    for (int i = 0; i < 8; i++) B[i] = 2 * A[i] + 1;
    for (int t = 0; t < 4; t++) { /* 90° rotation (x,y) → (-y,x) */
        R[2 * t] = -A[2 * t + 1];
        R[2 * t + 1] = A[2 * t];
    }
    assert_true(fabs(shift_cka_linear(A, B, 4, 2) - 1) < 1e-6);
    assert_true(fabs(shift_cka_linear(A, R, 4, 2) - 1) < 1e-6);
}

static void test_hand_features(void **st) {
    (void)st;
    /* two rows in one group: row 0 A={0:1,1:1} B={1:1,2:1} → jaccard 1/3, cos 1/2;
     * row 1 both empty → jaccard 1, cos 1, js 0. Feature jaccard over alive {0,1,2}:
     * f0 0/1, f1 1/1, f2 0/1 → 1/3 (the dead feature 3 does not enter). */
    float fa_d[8] = {1, 1, 0, 0, 0, 0, 0, 0}, fb_d[8] = {0, 1, 1, 0, 0, 0, 0, 0};
    float a[4] = {1, 0, 1, 1}, b[4] = {1, 0, 1, 1};
    sae_sparse fa, fb;
    rs_err err;
    assert_int_equal(sae_sparse_from_dense(fa_d, 2, 4, &fa, &err), 0);
    assert_int_equal(sae_sparse_from_dense(fb_d, 2, 4, &fb, &err), 0);
    int64_t off[2] = {0, 2};
    shift_input in = {.n_rows = 2, .d = 2, .a = a, .b = b, .fa = &fa, .fb = &fb, .n_groups = 1, .offsets = off};
    shift_opts o;
    shift_opts_default(&o);
    o.n_boot = 0;
    shift_result r;
    if (shift_compare(&in, &o, &r, &err)) fail_msg("%s", err.msg);
    assert_true(fabs(r.row_jaccard[0] - 1.0 / 3) < 1e-7);
    assert_true(r.row_jaccard[1] == 1.0f);
    assert_true(fabs(r.row_cos_feat[0] - 0.5) < 1e-7);
    assert_true(fabs(r.jaccard_token.value - (1.0 / 3 + 1) / 2) < 1e-12);
    assert_true(fabs(r.jaccard_feature.value - 1.0 / 3) < 1e-12);
    assert_int_equal(r.n_alive_either, 3);
    assert_true(fabs(r.cos_raw.value - 1.0) < 1e-12 && r.l2_raw.value == 0.0);
    /* mass distributions (1,1,0) vs (0,1,1): JS = ½·½·log2(½/¼)·2 = 0.5 bits */
    assert_true(fabs(r.js_mass_bits.value - 0.5) < 1e-12);
    assert_true(isnan(r.cos_raw.lo)); /* no bootstrap requested */
    assert_int_equal(r.count_both[1], 1);
    assert_int_equal(r.count_both[0], 0);
    shift_result_free(&r);
    sae_sparse_free(&fa);
    sae_sparse_free(&fb);
}

static void test_vs_numpy(void **st) {
    (void)st;
    rs_err err;
    st_set *g;
    if (st_open(&g, FX "shift_golden.safetensors", &err)) fail_msg("%s", err.msg);
    const st_tensor *ta = st_get(g, "a"), *toff = st_get(g, "offsets"), *tc = st_get(g, "boot_counts");
    int64_t n = ta->shape[0];
    int d = (int)ta->shape[1];
    int m = (int)st_get(g, "fa")->shape[1];
    sae_sparse fa, fb;
    assert_int_equal(sae_sparse_from_dense(st_get(g, "fa")->data, n, m, &fa, &err), 0);
    assert_int_equal(sae_sparse_from_dense(st_get(g, "fb")->data, n, m, &fb, &err), 0);
    shift_input in = {.n_rows = n, .d = d, .a = ta->data, .b = st_get(g, "b")->data, .fa = &fa, .fb = &fb,
                      .n_groups = toff->numel - 1, .offsets = toff->data};
    shift_opts o;
    shift_opts_default(&o);
    o.n_boot = (int)tc->shape[0];
    o.boot_counts = tc->data;
    shift_result r;
    if (shift_compare(&in, &o, &r, &err)) fail_msg("%s", err.msg);
    const double *val = st_get(g, "value")->data, *lo = st_get(g, "lo")->data, *hi = st_get(g, "hi")->data;
    rs_stat *got[10] = {&r.cos_raw, &r.l2_raw, &r.cos_feat, &r.l2_feat, &r.jaccard_token, &r.js_token_bits,
                        &r.jaccard_feature, &r.js_mass_bits, &r.pearson_mean_feat, &r.cka_linear};
    const char *names[10] = {"cos_raw", "l2_raw", "cos_feat", "l2_feat", "jaccard_token", "js_token_bits",
                             "jaccard_feature", "js_mass_bits", "pearson_mean_feat", "cka_linear"};
    for (int k = 0; k < 10; k++) {
        double tol = 2e-5;
        if (fabs(got[k]->value - val[k]) > tol * fmax(1, fabs(val[k])))
            fail_msg("%s: value %.9g vs numpy %.9g", names[k], got[k]->value, val[k]);
        if (fabs(got[k]->lo - lo[k]) > tol * fmax(1, fabs(lo[k])))
            fail_msg("%s: CI lo %.9g vs numpy %.9g", names[k], got[k]->lo, lo[k]);
        if (fabs(got[k]->hi - hi[k]) > tol * fmax(1, fabs(hi[k])))
            fail_msg("%s: CI hi %.9g vs numpy %.9g", names[k], got[k]->hi, hi[k]);
        assert_true(got[k]->lo <= got[k]->hi);
    }
    assert_int_equal(r.n_alive_either, atoi(st_meta(g, "n_alive")));
    const double *pr = st_get(g, "per_row_cos_raw")->data;
    for (int64_t t = 0; t < n; t++) assert_true(fabs(r.row_cos_raw[t] - pr[t]) < 1e-6);
    /* the direct d×d CKA formula agrees with the Gram/bootstrap path */
    assert_true(fabs(shift_cka_linear(ta->data, st_get(g, "b")->data, n, d) - val[9]) < 1e-5);
    shift_result_free(&r);
    /* own RNG: intervals exist and bracket the estimate loosely; CKA falls back above the cap */
    o.boot_counts = NULL;
    o.n_boot = 200;
    o.cka_max_rows = 4;
    if (shift_compare(&in, &o, &r, &err)) fail_msg("%s", err.msg);
    assert_true(r.cos_raw.lo < r.cos_raw.value && r.cos_raw.value < r.cos_raw.hi);
    assert_true(fabs(r.cka_linear.value - val[9]) < 1e-5);
    assert_true(isnan(r.cka_linear.lo));
    shift_result_free(&r);
    /* bad offsets */
    int64_t bad[3] = {0, 5, 3};
    in.offsets = bad;
    in.n_groups = 2;
    assert_int_equal(shift_compare(&in, &o, &r, &err), -1);
    sae_sparse_free(&fa);
    sae_sparse_free(&fb);
    st_close(g);
}

/* The permutation nulls with 1 and 2 threads (shift_opts.threads) are identical bit for bit
 * (each permutation's statistics in their own slot), with features and CKA. */
static void test_perm_threads_identical(void **st) {
    (void)st;
    rs_err err;
    st_set *g;
    if (st_open(&g, FX "shift_golden.safetensors", &err)) fail_msg("%s", err.msg);
    const st_tensor *ta = st_get(g, "a"), *toff = st_get(g, "offsets");
    int64_t n = ta->shape[0];
    int d = (int)ta->shape[1];
    int m = (int)st_get(g, "fa")->shape[1];
    sae_sparse fa, fb;
    assert_int_equal(sae_sparse_from_dense(st_get(g, "fa")->data, n, m, &fa, &err), 0);
    assert_int_equal(sae_sparse_from_dense(st_get(g, "fb")->data, n, m, &fb, &err), 0);
    shift_input in = {.n_rows = n, .d = d, .a = ta->data, .b = st_get(g, "b")->data, .fa = &fa, .fb = &fb,
                      .n_groups = toff->numel - 1, .offsets = toff->data};
    shift_opts o;
    shift_opts_default(&o);
    o.n_boot = 20;
    o.n_perm = 57;
    shift_result r1, r2;
    o.threads = 1;
    if (shift_compare(&in, &o, &r1, &err)) fail_msg("%s", err.msg);
    o.threads = 2;
    if (shift_compare(&in, &o, &r2, &err)) fail_msg("%s", err.msg);
    int tested = 0;
    for (int k = 0; k < SHIFT_N_METRICS; k++) {
        assert_int_equal(r1.null[k].n_perm, r2.null[k].n_perm);
        assert_memory_equal(&r1.null[k].p, &r2.null[k].p, sizeof(double));
        assert_memory_equal(&r1.null[k].lo, &r2.null[k].lo, sizeof(double));
        assert_memory_equal(&r1.null[k].hi, &r2.null[k].hi, sizeof(double));
        assert_memory_equal(&r1.null[k].mean, &r2.null[k].mean, sizeof(double));
        tested += r1.null[k].n_perm > 0;
    }
    assert_true(tested >= 9); /* every permutable metric, features and CKA included */
    shift_result_free(&r1);
    shift_result_free(&r2);
    sae_sparse_free(&fa);
    sae_sparse_free(&fb);
    st_close(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_cases),
        cmocka_unit_test(test_hand_features),
        cmocka_unit_test(test_vs_numpy),
        cmocka_unit_test(test_perm_threads_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
