/* Cross-language representation similarity (reprshift/crosslang.h, docs/metrics.md
 * "Cross-language similarity"). Layout of the work:
 *   1. groups numbered 0..G−1 by first appearance, members of each group listed in item order;
 *   2. X and Y centred (optional) and row-normalised in double, C = X̂ Ŷᵀ [n × n] by dgemm;
 *   3. per-item values m, o, s, h, h' from C (o through the row sums: the sum over the other
 *      groups = row sum − the sum over the item's own group, which is also how a permutation
 *      is evaluated, so the observed gap is the identity permutation of the null's formula);
 *   4. group bootstrap of the per-item values from per-group sums (O(G) per replicate);
 *   5. permutation null, O(n · group size) per permutation, one stream per permutation. */
#include "reprshift/crosslang.h"
#include "reprshift/probe.h"
#include "reprshift/stats.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

rs_crosslang_opts rs_crosslang_defaults(void) {
    return (rs_crosslang_opts){.n_boot = 1000, .n_perm = 1000, .seed = 0, .center = 1, .threads = 1};
}

/* ---- groups ---- */

typedef struct {
    int G;       /* number of groups */
    int *gid;    /* [n] compact group of each item (0..G−1, by first appearance) */
    int *start;  /* [G+1] CSR offsets into memb */
    int *memb;   /* [n] items of each group, in item order */
} xl_groups;

static void groups_free(xl_groups *g) {
    free(g->gid);
    free(g->start);
    free(g->memb);
    memset(g, 0, sizeof *g);
}

typedef struct {
    int v, i;
} vi_pair;

static int cmp_vi(const void *a, const void *b) {
    const vi_pair *x = a, *y = b;
    if (x->v != y->v) return (x->v > y->v) - (x->v < y->v);
    return (x->i > y->i) - (x->i < y->i);
}

/* Number the groups by first appearance; NULL group = one group per item. -1 on OOM. */
static int groups_build(const int *group, int n, xl_groups *g) {
    memset(g, 0, sizeof *g);
    g->gid = malloc((size_t)n * sizeof *g->gid);
    g->start = malloc(((size_t)n + 1) * sizeof *g->start);
    g->memb = malloc((size_t)n * sizeof *g->memb);
    vi_pair *s = malloc((size_t)n * sizeof *s);
    int *first = malloc((size_t)n * sizeof *first), *rank = malloc((size_t)n * sizeof *rank);
    if (!g->gid || !g->start || !g->memb || !s || !first || !rank) {
        free(s), free(first), free(rank);
        groups_free(g);
        return -1;
    }
    /* provisional ids by sorted value: run k has its smallest item index in first[k] */
    for (int i = 0; i < n; i++) s[i] = (vi_pair){group ? group[i] : i, i};
    qsort(s, (size_t)n, sizeof *s, cmp_vi);
    int K = 0;
    for (int t = 0; t < n; t++) {
        if (t == 0 || s[t].v != s[t - 1].v) first[K++] = s[t].i; /* sorted by (v, i): the run's first is its smallest i */
        g->gid[s[t].i] = K - 1;
    }
    /* renumber the runs in order of first appearance */
    vi_pair *r = s; /* reuse: (first index, run) */
    for (int k = 0; k < K; k++) r[k] = (vi_pair){first[k], k};
    qsort(r, (size_t)K, sizeof *r, cmp_vi);
    for (int k = 0; k < K; k++) rank[r[k].i] = k;
    for (int i = 0; i < n; i++) g->gid[i] = rank[g->gid[i]];
    g->G = K;
    /* CSR members in item order */
    memset(g->start, 0, ((size_t)K + 1) * sizeof *g->start);
    for (int i = 0; i < n; i++) g->start[g->gid[i] + 1]++;
    for (int k = 0; k < K; k++) g->start[k + 1] += g->start[k];
    for (int k = 0; k < K; k++) first[k] = g->start[k];
    for (int i = 0; i < n; i++) g->memb[first[g->gid[i]]++] = i;
    free(s);
    free(first);
    free(rank);
    return 0;
}

/* ---- bootstrap over groups ---- */

/* Per-group sums sums[k·G + g] of nv per-item value vectors v[k·n + i] (items in order);
 * cnt[g] = group size. Point values point[k] = Σ_i v / n. Replicates as documented in the
 * header, then lo / hi. NaN intervals when n_boot = 0. -1 on OOM. */
