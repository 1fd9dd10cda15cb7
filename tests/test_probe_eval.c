/* Probe evaluation: StratifiedKFold assignment, metrics and LogisticRegressionCV's C
 * choice against scikit-learn goldens (prng_folds.safetensors); the nested group bootstrap,
 * GroupKFold inner CV (GridSearchCV) and the permutation p-value against sklearn/numpy
 * (protocol.safetensors); properties of the multi-seed protocol (group integrity,
 * permutation test, control types that recur, minimum test-set size). */
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
    o.n_perm = 20;
    o.min_test_groups = 40; /* 200 groups of 2 rows: 41 test groups */
    int *ct = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) ct[i] = i % 7; /* types unrelated to X: control near chance */
    o.control_type = ct;
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
    assert_int_equal(r.n_test_groups, 41);
    assert_int_equal(r.n_groups, 200);
    assert_true(r.perm_p == 1.0 / 21); /* no permutation reaches the real accuracy */
    rs_eval_result_free(&r);
    free(X); free(y); free(grp); free(ct);
}

/* rs_nested_group_bootstrap against numpy/sklearn on the same resample indices (drawn by
 * the shared generator in tools/reference/gen_probe_goldens.py protocol). */
static void test_nested_bootstrap_matches_numpy(void **state) {
    (void)state;
    st_set *g = open_fix("tests/fixtures/probe/protocol.safetensors");
    const int32_t *par = need(g, "boot_params", 4);
    int S = par[0], K = par[1], B = par[2];
    uint64_t seed = (uint64_t)par[3];
    const int32_t *nr = need(g, "boot_n_rows", S);
    int n = 0, n_rows[8];
    for (int s = 0; s < S; s++) n += n_rows[s] = nr[s];
    const int32_t *yy = need(g, "boot_y", n), *pp = need(g, "boot_pred", n), *gg = need(g, "boot_gid", n);
    const double *rep_ref = need(g, "boot_rep_acc", B), *lohi = need(g, "boot_lo_hi", 6);
    int *y = malloc(sizeof(int) * n), *p = malloc(sizeof(int) * n), *gid = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) { y[i] = yy[i]; p[i] = pp[i]; gid[i] = gg[i]; }
    double *rep = malloc(sizeof(double) * B);
    rs_metrics lo, hi;
    rs_err err;
    if (rs_nested_group_bootstrap(y, p, gid, n_rows, S, K, B, seed, &lo, &hi, rep, &err)) fail_msg("%s", err.msg);
    for (int b = 0; b < B; b++)
        if (!(fabs(rep[b] - rep_ref[b]) < 1e-12)) fail_msg("replicate %d: %.15g vs numpy %.15g", b, rep[b], rep_ref[b]);
    double got[6] = {lo.accuracy, hi.accuracy, lo.balanced_accuracy, hi.balanced_accuracy, lo.macro_f1, hi.macro_f1};
    for (int k = 0; k < 6; k++) {
        print_message("  CI bound %d: %.12f  numpy %.12f\n", k, got[k], lohi[k]);
        if (!(fabs(got[k] - lohi[k]) < 1e-12)) fail_msg("CI bound %d: %.15g vs numpy %.15g", k, got[k], lohi[k]);
    }
    /* group ids with a gap are rejected */
    gid[0] = 1000;
    assert_int_equal(rs_nested_group_bootstrap(y, p, gid, n_rows, S, K, B, seed, &lo, &hi, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "dense"));
    free(y); free(p); free(gid); free(rep);
    st_close(g);
}

/* Inner CV over GroupKFold(5) folds: per-C mean accuracy and chosen C equal
 * GridSearchCV(LogisticRegression, cv=GroupKFold(5)); our own group folds never split a group. */
