/* MLP probe: one hidden ReLU layer, trained like scikit-learn's MLPClassifier(solver="adam")
 * (see docs/probes.md for the formulas):
 *   h = relu(x W1 + b1),  z = h W2 + b2,  p = softmax(z)  (K > 2) | sigmoid(z) (K = 2, one output)
 *   batch loss  L = mean_i ℓ_i + α/(2B) (‖W1‖² + ‖W2‖²),  ℓ = cross-entropy
 * Glorot-uniform init (bound √(6/(fan_in+fan_out)), weights and biases), minibatches of
 * min(200, n) rows reshuffled every epoch, Adam (β1 0.9, β2 0.999, ε 1e-8, bias-corrected
 * step), early stopping on a stratified validation split (accuracy must beat the best by
 * tol within n_iter_no_change + 1 epochs; the best weights are kept). Features are f32
 * [n, d]; labels 0..K-1. Random numbers come from the counter-based generator in probe.h,
 * so results are reproducible per seed (not bit-identical to sklearn's). */
#ifndef REPRSHIFT_PROBE_MLP_H
#define REPRSHIFT_PROBE_MLP_H

#include <stdint.h>
#include "reprshift/error.h"

typedef struct {
    int hidden;            /* hidden units (default 100) */
    double alpha;          /* L2 strength (default 1e-4) */
    double lr;             /* Adam learning rate (default 1e-3) */
    int batch_size;        /* 0 → min(200, n_train) */
    int max_epochs;        /* default 200 */
    int early_stopping;    /* default 1 */
    double val_frac;       /* validation share of the training rows (default 0.1) */
    int n_iter_no_change;  /* default 10 */
    double tol;            /* default 1e-4 */
    uint64_t seed;         /* default 0 */
} rs_mlp_opts;

/* Defaults above (sklearn's MLPClassifier defaults, with early stopping on). */
rs_mlp_opts rs_mlp_defaults(void);

typedef struct {
    int d, hidden, n_classes, n_out; /* n_out = 1 if K == 2 else K */
    float *W1, *b1;        /* [d, hidden], [hidden] */
    float *W2, *b2;        /* [hidden, n_out], [n_out] */
    int n_epochs;
    double best_val_accuracy; /* NAN without early stopping */
    double train_loss;     /* mean training loss of the last epoch */
} rs_mlp;

/* Train on X [n, d], y [n] (every class 0..K-1 present). Free with rs_mlp_free. */
int rs_mlp_fit(rs_mlp *m, const float *X, const int *y, int n, int d, int K,
               const rs_mlp_opts *o, rs_err *err);
/* Class probabilities P [n, K]; returns -1 only when out of memory. */
int rs_mlp_proba(const rs_mlp *m, const float *X, int n, double *P, rs_err *err);
/* Argmax class per row (ties → lowest index). */
int rs_mlp_predict(const rs_mlp *m, const float *X, int n, int *pred, rs_err *err);
/* Free (safe on a zeroed struct). */
void rs_mlp_free(rs_mlp *m);
/* Fit on train rows (standardising with a scaler fitted on them if asked) and predict the
 * test rows: the MLP counterpart of rs_logreg_fit_predict. */
int rs_mlp_fit_predict(const float *Xtr, const int *ytr, int ntr, const float *Xte, int nte, int d,
                       int K, int standardize, const rs_mlp_opts *o, int *pred, rs_err *err);

#endif
