/* SigLIP vision tower, read top to bottom like docs/model-spec.md §3.2:
 * im2col patches · W_convᵀ + b → + position embedding → per layer [LN1 → q,k,v (+bias) →
 * softmax(q·kᵀ/√hd)·v per head → out_proj → residual → LN2 → fc1 → gelu_tanh → fc2 →
 * residual] → post-LN. All images of a call share one token matrix so the projections run
 * as single BLAS calls; attention runs per image and head. */
#include "reprshift/siglip.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/ops.h"

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

static int check_dtype(const st_set *st, const st_tensor *t, const char *name, rs_err *err) {
    if (t->dtype != RS_DT_F32 && t->dtype != RS_DT_BF16 && t->dtype != RS_DT_F16)
        return rs_errf(err, "%s: tensor \"%s\" has dtype %s; weights must be F32, BF16 or F16",
                       st->paths[t->shard], name, rs_dtype_name(t->dtype));
    return 0;
}

static int load_vec(st_set *st, const char *name, int64_t D, float **out, rs_err *err) {
    const st_tensor *t;
    if (st_expect(st, name, 1, &D, &t, err) || check_dtype(st, t, name, err)) return -1;
    *out = st_to_f32_new(t);
    return *out ? 0 : rs_errf(err, "out of memory");
}

static int load_mat(st_set *st, const char *name, int rows, int cols, const st_tensor **out, size_t *max_numel,
                    rs_err *err) {
    int64_t shape[2] = {rows, cols};
    if (st_expect(st, name, 2, shape, out, err)) return -1;
    if (check_dtype(st, *out, name, err)) return -1;
    if ((size_t)(*out)->numel > *max_numel) *max_numel = (size_t)(*out)->numel;
    return 0;
}

int siglip_from_weights(siglip_model **out, const siglip_config *cfg, st_set *st, const char *prefix, rs_err *err) {
    *out = NULL;
    if (strlen(prefix) >= sizeof((siglip_model *)0)->prefix) return rs_errf(err, "vision prefix \"%s\" too long", prefix);
    siglip_model *m = calloc(1, sizeof *m);
    if (!m) return rs_errf(err, "out of memory");
    m->cfg = *cfg;
    m->st = st;
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
    const siglip_config *c = &m->cfg;
    int D = c->hidden_size, F = c->intermediate_size, P = c->patch_size, C = c->num_channels;
    m->grid = c->image_size / P;
    m->n_patches = m->grid * m->grid;
    m->patch_dim = C * P * P;
    char name[256];
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) goto oom;

    snprintf(name, sizeof name, "%sembeddings.patch_embedding.weight", prefix);
    int64_t pshape[4] = {D, C, P, P};
    if (st_expect(st, name, 4, pshape, &m->patch_w, err) || check_dtype(st, m->patch_w, name, err)) goto shape;
    m->max_weight = (size_t)m->patch_w->numel;
    snprintf(name, sizeof name, "%sembeddings.patch_embedding.bias", prefix);
    if (load_vec(st, name, D, &m->patch_b, err)) goto shape;
    snprintf(name, sizeof name, "%sembeddings.position_embedding.weight", prefix);
    {
        const st_tensor *t;
        int64_t shape[2] = {m->n_patches, D};
        if (st_expect(st, name, 2, shape, &t, err) || check_dtype(st, t, name, err)) goto shape;
        if (!(m->pos_emb = st_to_f32_new(t))) goto oom;
    }
    for (int l = 0; l < c->n_layers; l++) {
        siglip_layer *L = &m->layers[l];
#define MAT(field, sub, r, cc)                                                                   \
    snprintf(name, sizeof name, "%sencoder.layers.%d.%s.weight", prefix, l, sub);                \
    if (load_mat(st, name, r, cc, &L->field, &m->max_weight, err)) goto shape;
#define VEC(field, sub, what, n)                                                                 \
    snprintf(name, sizeof name, "%sencoder.layers.%d.%s.%s", prefix, l, sub, what);              \
    if (load_vec(st, name, n, &L->field, err)) goto shape;
        MAT(q_proj, "self_attn.q_proj", D, D)
        MAT(k_proj, "self_attn.k_proj", D, D)
        MAT(v_proj, "self_attn.v_proj", D, D)
        MAT(out_proj, "self_attn.out_proj", D, D)
        MAT(fc1, "mlp.fc1", F, D)
        MAT(fc2, "mlp.fc2", D, F)
        VEC(q_bias, "self_attn.q_proj", "bias", D)
        VEC(k_bias, "self_attn.k_proj", "bias", D)
        VEC(v_bias, "self_attn.v_proj", "bias", D)
        VEC(out_bias, "self_attn.out_proj", "bias", D)
        VEC(fc1_bias, "mlp.fc1", "bias", F)
        VEC(fc2_bias, "mlp.fc2", "bias", D)
        VEC(ln1_w, "layer_norm1", "weight", D)
        VEC(ln1_b, "layer_norm1", "bias", D)
        VEC(ln2_w, "layer_norm2", "weight", D)
        VEC(ln2_b, "layer_norm2", "bias", D)
#undef MAT
#undef VEC
    }
    snprintf(name, sizeof name, "%sencoder.layers.%d.layer_norm1.weight", prefix, c->n_layers);
    if (st_get(st, name)) {
        rs_errf(err, "%s: checkpoint has more vision layers than vision_config.num_hidden_layers = %d (found \"%s\")",
                st->paths[0], c->n_layers, name);
        goto fail;
    }
    snprintf(name, sizeof name, "%spost_layernorm.weight", prefix);
    if (load_vec(st, name, D, &m->post_w, err)) goto shape;
    snprintf(name, sizeof name, "%spost_layernorm.bias", prefix);
    if (load_vec(st, name, D, &m->post_b, err)) goto shape;
    *out = m;
    return 0;
