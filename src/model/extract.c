/* Batched extraction over many inputs. Inputs are packed greedily into batches of at most
 * batch_tokens tokens (an input longer than that runs alone), so memory stays bounded
 * while the big matmuls still see many rows. */
#include "reprshift/extract.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/image.h"
#include "reprshift/tokenizer.h"

void rs_inputs_free(rs_inputs *in) {
    for (int i = 0; i < in->n; i++) {
        free(in->ids[i]);
        if (in->texts) free(in->texts[i]);
    }
    free(in->ids);
    free(in->lens);
    free(in->texts);
    memset(in, 0, sizeof *in);
}

int rs_inputs_add(rs_inputs *in, const int32_t *ids, int64_t len, const char *text, rs_err *err) {
    int32_t **ni = realloc(in->ids, (size_t)(in->n + 1) * sizeof *ni);
    if (ni) in->ids = ni;
    int64_t *nl = realloc(in->lens, (size_t)(in->n + 1) * sizeof *nl);
    if (nl) in->lens = nl;
    char **nt = realloc(in->texts, (size_t)(in->n + 1) * sizeof *nt);
    if (nt) in->texts = nt;
    if (!ni || !nl || !nt) return rs_errk(err, RS_ENOMEM, "out of memory");
    in->ids[in->n] = malloc((size_t)(len ? len : 1) * sizeof(int32_t));
    in->texts[in->n] = text ? strdup(text) : NULL;
    if (!in->ids[in->n] || (text && !in->texts[in->n])) return rs_errk(err, RS_ENOMEM, "out of memory");
    memcpy(in->ids[in->n], ids, (size_t)len * sizeof(int32_t));
    in->lens[in->n] = len;
    in->n++;
    return 0;
}

int rs_parse_ids(const char *s, int32_t **ids, int64_t *len, rs_err *err) {
    *ids = NULL;
    *len = 0;
    int64_t cap = 0;
    const char *p = s;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',' && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n')) {
            free(*ids);
            *ids = NULL;
            return rs_errf(err, "bad token id list near \"%.20s\" (expected non-negative integers separated by commas)", p);
        }
        if (*len == cap) {
            cap = cap ? cap * 2 : 16;
            int32_t *n = realloc(*ids, (size_t)cap * sizeof *n);
            if (!n) { free(*ids); *ids = NULL; return rs_errk(err, RS_ENOMEM, "out of memory"); }
            *ids = n;
        }
        (*ids)[(*len)++] = (int32_t)v;
        p = end;
    }
    if (*len == 0) return rs_errf(err, "empty token id list");
    return 0;
}

void rs_special_ids_format(const gemma2_config *c, char *buf, size_t n) {
    snprintf(buf, n, "%d,%d,%d", c->bos_id, c->eos_id, c->pad_id);
}

int rs_special_ids_parse(const char *s, int32_t ids[3], rs_err *err) {
    int32_t *v;
    int64_t n;
    if (rs_parse_ids(s ? s : RS_GEMMA_SPECIAL_IDS, &v, &n, err)) {
        if (err && err->kind != RS_ENOMEM) err->kind = RS_EFORMAT;
        return rs_err_prefix(err, "special_token_ids");
    }
    int ok = n == 3;
    if (ok) memcpy(ids, v, 3 * sizeof *ids);
    free(v);
    return ok ? 0 : rs_errk(err, RS_EFORMAT, "special_token_ids \"%.40s\": expected <bos>,<eos>,<pad>", s);
}

const char *rs_pool_name(rs_pool p) { return p == POOL_MEAN ? "mean" : p == POOL_LAST ? "last" : "none"; }

int rs_pool_parse(const char *s, rs_pool *out) {
    if (!strcmp(s, "none")) *out = POOL_NONE;
    else if (!strcmp(s, "mean")) *out = POOL_MEAN;
    else if (!strcmp(s, "last")) *out = POOL_LAST;
    else return -1;
    return 0;
}

