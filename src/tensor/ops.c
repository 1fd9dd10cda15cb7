/* Dense kernels. Big products go to BLAS; reductions accumulate in double so results
 * stay within rounding of PyTorch's fp32 reductions regardless of summation order.
 * The elementwise and per-row loops are NAME_body functions compiled once per ISA level
 * and called through RS_ISA_CALL (tensor/isa.h); the OpenMP loops stay here, outside the
 * dispatched code. Every level computes the same operations in the same order. */
#include "reprshift/ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "reprshift/blas.h"
#include "reprshift/ops_bf16.h"
#include "tensor/attention_impl.h"
#include "tensor/dnnl_mm.h"
#include "tensor/isa.h"
#include "tensor/norm_stats.h"
#include "tensor/vexp.h"

/* Elementwise work is cut into chunks of this many values (any split gives the same bits). */
#define EW_CHUNK 4096

RS_KERNEL_BODY void bias_row_body(float *r, const float *bias, int n) {
    for (int o = 0; o < n; o++) r[o] += bias[o];
}
RS_ISA_KERNEL(bias_row, (float *r, const float *bias, int n), (r, bias, n))

void op_linear(float *y, const float *x, const float *W, const float *bias, int T, int IN, int OUT) {
    if (T <= 0) return;
    /* RS_SGEMM_ONEDNN (include/reprshift/blas.h): oneDNN adds the bias to each fp32 sum as the
     * loop below does (one rounding). A product oneDNN cannot run (out of memory) is done by
     * the BLAS instead: both pass the same accuracy check, though their last bits differ. */
    if (rs_sgemm_use_onednn() && rs_dnnl_matmul(y, OUT, x, W, bias, T, IN, OUT, 0) == 0) return;
    /* The bias is added after the product. Filling y with it first and adding the product
     * (β = 1) saves that pass but not time: OpenBLAS zeroes y inside the call for β = 0, block
     * by block while it is in cache, and the fill is a separate pass over y (bench/README.md,
     * "Fused fp32 attention": equal within 0.5% on the tower, A/B). */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OUT, IN, 1.0f, x, IN, W, IN, 0.0f, y, OUT);
    if (bias)
#pragma omp parallel for schedule(static) if (T > 16)
        for (int t = 0; t < T; t++) RS_ISA_CALL(bias_row)(y + (size_t)t * OUT, bias, OUT);
}

/* The row statistics are tensor/norm_stats.h's sums (32 double lanes, a fixed tree: the same
 * bits at every ISA level); the scaling loops vectorise. The OpenMP loops hand out blocks of
 * NORM_RB rows. */
enum { NORM_RB = 8 };
RS_KERNEL_BODY void rmsnorm_rows_body(float *y, const float *x, const float *w, float eps, int nr, int D) {
    for (int k = 0; k < nr; k++) {
        const float *xr = x + (size_t)k * D;
        float *yr = y + (size_t)k * D, r = rs_rms_inv(xr, D, eps);
        if (w)
            for (int d = 0; d < D; d++) yr[d] = (xr[d] * r) * (1.0f + w[d]);
        else
            for (int d = 0; d < D; d++) yr[d] = xr[d] * r;
    }
}
RS_ISA_KERNEL(rmsnorm_rows, (float *y, const float *x, const float *w, float eps, int nr, int D), (y, x, w, eps, nr, D))

void op_rmsnorm_gemma(float *y, const float *x, const float *w, float eps, int T, int D) {
    int nb = (T + NORM_RB - 1) / NORM_RB;
#pragma omp parallel for schedule(static) if (T > 16)
    for (int b = 0; b < nb; b++) {
        int t0 = b * NORM_RB, nr = T - t0 < NORM_RB ? T - t0 : NORM_RB;
        RS_ISA_CALL(rmsnorm_rows)(y + (size_t)t0 * D, x + (size_t)t0 * D, w, eps, nr, D);
    }
}

/* LayerNorm of nr consecutive rows (rs_layernorm_stats, then the affine map). */
RS_KERNEL_BODY void layernorm_rows_body(float *y, const float *x, const float *gamma, const float *beta, float eps,
                                        int nr, int D) {
    for (int k = 0; k < nr; k++) {
        const float *xr = x + (size_t)k * D;
        float *yr = y + (size_t)k * D, mk, rk;
        rs_layernorm_stats(xr, D, eps, &mk, &rk);
        for (int d = 0; d < D; d++) yr[d] = (xr[d] - mk) * rk * gamma[d] + beta[d];
    }
}
RS_ISA_KERNEL(layernorm_rows,
              (float *y, const float *x, const float *gamma, const float *beta, float eps, int nr, int D),
              (y, x, gamma, beta, eps, nr, D))

