/* Probe evaluation: StratifiedKFold assignment, metrics and LogisticRegressionCV's C
 * choice against scikit-learn goldens (prng_folds.safetensors); properties of the
 * multi-seed protocol (group integrity, permutation baseline near chance, CIs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe_eval.h"
#include "reprshift/safetensors.h"
#include "testutil.h"

static st_set *open_fix(const char *path) {
    st_set *s = NULL;
    rs_err err;
    if (st_open(&s, path, &err)) fail_msg("%s", err.msg);
    return s;
}

static const void *need(const st_set *s, const char *name, int64_t numel) {
    const st_tensor *t = st_get(s, name);
    if (!t || (numel >= 0 && t->numel != numel)) fail_msg("fixture tensor %s missing or wrong size", name);
    return t->data;
}

/* digits training rows (index % 4 != 0) as f32 + labels */
static void load_train(const char *path, float **X, int **y, int *n, int *d) {
    st_set *s = open_fix(path);
    const st_tensor *tx = st_get(s, "X");
    int N = (int)tx->shape[0];
    *d = (int)tx->shape[1];
    float *all = st_to_f32_new(tx);
    const int32_t *yy = need(s, "y", N);
    *X = malloc(sizeof(float) * N * *d);
    *y = malloc(sizeof(int) * N);
    *n = 0;
    for (int i = 0; i < N; i++)
        if (i % 4 != 0) {
            memcpy(*X + (size_t)*n * *d, all + (size_t)i * *d, sizeof(float) * *d);
            (*y)[(*n)++] = yy[i];
        }
    free(all);
    st_close(s);
}

static void test_stratified_kfold_matches_sklearn(void **state) {
    (void)state;
    float *X;
    int *y, n, d;
    load_train("tests/fixtures/probe/data_digits.safetensors", &X, &y, &n, &d);
    st_set *g = open_fix("tests/fixtures/probe/prng_folds.safetensors");
    const int32_t *ref = need(g, "skf5_digits_fold", n);
    int *fold = malloc(sizeof(int) * n);
    rs_err err;
    assert_int_equal(rs_stratified_kfold(y, n, 10, 5, fold, &err), 0);
    for (int i = 0; i < n; i++)
        if (fold[i] != ref[i]) fail_msg("row %d: fold %d, sklearn %d", i, fold[i], ref[i]);
    assert_int_equal(rs_stratified_kfold(y, n, 10, 1, fold, &err), -1);
    free(fold); free(X); free(y);
    st_close(g);
}

static void test_metrics_match_sklearn(void **state) {
    (void)state;
    st_set *g = open_fix("tests/fixtures/probe/prng_folds.safetensors");
    const int32_t *y = need(g, "metrics_y", 300), *p = need(g, "metrics_pred", 300);
    const double *ref = need(g, "metrics_acc_bal_f1", 3);
    const int32_t *cref = need(g, "metrics_confusion", 36);
    int yi[300], pi[300], cm[36];
    for (int i = 0; i < 300; i++) { yi[i] = y[i]; pi[i] = p[i]; }
    rs_metrics m;
    rs_metrics_compute(yi, pi, 300, 6, &m, cm);
    assert_true(fabs(m.accuracy - ref[0]) < 1e-12);
    assert_true(fabs(m.balanced_accuracy - ref[1]) < 1e-12);
    if (!(fabs(m.macro_f1 - ref[2]) < 1e-12)) fail_msg("macro F1 %.15g vs sklearn %.15g", m.macro_f1, ref[2]);
    for (int i = 0; i < 36; i++) assert_int_equal(cm[i], cref[i]);
    st_close(g);
}

