/* The kernels as they were before the ISA dispatch (src/tensor/isa.h), kept verbatim as the
 * reference of earlier builds: bench_kernels.c times them beside the dispatched ones ("legacy"
 * rows), bench_generate.c --kernel times the decode row product, and tests/test_ops_isa.c
 * checks that the default level still gives their bits. Also the xorshift generator these
 * programs fill their random inputs with. Header only (static inline): each C file under bench/ is
 * an executable of its own. */
#ifndef BENCH_LEGACY_KERNELS_H
#define BENCH_LEGACY_KERNELS_H
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "reprshift/ops.h"
#include "reprshift/ops_bf16.h"
#include "reprshift/safetensors.h"

/* xorshift64 with a fixed seed: the same inputs in every run. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static inline uint64_t next64(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
/* Uniform in [-1, 1). */
static inline float frand(void) { return (float)((next64() >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f; }

/* op_rmsnorm_gemma before its rows were blocked (w may be NULL: no gain). */
static inline void legacy_rmsnorm(float *y, const float *x, const float *w, float eps, int T, int D) {
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * D;
        float *yr = y + (size_t)t * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        float r = 1.0f / sqrtf((float)(ss / D) + eps);
        if (w)
            for (int d = 0; d < D; d++) yr[d] = (xr[d] * r) * (1.0f + w[d]);
        else
            for (int d = 0; d < D; d++) yr[d] = xr[d] * r;
    }
}

/* op_layernorm before its rows were blocked (one row at a time, rs_layernorm_stats' sums). */
static inline void legacy_layernorm(float *y, const float *x, const float *gamma, const float *beta, float eps, int T,
                                    int D) {
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

/* op_softmax before the lane maximum. Its exp is glibc's expf unless the includer defines
 * LEGACY_EXPF (tests/test_ops_isa.c: rs_vexpf, the exp op_softmax has used since, so that the
 * restructured loops are compared bit for bit). */
#ifndef LEGACY_EXPF
#define LEGACY_EXPF expf
#endif
/* The fp32 soft-cap's tanh in legacy_attention, glibc's tanhf unless the includer defines
 * LEGACY_TANHF (bench_kernels: rs_vtanhf, the soft-cap's tanh since febeb0f, for the same
 * reason). */
#ifndef LEGACY_TANHF
#define LEGACY_TANHF tanhf
#endif
static inline void legacy_softmax(float *x, int n) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++) if (x[i] > m) m = x[i];
    if (m == -INFINITY) {
        for (int i = 0; i < n; i++) x[i] = 0;
        return;
    }
    double s = 0;
    for (int i = 0; i < n; i++) {
        x[i] = LEGACY_EXPF(x[i] - m);
        s += x[i];
    }
    float inv = (float)(1.0 / s);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

/* op_attention of the base commit, single thread (S: one L×L score buffer): the per-entry mask
 * test and the full-row softmax (bf16 = 0: legacy_attention), and the bf16 run's per-row loop
 * it was paired with (bf16 = 1: legacy_attention_bf16, below). */
static inline void legacy_attention_any(float *Z, const float *Q, const float *K, const float *V,
                                        const int64_t *offsets, int n_seqs, const int *prefix,
                                        const op_attn_params *p, float *S, int bf16) {
    int H = p->n_heads, hd = p->head_dim, group = p->n_heads / p->n_kv_heads;
    for (int it = 0; it < n_seqs * H; it++) {
        int s = it / H, h = it % H, kvh = h / group;
        int64_t a = offsets[s];
        int L = (int)(offsets[s + 1] - a), pre = prefix ? prefix[s] : 0;
        const float *Qh = Q + (size_t)a * p->q_stride + (size_t)h * hd;
        const float *Kh = K + (size_t)a * p->kv_stride + (size_t)kvh * hd;
        const float *Vh = V + (size_t)a * p->kv_stride + (size_t)kvh * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, hd, 1.0f, Qh, p->q_stride, Kh, p->kv_stride, 0.0f,
                    S, L);
        for (int i = 0; i < L; i++) {
            float *row = S + (size_t)i * L;
            for (int j = 0; j < L; j++) {
                int keep = !p->causal || (j <= i && (p->window <= 0 || i - j < p->window)) || (i < pre && j < pre);
                if (!keep) {
                    row[j] = -INFINITY;
                    continue;
                }
                float x;
                if (bf16) {
                    x = op_bf16_round1(op_bf16_round1(row[j]) * p->scale);
                    if (p->softcap > 0)
                        x = op_bf16_round1(op_bf16_round1(tanhf(op_bf16_round1(x / p->softcap))) * p->softcap);
                } else {
                    x = row[j] * p->scale;
                    if (p->softcap > 0) x = LEGACY_TANHF(x / p->softcap) * p->softcap;
                }
                row[j] = x;
            }
            if (bf16) {
                op_softmax(row, L);
                for (int j = 0; j < L; j++) row[j] = op_bf16_round1(row[j]);
            } else
                legacy_softmax(row, L);
        }
        float *Zh = Z + (size_t)a * p->z_stride + (size_t)h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, hd, L, 1.0f, S, L, Vh, p->kv_stride, 0.0f, Zh,
                    p->z_stride);
        if (bf16)
            for (int i = 0; i < L; i++)
                for (int d = 0; d < hd; d++)
                    Zh[(size_t)i * p->z_stride + d] = op_bf16_round1(Zh[(size_t)i * p->z_stride + d]);
    }
}
static inline void legacy_attention(float *Z, const float *Q, const float *K, const float *V, const int64_t *offsets,
                                    int n_seqs, const int *prefix, const op_attn_params *p, float *S) {
    legacy_attention_any(Z, Q, K, V, offsets, n_seqs, prefix, p, S, 0);
}