void op_layernorm(float *y, const float *x, const float *gamma, const float *beta, float eps, int T, int D) {
    int nb = (T + NORM_RB - 1) / NORM_RB;
#pragma omp parallel for schedule(static) if (T > 16)
    for (int b = 0; b < nb; b++) {
        int t0 = b * NORM_RB, nr = T - t0 < NORM_RB ? T - t0 : NORM_RB;
        RS_ISA_CALL(layernorm_rows)(y + (size_t)t0 * D, x + (size_t)t0 * D, gamma, beta, eps, nr, D);
    }
}

/* The residual add and the LayerNorm after it, row by row: h's row is summed, then normed while
 * it is still in L1 (the add and layernorm_rows_body's operations, in their order). */
RS_KERNEL_BODY void add_layernorm_rows_body(float *h, const float *a, float *y, const float *gamma,
                                            const float *beta, float eps, int nr, int D) {
    for (int k = 0; k < nr; k++) {
        float *hr = h + (size_t)k * D;
        const float *ar = a + (size_t)k * D;
        for (int d = 0; d < D; d++) hr[d] += ar[d];
        layernorm_rows_body(y + (size_t)k * D, hr, gamma, beta, eps, 1, D);
    }
}
RS_ISA_KERNEL(add_layernorm_rows,
              (float *h, const float *a, float *y, const float *gamma, const float *beta, float eps, int nr, int D),
              (h, a, y, gamma, beta, eps, nr, D))

void op_add_layernorm(float *h, const float *a, float *y, const float *gamma, const float *beta, float eps, int T,
                      int D) {
    int nb = (T + NORM_RB - 1) / NORM_RB;
#pragma omp parallel for schedule(static) if (T > 16)
    for (int b = 0; b < nb; b++) {
        int t0 = b * NORM_RB, nr = T - t0 < NORM_RB ? T - t0 : NORM_RB;
        size_t o = (size_t)t0 * D;
        RS_ISA_CALL(add_layernorm_rows)(h + o, a + o, y + o, gamma, beta, eps, nr, D);
    }
}

/* 0.5·x·(1 + tanh(u)) == x / (1 + exp(−2u)): the same function with one exp, here rs_vexpf
 * (tensor/vexp.h, ≤ 1 ulp), so the GeGLU loops vectorise at the AVX2/AVX-512 levels with the
 * same bits at every level (parity with torch unchanged, see test_gemma2; docs/precision.md). */
static inline float gelu_tanh1(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    float u = k * (x + 0.044715f * x * x * x);
    return x / (1.0f + rs_vexpf(-2.0f * u));
}

RS_KERNEL_BODY void gelu_body(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = gelu_tanh1(x[i]);
}
RS_ISA_KERNEL(gelu, (float *x, size_t n), (x, n))
RS_KERNEL_BODY void geglu_body(float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) gate[i] = gelu_tanh1(gate[i]) * up[i];
}
RS_ISA_KERNEL(geglu, (float *gate, const float *up, size_t n), (gate, up, n))

void op_gelu_tanh(float *x, size_t n) {
    size_t nch = (n + EW_CHUNK - 1) / EW_CHUNK;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t c = 0; c < nch; c++)
        RS_ISA_CALL(gelu)(x + c * EW_CHUNK, n - c * EW_CHUNK < EW_CHUNK ? n - c * EW_CHUNK : EW_CHUNK);
}

/* fc1 of the SigLIP MLP: the bias add and the GELU in one pass over the product (y + b is
 * rounded to float before the GELU, as the two passes did). On the oneDNN route the bias stays
 * inside the product, as op_linear has it there. */
RS_KERNEL_BODY void bias_gelu_row_body(float *r, const float *bias, int n) {
    for (int o = 0; o < n; o++) r[o] = gelu_tanh1(r[o] + bias[o]);
}
RS_ISA_KERNEL(bias_gelu_row, (float *r, const float *bias, int n), (r, bias, n))

void op_linear_gelu(float *y, const float *x, const float *W, const float *bias, int T, int IN, int OUT) {
    if (T <= 0) return;
    if (!bias || rs_sgemm_use_onednn()) {
        op_linear(y, x, W, bias, T, IN, OUT);
        op_gelu_tanh(y, (size_t)T * OUT);
        return;
    }
    op_linear(y, x, W, NULL, T, IN, OUT);
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) RS_ISA_CALL(bias_gelu_row)(y + (size_t)t * OUT, bias, OUT);
}

void op_geglu(float *gate, const float *up, size_t n) {
    size_t nch = (n + EW_CHUNK - 1) / EW_CHUNK;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t c = 0; c < nch; c++)
        RS_ISA_CALL(geglu)(gate + c * EW_CHUNK, up + c * EW_CHUNK,
                           n - c * EW_CHUNK < EW_CHUNK ? n - c * EW_CHUNK : EW_CHUNK);
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

