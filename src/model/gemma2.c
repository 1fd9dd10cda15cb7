/* Gemma-2 forward pass, read top to bottom like docs/model-spec.md §1.3:
 * embed ×√D → per layer [RMSNorm → q,k,v → RoPE → softcapped masked attention → o_proj →
 * post-attn RMSNorm → residual → pre-ffw RMSNorm → GeGLU MLP → post-ffw RMSNorm →
 * residual] → final RMSNorm. All sequences of a batch share one token matrix so the
 * projections run as single BLAS calls; attention runs per sequence and head. */
#include "reprshift/gemma2.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/fileio.h"
#include "reprshift/ops.h"
#include "reprshift/ops_bf16.h"
#include "model/weights.h"

#include <omp.h>

/* ---- weights ---- */

/* Sizes a tensor shape can name (indices into the array gemma2_dims fills). */
enum { G_D, G_QD, G_KD, G_F, G_V, G_NDIMS };

static void gemma2_dims(const gemma2_config *c, int64_t d[G_NDIMS]) {
    d[G_D] = c->hidden_size;
    d[G_QD] = (int64_t)c->n_heads * c->head_dim;
    d[G_KD] = (int64_t)c->n_kv_heads * c->head_dim;
    d[G_F] = c->intermediate_size;
    d[G_V] = c->vocab_size;
}

#define MAT(name, field, r, c) {name, offsetof(gemma2_layer, field), RS_W_MATRIX, 2, {r, c}}
#define NORM(name, field) {name, offsetof(gemma2_layer, field), RS_W_F32, 1, {G_D}}
/* Under PREFIX "layers.L." (norms: offset weights w, gain 1 + w). */
static const rs_wspec GEMMA2_LAYER_WEIGHTS[] = {
    MAT("self_attn.q_proj.weight", q_proj, G_QD, G_D),
    MAT("self_attn.k_proj.weight", k_proj, G_KD, G_D),
    MAT("self_attn.v_proj.weight", v_proj, G_KD, G_D),
    MAT("self_attn.o_proj.weight", o_proj, G_D, G_QD),
    MAT("mlp.gate_proj.weight", gate_proj, G_F, G_D),
    MAT("mlp.up_proj.weight", up_proj, G_F, G_D),
    MAT("mlp.down_proj.weight", down_proj, G_D, G_F),
    NORM("input_layernorm.weight", input_layernorm),
    NORM("post_attention_layernorm.weight", post_attention_layernorm),
    NORM("pre_feedforward_layernorm.weight", pre_feedforward_layernorm),
    NORM("post_feedforward_layernorm.weight", post_feedforward_layernorm),
};
#undef MAT
#undef NORM
/* Under PREFIX, before the layers: the tied embedding, read a row at a time (and a 4096-row
 * block at a time by gemma2_logits), never widened whole. */
static const rs_wspec GEMMA2_EMBED_WEIGHTS[] = {
    {"embed_tokens.weight", offsetof(gemma2_model, embed_tokens), RS_W_ROWS, 2, {G_V, G_D}},
};
/* Under PREFIX, after the layers. */
static const rs_wspec GEMMA2_FINAL_WEIGHTS[] = {
    {"norm.weight", offsetof(gemma2_model, norm), RS_W_F32, 1, {G_D}},
};

int gemma2_from_weights(gemma2_model **out, const gemma2_config *cfg, st_set *st, const char *prefix, rs_err *err) {
    *out = NULL;
    gemma2_model *m = calloc(1, sizeof *m);
    if (!m) return rs_errk(err, RS_ENOMEM, "out of memory");
    m->cfg = *cfg;
    m->st = st;
    m->be = rs_backend_cpu();
    const gemma2_config *c = &m->cfg;
    int64_t dims[G_NDIMS];
    gemma2_dims(c, dims);
    char lp[256];
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->inv_freq = malloc((size_t)c->head_dim / 2 * sizeof(float));
    if (!m->layers || !m->inv_freq) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto fail;
    }
    op_rope_inv_freq(m->inv_freq, c->head_dim, c->rope_theta);
    if (rs_weights_load(st, prefix, GEMMA2_EMBED_WEIGHTS, RS_W_COUNT(GEMMA2_EMBED_WEIGHTS), dims, m, NULL, err))
        goto fail;
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(lp, sizeof lp, "%slayers.%d.", prefix, l);
        if (rs_weights_load(st, lp, GEMMA2_LAYER_WEIGHTS, RS_W_COUNT(GEMMA2_LAYER_WEIGHTS), dims, &m->layers[l],
                            &m->max_weight, err))
            goto fail;
    }
    if (rs_weights_load(st, prefix, GEMMA2_FINAL_WEIGHTS, RS_W_COUNT(GEMMA2_FINAL_WEIGHTS), dims, m, NULL, err))
        goto fail;
    *out = m;
    return 0;
