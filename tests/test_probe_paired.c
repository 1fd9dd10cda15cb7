/* Paired comparison of two probes on identical splits (rs_paired_probe_test): difference,
 * paired nested-bootstrap CI and sign-flip p-value against the numpy reference
 * (tools/reference/gen_paired_goldens.py → tests/fixtures/probe/paired.safetensors, to
 * 1e-12); determinism, symmetry and input checks; rs_probe_evaluate's keep_tests output. */
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

static const st_tensor *need(const st_set *s, const char *name, int64_t numel) {
    const st_tensor *t = st_get(s, name);
    if (!t || (numel >= 0 && t->numel != numel)) fail_msg("fixture tensor %s missing or wrong size", name);
    return t;
}

typedef struct {
    int S, n, B, NP;
    uint64_t bseed, pseed;
    int *ca, *cb, *g, n_rows[16];
    double out[6], seed_diff[16];
    int counts[3];
} pcase;

static void load_case(const st_set *f, const char *name, pcase *c) {
    char k[64];
    snprintf(k, sizeof k, "%s_params", name);
    const int64_t *par = need(f, k, 5)->data;
    c->S = (int)par[0], c->B = (int)par[1], c->bseed = (uint64_t)par[2], c->NP = (int)par[3], c->pseed = (uint64_t)par[4];
    snprintf(k, sizeof k, "%s_n_rows", name);
    const int32_t *nr = need(f, k, c->S)->data;
    c->n = 0;
    for (int s = 0; s < c->S; s++) c->n += c->n_rows[s] = nr[s];
    const char *cols[3] = {"ca", "cb", "group"};
    int **dst[3] = {&c->ca, &c->cb, &c->g};
    for (int q = 0; q < 3; q++) {
        snprintf(k, sizeof k, "%s_%s", name, cols[q]);
        const int32_t *v = need(f, k, c->n)->data;
        *dst[q] = malloc(sizeof(int) * c->n);
        for (int i = 0; i < c->n; i++) (*dst[q])[i] = v[i];
    }
    snprintf(k, sizeof k, "%s_out", name);
    memcpy(c->out, need(f, k, 6)->data, sizeof c->out);
    snprintf(k, sizeof k, "%s_seed_diff", name);
    memcpy(c->seed_diff, need(f, k, c->S)->data, sizeof(double) * c->S);
    snprintf(k, sizeof k, "%s_counts", name);
    const int32_t *cn = need(f, k, 3)->data;
    for (int q = 0; q < 3; q++) c->counts[q] = cn[q];
}

static void free_case(pcase *c) { free(c->ca), free(c->cb), free(c->g); }

static void close_to(const char *what, double got, double ref) {
    if (isnan(ref) && isnan(got)) return;
    if (!(fabs(got - ref) <= 1e-12)) fail_msg("%s: %.17g vs numpy %.17g", what, got, ref);
}

static void test_matches_numpy(void **state) {
    (void)state;
    st_set *f = open_fix("tests/fixtures/probe/paired.safetensors");
    const char *names[3] = {"gain", "null", "one_seed"};
    for (int k = 0; k < 3; k++) {
        pcase c;
        load_case(f, names[k], &c);
        rs_paired_result r;
        rs_err err;
        if (rs_paired_probe_test(c.ca, c.cb, c.g, c.n_rows, c.S, c.B, c.bseed, c.NP, c.pseed, &r, &err))
            fail_msg("%s: %s", names[k], err.msg);
        print_message("  %-8s diff %+.12f [%+.12f, %+.12f] p %.12f | numpy %+.12f [%+.12f, %+.12f] p %.12f\n", names[k],
                      r.diff, r.ci_lo, r.ci_hi, r.p, c.out[0], c.out[1], c.out[2], c.out[3]);
        print_message("           |diff| errors: %.2g %.2g %.2g p %.2g\n", fabs(r.diff - c.out[0]),
                      fabs(r.ci_lo - c.out[1]), fabs(r.ci_hi - c.out[2]), isnan(c.out[3]) ? 0.0 : fabs(r.p - c.out[3]));
        close_to("difference", r.diff, c.out[0]);
        close_to("ci_lo", r.ci_lo, c.out[1]);
        close_to("ci_hi", r.ci_hi, c.out[2]);
        close_to("p", r.p, c.out[3]);
        close_to("acc_a", r.acc_a, c.out[4]);
        close_to("acc_b", r.acc_b, c.out[5]);
        if (c.NP == 0) assert_true(isnan(r.p));
        for (int s = 0; s < c.S; s++) close_to("seed difference", r.seed_diff[s], c.seed_diff[s]);
        assert_int_equal(r.n_seeds, c.S);
        assert_int_equal(r.n_test_groups, c.counts[0]);
        assert_int_equal(r.n_test_items, c.counts[1]);
        assert_int_equal(r.n_groups_tested, c.counts[2]);
        assert_int_equal(r.n_perm, c.NP);
        /* same seeds → same values */
        rs_paired_result r2;
        if (rs_paired_probe_test(c.ca, c.cb, c.g, c.n_rows, c.S, c.B, c.bseed, c.NP, c.pseed, &r2, &err))
            fail_msg("%s", err.msg);
        assert_true(r2.diff == r.diff && r2.ci_lo == r.ci_lo && r2.ci_hi == r.ci_hi);
        assert_true((isnan(r.p) && isnan(r2.p)) || r2.p == r.p);
        /* swapping A and B negates the difference and mirrors the CI; the p-value is two-sided */
        rs_paired_result rs;
        if (rs_paired_probe_test(c.cb, c.ca, c.g, c.n_rows, c.S, c.B, c.bseed, c.NP, c.pseed, &rs, &err))
            fail_msg("%s", err.msg);
        assert_true(rs.diff == -r.diff);
        assert_true(fabs(rs.ci_lo + r.ci_hi) < 1e-15 && fabs(rs.ci_hi + r.ci_lo) < 1e-15);
        assert_true((isnan(r.p) && isnan(rs.p)) || rs.p == r.p);
        rs_paired_result_free(&r);
        rs_paired_result_free(&r2);
        rs_paired_result_free(&rs);
        free_case(&c);
    }
    st_close(f);
}