/* The rotation of op_rope with the cos/sin of the row's angles precomputed. */
RS_KERNEL_BODY void rope_rot_body(float *x, const float *c, const float *s, int half) {
    for (int i = 0; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = a * c[i] - b * s[i];
        x[i + half] = b * c[i] + a * s[i];
    }
}
RS_ISA_KERNEL(rope_rot, (float *x, const float *c, const float *s, int half), (x, c, s, half))

#define ROPE_MAX_HALF 512
void op_rope_seqs(float *x, int stride, int n_heads, int head_dim, const int64_t *offsets, int n_seqs, int pos_offset,
                  const float *inv_freq) {
    int half = head_dim / 2;
#pragma omp parallel for schedule(dynamic, 1) if (n_seqs > 1)
    for (int s = 0; s < n_seqs; s++) {
        float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
        for (int64_t i = offsets[s]; i < offsets[s + 1]; i++) {
            int pos = (int)(i - offsets[s]) + pos_offset;
            if (half > ROPE_MAX_HALF) {
                for (int h = 0; h < n_heads; h++)
                    op_rope(x + (size_t)i * stride + (size_t)h * head_dim, head_dim, inv_freq, pos);
                continue;
            }
            /* Every head of a row has the same angles: the same cosf/sinf values op_rope
             * computes, once per row instead of once per head. */
            for (int k = 0; k < half; k++) {
                float ang = inv_freq[k] * (float)pos;
                cs[k] = cosf(ang);
                sn[k] = sinf(ang);
            }
            for (int h = 0; h < n_heads; h++)
                RS_ISA_CALL(rope_rot)(x + (size_t)i * stride + (size_t)h * head_dim, cs, sn, half);
        }
    }
}

/* The row maximum is taken in 16 independent lanes (vectorisable; a maximum does not depend
 * on the order it is taken in, except which of +0/−0 wins a tie, and x − (±0) gives the same
 * exp). NaNs never win (x > m is false), as in a plain scan. The exps are rs_vexpf (≤ 1 ulp,
 * vectorised); their sum is a sequential double sum at every level. */
RS_KERNEL_BODY float row_max16(const float *x, int n) {
    float lane[16];
    for (int k = 0; k < 16; k++) lane[k] = -INFINITY;
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) lane[k] = x[i + k] > lane[k] ? x[i + k] : lane[k];
    float m = -INFINITY;
    for (int k = 0; k < 16; k++) m = lane[k] > m ? lane[k] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}
RS_KERNEL_BODY void softmax_body(float *x, int n) {
    int i;
    float m = row_max16(x, n);
    if (m == -INFINITY) { /* fully masked row: cannot happen with a causal mask */
        for (i = 0; i < n; i++) x[i] = 0;
        return;
    }
    for (i = 0; i < n; i++) x[i] = rs_vexpf(x[i] - m); /* vectorises; the sum below stays sequential */
    double s = 0;
    for (i = 0; i < n; i++) s += x[i];
    float inv = (float)(1.0 / s);
    for (i = 0; i < n; i++) x[i] *= inv;
}
RS_ISA_KERNEL(softmax, (float *x, int n), (x, n))

void op_softmax(float *x, int n) { RS_ISA_CALL(softmax)(x, n); }

RS_KERNEL_BODY void add_body(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}
RS_ISA_KERNEL(add, (float *dst, const float *src, size_t n), (dst, src, n))

void op_add(float *dst, const float *src, size_t n) {
    size_t nch = (n + EW_CHUNK - 1) / EW_CHUNK;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t c = 0; c < nch; c++)
        RS_ISA_CALL(add)(dst + c * EW_CHUNK, src + c * EW_CHUNK, n - c * EW_CHUNK < EW_CHUNK ? n - c * EW_CHUNK : EW_CHUNK);
}

/* bf16 → f32 with non-temporal (streaming) stores, for a matrix widened just before a product
 * reads it: the widened copy is larger than the caches, so an ordinary store first reads every
 * line it writes; a streaming store does not, which halves the widening's memory traffic
 * (bench/README.md, "Widening with streaming stores"). The values are the same shift as
 * st_to_f32's (exact). The head up to the first 64-byte boundary of dst and the tail use the
 * ordinary kernel; the sfence orders the stores before the product (another thread) reads them. */
#if defined(RS_ISA_X86)
#include <immintrin.h>
RS_TARGET_AVX512 static size_t widen_stream_avx512(float *dst, const unsigned char *p, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const void *)(p + 2 * i))), 16);
        _mm512_stream_ps(dst + i, _mm512_castsi512_ps(v));
    }
    _mm_sfence();
    return i;
}
RS_TARGET_AVX2 static size_t widen_stream_avx2(float *dst, const unsigned char *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const void *)(p + 2 * i))), 16);
        _mm256_stream_ps(dst + i, _mm256_castsi256_ps(v));
    }
    _mm_sfence();
    return i;
}
#endif

