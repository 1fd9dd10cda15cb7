/* Contrastive (InfoNCE) text↔image alignment and held-out retrieval (probe_align.h). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe_align.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_transfer.h"
#include "reprshift/stats.h"
#include "sae/train_common.h"

const int rs_align_ks[RS_ALIGN_NK] = {1, 5, 10};
const char *const rs_align_method_names[RS_ALIGN_METHODS] = {"infonce", "procrustes", "ridge"};

#define LN100 4.605170185988092

rs_infonce_opts rs_infonce_defaults(void) {
    return (rs_infonce_opts){.dim = 64, .steps = 500, .batch = 128, .lr = 1e-3, .temperature_init = 0.07,
                             .learn_temperature = 1, .seed = 0};
}

rs_align_opts rs_align_defaults(void) {
    return (rs_align_opts){.infonce = rs_infonce_defaults(), .ridge_alpha = 0.1, .procrustes_scale = 1, .n_boot = 1000,
                           .seed = 0, .null_draws = 1};
}

void rs_infonce_free(rs_infonce *m) {
    if (!m) return;
    free(m->params);
    free(m->mu_t);
    free(m->sd_t);
    free(m->mu_i);
    free(m->sd_i);
    memset(m, 0, sizeof *m);
}

/* standard normal from splitmix64 (Box–Muller, the cosine branch only) */
static double gauss(uint64_t *st) {
    double u1 = ((stats_splitmix(st) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (stats_splitmix(st) >> 11) * 0x1.0p-53;
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

int rs_infonce_init(rs_infonce *m, int dt, int di, int e, double temperature_init, uint64_t seed, rs_err *err) {
    memset(m, 0, sizeof *m);
    if (dt < 1 || di < 1 || e < 1) return rs_errf(err, "infonce: dimensions must be positive (d_t %d, d_i %d, e %d)", dt, di, e);
    if (!(temperature_init > 0 && isfinite(temperature_init)))
        return rs_errf(err, "infonce: temperature_init must be positive (got %g)", temperature_init);
    m->dt = dt, m->di = di, m->e = e;
    m->n_params = (size_t)dt * e + (size_t)di * e + 1;
    if (!(m->params = malloc(m->n_params * sizeof *m->params))) return rs_errk(err, RS_ENOMEM, "out of memory");
    m->Wt = m->params;
    m->Wi = m->Wt + (size_t)dt * e;
    m->log_scale = m->Wi + (size_t)di * e;
    uint64_t st = seed ^ 0x1F0CE5EEDULL;
    double at = 1 / sqrt((double)dt), ai = 1 / sqrt((double)di);
    for (size_t k = 0; k < (size_t)dt * e; k++) m->Wt[k] = (float)(at * gauss(&st));
    for (size_t k = 0; k < (size_t)di * e; k++) m->Wi[k] = (float)(ai * gauss(&st));
    double tau = log(1 / temperature_init);
    m->log_scale[0] = (float)(tau < 0 ? 0 : tau > LN100 ? LN100 : tau);
    m->loss_first = m->loss_last = NAN;
    return 0;
}

/* One side's forward: U = X W [B, e] (double), norms, Z = U / ‖U‖. */
static void project(const float *X, const float *W, int B, int d, int e, double *Xd, double *Wd, double *U, double *nrm,
                    double *Z) {
    for (size_t k = 0; k < (size_t)B * d; k++) Xd[k] = X[k];
    for (size_t k = 0; k < (size_t)d * e; k++) Wd[k] = W[k];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, e, d, 1.0, Xd, d, Wd, e, 0.0, U, e);
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int j = 0; j < e; j++) s += U[(size_t)b * e + j] * U[(size_t)b * e + j];
        nrm[b] = sqrt(s) > 1e-30 ? sqrt(s) : 1e-30;
        for (int j = 0; j < e; j++) Z[(size_t)b * e + j] = U[(size_t)b * e + j] / nrm[b];
    }
}

