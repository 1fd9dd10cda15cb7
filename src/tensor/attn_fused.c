/* The fp32 attention of one block of up to 32 queries as one AVX-512 kernel (internal to the
 * tensor kernels; attention_impl.h). The BLAS route (two sgemm calls per (sequence, head) with
 * the softmax rows between them, ops.c) multiplies short products (K = head_dim, N = head_dim)
 * that OpenBLAS packs and runs at 65-80% of its linear-layer rate, and leaves the rows' sums
 * scalar. Here the scores of a block are kept transposed, Sᵀ[key][query] (32 queries = two
 * vectors per key), so that
 *   - QKᵀ needs no packing of K: a tile of 12 keys × 32 queries accumulates in 24 registers,
 *     K's values broadcast straight from its strided rows, Q's block transposed once (Qᵀ,
 *     head_dim × 32, zero beyond the block's queries);
 *   - the softmax of a query runs down a column: 32 queries' maxima, exps and sums side by
 *     side in vector lanes (each query's sum still a sequential double sum over its keys, in
 *     key order, as in the rows of the BLAS route; the exp with FMA and vscalefps, exp16);
 *   - PV reads V's rows where they are: a tile of 4 queries × up to 5 vectors of the head
 *     dimension (masked at its end) accumulates over the keys, P's values broadcast from Sᵀ.
 * The products accumulate with FMA in key/dimension order: the same values as the BLAS route
 * to rounding (not the same bits; test_ops_isa bounds the difference). Masks (causal, window,
 * prefix) are per query [j0, j1) as in the BLAS route; masked scores are exact zeros after the
 * softmax, so they add nothing to PV. */
#include "tensor/attention_impl.h"

#include <math.h>
#include <string.h>

#include "tensor/vexp.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(RS_NO_ISA_DISPATCH)
#include <immintrin.h>

#define FUSED_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))
#define FUSED_INLINE FUSED_TARGET static inline __attribute__((always_inline))
enum { QB = RS_ATTN_FUSED_QB, KT = 12, PR = 4 };

int rs_attn_fused_compiled(void) { return 1; }

/* Sᵀ[j][0..32) = scale · Σ_k K[j][k] · Qᵀ[k][0..32) for RK keys from key j. */
FUSED_INLINE void qk_tile(float *St, const float *Kj, int kv_stride, const float *Qt, int hd, float scale, int RK) {
    __m512 acc[KT][2];
#pragma GCC unroll 12
    for (int r = 0; r < KT; r++)
        if (r < RK) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int k = 0; k < hd; k++) {
        __m512 qa = _mm512_load_ps(Qt + (size_t)k * QB), qb = _mm512_load_ps(Qt + (size_t)k * QB + 16);
#pragma GCC unroll 12
        for (int r = 0; r < KT; r++)
            if (r < RK) {
                __m512 kb = _mm512_set1_ps(Kj[(size_t)r * kv_stride + k]);
                acc[r][0] = _mm512_fmadd_ps(kb, qa, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(kb, qb, acc[r][1]);
            }
    }
    __m512 s = _mm512_set1_ps(scale);
#pragma GCC unroll 12
    for (int r = 0; r < KT; r++)
        if (r < RK) {
            _mm512_storeu_ps(St + (size_t)r * QB, _mm512_mul_ps(acc[r][0], s));
            _mm512_storeu_ps(St + (size_t)r * QB + 16, _mm512_mul_ps(acc[r][1], s));
        }
}

FUSED_TARGET static void qk_block(float *St, const float *K, int kv_stride, const float *Qt, int hd, int nb,
                                  float scale) {
    int j = 0;
    for (; j + KT <= nb; j += KT) qk_tile(St + (size_t)j * QB, K + (size_t)j * kv_stride, kv_stride, Qt, hd, scale, KT);
    for (; j + 4 <= nb; j += 4) qk_tile(St + (size_t)j * QB, K + (size_t)j * kv_stride, kv_stride, Qt, hd, scale, 4);
    for (; j < nb; j++) qk_tile(St + (size_t)j * QB, K + (size_t)j * kv_stride, kv_stride, Qt, hd, scale, 1);
}

/* Z[i0 + r][d0 .. d0 + 16·NV) (r < nr ≤ PR, the last vector masked by `last`) = Σ_j Pᵀ[j][i0 + r] · V[j][...]
 * over the keys [0, nb) of this chunk, added to what the earlier chunks left in Z unless `first`
 * (the float sums are stored and reloaded between chunks: the same sequence of FMAs as one pass). */
