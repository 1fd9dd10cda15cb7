/* TopK SAE training on stored activations (Gao et al. 2024 recipe): encoder/decoder with
 * bias b_dec subtracted from the input, top-k ReLU activations, MSE loss (sum over dims,
 * mean over rows), AuxK loss on dead features, Adam, decoder rows renormalised to unit norm
 * after every step. The result is an rs_sae (arch topk, apply_b_dec_to_input) that
 * sae_save_sae_lens writes in the folder format sae-lens loads. */
#ifndef REPRSHIFT_SAE_TRAIN_H
#define REPRSHIFT_SAE_TRAIN_H

#include <stdint.h>
#include <stdio.h>
#include "reprshift/error.h"
#include "reprshift/sae.h"

typedef struct {
    int d_sae, k;
    int64_t steps;
    int batch;             /* rows per step */
    float lr, beta1, beta2, eps;
    int aux_k;             /* dead features used by AuxK (0: off); default 2·k */
    float aux_coef;        /* default 1/32 */
    int64_t dead_after;    /* a feature is dead after this many rows without activating */
    uint64_t seed;
    FILE *log;             /* progress every log_every steps (may be NULL) */
    int64_t log_every;
} sae_train_opts;

typedef struct {
    double final_mse;          /* mean ‖x − x̂‖² over the last 10% of steps */
    double final_fvu;          /* final_mse / total variance of x */
    int64_t dead_at_end;       /* features dead at the end */
    double final_l0;           /* jumprelu: mean active latents per row over the last 10% of steps */
} sae_train_report;

/* Defaults: k 32, d_sae 4·d_in (set by caller), steps 2000, batch 256, lr 1e-3 (Adam 0.9,
 * 0.999, 1e-8), aux_k 2k, aux_coef 1/32, dead_after 100000 rows, seed 1. */
void sae_train_opts_default(sae_train_opts *o);

/* Train on x [n, d_in] (rows sampled uniformly with replacement each step). */
int sae_train_topk(const float *x, int64_t n, int d_in, const sae_train_opts *o, rs_sae **out,
                   sae_train_report *rep, rs_err *err);

/* ---- JumpReLU SAE (Rajamanoharan et al. 2024, arXiv 2407.14435; Gemma Scope, arXiv
 * 2408.05147; docs/sae-training.md). On rows x scaled by one scalar s (mean ‖s·x‖² = 1):
 *   pre = x·W_enc + b_enc,  θ = exp(log_threshold),  f = pre·H(pre − θ),  x̂ = f·W_dec + b_dec
 *   loss = mean over rows of ‖x − x̂‖² + λ·Σ_i H(pre_i − θ_i)
 * Straight-through gradients (rectangle kernel K(u) = 1[|u| < 1/2], bandwidth ε):
 *   reconstruction: ∂f/∂pre = H(pre − θ), ∂f/∂θ := −(θ/ε)·K((pre − θ)/ε);
 *   L0 term:        ∂H/∂pre := 0,         ∂H/∂θ := −(1/ε)·K((pre − θ)/ε);
 *   ∂θ/∂log_threshold = θ. W_dec rows are kept at unit norm: the gradient component parallel
 * to each row is removed before the Adam step and rows are renormalised after it. */

typedef struct {
    int d_in, d_sae;
    size_t n_params;
    float *params; /* [W_enc (d_in·d_sae) | b_enc (d_sae) | W_dec (d_sae·d_in) | b_dec (d_in) | log_threshold (d_sae)] */
    float *W_enc, *b_enc, *W_dec, *b_dec, *log_threshold; /* views into params */
} sae_jr_model;

int sae_jr_new(sae_jr_model **out, int d_in, int d_sae, rs_err *err);
void sae_jr_free(sae_jr_model *m);
/* Loss terms and the full gradient (layout of params) on B rows x [B, d_in] (already scaled).
 * *mse = mean ‖x − x̂‖², *l0 = mean Σ H(pre − θ) (the loss is *mse + λ·*l0); grad (n_params)
 * is overwritten. active (may be NULL) gets per-latent counts of rows with pre > θ. */
int sae_jr_loss_grad(const sae_jr_model *m, const float *x, int B, float lambda, float bandwidth, float *grad,
                     double *mse, double *l0, int64_t *active, rs_err *err);
/* The step takes a sparse path (only active and in-kernel entries touch W_dec / W_enc rows)
 * when those entries are at most this fraction of B·d_sae (default 0.125; 0: always dense,
 * 1: always sparse). Both give the same gradients up to float summation order. */
void sae_jr_set_sparse_max(double f);
/* Remove from each W_dec row's gradient its component along that row. */
void sae_jr_project_grad(const sae_jr_model *m, float *grad);
/* Scale every W_dec row to unit norm (zero rows stay zero). */
void sae_jr_renorm(sae_jr_model *m);

typedef struct {
    int d_sae;
    int64_t steps;
    int batch;
    float lr, beta1, beta2, eps; /* Adam (torch.optim.Adam float32 update) */
    float lambda;                /* L0 coefficient λ (in the scaled units) */
    float bandwidth;             /* ε of the rectangle kernel */
    float init_threshold;        /* θ at initialisation (log_threshold = log θ0) */
    int64_t lambda_warmup;       /* λ ramps linearly from 0 over this many steps */
    uint64_t seed;
    FILE *log;
    int64_t log_every;
} sae_jr_opts;

/* Defaults: steps 2000, batch 256, lr 1e-3, Adam β1 0 (Gemma Scope), β2 0.999, eps 1e-8,
 * λ 0.01, ε 0.05, θ0 0.05 (sized for short runs; Gemma Scope's long runs use ε = θ0 = 0.001,
 * docs/sae-training.md), no warm-up, seed 1; d_sae set by the caller. */
void sae_jr_opts_default(sae_jr_opts *o);

/* Train on x [n, d_in] (rows drawn uniformly with replacement). The result is an rs_sae of
 * architecture jumprelu in the original units (the scalar folded into W_enc, W_dec, b_dec;
 * apply_b_dec_to_input 0, as Gemma Scope), which sae_save_sae_lens writes and sae_load reads.
 * model_out (may be NULL) receives the trained parameters in the scaled units, *scale_out
 * (may be NULL) the scalar s. */
int sae_train_jumprelu(const float *x, int64_t n, int d_in, const sae_jr_opts *o, rs_sae **out,
                       sae_train_report *rep, sae_jr_model **model_out, float *scale_out, rs_err *err);

#endif
