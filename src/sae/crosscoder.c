/* Crosscoder training and evaluation (crosscoder.h, docs/crosscoder.md). The four matrix
 * products of a step (encode, decode, and the two weight gradients, plus the back-projection
 * of the decoder gradient) are cblas_sgemm calls; everything else is a loop over rows or
 * latents in a fixed order, so a run is deterministic for a seed and a thread count. */
#include "reprshift/crosscoder.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reprshift/fileio.h"
#include "reprshift/probe.h" /* rs_uniform_at, rs_normal_at */
#include "reprshift/safetensors.h"
#include "sae/train_common.h"

#define XC_FORMAT "reprshift-crosscoder-v1"
#define XC_STATE_FORMAT "reprshift-crosscoder-state-v1"
#define XC_CHUNK 256 /* rows per encode/eval block */

/* seeds of the counter-based streams (xor'ed with opts.seed) */
#define SEED_INIT 0x5eedc0de00000001ull
#define SEED_PERM 0x5eedc0de00000002ull
#define SEED_RESAMPLE 0x5eedc0de00000003ull

int xc_new(rs_crosscoder **out, int d, int m, xc_sparsity sp, rs_err *err) {
    *out = NULL;
    if (d < 1 || m < 1 || d > (1 << 20) || m > (1 << 24) || (sp != XC_L1 && sp != XC_BATCHTOPK))
        return rs_errf(err, "crosscoder: bad sizes (d_in %d, n_latents %d)", d, m);
    rs_crosscoder *c = calloc(1, sizeof *c);
    size_t D2 = 2 * (size_t)d, np = 2 * D2 * (size_t)m + (size_t)m + D2;
    float *p = c ? calloc(np, sizeof *p) : NULL;
    if (!p) {
        free(c);
        return rs_errk(err, RS_ENOMEM, "crosscoder: out of memory (d_in %d, n_latents %d)", d, m);
    }
    c->d_in = d;
    c->n_latents = m;
    c->sparsity = sp;
    c->scale[0] = c->scale[1] = 1;
    c->params = p;
    c->n_params = np;
    c->W_enc = p;
    c->b_enc = p + D2 * m;
    c->W_dec = c->b_enc + m;
    c->b_dec = c->W_dec + D2 * m;
    *out = c;
    return 0;
}

void xc_free(rs_crosscoder *c) {
    if (!c) return;
    free(c->params);
    free(c);
}

int64_t xc_swap_sides(const float *x0, const float *x1, int64_t n, int d, uint64_t seed, float *y0, float *y1) {
    int64_t k = 0;
    for (int64_t t = 0; t < n; t++) {
        int sw = rs_uniform_at(seed, (uint64_t)t) < 0.5;
        k += sw;
        memcpy(y0 + (size_t)t * d, (sw ? x1 : x0) + (size_t)t * d, (size_t)d * sizeof *y0);
        memcpy(y1 + (size_t)t * d, (sw ? x0 : x1) + (size_t)t * d, (size_t)d * sizeof *y1);
    }
    return k;
}

void xc_decoder_norms(const rs_crosscoder *c, double *norm0, double *norm1, double *rel) {
    int d = c->d_in;
    for (int i = 0; i < c->n_latents; i++) {
        const float *w = c->W_dec + (size_t)i * 2 * d;
        double a = 0, b = 0;
        for (int j = 0; j < d; j++) a += (double)w[j] * w[j], b += (double)w[d + j] * w[d + j];
        a = sqrt(a), b = sqrt(b);
        if (norm0) norm0[i] = a;
        if (norm1) norm1[i] = b;
        if (rel) rel[i] = a + b > 0 ? b / (a + b) : NAN;
    }
}

/* ---- forward ---- */

typedef struct {
    int cap;                 /* rows the buffers hold */
    float *pre, *f, *xhat;   /* [cap, m], [cap, m], [cap, 2d] */
    float *wsum;             /* [m] Σ_s‖W_dec,s,i‖ */
    float *nrm;              /* [2m] ‖W_dec,s,i‖ */
    float *sel;              /* [cap·m] scratch for the BatchTopK selection */
    double *acc;             /* [max(m, 2d)] column sums */
    /* the active (f > 0) entries when they are few (sparse path, XC_SPARSE_MAX):
       by row (CSR: roff, ridx, rval, rdp = the gradient at each) and by latent (CSC: coff,
       crow, cpos = the entry's CSR position) */
    int *roff, *ridx, *coff, *crow, *cpos, *cfill;
    float *rval, *rdp, *tmp; /* tmp: [threads, 2d] */
    int tmp_threads;
    size_t cap_nnz;
    int64_t nnz;
} xc_ws;

/* Below this fraction of active entries the step uses the sparse path: the decoder products
 * and both decoder-side gradients touch only the active entries (the encoder product stays
 * an sgemm). Same objective, other rounding; which path runs depends only on the data. */
#define XC_BLK 16 /* latents per block of the sparse encoder gradient */
static double xc_sparse_max = 0.125;
#define XC_SPARSE_MAX xc_sparse_max

void xc_set_sparse_max(double frac) { xc_sparse_max = frac < 0 ? 0 : frac > 1 ? 1 : frac; }

static void ws_free(xc_ws *w) {
    free(w->pre), free(w->f), free(w->xhat), free(w->wsum), free(w->nrm), free(w->sel), free(w->acc);
    free(w->roff), free(w->ridx), free(w->coff), free(w->crow), free(w->cpos), free(w->cfill);
    free(w->rval), free(w->rdp), free(w->tmp);
    memset(w, 0, sizeof *w);
}