/* dU = (dZ − Z (Z·dZ)) / ‖U‖ in place of dZ, then g_W = Xᵀ dU (float). */
static void back_side(const double *Xd, const double *Z, const double *nrm, double *dZ, int B, int d, int e, double *gW,
                      float *g) {
    for (int b = 0; b < B; b++) {
        double dot = 0;
        for (int j = 0; j < e; j++) dot += Z[(size_t)b * e + j] * dZ[(size_t)b * e + j];
        for (int j = 0; j < e; j++) dZ[(size_t)b * e + j] = (dZ[(size_t)b * e + j] - Z[(size_t)b * e + j] * dot) / nrm[b];
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, e, B, 1.0, Xd, d, dZ, e, 0.0, gW, e);
    for (size_t k = 0; k < (size_t)d * e; k++) g[k] = (float)gW[k];
}

int rs_infonce_loss_grad(const rs_infonce *m, const float *Xt, const float *Xi, int B, float *g, double *loss,
                         rs_err *err) {
    int dt = m->dt, di = m->di, e = m->e, dm = dt > di ? dt : di;
    if (B < 1) return rs_errf(err, "infonce: empty batch");
    size_t be = (size_t)B * e, bb = (size_t)B * B;
    double *Xd = malloc(sizeof(double) * (size_t)B * dm), *Xd2 = malloc(sizeof(double) * (size_t)B * dm);
    double *Wd = malloc(sizeof(double) * (size_t)dm * e), *Ut = malloc(sizeof(double) * be * 6);
    double *nt = malloc(sizeof(double) * (size_t)B * 2), *L = malloc(sizeof(double) * bb * 2);
    if (!Xd || !Xd2 || !Wd || !Ut || !nt || !L) {
        free(Xd); free(Xd2); free(Wd); free(Ut); free(nt); free(L);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    double *Ui = Ut + be, *Zt = Ui + be, *Zi = Zt + be, *dZt = Zi + be, *dZi = dZt + be, *ni = nt + B, *P = L + bb;
    double s = exp((double)m->log_scale[0]);
    project(Xt, m->Wt, B, dt, e, Xd, Wd, Ut, nt, Zt);
    project(Xi, m->Wi, B, di, e, Xd2, Wd, Ui, ni, Zi);
    /* L = s Zt Ziᵀ */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, B, e, s, Zt, e, Zi, e, 0.0, L, B);
    /* P = dloss/dL = (softmax_rows(L) + softmax_cols(L) − 2I) / (2B) */
    double lr = 0, lc = 0;
    for (int a = 0; a < B; a++) {
        double mx = -INFINITY, sum = 0;
        for (int b = 0; b < B; b++) mx = L[(size_t)a * B + b] > mx ? L[(size_t)a * B + b] : mx;
        for (int b = 0; b < B; b++) sum += exp(L[(size_t)a * B + b] - mx);
        double lse = mx + log(sum);
        lr += lse - L[(size_t)a * B + a];
        for (int b = 0; b < B; b++) P[(size_t)a * B + b] = exp(L[(size_t)a * B + b] - lse) - (a == b);
    }
    for (int b = 0; b < B; b++) {
        double mx = -INFINITY, sum = 0;
        for (int a = 0; a < B; a++) mx = L[(size_t)a * B + b] > mx ? L[(size_t)a * B + b] : mx;
        for (int a = 0; a < B; a++) sum += exp(L[(size_t)a * B + b] - mx);
        double lse = mx + log(sum);
        lc += lse - L[(size_t)b * B + b];
        for (int a = 0; a < B; a++) P[(size_t)a * B + b] += exp(L[(size_t)a * B + b] - lse) - (a == b);
    }
    *loss = (lr + lc) / (2.0 * B);
    if (g) {
        double gtau = 0;
        for (size_t k = 0; k < bb; k++) {
            P[k] /= 2.0 * B;
            gtau += P[k] * L[k]; /* dL/dτ = L */
        }
        /* dZt = s P Zi, dZi = s Pᵀ Zt */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, e, B, s, P, B, Zi, e, 0.0, dZt, e);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, B, e, B, s, P, B, Zt, e, 0.0, dZi, e);
        back_side(Xd, Zt, nt, dZt, B, dt, e, Wd, g);
        back_side(Xd2, Zi, ni, dZi, B, di, e, Wd, g + (size_t)dt * e);
        g[m->n_params - 1] = (float)gtau;
    }
    free(Xd); free(Xd2); free(Wd); free(Ut); free(nt); free(L);
    return 0;
}

