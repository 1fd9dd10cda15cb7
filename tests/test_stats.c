/* The statistics core against numpy / scipy / statsmodels (tools/reference/gen_stats_goldens.py,
 * tests/fixtures/stats/stats_golden.safetensors): the permutation generator's stream (the
 * reference re-implements it), debiased linear CKA, centred cosine, group-bootstrap intervals
 * (same resamples), permutation p-values and null bands (same permutations, p compared
 * exactly; same seed → same value), Benjamini–Hochberg q-values. Plus the property the
 * debiased estimator exists for: on independent data with n ≪ d, biased CKA is large and
 * debiased CKA ≈ 0. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/safetensors.h"
#include "reprshift/shift.h"
#include "reprshift/stats.h"

#define FX "tests/fixtures/stats/stats_golden.safetensors"

static st_set *G;
static sae_sparse FA, FB;
static shift_input IN;

static int setup(void **st) {
    (void)st;
    rs_err err;
    if (st_open(&G, FX, &err)) return -1;
    const st_tensor *ta = st_get(G, "a"), *toff = st_get(G, "offsets");
    int64_t n = ta->shape[0];
    int m = (int)st_get(G, "fa")->shape[1];
    if (sae_sparse_from_dense(st_get(G, "fa")->data, n, m, &FA, &err) ||
        sae_sparse_from_dense(st_get(G, "fb")->data, n, m, &FB, &err))
        return -1;
    IN = (shift_input){.n_rows = n, .d = (int)ta->shape[1], .a = ta->data, .b = st_get(G, "b")->data, .fa = &FA,
                       .fb = &FB, .n_groups = toff->numel - 1, .offsets = toff->data};
    return 0;
}

static int teardown(void **st) {
    (void)st;
    sae_sparse_free(&FA);
    sae_sparse_free(&FB);
    st_close(G);
    return 0;
}

static int perm_seed(void) { return atoi(st_meta(G, "perm_seed")); }

static void test_permutation_stream(void **st) {
    (void)st;
    const st_tensor *tp = st_get(G, "perms");
    int P = (int)tp->shape[0];
    int64_t n = tp->shape[1];
    int64_t *pi = malloc((size_t)n * sizeof *pi);
    for (int r = 0; r < P; r++) {
        stats_permutation((uint64_t)perm_seed(), r, n, pi);
        if (memcmp(pi, (const int64_t *)tp->data + (size_t)r * n, (size_t)n * sizeof *pi))
            fail_msg("permutation %d differs from the reference re-implementation", r);
    }
    /* a permutation, and a different one for another seed */
    int64_t *q = calloc((size_t)n, sizeof *q);
    stats_permutation(1, 0, n, pi);
    for (int64_t i = 0; i < n; i++) q[pi[i]]++;
    for (int64_t i = 0; i < n; i++) assert_int_equal(q[i], 1);
    assert_true(memcmp(pi, tp->data, (size_t)n * sizeof *pi) != 0);
    free(q);
    free(pi);
}

static void test_bh(void **st) {
    (void)st;
    const st_tensor *tp = st_get(G, "bh_p");
    const double *p = tp->data, *q = st_get(G, "bh_q")->data;
    int n = (int)tp->numel;
    double *got = malloc((size_t)n * sizeof *got);
    assert_int_equal(stats_bh_qvalues(p, n, got), 0);
    for (int i = 0; i < n; i++) {
        if (isnan(q[i])) {
            assert_true(isnan(got[i]));
            continue;
        }
        if (fabs(got[i] - q[i]) > 1e-12) fail_msg("q[%d] = %.15g, statsmodels %.15g", i, got[i], q[i]);
    }
    /* a family of one keeps its p; an empty family is fine */
    double one = 0.03, q1;
    assert_int_equal(stats_bh_qvalues(&one, 1, &q1), 0);
    assert_true(q1 == 0.03);
    assert_int_equal(stats_bh_qvalues(NULL, 0, NULL), 0);
    free(got);
}