static int ws_init(xc_ws *w, const rs_crosscoder *c, int rows, rs_err *err) {
    size_t m = (size_t)c->n_latents, D2 = 2 * (size_t)c->d_in;
    memset(w, 0, sizeof *w);
    w->cap = rows;
    w->pre = malloc((size_t)rows * m * sizeof *w->pre);
    w->f = malloc((size_t)rows * m * sizeof *w->f);
    w->xhat = malloc((size_t)rows * D2 * sizeof *w->xhat);
    w->wsum = malloc(m * sizeof *w->wsum);
    w->nrm = malloc(2 * m * sizeof *w->nrm);
    w->sel = c->sparsity == XC_BATCHTOPK ? malloc((size_t)rows * m * sizeof *w->sel) : NULL;
    w->acc = malloc((m > D2 ? m : D2) * sizeof *w->acc);
    size_t cap_nnz = (size_t)((double)rows * m * XC_SPARSE_MAX) + 1;
    w->tmp_threads = omp_get_max_threads();
    w->cap_nnz = cap_nnz;
    w->roff = malloc(((size_t)rows + 1) * sizeof *w->roff);
    w->ridx = malloc(cap_nnz * sizeof *w->ridx);
    w->rval = malloc(cap_nnz * sizeof *w->rval);
    w->rdp = malloc(cap_nnz * sizeof *w->rdp);
    w->coff = malloc((m + 1) * sizeof *w->coff);
    w->cfill = malloc((m + 1) * sizeof *w->cfill);
    w->crow = malloc(cap_nnz * sizeof *w->crow);
    w->cpos = malloc(cap_nnz * sizeof *w->cpos);
    w->tmp = malloc((size_t)w->tmp_threads * XC_BLK * D2 * sizeof *w->tmp);
    if (!w->pre || !w->f || !w->xhat || !w->wsum || !w->nrm || (c->sparsity == XC_BATCHTOPK && !w->sel) || !w->acc ||
        !w->roff || !w->ridx || !w->rval || !w->rdp || !w->coff || !w->cfill || !w->crow || !w->cpos || !w->tmp) {
        ws_free(w);
        return rs_errk(err, RS_ENOMEM, "crosscoder: out of memory (%d rows × %zu latents)", rows, m);
    }
    return 0;
}

static void dec_norms(const rs_crosscoder *c, xc_ws *w) {
    int d = c->d_in, m = c->n_latents;
    for (int i = 0; i < m; i++) {
        const float *r = c->W_dec + (size_t)i * 2 * d;
        double a = 0, b = 0;
        for (int j = 0; j < d; j++) a += (double)r[j] * r[j], b += (double)r[d + j] * r[d + j];
        w->nrm[i] = (float)sqrt(a);
        w->nrm[m + i] = (float)sqrt(b);
        w->wsum[i] = w->nrm[i] + w->nrm[m + i];
    }
}

/* The K-th largest of v[0..n) (1 <= K <= n), by a three-way quickselect on v (reordered). */
static float kth_largest(float *v, size_t n, size_t K) {
    size_t lo = 0, hi = n, want = K - 1; /* v[lo, hi) holds the answer, in descending order */
    while (hi - lo > 1) {
        float a = v[lo], b = v[lo + (hi - lo) / 2], cc = v[hi - 1];
        float piv = a > b ? (b > cc ? b : (a > cc ? cc : a)) : (a > cc ? a : (b > cc ? cc : b));
        size_t lt = lo, i = lo, gt = hi; /* [lo, lt) > piv, [lt, i) == piv, [gt, hi) < piv */
        while (i < gt) {
            float t = v[i];
            if (t > piv) v[i++] = v[lt], v[lt++] = t;
            else if (t < piv) v[i] = v[--gt], v[gt] = t;
            else i++;
        }
        if (want < lt) hi = lt;
        else if (want >= gt) lo = gt;
        else return piv;
    }
    return v[lo];
}

/* pre, f (and for BatchTopK the training selection) of rows X [B, 2d]; train: BatchTopK
 * over the batch, else the inference threshold. *thr_out: the smallest kept score (BatchTopK
 * training). */
static void xc_forward(const rs_crosscoder *c, const float *X, int B, xc_ws *w, int train, float *thr_out) {
    int m = c->n_latents, D2 = 2 * c->d_in;
    size_t Bm = (size_t)B * m;
    for (int r = 0; r < B; r++) memcpy(w->pre + (size_t)r * m, c->b_enc, (size_t)m * sizeof *w->pre);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, m, D2, 1.0f, X, D2, c->W_enc, m, 1.0f, w->pre, m);
    dec_norms(c, w);
    if (c->sparsity == XC_L1) {
        long long n = (long long)Bm;
#pragma omp parallel for schedule(static) if (n > (1LL << 16))
        for (long long t = 0; t < n; t++) w->f[t] = w->pre[t] > 0 ? w->pre[t] : 0;
    } else if (!train) {
        for (int r = 0; r < B; r++)
            for (int i = 0; i < m; i++) {
                size_t t = (size_t)r * m + i;
                float a = w->pre[t] > 0 ? w->pre[t] : 0;
                w->f[t] = a * w->wsum[i] > c->threshold ? a : 0;
            }
    } else {
        /* keep the K = B·k largest positive scores f_i·Σ_s‖W_dec,s,i‖; ties at the K-th
           value go to the lowest (row, latent) index */
        size_t K = (size_t)B * (size_t)c->k, npos = 0;
        for (size_t t = 0, i = 0; t < Bm; t++, i = i + 1 == (size_t)m ? 0 : i + 1) {
            float a = w->pre[t] > 0 ? w->pre[t] : 0, s = a * w->wsum[i];
            if (s > 0) w->sel[npos++] = s;
        }
        float thr = 0;
        size_t take_eq = (size_t)-1;
        if (npos > K && K > 0) {
            float *v = w->sel;
            thr = kth_largest(v, npos, K);
            size_t gt = 0;
            for (size_t t = 0; t < npos; t++) gt += v[t] > thr;
            take_eq = K - gt;
        }
        float smallest = INFINITY;
        for (size_t t = 0, i = 0; t < Bm; t++, i = i + 1 == (size_t)m ? 0 : i + 1) {
            float a = w->pre[t] > 0 ? w->pre[t] : 0, s = a * w->wsum[i];
            int keep = s > 0 && K > 0 && (take_eq == (size_t)-1 ? 1 : s > thr || (s == thr && take_eq > 0 && take_eq--));
            w->f[t] = keep ? a : 0;
            if (keep && s < smallest) smallest = s;
        }
        if (thr_out) *thr_out = smallest;
    }
}

