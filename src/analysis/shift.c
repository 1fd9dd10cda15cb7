/* Shift metrics with group bootstrap (docs/metrics.md).
 * Bootstrap: a replicate draws n_groups groups with replacement; group g enters with
 * multiplicity c_g. All statistics are computed from per-group sufficient statistics so a
 * replicate costs O(groups + nonzeros) rather than a pass over the activations:
 *   - token means: per-group sums of the per-row values;
 *   - feature statistics (JS, Pearson, per-feature Jaccard): per-group sparse sums over the
 *     features alive in either model;
 *   - linear CKA: the weighted-HSIC identity HSIC_w = T1 − 2W·T2 + W²κλ (see docs), from
 *     group-pair sums of K∘L, K∘K, L∘L and token-by-group sums of K and L (debiased CKA:
 *     the unbiased-HSIC terms from the same sums plus the Gram diagonals).
 * Permutation nulls (perm_nulls): each permutation re-pairs rows and recomputes every
 * pairing-dependent statistic, O(n) per permutation for the raw per-row metrics and O(n²)
 * for CKA from the kept n×n Gram / cross-product matrices, O(nonzeros) for features. */
#include "reprshift/shift.h"
#include "reprshift/stats.h"

#include <cblas.h>
#include <omp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void shift_opts_default(shift_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_boot = 1000;
    o->seed = 0x5eed;
    o->cka_max_rows = 20000;
    o->n_perm = 200;
    o->perm_cka_max_rows = 5000;
}

static const char *const METRIC_NAMES[SHIFT_N_METRICS] = {
    "cos_raw", "l2_raw", "cos_feat", "l2_feat", "jaccard_token", "js_token_bits", "jaccard_feature",
    "js_mass_bits", "pearson_mean_feat", "cka_linear", "cos_centred", "cka_debiased"};

const char *shift_metric_name(int k) { return k >= 0 && k < SHIFT_N_METRICS ? METRIC_NAMES[k] : "?"; }

int shift_metric_direction(int k) {
    return (k == SHIFT_L2_RAW || k == SHIFT_L2_FEAT || k == SHIFT_JS_TOKEN || k == SHIFT_JS_MASS) ? STATS_DIST : STATS_SIM;
}

int shift_metric_is_feature(int k) { return k >= SHIFT_COS_FEAT && k <= SHIFT_PEARSON_MEAN_FEAT; }

int shift_metric_permutable(int k) { return k != SHIFT_JS_MASS && k != SHIFT_PEARSON_MEAN_FEAT; }

