/* The C ABI for language bindings (reprshift/capi.h): thin wrappers over the library's own
 * calls, driven as the CLI drives them (src/cli/cmd_extract.c, cmd_shift.c), with the error
 * of the last failing call kept per thread. */
#include "reprshift/capi.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "reprshift/backend.h"
#include "reprshift/blas.h"
#include "reprshift/error.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/gemma2.h"
#include "reprshift/hf_cache.h"
#include "reprshift/hooks.h"
#include "reprshift/image.h"
#include "reprshift/log.h"
#include "reprshift/model_config.h"
#include "reprshift/paligemma.h"
#include "reprshift/progress.h"
#include "reprshift/sae.h"
#include "reprshift/shift_run.h"
#include "reprshift/tokenizer.h"
#include "reprshift/version.h"

static _Thread_local rs_err last_err;

/* Record err as this thread's last error (a failure without a message gets one). */
static int fail(const rs_err *err) {
    last_err = *err;
    if (!last_err.msg[0]) snprintf(last_err.msg, sizeof last_err.msg, "failed (no message)");
    if (last_err.kind == RS_EOK) last_err.kind = RS_EFAIL;
    return -1;
}

#define FAILK(kind, ...)                                                                                               \
    do {                                                                                                               \
        rs_err e_ = {0};                                                                                               \
        rs_errk(&e_, kind, __VA_ARGS__);                                                                               \
        return fail(&e_);                                                                                              \
    } while (0)

int rsc_abi_version(void) { return RSC_ABI_VERSION; }
const char *rsc_version(void) { return RS_VERSION; }
const char *rsc_last_error(void) { return last_err.msg; }
int rsc_last_error_kind(void) { return (int)last_err.kind; }
const char *rsc_error_kind_name(int kind) { return rs_err_kind_name((rs_err_kind)kind); }
void rsc_free(void *p) { free(p); }

void rsc_set_progress(rsc_progress_fn fn, void *ctx) { rs_progress_set_hook(fn, ctx); }

static rsc_log_fn log_fn;
static void *log_ctx;
static void log_tramp(void *ctx, rs_log_kind kind, const char *text) {
    (void)ctx;
    if (log_fn) log_fn(log_ctx, (int)kind, text);
}
void rsc_set_log(rsc_log_fn fn, void *ctx) {
    log_fn = fn;
    log_ctx = ctx;
    rs_log_set(fn ? log_tramp : NULL, NULL);
}

/* ---- BLAS kernel ---- */

static rs_blas_info blas_info;

const char *rsc_blas_kernel(void) {
    rs_blas_info_get(&blas_info);
    return blas_info.kernel;
}

const char *rsc_blas_preferred_kernel(void) {
    rs_blas_info_get(&blas_info);
    if (strcmp(blas_info.library, "OpenBLAS")) return NULL;
    return rs_blas_preferred_kernel(blas_info.kernel);
}

int rsc_blas_check(void) {
    double worst = rs_blas_check(NULL);
    if (worst <= rs_blas_check_bound()) return 0;
    FAILK(RS_EFAIL, "sgemm check failed: worst error %.3g x the rounding unit (bound %g)", worst, rs_blas_check_bound());
}

/* ---- models ---- */

struct rsc_model {
    rs_model_type type;
    gemma2_model *g;     /* Gemma-2 */
    paligemma_model *pg; /* PaliGemma-2 */
    const gemma2_config *text;
    rs_tokenizer *tok;   /* may be NULL */
    char *dir;
    char *info;          /* rsc_model_info's JSON */
};

static int make_info(rsc_model *m, rs_err *err) {
    cJSON *j = cJSON_CreateObject();
    cJSON *hooks = cJSON_CreateArray();
    if (!j || !hooks) { cJSON_Delete(j); cJSON_Delete(hooks); return rs_errk(err, RS_ENOMEM, "out of memory"); }
    const gemma2_config *c = m->text;
    cJSON_AddStringToObject(j, "type", m->type == RS_MODEL_PALIGEMMA ? "paligemma" : "gemma2");
    cJSON_AddStringToObject(j, "path", m->dir);
    cJSON_AddNumberToObject(j, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "d_model", c->hidden_size);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "bos_id", c->bos_id);
    cJSON_AddNumberToObject(j, "eos_id", c->eos_id);
    cJSON_AddNumberToObject(j, "pad_id", c->pad_id);
    cJSON_AddBoolToObject(j, "has_tokenizer", m->tok != NULL);
    rs_hook_space sp;
    if (m->type == RS_MODEL_PALIGEMMA) {
        cJSON_AddNumberToObject(j, "image_size", m->pg->cfg.vision.image_size);
        cJSON_AddNumberToObject(j, "n_image_tokens", m->pg->vision->n_patches);
        sp = rs_hook_space_paligemma(&m->pg->cfg);
    } else {
        sp = rs_hook_space_gemma2(c);
    }
    int n = rs_hook_enumerate(&sp, NULL, 0);
    rs_hook *hs = n > 0 ? calloc((size_t)n, sizeof *hs) : NULL;
    if (hs) {
        rs_hook_enumerate(&sp, hs, n);
        for (int i = 0; i < n; i++) {
            char name[96];
            if (!rs_hook_format(&hs[i], name, sizeof name)) cJSON_AddItemToArray(hooks, cJSON_CreateString(name));
        }
        free(hs);
    }
    cJSON_AddItemToObject(j, "hooks", hooks);
    m->info = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return m->info ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
}

