/* Training-free cross-language representation similarity (docs/metrics.md, "Cross-language
 * similarity"). The same n items (captions) are read in two languages by one model: X [n, d]
 * (e.g. English) and Y [n, d] (the translation; row i of Y translates row i of X), pooled per
 * item at one hook. Each item has a group (its image; several captions may share one).
 *
 * Per item i, with cosines in double (after optional centring, see rs_crosslang_opts.center):
 *   m_i = cos(x_i, y_i)                                  matched cosine
 *   o_i = mean_{j : g_j != g_i} cos(x_i, y_j)            mean cosine to the other groups' translations
 *   s_i = m_i − o_i                                      the gap
 *   h_i = [max_{j : g_j = g_i} cos(x_i, y_j) > max_{j : g_j != g_i} cos(x_i, y_j)]   recall@1 x → y
 *   h'_i = the same with the roles of X and Y swapped (column i of the cosine matrix)  recall@1 y → x
 * The tie rule is strict: when the best cosine inside item i's own group equals the best one
 * outside it, the item is a miss (a retrieval that cannot decide is not counted as a success).
 * The reported values are means of these over the n items; their 95% intervals come from a
 * percentile bootstrap that resamples GROUPS (the per-item values, computed once on the full
 * data, are averaged over the items of the drawn groups; the cosine matrix is not recomputed).
 *
 * Cost: the n × n cosine matrix is kept in double (8·n² bytes: 200 MB at n = 5000, 800 MB at
 * n = 10000) plus 16·n·d bytes for the normalised rows while it is built; an allocation that
 * fails is an RS_ENOMEM error. The permutation null costs O(n · group size) per permutation.
 * Pure functions: they never print; errors are -1 with an rs_err message. */
#ifndef REPRSHIFT_CROSSLANG_H
#define REPRSHIFT_CROSSLANG_H

#include <stdint.h>
#include "reprshift/error.h"

typedef struct {
    int n_boot;            /* bootstrap replicates over groups (default 1000; 0: no intervals, lo = hi = NaN) */
    int n_perm;            /* pairing permutations for the null (default 1000; 0: no null, p and null NaN) */
    uint64_t seed;         /* default 0 */
    int center;            /* 1 (default): centre X and Y each by its own mean over the n items before the cosines */
    int threads;           /* threads over the permutations (results independent of it); default 1, < 1 means 1 */
} rs_crosslang_opts;

rs_crosslang_opts rs_crosslang_defaults(void);

typedef struct { double value, lo, hi; } rs_xl_ci;   /* point value and 95% percentile bootstrap CI over groups */

typedef struct {
    int n, n_groups;
    int n_boot, n_perm;     /* replicates and permutations used (copies of the options) */
    rs_xl_ci cos_matched;   /* mean_i m_i = mean_i cos(x_i, y_i) */
    rs_xl_ci cos_other;     /* mean_i o_i = mean_i of the mean over j in OTHER groups of cos(x_i, y_j) */
    rs_xl_ci gap;           /* mean_i s_i, s_i = m_i − o_i (= cos_matched − cos_other) */
    double gap_null_mean, gap_null_hi;  /* the gap under random re-pairing (mean, 95th percentile over n_perm draws) */
    double p;               /* one-sided permutation p = (1 + #{perm gap >= gap}) / (1 + n_perm) */
    rs_xl_ci r1[2];         /* group-level recall@1 (strict ties, above): x → y ([0]); y → x ([1]) */
    double chance;          /* expected recall@1 of a random pick: mean_i |group(i)| / n */
} rs_crosslang_result;

/* X, Y: [n, d] row-major float, finite; group [n] (any ints; NULL = every item its own group).
 * o NULL = rs_crosslang_defaults(). n >= 3, >= 2 groups and d >= 1, else -1 (RS_EDATA /
 * RS_EINVAL). Per-item gaps s_i are also written when s_item != NULL ([n]), so a caller can
 * compare two conditions paired (rs_crosslang_compare).
 *
 * Bootstrap: one splitmix64 stream started at seed (stats_splitmix); replicate b draws G
 * groups uniformly with replacement (group index = next % G, groups numbered 0..G−1 by first
 * appearance), and every statistic is the mean of its per-item values over the items of the
 * drawn groups (a group drawn c times counts c times). lo / hi = numpy's linear 2.5th / 97.5th
 * percentiles of the replicates (stats_percentile).
 * Permutation null: permutation q (0..n_perm−1) is stats_permutation(seed ^ RS_XL_PERM_SALT, q)
 * = π; Y's rows are re-paired, y'_j = y_π(j), while X, the groups and the centring means stay
 * as they are: s'_i = cos(x_i, y_π(i)) − mean_{j : g_j != g_i} cos(x_i, y_π(j)), null_q =
 * mean_i s'_i. Each permutation has its own stream, so the values do not depend on threads. */
#define RS_XL_PERM_SALT 0x63726F73736C616EULL /* "crosslan" */
int rs_crosslang_similarity(const float *X, const float *Y, int n, int d, const int *group,
                            const rs_crosslang_opts *o, rs_crosslang_result *r, double *s_item, rs_err *err);

/* Paired comparison of two conditions on the same items (e.g. VLM vs LLM): per-item s_a, s_b
 * (from rs_crosslang_similarity), d_i = s_a,i − s_b,i.
 *   diff->value = mean_i d_i, with a 95% percentile bootstrap CI over groups (the same
 *                 resampling and stream as rs_crosslang_similarity: seed, G draws per replicate);
 *   p           two-sided sign-flip permutation p over groups: with D_g = Σ_{i in g} d_i (items
 *               in order), flip q (0..n_perm−1) gives group g the sign −1 when
 *               rs_uniform_at(seed ^ RS_XL_FLIP_SALT, q·G + g) < 0.5 (else +1) and
 *               T_q = Σ_g sign_g D_g / n (groups in order); T_obs = Σ_g D_g / n;
 *               p = (1 + #{|T_q| >= |T_obs|}) / (1 + n_perm); NaN when n_perm = 0.
 * n >= 3, >= 2 groups, finite inputs, else -1. o NULL = defaults (threads unused). */
#define RS_XL_FLIP_SALT 0x7369676E666C6970ULL /* "signflip" */
int rs_crosslang_compare(const double *s_a, const double *s_b, int n, const int *group, const rs_crosslang_opts *o,
                         rs_xl_ci *diff, double *p, rs_err *err);

#endif
