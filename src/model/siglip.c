/* SigLIP vision tower, read top to bottom like docs/model-spec.md §3.2:
 * im2col patches · W_convᵀ + b → + position embedding → per layer [LN1 → q,k,v (+bias) →
 * softmax(q·kᵀ/√hd)·v per head → out_proj → residual → LN2 → fc1 → gelu_tanh → fc2 →
 * residual] → post-LN. All images of a call share one token matrix so the projections run
 * as single BLAS calls; attention runs per image and head. */
#include "reprshift/siglip.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/ops.h"
#include "model/weights.h"

/* ---- loading ---- */

int siglip_find_prefix(const st_set *st, char *prefix, size_t n, rs_err *err) {
    static const char *CANDIDATES[] = {"vision_tower.vision_model.", "model.vision_tower.vision_model.",
                                       "vision_tower.", "model.vision_tower."};
    char name[200];
    for (size_t i = 0; i < sizeof CANDIDATES / sizeof CANDIDATES[0]; i++) {
        snprintf(name, sizeof name, "%sembeddings.patch_embedding.weight", CANDIDATES[i]);
        if (st_get(st, name)) {
            snprintf(prefix, n, "%s", CANDIDATES[i]);
            return 0;
        }
    }
    return rs_errf(err, "%s: no vision tower found (looked for embeddings.patch_embedding.weight under "
                        "vision_tower.vision_model., model.vision_tower.vision_model., vision_tower., "
                        "model.vision_tower.)",
                   st->n_shards ? st->paths[0] : "weights");
}

/* Sizes a tensor shape can name (indices into the array siglip_dims fills). */
enum { S_D, S_F, S_C, S_P, S_N, S_NDIMS };

static void siglip_dims(const siglip_config *c, int64_t d[S_NDIMS]) {
    int G = c->image_size / c->patch_size;
    d[S_D] = c->hidden_size;
    d[S_F] = c->intermediate_size;
    d[S_C] = c->num_channels;
    d[S_P] = c->patch_size;
    d[S_N] = (int64_t)G * G;
}

/* Under PREFIX, before the layers. The conv weight [D, C, P, P] is used as [D, C·P·P]. */
static const rs_wspec SIGLIP_EMBED_WEIGHTS[] = {
    {"embeddings.patch_embedding.weight", offsetof(siglip_model, patch_w), RS_W_MATRIX, 4, {S_D, S_C, S_P, S_P}},
    {"embeddings.patch_embedding.bias", offsetof(siglip_model, patch_b), RS_W_F32, 1, {S_D}},
    {"embeddings.position_embedding.weight", offsetof(siglip_model, pos_emb), RS_W_F32, 2, {S_N, S_D}},
};
#define MAT(name, field, r, c) {name, offsetof(siglip_layer, field), RS_W_MATRIX, 2, {r, c}}
#define VEC(name, field, n) {name, offsetof(siglip_layer, field), RS_W_F32, 1, {n}}
/* Under PREFIX "encoder.layers.L.". */
static const rs_wspec SIGLIP_LAYER_WEIGHTS[] = {
    MAT("self_attn.q_proj.weight", q_proj, S_D, S_D),
    MAT("self_attn.k_proj.weight", k_proj, S_D, S_D),
    MAT("self_attn.v_proj.weight", v_proj, S_D, S_D),
    MAT("self_attn.out_proj.weight", out_proj, S_D, S_D),
    MAT("mlp.fc1.weight", fc1, S_F, S_D),
    MAT("mlp.fc2.weight", fc2, S_D, S_F),
    VEC("self_attn.q_proj.bias", q_bias, S_D),
    VEC("self_attn.k_proj.bias", k_bias, S_D),
    VEC("self_attn.v_proj.bias", v_bias, S_D),
    VEC("self_attn.out_proj.bias", out_bias, S_D),
    VEC("mlp.fc1.bias", fc1_bias, S_F),
    VEC("mlp.fc2.bias", fc2_bias, S_D),
    VEC("layer_norm1.weight", ln1_w, S_D),
    VEC("layer_norm1.bias", ln1_b, S_D),
    VEC("layer_norm2.weight", ln2_w, S_D),
    VEC("layer_norm2.bias", ln2_b, S_D),
};
#undef MAT
#undef VEC
/* Under PREFIX, after the layers. */
static const rs_wspec SIGLIP_FINAL_WEIGHTS[] = {
    {"post_layernorm.weight", offsetof(siglip_model, post_w), RS_W_F32, 1, {S_D}},
    {"post_layernorm.bias", offsetof(siglip_model, post_b), RS_W_F32, 1, {S_D}},
};

