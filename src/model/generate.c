/* Generation with a KV cache (reprshift/generate.h, docs/generate.md): one prefill of the
 * prompt through gemma2_forward / paligemma_forward with the cache attached, then one
 * forward of T = 1 per new token over the cache; greedy or seeded sampling. */
#include "reprshift/generate.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "reprshift/ops.h"

/* ---- KV cache ---- */

int gemma2_kv_cache_new(gemma2_kv_cache **out, const gemma2_config *c, int n_seqs, int max_len, rs_err *err) {
    *out = NULL;
    if (n_seqs < 1 || max_len < 1) return rs_errf(err, "KV cache needs at least one sequence and one token");
    size_t kv_dim = (size_t)c->n_kv_heads * c->head_dim, rows = (size_t)n_seqs * max_len;
    if (!kv_dim || rows > ((size_t)1 << 40) / kv_dim)
        return rs_errf(err, "KV cache of %d sequence(s) x %d tokens is too large", n_seqs, max_len);
    gemma2_kv_cache *kc = calloc(1, sizeof *kc);
    if (!kc) return rs_errk(err, RS_ENOMEM, "out of memory for the KV cache");
    kc->n_layers = c->n_layers;
    kc->n_seqs = n_seqs;
    kc->max_len = max_len;
    kc->kv_dim = (int)kv_dim;
    kc->k = calloc((size_t)c->n_layers, sizeof *kc->k);
    kc->v = calloc((size_t)c->n_layers, sizeof *kc->v);
    kc->len = calloc((size_t)n_seqs, sizeof *kc->len);
    if (!kc->k || !kc->v || !kc->len) goto oom;
    for (int l = 0; l < c->n_layers; l++) {
        kc->k[l] = malloc(rows * kv_dim * sizeof(float));
        kc->v[l] = malloc(rows * kv_dim * sizeof(float));
        if (!kc->k[l] || !kc->v[l]) goto oom;
    }
    *out = kc;
    return 0;
oom:
    gemma2_kv_cache_free(kc);
    return rs_errk(err, RS_ENOMEM, "out of memory for the KV cache (%d layers x %d sequence(s) x %d tokens x %zu values x 2)",
                   c->n_layers, n_seqs, max_len, kv_dim);
}

void gemma2_kv_cache_free(gemma2_kv_cache *kc) {
    if (!kc) return;
    for (int l = 0; l < kc->n_layers; l++) {
        if (kc->k) free(kc->k[l]);
        if (kc->v) free(kc->v[l]);
    }
    free(kc->k);
    free(kc->v);
    free(kc->len);
    free(kc);
}

void gemma2_kv_cache_reset(gemma2_kv_cache *kc) {
    for (int s = 0; s < kc->n_seqs; s++) kc->len[s] = 0;
}

/* ---- parameters, stop ids ---- */

void gen_output_free(gen_output *o) {
    if (!o) return;
    free(o->ids);
    free(o->logits);
    free(o->iv_scale);
    memset(o, 0, sizeof *o);
}

