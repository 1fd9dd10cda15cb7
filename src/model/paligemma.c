/* PaliGemma-2 forward pass (docs/model-spec.md §4.2–4.4, transformers 5.24 semantics as
 * recorded in the fixtures): SigLIP → projector → merge at <image> positions → Gemma-2
 * decoder with positions i+1 and the prefix-LM mask. */
#include "reprshift/paligemma.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/weights.h"

const char *pg_token_kind_name(int kind) {
    static const char *NAMES[] = {"text", "image", "bos", "prompt", "sep", "suffix", "special"};
    return kind >= 0 && kind <= PG_TOK_SPECIAL ? NAMES[kind] : "?";
}

/* The first candidate prefix under which `probe` exists. */
static int find_prefix(const st_set *st, const char *const *cands, int n, const char *probe, char *out, size_t size) {
    char name[256];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", cands[i], probe);
        if (st_get(st, name)) {
            snprintf(out, size, "%s", cands[i]);
            return 0;
        }
    }
    return -1;
}

/* The projector's weights, under the projector prefix (e.g. "multi_modal_projector."). */
enum { PJ_D, PJ_DV, PJ_NDIMS };
static const rs_wspec PROJ_WEIGHTS[] = {
    {"linear.weight", offsetof(paligemma_model, proj_w), RS_W_MATRIX, 2, {PJ_D, PJ_DV}},
    {"linear.bias", offsetof(paligemma_model, proj_b), RS_W_F32, 1, {PJ_D}},
};

int paligemma_open(paligemma_model **out, const char *dir, rs_err *err) {
    *out = NULL;
    paligemma_model *m = calloc(1, sizeof *m);
    if (!m) return rs_errk(err, RS_ENOMEM, "out of memory");
    m->be = rs_backend_cpu();
    if (paligemma_config_load(dir, &m->cfg, err)) goto fail;
    const paligemma_config *c = &m->cfg;
    if (c->projection_dim != c->text.hidden_size) {
        rs_errf(err, "%s: projection_dim %d must equal text_config.hidden_size %d (the projector feeds the decoder)",
                dir, c->projection_dim, c->text.hidden_size);
        goto fail;
    }
    if (st_open(&m->st, dir, err)) goto fail;
    static const char *TEXT[] = {"language_model.model.", "model.language_model.", "language_model."};
    static const char *PROJ[] = {"multi_modal_projector.", "model.multi_modal_projector."};
    if (find_prefix(m->st, TEXT, 3, "embed_tokens.weight", m->text_prefix, sizeof m->text_prefix)) {
        rs_errf(err, "%s: no PaliGemma decoder found (looked for embed_tokens.weight under language_model.model., "
                     "model.language_model., language_model.)", dir);
        goto fail;
    }
    if (find_prefix(m->st, PROJ, 2, "linear.weight", m->proj_prefix, sizeof m->proj_prefix)) {
        rs_errf(err, "%s: no multi_modal_projector.linear.weight in the checkpoint", dir);
        goto fail;
    }
    if (siglip_find_prefix(m->st, m->vision_prefix, sizeof m->vision_prefix, err)) goto fail;
    if (siglip_from_weights(&m->vision, &c->vision, m->st, m->vision_prefix, err)) goto fail;
    if (gemma2_from_weights(&m->text, &c->text, m->st, m->text_prefix, err)) {
        rs_err_prefix(err, "PaliGemma decoder (text_config)");
        goto fail;
    }
    int64_t dims[PJ_NDIMS] = {[PJ_D] = c->projection_dim, [PJ_DV] = c->vision.hidden_size};
    if (rs_weights_load(m->st, m->proj_prefix, PROJ_WEIGHTS, RS_W_COUNT(PROJ_WEIGHTS), dims, m, &m->proj_numel, err))
        goto proj_err;
    *out = m;
    return 0;
proj_err:
    rs_err_prefix(err, "projector (projection_dim %d, vision hidden_size %d)", c->projection_dim, c->vision.hidden_size);
fail:
    paligemma_close(m);
    return -1;
}

