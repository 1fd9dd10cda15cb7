/* Crosscoder: one sparse dictionary trained on paired activations of two models at the same
 * tokens (side 0 = the LLM, Gemma-2; side 1 = the VLM, PaliGemma-2), after Anthropic's
 * crosscoder note (Lindsey et al. 2024). With x = [x_0 | x_1] (2·d_in values per token):
 *
 *   f(x)  = ReLU(Σ_s x_s·W_enc,s + b_enc)                    [n_latents]
 *   x̂_s   = f·W_dec,s + b_dec,s
 *   loss  = mean over the batch of Σ_s ‖x_s − x̂_s‖² + λ Σ_i f_i Σ_s ‖W_dec,s,i‖     (XC_L1)
 *
 * or, for XC_BATCHTOPK, no penalty and f keeps only the B·k largest scores
 * f_i·Σ_s‖W_dec,s,i‖ over the whole batch of B tokens (Bussmann et al. 2024 BatchTopK with
 * the decoder-norm weighting of Minder et al. 2025); at inference a token keeps f_i where
 * f_i·Σ_s‖W_dec,s,i‖ > threshold (learned during training, see xc_train).
 * Each latent's relative decoder norm r_i = ‖W_dec,1,i‖ / (‖W_dec,0,i‖ + ‖W_dec,1,i‖) sorts it
 * into LLM-only (r ≈ 0), shared (r ≈ 0.5) and VLM-only (r ≈ 1). Layout on disk and all
 * definitions: docs/crosscoder.md. */
#ifndef REPRSHIFT_CROSSCODER_H
#define REPRSHIFT_CROSSCODER_H

#include <stdint.h>
#include <stdio.h>
#include "reprshift/error.h"

typedef enum { XC_L1 = 0, XC_BATCHTOPK = 1 } xc_sparsity;

typedef struct {
    int d_in;            /* width of one side */
    int n_latents;
    xc_sparsity sparsity;
    float l1;            /* λ (XC_L1) */
    int k;               /* mean active latents per token (XC_BATCHTOPK) */
    float threshold;     /* XC_BATCHTOPK inference threshold on f_i·Σ_s‖W_dec,s,i‖ */
    float scale[2];      /* input scaling per side: the model sees x_s·scale[s] (xc_encode applies it) */
    /* parameters (one allocation, `params`, in this order; n_params floats) */
    float *W_enc;        /* [2·d_in, n_latents]: rows 0..d-1 side 0, d..2d-1 side 1 */
    float *b_enc;        /* [n_latents] */
    float *W_dec;        /* [n_latents, 2·d_in]: latent i = [W_dec,0,i | W_dec,1,i] */
    float *b_dec;        /* [2·d_in] */
    float *params;
    size_t n_params;
} rs_crosscoder;

/* New crosscoder with zero parameters, scale 1 (free with xc_free). */
int xc_new(rs_crosscoder **out, int d_in, int n_latents, xc_sparsity sp, rs_err *err);
void xc_free(rs_crosscoder *c);

/* Loss and gradient of the objective above on one batch X [B, 2·d_in] (already scaled),
 * mean over the batch. grad (n_params floats, the layout of params) may be NULL (loss only).
 * *mse = mean Σ_s‖x_s − x̂_s‖², *sparsity = mean λ Σ_i f_i Σ_s‖W_dec,s,i‖ (0 for BatchTopK);
 * active (may be NULL) gets [B, n_latents] 1 where f > 0. BatchTopK selects over the batch
 * (training form); the selection is held fixed in the gradient (straight through the mask),
 * as autograd does for torch.topk + scatter. */
int xc_loss_grad(const rs_crosscoder *c, const float *X, int B, float *grad, double *mse, double *sparsity,
                 uint8_t *active, rs_err *err);

/* Latent activations of rows of x0, x1 [n, d_in] (unscaled; scale applied here) in the
 * inference form (BatchTopK: the threshold); f [n, n_latents]. */
int xc_encode(const rs_crosscoder *c, const float *x0, const float *x1, int64_t n, float *f, rs_err *err);

/* Per-latent decoder norms: norm0[i] = ‖W_dec,0,i‖, norm1[i] = ‖W_dec,1,i‖ (either may be
 * NULL), rel[i] = norm1 / (norm0 + norm1) (NaN when both are 0). */
