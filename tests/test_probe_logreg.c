/* Logistic-regression probe vs scikit-learn (tools/reference/gen_probe_goldens.py):
 * objective within 1e-6 relative, coefficients within 1e-3 relative (max-abs norm),
 * ≥ 99.5% identical test predictions, on sklearn's real datasets and on synthetic
 * d = 2304 data regenerated here from the shared splitmix64 generator. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe.h"
#include "reprshift/safetensors.h"
#include "testutil.h"

#define FIX "tests/fixtures/probe/"

static st_set *open_fix(const char *name) {
    char path[512];
    snprintf(path, sizeof path, FIX "%s.safetensors", name);
    st_set *s = NULL;
    rs_err err;
    if (st_open(&s, path, &err)) fail_msg("%s", err.msg);
    return s;
}

static const st_tensor *need(const st_set *s, const char *name, rs_dtype dt) {
    const st_tensor *t = st_get(s, name);
    if (!t) fail_msg("fixture lacks %s", name);
    if (t->dtype != dt) fail_msg("fixture %s: dtype %s", name, rs_dtype_name(t->dtype));
    return t;
}

static double meta_num(const st_set *s, const char *key) {
    const char *v = st_meta(s, key);
    if (!v) fail_msg("fixture metadata lacks %s", key);
    return atof(v);
}

/* Fit on (Xtr, ytr) as the golden case says and compare with sklearn's results. */
static void check_case(const st_set *g, float *Xtr, const int *ytr, int ntr, float *Xte,
                       int nte, int d, const char *label) {
    int K = (int)meta_num(g, "n_classes");
    int standardize = (int)meta_num(g, "standardize");
    rs_logreg_opts o = rs_logreg_defaults();
    o.C = meta_num(g, "C");
    o.balanced = (int)meta_num(g, "balanced");
    o.tol = 1e-10;
    o.max_iter = 100000;
    rs_err err;
    if (standardize) {
        rs_scaler sc;
        assert_int_equal(rs_scaler_fit(&sc, Xtr, ntr, d, &err), 0);
        const double *mean = need(g, "scaler_mean", RS_DT_F64)->data;
        const double *scale = need(g, "scaler_scale", RS_DT_F64)->data;
        for (int j = 0; j < d; j++) {
            if (fabs(sc.mean[j] - mean[j]) > 1e-10 * (fabs(mean[j]) + scale[j]) ||
                fabs(sc.scale[j] - scale[j]) > 1e-10 * scale[j])
                fail_msg("%s: scaler column %d: mean %.17g vs %.17g, scale %.17g vs %.17g", label,
                         j, sc.mean[j], mean[j], sc.scale[j], scale[j]);
        }
        rs_scaler_apply(&sc, Xtr, ntr, Xtr);
        rs_scaler_apply(&sc, Xte, nte, Xte);
        rs_scaler_free(&sc);
    }
    rs_logreg m;
    if (rs_logreg_fit(&m, Xtr, ytr, ntr, d, K, &o, &err)) fail_msg("%s: %s", label, err.msg);
    int R = m.n_rows;
    const st_tensor *tc = st_get(g, "coef");
    assert_non_null(tc);
    assert_int_equal(tc->numel, (int64_t)R * d);
    float *ref = st_to_f32_new(tc), *got = malloc(sizeof(float) * R * d);
    for (int i = 0; i < R * d; i++) got[i] = (float)m.W[i];
    double cdiff = tu_max_abs_diff(ref, got, (size_t)R * d), cmax = tu_max_abs(ref, (size_t)R * d);
    const double *bref = need(g, "intercept", RS_DT_F64)->data;
    double bdiff = 0, bmax = 0;
    for (int k = 0; k < R; k++) {
        bdiff = fmax(bdiff, fabs(m.b[k] - bref[k]));
        bmax = fmax(bmax, fabs(bref[k]));
    }
    double oref = *(const double *)need(g, "objective", RS_DT_F64)->data;
    double orel = fabs(m.objective - oref) / fabs(oref);
    double orecomp = rs_logreg_objective(&m, Xtr, ytr, ntr);
    const int32_t *pref = need(g, "pred_test", RS_DT_I32)->data;
    int *pred = malloc(sizeof(int) * nte), same = 0;
    rs_logreg_predict(&m, Xte, nte, pred);
    for (int i = 0; i < nte; i++) same += pred[i] == pref[i];
    print_message("  %-32s obj %.12g vs sk %.12g (rel %.2e)  coef rel %.2e  b rel %.2e  "
                  "pred %d/%d  iters %d (sk %s)\n", label, m.objective, oref, orel,
                  cdiff / cmax, bdiff / fmax(bmax, cmax), same, nte, m.n_iter,
                  st_meta(g, "sklearn_n_iter"));
    if (!(orel <= 1e-6)) fail_msg("%s: objective rel diff %.3g > 1e-6", label, orel);
    if (!(fabs(orecomp - m.objective) <= 1e-9 * fabs(oref)))
        fail_msg("%s: reported objective %.17g != recomputed %.17g", label, m.objective, orecomp);
    if (!(cdiff <= 1e-3 * cmax)) fail_msg("%s: coef max diff %.3g > 1e-3 x %.3g", label, cdiff, cmax);
    if (!(bdiff <= 1e-3 * fmax(bmax, cmax))) fail_msg("%s: intercept diff %.3g", label, bdiff);
    if (!(same >= 0.995 * nte)) fail_msg("%s: only %d/%d predictions agree", label, same, nte);
    const st_tensor *tp = st_get(g, "proba_test");
    if (tp) {
        double *P = malloc(sizeof(double) * nte * K), pd = 0;
        rs_logreg_proba(&m, Xte, nte, P);
        for (int i = 0; i < nte * K; i++) pd = fmax(pd, fabs(P[i] - ((const double *)tp->data)[i]));
        if (!(pd <= 1e-3)) fail_msg("%s: predict_proba max diff %.3g", label, pd);
        free(P);
    }
    free(pred); free(ref); free(got);
    rs_logreg_free(&m);
}

