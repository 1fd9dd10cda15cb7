/* SAE dictionary matching (include/reprshift/sae_match.h, docs/sae-training.md):
 *  - the assignment solver against scipy.optimize.linear_sum_assignment (rectangular, square,
 *    and an integer matrix full of ties: optimal total) and against brute force over all 7!
 *    permutations; the cosine matching of two small decoders against scipy (maximize=True)
 *    (tools/reference/gen_sae_match_goldens.py → tests/fixtures/sae_match/lsa.safetensors);
 *  - planted permutations: B = A's rows shuffled plus noise (all recovered, fraction 1,
 *    the nulls near 0), B sharing half of A's directions (fraction ≈ 0.5 inside its CI);
 *  - A vs B = B vs A transposed; the width cap refuses with a clear error. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/sae_match.h"
#include "reprshift/safetensors.h"

static double f64(const st_set *s, const char *name, int i) { return ((const double *)tu_need(s, name)->data)[i]; }

static void test_lsa_vs_scipy(void **st) {
    (void)st;
    st_set *s;
    rs_err err;
    if (st_open(&s, "tests/fixtures/sae_match/lsa.safetensors", &err)) fail_msg("%s", err.msg);
    const char *names[3] = {"cost_rect", "cost_sq", "cost_wide_int"};
    for (int k = 0; k < 3; k++) {
        const st_tensor *t = tu_need(s, names[k]);
        int nr = (int)t->shape[0], nc = (int)t->shape[1];
        int col[16];
        double total;
        assert_int_equal(rs_linear_assignment((const float *)t->data, nr, nc, col, &total, &err), 0);
        char nm[64];
        snprintf(nm, sizeof nm, "%s_total", names[k]);
        fprintf(stderr, "%s %dx%d: total %.9g, scipy %.9g\n", names[k], nr, nc, total, f64(s, nm, 0));
        assert_true(fabs(total - f64(s, nm, 0)) < 1e-6);
        int seen[16] = {0};
        for (int i = 0; i < nr; i++) assert_true(col[i] >= 0 && col[i] < nc && !seen[col[i]]++);
        if (k < 2) { /* continuous costs: the optimum is unique, so the assignment is scipy's */
            snprintf(nm, sizeof nm, "%s_col", names[k]);
            for (int i = 0; i < nr; i++) assert_int_equal(col[i], (int)f64(s, nm, i));
        }
    }
    /* decoder matching (cosine, maximised) */
    const st_tensor *A = tu_need(s, "dec_a"), *B = tu_need(s, "dec_b");
    sae_match_opts o;
    sae_match_opts_default(&o);
    o.n_boot = 0, o.n_null = 0;
    sae_match_result r;
    assert_int_equal(sae_match_decoders((const float *)A->data, 9, (const float *)B->data, 6, 5, &o, &r, &err), 0);
    assert_int_equal(r.n_pairs, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r.a_idx[i], (int)f64(s, "match_a", i));
        assert_int_equal(r.b_idx[i], (int)f64(s, "match_b", i));
        assert_true(fabs(r.cos[i] - f64(s, "match_cos", i)) < 1e-6);
    }
    /* B vs A: the same pairs, roles swapped */
    sae_match_result q;
    assert_int_equal(sae_match_decoders((const float *)B->data, 6, (const float *)A->data, 9, 5, &o, &q, &err), 0);
    for (int i = 0; i < 6; i++) {
        int found = 0;
        for (int j = 0; j < 6; j++) found |= q.a_idx[j] == r.b_idx[i] && q.b_idx[j] == r.a_idx[i];
        assert_true(found);
    }
    sae_match_result_free(&r);
    sae_match_result_free(&q);
    st_close(s);
}

static uint64_t S = 3;
static double unif(void) { return tu_xs_unif(&S); }
static double gauss(void) { return tu_xs_gauss(&S); }

static void brute(const float *c, int n, int k, int *perm, int *used, double acc, double *best) {
    if (k == n) {
        if (acc < *best) *best = acc;
        return;
    }
    for (int j = 0; j < n; j++)
        if (!used[j]) {
            used[j] = 1;
            perm[k] = j;
            brute(c, n, k + 1, perm, used, acc + c[k * n + j], best);
            used[j] = 0;
        }
}

static void test_lsa_vs_brute_force(void **st) {
    (void)st;
    rs_err err;
    for (int rep = 0; rep < 20; rep++) {
        float c[49];
        for (int i = 0; i < 49; i++) c[i] = rep % 2 ? (float)(int)(unif() * 5) : (float)gauss();
        int perm[7], used[7] = {0}, col[7];
        double best = 1e300, total;
        brute(c, 7, 0, perm, used, 0, &best);
        assert_int_equal(rs_linear_assignment(c, 7, 7, col, &total, &err), 0);
        assert_true(fabs(total - best) < 1e-9);
    }
}