void xc_decoder_norms(const rs_crosscoder *c, double *norm0, double *norm1, double *rel);

/* The side-swap null's data: y0, y1 [n, d] = x0, x1 with row t's two sides exchanged where
 * rs_uniform_at(seed, t) < 0.5 (so that neither side is special: a crosscoder trained on it
 * gives the class fractions of exchangeable models). Returns the number of swapped rows. */
int64_t xc_swap_sides(const float *x0, const float *x1, int64_t n, int d, uint64_t seed, float *y0, float *y1);

/* Fit of rows x0, x1 [n, d_in] in the original units, per row (arrays of n, any may be NULL):
 * err_s[r] = ‖x_s − x̂_s/scale_s‖², l0[r] = active latents; fires[i] (n_latents, may be NULL)
 * = rows where latent i is active. */
int xc_eval_rows(const rs_crosscoder *c, const float *x0, const float *x1, int64_t n, double *err0, double *err1,
                 double *l0, int64_t *fires, rs_err *err);

typedef struct {
    int n_latents;
    xc_sparsity sparsity;
    float l1;                /* XC_L1 */
    int k;                   /* XC_BATCHTOPK */
    int64_t steps;
    int batch;
    float lr, beta1, beta2, eps;
    float dec_init_norm;     /* initial ‖W_dec,s,i‖ of every latent and side (default 0.1) */
    int normalize;           /* scale each side so its mean ‖x_s‖ = √d_in (default 1) */
    int64_t dead_after;      /* a latent is dead after this many training rows without firing */
    int64_t resample_every;  /* resample dead latents every this many steps (0: never) */
    int64_t resample_until;  /* ... up to this step (default steps / 2) */
    uint64_t seed;
    /* resumable training: the full state is saved to checkpoint every checkpoint_every steps
       (and at the end); a checkpoint there with the same tag is resumed (NULL: none) */
    const char *checkpoint;
    const char *checkpoint_tag;
    int64_t checkpoint_every;
    int64_t stop_after;      /* return after this many steps in this call (0: run to the end; tests) */
    FILE *log;
    int64_t log_every;
} xc_train_opts;

typedef struct {
    int64_t steps_done;      /* steps of the finished model (== steps unless stopped) */
    int64_t resumed_from;    /* step the checkpoint held (0: fresh) */
    int64_t resampled;       /* latents resampled in total */
    int64_t epochs;          /* passes over the rows started */
    double final_mse;        /* mean Σ_s‖x_s − x̂_s‖² (scaled units) over the last 10% of this call's steps */
    int64_t dead_at_end;     /* latents without activation in the last dead_after rows */
} xc_train_report;

/* l1 1e-3 ... see docs/crosscoder.md for every default. n_latents must be set. */
void xc_train_opts_default(xc_train_opts *o);

/* Train on paired rows x0[r], x1[r] (r < n; each [n, d_in]), rows visited in a seeded
 * shuffled order, a new permutation per epoch; deterministic for a seed and thread count.
 * *out is NULL when stopped early by stop_after (the checkpoint holds the state). */
int xc_train(const float *x0, const float *x1, int64_t n, int d_in, const xc_train_opts *o, rs_crosscoder **out,
             xc_train_report *rep, rs_err *err);

/* A training step takes the sparse path (decoder products and gradients over the active
 * entries only; the encoder product stays an sgemm) when at most this fraction of the batch's
 * f entries is active; default 0.125. Process-wide; tests set 0 (always dense) or 1 (always
 * sparse) to check both paths against the reference. */
void xc_set_sparse_max(double frac);

/* Safetensors layout (docs/crosscoder.md): W_enc [2, d_in, n_latents], b_enc [n_latents],
 * W_dec [n_latents, 2, d_in], b_dec [2, d_in], scale [2] (F32); metadata format
 * "reprshift-crosscoder-v1", sparsity "l1"|"batchtopk", l1, k, threshold, sides "llm,vlm". */
int xc_save(const rs_crosscoder *c, const char *path, const char *const *meta_kv, rs_err *err);
int xc_load(const char *path, rs_crosscoder **out, rs_err *err);

#endif