/* mean and population sd of each column of X [n, d] (sd 0 → 1) */
static int col_stats(const float *X, int n, int d, double **mu, double **sd) {
    *mu = calloc((size_t)d, sizeof **mu);
    *sd = calloc((size_t)d, sizeof **sd);
    if (!*mu || !*sd) return -1;
    for (size_t i = 0; i < (size_t)n; i++)
        for (int j = 0; j < d; j++) (*mu)[j] += X[i * d + j];
    for (int j = 0; j < d; j++) (*mu)[j] /= n;
    for (size_t i = 0; i < (size_t)n; i++)
        for (int j = 0; j < d; j++) (*sd)[j] += (X[i * d + j] - (*mu)[j]) * (X[i * d + j] - (*mu)[j]);
    for (int j = 0; j < d; j++) {
        (*sd)[j] = sqrt((*sd)[j] / n);
        if (!((*sd)[j] > 0)) (*sd)[j] = 1;
    }
    return 0;
}

static void standardize(const float *X, int n, int d, const double *mu, const double *sd, float *out) {
    for (size_t i = 0; i < (size_t)n; i++)
        for (int j = 0; j < d; j++) out[i * d + j] = (float)((X[i * d + j] - mu[j]) / sd[j]);
}

int rs_infonce_train(rs_infonce *m, const float *Xt, const float *Xi, int n, const rs_infonce_opts *o, rs_err *err) {
    int dt = m->dt, di = m->di;
    if (n < 2) return rs_errf(err, "infonce: need at least 2 training pairs (got %d)", n);
    if (o->steps < 1 || !(o->lr > 0) || o->batch < 2)
        return rs_errf(err, "infonce: steps (%d) must be >= 1, lr (%g) > 0 and batch (%d) >= 2", o->steps, o->lr, o->batch);
    free(m->mu_t); free(m->sd_t); free(m->mu_i); free(m->sd_i);
    m->mu_t = m->sd_t = m->mu_i = m->sd_i = NULL;
    int B = o->batch < n ? o->batch : n, rc = -1;
    float *St = malloc(sizeof(float) * (size_t)n * dt), *Si = malloc(sizeof(float) * (size_t)n * di);
    float *bt = malloc(sizeof(float) * (size_t)B * dt), *bi = malloc(sizeof(float) * (size_t)B * di);
    float *g = malloc(sizeof(float) * m->n_params), *m1 = calloc(m->n_params, sizeof(float));
    float *m2 = calloc(m->n_params, sizeof(float));
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n);
    if (!St || !Si || !bt || !bi || !g || !m1 || !m2 || !perm || col_stats(Xt, n, dt, &m->mu_t, &m->sd_t) ||
        col_stats(Xi, n, di, &m->mu_i, &m->sd_i)) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    standardize(Xt, n, dt, m->mu_t, m->sd_t, St);
    standardize(Xi, n, di, m->mu_i, m->sd_i, Si);
    int per_epoch = n / B, epoch = -1;
    for (int step = 0; step < o->steps; step++) {
        const float *xt = St, *xi = Si;
        if (B < n) {
            int ep = step / per_epoch, b = step % per_epoch;
            if (ep != epoch) stats_permutation(o->seed, ep, n, perm), epoch = ep;
            for (int r = 0; r < B; r++) {
                int64_t i = perm[(size_t)b * B + r];
                memcpy(bt + (size_t)r * dt, St + (size_t)i * dt, sizeof(float) * dt);
                memcpy(bi + (size_t)r * di, Si + (size_t)i * di, sizeof(float) * di);
            }
            xt = bt, xi = bi;
        }
        double loss;
        if (rs_infonce_loss_grad(m, xt, xi, B, g, &loss, err)) goto done;
        if (!isfinite(loss)) {
            rs_errf(err, "infonce: loss is not finite at step %d (lower lr)", step + 1);
            goto done;
        }
        if (step == 0) m->loss_first = loss;
        m->loss_last = loss;
        if (!o->learn_temperature) g[m->n_params - 1] = 0;
        rs_adam_update_f32(m->params, g, m1, m2, m->n_params, (float)o->lr, 0.9f, 0.999f, 1e-8f, step + 1);
        float *t = m->log_scale;
        if (*t < 0) *t = 0;
        if (*t > (float)LN100) *t = (float)LN100;
    }
    rc = 0;