/* Widens n bf16 values at p into dst; returns how many leading values it did not write
 * (0: all written), which the caller converts with st_to_f32. */
static size_t widen_bf16_stream(float *dst, const unsigned char *p, size_t n) {
#if defined(RS_ISA_X86)
    int isa = rs_isa_active();
    if (isa == RS_ISA_DEFAULT) return n;
    size_t head = (size_t)((64 - (uintptr_t)dst % 64) % 64);
    if (head % sizeof(float) || head / sizeof(float) >= n) return n;
    head /= sizeof(float);
    size_t body = n - head;
    body = isa == RS_ISA_AVX512 ? widen_stream_avx512(dst + head, p + 2 * head, body)
                                : widen_stream_avx2(dst + head, p + 2 * head, body);
    st_tensor v = {.dtype = RS_DT_BF16, .numel = (int64_t)(n - head - body), .data = p + 2 * (head + body)};
    st_to_f32(&v, dst + head + body);
    return head;
#else
    (void)dst, (void)p;
    return n;
#endif
}

/* A weight this large (values) is widened with streaming stores; a smaller one stays in the
 * cache for the product that follows. */
#define WIDEN_STREAM_MIN (1 << 20)

const float *op_weight_f32(const st_tensor *t, float *scratch) {
    if (t->dtype == RS_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) return t->data;
    /* converted in parallel chunks of 64k values (an elementwise widening: any split gives the same bits) */
    const int64_t CH = 1 << 16;
    int64_t nch = (t->numel + CH - 1) / CH;
    size_t es = rs_dtype_size(t->dtype);
    int stream = t->dtype == RS_DT_BF16 && t->numel >= WIDEN_STREAM_MIN;
#pragma omp parallel for schedule(static) if (nch > 4)
    for (int64_t c = 0; c < nch; c++) {
        st_tensor v = *t;
        v.numel = t->numel - c * CH < CH ? t->numel - c * CH : CH;
        v.data = (const char *)t->data + (size_t)(c * CH) * es;
        if (stream) v.numel = (int64_t)widen_bf16_stream(scratch + c * CH, v.data, (size_t)v.numel);
        st_to_f32(&v, scratch + c * CH);
    }
    return scratch;
}

/* A block of at most ATTN_RB rows of attention scores, row k of S (n columns) keeping the
 * contiguous range [j0[k], j1[k]) (causal: [max(0, i−window+1), i], or [0, prefix) for a row
 * inside the prefix; bidirectional: all). The kept entries are scaled (and soft-capped) and
 * softmaxed exactly as op_softmax would on the full row with the others at −∞: exp(−∞) adds
 * +0 to the double sum, which leaves it unchanged, and those entries come out +0 either way.
 * Every operation on a row is softmax_body's, in its order; only the rows' sequential double
 * sums run side by side (ATTN_RB independent chains instead of one at a time: the sum of one
 * row is a chain of dependent additions, so interleaving them is what makes it fast), which
 * leaves each row's sum, and so every output bit, unchanged. */
enum { ATTN_RB = 8 };
/* bf16 = 1 (a constant at each kernel below, so each is compiled for its case): the bf16 run's
 * row, as torch computes it on bf16 tensors: bf16(QKᵀ), bf16(·scaling), the soft-cap's
 * divisions, tanh and product each rounded, the softmax in fp32 (softmax_body's operations) and
 * its output rounded to bf16. The roundings are exact integer operations: the same bits at
 * every ISA level and as the per-row loop they replace (ops_bf16.c). */