int rsc_model_open(const char *name, const char *revision, const char *precision, const char *tokenizer,
                   rsc_model **out) {
    rs_err err = {0};
    *out = NULL;
    if (!name || !name[0]) FAILK(RS_EINVAL, "model: give a checkpoint folder or a Hub name");
    rs_precision prec = RS_PREC_FP32;
    if (precision && precision[0] && rs_precision_parse(precision, &prec))
        FAILK(RS_EINVAL, "precision must be fp32 or bf16 (got \"%s\")", precision);
    rsc_model *m = calloc(1, sizeof *m);
    if (!m) FAILK(RS_ENOMEM, "out of memory");
    if (rs_hf_resolve_model(name, revision, &m->dir, &err) || model_config_type(m->dir, &m->type, &err)) goto bad;
    if (m->type == RS_MODEL_PALIGEMMA) {
        if (paligemma_open(&m->pg, m->dir, &err)) goto bad;
        m->pg->text->be = rs_backend_for(prec); /* the decoder only, as extract --precision */
        m->text = &m->pg->cfg.text;
    } else {
        if (gemma2_open(&m->g, m->dir, &err)) goto bad;
        m->g->be = rs_backend_for(prec);
        m->text = &m->g->cfg;
    }
    {
        char *tp = tokenizer ? strdup(tokenizer) : rs_path_join(m->dir, "tokenizer.json");
        if (!tp) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto bad; }
        if (tokenizer || rs_path_exists(tp)) {
            int r = tok_load(&m->tok, tp, &err);
            free(tp);
            if (r) goto bad;
            if (m->type == RS_MODEL_PALIGEMMA && tok_id(m->tok, "<image>") < 0 && tok_add_paligemma_tokens(m->tok, &err))
                goto bad;
        } else {
            free(tp);
        }
    }
    if (make_info(m, &err)) goto bad;
    *out = m;
    return 0;
bad:
    rsc_model_close(m);
    return fail(&err);
}

void rsc_model_close(rsc_model *m) {
    if (!m) return;
    gemma2_close(m->g);
    paligemma_close(m->pg);
    tok_free(m->tok);
    free(m->dir);
    free(m->info);
    free(m);
}

const char *rsc_model_info(const rsc_model *m) { return m ? m->info : NULL; }

static int need_tok(const rsc_model *m, rs_err *err) {
    if (m->tok) return 0;
    return rs_errk(err, RS_EINVAL, "%s has no tokenizer.json: pass tokenizer=PATH when opening it, or give token ids",
                   m->dir);
}

int rsc_tokenize(const rsc_model *m, const char *text, int add_bos, int32_t **ids, int64_t *n) {
    rs_err err = {0};
    *ids = NULL;
    *n = 0;
    if (!text) FAILK(RS_EINVAL, "tokenize: text is NULL");
    if (need_tok(m, &err)) return fail(&err);
    size_t k = 0;
    if (tok_encode(m->tok, text, strlen(text), add_bos, ids, &k, &err)) return fail(&err);
    *n = (int64_t)k;
    return 0;
}

int rsc_detokenize(const rsc_model *m, const int32_t *ids, int64_t n, char **text) {
    rs_err err = {0};
    *text = NULL;
    if (need_tok(m, &err)) return fail(&err);
    if (n < 0) FAILK(RS_EINVAL, "detokenize: negative length");
    if (tok_decode(m->tok, ids, (size_t)n, text, &err)) return fail(&err);
    return 0;
}

/* ---- requests ---- */

typedef struct {
    int kind; /* 0 text, 1 ids, 2 image */
    char *s;  /* text or image path */
    int32_t *ids;
    int64_t n;
    char *suffix;       /* image: suffix caption, or NULL */
    int32_t *sfx_ids;   /* image: suffix ids (eos appended at run time), or NULL */
    int64_t n_sfx;
} req_input;

struct rsc_request {
    rsc_model *m;
    char *hooks, *prompt, *prompt_ids;
    rs_pool pool;
    int pool_special, bos, image_threads;
    int64_t batch_tokens;
    rs_image_processor image_processor;
    req_input *in;
    int n, cap;
};

