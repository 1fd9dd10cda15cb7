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
    int permutation;       /* also fit on permuted training labels (default 1) */
    int control;           /* also fit the control task (default 1) */
    const int *control_type; /* rows with equal type get the same control label (NULL → per row/group) */
    uint64_t seed;         /* base seed (default 0) */
    double tol;            /* solver tolerance (default 1e-4) */
    const rs_mlp_opts *mlp; /* non-NULL: evaluate this MLP probe instead of logistic regression
                               (no C search; the MLP seed is offset per split) */
} rs_eval_opts;

/* Defaults above. */
rs_eval_opts rs_eval_defaults(void);

typedef struct {
    rs_metrics mean;          /* over seeds */
    rs_metrics ci_lo, ci_hi;  /* 95% percentile bootstrap of the seed-mean (test rows resampled) */
    double acc_sd;            /* sd of accuracy over seeds */
    double perm_accuracy;     /* mean over seeds, permuted training labels */
    double control_accuracy;  /* mean over seeds, control task */
    double selectivity;       /* accuracy − control_accuracy */
    double *C_chosen;         /* [n_seeds] */
    int *confusion;           /* [K×K] summed over seeds */
    int K, n_seeds;
    double chance;            /* majority-class test share, mean over seeds */
} rs_eval_result;

/* Full protocol over n_seeds splits; result owns C_chosen/confusion (rs_eval_result_free). */
int rs_probe_evaluate(const float *X, const int *y, const int *group, int n, int d, int K,
                      const rs_eval_opts *o, rs_eval_result *res, rs_err *err);
/* Free the arrays in a result. */
void rs_eval_result_free(rs_eval_result *res);

/* Choose C over Cs by stratified k-fold mean accuracy (first best, like sklearn's argmax);
 * standardisation is refitted inside each fold. mean_acc [n_Cs] may be NULL. */
int rs_logreg_cv(const float *X, const int *y, int n, int d, int K, const double *Cs, int n_Cs,
                 int folds, int standardize, const rs_logreg_opts *base, double *mean_acc,
                 double *best_C, rs_err *err);

/* Fit (optionally standardising) on train rows and predict test rows: a convenience used
 * by the evaluation and transfer code. */
int rs_logreg_fit_predict(const float *Xtr, const int *ytr, int ntr, const float *Xte, int nte,
                          int d, int K, int standardize, const rs_logreg_opts *o, int *pred,
                          rs_err *err);

#endif