RS_KERNEL_BODY void attn_rows_any(float *S, int n, int nr, const int *j0, const int *j1, float scale, float softcap,
                                  int bf16) {
    float *rp[ATTN_RB];
    int len[ATTN_RB];
    double sum[ATTN_RB];
    int common = n; /* the length every row of the block has */
    for (int k = 0; k < nr; k++) {
        float *row = S + (size_t)k * n;
        for (int j = 0; j < j0[k]; j++) row[j] = 0;
        for (int j = j1[k]; j < n; j++) row[j] = 0;
        float *r = row + j0[k];
        int m_n = j1[k] - j0[k];
        if (bf16) {
            for (int j = 0; j < m_n; j++) r[j] = op_bf16_round1(op_bf16_round1(r[j]) * scale);
            if (softcap > 0)
                for (int j = 0; j < m_n; j++)
                    r[j] = op_bf16_round1(op_bf16_round1(tanhf(op_bf16_round1(r[j] / softcap))) * softcap);
        } else if (softcap > 0)
            for (int j = 0; j < m_n; j++) r[j] = rs_vtanhf((r[j] * scale) / softcap) * softcap;
        else
            for (int j = 0; j < m_n; j++) r[j] = r[j] * scale;
        /* softmax_body's maximum and exps */
        int i;
        float m = row_max16(r, m_n);
        if (m == -INFINITY) { /* fully masked row: cannot happen with a causal mask */
            for (i = 0; i < m_n; i++) r[i] = 0;
            m_n = 0;
        }
        for (i = 0; i < m_n; i++) r[i] = rs_vexpf(r[i] - m);
        rp[k] = r, len[k] = m_n, sum[k] = 0;
        if (m_n < common) common = m_n;
    }
    int i = 0;
    if (nr == ATTN_RB)
        for (; i < common; i++)
            for (int k = 0; k < ATTN_RB; k++) sum[k] += rp[k][i];
    for (int k = 0; k < nr; k++) {
        float *r = rp[k];
        double s = sum[k];
        for (int j = i; j < len[k]; j++) s += r[j];
        if (len[k] == 0) continue;
        float inv = (float)(1.0 / s);
        for (int j = 0; j < len[k]; j++) r[j] *= inv;
        if (bf16)
            for (int j = 0; j < len[k]; j++) r[j] = op_bf16_round1(r[j]);
    }
}
RS_KERNEL_BODY void attn_rows_body(float *S, int n, int nr, const int *j0, const int *j1, float scale, float softcap) {
    attn_rows_any(S, n, nr, j0, j1, scale, softcap, 0);
}
RS_ISA_KERNEL(attn_rows, (float *S, int n, int nr, const int *j0, const int *j1, float scale, float softcap),
              (S, n, nr, j0, j1, scale, softcap))
RS_KERNEL_BODY void attn_rows_bf16_body(float *S, int n, int nr, const int *j0, const int *j1, float scale,
                                        float softcap) {
    attn_rows_any(S, n, nr, j0, j1, scale, softcap, 1);
}
RS_ISA_KERNEL(attn_rows_bf16, (float *S, int n, int nr, const int *j0, const int *j1, float scale, float softcap),
              (S, n, nr, j0, j1, scale, softcap))
void rs_attn_rows_bf16(float *S, int n, int nr, const int *j0, const int *j1, float scale, float softcap) {
    RS_ISA_CALL(attn_rows_bf16)(S, n, nr, j0, j1, scale, softcap);
}

/* Few rows (a decode step) against a half-precision matrix, the weights read once at 2 bytes
 * a value. The summation order is fixed, the same at every ISA level and for every split of
 * the rows across threads: y[t][o] accumulates in LIN_LANES = 16 float lanes, element i going
 * to lane i mod 16 (lane += x[i]·w[i], product then sum, each rounded to float, i increasing,
 * the ragged tail of IN included), and the 16 lanes are added in double, lane 0 to 15, then
 * rounded to float once. The lanes are independent, so each level vectorises them across
 * its registers (4 × SSE2, 2 × AVX2, 1 × AVX-512) without changing an operation. */
enum { LIN_SMALL_T = OP_LINEAR_SMALL_T, LIN_CHUNK = 2048, LIN_LANES = 16, LIN_ROWS = 4, LIN_BLOCK = 64 };

/* The bf16 value at index i of p (any alignment: a mapped file's tensors need not be 2-byte aligned). */
static inline float bf16_at(const unsigned char *p, size_t i) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float lanes_sum(const float *l) {
    double sum = 0;
    for (int k = 0; k < LIN_LANES; k++) sum += l[k];
    return (float)sum;
}

/* Output o for the T rows of x: each 16 weights widened once, then dotted with every row. */
RS_KERNEL_BODY void lin_bf16_row(float *y, const float *x, const unsigned char *wr, int T, int IN, int OUT, int o) {
    float acc[LIN_SMALL_T][LIN_LANES] = {{0}};
    int i = 0;
    for (; i + LIN_LANES <= IN; i += LIN_LANES) {
        float wv[LIN_LANES];
        for (int k = 0; k < LIN_LANES; k++) wv[k] = bf16_at(wr, i + k);
        for (int t = 0; t < T; t++)
            for (int k = 0; k < LIN_LANES; k++) acc[t][k] += x[(size_t)t * IN + i + k] * wv[k];
    }
    for (int k = 0; i < IN; i++, k++) {
        float wv = bf16_at(wr, i);
        for (int t = 0; t < T; t++) acc[t][k] += x[(size_t)t * IN + i] * wv;
    }
    for (int t = 0; t < T; t++) y[(size_t)t * OUT + o] = lanes_sum(acc[t]);
}

/* Rows [o0, o1) of y[T,OUT] = x[T,IN]·Wᵀ for a BF16 W, widened in registers. T = 1: four
 * weight rows at a time share each x load (four independent lane sets in flight); T > 1 (and the
 * rows left over): one weight row at a time against the T rows of x. */
