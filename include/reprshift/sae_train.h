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
} sae_train_report;

/* Defaults: k 32, d_sae 4·d_in (set by caller), steps 2000, batch 256, lr 1e-3 (Adam 0.9,
 * 0.999, 1e-8), aux_k 2k, aux_coef 1/32, dead_after 100000 rows, seed 1. */
void sae_train_opts_default(sae_train_opts *o);

/* Train on x [n, d_in] (rows sampled uniformly with replacement each step). */
int sae_train_topk(const float *x, int64_t n, int d_in, const sae_train_opts *o, rs_sae **out,
                   sae_train_report *rep, rs_err *err);

#endif