fail:
    gemma2_close(m);
    return -1;
}

int gemma2_open(gemma2_model **out, const char *dir, rs_err *err) {
    *out = NULL;
    gemma2_config cfg;
    if (gemma2_config_load(dir, &cfg, err)) return -1;
    st_set *st;
    if (st_open(&st, dir, err)) return -1;
    if (gemma2_from_weights(out, &cfg, st, "model.", err)) {
        st_close(st);
        return -1;
    }
    (*out)->owns_st = 1;
    return 0;
}

void gemma2_close(gemma2_model *m) {
    if (!m) return;
    if (m->layers)
        for (int l = 0; l < m->cfg.n_layers; l++)
            rs_weights_free(GEMMA2_LAYER_WEIGHTS, RS_W_COUNT(GEMMA2_LAYER_WEIGHTS), &m->layers[l]);
    rs_weights_free(GEMMA2_FINAL_WEIGHTS, RS_W_COUNT(GEMMA2_FINAL_WEIGHTS), m);
    free(m->layers);
    free(m->inv_freq);
    if (m->owns_st) st_close(m->st);
    free(m);
}

/* ---- forward ---- */

int gemma2_hooks_depth(const gemma2_model *m, const hook_request *hooks, int n_hooks) {
    int depth = hook_depth(hooks, n_hooks, RS_TOWER_DECODER, m->cfg.n_layers);
    return depth < -1 ? -1 : depth;
}


/* Everything one forward pass writes, allocated and freed in one place. */
typedef struct {
    float *h, *x, *a;          /* [T, D]: residual stream, normed input, sublayer output */
    float *q, *z;              /* [T, n_heads·head_dim] */
    float *k, *v;              /* [T, n_kv_heads·head_dim] */
    float *gate, *up;          /* [T, intermediate_size] */
    float *scores;             /* attention scores: omp_get_max_threads() blocks of scores_per_thread */
    size_t scores_per_thread;  /* maxL·maxK (maxL: the longest sequence, maxK: its key history) */
    float *wscratch;           /* one weight matrix widened to f32 (max_weight floats) */
    int cached;                /* a KV cache is attached: products go through linear_decode */
} gemma2_workspace;

static void ws_free(gemma2_workspace *w) {
    free(w->h); free(w->x); free(w->q); free(w->k); free(w->v); free(w->z);
    free(w->a); free(w->gate); free(w->up); free(w->scores); free(w->wscratch);
    memset(w, 0, sizeof *w);
}

/* The buffers for T tokens (longest sequence maxL, longest key history maxK); the per-layer
 * ones only when layers run. −1 (all freed) when out of memory. */
static int ws_alloc(gemma2_workspace *w, const gemma2_model *m, int T, int maxL, int maxK, int layers) {
    const gemma2_config *c = &m->cfg;
    size_t TD = (size_t)T * c->hidden_size, TQ = (size_t)T * c->n_heads * c->head_dim;
    size_t TK = (size_t)T * c->n_kv_heads * c->head_dim, TF = (size_t)T * c->intermediate_size;
    memset(w, 0, sizeof *w);
    w->h = malloc(TD * sizeof(float));
    w->x = malloc(TD * sizeof(float));
    w->a = malloc(TD * sizeof(float));
    if (layers) {
        w->q = malloc(TQ * sizeof(float));
        w->k = malloc(TK * sizeof(float));
        w->v = malloc(TK * sizeof(float));
        w->z = malloc(TQ * sizeof(float));
        w->gate = malloc(TF * sizeof(float));
        w->up = malloc(TF * sizeof(float));
        w->scores_per_thread = (size_t)maxL * maxK;
        w->scores = malloc(w->scores_per_thread * omp_get_max_threads() * sizeof(float));
        /* a bf16 backend also keeps the rounded input of each product beside the weight */
        size_t wfl = m->max_weight ? m->max_weight : 1;
        if (m->be->bf16) {
            int maxin = c->hidden_size > c->intermediate_size ? c->hidden_size : c->intermediate_size;
            if (c->n_heads * c->head_dim > maxin) maxin = c->n_heads * c->head_dim;
            wfl += (size_t)T * maxin;
        }
        w->wscratch = malloc(wfl * sizeof(float));
        if (!w->q || !w->k || !w->v || !w->z || !w->gate || !w->up || !w->scores || !w->wscratch) goto oom;
    }
    if (!w->h || !w->x || !w->a) goto oom;
    return 0;
oom:
    ws_free(w);
    return -1;
}

