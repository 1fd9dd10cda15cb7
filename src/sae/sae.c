/* SAE encode/decode (sae-lens semantics, spec §6.3) and construction.
 * Rows are processed in chunks of CHUNK so scratch memory stays bounded while the encoder
 * matmul still runs at BLAS speed. Loading lives in sae_load.c. */
#include "reprshift/sae.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/isa.h"

#define CHUNK 512

const char *sae_arch_name(sae_arch a) {
    switch (a) {
    case SAE_ARCH_STANDARD: return "standard";
    case SAE_ARCH_JUMPRELU: return "jumprelu";
    case SAE_ARCH_TOPK: return "topk";
    }
    return "?";
}

const char *sae_norm_name(sae_norm n) {
    switch (n) {
    case SAE_NORM_NONE: return "none";
    case SAE_NORM_EXPECTED_AVERAGE_ONLY_IN: return "expected_average_only_in";
    case SAE_NORM_CONSTANT_NORM_RESCALE: return "constant_norm_rescale";
    case SAE_NORM_LAYER_NORM: return "layer_norm";
    }
    return "?";
}

void sae_free(rs_sae *s) {
    if (!s) return;
    free(s->hook_name);
    free(s->model_name);
    free(s->path);
    free(s->sae_name);
    free(s->W_enc);
    free(s->W_dec);
    free(s->b_enc);
    free(s->b_dec);
    free(s->threshold);
    free(s->dec_norm);
    free(s);
}

static float *dup_f(const float *src, size_t n) {
    float *d = malloc(n * sizeof *d);
    if (d && src) memcpy(d, src, n * sizeof *d);
    return d;
}

int sae_new(rs_sae **out, sae_arch arch, int d_in, int d_sae, const float *W_enc, const float *W_dec,
            const float *b_enc, const float *b_dec, const float *threshold, rs_err *err) {
    *out = NULL;
    if (d_in <= 0 || d_sae <= 0) return rs_errf(err, "SAE: bad sizes d_in %d d_sae %d", d_in, d_sae);
    if (arch == SAE_ARCH_JUMPRELU && !threshold) return rs_errf(err, "SAE: jumprelu needs a threshold");
    rs_sae *s = calloc(1, sizeof *s);
    if (!s) return rs_errk(err, RS_ENOMEM, "SAE: out of memory");
    size_t nw = (size_t)d_in * (size_t)d_sae;
    s->arch = arch;
    s->d_in = d_in;
    s->d_sae = d_sae;
    s->k = 0;
    s->apply_b_dec_to_input = 1;
    s->normalize = SAE_NORM_NONE;
    s->W_enc = dup_f(W_enc, nw);
    s->W_dec = dup_f(W_dec, nw);
    s->b_enc = dup_f(b_enc, (size_t)d_sae);
    s->b_dec = dup_f(b_dec, (size_t)d_in);
    s->dec_norm = malloc((size_t)d_sae * sizeof(float));
    if (threshold) s->threshold = dup_f(threshold, (size_t)d_sae);
    if (!s->W_enc || !s->W_dec || !s->b_enc || !s->b_dec || !s->dec_norm || (threshold && !s->threshold)) {
        sae_free(s);
        return rs_errk(err, RS_ENOMEM, "SAE: out of memory for d_in %d d_sae %d", d_in, d_sae);
    }
    if (!b_enc) memset(s->b_enc, 0, (size_t)d_sae * sizeof(float));
    if (!b_dec) memset(s->b_dec, 0, (size_t)d_in * sizeof(float));
    sae_update_dec_norm(s);
    *out = s;
    return 0;
}

void sae_update_dec_norm(rs_sae *s) {
    for (int f = 0; f < s->d_sae; f++) {
        const float *w = s->W_dec + (size_t)f * s->d_in;
        double a = 0;
        for (int i = 0; i < s->d_in; i++) a += (double)w[i] * w[i];
        s->dec_norm[f] = (float)sqrt(a);
    }
}

