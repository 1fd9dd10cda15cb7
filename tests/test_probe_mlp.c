/* MLP probe vs scikit-learn's MLPClassifier (tools/reference/gen_probe_goldens.py, mlp()):
 * mean test accuracy over the same number of seeds within 1 percentage point, on
 * standardised digits (K = 10) and on XOR in 2 of 10 dimensions (K = 2, where a linear
 * probe is at chance). Random streams differ from sklearn's, so only the seed-mean is
 * compared. Also: probabilities sum to 1, bad input is rejected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_mlp.h"
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

/* Fit over the golden's seeds; compare seed-mean test accuracy with sklearn's. */
static void compare(const char *name, const float *Xtr, const int *ytr, int ntr, const float *Xte,
                    const int *yte, int nte, int d, int K) {
    st_set *g = open_fix(name);
    const st_tensor *ta = st_get(g, "acc_seeds"), *tl = st_get(g, "logreg_acc");
    assert_non_null(ta); assert_non_null(tl);
    const double *ref = ta->data;
    int S = (int)ta->numel;
    rs_mlp_opts o = rs_mlp_defaults();
    o.hidden = atoi(st_meta(g, "hidden"));
    o.alpha = atof(st_meta(g, "alpha"));
    double mean = 0, mref = 0, ep = 0;
    int *pred = malloc(sizeof(int) * nte);
    for (int s = 0; s < S; s++) {
        o.seed = (uint64_t)s;
        rs_mlp m;
        rs_err err;
        if (rs_mlp_fit(&m, Xtr, ytr, ntr, d, K, &o, &err)) fail_msg("%s: %s", name, err.msg);
        assert_int_equal(rs_mlp_predict(&m, Xte, nte, pred, &err), 0);
        int ok = 0;
        for (int i = 0; i < nte; i++) ok += pred[i] == yte[i];
        mean += (double)ok / nte / S;
        mref += ref[s] / S;
        ep += (double)m.n_epochs / S;
        if (s == 0) { /* probabilities are a distribution and agree with the argmax */
            double *P = malloc(sizeof(double) * nte * K);
            assert_int_equal(rs_mlp_proba(&m, Xte, nte, P, &err), 0);
            for (int i = 0; i < nte; i++) {
                double t = 0;
                int b = 0;
                for (int k = 0; k < K; k++) { t += P[i * K + k]; if (P[i * K + k] > P[i * K + b]) b = k; }
                assert_true(fabs(t - 1) < 1e-9);
                if (b != pred[i] && fabs(P[i * K + b] - P[i * K + pred[i]]) > 1e-6) fail_msg("proba argmax %d vs pred %d", b, pred[i]);
            }
            free(P);
        }
        rs_mlp_free(&m);
    }
    printf("%s: mean test accuracy over %d seeds %.4f vs sklearn %.4f (diff %+.2f pp), mean epochs %.1f; "
           "sklearn logreg %.4f\n", name, S, mean, mref, 100 * (mean - mref), ep, ((const double *)tl->data)[0]);
    if (!(fabs(mean - mref) <= 0.01)) fail_msg("%s: mean accuracy %.4f vs sklearn %.4f (> 1 pp)", name, mean, mref);
    free(pred);
    st_close(g);
}

static void test_mlp_digits(void **state) {
    (void)state;
    st_set *data = open_fix("data_digits");
    const st_tensor *tx = st_get(data, "X"), *ty = st_get(data, "y");
    assert_non_null(tx); assert_non_null(ty);
    int n = (int)tx->shape[0], d = (int)tx->shape[1];
    float *X = st_to_f32_new(tx), *Xtr = malloc(sizeof(float) * n * d), *Xte = malloc(sizeof(float) * n * d);
    const int32_t *y = ty->data;
    int *ytr = malloc(sizeof(int) * n), *yte = malloc(sizeof(int) * n), ntr = 0, nte = 0;
    for (int i = 0; i < n; i++) {
        if (i % 4 == 0) { memcpy(Xte + (size_t)nte * d, X + (size_t)i * d, sizeof(float) * d); yte[nte++] = y[i]; }
        else { memcpy(Xtr + (size_t)ntr * d, X + (size_t)i * d, sizeof(float) * d); ytr[ntr++] = y[i]; }
    }
    rs_scaler sc;
    rs_err err;
    assert_int_equal(rs_scaler_fit(&sc, Xtr, ntr, d, &err), 0);
    rs_scaler_apply(&sc, Xtr, ntr, Xtr);
    rs_scaler_apply(&sc, Xte, nte, Xte);
    rs_scaler_free(&sc);
    compare("mlp_digits", Xtr, ytr, ntr, Xte, yte, nte, d, 10);
    free(X); free(Xtr); free(Xte); free(ytr); free(yte);
    st_close(data);
}