/* y = x·Wᵀ through the backend: the prefill product, or with a KV cache attached the
 * decode product (a few rows against half-precision weights read in place). */
static void linear(const rs_backend *be, gemma2_workspace *w, float *y, const float *x, const st_tensor *W, int T,
                   int IN, int OUT) {
    if (w->cached) be->linear_decode(y, x, W, w->wscratch, T, IN, OUT);
    else be->linear(y, x, W, NULL, T, IN, OUT, w->wscratch);
}

static int check_batch(const gemma2_model *m, const gemma2_batch *b, rs_err *err) {
    if (b->n_seqs < 1) return rs_errf(err, "empty batch: no input sequences");
    if (b->offsets[0] != 0) return rs_errf(err, "batch offsets must start at 0");
    for (int s = 0; s < b->n_seqs; s++)
        if (b->offsets[s + 1] <= b->offsets[s]) return rs_errf(err, "input %d has no tokens", s);
    int64_t T = b->offsets[b->n_seqs];
    if (T > (1 << 24)) return rs_errf(err, "batch of %lld tokens is too large", (long long)T);
    for (int64_t i = 0; i < T; i++) {
        if (b->embeds_mask && b->embeds_mask[i]) continue;
        if (b->ids[i] < 0 || b->ids[i] >= m->cfg.vocab_size)
            return rs_errf(err, "token id %d at position %lld is outside the vocabulary (size %d)",
                           b->ids[i], (long long)i, m->cfg.vocab_size);
    }
    return 0;
}

/* A KV cache must match the model and the batch and have room for the new tokens. */
static int check_cache(const gemma2_model *m, const gemma2_batch *b, int first, rs_err *err) {
    const gemma2_kv_cache *kc = b->cache;
    if (first != 0) return rs_errk(err, RS_EINVAL, "a KV cache needs the forward pass from the embedding (block 0)");
    if (kc->n_seqs != b->n_seqs || kc->n_layers != m->cfg.n_layers || kc->kv_dim != m->cfg.n_kv_heads * m->cfg.head_dim)
        return rs_errk(err, RS_EINVAL,
                       "KV cache for %d sequence(s), %d layers, key width %d does not fit a batch of %d sequence(s) "
                       "on a model of %d layers, key width %d", kc->n_seqs, kc->n_layers, kc->kv_dim, b->n_seqs,
                       m->cfg.n_layers, m->cfg.n_kv_heads * m->cfg.head_dim);
    for (int s = 0; s < b->n_seqs; s++)
        if (kc->len[s] + (b->offsets[s + 1] - b->offsets[s]) > kc->max_len)
            return rs_errk(err, RS_EINVAL, "sequence %d: %d cached + %lld new tokens exceed the KV cache length %d", s,
                           kc->len[s], (long long)(b->offsets[s + 1] - b->offsets[s]), kc->max_len);
    return 0;
}

