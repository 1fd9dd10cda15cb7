/* Gemma-2 forward pass, read top to bottom like docs/model-spec.md §1.3:
 * embed ×√D → per layer [RMSNorm → q,k,v → RoPE → softcapped masked attention → o_proj →
 * post-attn RMSNorm → residual → pre-ffw RMSNorm → GeGLU MLP → post-ffw RMSNorm →
 * residual] → final RMSNorm. All sequences of a batch share one token matrix so the
 * projections run as single BLAS calls; attention runs per sequence and head. */
#include "reprshift/gemma2.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/fileio.h"
#include "reprshift/ops.h"

#include <omp.h>

/* ---- loading ---- */

static int load_norm(st_set *st, const char *name, int D, float **out, rs_err *err) {
    const st_tensor *t;
    int64_t shape[1] = {D};
    if (st_expect(st, name, 1, shape, &t, err)) return -1;
    if (t->dtype != RS_DT_F32 && t->dtype != RS_DT_BF16 && t->dtype != RS_DT_F16)
        return rs_errf(err, "%s: tensor \"%s\" has dtype %s; weights must be F32, BF16 or F16",
                       st->paths[t->shard], name, rs_dtype_name(t->dtype));
    *out = st_to_f32_new(t);
    return *out ? 0 : rs_errf(err, "out of memory");
}

static int load_mat(st_set *st, const char *name, int rows, int cols, const st_tensor **out,
                    size_t *max_numel, rs_err *err) {
    int64_t shape[2] = {rows, cols};
    if (st_expect(st, name, 2, shape, out, err)) return -1;
    const st_tensor *t = *out;
    if (t->dtype != RS_DT_F32 && t->dtype != RS_DT_BF16 && t->dtype != RS_DT_F16)
        return rs_errf(err, "%s: tensor \"%s\" has dtype %s; weights must be F32, BF16 or F16",
                       st->paths[t->shard], name, rs_dtype_name(t->dtype));
    if ((size_t)t->numel > *max_numel) *max_numel = (size_t)t->numel;
    return 0;
}