shape:
    rs_err_prefix(err, "vision tower (vision_config: hidden_size %d, %d layers, intermediate_size %d, image_size %d, "
                       "patch_size %d)", D, c->n_layers, F, c->image_size, P);
    goto fail;
oom:
    rs_errf(err, "out of memory");
fail:
    siglip_close(m);
    return -1;
}

void siglip_close(siglip_model *m) {
    if (!m) return;
    if (m->layers)
        for (int l = 0; l < m->cfg.n_layers; l++) {
            siglip_layer *L = &m->layers[l];
            free(L->q_bias); free(L->k_bias); free(L->v_bias); free(L->out_bias);
            free(L->fc1_bias); free(L->fc2_bias);
            free(L->ln1_w); free(L->ln1_b); free(L->ln2_w); free(L->ln2_b);
        }
    free(m->layers);
    free(m->patch_b);
    free(m->pos_emb);
    free(m->post_w);
    free(m->post_b);
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


typedef struct {
    float *h, *x, *q, *k, *v, *z, *a, *mlp, *scores, *wscratch;
    int64_t *img_off; /* [n_images+1] row offsets of the images (attention) */
} workspace;

static void ws_free(workspace *w) {
    free(w->h); free(w->x); free(w->q); free(w->k); free(w->v); free(w->z);
    free(w->a); free(w->mlp); free(w->scores); free(w->wscratch); free(w->img_off);
}

static void linear_w(const workspace *w, float *y, const float *x, const st_tensor *W, const float *b, int T,
                     int IN, int OUT) {
    op_linear(y, x, op_weight_f32(W, w->wscratch), b, T, IN, OUT);
}

int siglip_forward(const siglip_model *m, const float *pixel_values, int n_images, hook_request *hooks,
                   int n_hooks, float *out, rs_err *err) {
    const siglip_config *c = &m->cfg;
    if (n_images < 1) return rs_errf(err, "no images to run through the vision tower");
    int D = c->hidden_size, F = c->intermediate_size, N = m->n_patches, P = c->patch_size, G = m->grid;
    int S = c->image_size, C = c->num_channels, K = m->patch_dim;
    if ((int64_t)n_images * N > (1 << 24)) return rs_errf(err, "too many images (%d) in one vision batch", n_images);
    int T = n_images * N;
    int depth = siglip_hooks_depth(m, hooks, n_hooks);
    if (out) depth = c->n_layers;
    if (depth == -2) return 0; /* nothing asked of the tower */
    int last_layer = depth >= c->n_layers ? c->n_layers - 1 : depth;
    size_t TD = (size_t)T * D;
    workspace w = {0};
    w.h = malloc(TD * sizeof(float));
    w.x = malloc((size_t)T * (K > D ? K : D) * sizeof(float));
    w.wscratch = malloc(m->max_weight * sizeof(float));
    if (!w.h || !w.x || !w.wscratch) goto oom;
    if (last_layer >= 0) {
        w.q = malloc(TD * sizeof(float));
        w.k = malloc(TD * sizeof(float));
        w.v = malloc(TD * sizeof(float));
        w.z = malloc(TD * sizeof(float));
        w.a = malloc(TD * sizeof(float));
        w.mlp = malloc((size_t)T * F * sizeof(float));
        w.scores = malloc((size_t)omp_get_max_threads() * N * N * sizeof(float));
        w.img_off = malloc((size_t)(n_images + 1) * sizeof *w.img_off);
        if (!w.q || !w.k || !w.v || !w.z || !w.a || !w.mlp || !w.scores || !w.img_off) goto oom;
        for (int n = 0; n <= n_images; n++) w.img_off[n] = (int64_t)n * N;
    }
    /* bidirectional within each image; HF eager: (q·kᵀ)·scale, then softmax in fp32 */
    int hd = D / c->n_heads;
    op_attn_params attn = {.n_heads = c->n_heads, .n_kv_heads = c->n_heads, .head_dim = hd, .q_stride = D,
                           .kv_stride = D, .z_stride = D, .scale = (float)pow((double)hd, -0.5)};

    /* 1. Patch embedding: im2col rows ordered (channel, ky, kx) to match W_conv [D, C, P, P]. */
    for (int n = 0; n < n_images; n++) {
        const float *img = pixel_values + (size_t)n * C * S * S;
        for (int p = 0; p < N; p++) {
            int r = p / G, cc = p % G;
            float *row = w.x + ((size_t)n * N + p) * K;
            for (int ch = 0; ch < C; ch++)
                for (int ky = 0; ky < P; ky++)
                    memcpy(row + ((size_t)ch * P + ky) * P,
                           img + ((size_t)ch * S + (size_t)r * P + ky) * S + (size_t)cc * P, (size_t)P * sizeof(float));
        }
    }
    linear_w(&w, w.h, w.x, m->patch_w, m->patch_b, T, K, D);
#pragma omp parallel for schedule(static) if (T > 64)
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++) w.h[(size_t)t * D + d] += m->pos_emb[(size_t)(t % N) * D + d];

    /* 2. Pre-LN encoder layers. */
    float eps = (float)c->layer_norm_eps;
    for (int l = 0; l <= last_layer; l++) {
        const siglip_layer *L = &m->layers[l];
        if (hook_fire(hooks, n_hooks, 1, HK_RESID_PRE, l, w.h, T, err)) goto fail;
        op_layernorm(w.x, w.h, L->ln1_w, L->ln1_b, eps, T, D);
        linear_w(&w, w.q, w.x, L->q_proj, L->q_bias, T, D, D);
        linear_w(&w, w.k, w.x, L->k_proj, L->k_bias, T, D, D);
        linear_w(&w, w.v, w.x, L->v_proj, L->v_bias, T, D, D);
        op_attention(w.z, w.q, w.k, w.v, w.img_off, n_images, NULL, &attn, w.scores, (size_t)N * N);
        linear_w(&w, w.a, w.z, L->out_proj, L->out_bias, T, D, D);
        if (hook_fire(hooks, n_hooks, 1, HK_ATTN_OUT, l, w.a, T, err)) goto fail;
        op_add(w.h, w.a, TD);
        if (hook_fire(hooks, n_hooks, 1, HK_RESID_MID, l, w.h, T, err)) goto fail;
        op_layernorm(w.x, w.h, L->ln2_w, L->ln2_b, eps, T, D);
        linear_w(&w, w.mlp, w.x, L->fc1, L->fc1_bias, T, D, F);
        op_gelu_tanh(w.mlp, (size_t)T * F);
        linear_w(&w, w.a, w.mlp, L->fc2, L->fc2_bias, T, F, D);
        if (hook_fire(hooks, n_hooks, 1, HK_MLP_OUT, l, w.a, T, err)) goto fail;
        op_add(w.h, w.a, TD);
        if (hook_fire(hooks, n_hooks, 1, HK_RESID_POST, l, w.h, T, err)) goto fail;
    }
    if (last_layer < 0 && hook_fire(hooks, n_hooks, 1, HK_RESID_PRE, 0, w.h, T, err)) goto fail;

    /* 3. Post-LayerNorm (PaliGemma's image features). */
    if (depth >= c->n_layers) {
        op_layernorm(w.x, w.h, m->post_w, m->post_b, eps, T, D);
        if (hook_fire(hooks, n_hooks, 1, HK_VISION_LN_POST, -1, w.x, T, err)) goto fail;
        if (out) memcpy(out, w.x, TD * sizeof(float));
    }
    ws_free(&w);
    return 0;
oom:
    rs_errf(err, "out of memory for %d image(s) in the vision tower", n_images);
fail:
    ws_free(&w);
    return -1;
}
