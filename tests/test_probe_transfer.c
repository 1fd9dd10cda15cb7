/* Cross-modal transfer vs scikit-learn/scipy (tools/reference/gen_probe_goldens.py,
 * transfer()): alignment maps (orthogonal_procrustes with scale, Ridge incl. its dual
 * form), their held-out R², and every transfer cell's predictions on a fixed split; then
 * the multi-seed protocol's structure and diagnosis on the same paired data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe_transfer.h"
#include "reprshift/safetensors.h"
#include "testutil.h"

#define FIX "tests/fixtures/probe/"

typedef struct {
    st_set *g;
    float *XA, *XB;
    int *y, n, d;
} tdata;

static void load_rot(tdata *t) {
    rs_err err;
    if (st_open(&t->g, FIX "transfer_rot.safetensors", &err)) fail_msg("%s", err.msg);
    const st_tensor *a = st_get(t->g, "XA"), *b = st_get(t->g, "XB"), *y = st_get(t->g, "y");
    assert_non_null(a); assert_non_null(b); assert_non_null(y);
    t->n = (int)a->shape[0];
    t->d = (int)a->shape[1];
    t->XA = st_to_f32_new(a);
    t->XB = st_to_f32_new(b);
    t->y = malloc(sizeof(int) * t->n);
    memcpy(t->y, y->data, sizeof(int) * t->n);
}

static void free_rot(tdata *t) {
    free(t->XA); free(t->XB); free(t->y);
    st_close(t->g);
}

/* max |a − b| ≤ rel · max |b| over n doubles */
static void close_rel_d(const double *ref, const double *got, size_t n, double rel, const char *label) {
    double mx = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs(ref[i]));
        md = fmax(md, fabs(ref[i] - got[i]));
    }
    printf("%s: max abs diff %.3g (rel %.3g)\n", label, md, md / mx);
    if (!(md <= rel * mx)) fail_msg("%s: max abs diff %.3g > %.3g x %.3g", label, md, rel, mx);
}

static void test_maps_match_sklearn(void **state) {
    (void)state;
    tdata t;
    load_rot(&t);
    int n = t.n, d = t.d, ntr = 0;
    float *A = malloc(sizeof(float) * n * d), *B = malloc(sizeof(float) * n * d);
    for (int i = 0; i < n; i++)
        if (i % 4) {
            memcpy(A + (size_t)ntr * d, t.XA + (size_t)i * d, sizeof(float) * d);
            memcpy(B + (size_t)ntr * d, t.XB + (size_t)i * d, sizeof(float) * d);
            ntr++;
        }
    const char *names[4] = {"map_BtoA_procrustes", "map_AtoB_procrustes", "map_BtoA_ridge", "map_AtoB_ridge"};
    for (int k = 0; k < 4; k++) {
        const float *S = k % 2 ? A : B, *T = k % 2 ? B : A;
        rs_map_kind kind = k < 2 ? RS_MAP_PROCRUSTES : RS_MAP_RIDGE;
        /* λ = 0.1 · ‖S_c‖²_F / d, as in rs_transfer_opts.ridge_alpha */
        double ss = 0;
        for (int j = 0; j < d; j++) {
            double mu = 0;
            for (int i = 0; i < ntr; i++) mu += S[(size_t)i * d + j];
            mu /= ntr;
            for (int i = 0; i < ntr; i++) ss += (S[(size_t)i * d + j] - mu) * (S[(size_t)i * d + j] - mu);
        }
        rs_linmap m;
        rs_err err;
        if (rs_linmap_fit(&m, kind, S, T, ntr, d, d, 0.1 * ss / d, 1, &err)) fail_msg("%s", err.msg);
        const st_tensor *ref = st_get(t.g, names[k]);
        assert_non_null(ref);
        assert_int_equal(ref->numel, d * d);
        double *sM = malloc(sizeof(double) * d * d);
        for (int i = 0; i < d * d; i++) sM[i] = m.s * m.M[i];
        close_rel_d(ref->data, sM, (size_t)d * d, 1e-6, names[k]);
        free(sM);
        rs_linmap_free(&m);
    }
    free(A); free(B);
    free_rot(&t);
}