void extract_result_free(extract_result *r) {
    for (int h = 0; r->data && h < r->n_hooks; h++) free(r->data[h]);
    free(r->data);
    free(r->names);
    free(r->widths);
    free(r->token_ids);
    free(r->offsets);
    memset(r, 0, sizeof *r);
}

static int is_special(const gemma2_config *c, int32_t id) {
    return id == c->bos_id || id == c->eos_id || id == c->pad_id;
}

int extract_gemma2(const gemma2_model *m, const rs_inputs *in, const extract_opts *o, extract_result *r,
                   rs_progress *prog, rs_err *err) {
    memset(r, 0, sizeof *r);
    if (in->n < 1) return rs_errf(err, "no inputs");
    int64_t total = 0;
    for (int i = 0; i < in->n; i++) {
        if (in->lens[i] < 1) return rs_errf(err, "input %d is empty (no tokens)", i);
        total += in->lens[i];
    }
    r->n_hooks = o->n_hooks;
    r->pool = o->pool;
    r->n_inputs = in->n;
    r->rows = o->pool == POOL_NONE ? total : in->n;
    r->names = calloc((size_t)o->n_hooks, sizeof *r->names);
    r->widths = calloc((size_t)o->n_hooks, sizeof *r->widths);
    r->data = calloc((size_t)o->n_hooks, sizeof *r->data);
    r->token_ids = malloc((size_t)total * sizeof(int32_t));
    r->offsets = malloc((size_t)(in->n + 1) * sizeof(int64_t));
    if (!r->names || !r->widths || !r->data || !r->token_ids || !r->offsets) goto oom;
    for (int h = 0; h < o->n_hooks; h++) {
        memcpy(r->names[h], o->hooks[h].name, sizeof r->names[h]);
        r->widths[h] = o->hooks[h].width;
        r->data[h] = calloc((size_t)r->rows * r->widths[h], sizeof(float));
        if (!r->data[h]) goto oom;
    }
    r->offsets[0] = 0;
    for (int i = 0; i < in->n; i++) {
        r->offsets[i + 1] = r->offsets[i] + in->lens[i];
        memcpy(r->token_ids + r->offsets[i], in->ids[i], (size_t)in->lens[i] * sizeof(int32_t));
    }
    if (prog) rs_progress_start(prog, "extract (tokens)", total);
    int64_t *boff = malloc((size_t)(in->n + 1) * sizeof *boff);
    if (!boff) goto oom;
    for (int i0 = 0; i0 < in->n;) {
        /* greedy batch [i0, i1) */
        int i1 = i0;
        int64_t bt = 0;
        while (i1 < in->n && (i1 == i0 || bt + in->lens[i1] <= o->batch_tokens)) bt += in->lens[i1++];
        boff[0] = 0;
        for (int i = i0; i < i1; i++) boff[i - i0 + 1] = boff[i - i0] + in->lens[i];
        gemma2_batch b = {.n_seqs = i1 - i0, .offsets = boff, .ids = r->token_ids + r->offsets[i0]};
        if (gemma2_forward(m, &b, o->hooks, o->n_hooks, NULL, err)) {
            free(boff);
            hook_requests_free(o->hooks, o->n_hooks);
            extract_result_free(r);
            return -1;
        }
        for (int h = 0; h < o->n_hooks; h++) {
            int W = r->widths[h];
            const float *src = o->hooks[h].out;
            for (int i = i0; i < i1; i++) {
                const float *seq = src + (size_t)boff[i - i0] * W;
                int64_t L = in->lens[i];
                if (o->pool == POOL_NONE) {
                    memcpy(r->data[h] + (size_t)r->offsets[i] * W, seq, (size_t)L * W * sizeof(float));
                } else if (o->pool == POOL_LAST) {
                    memcpy(r->data[h] + (size_t)i * W, seq + (size_t)(L - 1) * W, (size_t)W * sizeof(float));
                } else {
                    double *acc = calloc((size_t)W, sizeof(double));
                    if (!acc) { free(boff); goto oom; }
                    int64_t cnt = 0;
                    for (int64_t t = 0; t < L; t++) {
                        if (!o->pool_special && (is_special(&m->cfg, in->ids[i][t]) ||
                                                 (o->blank_tok && tok_is_blank(o->blank_tok, in->ids[i][t]))))
                            continue;
                        for (int d = 0; d < W; d++) acc[d] += seq[(size_t)t * W + d];
                        cnt++;
                    }
                    if (cnt == 0) {
                        free(acc);
                        free(boff);
                        hook_requests_free(o->hooks, o->n_hooks);
                        extract_result_free(r);
                        return rs_errf(err, "input %d (0-based, as in rows.jsonl) has only special tokens "
                                            "(BOS/EOS/pad): nothing to mean-pool (use --pool-special to include them)", i);
                    }
                    for (int d = 0; d < W; d++) r->data[h][(size_t)i * W + d] = (float)(acc[d] / cnt);
                    free(acc);
                }
            }
        }
        hook_requests_free(o->hooks, o->n_hooks);
        if (prog) rs_progress_update(prog, r->offsets[i1]);
        if (rs_progress_cancelled(prog) && i1 < in->n) {
            free(boff);
            extract_result_free(r);
            return rs_errk(err, RS_ECANCELLED, "extract cancelled after %d of %d inputs", i1, in->n);
        }
        i0 = i1;
    }
    free(boff);
    if (prog) rs_progress_finish(prog);
    return 0;
oom:
    extract_result_free(r);
    return rs_errk(err, RS_ENOMEM, "out of memory for %lld tokens of activations", (long long)total);
}