static void run_real(const char *ds, const char *case_name) {
    st_set *data = open_fix(ds), *g = open_fix(case_name);
    const st_tensor *tx = st_get(data, "X");
    assert_non_null(tx);
    int n = (int)tx->shape[0], d = (int)tx->shape[1];
    float *X = st_to_f32_new(tx);
    const int32_t *y = need(data, "y", RS_DT_I32)->data;
    float *Xtr = malloc(sizeof(float) * n * d), *Xte = malloc(sizeof(float) * n * d);
    int *ytr = malloc(sizeof(int) * n), ntr = 0, nte = 0;
    for (int i = 0; i < n; i++) {
        if (i % 4 == 0) memcpy(Xte + (size_t)nte++ * d, X + (size_t)i * d, sizeof(float) * d);
        else {
            memcpy(Xtr + (size_t)ntr * d, X + (size_t)i * d, sizeof(float) * d);
            ytr[ntr++] = y[i];
        }
    }
    check_case(g, Xtr, ytr, ntr, Xte, nte, d, case_name);
    free(X); free(Xtr); free(Xte); free(ytr);
    st_close(data);
    st_close(g);
}

static void run_synth(const char *case_name) {
    st_set *g = open_fix(case_name);
    int ntr = (int)meta_num(g, "n_train"), nte = (int)meta_num(g, "n_test");
    int d = (int)meta_num(g, "d"), K = (int)meta_num(g, "n_classes"), n = ntr + nte;
    float *X = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n);
    rs_synth_classification((uint64_t)meta_num(g, "seed"), n, d, K, meta_num(g, "sep"),
                            meta_num(g, "aniso"), (int)meta_num(g, "imbalanced"), X, y);
    /* the regenerated data must be numpy's: labels exactly, moments to rounding */
    const int32_t *yref = need(g, "y_all", RS_DT_I32)->data;
    for (int i = 0; i < n; i++)
        if (y[i] != yref[i]) fail_msg("%s: synthetic label %d differs (%d vs %d)", case_name, i, y[i], yref[i]);
    const double *cs = need(g, "checksum_X", RS_DT_F64)->data;
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < (size_t)n * d; i++) { s1 += X[i]; s2 += (double)X[i] * X[i]; }
    if (!(fabs(s2 - cs[1]) <= 1e-9 * cs[1]) || !(fabs(s1 - cs[0]) <= 1e-9 * cs[1]))
        fail_msg("%s: synthetic data checksum %.17g/%.17g vs %.17g/%.17g", case_name, s1, s2, cs[0], cs[1]);
    check_case(g, X, y, ntr, X + (size_t)ntr * d, nte, d, case_name);
    free(X); free(y);
    st_close(g);
}