int sae_check_hook(const rs_sae *s, const char *act_hook, int allow_mismatch, rs_err *err) {
    if (allow_mismatch) return 0;
    if (!s->hook_name)
        return rs_errf(err, "%s: SAE records no hook name; name the hook it was trained on (--sae-hook NAME) or allow a "
                       "mismatch (--allow-hook-mismatch)",
                       s->path ? s->path : "SAE");
    if (!act_hook || strcmp(s->hook_name, act_hook))
        return rs_errf(err, "%s: SAE was trained on hook '%s' but the activations are from '%s' "
                       "(use --allow-hook-mismatch to override)",
                       s->path ? s->path : "SAE", s->hook_name, act_hook ? act_hook : "(unknown)");
    return 0;
}

/* Per-row input normalisation; coef receives what norm_out needs (scale, and mean for LN). */
static void norm_in_row(const rs_sae *s, const float *x, float *y, float *scale, float *mean) {
    int d = s->d_in;
    if (s->normalize == SAE_NORM_CONSTANT_NORM_RESCALE) {
        double a = 0;
        for (int i = 0; i < d; i++) a += (double)x[i] * x[i];
        float c = (float)(sqrt((double)d) / sqrt(a));
        for (int i = 0; i < d; i++) y[i] = x[i] * c;
        *scale = c;
    } else if (s->normalize == SAE_NORM_LAYER_NORM) {
        double m = 0, v = 0;
        for (int i = 0; i < d; i++) m += x[i];
        float mu = (float)(m / d);
        for (int i = 0; i < d; i++) {
            float c = x[i] - mu;
            v += (double)c * c;
        }
        float sd = d > 1 ? (float)sqrt(v / (d - 1)) : 0.0f; /* torch.std: unbiased */
        for (int i = 0; i < d; i++) y[i] = (x[i] - mu) / (sd + 1e-5f);
        *scale = sd;
        *mean = mu;
    } else if (y != x) {
        memcpy(y, x, (size_t)d * sizeof *y);
    }
}

static void norm_out_row(const rs_sae *s, float *y, float scale, float mean) {
    int d = s->d_in;
    if (s->normalize == SAE_NORM_CONSTANT_NORM_RESCALE)
        for (int i = 0; i < d; i++) y[i] = y[i] / scale;
    else if (s->normalize == SAE_NORM_LAYER_NORM)
        for (int i = 0; i < d; i++) y[i] = y[i] * scale + mean;
}

typedef struct {
    float v;
    int i;
} kv;

/* Min-heap on v (ties: larger index is "smaller", so the earlier index survives). */
static int kv_less(kv a, kv b) { return a.v < b.v || (a.v == b.v && a.i > b.i); }

static void heap_down(kv *h, int n, int p) {
    for (;;) {
        int l = 2 * p + 1, r = l + 1, m = p;
        if (l < n && kv_less(h[l], h[m])) m = l;
        if (r < n && kv_less(h[r], h[m])) m = r;
        if (m == p) return;
        kv t = h[p];
        h[p] = h[m];
        h[m] = t;
        p = m;
    }
}

/* Keep the k largest entries of row (ReLU applied), zero the rest. */
static void topk_row(float *row, int n, int k, kv *heap) {
    for (int i = 0; i < k; i++) heap[i] = (kv){row[i], i};
    for (int p = k / 2 - 1; p >= 0; p--) heap_down(heap, k, p);
    for (int i = k; i < n; i++)
        if (row[i] > heap[0].v) {
            heap[0] = (kv){row[i], i};
            heap_down(heap, k, 0);
        }
    memset(row, 0, (size_t)n * sizeof *row);
    for (int j = 0; j < k; j++) row[heap[j].i] = heap[j].v > 0 ? heap[j].v : 0.0f;
}

