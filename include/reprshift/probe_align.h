/* Contrastive text↔image alignment fitted on activations, and held-out retrieval.
 *
 * Learner (CLIP-style, linear): two projections W_t [d_t, e], W_i [d_i, e] and a learnable
 * logit scale s = exp(τ). Rows are standardised with the TRAINING rows' mean and population
 * standard deviation (a constant feature gets sd 1), projected and L2-normalised:
 *     z_t = x̃_t W_t / ‖x̃_t W_t‖,   z_i = x̃_i W_i / ‖x̃_i W_i‖,   L = s · Z_t Z_iᵀ  [B, B]
 * and the loss over a batch of B matched pairs (row b ↔ row b) is the symmetric InfoNCE
 *     loss = ½ [ (1/B) Σ_b CE(L[b, :], b) + (1/B) Σ_b CE(L[:, b], b) ].
 * Adam (torch.optim.Adam, rs_adam_update_f32) on minibatches; after each step τ is clamped to
 * [0, ln 100] (open_clip's clamp of the logit scale). Seeded and deterministic: W ~ N(0, 1/d)
 * from splitmix64, minibatches = consecutive slices of a per-epoch permutation
 * (stats_permutation(seed, epoch, n)); batch ≥ n uses every row in order at every step.
 *
 * Retrieval: with two row-aligned embeddings A [n, e] (queries from text) and B [n, e]
 * (images), cosine similarities S = Â B̂ᵀ; the rank of item i's true partner among the n
 * candidates counts the others scoring ≥ the true one (ties count against it); recall@k =
 * share of items whose rank < k; text→image ranks along rows, image→text along columns.
 * Chance is k/n. Procrustes and ridge (probe_transfer.h's rs_linmap, text → image space,
 * fitted on the raw training pairs) go through the same retrieval code: A = map(x_t) − μ_i,
 * B = x_i − μ_i (μ_i the training image mean). See docs/probes.md ("Contrastive alignment"). */
#ifndef REPRSHIFT_PROBE_ALIGN_H
#define REPRSHIFT_PROBE_ALIGN_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/shift.h" /* rs_stat */

typedef struct {
    int dim;                 /* e (default 64) */
    int steps;               /* Adam steps (default 500) */
    int batch;               /* pairs per step (default 128; ≥ n: all rows every step) */
    double lr;               /* Adam learning rate (default 1e-3; betas 0.9/0.999, eps 1e-8) */
    double temperature_init; /* initial 1/s (default 0.07, CLIP's) */
    int learn_temperature;   /* 1: τ is trained (default); 0: fixed at its initial value */
    uint64_t seed;           /* initialisation and minibatch order (default 0) */
} rs_infonce_opts;

rs_infonce_opts rs_infonce_defaults(void);

typedef struct {
    int dt, di, e;
    size_t n_params;           /* dt·e + di·e + 1 */
    float *params;             /* [W_t | W_i | τ], row-major W */
    float *Wt, *Wi, *log_scale; /* views into params */
    double *mu_t, *sd_t, *mu_i, *sd_i; /* training standardisation (set by rs_infonce_train) */
    double loss_first, loss_last;      /* batch loss at the first and the last step */
} rs_infonce;

/* Allocate and initialise (W ~ N(0, 1/d_in) seeded, τ = ln(1/temperature_init)). */
int rs_infonce_init(rs_infonce *m, int dt, int di, int e, double temperature_init, uint64_t seed, rs_err *err);
/* Loss and gradient (g [n_params], may be NULL) on B standardised pairs Xt [B, dt], Xi [B, di]. */
int rs_infonce_loss_grad(const rs_infonce *m, const float *Xt, const float *Xi, int B, float *g, double *loss,
                         rs_err *err);
/* Fit the standardisation on Xt [n, dt], Xi [n, di] and train from the current parameters
 * (o->steps Adam steps; o->dim and o->temperature_init are not used here). */
int rs_infonce_train(rs_infonce *m, const float *Xt, const float *Xi, int n, const rs_infonce_opts *o, rs_err *err);
/* rs_infonce_init + rs_infonce_train. */
int rs_infonce_fit(rs_infonce *m, const float *Xt, int dt, const float *Xi, int di, int n, const rs_infonce_opts *o,
                   rs_err *err);
/* Z [n, e] = unit-norm embeddings of raw rows X of one side (0: text, 1: image). */
int rs_infonce_embed(const rs_infonce *m, int side, const float *X, int n, float *Z, rs_err *err);
void rs_infonce_free(rs_infonce *m);

/* Ranks of the true partner (0 = first) with cosine similarity of A [n, e] and B [n, e]:
 * rank_ab[i] among B's rows for query A_i (text→image), rank_ba[j] among A's rows for B_j. */
int rs_retrieval_ranks(const float *A, const float *B, int n, int e, int *rank_ab, int *rank_ba, rs_err *err);
/* recall@k = mean(rank < k) with a 95% percentile bootstrap over the n items (n_boot
 * resamples with replacement, splitmix64 from seed, index = next % n; CI NaN if n_boot = 0). */