static void test_prng_matches_numpy(void **state) {
    (void)state;
    st_set *g = open_fix("prng_folds");
    const double *nrm = need(g, "normal_s42", RS_DT_F64)->data;
    const double *uni = need(g, "uniform_s42", RS_DT_F64)->data;
    const uint32_t *hi = need(g, "u64_s42_hi", RS_DT_U32)->data, *lo = need(g, "u64_s42_lo", RS_DT_U32)->data;
    for (int i = 0; i < 4; i++) assert_true(rs_splitmix64_at(42, i) == (((uint64_t)hi[i] << 32) | lo[i]));
    for (int i = 0; i < 16; i++) {
        assert_true(rs_uniform_at(42, i) == uni[i]);
        if (!(fabs(rs_normal_at(42, i) - nrm[i]) <= 1e-15 * (1 + fabs(nrm[i]))))
            fail_msg("normal %d: %.17g vs numpy %.17g", i, rs_normal_at(42, i), nrm[i]);
    }
    st_close(g);
}

static void test_iris_std(void **s) { (void)s; run_real("data_iris", "lr_iris_std_C1"); }
static void test_iris_raw(void **s) { (void)s; run_real("data_iris", "lr_iris_raw_C100"); }
static void test_wine_std_bal(void **s) { (void)s; run_real("data_wine", "lr_wine_std_C1_bal"); }
static void test_wine_raw(void **s) { (void)s; run_real("data_wine", "lr_wine_raw_C0.05"); }
static void test_bc_std(void **s) { (void)s; run_real("data_breast_cancer", "lr_breast_cancer_std_C1"); }
static void test_bc_raw_bal(void **s) { (void)s; run_real("data_breast_cancer", "lr_breast_cancer_raw_C0.1_bal"); }
static void test_digits_std(void **s) { (void)s; run_real("data_digits", "lr_digits_std_C1"); }
static void test_digits_raw(void **s) { (void)s; run_real("data_digits", "lr_digits_raw_C0.01"); }
static void test_syn_bin_sep(void **s) { (void)s; run_synth("lr_syn_bin_sep"); }
static void test_syn_k4_noisy_bal(void **s) { (void)s; run_synth("lr_syn_k4_noisy_bal"); }
static void test_syn_k10_aniso_raw(void **s) { (void)s; run_synth("lr_syn_k10_aniso_raw"); }

/* The f32 fast path (tol >= 1e-5): the objective stays within 1e-4 relative of sklearn's
 * tight optimum (never below it beyond rounding), the reported objective is the exact f64
 * value, and ≥ 99.5% of test predictions equal sklearn's. */
