/* Probe evaluation: splits (stratified, group-aware), C selection by stratified k-fold
 * CV, metrics with bootstrap CIs, label-permutation baseline and control-task
 * selectivity (Hewitt & Liang 2019), over several seeds. Labels are 0..K-1. */
#ifndef REPRSHIFT_PROBE_EVAL_H
#define REPRSHIFT_PROBE_EVAL_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/probe.h"
#include "reprshift/probe_mlp.h"

/* sklearn StratifiedKFold(k, shuffle=False) fold of every row (fold[i] in 0..k-1), the
 * same assignment row for row; errors if k < 2 or k exceeds every class's count. */
int rs_stratified_kfold(const int *y, int n, int K, int k, int *fold, rs_err *err);

/* Seeded train/test split. group (NULL → each row its own group) keeps all rows of a group
 * on one side; groups are stratified by their first row's label, each class's groups
 * shuffled and the first round(test_frac · n_groups_k) sent to test (at least one, and
 * at least one left for training). is_test[i] = 0/1. */
int rs_split_stratified_groups(const int *y, const int *group, int n, int K, double test_frac,
                               uint64_t seed, int *is_test, rs_err *err);

/* Group-aware k-fold for the inner CV (no group on both sides of any fold): groups (NULL →
 * each row its own group) are stratified by their first row's label; each class's groups,
 * in order of first appearance, are shuffled with `seed` and dealt to folds in rotation,
 * the rotation continuing from class to class (classes in index order). fold[i] in 0..k-1.
 * Errors if k < 2 or k exceeds the number of groups. */
int rs_group_kfold(const int *y, const int *group, int n, int K, int k, uint64_t seed, int *fold,
                   rs_err *err);

/* Dense group ids: gid[i] in 0..G-1 numbered by first appearance in row order (group NULL →
 * gid[i] = i). Returns G, or -1 on allocation failure. */
int rs_group_dense(const int *group, int n, int *gid);

/* Group-level label permutation (the null of the permutation test), with stream `seed`:
 * when every group's rows share one label, the groups' labels are permuted among the groups
 * (Fisher–Yates over groups in order of first appearance); otherwise (e.g. an image and its
 * edit in one group) whole label vectors are permuted among groups of equal size and then
 * shuffled within each group. Returns -1 on allocation failure. out must not alias y. */
int rs_permute_labels_grouped(const int *y, const int *group, int n, uint64_t seed, int *out);

/* Permutation-test p-value (1 + #{null_i ≥ observed}) / (1 + n_null). */
double rs_permutation_pvalue(double observed, const double *null_stat, int n_null);

typedef struct {
    double accuracy;
    double balanced_accuracy; /* mean per-class recall over classes present in y */
    double macro_f1;          /* mean F1 over classes present in y or pred (sklearn) */
} rs_metrics;

/* Metrics of pred against y; confusion (K×K, row = true, col = predicted) if non-NULL. */
void rs_metrics_compute(const int *y, const int *pred, int n, int K, rs_metrics *m, int *confusion);

typedef struct {
    int n_seeds;           /* ≥ 1 (default 5) */
    double test_frac;      /* default 0.2 */
    int cv_folds;          /* stratified folds for choosing C (default 5; 0/1 → use Cs[0]) */
    const double *Cs;      /* grid (default 10^-4 … 10^4, 9 values) */
    int n_Cs;
    int standardize;       /* StandardScaler fitted on the training rows (default 1) */
    int balanced;          /* class_weight="balanced" */
    int n_boot;            /* bootstrap replicates for CIs (default 1000) */
    int permutation;       /* run the permutation test (default 1) */
    int n_perm;            /* permutations per seed (default 100; labels permuted at group level) */
    int control;           /* also fit the control task (default 1; needs control_type) */
    const int *control_type; /* Hewitt & Liang types: rows with equal type get the same control
                              label. Types must recur between train and test for the control
                              to mean anything (NULL → no control task: reported as NaN) */
    int min_test_groups;   /* fewest test groups a split may leave (default 50); fewer → error */
    uint64_t seed;         /* base seed (default 0) */
    double tol;            /* solver tolerance (default 1e-4) */
    const rs_mlp_opts *mlp; /* non-NULL: evaluate this MLP probe instead of logistic regression
                               (no C search; the MLP seed is offset per split) */
    int keep_tests;        /* 1: return every seed's test rows and predictions in the result
                              (test_n / test_row / test_pred; default 0: NULL), e.g. for
                              rs_paired_probe_test */
    int threads;           /* threads for the permutation refits (independent fits, one per
                              permutation; default 0 = 1: serial). Used for logistic probes small
                              enough to be fitted on one thread (rs_logreg_fit_threads); results
                              are identical for any value */
    int penalty;           /* logistic regression: RS_PENALTY_L2 (default) or RS_PENALTY_L1 (every fit:
                              inner CV, final, permutation and control refits) */
} rs_eval_opts;