RS_KERNEL_BODY void lin_bf16_body(float *y, const float *x, const unsigned char *w, int T, int IN, int OUT, int o0,
                                  int o1) {
    int o = o0;
    if (T == 1)
        for (; o + LIN_ROWS <= o1; o += LIN_ROWS) {
            const unsigned char *w0 = w + (size_t)o * IN * 2, *w1 = w0 + (size_t)IN * 2, *w2 = w1 + (size_t)IN * 2,
                                *w3 = w2 + (size_t)IN * 2;
            float a0[LIN_LANES] = {0}, a1[LIN_LANES] = {0}, a2[LIN_LANES] = {0}, a3[LIN_LANES] = {0};
            int i = 0;
            for (; i + LIN_LANES <= IN; i += LIN_LANES)
                for (int k = 0; k < LIN_LANES; k++) {
                    float xv = x[i + k];
                    a0[k] += xv * bf16_at(w0, i + k);
                    a1[k] += xv * bf16_at(w1, i + k);
                    a2[k] += xv * bf16_at(w2, i + k);
                    a3[k] += xv * bf16_at(w3, i + k);
                }
            for (int k = 0; i < IN; i++, k++) {
                a0[k] += x[i] * bf16_at(w0, i);
                a1[k] += x[i] * bf16_at(w1, i);
                a2[k] += x[i] * bf16_at(w2, i);
                a3[k] += x[i] * bf16_at(w3, i);
            }
            y[o] = lanes_sum(a0), y[o + 1] = lanes_sum(a1), y[o + 2] = lanes_sum(a2), y[o + 3] = lanes_sum(a3);
        }
    for (; o < o1; o++) {
        const unsigned char *wr = w + (size_t)o * IN * 2;
        switch (T) { /* a constant T for each copy of the inlined row loop */
        case 1: lin_bf16_row(y, x, wr, 1, IN, OUT, o); break;
        case 2: lin_bf16_row(y, x, wr, 2, IN, OUT, o); break;
        case 3: lin_bf16_row(y, x, wr, 3, IN, OUT, o); break;
        default: lin_bf16_row(y, x, wr, LIN_SMALL_T, IN, OUT, o); break;
        }
    }
}
RS_ISA_KERNEL(lin_bf16, (float *y, const float *x, const unsigned char *w, int T, int IN, int OUT, int o0, int o1),
              (y, x, w, T, IN, OUT, o0, o1))

/* The same order for other half-precision types (F16): each weight row widened a chunk at a
 * time (LIN_CHUNK, a multiple of LIN_LANES, so lane i mod 16 holds across chunks) by
 * st_to_f32 into a stack buffer, then dotted. */
static void lin_widened_rows(float *y, const float *x, const st_tensor *W, int T, int IN, int OUT, int o0, int o1) {
    size_t es = rs_dtype_size(W->dtype);
    for (int o = o0; o < o1; o++) {
        float buf[LIN_CHUNK], acc[LIN_SMALL_T][LIN_LANES];
        memset(acc, 0, sizeof acc);
        for (int i0 = 0; i0 < IN; i0 += LIN_CHUNK) {
            int n = IN - i0 < LIN_CHUNK ? IN - i0 : LIN_CHUNK;
            st_tensor r = *W;
            r.numel = n;
            r.data = (const unsigned char *)W->data + ((size_t)o * IN + i0) * es;
            st_to_f32(&r, buf);
            for (int t = 0; t < T; t++) {
                const float *xr = x + (size_t)t * IN + i0;
                float *a = acc[t];
                for (int i = 0; i < n; i++) a[i % LIN_LANES] += xr[i] * buf[i];
            }
        }
        for (int t = 0; t < T; t++) y[(size_t)t * OUT + o] = lanes_sum(acc[t]);
    }
}

/* Output rows in blocks of LIN_BLOCK (a multiple of LIN_ROWS) split statically across the
 * threads: each thread streams its own contiguous part of W. */
static void linear_rows_lp(float *y, const float *x, const st_tensor *W, int T, int IN, int OUT) {
    int nb = (OUT + LIN_BLOCK - 1) / LIN_BLOCK;
    int bf16 = W->dtype == RS_DT_BF16;
#pragma omp parallel for schedule(static) if ((size_t)OUT * IN > 65536)
    for (int b = 0; b < nb; b++) {
        int o0 = b * LIN_BLOCK, o1 = o0 + LIN_BLOCK < OUT ? o0 + LIN_BLOCK : OUT;
        if (bf16) RS_ISA_CALL(lin_bf16)(y, x, (const unsigned char *)W->data, T, IN, OUT, o0, o1);
        else lin_widened_rows(y, x, W, T, IN, OUT, o0, o1);
    }
}

