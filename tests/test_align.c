/* Contrastive alignment (include/reprshift/probe_align.h, docs/probes.md "Contrastive alignment"):
 *  - the symmetric InfoNCE loss and its gradients against torch autograd (float64), five
 *    full-batch Adam steps (with the logit-scale clamp) against torch.optim.Adam (float32), and
 *    the embeddings of the trained map against numpy
 *    (tools/reference/gen_align_goldens.py → tests/fixtures/align/infonce.safetensors);
 *  - planted pairs (image = rotation of text + noise): held-out recall@1 near 1 for InfoNCE,
 *    Procrustes and ridge, the shuffled-pair nulls near chance k/n; deterministic per seed;
 *    a partial-signal case (a shared 4-dim latent under unit noise) where every map sits
 *    between its nulls and 1;
 *  - retrieval ranks on a hand-made case (ties count against the true partner). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/probe_align.h"
#include "reprshift/safetensors.h"
#include "reprshift/stats.h"
#include "sae/train_common.h"



static void test_reference(void **state) {
    (void)state;
    st_set *s;
    rs_err err;
    if (st_open(&s, "tests/fixtures/align/infonce.safetensors", &err)) fail_msg("%s", err.msg);
    const st_tensor *Wt = tu_need(s, "Wt"), *Wi = tu_need(s, "Wi");
    int dt = (int)Wt->shape[0], e = (int)Wt->shape[1], di = (int)Wi->shape[0], B = (int)tu_need(s, "Xt")->shape[0];
    rs_infonce m;
    assert_int_equal(rs_infonce_init(&m, dt, di, e, 0.07, 0, &err), 0);
    st_to_f32(Wt, m.Wt);
    st_to_f32(Wi, m.Wi);
    st_to_f32(tu_need(s, "tau"), m.log_scale);
    float *St = st_to_f32_new(tu_need(s, "St")), *Si = st_to_f32_new(tu_need(s, "Si"));
    float *g = calloc(m.n_params, sizeof *g);
    double loss, ref = ((const double *)tu_need(s, "loss")->data)[0];
    assert_int_equal(rs_infonce_loss_grad(&m, St, Si, B, g, &loss, &err), 0);
    double el = fabs(loss - ref) / ref, eg[3] = {tu_rel_err(g, tu_need(s, "g_Wt"), 1e-6),
                                                 tu_rel_err(g + (size_t)dt * e, tu_need(s, "g_Wi"), 1e-6),
                                                 tu_rel_err(g + m.n_params - 1, tu_need(s, "g_tau"), 1e-6)};
    fprintf(stderr, "infonce: loss %.9g (torch %.9g) rel err %.2e; grads W_t %.2e W_i %.2e tau %.2e\n", loss, ref, el,
            eg[0], eg[1], eg[2]);
    /* float32 parameters and inputs, float64 arithmetic on both sides: agreement to ~1e-7 */
    assert_true(el < 1e-6);
    for (int i = 0; i < 3; i++) assert_true(eg[i] < 1e-5);
    /* the training loop from the same start: full batch (batch ≥ n), standardised here from the raw rows */
    float *Xt = st_to_f32_new(tu_need(s, "Xt")), *Xi = st_to_f32_new(tu_need(s, "Xi"));
    rs_infonce_opts o = rs_infonce_defaults();
    o.steps = atoi(st_meta(s, "steps"));
    o.lr = atof(st_meta(s, "lr"));
    o.batch = 1000;
    assert_int_equal(rs_infonce_train(&m, Xt, Xi, B, &o, &err), 0);
    double ea[3] = {tu_rel_err(m.Wt, tu_need(s, "after_Wt"), 1e-3), tu_rel_err(m.Wi, tu_need(s, "after_Wi"), 1e-3),
                    tu_rel_err(m.log_scale, tu_need(s, "after_tau"), 1e-3)};
    double rl = ((const double *)tu_need(s, "after_loss")->data)[0];
    fprintf(stderr, "infonce: after %d Adam steps rel err W_t %.2e W_i %.2e tau %.2e; last loss %.7g (torch %.7g)\n",
            o.steps, ea[0], ea[1], ea[2], m.loss_last, rl);
    for (int i = 0; i < 3; i++) assert_true(ea[i] < 1e-5);
    assert_true(fabs(m.loss_last - rl) / rl < 1e-5);
    /* embeddings of the raw rows with the trained map */
    float *Z = malloc(sizeof(float) * (size_t)B * e);
    assert_int_equal(rs_infonce_embed(&m, 0, Xt, B, Z, &err), 0);
    double ez0 = tu_rel_err(Z, tu_need(s, "Zt"), 1e-3);
    assert_int_equal(rs_infonce_embed(&m, 1, Xi, B, Z, &err), 0);
    double ez1 = tu_rel_err(Z, tu_need(s, "Zi"), 1e-3);
    fprintf(stderr, "infonce: embeddings rel err text %.2e image %.2e\n", ez0, ez1);
    assert_true(ez0 < 1e-5 && ez1 < 1e-5);
    free(Z); free(Xt); free(Xi); free(St); free(Si); free(g);
    rs_infonce_free(&m);
    st_close(s);
}