int rsc_request_new(rsc_model *m, rsc_request **out) {
    *out = NULL;
    if (!m) FAILK(RS_EINVAL, "request: no model");
    rsc_request *q = calloc(1, sizeof *q);
    if (!q || !(q->prompt = strdup("caption en"))) { free(q); FAILK(RS_ENOMEM, "out of memory"); }
    q->m = m;
    q->pool = POOL_NONE;
    q->bos = 1;
    q->batch_tokens = 2048;
    *out = q;
    return 0;
}

void rsc_request_free(rsc_request *q) {
    if (!q) return;
    for (int i = 0; i < q->n; i++) {
        free(q->in[i].s);
        free(q->in[i].ids);
        free(q->in[i].suffix);
        free(q->in[i].sfx_ids);
    }
    free(q->in);
    free(q->hooks);
    free(q->prompt);
    free(q->prompt_ids);
    free(q);
}

static int parse_i64(const char *key, const char *v, int64_t lo, int64_t hi, int64_t *out, rs_err *err) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return rs_errk(err, RS_EINVAL, "%s must be an integer from %lld to %lld (got \"%s\")", key, (long long)lo,
                       (long long)hi, v);
    *out = x;
    return 0;
}

static int set_str(char **dst, const char *v, rs_err *err) {
    char *s = v ? strdup(v) : NULL;
    if (v && !s) return rs_errk(err, RS_ENOMEM, "out of memory");
    free(*dst);
    *dst = s;
    return 0;
}

int rsc_request_set(rsc_request *q, const char *key, const char *value) {
    rs_err err = {0};
    int64_t x = 0;
    if (!key) FAILK(RS_EINVAL, "option name is NULL");
    if (!value && strcmp(key, "prompt_ids")) FAILK(RS_EINVAL, "option %s: value is NULL", key);
    if (!strcmp(key, "hooks")) {
        if (set_str(&q->hooks, value, &err)) return fail(&err);
    } else if (!strcmp(key, "pool")) {
        if (rs_pool_parse(value, &q->pool)) FAILK(RS_EINVAL, "pool must be none, mean or last (got \"%s\")", value);
    } else if (!strcmp(key, "pool_special") || !strcmp(key, "bos")) {
        if (parse_i64(key, value, 0, 1, &x, &err)) return fail(&err);
        *(key[0] == 'b' ? &q->bos : &q->pool_special) = (int)x;
    } else if (!strcmp(key, "batch_tokens")) {
        if (parse_i64(key, value, 1, (int64_t)1 << 24, &x, &err)) return fail(&err);
        q->batch_tokens = x;
    } else if (!strcmp(key, "image_threads")) {
        if (parse_i64(key, value, 0, 1024, &x, &err)) return fail(&err);
        q->image_threads = (int)x;
    } else if (!strcmp(key, "prompt")) {
        if (set_str(&q->prompt, value, &err)) return fail(&err);
    } else if (!strcmp(key, "prompt_ids")) {
        if (set_str(&q->prompt_ids, value, &err)) return fail(&err);
    } else if (!strcmp(key, "image_processor")) {
        if (rs_image_processor_parse(value, &q->image_processor))
            FAILK(RS_EINVAL, "image_processor must be pil or torchvision (got \"%s\")", value);
    } else {
        FAILK(RS_EINVAL, "unknown option \"%s\" (hooks, pool, pool_special, bos, batch_tokens, prompt, prompt_ids, "
                         "image_processor, image_threads)", key);
    }
    return 0;
}