static void test_group_cv_matches_gridsearch(void **state) {
    (void)state;
    float *X;
    int *y, n, d;
    load_train("tests/fixtures/probe/data_breast_cancer.safetensors", &X, &y, &n, &d);
    st_set *g = open_fix("tests/fixtures/probe/protocol.safetensors");
    const int32_t *fr = need(g, "gcv_fold", n), *gr = need(g, "gcv_groups", n);
    const double *Cs = need(g, "gcv_Cs", 7), *acc_ref = need(g, "gcv_mean_acc", 7);
    double best_ref = *(const double *)need(g, "gcv_best_C", 1);
    rs_scaler sc;
    rs_err err;
    assert_int_equal(rs_scaler_fit(&sc, X, n, d, &err), 0);
    rs_scaler_apply(&sc, X, n, X);
    rs_scaler_free(&sc);
    int *fold = malloc(sizeof(int) * n), *grp = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) { fold[i] = fr[i]; grp[i] = gr[i]; }
    rs_logreg_opts o = rs_logreg_defaults();
    o.tol = 1e-10;
    o.max_iter = 100000;
    double acc[7], best;
    if (rs_logreg_cv_folds(X, y, n, d, 2, fold, 5, Cs, 7, 0, &o, acc, &best, &err)) fail_msg("%s", err.msg);
    for (int c = 0; c < 7; c++) {
        print_message("  C=%g  group-CV acc %.9f  GridSearchCV %.9f\n", Cs[c], acc[c], acc_ref[c]);
        if (!(fabs(acc[c] - acc_ref[c]) < 1e-9)) fail_msg("C=%g: %.12f vs %.12f", Cs[c], acc[c], acc_ref[c]);
    }
    assert_true(best == best_ref);
    /* rs_group_kfold: every group in exactly one fold, folds non-empty, deterministic per seed */
    int *f2 = malloc(sizeof(int) * n), *f3 = malloc(sizeof(int) * n);
    assert_int_equal(rs_group_kfold(y, grp, n, 2, 5, 3, f2, &err), 0);
    assert_int_equal(rs_group_kfold(y, grp, n, 2, 5, 3, f3, &err), 0);
    int cnt[5] = {0};
    for (int i = 0; i < n; i++) {
        assert_int_equal(f2[i], f3[i]);
        cnt[f2[i]]++;
        for (int j = 0; j < i; j++)
            if (grp[i] == grp[j] && f2[i] != f2[j]) fail_msg("group %d in folds %d and %d", grp[i], f2[i], f2[j]);
    }
    for (int f = 0; f < 5; f++) assert_true(cnt[f] > 40);
    if (rs_logreg_cv_folds(X, y, n, d, 2, f2, 5, Cs, 7, 0, &o, acc, &best, &err)) fail_msg("%s", err.msg);
    assert_int_equal(rs_group_kfold(y, grp, n, 2, 500, 3, f2, &err), -1);
    assert_non_null(strstr(err.msg, "folds=500, groups="));
    free(fold); free(grp); free(f2); free(f3); free(X); free(y);
    st_close(g);
}

static void test_permutation_pvalue(void **state) {
    (void)state;
    st_set *g = open_fix("tests/fixtures/probe/protocol.safetensors");
    const double *null = need(g, "perm_null", 100), *op = need(g, "perm_obs_p", 8);
    for (int k = 0; k < 4; k++) {
        double p = rs_permutation_pvalue(op[2 * k], null, 100);
        if (!(fabs(p - op[2 * k + 1]) < 1e-15)) fail_msg("observed %g: p %.15g vs numpy %.15g", op[2 * k], p, op[2 * k + 1]);
    }
    st_close(g);
    /* group-level permutation: label-homogeneous groups stay homogeneous (labels move between
       groups); mixed groups keep their own label multiset */
    int n = 60, y[60], grp[60], out[60], cnt0 = 0, cnt1 = 0, moved = 0;
    for (int i = 0; i < n; i++) { grp[i] = 100 + i / 3; y[i] = (i / 3) % 2; }
    assert_int_equal(rs_permute_labels_grouped(y, grp, n, 9, out), 0);
    for (int i = 0; i < n; i++) {
        if (i % 3) assert_int_equal(out[i], out[i - 1]);
        cnt0 += out[i] == 0; cnt1 += y[i] == 0; moved += out[i] != y[i];
    }
    assert_int_equal(cnt0, cnt1);
    assert_true(moved > 0);
    for (int i = 0; i < n; i++) y[i] = i % 2, grp[i] = i / 2; /* an image and its edit per group */
    assert_int_equal(rs_permute_labels_grouped(y, grp, n, 9, out), 0);
    moved = 0;
    for (int i = 0; i < n; i += 2) {
        assert_int_equal(out[i] + out[i + 1], 1);
        moved += out[i] != y[i];
    }
    assert_true(moved > 0 && moved < n / 2);
}

/* Synthetic data for the protocol tests: n_groups groups of 2 rows; each group has a "type"
 * (one of T, recurring across train and test) whose centroid shifts X; the label is either
 * the group's label (signal) or independent of X (noise). */
static void make_typed(int n_groups, int d, int T, double signal, uint64_t seed, float *X, int *y, int *grp, int *type) {
    for (int g = 0; g < n_groups; g++) {
        int lab = rs_uniform_at(seed, (uint64_t)g) < 0.5, t = (int)(rs_uniform_at(seed + 1, (uint64_t)g) * T);
        for (int r = 0; r < 2; r++) {
            int i = 2 * g + r;
            y[i] = lab; grp[i] = 1000 + g; type[i] = t;
            for (int j = 0; j < d; j++)
                X[(size_t)i * d + j] = (float)(rs_normal_at(seed + 2, (uint64_t)i * d + j) +
                                               3.0 * rs_normal_at(seed + 3, (uint64_t)t * d + j) +
                                               (j == 0 ? signal * (2 * lab - 1) : 0));
        }
    }
}