static void test_ranks(void **state) {
    (void)state;
    /* 3 items in 2-d: A0 matches B0, A1 is as close to B2 as to B1 (tie: rank 1), A2 matches B2 */
    const float A[] = {1, 0, 0, 1, 0.6f, 0.8f}, B[] = {1, 0, 0, 1, 0, 1};
    int ra[3], rb[3];
    rs_err err;
    assert_int_equal(rs_retrieval_ranks(A, B, 3, 2, ra, rb, &err), 0);
    assert_int_equal(ra[0], 0);
    assert_int_equal(ra[1], 1); /* B2 ties with B1 */
    assert_int_equal(ra[2], 1); /* B1 = B2: tie */
    assert_int_equal(rb[0], 0);
    assert_int_equal(rb[1], 0); /* column 1: A1 (1.0) beats A2 (0.8) */
    assert_int_equal(rb[2], 1); /* column 2: A1 scores 1.0 > A2's 0.8 */
    rs_stat r1 = rs_recall_at_k(ra, 3, 1, 0, 0);
    assert_true(fabs(r1.value - 1.0 / 3) < 1e-12 && isnan(r1.lo));
    rs_stat r2 = rs_recall_at_k(ra, 3, 2, 200, 1);
    assert_true(r2.value == 1.0 && r2.lo == 1.0 && r2.hi == 1.0);
}

/* n pairs: text t ~ N(0, I_d), image = R t + noise (R a random rotation); every 5th pair held out */
static void planted(int n, int d, double noise, float **Xt, float **Xi, int **is_test) {
    uint64_t st = 42;
    double *R = malloc(sizeof(double) * d * d);
    /* random orthogonal R: Gram–Schmidt of a Gaussian matrix */
    for (int i = 0; i < d * d; i++) R[i] = (double)(stats_splitmix(&st) >> 11) * 0x1.0p-53 - 0.5;
    for (int i = 0; i < d; i++) {
        for (int j = 0; j < i; j++) {
            double dot = 0;
            for (int k = 0; k < d; k++) dot += R[i * d + k] * R[j * d + k];
            for (int k = 0; k < d; k++) R[i * d + k] -= dot * R[j * d + k];
        }
        double nn = 0;
        for (int k = 0; k < d; k++) nn += R[i * d + k] * R[i * d + k];
        for (int k = 0; k < d; k++) R[i * d + k] /= sqrt(nn);
    }
    *Xt = malloc(sizeof(float) * n * d);
    *Xi = malloc(sizeof(float) * n * d);
    *is_test = malloc(sizeof(int) * n);
    for (int i = 0; i < n * d; i++) {
        double u1 = ((stats_splitmix(&st) >> 11) + 1.0) * 0x1.0p-53, u2 = (stats_splitmix(&st) >> 11) * 0x1.0p-53;
        (*Xt)[i] = (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2) + 3.0); /* off-centre */
    }
    for (int i = 0; i < n; i++) {
        (*is_test)[i] = i % 5 == 0;
        for (int a = 0; a < d; a++) {
            double v = 0;
            for (int k = 0; k < d; k++) v += R[a * d + k] * ((*Xt)[i * d + k] - 3.0);
            double u1 = ((stats_splitmix(&st) >> 11) + 1.0) * 0x1.0p-53, u2 = (stats_splitmix(&st) >> 11) * 0x1.0p-53;
            (*Xi)[i * d + a] = (float)(2.0 * v + noise * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2) - 1.0);
        }
    }
    free(R);
}