static int group_bootstrap(const double *v, int nv, int n, const xl_groups *g, int n_boot, uint64_t seed,
                           rs_xl_ci *out) {
    int G = g->G, B = n_boot;
    double *sums = calloc((size_t)nv * G, sizeof *sums), *w = malloc((size_t)G * sizeof *w);
    double *cnt = calloc((size_t)G, sizeof *cnt);
    double *rep = malloc((size_t)(B > 0 ? B : 1) * nv * sizeof *rep), *col = malloc((size_t)(B > 0 ? B : 1) * sizeof *col);
    int rc = -1;
    if (!sums || !w || !cnt || !rep || !col) goto done;
    for (int k = 0; k < nv; k++) {
        double t = 0;
        for (int i = 0; i < n; i++) {
            t += v[(size_t)k * n + i];
            sums[(size_t)k * G + g->gid[i]] += v[(size_t)k * n + i];
        }
        out[k] = (rs_xl_ci){t / n, NAN, NAN};
    }
    for (int i = 0; i < n; i++) cnt[g->gid[i]] += 1;
    uint64_t rng = seed;
    for (int b = 0; b < B; b++) {
        memset(w, 0, (size_t)G * sizeof *w);
        for (int q = 0; q < G; q++) w[stats_splitmix(&rng) % (uint64_t)G] += 1;
        double wc = 0;
        for (int q = 0; q < G; q++) wc += w[q] * cnt[q];
        for (int k = 0; k < nv; k++) {
            double t = 0;
            for (int q = 0; q < G; q++) t += w[q] * sums[(size_t)k * G + q];
            rep[(size_t)k * B + b] = t / wc;
        }
    }
    for (int k = 0; k < nv && B > 0; k++) {
        memcpy(col, rep + (size_t)k * B, (size_t)B * sizeof *col);
        out[k].lo = stats_percentile(col, B, 0.025);
        memcpy(col, rep + (size_t)k * B, (size_t)B * sizeof *col);
        out[k].hi = stats_percentile(col, B, 0.975);
    }
    rc = 0;
done:
    free(sums);
    free(w);
    free(cnt);
    free(rep);
    free(col);
    return rc;
}

static int check_opts(const rs_crosslang_opts *o, rs_err *err) {
    if (o->n_boot < 0) return rs_errk(err, RS_EINVAL, "crosslang: n_boot = %d; must be >= 0", o->n_boot);
    if (o->n_perm < 0) return rs_errk(err, RS_EINVAL, "crosslang: n_perm = %d; must be >= 0", o->n_perm);
    return 0;
}

/* ---- similarity ---- */

/* Centre (optionally) and normalise the rows of x [n, d] into out (double); zero rows stay 0. */
static void unit_rows(const float *x, int n, int d, int center, double *out) {
    if (center) stats_center_cols(x, n, d, NULL, out);
    else
        for (size_t k = 0; k < (size_t)n * d; k++) out[k] = x[k];
    for (int i = 0; i < n; i++) {
        double *row = out + (size_t)i * d, ss = 0;
        for (int k = 0; k < d; k++) ss += row[k] * row[k];
        double nr = sqrt(ss);
        for (int k = 0; k < d; k++) row[k] = nr > 0 ? row[k] / nr : 0.0;
    }
}

/* Mean gap over the items with Y re-paired by pi (NULL: identity); per-item values into s,
 * o (either may be NULL). */
static double gap_of(const double *C, const double *rsum, int n, const xl_groups *g, const int64_t *pi, double *s,
                     double *o) {
    double tot = 0;
    for (int i = 0; i < n; i++) {
        const double *row = C + (size_t)i * n;
        int k = g->gid[i], a = g->start[k], b = g->start[k + 1];
        double own = 0;
        for (int t = a; t < b; t++) {
            int j = g->memb[t];
            own += row[pi ? pi[j] : j];
        }
        double other = (rsum[i] - own) / (double)(n - (b - a));
        double si = row[pi ? pi[i] : i] - other;
        if (s) s[i] = si;
        if (o) o[i] = other;
        tot += si;
    }
    return tot / n;
}