FUSED_INLINE void pv_tile(float *Z, int z_stride, const float *Pt, const float *V, int kv_stride, int nb, int nr,
                          int NV, __mmask16 last, int first) {
    __m512 acc[PR][5];
#pragma GCC unroll 4
    for (int r = 0; r < PR; r++)
#pragma GCC unroll 5
        for (int v = 0; v < 5; v++)
            if (v < NV) {
                const float *zp = Z + (size_t)r * z_stride + 16 * v;
                if (first || r >= nr) acc[r][v] = _mm512_setzero_ps();
                else acc[r][v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, zp) : _mm512_loadu_ps(zp);
            }
    for (int j = 0; j < nb; j++) {
        const float *vr = V + (size_t)j * kv_stride;
        __m512 vv[5];
#pragma GCC unroll 5
        for (int v = 0; v < 5; v++)
            if (v < NV) vv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, vr + 16 * v) : _mm512_loadu_ps(vr + 16 * v);
#pragma GCC unroll 4
        for (int r = 0; r < PR; r++) {
            __m512 p = _mm512_set1_ps(Pt[(size_t)j * QB + r]);
#pragma GCC unroll 5
            for (int v = 0; v < 5; v++)
                if (v < NV) acc[r][v] = _mm512_fmadd_ps(p, vv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < PR; r++)
        if (r < nr)
#pragma GCC unroll 5
            for (int v = 0; v < 5; v++)
                if (v < NV) {
                    if (v == NV - 1) _mm512_mask_storeu_ps(Z + (size_t)r * z_stride + 16 * v, last, acc[r][v]);
                    else _mm512_storeu_ps(Z + (size_t)r * z_stride + 16 * v, acc[r][v]);
                }
}

/* Keys in chunks of JC: a chunk of V (JC rows of up to 80 values) stays in L1 while every
 * query tile of the block passes over it. */
enum { JC = 64 };
FUSED_TARGET static void pv_block(float *Z, int z_stride, const float *Pt, const float *V, int kv_stride, int nb, int bq,
                                  int hd) {
    /* the head dimension in chunks of 4 vectors (64 values), the last chunk up to 5 (80) */
    for (int d0 = 0; d0 < hd;) {
        int rem = hd - d0, nv = rem > 80 ? 4 : (rem + 15) / 16, width = rem > 80 ? 64 : rem;
        __mmask16 last = (__mmask16)((1u << (width - 16 * (nv - 1))) - 1u);
        for (int j0 = 0; j0 < nb; j0 += JC) {
            int jn = nb - j0 < JC ? nb - j0 : JC, first = j0 == 0;
            const float *Pj = Pt + (size_t)j0 * QB, *Vd = V + (size_t)j0 * kv_stride + d0;
            for (int i0 = 0; i0 < bq; i0 += PR) {
                int nr = bq - i0 < PR ? bq - i0 : PR;
                float *Zi = Z + (size_t)i0 * z_stride + d0;
                const float *Pi = Pj + i0;
                switch (nv) {
                case 1: pv_tile(Zi, z_stride, Pi, Vd, kv_stride, jn, nr, 1, last, first); break;
                case 2: pv_tile(Zi, z_stride, Pi, Vd, kv_stride, jn, nr, 2, last, first); break;
                case 3: pv_tile(Zi, z_stride, Pi, Vd, kv_stride, jn, nr, 3, last, first); break;
                case 4: pv_tile(Zi, z_stride, Pi, Vd, kv_stride, jn, nr, 4, last, first); break;
                default: pv_tile(Zi, z_stride, Pi, Vd, kv_stride, jn, nr, 5, last, first); break;
                }
            }
        }
        d0 += width;
    }
}

/* In-register transpose of 16 rows of 16 floats: r[c] becomes column c. */
FUSED_INLINE void tr16(__m512 r[16]) {
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + m], 128-bit lane L: column 4L + m of rows 4g .. 4g + 3 */
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) {
        __m512 v = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88), w = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xdd);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88), w2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xdd);
        r[m] = _mm512_shuffle_f32x4(v, v2, 0x88);      /* column m      (lane 0) */
        r[8 + m] = _mm512_shuffle_f32x4(v, v2, 0xdd);  /* column 8 + m  (lane 2) */
        r[4 + m] = _mm512_shuffle_f32x4(w, w2, 0x88);  /* column 4 + m  (lane 1) */
        r[12 + m] = _mm512_shuffle_f32x4(w, w2, 0xdd); /* column 12 + m (lane 3) */
    }
}

/* Qᵀ[k][l] = Q[l][k] for the bq queries of the block, 0 for l in [bq, QB). */
FUSED_TARGET static void transpose_q(float *Qt, const float *Q, int q_stride, int bq, int hd) {
    for (int l0 = 0; l0 < QB; l0 += 16)
        for (int k0 = 0; k0 < hd; k0 += 16) {
            int kw = hd - k0 < 16 ? hd - k0 : 16;
            __mmask16 km = (__mmask16)((1u << kw) - 1u);
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = l0 + i < bq ? _mm512_maskz_loadu_ps(km, Q + (size_t)(l0 + i) * q_stride + k0) : _mm512_setzero_ps();
            tr16(r);
            for (int c = 0; c < kw; c++) _mm512_storeu_ps(Qt + (size_t)(k0 + c) * QB + l0, r[c]);
        }
}