/* The activation functions (elementwise: vectorised per ISA level with the same results). */
RS_KERNEL_BODY void relu_row_body(float *a, int m) {
    for (int f = 0; f < m; f++) a[f] = a[f] > 0 ? a[f] : 0.0f;
}
RS_ISA_KERNEL(relu_row, (float *a, int m), (a, m))
RS_KERNEL_BODY void jumprelu_row_body(float *a, const float *t, int m) {
    for (int f = 0; f < m; f++) a[f] = (a[f] > t[f] && a[f] > 0) ? a[f] : 0.0f;
}
RS_ISA_KERNEL(jumprelu_row, (float *a, const float *t, int m), (a, t, m))

static int check_finite(const rs_sae *s, const float *x, int64_t row0, int64_t n, rs_err *err) {
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * s->d_in;
        for (int i = 0; i < s->d_in; i++)
            if (!isfinite(xr[i]))
                return rs_errf(err, "activation row %lld, column %d is %s", (long long)(row0 + r), i,
                               isnan(xr[i]) ? "NaN" : "Inf");
    }
    return 0;
}

int sae_encode(const rs_sae *s, const float *x, int64_t n, float *acts, rs_err *err) {
    int d = s->d_in, m = s->d_sae;
    if (check_finite(s, x, 0, n, err)) return -1;
    float *xp = malloc((size_t)CHUNK * d * sizeof *xp);
    kv *heap = s->arch == SAE_ARCH_TOPK ? malloc((size_t)s->k * sizeof *heap) : NULL;
    if (!xp || (s->arch == SAE_ARCH_TOPK && !heap)) {
        free(xp);
        free(heap);
        return rs_errk(err, RS_ENOMEM, "SAE encode: out of memory");
    }
    for (int64_t r0 = 0; r0 < n; r0 += CHUNK) {
        int nb = (int)(n - r0 < CHUNK ? n - r0 : CHUNK);
        const float *xc = x + (size_t)r0 * d;
        float *ac = acts + (size_t)r0 * m;
        for (int r = 0; r < nb; r++) {
            float sc, mu;
            float *y = xp + (size_t)r * d;
            norm_in_row(s, xc + (size_t)r * d, y, &sc, &mu);
            if (s->apply_b_dec_to_input)
                for (int i = 0; i < d; i++) y[i] -= s->b_dec[i];
            memcpy(ac + (size_t)r * m, s->b_enc, (size_t)m * sizeof(float));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, m, d, 1.0f, xp, d, s->W_enc, m,
                    1.0f, ac, m);
        for (int r = 0; r < nb; r++) {
            float *a = ac + (size_t)r * m;
            if (s->arch == SAE_ARCH_STANDARD) {
                RS_ISA_CALL(relu_row)(a, m);
            } else if (s->arch == SAE_ARCH_JUMPRELU) {
                RS_ISA_CALL(jumprelu_row)(a, s->threshold, m);
            } else {
                if (s->rescale_acts_by_decoder_norm)
                    for (int f = 0; f < m; f++) a[f] *= s->dec_norm[f];
                topk_row(a, m, s->k, heap);
            }
        }
    }
    free(xp);
    free(heap);
    return 0;
}

