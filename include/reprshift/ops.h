/* Dense f32 kernels used by the model forward passes. Shapes in the names: T rows
 * (tokens), D/IN/OUT columns. Row-major throughout; a linear layer y = x·Wᵀ (+ b) takes W
 * stored [OUT, IN] as in PyTorch nn.Linear. */
#ifndef REPRSHIFT_OPS_H
#define REPRSHIFT_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/safetensors.h"

/* y[T,OUT] = x[T,IN] · W[OUT,IN]ᵀ (+ bias[OUT] if non-NULL). */
void op_linear(float *y, const float *x, const float *W, const float *bias, int T, int IN, int OUT);
/* y[T,OUT] = gelu_tanh(x·Wᵀ + bias) (bias may be NULL): op_linear then op_gelu_tanh, with the
 * bias added in the GELU's pass over y (the same bits as the two calls, one pass fewer). */
void op_linear_gelu(float *y, const float *x, const float *W, const float *bias, int T, int IN, int OUT);
/* Gemma RMSNorm: y = x / sqrt(mean(x²) + eps) · (1 + w); w NULL means gain 1 (no weight). y may alias x. */
void op_rmsnorm_gemma(float *y, const float *x, const float *w, float eps, int T, int D);
/* LayerNorm with biased variance: y = (x − μ)/sqrt(σ² + eps)·γ + β. y may alias x. */
void op_layernorm(float *y, const float *x, const float *gamma, const float *beta, float eps, int T, int D);
/* h += a, then y = LayerNorm(h) (op_add then op_layernorm, the same bits, one pass over each
 * row while it is in L1). y must not alias h or a. */
void op_add_layernorm(float *h, const float *a, float *y, const float *gamma, const float *beta, float eps, int T,
                      int D);
/* tanh-approximated GELU (PyTorch approximate="tanh"), in place over n values. */
void op_gelu_tanh(float *x, size_t n);
/* x[i] = gelu_tanh(gate[i]) * up[i] over n values, written into gate. */
void op_geglu(float *gate, const float *up, size_t n);
/* Half-split RoPE on one head vector x[dim] at integer position pos with precomputed
 * inv_freq[dim/2] (fp32 angle = inv_freq·pos, as HF computes it). */
void op_rope(float *x, int dim, const float *inv_freq, int pos);
/* op_rope on every head of every row of packed sequences: row i of sequence s (rows
 * offsets[s] … offsets[s+1]−1) sits at position i − offsets[s] + pos_offset; its n_heads
 * head vectors of head_dim values start at x + i·stride. Sequences run in parallel. */
void op_rope_seqs(float *x, int stride, int n_heads, int head_dim, const int64_t *offsets, int n_seqs, int pos_offset,
                  const float *inv_freq);
/* inv_freq[i] = 1 / theta^(2i/dim) in fp32, i < dim/2. */
void op_rope_inv_freq(float *inv_freq, int dim, double theta);
/* In-place row softmax over n entries (max-subtracted; entries equal to -INFINITY give 0). */
void op_softmax(float *x, int n);

/* Multi-head scaled-dot-product attention over a batch of packed sequences (sequence s =
 * rows offsets[s] … offsets[s+1]−1 of Q, K, V and Z), the one kernel both towers use:
 *   Gemma-2 decoder  causal, sliding window on alternate layers, query_pre_attn_scalar^−½
 *                    scale, tanh soft-cap, grouped-query heads, PaliGemma's prefix-LM block;
 *   SigLIP encoder   bidirectional, head_dim^−½ scale, no cap.
 * Per (sequence, head): S = scale·Q_h K_gᵀ (g = h / (n_heads/n_kv_heads), as transformers'
 * repeat_kv), s → tanh(s/cap)·cap when cap > 0, masked entries −∞, row softmax (op_softmax),
 * Z_h = S V_g. Entry (i, j) of a sequence is kept when
 *   !causal, or j ≤ i and (window ≤ 0 or i − j < window), or i, j < prefix[s].
 * Rows of Q/Z hold n_heads·head_dim values at stride q_stride/z_stride, rows of K/V
 * n_kv_heads·head_dim at kv_stride. scores: workspace of omp_get_max_threads() blocks of
 * scores_per_thread ≥ Lmax² floats (Lmax the longest sequence). (Sequence, head) pairs run
 * in parallel; the products inside run on one BLAS thread. A causal sequence of more than
 * OP_ATTN_QUERY_BLOCK queries runs in blocks of that many queries, each multiplied only with
 * the keys one of its rows keeps (the masked keys above the diagonal are skipped); the second
 * product's sums then have fewer terms, so its results can differ from the one-block
 * computation's by rounding. */
enum { OP_ATTN_QUERY_BLOCK = 128 };
typedef struct {
    int n_heads, n_kv_heads, head_dim;
    int q_stride, kv_stride, z_stride;
    float scale, softcap; /* softcap ≤ 0: none */
    int causal, window;   /* window ≤ 0: none (only with causal) */
} op_attn_params;
void op_attention(float *Z, const float *Q, const float *K, const float *V, const int64_t *offsets, int n_seqs,
                  const int *prefix, const op_attn_params *p, float *scores, size_t scores_per_thread);
/* The same attention for a block of queries against a longer key/value history (a KV
 * cache): sequence s has Lq = q_offsets[s+1] − q_offsets[s] query rows of Q/Z and
 * Lk = kv_len[s] ≥ Lq key/value rows of K/V starting at row kv_start[s]; query r sits at
 * position Lk − Lq + r among the keys (the queries are the last Lq tokens), and the mask
 * above applies with those positions (prefix[s] counts from key 0). kv_len NULL: Lk = Lq
 * (op_attention is this call with kv_start = q_offsets). scores: ≥ Lq·Lk floats per thread.
 * Keys that the sliding window has passed for every query of the block are skipped. */