int gen_params_check(const gen_params *p, rs_err *err) {
    if (p->max_new_tokens <= 0) return rs_errf(err, "max new tokens must be > 0 (got %d)", p->max_new_tokens);
    if (!isfinite(p->temperature) || p->temperature < 0)
        return rs_errf(err, "temperature must be a finite number >= 0 (got %g)", p->temperature);
    if (p->top_k < 0) return rs_errk(err, RS_EINVAL, "top-k must be >= 0 (got %d; 0 = off)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1)) return rs_errk(err, RS_EINVAL, "top-p must be in (0, 1] (got %g)", p->top_p);
    if (p->n_eos < 0 || (p->n_eos > 0 && !p->eos_ids)) return rs_errf(err, "bad stop-id list");
    if (p->n_iv < 0 || (p->n_iv > 0 && !p->ivs)) return rs_errk(err, RS_EINVAL, "bad intervention list");
    for (int i = 0; i < p->n_iv; i++) {
        const rs_intervention *iv = &p->ivs[i];
        const char *spec = iv->spec ? iv->spec : rs_intervention_kind_name(iv->kind);
        if (iv->kind == IV_PATCH)
            return rs_errk(err, RS_EINVAL,
                           "intervention '%s': patch cannot be used with generation (its source activations exist "
                           "only for the source input's own tokens, not for generated ones); use add, project or sae",
                           spec);
        if (iv->kind == IV_ADD && !isfinite(iv->alpha))
            return rs_errk(err, RS_EINVAL, "intervention '%s': alpha must be a finite number (got %g)", spec, iv->alpha);
        if (iv->req.id.tower != RS_TOWER_DECODER)
            return rs_errk(err, RS_EINVAL, "intervention '%s': generation steers decoder hooks only", spec);
        if (((iv->kind == IV_ADD || iv->kind == IV_PROJECT) && !iv->dir) || (iv->kind == IV_SAE && !iv->sae))
            return rs_errk(err, RS_EINVAL, "intervention '%s' is not resolved (rs_intervention_resolve)", spec);
    }
    return 0;
}

int gen_eos_ids(const char *model_dir, const gemma2_config *c, int32_t **ids, int *n, rs_err *err) {
    *ids = NULL;
    *n = 0;
    char *path = rs_path_join(model_dir, "generation_config.json");
    if (!path) return rs_errk(err, RS_ENOMEM, "out of memory");
    if (!rs_path_exists(path)) {
        free(path);
        if (c->eos_id < 0) return 0;
        if (!(*ids = malloc(sizeof **ids))) return rs_errk(err, RS_ENOMEM, "out of memory");
        (*ids)[0] = c->eos_id;
        *n = 1;
        return 0;
    }
    cJSON *j = NULL;
    int rc = -1;
    if (rs_json_load(path, 1 << 20, &j, err)) goto done;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
    if (!e || cJSON_IsNull(e)) { /* absent: the model config's */
        if (c->eos_id >= 0) {
            if (!(*ids = malloc(sizeof **ids))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
            (*ids)[(*n)++] = c->eos_id;
        }
        rc = 0;
        goto done;
    }
    int cnt = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 1;
    if (cnt > 1024) { rs_errf(err, "%s: \"eos_token_id\" lists %d ids (at most 1024)", path, cnt); goto done; }
    if (!(*ids = malloc((size_t)(cnt ? cnt : 1) * sizeof **ids))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int i = 0; i < cnt; i++) {
        const cJSON *x = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, i) : e;
        if (!rs_json_is_int(x, 0, c->vocab_size - 1)) {
            rs_errf(err, "%s: \"eos_token_id\" must be a token id in [0, %d) or a list of them", path, c->vocab_size);
            free(*ids);
            *ids = NULL;
            *n = 0;
            goto done;
        }
        (*ids)[(*n)++] = (int32_t)x->valuedouble;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    free(path);
    return rc;
}

/* ---- the generator and the pick ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void gen_rng_seed(gen_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t gen_rng_next(gen_rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double gen_rng_uniform(gen_rng *r) { return (double)(gen_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

typedef struct {
    double x; /* logit / temperature */
    int32_t id;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *p = a, *q = b;
    if (p->x != q->x) return p->x > q->x ? -1 : 1;
    return (p->id > q->id) - (p->id < q->id);
}

size_t gen_pick_work_size(int V) { return (size_t)(V > 0 ? V : 1) * sizeof(cand); }

int gen_pick(const float *logits, int V, const gen_params *p, gen_rng *r, void *work) {
    if (p->temperature <= 0) { /* greedy: the first maximum, as torch.argmax */
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        return best;
    }
    cand *c = work;
    double T = p->temperature;
    for (int v = 0; v < V; v++) {
        c[v].x = (double)logits[v] / T;
        c[v].id = v;
    }
    int n = V;
    int filter = (p->top_k > 0 && p->top_k < V) || p->top_p < 1;
    if (filter) { /* most likely first, the lower id first on a tie */
        qsort(c, (size_t)V, sizeof *c, cand_cmp);
        if (p->top_k > 0 && p->top_k < V) n = p->top_k;
    }
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < n; i++)
        if (c[i].x > mx) mx = c[i].x;
    for (int i = 0; i < n; i++) z += exp(c[i].x - mx);
    if (p->top_p < 1) { /* keep a token while the more likely ones hold less than top_p */
        double before = 0;
        int m = 0;
        while (m < n && before < p->top_p) before += exp(c[m++].x - mx) / z;
        n = m > 0 ? m : 1;
        z = 0;
        for (int i = 0; i < n; i++) z += exp(c[i].x - mx);
    }
    double u = gen_rng_uniform(r) * z, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += exp(c[i].x - mx);
        if (u < acc) return c[i].id;
    }
    return c[n - 1].id; /* u within rounding of z */
}