/* ---- PaliGemma ---- */

void pg_inputs_free(pg_inputs *in) {
    for (int i = 0; i < in->n; i++) {
        free(in->ids[i]);
        free(in->kinds[i]);
        free(in->image_paths[i]);
        free(in->texts[i]);
        free(in->labels[i]);
        if (in->suffixes) free(in->suffixes[i]);
    }
    free(in->ids); free(in->lens); free(in->kinds); free(in->prefix_len);
    free(in->image_paths); free(in->texts); free(in->labels); free(in->suffixes);
    memset(in, 0, sizeof *in);
}

static int grow(void **p, size_t elem, int n) {
    void *q = realloc(*p, (size_t)(n + 1) * elem);
    if (!q) return -1;
    *p = q;
    return 0;
}

static char *dup_or_null(const char *s, int *fail) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *fail = 1;
    return d;
}

int pg_inputs_add(pg_inputs *in, const int32_t *ids, const uint8_t *kinds, int64_t len, int prefix_len,
                  const char *image_path, const char *text, const char *label, rs_err *err) {
    if (grow((void **)&in->ids, sizeof *in->ids, in->n) || grow((void **)&in->lens, sizeof *in->lens, in->n) ||
        grow((void **)&in->kinds, sizeof *in->kinds, in->n) ||
        grow((void **)&in->prefix_len, sizeof *in->prefix_len, in->n) ||
        grow((void **)&in->image_paths, sizeof *in->image_paths, in->n) ||
        grow((void **)&in->texts, sizeof *in->texts, in->n) || grow((void **)&in->labels, sizeof *in->labels, in->n) ||
        grow((void **)&in->suffixes, sizeof *in->suffixes, in->n))
        return rs_errk(err, RS_ENOMEM, "out of memory");
    int i = in->n, fail = 0;
    in->suffixes[i] = NULL;
    in->ids[i] = malloc((size_t)(len ? len : 1) * sizeof(int32_t));
    in->kinds[i] = malloc((size_t)(len ? len : 1));
    in->image_paths[i] = dup_or_null(image_path, &fail);
    in->texts[i] = dup_or_null(text, &fail);
    in->labels[i] = dup_or_null(label, &fail);
    in->lens[i] = len;
    in->prefix_len[i] = prefix_len;
    in->n++; /* counted even on failure so pg_inputs_free releases the parts */
    if (!in->ids[i] || !in->kinds[i] || fail) return rs_errk(err, RS_ENOMEM, "out of memory");
    memcpy(in->ids[i], ids, (size_t)len * sizeof(int32_t));
    memcpy(in->kinds[i], kinds, (size_t)len);
    return 0;
}