/* exp(x) on 16 lanes with FMA: x = k·ln2 + r (k = rint(x·log2 e), Cody–Waite ln2 as in
 * rs_vexpf), exp(r) = 1 + r + r²·P(r) with rs_vexpf's polynomial, 2^k applied by vscalefps
 * (exact scaling, one rounding into the subnormals, 0 below). x is clamped below at −120 (a
 * result of exactly 0, as exp(−∞) = 0 for a masked score); NaN passes through (vmaxps returns
 * its second operand when either is NaN). Within 2 ulp of the correctly rounded exp like
 * rs_vexpf (test_ops_isa bounds the attention it is part of), not its bits: the polynomial's
 * products are fused. */
FUSED_INLINE __m512 exp16(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f), ln2hi = _mm512_set1_ps(0.693359375f),
                 ln2lo = _mm512_set1_ps(-2.12194440e-4f);
    x = _mm512_max_ps(_mm512_set1_ps(-120.0f), x);
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, ln2hi, x);
    r = _mm512_fnmadd_ps(k, ln2lo, r);
    __m512 p = _mm512_set1_ps(1.979035296e-04f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.394464867e-03f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.333496749e-03f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166629538e-02f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666666567e-01f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.000000000e-01f));
    __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(e, k);
}

/* The softmax of each query (a column of Sᵀ, nb keys) in place, keeping for query l the keys
 * [j0[l], j1[l]) (all when j0 is NULL), with the soft-cap (cap > 0) applied to the scaled
 * scores first. Per query, as the BLAS route's rows: the maximum, exp(s − max), the sequential
 * double sum over the kept keys in key order, the reciprocal in double rounded to float, the
 * products; masked keys come out +0. */
FUSED_TARGET static void softmax_cols(float *St, int nb, const int *j0, const int *j1, float cap) {
    float m[QB] __attribute__((aligned(64)));
    for (int l = 0; l < QB; l++) m[l] = -INFINITY;
    for (int j = 0; j < nb; j++) {
        float *s = St + (size_t)j * QB;
        if (cap > 0)
            for (int l = 0; l < QB; l++) s[l] = rs_vtanhf(s[l] / cap) * cap;
        if (j0)
            for (int l = 0; l < QB; l++) s[l] = rs_fsel(j >= j0[l] && j < j1[l], s[l], -INFINITY);
        for (int l = 0; l < QB; l++) m[l] = s[l] > m[l] ? s[l] : m[l];
    }
    for (int l = 0; l < QB; l++) m[l] = m[l] == -INFINITY ? 0.0f : m[l];
    __m512 m0 = _mm512_load_ps(m), m1 = _mm512_load_ps(m + 16);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd(), s2 = _mm512_setzero_pd(), s3 = _mm512_setzero_pd();
    for (int j = 0; j < nb; j++) {
        float *s = St + (size_t)j * QB;
        __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(s), m0)), e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + 16), m1));
        _mm512_storeu_ps(s, e0);
        _mm512_storeu_ps(s + 16, e1);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e0)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e0), 1))));
        s2 = _mm512_add_pd(s2, _mm512_cvtps_pd(_mm512_castps512_ps256(e1)));
        s3 = _mm512_add_pd(s3, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e1), 1))));
    }
    double sum[QB] __attribute__((aligned(64)));
    _mm512_store_pd(sum, s0), _mm512_store_pd(sum + 8, s1), _mm512_store_pd(sum + 16, s2), _mm512_store_pd(sum + 24, s3);
    float inv[QB];
    for (int l = 0; l < QB; l++) inv[l] = sum[l] > 0 ? (float)(1.0 / sum[l]) : 0.0f;
    for (int j = 0; j < nb; j++) {
        float *s = St + (size_t)j * QB;
        for (int l = 0; l < QB; l++) s[l] *= inv[l];
    }
}

FUSED_TARGET void rs_attn_fused_block(float *Z, int z_stride, const float *Q, int q_stride, const float *K,
                                      const float *V, int kv_stride, int bq, int nb, int hd, const int *j0,
                                      const int *j1, float scale, float softcap, float *St) {
    float Qt[RS_ATTN_FUSED_MAX_HD * QB] __attribute__((aligned(64)));
    transpose_q(Qt, Q, q_stride, bq, hd);
    qk_block(St, K, kv_stride, Qt, hd, nb, scale);
    softmax_cols(St, nb, j0, j1, softcap);
    pv_block(Z, z_stride, St, V, kv_stride, nb, bq, hd);
}

#else
int rs_attn_fused_compiled(void) { return 0; }
void rs_attn_fused_block(float *Z, int z_stride, const float *Q, int q_stride, const float *K, const float *V,
                         int kv_stride, int bq, int nb, int hd, const int *j0, const int *j1, float scale,
                         float softcap, float *St) {
    (void)Z, (void)z_stride, (void)Q, (void)q_stride, (void)K, (void)V, (void)kv_stride, (void)bq, (void)nb;
    (void)hd, (void)j0, (void)j1, (void)scale, (void)softcap, (void)St;
}
#endif