/* The forward pass from block `first` on; resid (if non-NULL) replaces the embedding. */
static int forward_impl(const gemma2_model *m, const gemma2_batch *b, int first, const float *resid,
                        hook_request *hooks, int n_hooks, float *final_hidden, rs_err *err) {
    const gemma2_config *c = &m->cfg;
    if (check_batch(m, b, err)) return -1;
    int T = (int)b->offsets[b->n_seqs];
    int D = c->hidden_size, F = c->intermediate_size, hd = c->head_dim;
    int QD = c->n_heads * hd, KD = c->n_kv_heads * hd;
    int depth = gemma2_hooks_depth(m, hooks, n_hooks);
    gemma2_kv_cache *cache = b->cache;
    if (cache && check_cache(m, b, first, err)) return -1;
    if (final_hidden || cache) depth = c->n_layers;
    int last_layer = depth >= c->n_layers ? c->n_layers - 1 : depth;
    int maxL = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        int L = (int)(b->offsets[s + 1] - b->offsets[s]);
        if (L > maxL) maxL = L;
    }
    /* with a cache: sequence s's keys are rows kv_start[s] … + kv_len[s] of each layer's cache */
    int maxK = maxL;
    int64_t *kv_start = NULL;
    int *kv_len = NULL;
    if (cache) {
        kv_start = malloc((size_t)b->n_seqs * sizeof *kv_start);
        kv_len = malloc((size_t)b->n_seqs * sizeof *kv_len);
        if (!kv_start || !kv_len) {
            free(kv_start); free(kv_len);
            return rs_errk(err, RS_ENOMEM, "out of memory for a batch of %d tokens", T);
        }
        for (int s = 0; s < b->n_seqs; s++) {
            kv_start[s] = (int64_t)s * cache->max_len;
            kv_len[s] = cache->len[s] + (int)(b->offsets[s + 1] - b->offsets[s]);
            if (kv_len[s] > maxK) maxK = kv_len[s];
        }
    }
    const rs_backend *be = m->be;
    gemma2_workspace w;
    size_t TD = (size_t)T * D;
    if (ws_alloc(&w, m, T, maxL, maxK, last_layer >= 0)) {
        free(kv_start); free(kv_len);
        return rs_errk(err, RS_ENOMEM, "out of memory for a batch of %d tokens", T);
    }
    w.cached = cache != NULL;

    /* 1. Embedding × √D (normalizer rounded to fp32 as HF does), or the given residual. */
    const float normalizer = (float)sqrt((double)D);
    if (resid) {
        memcpy(w.h, resid, TD * sizeof(float));
    } else {
        if (b->embeds_mask)
            for (int i = 0; i < T; i++)
                if (b->embeds_mask[i]) memcpy(w.h + (size_t)i * D, b->embeds + (size_t)i * D, (size_t)D * sizeof(float));
        be->embed(w.h, m->embed_tokens, b->ids, b->embeds_mask, T, D, normalizer);
    }

    /* 2. Decoder layers. */
    op_attn_params attn = {.n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = hd, .q_stride = QD,
                           .kv_stride = KD, .z_stride = QD, .scale = (float)pow(c->query_pre_attn_scalar, -0.5),
                           .softcap = (float)c->attn_softcap, .causal = 1};
    const float eps = (float)c->rms_norm_eps;
    for (int l = first; l <= last_layer; l++) {
        const gemma2_layer *L = &m->layers[l];
        if (hook_fire(hooks, n_hooks, RS_TOWER_DECODER, HK_RESID_PRE, l, w.h, T, err)) goto fail;
        be->rms_norm(w.x, w.h, L->input_layernorm, eps, T, D);
        linear(be, &w, w.q, w.x, L->q_proj, T, D, QD);
        linear(be, &w, w.k, w.x, L->k_proj, T, D, KD);
        linear(be, &w, w.v, w.x, L->v_proj, T, D, KD);
        attn.window = c->layer_sliding[l] ? c->sliding_window : 0;
        if (!cache) {
            be->rope(w.q, QD, c->n_heads, hd, b->offsets, b->n_seqs, b->pos_offset, m->inv_freq);
            be->rope(w.k, KD, c->n_kv_heads, hd, b->offsets, b->n_seqs, b->pos_offset, m->inv_freq);
            be->attention(w.z, w.q, w.k, w.v, b->offsets, b->n_seqs, b->prefix_len, &attn, w.scores,
                          w.scores_per_thread);
        } else { /* positions continue after the cached tokens; append this layer's keys/values and
                    attend over the whole history */
            for (int s = 0; s < b->n_seqs; s++) {
                int pos0 = b->pos_offset + cache->len[s];
                be->rope(w.q, QD, c->n_heads, hd, b->offsets + s, 1, pos0, m->inv_freq);
                be->rope(w.k, KD, c->n_kv_heads, hd, b->offsets + s, 1, pos0, m->inv_freq);
                size_t row = (size_t)kv_start[s] + (size_t)cache->len[s], n = (size_t)(b->offsets[s + 1] - b->offsets[s]);
                memcpy(cache->k[l] + row * KD, w.k + (size_t)b->offsets[s] * KD, n * KD * sizeof(float));
                memcpy(cache->v[l] + row * KD, w.v + (size_t)b->offsets[s] * KD, n * KD * sizeof(float));
            }
            be->attention_kv(w.z, w.q, b->offsets, cache->k[l], cache->v[l], kv_start, kv_len, b->n_seqs, b->prefix_len,
                             &attn, w.scores, w.scores_per_thread);
        }
        if (hook_fire(hooks, n_hooks, RS_TOWER_DECODER, HK_ATTN_Z, l, w.z, T, err)) goto fail;
        linear(be, &w, w.a, w.z, L->o_proj, T, QD, D);
        be->rms_norm(w.a, w.a, L->post_attention_layernorm, eps, T, D);
        if (hook_fire(hooks, n_hooks, RS_TOWER_DECODER, HK_ATTN_OUT, l, w.a, T, err)) goto fail;
        be->add(w.h, w.a, TD);
        if (hook_fire(hooks, n_hooks, RS_TOWER_DECODER, HK_RESID_MID, l, w.h, T, err)) goto fail;
        be->rms_norm(w.x, w.h, L->pre_feedforward_layernorm, eps, T, D);
        linear(be, &w, w.gate, w.x, L->gate_proj, T, D, F);
        linear(be, &w, w.up, w.x, L->up_proj, T, D, F);
        be->geglu(w.gate, w.up, (size_t)T * F);
        linear(be, &w, w.a, w.gate, L->down_proj, T, F, D);
        be->rms_norm(w.a, w.a, L->post_feedforward_layernorm, eps, T, D);
        if (hook_fire(hooks, n_hooks, RS_TOWER_DECODER, HK_MLP_OUT, l, w.a, T, err)) goto fail;
        be->add(w.h, w.a, TD);
        if (hook_fire(hooks, n_hooks, RS_TOWER_DECODER, HK_RESID_POST, l, w.h, T, err)) goto fail;
    }
    if (cache)
        for (int s = 0; s < b->n_seqs; s++) cache->len[s] = kv_len[s];
    /* resid_pre of the block after the last one run (a lone blocks.L.hook_resid_pre request
     * stops the pass after block L-1; layer 0 when last_layer = -1). */
    if (last_layer + 1 >= first &&
        hook_fire(hooks, n_hooks, RS_TOWER_DECODER, HK_RESID_PRE, last_layer + 1, w.h, T, err)) goto fail;

    /* 3. Final norm. */
    if (depth >= c->n_layers) {
        be->rms_norm(w.x, w.h, NULL, eps, T, D);
        if (hook_fire(hooks, n_hooks, RS_TOWER_DECODER, HK_LN_FINAL_NORMALIZED, -1, w.x, T, err)) goto fail;
        be->rms_norm(w.x, w.h, m->norm, eps, T, D);
        if (hook_fire(hooks, n_hooks, RS_TOWER_DECODER, HK_LN_FINAL_OUT, -1, w.x, T, err)) goto fail;
        if (final_hidden) memcpy(final_hidden, w.x, TD * sizeof(float));
    }
    ws_free(&w);
    free(kv_start); free(kv_len);
    return 0;