static req_input *push(rsc_request *q) {
    if (q->n == q->cap) {
        int cap = q->cap ? 2 * q->cap : 16;
        req_input *p = realloc(q->in, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        q->in = p;
        q->cap = cap;
    }
    req_input *r = &q->in[q->n];
    memset(r, 0, sizeof *r);
    return r;
}

int rsc_request_add_text(rsc_request *q, const char *text) {
    if (!text) FAILK(RS_EINVAL, "input %d: text is NULL", q->n);
    if (!text[0]) FAILK(RS_EINVAL, "input %d: empty text", q->n);
    req_input *r = push(q);
    if (!r || !(r->s = strdup(text))) FAILK(RS_ENOMEM, "out of memory");
    r->kind = 0;
    q->n++;
    return 0;
}

static int32_t *dup_ids(const int32_t *ids, int64_t n) {
    int32_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (p && n > 0) memcpy(p, ids, (size_t)n * sizeof *p);
    return p;
}

int rsc_request_add_ids(rsc_request *q, const int32_t *ids, int64_t n) {
    if (n < 1 || !ids) FAILK(RS_EINVAL, "input %d is empty (no tokens)", q->n);
    req_input *r = push(q);
    if (!r || !(r->ids = dup_ids(ids, n))) FAILK(RS_ENOMEM, "out of memory");
    r->kind = 1;
    r->n = n;
    q->n++;
    return 0;
}

int rsc_request_add_image(rsc_request *q, const char *path, const char *suffix, const int32_t *suffix_ids,
                          int64_t n_suffix_ids) {
    if (q->m->type != RS_MODEL_PALIGEMMA)
        FAILK(RS_EINVAL, "%s is a Gemma-2 checkpoint: image inputs need PaliGemma", q->m->dir);
    if (!path || !rs_path_exists(path) || rs_is_dir(path))
        FAILK(RS_EIO, "%s: image file not found", path ? path : "(null)");
    if (suffix && !suffix[0])
        FAILK(RS_EINVAL, "%s: empty suffix: a suffix is a caption (leave it out for image + prompt alone)", path);
    req_input *r = push(q);
    if (!r || !(r->s = strdup(path))) FAILK(RS_ENOMEM, "out of memory");
    r->kind = 2;
    if (suffix && !(r->suffix = strdup(suffix))) { free(r->s); FAILK(RS_ENOMEM, "out of memory"); }
    if (n_suffix_ids > 0) {
        if (!suffix_ids || !(r->sfx_ids = dup_ids(suffix_ids, n_suffix_ids))) {
            free(r->s);
            free(r->suffix);
            FAILK(suffix_ids ? RS_ENOMEM : RS_EINVAL, suffix_ids ? "out of memory" : "suffix ids are NULL");
        }
        r->n_sfx = n_suffix_ids;
    }
    q->n++;
    return 0;
}

/* ---- results ---- */

struct rsc_result {
    int is_pg;
    extract_result g;
    pg_extract_result p;
    int32_t special[3]; /* <bos>, <eos>, <pad> of the model (shift excludes them) */
};

static int parse_hooks(rsc_request *q, hook_request **out, int *n_out, rs_err *err) {
    *out = NULL;
    *n_out = 0;
    if (!q->hooks || !q->hooks[0]) return rs_errk(err, RS_EINVAL, "no hooks: give hooks=[...] (TransformerLens names)");
    char *list = strdup(q->hooks);
    hook_request *h = calloc(strlen(q->hooks) / 2 + 2, sizeof *h);
    int n = 0;
    if (!list || !h) { free(list); free(h); return rs_errk(err, RS_ENOMEM, "out of memory"); }
    for (char *save = NULL, *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        int r = q->m->pg ? paligemma_hook_parse(q->m->pg, s, &h[n], err) : gemma2_hook_parse(q->m->text, s, &h[n], err);
        if (r) goto bad;
        for (int j = 0; j < n; j++)
            if (!strcmp(h[j].name, h[n].name)) {
                rs_errk(err, RS_EINVAL, "hook \"%s\" requested twice", s);
                goto bad;
            }
        n++;
    }
    free(list);
    if (!n) { free(h); return rs_errk(err, RS_EINVAL, "hooks lists no hooks"); }
    *out = h;
    *n_out = n;
    return 0;
bad:
    if (err->kind == RS_EOK || err->kind == RS_EFAIL) err->kind = RS_EINVAL;
    free(list);
    free(h);
    return -1;
}

static int run_gemma(rsc_request *q, const extract_opts *o0, rsc_result *res, rs_err *err) {
    rs_inputs in = {0};
    int rc = -1;
    for (int i = 0; i < q->n; i++) {
        const req_input *r = &q->in[i];
        if (r->kind == 2) { rs_errk(err, RS_EINVAL, "%s is a Gemma-2 checkpoint: image inputs need PaliGemma", q->m->dir); goto done; }
        if (r->kind == 1) {
            if (rs_inputs_add(&in, r->ids, r->n, NULL, err)) goto done;
            continue;
        }
        int32_t *ids;
        size_t n;
        if (need_tok(q->m, err) || tok_encode(q->m->tok, r->s, strlen(r->s), q->bos, &ids, &n, err)) goto done;
        int e = n ? rs_inputs_add(&in, ids, (int64_t)n, r->s, err)
                  : rs_errk(err, RS_EINVAL, "text \"%.40s\" gives no tokens", r->s);
        free(ids);
        if (e) { rs_err_prefix(err, "input %d", i); goto done; }
    }
    extract_opts o = *o0;
    o.blank_tok = q->m->tok;
    rs_progress prog;
    if (extract_gemma2(q->m->g, &in, &o, &res->g, &prog, err)) goto done;
    rc = 0;
done:
    rs_inputs_free(&in);
    return rc;
}

static int run_pg(rsc_request *q, const extract_opts *o0, rsc_result *res, rs_err *err) {
    const paligemma_model *m = q->m->pg;
    pg_inputs in = {0};
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    int rc = -1, has_images = 0;
    for (int i = 0; i < q->n; i++) has_images |= q->in[i].kind == 2;
    if (has_images) {
        if (q->prompt_ids) {
            int32_t *given;
            int64_t n;
            if (rs_parse_ids(q->prompt_ids, &given, &n, err)) { rs_err_prefix(err, "prompt_ids"); goto done; }
            int r = pg_prompt_ids(&m->cfg, q->m->tok, NULL, given, (size_t)n, &prompt, &n_prompt, err);
            free(given);
            if (r) { rs_err_prefix(err, "prompt_ids"); goto done; }
        } else {
            if (!q->m->tok) {
                rs_errk(err, RS_EINVAL, "%s has no tokenizer.json: give the prompt as prompt_ids (or open the model "
                                        "with tokenizer=PATH)", q->m->dir);
                goto done;
            }
            if (pg_prompt_ids(&m->cfg, q->m->tok, q->prompt, NULL, 0, &prompt, &n_prompt, err)) {
                rs_err_prefix(err, "prompt");
                goto done;
            }
        }
    }
    for (int i = 0; i < q->n; i++) {
        const req_input *r = &q->in[i];
        int e = 0;
        if (r->kind == 1) {
            e = pg_inputs_add_text(&in, m, r->ids, r->n, NULL, NULL, err);
        } else if (r->kind == 0) {
            int32_t *ids;
            size_t n;
            if (need_tok(q->m, err) || tok_encode(q->m->tok, r->s, strlen(r->s), q->bos, &ids, &n, err)) e = -1;
            else {
                e = n ? pg_inputs_add_text(&in, m, ids, (int64_t)n, r->s, NULL, err)
                      : rs_errk(err, RS_EINVAL, "text \"%.40s\" gives no tokens", r->s);
                free(ids);
            }
        } else {
            int32_t *sids = NULL;
            size_t ns = 0;
            if (r->sfx_ids) {
                sids = malloc((size_t)(r->n_sfx + 1) * sizeof *sids);
                if (!sids) e = rs_errk(err, RS_ENOMEM, "out of memory");
                else {
                    memcpy(sids, r->sfx_ids, (size_t)r->n_sfx * sizeof *sids);
                    sids[r->n_sfx] = m->cfg.text.eos_id;
                    ns = (size_t)r->n_sfx + 1;
                }
            } else if (r->suffix) {
                if (need_tok(q->m, err) || paligemma_suffix_ids(m, q->m->tok, r->suffix, strlen(r->suffix), &sids, &ns, err))
                    e = -1;
            }
            if (!e)
                e = pg_inputs_add_image(&in, m, r->s, prompt, n_prompt, sids, ns, q->prompt_ids ? NULL : q->prompt,
                                        NULL, r->suffix, err);
            free(sids);
        }
        if (e) { rs_err_prefix(err, "input %d", i); goto done; }
    }
    extract_opts o = *o0;
    o.blank_tok = q->m->tok;
    o.image_processor = q->image_processor;
    o.image_threads = q->image_threads;
    rs_progress prog;
    if (extract_paligemma(m, &in, &o, &res->p, &prog, err)) goto done;
    rc = 0;
done:
    free(prompt);
    pg_inputs_free(&in);
    return rc;
}

int rsc_run(rsc_request *q, rsc_result **out) {
    rs_err err = {0};
    *out = NULL;
    hook_request *hooks = NULL;
    int n_hooks = 0;
    if (!q->n) FAILK(RS_EINVAL, "no inputs: give texts, token ids or images");
    rsc_result *res = calloc(1, sizeof *res);
    if (!res) FAILK(RS_ENOMEM, "out of memory");
    if (parse_hooks(q, &hooks, &n_hooks, &err)) goto bad;
    extract_opts o = {.n_hooks = n_hooks, .hooks = hooks, .pool = q->pool, .pool_special = q->pool_special,
                      .batch_tokens = q->batch_tokens};
    res->is_pg = q->m->type == RS_MODEL_PALIGEMMA;
    res->special[0] = q->m->text->bos_id;
    res->special[1] = q->m->text->eos_id;
    res->special[2] = q->m->text->pad_id;
    if (res->is_pg ? run_pg(q, &o, res, &err) : run_gemma(q, &o, res, &err)) goto bad;
    hook_requests_free(hooks, n_hooks);
    free(hooks);
    *out = res;
    return 0;
bad:
    if (hooks) hook_requests_free(hooks, n_hooks);
    free(hooks);
    rsc_result_free(res);
    return fail(&err);
}

int rsc_result_n_tensors(const rsc_result *r) { return r->is_pg ? r->p.n_tensors : r->g.n_hooks; }

const char *rsc_result_name(const rsc_result *r, int i) {
    if (i < 0 || i >= rsc_result_n_tensors(r)) return NULL;
    return r->is_pg ? r->p.t[i].name : r->g.names[i];
}

float *rsc_result_tensor(const rsc_result *r, int i, int64_t *rows, int *width) {
    if (i < 0 || i >= rsc_result_n_tensors(r)) { *rows = 0; *width = 0; return NULL; }
    if (r->is_pg) {
        *rows = r->p.t[i].rows;
        *width = r->p.t[i].width;
        return r->p.t[i].data;
    }
    *rows = r->g.rows;
    *width = r->g.widths[i];
    return r->g.data[i];
}

static int64_t n_inputs(const rsc_result *r) { return r->is_pg ? r->p.n_inputs : r->g.n_inputs; }

const int64_t *rsc_result_offsets(const rsc_result *r, int64_t *n) {
    *n = n_inputs(r) + 1;
    return r->is_pg ? r->p.offsets : r->g.offsets;
}

const int32_t *rsc_result_token_ids(const rsc_result *r, int64_t *n) {
    const int64_t *off = r->is_pg ? r->p.offsets : r->g.offsets;
    *n = off[n_inputs(r)];
    return r->is_pg ? r->p.token_ids : r->g.token_ids;
}

const uint8_t *rsc_result_token_kinds(const rsc_result *r, int64_t *n) {
    if (!r->is_pg) { *n = 0; return NULL; }
    *n = r->p.offsets[r->p.n_inputs];
    return r->p.token_kind;
}

const int64_t *rsc_result_vision_offsets(const rsc_result *r, int64_t *n) {
    if (!r->is_pg) { *n = 0; return NULL; }
    *n = r->p.n_inputs + 1;
    return r->p.vision_offsets;
}

const char *rsc_result_pool(const rsc_result *r) { return rs_pool_name(r->is_pg ? r->p.pool : r->g.pool); }

void rsc_result_free(rsc_result *r) {
    if (!r) return;
    if (r->is_pg) pg_extract_result_free(&r->p);
    else extract_result_free(&r->g);
    free(r);
}

/* ---- SAEs ---- */

struct rsc_sae {
    rs_sae *s;
};

int rsc_sae_load(const char *path, const char *hook, rsc_sae **out) {
    rs_err err = {0};
    *out = NULL;
    if (!path) FAILK(RS_EINVAL, "SAE path is NULL");
    rsc_sae *h = calloc(1, sizeof *h);
    if (!h) FAILK(RS_ENOMEM, "out of memory");
    if (sae_load(&h->s, path, hook, &err)) { free(h); return fail(&err); }
    *out = h;
    return 0;
}

void rsc_sae_free(rsc_sae *h) {
    if (!h) return;
    sae_free(h->s);
    free(h);
}

int rsc_sae_info(const rsc_sae *h, char **json) {
    const rs_sae *s = h->s;
    *json = NULL;
    cJSON *j = cJSON_CreateObject();
    if (!j) FAILK(RS_ENOMEM, "out of memory");
    cJSON_AddNumberToObject(j, "d_in", s->d_in);
    cJSON_AddNumberToObject(j, "d_sae", s->d_sae);
    cJSON_AddStringToObject(j, "architecture", sae_arch_name(s->arch));
    if (s->arch == SAE_ARCH_TOPK) cJSON_AddNumberToObject(j, "k", s->k);
    cJSON_AddStringToObject(j, "normalize_activations", sae_norm_name(s->normalize));
    if (s->hook_name) cJSON_AddStringToObject(j, "hook_name", s->hook_name); else cJSON_AddNullToObject(j, "hook_name");
    if (s->path) cJSON_AddStringToObject(j, "path", s->path);
    if (s->sae_name) cJSON_AddStringToObject(j, "name", s->sae_name);
    if (s->neuronpedia) cJSON_AddStringToObject(j, "neuronpedia", s->neuronpedia);
    *json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!*json) FAILK(RS_ENOMEM, "out of memory");
    return 0;
}