void op_attention_kv(float *Z, const float *Q, const int64_t *q_offsets, const float *K, const float *V,
                     const int64_t *kv_start, const int *kv_len, int n_seqs, const int *prefix,
                     const op_attn_params *p, float *scores, size_t scores_per_thread);
/* How the fp32 op_attention / op_attention_kv multiply (the bf16 ones always use the BLAS):
 * BLAS: per (sequence, head) one sgemm QKᵀ, the softmax rows (ISA-dispatched, bit-identical at
 *   every level), one sgemm PV;
 * FUSED: a hand-written AVX-512 kernel per block of 32 queries (scores kept in L1/L2, no
 *   packing, the softmax vectorised across queries); equal to the BLAS route to rounding,
 *   not bit for bit (test_ops_isa bounds it); sequences of fewer than 32 queries (a decode
 *   step) and head dims above 256 take the BLAS route;
 * AUTO (the default): FUSED where it is compiled in, the CPU has AVX-512 and the active ISA
 *   level (rs_isa_active) is avx512; otherwise BLAS.
 * The library reads no environment variable (the CLI reads RS_ATTN). */
enum { OP_ATTN_ROUTE_AUTO = 0, OP_ATTN_ROUTE_BLAS = 1, OP_ATTN_ROUTE_FUSED = 2 };
const char *op_attn_route_name(int route); /* "auto", "blas", "fused" */
int op_attn_route_parse(const char *name); /* -1 if unknown */
int op_attn_fused_available(void);         /* compiled in and the CPU has AVX-512 */
int op_attn_route_set(int route);          /* 0, or -1 (nothing changed): unknown, or FUSED unavailable */
int op_attn_route(void);                   /* the route now in force: BLAS or FUSED */
/* dst += src over n floats. */
void op_add(float *dst, const float *src, size_t n);

/* y[T,OUT] = x[T,IN] · Wᵀ for a weight tensor W [OUT, IN] (F32, BF16 or F16, no bias). At
 * most OP_LINEAR_SMALL_T rows (a decode step) against a BF16/F16 matrix: each weight row is widened as it
 * is dotted, in 16 float lanes in a fixed order, the same at every ISA level (weights read once, scratch
 * unused, may be NULL; ops.c); otherwise
 * the matrix is widened into scratch (numel floats) by op_weight_f32 and op_linear runs, as
 * the prefill always did. */
#define OP_LINEAR_SMALL_T 4
void op_linear_st(float *y, const float *x, const st_tensor *W, float *scratch, int T, int IN, int OUT);

/* A weight matrix as f32: points into the mapped file when it is already aligned f32,
 * otherwise into `scratch` (which must hold numel floats) after conversion. */
const float *op_weight_f32(const st_tensor *t, float *scratch);

/* The model ends (src/tensor/ops_lm.c). Embedding: for each row i, y[i] = E[ids[i]]·scale
 * with E [V, D] as mapped (F32/BF16/F16), except rows with keep[i] != 0 (keep may be NULL),
 * which already hold their input and are only scaled. */
void op_embed_rows(float *y, const st_tensor *E, const int32_t *ids, const uint8_t *keep, int T, int D, float scale);
/* row[0..D) = row id of the embedding E, as f32 (the gather of op_embed_rows and its bf16 twin). */
void op_embed_gather(float *row, const st_tensor *E, int32_t id, int D);
/* y[T, OUT] with row stride ldy = x[T, IN]·W[OUT, IN]ᵀ, all f32 (the LM head over an
 * embedding block). */
void op_gemm_nt(float *y, int ldy, const float *x, const float *W, int T, int IN, int OUT);
/* x[i] = tanh(x[i]/cap)·cap (Gemma-2's final logit soft-cap). */
void op_softcap(float *x, size_t n, float cap);

/* The start of the vision tower (src/tensor/ops_vision.c). Patch extraction: pixels
 * [n_images, C, S, S] → x [n_images·(S/P)², C·P·P], patches in row-major grid order, each
 * row ordered (channel, ky, kx) to match a conv weight [D, C, P, P]. */
void op_im2col(float *x, const float *pixels, int n_images, int C, int S, int P);
/* h[t] += table[t mod N] for rows t of h [T, D] (position embeddings per image). */
void op_add_periodic(float *h, const float *table, int T, int N, int D);

/* ISA of the elementwise kernels (norms, RoPE, softmax, soft-cap and masking in attention,
 * GELU/GeGLU, add, bias, bf16/f16 widening, SAE thresholds, the vertical resize pass): each is
 * compiled for baseline x86-64, AVX2 and AVX-512 from one scalar source and dispatched at
 * run time (never -march=native); every level gives bit-identical results (test_ops_isa).
 * The library picks the best level the CPU supports and reads no environment variable;
 * callers (the bench, tests) may force a lower one. Non-x86 builds have only "default". */
enum { RS_ISA_DEFAULT = 0, RS_ISA_AVX2 = 1, RS_ISA_AVX512 = 2, RS_ISA_COUNT = 3 };
const char *rs_isa_name(int isa);       /* "default", "avx2", "avx512" */
int rs_isa_parse(const char *name);     /* inverse of rs_isa_name; -1 if unknown */
int rs_isa_supported(int isa);          /* compiled in and supported by this CPU and OS */
int rs_isa_best(void);                  /* highest supported level */
int rs_isa_active(void);                /* level the kernels use now */
int rs_isa_force(int isa);              /* 0, or -1 (nothing changed) when not supported */

#endif