fail:
    ws_free(&w);
    free(kv_start); free(kv_len);
    return -1;
}

int gemma2_forward(const gemma2_model *m, const gemma2_batch *b, hook_request *hooks, int n_hooks,
                   float *final_hidden, rs_err *err) {
    return forward_impl(m, b, 0, NULL, hooks, n_hooks, final_hidden, err);
}

int gemma2_forward_from(const gemma2_model *m, const gemma2_batch *b, int layer, const float *resid,
                        hook_request *hooks, int n_hooks, float *final_hidden, rs_err *err) {
    if (layer < 0 || layer > m->cfg.n_layers || !resid)
        return rs_errf(err, "forward from block %d: need a residual and 0 <= block <= %d", layer, m->cfg.n_layers);
    return forward_impl(m, b, layer, resid, hooks, n_hooks, final_hidden, err);
}

int gemma2_logits(const gemma2_model *m, const float *h, int T, float *logits, rs_err *err) {
    const gemma2_config *c = &m->cfg;
    int V = c->vocab_size, D = c->hidden_size;
    const st_tensor *E = m->embed_tokens;
    /* Convert the tied embedding in row blocks so bf16 weights never need a full f32 copy. */
    const int BLK = 4096;
    float *buf = NULL;
    int bf16 = m->be->bf16; /* a bf16 run uses the embedding rounded to bf16 */
    if ((E->dtype != RS_DT_F32 || bf16) && !(buf = malloc((size_t)BLK * D * sizeof(float))))
        return rs_errk(err, RS_ENOMEM, "out of memory for the LM head (%d x %d block of the embedding as f32)", BLK, D);
    for (int v0 = 0; v0 < V; v0 += BLK) {
        int nv = V - v0 < BLK ? V - v0 : BLK;
        const float *Eb;
        if (!buf) Eb = (const float *)E->data + (size_t)v0 * D;
        else {
            st_tensor r = *E;
            r.numel = (int64_t)nv * D;
            r.data = (const char *)E->data + (size_t)v0 * D * rs_dtype_size(E->dtype);
            st_to_f32(&r, buf);
            if (bf16 && E->dtype != RS_DT_BF16) op_bf16_round(buf, (size_t)nv * D);
            Eb = buf;
        }
        m->be->gemm_nt(logits + v0, V, h, Eb, T, D, nv);
    }
    free(buf);
    if (c->final_softcap > 0) m->be->softcap(logits, (size_t)T * V, (float)c->final_softcap);
    return 0;
}