/* Same seed → same permutation p-value and null; signal → p = 1/(1+n_perm); noise → large p.
 * Prints the permutation test's wall time (100 permutations × 5 seeds). */
static void test_permutation_test(void **state) {
    (void)state;
    int G = 300, n = 2 * G, d = 64, T = 12;
    float *X = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n), *grp = malloc(sizeof(int) * n), *type = malloc(sizeof(int) * n);
    make_typed(G, d, T, 1.5, 41, X, y, grp, type);
    rs_eval_opts o = rs_eval_defaults();
    o.n_boot = 200;
    o.cv_folds = 3;
    rs_eval_result a, b;
    rs_err err;
    if (rs_probe_evaluate(X, y, grp, n, d, 2, &o, &a, &err)) fail_msg("%s", err.msg);
    if (rs_probe_evaluate(X, y, grp, n, d, 2, &o, &b, &err)) fail_msg("%s", err.msg);
    print_message("  signal: acc %.3f [%.3f, %.3f]  null mean %.3f  p %.4f  (%d perms x %d seeds: %.2f s)\n",
                  a.mean.accuracy, a.ci_lo.accuracy, a.ci_hi.accuracy, a.perm_accuracy, a.perm_p, a.n_perm,
                  a.n_seeds, a.perm_seconds);
    assert_int_equal(a.n_perm, 100);
    assert_true(a.perm_p == b.perm_p && a.perm_accuracy == b.perm_accuracy);
    assert_true(a.ci_lo.accuracy == b.ci_lo.accuracy && a.ci_hi.accuracy == b.ci_hi.accuracy);
    assert_true(a.perm_p == 1.0 / 101);
    assert_true(fabs(a.perm_accuracy - 0.5) < 0.05);
    assert_true(a.perm_seconds > 0);
    rs_eval_result_free(&a);
    rs_eval_result_free(&b);
    make_typed(G, d, T, 0.0, 43, X, y, grp, type); /* no signal */
    o.n_perm = 50;
    if (rs_probe_evaluate(X, y, grp, n, d, 2, &o, &a, &err)) fail_msg("%s", err.msg);
    print_message("  noise:  acc %.3f  null mean %.3f  p %.4f\n", a.mean.accuracy, a.perm_accuracy, a.perm_p);
    assert_true(a.perm_p > 0.05);
    rs_eval_result_free(&a);
    free(X); free(y); free(grp); free(type);
}

/* The permutation refits spread over threads (rs_eval_opts.threads) give the same numbers as
 * a serial run, bit for bit: each permutation's accuracy has its own slot, added in order.
 * Three classes, a logistic probe small enough for one thread per fit, and an MLP probe (run
 * serially whatever threads says). */
static void test_permutation_threads_identical(void **state) {
    (void)state;
    int G = 60, n = 2 * G, d = 16, T = 6;
    float *X = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n), *grp = malloc(sizeof(int) * n), *type = malloc(sizeof(int) * n);
    make_typed(G, d, T, 0.8, 77, X, y, grp, type);
    for (int g = 0; g < G; g += 3) y[2 * g] = y[2 * g + 1] = 2; /* a third class, whole groups */
    rs_eval_opts o = rs_eval_defaults();
    o.n_seeds = 3;
    o.n_boot = 50;
    o.cv_folds = 3;
    o.n_perm = 40;
    o.min_test_groups = 5;
    o.control_type = type;
    rs_mlp_opts mo = rs_mlp_defaults();
    mo.max_epochs = 20;
    for (int mlp = 0; mlp < 2; mlp++) {
        o.mlp = mlp ? &mo : NULL;
        rs_eval_result r[3];
        rs_err err;
        int threads[3] = {1, 2, 5};
        for (int k = 0; k < 3; k++) {
            o.threads = threads[k];
            if (rs_probe_evaluate(X, y, grp, n, d, 3, &o, &r[k], &err)) fail_msg("%s", err.msg);
        }
        for (int k = 1; k < 3; k++) {
            assert_int_equal(r[k].n_perm, 40);
            assert_memory_equal(&r[k].perm_p, &r[0].perm_p, sizeof(double));
            assert_memory_equal(&r[k].perm_accuracy, &r[0].perm_accuracy, sizeof(double));
            assert_memory_equal(&r[k].mean, &r[0].mean, sizeof(rs_metrics));
            assert_memory_equal(&r[k].ci_lo, &r[0].ci_lo, sizeof(rs_metrics));
            assert_memory_equal(&r[k].ci_hi, &r[0].ci_hi, sizeof(rs_metrics));
            assert_memory_equal(&r[k].control_accuracy, &r[0].control_accuracy, sizeof(double));
            assert_memory_equal(r[k].C_chosen, r[0].C_chosen, sizeof(double) * 3);
            assert_memory_equal(r[k].confusion, r[0].confusion, sizeof(int) * 9);
        }
        assert_true(r[0].perm_p > 0 && r[0].perm_p <= 1);
        for (int k = 0; k < 3; k++) rs_eval_result_free(&r[k]);
    }
    free(X); free(y); free(grp); free(type);
}