static void test_cka_debiased_vs_numpy(void **st) {
    (void)st;
    const st_tensor *xa = st_get(G, "ind_a");
    const double *ref = st_get(G, "ind_cka")->data;
    int64_t n = xa->shape[0];
    int d = (int)xa->shape[1];
    double biased, deb = stats_cka_debiased(xa->data, st_get(G, "ind_b")->data, n, d, &biased);
    if (fabs(deb - ref[1]) > 1e-6 || fabs(biased - ref[0]) > 1e-6)
        fail_msg("CKA biased %.9g debiased %.9g vs numpy %.9g %.9g", biased, deb, ref[0], ref[1]);
    assert_true(biased > 0.5 && fabs(deb) < 0.05);
    /* the Gram / bootstrap path of shift_compare agrees */
    int64_t off[2] = {0, n};
    shift_input in = {.n_rows = n, .d = d, .a = xa->data, .b = st_get(G, "ind_b")->data, .n_groups = 1, .offsets = off};
    shift_opts o;
    shift_opts_default(&o);
    o.n_boot = 0;
    o.n_perm = 0;
    shift_result r;
    rs_err err;
    if (shift_compare(&in, &o, &r, &err)) fail_msg("%s", err.msg);
    assert_true(fabs(r.cka_debiased.value - ref[1]) < 1e-5 && fabs(r.cka_linear.value - ref[0]) < 1e-5);
    shift_result_free(&r);
    /* hand case: fewer than 4 rows → undefined */
    float a4[3] = {1, 2, 3};
    assert_true(isnan(stats_cka_debiased(a4, a4, 3, 1, NULL)));
}