/* out[i] = Σ_r a[r·m + i] (double, rows in order), OpenMP over blocks of columns. */
static void col_sums(const float *a, int B, int m, double *out) {
#pragma omp parallel for schedule(static) if ((size_t)B * m > (1u << 16))
    for (int i0 = 0; i0 < m; i0 += 256) {
        int i1 = i0 + 256 < m ? i0 + 256 : m;
        for (int i = i0; i < i1; i++) out[i] = 0;
        for (int r = 0; r < B; r++) {
            const float *ar = a + (size_t)r * m;
            for (int i = i0; i < i1; i++) out[i] += ar[i];
        }
    }
}

/* The active entries of f by row and by latent when they are at most XC_SPARSE_MAX of them
 * (w->nnz; -1: too many, the dense path runs). */
static void build_sparse(const rs_crosscoder *c, int B, xc_ws *w) {
    int m = c->n_latents;
    int64_t cap = (int64_t)((double)B * m * XC_SPARSE_MAX), n = 0;
    if (cap > (int64_t)w->cap_nnz) cap = (int64_t)w->cap_nnz; /* the setting grew after ws_init */
    w->roff[0] = 0;
    for (int r = 0; r < B; r++) {
        const float *fr = w->f + (size_t)r * m;
        for (int i = 0; i < m; i++)
            if (fr[i] > 0) {
                if (n >= cap) {
                    w->nnz = -1;
                    return;
                }
                w->ridx[n] = i, w->rval[n++] = fr[i];
            }
        w->roff[r + 1] = (int)n;
    }
    w->nnz = n;
    memset(w->coff, 0, (size_t)(m + 1) * sizeof *w->coff);
    for (int64_t t = 0; t < n; t++) w->coff[w->ridx[t] + 1]++;
    for (int i = 0; i < m; i++) w->coff[i + 1] += w->coff[i];
    memcpy(w->cfill, w->coff, (size_t)m * sizeof *w->cfill);
    for (int r = 0; r < B; r++) /* rows in order within each latent */
        for (int t = w->roff[r]; t < w->roff[r + 1]; t++) {
            int q = w->cfill[w->ridx[t]]++;
            w->crow[q] = r, w->cpos[q] = t;
        }
}

/* x̂ = f·W_dec + b_dec */
static void xc_decode(const rs_crosscoder *c, int B, xc_ws *w) {
    int m = c->n_latents, D2 = 2 * c->d_in;
    build_sparse(c, B, w);
    for (int r = 0; r < B; r++) memcpy(w->xhat + (size_t)r * D2, c->b_dec, (size_t)D2 * sizeof *w->xhat);
    if (w->nnz < 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, D2, m, 1.0f, w->f, m, c->W_dec, D2, 1.0f, w->xhat, D2);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B; r++) {
        float *xr = w->xhat + (size_t)r * D2;
        for (int t = w->roff[r]; t < w->roff[r + 1]; t++) {
            const float v = w->rval[t], *wd = c->W_dec + (size_t)w->ridx[t] * D2;
            for (int j = 0; j < D2; j++) xr[j] += v * wd[j];
        }
    }
}

/* The sparse path's gradients (G = (2/B)·e in w->xhat): gW_dec[i] = Σ_b f_bi G_b, df at the
 * active entries (G_b·W_dec,i + λ/B Σ_s‖W_dec,s,i‖), gW_enc[:, i] = Σ_b df_bi X_b, gb_enc. Each latent's sums run over its rows in
 * order, so the result does not depend on the thread count. */
static void sparse_grads(const rs_crosscoder *c, const float *X, int B, xc_ws *w, float lam, float *gWe, float *gbe,
                         float *gWd) {
    int m = c->n_latents, D2 = 2 * c->d_in;
    const float *G = w->xhat, gl = lam / (float)B;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B; r++) {
        const float *gr = G + (size_t)r * D2;
        for (int t = w->roff[r]; t < w->roff[r + 1]; t++) {
            const float *wd = c->W_dec + (size_t)w->ridx[t] * D2;
            w->rdp[t] = cblas_sdot(D2, gr, 1, wd, 1) + gl * w->wsum[w->ridx[t]];
        }
    }
    /* latents in blocks of XC_BLK: the encoder gradient of a block is gathered in tmp
       [XC_BLK, 2d] and written to gW_enc [2d, m] XC_BLK contiguous floats at a time */
    int nblk = (m + XC_BLK - 1) / XC_BLK;
#pragma omp parallel num_threads(w->tmp_threads)
    {
        float *tmp = w->tmp + (size_t)omp_get_thread_num() * XC_BLK * D2;
#pragma omp for schedule(dynamic, 4)
        for (int b = 0; b < nblk; b++) {
            int i0 = b * XC_BLK, nb = m - i0 < XC_BLK ? m - i0 : XC_BLK;
            memset(tmp, 0, (size_t)nb * D2 * sizeof *tmp);
            for (int ii = 0; ii < nb; ii++) {
                int i = i0 + ii;
                float *gd = gWd + (size_t)i * D2, *te = tmp + (size_t)ii * D2;
                memset(gd, 0, (size_t)D2 * sizeof *gd);
                double bs = 0;
                for (int q = w->coff[i]; q < w->coff[i + 1]; q++) {
                    int r = w->crow[q], t = w->cpos[q];
                    const float v = w->rval[t], g = w->rdp[t], *gr = G + (size_t)r * D2, *xr = X + (size_t)r * D2;
                    for (int j = 0; j < D2; j++) gd[j] += v * gr[j], te[j] += g * xr[j];
                    bs += g;
                }
                gbe[i] = (float)bs;
            }
            for (int j = 0; j < D2; j++) {
                float *ge = gWe + (size_t)j * m + i0;
                for (int ii = 0; ii < nb; ii++) ge[ii] = tmp[(size_t)ii * D2 + j];
            }
        }
    }
}

/* Loss (and gradient into grad when not NULL) of the batch whose forward pass is in w; the
 * residual e = x̂ − X is left in w->xhat. */