int pg_inputs_set_suffix(pg_inputs *in, int i, const char *suffix, rs_err *err) {
    if (i < 0 || i >= in->n) return rs_errf(err, "no input %d", i);
    free(in->suffixes[i]);
    in->suffixes[i] = suffix ? strdup(suffix) : NULL;
    if (suffix && !in->suffixes[i]) return rs_errk(err, RS_ENOMEM, "out of memory");
    return 0;
}

/* "\n" in the Gemma / PaliGemma vocabulary: the prompt separator when the prompt is given
 * as ids and no tokenizer is at hand (the HF configs do not name it). */
#define GEMMA_NEWLINE_ID 108

int pg_prompt_ids(const paligemma_config *c, const rs_tokenizer *tok, const char *prompt, const int32_t *given,
                  size_t n_given, int32_t **ids, size_t *n, rs_err *err) {
    *ids = NULL;
    *n = 0;
    if (given) {
        int32_t nl = GEMMA_NEWLINE_ID;
        if (tok) {
            int32_t *t;
            size_t nt;
            if (tok_encode(tok, "\n", 1, 0, &t, &nt, err)) return -1;
            int one = nt == 1;
            if (one) nl = t[0];
            free(t);
            if (!one) return rs_errf(err, "the tokenizer encodes \"\\n\" as %zu tokens, not one separator", nt);
        }
        if (!(*ids = malloc((n_given + 1) * sizeof **ids))) return rs_errk(err, RS_ENOMEM, "out of memory");
        if (n_given) memcpy(*ids, given, n_given * sizeof **ids);
        (*ids)[n_given] = nl;
        *n = n_given + 1;
    } else {
        if (!tok || !prompt) return rs_errf(err, "a prompt needs a tokenizer (or give its token ids)");
        size_t L = strlen(prompt);
        char *pt = malloc(L + 2);
        if (!pt) return rs_errk(err, RS_ENOMEM, "out of memory");
        memcpy(pt, prompt, L);
        pt[L] = '\n';
        pt[L + 1] = '\0';
        int r = tok_encode(tok, pt, L + 1, 0, ids, n, err);
        free(pt);
        if (r) return -1;
    }
    for (size_t i = 0; i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= c->text.vocab_size || (*ids)[i] == c->image_token_index) {
            int32_t bad = (*ids)[i];
            free(*ids);
            *ids = NULL;
            *n = 0;
            return rs_errf(err, "prompt token id %d is not a text token of this model (vocabulary %d, <image> = %d)", bad,
                           c->text.vocab_size, c->image_token_index);
        }
    return 0;
}

int pg_inputs_add_image(pg_inputs *in, const paligemma_model *m, const char *image_path, const int32_t *prompt,
                        size_t n_prompt, const int32_t *suffix, size_t n_suffix, const char *text, const char *label,
                        const char *suffix_text, rs_err *err) {
    int32_t *ids;
    uint8_t *kinds;
    int64_t len;
    int P;
    if (n_prompt > (1u << 24) || n_suffix > (1u << 24))
        return rs_errf(err, "input of %zu prompt and %zu suffix tokens is too long", n_prompt, n_suffix);
    if (paligemma_build_input(m, 1, prompt, (int)n_prompt, suffix, (int)n_suffix, &ids, &kinds, &len, &P, err))
        return -1;
    int rc = pg_inputs_add(in, ids, kinds, len, P, image_path, text, label, err);
    if (!rc && suffix_text) rc = pg_inputs_set_suffix(in, in->n - 1, suffix_text, err);
    free(ids);
    free(kinds);
    return rc;
}

