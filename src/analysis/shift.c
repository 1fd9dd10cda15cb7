/* Shift metrics with group bootstrap (docs/metrics.md).
 * Bootstrap: a replicate draws n_groups groups with replacement; group g enters with
 * multiplicity c_g. All statistics are computed from per-group sufficient statistics so a
 * replicate costs O(groups + nonzeros) rather than a pass over the activations:
 *   - token means: per-group sums of the per-row values;
 *   - feature statistics (JS, Pearson, per-feature Jaccard): per-group sparse sums over the
 *     features alive in either model;
 *   - linear CKA: the weighted-HSIC identity HSIC_w = T1 − 2W·T2 + W²κλ (see docs), from
 *     group-pair sums of K∘L, K∘K, L∘L and token-by-group sums of K and L. */
#include "reprshift/shift.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void shift_opts_default(shift_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_boot = 1000;
    o->seed = 0x5eed;
    o->cka_max_rows = 20000;
}

double shift_cosine(const float *x, const float *y, int d) {
    double xy = 0, xx = 0, yy = 0;
    for (int i = 0; i < d; i++) {
        xy += (double)x[i] * y[i];
        xx += (double)x[i] * x[i];
        yy += (double)y[i] * y[i];
    }
    if (xx == 0 && yy == 0) return 1.0;
    if (xx == 0 || yy == 0) return 0.0;
    return xy / (sqrt(xx) * sqrt(yy));
}

double shift_js_bits(const double *p, const double *q, int64_t n) {
    double sp = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        sp += p[i];
        sq += q[i];
    }
    if (sp <= 0 && sq <= 0) return 0.0;
    if (sp <= 0 || sq <= 0) return 1.0; /* one distribution empty: maximal divergence */
    double js = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = p[i] / sp, b = q[i] / sq, m = 0.5 * (a + b);
        if (a > 0) js += 0.5 * a * log2(a / m);
        if (b > 0) js += 0.5 * b * log2(b / m);
    }
    return js < 0 ? 0 : (js > 1 ? 1 : js);
}

double shift_pearson(const double *x, const double *y, int64_t n) {
    if (n < 2) return NAN;
    double mx = 0, my = 0;
    for (int64_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= n;
    my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int64_t i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx <= 0 || syy <= 0) return NAN;
    return sxy / sqrt(sxx * syy);
}

void shift_pool_mean(const float *x, int d, const int64_t *offsets, int64_t n_groups, float *out) {
    for (int64_t g = 0; g < n_groups; g++) {
        float *o = out + (size_t)g * d;
        int64_t a = offsets[g], b = offsets[g + 1];
        for (int i = 0; i < d; i++) {
            double s = 0;
            for (int64_t r = a; r < b; r++) s += x[(size_t)r * d + i];
            o[i] = b > a ? (float)(s / (double)(b - a)) : 0.0f;
        }
    }
}

/* Direct linear CKA: ‖XcᵀYc‖²_F / (‖XcᵀXc‖_F ‖YcᵀYc‖_F) with column-centred X, Y. */
double shift_cka_linear(const float *a, const float *b, int64_t n, int d) {
    if (n < 2) return NAN;
    float *xa = malloc((size_t)n * d * sizeof *xa), *xb = malloc((size_t)n * d * sizeof *xb);
    float *c = malloc((size_t)d * d * sizeof *c);
    double r = NAN;
    if (!xa || !xb || !c) goto done;
    for (int i = 0; i < d; i++) {
        double ma = 0, mb = 0;
        for (int64_t t = 0; t < n; t++) {
            ma += a[(size_t)t * d + i];
            mb += b[(size_t)t * d + i];
        }
        ma /= n;
        mb /= n;
        for (int64_t t = 0; t < n; t++) {
            xa[(size_t)t * d + i] = (float)(a[(size_t)t * d + i] - ma);
            xb[(size_t)t * d + i] = (float)(b[(size_t)t * d + i] - mb);
        }
    }
    double f[3];
    const float *P[3][2] = {{xa, xb}, {xa, xa}, {xb, xb}};
    for (int k = 0; k < 3; k++) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, (int)n, 1.0f, P[k][0], d, P[k][1], d, 0.0f, c, d);
        double s = 0;
        for (size_t i = 0; i < (size_t)d * d; i++) s += (double)c[i] * c[i];
        f[k] = s;
    }
    r = (f[1] > 0 && f[2] > 0) ? f[0] / sqrt(f[1] * f[2]) : NAN;
