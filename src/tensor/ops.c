/* Dense kernels. Big products go to BLAS; reductions accumulate in double so results
 * stay within rounding of PyTorch's fp32 reductions regardless of summation order. */
#include "reprshift/ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

void op_linear(float *y, const float *x, const float *W, const float *bias, int T, int IN, int OUT) {
    if (T <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OUT, IN, 1.0f, x, IN, W, IN, 0.0f, y, OUT);
    if (bias)
#pragma omp parallel for schedule(static) if (T > 16)
        for (int t = 0; t < T; t++) {
            float *r = y + (size_t)t * OUT;
            for (int o = 0; o < OUT; o++) r[o] += bias[o];
        }
}

void op_rmsnorm_gemma(float *y, const float *x, const float *w, float eps, int T, int D) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * D;
        float *yr = y + (size_t)t * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        float r = 1.0f / sqrtf((float)(ss / D) + eps);
        for (int d = 0; d < D; d++) {
            float v = xr[d] * r;
            yr[d] = w ? v * (1.0f + w[d]) : v;
        }
    }
}

void op_layernorm(float *y, const float *x, const float *gamma, const float *beta, float eps, int T, int D) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * D;
        float *yr = y + (size_t)t * D;
        double mu = 0, var = 0;
        for (int d = 0; d < D; d++) mu += xr[d];
        mu /= D;
        for (int d = 0; d < D; d++) var += ((double)xr[d] - mu) * ((double)xr[d] - mu);
        var /= D;
        float r = 1.0f / sqrtf((float)var + eps), m = (float)mu;
        for (int d = 0; d < D; d++) yr[d] = (xr[d] - m) * r * gamma[d] + beta[d];
    }
}

/* 0.5·x·(1 + tanh(u)) == x / (1 + exp(−2u)): the same function, but expf is much cheaper
 * than glibc's tanhf on the MLP's hot path (parity with torch unchanged, see test_gemma2). */
static inline float gelu_tanh1(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    float u = k * (x + 0.044715f * x * x * x);
    return x / (1.0f + expf(-2.0f * u));
}

void op_gelu_tanh(float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] = gelu_tanh1(x[i]);
}

void op_geglu(float *gate, const float *up, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) gate[i] = gelu_tanh1(gate[i]) * up[i];
}

void op_rope_inv_freq(float *inv_freq, int dim, double theta) {
    for (int i = 0; i < dim / 2; i++) {
        float e = (float)(2 * i) / (float)dim;
        inv_freq[i] = 1.0f / powf((float)theta, e);
    }
}

void op_rope(float *x, int dim, const float *inv_freq, int pos) {
    int half = dim / 2;
    for (int i = 0; i < half; i++) {
        float ang = inv_freq[i] * (float)pos;
        float c = cosf(ang), s = sinf(ang);
        float a = x[i], b = x[i + half];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
    }
}