int sae_decode(const rs_sae *s, const float *acts, const float *x, int64_t n, float *out, rs_err *err) {
    int d = s->d_in, m = s->d_sae;
    int needs_x = s->normalize == SAE_NORM_CONSTANT_NORM_RESCALE || s->normalize == SAE_NORM_LAYER_NORM;
    if (needs_x && !x) return rs_errf(err, "SAE decode: normalisation '%s' needs the input rows", sae_norm_name(s->normalize));
    float *tmp = malloc((size_t)d * sizeof *tmp);
    float *scaled = NULL;
    if (!tmp) return rs_errk(err, RS_ENOMEM, "SAE decode: out of memory");
    for (int64_t r0 = 0; r0 < n; r0 += CHUNK) {
        int nb = (int)(n - r0 < CHUNK ? n - r0 : CHUNK);
        const float *ac = acts + (size_t)r0 * m;
        float *oc = out + (size_t)r0 * d;
        size_t nnz = 0;
        for (size_t i = 0; i < (size_t)nb * m; i++) nnz += ac[i] != 0;
        if (nnz * 20 < (size_t)nb * m) {
            /* Sparse path: out_r = b_dec + Σ_f a_f·W_dec[f] over the active features. */
            for (int r = 0; r < nb; r++) {
                float *o = oc + (size_t)r * d;
                const float *a = ac + (size_t)r * m;
                memcpy(o, s->b_dec, (size_t)d * sizeof *o);
                for (int f = 0; f < m; f++) {
                    if (a[f] == 0) continue;
                    float v = s->rescale_acts_by_decoder_norm ? a[f] * (1.0f / s->dec_norm[f]) : a[f];
                    cblas_saxpy(d, v, s->W_dec + (size_t)f * d, 1, o, 1);
                }
            }
        } else {
            const float *src = ac;
            if (s->rescale_acts_by_decoder_norm) {
                if (!scaled) scaled = malloc((size_t)CHUNK * m * sizeof *scaled);
                if (!scaled) {
                    free(tmp);
                    return rs_errk(err, RS_ENOMEM, "SAE decode: out of memory");
                }
                for (int r = 0; r < nb; r++)
                    for (int f = 0; f < m; f++)
                        scaled[(size_t)r * m + f] = ac[(size_t)r * m + f] * (1.0f / s->dec_norm[f]);
                src = scaled;
            }
            for (int r = 0; r < nb; r++) memcpy(oc + (size_t)r * d, s->b_dec, (size_t)d * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, d, m, 1.0f, src, m, s->W_dec, d,
                        1.0f, oc, d);
        }
        if (needs_x)
            for (int r = 0; r < nb; r++) {
                float sc = 1, mu = 0;
                norm_in_row(s, x + (size_t)(r0 + r) * d, tmp, &sc, &mu);
                norm_out_row(s, oc + (size_t)r * d, sc, mu);
            }
    }
    free(tmp);
    free(scaled);
    return 0;
}

int sae_forward(const rs_sae *s, const float *x, int64_t n, float *acts, float *out, rs_err *err) {
    /* Work in chunks so a splice callback over many tokens needs only CHUNK×d_sae scratch. */
    int d = s->d_in, m = s->d_sae;
    float *a = acts ? NULL : malloc((size_t)CHUNK * m * sizeof *a);
    float *xin = malloc((size_t)CHUNK * d * sizeof *xin);
    if ((!acts && !a) || !xin) {
        free(a);
        free(xin);
        return rs_errk(err, RS_ENOMEM, "SAE forward: out of memory");
    }
    int rc = 0;
    for (int64_t r0 = 0; r0 < n && !rc; r0 += CHUNK) {
        int64_t nb = n - r0 < CHUNK ? n - r0 : CHUNK;
        float *ac = acts ? acts + (size_t)r0 * m : a;
        memcpy(xin, x + (size_t)r0 * d, (size_t)nb * d * sizeof *xin); /* out may alias x */
        rc = sae_encode(s, xin, nb, ac, err);
        if (rc) rs_err_prefix(err, "rows from %lld", (long long)r0);
        else rc = sae_decode(s, ac, xin, nb, out + (size_t)r0 * d, err);
    }
    free(a);
    free(xin);
    return rc;
}

int sae_reconstruct(const rs_sae *s, const float *x, int64_t n, float *out, rs_err *err) {
    return sae_forward(s, x, n, NULL, out, err);
}

/* ---- sparse feature rows ---- */

void sae_sparse_free(sae_sparse *sp) {
    if (!sp) return;
    free(sp->row_ptr);
    free(sp->idx);
    free(sp->val);
    memset(sp, 0, sizeof *sp);
}