int siglip_from_weights(siglip_model **out, const siglip_config *cfg, st_set *st, const char *prefix, rs_err *err) {
    *out = NULL;
    if (strlen(prefix) >= sizeof((siglip_model *)0)->prefix) return rs_errf(err, "vision prefix \"%s\" too long", prefix);
    siglip_model *m = calloc(1, sizeof *m);
    if (!m) return rs_errk(err, RS_ENOMEM, "out of memory");
    m->cfg = *cfg;
    m->st = st;
    m->be = rs_backend_cpu();
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
    const siglip_config *c = &m->cfg;
    int P = c->patch_size, C = c->num_channels;
    m->grid = c->image_size / P;
    m->n_patches = m->grid * m->grid;
    m->patch_dim = C * P * P;
    int64_t dims[S_NDIMS];
    siglip_dims(c, dims);
    char name[256];
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto fail;
    }
    if (rs_weights_load(st, prefix, SIGLIP_EMBED_WEIGHTS, RS_W_COUNT(SIGLIP_EMBED_WEIGHTS), dims, m, &m->max_weight,
                        err))
        goto shape;
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(name, sizeof name, "%sencoder.layers.%d.", prefix, l);
        if (rs_weights_load(st, name, SIGLIP_LAYER_WEIGHTS, RS_W_COUNT(SIGLIP_LAYER_WEIGHTS), dims, &m->layers[l],
                            &m->max_weight, err))
            goto shape;
    }
    snprintf(name, sizeof name, "%sencoder.layers.%d.layer_norm1.weight", prefix, c->n_layers);
    if (st_get(st, name)) {
        rs_errf(err, "%s: checkpoint has more vision layers than vision_config.num_hidden_layers = %d (found \"%s\")",
                st->paths[0], c->n_layers, name);
        goto fail;
    }
    if (rs_weights_load(st, prefix, SIGLIP_FINAL_WEIGHTS, RS_W_COUNT(SIGLIP_FINAL_WEIGHTS), dims, m, NULL, err))
        goto shape;
    *out = m;
    return 0;
shape:
    rs_err_prefix(err, "vision tower (vision_config: hidden_size %d, %d layers, intermediate_size %d, image_size %d, "
                       "patch_size %d)", c->hidden_size, c->n_layers, c->intermediate_size, c->image_size, P);
fail:
    siglip_close(m);
    return -1;
}

/* The matrix fields of the tower: the patch embedding, then six per layer. */
static int matrix_slots(siglip_model *m, const st_tensor ***slot) {
    int n = 0;
    slot[n++] = &m->patch_w;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        siglip_layer *L = &m->layers[l];
        slot[n++] = &L->q_proj, slot[n++] = &L->k_proj, slot[n++] = &L->v_proj;
        slot[n++] = &L->out_proj, slot[n++] = &L->fc1, slot[n++] = &L->fc2;
    }
    return n;
}

static int needs_widening(const st_tensor *t) {
    return t->dtype != RS_DT_F32 || ((uintptr_t)t->data % sizeof(float)) != 0;
}

int siglip_keep_f32_weights(siglip_model *m, rs_err *err) {
    if (m->f32_views) return 0;
    int cap = 1 + 6 * m->cfg.n_layers;
    const st_tensor ***slot = malloc((size_t)cap * sizeof *slot);
    st_tensor *views = calloc((size_t)cap, sizeof *views);
    if (!slot || !views) goto oom;
    int n = matrix_slots(m, slot), nv = 0;
    /* every buffer first, so that running out of memory leaves the tower as it was */
    for (int i = 0; i < n; i++) {
        const st_tensor *t = *slot[i];
        if (!needs_widening(t)) continue;
        views[nv] = *t;
        views[nv].dtype = RS_DT_F32;
        views[nv].nbytes = (size_t)t->numel * sizeof(float);
        float *buf = malloc(views[nv].nbytes);
        if (!buf) {
            for (int k = 0; k < nv; k++) free((void *)views[k].data);
            goto oom;
        }
        op_weight_f32(t, buf);
        views[nv++].data = buf;
    }
    for (int i = 0, k = 0; i < n; i++)
        if (needs_widening(*slot[i])) *slot[i] = &views[k++];
    free(slot);
    m->f32_views = views;
    m->n_f32_views = nv;
    return 0;
oom:
    free(slot);
    free(views);
    return rs_errk(err, RS_ENOMEM, "out of memory for the f32 copy of the vision tower's weights");
}

void siglip_close(siglip_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_f32_views; i++) free((void *)m->f32_views[i].data);
    free(m->f32_views);
    if (m->layers)
        for (int l = 0; l < m->cfg.n_layers; l++)
            rs_weights_free(SIGLIP_LAYER_WEIGHTS, RS_W_COUNT(SIGLIP_LAYER_WEIGHTS), &m->layers[l]);
    rs_weights_free(SIGLIP_EMBED_WEIGHTS, RS_W_COUNT(SIGLIP_EMBED_WEIGHTS), m);
    rs_weights_free(SIGLIP_FINAL_WEIGHTS, RS_W_COUNT(SIGLIP_FINAL_WEIGHTS), m);
    free(m->layers);
    free(m);
}

