/* Statistics shared by the analysis commands: permutation streams, permutation p-values and
 * null bands, percentiles (numpy's linear rule), Benjamini–Hochberg q-values and the
 * debiased (unbiased-HSIC) linear CKA. Formulas in docs/metrics.md ("Nulls, floors and
 * multiple comparisons"). Pure functions: nothing here prints or allocates behind the
 * caller's back except where a function says it returns new memory. */
#ifndef REPRSHIFT_STATS_H
#define REPRSHIFT_STATS_H

#include <stdint.h>

/* splitmix64 step (the project's seeded generator; same stream as the bootstrap). */
uint64_t stats_splitmix(uint64_t *state);

/* Permutation number `rep` (0-based) of 0..n-1 for `seed`: a Fisher–Yates shuffle driven by
 * splitmix64 seeded with seed ^ (0x9E3779B97F4A7C15·(rep+1)); j = next % (i+1) for
 * i = n-1..1. Deterministic: the same (seed, rep, n) always gives the same permutation, and
 * permutation rep does not depend on how many others are drawn. */
void stats_permutation(uint64_t seed, int rep, int64_t n, int64_t *out);

/* numpy.percentile(v, 100q) (linear interpolation) over the finite entries of v; NaN if
 * none. Reorders v. */
double stats_percentile(double *v, int n, double q);

/* Direction of a permutation test: SIM for a similarity (large = more alike: p counts null
 * values ≥ observed), DIST for a distance (p counts null values ≤ observed). */
enum { STATS_SIM = 1, STATS_DIST = -1 };

/* The permutation null of one statistic. */
typedef struct {
    int n_perm;        /* permutations with a finite value (0: no test) */
    double p;          /* (1 + #{null at least as extreme as observed}) / (1 + n_perm); NaN if no test */
    double lo, hi;     /* 2.5th / 97.5th percentile of the null values (numpy linear) */
    double mean;       /* mean of the null values */
} stats_null;

/* Summarise null values (non-finite ones are skipped; the observed value must be finite for
 * a p-value). null is reordered. */
stats_null stats_null_summary(double observed, double *null, int n, int direction);

/* Benjamini–Hochberg adjusted p-values (q-values) over a family of n p-values, equal to
 * statsmodels multipletests(method='fdr_bh') / scipy.stats.false_discovery_control: with the
 * m finite p sorted ascending p_(1..m), q_(i) = min_{j ≥ i} min(1, m·p_(j)/j). Non-finite p
 * (no test) → NaN q and not counted in m. Returns 0, or -1 when out of memory. */
int stats_bh_qvalues(const double *p, int n, double *q);

/* Spearman's rank correlation of x and y [n] = scipy.stats.spearmanr: the Pearson
 * correlation of the ranks, ties given their average rank. Pairs where either value is not
 * finite are left out (*n_used, may be NULL, counts the rest). NaN when fewer than 3 pairs
 * remain or one side is constant; NaN also when out of memory. */
double stats_spearman(const double *x, const double *y, int n, int *n_used);
/* The same with the caller's workspace: work [4(n+1)] doubles, iwork [2(n+1)] ints; it never
 * allocates (for loops that must not fail part-way). */
double stats_spearman_ws(const double *x, const double *y, int n, int *n_used, double *work, int *iwork);

/* Debiased linear CKA: the unbiased HSIC estimator (Song et al. 2012) with linear kernels,
 *   HSIC_u(K,L) = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3)),
 * K̃ = K with zero diagonal, CKA_u = HSIC_u(K,L)/√(HSIC_u(K,K)·HSIC_u(L,L)), computed from
 * the d×d cross-products (no n×n matrix). Rows aligned, a and b [n, d]. Also returns the
 * biased linear CKA in *biased (may be NULL). NaN when n < 4 or a self term is ≤ 0. */
double stats_cka_debiased(const float *a, const float *b, int64_t n, int d, double *biased);

/* Column-centre x [n, d]: out = x − the column's mean (summed in double over the rows in
 * order, divided by n), into xf (rounded to float) when xf is not NULL, else into xd. For the
 * CKA variants (shift_cka_linear, shift.c's cka_build, stats_cka_debiased). */
void stats_center_cols(const float *x, int64_t n, int d, float *xf, double *xd);

#endif