int rsc_sae_encode(const rsc_sae *h, const float *x, int64_t n, float *out) {
    const rs_sae *s = h->s;
    rs_err err = {0};
    if (n < 0) FAILK(RS_EINVAL, "SAE encode: negative row count");
    if (n == 0) return 0;
    if (sae_encode(s, x, n, out, &err)) return fail(&err);
    return 0;
}

int rsc_sae_decode(const rsc_sae *h, const float *f, const float *x, int64_t n, float *out) {
    const rs_sae *s = h->s;
    rs_err err = {0};
    if (n < 0) FAILK(RS_EINVAL, "SAE decode: negative row count");
    if (!x && (s->normalize == SAE_NORM_CONSTANT_NORM_RESCALE || s->normalize == SAE_NORM_LAYER_NORM))
        FAILK(RS_EINVAL, "SAE decode: this SAE normalises its input (%s): pass the encoded activations x",
              sae_norm_name(s->normalize));
    if (n == 0) return 0;
    if (sae_decode(s, f, x, n, out, &err)) return fail(&err);
    return 0;
}

/* ---- shift ---- */

typedef struct {
    shift_run_opts o;
    char *buf;     /* the options text, split in place (o's strings point into it) */
    int *layers;
    const char *out;
} shift_args;

static int parse_int_opt(const char *k, const char *v, long long lo, long long hi, long long *x, rs_err *err) {
    int64_t y = 0;
    if (parse_i64(k, v, lo, hi, &y, err)) return -1;
    *x = y;
    return 0;
}