/* Identical probes: difference 0, CI [0, 0], p = 1; a B that is right wherever A is wrong on
 * 40 groups: the smallest p, 1/(1 + n_perm). Bad input is refused. */
static void test_edge_cases(void **state) {
    (void)state;
    enum { N = 80 };
    int a[N], b[N], g[N], nr[2] = {40, 40};
    for (int i = 0; i < N; i++) a[i] = i % 3 == 0, b[i] = a[i], g[i] = i % 40;
    rs_paired_result r;
    rs_err err;
    if (rs_paired_probe_test(a, b, g, nr, 2, 100, 1, 200, 2, &r, &err)) fail_msg("%s", err.msg);
    assert_true(r.diff == 0 && r.ci_lo == 0 && r.ci_hi == 0 && r.p == 1.0);
    assert_int_equal(r.n_groups_tested, 40);
    assert_int_equal(r.n_test_groups, 40);
    rs_paired_result_free(&r);
    for (int i = 0; i < N; i++) a[i] = 0, b[i] = 1;
    if (rs_paired_probe_test(a, b, g, nr, 2, 100, 1, 200, 2, &r, &err)) fail_msg("%s", err.msg);
    assert_true(r.diff == 1 && r.ci_lo == 1 && r.ci_hi == 1);
    assert_true(r.p == 1.0 / 201);
    rs_paired_result_free(&r);
    b[3] = 2;
    assert_int_equal(rs_paired_probe_test(a, b, g, nr, 2, 100, 1, 200, 2, &r, &err), -1);
    assert_non_null(strstr(err.msg, "0 or 1"));
    b[3] = 1;
    nr[1] = 0;
    assert_int_equal(rs_paired_probe_test(a, b, g, nr, 2, 100, 1, 200, 2, &r, &err), -1);
    assert_non_null(strstr(err.msg, "no test rows"));
    nr[1] = 40;
    assert_int_equal(rs_paired_probe_test(a, b, g, nr, 2, 0, 1, 200, 2, &r, &err), -1);
}

/* keep_tests: rs_probe_evaluate returns each seed's test rows (ascending, within 0..n−1) and
 * predictions; their accuracy is the reported one; the default result has none. */
static void test_keep_tests(void **state) {
    (void)state;
    int G = 150, n = 2 * G, d = 8;
    float *X = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n), *grp = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        y[i] = (i / 2) % 2;
        grp[i] = i / 2;
        for (int j = 0; j < d; j++)
            X[(size_t)i * d + j] = (float)(rs_normal_at(5, (uint64_t)i * d + j) + (j == 0 ? 1.2 * (2 * y[i] - 1) : 0));
    }
    rs_eval_opts o = rs_eval_defaults();
    o.n_seeds = 3;
    o.n_boot = 50;
    o.n_perm = 0;
    o.cv_folds = 3;
    o.min_test_groups = 10;
    rs_eval_result r0, r1;
    rs_err err;
    if (rs_probe_evaluate(X, y, grp, n, d, 2, &o, &r0, &err)) fail_msg("%s", err.msg);
    assert_null(r0.test_row);
    assert_null(r0.test_pred);
    assert_null(r0.test_n);
    o.keep_tests = 1;
    if (rs_probe_evaluate(X, y, grp, n, d, 2, &o, &r1, &err)) fail_msg("%s", err.msg);
    assert_true(r1.mean.accuracy == r0.mean.accuracy && r1.ci_lo.accuracy == r0.ci_lo.accuracy);
    double acc = 0;
    for (int s = 0, off = 0; s < 3; s++) {
        int ok = 0;
        assert_true(r1.test_n[s] > 0);
        for (int k = 0; k < r1.test_n[s]; k++) {
            int i = r1.test_row[off + k];
            assert_true(i >= 0 && i < n);
            if (k) assert_true(i > r1.test_row[off + k - 1]);
            ok += r1.test_pred[off + k] == y[i];
        }
        acc += (double)ok / r1.test_n[s] / 3;
        off += r1.test_n[s];
    }
    assert_true(fabs(acc - r1.mean.accuracy) < 1e-15);
    rs_eval_result_free(&r0);
    rs_eval_result_free(&r1);
    assert_null(r1.test_row);
    free(X); free(y); free(grp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_numpy),
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_keep_tests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