static void test_cells_match_sklearn(void **state) {
    (void)state;
    tdata t;
    load_rot(&t);
    int n = t.n, d = t.d, nte = 0;
    int *is_test = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) nte += (is_test[i] = i % 4 == 0);
    rs_transfer_opts o = rs_transfer_defaults();
    double C1 = 1.0, Cout[2];
    o.Cs = &C1;
    o.n_Cs = 1;
    o.cv_folds = 0;
    o.tol = 1e-10;
    o.ridge_alpha = atof(st_meta(t.g, "ridge_alpha"));
    int *pred = malloc(sizeof(int) * RS_TRANSFER_CELLS * nte);
    double r2[RS_TRANSFER_CELLS];
    rs_err err;
    if (rs_transfer_split(t.XA, d, t.XB, d, t.y, t.y, n, 3, is_test, &o, pred, r2, Cout, &err)) fail_msg("%s", err.msg);
    const st_tensor *pr = st_get(t.g, "pred_cells"), *rr = st_get(t.g, "r2_cells");
    assert_non_null(pr); assert_non_null(rr);
    assert_int_equal(pr->shape[0], RS_TRANSFER_CELLS);
    assert_int_equal(pr->shape[1], nte);
    const int32_t *ref = pr->data;
    const double *r2ref = rr->data;
    for (int c = 0; c < RS_TRANSFER_CELLS; c++) {
        int same = 0, ok = 0, okref = 0;
        for (int i = 0, k = 0; i < n; i++) {
            if (!is_test[i]) continue;
            same += pred[c * nte + k] == ref[c * nte + k];
            ok += pred[c * nte + k] == t.y[i];
            okref += ref[c * nte + k] == t.y[i];
            k++;
        }
        printf("%-16s acc %.4f (sklearn %.4f) same preds %d/%d  R2 %.6f (%.6f)\n", rs_transfer_cells()[c].name,
               (double)ok / nte, (double)okref / nte, same, nte, r2[c], r2ref[c]);
        if (same < 0.995 * nte) fail_msg("%s: only %d/%d predictions equal sklearn's", rs_transfer_cells()[c].name, same, nte);
        if (isnan(r2ref[c])) assert_true(isnan(r2[c]));
        else if (!(fabs(r2[c] - r2ref[c]) <= 1e-6)) fail_msg("%s: R2 %.9f vs %.9f", rs_transfer_cells()[c].name, r2[c], r2ref[c]);
    }
    free(pred); free(is_test);
    free_rot(&t);
}

static void test_ridge_dual(void **state) {
    (void)state;
    st_set *g;
    rs_err err;
    if (st_open(&g, FIX "transfer_ridge_dual.safetensors", &err)) fail_msg("%s", err.msg);
    const st_tensor *S = st_get(g, "S"), *T = st_get(g, "T"), *M = st_get(g, "M"), *r2 = st_get(g, "r2_train");
    assert_non_null(S); assert_non_null(T); assert_non_null(M); assert_non_null(r2);
    int n = (int)S->shape[0], ds = (int)S->shape[1], dt = (int)T->shape[1];
    assert_true(n < ds); /* the dual branch */
    rs_linmap m;
    if (rs_linmap_fit(&m, RS_MAP_RIDGE, S->data, T->data, n, ds, dt, atof(st_meta(g, "lambda")), 1, &err))
        fail_msg("%s", err.msg);
    close_rel_d(M->data, m.M, (size_t)ds * dt, 1e-8, "ridge dual coef");
    double got = rs_linmap_r2(&m, S->data, T->data, n), want = ((const double *)r2->data)[0];
    if (!(fabs(got - want) <= 1e-6)) fail_msg("dual ridge R2 %.9f vs sklearn %.9f", got, want);
    rs_linmap_free(&m);
    st_close(g);
}

