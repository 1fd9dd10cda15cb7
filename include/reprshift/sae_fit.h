/* How well an SAE fits a set of activations (rows = tokens). Definitions in docs/metrics.md;
 * explained_variance and mse follow sae-lens evals (ExplainedVarianceCalculator, per-token
 * squared error summed over dimensions then averaged over tokens). */
#ifndef REPRSHIFT_SAE_FIT_H
#define REPRSHIFT_SAE_FIT_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/sae.h"

typedef struct {
    int64_t n_rows;            /* rows that entered these metrics */
    double mse;                /* mean_t ‖x_t − x̂_t‖² */
    double relative_mse;       /* Σ_t ‖x_t − x̂_t‖² / Σ_t ‖x_t‖² */
    double explained_variance; /* 1 − mse / (E‖x‖² − ‖E x‖²) (sae-lens) */
    double cossim;             /* mean_t cos(x_t, x̂_t) */
    double l0;                 /* mean_t #{f: a_tf ≠ 0} */
    double l1;                 /* mean_t Σ_f |a_tf| */
    double frac_alive;         /* fraction of features active on ≥ 1 row */
    double frac_dead;          /* 1 − frac_alive */
    double mean_max_act;       /* mean over alive features of max_t a_tf */
} sae_fit_metrics;

/* Encode/decode x [n, d_in] in chunks and accumulate metrics separately for rows with
 * include[t] != 0 (→ *in) and the others, e.g. BOS (→ *out, may be NULL). include NULL =
 * all rows. alive_out (optional, [d_sae]) receives per-feature activation counts of the
 * included rows. */
int sae_fit_eval(const rs_sae *s, const float *x, int64_t n, const uint8_t *include,
                 sae_fit_metrics *in, sae_fit_metrics *out, int64_t *alive_out, rs_err *err);

#endif