done:
    free(xa);
    free(xb);
    free(c);
    return r;
}

void shift_result_free(shift_result *r) {
    if (!r) return;
    free(r->row_cos_raw);
    free(r->row_l2_raw);
    free(r->row_cos_feat);
    free(r->row_l2_feat);
    free(r->row_jaccard);
    free(r->row_js);
    free(r->count_a);
    free(r->count_b);
    free(r->count_both);
    free(r->sum_a);
    free(r->sum_b);
    memset(r, 0, sizeof *r);
}

/* ---- per-row feature comparisons over two sorted sparse rows ---- */

typedef struct {
    double cos, l2, jac, js;
} feat_row;

static feat_row compare_feat_rows(const sae_sparse *fa, const sae_sparse *fb, int64_t t) {
    int64_t i = fa->row_ptr[t], ie = fa->row_ptr[t + 1], j = fb->row_ptr[t], je = fb->row_ptr[t + 1];
    double xy = 0, xx = 0, yy = 0, d2 = 0, sa = 0, sb = 0;
    int64_t inter = 0, uni = 0;
    for (int64_t z = i; z < ie; z++) sa += fa->val[z];
    for (int64_t z = j; z < je; z++) sb += fb->val[z];
    double js = 0;
    while (i < ie || j < je) {
        double x = 0, y = 0;
        if (j >= je || (i < ie && fa->idx[i] < fb->idx[j])) x = fa->val[i++];
        else if (i >= ie || fb->idx[j] < fa->idx[i]) y = fb->val[j++];
        else {
            x = fa->val[i++];
            y = fb->val[j++];
        }
        xy += x * y;
        xx += x * x;
        yy += y * y;
        d2 += (x - y) * (x - y);
        uni += (x != 0) || (y != 0);
        inter += (x != 0) && (y != 0);
        if (sa > 0 && sb > 0) {
            double p = x / sa, q = y / sb, m = 0.5 * (p + q);
            if (p > 0) js += 0.5 * p * log2(p / m);
            if (q > 0) js += 0.5 * q * log2(q / m);
        }
    }
    feat_row r;
    r.cos = (xx == 0 && yy == 0) ? 1.0 : (xx == 0 || yy == 0) ? 0.0 : xy / (sqrt(xx) * sqrt(yy));
    r.l2 = sqrt(d2);
    r.jac = uni ? (double)inter / (double)uni : 1.0;
    if (sa <= 0 && sb <= 0) r.js = 0;
    else if (sa <= 0 || sb <= 0) r.js = 1;
    else r.js = js < 0 ? 0 : (js > 1 ? 1 : js);
    return r;
}

/* ---- bootstrap machinery ---- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile (linear) over the finite values; NaN if none. */
static double percentile(double *v, int n, double q) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) v[m++] = v[i];
    if (m == 0) return NAN;
    qsort(v, (size_t)m, sizeof *v, cmp_double);
    double pos = q * (m - 1);
    int lo = (int)floor(pos);
    int hi = lo + 1 < m ? lo + 1 : lo;
    return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

enum { S_COS_RAW, S_L2_RAW, S_COS_FEAT, S_L2_FEAT, S_JAC_TOK, S_JS_TOK, S_JAC_FEAT, S_JS_MASS, S_PEARSON, S_CKA, S_N };

/* Per-group sparse feature sums over the alive-either features (compact ids). */
typedef struct {
    int64_t *ptr;      /* [G+1] */
    int32_t *fid;      /* compact feature id */
    float *sa, *sb;    /* activation sums */
    int32_t *both, *uni; /* token counts active in both / either */
} group_feats;