static void xc_backward(const rs_crosscoder *c, const float *X, int B, xc_ws *w, float *grad, double *mse,
                        double *sparsity) {
    int m = c->n_latents, d = c->d_in, D2 = 2 * d;
    size_t BD = (size_t)B * D2;
    double se = 0;
    for (size_t t = 0; t < BD; t++) {
        float e = w->xhat[t] - X[t];
        w->xhat[t] = e;
        se += (double)e * e;
    }
    double sp = 0;
    float lam = c->sparsity == XC_L1 ? c->l1 : 0;
    if (lam != 0) { /* Σ_i (Σ_r f_ri)·wsum_i: the column sums, reused for the gradient */
        if (w->nnz >= 0) {
            for (int i = 0; i < m; i++) w->acc[i] = 0;
            for (int r = 0; r < B; r++)
                for (int t = w->roff[r]; t < w->roff[r + 1]; t++) w->acc[w->ridx[t]] += w->rval[t];
        } else {
            col_sums(w->f, B, m, w->acc);
        }
        for (int i = 0; i < m; i++) sp += w->acc[i] * w->wsum[i];
    }
    *mse = se / B;
    *sparsity = lam * sp / B;
    if (!grad) return;
    float *gWe = grad, *gbe = grad + (size_t)D2 * m, *gWd = gbe + m, *gbd = gWd + (size_t)D2 * m;
    const float g2 = 2.0f / (float)B, gl = lam / (float)B;
    /* G = (2/B)·e, in place */
    for (size_t t = 0; t < BD; t++) w->xhat[t] *= g2;
    const float *G = w->xhat;
    if (w->nnz >= 0) {
        sparse_grads(c, X, B, w, lam, gWe, gbe, gWd);
    } else {
        /* gW_dec = fᵀ·G */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, D2, B, 1.0f, w->f, m, G, D2, 0.0f, gWd, D2);
    }
    double *fsum = w->acc; /* Σ_b f_bi, from the loss above */
    /* the penalty's λ/B Σ_b f_bi · W_dec,s,i / ‖W_dec,s,i‖ */
    if (lam != 0)
        for (int i = 0; i < m; i++) {
            double fs = fsum[i];
            for (int s = 0; s < 2; s++) {
                float nr = w->nrm[(size_t)s * m + i];
                if (nr <= 0) continue;
                float coef = (float)(gl * fs) / nr;
                float *gr = gWd + (size_t)i * D2 + (size_t)s * d;
                const float *wr = c->W_dec + (size_t)i * D2 + (size_t)s * d;
                for (int j = 0; j < d; j++) gr[j] += coef * wr[j];
            }
        }
    double *cs = w->acc;
    for (int j = 0; j < D2; j++) cs[j] = 0;
    for (int r = 0; r < B; r++) {
        const float *gr = G + (size_t)r * D2;
        for (int j = 0; j < D2; j++) cs[j] += gr[j];
    }
    for (int j = 0; j < D2; j++) gbd[j] = (float)cs[j];
    if (w->nnz >= 0) return; /* the encoder side came from sparse_grads */
    /* df = G·W_decᵀ + λ/B·Σ_s‖W_dec,s,i‖, through the ReLU / selection mask (into w->pre) */
    float *dp = w->pre;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, m, D2, 1.0f, G, D2, c->W_dec, D2, 0.0f, dp, m);
#pragma omp parallel for schedule(static) if ((size_t)B * m > (1u << 16))
    for (int r = 0; r < B; r++) {
        float *dr = dp + (size_t)r * m;
        const float *fr = w->f + (size_t)r * m;
        for (int i = 0; i < m; i++) dr[i] = fr[i] > 0 ? dr[i] + gl * w->wsum[i] : 0;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D2, m, B, 1.0f, X, D2, dp, m, 0.0f, gWe, m);
    col_sums(dp, B, m, w->acc);
    for (int i = 0; i < m; i++) gbe[i] = (float)w->acc[i];
}

int xc_loss_grad(const rs_crosscoder *c, const float *X, int B, float *grad, double *mse, double *sparsity,
                 uint8_t *active, rs_err *err) {
    if (B < 1) return rs_errf(err, "crosscoder: empty batch");
    xc_ws w;
    if (ws_init(&w, c, B, err)) return -1;
    xc_forward(c, X, B, &w, 1, NULL);
    if (active)
        for (size_t t = 0; t < (size_t)B * c->n_latents; t++) active[t] = w.f[t] > 0;
    xc_decode(c, B, &w);
    xc_backward(c, X, B, &w, grad, mse, sparsity);
    ws_free(&w);
    return 0;
}

/* rows [r0, r0 + B) of x0, x1, scaled, into X [B, 2d] */
static void gather_scaled(const rs_crosscoder *c, const float *x0, const float *x1, int64_t r0, int B, float *X) {
    int d = c->d_in;
    for (int r = 0; r < B; r++) {
        float *o = X + (size_t)r * 2 * d;
        const float *a = x0 + (size_t)(r0 + r) * d, *b = x1 + (size_t)(r0 + r) * d;
        for (int j = 0; j < d; j++) o[j] = a[j] * c->scale[0], o[d + j] = b[j] * c->scale[1];
    }
}

int xc_encode(const rs_crosscoder *c, const float *x0, const float *x1, int64_t n, float *f, rs_err *err) {
    xc_ws w;
    float *X = malloc((size_t)XC_CHUNK * 2 * c->d_in * sizeof *X);
    if (!X || ws_init(&w, c, XC_CHUNK, err)) {
        free(X);
        return rs_errk(err, RS_ENOMEM, "crosscoder: out of memory");
    }
    for (int64_t r0 = 0; r0 < n; r0 += XC_CHUNK) {
        int B = n - r0 < XC_CHUNK ? (int)(n - r0) : XC_CHUNK;
        gather_scaled(c, x0, x1, r0, B, X);
        xc_forward(c, X, B, &w, 0, NULL);
        memcpy(f + (size_t)r0 * c->n_latents, w.f, (size_t)B * c->n_latents * sizeof *f);
    }
    ws_free(&w);
    free(X);
    return 0;
}

