/* L1-penalised (lasso) logistic regression vs scikit-learn (tools/reference/gen_l1_goldens.py:
 * LogisticRegression(l1_ratio=1, solver="saga", tol=1e-14), intercept not penalised):
 * objective within 1e-12 relative, coefficients within 1e-8 of the largest (max-abs norm),
 * intercepts within 1e-7, and the same zero pattern, weight by weight. Also: the lasso path
 * makes most weights exactly zero at small C, the f32 path at the default tol, the model's
 * objective function, and the warm-start check (RS_LOGREG_VERIFY_WARM_START). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe.h"
#include "reprshift/safetensors.h"
#include "testutil.h"

#define FIX "tests/fixtures/probe/"

typedef struct {
    st_set *s;
    const float *X;
    int *y;
    int n, d, K;
    double C;
} l1_case;

static void load_case(const char *name, l1_case *c) {
    char path[512];
    snprintf(path, sizeof path, FIX "l1_%s.safetensors", name);
    rs_err err;
    if (st_open(&c->s, path, &err)) fail_msg("%s", err.msg);
    const st_tensor *tx = st_get(c->s, "X"), *ty = st_get(c->s, "y");
    assert_non_null(tx);
    assert_non_null(ty);
    assert_int_equal(tx->dtype, RS_DT_F32);
    assert_int_equal(ty->dtype, RS_DT_I32);
    c->X = tx->data;
    c->n = (int)tx->shape[0];
    c->d = (int)tx->shape[1];
    c->y = malloc(sizeof(int) * c->n);
    for (int i = 0; i < c->n; i++) c->y[i] = ((const int32_t *)ty->data)[i];
    c->K = atoi(st_meta(c->s, "n_classes"));
    c->C = atof(st_meta(c->s, "C"));
}

static void free_case(l1_case *c) {
    free(c->y);
    st_close(c->s);
}

static rs_logreg fit(const l1_case *c, double tol) {
    rs_logreg_opts o = rs_logreg_defaults();
    o.C = c->C;
    o.penalty = RS_PENALTY_L1;
    o.tol = tol;
    o.max_iter = 1000000;
    rs_logreg m;
    rs_err err;
    if (rs_logreg_fit(&m, c->X, c->y, c->n, c->d, c->K, &o, &err)) fail_msg("%s", err.msg);
    return m;
}

/* Compare with sklearn; returns the number of non-zero weights. */
static int check_case(const char *name, double min_zero_share) {
    l1_case c;
    load_case(name, &c);
    rs_logreg m = fit(&c, 1e-11);
    int R = m.n_rows, nz = 0, nz_ref = 0, pattern_diff = 0;
    const double *coef = st_get(c.s, "coef")->data, *b = st_get(c.s, "intercept")->data;
    double oref = *(const double *)st_get(c.s, "objective")->data;
    double cmax = 0, cdiff = 0, bdiff = 0;
    for (int i = 0; i < R * c.d; i++) {
        cmax = fmax(cmax, fabs(coef[i]));
        cdiff = fmax(cdiff, fabs(coef[i] - m.W[i]));
        nz += m.W[i] != 0;
        nz_ref += coef[i] != 0;
        pattern_diff += (m.W[i] != 0) != (coef[i] != 0);
    }
    for (int k = 0; k < R; k++) bdiff = fmax(bdiff, fabs(b[k] - m.b[k]));
    double orel = (m.objective - oref) / oref;
    double oself = rs_logreg_objective(&m, c.X, c.y, c.n);
    printf("  %-12s K=%d n=%d d=%d C=%g: objective %.12g (sklearn %.12g, rel %+.2e), coef max|diff| %.2e "
           "(max|coef| %.3g), intercept %.2e, nonzero %d/%d (sklearn %d), pattern diffs %d, %d iterations\n",
           name, c.K, c.n, c.d, c.C, m.objective, oref, orel, cdiff, cmax, bdiff, nz, R * c.d, nz_ref, pattern_diff,
           m.n_iter);
    assert_int_equal(m.converged, 1);
    assert_int_equal(m.penalty, RS_PENALTY_L1);
    assert_true(fabs(orel) <= 1e-12);
    assert_true(cdiff <= 1e-8 * cmax);
    assert_true(bdiff <= 1e-7 * fmax(1.0, cmax));
    assert_int_equal(pattern_diff, 0);
    assert_true(fabs(oself - m.objective) <= 1e-9 * fabs(oref)); /* the model's own objective */
    assert_true(R * c.d - nz >= min_zero_share * R * c.d);
    rs_logreg_free(&m);
    free_case(&c);
    return nz;
}