void op_softmax(float *x, int n) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++) if (x[i] > m) m = x[i];
    if (m == -INFINITY) { /* fully masked row: cannot happen with a causal mask */
        for (int i = 0; i < n; i++) x[i] = 0;
        return;
    }
    double s = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        s += x[i];
    }
    float inv = (float)(1.0 / s);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void op_add(float *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

const float *op_weight_f32(const st_tensor *t, float *scratch) {
    if (t->dtype == RS_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) return t->data;
    /* converted in parallel chunks of 64k values (an elementwise widening: any split gives the same bits) */
    const int64_t CH = 1 << 16;
    int64_t nch = (t->numel + CH - 1) / CH;
    size_t es = rs_dtype_size(t->dtype);
#pragma omp parallel for schedule(static) if (nch > 4)
    for (int64_t c = 0; c < nch; c++) {
        st_tensor v = *t;
        v.numel = t->numel - c * CH < CH ? t->numel - c * CH : CH;
        v.data = (const char *)t->data + (size_t)(c * CH) * es;
        st_to_f32(&v, scratch + c * CH);
    }
    return scratch;
}

/* Few rows against a half-precision matrix: each weight row is widened a chunk at a time
 * into a stack buffer and dotted with every input row in 16 float lanes (summed in double at
 * the end), so the weights are read once at 2 bytes a value and never written out whole. */
enum { LIN_SMALL_T = OP_LINEAR_SMALL_T, LIN_CHUNK = 2048, LIN_LANES = 16 };

/* acc[k] += Σ x[i]·w[i] over i ≡ k (mod LIN_LANES): independent lanes the compiler vectorises. */
static inline void dot_lanes(float *restrict acc, const float *restrict x, const float *restrict w, int n) {
    float l[LIN_LANES];
    memcpy(l, acc, sizeof l);
    int i = 0;
    for (; i + LIN_LANES <= n; i += LIN_LANES)
        for (int k = 0; k < LIN_LANES; k++) l[k] += x[i + k] * w[i + k];
    for (; i < n; i++) l[i % LIN_LANES] += x[i] * w[i];
    memcpy(acc, l, sizeof l);
}

static void linear_rows_widened(float *y, const float *x, const st_tensor *W, int T, int IN, int OUT) {
    size_t es = rs_dtype_size(W->dtype);
#pragma omp parallel for schedule(static) if ((size_t)OUT * IN > 65536)
    for (int o = 0; o < OUT; o++) {
        float buf[LIN_CHUNK], acc[LIN_SMALL_T][LIN_LANES];
        memset(acc, 0, sizeof acc);
        for (int i0 = 0; i0 < IN; i0 += LIN_CHUNK) {
            int n = IN - i0 < LIN_CHUNK ? IN - i0 : LIN_CHUNK;
            const unsigned char *src = (const unsigned char *)W->data + ((size_t)o * IN + i0) * es;
            if (W->dtype == RS_DT_BF16)
                for (int i = 0; i < n; i++) { /* bf16 → f32: the high half of the float (inlined, vectorised) */
                    uint16_t h;
                    uint32_t u;
                    memcpy(&h, src + 2 * (size_t)i, 2);
                    u = (uint32_t)h << 16;
                    memcpy(&buf[i], &u, 4);
                }
            else {
                st_tensor r = *W;
                r.numel = n;
                r.data = src;
                st_to_f32(&r, buf);
            }
            for (int t = 0; t < T; t++) dot_lanes(acc[t], x + (size_t)t * IN + i0, buf, n);
        }
        for (int t = 0; t < T; t++) {
            double sum = 0;
            for (int k = 0; k < LIN_LANES; k++) sum += acc[t][k];
            y[(size_t)t * OUT + o] = (float)sum;
        }
    }
}

void op_linear_st(float *y, const float *x, const st_tensor *W, float *scratch, int T, int IN, int OUT) {
    if (T <= 0) return;
    if (T <= LIN_SMALL_T && W->dtype != RS_DT_F32) linear_rows_widened(y, x, W, T, IN, OUT);
    else op_linear(y, x, op_weight_f32(W, scratch), NULL, T, IN, OUT);
}

void op_attention(float *Z, const float *Q, const float *K, const float *V, const int64_t *offsets, int n_seqs,
                  const int *prefix, const op_attn_params *p, float *scores, size_t scores_per_thread) {
    op_attention_kv(Z, Q, offsets, K, V, offsets, NULL, n_seqs, prefix, p, scores, scores_per_thread);
}

void op_attention_kv(float *Z, const float *Q, const int64_t *q_offsets, const float *K, const float *V,
                     const int64_t *kv_start, const int *kv_len, int n_seqs, const int *prefix,
                     const op_attn_params *p, float *scores, size_t scores_per_thread) {
    int H = p->n_heads, hd = p->head_dim, group = p->n_heads / p->n_kv_heads;
    int64_t maxL = 0;
    for (int s = 0; s < n_seqs; s++) {
        int64_t lk = kv_len ? kv_len[s] : q_offsets[s + 1] - q_offsets[s];
        if (lk > maxL) maxL = lk;
    }
    int n_items = n_seqs * H;
#pragma omp parallel for schedule(dynamic, 1) if (n_items > 1 && maxL > 8)
    for (int it = 0; it < n_items; it++) {
        int s = it / H, h = it % H, kvh = h / group;
        int64_t a = q_offsets[s];
        int Lq = (int)(q_offsets[s + 1] - a), Lk = kv_len ? kv_len[s] : Lq, pre = prefix ? prefix[s] : 0;
        int q0 = Lk - Lq; /* position of the first query among the keys */
        /* keys before j0 are masked for every query of the block (the window has passed them) */
        int j0 = 0;
        if (p->causal && p->window > 0 && q0 >= pre && q0 - p->window + 1 > 0) j0 = q0 - p->window + 1;
        int n = Lk - j0;
        float *S = scores + (size_t)omp_get_thread_num() * scores_per_thread;
        const float *Qh = Q + (size_t)a * p->q_stride + (size_t)h * hd;
        const float *Kh = K + (size_t)(kv_start[s] + j0) * p->kv_stride + (size_t)kvh * hd;
        const float *Vh = V + (size_t)(kv_start[s] + j0) * p->kv_stride + (size_t)kvh * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Lq, n, hd, 1.0f, Qh, p->q_stride, Kh, p->kv_stride, 0.0f,
                    S, n);
        for (int r = 0; r < Lq; r++) {
            float *row = S + (size_t)r * n;
            int i = q0 + r;
            for (int c = 0; c < n; c++) {
                int j = j0 + c;
                int keep = !p->causal || (j <= i && (p->window <= 0 || i - j < p->window)) || (i < pre && j < pre);
                if (!keep) {
                    row[c] = -INFINITY;
                    continue;
                }
                float x = row[c] * p->scale;
                if (p->softcap > 0) x = tanhf(x / p->softcap) * p->softcap;
                row[c] = x;
            }
            op_softmax(row, n);
        }
        float *Zh = Z + (size_t)a * p->z_stride + (size_t)h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Lq, hd, n, 1.0f, S, n, Vh, p->kv_stride, 0.0f, Zh,
                    p->z_stride);
    }
}