rs_stat rs_recall_at_k(const int *rank, int n, int k, int n_boot, uint64_t seed);

#define RS_ALIGN_NK 3      /* k = 1, 5, 10 */
#define RS_ALIGN_METHODS 3 /* infonce, procrustes, ridge */
extern const int rs_align_ks[RS_ALIGN_NK];
extern const char *const rs_align_method_names[RS_ALIGN_METHODS];

typedef struct {
    rs_infonce_opts infonce;
    double ridge_alpha;   /* λ = ridge_alpha · Σ‖x_t − μ_t‖² / d_t over the training rows (default 0.1) */
    int procrustes_scale; /* default 1 (no effect on cosine retrieval) */
    int n_boot;           /* default 1000 */
    uint64_t seed;        /* bootstrap and shuffled-pair seed (default 0) */
    int null_draws;       /* R: shuffled-pair refits per split and method (default 1; cost S·(1 + R) fits) */
} rs_align_opts;

rs_align_opts rs_align_defaults(void);

#define RS_ALIGN_MAX_SPLITS 64

/* With S splits every value below is the mean over the splits ("split mean"); with S = 1 it is
 * the one split's value. */
typedef struct {
    int available;                        /* procrustes needs d_t = d_i */
    rs_stat recall[2][RS_ALIGN_NK];       /* [0 text→image, 1 image→text][k]: split mean; CI: S = 1 the
                                             bootstrap over the test pairs (rs_recall_at_k), S > 1 the nested
                                             bootstrap (splits, then test pairs; rs_nested_group_bootstrap) */
    rs_stat null_recall[2][RS_ALIGN_NK];  /* null draw 0 (the learner fitted on shuffled training pairs), the same way */
    double median_rank[2], null_median_rank[2]; /* median rank + 1 (1 = first), split mean; null: draw 0 */
    double split_recall[RS_ALIGN_MAX_SPLITS][2][RS_ALIGN_NK]; /* per split (first n_splits entries) */
    double null_mean[2][RS_ALIGN_NK];     /* mean over the R null draws of the split-mean recall */
    double null_p95[2][RS_ALIGN_NK];      /* their 95th percentile (numpy linear) */
    double p[2];                          /* (1 + #{null split-mean recall@1 ≥ observed}) / (1 + R) */
    double q[2];                          /* BH q of p over a family (rs_align_bh; NaN until then) */
} rs_align_method;

typedef struct {
    int n_train, n_test;                  /* split 0 */
    int n_splits, n_null;                 /* S, R */
    int n_test_split[RS_ALIGN_MAX_SPLITS], n_train_split[RS_ALIGN_MAX_SPLITS];
    double chance[RS_ALIGN_NK];           /* min(k, n_test) / n_test (split mean) */
    rs_align_method m[RS_ALIGN_METHODS];
    double loss_first, loss_last;         /* InfoNCE batch loss, first and last step (real pairs; split mean) */
    double null_loss_last;                /* last-step loss on the shuffled pairs (draw 0; split mean) */
    double temperature;                   /* learned 1/s (split mean) */
} rs_align_result;

/* One split, o->null_draws null draws (rs_align_evaluate_splits with S = 1).
 * Fit every method on the pairs with is_test = 0 (and on the same rows with the image side
 * permuted by stats_permutation(seed ^ 0xA11647, 0, n_train): the shuffled-pair null),
 * retrieve among the is_test = 1 pairs. Bootstrap resamples are the same for every method. */
int rs_align_evaluate(const float *Xt, int dt, const float *Xi, int di, int n, const int *is_test, const rs_align_opts *o,
                      rs_align_result *r, rs_err *err);

/* The same over S splits (is_test [S × n], split k's mask at is_test + k·n; 1 ≤ S ≤
 * RS_ALIGN_MAX_SPLITS) with o->null_draws = R shuffled-pair refits per split and method:
 * null draw r of split k permutes split k's training images by
 * stats_permutation((seed ^ 0xA11647) + 0xD1B54A32D192ED03·k, r, n_train_k) (split 0, draw 0 =
 * rs_align_evaluate's one draw). The null statistic is the split-mean recall (each draw
 * shuffles every split); p (recall@1) = (1 + #{null ≥ observed}) / (1 + R). Nested bootstrap
 * (S > 1): rs_nested_group_bootstrap with every test pair its own group, seed seed ^ 0xB0075.
 * S = 1, R = 1 gives rs_align_evaluate's numbers exactly. Cost: S · (1 + R) fits per method. */
int rs_align_evaluate_splits(const float *Xt, int dt, const float *Xi, int di, int n, const int *is_test, int S,
                             const rs_align_opts *o, rs_align_result *r, rs_err *err);

/* Benjamini–Hochberg q (stats_bh_qvalues) over the p of every available method and direction
 * of *r[0..n_r−1] (one family, e.g. every hook of alignment.json); sets m[].q. 0, or -1 (memory). */
int rs_align_bh(rs_align_result *const *r, int n_r, rs_err *err);

#endif