int rs_crosslang_similarity(const float *X, const float *Y, int n, int d, const int *group,
                            const rs_crosslang_opts *o, rs_crosslang_result *r, double *s_item, rs_err *err) {
    rs_crosslang_opts def = rs_crosslang_defaults();
    if (!o) o = &def;
    if (!r) return rs_errk(err, RS_EINVAL, "crosslang: result pointer is NULL");
    memset(r, 0, sizeof *r);
    if (!X || !Y) return rs_errk(err, RS_EINVAL, "crosslang: %s matrix is NULL", !X ? "X (first language)" : "Y (translation)");
    if (d < 1) return rs_errk(err, RS_EINVAL, "crosslang: d = %d; need d >= 1", d);
    if (n < 3) return rs_errk(err, RS_EDATA, "crosslang: n = %d items; need at least 3", n);
    if (check_opts(o, err)) return -1;
    if ((size_t)n > ((size_t)-1 / sizeof(double)) / (size_t)n || (size_t)n > ((size_t)-1 / sizeof(double)) / (size_t)d)
        return rs_errk(err, RS_ENOMEM, "crosslang: n = %d, d = %d is too large to address", n, d);
    for (int m = 0; m < 2; m++) {
        const float *Z = m ? Y : X;
        for (size_t k = 0; k < (size_t)n * d; k++)
            if (!isfinite(Z[k]))
                return rs_errk(err, RS_EDATA, "crosslang: %s row %zu column %zu is not finite", m ? "Y" : "X",
                               k / (size_t)d, k % (size_t)d);
    }
    xl_groups g;
    if (groups_build(group, n, &g)) return rs_errk(err, RS_ENOMEM, "crosslang: out of memory (groups of %d items)", n);
    if (g.G < 2) {
        groups_free(&g);
        return rs_errk(err, RS_EDATA, "crosslang: all %d items are in one group; need at least 2 groups", n);
    }
    int P = o->n_perm, T = o->threads > 1 ? o->threads : 1;
    if (T > P) T = P > 0 ? P : 1;
    int rc = -1;
    double *xn = malloc((size_t)n * d * sizeof *xn), *yn = malloc((size_t)n * d * sizeof *yn);
    double *C = malloc((size_t)n * n * sizeof *C);
    double *rsum = malloc((size_t)n * sizeof *rsum), *val = malloc((size_t)5 * n * sizeof *val);
    double *bs = malloc((size_t)n * sizeof *bs), *bo = malloc((size_t)n * sizeof *bo); /* best same / other, y → x */
    double *null = malloc((size_t)(P > 0 ? P : 1) * sizeof *null);
    int64_t *pis = malloc((size_t)T * n * sizeof *pis);
    if (!xn || !yn || !C || !rsum || !val || !bs || !bo || !null || !pis) {
        rs_errk(err, RS_ENOMEM, "crosslang: out of memory (n = %d items, d = %d: the n x n cosine matrix needs %.1f MB)",
                n, d, 8.0 * n * n / 1e6);
        goto done;
    }
    unit_rows(X, n, d, o->center, xn);
    unit_rows(Y, n, d, o->center, yn);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, d, 1.0, xn, d, yn, d, 0.0, C, n);
    free(xn);
    free(yn);
    xn = yn = NULL;

    /* per-item values: val[0] m, [1] o, [2] s, [3] h (x → y), [4] h' (y → x) */
    double *vm = val, *vo = val + n, *vs = val + 2 * (size_t)n, *h0 = val + 3 * (size_t)n, *h1 = val + 4 * (size_t)n;
    for (int i = 0; i < n; i++) {
        double t = 0;
        for (int j = 0; j < n; j++) t += C[(size_t)i * n + j];
        rsum[i] = t;
        vm[i] = C[(size_t)i * n + i];
        bs[i] = bo[i] = -INFINITY;
    }
    double gap_obs = gap_of(C, rsum, n, &g, NULL, vs, vo);
    for (int i = 0; i < n; i++) {
        const double *row = C + (size_t)i * n;
        double same = -INFINITY, other = -INFINITY;
        for (int j = 0; j < n; j++) {
            double c = row[j];
            if (g.gid[j] == g.gid[i]) {
                if (c > same) same = c;
                if (c > bs[j]) bs[j] = c; /* column j: x_i is in y_j's group */
            } else {
                if (c > other) other = c;
                if (c > bo[j]) bo[j] = c;
            }
        }
        h0[i] = same > other ? 1.0 : 0.0; /* strict: a tie is a miss */
    }
    for (int j = 0; j < n; j++) h1[j] = bs[j] > bo[j] ? 1.0 : 0.0;
    if (s_item) memcpy(s_item, vs, (size_t)n * sizeof *s_item);

    rs_xl_ci ci[5];
    if (group_bootstrap(val, 5, n, &g, o->n_boot, o->seed, ci)) {
        rs_errk(err, RS_ENOMEM, "crosslang: out of memory (bootstrap, %d replicates)", o->n_boot);
        goto done;
    }
    r->n = n;
    r->n_groups = g.G;
    r->n_boot = o->n_boot;
    r->n_perm = P;
    r->cos_matched = ci[0];
    r->cos_other = ci[1];
    r->gap = ci[2];
    r->r1[0] = ci[3];
    r->r1[1] = ci[4];
    double ch = 0;
    for (int i = 0; i < n; i++) ch += (double)(g.start[g.gid[i] + 1] - g.start[g.gid[i]]);
    r->chance = ch / n / n;

    r->gap_null_mean = r->gap_null_hi = r->p = NAN;
    if (P > 0) {
#pragma omp parallel for num_threads(T) schedule(static)
        for (int q = 0; q < P; q++) {
            int64_t *pi = pis + (size_t)omp_get_thread_num() * n;
            stats_permutation(o->seed ^ RS_XL_PERM_SALT, q, n, pi);
            null[q] = gap_of(C, rsum, n, &g, pi, NULL, NULL);
        }
        stats_null nul = stats_null_summary(gap_obs, null, P, STATS_SIM);
        r->gap_null_mean = nul.mean;
        r->p = nul.p;
        r->gap_null_hi = stats_percentile(null, nul.n_perm, 0.95);
    }
    rc = 0;