done:
    free(St); free(Si); free(bt); free(bi); free(g); free(m1); free(m2); free(perm);
    return rc;
}

int rs_infonce_fit(rs_infonce *m, const float *Xt, int dt, const float *Xi, int di, int n, const rs_infonce_opts *o,
                   rs_err *err) {
    if (o->dim < 1) return rs_errf(err, "infonce: dim must be >= 1 (got %d)", o->dim);
    if (rs_infonce_init(m, dt, di, o->dim, o->temperature_init, o->seed, err)) return -1;
    if (rs_infonce_train(m, Xt, Xi, n, o, err)) {
        rs_infonce_free(m);
        return -1;
    }
    return 0;
}

int rs_infonce_embed(const rs_infonce *m, int side, const float *X, int n, float *Z, rs_err *err) {
    int d = side ? m->di : m->dt, e = m->e;
    const double *mu = side ? m->mu_i : m->mu_t, *sd = side ? m->sd_i : m->sd_t;
    const float *W = side ? m->Wi : m->Wt;
    if (!mu) return rs_errf(err, "infonce: embed before training");
    double *x = malloc(sizeof(double) * d), *u = malloc(sizeof(double) * e);
    if (!x || !u) { free(x); free(u); return rs_errk(err, RS_ENOMEM, "out of memory"); }
    for (size_t i = 0; i < (size_t)n; i++) {
        for (int j = 0; j < d; j++) x[j] = (double)(float)((X[i * d + j] - mu[j]) / sd[j]);
        double s = 0;
        for (int k = 0; k < e; k++) u[k] = 0;
        for (int j = 0; j < d; j++)
            for (int k = 0; k < e; k++) u[k] += x[j] * W[(size_t)j * e + k];
        for (int k = 0; k < e; k++) s += u[k] * u[k];
        s = sqrt(s) > 1e-30 ? sqrt(s) : 1e-30;
        for (int k = 0; k < e; k++) Z[i * e + k] = (float)(u[k] / s);
    }
    free(x); free(u);
    return 0;
}

int rs_retrieval_ranks(const float *A, const float *B, int n, int e, int *rank_ab, int *rank_ba, rs_err *err) {
    double *An = calloc((size_t)n * e, sizeof(double)), *Bn = calloc((size_t)n * e, sizeof(double));
    double *S = malloc(sizeof(double) * (size_t)n * n);
    if (!An || !Bn || !S) { free(An); free(Bn); free(S); return rs_errk(err, RS_ENOMEM, "out of memory"); }
    const float *src[2] = {A, B};
    double *dst[2] = {An, Bn};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < (size_t)n; i++) {
            double q = 0;
            for (int k = 0; k < e; k++) q += (double)src[s][i * e + k] * src[s][i * e + k];
            q = q > 0 ? 1 / sqrt(q) : 0; /* a zero row scores 0 with everything */
            for (int k = 0; k < e; k++) dst[s][i * e + k] = src[s][i * e + k] * q;
        }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, e, 1.0, An, e, Bn, e, 0.0, S, n);
    for (int i = 0; i < n; i++) {
        double t = S[(size_t)i * n + i];
        int ra = 0, rb = 0;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            ra += S[(size_t)i * n + j] >= t;
            rb += S[(size_t)j * n + i] >= t;
        }
        rank_ab[i] = ra, rank_ba[i] = rb;
    }
    free(An); free(Bn); free(S);
    return 0;
}

/* The share of the n ranks below k (0-based ranks: rank < k is a hit at k). */
static double recall_of(const int *rank, int n, int k) {
    int hits = 0;
    for (int i = 0; i < n; i++) hits += rank[i] < k;
    return (double)hits / n;
}