int gemma2_from_weights(gemma2_model **out, const gemma2_config *cfg, st_set *st, const char *prefix, rs_err *err) {
    *out = NULL;
    gemma2_model *m = calloc(1, sizeof *m);
    if (!m) return rs_errf(err, "out of memory");
    m->cfg = *cfg;
    m->st = st;
    const gemma2_config *c = &m->cfg;
    int D = c->hidden_size, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    char name[256];
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->inv_freq = malloc((size_t)c->head_dim / 2 * sizeof(float));
    if (!m->layers || !m->inv_freq) goto oom;
    op_rope_inv_freq(m->inv_freq, c->head_dim, c->rope_theta);
    snprintf(name, sizeof name, "%sembed_tokens.weight", prefix);
    if (load_mat(st, name, c->vocab_size, D, &m->embed_tokens, &m->max_weight, err)) goto fail;
    m->max_weight = 0; /* the embedding is read a row at a time, never converted whole */
    for (int l = 0; l < c->n_layers; l++) {
        gemma2_layer *L = &m->layers[l];
#define MAT(field, sub, r, cc)                                                            \
    snprintf(name, sizeof name, "%slayers.%d.%s.weight", prefix, l, sub);                 \
    if (load_mat(st, name, r, cc, &L->field, &m->max_weight, err)) goto fail;
#define NORM(field)                                                                       \
    snprintf(name, sizeof name, "%slayers.%d." #field ".weight", prefix, l);              \
    if (load_norm(st, name, D, &L->field, err)) goto fail;
        MAT(q_proj, "self_attn.q_proj", QD, D)
        MAT(k_proj, "self_attn.k_proj", KD, D)
        MAT(v_proj, "self_attn.v_proj", KD, D)
        MAT(o_proj, "self_attn.o_proj", D, QD)
        MAT(gate_proj, "mlp.gate_proj", c->intermediate_size, D)
        MAT(up_proj, "mlp.up_proj", c->intermediate_size, D)
        MAT(down_proj, "mlp.down_proj", D, c->intermediate_size)
        NORM(input_layernorm)
        NORM(post_attention_layernorm)
        NORM(pre_feedforward_layernorm)
        NORM(post_feedforward_layernorm)
#undef MAT
#undef NORM
    }
    snprintf(name, sizeof name, "%snorm.weight", prefix);
    if (load_norm(st, name, D, &m->norm, err)) goto fail;
    *out = m;
    return 0;
oom:
    rs_errf(err, "out of memory");
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
        for (int l = 0; l < m->cfg.n_layers; l++) {
            free(m->layers[l].input_layernorm);
            free(m->layers[l].post_attention_layernorm);
            free(m->layers[l].pre_feedforward_layernorm);
            free(m->layers[l].post_feedforward_layernorm);
        }
    free(m->layers);
    free(m->norm);
    free(m->inv_freq);
    if (m->owns_st) st_close(m->st);
    free(m);
}

/* ---- forward ---- */

int gemma2_hooks_depth(const gemma2_model *m, const hook_request *hooks, int n_hooks) {
    int depth = -1;
    for (int i = 0; i < n_hooks; i++) {
        int d;
        switch (hooks[i].kind) {
        case HK_RESID_PRE: d = hooks[i].layer - 1; break; /* ready before layer L runs */
        case HK_LN_FINAL_NORMALIZED:
        case HK_LN_FINAL_OUT: d = m->cfg.n_layers; break;
        default: d = hooks[i].layer; break;
        }
        if (d > depth) depth = d;
    }
    return depth;
}


typedef struct {
    float *h, *x, *q, *k, *v, *z, *a, *gate, *up, *scores, *wscratch;
    int cached; /* a KV cache is attached: decode steps read half-precision weights row by row */
} workspace;

static void ws_free(workspace *w) {
    free(w->h); free(w->x); free(w->q); free(w->k); free(w->v); free(w->z);
    free(w->a); free(w->gate); free(w->up); free(w->scores); free(w->wscratch);
}

static void linear_w(const workspace *w, float *y, const float *x, const st_tensor *W, int T, int IN, int OUT) {
    if (w->cached) op_linear_st(y, x, W, w->wscratch, T, IN, OUT);
    else op_linear(y, x, op_weight_f32(W, w->wscratch), NULL, T, IN, OUT);
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
    if (first != 0) return rs_errf(err, "a KV cache needs the forward pass from the embedding (block 0)");
    if (kc->n_seqs != b->n_seqs || kc->n_layers != m->cfg.n_layers || kc->kv_dim != m->cfg.n_kv_heads * m->cfg.head_dim)
        return rs_errf(err, "KV cache for %d sequence(s), %d layers, key width %d does not fit a batch of %d sequence(s) "
                       "on a model of %d layers, key width %d", kc->n_seqs, kc->n_layers, kc->kv_dim, b->n_seqs,
                       m->cfg.n_layers, m->cfg.n_kv_heads * m->cfg.head_dim);
    for (int s = 0; s < b->n_seqs; s++)
        if (kc->len[s] + (b->offsets[s + 1] - b->offsets[s]) > kc->max_len)
            return rs_errf(err, "sequence %d: %d cached + %lld new tokens exceed the KV cache length %d", s,
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
    int maxK = maxL; /* longest key history */
    int64_t *kv_start = NULL;
    int *kv_len = NULL;
    if (cache) {
        kv_start = malloc((size_t)b->n_seqs * sizeof *kv_start);
        kv_len = malloc((size_t)b->n_seqs * sizeof *kv_len);
        if (!kv_start || !kv_len) {
            free(kv_start); free(kv_len);
            return rs_errf(err, "out of memory for a batch of %d tokens", T);
        }
        for (int s = 0; s < b->n_seqs; s++) {
            kv_start[s] = (int64_t)s * cache->max_len;
            kv_len[s] = cache->len[s] + (int)(b->offsets[s + 1] - b->offsets[s]);
            if (kv_len[s] > maxK) maxK = kv_len[s];
        }
    }
    workspace w = {.cached = cache != NULL};
    size_t TD = (size_t)T * D;
    w.h = malloc(TD * sizeof(float));
    w.x = malloc(TD * sizeof(float));
    w.a = malloc(TD * sizeof(float));
    if (last_layer >= 0) {
        w.q = malloc((size_t)T * QD * sizeof(float));
        w.k = malloc((size_t)T * KD * sizeof(float));
        w.v = malloc((size_t)T * KD * sizeof(float));
        w.z = malloc((size_t)T * QD * sizeof(float));
        w.gate = malloc((size_t)T * F * sizeof(float));
        w.up = malloc((size_t)T * F * sizeof(float));
        w.scores = malloc((size_t)maxL * maxK * omp_get_max_threads() * sizeof(float));
        w.wscratch = malloc((m->max_weight ? m->max_weight : 1) * sizeof(float));
        if (!w.q || !w.k || !w.v || !w.z || !w.gate || !w.up || !w.scores || !w.wscratch) goto oom;
    }
    if (!w.h || !w.x || !w.a) goto oom;

    /* 1. Embedding × √D (normalizer rounded to fp32 as HF does), or the given residual. */
    const float normalizer = (float)sqrt((double)D);
    if (resid) {
        memcpy(w.h, resid, TD * sizeof(float));
    } else {
#pragma omp parallel for schedule(static) if (T > 16)
        for (int i = 0; i < T; i++) {
            float *row = w.h + (size_t)i * D;
            if (b->embeds_mask && b->embeds_mask[i]) memcpy(row, b->embeds + (size_t)i * D, (size_t)D * sizeof(float));
            else {
                st_tensor r = *m->embed_tokens;
                r.numel = D;
                r.data = (const char *)r.data + (size_t)b->ids[i] * D * rs_dtype_size(r.dtype);
                st_to_f32(&r, row);
            }
            for (int d = 0; d < D; d++) row[d] *= normalizer;
        }
    }

    /* 2. Decoder layers. */
    op_attn_params attn = {.n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = hd, .q_stride = QD,
                           .kv_stride = KD, .z_stride = QD, .scale = (float)pow(c->query_pre_attn_scalar, -0.5),
                           .softcap = (float)c->attn_softcap, .causal = 1};
    for (int l = first; l <= last_layer; l++) {
        const gemma2_layer *L = &m->layers[l];
        if (hook_fire(hooks, n_hooks, 0, HK_RESID_PRE, l, w.h, T, err)) goto fail;
        op_rmsnorm_gemma(w.x, w.h, L->input_layernorm, (float)c->rms_norm_eps, T, D);
        linear_w(&w, w.q, w.x, L->q_proj, T, D, QD);
        linear_w(&w, w.k, w.x, L->k_proj, T, D, KD);
        linear_w(&w, w.v, w.x, L->v_proj, T, D, KD);
#pragma omp parallel for schedule(dynamic, 1) if (b->n_seqs > 1)
        for (int s = 0; s < b->n_seqs; s++)
            for (int64_t i = b->offsets[s]; i < b->offsets[s + 1]; i++) {
                int pos = (int)(i - b->offsets[s]) + b->pos_offset + (cache ? cache->len[s] : 0);
                for (int h = 0; h < c->n_heads; h++) op_rope(w.q + (size_t)i * QD + (size_t)h * hd, hd, m->inv_freq, pos);
                for (int h = 0; h < c->n_kv_heads; h++) op_rope(w.k + (size_t)i * KD + (size_t)h * hd, hd, m->inv_freq, pos);
            }
        attn.window = c->layer_sliding[l] ? c->sliding_window : 0;
        if (cache) { /* append this layer's keys/values, attend over the whole history */
            for (int s = 0; s < b->n_seqs; s++) {
                size_t row = (size_t)kv_start[s] + (size_t)cache->len[s], n = (size_t)(b->offsets[s + 1] - b->offsets[s]);
                memcpy(cache->k[l] + row * KD, w.k + (size_t)b->offsets[s] * KD, n * KD * sizeof(float));
                memcpy(cache->v[l] + row * KD, w.v + (size_t)b->offsets[s] * KD, n * KD * sizeof(float));
            }
            op_attention_kv(w.z, w.q, b->offsets, cache->k[l], cache->v[l], kv_start, kv_len, b->n_seqs,
                            b->prefix_len, &attn, w.scores, (size_t)maxL * maxK);
        } else
            op_attention(w.z, w.q, w.k, w.v, b->offsets, b->n_seqs, b->prefix_len, &attn, w.scores, (size_t)maxL * maxL);
        if (hook_fire(hooks, n_hooks, 0, HK_ATTN_Z, l, w.z, T, err)) goto fail;
        linear_w(&w, w.a, w.z, L->o_proj, T, QD, D);
        op_rmsnorm_gemma(w.a, w.a, L->post_attention_layernorm, (float)c->rms_norm_eps, T, D);
        if (hook_fire(hooks, n_hooks, 0, HK_ATTN_OUT, l, w.a, T, err)) goto fail;
        op_add(w.h, w.a, TD);
        if (hook_fire(hooks, n_hooks, 0, HK_RESID_MID, l, w.h, T, err)) goto fail;
        op_rmsnorm_gemma(w.x, w.h, L->pre_feedforward_layernorm, (float)c->rms_norm_eps, T, D);
        linear_w(&w, w.gate, w.x, L->gate_proj, T, D, F);
        linear_w(&w, w.up, w.x, L->up_proj, T, D, F);
        op_geglu(w.gate, w.up, (size_t)T * F);
        linear_w(&w, w.a, w.gate, L->down_proj, T, F, D);
        op_rmsnorm_gemma(w.a, w.a, L->post_feedforward_layernorm, (float)c->rms_norm_eps, T, D);
        if (hook_fire(hooks, n_hooks, 0, HK_MLP_OUT, l, w.a, T, err)) goto fail;
        op_add(w.h, w.a, TD);
        if (hook_fire(hooks, n_hooks, 0, HK_RESID_POST, l, w.h, T, err)) goto fail;
    }
    if (cache)
        for (int s = 0; s < b->n_seqs; s++) cache->len[s] = kv_len[s];
    /* resid_pre of a layer past the last one run (only layer 0 when last_layer = -1). */
    if (last_layer < 0 && hook_fire(hooks, n_hooks, 0, HK_RESID_PRE, 0, w.h, T, err)) goto fail;

    /* 3. Final norm. */
    if (depth >= c->n_layers) {
        op_rmsnorm_gemma(w.x, w.h, NULL, (float)c->rms_norm_eps, T, D);
        if (hook_fire(hooks, n_hooks, 0, HK_LN_FINAL_NORMALIZED, -1, w.x, T, err)) goto fail;
        op_rmsnorm_gemma(w.x, w.h, m->norm, (float)c->rms_norm_eps, T, D);
        if (hook_fire(hooks, n_hooks, 0, HK_LN_FINAL_OUT, -1, w.x, T, err)) goto fail;
        if (final_hidden) memcpy(final_hidden, w.x, TD * sizeof(float));
    }
    ws_free(&w);
    free(kv_start); free(kv_len);
    return 0;
oom:
    rs_errf(err, "out of memory for a batch of %d tokens", T);
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
    if (E->dtype != RS_DT_F32 && !(buf = malloc((size_t)BLK * D * sizeof(float))))
        return rs_errf(err, "out of memory for the LM head (%d x %d block of the embedding as f32)", BLK, D);
    for (int v0 = 0; v0 < V; v0 += BLK) {
        int nv = V - v0 < BLK ? V - v0 : BLK;
        const float *Eb;
        if (!buf) Eb = (const float *)E->data + (size_t)v0 * D;
        else {
            st_tensor r = *E;
            r.numel = (int64_t)nv * D;
            r.data = (const char *)E->data + (size_t)v0 * D * rs_dtype_size(E->dtype);
            st_to_f32(&r, buf);
            Eb = buf;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, nv, D, 1.0f, h, D, Eb, D, 0.0f, logits + v0, V);
    }
    free(buf);
    if (c->final_softcap > 0) {
        float cap = (float)c->final_softcap;
        for (size_t i = 0; i < (size_t)T * V; i++) logits[i] = tanhf(logits[i] / cap) * cap;
    }
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
        return rs_errf(err, "out of memory for logits");
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