int pg_inputs_add_text(pg_inputs *in, const paligemma_model *m, const int32_t *ids, int64_t n, const char *text,
                       const char *label, rs_err *err) {
    uint8_t *kinds = malloc((size_t)(n > 0 ? n : 1));
    if (!kinds) return rs_errk(err, RS_ENOMEM, "out of memory");
    paligemma_text_kinds(m, ids, n, kinds);
    for (int64_t i = 0; i < n; i++)
        if (kinds[i] == PG_TOK_IMAGE) {
            free(kinds);
            return rs_errf(err, "a text input contains the <image> token (id %d); give images as image inputs (--image)", ids[i]);
        }
    int rc = pg_inputs_add(in, ids, kinds, n, 0, NULL, text, label, err);
    free(kinds);
    return rc;
}

void pg_extract_result_free(pg_extract_result *r) {
    for (int i = 0; r->t && i < r->n_tensors; i++) free(r->t[i].data);
    free(r->t);
    free(r->token_ids);
    free(r->token_kind);
    free(r->offsets);
    free(r->vision_offsets);
    memset(r, 0, sizeof *r);
}

/* Where hook h's pooled/unpooled outputs go: index of its first tensor in r->t. */
typedef struct {
    int first, n;   /* tensors for this hook: base (+ @image, @text [, @suffix] for pooled decoder hooks) */
    int vision;     /* vision.* or projector.* hook */
} pg_slot;

/* Mean of the rows of seq [L, W] selected by mode (0: every row, kinds may be NULL;
 * 1: image tokens; 2: prompt/text tokens; 3: suffix tokens) into dst; NaN row if none.
 * Returns the count, -1 when out of memory. */
static int64_t mean_rows(const float *seq, const uint8_t *kinds, const int32_t *ids, const rs_tokenizer *blank,
                         int64_t L, int W, int mode, float *dst) {
    double *acc = calloc((size_t)W, sizeof(double));
    if (!acc) return -1;
    int64_t cnt = 0;
    for (int64_t t = 0; t < L; t++) {
        int k = kinds ? kinds[t] : 0;
        int take = mode == 0 || (mode == 1 && k == PG_TOK_IMAGE) ||
                   (mode == 2 && (k == PG_TOK_PROMPT || k == PG_TOK_TEXT)) || (mode == 3 && k == PG_TOK_SUFFIX);
        if (!take || (mode >= 2 && blank && ids && tok_is_blank(blank, ids[t]))) continue;
        for (int d = 0; d < W; d++) acc[d] += seq[(size_t)t * W + d];
        cnt++;
    }
    for (int d = 0; d < W; d++) dst[d] = cnt ? (float)(acc[d] / cnt) : NAN;
    free(acc);
    return cnt;
}

/* Decode and preprocess input i's image into px. */
static int load_image_one(const paligemma_model *m, const pg_inputs *in, const extract_opts *o, int i, float *px,
                          rs_err *err) {
    rs_image img = {0};
    int rc = 0;
    if ((o->load_image ? o->load_image(o->load_image_ctx, i, in->image_paths[i], &img, err)
                       : rs_image_load(in->image_paths[i], &img, err)) ||
        rs_siglip_preprocess_with(&img, m->cfg.vision.image_size, o->image_processor, NULL, px, err))
        rc = rs_err_prefix(err, "input %d", i);
    rs_image_free(&img);
    return rc;
}

/* Decode and preprocess the images of inputs [i0, i1) into pix [n, 3, S, S], over
 * o->image_threads threads (each image its own slot; on failure the error of the first
 * failing input). */