int xc_eval_rows(const rs_crosscoder *c, const float *x0, const float *x1, int64_t n, double *err0, double *err1,
                 double *l0, int64_t *fires, rs_err *err) {
    int d = c->d_in, m = c->n_latents, D2 = 2 * d;
    xc_ws w;
    float *X = malloc((size_t)XC_CHUNK * D2 * sizeof *X);
    if (!X || ws_init(&w, c, XC_CHUNK, err)) {
        free(X);
        return rs_errk(err, RS_ENOMEM, "crosscoder: out of memory");
    }
    if (fires) memset(fires, 0, (size_t)m * sizeof *fires);
    for (int64_t r0 = 0; r0 < n; r0 += XC_CHUNK) {
        int B = n - r0 < XC_CHUNK ? (int)(n - r0) : XC_CHUNK;
        gather_scaled(c, x0, x1, r0, B, X);
        xc_forward(c, X, B, &w, 0, NULL);
        xc_decode(c, B, &w);
        for (int r = 0; r < B; r++) {
            const float *xh = w.xhat + (size_t)r * D2, *fr = w.f + (size_t)r * m;
            const float *a = x0 + (size_t)(r0 + r) * d, *b = x1 + (size_t)(r0 + r) * d;
            double e0 = 0, e1 = 0;
            for (int j = 0; j < d; j++) {
                double u = a[j] - xh[j] / c->scale[0], v = b[j] - xh[d + j] / c->scale[1];
                e0 += u * u, e1 += v * v;
            }
            int64_t k = 0;
            for (int i = 0; i < m; i++)
                if (fr[i] > 0) {
                    k++;
                    if (fires) fires[i]++;
                }
            if (err0) err0[r0 + r] = e0;
            if (err1) err1[r0 + r] = e1;
            if (l0) l0[r0 + r] = (double)k;
        }
    }
    ws_free(&w);
    free(X);
    return 0;
}

/* ---- training ---- */

void xc_train_opts_default(xc_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->sparsity = XC_L1;
    o->l1 = 1e-3f;
    o->k = 16;
    o->steps = 2000;
    o->batch = 256;
    o->lr = 1e-3f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->dec_init_norm = 0.1f;
    o->normalize = 1;
    o->dead_after = 100000;
    o->resample_every = 500;
    o->resample_until = -1; /* → steps / 2 */
    o->seed = 1;
    o->checkpoint_every = 1000;
}

typedef struct {
    float *M1, *M2, *G;      /* Adam moments, gradient [n_params] */
    int64_t *last;           /* [m] rows seen when the latent last fired */
    int64_t step, seen, resampled, draws; /* draws: resampling RNG counter */
    int has_thr;
} xc_state;

/* Save the whole training state (atomic). */
static int state_save(const char *path, const char *tag, const rs_crosscoder *c, const xc_state *s, rs_err *err) {
    st_writer *w = st_writer_new();
    if (!w) return rs_errk(err, RS_ENOMEM, "out of memory");
    int64_t np = (int64_t)c->n_params, m = c->n_latents;
    int64_t cnt[4] = {s->step, s->seen, s->resampled, s->draws};
    float misc[4] = {c->scale[0], c->scale[1], c->threshold, (float)s->has_thr};
    int64_t four = 4;
    char buf[64];
    int rc = st_writer_add(w, "params", RS_DT_F32, 1, &np, c->params, err) ||
             st_writer_add(w, "adam_m1", RS_DT_F32, 1, &np, s->M1, err) ||
             st_writer_add(w, "adam_m2", RS_DT_F32, 1, &np, s->M2, err) ||
             st_writer_add(w, "last_fired", RS_DT_I64, 1, &m, s->last, err) ||
             st_writer_add(w, "counters", RS_DT_I64, 1, &four, cnt, err) ||
             st_writer_add(w, "misc", RS_DT_F32, 1, &four, misc, err) ||
             st_writer_meta(w, "format", XC_STATE_FORMAT, err) || st_writer_meta(w, "tag", tag ? tag : "", err);
    snprintf(buf, sizeof buf, "%d %d %d", c->d_in, c->n_latents, (int)c->sparsity);
    if (!rc) rc = st_writer_meta(w, "shape", buf, err);
    if (!rc) rc = st_writer_save(w, path, err);
    st_writer_free(w);
    return rc ? -1 : 0;
}

/* 1: resumed from path, 0: no usable state there (absent, or for other inputs), -1: error. */
static int state_load(const char *path, const char *tag, rs_crosscoder *c, xc_state *s, rs_err *err) {
    if (!rs_path_exists(path)) return 0;
    st_set *st = NULL;
    if (st_open(&st, path, err)) {
        rs_err_prefix(err, "crosscoder checkpoint (delete it to start afresh)");
        return -1;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%d %d %d", c->d_in, c->n_latents, (int)c->sparsity);
    const char *f = st_meta(st, "format"), *t = st_meta(st, "tag"), *sh = st_meta(st, "shape");
    if (!f || strcmp(f, XC_STATE_FORMAT) || !t || strcmp(t, tag ? tag : "") || !sh || strcmp(sh, buf)) {
        st_close(st);
        return 0; /* another run's state */
    }
    int64_t np = (int64_t)c->n_params, m = c->n_latents, four = 4;
    const st_tensor *tp, *t1, *t2, *tl, *tc, *tm;
    int rc = -1;
    if (st_expect(st, "params", 1, &np, &tp, err) || st_expect(st, "adam_m1", 1, &np, &t1, err) ||
        st_expect(st, "adam_m2", 1, &np, &t2, err) || st_expect(st, "last_fired", 1, &m, &tl, err) ||
        st_expect(st, "counters", 1, &four, &tc, err) || st_expect(st, "misc", 1, &four, &tm, err))
        goto done;
    if (tp->dtype != RS_DT_F32 || t1->dtype != RS_DT_F32 || t2->dtype != RS_DT_F32 || tl->dtype != RS_DT_I64 ||
        tc->dtype != RS_DT_I64 || tm->dtype != RS_DT_F32) {
        rs_errf(err, "%s: crosscoder checkpoint with unexpected dtypes", path);
        goto done;
    }
    memcpy(c->params, tp->data, (size_t)np * sizeof(float));
    memcpy(s->M1, t1->data, (size_t)np * sizeof(float));
    memcpy(s->M2, t2->data, (size_t)np * sizeof(float));
    memcpy(s->last, tl->data, (size_t)m * sizeof(int64_t));
    int64_t cnt[4];
    float misc[4];
    memcpy(cnt, tc->data, sizeof cnt);
    memcpy(misc, tm->data, sizeof misc);
    s->step = cnt[0], s->seen = cnt[1], s->resampled = cnt[2], s->draws = cnt[3];
    c->scale[0] = misc[0], c->scale[1] = misc[1], c->threshold = misc[2], s->has_thr = misc[3] != 0;
    rc = 1;
done:
    st_close(st);
    return rc;
}

/* Fisher–Yates permutation of 0..n-1 for one epoch (counter-based stream). */
static void epoch_perm(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rs_uniform_at(seed ^ SEED_PERM ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ull), (uint64_t)i) *
                              (double)(i + 1));
        if (j > i) j = i;
        int64_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