/* Defaults above. */
rs_eval_opts rs_eval_defaults(void);

typedef struct {
    rs_metrics mean;          /* over seeds */
    rs_metrics ci_lo, ci_hi;  /* 95% nested bootstrap (seeds, then test groups; rs_nested_group_bootstrap) */
    double acc_sd;            /* sd of accuracy over seeds */
    double perm_accuracy;     /* mean of the permutation null (seed-mean accuracy per permutation) */
    double perm_p;            /* permutation-test p-value of the seed-mean accuracy (NaN if not run) */
    int n_perm;               /* permutations run per seed */
    double perm_seconds;      /* wall time of all permutation fits */
    double control_accuracy;  /* mean over seeds, control task (NaN without control types) */
    double control_overlap;   /* mean share of test rows whose control type occurs in training */
    double selectivity;       /* accuracy − control_accuracy */
    int n_test_groups;        /* test groups per split (the same for every seed) */
    int n_groups;             /* groups in the data */
    double *C_chosen;         /* [n_seeds] */
    int *confusion;           /* [K×K] summed over seeds */
    int K, n_seeds;
    double chance;            /* majority-class test share, mean over seeds */
    /* only with rs_eval_opts.keep_tests (else NULL): seed s's test rows are entries
     * off_s .. off_s + test_n[s] − 1 (off_s = Σ_{t<s} test_n[t]) of test_row (row index into
     * X, ascending) and test_pred (the probe's prediction for that row) */
    int *test_n;              /* [n_seeds] */
    int *test_row, *test_pred;
} rs_eval_result;

/* Nested percentile bootstrap of the seed-mean metrics. The S seeds' test predictions are
 * concatenated: seed s has n_rows[s] rows (y, pred, gid with gid dense 0..G_s−1 within
 * the seed). Replicate b (0..B−1): for slot j = 0..S−1 a seed s_j = ⌊u(seed, b·S + j)·S⌋,
 * then G_{s_j} groups of that seed drawn with replacement, g_k = ⌊u(seed + 1 + b·S + j, k)·G⌋;
 * the slot's metrics are computed on the rows of the drawn groups (with multiplicity);
 * the replicate is the mean over slots. u = rs_uniform_at. lo/hi: numpy's default
 * (linear) 2.5 / 97.5 percentiles over replicates. rep_acc [B] (may be NULL): the
 * replicates' accuracy in replicate order. */
int rs_nested_group_bootstrap(const int *y, const int *pred, const int *gid, const int *n_rows, int S,
                              int K, int B, uint64_t seed, rs_metrics *lo, rs_metrics *hi,
                              double *rep_acc, rs_err *err);

/* Paired comparison of two probes A and B evaluated on IDENTICAL splits (the same seeds and
 * test rows, e.g. two rs_probe_evaluate runs with the same labels, groups and options).
 * The S seeds' test rows are concatenated: seed s has n_rows[s] rows; for row i,
 * correct_a[i] / correct_b[i] (0/1) say whether probe A / B predicted it right and group[i]
 * is its group (any int id; the same id in two seeds is the same group, e.g. the image).
 *   diff       = (1/S) Σ_s (acc_B,s − acc_A,s)          (seed_diff[s] = acc_B,s − acc_A,s)
 *   CI         nested bootstrap as rs_nested_group_bootstrap (seed, then seed s's test groups
 *              numbered by first appearance within the seed, drawn with replacement, stream
 *              boot_seed): the SAME drawn rows for A and B, replicate = mean over slots of
 *              acc_B − acc_A on the drawn rows; numpy's linear 2.5 / 97.5 percentiles.
 *   p          paired permutation (sign-flip) test: groups numbered 0..G−1 by first
 *              appearance over all rows; in flip q (0..n_perm−1) group g swaps A and B
 *              (negates its rows' differences, in every seed it is tested in) when
 *              rs_uniform_at(perm_seed, q·G + g) < 0.5; null_q = (1/S) Σ_s (1/n_s) Σ_i ±(b_i − a_i);
 *              p = (1 + #{|null_q| ≥ |diff| − 1e-12}) / (1 + n_perm), two-sided (the 1e-12
 *              makes ties that rounding would split count). n_perm = 0: p = NaN.
 * Every sum runs in row / seed / slot order, so a reimplementation in that order
 * (tools/reference/gen_paired_goldens.py) gives the same doubles. */
