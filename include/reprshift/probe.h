/* Probes on feature matrices: standardisation, L2 logistic regression (sklearn's
 * convention), splits, metrics. Features are row-major f32 [n, d]; labels are class
 * indices 0..K-1 (the CLI maps label strings to indices).
 *
 * Objective (identical to scikit-learn's LogisticRegression, lbfgs, l2):
 *     f(W, b) = ½‖W‖² + C · Σ_i s_i · ℓ_i        (intercept b not penalised)
 * with s_i the sample weight (1, or n/(K·n_k) for class_weight="balanced") and
 *   K = 2: one vector w, ℓ_i = log(1 + e^{z_i}) − y_i z_i, z_i = w·x_i + b  (y_i ∈ {0,1})
 *   K > 2: W is K×d, ℓ_i = logsumexp_k(z_ik) − z_{i,y_i}                    (multinomial)
 * See docs/probes.md. */
#ifndef REPRSHIFT_PROBE_H
#define REPRSHIFT_PROBE_H

#include <stdint.h>
#include <stddef.h>
#include "reprshift/error.h"

/* ---- deterministic data shared with tools/reference (splitmix64 + Box-Muller) ---- */

/* splitmix64 output for counter idx of stream seed: mix(seed + (idx+1)·0x9E3779B97F4A7C15). */
uint64_t rs_splitmix64_at(uint64_t seed, uint64_t idx);
/* Uniform double in [0,1): top 53 bits of rs_splitmix64_at(seed, idx). */
double rs_uniform_at(uint64_t seed, uint64_t idx);
/* Standard normal: sqrt(-2 ln(1-u1)) cos(2π u2), u1 = uniform(seed, 2idx), u2 = uniform(seed, 2idx+1). */
double rs_normal_at(uint64_t seed, uint64_t idx);

/* Synthetic classification data (same definition in tools/reference/gen_probe_goldens.py):
 *   class probabilities p_k ∝ (k+1) if imbalanced else uniform; y_i from uniform(seed+2, i);
 *   centroid M_kj = sep · normal(seed+1, k·d+j);
 *   X_ij = (M_{y_i j} + normal(seed+3, i·d+j)) · exp(aniso · normal(seed+4, j)), rounded to f32.
 * X: [n, d] and y: [n], caller-allocated. */
void rs_synth_classification(uint64_t seed, int n, int d, int K, double sep, double aniso,
                             int imbalanced, float *X, int *y);

/* ---- standardisation (sklearn StandardScaler: population std, constant features → 1) ---- */
typedef struct {
    int d;
    double *mean;  /* [d] */
    double *scale; /* [d] */
} rs_scaler;

/* Fit mean/scale on X [n, d] (double accumulation); rejects NaN/Inf. Frees with rs_scaler_free. */
int rs_scaler_fit(rs_scaler *s, const float *X, int n, int d, rs_err *err);
/* out = (X − mean) / scale; out may alias X. */
void rs_scaler_apply(const rs_scaler *s, const float *X, int n, float *out);
/* Free the arrays (safe on a zeroed struct). */
void rs_scaler_free(rs_scaler *s);

/* ---- L-BFGS (generic, double) ---- */
/* Objective and gradient at x (g filled); returns f. Non-finite f makes the line search back off. */
typedef double (*rs_lbfgs_fg)(const double *x, double *g, void *ctx);
/* Stopping measure from x and g (e.g. max |∂f/∂θ| in the caller's coordinates). */
typedef double (*rs_lbfgs_gmeasure)(const double *x, const double *g, void *ctx);

typedef struct {
    int m;            /* history pairs (default 10) */
    int max_iter;     /* default 1000 */
    double gtol;      /* stop when gmeasure ≤ gtol */
    double ftol;      /* stop when (f_prev − f) ≤ ftol · max(|f_prev|, |f|, 1) */
    int max_ls;       /* line-search evaluations per iteration (default 50) */
} rs_lbfgs_opts;

typedef struct {
    double f;
    double gmeasure;
    int n_iter;
    int n_eval;
    int converged;    /* 1 gtol, 2 ftol, 0 max_iter or line-search failure */
} rs_lbfgs_result;

