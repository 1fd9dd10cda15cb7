/* Representation shift between two models' activations on the same inputs (rows aligned:
 * row t of A and of B come from the same token, or the same input when pooled). Every
 * formula is written out in docs/metrics.md. Each summary statistic carries a bootstrap 95%
 * percentile interval whose resampling unit is the group (input sequence), because tokens
 * of one sequence are not independent. */
#ifndef REPRSHIFT_SHIFT_H
#define REPRSHIFT_SHIFT_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/sae.h"

/* A point estimate with its bootstrap interval (lo/hi NaN when not computed). */
typedef struct {
    double value, lo, hi;
} rs_stat;

typedef struct {
    int64_t n_rows;
    int d;
    const float *a, *b;         /* [n_rows, d] raw activations of models A and B */
    const sae_sparse *fa, *fb;  /* SAE features of a and b (same SAE), or both NULL */
    int64_t n_groups;
    const int64_t *offsets;     /* [n_groups+1]: rows of group g are offsets[g]..offsets[g+1]-1 */
} shift_input;

typedef struct {
    int n_boot;                 /* bootstrap replicates (0: no intervals); default 1000 */
    uint64_t seed;
    const int32_t *boot_counts; /* optional [n_boot × n_groups] multiplicities (overrides the RNG) */
    int64_t cka_max_rows;       /* above this many rows CKA gets no interval (O(n²) memory-free, time) */
} shift_opts;

/* Defaults: n_boot 1000, seed 0x5eed, cka_max_rows 20000. */
void shift_opts_default(shift_opts *o);

typedef struct {
    int64_t n_rows, n_groups;
    int has_feats;
    int64_t n_alive_a, n_alive_b, n_alive_either; /* features active on ≥1 row */
    rs_stat cos_raw, l2_raw, cka_linear;
    rs_stat cos_feat, l2_feat, jaccard_token, jaccard_feature, js_token_bits, js_mass_bits, pearson_mean_feat;
    /* per row [n_rows] (feature ones NULL without features) */
    float *row_cos_raw, *row_l2_raw, *row_cos_feat, *row_l2_feat, *row_jaccard, *row_js;
    /* per feature [d_sae] over all rows */
    int64_t *count_a, *count_b, *count_both;
    double *sum_a, *sum_b;
    int d_sae;
} shift_result;

/* Compute every shift metric (see docs/metrics.md). r is overwritten; free with shift_result_free. */
int shift_compare(const shift_input *in, const shift_opts *o, shift_result *r, rs_err *err);
void shift_result_free(shift_result *r);

/* Per-vector helpers, exposed for tests and rankings. */
double shift_cosine(const float *x, const float *y, int d);          /* both zero → 1, one zero → 0 */
double shift_js_bits(const double *p, const double *q, int64_t n);   /* p, q unnormalised, ≥ 0 */
double shift_pearson(const double *x, const double *y, int64_t n);
/* Linear CKA of two row sets (rows aligned), direct d×d formula; for tests and large n. */
double shift_cka_linear(const float *a, const float *b, int64_t n, int d);

/* Mean of each group's rows: x [rows, d] → out [n_groups, d]. */
void shift_pool_mean(const float *x, int d, const int64_t *offsets, int64_t n_groups, float *out);

#endif