void paligemma_close(paligemma_model *m) {
    if (!m) return;
    siglip_close(m->vision);
    gemma2_close(m->text);
    rs_weights_free(PROJ_WEIGHTS, RS_W_COUNT(PROJ_WEIGHTS), m);
    st_close(m->st);
    free(m);
}

void paligemma_set_backend(paligemma_model *m, const rs_backend *be) {
    m->be = be;
    m->vision->be = be;
    m->text->be = be;
}

int paligemma_hook_parse(const paligemma_model *m, const char *name, hook_request *r, rs_err *err) {
    rs_hook_space s = rs_hook_space_paligemma(&m->cfg);
    return hook_request_parse(&s, name, r, err);
}

int paligemma_build_input(const paligemma_model *m, int n_images, const int32_t *prompt_ids, int n_prompt,
                          const int32_t *suffix_ids, int n_suffix, int32_t **ids, uint8_t **kinds, int64_t *len,
                          int *prefix_len, rs_err *err) {
    *ids = NULL;
    *kinds = NULL;
    int N = m->vision->n_patches;
    if (n_images < 0 || n_prompt < 1 || n_suffix < 0)
        return rs_errf(err, "a PaliGemma prompt needs at least the \"\\n\" separator token");
    int64_t ni = (int64_t)n_images * N, P = ni + 1 + n_prompt, T = P + n_suffix;
    if (T > (1 << 24)) return rs_errf(err, "input of %lld tokens is too long", (long long)T);
    for (int i = 0; i < n_suffix; i++)
        if (suffix_ids[i] < 0 || suffix_ids[i] >= m->cfg.text.vocab_size || suffix_ids[i] == m->cfg.image_token_index)
            return rs_errf(err, "suffix token %d (id %d) is not a text token of this model (vocabulary %d, <image> = %d)",
                           i + 1, suffix_ids[i], m->cfg.text.vocab_size, m->cfg.image_token_index);
    *ids = malloc((size_t)T * sizeof **ids);
    *kinds = malloc((size_t)T);
    if (!*ids || !*kinds) {
        free(*ids);
        free(*kinds);
        *ids = NULL;
        *kinds = NULL;
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    int64_t t = 0;
    for (; t < ni; t++) { (*ids)[t] = m->cfg.image_token_index; (*kinds)[t] = PG_TOK_IMAGE; }
    (*ids)[t] = m->cfg.text.bos_id;
    (*kinds)[t++] = PG_TOK_BOS;
    for (int i = 0; i < n_prompt; i++, t++) {
        (*ids)[t] = prompt_ids[i];
        (*kinds)[t] = i == n_prompt - 1 ? PG_TOK_SEP : PG_TOK_PROMPT;
    }
    const gemma2_config *tc = &m->cfg.text;
    for (int i = 0; i < n_suffix; i++, t++) {
        int32_t id = suffix_ids[i];
        (*ids)[t] = id;
        (*kinds)[t] = id == tc->eos_id || id == tc->bos_id || id == tc->pad_id ? PG_TOK_SPECIAL : PG_TOK_SUFFIX;
    }
    *len = T;
    *prefix_len = (int)P;
    return 0;
}

int paligemma_suffix_ids(const paligemma_model *m, const rs_tokenizer *tok, const char *caption, size_t len,
                         int32_t **ids, size_t *n, rs_err *err) {
    *ids = NULL;
    *n = 0;
    int32_t eos = m->cfg.text.eos_id;
    const char *piece = tok_piece(tok, eos);
    if (!piece || (tok_eos_id(tok) >= 0 && tok_eos_id(tok) != eos))
        return rs_errf(err, "the tokenizer's <eos> (id %d) is not the model's eos_token_id %d: cannot end a suffix",
                       (int)tok_eos_id(tok), (int)eos);
    size_t pl = strlen(piece);
    char *s = malloc(len + pl + 1);
    if (!s) return rs_errk(err, RS_ENOMEM, "out of memory");
    memcpy(s, caption, len);
    memcpy(s + len, piece, pl + 1);
    /* the processor's text_pair segment: caption + eos_token, no template (add_bos off) */
    int rc = tok_encode(tok, s, len + pl, 0, ids, n, err);
    free(s);
    if (rc) return -1;
    if (*n < 1 || (*ids)[*n - 1] != eos) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return rs_errf(err, "the tokenizer does not encode \"%s\" as the <eos> token (id %d)", piece, (int)eos);
    }
    return 0;
}

