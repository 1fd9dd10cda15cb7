/* bf16 compute (--precision bf16): the kernels of a transformers bfloat16 run on CPU,
 * op by op (docs/precision.md). Activations are float arrays that hold bf16 values: each
 * kernel computes in fp32 (products accumulate in fp32) and rounds its output to bf16
 * once, round-to-nearest-even, exactly where torch rounds a bf16 tensor. Weights are used
 * as bf16 (an F32/F16 checkpoint is rounded to bf16 on use, as from_pretrained(dtype=
 * torch.bfloat16) does). The products run on oneDNN's bf16 matmul when the build has oneDNN
 * and the CPU has AVX512-BF16 or AMX-BF16 ("native"); otherwise they run as f32 sgemm on
 * the bf16 values ("emulated": the same products, exact in fp32, and the same single
 * rounding of each output; only the fp32 summation order differs). */
#ifndef REPRSHIFT_OPS_BF16_H
#define REPRSHIFT_OPS_BF16_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/ops.h"

/* float → bf16 bits, round to nearest, ties to even; ±Inf stay ±Inf, a finite value past
 * the largest bf16 becomes ±Inf; NaN becomes a quiet NaN with its sign (torch's bit pattern
 * for NaN differs between its scalar and vector paths, 0x7FC0 or 0xFFFF: only "is NaN" is
 * specified). */
static inline uint16_t op_bf16_bits(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float op_bf16_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
/* f rounded to the nearest bf16, as a float. */
static inline float op_bf16_round1(float f) { return op_bf16_float(op_bf16_bits(f)); }
/* x[i] = bf16(x[i]) over n values. */
void op_bf16_round(float *x, size_t n);

/* "native" when products run on oneDNN with the CPU's bf16 instructions, "emulated"
 * otherwise. The automatic choice is native where the CPU's bf16 arithmetic outruns its fp32
 * FMAs: with AMX-BF16, and with AVX512-BF16 on AMD (Zen 4); on Intel CPUs with AVX512-BF16
 * alone the emulated route measured as fast or faster (docs/precision.md). */
const char *op_bf16_gemm_path(void);
/* 1 when the native path is possible here (oneDNN in the build, AVX512-BF16 or AMX-BF16). */
int op_bf16_native_supported(void);
enum { OP_BF16_AUTO = 0, OP_BF16_EMULATED = 1, OP_BF16_NATIVE = 2 };
/* Pick the product route (the library reads no environment; the CLI maps RS_BF16_GEMM here).
 * 0, or -1 (nothing changed) for NATIVE where it is not supported. */
int op_bf16_set_route(int route);
/* The route named "auto", "emulated" or "native" (RS_BF16_GEMM, --bf16-route); -1 for any other
 * name or NULL. */
int op_bf16_route_parse(const char *name);
/* op_bf16_set_route(on ? OP_BF16_EMULATED : OP_BF16_AUTO). */
void op_bf16_force_emulated(int on);
/* A short description for --version: "oneDNN 2.6.3, AVX512-BF16" / "emulated (…why…)". */
void op_bf16_describe(char *buf, size_t n);

/* y[T,OUT] = bf16(bf16(x)·bf16(W)ᵀ + bf16(bias)) with fp32 accumulation. scratch holds
 * W->numel + T·IN floats (rs_backend.bf16); NULL: a slower row-by-row product that needs none
 * (a decode step's few rows). */
void op_linear_bf16(float *y, const float *x, const st_tensor *W, const float *bias, int T, int IN, int OUT,
                    float *scratch);
/* Gemma2RMSNorm in a bf16 run: fp32 x·rsqrt(mean(x²)+eps)·(1 + bf16(w)), rounded once. */
void op_rmsnorm_gemma_bf16(float *y, const float *x, const float *w, float eps, int T, int D);
/* RoPE as transformers' apply_rotary_pos_emb on bf16 tensors: cos/sin rounded to bf16,
 * q·cos and rotate_half(q)·sin rounded, then their sum rounded. */
void op_rope_seqs_bf16(float *x, int stride, int n_heads, int head_dim, const int64_t *offsets, int n_seqs,
                       int pos_offset, const float *inv_freq);
/* Eager attention in bf16: S = bf16(QKᵀ), bf16(S·scale), soft-cap as bf16(tanh(bf16(S/cap)))
 * then bf16(·cap), fp32 softmax rounded to bf16, Z = bf16(P·V). Arguments as op_attention_kv. */
void op_attention_kv_bf16(float *Z, const float *Q, const int64_t *q_offsets, const float *K, const float *V,
                          const int64_t *kv_start, const int *kv_len, int n_seqs, const int *prefix,
                          const op_attn_params *p, float *scores, size_t scores_per_thread);
void op_attention_bf16(float *Z, const float *Q, const float *K, const float *V, const int64_t *offsets, int n_seqs,
                       const int *prefix, const op_attn_params *p, float *scores, size_t scores_per_thread);
/* x[i] = bf16(gelu_tanh(x[i])) (torch's 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) in fp32). */
void op_gelu_tanh_bf16(float *x, size_t n);
/* gate[i] = bf16(bf16(gelu_tanh(gate[i]))·up[i]). */
void op_geglu_bf16(float *gate, const float *up, size_t n);
/* dst[i] = bf16(dst[i] + src[i]). */
void op_add_bf16(float *dst, const float *src, size_t n);
/* softmax in fp32 over bf16 input, rounded (one row). */
void op_softmax_bf16(float *x, int n);
/* Embedding in a bf16 run: y[i] = bf16(bf16(E[ids[i]])·bf16(scale)); kept rows, given as
 * row/scale by the caller (PaliGemma's image rows z/√D), become bf16(y[i]·scale) = z: transformers
 * 5 scales inside the embedding module and inserts the image features unscaled. */
void op_embed_rows_bf16(float *y, const st_tensor *E, const int32_t *ids, const uint8_t *keep, int T, int D,
                        float scale);
/* y = bf16(x·Wᵀ), x and W holding bf16 values (the LM head over a rounded embedding block). */
void op_gemm_nt_bf16(float *y, int ldy, const float *x, const float *W, int T, int IN, int OUT);
/* x = bf16(bf16(tanh(bf16(x/cap)))·cap). */
void op_softcap_bf16(float *x, size_t n, float cap);
/* The SigLIP vision tower in bf16 (as transformers runs it with dtype=torch.bfloat16):
 * LayerNorm statistics and affine map in fp32 with bf16(gamma), bf16(beta), rounded once; the
 * position-embedding add bf16(h + bf16(table)). Arguments as op_layernorm, op_add_periodic.
 * The patch embedding and every linear layer with a bias are op_linear_bf16, bf16(bf16(x)·Wᵀ +
 * bf16(bias)) with one rounding, so the patches (op_im2col) need no rounding of their own: the
 * product rounds its input as pixel_values.to(bfloat16) does. */
void op_layernorm_bf16(float *y, const float *x, const float *gamma, const float *beta, float eps, int T, int D);
void op_add_periodic_bf16(float *h, const float *table, int T, int N, int D);

#endif