/* Re-initialise the dead latents from the rows of the batch with large residuals
 * (Bricken et al. 2023 resampling): row r drawn with probability ∝ ‖x_r − x̂_r‖², the
 * latent's decoder = the residual's direction with norm dec_init_norm·√2, its encoder column
 * = that direction × 0.2 × the mean encoder-column norm of the live latents, b_enc 0, and
 * its Adam moments reset. E: the batch residuals [B, 2d]. Returns the latents resampled. */
static int64_t resample(rs_crosscoder *c, xc_state *s, const xc_train_opts *o, const float *E, int B) {
    int m = c->n_latents, D2 = 2 * c->d_in;
    int64_t nd = 0;
    double alive_norm = 0;
    int n_alive = 0;
    for (int i = 0; i < m; i++) {
        if (s->seen - s->last[i] > o->dead_after) {
            nd++;
            continue;
        }
        double a = 0;
        for (int j = 0; j < D2; j++) a += (double)c->W_enc[(size_t)j * m + i] * c->W_enc[(size_t)j * m + i];
        alive_norm += sqrt(a);
        n_alive++;
    }
    if (!nd) return 0;
    double enc_norm = n_alive ? 0.2 * alive_norm / n_alive : o->dec_init_norm;
    double tot = 0;
    for (size_t t = 0; t < (size_t)B * D2; t++) tot += (double)E[t] * E[t];
    if (!(tot > 0)) return 0;
    size_t D2m = (size_t)D2 * m;
    for (int i = 0; i < m; i++) {
        if (s->seen - s->last[i] <= o->dead_after) continue;
        double u = rs_uniform_at(o->seed ^ SEED_RESAMPLE, (uint64_t)s->draws++) * tot, acc = 0;
        int r = 0;
        for (; r < B - 1; r++) {
            double q = 0;
            for (int j = 0; j < D2; j++) q += (double)E[(size_t)r * D2 + j] * E[(size_t)r * D2 + j];
            acc += q;
            if (acc > u) break;
        }
        const float *e = E + (size_t)r * D2;
        double nr = 0;
        for (int j = 0; j < D2; j++) nr += (double)e[j] * e[j];
        nr = sqrt(nr);
        if (!(nr > 0)) continue;
        /* the residual is x̂ − x: the direction to add is −e */
        float *wd = c->W_dec + (size_t)i * D2;
        double dscale = -o->dec_init_norm * sqrt(2.0) / nr, escale = -enc_norm / nr;
        for (int j = 0; j < D2; j++) {
            wd[j] = (float)(e[j] * dscale);
            c->W_enc[(size_t)j * m + i] = (float)(e[j] * escale);
        }
        c->b_enc[i] = 0;
        size_t offs[3] = {0, D2m, D2m + (size_t)m};
        for (int j = 0; j < D2; j++) s->M1[offs[0] + (size_t)j * m + i] = s->M2[offs[0] + (size_t)j * m + i] = 0;
        s->M1[offs[1] + i] = s->M2[offs[1] + i] = 0;
        for (int j = 0; j < D2; j++) s->M1[offs[2] + (size_t)i * D2 + j] = s->M2[offs[2] + (size_t)i * D2 + j] = 0;
        s->last[i] = s->seen;
        s->resampled++;
    }
    return nd;
}

