/* Representation shift between two models' activations on the same inputs (rows aligned:
 * row t of A and of B come from the same token, or the same input when pooled). Every
 * formula is written out in docs/metrics.md. Each summary statistic carries a bootstrap 95%
 * percentile interval whose resampling unit is the group (input sequence), because tokens
 * of one sequence are not independent, and (n_perm > 0) a permutation null: the rows'
 * pairing shuffled, giving a p-value and the null's 95% band (stats.h). */
#ifndef REPRSHIFT_SHIFT_H
#define REPRSHIFT_SHIFT_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/sae.h"
#include "reprshift/stats.h"

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
    int n_perm;                 /* permutations of the row pairing for the nulls (0: no test); default 200 */
    const int64_t *perm_idx;    /* optional [n_perm × n_rows] permutations (overrides the RNG: stats_permutation(seed, rep, n)) */
    int64_t perm_cka_max_rows;  /* above this many rows CKA gets no permutation null (two n×n float Gram matrices) */
    int threads;                /* threads over permutations (0: OpenMP's default team size); results are
                                   identical for any value */
} shift_opts;

/* Defaults: n_boot 1000, seed 0x5eed, cka_max_rows 20000, n_perm 200, perm_cka_max_rows 5000. */
void shift_opts_default(shift_opts *o);

/* Every summary metric, in a fixed order (index into shift_result.null and shift_metric_*). */
enum {
    SHIFT_COS_RAW, SHIFT_L2_RAW, SHIFT_COS_FEAT, SHIFT_L2_FEAT, SHIFT_JACCARD_TOKEN, SHIFT_JS_TOKEN,
    SHIFT_JACCARD_FEATURE, SHIFT_JS_MASS, SHIFT_PEARSON_MEAN_FEAT, SHIFT_CKA_LINEAR, SHIFT_COS_CENTRED,
    SHIFT_CKA_DEBIASED, SHIFT_N_METRICS
};

typedef struct {
    int64_t n_rows, n_groups;
    int has_feats;
    int64_t n_alive_a, n_alive_b, n_alive_either; /* features active on ≥1 row */
    rs_stat cos_raw, l2_raw, cka_linear;
    rs_stat cos_feat, l2_feat, jaccard_token, jaccard_feature, js_token_bits, js_mass_bits, pearson_mean_feat;
    rs_stat cos_centred, cka_debiased;
    /* permutation null of each metric (n_perm 0 and p NaN where not tested: no permutations
     * requested, a pairing-invariant metric, no features, CKA above perm_cka_max_rows) */
    stats_null null[SHIFT_N_METRICS];
    /* per row [n_rows] (feature ones NULL without features) */
    float *row_cos_raw, *row_l2_raw, *row_cos_feat, *row_l2_feat, *row_jaccard, *row_js;
    /* per feature [d_sae] over all rows */
    int64_t *count_a, *count_b, *count_both;
    double *sum_a, *sum_b;
    int d_sae;
} shift_result;

/* results.json key of metric k ("cos_raw", ...), its test direction (STATS_SIM / STATS_DIST),
 * whether it needs SAE features, whether a permutation of the pairing can change it
 * (js_mass_bits and pearson_mean_feat compare per-model totals: pairing-invariant). */
const char *shift_metric_name(int k);
int shift_metric_direction(int k);
int shift_metric_is_feature(int k);
int shift_metric_permutable(int k);
const rs_stat *shift_metric_stat(const shift_result *r, int k);

/* Compute every shift metric (see docs/metrics.md). r is overwritten; free with shift_result_free. */
int shift_compare(const shift_input *in, const shift_opts *o, shift_result *r, rs_err *err);
void shift_result_free(shift_result *r);

/* Per-vector helpers, exposed for tests and rankings. */
double shift_cosine(const float *x, const float *y, int d);          /* both zero → 1, one zero → 0 */
double shift_js_bits(const double *p, const double *q, int64_t n);   /* p, q unnormalised, ≥ 0 */
double shift_pearson(const double *x, const double *y, int64_t n);
/* Linear CKA of two row sets (rows aligned), direct d×d formula; for tests and large n.
 * The debiased one is stats_cka_debiased (stats.h). */
double shift_cka_linear(const float *a, const float *b, int64_t n, int d);
/* Mean over rows of cos(a_t − ā, b_t − b̄), ā and b̄ the column means of a and b. */
double shift_cos_centred(const float *a, const float *b, int64_t n, int d);

/* ---- floors (src/analysis/shift_floor.c): the same statistics where no A→B shift exists ----
 * Both fill a shift_result (free with shift_result_free) computed by shift_compare with
 * o's bootstrap settings and no permutations. */