const rs_stat *shift_metric_stat(const shift_result *r, int k) {
    switch (k) {
    case SHIFT_COS_RAW: return &r->cos_raw;
    case SHIFT_L2_RAW: return &r->l2_raw;
    case SHIFT_COS_FEAT: return &r->cos_feat;
    case SHIFT_L2_FEAT: return &r->l2_feat;
    case SHIFT_JACCARD_TOKEN: return &r->jaccard_token;
    case SHIFT_JS_TOKEN: return &r->js_token_bits;
    case SHIFT_JACCARD_FEATURE: return &r->jaccard_feature;
    case SHIFT_JS_MASS: return &r->js_mass_bits;
    case SHIFT_PEARSON_MEAN_FEAT: return &r->pearson_mean_feat;
    case SHIFT_CKA_LINEAR: return &r->cka_linear;
    case SHIFT_COS_CENTRED: return &r->cos_centred;
    case SHIFT_CKA_DEBIASED: return &r->cka_debiased;
    default: return NULL;
    }
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
    stats_center_cols(a, n, d, xa, NULL);
    stats_center_cols(b, n, d, xb, NULL);
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

static void col_means(const float *x, int64_t n, int d, double *mu) {
    for (int i = 0; i < d; i++) mu[i] = 0;
    for (int64_t t = 0; t < n; t++)
        for (int i = 0; i < d; i++) mu[i] += x[(size_t)t * d + i];
    for (int i = 0; i < d; i++) mu[i] /= (double)n;
}

/* cos(x − mx, y − my) with the cosine's zero conventions. */
static double cos_centred_row(const float *x, const float *y, const double *mx, const double *my, int d) {
    double xy = 0, xx = 0, yy = 0;
    for (int i = 0; i < d; i++) {
        double u = x[i] - mx[i], v = y[i] - my[i];
        xy += u * v;
        xx += u * u;
        yy += v * v;
    }
    if (xx == 0 && yy == 0) return 1.0;
    if (xx == 0 || yy == 0) return 0.0;
    return xy / (sqrt(xx) * sqrt(yy));
}

double shift_cos_centred(const float *a, const float *b, int64_t n, int d) {
    if (n < 1) return NAN;
    double *ma = malloc((size_t)d * sizeof *ma), *mb = malloc((size_t)d * sizeof *mb), s = 0;
    if (!ma || !mb) {
        free(ma);
        free(mb);
        return NAN;
    }
    col_means(a, n, d, ma);
    col_means(b, n, d, mb);
    for (int64_t t = 0; t < n; t++) s += cos_centred_row(a + (size_t)t * d, b + (size_t)t * d, ma, mb, d);
    free(ma);
    free(mb);
    return s / (double)n;
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

/* Sum of the values of row t of a sparse matrix, in stored order. */
static double feat_row_sum(const sae_sparse *f, int64_t t) {
    double s = 0;
    for (int64_t z = f->row_ptr[t]; z < f->row_ptr[t + 1]; z++) s += f->val[z];
    return s;
}

/* Row t of fa against row u of fb, sa and sb their sums (feat_row_sum); when both != NULL,
 * both[compact[f]]++ for every feature f active in both rows.
 * JS: with p = x/sa, q = y/sb and m = (p+q)/2, a feature active on one side only (q = 0)
 * contributes ½·p·log2(p/m) = ½·p exactly (m = p/2 exactly, p/m = 2, log2 2 = 1), so the
 * logarithms are taken on the intersection only; the terms are added in the same order. */
static feat_row compare_feat_pair_s(const sae_sparse *fa, int64_t t, const sae_sparse *fb, int64_t u, double sa,
                                    double sb, int32_t *both, const int32_t *compact) {
    int64_t i = fa->row_ptr[t], ie = fa->row_ptr[t + 1], j = fb->row_ptr[u], je = fb->row_ptr[u + 1];
    double xy = 0, xx = 0, yy = 0, d2 = 0;
    int64_t inter = 0, uni = 0;
    int dojs = sa > 0 && sb > 0;
    double js = 0;
    while (i < ie || j < je) {
        double x = 0, y = 0;
        if (j >= je || (i < ie && fa->idx[i] < fb->idx[j])) {
            x = fa->val[i++];
            xx += x * x;
            d2 += x * x;
            if (x != 0) {
                uni++;
                if (dojs) {
                    double p = x / sa;
                    if (p > 0) js += 0.5 * p;
                }
            }
        } else if (i >= ie || fb->idx[j] < fa->idx[i]) {
            y = fb->val[j++];
            yy += y * y;
            d2 += y * y;
            if (y != 0) {
                uni++;
                if (dojs) {
                    double q = y / sb;
                    if (q > 0) js += 0.5 * q;
                }
            }
        } else {
            if (both) both[compact[fa->idx[i]]]++;
            x = fa->val[i++];
            y = fb->val[j++];
            xy += x * y;
            xx += x * x;
            yy += y * y;
            d2 += (x - y) * (x - y);
            uni += (x != 0) || (y != 0);
            inter += (x != 0) && (y != 0);
            if (dojs) {
                double p = x / sa, q = y / sb, m = 0.5 * (p + q);
                if (p > 0) js += 0.5 * p * log2(p / m);
                if (q > 0) js += 0.5 * q * log2(q / m);
            }
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

static feat_row compare_feat_rows(const sae_sparse *fa, const sae_sparse *fb, int64_t t) {
    return compare_feat_pair_s(fa, t, fb, t, feat_row_sum(fa, t), feat_row_sum(fb, t), NULL, NULL);
}

/* ---- bootstrap machinery ---- */

#define splitmix stats_splitmix
#define percentile stats_percentile

enum {
    S_COS_RAW = SHIFT_COS_RAW, S_L2_RAW = SHIFT_L2_RAW, S_COS_FEAT = SHIFT_COS_FEAT, S_L2_FEAT = SHIFT_L2_FEAT,
    S_JAC_TOK = SHIFT_JACCARD_TOKEN, S_JS_TOK = SHIFT_JS_TOKEN, S_JAC_FEAT = SHIFT_JACCARD_FEATURE,
    S_JS_MASS = SHIFT_JS_MASS, S_PEARSON = SHIFT_PEARSON_MEAN_FEAT, S_CKA = SHIFT_CKA_LINEAR,
    S_COS_CEN = SHIFT_COS_CENTRED, S_CKA_DEB = SHIFT_CKA_DEBIASED, S_N = SHIFT_N_METRICS
};
#define NG 7 /* per-group sums: cos_raw, l2_raw, cos_feat, l2_feat, jaccard, js, cos_centred */

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
    double *dK, *dL;   /* [n] K_ss, L_ss (for the debiased estimator) */
    float *Kf, *Lf;    /* [n×n] the whole centred Gram matrices when kept (for the permutation null) */
} cka_stats;

static void cka_free(cka_stats *c) {
    for (int k = 0; k < 3; k++) free(c->P[k]);
    free(c->RK);
    free(c->RL);
    free(c->dK);
    free(c->dL);
    free(c->Kf);
    free(c->Lf);
    memset(c, 0, sizeof *c); /* cka_build frees on failure, and its caller frees again */
}

/* Build CKA sufficient statistics from globally centred rows (translation invariance keeps
 * the weighted re-centring below well conditioned). */
static int cka_build(cka_stats *c, const float *a, const float *b, int64_t n, int d, int64_t G, const int64_t *grp,
                     int keep) {
    memset(c, 0, sizeof *c);
    c->n = n;
    c->G = G;
    /* keep: one block of all n rows, kept as Kf/Lf */
    const int BL = keep ? (int)n : 256;
    float *xa = malloc((size_t)n * d * sizeof *xa), *xb = malloc((size_t)n * d * sizeof *xb);
    float *ka = malloc((size_t)BL * n * sizeof *ka), *kb = malloc((size_t)BL * n * sizeof *kb);
    for (int k = 0; k < 3; k++) c->P[k] = calloc((size_t)(G * G), sizeof(double));
    c->RK = calloc((size_t)(n * G), sizeof(double));
    c->RL = calloc((size_t)(n * G), sizeof(double));
    c->dK = calloc((size_t)n, sizeof(double));
    c->dL = calloc((size_t)n, sizeof(double));
    int rc = -1;
    if (!xa || !xb || !ka || !kb || !c->P[0] || !c->P[1] || !c->P[2] || !c->RK || !c->RL || !c->dK || !c->dL) goto done;
    stats_center_cols(a, n, d, xa, NULL);
    stats_center_cols(b, n, d, xb, NULL);
    for (int64_t s0 = 0; s0 < n; s0 += BL) {
        int nb = (int)(n - s0 < BL ? n - s0 : BL);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int)n, d, 1.0f, xa + (size_t)s0 * d, d, xa, d, 0.0f, ka, (int)n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int)n, d, 1.0f, xb + (size_t)s0 * d, d, xb, d, 0.0f, kb, (int)n);
        for (int r = 0; r < nb; r++) {
            int64_t s = s0 + r, gs = grp[s];
            const float *kr = ka + (size_t)r * n, *lr = kb + (size_t)r * n;
            double *pkl = c->P[0] + gs * G, *pkk = c->P[1] + gs * G, *pll = c->P[2] + gs * G;
            double *rk = c->RK + s * G, *rl = c->RL + s * G;
            c->dK[s] = kr[s];
            c->dL[s] = lr[s];
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
    if (!rc && keep) {
        c->Kf = ka;
        c->Lf = kb;
        ka = kb = NULL;
    }
    free(ka);
    free(kb);
    if (rc) cka_free(c);
    return rc;
}

static double hsic_u(double trKL, double sK, double sL, double sKL, double n) {
    return (trKL + sK * sL / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * sKL) / (n * (n - 3));
}

/* Weighted linear CKA for group multiplicities w (double[G]): the biased one is returned, the
 * debiased one stored in *deb: the unbiased HSIC on the N = W resampled rows where, as for
 * the diagonal, every pair of copies of the same original row is excluded (K̃ zero there;
 * counting such pairs as distinct rows would bring the bias back: ≈0.8 on independent data).
 * With w_s the multiplicity of row s:
 *   tr(K̃L̃) = Σ_st w_s w_t K_st L_st − Σ_s w_s² K_ss L_ss,  1ᵀK̃1 = W²κ − Σ_s w_s² K_ss,
 *   1ᵀK̃L̃1 = Σ_s w_s (W k_s − w_s K_ss)(W l_s − w_s L_ss). */
static double cka_weighted(const cka_stats *c, const double *w, const int64_t *grp, double *kbuf, double *lbuf,
                           double *deb) {
    int64_t G = c->G, n = c->n;
    double W = 0;
    *deb = NAN;
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
    if (W > 3) {
        double dkl = 0, dkk = 0, dll = 0, tk = 0, tl = 0, xkl = 0, xkk = 0, xll = 0;
        for (int64_t s = 0; s < n; s++) {
            double ws = w[grp[s]];
            if (ws == 0) continue;
            double K = c->dK[s], L = c->dL[s], rk = W * kbuf[s] - ws * K, rl = W * lbuf[s] - ws * L;
            dkl += ws * ws * K * L;
            dkk += ws * ws * K * K;
            dll += ws * ws * L * L;
            tk += ws * ws * K;
            tl += ws * ws * L;
            xkl += ws * rk * rl;
            xkk += ws * rk * rk;
            xll += ws * rl * rl;
        }
        double sK = W * W * kap - tk, sL = W * W * lam - tl;
        double ukl = hsic_u(T1[0] - dkl, sK, sL, xkl, W);
        double ukk = hsic_u(T1[1] - dkk, sK, sK, xkk, W);
        double ull = hsic_u(T1[2] - dll, sL, sL, xll, W);
        if (ukk > 0 && ull > 0) *deb = ukl / sqrt(ukk * ull);
    }
    double hkl = T1[0] - 2 * W * T2[0] + W * W * kap * lam;
    double hkk = T1[1] - 2 * W * T2[1] + W * W * kap * kap;
    double hll = T1[2] - 2 * W * T2[2] + W * W * lam * lam;
    if (hkk <= 0 || hll <= 0) return NAN;
    return hkl / sqrt(hkk * hll);
}

/* ---- permutation nulls ----
 * Permutation π pairs row t of A with row π(t) of B; every pairing-dependent statistic is
 * recomputed exactly as for the data (same formulas, same conventions). Per-row metrics cost
 * O(n·d + nonzeros) per permutation; CKA uses the two centred n×n Gram matrices:
 *   S = Σ_st K_st L_π(s)π(t), D = Σ_s K_ss L_π(s)π(s), X = Σ_s r^K_s r^L_π(s) (row sums r),
 *   biased HSIC = S − 2X/n + ΣK·ΣL/n², debiased: tr(K̃L̃) = S − D, 1ᵀK̃L̃1 = Σ_s (r^K_s − K_ss)(r^L_π(s) − L_π(s)π(s)). */
typedef struct {
    const shift_input *in;
    int64_t n;
    int d, feats, do_cka;
    const double *mu_a, *mu_b;
    double *na2, *nb2, *ca2, *cb2;      /* squared norms of raw and centred rows */
    const int32_t *compact;
    int64_t n_alive;
    int64_t *cnt_a, *cnt_b;             /* [n_alive] rows where the feature is active, per model */
    double *fsum_a, *fsum_b;            /* [n] feature row sums (feat_row_sum) */
    float *K, *L;                       /* [n×n] centred Gram matrices */
    float *C;                           /* [n×n] centred cross products (a_s − ā)·(b_t − b̄), or NULL */
    double *ua, *vb, mm;                /* a_s·b̄, ā·b_t, ā·b̄: raw a_s·b_t = C_st + ua_s + vb_t − mm */
    double *rK, *rL, sumK, sumL, trK, trL, hkk, hll, ukk, ull;
} perm_ctx;

/* Is row s of an n-row loop inside a full block of four (s − s mod 4 + 4 ≤ n)? */
static int s4_valid(int64_t s, int64_t n) { return s - s % 4 + 4 <= n; }

static void perm_stats(const perm_ctx *c, const int64_t *pi, int32_t *both, double *st) {
    const shift_input *in = c->in;
    int64_t n = c->n;
    int d = c->d;
    double scos = 0, sl2 = 0, scen = 0;
    for (int64_t t = 0; c->C && t < n; t++) {
        /* from the cross products: O(1) per row (rounding ~1e-7 of the norms, float Gram) */
        int64_t u = pi[t];
        double cc = c->C[(size_t)t * n + u], xy = cc + c->ua[t] + c->vb[u] - c->mm;
        double xx = c->na2[t], yy = c->nb2[u], d2 = xx + yy - 2 * xy;
        scos += (xx == 0 && yy == 0) ? 1.0 : (xx == 0 || yy == 0) ? 0.0 : xy / (sqrt(xx) * sqrt(yy));
        sl2 += sqrt(d2 > 0 ? d2 : 0);
        xx = c->ca2[t];
        yy = c->cb2[u];
        scen += (xx == 0 && yy == 0) ? 1.0 : (xx == 0 || yy == 0) ? 0.0 : cc / (sqrt(xx) * sqrt(yy));
    }
    for (int64_t t = 0; !c->C && t < n; t++) {
        int64_t u = pi[t];
        const float *x = in->a + (size_t)t * d, *y = in->b + (size_t)u * d;
        double xy = 0, d2 = 0, cc = 0;
        for (int i = 0; i < d; i++) {
            double xv = x[i], yv = y[i];
            xy += xv * yv;
            d2 += (xv - yv) * (xv - yv);
            cc += (xv - c->mu_a[i]) * (yv - c->mu_b[i]);
        }
        double xx = c->na2[t], yy = c->nb2[u];
        scos += (xx == 0 && yy == 0) ? 1.0 : (xx == 0 || yy == 0) ? 0.0 : xy / (sqrt(xx) * sqrt(yy));
        sl2 += sqrt(d2);
        xx = c->ca2[t];
        yy = c->cb2[u];
        scen += (xx == 0 && yy == 0) ? 1.0 : (xx == 0 || yy == 0) ? 0.0 : cc / (sqrt(xx) * sqrt(yy));
    }
    for (int k = 0; k < S_N; k++) st[k] = NAN;
    st[S_COS_RAW] = scos / n;
    st[S_L2_RAW] = sl2 / n;
    st[S_COS_CEN] = scen / n;
    if (c->feats) {
        double f4[4] = {0, 0, 0, 0};
        memset(both, 0, (size_t)(c->n_alive + 1) * sizeof *both);
        for (int64_t t = 0; t < n; t++) {
            feat_row fr = compare_feat_pair_s(in->fa, t, in->fb, pi[t], c->fsum_a[t], c->fsum_b[pi[t]], both, c->compact);
            f4[0] += fr.cos;
            f4[1] += fr.l2;
            f4[2] += fr.jac;
            f4[3] += fr.js;
        }
        st[S_COS_FEAT] = f4[0] / n;
        st[S_L2_FEAT] = f4[1] / n;
        st[S_JAC_TOK] = f4[2] / n;
        st[S_JS_TOK] = f4[3] / n;
        double js = 0;
        int64_t nf = 0;
        for (int64_t q = 0; q < c->n_alive; q++) {
            int64_t uni = c->cnt_a[q] + c->cnt_b[q] - both[q];
            if (uni > 0) {
                js += (double)both[q] / (double)uni;
                nf++;
            }
        }
        st[S_JAC_FEAT] = nf ? js / nf : NAN;
    }
    if (c->do_cka) {
        double S = 0, D = 0, X = 0, Xu = 0, rs4[4] = {0, 0, 0, 0};
        for (int64_t s = 0; s < n; s++) {
            const float *kr = c->K + (size_t)s * n, *lr = c->L + (size_t)pi[s] * n;
            double rs;
            if (s % 4 == 0 && s + 4 <= n) {
                /* rows s..s+3 summed side by side (four independent addition chains, each in t
                   order: the same sums as one row at a time, without waiting on one chain) */
                const float *k1 = kr + n, *k2 = kr + 2 * n, *k3 = kr + 3 * n;
                const float *l1 = c->L + (size_t)pi[s + 1] * n, *l2 = c->L + (size_t)pi[s + 2] * n,
                            *l3 = c->L + (size_t)pi[s + 3] * n;
                double r0 = 0, r1 = 0, r2 = 0, r3 = 0;
                for (int64_t t = 0; t < n; t++) {
                    int64_t u = pi[t];
                    r0 += (double)kr[t] * lr[u];
                    r1 += (double)k1[t] * l1[u];
                    r2 += (double)k2[t] * l2[u];
                    r3 += (double)k3[t] * l3[u];
                }
                rs4[0] = r0; rs4[1] = r1; rs4[2] = r2; rs4[3] = r3;
            }
            if (s4_valid(s, n)) rs = rs4[s % 4];
            else {
                rs = 0;
                for (int64_t t = 0; t < n; t++) rs += (double)kr[t] * lr[pi[t]];
            }
            S += rs;
            double Ks = kr[s], Ls = lr[pi[s]];
            D += Ks * Ls;
            X += c->rK[s] * c->rL[pi[s]];
            Xu += (c->rK[s] - Ks) * (c->rL[pi[s]] - Ls);
        }
        double nn = (double)n;
        double hkl = S - 2 * X / nn + c->sumK * c->sumL / (nn * nn);
        st[S_CKA] = (c->hkk > 0 && c->hll > 0) ? hkl / sqrt(c->hkk * c->hll) : NAN;
        if (n > 3 && c->ukk > 0 && c->ull > 0)
            st[S_CKA_DEB] = hsic_u(S - D, c->sumK - c->trK, c->sumL - c->trL, Xu, nn) / sqrt(c->ukk * c->ull);
    }
}

/* Fill r->null[]; obs = point estimates [S_N]. */
static int perm_nulls(const shift_input *in, const shift_opts *opt, const float *Kf, const float *Lf,
                      const double *mu_a, const double *mu_b,
                      const int32_t *compact, const int32_t *alive_ids, int64_t n_alive, const double *obs,
                      shift_result *r) {
    int64_t n = in->n_rows;
    int d = in->d, P = opt->n_perm;
    for (int k = 0; k < S_N; k++) r->null[k] = (stats_null){0, NAN, NAN, NAN, NAN};
    if (P <= 0 || n < 2) return 0;
    perm_ctx c = {.in = in, .n = n, .d = d, .feats = r->has_feats, .mu_a = mu_a, .mu_b = mu_b, .compact = compact,
                  .n_alive = n_alive};
    c.do_cka = n <= opt->perm_cka_max_rows;
    int rc = -1;
    double *nullv = malloc((size_t)P * S_N * sizeof *nullv), *col = malloc((size_t)P * sizeof *col);
    float *xa = NULL, *xb = NULL;
    c.na2 = malloc((size_t)n * sizeof(double));
    c.nb2 = malloc((size_t)n * sizeof(double));
    c.ca2 = malloc((size_t)n * sizeof(double));
    c.cb2 = malloc((size_t)n * sizeof(double));
    if (!nullv || !col || !c.na2 || !c.nb2 || !c.ca2 || !c.cb2) goto done;
    for (int64_t t = 0; t < n; t++) {
        const float *x = in->a + (size_t)t * d, *y = in->b + (size_t)t * d;
        double s[4] = {0, 0, 0, 0};
        for (int i = 0; i < d; i++) {
            s[0] += (double)x[i] * x[i];
            s[1] += (double)y[i] * y[i];
            s[2] += (x[i] - mu_a[i]) * (x[i] - mu_a[i]);
            s[3] += (y[i] - mu_b[i]) * (y[i] - mu_b[i]);
        }
        c.na2[t] = s[0];
        c.nb2[t] = s[1];
        c.ca2[t] = s[2];
        c.cb2[t] = s[3];
    }
    if (c.feats) {
        c.cnt_a = malloc((size_t)(n_alive + 1) * sizeof *c.cnt_a);
        c.cnt_b = malloc((size_t)(n_alive + 1) * sizeof *c.cnt_b);
        c.fsum_a = malloc((size_t)n * sizeof *c.fsum_a);
        c.fsum_b = malloc((size_t)n * sizeof *c.fsum_b);
        if (!c.cnt_a || !c.cnt_b || !c.fsum_a || !c.fsum_b) goto done;
        for (int64_t t = 0; t < n; t++) {
            c.fsum_a[t] = feat_row_sum(in->fa, t);
            c.fsum_b[t] = feat_row_sum(in->fb, t);
        }
        for (int64_t q = 0; q < n_alive; q++) {
            c.cnt_a[q] = r->count_a[alive_ids[q]];
            c.cnt_b[q] = r->count_b[alive_ids[q]];
        }
    }
    if (c.do_cka) {
        xa = malloc((size_t)n * d * sizeof *xa);
        xb = malloc((size_t)n * d * sizeof *xb);
        c.K = Kf ? NULL : malloc((size_t)n * n * sizeof *c.K);
        c.L = Lf ? NULL : malloc((size_t)n * n * sizeof *c.L);
        c.rK = calloc((size_t)n, sizeof *c.rK);
        c.rL = calloc((size_t)n, sizeof *c.rL);
        if (!xa || !xb || (!Kf && !c.K) || (!Lf && !c.L) || !c.rK || !c.rL) goto done;
        for (int64_t t = 0; t < n; t++)
            for (int i = 0; i < d; i++) {
                xa[(size_t)t * d + i] = (float)(in->a[(size_t)t * d + i] - mu_a[i]);
                xb[(size_t)t * d + i] = (float)(in->b[(size_t)t * d + i] - mu_b[i]);
            }
        if (!Kf) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, d, 1.0f, xa, d, xa, d, 0.0f, c.K, (int)n);
        if (!Lf) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, d, 1.0f, xb, d, xb, d, 0.0f, c.L, (int)n);
        if (Kf) c.K = (float *)Kf; /* borrowed: not freed below */
        if (Lf) c.L = (float *)Lf;
        /* cross products for the per-row raw metrics (required: the O(n·d) path rounds
         * differently, and results must not depend on how much memory was free) */
        c.C = malloc((size_t)n * n * sizeof *c.C);
        c.ua = malloc((size_t)n * sizeof *c.ua);
        c.vb = malloc((size_t)n * sizeof *c.vb);
        if (!c.C || !c.ua || !c.vb) goto done;
        {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, d, 1.0f, xa, d, xb, d, 0.0f, c.C, (int)n);
            c.mm = 0;
            for (int i = 0; i < d; i++) c.mm += mu_a[i] * mu_b[i];
            for (int64_t t = 0; t < n; t++) {
                double u = 0, v = 0;
                for (int i = 0; i < d; i++) {
                    u += (double)in->a[(size_t)t * d + i] * mu_b[i];
                    v += mu_a[i] * (double)in->b[(size_t)t * d + i];
                }
                c.ua[t] = u;
                c.vb[t] = v;
            }
        }
        double kk = 0, ll = 0, rkk = 0, rll = 0, dkk = 0, dll = 0, xkk = 0, xll = 0;
        for (int64_t s = 0; s < n; s++) {
            for (int64_t t = 0; t < n; t++) {
                double K = c.K[(size_t)s * n + t], L = c.L[(size_t)s * n + t];
                c.rK[s] += K;
                c.rL[s] += L;
                kk += K * K;
                ll += L * L;
            }
            double Ks = c.K[(size_t)s * n + s], Ls = c.L[(size_t)s * n + s];
            c.sumK += c.rK[s];
            c.sumL += c.rL[s];
            c.trK += Ks;
            c.trL += Ls;
            rkk += c.rK[s] * c.rK[s];
            rll += c.rL[s] * c.rL[s];
            dkk += Ks * Ks;
            dll += Ls * Ls;
            xkk += (c.rK[s] - Ks) * (c.rK[s] - Ks);
            xll += (c.rL[s] - Ls) * (c.rL[s] - Ls);
        }
        double nn = (double)n;
        c.hkk = kk - 2 * rkk / nn + c.sumK * c.sumK / (nn * nn);
        c.hll = ll - 2 * rll / nn + c.sumL * c.sumL / (nn * nn);
        if (n > 3) {
            c.ukk = hsic_u(kk - dkk, c.sumK - c.trK, c.sumK - c.trK, xkk, nn);
            c.ull = hsic_u(ll - dll, c.sumL - c.trL, c.sumL - c.trL, xll, nn);
        }
        free(xa);
        free(xb);
        xa = xb = NULL;
    }
    int bad = 0, T = opt->threads > 0 ? opt->threads : omp_get_max_threads();
    if (T > P) T = P;
#pragma omp parallel num_threads(T)
    {
        int64_t *pi = malloc((size_t)n * sizeof *pi);
        int32_t *both = malloc((size_t)(n_alive + 1) * sizeof *both);
        if (!pi || !both) {
#pragma omp atomic write
            bad = 1;
        }
#pragma omp for schedule(dynamic)
        for (int rep = 0; rep < P; rep++) {
            if (!pi || !both) continue;
            if (opt->perm_idx) memcpy(pi, opt->perm_idx + (size_t)rep * n, (size_t)n * sizeof *pi);
            else stats_permutation(opt->seed, rep, n, pi);
            perm_stats(&c, pi, both, nullv + (size_t)rep * S_N);
        }
        free(pi);
        free(both);
    }
    if (bad) goto done;
    for (int k = 0; k < S_N; k++) {
        if (!shift_metric_permutable(k) || (shift_metric_is_feature(k) && !c.feats)) continue;
        if ((k == S_CKA || k == S_CKA_DEB) && !c.do_cka) continue;
        for (int rep = 0; rep < P; rep++) col[rep] = nullv[(size_t)rep * S_N + k];
        r->null[k] = stats_null_summary(obs[k], col, P, shift_metric_direction(k));
    }
    rc = 0;
done:
    free(nullv);
    free(col);
    free(xa);
    free(xb);
    free(c.na2);
    free(c.nb2);
    free(c.ca2);
    free(c.cb2);
    free(c.cnt_a);
    free(c.cnt_b);
    free(c.fsum_a);
    free(c.fsum_b);
    if (c.K != Kf) free(c.K);
    if (c.L != Lf) free(c.L);
    free(c.C);
    free(c.ua);
    free(c.vb);
    free(c.rK);
    free(c.rL);
    return rc;
}

