/* Permutation nulls, percentiles, BH q-values, debiased linear CKA (see stats.h and
 * docs/metrics.md). */
#include "base/util.h"
#include "reprshift/stats.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t stats_splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void stats_permutation(uint64_t seed, int rep, int64_t n, int64_t *out) {
    uint64_t s = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(rep + 1));
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(stats_splitmix(&s) % (uint64_t)(i + 1));
        int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}

double stats_percentile(double *v, int n, double q) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) v[m++] = v[i];
    if (m == 0) return NAN;
    qsort(v, (size_t)m, sizeof *v, rs_cmp_double);
    double pos = q * (m - 1);
    int lo = (int)floor(pos);
    int hi = lo + 1 < m ? lo + 1 : lo;
    return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

stats_null stats_null_summary(double observed, double *null, int n, int direction) {
    stats_null r = {0, NAN, NAN, NAN, NAN};
    int m = 0, ext = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(null[i])) continue;
        null[m++] = null[i];
        sum += null[i];
        if (direction == STATS_SIM ? null[i] >= observed : null[i] <= observed) ext++;
    }
    r.n_perm = m;
    if (m == 0) return r;
    r.mean = sum / m;
    if (isfinite(observed)) r.p = (1.0 + ext) / (1.0 + m);
    r.lo = stats_percentile(null, m, 0.025);
    r.hi = stats_percentile(null, m, 0.975);
    return r;
}

typedef struct {
    double p;
    int i;
} pidx;

static int cmp_pidx(const void *a, const void *b) {
    const pidx *x = a, *y = b;
    if (x->p != y->p) return (x->p > y->p) - (x->p < y->p);
    return (x->i > y->i) - (x->i < y->i);
}

int stats_bh_qvalues(const double *p, int n, double *q) {
    pidx *s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    if (!s) return -1;
    int m = 0;
    for (int i = 0; i < n; i++) {
        q[i] = NAN;
        if (isfinite(p[i])) s[m++] = (pidx){p[i], i};
    }
    qsort(s, (size_t)m, sizeof *s, cmp_pidx);
    double run = 1.0;
    for (int k = m - 1; k >= 0; k--) {
        double v = s[k].p * m / (k + 1);
        if (v < run) run = v;
        q[s[k].i] = run;
    }
    free(s);
    return 0;
}

void stats_center_cols(const float *x, int64_t n, int d, float *xf, double *xd) {
    for (int i = 0; i < d; i++) {
        double m = 0;
        for (int64_t t = 0; t < n; t++) m += x[(size_t)t * d + i];
        m /= n;
        if (xf)
            for (int64_t t = 0; t < n; t++) xf[(size_t)t * d + i] = (float)(x[(size_t)t * d + i] - m);
        else
            for (int64_t t = 0; t < n; t++) xd[(size_t)t * d + i] = x[(size_t)t * d + i] - m;
    }
}

/* HSIC_u from its three sufficient quantities (see stats.h). */
static double hsic_u(double trKL, double sK, double sL, double sKL, double n) {
    return (trKL + sK * sL / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * sKL) / (n * (n - 3));
}

double stats_cka_debiased(const float *a, const float *b, int64_t n, int d, double *biased) {
    if (biased) *biased = NAN;
    if (n < 2) return NAN;
    double *xa = malloc((size_t)n * d * sizeof *xa), *xb = malloc((size_t)n * d * sizeof *xb);
    double *c = malloc((size_t)d * d * sizeof *c);
    double r = NAN;
    if (!xa || !xb || !c) goto done;
    stats_center_cols(a, n, d, NULL, xa);
    stats_center_cols(b, n, d, NULL, xb);
    /* Centred data: row sums of K and L vanish, so 1ᵀK̃1 = −Σ K_ss and 1ᵀK̃L̃1 = Σ K_ss L_ss. */
    double dkk = 0, dll = 0, dkl = 0, tk = 0, tl = 0;
    for (int64_t t = 0; t < n; t++) {
        double k = 0, l = 0;
        for (int i = 0; i < d; i++) {
            k += xa[(size_t)t * d + i] * xa[(size_t)t * d + i];
            l += xb[(size_t)t * d + i] * xb[(size_t)t * d + i];
        }
        tk += k;
        tl += l;
        dkk += k * k;
        dll += l * l;
        dkl += k * l;
    }
    double f[3];
    const double *P[3][2] = {{xa, xb}, {xa, xa}, {xb, xb}};
    for (int k = 0; k < 3; k++) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, (int)n, 1.0, P[k][0], d, P[k][1], d, 0.0, c, d);
        double s = 0;
        for (size_t i = 0; i < (size_t)d * d; i++) s += c[i] * c[i];
        f[k] = s; /* ‖XᵀY‖²_F = tr(KL) */
    }
    if (biased) *biased = (f[1] > 0 && f[2] > 0) ? f[0] / sqrt(f[1] * f[2]) : NAN;
    if (n < 4) goto done;
    double nn = (double)n;
    double hkl = hsic_u(f[0] - dkl, -tk, -tl, dkl, nn);
    double hkk = hsic_u(f[1] - dkk, -tk, -tk, dkk, nn);
    double hll = hsic_u(f[2] - dll, -tl, -tl, dll, nn);
    r = (hkk > 0 && hll > 0) ? hkl / sqrt(hkk * hll) : NAN;
done:
    free(xa);
    free(xb);
    free(c);
    return r;
}

/* idx[0..n) sorted by v[idx] (stable merge sort; tmp has n entries). Thread-safe. */
static void sort_idx(const double *v, int *idx, int *tmp, int n) {
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = v[idx[b]] < v[idx[a]] ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *idx);
    }
}

/* Average ranks (1-based) of v[n] into r (scipy.stats.rankdata, method "average"). */
static void avg_ranks(const double *v, int n, int *idx, int *tmp, double *r) {
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_idx(v, idx, tmp, n);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) j++;
        double avg = 0.5 * (double)(i + j) + 1.0;
        for (int k = i; k <= j; k++) r[idx[k]] = avg;
        i = j + 1;
    }
}

double stats_spearman_ws(const double *x, const double *y, int n, int *n_used, double *work, int *iwork) {
    if (n_used) *n_used = 0;
    if (n < 0) return NAN;
    double *xs = work, *ys = work + n + 1, *rx = work + 2 * (n + 1), *ry = work + 3 * (n + 1);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) xs[m] = x[i], ys[m] = y[i], m++;
    if (n_used) *n_used = m;
    double rho = NAN;
    if (m >= 3) {
        avg_ranks(xs, m, iwork, iwork + n + 1, rx);
        avg_ranks(ys, m, iwork, iwork + n + 1, ry);
        double mx = 0.5 * (double)(m + 1), sxy = 0, sxx = 0, syy = 0; /* mean rank (m+1)/2 */
        for (int i = 0; i < m; i++) {
            double dx = rx[i] - mx, dy = ry[i] - mx;
            sxy += dx * dy, sxx += dx * dx, syy += dy * dy;
        }
        if (sxx > 0 && syy > 0) rho = sxy / sqrt(sxx * syy);
    }
    return rho;
}

double stats_spearman(const double *x, const double *y, int n, int *n_used) {
    if (n_used) *n_used = 0;
    if (n < 0) return NAN;
    double *a = malloc(((size_t)n + 1) * 4 * sizeof *a);
    int *idx = malloc(((size_t)n + 1) * 2 * sizeof *idx);
    double rho = a && idx ? stats_spearman_ws(x, y, n, n_used, a, idx) : NAN;
    free(a);
    free(idx);
    return rho;
}
