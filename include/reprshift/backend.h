/* The kernel seam: a model's forward pass reaches every kernel through one table of
 * function pointers, so a second backend (a GPU) replaces kernels, not models. The CPU
 * backend (rs_backend_cpu) wraps the op_* kernels of ops.h unchanged; a model holds a
 * backend pointer (gemma2_model.be, siglip_model.be, paligemma_model.be), the CPU one by
 * default. Shapes and semantics of each entry are those of the op_* kernel it names. */
#ifndef REPRSHIFT_BACKEND_H
#define REPRSHIFT_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/ops.h"
#include "reprshift/safetensors.h"

typedef struct rs_backend {
    const char *name;
    /* y[T,OUT] = x[T,IN]·Wᵀ (+ bias[OUT] if non-NULL) with W a weight tensor as loaded
     * (mapped F32/BF16/F16, [OUT, IN] or [OUT, …] flattened); scratch holds W->numel floats
     * for the widening (op_weight_f32, then op_linear). */
    void (*linear)(float *y, const float *x, const st_tensor *W, const float *bias, int T, int IN, int OUT,
                   float *scratch);
    /* linear, then gelu over y: y = gelu_tanh(x·Wᵀ + bias) (op_linear_gelu: the bias added in
     * the GELU's pass; the bf16 backend rounds as its linear and gelu entries do) */
    void (*linear_gelu)(float *y, const float *x, const st_tensor *W, const float *bias, int T, int IN, int OUT,
                        float *scratch);
    /* op_rmsnorm_gemma */
    void (*rms_norm)(float *y, const float *x, const float *w, float eps, int T, int D);
    /* op_layernorm */
    void (*layer_norm)(float *y, const float *x, const float *gamma, const float *beta, float eps, int T, int D);
    /* add then layer_norm: h += a, y = LayerNorm(h) (op_add_layernorm; y aliases neither) */
    void (*add_layer_norm)(float *h, const float *a, float *y, const float *gamma, const float *beta, float eps, int T,
                           int D);
    /* op_rope_seqs: RoPE on every head of every row of packed sequences */
    void (*rope)(float *x, int stride, int n_heads, int head_dim, const int64_t *offsets, int n_seqs,
                 int pos_offset, const float *inv_freq);
    /* op_attention */
    void (*attention)(float *Z, const float *Q, const float *K, const float *V, const int64_t *offsets, int n_seqs,
                      const int *prefix, const op_attn_params *p, float *scores, size_t scores_per_thread);
    /* op_attention_kv: a block of queries against a longer key/value history (KV cache) */
    void (*attention_kv)(float *Z, const float *Q, const int64_t *q_offsets, const float *K, const float *V,
                         const int64_t *kv_start, const int *kv_len, int n_seqs, const int *prefix,
                         const op_attn_params *p, float *scores, size_t scores_per_thread);
    /* op_linear_st: y = x·Wᵀ for a decode step (few rows read half-precision weights in place) */
    void (*linear_decode)(float *y, const float *x, const st_tensor *W, float *scratch, int T, int IN, int OUT);
    /* op_softmax (one row) */
    void (*softmax)(float *x, int n);
    /* op_gelu_tanh, in place */
    void (*gelu)(float *x, size_t n);
    /* op_geglu: gate = gelu_tanh(gate)·up */
    void (*geglu)(float *gate, const float *up, size_t n);
    /* op_add: dst += src */
    void (*add)(float *dst, const float *src, size_t n);
    /* op_embed_rows: the token-embedding gather (× scale) */
    void (*embed)(float *y, const st_tensor *E, const int32_t *ids, const uint8_t *keep, int T, int D, float scale);
    /* op_gemm_nt: y (row stride ldy) = x·Wᵀ, f32 (the LM head) */
    void (*gemm_nt)(float *y, int ldy, const float *x, const float *W, int T, int IN, int OUT);
    /* op_softcap: x → tanh(x/cap)·cap */
    void (*softcap)(float *x, size_t n, float cap);
    /* op_im2col: image patches as rows (SigLIP's patch embedding input) */
    void (*im2col)(float *x, const float *pixels, int n_images, int C, int S, int P);
    /* op_add_periodic: h[t] += table[t mod N] (position embeddings) */
    void (*add_periodic)(float *h, const float *table, int T, int N, int D);
    /* bf16 compute (rs_backend_cpu_bf16): the activations hold bf16 values, weights are used
     * rounded to bf16, and linear/linear_decode's scratch holds W->numel + T·IN floats (the
     * rounded input beside the weight). 0 in the f32 backends. */
    int bf16;
} rs_backend;

/* The CPU backend: BLAS products and OpenMP loops (ops.c). */
const rs_backend *rs_backend_cpu(void);
/* The CPU backend in bf16 (ops_bf16.h, docs/precision.md): every kernel rounds like a
 * transformers bfloat16 run (the Gemma-2 decoder and the SigLIP tower). */
const rs_backend *rs_backend_cpu_bf16(void);

/* The compute precision a user picks (--precision, config key "precision"): "fp32" (the
 * default) or "bf16". */
typedef enum { RS_PREC_FP32 = 0, RS_PREC_BF16 = 1 } rs_precision;
/* 0 and *out set, or -1 when name is neither "fp32" nor "bf16". */
int rs_precision_parse(const char *name, rs_precision *out);
const char *rs_precision_name(rs_precision p);
/* The decoder backend of a precision (rs_backend_cpu or rs_backend_cpu_bf16). */
const rs_backend *rs_backend_for(rs_precision p);

#endif