static int parse_shift_opts(const char *text, shift_args *a, rs_err *err) {
    memset(a, 0, sizeof *a);
    a->o.n_boot = 1000;
    a->o.n_perm = 200;
    a->o.seed = 24301;
    a->o.top_k = 20;
    if (!text) return 0;
    if (!(a->buf = strdup(text))) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (char *save = NULL, *line = strtok_r(a->buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq) return rs_errk(err, RS_EINVAL, "shift option \"%s\": expected key=value", line);
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        long long x;
        if (!strcmp(k, "sae")) a->o.sae = v[0] ? v : NULL;
        else if (!strcmp(k, "hook")) a->o.hook = v[0] ? v : NULL;
        else if (!strcmp(k, "sae_hook")) a->o.sae_hook = v[0] ? v : NULL;
        else if (!strcmp(k, "tokenizer")) a->o.tokenizer = v[0] ? v : NULL;
        else if (!strcmp(k, "categories")) a->o.categories = v[0] ? v : NULL;
        else if (!strcmp(k, "out")) a->out = v[0] ? v : NULL;
        else if (!strcmp(k, "allow_hook_mismatch") || !strcmp(k, "keep_special") || !strcmp(k, "pooled")) {
            if (parse_int_opt(k, v, 0, 1, &x, err)) return -1;
            *(k[0] == 'a' ? &a->o.allow_hook_mismatch : k[0] == 'k' ? &a->o.keep_special : &a->o.force_pooled) = (int)x;
        } else if (!strcmp(k, "n_boot") || !strcmp(k, "n_perm")) {
            if (parse_int_opt(k, v, 0, 1000000, &x, err)) return -1;
            *(k[2] == 'b' ? &a->o.n_boot : &a->o.n_perm) = (int)x;
        } else if (!strcmp(k, "top_k") || !strcmp(k, "min_count")) {
            if (parse_int_opt(k, v, 1, INT_MAX, &x, err)) return -1;
            *(k[0] == 't' ? &a->o.top_k : &a->o.min_count) = (int)x;
        } else if (!strcmp(k, "threads")) {
            if (parse_int_opt(k, v, 0, 4096, &x, err)) return -1;
            a->o.threads = (int)x;
        } else if (!strcmp(k, "seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-')
                return rs_errk(err, RS_EINVAL, "seed must be a non-negative integer (got \"%s\")", v);
            a->o.seed = s;
        } else if (!strcmp(k, "layers")) {
            int cap = 1;
            for (const char *p = v; *p; p++) cap += *p == ',';
            free(a->layers);
            if (!(a->layers = malloc((size_t)cap * sizeof *a->layers))) return rs_errk(err, RS_ENOMEM, "out of memory");
            int n = 0;
            for (const char *p = v; *p;) {
                char *end;
                errno = 0;
                long l = strtol(p, &end, 10);
                if (errno || end == p || l < 0 || l > 100000 || (*end && *end != ','))
                    return rs_errk(err, RS_EINVAL, "bad layers \"%s\" (expected e.g. 0,6,12)", v);
                a->layers[n++] = (int)l;
                p = *end ? end + 1 : end;
            }
            if (!n) return rs_errk(err, RS_EINVAL, "bad layers \"%s\" (expected e.g. 0,6,12)", v);
            a->o.layers = a->layers;
            a->o.n_layers = n;
        } else {
            return rs_errk(err, RS_EINVAL, "unknown shift option \"%s\" (sae, hook, sae_hook, layers, allow_hook_mismatch, "
                                           "keep_special, pooled, n_boot, n_perm, seed, top_k, min_count, tokenizer, "
                                           "categories, threads, out)", k);
        }
    }
    if (a->o.n_layers > 0) {
        if (!a->o.hook) a->o.hook = "blocks.{layer}.hook_resid_post";
        if (!strstr(a->o.hook, "{layer}") && !(a->o.sae && strstr(a->o.sae, "{layer}")))
            return rs_errk(err, RS_EINVAL, "shift: layers needs a hook or sae containing {layer}");
    }
    return 0;
}

static void shift_args_free(shift_args *a) {
    free(a->buf);
    free(a->layers);
}

static int json_text(const shift_run_result *res, const shift_json_labels *lab, char **json, rs_err *err) {
    cJSON *root = shift_run_json(res, lab);
    char *js = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!js) return rs_errk(err, RS_ENOMEM, "out of memory");
    *json = js;
    return 0;
}