static void test_mlp_xor(void **state) {
    (void)state;
    int n = 3000, d = 10, ntr = 2000;
    float *X = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) X[i * d + j] = (float)rs_normal_at(77, (uint64_t)i * d + j);
        y[i] = (double)X[i * d] * X[i * d + 1] > 0;
    }
    compare("mlp_xor", X, y, ntr, X + (size_t)ntr * d, y + ntr, n - ntr, d, 2);
    free(X); free(y);
}

/* The evaluation protocol runs the MLP when asked: on XOR it beats chance by far while the
 * same protocol with logistic regression stays near chance (sklearn logreg: 0.451). */
static void test_mlp_in_protocol(void **state) {
    (void)state;
    int n = 1500, d = 10;
    float *X = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) X[i * d + j] = (float)rs_normal_at(77, (uint64_t)i * d + j);
        y[i] = (double)X[i * d] * X[i * d + 1] > 0;
    }
    rs_eval_opts o = rs_eval_defaults();
    o.n_seeds = 2;
    o.n_boot = 100;
    o.cv_folds = 0;
    o.n_perm = 10; /* 10 MLP fits per seed keep the test short */
    int *ct = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) ct[i] = i % 30; /* control types recurring in train and test */
    o.control_type = ct;
    rs_mlp_opts mo = rs_mlp_defaults();
    mo.hidden = 64;
    rs_eval_result r, q;
    rs_err err;
    if (rs_probe_evaluate(X, y, NULL, n, d, 2, &o, &q, &err)) fail_msg("%s", err.msg);
    o.mlp = &mo;
    if (rs_probe_evaluate(X, y, NULL, n, d, 2, &o, &r, &err)) fail_msg("%s", err.msg);
    printf("XOR protocol: MLP %.3f [%.3f, %.3f] (control %.3f, selectivity %.3f, permuted %.3f); logreg %.3f\n",
           r.mean.accuracy, r.ci_lo.accuracy, r.ci_hi.accuracy, r.control_accuracy, r.selectivity, r.perm_accuracy,
           q.mean.accuracy);
    assert_true(r.mean.accuracy > 0.85 && q.mean.accuracy < 0.65);
    assert_true(r.perm_accuracy < 0.65 && r.selectivity > 0.2);
    rs_eval_result_free(&r);
    rs_eval_result_free(&q);
    free(X); free(y); free(ct);
}

static void test_mlp_bad_input(void **state) {
    (void)state;
    float X[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int y1[4] = {1, 1, 1, 1}, y2[4] = {0, 1, 0, 1};
    rs_mlp m;
    rs_err err;
    assert_int_equal(rs_mlp_fit(&m, X, y1, 4, 2, 2, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "one class"));
    X[3] = NAN;
    assert_int_equal(rs_mlp_fit(&m, X, y2, 4, 2, 2, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "non-finite"));
    X[3] = 3;
    rs_mlp_opts o = rs_mlp_defaults();
    o.hidden = 0;
    assert_int_equal(rs_mlp_fit(&m, X, y2, 4, 2, 2, &o, &err), -1);
    o = rs_mlp_defaults();
    o.early_stopping = 0; /* 4 rows: no room for a validation split */
    o.max_epochs = 5;
    assert_int_equal(rs_mlp_fit(&m, X, y2, 4, 2, 2, &o, &err), 0);
    assert_int_equal(m.n_epochs, 5);
    rs_mlp_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_digits),
        cmocka_unit_test(test_mlp_xor),
        cmocka_unit_test(test_mlp_in_protocol),
        cmocka_unit_test(test_mlp_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