/* ---- hooks ---- */

int siglip_hook_parse(const siglip_config *c, int projection_dim, const char *name, hook_request *r, rs_err *err) {
    rs_hook_space s = rs_hook_space_siglip(c, projection_dim);
    return hook_request_parse(&s, name, r, err);
}

int siglip_hooks_depth(const siglip_model *m, const hook_request *hooks, int n_hooks) {
    return hook_depth(hooks, n_hooks, RS_TOWER_VISION, m->cfg.n_layers);
}


/* ---- forward ---- */


/* Everything one forward pass writes, allocated and freed in one place. */
typedef struct {
    float *h;                  /* [T, D] residual stream */
    float *x;                  /* [T, max(C·P·P, D)]: im2col patches, then the normed input */
    float *q, *k, *v, *z, *a;  /* [T, D] */
    float *mlp;                /* [T, intermediate_size] */
    float *scores;             /* attention scores: omp_get_max_threads() blocks of N² */
    float *wscratch;           /* one weight matrix widened to f32 (max_weight floats; a bf16 backend: + T·max IN) */
    int64_t *img_off;          /* [n_images+1] row offsets of the images (attention) */
} siglip_workspace;

static void ws_free(siglip_workspace *w) {
    free(w->h); free(w->x); free(w->q); free(w->k); free(w->v); free(w->z);
    free(w->a); free(w->mlp); free(w->scores); free(w->wscratch); free(w->img_off);
    memset(w, 0, sizeof *w);
}

/* The buffers for n_images images; the per-layer ones only when layers run. −1 (all
 * freed) when out of memory. */
static int ws_alloc(siglip_workspace *w, const siglip_model *m, int n_images, int layers) {
    int D = m->cfg.hidden_size, N = m->n_patches, K = m->patch_dim;
    size_t T = (size_t)n_images * N, TD = T * D;
    memset(w, 0, sizeof *w);
    w->h = malloc(TD * sizeof(float));
    w->x = malloc(T * (K > D ? K : D) * sizeof(float));
    size_t in_max = (size_t)(K > D ? K : D);
    if ((size_t)m->cfg.intermediate_size > in_max) in_max = (size_t)m->cfg.intermediate_size;
    /* a bf16 backend also keeps the rounded input of each product beside the weight */
    w->wscratch = malloc(((size_t)m->max_weight + (m->be->bf16 ? T * in_max : 0)) * sizeof(float));
    if (!w->h || !w->x || !w->wscratch) goto oom;
    if (layers) {
        w->q = malloc(TD * sizeof(float));
        w->k = malloc(TD * sizeof(float));
        w->v = malloc(TD * sizeof(float));
        w->z = malloc(TD * sizeof(float));
        w->a = malloc(TD * sizeof(float));
        w->mlp = malloc(T * m->cfg.intermediate_size * sizeof(float));
        w->scores = malloc((size_t)omp_get_max_threads() * N * N * sizeof(float));
        w->img_off = malloc((size_t)(n_images + 1) * sizeof *w->img_off);
        if (!w->q || !w->k || !w->v || !w->z || !w->a || !w->mlp || !w->scores || !w->img_off) goto oom;
        for (int n = 0; n <= n_images; n++) w->img_off[n] = (int64_t)n * N;
    }
    return 0;
oom:
    ws_free(w);
    return -1;
}