static void test_planted(void **state) {
    (void)state;
    int n = 400, d = 16;
    float *Xt, *Xi;
    int *is_test;
    planted(n, d, 0.3, &Xt, &Xi, &is_test);
    rs_align_opts o = rs_align_defaults();
    o.infonce.dim = 16;
    o.infonce.steps = 400;
    o.infonce.lr = 0.01;
    o.n_boot = 500;
    rs_align_result r, r2;
    rs_err err;
    assert_int_equal(rs_align_evaluate(Xt, d, Xi, d, n, is_test, &o, &r, &err), 0);
    assert_int_equal(r.n_test, 80);
    assert_int_equal(r.n_train, 320);
    assert_true(fabs(r.chance[0] - 1.0 / 80) < 1e-12 && fabs(r.chance[2] - 10.0 / 80) < 1e-12);
    fprintf(stderr, "planted (n_test %d, chance %.4f/%.4f/%.4f): InfoNCE loss %.3f -> %.3f (shuffled %.3f), T %.4f\n",
            r.n_test, r.chance[0], r.chance[1], r.chance[2], r.loss_first, r.loss_last, r.null_loss_last, r.temperature);
    for (int m = 0; m < RS_ALIGN_METHODS; m++) {
        assert_true(r.m[m].available);
        for (int dir = 0; dir < 2; dir++) {
            fprintf(stderr, "  %-10s %s R@1 %.3f [%.3f, %.3f] R@5 %.3f R@10 %.3f | shuffled R@1 %.3f R@10 %.3f [%.3f, %.3f]\n",
                    rs_align_method_names[m], dir ? "img->txt" : "txt->img", r.m[m].recall[dir][0].value,
                    r.m[m].recall[dir][0].lo, r.m[m].recall[dir][0].hi, r.m[m].recall[dir][1].value,
                    r.m[m].recall[dir][2].value, r.m[m].null_recall[dir][0].value, r.m[m].null_recall[dir][2].value,
                    r.m[m].null_recall[dir][2].lo, r.m[m].null_recall[dir][2].hi);
            assert_true(r.m[m].recall[dir][0].value >= 0.95);
            assert_true(r.m[m].recall[dir][2].value == 1.0);
            assert_true(r.m[m].recall[dir][0].lo <= r.m[m].recall[dir][0].value &&
                        r.m[m].recall[dir][0].value <= r.m[m].recall[dir][0].hi);
            /* shuffled pairs: chance (1/80 at k = 1, 1/8 at k = 10) within sampling noise */
            assert_true(r.m[m].null_recall[dir][0].value <= 0.08);
            assert_true(r.m[m].null_recall[dir][2].value <= 0.3);
            assert_true(r.m[m].null_recall[dir][2].lo <= r.chance[2] + 0.05);
        }
    }
    assert_true(r.loss_last < 0.5 * r.loss_first && r.null_loss_last > r.loss_last);
    /* deterministic: the same seed gives the same numbers */
    assert_int_equal(rs_align_evaluate(Xt, d, Xi, d, n, is_test, &o, &r2, &err), 0);
    assert_memory_equal(&r, &r2, sizeof r);
    /* different sizes: no Procrustes, the others still run */
    float *Xs = malloc(sizeof(float) * n * (d - 4));
    for (int i = 0; i < n; i++) memcpy(Xs + (size_t)i * (d - 4), Xi + (size_t)i * d, sizeof(float) * (d - 4));
    o.n_boot = 0;
    assert_int_equal(rs_align_evaluate(Xt, d, Xs, d - 4, n, is_test, &o, &r2, &err), 0);
    assert_true(r2.m[0].available && !r2.m[1].available && r2.m[2].available);
    assert_true(isnan(r2.m[0].recall[0][0].lo));
    free(Xs); free(Xt); free(Xi); free(is_test);
}