/* ---- shift_compare in steps: per-row values with per-group sums, per-feature counts and
 * per-group sparse feature sums, the statistics of one weight vector per bootstrap
 * replicate, intervals, then the permutation nulls ---- */

typedef struct {
    const shift_input *in;
    const shift_opts *opt;
    shift_result *r;
    int64_t n, G;
    int d, feats, m;
    int64_t *grp, *gcount;  /* [n] group of each row, [G] rows per group */
    double *gsum;           /* [G × NG] per-group sums of the NG per-row metrics */
    double *mu_a, *mu_b;    /* [d] column means */
    group_feats gf;
    int32_t *compact, *alive_ids; /* [m] compact id of each alive feature (-1: dead); [n_alive] its inverse */
    int64_t n_alive;
    cka_stats cs;
    int do_cka;
    int B;                  /* bootstrap replicates */
    double *boot;           /* [(B+1) × S_N]: replicate 0 = the point estimate */
    double *w, *kbuf, *lbuf, *ta, *tb, *tboth, *tuni; /* scratch of one replicate */
} cmp_ctx;

static void cmp_free(cmp_ctx *x) {
    free(x->grp);
    free(x->gsum);
    free(x->mu_a);
    free(x->mu_b);
    free(x->gcount);
    free(x->compact);
    free(x->alive_ids);
    free(x->gf.ptr);
    free(x->gf.fid);
    free(x->gf.sa);
    free(x->gf.sb);
    free(x->gf.both);
    free(x->gf.uni);
    cka_free(&x->cs);
    free(x->boot);
    free(x->w);
    free(x->kbuf);
    free(x->lbuf);
    free(x->ta);
    free(x->tb);
    free(x->tboth);
    free(x->tuni);
}