void op_linear_st(float *y, const float *x, const st_tensor *W, float *scratch, int T, int IN, int OUT) {
    if (T <= 0) return;
    if (T <= LIN_SMALL_T && W->dtype != RS_DT_F32) linear_rows_lp(y, x, W, T, IN, OUT);
    else op_linear(y, x, op_weight_f32(W, scratch), NULL, T, IN, OUT);
}

void op_attention(float *Z, const float *Q, const float *K, const float *V, const int64_t *offsets, int n_seqs,
                  const int *prefix, const op_attn_params *p, float *scores, size_t scores_per_thread) {
    op_attention_kv(Z, Q, offsets, K, V, offsets, NULL, n_seqs, prefix, p, scores, scores_per_thread);
}

/* A block of rows of op_attention_kv at the active ISA level. */
static void attn_rows_fp32(float *S, int n, int nr, const int *j0, const int *j1, float scale, float softcap) {
    RS_ISA_CALL(attn_rows)(S, n, nr, j0, j1, scale, softcap);
}

/* The fp32 attention's products: the BLAS, or the fused AVX-512 kernel (attn_fused.c). */
static int g_attn_route = OP_ATTN_ROUTE_AUTO;
static const char *const ATTN_ROUTE_NAMES[] = {"auto", "blas", "fused"};

const char *op_attn_route_name(int route) {
    return route >= 0 && route <= OP_ATTN_ROUTE_FUSED ? ATTN_ROUTE_NAMES[route] : "?";
}

int op_attn_route_parse(const char *name) {
    for (int i = 0; name && i <= OP_ATTN_ROUTE_FUSED; i++)
        if (!strcmp(name, ATTN_ROUTE_NAMES[i])) return i;
    return -1;
}

int op_attn_fused_available(void) { return rs_attn_fused_compiled() && rs_isa_supported(RS_ISA_AVX512); }

int op_attn_route_set(int route) {
    if (route < 0 || route > OP_ATTN_ROUTE_FUSED || (route == OP_ATTN_ROUTE_FUSED && !op_attn_fused_available()))
        return -1;
    __atomic_store_n(&g_attn_route, route, __ATOMIC_RELAXED);
    return 0;
}

int op_attn_route(void) {
    int r = __atomic_load_n(&g_attn_route, __ATOMIC_RELAXED);
    if (r == OP_ATTN_ROUTE_AUTO)
        r = op_attn_fused_available() && rs_isa_active() == RS_ISA_AVX512 ? OP_ATTN_ROUTE_FUSED : OP_ATTN_ROUTE_BLAS;
    return r;
}

void op_attention_kv(float *Z, const float *Q, const int64_t *q_offsets, const float *K, const float *V,
                     const int64_t *kv_start, const int *kv_len, int n_seqs, const int *prefix,
                     const op_attn_params *p, float *scores, size_t scores_per_thread) {
    rs_attention_kv_loop(Z, Q, q_offsets, K, V, kv_start, kv_len, n_seqs, prefix, p, scores, scores_per_thread,
                         attn_rows_fp32, NULL, op_attn_route() == OP_ATTN_ROUTE_FUSED);
}

/* The keys [*j0, *j1) that the query at position i (among the Lk keys) keeps, counted from
 * key `skip`: (i, j) is kept when !causal, or j ≤ i and (window ≤ 0 or i − j < window), or
 * i, j < pre. */
static inline void attn_row_keys(const op_attn_params *p, int i, int pre, int Lk, int skip, int *j0, int *j1) {
    int a = 0, b = Lk;
    if (p->causal) {
        if (i < pre) b = pre < Lk ? pre : Lk; /* [lo, i] lies inside [0, pre) */
        else {
            b = i + 1;
            a = p->window > 0 && i - p->window + 1 > 0 ? i - p->window + 1 : 0;
        }
    }
    *j0 = a > skip ? a - skip : 0;
    *j1 = b - skip;
}

/* The keys [*lo, *hi) that any of the nq queries from position i0 on keeps. */
static void attn_block_keys(const op_attn_params *p, int i0, int nq, int pre, int Lk, int skip, int *lo, int *hi) {
    *lo = Lk, *hi = 0;
    for (int i = i0; i < i0 + nq; i++) {
        int j0, j1;
        attn_row_keys(p, i, pre, Lk, skip, &j0, &j1);
        *lo = j0 < *lo ? j0 : *lo;
        *hi = j1 > *hi ? j1 : *hi;
    }
}