/* ---- the decode loop (shared by both models) ---- */

/* Pick from logits[V], record it, and say whether the run is over. */
static int step_pick(const float *logits, int V, const gen_params *p, gen_rng *r, void *work, gen_output *out) {
    int32_t id = (int32_t)gen_pick(logits, V, p, r, work);
    if (p->keep_logits) memcpy(out->logits + (size_t)out->n * V, logits, (size_t)V * sizeof(float));
    out->ids[out->n++] = id;
    for (int i = 0; i < p->n_eos; i++)
        if (id == p->eos_ids[i]) {
            out->hit_eos = 1;
            return 1;
        }
    return out->n >= p->max_new_tokens;
}

typedef struct {
    float *h, *logits;
    void *work;
} gen_bufs;

static int bufs_new(gen_bufs *b, const gemma2_config *c, int n_rows, const gen_params *p, gen_output *out,
                    rs_err *err) {
    memset(out, 0, sizeof *out);
    int V = c->vocab_size;
    b->h = malloc((size_t)(n_rows > 1 ? n_rows : 1) * c->hidden_size * sizeof(float));
    b->logits = malloc((size_t)V * sizeof(float));
    b->work = malloc(gen_pick_work_size(V));
    out->ids = malloc((size_t)p->max_new_tokens * sizeof *out->ids);
    if (p->keep_logits) out->logits = malloc((size_t)p->max_new_tokens * V * sizeof(float));
    if (!b->h || !b->logits || !b->work || !out->ids || (p->keep_logits && !out->logits))
        return rs_errk(err, RS_ENOMEM, "out of memory for generation (vocabulary %d, %d new tokens)", V, p->max_new_tokens);
    return 0;
}

static void bufs_free(gen_bufs *b) {
    free(b->h);
    free(b->logits);
    free(b->work);
}

/* Logits of one row: gemma2_logits, except that a half-precision tied embedding is read row
 * by row at 2 bytes a value (the backend's decode product) instead of being widened in blocks
 * for sgemm. */
static int step_logits(const gemma2_model *m, const float *h, float *logits, rs_err *err) {
    const gemma2_config *c = &m->cfg;
    if (m->embed_tokens->dtype == RS_DT_F32) return gemma2_logits(m, h, 1, logits, err);
    m->be->linear_decode(logits, h, m->embed_tokens, NULL, 1, c->hidden_size, c->vocab_size);
    if (c->final_softcap > 0) m->be->softcap(logits, (size_t)c->vocab_size, (float)c->final_softcap); /* as gemma2_logits */
    return 0;
}

/* ---- steering: interventions on every forward pass ---- */

typedef struct {
    int n;
    hook_request *caps;    /* [nc] clean-prefill captures of the relative adds' hooks */
    int nc;
    hook_request *pre;     /* [n] prefill splices */
    hook_request *dec;     /* [n_dec] decode-step splices (the specs without pos=) */
    int n_dec;
    rs_iv_splice *ctx;     /* [n] */
    uint8_t *rows;         /* [n, P] prompt rows each spec edits in the prefill */
} gen_steer;

static void steer_free(gen_steer *st) {
    if (st->caps) hook_requests_free(st->caps, st->nc);
    free(st->caps);
    free(st->pre);
    free(st->dec);
    free(st->ctx);
    free(st->rows);
    memset(st, 0, sizeof *st);
}

/* Rows of each spec in a prompt of P rows and the capture requests of the relative adds
 * (to be filled by the caller's clean prefill, unless st->nc is 0). */