typedef struct {
    int ok;
    int64_t n, G;
    double *P[3];      /* [G×G] Σ K∘L, K∘K, L∘L over token pairs of groups (g,h) */
    double *RK, *RL;   /* [n×G] Σ_{t∈h} K_st, Σ_{t∈h} L_st */
} cka_stats;

static void cka_free(cka_stats *c) {
    for (int k = 0; k < 3; k++) free(c->P[k]);
    free(c->RK);
    free(c->RL);
}

/* Build CKA sufficient statistics from globally centred rows (translation invariance keeps
 * the weighted re-centring below well conditioned). */
static int cka_build(cka_stats *c, const float *a, const float *b, int64_t n, int d, int64_t G, const int64_t *grp) {
    memset(c, 0, sizeof *c);
    c->n = n;
    c->G = G;
    const int BL = 256;
    float *xa = malloc((size_t)n * d * sizeof *xa), *xb = malloc((size_t)n * d * sizeof *xb);
    float *ka = malloc((size_t)BL * n * sizeof *ka), *kb = malloc((size_t)BL * n * sizeof *kb);
    for (int k = 0; k < 3; k++) c->P[k] = calloc((size_t)(G * G), sizeof(double));
    c->RK = calloc((size_t)(n * G), sizeof(double));
    c->RL = calloc((size_t)(n * G), sizeof(double));
    int rc = -1;
    if (!xa || !xb || !ka || !kb || !c->P[0] || !c->P[1] || !c->P[2] || !c->RK || !c->RL) goto done;
    for (int i = 0; i < d; i++) {
        double ma = 0, mb = 0;
        for (int64_t t = 0; t < n; t++) {
            ma += a[(size_t)t * d + i];
            mb += b[(size_t)t * d + i];
        }
        ma /= n;
        mb /= n;
        for (int64_t t = 0; t < n; t++) {
            xa[(size_t)t * d + i] = (float)(a[(size_t)t * d + i] - ma);
            xb[(size_t)t * d + i] = (float)(b[(size_t)t * d + i] - mb);
        }
    }
    for (int64_t s0 = 0; s0 < n; s0 += BL) {
        int nb = (int)(n - s0 < BL ? n - s0 : BL);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int)n, d, 1.0f, xa + (size_t)s0 * d, d, xa, d, 0.0f, ka, (int)n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int)n, d, 1.0f, xb + (size_t)s0 * d, d, xb, d, 0.0f, kb, (int)n);
        for (int r = 0; r < nb; r++) {
            int64_t s = s0 + r, gs = grp[s];
            const float *kr = ka + (size_t)r * n, *lr = kb + (size_t)r * n;
            double *pkl = c->P[0] + gs * G, *pkk = c->P[1] + gs * G, *pll = c->P[2] + gs * G;
            double *rk = c->RK + s * G, *rl = c->RL + s * G;
            for (int64_t t = 0; t < n; t++) {
                int64_t h = grp[t];
                double K = kr[t], L = lr[t];
                pkl[h] += K * L;
                pkk[h] += K * K;
                pll[h] += L * L;
                rk[h] += K;
                rl[h] += L;
            }
        }
    }
    rc = 0;
    c->ok = 1;
done:
    free(xa);
    free(xb);
    free(ka);
    free(kb);
    if (rc) cka_free(c);
    return rc;
}