/* Within-model split-half noise floor: for every group g with at least 2 rows, h1_g = mean
 * of its rows at even positions (0, 2, …) and h2_g = mean at odd positions; r = every raw
 * metric between h1 and h2 (rows = kept groups, each its own bootstrap group). *n_used =
 * kept groups (fewer than 2 → error; shift_split_half_groups tells beforehand). */
int64_t shift_split_half_groups(const int64_t *offsets, int64_t n_groups);
int shift_split_half(const float *x, int d, const int64_t *offsets, int64_t n_groups, const shift_opts *o,
                     shift_result *r, int64_t *n_used, rs_err *err);

/* Replicate noise floor (e.g. caption-to-caption: two captions of the same image in the same
 * model): x [rows, d] one model's rows (e.g. per-input means), pairs (pi[k], pj[k]) of
 * replicate rows; r = every raw metric between x[pi] and x[pj]. Bootstrap unit:
 * group_off NULL → each pair its own group; else the pairs of group g (e.g. one image that
 * gives several pairs) are group_off[g]..group_off[g+1]−1 (n_groups groups, each with at
 * least one pair, from 0 to n_pairs) and are resampled together. At least 2 pairs. */
int shift_pair_floor(const float *x, int d, const int64_t *pi, const int64_t *pj, int64_t n_pairs,
                     const int64_t *group_off, int64_t n_groups, const shift_opts *o, shift_result *r, rs_err *err);

/* SAE-misfit floor of one model: x [n, d] token rows; x̂ = decode(encode(x)); every metric
 * between (x, f(x)) and (x̂, f(x̂)), i.e. what the feature metrics read when the only
 * difference is the SAE's own reconstruction path. pool_off NULL: units = rows; else unit u
 * = mean of rows pool_off[u]..pool_off[u+1]−1 (activations and, per token, features).
 * Bootstrap groups goff [n_groups+1] over units. */
int shift_sae_misfit(const rs_sae *sae, const float *x, int64_t n, int d, const int64_t *pool_off, int64_t n_units,
                     const int64_t *goff, int64_t n_groups, const shift_opts *o, shift_result *r, rs_err *err);

/* ---- token-type ranking (src/analysis/shift_rank.c) ----
 * Units (rows) carry a key (token id) and a per-row value (e.g. cos_raw). For every key with
 * at least min_count rows: count, mean, a group-bootstrap 95% interval of the mean (groups =
 * inputs; replicate r draws n_groups groups with replacement, or uses boot_counts
 * [n_boot × n_groups] when given; the key's mean over its rows in the replicate, NaN when it
 * has none there; percentiles over the finite ones), and the frequency-matched excess: keys
 * sorted by count (ties by key) are cut into B = min(n_bins, max(1, k/5)) bins of equal size
 * (k ranked keys; at least 5 per bin; the first (k mod B) bins one larger), excess = mean − the unweighted mean of the means in its
 * bin — how much more (or less) the key shifts than keys of the same frequency. */
typedef struct {
    int32_t key;
    int64_t count;
    double mean, lo, hi, excess;
    int bin;
} shift_rank_entry;

/* Entries sorted by key into *out (malloc'd, caller frees); *n_out their number. */
int shift_rank_keys(const int32_t *key, const float *val, int64_t n, const int64_t *offsets, int64_t n_groups,
                    int min_count, int n_bins, int n_boot, uint64_t seed, const int32_t *boot_counts,
                    shift_rank_entry **out, int64_t *n_out, rs_err *err);

/* Group-bootstrap 95% intervals of Δfreq_j = (#{t: f^B_tj ≠ 0} − #{t: f^A_tj ≠ 0})/n and
 * Δmean_j = (Σ_t f^B_tj − Σ_t f^A_tj)/n for the nf features feats[] (rows grouped by
 * offsets; replicate as in shift_rank_keys: boot_counts or the splitmix stream of seed).
 * out [nf × 4] = Δfreq lo, hi, Δmean lo, hi (NaN when n_boot = 0). */
int shift_feature_ci(const sae_sparse *fa, const sae_sparse *fb, const int64_t *offsets, int64_t n_groups,
                     const int *feats, int nf, int n_boot, uint64_t seed, const int32_t *boot_counts, double *out,
                     rs_err *err);

/* Mean of each group's rows: x [rows, d] → out [n_groups, d]. */
void shift_pool_mean(const float *x, int d, const int64_t *offsets, int64_t n_groups, float *out);

#endif
