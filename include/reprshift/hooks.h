/* Named capture points ("hooks"), spelled as TransformerLens / sae-lens spell them so a
 * Gemma Scope SAE's hook_name can be used as is. A hook_request asks the forward pass to
 * copy an activation out (capture) and/or to replace it in place (splice, e.g. by an SAE
 * reconstruction). The forward pass stops after the deepest requested hook. */
#ifndef REPRSHIFT_HOOKS_H
#define REPRSHIFT_HOOKS_H

#include "reprshift/error.h"
#include "reprshift/model_config.h"

typedef enum {
    HK_RESID_PRE,          /* blocks.L.hook_resid_pre (hook_embed = blocks.0.hook_resid_pre) */
    HK_ATTN_Z,             /* blocks.L.attn.hook_z: per-head attention outputs before o_proj */
    HK_ATTN_OUT,           /* blocks.L.hook_attn_out: after post_attention_layernorm */
    HK_RESID_MID,          /* blocks.L.hook_resid_mid = resid_pre + attn_out */
    HK_MLP_OUT,            /* blocks.L.hook_mlp_out: after post_feedforward_layernorm */
    HK_RESID_POST,         /* blocks.L.hook_resid_post */
    HK_LN_FINAL_NORMALIZED,/* ln_final.hook_normalized: x/rms(x), no gain */
    HK_LN_FINAL_OUT,       /* ln_final.hook_out: final norm with gain = HF last_hidden_state */
    HK_VISION_RESID_POST,  /* vision.blocks.L.hook_resid_post */
    HK_VISION_LN_POST,     /* vision.ln_post: SigLIP post_layernorm output */
    HK_PROJECTOR_OUT,      /* projector.hook_out: multimodal projector output (before ÷√d) */
} hook_kind;

/* Called with the activation [T, width] in place; may overwrite it (splice). */
typedef void (*hook_splice_fn)(void *ctx, float *x, int T, int width);

typedef struct {
    char name[96];
    hook_kind kind;
    int layer;          /* block index, -1 for non-block hooks */
    int width;          /* columns of the activation */
    int capture;        /* 1: the forward allocates `out` [T, width] and copies into it */
    float *out;         /* owned by the caller after the forward (free()) */
    hook_splice_fn splice;
    void *splice_ctx;
} hook_request;

/* Parse a decoder hook name for a Gemma-2 config; errors list the valid names. */
int gemma2_hook_parse(const gemma2_config *c, const char *name, hook_request *r, rs_err *err);
/* Parse a vision / projector hook name for a SigLIP config; errors list the valid names. */
int siglip_hook_parse(const siglip_config *c, int projection_dim, const char *name, hook_request *r, rs_err *err);
/* Is this a vision-side hook name (vision.* or projector.*)? */
int hook_is_vision(const char *name);
/* Fire every request matching (kind, layer) whose name is a vision hook iff `vision`:
 * capture a copy of x [T, width] (allocating out) and then apply its splice. */
int hook_fire(hook_request *hooks, int n, int vision, hook_kind kind, int layer, float *x, int T, rs_err *err);
/* Free every captured output and zero the pointers. */
void hook_requests_free(hook_request *h, int n);

#endif