static double gauss(uint64_t *s) {
    double u = ((stats_splitmix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double v = ((stats_splitmix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* The numbers: independent data, n = 300, d = 2304 (Gemma-2 2B width). */
static void test_independent_n300_d2304(void **st) {
    (void)st;
    int64_t n = 300;
    int d = 2304;
    float *a = malloc((size_t)n * d * sizeof *a), *b = malloc((size_t)n * d * sizeof *b);
    uint64_t s = 42;
    for (size_t i = 0; i < (size_t)n * d; i++) a[i] = (float)gauss(&s);
    for (size_t i = 0; i < (size_t)n * d; i++) b[i] = (float)gauss(&s);
    int64_t off[2] = {0, n};
    shift_input in = {.n_rows = n, .d = d, .a = a, .b = b, .n_groups = 1, .offsets = off};
    shift_opts o;
    shift_opts_default(&o);
    o.n_boot = 0;
    o.n_perm = 50;
    shift_result r;
    rs_err err;
    if (shift_compare(&in, &o, &r, &err)) fail_msg("%s", err.msg);
    print_message("independent n=300 d=2304: biased CKA %.4f (null band %.4f..%.4f), debiased %.4f (null band %.4f..%.4f), p %.3f / %.3f\n",
                  r.cka_linear.value, r.null[SHIFT_CKA_LINEAR].lo, r.null[SHIFT_CKA_LINEAR].hi, r.cka_debiased.value,
                  r.null[SHIFT_CKA_DEBIASED].lo, r.null[SHIFT_CKA_DEBIASED].hi, r.null[SHIFT_CKA_LINEAR].p,
                  r.null[SHIFT_CKA_DEBIASED].p);
    assert_true(r.cka_linear.value > 0.3);
    assert_true(fabs(r.cka_debiased.value) < 0.02);
    /* the null of the biased statistic sits at the same inflated level: the value is only
     * interpretable against it */
    assert_true(r.null[SHIFT_CKA_LINEAR].lo > 0.3);
    assert_true(r.null[SHIFT_CKA_LINEAR].p > 0.01 && r.null[SHIFT_CKA_DEBIASED].p > 0.01);
    shift_result_free(&r);
    free(a);
    free(b);
}

static void check_null(const shift_result *r, const char *what) {
    const double *p = st_get(G, "p")->data, *lo = st_get(G, "null_lo")->data, *hi = st_get(G, "null_hi")->data,
                 *mean = st_get(G, "null_mean")->data;
    int P = (int)st_get(G, "perms")->shape[0];
    for (int k = 0; k < SHIFT_N_METRICS; k++) {
        const stats_null *z = &r->null[k];
        if (isnan(p[k])) {
            if (!isnan(z->p) || z->n_perm != 0) fail_msg("%s %s: want no test", what, shift_metric_name(k));
            continue;
        }
        if (z->n_perm != P || z->p != p[k])
            fail_msg("%s %s: p %.9g (%d perms) vs numpy %.9g", what, shift_metric_name(k), z->p, z->n_perm, p[k]);
        double tol = 2e-5;
        if (fabs(z->lo - lo[k]) > tol * fmax(1, fabs(lo[k])) || fabs(z->hi - hi[k]) > tol * fmax(1, fabs(hi[k])) ||
            fabs(z->mean - mean[k]) > tol * fmax(1, fabs(mean[k])))
            fail_msg("%s %s: null band %.9g..%.9g mean %.9g vs numpy %.9g..%.9g %.9g", what, shift_metric_name(k), z->lo,
                     z->hi, z->mean, lo[k], hi[k], mean[k]);
    }
}

static void test_shift_vs_numpy(void **st) {
    (void)st;
    const st_tensor *tc = st_get(G, "boot_counts");
    shift_opts o;
    shift_opts_default(&o);
    o.n_boot = (int)tc->shape[0];
    o.boot_counts = tc->data;
    o.seed = (uint64_t)perm_seed();
    o.n_perm = (int)st_get(G, "perms")->shape[0];
    shift_result r, r2;
    rs_err err;
    if (shift_compare(&IN, &o, &r, &err)) fail_msg("%s", err.msg);
    const double *val = st_get(G, "value")->data, *lo = st_get(G, "lo")->data, *hi = st_get(G, "hi")->data;
    for (int k = 0; k < SHIFT_N_METRICS; k++) {
        const rs_stat *s = shift_metric_stat(&r, k);
        double tol = 2e-5;
        if (fabs(s->value - val[k]) > tol * fmax(1, fabs(val[k])) || fabs(s->lo - lo[k]) > tol * fmax(1, fabs(lo[k])) ||
            fabs(s->hi - hi[k]) > tol * fmax(1, fabs(hi[k])))
            fail_msg("%s: %.9g [%.9g, %.9g] vs numpy %.9g [%.9g, %.9g]", shift_metric_name(k), s->value, s->lo, s->hi,
                     val[k], lo[k], hi[k]);
    }
    assert_true(fabs(shift_cos_centred(IN.a, IN.b, IN.n_rows, IN.d) - val[SHIFT_COS_CENTRED]) < 1e-9);
    check_null(&r, "RNG");
    /* the same permutations given explicitly → the same nulls */
    o.perm_idx = st_get(G, "perms")->data;
    if (shift_compare(&IN, &o, &r2, &err)) fail_msg("%s", err.msg);
    check_null(&r2, "perm_idx");
    shift_result_free(&r2);
    /* same seed → bit-identical; another seed → another null */
    o.perm_idx = NULL;
    if (shift_compare(&IN, &o, &r2, &err)) fail_msg("%s", err.msg);
    for (int k = 0; k < SHIFT_N_METRICS; k++) {
        const stats_null *x = &r.null[k], *y = &r2.null[k];
        assert_int_equal(x->n_perm, y->n_perm);
        assert_memory_equal(&x->p, &y->p, sizeof x->p); /* bitwise (NaN == NaN) */
        assert_memory_equal(&x->lo, &y->lo, sizeof x->lo);
        assert_memory_equal(&x->hi, &y->hi, sizeof x->hi);
        assert_memory_equal(&x->mean, &y->mean, sizeof x->mean);
    }
    shift_result_free(&r2);
    o.seed += 1;
    if (shift_compare(&IN, &o, &r2, &err)) fail_msg("%s", err.msg);
    assert_true(r2.null[SHIFT_COS_RAW].lo != r.null[SHIFT_COS_RAW].lo);
    shift_result_free(&r2);
    /* zero permutations: values and intervals as before, no test */
    o.n_perm = 0;
    if (shift_compare(&IN, &o, &r2, &err)) fail_msg("%s", err.msg);
    for (int k = 0; k < SHIFT_N_METRICS; k++) {
        assert_true(isnan(r2.null[k].p) && r2.null[k].n_perm == 0 && isnan(r2.null[k].lo));
        assert_true(shift_metric_stat(&r2, k)->value == shift_metric_stat(&r, k)->value ||
                    isnan(shift_metric_stat(&r, k)->value));
    }
    shift_result_free(&r2);
    /* the identity permutation reproduces every point estimate (the null's fast paths:
     * cross-product cosines/l2, Gram-matrix CKA, per-feature counts) */
    {
        int64_t n = IN.n_rows;
        int64_t *id = malloc((size_t)(2 * n) * sizeof *id);
        for (int64_t i = 0; i < 2 * n; i++) id[i] = i % n;
        shift_opts oi = o;
        oi.n_perm = 2;
        oi.perm_idx = id;
        oi.n_boot = 0;
        oi.boot_counts = NULL;
        if (shift_compare(&IN, &oi, &r2, &err)) fail_msg("%s", err.msg);
        for (int k = 0; k < SHIFT_N_METRICS; k++) {
            if (!shift_metric_permutable(k)) continue;
            double v = shift_metric_stat(&r2, k)->value;
            if (fabs(r2.null[k].mean - v) > 1e-5 * fmax(1, fabs(v)))
                fail_msg("%s: identity-permutation value %.9g vs estimate %.9g", shift_metric_name(k), r2.null[k].mean, v);
        }
        shift_result_free(&r2);
        free(id);
    }
    /* CKA above the permutation cap: no CKA test, the others unchanged */
    o.n_perm = (int)st_get(G, "perms")->shape[0];
    o.perm_cka_max_rows = 10;
    if (shift_compare(&IN, &o, &r2, &err)) fail_msg("%s", err.msg);
    assert_true(isnan(r2.null[SHIFT_CKA_LINEAR].p) && isnan(r2.null[SHIFT_CKA_DEBIASED].p));
    assert_true(r2.null[SHIFT_COS_RAW].p == r.null[SHIFT_COS_RAW].p);
    shift_result_free(&r2);
    shift_result_free(&r);
}

static void test_split_half_vs_numpy(void **st) {
    (void)st;
    const double *ref = st_get(G, "split_half_a")->data;
    shift_opts o;
    shift_opts_default(&o);
    o.n_boot = 20;
    shift_result r;
    int64_t used;
    rs_err err;
    if (shift_split_half(IN.a, IN.d, IN.offsets, IN.n_groups, &o, &r, &used, &err)) fail_msg("%s", err.msg);
    assert_int_equal(used, IN.n_groups); /* every group has ≥ 2 rows */
    const int ks[5] = {SHIFT_COS_RAW, SHIFT_L2_RAW, SHIFT_CKA_LINEAR, SHIFT_COS_CENTRED, SHIFT_CKA_DEBIASED};
    for (int i = 0; i < 5; i++) {
        double v = shift_metric_stat(&r, ks[i])->value;
        if (fabs(v - ref[i]) > 2e-5 * fmax(1, fabs(ref[i])))
            fail_msg("split-half %s: %.9g vs numpy %.9g", shift_metric_name(ks[i]), v, ref[i]);
        assert_true(isnan(r.null[ks[i]].p)); /* floors carry intervals, not tests */
    }
    assert_true(r.cos_raw.lo <= r.cos_raw.hi);
    assert_true(!r.has_feats);
    shift_result_free(&r);
    /* replicate (caption-to-caption) floor on given pairs */
    const st_tensor *tpi = st_get(G, "pair_i");
    const double *pref = st_get(G, "pair_floor")->data;
    if (shift_pair_floor(IN.a, IN.d, tpi->data, st_get(G, "pair_j")->data, tpi->numel, NULL, 0, &o, &r, &err)) fail_msg("%s", err.msg);
    assert_int_equal(r.n_rows, tpi->numel);
    for (int i = 0; i < 5; i++) {
        double v = shift_metric_stat(&r, ks[i])->value;
        if (fabs(v - pref[i]) > 2e-5 * fmax(1, fabs(pref[i])))
            fail_msg("pair floor %s: %.9g vs numpy %.9g", shift_metric_name(ks[i]), v, pref[i]);
    }
    shift_result_free(&r);
    /* grouped pairs (one image giving several pairs): the bootstrap resamples the groups; the
     * result is shift_compare on the gathered rows with those groups (its resampling is checked
     * against numpy above), values as the ungrouped floor */
    {
        const int64_t *pi = tpi->data, *pj = st_get(G, "pair_j")->data;
        int64_t np = tpi->numel, goff[5] = {0, 2, 3, 6, 8};
        assert_int_equal(np, 8);
        shift_result rg, rc0, ru;
        if (shift_pair_floor(IN.a, IN.d, pi, pj, np, goff, 4, &o, &rg, &err)) fail_msg("%s", err.msg);
        if (shift_pair_floor(IN.a, IN.d, pi, pj, np, NULL, 0, &o, &ru, &err)) fail_msg("%s", err.msg);
        float *ga = malloc((size_t)np * IN.d * sizeof *ga), *gb = malloc((size_t)np * IN.d * sizeof *gb);
        assert_non_null(ga);
        assert_non_null(gb);
        for (int64_t k = 0; k < np; k++) {
            memcpy(ga + k * IN.d, IN.a + pi[k] * IN.d, (size_t)IN.d * sizeof *ga);
            memcpy(gb + k * IN.d, IN.a + pj[k] * IN.d, (size_t)IN.d * sizeof *gb);
        }
        shift_opts o0 = o;
        o0.n_perm = 0;
        shift_input gin = {.n_rows = np, .d = IN.d, .a = ga, .b = gb, .n_groups = 4, .offsets = goff};
        if (shift_compare(&gin, &o0, &rc0, &err)) fail_msg("%s", err.msg);
        assert_int_equal(rg.n_groups, 4);
        int differs = 0;
        for (int i = 0; i < 5; i++) {
            const rs_stat *g = shift_metric_stat(&rg, ks[i]), *c0 = shift_metric_stat(&rc0, ks[i]),
                          *u = shift_metric_stat(&ru, ks[i]);
            if (!(g->value == c0->value && fabs(g->value - u->value) <= 1e-12 * fmax(1, fabs(u->value)))) fail_msg("%s: %.17g %.17g %.17g", shift_metric_name(ks[i]), g->value, c0->value, u->value);
            assert_true(g->lo == c0->lo && g->hi == c0->hi);
            differs |= g->lo != u->lo || g->hi != u->hi;
        }
        assert_true(differs); /* another resampling unit, other intervals */
        shift_result_free(&rg);
        shift_result_free(&rc0);
        shift_result_free(&ru);
        free(ga);
        free(gb);
        int64_t bad1[3] = {0, 3, 7}, bad2[3] = {0, 0, 8};
        assert_int_equal(shift_pair_floor(IN.a, IN.d, pi, pj, np, bad1, 2, &o, &r, &err), -1);
        assert_int_equal(shift_pair_floor(IN.a, IN.d, pi, pj, np, bad2, 2, &o, &r, &err), -1);
        assert_non_null(strstr(err.msg, "no pair"));
    }
    assert_int_equal(shift_pair_floor(IN.a, IN.d, tpi->data, st_get(G, "pair_j")->data, 1, NULL, 0, &o, &r, &err), -1);
    /* too few usable groups */
    int64_t off1[3] = {0, 1, 2};
    assert_int_equal(shift_split_half(IN.a, IN.d, off1, 2, &o, &r, &used, &err), -1);
}

static void test_rank_keys_vs_numpy(void **st) {
    (void)st;
    const st_tensor *tk = st_get(G, "rank_key"), *te = st_get(G, "rank_expected"), *tc = st_get(G, "boot_counts");
    const double *ex = te->data;
    int64_t ne = te->shape[0];
    shift_rank_entry *e;
    int64_t n;
    rs_err err;
    if (shift_rank_keys(tk->data, st_get(G, "rank_val")->data, tk->numel, IN.offsets, IN.n_groups, 3, 3,
                        (int)tc->shape[0], 0, tc->data, &e, &n, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(n, ne); /* key 99 (2 rows) is below the minimum count */
    for (int64_t k = 0; k < n; k++) {
        const double *x = ex + k * 6;
        assert_int_equal(e[k].key, (int)x[0]);
        assert_int_equal(e[k].count, (int64_t)x[1]);
        double got[4] = {e[k].mean, e[k].lo, e[k].hi, e[k].excess}, want[4] = {x[2], x[3], x[4], x[5]};
        for (int q = 0; q < 4; q++)
            if (fabs(got[q] - want[q]) > 1e-9) fail_msg("key %d field %d: %.12g vs numpy %.12g", e[k].key, q, got[q], want[q]);
    }
    free(e);
    /* own RNG: same seed → same intervals */
    shift_rank_entry *e1, *e2;
    int64_t n1, n2;
    assert_int_equal(shift_rank_keys(tk->data, st_get(G, "rank_val")->data, tk->numel, IN.offsets, IN.n_groups, 3, 3, 50, 9,
                                     NULL, &e1, &n1, &err), 0);
    assert_int_equal(shift_rank_keys(tk->data, st_get(G, "rank_val")->data, tk->numel, IN.offsets, IN.n_groups, 3, 3, 50, 9,
                                     NULL, &e2, &n2, &err), 0);
    assert_int_equal(n1, n2);
    for (int64_t k = 0; k < n1; k++) assert_true(e1[k].lo == e2[k].lo && e1[k].hi == e2[k].hi && e1[k].lo <= e1[k].hi);
    free(e1);
    free(e2);
}

static void test_feature_ci_vs_numpy(void **st) {
    (void)st;
    const st_tensor *ts = st_get(G, "feat_sel"), *tc = st_get(G, "boot_counts");
    const double *ref = st_get(G, "feat_ci")->data;
    int nf = (int)ts->numel;
    int feats[16];
    for (int k = 0; k < nf; k++) feats[k] = ((const int32_t *)ts->data)[k];
    double got[64];
    rs_err err;
    if (shift_feature_ci(&FA, &FB, IN.offsets, IN.n_groups, feats, nf, (int)tc->shape[0], 0, tc->data, got, &err))
        fail_msg("%s", err.msg);
    for (int k = 0; k < 4 * nf; k++)
        if (fabs(got[k] - ref[k]) > 1e-6) fail_msg("feature %d field %d: %.9g vs numpy %.9g", feats[k / 4], k % 4, got[k], ref[k]);
    /* no bootstrap → NaN */
    assert_int_equal(shift_feature_ci(&FA, &FB, IN.offsets, IN.n_groups, feats, nf, 0, 0, NULL, got, &err), 0);
    assert_true(isnan(got[0]) && isnan(got[4 * nf - 1]));
}

static void test_null_summary_hand(void **st) {
    (void)st;
    /* similarity: null ≥ 0.5 twice out of 4 → p = 3/5; distance: null ≤ 0.5 three times → 4/5 */
    double v[4] = {0.1, 0.5, 0.9, 0.2}, w[4];
    memcpy(w, v, sizeof v);
    stats_null z = stats_null_summary(0.5, w, 4, STATS_SIM);
    assert_int_equal(z.n_perm, 4);
    assert_true(fabs(z.p - 3.0 / 5) < 1e-15 && fabs(z.mean - 0.425) < 1e-15);
    /* numpy.percentile([.1,.2,.5,.9], 2.5) = 0.1 + 0.075·0.1 */
    assert_true(fabs(z.lo - 0.1075) < 1e-15);
    memcpy(w, v, sizeof v);
    z = stats_null_summary(0.5, w, 4, STATS_DIST);
    assert_true(fabs(z.p - 4.0 / 5) < 1e-15);
    double nn[2] = {NAN, NAN};
    z = stats_null_summary(0.5, nn, 2, STATS_SIM);
    assert_true(z.n_perm == 0 && isnan(z.p));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_permutation_stream),
        cmocka_unit_test(test_bh),
        cmocka_unit_test(test_null_summary_hand),
        cmocka_unit_test(test_cka_debiased_vs_numpy),
        cmocka_unit_test(test_shift_vs_numpy),
        cmocka_unit_test(test_split_half_vs_numpy),
        cmocka_unit_test(test_rank_keys_vs_numpy),
        cmocka_unit_test(test_feature_ci_vs_numpy),
        cmocka_unit_test(test_independent_n300_d2304),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