/* Control task per Hewitt & Liang with types that recur between train and test: the type is
 * decodable from X, so the probe memorises type → control label and the control accuracy is
 * far above chance; with types = groups (never on both sides) the overlap is 0. */
static void test_control_types_recur(void **state) {
    (void)state;
    int G = 300, n = 2 * G, d = 64, T = 12;
    float *X = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n), *grp = malloc(sizeof(int) * n), *type = malloc(sizeof(int) * n);
    make_typed(G, d, T, 1.5, 41, X, y, grp, type);
    rs_eval_opts o = rs_eval_defaults();
    o.n_boot = 50;
    o.n_perm = 0;
    o.cv_folds = 3;
    o.control_type = type;
    rs_eval_result r, q, u;
    rs_err err;
    if (rs_probe_evaluate(X, y, grp, n, d, 2, &o, &r, &err)) fail_msg("%s", err.msg);
    o.control_type = grp;
    if (rs_probe_evaluate(X, y, grp, n, d, 2, &o, &q, &err)) fail_msg("%s", err.msg);
    o.control_type = NULL;
    if (rs_probe_evaluate(X, y, grp, n, d, 2, &o, &u, &err)) fail_msg("%s", err.msg);
    print_message("  acc %.3f; control (types) %.3f overlap %.2f selectivity %.3f; control (groups) %.3f overlap %.2f\n",
                  r.mean.accuracy, r.control_accuracy, r.control_overlap, r.selectivity, q.control_accuracy,
                  q.control_overlap);
    assert_true(r.control_overlap == 1.0);
    assert_true(r.control_accuracy > 0.85);
    assert_true(fabs(r.selectivity - (r.mean.accuracy - r.control_accuracy)) < 1e-12);
    assert_true(q.control_overlap == 0.0);
    assert_true(isnan(u.control_accuracy) && isnan(u.selectivity) && isnan(u.perm_p));
    rs_eval_result_free(&r);
    rs_eval_result_free(&q);
    rs_eval_result_free(&u);
    free(X); free(y); free(grp); free(type);
}

/* Fewer test groups than the minimum: an error with the numbers. */
static void test_min_test_groups(void **state) {
    (void)state;
    int G = 100, n = 2 * G, d = 8;
    float *X = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n), *grp = malloc(sizeof(int) * n), *type = malloc(sizeof(int) * n);
    make_typed(G, d, 3, 1.5, 41, X, y, grp, type);
    rs_eval_opts o = rs_eval_defaults();
    rs_eval_result r;
    rs_err err;
    assert_int_equal(rs_probe_evaluate(X, y, grp, n, d, 2, &o, &r, &err), -1);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "leaves 20 test groups (100 groups, test fraction 0.2), fewer than the minimum of 50"));
    o.min_test_groups = 20;
    o.n_perm = 5;
    o.n_boot = 20;
    if (rs_probe_evaluate(X, y, grp, n, d, 2, &o, &r, &err)) fail_msg("%s", err.msg);
    assert_int_equal(r.n_test_groups, 20);
    rs_eval_result_free(&r);
    free(X); free(y); free(grp); free(type);
}

/* Edit-transfer matrix: variant 0 shifts feature 0 by δ, variant 1 by 2δ (a stronger dose of
 * the same edit), variant 2 shifts feature 1 (another edit). The diagonal equals
 * rs_probe_evaluate on the same rows; the weak-edit probe detects the strong edit better
 * than the weak one (dose–response); the cross-edit cells stay at chance. */