static void test_cv_choice_matches_logregcv(void **state) {
    (void)state;
    float *X;
    int *y, n, d;
    load_train("tests/fixtures/probe/data_breast_cancer.safetensors", &X, &y, &n, &d);
    st_set *g = open_fix("tests/fixtures/probe/prng_folds.safetensors");
    const double *Cs = need(g, "cv_Cs", 7), *acc_ref = need(g, "cv_mean_acc", 7);
    double best_ref = *(const double *)need(g, "cv_best_C", 1);
    rs_scaler sc;
    rs_err err;
    assert_int_equal(rs_scaler_fit(&sc, X, n, d, &err), 0);
    rs_scaler_apply(&sc, X, n, X); /* sklearn's LogisticRegressionCV saw pre-standardised rows */
    rs_scaler_free(&sc);
    rs_logreg_opts o = rs_logreg_defaults();
    o.tol = 1e-10;
    o.max_iter = 100000;
    double acc[7], best;
    if (rs_logreg_cv(X, y, n, d, 2, Cs, 7, 5, 0, &o, acc, &best, &err)) fail_msg("%s", err.msg);
    for (int c = 0; c < 7; c++) {
        print_message("  C=%g  acc %.6f  sklearn %.6f\n", Cs[c], acc[c], acc_ref[c]);
        /* one row of one fold is 1/(5·~85); allow no difference beyond rounding */
        if (!(fabs(acc[c] - acc_ref[c]) < 1e-9)) fail_msg("C=%g: CV accuracy %.9f vs %.9f", Cs[c], acc[c], acc_ref[c]);
    }
    assert_true(best == best_ref);
    free(X); free(y);
    st_close(g);
}

static void test_group_split_keeps_groups(void **state) {
    (void)state;
    int n = 600, K = 3, y[600], grp[600], t[600];
    for (int i = 0; i < n; i++) { grp[i] = (i / 6) * 37 % 1000; y[i] = (i / 6) % K; }
    rs_err err;
    for (uint64_t s = 0; s < 5; s++) {
        assert_int_equal(rs_split_stratified_groups(y, grp, n, K, 0.25, s, t, &err), 0);
        int nt = 0;
        for (int i = 0; i < n; i++) {
            nt += t[i];
            for (int j = i + 1; j < n && j < i + 6; j++)
                if (grp[i] == grp[j]) assert_int_equal(t[i], t[j]);
        }
        assert_true(nt == 150); /* 34/33/33 groups per class → 9+8+8 groups of 6 rows to test */
    }
}

static void test_protocol_properties(void **state) {
    (void)state;
    int n = 400, d = 50, K = 3;
    float *X = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n), *grp = malloc(sizeof(int) * n);
    rs_synth_classification(5, n, d, K, 0.5, 0.0, 0, X, y);
    for (int i = 0; i < n; i++) grp[i] = i / 2;
    rs_eval_opts o = rs_eval_defaults();
    o.n_boot = 300;
    rs_eval_result r;
    rs_err err;
    if (rs_probe_evaluate(X, y, grp, n, d, K, &o, &r, &err)) fail_msg("%s", err.msg);
    print_message("  acc %.3f [%.3f, %.3f] sd %.3f  bal %.3f  f1 %.3f  perm %.3f  control %.3f  sel %.3f  chance %.3f\n",
                  r.mean.accuracy, r.ci_lo.accuracy, r.ci_hi.accuracy, r.acc_sd,
                  r.mean.balanced_accuracy, r.mean.macro_f1, r.perm_accuracy,
                  r.control_accuracy, r.selectivity, r.chance);
    assert_true(r.mean.accuracy > 0.8);
    assert_true(r.ci_lo.accuracy <= r.mean.accuracy && r.mean.accuracy <= r.ci_hi.accuracy);
    assert_true(r.perm_accuracy < 0.5);
    assert_true(r.control_accuracy < 0.5);
    assert_true(fabs(r.selectivity - (r.mean.accuracy - r.control_accuracy)) < 1e-12);
    int tot = 0;
    for (int i = 0; i < K * K; i++) tot += r.confusion[i];
    assert_true(tot > 0);
    rs_eval_result_free(&r);
    free(X); free(y); free(grp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stratified_kfold_matches_sklearn),
        cmocka_unit_test(test_metrics_match_sklearn),
        cmocka_unit_test(test_cv_choice_matches_logregcv),
        cmocka_unit_test(test_group_split_keeps_groups),
        cmocka_unit_test(test_protocol_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