int siglip_forward(const siglip_model *m, const float *pixel_values, int n_images, hook_request *hooks,
                   int n_hooks, float *out, rs_err *err) {
    const siglip_config *c = &m->cfg;
    if (n_images < 1) return rs_errf(err, "no images to run through the vision tower");
    int D = c->hidden_size, F = c->intermediate_size, N = m->n_patches, P = c->patch_size;
    int S = c->image_size, C = c->num_channels, K = m->patch_dim;
    if ((int64_t)n_images * N > (1 << 24)) return rs_errf(err, "too many images (%d) in one vision batch", n_images);
    int T = n_images * N;
    int depth = siglip_hooks_depth(m, hooks, n_hooks);
    if (out) depth = c->n_layers;
    if (depth == -2) return 0; /* nothing asked of the tower */
    int last_layer = depth >= c->n_layers ? c->n_layers - 1 : depth;
    size_t TD = (size_t)T * D;
    const rs_backend *be = m->be;
    siglip_workspace w;
    if (ws_alloc(&w, m, n_images, last_layer >= 0))
        return rs_errk(err, RS_ENOMEM, "out of memory for %d image(s) in the vision tower", n_images);
    /* bidirectional within each image; HF eager: (q·kᵀ)·scale, then softmax in fp32 */
    int hd = D / c->n_heads;
    op_attn_params attn = {.n_heads = c->n_heads, .n_kv_heads = c->n_heads, .head_dim = hd, .q_stride = D,
                           .kv_stride = D, .z_stride = D, .scale = (float)pow((double)hd, -0.5)};

    /* 1. Patch embedding: im2col rows ordered (channel, ky, kx) to match W_conv [D, C, P, P],
     * then the position embedding of each patch. */
    be->im2col(w.x, pixel_values, n_images, C, S, P);
    be->linear(w.h, w.x, m->patch_w, m->patch_b, T, K, D, w.wscratch);
    be->add_periodic(w.h, m->pos_emb, T, N, D);

    /* 2. Pre-LN encoder layers. A residual add and the LayerNorm after it run as one kernel
     * (add_layer_norm) unless a splice at a hook point between them may change the stream. */
    float eps = (float)c->layer_norm_eps;
    int normed = 0; /* w.x already holds the LayerNorm that comes next */
    for (int l = 0; l <= last_layer; l++) {
        const siglip_layer *L = &m->layers[l];
        if (hook_fire(hooks, n_hooks, RS_TOWER_VISION, HK_RESID_PRE, l, w.h, T, err)) goto fail;
        if (!normed) be->layer_norm(w.x, w.h, L->ln1_w, L->ln1_b, eps, T, D);
        be->linear(w.q, w.x, L->q_proj, L->q_bias, T, D, D, w.wscratch);
        be->linear(w.k, w.x, L->k_proj, L->k_bias, T, D, D, w.wscratch);
        be->linear(w.v, w.x, L->v_proj, L->v_bias, T, D, D, w.wscratch);
        be->attention(w.z, w.q, w.k, w.v, w.img_off, n_images, NULL, &attn, w.scores, (size_t)N * N);
        be->linear(w.a, w.z, L->out_proj, L->out_bias, T, D, D, w.wscratch);
        if (hook_fire(hooks, n_hooks, RS_TOWER_VISION, HK_ATTN_OUT, l, w.a, T, err)) goto fail;
        normed = !hook_splices(hooks, n_hooks, RS_TOWER_VISION, HK_RESID_MID, l);
        if (normed) be->add_layer_norm(w.h, w.a, w.x, L->ln2_w, L->ln2_b, eps, T, D);
        else be->add(w.h, w.a, TD);
        if (hook_fire(hooks, n_hooks, RS_TOWER_VISION, HK_RESID_MID, l, w.h, T, err)) goto fail;
        if (!normed) be->layer_norm(w.x, w.h, L->ln2_w, L->ln2_b, eps, T, D);
        be->linear_gelu(w.mlp, w.x, L->fc1, L->fc1_bias, T, D, F, w.wscratch);
        be->linear(w.a, w.mlp, L->fc2, L->fc2_bias, T, F, D, w.wscratch);
        if (hook_fire(hooks, n_hooks, RS_TOWER_VISION, HK_MLP_OUT, l, w.a, T, err)) goto fail;
        /* the next LayerNorm: the next block's ln1, or the post-LayerNorm after the last block */
        const float *nw = NULL, *nb = NULL;
        if (l < last_layer) nw = m->layers[l + 1].ln1_w, nb = m->layers[l + 1].ln1_b;
        else if (depth >= c->n_layers) nw = m->post_w, nb = m->post_b;
        normed = nw && !hook_splices(hooks, n_hooks, RS_TOWER_VISION, HK_RESID_POST, l) &&
                 !hook_splices(hooks, n_hooks, RS_TOWER_VISION, HK_RESID_PRE, l + 1);
        if (normed) be->add_layer_norm(w.h, w.a, w.x, nw, nb, eps, T, D);
        else be->add(w.h, w.a, TD);
        if (hook_fire(hooks, n_hooks, RS_TOWER_VISION, HK_RESID_POST, l, w.h, T, err)) goto fail;
    }
    /* resid_pre of the block after the last one run (a lone vision.blocks.L.hook_resid_pre
     * request stops the tower after block L-1) */
    if (hook_fire(hooks, n_hooks, RS_TOWER_VISION, HK_RESID_PRE, last_layer + 1, w.h, T, err)) goto fail;

    /* 3. Post-LayerNorm (PaliGemma's image features). */
    if (depth >= c->n_layers) {
        if (!normed) be->layer_norm(w.x, w.h, m->post_w, m->post_b, eps, T, D);
        if (hook_fire(hooks, n_hooks, RS_TOWER_VISION, HK_VISION_LN_POST, -1, w.x, T, err)) goto fail;
        if (out) memcpy(out, w.x, TD * sizeof(float));
    }
    ws_free(&w);
    return 0;
fail:
    ws_free(&w);
    return -1;
}