static double gauss(uint64_t *st) {
    double u1 = ((stats_splitmix(st) >> 11) + 1.0) * 0x1.0p-53, u2 = (stats_splitmix(st) >> 11) * 0x1.0p-53;
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* Partial signal: a 4-dim latent s shared by both sides through random 32 × 4 loadings (text
 * = A s + 5 + N(0, 1), image = B s − 2 + N(0, 1)), 500 pairs, every 5th held out. Nothing
 * retrieves perfectly, every map must still beat chance (1/100) and its shuffled-pair null. */
static void test_planted_partial(void **state) {
    (void)state;
    int n = 500, d = 32, r = 4;
    uint64_t st = 7;
    float *Xt = malloc(sizeof(float) * n * d), *Xi = malloc(sizeof(float) * n * d);
    int *te = malloc(sizeof(int) * n);
    double A[32 * 4], B[32 * 4];
    for (int i = 0; i < d * r; i++) A[i] = gauss(&st), B[i] = gauss(&st);
    for (int i = 0; i < n; i++) {
        double s[4];
        for (int k = 0; k < r; k++) s[k] = gauss(&st);
        te[i] = i % 5 == 0;
        for (int j = 0; j < d; j++) {
            double a = 0, b = 0;
            for (int k = 0; k < r; k++) a += A[j * r + k] * s[k], b += B[j * r + k] * s[k];
            Xt[i * d + j] = (float)(a + gauss(&st) + 5);
            Xi[i * d + j] = (float)(b + gauss(&st) - 2);
        }
    }
    rs_align_opts o = rs_align_defaults();
    o.infonce.dim = 4;
    o.infonce.steps = 400;
    o.infonce.lr = 0.01;
    o.n_boot = 200;
    rs_align_result res;
    rs_err err;
    assert_int_equal(rs_align_evaluate(Xt, d, Xi, d, n, te, &o, &res, &err), 0);
    assert_int_equal(res.n_test, 100);
    fprintf(stderr, "partial (n_test 100, chance R@1 0.01, R@10 0.10): InfoNCE loss %.3f -> %.3f (shuffled %.3f), T %.4f\n",
            res.loss_first, res.loss_last, res.null_loss_last, res.temperature);
    for (int m = 0; m < RS_ALIGN_METHODS; m++)
        for (int dir = 0; dir < 2; dir++) {
            const rs_stat *r1 = &res.m[m].recall[dir][0], *r10 = &res.m[m].recall[dir][2];
            fprintf(stderr, "  %-10s %s R@1 %.3f [%.3f, %.3f] R@10 %.3f [%.3f, %.3f] | shuffled R@1 %.3f R@10 %.3f\n",
                    rs_align_method_names[m], dir ? "img->txt" : "txt->img", r1->value, r1->lo, r1->hi, r10->value, r10->lo,
                    r10->hi, res.m[m].null_recall[dir][0].value, res.m[m].null_recall[dir][2].value);
            assert_true(r1->value < 0.9);                              /* noise: not solvable exactly */
            assert_true(r1->lo > 10 * res.chance[0]);                  /* far above chance 0.01 */
            assert_true(r1->lo > res.m[m].null_recall[dir][0].value);  /* and above its shuffled-pair null */
            assert_true(r10->lo > res.m[m].null_recall[dir][2].value);
            assert_true(res.m[m].null_recall[dir][2].value <= 0.25);
            assert_true(res.m[m].median_rank[dir] < res.m[m].null_median_rank[dir]);
        }
    free(Xt); free(Xi); free(te);
}

/* Low-rank shared latent (3 dims through random 16 × 3 loadings, unit noise), n pairs, seed 11:
 * the data of the S = 1, R = 1 regression check below. */
static void partial16(int n, float **Xt, float **Xi) {
    int d = 16, r = 3;
    uint64_t st = 11;
    *Xt = malloc(sizeof(float) * n * d), *Xi = malloc(sizeof(float) * n * d);
    double A[16 * 3], B[16 * 3];
    for (int i = 0; i < d * r; i++) A[i] = gauss(&st), B[i] = gauss(&st);
    for (int i = 0; i < n; i++) {
        double s[3];
        for (int k = 0; k < r; k++) s[k] = gauss(&st);
        for (int j = 0; j < d; j++) {
            double a = 0, b = 0;
            for (int k = 0; k < r; k++) a += A[j * r + k] * s[k], b += B[j * r + k] * s[k];
            (*Xt)[i * d + j] = (float)(a + gauss(&st) + 1);
            (*Xi)[i * d + j] = (float)(b + gauss(&st) - 1);
        }
    }
}

/* splits = 1, null_draws = 1 reproduces the single-split evaluation of earlier versions exactly.
 * The expected numbers are a REGRESSION pin, not a reference: they were printed by
 * rs_align_evaluate of the base commit ecc8fa9 (before splits / null_draws existed) on this data
 * (recall value, CI low, CI high for k = 1, 5, 10, then the same for the shuffled-pair null,
 * then median rank and shuffled median rank; per method, text→image then image→text). */
static void test_s1r1_regression(void **state) {
    (void)state;
    static const double want[6][20] = {
        {0.32000000000000001, 0.17999999999999999, 0.44, 0.73999999999999999, 0.59950000000000003, 0.83999999999999997, 0.92000000000000004, 0.83950000000000002, 0.97999999999999998, 0, 0, 0, 0.040000000000000001, 0, 0.10000000000000001, 0.059999999999999998, 0, 0.12050000000000011, 3, 34},
        {0.34000000000000002, 0.2195, 0.46000000000000002, 0.68000000000000005, 0.53950000000000009, 0.78000000000000003, 0.92000000000000004, 0.81999999999999995, 0.97999999999999998, 0, 0, 0, 0, 0, 0, 0.02, 0, 0.060500000000000109, 3, 35},
        {0.32000000000000001, 0.20000000000000001, 0.4205000000000001, 0.69999999999999996, 0.54000000000000004, 0.83999999999999997, 0.83999999999999997, 0.71999999999999997, 0.93999999999999995, 0.02, 0, 0.059999999999999998, 0.10000000000000001, 0.02, 0.17999999999999999, 0.10000000000000001, 0.02, 0.17999999999999999, 3, 31.5},
        {0.28000000000000003, 0.16, 0.38050000000000012, 0.73999999999999999, 0.59950000000000003, 0.85999999999999999, 0.83999999999999997, 0.71999999999999997, 0.93999999999999995, 0.02, 0, 0.059999999999999998, 0.059999999999999998, 0, 0.12050000000000011, 0.10000000000000001, 0.02, 0.1805000000000001, 3.5, 32},
        {0.35999999999999999, 0.22, 0.47999999999999998, 0.73999999999999999, 0.59999999999999998, 0.83999999999999997, 0.90000000000000002, 0.81950000000000001, 0.95999999999999996, 0.02, 0, 0.080000000000000002, 0.10000000000000001, 0.040000000000000001, 0.17999999999999999, 0.17999999999999999, 0.080000000000000002, 0.28000000000000003, 2, 28.5},
        {0.32000000000000001, 0.17949999999999999, 0.44, 0.78000000000000003, 0.64000000000000001, 0.88050000000000017, 0.92000000000000004, 0.81999999999999995, 0.97999999999999998, 0, 0, 0, 0.080000000000000002, 0.02, 0.16, 0.16, 0.080000000000000002, 0.26000000000000001, 3, 29},
    };
    int n = 200, d = 16;
    float *Xt, *Xi;
    partial16(n, &Xt, &Xi);
    int *te = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) te[i] = i % 4 == 0;
    rs_align_opts o = rs_align_defaults();
    assert_int_equal(o.null_draws, 1);
    o.infonce.dim = 3, o.infonce.steps = 150, o.infonce.lr = 0.01, o.infonce.batch = 64, o.n_boot = 200;
    rs_align_result r, r2;
    rs_err err;
    assert_int_equal(rs_align_evaluate_splits(Xt, d, Xi, d, n, te, 1, &o, &r, &err), 0);
    assert_int_equal(r.n_test, 50);
    assert_int_equal(r.n_splits, 1);
    assert_int_equal(r.n_null, 1);
    assert_true(fabs(r.loss_first - 15.490799204232641) < 1e-9 && fabs(r.loss_last - 2.2167195456460851) < 1e-9);
    assert_true(fabs(r.null_loss_last - 3.9094961434494291) < 1e-9 && fabs(r.temperature - 0.09559547568286425) < 1e-9);
    for (int m = 0; m < 3; m++)
        for (int dir = 0; dir < 2; dir++) {
            const double *w = want[m * 2 + dir];
            const rs_align_method *M = &r.m[m];
            for (int k = 0; k < 3; k++) {
                assert_true(M->recall[dir][k].value == w[3 * k] && M->recall[dir][k].lo == w[3 * k + 1] &&
                            M->recall[dir][k].hi == w[3 * k + 2]);
                assert_true(M->null_recall[dir][k].value == w[9 + 3 * k] && M->null_recall[dir][k].lo == w[10 + 3 * k] &&
                            M->null_recall[dir][k].hi == w[11 + 3 * k]);
                /* one draw: the null's mean and 95th percentile are that draw */
                assert_true(M->null_mean[dir][k] == w[9 + 3 * k] && M->null_p95[dir][k] == w[9 + 3 * k]);
                assert_true(M->split_recall[0][dir][k] == w[3 * k]);
            }
            assert_true(M->median_rank[dir] == w[18] && M->null_median_rank[dir] == w[19]);
            assert_true(M->p[dir] == (w[9] >= w[0] ? 1.0 : 0.5));
            assert_true(isnan(M->q[dir]));
        }
    /* rs_align_evaluate is the S = 1 case */
    assert_int_equal(rs_align_evaluate(Xt, d, Xi, d, n, te, &o, &r2, &err), 0);
    assert_memory_equal(&r, &r2, sizeof r);
    free(Xt); free(Xi); free(te);
}