int rsc_shift(const char *acts_a, const char *acts_b, const char *options, char **json) {
    rs_err err = {0};
    shift_args a;
    *json = NULL;
    shift_acts_file *fa = NULL, *fb = NULL;
    shift_acts_src sa, sb;
    shift_run_result *res = NULL;
    int rc = -1;
    if (!acts_a || !acts_b) { rs_errk(&err, RS_EINVAL, "shift: give both activation files"); return fail(&err); }
    if (parse_shift_opts(options, &a, &err)) goto done;
    a.o.acts_a = acts_a;
    a.o.acts_b = acts_b;
    if (a.out) {
        /* exactly `reprshift shift --out DIR`, then its results.json */
        a.o.out_dir = a.out;
        if (shift_run(&a.o, &err)) goto done;
        char *path = rs_path_join(a.out, "results.json"), *buf = NULL;
        size_t n;
        int r = path ? rs_read_file(path, (size_t)1 << 31, &buf, &n, &err) : rs_errk(&err, RS_ENOMEM, "out of memory");
        free(path);
        if (r) goto done;
        *json = buf;
        rc = 0;
        goto done;
    }
    if (shift_acts_file_open(&fa, acts_a, &sa, &err) || shift_acts_file_open(&fb, acts_b, &sb, &err)) goto done;
    if (shift_run_compute(&a.o, &sa, &sb, &res, &err)) goto done;
    shift_json_labels lab = {.acts_a = acts_a, .acts_b = acts_b, .sae = a.o.sae, .n_inputs = -1};
    if (json_text(res, &lab, json, &err)) goto done;
    rc = 0;
done:
    shift_run_result_free(res);
    shift_acts_file_close(fa);
    shift_acts_file_close(fb);
    shift_args_free(&a);
    return rc ? fail(&err) : 0;
}