/* The bf16 attention before its rows ran in blocks (ops_bf16.c's per-row attn_row_bf16 of the
 * base commit), over full rows with the masked entries at −∞ (exp gives +0 there, as the kept
 * range gives): bf16(QKᵀ), bf16(·scale), the soft-cap's steps each rounded, op_softmax, each
 * probability rounded, then bf16(PV). */
static inline void legacy_attention_bf16(float *Z, const float *Q, const float *K, const float *V,
                                         const int64_t *offsets, int n_seqs, const int *prefix,
                                         const op_attn_params *p, float *S) {
    legacy_attention_any(Z, Q, K, V, offsets, n_seqs, prefix, p, S, 1);
}

/* One output row o of op_linear_st's row path before the dispatch (linear_rows_widened of the
 * base commit): weight row o widened 2048 values at a time (BF16 in plain C here, so the
 * timing does not depend on RS_ISA; other dtypes via st_to_f32), dotted with each of the
 * T <= 4 rows of x in 16 float lanes, the lanes summed in double. */
static inline void legacy_linear_row(float *y, const float *x, const st_tensor *W, int T, int IN, int OUT, int o) {
    size_t es = rs_dtype_size(W->dtype);
    float buf[2048], acc[4][16];
    memset(acc, 0, sizeof acc);
    for (int i0 = 0; i0 < IN; i0 += 2048) {
        int n = IN - i0 < 2048 ? IN - i0 : 2048;
        const unsigned char *src = (const unsigned char *)W->data + ((size_t)o * IN + i0) * es;
        if (W->dtype == RS_DT_BF16) {
            for (int i = 0; i < n; i++) {
                uint16_t h;
                uint32_t u;
                memcpy(&h, src + 2 * (size_t)i, 2);
                u = (uint32_t)h << 16;
                memcpy(&buf[i], &u, 4);
            }
        } else {
            st_tensor r = *W;
            r.numel = n;
            r.data = src;
            st_to_f32(&r, buf);
        }
        for (int t = 0; t < T; t++) {
            float l[16];
            const float *xr = x + (size_t)t * IN + i0;
            memcpy(l, acc[t], sizeof l);
            int i = 0;
            for (; i + 16 <= n; i += 16)
                for (int k = 0; k < 16; k++) l[k] += xr[i + k] * buf[i + k];
            for (; i < n; i++) l[i % 16] += xr[i] * buf[i];
            memcpy(acc[t], l, sizeof l);
        }
    }
    for (int t = 0; t < T; t++) {
        double sum = 0;
        for (int k = 0; k < 16; k++) sum += acc[t][k];
        y[(size_t)t * OUT + o] = (float)sum;
    }
}

/* y[T, OUT] = x[T, IN]·Wᵀ by legacy_linear_row; threaded: OpenMP over the output rows as the
 * base commit did (on matrices over 65536 entries), else one thread. */
static inline void legacy_linear_rows(float *y, const float *x, const st_tensor *W, int T, int IN, int OUT,
                                      int threaded) {
    if (threaded) {
#pragma omp parallel for schedule(static) if ((size_t)OUT * IN > 65536)
        for (int o = 0; o < OUT; o++) legacy_linear_row(y, x, W, T, IN, OUT, o);
    } else {
        for (int o = 0; o < OUT; o++) legacy_linear_row(y, x, W, T, IN, OUT, o);
    }
}
#endif