/* rs_recall_at_k; -1 when the bootstrap buffer cannot be allocated (*r then has a NaN CI). */
static int recall_at_k(const int *rank, int n, int k, int n_boot, uint64_t seed, rs_stat *out) {
    rs_stat r = {NAN, NAN, NAN};
    *out = r;
    if (n < 1) return 0;
    r.value = recall_of(rank, n, k);
    *out = r;
    if (n_boot <= 0) return 0;
    double *bm = malloc(sizeof(double) * n_boot);
    if (!bm) return -1;
    uint64_t st = seed;
    for (int b = 0; b < n_boot; b++) {
        int h = 0;
        for (int i = 0; i < n; i++) h += rank[stats_splitmix(&st) % (uint64_t)n] < k;
        bm[b] = (double)h / n;
    }
    r.lo = stats_percentile(bm, n_boot, 0.025);
    r.hi = stats_percentile(bm, n_boot, 0.975);
    free(bm);
    *out = r;
    return 0;
}

rs_stat rs_recall_at_k(const int *rank, int n, int k, int n_boot, uint64_t seed) {
    rs_stat r;
    recall_at_k(rank, n, k, n_boot, seed, &r);
    return r;
}

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

static double median_rank1(const int *rank, int n, int *tmp) {
    memcpy(tmp, rank, sizeof(int) * n);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_int);
    return 1 + (n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]));
}

/* Test embeddings of one method fitted on (Tt, Ti) [ntr] → A, B [nte, *e]. */
static int embed_method(int method, const float *Tt, const float *Ti, int ntr, const float *Et, const float *Ei, int nte,
                        int dt, int di, const rs_align_opts *o, float **A, float **B, int *e, rs_infonce *keep,
                        rs_err *err) {
    *A = *B = NULL;
    if (method == 0) {
        rs_infonce m;
        if (rs_infonce_fit(&m, Tt, dt, Ti, di, ntr, &o->infonce, err)) return -1;
        *e = m.e;
        *A = malloc(sizeof(float) * (size_t)nte * m.e);
        *B = malloc(sizeof(float) * (size_t)nte * m.e);
        int rc = !*A || !*B ? rs_errk(err, RS_ENOMEM, "out of memory")
                            : rs_infonce_embed(&m, 0, Et, nte, *A, err) || rs_infonce_embed(&m, 1, Ei, nte, *B, err);
        if (keep && !rc) *keep = m;
        else rs_infonce_free(&m);
        return rc ? -1 : 0;
    }
    /* procrustes / ridge: text → image space on the raw rows */
    rs_linmap lm;
    memset(&lm, 0, sizeof lm);
    double lambda = 0;
    if (method == 2) {
        double *mu = calloc((size_t)dt, sizeof *mu), tot = 0;
        if (!mu) return rs_errk(err, RS_ENOMEM, "out of memory");
        for (size_t i = 0; i < (size_t)ntr; i++)
            for (int j = 0; j < dt; j++) mu[j] += Tt[i * dt + j];
        for (int j = 0; j < dt; j++) mu[j] /= ntr;
        for (size_t i = 0; i < (size_t)ntr; i++)
            for (int j = 0; j < dt; j++) tot += (Tt[i * dt + j] - mu[j]) * (Tt[i * dt + j] - mu[j]);
        free(mu);
        lambda = o->ridge_alpha * tot / dt;
        if (!(lambda > 0)) lambda = o->ridge_alpha > 0 ? o->ridge_alpha : 1.0;
    }
    if (rs_linmap_fit(&lm, method == 1 ? RS_MAP_PROCRUSTES : RS_MAP_RIDGE, Tt, Ti, ntr, dt, di, lambda,
                      o->procrustes_scale, err))
        return -1;
    *e = di;
    *A = malloc(sizeof(float) * (size_t)nte * di);
    *B = malloc(sizeof(float) * (size_t)nte * di);
    int rc = 0;
    if (!*A || !*B) rc = rs_errk(err, RS_ENOMEM, "out of memory");
    else if (!(rc = rs_linmap_apply(&lm, Et, nte, *A, err)))
        for (size_t i = 0; i < (size_t)nte; i++)
            for (int j = 0; j < di; j++) {
                (*A)[i * di + j] = (float)((*A)[i * di + j] - lm.mu_t[j]);
                (*B)[i * di + j] = (float)(Ei[i * di + j] - lm.mu_t[j]);
            }
    rs_linmap_free(&lm);
    return rc ? -1 : 0;
}

