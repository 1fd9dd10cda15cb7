/* The CPU backend: each entry is the op_* kernel of ops.c (linear widens a non-f32 weight
 * into the caller's scratch first). */
#include "reprshift/backend.h"

static void cpu_linear(float *y, const float *x, const st_tensor *W, const float *bias, int T, int IN, int OUT,
                       float *scratch) {
    op_linear(y, x, op_weight_f32(W, scratch), bias, T, IN, OUT);
}

static void cpu_linear_gelu(float *y, const float *x, const st_tensor *W, const float *bias, int T, int IN, int OUT,
                            float *scratch) {
    op_linear_gelu(y, x, op_weight_f32(W, scratch), bias, T, IN, OUT);
}

static const rs_backend CPU = {
    .name = "cpu",
    .linear = cpu_linear,
    .linear_gelu = cpu_linear_gelu,
    .rms_norm = op_rmsnorm_gemma,
    .layer_norm = op_layernorm,
    .add_layer_norm = op_add_layernorm,
    .rope = op_rope_seqs,
    .attention = op_attention,
    .attention_kv = op_attention_kv,
    .linear_decode = op_linear_st,
    .softmax = op_softmax,
    .gelu = op_gelu_tanh,
    .geglu = op_geglu,
    .add = op_add,
    .embed = op_embed_rows,
    .gemm_nt = op_gemm_nt,
    .softcap = op_softcap,
    .im2col = op_im2col,
    .add_periodic = op_add_periodic,
};

const rs_backend *rs_backend_cpu(void) { return &CPU; }