static int steer_new(gen_steer *st, const gen_params *p, int P, rs_err *err) {
    memset(st, 0, sizeof *st);
    int n = st->n = p->n_iv;
    if (!n) return 0;
    st->caps = calloc((size_t)n, sizeof *st->caps);
    st->pre = calloc((size_t)n, sizeof *st->pre);
    st->dec = calloc((size_t)n, sizeof *st->dec);
    st->ctx = calloc((size_t)n, sizeof *st->ctx);
    st->rows = calloc((size_t)n * P, 1);
    if (!st->caps || !st->pre || !st->dec || !st->ctx || !st->rows)
        return rs_errk(err, RS_ENOMEM, "out of memory for the interventions");
    for (int i = 0; i < n; i++) {
        const rs_intervention *iv = &p->ivs[i];
        uint8_t *r = st->rows + (size_t)i * P;
        if (!iv->pos) memset(r, 1, (size_t)P);
        for (int k = 0; iv->pos && k < iv->n_pos; k++) {
            int q = iv->pos[k] < 0 ? P + iv->pos[k] : iv->pos[k];
            if (q < 0 || q >= P)
                return rs_errk(err, RS_EINVAL, "intervention '%s': position %d is outside the prompt (%d tokens; pos= "
                                               "names prompt rows in generation)", iv->spec, iv->pos[k], P);
            r[q] = 1;
        }
        if (iv->kind == IV_ADD && !iv->alpha_abs) {
            hook_request *c = &st->caps[st->nc++];
            *c = iv->req;
            c->capture = 1;
            c->out = NULL;
            c->splice = NULL;
            c->splice_ctx = NULL;
        }
    }
    return 0;
}

/* After the clean prefill (when st->nc): the scales, then the splice requests. */
static int steer_arm(gen_steer *st, const gen_params *p, int P, gen_output *out, rs_err *err) {
    if (!st->n) return 0;
    if (!(out->iv_scale = calloc((size_t)st->n, sizeof *out->iv_scale)))
        return rs_errk(err, RS_ENOMEM, "out of memory for the interventions");
    for (int i = 0, k = 0; i < st->n; i++) {
        rs_intervention *iv = &p->ivs[i];
        if (iv->kind != IV_ADD) continue;
        double s = 1;
        if (!iv->alpha_abs) {
            const hook_request *c = &st->caps[k++];
            if (!c->out) return rs_errf(err, "intervention '%s': %s was not reached by the prefill", iv->spec, c->name);
            s = rs_mean_row_norm(c->out, P, iv->req.width);
        }
        out->iv_scale[i] = s;
    }
    hook_requests_free(st->caps, st->nc);
    st->nc = 0;
    for (int i = 0; i < st->n; i++) {
        rs_intervention *iv = &p->ivs[i];
        st->ctx[i] = (rs_iv_splice){.iv = iv, .rows = st->rows + (size_t)i * P, .scale = iv->alpha * out->iv_scale[i],
                                    .err = err};
        hook_request *r = &st->pre[i];
        *r = iv->req;
        r->capture = 0;
        r->out = NULL;
        r->splice = rs_iv_splice_fn;
        r->splice_ctx = &st->ctx[i];
        if (!iv->pos) st->dec[st->n_dec++] = *r;
    }
    return 0;
}

/* After a steered forward pass: an edit that failed (its message is in err). */
static int steer_failed(const gen_steer *st, const gen_params *p, rs_err *err) {
    for (int i = 0; i < st->n; i++)
        if (st->ctx[i].failed) {
            rs_err_prefix(err, "intervention '%s'", p->ivs[i].spec);
            return -1;
        }
    return 0;
}

/* After the prefill (last hidden row at h): pick, then one cached forward per new token. */
static int decode_loop(const gemma2_model *m, gemma2_kv_cache *kc, const int *prefix_len, int pos_offset,
                       const float *h_last, const gen_params *p, gen_steer *st, gen_bufs *b, gen_output *out,
                       rs_err *err) {
    int V = m->cfg.vocab_size;
    gen_rng rng;
    gen_rng_seed(&rng, p->seed);
    if (step_logits(m, h_last, b->logits, err)) return -1;
    for (int i = 0; i < st->n; i++) st->ctx[i].rows = NULL; /* decode steps: the one new row (specs without pos=) */
    int64_t off[2] = {0, 1};
    while (!step_pick(b->logits, V, p, &rng, b->work, out)) {
        gemma2_batch gb = {.n_seqs = 1, .offsets = off, .ids = &out->ids[out->n - 1], .prefix_len = prefix_len,
                           .pos_offset = pos_offset, .cache = kc};
        if (gemma2_forward(m, &gb, st->dec, st->n_dec, b->h, err) || steer_failed(st, p, err)) return -1;
        if (step_logits(m, b->h, b->logits, err)) return -1;
    }
    return 0;
}