typedef struct {
    double diff, ci_lo, ci_hi; /* B − A, seed-mean accuracy difference, and its 95% CI */
    double acc_a, acc_b;       /* seed-mean accuracies */
    double p;                  /* two-sided paired permutation p (NaN when n_perm = 0) */
    int n_perm;
    int n_seeds;
    int n_test_groups;         /* test groups per split (seed 0; equal for stratified group splits) */
    int n_test_items;          /* test rows per split (seed 0) */
    int n_groups_tested;       /* distinct groups tested in any seed (the units that are flipped) */
    double *seed_diff;         /* [n_seeds], owned (rs_paired_result_free) */
} rs_paired_result;

int rs_paired_probe_test(const int *correct_a, const int *correct_b, const int *group, const int *n_rows, int S,
                         int n_boot, uint64_t boot_seed, int n_perm, uint64_t perm_seed, rs_paired_result *res,
                         rs_err *err);
void rs_paired_result_free(rs_paired_result *res);

/* Full protocol over n_seeds splits; result owns C_chosen/confusion (rs_eval_result_free). */
int rs_probe_evaluate(const float *X, const int *y, const int *group, int n, int d, int K,
                      const rs_eval_opts *o, rs_eval_result *res, rs_err *err);
/* Free the arrays in a result. */
void rs_eval_result_free(rs_eval_result *res);

/* Edit-transfer matrix for attribute probes (dose–response and cross-edit controls). XI
 * [n, d] are n original images, XE [V, n, d] their V edited variants; group [n] the image
 * groups. Probe v is "original vs variant v" (rows XI and XE_v, labels 0/1, groups shared by
 * an image and its edit). Per seed (the split rule of rs_probe_evaluate on those 2n rows,
 * the same split for every v and w): C by group-aware inner CV on probe v's training rows,
 * fit (logistic regression; o->mlp is not supported), and score on the test images of
 * every probe w: acc[v·V + w] is the seed-mean accuracy of the probe trained on edit v and
 * tested on original-vs-edit-w rows (the diagonal is the in-distribution accuracy), with
 * nested group-bootstrap CIs lo/hi (as rs_probe_evaluate; may be NULL). C_given
 * [V·n_seeds] (may be NULL; NaN entries too): the C of probe v at seed s, e.g.
 * rs_eval_result.C_chosen of the same attribute probe (its inner CV chooses the same C),
 * which skips that CV. Errors as rs_probe_evaluate (including the minimum test-set size). */
int rs_edit_transfer_evaluate(const float *XI, const float *XE, int V, int n, int d, const int *group,
                              const rs_eval_opts *o, const double *C_given, double *acc, double *lo, double *hi,
                              rs_err *err);

/* Choose C over Cs by stratified k-fold mean accuracy (first best, like sklearn's argmax);
 * standardisation is refitted inside each fold. mean_acc [n_Cs] may be NULL. */
int rs_logreg_cv(const float *X, const int *y, int n, int d, int K, const double *Cs, int n_Cs,
                 int folds, int standardize, const rs_logreg_opts *base, double *mean_acc,
                 double *best_C, rs_err *err);

/* The same over a given fold assignment (fold[i] in 0..folds−1, e.g. from rs_group_kfold
 * or sklearn's GroupKFold): the unweighted mean of the per-fold accuracies per C, first best. */
int rs_logreg_cv_folds(const float *X, const int *y, int n, int d, int K, const int *fold, int folds,
                       const double *Cs, int n_Cs, int standardize, const rs_logreg_opts *base,
                       double *mean_acc, double *best_C, rs_err *err);

/* Fit (optionally standardising) on train rows and predict test rows: a convenience used
 * by the evaluation and transfer code. */
int rs_logreg_fit_predict(const float *Xtr, const int *ytr, int ntr, const float *Xte, int nte,
                          int d, int K, int standardize, const rs_logreg_opts *o, int *pred,
                          rs_err *err);

#endif