/* S splits of n pairs: split s holds out the pairs with i % 5 == s */
static int *five_splits(int n, int S) {
    int *te = malloc(sizeof(int) * n * S);
    for (int s = 0; s < S; s++)
        for (int i = 0; i < n; i++) te[s * n + i] = i % 5 == s;
    return te;
}

/* Planted rotation + noise over S = 3 splits with R = 9 null draws: every method and direction
 * beats all 9 null draws (p = 1/10), the null's recall@1 sits at chance, the nested CI contains
 * the split mean, and BH q ≥ p. An unrelated pairing: no small p. */
static void test_splits_null(void **state) {
    (void)state;
    int n = 200, d = 8, S = 3, R = 9;
    float *Xt, *Xi, *Xu;
    int *one;
    planted(n, d, 0.3, &Xt, &Xi, &one);
    int *te = five_splits(n, S);
    rs_align_opts o = rs_align_defaults();
    o.infonce.dim = 8, o.infonce.steps = 200, o.infonce.lr = 0.01, o.infonce.batch = 64, o.n_boot = 300;
    o.null_draws = R;
    rs_align_result res[2], *both[2] = {&res[0], &res[1]};
    rs_err err;
    assert_int_equal(rs_align_evaluate_splits(Xt, d, Xi, d, n, te, S, &o, &res[0], &err), 0);
    const rs_align_result *r = &res[0];
    assert_int_equal(r->n_splits, S);
    assert_int_equal(r->n_null, R);
    assert_int_equal(r->n_test, 40);
    assert_true(fabs(r->chance[0] - 1.0 / 40) < 1e-12);
    for (int m = 0; m < RS_ALIGN_METHODS; m++)
        for (int dir = 0; dir < 2; dir++) {
            const rs_align_method *M = &r->m[m];
            fprintf(stderr, "  S=3 R=9 %-10s %s R@1 %.3f [%.3f, %.3f] splits %.3f %.3f %.3f | null mean %.4f p95 %.4f p %.3f\n",
                    rs_align_method_names[m], dir ? "img->txt" : "txt->img", M->recall[dir][0].value,
                    M->recall[dir][0].lo, M->recall[dir][0].hi, M->split_recall[0][dir][0], M->split_recall[1][dir][0],
                    M->split_recall[2][dir][0], M->null_mean[dir][0], M->null_p95[dir][0], M->p[dir]);
            assert_true(M->recall[dir][0].value >= 0.95);
            assert_true(fabs(M->p[dir] - 0.1) < 1e-15); /* (1 + 0) / (1 + 9) */
            /* the null at chance 1/40: mean within 0.03, 95th percentile below 0.1 */
            assert_true(fabs(M->null_mean[dir][0] - r->chance[0]) < 0.03);
            assert_true(M->null_p95[dir][0] < 0.1 && M->null_p95[dir][0] >= M->null_mean[dir][0] - 1e-12);
            assert_true(fabs(M->null_mean[dir][2] - r->chance[2]) < 0.08);
            for (int k = 0; k < RS_ALIGN_NK; k++) {
                double mean = 0;
                for (int s = 0; s < S; s++) mean += M->split_recall[s][dir][k];
                assert_true(fabs(M->recall[dir][k].value - mean / S) < 1e-15);
                /* nested CI (splits, then test pairs) contains the split mean */
                assert_true(M->recall[dir][k].lo <= M->recall[dir][k].value && M->recall[dir][k].value <= M->recall[dir][k].hi);
                assert_true(M->null_recall[dir][k].lo <= M->null_recall[dir][k].value &&
                            M->null_recall[dir][k].value <= M->null_recall[dir][k].hi);
            }
        }
    /* unrelated: images independent of the captions */
    Xu = malloc(sizeof(float) * n * d);
    uint64_t st = 99;
    for (int i = 0; i < n * d; i++) Xu[i] = (float)gauss(&st);
    assert_int_equal(rs_align_evaluate_splits(Xt, d, Xu, d, n, te, S, &o, &res[1], &err), 0);
    double psum = 0;
    for (int m = 0; m < RS_ALIGN_METHODS; m++)
        for (int dir = 0; dir < 2; dir++) {
            const rs_align_method *M = &res[1].m[m];
            fprintf(stderr, "  unrelated %-10s %s R@1 %.4f [%.4f, %.4f] | null mean %.4f p95 %.4f p %.3f\n",
                    rs_align_method_names[m], dir ? "img->txt" : "txt->img", M->recall[dir][0].value,
                    M->recall[dir][0].lo, M->recall[dir][0].hi, M->null_mean[dir][0], M->null_p95[dir][0], M->p[dir]);
            assert_true(M->recall[dir][0].value < 0.1);
            psum += M->p[dir];
        }
    fprintf(stderr, "  unrelated: mean p %.3f\n", psum / 6);
    assert_true(psum / 6 > 0.3); /* ~0.55 expected under the null; planted: 0.1 */
    /* BH over both results (12 p): q ≥ p; planted q small, unrelated q large */
    assert_int_equal(rs_align_bh(both, 2, &err), 0);
    for (int h = 0; h < 2; h++)
        for (int m = 0; m < RS_ALIGN_METHODS; m++)
            for (int dir = 0; dir < 2; dir++) {
                const rs_align_method *M = &res[h].m[m];
                assert_true(M->q[dir] >= M->p[dir] && M->q[dir] <= 1);
                if (h == 0) assert_true(M->q[dir] <= 0.2 + 1e-12); /* 12 · 0.1 / 6 */
            }
    /* Procrustes unavailable (d_t ≠ d_i): its q stays NaN and it is not counted */
    o.null_draws = 2;
    assert_int_equal(rs_align_evaluate_splits(Xt, d, Xu, d - 2, n, te, S, &o, &res[1], &err), 0);
    assert_false(res[1].m[1].available);
    assert_int_equal(rs_align_bh(both, 2, &err), 0);
    assert_true(isnan(res[1].m[1].q[0]) && isnan(res[1].m[1].q[1]) && res[1].m[0].q[0] >= res[1].m[0].p[0]);
    /* bad arguments */
    o.null_draws = 0;
    assert_int_equal(rs_align_evaluate_splits(Xt, d, Xi, d, n, te, S, &o, &res[1], &err), -1);
    assert_non_null(strstr(err.msg, "null_draws"));
    o.null_draws = 1;
    assert_int_equal(rs_align_evaluate_splits(Xt, d, Xi, d, n, te, 0, &o, &res[1], &err), -1);
    assert_non_null(strstr(err.msg, "splits"));
    free(Xt); free(Xi); free(Xu); free(one); free(te);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_ranks),
        cmocka_unit_test(test_planted),
        cmocka_unit_test(test_planted_partial),
        cmocka_unit_test(test_s1r1_regression),
        cmocka_unit_test(test_splits_null),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