/* An unpooled result as a shift source. */
typedef struct {
    const rsc_result *r;
    const char *label;
} mem_src;

static int mem_read(void *ctx, const char *hook, const float **data, float **owned, int64_t *rows, int *width,
                    const char **name, rs_err *err) {
    const mem_src *m = ctx;
    int nt = rsc_result_n_tensors(m->r), pick = -1;
    int64_t n_tok;
    rsc_result_token_ids(m->r, &n_tok);
    if (hook) {
        for (int i = 0; i < nt; i++)
            if (!strcmp(rsc_result_name(m->r, i), hook)) pick = i;
        if (pick < 0) return rs_errk(err, RS_EINVAL, "%s: no activations for hook '%s'", m->label, hook);
    } else {
        for (int i = 0; i < nt; i++) {
            int64_t rw;
            int w;
            rsc_result_tensor(m->r, i, &rw, &w);
            if (rw != n_tok) continue; /* vision tensors */
            if (pick >= 0) return rs_errk(err, RS_EINVAL, "%s: several hooks in the result; choose one with hook=", m->label);
            pick = i;
        }
        if (pick < 0) return rs_errk(err, RS_EINVAL, "%s: no per-token activation tensor", m->label);
    }
    *data = rsc_result_tensor(m->r, pick, rows, width);
    if (*rows != n_tok)
        return rs_errk(err, RS_EINVAL, "%s: tensor '%s' must be [tokens=%lld, d]", m->label, rsc_result_name(m->r, pick),
                       (long long)n_tok);
    *owned = NULL;
    *name = rsc_result_name(m->r, pick);
    return 0;
}

static int mem_source(const rsc_result *r, const char *label, mem_src *ms, shift_acts_src *src, rs_err *err) {
    if (strcmp(rsc_result_pool(r), "none"))
        return rs_errk(err, RS_EINVAL, "%s: activations are pooled ('%s'); shift needs per-token activations (pool none)",
                       label, rsc_result_pool(r));
    ms->r = r;
    ms->label = label;
    int64_t n_tok, n_off;
    const int32_t *ids = rsc_result_token_ids(r, &n_tok);
    const int64_t *off = rsc_result_offsets(r, &n_off);
    *src = (shift_acts_src){.label = label, .ids = ids, .off = off, .n_tok = n_tok, .n_in = n_off - 1, .n_special = 3,
                            .special = {r->special[0], r->special[1], r->special[2]}, .read = mem_read, .ctx = ms};
    return 0;
}

int rsc_shift_results(const rsc_result *ra, const rsc_result *rb, const char *options, char **json) {
    rs_err err = {0};
    shift_args a;
    *json = NULL;
    shift_run_result *res = NULL;
    mem_src ma, mb;
    shift_acts_src sa, sb;
    int rc = -1;
    if (!ra || !rb) { rs_errk(&err, RS_EINVAL, "shift: give two results"); return fail(&err); }
    if (parse_shift_opts(options, &a, &err)) goto done;
    if (a.out) { rs_errk(&err, RS_EINVAL, "shift of in-memory results: out= is for files (save them first)"); goto done; }
    a.o.acts_a = "a";
    a.o.acts_b = "b";
    if (mem_source(ra, "a", &ma, &sa, &err) || mem_source(rb, "b", &mb, &sb, &err)) goto done;
    if (shift_run_compute(&a.o, &sa, &sb, &res, &err)) goto done;
    shift_json_labels lab = {.acts_a = "a", .acts_b = "b", .sae = a.o.sae, .n_inputs = -1};
    if (json_text(res, &lab, json, &err)) goto done;
    rc = 0;
done:
    shift_run_result_free(res);
    shift_args_free(&a);
    return rc ? fail(&err) : 0;
}