void rs_attention_kv_loop(float *Z, const float *Q, const int64_t *q_offsets, const float *K, const float *V,
                          const int64_t *kv_start, const int *kv_len, int n_seqs, const int *prefix,
                          const op_attn_params *p, float *scores, size_t scores_per_thread, attn_rows_fn rows,
                          attn_finish_fn finish, int fused) {
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
        /* keys before skip are masked for every query of the block (the window has passed them) */
        int skip = 0;
        if (p->causal && p->window > 0 && q0 >= pre && q0 - p->window + 1 > 0) skip = q0 - p->window + 1;
        int n = Lk - skip;
        float *S = scores + (size_t)omp_get_thread_num() * scores_per_thread;
        const float *Qh = Q + (size_t)a * p->q_stride + (size_t)h * hd;
        const float *Kh = K + (size_t)(kv_start[s] + skip) * p->kv_stride + (size_t)kvh * hd;
        const float *Vh = V + (size_t)(kv_start[s] + skip) * p->kv_stride + (size_t)kvh * hd;
        float *Zh = Z + (size_t)a * p->z_stride + (size_t)h * hd;
        if (fused && Lq >= RS_ATTN_FUSED_QB && hd <= RS_ATTN_FUSED_MAX_HD) {
            /* blocks of RS_ATTN_FUSED_QB queries, each against the keys [lo, hi) its queries keep
             * (scores: ≥ Lq·Lk ≥ RS_ATTN_FUSED_QB·n floats) */
            int lane0[RS_ATTN_FUSED_QB], lane1[RS_ATTN_FUSED_QB];
            int masked = p->causal;
            for (int b0 = 0; b0 < Lq; b0 += RS_ATTN_FUSED_QB) {
                int bq = Lq - b0 < RS_ATTN_FUSED_QB ? Lq - b0 : RS_ATTN_FUSED_QB, lo = 0, hi = n;
                if (masked) {
                    attn_block_keys(p, q0 + b0, bq, pre, Lk, skip, &lo, &hi);
                    for (int l = 0; l < RS_ATTN_FUSED_QB; l++) {
                        if (l < bq) {
                            attn_row_keys(p, q0 + b0 + l, pre, Lk, skip, &lane0[l], &lane1[l]);
                            lane0[l] -= lo, lane1[l] -= lo;
                        } else lane0[l] = 0, lane1[l] = hi - lo;
                    }
                }
                rs_attn_fused_block(Zh + (size_t)b0 * p->z_stride, p->z_stride, Qh + (size_t)b0 * p->q_stride,
                                    p->q_stride, Kh + (size_t)lo * p->kv_stride, Vh + (size_t)lo * p->kv_stride,
                                    p->kv_stride, bq, hi - lo, hd, masked ? lane0 : NULL, masked ? lane1 : NULL,
                                    p->scale, p->softcap, S);
            }
            continue;
        }
        /* A causal sequence of more than OP_ATTN_QUERY_BLOCK queries runs in blocks of that many, each
         * against the keys [lo, hi) that its rows keep: the masked keys above the diagonal (and
         * left of the window) are not multiplied. Otherwise one block of all queries against all
         * n keys. */
        int qb = p->causal && Lq > OP_ATTN_QUERY_BLOCK ? OP_ATTN_QUERY_BLOCK : Lq, lo, hi;
        if (qb < Lq) { /* blocks only where they skip a fifth of the scores or more (not for a
                          sequence that is mostly a bidirectional prefix) */
            int64_t kept = 0;
            for (int b0 = 0; b0 < Lq; b0 += qb) {
                int bq = Lq - b0 < qb ? Lq - b0 : qb;
                attn_block_keys(p, q0 + b0, bq, pre, Lk, skip, &lo, &hi);
                kept += (int64_t)bq * (hi - lo);
            }
            if (kept * 5 > (int64_t)Lq * n * 4) qb = Lq;
        }
        for (int b0 = 0; b0 < Lq; b0 += qb) {
            int bq = Lq - b0 < qb ? Lq - b0 : qb;
            lo = 0, hi = n;
            if (qb < Lq) attn_block_keys(p, q0 + b0, bq, pre, Lk, skip, &lo, &hi);
            int nb = hi - lo;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, nb, hd, 1.0f, Qh + (size_t)b0 * p->q_stride,
                        p->q_stride, Kh + (size_t)lo * p->kv_stride, p->kv_stride, 0.0f, S, nb);
            for (int r0 = 0; r0 < bq; r0 += ATTN_RB) {
                int nr = bq - r0 < ATTN_RB ? bq - r0 : ATTN_RB, j0s[ATTN_RB], j1s[ATTN_RB];
                for (int k = 0; k < nr; k++) {
                    attn_row_keys(p, q0 + b0 + r0 + k, pre, Lk, skip, &j0s[k], &j1s[k]);
                    j0s[k] -= lo, j1s[k] -= lo;
                }
                rows(S + (size_t)r0 * nb, nb, nr, j0s, j1s, p->scale, p->softcap);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, hd, nb, 1.0f, S, nb,
                        Vh + (size_t)lo * p->kv_stride, p->kv_stride, 0.0f, Zh + (size_t)b0 * p->z_stride, p->z_stride);
            if (finish) finish(Zh + (size_t)b0 * p->z_stride, bq, hd, p->z_stride);
        }
    }
}