int rs_align_evaluate(const float *Xt, int dt, const float *Xi, int di, int n, const int *is_test, const rs_align_opts *o,
                      rs_align_result *r, rs_err *err) {
    return rs_align_evaluate_splits(Xt, dt, Xi, di, n, is_test, 1, o, r, err);
}

/* Split-mean recall@k with its CI from the concatenated ranks of S splits (split k: nte[k]
 * entries): S = 1 → rs_recall_at_k (the bootstrap over the test pairs); S > 1 → the nested
 * bootstrap (splits, then test pairs, each pair its own group) of rs_nested_group_bootstrap.
 * The value is Σ_k recall_k / S in split order (the null statistic is summed the same way). */
static int split_mean_stat(const int *rank, const int *nte, int S, int k, int n_boot, uint64_t seed, const double *per_split,
                           rs_stat *out, rs_err *err) {
    if (S == 1)
        return recall_at_k(rank, nte[0], k, n_boot, seed, out) ? rs_errk(err, RS_ENOMEM, "out of memory") : 0;
    double sum = 0;
    for (int s = 0; s < S; s++) sum += per_split[s];
    *out = (rs_stat){sum / S, NAN, NAN};
    if (n_boot < 1) return 0;
    int tot = 0;
    for (int s = 0; s < S; s++) tot += nte[s];
    int *y = malloc(sizeof(int) * tot), *pred = malloc(sizeof(int) * tot), *gid = malloc(sizeof(int) * tot);
    if (!y || !pred || !gid) {
        free(y); free(pred); free(gid);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int s = 0, a = 0; s < S; s++)
        for (int i = 0; i < nte[s]; i++, a++) y[a] = 1, pred[a] = rank[a] < k, gid[a] = i;
    rs_metrics lo, hi;
    int rc = rs_nested_group_bootstrap(y, pred, gid, nte, S, 2, n_boot, seed, &lo, &hi, NULL, err);
    if (!rc) out->lo = lo.accuracy, out->hi = hi.accuracy;
    free(y); free(pred); free(gid);
    return rc;
}

int rs_align_evaluate_splits(const float *Xt, int dt, const float *Xi, int di, int n, const int *is_test, int S,
                             const rs_align_opts *o, rs_align_result *r, rs_err *err) {
    memset(r, 0, sizeof *r);
    int R = o->null_draws, rc = -1, tot = 0;
    if (S < 1 || S > RS_ALIGN_MAX_SPLITS)
        return rs_errf(err, "alignment: splits must be 1..%d (got %d)", RS_ALIGN_MAX_SPLITS, S);
    if (R < 1) return rs_errf(err, "alignment: null_draws must be >= 1 (got %d)", R);
    for (int s = 0; s < S; s++) {
        int ntr = 0, nte = 0;
        for (int i = 0; i < n; i++) is_test[(size_t)s * n + i] ? nte++ : ntr++;
        if (ntr < 2 || nte < 2)
            return rs_errf(err, "alignment: need at least 2 training and 2 test pairs (got %d and %d%s)", ntr, nte,
                           S > 1 ? " in a split" : "");
        r->n_train_split[s] = ntr, r->n_test_split[s] = nte;
        tot += nte;
    }
    r->n_splits = S, r->n_null = R;
    r->n_train = r->n_train_split[0], r->n_test = r->n_test_split[0];
    for (int k = 0; k < RS_ALIGN_NK; k++) {
        double c = 0;
        for (int s = 0; s < S; s++) {
            int nte = r->n_test_split[s];
            c += (double)(rs_align_ks[k] < nte ? rs_align_ks[k] : nte) / nte;
        }
        r->chance[k] = c / S;
    }
    r->loss_first = r->loss_last = r->null_loss_last = r->temperature = NAN;
    double lf = 0, ll = 0, nl = 0, tp = 0;
    float *Tt = malloc(sizeof(float) * (size_t)n * dt), *Ti = malloc(sizeof(float) * (size_t)n * di);
    float *Ts = malloc(sizeof(float) * (size_t)n * di);
    float *Et = malloc(sizeof(float) * (size_t)n * dt), *Ei = malloc(sizeof(float) * (size_t)n * di);
    int *rk = malloc(sizeof(int) * (size_t)n * 3);
    /* ranks of the real fit and of null draw 0, concatenated over splits: [2 real/null][method][dir][tot] */
    int *allrk = malloc(sizeof(int) * (size_t)2 * RS_ALIGN_METHODS * 2 * tot);
    double *nullv = calloc((size_t)R * RS_ALIGN_METHODS * 2 * RS_ALIGN_NK, sizeof(double)); /* split-mean sums */
    double *tmp = malloc(sizeof(double) * ((size_t)R + S));
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n);
    float *A = NULL, *B = NULL;
    if (!Tt || !Ti || !Ts || !Et || !Ei || !rk || !allrk || !nullv || !tmp || !perm) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
