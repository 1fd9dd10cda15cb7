/* SigLIP vision tower (PaliGemma's So400m/14, docs/model-spec.md §3): patch embedding as one
 * GEMM over im2col patches, learned position embeddings, pre-LN encoder layers (MHA with
 * biases, bidirectional; tanh-GELU MLP), post-LayerNorm. fp32 math on f32/bf16/f16
 * weights kept memory-mapped. Several images run as one packed token matrix. */
#ifndef REPRSHIFT_SIGLIP_H
#define REPRSHIFT_SIGLIP_H

#include "reprshift/backend.h"
#include "reprshift/error.h"
#include "reprshift/hooks.h"
#include "reprshift/model_config.h"
#include "reprshift/safetensors.h"

/* One encoder layer's weights; the table SIGLIP_LAYER_WEIGHTS in siglip.c names each
 * field's tensor, shape and kind. */
typedef struct {
    const st_tensor *q_proj, *k_proj, *v_proj, *out_proj, *fc1, *fc2;  /* [out, in] */
    float *q_bias, *k_bias, *v_bias, *out_bias, *fc1_bias, *fc2_bias;  /* f32 copies */
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
} siglip_layer;

typedef struct {
    siglip_config cfg;
    st_set *st;                 /* weights, owned by the caller */
    char prefix[64];            /* tensor-name prefix, e.g. "vision_tower.vision_model." */
    int grid;                   /* patches per side G = image_size / patch_size */
    int n_patches;              /* N = G² tokens per image */
    int patch_dim;              /* C·P·P, the im2col row length */
    const st_tensor *patch_w;   /* [D, C, P, P] viewed as [D, C·P·P] */
    float *patch_b;             /* [D] */
    float *pos_emb;             /* [N, D] */
    siglip_layer *layers;
    float *post_w, *post_b;     /* post_layernorm */
    size_t max_weight;          /* largest matrix numel (conversion scratch size) */
    const rs_backend *be;       /* the kernels the forward pass calls (rs_backend_cpu() after loading) */
    st_tensor *f32_views;       /* siglip_keep_f32_weights: the widened matrices (data owned), or NULL */
    int n_f32_views;
} siglip_model;

/* Find the vision tower's tensor-name prefix in a weight set: "vision_tower.vision_model."
 * (Hub), "model.vision_tower.vision_model." (transformers 4.5x) or "vision_tower."
 * (transformers 5 save_pretrained). Writes it to prefix (size n). */
int siglip_find_prefix(const st_set *st, char *prefix, size_t n, rs_err *err);
/* Build the tower over an open weight set (kept by the caller) with tensor-name prefix;
 * every tensor's shape is checked against cfg, and a mismatch names the tensor. */
int siglip_from_weights(siglip_model **out, const siglip_config *cfg, st_set *st, const char *prefix, rs_err *err);
/* Free the tower (not the weight set). */
void siglip_close(siglip_model *m);
/* Opt-in: keep an f32 copy of each weight matrix of the tower that is not already aligned
 * f32 (the patch embedding and the six matrices of every layer; BF16/F16 checkpoints), so
 * that a forward pass stops widening every matrix into the scratch on every call. Costs
 * 4 bytes per weight resident beside the mapped file (SigLIP So400m: 1.6 GB). The widening
 * is exact, so every output is unchanged (either precision). Idempotent; −1 (tower
 * unchanged) when out of memory. */
int siglip_keep_f32_weights(siglip_model *m, rs_err *err);

/* Parse a vision-side hook name (vision.*, projector.hook_out of width projection_dim; see
 * reprshift/hooks.h). Errors list the valid names. */
int siglip_hook_parse(const siglip_config *c, int projection_dim, const char *name, hook_request *r, rs_err *err);
/* Deepest layer the vision-tower hooks in the list need (-1: embedding only, n_layers:
 * post-LN); hooks on other towers are ignored. Returns -2 when there is none. */
int siglip_hooks_depth(const siglip_model *m, const hook_request *hooks, int n_hooks);

/* Run n_images images (pixel_values [n_images, C, S, S], normalised as the SigLIP processor
 * does). Captures the vision.* hooks of the list (rows: image-major, N per image; other
 * hooks are ignored). If out is non-NULL the whole tower runs and the post-LN output
 * [n_images·N, D] is written there; otherwise it stops after the deepest vision hook. */
int siglip_forward(const siglip_model *m, const float *pixel_values, int n_images, hook_request *hooks,
                   int n_hooks, float *out, rs_err *err);

#endif
