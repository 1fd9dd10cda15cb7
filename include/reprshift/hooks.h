/* Named capture points ("hooks"), spelled as TransformerLens / sae-lens spell them so a
 * Gemma Scope SAE's hook_name can be used as is.
 *
 * A hook's identity is rs_hook {tower, kind, layer}. Names are parsed and formatted in one
 * place (src/model/hooks.c, one table per tower):
 *   decoder    blocks.L.{hook_resid_pre, attn.hook_z, hook_attn_out, hook_resid_mid,
 *              hook_mlp_out, hook_resid_post}, hook_embed (= blocks.0.hook_resid_pre),
 *              ln_final.hook_normalized, ln_final.hook_out
 *   vision     vision.blocks.L.{hook_resid_pre, hook_attn_out, hook_resid_mid, hook_mlp_out,
 *              hook_resid_post}, vision.hook_embed (= vision.blocks.0.hook_resid_pre),
 *              vision.ln_post
 *   projector  projector.hook_out
 * L is a plain decimal (no sign, no leading zeros) below the tower's block count.
 *
 * A hook_request asks the forward pass to copy an activation out (capture) and/or to
 * replace it in place (splice, e.g. by an SAE reconstruction). The forward pass stops
 * after the deepest requested hook. */
#ifndef REPRSHIFT_HOOKS_H
#define REPRSHIFT_HOOKS_H

#include <stddef.h>

#include "reprshift/error.h"
#include "reprshift/model_config.h"

/* The towers a hook can belong to. */
typedef enum { RS_TOWER_DECODER = 0, RS_TOWER_VISION = 1, RS_TOWER_PROJECTOR = 2 } rs_tower;
#define RS_N_TOWERS 3

typedef enum {
    HK_RESID_PRE,          /* blocks.L.hook_resid_pre (hook_embed = blocks.0.hook_resid_pre) */
    HK_ATTN_Z,             /* blocks.L.attn.hook_z: per-head attention outputs before o_proj */
    HK_ATTN_OUT,           /* blocks.L.hook_attn_out: after post_attention_layernorm */
    HK_RESID_MID,          /* blocks.L.hook_resid_mid = resid_pre + attn_out */
    HK_MLP_OUT,            /* blocks.L.hook_mlp_out: after post_feedforward_layernorm */
    HK_RESID_POST,         /* blocks.L.hook_resid_post (both towers) */
    HK_LN_FINAL_NORMALIZED,/* ln_final.hook_normalized: x/rms(x), no gain */
    HK_LN_FINAL_OUT,       /* ln_final.hook_out: final norm with gain = HF last_hidden_state */
    HK_VISION_LN_POST,     /* vision.ln_post: SigLIP post_layernorm output */
    HK_PROJECTOR_OUT,      /* projector.hook_out: multimodal projector output (before ÷√d) */
} hook_kind;

/* One hook: layer is the block index, -1 for the hooks outside the blocks. */
typedef struct {
    rs_tower tower;
    hook_kind kind;
    int layer;
} rs_hook;

/* The hooks a model offers: which towers it has, their block counts and widths. */
typedef struct {
    int present[RS_N_TOWERS];
    int n_layers[RS_N_TOWERS];  /* blocks of the tower (projector: 0) */
    int width[RS_N_TOWERS];     /* activation columns */
    int attn_z_width;           /* decoder attn.hook_z: n_heads·head_dim */
} rs_hook_space;

rs_hook_space rs_hook_space_gemma2(const gemma2_config *c);
/* The SigLIP tower and the projector after it (width projection_dim). */
rs_hook_space rs_hook_space_siglip(const siglip_config *c, int projection_dim);
/* PaliGemma: decoder, vision tower and projector. */
rs_hook_space rs_hook_space_paligemma(const paligemma_config *c);

/* Parse a TransformerLens name into *h. With s, the tower must be present and the layer
 * below its block count; errors name the hook and list every valid name of the space.
 * With s NULL any tower and any layer ≥ 0 is accepted (names only). */
int rs_hook_parse(const rs_hook_space *s, const char *name, rs_hook *h, rs_err *err);
/* The canonical name of h into buf[n] (hook_embed formats as blocks.0.hook_resid_pre).
 * Returns 0, or -1 when h is no hook or the name does not fit. */
int rs_hook_format(const rs_hook *h, char *buf, size_t n);
/* The valid names of the space, compactly ("blocks.{0..3}.{...}, ..."), into buf[n]. */
void rs_hook_valid_list(const rs_hook_space *s, char *buf, size_t n);
/* Every valid hook of the space in canonical order into out[cap]; returns how many there
 * are (may exceed cap: only cap are written). */
int rs_hook_enumerate(const rs_hook_space *s, rs_hook *out, int cap);
/* Activation columns of h in the space. */
int rs_hook_width(const rs_hook_space *s, const rs_hook *h);
/* The block index written in a decoder block name ("blocks.L.<site>"), -1 for any other
 * name (hook_embed, ln_final.*, vision.*, projector.*, not a hook). */
int rs_hook_block_index(const char *name);

/* Called with the activation [T, width] in place; may overwrite it (splice). */
typedef void (*hook_splice_fn)(void *ctx, float *x, int T, int width);

typedef struct {
    char name[96];      /* as given (hook_embed stays hook_embed) */
    rs_hook id;
    int width;          /* columns of the activation */
    int capture;        /* 1: the forward allocates `out` [T, width] and copies into it */
    float *out;         /* owned by the caller after the forward (free()) */
    hook_splice_fn splice;
    void *splice_ctx;
} hook_request;

/* A capture request for a hook of the space (see rs_hook_parse for the errors). */
int hook_request_parse(const rs_hook_space *s, const char *name, hook_request *r, rs_err *err);
/* Decoder hook names of a Gemma-2 config. */
int gemma2_hook_parse(const gemma2_config *c, const char *name, hook_request *r, rs_err *err);
/* The deepest block of `tower` the requests need: L-1 for blocks.L.hook_resid_pre (ready
 * before block L runs), n_layers for hooks after the blocks, else L. -2 when no request is
 * on that tower. */
int hook_depth(const hook_request *hooks, int n, rs_tower tower, int n_layers);
/* Fire every request on (tower, kind, layer): capture a copy of x [T, width] (allocating
 * out) and then apply its splice. */
int hook_fire(hook_request *hooks, int n, rs_tower tower, hook_kind kind, int layer, float *x, int T, rs_err *err);
/* 1 when a request on (tower, kind, layer) has a splice (it may change x), else 0: a forward
 * pass may fuse the kernels on either side of a hook point that nothing changes. */
int hook_splices(const hook_request *hooks, int n, rs_tower tower, hook_kind kind, int layer);
/* Free every captured output and zero the pointers. */
void hook_requests_free(hook_request *h, int n);

#endif