/* Weighted linear CKA for group multiplicities w (double[G]). */
static double cka_weighted(const cka_stats *c, const double *w, const int64_t *grp, double *kbuf, double *lbuf) {
    int64_t G = c->G, n = c->n;
    double W = 0;
    for (int64_t t = 0; t < n; t++) W += w[grp[t]];
    if (W <= 1) return NAN;
    double T1[3] = {0, 0, 0};
    for (int64_t g = 0; g < G; g++) {
        if (w[g] == 0) continue;
        for (int k = 0; k < 3; k++) {
            const double *row = c->P[k] + g * G;
            double s = 0;
            for (int64_t h = 0; h < G; h++) s += w[h] * row[h];
            T1[k] += w[g] * s;
        }
    }
    double T2[3] = {0, 0, 0}, kap = 0, lam = 0;
    for (int64_t s = 0; s < n; s++) {
        double ws = w[grp[s]];
        if (ws == 0) continue;
        const double *rk = c->RK + s * G, *rl = c->RL + s * G;
        double ks = 0, ls = 0;
        for (int64_t h = 0; h < G; h++) {
            ks += w[h] * rk[h];
            ls += w[h] * rl[h];
        }
        ks /= W;
        ls /= W;
        kbuf[s] = ks;
        lbuf[s] = ls;
        T2[0] += ws * ks * ls;
        T2[1] += ws * ks * ks;
        T2[2] += ws * ls * ls;
        kap += ws * ks;
        lam += ws * ls;
    }
    kap /= W;
    lam /= W;
    double hkl = T1[0] - 2 * W * T2[0] + W * W * kap * lam;
    double hkk = T1[1] - 2 * W * T2[1] + W * W * kap * kap;
    double hll = T1[2] - 2 * W * T2[2] + W * W * lam * lam;
    if (hkk <= 0 || hll <= 0) return NAN;
    return hkl / sqrt(hkk * hll);
}