static int check_input(const shift_input *in, rs_err *err) {
    int64_t n = in->n_rows, G = in->n_groups;
    if (n <= 0 || G <= 0 || !in->offsets || in->offsets[0] != 0 || in->offsets[G] != n)
        return rs_errf(err, "shift: offsets must run from 0 to the row count (%lld rows, %lld groups)",
                       (long long)n, (long long)G);
    for (int64_t g = 0; g < G; g++)
        if (in->offsets[g + 1] < in->offsets[g]) return rs_errf(err, "shift: offsets decrease at group %lld", (long long)g);
    if (in->fa && in->fb && (in->fa->n != n || in->fb->n != n || in->fa->d_sae != in->fb->d_sae))
        return rs_errf(err, "shift: feature rows do not match activation rows");
    return 0;
}

/* Raw per-row metrics (cos, l2, centred cos) and their per-group sums. */
static int raw_rows(cmp_ctx *x) {
    const shift_input *in = x->in;
    shift_result *r = x->r;
    int64_t n = x->n, G = x->G;
    int d = x->d;
    x->grp = malloc((size_t)n * sizeof *x->grp);
    x->gsum = calloc((size_t)(G * NG), sizeof *x->gsum);
    x->mu_a = malloc((size_t)d * sizeof *x->mu_a);
    x->mu_b = malloc((size_t)d * sizeof *x->mu_b);
    x->gcount = calloc((size_t)G, sizeof *x->gcount);
    r->row_cos_raw = malloc((size_t)n * sizeof(float));
    r->row_l2_raw = malloc((size_t)n * sizeof(float));
    if (!x->grp || !x->gsum || !x->gcount || !r->row_cos_raw || !r->row_l2_raw || !x->mu_a || !x->mu_b) return -1;
    col_means(in->a, n, d, x->mu_a);
    col_means(in->b, n, d, x->mu_b);
    for (int64_t g = 0; g < G; g++)
        for (int64_t t = in->offsets[g]; t < in->offsets[g + 1]; t++) x->grp[t] = g;
    for (int64_t g = 0; g < G; g++) x->gcount[g] = in->offsets[g + 1] - in->offsets[g];
    for (int64_t t = 0; t < n; t++) {
        const float *xa = in->a + (size_t)t * d, *yb = in->b + (size_t)t * d;
        double d2 = 0;
        for (int i = 0; i < d; i++) d2 += ((double)xa[i] - yb[i]) * ((double)xa[i] - yb[i]);
        double cs0 = shift_cosine(xa, yb, d);
        r->row_cos_raw[t] = (float)cs0;
        r->row_l2_raw[t] = (float)sqrt(d2);
        x->gsum[x->grp[t] * NG + 0] += cs0;
        x->gsum[x->grp[t] * NG + 1] += sqrt(d2);
        x->gsum[x->grp[t] * NG + 6] += cos_centred_row(xa, yb, x->mu_a, x->mu_b, d);
    }
    return 0;
}