#define ALLRK(shuf, meth, dir) (allrk + ((size_t)((shuf) * RS_ALIGN_METHODS + (meth)) * 2 + (dir)) * tot)
#define NULLV(rr, meth, dir, k) nullv[(((size_t)(rr) * RS_ALIGN_METHODS + (meth)) * 2 + (dir)) * RS_ALIGN_NK + (k)]
    for (int s = 0, off = 0; s < S; off += r->n_test_split[s], s++) {
        const int *te = is_test + (size_t)s * n;
        int ntr = r->n_train_split[s], nte = r->n_test_split[s];
        for (int i = 0, a = 0, b = 0; i < n; i++) {
            if (te[i]) {
                memcpy(Et + (size_t)b * dt, Xt + (size_t)i * dt, sizeof(float) * dt);
                memcpy(Ei + (size_t)b * di, Xi + (size_t)i * di, sizeof(float) * di);
                b++;
            } else {
                memcpy(Tt + (size_t)a * dt, Xt + (size_t)i * dt, sizeof(float) * dt);
                memcpy(Ti + (size_t)a * di, Xi + (size_t)i * di, sizeof(float) * di);
                a++;
            }
        }
        for (int meth = 0; meth < RS_ALIGN_METHODS; meth++) {
            rs_align_method *M = &r->m[meth];
            if (meth == 1 && dt != di) continue;
            M->available = 1;
            for (int draw = -1; draw < R; draw++) { /* -1: the real pairs; 0..R-1: shuffled */
                int shuf = draw >= 0;
                if (shuf) {
                    stats_permutation((o->seed ^ 0xA11647u) + 0xD1B54A32D192ED03ULL * (uint64_t)s, draw, ntr, perm);
                    for (int a = 0; a < ntr; a++)
                        memcpy(Ts + (size_t)a * di, Ti + (size_t)perm[a] * di, sizeof(float) * di);
                }
                rs_infonce keep;
                memset(&keep, 0, sizeof keep);
                int e = 0;
                if (embed_method(meth, Tt, shuf ? Ts : Ti, ntr, Et, Ei, nte, dt, di, o, &A, &B, &e,
                                 meth == 0 ? &keep : NULL, err)) {
                    if (S > 1)
                        rs_err_prefix(err, "alignment %s%s, split %d", rs_align_method_names[meth],
                                      shuf ? " (shuffled pairs)" : "", s + 1);
                    else rs_err_prefix(err, "alignment %s%s", rs_align_method_names[meth], shuf ? " (shuffled pairs)" : "");
                    goto done;
                }
                if (meth == 0) {
                    if (draw == 0) nl += keep.loss_last;
                    else if (!shuf) {
                        lf += keep.loss_first, ll += keep.loss_last;
                        tp += exp(-(double)keep.log_scale[0]);
                    }
                    rs_infonce_free(&keep);
                }
                if (rs_retrieval_ranks(A, B, nte, e, rk, rk + nte, err)) goto done;
                free(A), free(B), A = B = NULL;
                for (int dir = 0; dir < 2; dir++) {
                    const int *rd = rk + (size_t)dir * nte;
                    for (int k = 0; k < RS_ALIGN_NK; k++) {
                        double v = recall_of(rd, nte, rs_align_ks[k]);
                        if (!shuf) M->split_recall[s][dir][k] = v;
                        else NULLV(draw, meth, dir, k) += v;
                    }
                    if (draw <= 0) {
                        memcpy(ALLRK(shuf, meth, dir) + off, rd, sizeof(int) * nte);
                        double med = median_rank1(rd, nte, rk + 2 * (size_t)nte);
                        if (shuf) M->null_median_rank[dir] += med;
                        else M->median_rank[dir] += med;
                    }
                }
            }
        }
    }
    if (r->m[0].available) r->loss_first = lf / S, r->loss_last = ll / S, r->null_loss_last = nl / S, r->temperature = tp / S;
    for (int meth = 0; meth < RS_ALIGN_METHODS; meth++) {
        rs_align_method *M = &r->m[meth];
        M->q[0] = M->q[1] = NAN;
        if (!M->available) continue;
        for (int dir = 0; dir < 2; dir++) {
            M->median_rank[dir] /= S, M->null_median_rank[dir] /= S;
            for (int k = 0; k < RS_ALIGN_NK; k++) {
                double *ps = tmp + R;
                for (int s = 0; s < S; s++) ps[s] = M->split_recall[s][dir][k];
                /* the same bootstrap draws for every method and direction */
                if (split_mean_stat(ALLRK(0, meth, dir), r->n_test_split, S, rs_align_ks[k], o->n_boot,
                                    o->seed ^ 0xB0075u, ps, &M->recall[dir][k], err))
                    goto done;
                /* null draw 0's per-split values are not kept: recompute them from its ranks */
                for (int s = 0, off = 0; s < S; off += r->n_test_split[s], s++) {
                    ps[s] = recall_of(ALLRK(1, meth, dir) + off, r->n_test_split[s], rs_align_ks[k]);
                }
                if (split_mean_stat(ALLRK(1, meth, dir), r->n_test_split, S, rs_align_ks[k], o->n_boot,
                                    o->seed ^ 0xB0075u, ps, &M->null_recall[dir][k], err))
                    goto done;
                double mean = 0;
                for (int q = 0; q < R; q++) tmp[q] = NULLV(q, meth, dir, k) / S, mean += tmp[q];
                M->null_mean[dir][k] = mean / R;
                if (k == 0) M->p[dir] = rs_permutation_pvalue(M->recall[dir][0].value, tmp, R);
                M->null_p95[dir][k] = stats_percentile(tmp, R, 0.95);
            }
        }
    }
#undef ALLRK
#undef NULLV
    rc = 0;
done:
    free(Tt); free(Ti); free(Ts); free(Et); free(Ei); free(rk); free(allrk); free(nullv); free(tmp); free(perm);
    free(A); free(B);
    return rc;
}

int rs_align_bh(rs_align_result *const *r, int n_r, rs_err *err) {
    int n = n_r * RS_ALIGN_METHODS * 2;
    double *p = calloc((size_t)n + 1, sizeof(double)), *q = calloc((size_t)n + 1, sizeof(double));
    if (!p || !q) {
        free(p); free(q);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int h = 0, a = 0; h < n_r; h++)
        for (int m = 0; m < RS_ALIGN_METHODS; m++)
            for (int d = 0; d < 2; d++, a++) p[a] = r[h]->m[m].available ? r[h]->m[m].p[d] : NAN;
    if (stats_bh_qvalues(p, n, q)) {
        free(p); free(q);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int h = 0, a = 0; h < n_r; h++)
        for (int m = 0; m < RS_ALIGN_METHODS; m++)
            for (int d = 0; d < 2; d++, a++) r[h]->m[m].q[d] = q[a];
    free(p); free(q);
    return 0;
}