int xc_train(const float *x0, const float *x1, int64_t n, int d, const xc_train_opts *o, rs_crosscoder **out,
             xc_train_report *rep, rs_err *err) {
    *out = NULL;
    int m = o->n_latents, B = o->batch;
    if (n < 1 || d < 1 || m < 1 || B < 1 || o->steps < 1 || (o->sparsity == XC_BATCHTOPK && (o->k < 1 || o->k > m)) ||
        !(o->l1 >= 0) || !(o->lr > 0))
        return rs_errf(err, "crosscoder training: bad settings (rows %lld, d_in %d, n_latents %d, batch %d, steps %lld, k %d)",
                       (long long)n, d, m, B, (long long)o->steps, o->k);
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(x0[i]) || !isfinite(x1[i]))
            return rs_errf(err, "crosscoder training: activation row %lld is not finite", (long long)(i / d));
    rs_crosscoder *c = NULL;
    if (xc_new(&c, d, m, o->sparsity, err)) return -1;
    c->l1 = o->l1;
    c->k = o->k;
    int D2 = 2 * d, rc = -1;
    size_t np = c->n_params;
    xc_state s = {0};
    xc_ws w = {0};
    s.M1 = calloc(np, sizeof *s.M1);
    s.M2 = calloc(np, sizeof *s.M2);
    s.G = calloc(np, sizeof *s.G);
    s.last = calloc((size_t)m, sizeof *s.last);
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    float *X = malloc((size_t)B * D2 * sizeof *X);
    if (!s.M1 || !s.M2 || !s.G || !s.last || !perm || !X) {
        rs_errk(err, RS_ENOMEM, "crosscoder training: out of memory (%zu parameters)", np);
        goto done;
    }
    if (ws_init(&w, c, B, err)) goto done;
    int resumed = o->checkpoint ? state_load(o->checkpoint, o->checkpoint_tag, c, &s, err) : 0;
    if (resumed < 0) goto done;
    if (!resumed) {
        /* scales: mean ‖x_s‖ → √d */
        double nrm[2] = {0, 0};
        for (int64_t r = 0; r < n; r++) {
            double a = 0, b = 0;
            for (int j = 0; j < d; j++)
                a += (double)x0[(size_t)r * d + j] * x0[(size_t)r * d + j], b += (double)x1[(size_t)r * d + j] * x1[(size_t)r * d + j];
            nrm[0] += sqrt(a), nrm[1] += sqrt(b);
        }
        for (int sd = 0; sd < 2; sd++) c->scale[sd] = o->normalize && nrm[sd] > 0 ? (float)(sqrt((double)d) * n / nrm[sd]) : 1.0f;
        /* W_dec: per latent and side a random direction of norm dec_init_norm; W_enc = W_decᵀ */
        for (int i = 0; i < m; i++)
            for (int sd = 0; sd < 2; sd++) {
                float *wr = c->W_dec + (size_t)i * D2 + (size_t)sd * d;
                double ss = 0;
                for (int j = 0; j < d; j++) {
                    wr[j] = (float)rs_normal_at(o->seed ^ SEED_INIT, ((uint64_t)i * 2 + (uint64_t)sd) * (uint64_t)d + (uint64_t)j);
                    ss += (double)wr[j] * wr[j];
                }
                double f = ss > 0 ? o->dec_init_norm / sqrt(ss) : 0;
                for (int j = 0; j < d; j++) wr[j] = (float)(wr[j] * f);
            }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < D2; j++) c->W_enc[(size_t)j * m + i] = c->W_dec[(size_t)i * D2 + j];
        /* b_dec: the (scaled) data mean */
        for (int j = 0; j < d; j++) {
            double a = 0, b = 0;
            for (int64_t r = 0; r < n; r++) a += x0[(size_t)r * d + j], b += x1[(size_t)r * d + j];
            c->b_dec[j] = (float)(a / n * c->scale[0]);
            c->b_dec[d + j] = (float)(b / n * c->scale[1]);
        }
    }
    int64_t start = s.step, until = o->resample_until < 0 ? o->steps / 2 : o->resample_until;
    int64_t end = o->stop_after > 0 && start + o->stop_after < o->steps ? start + o->stop_after : o->steps;
    int64_t cur_epoch = -1, tail = (end - start) / 10 > 0 ? (end - start) / 10 : 1;
    double tail_sum = 0;
    int64_t tail_n = 0;
    for (int64_t step = start; step < end; step++) {
        for (int r = 0; r < B; r++) {
            int64_t p = step * (int64_t)B + r, ep = p / n;
            if (ep != cur_epoch) {
                epoch_perm(o->seed, ep, n, perm);
                cur_epoch = ep;
            }
            int64_t row = perm[p % n];
            float *xr = X + (size_t)r * D2;
            const float *a = x0 + (size_t)row * d, *b = x1 + (size_t)row * d;
            for (int j = 0; j < d; j++) xr[j] = a[j] * c->scale[0], xr[d + j] = b[j] * c->scale[1];
        }
        float thr = 0;
        xc_forward(c, X, B, &w, 1, &thr);
        s.seen += B;
        if (o->sparsity == XC_BATCHTOPK && isfinite(thr)) {
            c->threshold = s.has_thr ? 0.99f * c->threshold + 0.01f * thr : thr;
            s.has_thr = 1;
        }
        xc_decode(c, B, &w);
        /* latents that fired in this batch (the sparse lists, or a scan of f) */
        if (w.nnz >= 0) {
            for (int i = 0; i < m; i++)
                if (w.coff[i + 1] > w.coff[i]) s.last[i] = s.seen;
        } else {
            col_sums(w.f, B, m, w.acc);
            for (int i = 0; i < m; i++)
                if (w.acc[i] > 0) s.last[i] = s.seen;
        }
        double mse, spl;
        xc_backward(c, X, B, &w, s.G, &mse, &spl);
        if (!isfinite(mse) || !isfinite(spl)) {
            rs_errf(err, "crosscoder training diverged at step %lld (loss not finite); lower lr", (long long)step + 1);
            goto done;
        }
        if (step >= end - tail) tail_sum += mse, tail_n++;
        rs_adam_update_f32(c->params, s.G, s.M1, s.M2, np, o->lr, o->beta1, o->beta2, o->eps, step + 1);
        s.step = step + 1;
        if (o->resample_every > 0 && s.step % o->resample_every == 0 && s.step <= until) {
            /* residuals of this batch with the updated parameters */
            xc_forward(c, X, B, &w, 1, NULL);
            xc_decode(c, B, &w);
            for (size_t t = 0; t < (size_t)B * D2; t++) w.xhat[t] -= X[t];
            int64_t nd = resample(c, &s, o, w.xhat, B);
            if (nd && o->log) fprintf(o->log, "crosscoder: step %lld: resampled %lld dead latents\n", (long long)s.step, (long long)nd);
        }
        if (o->log && o->log_every > 0 && s.step % o->log_every == 0)
            fprintf(o->log, "crosscoder: step %lld/%lld mse %.6g sparsity %.6g\n", (long long)s.step, (long long)o->steps,
                    mse, spl);
        if (o->checkpoint && o->checkpoint_every > 0 && s.step % o->checkpoint_every == 0 && s.step < o->steps &&
            state_save(o->checkpoint, o->checkpoint_tag, c, &s, err))
            goto done;
    }
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->steps_done = s.step;
        rep->resumed_from = start;
        rep->resampled = s.resampled;
        rep->epochs = (s.step * (int64_t)B + n - 1) / n;
        rep->final_mse = tail_n ? tail_sum / tail_n : NAN;
        for (int i = 0; i < m; i++) rep->dead_at_end += s.seen - s.last[i] > o->dead_after;
    }
    if (s.step < o->steps) { /* stopped early: keep the state */
        rc = o->checkpoint ? state_save(o->checkpoint, o->checkpoint_tag, c, &s, err) : 0;
        goto done;
    }
    if (o->checkpoint) unlink(o->checkpoint);
    *out = c;
    c = NULL;
    rc = 0;
done:
    xc_free(c);
    ws_free(&w);
    free(s.M1), free(s.M2), free(s.G), free(s.last), free(perm), free(X);
    return rc;
}