/* Feature per-row metrics and their per-group sums; per-feature counts and sums; the
 * compact numbering of the features alive in either model. */
static int feature_rows(cmp_ctx *x) {
    const sae_sparse *fa = x->in->fa, *fb = x->in->fb;
    shift_result *r = x->r;
    int64_t n = x->n;
    int m = x->m;
    r->row_cos_feat = malloc((size_t)n * sizeof(float));
    r->row_l2_feat = malloc((size_t)n * sizeof(float));
    r->row_jaccard = malloc((size_t)n * sizeof(float));
    r->row_js = malloc((size_t)n * sizeof(float));
    r->count_a = calloc((size_t)m, sizeof(int64_t));
    r->count_b = calloc((size_t)m, sizeof(int64_t));
    r->count_both = calloc((size_t)m, sizeof(int64_t));
    r->sum_a = calloc((size_t)m, sizeof(double));
    r->sum_b = calloc((size_t)m, sizeof(double));
    x->compact = malloc((size_t)m * sizeof *x->compact);
    if (!r->row_cos_feat || !r->row_l2_feat || !r->row_jaccard || !r->row_js || !r->count_a || !r->count_b ||
        !r->count_both || !r->sum_a || !r->sum_b || !x->compact)
        return -1;
    for (int64_t t = 0; t < n; t++) {
        feat_row fr = compare_feat_rows(fa, fb, t);
        r->row_cos_feat[t] = (float)fr.cos;
        r->row_l2_feat[t] = (float)fr.l2;
        r->row_jaccard[t] = (float)fr.jac;
        r->row_js[t] = (float)fr.js;
        double *gs = x->gsum + x->grp[t] * NG;
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
    x->n_alive = 0;
    for (int j = 0; j < m; j++) {
        r->n_alive_a += r->count_a[j] > 0;
        r->n_alive_b += r->count_b[j] > 0;
        x->compact[j] = (r->count_a[j] || r->count_b[j]) ? (int32_t)x->n_alive++ : -1;
    }
    r->n_alive_either = x->n_alive;
    return 0;
}

/* Per-group sparse sums over the alive features (scratch dense over the alive set), and
 * from them the rows where a feature is active in both models. */
static int group_feature_sums(cmp_ctx *x) {
    const shift_input *in = x->in;
    const sae_sparse *fa = in->fa, *fb = in->fb;
    int64_t n = x->n, G = x->G, n_alive = x->n_alive;
    group_feats *gf = &x->gf;
    const int32_t *compact = x->compact;
    x->alive_ids = malloc((size_t)(n_alive ? n_alive : 1) * sizeof *x->alive_ids);
    double *dsa = calloc((size_t)(n_alive + 1), sizeof *dsa), *dsb = calloc((size_t)(n_alive + 1), sizeof *dsb);
    int32_t *dboth = calloc((size_t)(n_alive + 1), sizeof *dboth), *duni = calloc((size_t)(n_alive + 1), sizeof *duni);
    int32_t *touched = malloc((size_t)(n_alive + 1) * sizeof *touched);
    uint8_t *mark = calloc((size_t)(n_alive + 1), 1);
    size_t cap = (size_t)(fa->row_ptr[n] + fb->row_ptr[n]) + 1;
    gf->ptr = calloc((size_t)G + 1, sizeof *gf->ptr);
    gf->fid = malloc(cap * sizeof *gf->fid);
    gf->sa = malloc(cap * sizeof *gf->sa);
    gf->sb = malloc(cap * sizeof *gf->sb);
    gf->both = malloc(cap * sizeof *gf->both);
    gf->uni = malloc(cap * sizeof *gf->uni);
    int bad = !x->alive_ids || !dsa || !dsb || !dboth || !duni || !touched || !mark || !gf->ptr || !gf->fid || !gf->sa ||
              !gf->sb || !gf->both || !gf->uni;
    if (!bad) {
        for (int j = 0; j < x->m; j++)
            if (compact[j] >= 0) x->alive_ids[compact[j]] = j;
        int64_t nz = 0;
        for (int64_t g = 0; g < G; g++) {
            int nt = 0;
            for (int64_t t = in->offsets[g]; t < in->offsets[g + 1]; t++) {
                int64_t i = fa->row_ptr[t], ie = fa->row_ptr[t + 1], j = fb->row_ptr[t], je = fb->row_ptr[t + 1];
                while (i < ie || j < je) {
                    int f;
                    double xv = 0, yv = 0;
                    if (j >= je || (i < ie && fa->idx[i] < fb->idx[j])) {
                        f = fa->idx[i];
                        xv = fa->val[i++];
                    } else if (i >= ie || fb->idx[j] < fa->idx[i]) {
                        f = fb->idx[j];
                        yv = fb->val[j++];
                    } else {
                        f = fa->idx[i];
                        xv = fa->val[i++];
                        yv = fb->val[j++];
                    }
                    int c = compact[f];
                    if (!mark[c]) {
                        mark[c] = 1;
                        touched[nt++] = c;
                    }
                    dsa[c] += xv;
                    dsb[c] += yv;
                    dboth[c] += xv != 0 && yv != 0;
                    duni[c] += xv != 0 || yv != 0;
                }
            }
            for (int q = 0; q < nt; q++) {
                int c = touched[q];
                gf->fid[nz] = c;
                gf->sa[nz] = (float)dsa[c];
                gf->sb[nz] = (float)dsb[c];
                gf->both[nz] = dboth[c];
                gf->uni[nz] = duni[c];
                nz++;
                dsa[c] = dsb[c] = 0;
                dboth[c] = duni[c] = 0;
                mark[c] = 0;
            }
            gf->ptr[g + 1] = nz;
        }
        for (int64_t z = 0; z < gf->ptr[G]; z++) x->r->count_both[x->alive_ids[gf->fid[z]]] += gf->both[z];
    }
    free(dsa);
    free(dsb);
    free(dboth);
    free(duni);
    free(touched);
    free(mark);
    return bad ? -1 : 0;
}

/* Every statistic for one weight vector w over groups (all ones = the point estimate). */
static void weighted_stats(cmp_ctx *x, const double *w, double *st) {
    int64_t G = x->G, n_alive = x->n_alive;
    double W = 0, s6[NG] = {0};
    for (int64_t g = 0; g < G; g++) {
        if (w[g] == 0) continue;
        W += w[g] * x->gcount[g];
        for (int k = 0; k < NG; k++) s6[k] += w[g] * x->gsum[g * NG + k];
    }
    st[S_COS_CEN] = W > 0 ? s6[6] / W : NAN;
    st[S_COS_RAW] = W > 0 ? s6[0] / W : NAN;
    st[S_L2_RAW] = W > 0 ? s6[1] / W : NAN;
    st[S_COS_FEAT] = W > 0 ? s6[2] / W : NAN;
    st[S_L2_FEAT] = W > 0 ? s6[3] / W : NAN;
    st[S_JAC_TOK] = W > 0 ? s6[4] / W : NAN;
    st[S_JS_TOK] = W > 0 ? s6[5] / W : NAN;
    st[S_JAC_FEAT] = st[S_JS_MASS] = st[S_PEARSON] = NAN;
    if (x->feats) {
        const group_feats *gf = &x->gf;
        memset(x->ta, 0, (size_t)n_alive * sizeof *x->ta);
        memset(x->tb, 0, (size_t)n_alive * sizeof *x->tb);
        memset(x->tboth, 0, (size_t)n_alive * sizeof *x->tboth);
        memset(x->tuni, 0, (size_t)n_alive * sizeof *x->tuni);
        for (int64_t g = 0; g < G; g++) {
            if (w[g] == 0) continue;
            for (int64_t z = gf->ptr[g]; z < gf->ptr[g + 1]; z++) {
                int c = gf->fid[z];
                x->ta[c] += w[g] * gf->sa[z];
                x->tb[c] += w[g] * gf->sb[z];
                x->tboth[c] += w[g] * gf->both[z];
                x->tuni[c] += w[g] * gf->uni[z];
            }
        }
        double js = 0, nf = 0;
        for (int64_t c = 0; c < n_alive; c++)
            if (x->tuni[c] > 0) {
                js += x->tboth[c] / x->tuni[c];
                nf += 1;
            }
        st[S_JAC_FEAT] = nf > 0 ? js / nf : NAN;
        st[S_JS_MASS] = shift_js_bits(x->ta, x->tb, n_alive);
        st[S_PEARSON] = shift_pearson(x->ta, x->tb, n_alive);
    }
    st[S_CKA] = st[S_CKA_DEB] = NAN;
    if (x->do_cka) st[S_CKA] = cka_weighted(&x->cs, w, x->grp, x->kbuf, x->lbuf, &st[S_CKA_DEB]);
}

/* The point estimate (replicate 0) and B bootstrap replicates into x->boot. */
static int bootstrap(cmp_ctx *x) {
    int64_t n = x->n, G = x->G;
    const shift_opts *opt = x->opt;
    x->B = opt->n_boot > 0 ? opt->n_boot : 0;
    x->boot = malloc((size_t)(x->B + 1) * S_N * sizeof *x->boot);
    x->w = malloc((size_t)G * sizeof *x->w);
    x->kbuf = malloc((size_t)n * sizeof *x->kbuf);
    x->lbuf = malloc((size_t)n * sizeof *x->lbuf);
    if (x->feats) {
        x->ta = malloc((size_t)(x->n_alive + 1) * sizeof *x->ta);
        x->tb = malloc((size_t)(x->n_alive + 1) * sizeof *x->tb);
        x->tboth = malloc((size_t)(x->n_alive + 1) * sizeof *x->tboth);
        x->tuni = malloc((size_t)(x->n_alive + 1) * sizeof *x->tuni);
        if (!x->ta || !x->tb || !x->tboth || !x->tuni) return -1;
    }
    if (!x->boot || !x->w || !x->kbuf || !x->lbuf) return -1;
    double *w = x->w;
    uint64_t rng = opt->seed;
    for (int rep = 0; rep <= x->B; rep++) {
        if (rep == 0) {
            for (int64_t g = 0; g < G; g++) w[g] = 1;
        } else if (opt->boot_counts) {
            const int32_t *cnt = opt->boot_counts + (size_t)(rep - 1) * G;
            for (int64_t g = 0; g < G; g++) w[g] = cnt[g];
        } else {
            memset(w, 0, (size_t)G * sizeof *w);
            for (int64_t k = 0; k < G; k++) w[splitmix(&rng) % (uint64_t)G] += 1;
        }
        weighted_stats(x, w, x->boot + (size_t)rep * S_N);
    }
    if (!x->do_cka) x->boot[S_CKA_DEB] = stats_cka_debiased(x->in->a, x->in->b, n, x->d, &x->boot[S_CKA]);
    return 0;
}

/* Values and 95% percentile intervals from the replicates. */
static int intervals(cmp_ctx *x) {
    int B = x->B;
    const double *boot = x->boot;
    double *col = malloc((size_t)(B > 0 ? B : 1) * sizeof *col);
    if (!col) return -1;
    for (int k = 0; k < S_N; k++) {
        rs_stat *dk = (rs_stat *)shift_metric_stat(x->r, k);
        dk->value = boot[k];
        dk->lo = dk->hi = NAN;
        if (B > 0 && isfinite(boot[k]) && !((k == S_CKA || k == S_CKA_DEB) && !x->do_cka)) {
            for (int rep = 0; rep < B; rep++) col[rep] = boot[(size_t)(rep + 1) * S_N + k];
            dk->lo = percentile(col, B, 0.025);
            for (int rep = 0; rep < B; rep++) col[rep] = boot[(size_t)(rep + 1) * S_N + k];
            dk->hi = percentile(col, B, 0.975);
        }
        if (!x->feats && k >= S_COS_FEAT && k <= S_PEARSON) dk->value = dk->lo = dk->hi = NAN;
    }
    free(col);
    return 0;
}

int shift_compare(const shift_input *in, const shift_opts *opt, shift_result *r, rs_err *err) {
    shift_opts defo;
    if (!opt) {
        shift_opts_default(&defo);
        opt = &defo;
    }
    memset(r, 0, sizeof *r);
    if (check_input(in, err)) return -1;
    cmp_ctx x = {.in = in, .opt = opt, .r = r, .n = in->n_rows, .G = in->n_groups, .d = in->d,
                 .feats = in->fa && in->fb};
    x.m = x.feats ? in->fa->d_sae : 0;
    r->n_rows = x.n;
    r->n_groups = x.G;
    r->has_feats = x.feats;
    r->d_sae = x.m;
    int rc = -1;
    if (raw_rows(&x)) goto oom;
    if (x.feats && (feature_rows(&x) || group_feature_sums(&x))) goto oom;
    x.do_cka = x.n <= opt->cka_max_rows;
    int keep_gram = opt->n_perm > 0 && x.n <= opt->perm_cka_max_rows; /* the null reuses the Gram matrices */
    if (x.do_cka && cka_build(&x.cs, in->a, in->b, x.n, x.d, x.G, x.grp, keep_gram)) goto oom;
    if (bootstrap(&x) || intervals(&x)) goto oom;
    if (perm_nulls(in, opt, x.cs.Kf, x.cs.Lf, x.mu_a, x.mu_b, x.compact, x.alive_ids, x.n_alive, x.boot, r)) goto oom;
    rc = 0;
    goto done;
oom:
    rs_errk(err, RS_ENOMEM, "shift: out of memory (%lld rows, %lld groups)", (long long)x.n, (long long)x.G);
done:
    cmp_free(&x);
    if (rc) shift_result_free(r);
    return rc;
}