int gen_gemma2(const gemma2_model *m, const int32_t *prompt, int n_prompt, const gen_params *p, gen_output *out,
               rs_err *err) {
    memset(out, 0, sizeof *out);
    if (gen_params_check(p, err)) return -1;
    if (n_prompt < 1) return rs_errf(err, "empty prompt: generation needs at least one token");
    if (n_prompt > (1 << 24) - p->max_new_tokens) return rs_errf(err, "prompt of %d tokens is too long", n_prompt);
    gemma2_kv_cache *kc = NULL;
    gen_bufs b = {0};
    gen_steer st = {0};
    int rc = -1;
    if (gemma2_kv_cache_new(&kc, &m->cfg, 1, n_prompt + p->max_new_tokens, err)) return -1;
    if (bufs_new(&b, &m->cfg, n_prompt, p, out, err)) goto done;
    int64_t off[2] = {0, n_prompt};
    if (steer_new(&st, p, n_prompt, err)) goto done;
    if (st.nc) { /* the clean prefill (no cache) for the relative adds' s */
        gemma2_batch cb = {.n_seqs = 1, .offsets = off, .ids = prompt};
        if (gemma2_forward(m, &cb, st.caps, st.nc, b.h, err)) goto done;
    }
    if (steer_arm(&st, p, n_prompt, out, err)) goto done;
    gemma2_batch gb = {.n_seqs = 1, .offsets = off, .ids = prompt, .cache = kc};
    if (gemma2_forward(m, &gb, st.pre, st.n, b.h, err) || steer_failed(&st, p, err)) goto done;
    rc = decode_loop(m, kc, NULL, 0, b.h + (size_t)(n_prompt - 1) * m->cfg.hidden_size, p, &st, &b, out, err);
done:
    steer_free(&st);
    bufs_free(&b);
    gemma2_kv_cache_free(kc);
    if (rc) gen_output_free(out);
    return rc;
}

int gen_paligemma(const paligemma_model *m, const float *pixel_values, const int32_t *prompt_ids, int n_prompt,
                  const gen_params *p, gen_output *out, rs_err *err) {
    memset(out, 0, sizeof *out);
    if (gen_params_check(p, err)) return -1;
    int32_t *ids = NULL;
    uint8_t *kinds = NULL;
    int64_t len = 0;
    int P = 0, n_img = pixel_values ? 1 : 0, rc = -1;
    gemma2_kv_cache *kc = NULL;
    gen_bufs b = {0};
    gen_steer st = {0};
    for (int i = 0; i < n_prompt; i++)
        if (prompt_ids[i] < 0 || prompt_ids[i] >= m->cfg.text.vocab_size || prompt_ids[i] == m->cfg.image_token_index)
            return rs_errf(err, "prompt token id %d is not a text token of this model (vocabulary %d, <image> = %d)",
                           prompt_ids[i], m->cfg.text.vocab_size, m->cfg.image_token_index);
    if (paligemma_build_input(m, n_img, prompt_ids, n_prompt, NULL, 0, &ids, &kinds, &len, &P, err)) return -1;
    if (len > (1 << 24) - p->max_new_tokens) {
        rs_errf(err, "input of %lld tokens is too long", (long long)len);
        goto done;
    }
    if (gemma2_kv_cache_new(&kc, &m->cfg.text, 1, (int)len + p->max_new_tokens, err)) goto done;
    if (bufs_new(&b, &m->cfg.text, (int)len, p, out, err)) goto done;
    int64_t off[2] = {0, len};
    if (steer_new(&st, p, (int)len, err)) goto done;
    if (st.nc) { /* the clean prefill (no cache) for the relative adds' s */
        paligemma_batch cb = {.n_seqs = 1, .offsets = off, .ids = ids, .prefix_len = &P, .n_images = n_img,
                              .pixel_values = pixel_values};
        if (paligemma_forward(m, &cb, st.caps, st.nc, b.h, err)) goto done;
    }
    if (steer_arm(&st, p, (int)len, out, err)) goto done;
    paligemma_batch pb = {.n_seqs = 1, .offsets = off, .ids = ids, .prefix_len = &P, .n_images = n_img,
                          .pixel_values = pixel_values, .cache = kc};
    if (paligemma_forward(m, &pb, st.pre, st.n, b.h, err) || steer_failed(&st, p, err)) goto done;
    rc = decode_loop(m->text, kc, &P, 1, b.h + (size_t)(len - 1) * m->cfg.text.hidden_size, p, &st, &b, out, err);
done:
    steer_free(&st);
    bufs_free(&b);
    gemma2_kv_cache_free(kc);
    free(ids);
    free(kinds);
    if (rc) gen_output_free(out);
    return rc;
}