/* ---- files ---- */

int xc_save(const rs_crosscoder *c, const char *path, const char *const *meta_kv, rs_err *err) {
    st_writer *w = st_writer_new();
    if (!w) return rs_errk(err, RS_ENOMEM, "out of memory");
    int64_t d = c->d_in, m = c->n_latents;
    int64_t se[3] = {2, d, m}, sb[1] = {m}, sd[3] = {m, 2, d}, sbd[2] = {2, d}, ss[1] = {2};
    char l1[32], k[32], thr[32], din[32], nl[32];
    snprintf(l1, sizeof l1, "%.9g", c->l1);
    snprintf(k, sizeof k, "%d", c->k);
    snprintf(thr, sizeof thr, "%.9g", c->threshold);
    snprintf(din, sizeof din, "%d", c->d_in);
    snprintf(nl, sizeof nl, "%d", c->n_latents);
    int rc = st_writer_add(w, "W_enc", RS_DT_F32, 3, se, c->W_enc, err) ||
             st_writer_add(w, "b_enc", RS_DT_F32, 1, sb, c->b_enc, err) ||
             st_writer_add(w, "W_dec", RS_DT_F32, 3, sd, c->W_dec, err) ||
             st_writer_add(w, "b_dec", RS_DT_F32, 2, sbd, c->b_dec, err) ||
             st_writer_add(w, "scale", RS_DT_F32, 1, ss, c->scale, err) ||
             st_writer_meta(w, "format", XC_FORMAT, err) ||
             st_writer_meta(w, "sparsity", c->sparsity == XC_L1 ? "l1" : "batchtopk", err) ||
             st_writer_meta(w, "l1", l1, err) || st_writer_meta(w, "k", k, err) ||
             st_writer_meta(w, "threshold", thr, err) || st_writer_meta(w, "d_in", din, err) ||
             st_writer_meta(w, "n_latents", nl, err) || st_writer_meta(w, "sides", "llm,vlm", err);
    for (int i = 0; !rc && meta_kv && meta_kv[i] && meta_kv[i + 1]; i += 2) rc = st_writer_meta(w, meta_kv[i], meta_kv[i + 1], err);
    if (!rc) rc = st_writer_save(w, path, err);
    st_writer_free(w);
    return rc ? -1 : 0;
}

static int meta_num(const st_set *st, const char *path, const char *key, double lo, double hi, double *v, rs_err *err) {
    const char *s = st_meta(st, key);
    char *end = NULL;
    *v = s ? strtod(s, &end) : NAN;
    if (!s || end == s || *end || !(*v >= lo && *v <= hi))
        return rs_errf(err, "%s: crosscoder metadata \"%s\" is missing or out of range [%g, %g]", path, key, lo, hi);
    return 0;
}

int xc_load(const char *path, rs_crosscoder **out, rs_err *err) {
    *out = NULL;
    st_set *st = NULL;
    if (st_open(&st, path, err)) return -1;
    rs_crosscoder *c = NULL;
    int rc = -1;
    const char *fmt = st_meta(st, "format"), *sp = st_meta(st, "sparsity");
    if (!fmt || strcmp(fmt, XC_FORMAT)) {
        rs_errf(err, "%s: not a reprshift crosscoder (metadata format \"%s\", expected \"%s\")", path, fmt ? fmt : "",
                XC_FORMAT);
        goto done;
    }
    if (!sp || (strcmp(sp, "l1") && strcmp(sp, "batchtopk"))) {
        rs_errf(err, "%s: crosscoder metadata \"sparsity\" must be \"l1\" or \"batchtopk\"", path);
        goto done;
    }
    const st_tensor *te = st_get(st, "W_enc");
    if (!te || te->ndim != 3 || te->shape[0] != 2 || te->shape[1] < 1 || te->shape[2] < 1 || te->shape[1] > (1 << 20) ||
        te->shape[2] > (1 << 24)) {
        rs_errf(err, "%s: W_enc must be [2, d_in, n_latents]", path);
        goto done;
    }
    int d = (int)te->shape[1], m = (int)te->shape[2];
    if (xc_new(&c, d, m, strcmp(sp, "l1") ? XC_BATCHTOPK : XC_L1, err)) goto done;
    int64_t se[3] = {2, d, m}, sb[1] = {m}, sd[3] = {m, 2, d}, sbd[2] = {2, d}, ss[1] = {2};
    const st_tensor *t[5];
    if (st_expect(st, "W_enc", 3, se, &t[0], err) || st_expect(st, "b_enc", 1, sb, &t[1], err) ||
        st_expect(st, "W_dec", 3, sd, &t[2], err) || st_expect(st, "b_dec", 2, sbd, &t[3], err) ||
        st_expect(st, "scale", 1, ss, &t[4], err))
        goto done;
    float *dst[5] = {c->W_enc, c->b_enc, c->W_dec, c->b_dec, c->scale};
    for (int i = 0; i < 5; i++) st_to_f32(t[i], dst[i]);
    for (size_t i = 0; i < c->n_params; i++)
        if (!isfinite(c->params[i])) {
            rs_errf(err, "%s: crosscoder parameter %zu is not finite", path, i);
            goto done;
        }
    if (!(c->scale[0] > 0 && c->scale[1] > 0 && isfinite(c->scale[0]) && isfinite(c->scale[1]))) {
        rs_errf(err, "%s: crosscoder \"scale\" must be two positive numbers", path);
        goto done;
    }
    double l1, k, thr;
    if (meta_num(st, path, "l1", 0, 1e30, &l1, err) || meta_num(st, path, "k", 0, m, &k, err) ||
        meta_num(st, path, "threshold", -1e30, 1e30, &thr, err))
        goto done;
    c->l1 = (float)l1, c->k = (int)k, c->threshold = (float)thr;
    if (c->sparsity == XC_BATCHTOPK && c->k < 1) {
        rs_errf(err, "%s: a batchtopk crosscoder needs k >= 1", path);
        goto done;
    }
    *out = c;
    c = NULL;
    rc = 0;
done:
    xc_free(c);
    st_close(st);
    return rc;
}
