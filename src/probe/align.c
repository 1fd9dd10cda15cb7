/* Contrastive (InfoNCE) text↔image alignment and held-out retrieval (probe_align.h). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe_align.h"
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
                           .seed = 0};
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

rs_stat rs_recall_at_k(const int *rank, int n, int k, int n_boot, uint64_t seed) {
    rs_stat r = {NAN, NAN, NAN};
    if (n < 1) return r;
    int hits = 0;
    for (int i = 0; i < n; i++) hits += rank[i] < k;
    r.value = (double)hits / n;
    double *bm = n_boot > 0 ? malloc(sizeof(double) * n_boot) : NULL;
    if (!bm) return r;
    uint64_t st = seed;
    for (int b = 0; b < n_boot; b++) {
        int h = 0;
        for (int i = 0; i < n; i++) h += rank[stats_splitmix(&st) % (uint64_t)n] < k;
        bm[b] = (double)h / n;
    }
    r.lo = stats_percentile(bm, n_boot, 0.025);
    r.hi = stats_percentile(bm, n_boot, 0.975);
    free(bm);
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
    memset(r, 0, sizeof *r);
    int ntr = 0, nte = 0, rc = -1;
    for (int i = 0; i < n; i++) is_test[i] ? nte++ : ntr++;
    if (ntr < 2 || nte < 2) return rs_errf(err, "alignment: need at least 2 training and 2 test pairs (got %d and %d)", ntr, nte);
    r->n_train = ntr, r->n_test = nte;
    for (int k = 0; k < RS_ALIGN_NK; k++) r->chance[k] = (double)(rs_align_ks[k] < nte ? rs_align_ks[k] : nte) / nte;
    r->loss_first = r->loss_last = r->null_loss_last = r->temperature = NAN;
    float *Tt = malloc(sizeof(float) * (size_t)ntr * dt), *Ti = malloc(sizeof(float) * (size_t)ntr * di);
    float *Ts = malloc(sizeof(float) * (size_t)ntr * di);
    float *Et = malloc(sizeof(float) * (size_t)nte * dt), *Ei = malloc(sizeof(float) * (size_t)nte * di);
    int *rk = malloc(sizeof(int) * (size_t)nte * 3);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)ntr);
    float *A = NULL, *B = NULL;
    if (!Tt || !Ti || !Ts || !Et || !Ei || !rk || !perm) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0, a = 0, b = 0; i < n; i++) {
        if (is_test[i]) {
            memcpy(Et + (size_t)b * dt, Xt + (size_t)i * dt, sizeof(float) * dt);
            memcpy(Ei + (size_t)b * di, Xi + (size_t)i * di, sizeof(float) * di);
            b++;
        } else {
            memcpy(Tt + (size_t)a * dt, Xt + (size_t)i * dt, sizeof(float) * dt);
            memcpy(Ti + (size_t)a * di, Xi + (size_t)i * di, sizeof(float) * di);
            a++;
        }
    }
    stats_permutation(o->seed ^ 0xA11647u, 0, ntr, perm);
    for (int a = 0; a < ntr; a++) memcpy(Ts + (size_t)a * di, Ti + (size_t)perm[a] * di, sizeof(float) * di);
    for (int meth = 0; meth < RS_ALIGN_METHODS; meth++) {
        rs_align_method *M = &r->m[meth];
        if (meth == 1 && dt != di) continue;
        M->available = 1;
        for (int shuf = 0; shuf < 2; shuf++) {
            rs_infonce keep;
            memset(&keep, 0, sizeof keep);
            int e = 0;
            if (embed_method(meth, Tt, shuf ? Ts : Ti, ntr, Et, Ei, nte, dt, di, o, &A, &B, &e, meth == 0 ? &keep : NULL,
                             err)) {
                rs_err_prefix(err, "alignment %s%s", rs_align_method_names[meth], shuf ? " (shuffled pairs)" : "");
                goto done;
            }
            if (meth == 0) {
                if (shuf) r->null_loss_last = keep.loss_last;
                else {
                    r->loss_first = keep.loss_first, r->loss_last = keep.loss_last;
                    r->temperature = exp(-(double)keep.log_scale[0]);
                }
                rs_infonce_free(&keep);
            }
            if (rs_retrieval_ranks(A, B, nte, e, rk, rk + nte, err)) goto done;
            free(A), free(B), A = B = NULL;
            for (int dir = 0; dir < 2; dir++) {
                for (int k = 0; k < RS_ALIGN_NK; k++) {
                    /* the same bootstrap draws for every method and direction */
                    rs_stat s = rs_recall_at_k(rk + (size_t)dir * nte, nte, rs_align_ks[k], o->n_boot, o->seed ^ 0xB0075u);
                    if (shuf) M->null_recall[dir][k] = s;
                    else M->recall[dir][k] = s;
                }
                double med = median_rank1(rk + (size_t)dir * nte, nte, rk + 2 * (size_t)nte);
                if (shuf) M->null_median_rank[dir] = med;
                else M->median_rank[dir] = med;
            }
        }
    }
    rc = 0;
done:
    free(Tt); free(Ti); free(Ts); free(Et); free(Ei); free(rk); free(perm); free(A); free(B);
    return rc;
}