/* n unit rows in d dims */
static float *rand_units(int n, int d) {
    float *W = malloc((size_t)n * d * sizeof *W);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) W[i * d + k] = (float)gauss(), s += W[i * d + k] * W[i * d + k];
        for (int k = 0; k < d; k++) W[i * d + k] = (float)(W[i * d + k] / sqrt(s));
    }
    return W;
}

static void test_planted(void **st) {
    (void)st;
    enum { NA = 200, NB = 250, D = 64, SHARED = 100 };
    rs_err err;
    S = 3;
    float *A = rand_units(NA, D), *B = rand_units(NB, D);
    int pi[NB];
    for (int i = 0; i < NB; i++) pi[i] = i;
    for (int i = NB - 1; i > 0; i--) {
        int j = (int)(unif() * (i + 1)), t = pi[i];
        pi[i] = pi[j], pi[j] = t;
    }
    /* B row pi[i] = A row i + noise (‖noise‖ ≈ 0.25 → cos ≈ 0.97) for i < NA; the rest random */
    for (int i = 0; i < NA; i++)
        for (int k = 0; k < D; k++) B[pi[i] * D + k] = A[i * D + k] + (float)(0.25 / sqrt(D) * gauss());
    sae_match_opts o;
    sae_match_opts_default(&o);
    sae_match_result r;
    assert_int_equal(sae_match_decoders(A, NA, B, NB, D, &o, &r, &err), 0);
    int ok = 0;
    for (int i = 0; i < r.n_pairs; i++) ok += r.b_idx[i] == pi[r.a_idx[i]];
    fprintf(stderr, "planted permutation: %d/%d pairs recovered; frac > %.1f = %.3f [%.3f, %.3f], mean cos %.3f; "
                    "null random %.3f (max %.3f, mean cos %.3f), null permuted %.3f (max %.3f, mean cos %.3f)\n",
            ok, NA, o.threshold, r.frac, r.frac_lo, r.frac_hi, r.mean_cos, r.null_random.frac_mean, r.null_random.frac_max,
            r.null_random.cos_mean, r.null_permuted.frac_mean, r.null_permuted.frac_max, r.null_permuted.cos_mean);
    assert_int_equal(ok, NA);
    assert_true(r.frac == 1.0 && r.frac_lo == 1.0);
    assert_true(r.null_random.frac_max < 0.05 && r.null_permuted.frac_max < 0.05);
    assert_true(r.beats_null);
    sae_match_result_free(&r);
    /* only SHARED of A's directions appear in B: the fraction is ≈ SHARED/NA */
    for (int i = SHARED; i < NA; i++) {
        float *t = rand_units(1, D);
        memcpy(B + pi[i] * D, t, D * sizeof *t);
        free(t);
    }
    assert_int_equal(sae_match_decoders(A, NA, B, NB, D, &o, &r, &err), 0);
    fprintf(stderr, "half shared: frac %.3f [%.3f, %.3f] (planted %.3f), null random max %.3f\n", r.frac, r.frac_lo,
            r.frac_hi, (double)SHARED / NA, r.null_random.frac_max);
    assert_true(r.frac_lo <= 0.5 && r.frac_hi >= 0.5);
    assert_true(fabs(r.frac - 0.5) < 0.03);
    assert_true(r.beats_null);
    sae_match_result_free(&r);
    /* A against random directions only: the null's level, and no "beats" */
    float *R = rand_units(NB, D);
    assert_int_equal(sae_match_decoders(A, NA, R, NB, D, &o, &r, &err), 0);
    fprintf(stderr, "unrelated dictionaries: frac %.3f [%.3f, %.3f], mean cos %.3f; null random mean cos %.3f\n", r.frac,
            r.frac_lo, r.frac_hi, r.mean_cos, r.null_random.cos_mean);
    assert_false(r.beats_null);
    assert_true(fabs(r.mean_cos - r.null_random.cos_mean) < 0.05);
    sae_match_result_free(&r);
    /* the cap */
    o.max_width = 100;
    assert_int_equal(sae_match_decoders(A, NA, B, NB, D, &o, &r, &err), -1);
    fprintf(stderr, "cap: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "exceed the exact-matching cap of 100"));
    free(A), free(B), free(R);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lsa_vs_scipy),
        cmocka_unit_test(test_lsa_vs_brute_force),
        cmocka_unit_test(test_planted),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