static int load_images(const paligemma_model *m, const pg_inputs *in, const extract_opts *o, int i0, int i1,
                       float *pix, rs_err *err) {
    int S = m->cfg.vision.image_size;
    size_t npix = (size_t)3 * S * S;
    int n = i1 - i0, T = o->image_threads > 1 ? o->image_threads : 1;
    int *slot = malloc(sizeof(int) * (n + 1)), k = 0;
    if (!slot) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (int i = i0; i < i1; i++) slot[i - i0] = in->image_paths[i] ? k++ : -1;
    if (T > k) T = k;
    int rc = 0;
    if (T <= 1) {
        for (int i = i0; rc == 0 && i < i1; i++)
            if (slot[i - i0] >= 0) rc = load_image_one(m, in, o, i, pix + (size_t)slot[i - i0] * npix, err);
        free(slot);
        return rc;
    }
    int *irc = calloc((size_t)n + 1, sizeof(int));
    rs_err *ierr = calloc((size_t)n + 1, sizeof(rs_err));
    if (!irc || !ierr) {
        free(slot); free(irc); free(ierr);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
#pragma omp parallel for num_threads(T) schedule(dynamic)
    for (int i = i0; i < i1; i++)
        if (slot[i - i0] >= 0) irc[i - i0] = load_image_one(m, in, o, i, pix + (size_t)slot[i - i0] * npix, &ierr[i - i0]);
    for (int j = 0; j < n; j++)
        if (irc[j]) {
            *err = ierr[j];
            rc = -1;
            break;
        }
    free(slot); free(irc); free(ierr);
    return rc;
}

/* The greedy batch that starts at input i0: [i0, *i1) bounded by o->batch_tokens and by the
 * image buffer (pix_cap images); its image count in *nb_img. */
static void next_batch(const pg_inputs *in, const extract_opts *o, int pix_cap, int i0, int *i1, int *nb_img) {
    int64_t bt = 0;
    int e = i0, nb = 0;
    while (e < in->n && (e == i0 || (bt + in->lens[e] <= o->batch_tokens && nb + (in->image_paths[e] != NULL) <= pix_cap))) {
        bt += in->lens[e];
        nb += in->image_paths[e] != NULL;
        e++;
    }
    *i1 = e, *nb_img = nb;
}

/* The next batch's images, decoded and preprocessed on a thread of their own while the
 * current batch runs through the model (the pixels are the same as loading them in turn). */
typedef struct {
    const paligemma_model *m;
    const pg_inputs *in;
    const extract_opts *o;
    int i0, i1, rc;
    float *pix;
    rs_err err;
    pthread_t thread;
    int running;
} pg_prefetch;

static void *prefetch_main(void *arg) {
    pg_prefetch *p = arg;
    p->rc = load_images(p->m, p->in, p->o, p->i0, p->i1, p->pix, &p->err);
    return NULL;
}

/* Start loading [i0, i1) into pix; without a thread (creation failed) it loads now. */
static void prefetch_start(pg_prefetch *p, int i0, int i1, float *pix) {
    p->i0 = i0, p->i1 = i1, p->pix = pix, p->rc = 0;
    memset(&p->err, 0, sizeof p->err);
    p->running = pthread_create(&p->thread, NULL, prefetch_main, p) == 0;
    if (!p->running) prefetch_main(p);
}

/* Wait for the prefetch; its result (0, or -1 with its error in p->err). */
static int prefetch_join(pg_prefetch *p) {
    if (p->running) pthread_join(p->thread, NULL);
    p->running = 0;
    return p->rc;
}

int extract_paligemma(const paligemma_model *m, const pg_inputs *in, const extract_opts *o, pg_extract_result *r,
                      rs_progress *prog, rs_err *err) {
    memset(r, 0, sizeof *r);
    if (in->n < 1) return rs_errf(err, "no inputs");
    int N = m->vision->n_patches, S = m->cfg.vision.image_size;
    size_t npix = (size_t)3 * S * S;
    int64_t total = 0, n_img = 0;
    int any_suffix = 0;
    for (int i = 0; i < in->n; i++)
        for (int64_t t = 0; t < in->lens[i] && !any_suffix; t++) any_suffix = in->kinds[i][t] == PG_TOK_SUFFIX;
    for (int i = 0; i < in->n; i++) {
        if (in->lens[i] < 1) return rs_errf(err, "input %d is empty (no tokens)", i);
        total += in->lens[i];
        n_img += in->image_paths[i] != NULL;
    }
    r->pool = o->pool;
    r->n_inputs = in->n;
    pg_slot *slot = calloc((size_t)o->n_hooks, sizeof *slot);
    r->t = calloc((size_t)o->n_hooks * 4, sizeof *r->t);
    r->token_ids = malloc((size_t)total * sizeof(int32_t));
    r->token_kind = malloc((size_t)total);
    r->offsets = malloc((size_t)(in->n + 1) * sizeof(int64_t));
    r->vision_offsets = malloc((size_t)(in->n + 1) * sizeof(int64_t));
    int64_t *boff = malloc((size_t)(in->n + 1) * sizeof *boff);
    int32_t *bids = malloc((size_t)total * sizeof *bids);
    float *pix = NULL, *pix_next = NULL;
    pg_prefetch pf = {.m = m, .in = in, .o = o};
    if (!slot || !r->t || !r->token_ids || !r->token_kind || !r->offsets || !r->vision_offsets || !boff || !bids) goto oom;
    r->offsets[0] = r->vision_offsets[0] = 0;
    for (int i = 0; i < in->n; i++) {
        r->offsets[i + 1] = r->offsets[i] + in->lens[i];
        r->vision_offsets[i + 1] = r->vision_offsets[i] + (in->image_paths[i] ? N : 0);
        memcpy(r->token_ids + r->offsets[i], in->ids[i], (size_t)in->lens[i] * sizeof(int32_t));
        memcpy(r->token_kind + r->offsets[i], in->kinds[i], (size_t)in->lens[i]);
    }
    /* output tensors */
    for (int h = 0; h < o->n_hooks; h++) {
        const hook_request *hk = &o->hooks[h];
        slot[h].vision = hk->id.tower != RS_TOWER_DECODER;
        slot[h].first = r->n_tensors;
        slot[h].n = (o->pool == POOL_MEAN && !slot[h].vision) ? 3 + any_suffix : 1;
        if (slot[h].vision && o->pool == POOL_LAST && !o->vision_mean) {
            free(slot); free(boff); free(bids);
            pg_extract_result_free(r);
            return rs_errf(err, "--pool last is not defined for the vision hook %s (use mean or none)", hk->name);
        }
        int64_t rows = o->pool != POOL_NONE ? in->n : slot[h].vision ? n_img * N : total;
        static const char *SUF[4] = {"", "@image", "@text", "@suffix"};
        for (int v = 0; v < slot[h].n; v++) {
            pg_tensor *t = &r->t[r->n_tensors++];
            snprintf(t->name, sizeof t->name, "%s%s", hk->name, SUF[v]);
            t->width = hk->width;
            t->rows = rows;
            t->data = malloc((size_t)(rows ? rows : 1) * hk->width * sizeof(float));
            if (!t->data) goto oom;
            /* NaN until filled: rows of inputs without such tokens stay NaN */
            for (size_t k = 0; k < (size_t)rows * hk->width; k++) t->data[k] = NAN;
        }
    }
    int pix_cap = n_img < 64 ? (int)n_img : 64;
    if (n_img && !(pix = malloc((size_t)pix_cap * npix * sizeof(float)))) goto oom;
    /* a second image buffer when there is more than one batch: batch k+1's images are
     * prepared while batch k runs */
    int i1_first, nb_first;
    next_batch(in, o, pix_cap, 0, &i1_first, &nb_first);
    if (n_img && i1_first < in->n && !(pix_next = malloc((size_t)pix_cap * npix * sizeof(float)))) goto oom;
    if (prog) rs_progress_start(prog, "extract (inputs)", in->n);
    if (nb_first && load_images(m, in, o, 0, i1_first, pix, err)) goto fail;
    for (int i0 = 0; i0 < in->n;) {
        /* greedy batch [i0, i1), its images already in pix */
        int i1, nb_img, i2 = 0, nb_next = 0;
        next_batch(in, o, pix_cap, i0, &i1, &nb_img);
        if (i1 < in->n) next_batch(in, o, pix_cap, i1, &i2, &nb_next);
        if (nb_next) prefetch_start(&pf, i1, i2, pix_next);
        boff[0] = 0;
        for (int i = i0; i < i1; i++) {
            boff[i - i0 + 1] = boff[i - i0] + in->lens[i];
            memcpy(bids + boff[i - i0], in->ids[i], (size_t)in->lens[i] * sizeof(int32_t));
        }
        paligemma_batch b = {.n_seqs = i1 - i0, .offsets = boff, .ids = bids, .prefix_len = in->prefix_len + i0,
                             .n_images = nb_img, .pixel_values = pix};
        if (paligemma_forward(m, &b, o->hooks, o->n_hooks, NULL, err)) goto fail;
        for (int h = 0; h < o->n_hooks; h++) {
            const hook_request *hk = &o->hooks[h];
            int W = hk->width;
            pg_tensor *t = &r->t[slot[h].first];
            for (int i = i0, img = 0; i < i1; i++) {
                if (slot[h].vision) {
                    if (!in->image_paths[i]) continue;
                    const float *src = hk->out + (size_t)img++ * N * W;
                    if (o->pool == POOL_NONE)
                        memcpy(t->data + (size_t)r->vision_offsets[i] * W, src, (size_t)N * W * sizeof(float));
                    else if (mean_rows(src, NULL, NULL, NULL, N, W, 0, t->data + (size_t)i * W) < 0) goto oom;
                    continue;
                }
                if (!hk->out) continue; /* decoder hook of a batch that did not reach it */
                const float *seq = hk->out + (size_t)boff[i - i0] * W;
                const uint8_t *kinds = in->kinds[i];
                int64_t L = in->lens[i];
                if (o->pool == POOL_NONE) {
                    memcpy(t->data + (size_t)r->offsets[i] * W, seq, (size_t)L * W * sizeof(float));
                } else if (o->pool == POOL_LAST) {
                    memcpy(t->data + (size_t)i * W, seq + (size_t)(L - 1) * W, (size_t)W * sizeof(float));
                } else {
                    int content = o->pool_special ? 0 : in->image_paths[i] ? 1 : 2;
                    const int32_t *ids = in->ids[i];
                    const rs_tokenizer *bt = o->pool_special ? NULL : o->blank_tok;
                    int64_t c0 = mean_rows(seq, kinds, ids, bt, L, W, content, t[0].data + (size_t)i * W);
                    if (c0 < 0 || mean_rows(seq, kinds, ids, bt, L, W, 1, t[1].data + (size_t)i * W) < 0 ||
                        mean_rows(seq, kinds, ids, bt, L, W, 2, t[2].data + (size_t)i * W) < 0 ||
                        (any_suffix && mean_rows(seq, kinds, ids, bt, L, W, 3, t[3].data + (size_t)i * W) < 0))
                        goto oom;
                    if (c0 == 0) {
                        rs_errf(err, "input %d (0-based, as in rows.jsonl) has only special tokens "
                                     "(BOS/EOS/pad): nothing to mean-pool (use --pool-special to include them)", i);
                        goto fail;
                    }
                }
            }
        }
        hook_requests_free(o->hooks, o->n_hooks);
        if (prog) rs_progress_update(prog, i1);
        if (rs_progress_cancelled(prog) && i1 < in->n) {
            rs_errk(err, RS_ECANCELLED, "extract cancelled after %d of %d inputs", i1, in->n);
            goto fail;
        }
        if (nb_next) {
            if (prefetch_join(&pf)) {
                *err = pf.err;
                goto fail;
            }
            float *t = pix;
            pix = pix_next, pix_next = t;
        }
        i0 = i1;
    }
    if (prog) rs_progress_finish(prog);
    free(slot); free(boff); free(bids); free(pix); free(pix_next);
    return 0;
oom:
    rs_errk(err, RS_ENOMEM, "out of memory for %lld tokens of activations", (long long)total);
fail:
    prefetch_join(&pf); /* a prefetch still running: its error is not this one */
    hook_requests_free(o->hooks, o->n_hooks);
    free(slot); free(boff); free(bids); free(pix); free(pix_next);
    pg_extract_result_free(r);
    return -1;
}
