/* Matching two SAEs' dictionaries (docs/sae-training.md): decoder rows compared by cosine,
 * paired one-to-one by an optimal assignment (Hungarian / shortest augmenting path, exact,
 * O(n_a·n_b·min(n_a, n_b)) worst case) that maximises the sum of cosines. Reported: the per-pair
 * cosines, the fraction of pairs above a cosine threshold with a bootstrap CI over the pairs,
 * and two nulls matched the same way: B replaced by random unit directions (same shape), and
 * B with its d_in coordinates randomly permuted (same per-row value distribution, alignment
 * with A destroyed). Widths above max_width are refused (the cost matrix is dense). */
#ifndef REPRSHIFT_SAE_MATCH_H
#define REPRSHIFT_SAE_MATCH_H

#include <stdint.h>
#include "reprshift/error.h"

/* Minimum-cost assignment of the rows of cost [nr, nc] (row-major, nr <= nc, finite) to distinct
 * columns: col_of_row[nr]; *total (may be NULL) the summed cost (in double). */
int rs_linear_assignment(const float *cost, int nr, int nc, int *col_of_row, double *total, rs_err *err);

typedef struct {
    double threshold;  /* a pair is "matched" when its cosine exceeds this (default 0.7) */
    int n_boot;        /* bootstrap resamples of the pairs (default 1000; 0: no CI) */
    int n_null;        /* replicates of each null (default 3; 0: no null) */
    int max_width;     /* refuse larger dictionaries (default 4096) */
    uint64_t seed;     /* default 1 */
} sae_match_opts;

typedef struct {
    double frac_mean, frac_max; /* fraction above the threshold: mean and max over replicates */
    double cos_mean;            /* mean matched cosine, averaged over replicates */
} sae_match_null;

typedef struct {
    int n_a, n_b, d, n_pairs; /* n_pairs = min(n_a, n_b) */
    int *a_idx, *b_idx;       /* [n_pairs], ascending in a_idx when n_a <= n_b */
    float *cos;               /* [n_pairs] */
    double mean_cos, mean_cos_lo, mean_cos_hi;
    double frac, frac_lo, frac_hi; /* fraction of pairs with cos > threshold, percentile 95% CI */
    sae_match_null null_random, null_permuted;
    int beats_null;           /* frac_lo > both nulls' frac_max (only when n_null > 0) */
} sae_match_result;

void sae_match_opts_default(sae_match_opts *o);

/* W_a [n_a, d], W_b [n_b, d]: decoder rows (any norms; zero rows have cosine 0 with all). */
int sae_match_decoders(const float *W_a, int n_a, const float *W_b, int n_b, int d, const sae_match_opts *o,
                       sae_match_result *r, rs_err *err);
void sae_match_result_free(sae_match_result *r);

/* The result as a JSON object (cJSON *, the caller deletes; NULL on OOM): d_in, d_sae_a,
 * d_sae_b, n_pairs, assignment, cos_threshold, frac_matched {value, ci_lo, ci_hi, n},
 * mean_cos {value, ci_lo, ci_hi}, ci, bootstrap, null_random / null_permuted {replicates,
 * frac_matched_mean, frac_matched_max, mean_cos}, beats_null (null when a null or the CI is
 * off), seed. The pairs are not included. */
struct cJSON *sae_match_json(const sae_match_result *r, const sae_match_opts *o);

#endif