/* CE of nr gathered prediction rows: logits, then log-sum-exp in double per row. */
static int ce_rows(const gemma2_model *m, const float *hb, const int *tgt, int nr, float *logits, double *row_ce,
                   rs_err *err) {
    int V = m->cfg.vocab_size;
    if (gemma2_logits(m, hb, nr, logits, err)) return -1;
#pragma omp parallel for schedule(static) if (nr > 1)
    for (int k = 0; k < nr; k++) {
        const float *lr = logits + (size_t)k * V;
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++) if (lr[v] > mx) mx = lr[v];
        for (int v = 0; v < V; v++) z += exp((double)lr[v] - mx);
        row_ce[k] = (mx + log(z)) - lr[tgt[k]];
    }
    return 0;
}

int gemma2_next_token_ce(const gemma2_model *m, const gemma2_batch *b, const float *final_hidden,
                         double *ce, rs_err *err) {
    int V = m->cfg.vocab_size, D = m->cfg.hidden_size;
    /* Prediction rows (every row but the last of each sequence) are gathered across
     * sequences into blocks of ROWS: each gemma2_logits call widens the whole tied
     * embedding (256k x 2304 for Gemma-2 2B), so one call per short caption would spend
     * nearly all its time converting weights. */
    enum { ROWS = 128 };
    float *logits = malloc((size_t)ROWS * V * sizeof(float)), *hb = malloc((size_t)ROWS * D * sizeof(float));
    if (!logits || !hb) {
        free(logits); free(hb);
        return rs_errk(err, RS_ENOMEM, "out of memory for logits");
    }
    int tgt[ROWS], seq[ROWS], nr = 0;
    double row_ce[ROWS];
    for (int s = 0; s < b->n_seqs; s++) ce[s] = b->offsets[s + 1] - b->offsets[s] < 2 ? NAN : 0.0;
    for (int s = 0; s < b->n_seqs; s++)
        for (int64_t r = b->offsets[s]; r + 1 < b->offsets[s + 1]; r++) {
            memcpy(hb + (size_t)nr * D, final_hidden + (size_t)r * D, (size_t)D * sizeof(float));
            tgt[nr] = b->ids[r + 1];
            seq[nr++] = s;
            if (nr < ROWS) continue;
            if (ce_rows(m, hb, tgt, nr, logits, row_ce, err)) goto fail;
            for (int k = 0; k < nr; k++) ce[seq[k]] += row_ce[k];
            nr = 0;
        }
    if (nr) {
        if (ce_rows(m, hb, tgt, nr, logits, row_ce, err)) goto fail;
        for (int k = 0; k < nr; k++) ce[seq[k]] += row_ce[k];
    }
    for (int s = 0; s < b->n_seqs; s++)
        if (!isnan(ce[s])) ce[s] /= (double)(b->offsets[s + 1] - b->offsets[s] - 1);
    free(logits); free(hb);
    return 0;
fail:
    free(logits); free(hb);
    return -1;
}