/* C = 0.02 on breast cancer: the lasso keeps 3 of 30 weights, the rest exactly 0. */
static void test_bc_sparse(void **state) {
    (void)state;
    assert_int_equal(check_case("bc_C0.02", 0.8), 3);
}
static void test_bc_C1(void **state) { (void)state; check_case("bc_C1", 0.0); }
static void test_wine_multinomial(void **state) { (void)state; check_case("wine_C0.1", 0.5); }
static void test_iris_multinomial(void **state) { (void)state; check_case("iris_C1", 0.0); }

/* The default tolerance (1e-4: f32 products) lands close to the tight optimum; the reported
 * objective is the exact f64 value of the returned weights. */
static void test_f32_default_tol(void **state) {
    (void)state;
    const char *names[] = {"bc_C0.02", "bc_C1", "wine_C0.1"};
    for (int t = 0; t < 3; t++) {
        l1_case c;
        load_case(names[t], &c);
        rs_logreg m = fit(&c, 1e-4);
        double oref = *(const double *)st_get(c.s, "objective")->data;
        double rel = (m.objective - oref) / oref, oself = rs_logreg_objective(&m, c.X, c.y, c.n);
        printf("  f32 tol 1e-4 %-10s: objective rel %+.2e after %d iterations\n", names[t], rel, m.n_iter);
        assert_int_equal(m.converged, 1);
        assert_true(rel >= -1e-9 && rel <= 5e-3); /* FISTA stops on the subgradient: measured +1.4e-6 .. +1.8e-3 */
        assert_true(fabs(oself - m.objective) <= 1e-9 * oref);
        rs_logreg_free(&m);
        free_case(&c);
    }
}

/* Larger C keeps more weights (the lasso path), and an L2 fit keeps them all. */
static void test_path_and_penalty_choice(void **state) {
    (void)state;
    l1_case c;
    load_case("bc_C1", &c);
    int prev = -1;
    const double Cs[] = {0.005, 0.02, 0.1, 1.0};
    for (int i = 0; i < 4; i++) {
        c.C = Cs[i];
        rs_logreg m = fit(&c, 1e-8);
        int nz = 0;
        for (int j = 0; j < c.d; j++) nz += m.W[j] != 0;
        printf("  lasso path C=%g: %d/30 non-zero\n", Cs[i], nz);
        assert_true(nz >= prev);
        prev = nz;
        rs_logreg_free(&m);
    }
    assert_true(prev > 3);
    rs_logreg_opts o = rs_logreg_defaults();
    o.penalty = 7;
    rs_logreg m;
    rs_err err;
    assert_int_equal(rs_logreg_fit(&m, c.X, c.y, c.n, c.d, c.K, &o, &err), -1);
    assert_non_null(strstr(err.msg, "unknown penalty"));
    free_case(&c);
}

int main(void) {
    setenv("RS_LOGREG_VERIFY_WARM_START", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bc_sparse),        cmocka_unit_test(test_bc_C1),
        cmocka_unit_test(test_wine_multinomial), cmocka_unit_test(test_iris_multinomial),
        cmocka_unit_test(test_f32_default_tol),  cmocka_unit_test(test_path_and_penalty_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