static void test_evaluate_protocol(void **state) {
    (void)state;
    tdata t;
    load_rot(&t);
    rs_transfer_opts o = rs_transfer_defaults();
    o.n_seeds = 3;
    o.n_boot = 200;
    o.Cs = (const double[]){0.1, 1, 10};
    o.n_Cs = 3;
    o.cv_folds = 3;
    rs_transfer_result r;
    rs_err err;
    if (rs_transfer_evaluate(t.XA, t.d, t.XB, t.d, t.y, t.y, NULL, t.n, 3, &o, &r, &err)) fail_msg("%s", err.msg);
    for (int c = 0; c < RS_TRANSFER_CELLS; c++) {
        const rs_transfer_cell *x = &r.cell[c];
        printf("%-16s %.3f [%.3f, %.3f]  R2 %.3f\n", rs_transfer_cells()[c].name, x->mean.accuracy,
               x->ci_lo.accuracy, x->ci_hi.accuracy, x->map_r2);
        assert_true(x->available);
        assert_true(x->ci_lo.accuracy <= x->mean.accuracy + 1e-12 && x->mean.accuracy <= x->ci_hi.accuracy + 1e-12);
    }
    /* B is a rotated copy of A's signal: in-modality high, direct transfer near chance,
     * Procrustes and ridge recover it (sklearn's fixed-split accuracies show the same) */
    assert_true(r.cell[0].mean.accuracy > 0.8 && r.cell[1].mean.accuracy > 0.9);
    assert_true(r.cell[2].mean.accuracy < 0.5 && r.cell[3].mean.accuracy < 0.5);
    assert_true(r.cell[6].mean.accuracy > 0.9 && r.cell[8].mean.accuracy > 0.9);
    const char *dx = rs_transfer_diagnosis(&r, 0);
    printf("A->B: %s\nB->A: %s\n", dx, rs_transfer_diagnosis(&r, 1));
    assert_non_null(strstr(dx, "present but not aligned"));
    /* unequal widths: direct and moment cells are unavailable, mapped cells still run */
    float *Bn = malloc(sizeof(float) * t.n * 10);
    for (int i = 0; i < t.n; i++) memcpy(Bn + i * 10, t.XB + (size_t)i * t.d, sizeof(float) * 10);
    o.n_seeds = 1;
    if (rs_transfer_evaluate(t.XA, t.d, Bn, 10, t.y, t.y, NULL, t.n, 3, &o, &r, &err)) fail_msg("%s", err.msg);
    assert_false(r.cell[2].available);
    assert_false(r.cell[5].available);
    assert_true(r.cell[8].available && r.cell[6].available);
    /* bad input */
    Bn[37] = NAN;
    assert_int_equal(rs_transfer_evaluate(t.XA, t.d, Bn, 10, t.y, t.y, NULL, t.n, 3, &o, &r, &err), -1);
    assert_non_null(strstr(err.msg, "modality B"));
    int *one = calloc(t.n, sizeof(int));
    assert_int_equal(rs_transfer_evaluate(t.XA, t.d, t.XB, t.d, one, t.y, NULL, t.n, 3, &o, &r, &err), -1);
    assert_non_null(strstr(err.msg, "one class"));
    rs_linmap m;
    assert_int_equal(rs_linmap_fit(&m, RS_MAP_MOMENTS, t.XA, Bn, 10, t.d, 10, 0, 1, &err), -1);
    assert_non_null(strstr(err.msg, "equal widths"));
    free(one); free(Bn);
    free_rot(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maps_match_sklearn),
        cmocka_unit_test(test_cells_match_sklearn),
        cmocka_unit_test(test_ridge_dual),
        cmocka_unit_test(test_evaluate_protocol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