int paligemma_suffix_tokens(const int32_t *ids, const uint8_t *kinds, int64_t len, int64_t **pos, int32_t **sids,
                            int64_t *n, rs_err *err) {
    *pos = NULL;
    *sids = NULL;
    *n = 0;
    int64_t a = len, e = len;
    for (int64_t i = len - 1; i >= 0 && a == len; i--)
        if (kinds[i] == PG_TOK_SEP) a = i + 1;
    if (e > a && kinds[e - 1] == PG_TOK_SPECIAL) e--; /* the closing <eos> */
    int64_t cnt = e - a;
    if (cnt <= 0) return 0;
    *pos = malloc((size_t)cnt * sizeof **pos);
    *sids = malloc((size_t)cnt * sizeof **sids);
    if (!*pos || !*sids) {
        free(*pos);
        free(*sids);
        *pos = NULL;
        *sids = NULL;
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int64_t i = a; i < e; i++) {
        (*pos)[i - a] = i;
        (*sids)[i - a] = ids[i];
    }
    *n = cnt;
    return 0;
}

void paligemma_text_kinds(const paligemma_model *m, const int32_t *ids, int64_t len, uint8_t *kinds) {
    const gemma2_config *c = &m->cfg.text;
    for (int64_t i = 0; i < len; i++)
        kinds[i] = ids[i] == c->bos_id ? PG_TOK_BOS
                 : ids[i] == c->eos_id || ids[i] == c->pad_id ? PG_TOK_SPECIAL
                 : ids[i] == m->cfg.image_token_index ? PG_TOK_IMAGE : PG_TOK_TEXT;
}

/* Image tokens per sequence must be whole images, all inside the prefix, n_images in all. */
static int check_images(const paligemma_model *m, const paligemma_batch *b, rs_err *err) {
    int N = m->vision->n_patches, img = m->cfg.image_token_index;
    int64_t total = 0;
    if (b->n_seqs < 1) return rs_errf(err, "empty batch: no input sequences");
    if (b->offsets[0] != 0) return rs_errf(err, "batch offsets must start at 0");
    for (int s = 0; s < b->n_seqs; s++) {
        int64_t a = b->offsets[s], e = b->offsets[s + 1], cnt = 0, last = -1;
        if (e <= a) return rs_errf(err, "input %d has no tokens", s);
        int P = b->prefix_len ? b->prefix_len[s] : 0;
        if (P < 0 || P > e - a)
            return rs_errf(err, "input %d: prefix length %d outside [0, %lld]", s, P, (long long)(e - a));
        for (int64_t i = a; i < e; i++)
            if (b->ids[i] == img) { cnt++; last = i - a; }
        if (cnt % N)
            return rs_errf(err, "input %d has %lld <image> tokens, not a multiple of the %d tokens of one image",
                           s, (long long)cnt, N);
        if (cnt && last >= P)
            return rs_errf(err, "input %d: <image> token at position %lld lies outside the prefix (length %d)",
                           s, (long long)last, P);
        total += cnt;
    }
    if (total != (int64_t)b->n_images * N)
        return rs_errf(err, "the inputs hold %lld <image> tokens (%lld images of %d tokens) but %d image(s) were given",
                       (long long)total, (long long)(total / N), N, b->n_images);
    if (b->n_images > 0 && !b->pixel_values) return rs_errf(err, "no pixel values for %d image(s)", b->n_images);
    return 0;
}

static int needs_projector(const hook_request *hooks, int n) {
    for (int i = 0; i < n; i++)
        if (hooks[i].id.tower == RS_TOWER_PROJECTOR) return 1;
    return 0;
}