/* Append the nonzeros of nb dense rows; grows idx/val geometrically. */
static int sparse_append(sae_sparse *sp, size_t *cap, const float *f, int64_t nb, int m) {
    for (int64_t r = 0; r < nb; r++) {
        const float *a = f + (size_t)r * m;
        int64_t nz = sp->row_ptr[sp->n];
        for (int j = 0; j < m; j++) {
            if (a[j] == 0) continue;
            if ((size_t)nz == *cap) {
                size_t nc = *cap ? *cap * 2 : 4096;
                int32_t *ni = realloc(sp->idx, nc * sizeof *ni);
                if (!ni) return -1;
                sp->idx = ni;
                float *nv = realloc(sp->val, nc * sizeof *nv);
                if (!nv) return -1;
                sp->val = nv;
                *cap = nc;
            }
            sp->idx[nz] = j;
            sp->val[nz] = a[j];
            nz++;
        }
        sp->row_ptr[++sp->n] = nz;
    }
    return 0;
}

int sae_sparse_from_dense(const float *f, int64_t n, int d_sae, sae_sparse *out, rs_err *err) {
    memset(out, 0, sizeof *out);
    out->d_sae = d_sae;
    out->row_ptr = calloc((size_t)n + 1, sizeof *out->row_ptr);
    size_t cap = 0;
    if (!out->row_ptr || sparse_append(out, &cap, f, n, d_sae)) {
        sae_sparse_free(out);
        return rs_errk(err, RS_ENOMEM, "sparse features: out of memory");
    }
    return 0;
}

int sae_encode_sparse(const rs_sae *s, const float *x, int64_t n, sae_sparse *out, rs_err *err) {
    memset(out, 0, sizeof *out);
    out->d_sae = s->d_sae;
    out->row_ptr = calloc((size_t)n + 1, sizeof *out->row_ptr);
    float *f = malloc((size_t)CHUNK * s->d_sae * sizeof *f);
    size_t cap = 0;
    int rc = 0;
    if (!out->row_ptr || !f) rc = rs_errk(err, RS_ENOMEM, "SAE encode: out of memory");
    for (int64_t r0 = 0; r0 < n && !rc; r0 += CHUNK) {
        int64_t nb = n - r0 < CHUNK ? n - r0 : CHUNK;
        if (sae_encode(s, x + (size_t)r0 * s->d_in, nb, f, err)) {
            rc = rs_err_prefix(err, "rows from %lld", (long long)r0);
        } else if (sparse_append(out, &cap, f, nb, s->d_sae)) {
            rc = rs_errk(err, RS_ENOMEM, "SAE encode: out of memory");
        }
    }
    free(f);
    if (rc) sae_sparse_free(out);
    return rc;
}

int sae_sparse_pool_mean(const sae_sparse *in, const int64_t *offsets, int64_t n_groups, sae_sparse *out, rs_err *err) {
    int m = in->d_sae;
    float *acc = calloc((size_t)m, sizeof *acc);
    memset(out, 0, sizeof *out);
    out->d_sae = m;
    out->row_ptr = calloc((size_t)n_groups + 1, sizeof *out->row_ptr);
    size_t cap = 0;
    int rc = 0;
    if (!acc || !out->row_ptr) rc = rs_errk(err, RS_ENOMEM, "pooling: out of memory");
    for (int64_t g = 0; g < n_groups && !rc; g++) {
        int64_t a = offsets[g], b = offsets[g + 1];
        if (a < 0 || b < a || b > in->n) {
            rc = rs_errf(err, "pooling: bad offsets for group %lld", (long long)g);
            break;
        }
        memset(acc, 0, (size_t)m * sizeof *acc);
        for (int64_t r = a; r < b; r++)
            for (int64_t z = in->row_ptr[r]; z < in->row_ptr[r + 1]; z++) acc[in->idx[z]] += in->val[z];
        if (b > a)
            for (int j = 0; j < m; j++) acc[j] /= (float)(b - a);
        if (sparse_append(out, &cap, acc, 1, m)) rc = rs_errk(err, RS_ENOMEM, "pooling: out of memory");
    }
    free(acc);
    if (rc) sae_sparse_free(out);
    return rc;
}
