/* The CPU backend in bf16: the kernels of ops_bf16.c, for the Gemma-2 decoder and the SigLIP
 * vision tower (layer norm, patches, position embeddings) alike. */
#include "reprshift/backend.h"
#include "reprshift/ops_bf16.h"

#include <string.h>

static void bf16_linear_decode(float *y, const float *x, const st_tensor *W, float *scratch, int T, int IN, int OUT) {
    op_linear_bf16(y, x, W, NULL, T, IN, OUT, scratch);
}

/* bf16(gelu(bf16(x·Wᵀ + b))): the two entries one after the other */
static void bf16_linear_gelu(float *y, const float *x, const st_tensor *W, const float *bias, int T, int IN, int OUT,
                             float *scratch) {
    op_linear_bf16(y, x, W, bias, T, IN, OUT, scratch);
    op_gelu_tanh_bf16(y, (size_t)T * OUT);
}

/* the residual add and the LayerNorm after it, one entry after the other */
static void bf16_add_layer_norm(float *h, const float *a, float *y, const float *gamma, const float *beta, float eps,
                                int T, int D) {
    op_add_bf16(h, a, (size_t)T * D);
    op_layernorm_bf16(y, h, gamma, beta, eps, T, D);
}

static const rs_backend CPU_BF16 = {
    .name = "cpu-bf16",
    .linear = op_linear_bf16,
    .linear_gelu = bf16_linear_gelu,
    .rms_norm = op_rmsnorm_gemma_bf16,
    .layer_norm = op_layernorm_bf16,
    .add_layer_norm = bf16_add_layer_norm,
    .rope = op_rope_seqs_bf16,
    .attention = op_attention_bf16,
    .attention_kv = op_attention_kv_bf16,
    .linear_decode = bf16_linear_decode,
    .softmax = op_softmax_bf16,
    .gelu = op_gelu_tanh_bf16,
    .geglu = op_geglu_bf16,
    .add = op_add_bf16,
    .embed = op_embed_rows_bf16,
    .gemm_nt = op_gemm_nt_bf16,
    .softcap = op_softcap_bf16,
    .im2col = op_im2col, /* linear rounds the patches (ops_bf16.h) */
    .add_periodic = op_add_periodic_bf16,
    .bf16 = 1,
};

const rs_backend *rs_backend_cpu_bf16(void) { return &CPU_BF16; }

int rs_precision_parse(const char *name, rs_precision *out) {
    if (!name) return -1;
    if (!strcmp(name, "fp32")) *out = RS_PREC_FP32;
    else if (!strcmp(name, "bf16")) *out = RS_PREC_BF16;
    else return -1;
    return 0;
}

const char *rs_precision_name(rs_precision p) { return p == RS_PREC_BF16 ? "bf16" : "fp32"; }

const rs_backend *rs_backend_for(rs_precision p) { return p == RS_PREC_BF16 ? &CPU_BF16 : rs_backend_cpu(); }