static void check_loose(const char *case_name) {
    st_set *g = open_fix(case_name);
    int ntr = (int)meta_num(g, "n_train"), nte = (int)meta_num(g, "n_test");
    int d = (int)meta_num(g, "d"), K = (int)meta_num(g, "n_classes"), n = ntr + nte;
    float *X = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n);
    rs_synth_classification((uint64_t)meta_num(g, "seed"), n, d, K, meta_num(g, "sep"),
                            meta_num(g, "aniso"), (int)meta_num(g, "imbalanced"), X, y);
    rs_err err;
    if ((int)meta_num(g, "standardize")) {
        rs_scaler sc;
        assert_int_equal(rs_scaler_fit(&sc, X, ntr, d, &err), 0);
        rs_scaler_apply(&sc, X, n, X);
        rs_scaler_free(&sc);
    }
    rs_logreg_opts o = rs_logreg_defaults();
    o.C = meta_num(g, "C");
    o.balanced = (int)meta_num(g, "balanced");
    o.tol = 1e-5;
    rs_logreg m;
    if (rs_logreg_fit(&m, X, y, ntr, d, K, &o, &err)) fail_msg("%s: %s", case_name, err.msg);
    double oref = *(const double *)need(g, "objective", RS_DT_F64)->data;
    double orecomp = rs_logreg_objective(&m, X, y, ntr), rel = (m.objective - oref) / oref;
    const int32_t *pref = need(g, "pred_test", RS_DT_I32)->data;
    int *pred = malloc(sizeof(int) * nte), same = 0;
    rs_logreg_predict(&m, X + (size_t)ntr * d, nte, pred);
    for (int i = 0; i < nte; i++) same += pred[i] == pref[i];
    print_message("  %-24s f32 path tol 1e-5: obj %.10g vs sklearn optimum %.10g (rel %+.2e), pred %d/%d, iters %d\n",
                  case_name, m.objective, oref, rel, same, nte, m.n_iter);
    if (!(rel <= 1e-4 && rel >= -1e-9)) fail_msg("%s: f32 path objective rel %.3g", case_name, rel);
    if (!(fabs(orecomp - m.objective) <= 1e-9 * fabs(oref))) fail_msg("%s: reported objective not exact", case_name);
    if (!(same >= 0.995 * nte)) fail_msg("%s: f32 path: %d/%d predictions agree", case_name, same, nte);
    free(pred); free(X); free(y);
    rs_logreg_free(&m);
    st_close(g);
}

static void test_f32_path(void **s) {
    (void)s;
    check_loose("lr_syn_k4_noisy_bal");
    check_loose("lr_syn_k10_aniso_raw");
    check_loose("lr_syn_bin_sep");
}

static void test_bad_input(void **state) {
    (void)state;
    float X[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int y1[4] = {1, 1, 1, 1}, y2[4] = {0, 1, 0, 3};
    rs_logreg m;
    rs_err err;
    assert_int_equal(rs_logreg_fit(&m, X, y1, 4, 2, 2, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "one class"));
    assert_int_equal(rs_logreg_fit(&m, X, y2, 4, 2, 3, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "outside"));
    int y3[4] = {0, 1, 0, 1};
    X[5] = NAN;
    assert_int_equal(rs_logreg_fit(&m, X, y3, 4, 2, 2, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "row 2, column 1"));
    X[5] = 1;
    int y4[4] = {0, 2, 0, 2};
    assert_int_equal(rs_logreg_fit(&m, X, y4, 4, 2, 3, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "class 1 has no"));
    rs_scaler sc;
    X[0] = INFINITY;
    assert_int_equal(rs_scaler_fit(&sc, X, 4, 2, &err), -1);
}

int main(void) {
    /* every fit below also checks that the warm start's F and ∇F (computed from class sums,
     * without a pass over X) equal a real evaluation: binary, multiclass, balanced, raw, f32 */
    setenv("RS_LOGREG_VERIFY_WARM_START", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prng_matches_numpy), cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_iris_std),           cmocka_unit_test(test_iris_raw),
        cmocka_unit_test(test_wine_std_bal),       cmocka_unit_test(test_wine_raw),
        cmocka_unit_test(test_bc_std),             cmocka_unit_test(test_bc_raw_bal),
        cmocka_unit_test(test_digits_std),         cmocka_unit_test(test_digits_raw),
        cmocka_unit_test(test_syn_bin_sep),        cmocka_unit_test(test_syn_k4_noisy_bal),
        cmocka_unit_test(test_syn_k10_aniso_raw), cmocka_unit_test(test_f32_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