int shift_compare(const shift_input *in, const shift_opts *opt, shift_result *r, rs_err *err) {
    shift_opts defo;
    if (!opt) {
        shift_opts_default(&defo);
        opt = &defo;
    }
    memset(r, 0, sizeof *r);
    int64_t n = in->n_rows, G = in->n_groups;
    int d = in->d;
    if (n <= 0 || G <= 0 || !in->offsets || in->offsets[0] != 0 || in->offsets[G] != n)
        return rs_errf(err, "shift: offsets must run from 0 to the row count (%lld rows, %lld groups)",
                       (long long)n, (long long)G);
    for (int64_t g = 0; g < G; g++)
        if (in->offsets[g + 1] < in->offsets[g]) return rs_errf(err, "shift: offsets decrease at group %lld", (long long)g);
    int feats = in->fa && in->fb;
    if (feats && (in->fa->n != n || in->fb->n != n || in->fa->d_sae != in->fb->d_sae))
        return rs_errf(err, "shift: feature rows do not match activation rows");
    int m = feats ? in->fa->d_sae : 0;
    r->n_rows = n;
    r->n_groups = G;
    r->has_feats = feats;
    r->d_sae = m;

    int64_t *grp = malloc((size_t)n * sizeof *grp);
    double *gsum = calloc((size_t)(G * 6), sizeof *gsum); /* per-group sums of the 6 per-row metrics */
    int64_t *gcount = calloc((size_t)G, sizeof *gcount);
    r->row_cos_raw = malloc((size_t)n * sizeof(float));
    r->row_l2_raw = malloc((size_t)n * sizeof(float));
    group_feats gf = {0};
    int32_t *compact = NULL, *alive_ids = NULL;
    cka_stats cs = {0};
    double *boot = NULL, *w = NULL, *kbuf = NULL, *lbuf = NULL, *ta = NULL, *tb = NULL, *tboth = NULL, *tuni = NULL;
    int rc = -1;
    if (!grp || !gsum || !gcount || !r->row_cos_raw || !r->row_l2_raw) goto oom;
    for (int64_t g = 0; g < G; g++)
        for (int64_t t = in->offsets[g]; t < in->offsets[g + 1]; t++) grp[t] = g;
    for (int64_t g = 0; g < G; g++) gcount[g] = in->offsets[g + 1] - in->offsets[g];

    for (int64_t t = 0; t < n; t++) {
        const float *x = in->a + (size_t)t * d, *y = in->b + (size_t)t * d;
        double d2 = 0;
        for (int i = 0; i < d; i++) d2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        double cs0 = shift_cosine(x, y, d);
        r->row_cos_raw[t] = (float)cs0;
        r->row_l2_raw[t] = (float)sqrt(d2);
        gsum[grp[t] * 6 + 0] += cs0;
        gsum[grp[t] * 6 + 1] += sqrt(d2);
    }

    int64_t n_alive = 0;
    if (feats) {
        const sae_sparse *fa = in->fa, *fb = in->fb;
        r->row_cos_feat = malloc((size_t)n * sizeof(float));
        r->row_l2_feat = malloc((size_t)n * sizeof(float));
        r->row_jaccard = malloc((size_t)n * sizeof(float));
        r->row_js = malloc((size_t)n * sizeof(float));
        r->count_a = calloc((size_t)m, sizeof(int64_t));
        r->count_b = calloc((size_t)m, sizeof(int64_t));
        r->count_both = calloc((size_t)m, sizeof(int64_t));
        r->sum_a = calloc((size_t)m, sizeof(double));
        r->sum_b = calloc((size_t)m, sizeof(double));
        compact = malloc((size_t)m * sizeof *compact);
        if (!r->row_cos_feat || !r->row_l2_feat || !r->row_jaccard || !r->row_js || !r->count_a || !r->count_b ||
            !r->count_both || !r->sum_a || !r->sum_b || !compact)
            goto oom;
        for (int64_t t = 0; t < n; t++) {
            feat_row fr = compare_feat_rows(fa, fb, t);
            r->row_cos_feat[t] = (float)fr.cos;
            r->row_l2_feat[t] = (float)fr.l2;
            r->row_jaccard[t] = (float)fr.jac;
            r->row_js[t] = (float)fr.js;
            double *gs = gsum + grp[t] * 6;
            gs[2] += fr.cos;
            gs[3] += fr.l2;
            gs[4] += fr.jac;
            gs[5] += fr.js;
            for (int64_t z = fa->row_ptr[t]; z < fa->row_ptr[t + 1]; z++) {
                r->count_a[fa->idx[z]]++;
                r->sum_a[fa->idx[z]] += fa->val[z];
            }
            for (int64_t z = fb->row_ptr[t]; z < fb->row_ptr[t + 1]; z++) {
                r->count_b[fb->idx[z]]++;
                r->sum_b[fb->idx[z]] += fb->val[z];
            }
        }
        for (int j = 0; j < m; j++) {
            r->n_alive_a += r->count_a[j] > 0;
            r->n_alive_b += r->count_b[j] > 0;
            compact[j] = (r->count_a[j] || r->count_b[j]) ? (int32_t)n_alive++ : -1;
        }
        r->n_alive_either = n_alive;
        /* per-group sparse sums over alive features (scratch dense over the alive set) */
        alive_ids = malloc((size_t)(n_alive ? n_alive : 1) * sizeof *alive_ids);
        double *dsa = calloc((size_t)(n_alive + 1), sizeof *dsa), *dsb = calloc((size_t)(n_alive + 1), sizeof *dsb);
        int32_t *dboth = calloc((size_t)(n_alive + 1), sizeof *dboth), *duni = calloc((size_t)(n_alive + 1), sizeof *duni);
        int32_t *touched = malloc((size_t)(n_alive + 1) * sizeof *touched);
        uint8_t *mark = calloc((size_t)(n_alive + 1), 1);
        size_t cap = (size_t)(fa->row_ptr[n] + fb->row_ptr[n]) + 1;
        gf.ptr = calloc((size_t)G + 1, sizeof *gf.ptr);
        gf.fid = malloc(cap * sizeof *gf.fid);
        gf.sa = malloc(cap * sizeof *gf.sa);
        gf.sb = malloc(cap * sizeof *gf.sb);
        gf.both = malloc(cap * sizeof *gf.both);
        gf.uni = malloc(cap * sizeof *gf.uni);
        int bad = !alive_ids || !dsa || !dsb || !dboth || !duni || !touched || !mark || !gf.ptr || !gf.fid || !gf.sa ||
                  !gf.sb || !gf.both || !gf.uni;
        if (!bad) {
            for (int j = 0; j < m; j++)
                if (compact[j] >= 0) alive_ids[compact[j]] = j;
            int64_t nz = 0;
            for (int64_t g = 0; g < G; g++) {
                int nt = 0;
                for (int64_t t = in->offsets[g]; t < in->offsets[g + 1]; t++) {
                    int64_t i = fa->row_ptr[t], ie = fa->row_ptr[t + 1], j = fb->row_ptr[t], je = fb->row_ptr[t + 1];
                    while (i < ie || j < je) {
                        int f;
                        double x = 0, y = 0;
                        if (j >= je || (i < ie && fa->idx[i] < fb->idx[j])) {
                            f = fa->idx[i];
                            x = fa->val[i++];
                        } else if (i >= ie || fb->idx[j] < fa->idx[i]) {
                            f = fb->idx[j];
                            y = fb->val[j++];
                        } else {
                            f = fa->idx[i];
                            x = fa->val[i++];
                            y = fb->val[j++];
                        }
                        int c = compact[f];
                        if (!mark[c]) {
                            mark[c] = 1;
                            touched[nt++] = c;
                        }
                        dsa[c] += x;
                        dsb[c] += y;
                        dboth[c] += x != 0 && y != 0;
                        duni[c] += x != 0 || y != 0;
                    }
                }
                for (int q = 0; q < nt; q++) {
                    int c = touched[q];
                    gf.fid[nz] = c;
                    gf.sa[nz] = (float)dsa[c];
                    gf.sb[nz] = (float)dsb[c];
                    gf.both[nz] = dboth[c];
                    gf.uni[nz] = duni[c];
                    nz++;
                    dsa[c] = dsb[c] = 0;
                    dboth[c] = duni[c] = 0;
                    mark[c] = 0;
                }
                gf.ptr[g + 1] = nz;
            }
            /* rows where a feature is active in both models, from the group sums */
            for (int64_t z = 0; z < gf.ptr[G]; z++) r->count_both[alive_ids[gf.fid[z]]] += gf.both[z];
        }
        free(dsa);
        free(dsb);
        free(dboth);
        free(duni);
        free(touched);
        free(mark);
        if (bad) goto oom;
    }

    int do_cka = n <= opt->cka_max_rows;
    if (do_cka && cka_build(&cs, in->a, in->b, n, d, G, grp)) goto oom;

    /* ---- statistics for a weight vector (all ones = point estimate) ---- */
    int B = opt->n_boot > 0 ? opt->n_boot : 0;
    boot = malloc((size_t)(B + 1) * S_N * sizeof *boot);
    w = malloc((size_t)G * sizeof *w);
    kbuf = malloc((size_t)n * sizeof *kbuf);
    lbuf = malloc((size_t)n * sizeof *lbuf);
    if (feats) {
        ta = malloc((size_t)(n_alive + 1) * sizeof *ta);
        tb = malloc((size_t)(n_alive + 1) * sizeof *tb);
        tboth = malloc((size_t)(n_alive + 1) * sizeof *tboth);
        tuni = malloc((size_t)(n_alive + 1) * sizeof *tuni);
        if (!ta || !tb || !tboth || !tuni) goto oom;
    }
    if (!boot || !w || !kbuf || !lbuf) goto oom;
    uint64_t rng = opt->seed;
    for (int rep = 0; rep <= B; rep++) {
        double *st = boot + (size_t)rep * S_N;
        if (rep == 0) {
            for (int64_t g = 0; g < G; g++) w[g] = 1;
        } else if (opt->boot_counts) {
            const int32_t *cnt = opt->boot_counts + (size_t)(rep - 1) * G;
            for (int64_t g = 0; g < G; g++) w[g] = cnt[g];
        } else {
            memset(w, 0, (size_t)G * sizeof *w);
            for (int64_t k = 0; k < G; k++) w[splitmix(&rng) % (uint64_t)G] += 1;
        }
        double W = 0, s6[6] = {0};
        for (int64_t g = 0; g < G; g++) {
            if (w[g] == 0) continue;
            W += w[g] * gcount[g];
            for (int k = 0; k < 6; k++) s6[k] += w[g] * gsum[g * 6 + k];
        }
        st[S_COS_RAW] = W > 0 ? s6[0] / W : NAN;
        st[S_L2_RAW] = W > 0 ? s6[1] / W : NAN;
        st[S_COS_FEAT] = W > 0 ? s6[2] / W : NAN;
        st[S_L2_FEAT] = W > 0 ? s6[3] / W : NAN;
        st[S_JAC_TOK] = W > 0 ? s6[4] / W : NAN;
        st[S_JS_TOK] = W > 0 ? s6[5] / W : NAN;
        st[S_JAC_FEAT] = st[S_JS_MASS] = st[S_PEARSON] = NAN;
        if (feats) {
            memset(ta, 0, (size_t)n_alive * sizeof *ta);
            memset(tb, 0, (size_t)n_alive * sizeof *tb);
            memset(tboth, 0, (size_t)n_alive * sizeof *tboth);
            memset(tuni, 0, (size_t)n_alive * sizeof *tuni);
            for (int64_t g = 0; g < G; g++) {
                if (w[g] == 0) continue;
                for (int64_t z = gf.ptr[g]; z < gf.ptr[g + 1]; z++) {
                    int c = gf.fid[z];
                    ta[c] += w[g] * gf.sa[z];
                    tb[c] += w[g] * gf.sb[z];
                    tboth[c] += w[g] * gf.both[z];
                    tuni[c] += w[g] * gf.uni[z];
                }
            }
            double js = 0, nf = 0;
            for (int64_t c = 0; c < n_alive; c++)
                if (tuni[c] > 0) {
                    js += tboth[c] / tuni[c];
                    nf += 1;
                }
            st[S_JAC_FEAT] = nf > 0 ? js / nf : NAN;
            st[S_JS_MASS] = shift_js_bits(ta, tb, n_alive);
            st[S_PEARSON] = shift_pearson(ta, tb, n_alive);
        }
        st[S_CKA] = do_cka ? cka_weighted(&cs, w, grp, kbuf, lbuf) : NAN;
    }
    if (!do_cka) boot[S_CKA] = shift_cka_linear(in->a, in->b, n, d);

    double *col = malloc((size_t)(B > 0 ? B : 1) * sizeof *col);
    if (!col) goto oom;
    rs_stat *dst[S_N] = {&r->cos_raw, &r->l2_raw, &r->cos_feat, &r->l2_feat, &r->jaccard_token, &r->js_token_bits,
                         &r->jaccard_feature, &r->js_mass_bits, &r->pearson_mean_feat, &r->cka_linear};
    for (int k = 0; k < S_N; k++) {
        dst[k]->value = boot[k];
        dst[k]->lo = dst[k]->hi = NAN;
        if (B > 0 && isfinite(boot[k]) && !(k == S_CKA && !do_cka)) {
            for (int rep = 0; rep < B; rep++) col[rep] = boot[(size_t)(rep + 1) * S_N + k];
            dst[k]->lo = percentile(col, B, 0.025);
            for (int rep = 0; rep < B; rep++) col[rep] = boot[(size_t)(rep + 1) * S_N + k];
            dst[k]->hi = percentile(col, B, 0.975);
        }
        if (!feats && k >= S_COS_FEAT && k <= S_PEARSON) dst[k]->value = dst[k]->lo = dst[k]->hi = NAN;
    }
    free(col);
    rc = 0;
    goto done;
oom:
    rs_errf(err, "shift: out of memory (%lld rows, %lld groups)", (long long)n, (long long)G);
done:
    free(grp);
    free(gsum);
    free(gcount);
    free(compact);
    free(alive_ids);
    free(gf.ptr);
    free(gf.fid);
    free(gf.sa);
    free(gf.sb);
    free(gf.both);
    free(gf.uni);
    cka_free(&cs);
    free(boot);
    free(w);
    free(kbuf);
    free(lbuf);
    free(ta);
    free(tb);
    free(tboth);
    free(tuni);
    if (rc) shift_result_free(r);
    return rc;
}