static void test_edit_transfer(void **state) {
    (void)state;
    int n = 300, d = 32, V = 3;
    float *XI = malloc(sizeof(float) * n * d), *XE = malloc(sizeof(float) * V * n * d), *X2 = malloc(sizeof(float) * 2 * n * d);
    int *grp = malloc(sizeof(int) * n), *y2 = malloc(sizeof(int) * 2 * n), *g2 = malloc(sizeof(int) * 2 * n);
    for (int i = 0; i < n; i++) {
        grp[i] = 5000 + i;
        for (int j = 0; j < d; j++) XI[i * d + j] = (float)rs_normal_at(61, (uint64_t)i * d + j);
        for (int v = 0; v < V; v++)
            for (int j = 0; j < d; j++) {
                double shift = (v == 0 && j == 0) ? 1.0 : (v == 1 && j == 0) ? 2.0 : (v == 2 && j == 1) ? 2.0 : 0;
                XE[((size_t)v * n + i) * d + j] = (float)(rs_normal_at(62 + v, (uint64_t)i * d + j) + shift);
            }
    }
    rs_eval_opts o = rs_eval_defaults();
    o.n_boot = 100;
    o.cv_folds = 3;
    double acc[9], lo[9], hi[9], Cg[15];
    rs_err err;
    if (rs_edit_transfer_evaluate(XI, XE, V, n, d, grp, &o, NULL, acc, lo, hi, &err)) fail_msg("%s", err.msg);
    for (int v = 0; v < V; v++)
        print_message("  trained on edit %d: %.3f [%.3f, %.3f]  %.3f [%.3f, %.3f]  %.3f [%.3f, %.3f]\n", v, acc[v * 3],
                      lo[v * 3], hi[v * 3], acc[v * 3 + 1], lo[v * 3 + 1], hi[v * 3 + 1], acc[v * 3 + 2], lo[v * 3 + 2],
                      hi[v * 3 + 2]);
    o.n_perm = 0;
    for (int v = 0; v < V; v++) { /* the diagonal is the ordinary attribute probe */
        memcpy(X2, XI, sizeof(float) * n * d);
        memcpy(X2 + (size_t)n * d, XE + (size_t)v * n * d, sizeof(float) * n * d);
        for (int i = 0; i < n; i++) y2[i] = 0, y2[n + i] = 1, g2[i] = g2[n + i] = grp[i];
        rs_eval_result r;
        if (rs_probe_evaluate(X2, y2, g2, 2 * n, d, 2, &o, &r, &err)) fail_msg("%s", err.msg);
        if (!(fabs(r.mean.accuracy - acc[v * 3 + v]) < 1e-12)) fail_msg("diag %d: %.15g vs %.15g", v, acc[v * 3 + v], r.mean.accuracy);
        memcpy(Cg + v * 5, r.C_chosen, sizeof(double) * 5);
        rs_eval_result_free(&r);
    }
    /* the attribute probes' chosen C skip the inner CV and give the same matrix */
    double acc2[9];
    if (rs_edit_transfer_evaluate(XI, XE, V, n, d, grp, &o, Cg, acc2, NULL, NULL, &err)) fail_msg("%s", err.msg);
    for (int k = 0; k < 9; k++) assert_true(acc2[k] == acc[k]);
    for (int k = 0; k < 9; k++) assert_true(lo[k] <= acc[k] + 1e-12 && acc[k] <= hi[k] + 1e-12);
    assert_true(acc[0 * 3 + 1] > acc[0 * 3 + 0] + 0.05); /* weak-edit probe on the strong edit */
    assert_true(acc[1 * 3 + 1] > 0.75);
    assert_true(fabs(acc[0 * 3 + 2] - 0.5) < 0.1 && fabs(acc[2 * 3 + 0] - 0.5) < 0.1); /* cross-edit controls */
    assert_true(acc[2 * 3 + 2] > 0.75);
    o.min_test_groups = 100;
    assert_int_equal(rs_edit_transfer_evaluate(XI, XE, V, n, d, grp, &o, NULL, acc, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "leaves 60 test groups (300 groups"));
    free(XI); free(XE); free(X2); free(grp); free(y2); free(g2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stratified_kfold_matches_sklearn),
        cmocka_unit_test(test_metrics_match_sklearn),
        cmocka_unit_test(test_cv_choice_matches_logregcv),
        cmocka_unit_test(test_group_split_keeps_groups),
        cmocka_unit_test(test_protocol_properties),
        cmocka_unit_test(test_nested_bootstrap_matches_numpy),
        cmocka_unit_test(test_group_cv_matches_gridsearch),
        cmocka_unit_test(test_permutation_pvalue),
        cmocka_unit_test(test_permutation_test),
        cmocka_unit_test(test_permutation_threads_identical),
        cmocka_unit_test(test_control_types_recur),
        cmocka_unit_test(test_min_test_groups),
        cmocka_unit_test(test_edit_transfer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