done:
    free(xn);
    free(yn);
    free(C);
    free(rsum);
    free(val);
    free(bs);
    free(bo);
    free(null);
    free(pis);
    groups_free(&g);
    return rc;
}

/* ---- paired comparison ---- */

int rs_crosslang_compare(const double *s_a, const double *s_b, int n, const int *group, const rs_crosslang_opts *o,
                         rs_xl_ci *diff, double *p, rs_err *err) {
    rs_crosslang_opts def = rs_crosslang_defaults();
    if (!o) o = &def;
    if (!s_a || !s_b || !diff || !p)
        return rs_errk(err, RS_EINVAL, "crosslang compare: %s is NULL",
                       !s_a ? "s_a" : !s_b ? "s_b" : !diff ? "the diff output" : "the p output");
    *diff = (rs_xl_ci){NAN, NAN, NAN};
    *p = NAN;
    if (n < 3) return rs_errk(err, RS_EDATA, "crosslang compare: n = %d items; need at least 3", n);
    if (check_opts(o, err)) return -1;
    for (int i = 0; i < n; i++)
        if (!isfinite(s_a[i]) || !isfinite(s_b[i]))
            return rs_errk(err, RS_EDATA, "crosslang compare: item %d: %s is not finite", i,
                           !isfinite(s_a[i]) ? "s_a" : "s_b");
    xl_groups g;
    if (groups_build(group, n, &g)) return rs_errk(err, RS_ENOMEM, "crosslang compare: out of memory");
    if (g.G < 2) {
        groups_free(&g);
        return rs_errk(err, RS_EDATA, "crosslang compare: all %d items are in one group; need at least 2 groups", n);
    }
    int rc = -1, G = g.G;
    double *dd = malloc((size_t)n * sizeof *dd), *D = calloc((size_t)G, sizeof *D);
    if (!dd || !D) {
        rs_errk(err, RS_ENOMEM, "crosslang compare: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        dd[i] = s_a[i] - s_b[i];
        D[g.gid[i]] += dd[i];
    }
    if (group_bootstrap(dd, 1, n, &g, o->n_boot, o->seed, diff)) {
        rs_errk(err, RS_ENOMEM, "crosslang compare: out of memory (bootstrap)");
        goto done;
    }
    if (o->n_perm > 0) {
        double obs = 0;
        for (int k = 0; k < G; k++) obs += D[k];
        obs = fabs(obs / n);
        int ge = 0;
        uint64_t fs = o->seed ^ RS_XL_FLIP_SALT;
        for (int q = 0; q < o->n_perm; q++) {
            double t = 0;
            for (int k = 0; k < G; k++)
                t += rs_uniform_at(fs, (uint64_t)q * (uint64_t)G + (uint64_t)k) < 0.5 ? -D[k] : D[k];
            ge += fabs(t / n) >= obs;
        }
        *p = (1.0 + ge) / (1.0 + o->n_perm);
    }
    rc = 0;
done:
    free(dd);
    free(D);
    groups_free(&g);
    return rc;
}