int paligemma_forward(const paligemma_model *m, const paligemma_batch *b, hook_request *hooks, int n_hooks,
                      float *final_hidden, rs_err *err) {
    const paligemma_config *c = &m->cfg;
    if (check_images(m, b, err)) return -1;
    int T = (int)b->offsets[b->n_seqs], D = c->text.hidden_size, Dv = c->vision.hidden_size;
    int N = m->vision->n_patches, nI = b->n_images;
    int n_dec = 0;
    for (int i = 0; i < n_hooks; i++) n_dec += hooks[i].id.tower == RS_TOWER_DECODER;
    int run_decoder = n_dec > 0 || final_hidden || b->cache;
    int run_proj = nI > 0 && (run_decoder || needs_projector(hooks, n_hooks));
    float *feats = NULL, *z = NULL, *embeds = NULL, *wscratch = NULL;
    uint8_t *mask = NULL;
    hook_request *dec = NULL;
    int rc = -1;

    /* 1. Vision tower (stops early when only shallow vision hooks are asked for). */
    if (nI > 0) {
        if (run_proj && !(feats = malloc((size_t)nI * N * Dv * sizeof(float)))) goto oom;
        if (siglip_forward(m->vision, b->pixel_values, nI, hooks, n_hooks, feats, err)) goto done;
    }
    /* 2. Projector: z = y·Wpᵀ + b (projector.hook_out, no 1/√D). */
    if (run_proj) {
        z = malloc((size_t)nI * N * D * sizeof(float));
        /* a bf16 backend also keeps the rounded input beside the weight */
        wscratch = malloc(((size_t)m->proj_numel + (m->be->bf16 ? (size_t)nI * N * Dv : 0)) * sizeof(float));
        if (!z || !wscratch) goto oom;
        m->be->linear(z, feats, m->proj_w, m->proj_b, nI * N, Dv, D, wscratch);
        if (hook_fire(hooks, n_hooks, RS_TOWER_PROJECTOR, HK_PROJECTOR_OUT, -1, z, nI * N, err)) goto done;
    }
    if (!run_decoder) { rc = 0; goto done; }

    /* 3. Merge: image rows enter the decoder as z itself. gemma2_forward multiplies every
     * row by float32(√D), so hand it z/√D (old HF's order of operations; ≤ 1 ulp from z). */
    if (nI > 0) {
        embeds = calloc((size_t)T * D, sizeof(float));
        mask = calloc((size_t)T, 1);
        if (!embeds || !mask) goto oom;
        const float normalizer = (float)sqrt((double)D);
        int64_t k = 0;
        for (int t = 0; t < T; t++) {
            if (b->ids[t] != c->image_token_index) continue;
            mask[t] = 1;
            const float *src = z + (size_t)k++ * D;
            float *dst = embeds + (size_t)t * D;
            for (int d = 0; d < D; d++) dst[d] = src[d] / normalizer;
        }
    }
    /* 4. Decoder over the decoder hooks only (their kinds overlap the vision ones). */
    if (n_dec && !(dec = malloc((size_t)n_dec * sizeof *dec))) goto oom;
    for (int i = 0, j = 0; i < n_hooks; i++)
        if (hooks[i].id.tower == RS_TOWER_DECODER) dec[j++] = hooks[i];
    gemma2_batch gb = {.n_seqs = b->n_seqs, .offsets = b->offsets, .ids = b->ids, .embeds = embeds,
                       .embeds_mask = mask, .prefix_len = b->prefix_len, .pos_offset = 1,
                       .cache = b->cache};
    rc = gemma2_forward(m->text, &gb, dec, n_dec, final_hidden, err);
    for (int i = 0, j = 0; i < n_hooks; i++)
        if (hooks[i].id.tower == RS_TOWER_DECODER) hooks[i] = dec[j++];
    goto done;
oom:
    rs_errk(err, RS_ENOMEM, "out of memory for a PaliGemma batch of %d tokens and %d image(s)", T, nI);
    rc = -1;
done:
    free(feats);
    free(z);
    free(wscratch);
    free(embeds);
    free(mask);
    free(dec);
    return rc;
}