/* Minimise in place from x [n]. gmeasure NULL → max |g_i|. */
int rs_lbfgs(int n, double *x, rs_lbfgs_fg fg, rs_lbfgs_gmeasure gm, void *ctx,
             const rs_lbfgs_opts *opts, rs_lbfgs_result *res, rs_err *err);

/* ---- logistic regression ---- */
/* Penalty of rs_logreg_opts / rs_logreg: L2 (½‖W‖², the default) or L1 (‖W‖₁, lasso):
 *     L1: f(W, b) = ‖W‖₁ + C · Σ_i s_i ℓ_i   (intercept not penalised; sklearn's l1 with saga)
 * solved by accelerated proximal gradient (FISTA) in the same preconditioned coordinates;
 * see docs/probes.md. */
enum { RS_PENALTY_L2 = 0, RS_PENALTY_L1 = 1 };

typedef struct {
    double C;          /* inverse regularisation strength (sklearn C), default 1 */
    int balanced;      /* class_weight="balanced" */
    double tol;        /* gtol on sklearn's scaled objective (mean loss + ‖W‖²/(2C·Σs)), default 1e-4 */
    int max_iter;      /* default 1000 */
    int precondition;  /* 1 (default): solve in centred, Jacobi-scaled coordinates; same objective */
    int warm_intercept; /* 1 (default): start from b = log class priors instead of 0 */
    int precision;     /* 0 (default): f32 products when tol >= 1e-5 (as sklearn on f32 input), else
                          f64; 64: always f64; 32: same as 0. The reported objective is f64. */
    int threads;       /* 0 (default): OpenMP threads (omp_get_max_threads) on large problems, one on
                          small ones; k ≥ 1: at most k (still one on small problems). The thread
                          count fixes the order of the gradient's partial sums */
    int penalty;       /* RS_PENALTY_L2 (default) or RS_PENALTY_L1. With L1, tol bounds the
                          minimum-norm subgradient of the scaled objective (original coordinates)
                          and max_iter counts proximal-gradient iterations */
} rs_logreg_opts;

/* Defaults above. */
rs_logreg_opts rs_logreg_defaults(void);

/* Threads rs_logreg_fit would use for n rows, d features and K classes under o (NULL →
 * defaults): 1 on small problems, where a parallel region costs more than it saves. */
int rs_logreg_fit_threads(int n, int d, int K, const rs_logreg_opts *o);

typedef struct {
    int d;
    int n_classes;   /* K ≥ 2 */
    int n_rows;      /* 1 if K == 2 else K */
    double *W;       /* [n_rows, d] */
    double *b;       /* [n_rows] */
    double C;
    int balanced;
    double objective; /* ½‖W‖² (L1: ‖W‖₁) + C Σ s_i ℓ_i at the solution */
    int n_iter;
    int converged;
    int penalty;      /* RS_PENALTY_L2 or RS_PENALTY_L1 */
} rs_logreg;

/* Fit on X [n, d], y [n] in 0..K-1 (every class present). Frees with rs_logreg_free. */
int rs_logreg_fit(rs_logreg *m, const float *X, const int *y, int n, int d, int K,
                  const rs_logreg_opts *opts, rs_err *err);
/* Objective ½‖W‖² (L1: ‖W‖₁) + C Σ s_i ℓ_i of the model on (X, y) with its C, weighting, penalty. */
double rs_logreg_objective(const rs_logreg *m, const float *X, const int *y, int n);
/* Decision values [n, n_rows] (z = X Wᵀ + b). */
void rs_logreg_decision(const rs_logreg *m, const float *X, int n, double *Z);
/* Class probabilities [n, K]. */
void rs_logreg_proba(const rs_logreg *m, const float *X, int n, double *P);
/* Predicted class index per row (argmax; ties → lowest index, like numpy). */
void rs_logreg_predict(const rs_logreg *m, const float *X, int n, int *pred);
/* Free (safe on a zeroed struct). */
void rs_logreg_free(rs_logreg *m);

/* ---- validation helpers ---- */
/* Error unless all X entries are finite (names the first bad row/column). */
int rs_check_finite(const float *X, int n, int d, rs_err *err);
/* Error unless labels lie in 0..K-1 and at least two classes are present. */
int rs_check_labels(const int *y, int n, int K, rs_err *err);

#endif
