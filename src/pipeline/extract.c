/* Extract stage: resumable activation stores (src/store/) under RUN/acts/
 *   llm_text     captions through the LLM, per token           (pool none)            condition a
 *   vlm_text     the same token ids through the VLM decoder     (pool none; text-only) condition b
 *   vlm_image    images + prompt through the VLM, per input     (pool mean or last)
 *   vlm_edits    every edited variant of every image, variant-major (same pooling)
 *   vlm_caption  each caption as the suffix after its own image + prompt            condition c
 *   vlm_mismatch the same after an image of another group                            condition d
 *   vlm_blank    the same after a mid-grey image                                     condition e
 * The condition stores keep only the caption's rows (the prefix <bos>, then the caption
 * tokens), so their rows and ids equal llm_text's.
 * Captions are tokenized once and the identical ids go to both models, so the shift
 * stage compares them token by token. The image stores also hold the config's
 * vision_hooks (SigLIP tower / projector), mean over the patches, for the image-only
 * probes. Each store is written shard by shard; a store whose fingerprint
 * (spec.manifest_hash) differs from the current inputs is rebuilt, an unfinished one with
 * the same fingerprint resumes at its first missing shard. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/gemma2.h"
#include "base/jsonutil.h"
#include "reprshift/model_config.h"
#include "reprshift/paligemma.h"
#include "reprshift/probe.h"
#include "reprshift/progress.h"
#include "reprshift/sae.h"
#include "reprshift/siglip.h"
#include "reprshift/store.h"
#include "reprshift/tokenizer.h"
#include "reprshift/version.h"

const char *const PL_STORE_NAME[PL_N_STORES] = {"llm_text",    "vlm_text",     "vlm_image", "vlm_edits",
                                                "vlm_caption", "vlm_mismatch", "vlm_blank"};

/* Does the dataset have at least two labels among the images (a mismatched image exists)? */
static int has_two_labels(const pl_ctx *c) {
    for (int j = 1; j < c->n_image; j++)
        if (c->image_label[j] != c->image_label[0]) return 1;
    return 0;
}

int pl_store_used(const pl_ctx *c, int s) {
    /* a language's sub-run: the captions read by Gemma-2, the decoder alone and after their image */
    if (c->lang && s != PL_LLM_TEXT && s != PL_VLM_TEXT && s != PL_VLM_CAPTION) return 0;
    switch (s) {
    case PL_LLM_TEXT:
    case PL_VLM_TEXT: return c->n_text > 0;
    case PL_VLM_IMAGE: return c->n_image > 0;
    case PL_VLM_EDITS: return c->n_image > 0 && c->n_variants > 0;
    case PL_VLM_CAPTION: return c->n_text > 0 && c->n_image > 0 && rs_config_has_condition(c->cfg, "vlm_caption");
    case PL_VLM_MISMATCH:
        return c->n_text > 0 && c->n_image > 0 && has_two_labels(c) && rs_config_has_condition(c->cfg, "vlm_mismatch");
    default: return c->n_text > 0 && c->n_image > 0 && rs_config_has_condition(c->cfg, "vlm_blank");
    }
}

static int64_t store_inputs(const pl_ctx *c, int s) {
    return PL_IS_CAPTION_STORE(s) ? c->n_text : s == PL_VLM_IMAGE ? c->n_image : (int64_t)c->n_image * c->n_variants;
}

static rs_pool store_pool(const pl_ctx *c, int s) {
    if (PL_IS_CAPTION_STORE(s)) return POOL_NONE;
    return !strcmp(c->cfg->pool, "last") ? POOL_LAST : POOL_MEAN;
}

/* Does store s hold the vision hooks too? (only the pooled image stores) */
static int store_has_vision(const pl_ctx *c, int s) {
    return (s == PL_VLM_IMAGE || s == PL_VLM_EDITS) && c->cfg->n_vision_hooks > 0;
}

/* Number of hooks store s captures: the decoder hooks, then its vision hooks. */
static int store_n_hooks(const pl_ctx *c, int s) {
    return c->cfg->n_hooks + (store_has_vision(c, s) ? c->cfg->n_vision_hooks : 0);
}

/* Name of hook i of a store (i < store_n_hooks). */
static const char *store_hook(const rs_config *cfg, int i) {
    return i < cfg->n_hooks ? cfg->hooks[i] : cfg->vision_hooks[i - cfg->n_hooks];
}

/* The first n hooks (decoder hooks, then vision hooks) comma-separated: the store spec's
 * hook list and part of its fingerprint. New string or NULL. */
static char *hooks_csv_n(const rs_config *cfg, int n_hooks) {
    size_t n = 1;
    for (int i = 0; i < n_hooks; i++) n += strlen(store_hook(cfg, i)) + 1;
    char *s = calloc(n, 1);
    for (int i = 0; s && i < n_hooks; i++) {
        if (i) strcat(s, ",");
        strcat(s, store_hook(cfg, i));
    }
    return s;
}

static char *hooks_csv(const rs_config *cfg) { return hooks_csv_n(cfg, cfg->n_hooks); }

/* ---- threads ---- */

/* Two counts: the OpenMP threads of fine-grained loops (matmuls, attention heads) and
 * c->coarse_threads for loops over independent items that each take milliseconds
 * (permutation refits and nulls, scheduled dynamically: a descheduled thread delays only its
 * own item, not a barrier). The coarse count is --threads N when given, else OMP_NUM_THREADS,
 * else every core available to the process; results do not depend on it. */
void pl_set_threads(pl_ctx *c) {
    int t = c->opt->threads;
    c->coarse_threads = t > 0 ? t : getenv("OMP_NUM_THREADS") ? omp_get_max_threads() : omp_get_num_procs();
    if (c->coarse_threads < 1) c->coarse_threads = 1;
    if (t <= 0) {
        if (getenv("OMP_NUM_THREADS")) return;
        /* a tiny model's matmuls take microseconds: thread barriers would dominate, and on a
           busy machine each waits for a descheduled thread (measured: quickstart 46 s with
           2 threads on a loaded 2-core VM, 8 s with 1) */
        gemma2_config lc;
        rs_err e = {0};
        if (gemma2_config_load(c->cfg->llm, &lc, &e) || lc.hidden_size >= 512) return;
        t = 1;
    }
    omp_set_num_threads(t);
    pl_log(c, "run", "%d thread%s (%d for permutation loops)", t, t == 1 ? "" : "s", c->coarse_threads);
}

/* ---- validation ---- */

/* vision_hooks must be vision-side hooks of the VLM (config pc, already loaded): vision.* or
 * projector.hook_out, parsed by the one hook parser (it needs only the config, not the
 * weights). The error lists the valid names; a decoder name is refused (it belongs in
 * `hooks`) with the same list. */
static int validate_vision_hooks(const rs_config *cfg, const paligemma_config *pc, rs_err *err) {
    rs_hook_space vs = rs_hook_space_siglip(&pc->vision, pc->projection_dim);
    for (int i = 0; i < cfg->n_vision_hooks; i++) {
        const char *h = cfg->vision_hooks[i];
        hook_request r;
        if (hook_request_parse(&vs, h, &r, err) == 0) continue;
        rs_hook id;
        char list[RS_ERR_MAX];
        rs_hook_valid_list(&vs, list, sizeof list);
        if (rs_hook_parse(NULL, h, &id, NULL) == 0 && id.tower == RS_TOWER_DECODER)
            return rs_errf(err, "vision_hooks: %s (models.vlm %s) is a decoder hook, not a vision hook: put it in "
                                "'hooks'; valid vision hooks: %s", h, cfg->vlm, list);
        return rs_err_prefix(err, "vision_hooks: %s (models.vlm %s)", h, cfg->vlm);
    }
    return 0;
}

int pl_validate_models(pl_ctx *c, rs_err *err) {
    const rs_config *cfg = c->cfg;
    rs_model_type t;
    gemma2_config lc;
    paligemma_config pc;
    if (model_config_type(cfg->llm, &t, err)) return rs_err_prefix(err, "models.llm");
    if (t != RS_MODEL_GEMMA2) return rs_errf(err, "models.llm: %s is not a Gemma-2 checkpoint", cfg->llm);
    if (model_config_type(cfg->vlm, &t, err)) return rs_err_prefix(err, "models.vlm");
    if (t != RS_MODEL_PALIGEMMA) return rs_errf(err, "models.vlm: %s is not a PaliGemma checkpoint", cfg->vlm);
    if (gemma2_config_load(cfg->llm, &lc, err)) return rs_err_prefix(err, "models.llm");
    if (paligemma_config_load(cfg->vlm, &pc, err)) return rs_err_prefix(err, "models.vlm");
    const int32_t special[6] = {lc.bos_id, lc.eos_id, lc.pad_id, pc.text.bos_id, pc.text.eos_id, pc.text.pad_id};
    memcpy(c->special_ids, special, sizeof special);
    if (lc.hidden_size != pc.text.hidden_size)
        return rs_errf(err, "the LLM (%s, hidden size %d) and the VLM decoder (%s, hidden size %d) differ in width: "
                            "the shift analysis compares the same hook in both",
                       cfg->llm, lc.hidden_size, cfg->vlm, pc.text.hidden_size);
    for (int i = 0; i < cfg->n_hooks; i++) {
        hook_request r;
        memset(&r, 0, sizeof r);
        if (gemma2_hook_parse(&lc, cfg->hooks[i], &r, err))
            return rs_err_prefix(err, "hooks: %s (models.llm %s)", cfg->hooks[i], cfg->llm);
        memset(&r, 0, sizeof r);
        if (gemma2_hook_parse(&pc.text, cfg->hooks[i], &r, err))
            return rs_err_prefix(err, "hooks: %s (models.vlm %s)", cfg->hooks[i], cfg->vlm);
    }
    if (validate_vision_hooks(cfg, &pc, err)) return -1;
    for (int i = 0; cfg->has_saes && i < cfg->n_layers; i++) {
        int L = cfg->layers[i];
        char *sp = rs_config_sae_path(cfg, L), *sh = rs_config_sae_hook(cfg, L);
        rs_sae *s = NULL;
        int rc = !sp ? rs_errk(err, RS_ENOMEM, "out of memory") : sae_load(&s, sp, sh, err);
        if (!rc && !s->hook_name)
            rc = rs_errf(err, "saes: %s names no hook: set saes.hook (e.g. \"blocks.{layer}.hook_resid_post\")", sp);
        int found = 0;
        for (int h = 0; !rc && h < cfg->n_hooks; h++) found |= !strcmp(cfg->hooks[h], s->hook_name);
        if (!rc && !found) {
            char *hl = hooks_csv(cfg);
            rc = rs_errf(err, "saes: the SAE for layer %d (%s) reads '%s', which is not among the captured hooks (%s)", L,
                         sp, s->hook_name, hl ? hl : "?");
            free(hl);
        }
        if (!rc && s->d_in != lc.hidden_size)
            rc = rs_errf(err, "saes: %s has d_in %d but the models' hidden size is %d", sp, s->d_in, lc.hidden_size);
        sae_free(s);
        free(sp);
        free(sh);
        if (rc) return -1;
    }
    return 0;
}

/* ---- inputs ---- */

static int load_tokenizer(const char *model_dir, const char *override, rs_tokenizer **tok, rs_err *err) {
    char *tp = override ? strdup(override) : rs_path_join(model_dir, "tokenizer.json");
    if (!tp) return rs_errk(err, RS_ENOMEM, "out of memory");
    if (!rs_path_exists(tp)) {
        rs_errf(err, "%s: no tokenizer.json; set models.tokenizer in the config", override ? tp : model_dir);
        free(tp);
        return -1;
    }
    int rc = tok_load(tok, tp, err);
    free(tp);
    return rc;
}

/* Tokenize every caption once (<bos> + text), checking that the ids are text tokens of
 * the VLM too. */
static int tokenize_captions(pl_ctx *c, rs_err *err) {
    if (c->text_ids || !c->n_text) return 0;
    rs_tokenizer *tok = NULL;
    paligemma_config pc;
    if (paligemma_config_load(c->cfg->vlm, &pc, err) || load_tokenizer(c->cfg->llm, c->cfg->tokenizer, &tok, err))
        return -1;
    c->text_ids = calloc((size_t)c->n_text, sizeof *c->text_ids);
    c->text_len = calloc((size_t)c->n_text, sizeof *c->text_len);
    int rc = (!c->text_ids || !c->text_len) ? rs_errk(err, RS_ENOMEM, "out of memory") : 0;
    for (int i = 0; i < c->n_text && !rc; i++) {
        const rs_manifest_row *row = &c->man->rows[c->text_row[i]];
        size_t n;
        if (!row->input[0]) {
            rc = rs_errf(err, "%s:%zu: empty caption", c->man->path, row->line);
            break;
        }
        rc = tok_encode(tok, row->input, strlen(row->input), 1, &c->text_ids[i], &n, err);
        if (rc) {
            rs_err_prefix(err, "%s:%zu", c->man->path, row->line);
            break;
        }
        c->text_len[i] = (int64_t)n;
        for (size_t k = 0; k < n; k++)
            if (c->text_ids[i][k] >= pc.text.vocab_size || c->text_ids[i][k] == pc.image_token_index) {
                rc = rs_errf(err, "%s:%zu: caption token id %d is not a text token of the VLM (vocabulary %d, <image> = %d): "
                                  "the two models need the same tokenizer",
                             c->man->path, row->line, c->text_ids[i][k], pc.text.vocab_size, pc.image_token_index);
                break;
            }
    }
    if (rc) tok_free(tok);
    else c->caption_tok = tok;
    return rc;
}

int pl_token_included(const pl_ctx *c, int32_t id) {
    for (int k = 0; k < 6; k++)
        if (id == c->special_ids[k]) return 0;
    return !(c->caption_tok && tok_is_blank(c->caption_tok, id));
}

/* The image each caption is read with in the conditions: its own (the image input of its
 * group) and a mismatched one, an image input of another label chosen by a seeded draw
 * (SplitMix64 stream of the dataset seed; the same on every run). */
static int condition_images(pl_ctx *c, rs_err *err) {
    if (c->text_image || !c->n_text || !c->n_image) return 0;
    c->text_image = malloc((size_t)c->n_text * sizeof *c->text_image);
    c->text_mismatch = malloc((size_t)c->n_text * sizeof *c->text_mismatch);
    int *cand = malloc((size_t)c->n_image * sizeof *cand);
    int rc = 0;
    if (!c->text_image || !c->text_mismatch || !cand) rc = rs_errk(err, RS_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < c->n_text; i++) {
        c->text_image[i] = -1;
        for (int j = 0; j < c->n_image; j++)
            if (c->image_group[j] == c->text_group[i]) {
                c->text_image[i] = j;
                break;
            }
        const rs_manifest_row *row = &c->man->rows[c->text_row[i]];
        if (c->text_image[i] < 0)
            rc = rs_errf(err, "%s:%zu: caption of image %lld has no image row in the manifest: the conditions "
                              "vlm_caption/vlm_mismatch/vlm_blank read each caption after its image (remove them from "
                              "'conditions' to run without)",
                         c->man->path, row->line, (long long)row->image_id);
        int n = 0;
        for (int j = 0; j < c->n_image; j++)
            if (c->image_label[j] != c->text_label[i]) cand[n++] = j;
        if (n == 0) {
            c->text_mismatch[i] = -1;
        } else {
            int k = (int)(rs_uniform_at(c->cfg->dataset.seed ^ 0x6d69736d61746368ULL, (uint64_t)i) * n);
            c->text_mismatch[i] = cand[k < n ? k : n - 1];
        }
    }
    free(cand);
    return rc;
}

/* The caption conditions read a caption as PaliGemmaProcessor's suffix: the caption
 * tokenized alone (no <bos>) + <eos>. Check that these are the LLM's ids after its <bos>,
 * so every condition has the same caption token rows. */
static int check_suffix_alignment(pl_ctx *c, rs_err *err) {
    rs_tokenizer *tok = NULL;
    if (load_tokenizer(c->cfg->vlm, c->cfg->tokenizer, &tok, err)) return rs_err_prefix(err, "caption conditions");
    int rc = 0;
    for (int i = 0; i < c->n_text && !rc; i++) {
        const rs_manifest_row *row = &c->man->rows[c->text_row[i]];
        int32_t *ids = NULL;
        size_t n = 0;
        if (tok_encode(tok, row->input, strlen(row->input), 0, &ids, &n, err)) {
            rc = rs_err_prefix(err, "%s:%zu", c->man->path, row->line);
            break;
        }
        int64_t nl = c->text_len[i] - 1, k = 0;
        while (k < (int64_t)n && k < nl && ids[k] == c->text_ids[i][k + 1]) k++;
        if (k < (int64_t)n || k < nl) {
            char got[32] = "(end)", want[32] = "(end)";
            if (k < (int64_t)n) snprintf(got, sizeof got, "%d", ids[k]);
            if (k < nl) snprintf(want, sizeof want, "%d", c->text_ids[i][k + 1]);
            rc = rs_errf(err, "%s:%zu: the caption's token %lld is %s as a PaliGemma suffix (VLM tokenizer, no <bos>) but "
                              "%s after <bos> (LLM tokenizer): the conditions must read the same caption tokens, so they "
                              "cannot be aligned (use one tokenizer for both: models.tokenizer)",
                         c->man->path, row->line, (long long)k, got, want);
        }
        free(ids);
    }
    tok_free(tok);
    return rc;
}

/* The VLM's <eos> (PaliGemmaProcessor appends it to the suffix): eos_token_id of its
 * config.json, which must be the tokenizer's <eos> too (as paligemma_suffix_ids checks). */
int pl_eos_id(pl_ctx *c, int32_t *eos, rs_err *err) {
    rs_tokenizer *tok = NULL;
    paligemma_config pc;
    if (paligemma_config_load(c->cfg->vlm, &pc, err) || load_tokenizer(c->cfg->vlm, c->cfg->tokenizer, &tok, err))
        return -1;
    int32_t id = pc.text.eos_id, te = tok_eos_id(tok);
    int rc = 0;
    if (te >= 0 && te != id)
        rc = rs_errf(err, "%s: the tokenizer's <eos> (id %d) is not the model's eos_token_id %d (config.json)",
                     c->cfg->vlm, (int)te, (int)id);
    else if (!tok_piece(tok, id))
        rc = rs_errf(err, "%s: the tokenizer has no token %d, the model's eos_token_id (the PaliGemma suffix ends with it)",
                     c->cfg->vlm, (int)id);
    tok_free(tok);
    if (!rc) *eos = id;
    return rc;
}

int64_t pl_caption_suffix(const pl_ctx *c, int64_t i, int32_t eos, int32_t *sfx) {
    int64_t ns = c->text_len[i]; /* caption ids after <bos>, then <eos> */
    memcpy(sfx, c->text_ids[i] + 1, (size_t)(ns - 1) * sizeof *sfx);
    sfx[ns - 1] = eos;
    return ns;
}

/* prompt + "\n" as token ids (no <bos>), as PaliGemmaProcessor builds it (pg_prompt_ids) */
int pl_prompt_ids(pl_ctx *c, int32_t **ids, size_t *n, rs_err *err) {
    rs_tokenizer *tok = NULL;
    paligemma_config pc;
    if (paligemma_config_load(c->cfg->vlm, &pc, err) || load_tokenizer(c->cfg->vlm, c->cfg->tokenizer, &tok, err))
        return -1;
    int rc = 0;
    if (tok_id(tok, "<image>") < 0) rc = tok_add_paligemma_tokens(tok, err);
    if (!rc) rc = pg_prompt_ids(&pc, tok, c->cfg->prompt, NULL, 0, ids, n, err);
    if (rc) rs_err_prefix(err, "prompt");
    tok_free(tok);
    return rc;
}

/* ---- one store ---- */

typedef struct {
    pl_ctx *c;
    int64_t first; /* global index of the shard's first input */
} edit_ctx;

int pl_load_variant(const pl_variant *v, const char *path, rs_image *img, rs_err *err) {
    if (rs_image_load(path, img, err)) return -1;
    if (v && rs_edit_apply(img, &v->edit, err)) {
        rs_image_free(img);
        return rs_err_prefix(err, "%s: edit %s", path, v->label);
    }
    return 0;
}

/* Note the image's luminance in c->image_lum (slot v·n_image + j; each image its own slot,
 * so the parallel loaders never share one). */
static void note_luminance(pl_ctx *c, int64_t slot, const rs_image *img) {
    rs_luminance lu;
    rs_err ignore = {0};
    if (!c->image_lum || rs_image_luminance(img, &lu, &ignore)) return;
    c->image_lum[slot * 2] = lu.luma_bt601;
    c->image_lum[slot * 2 + 1] = lu.linear_y;
}

static int load_edited(void *vctx, int input, const char *path, rs_image *img, rs_err *err) {
    edit_ctx *e = vctx;
    int64_t g = e->first + input;
    if (pl_load_variant(&e->c->variants[g / e->c->n_image], path, img, err)) return -1;
    note_luminance(e->c, (int64_t)e->c->n_image + g, img); /* variant g / n_image + 1, image g % n_image */
    return 0;
}

static int load_original(void *vctx, int input, const char *path, rs_image *img, rs_err *err) {
    edit_ctx *e = vctx;
    if (pl_load_variant(NULL, path, img, err)) return -1;
    note_luminance(e->c, e->first + input, img);
    return 0;
}

/* The blank condition's image: uniform mid-grey (128, 128, 128), 224×224 (any size
 * resizes to the same constant pixels). */
#define PL_BLANK_GREY 128
static int load_blank(void *vctx, int input, const char *path, rs_image *img, rs_err *err) {
    (void)vctx;
    (void)input;
    (void)path;
    if (rs_image_alloc(img, 224, 224, err)) return -1;
    memset(img->rgb, PL_BLANK_GREY, (size_t)img->w * (size_t)img->h * 3);
    return 0;
}

typedef struct {
    gemma2_model *llm;
    paligemma_model *vlm;
    int32_t *prompt;
    size_t n_prompt;
    int32_t eos;
} models;

/* Image input read with caption i in condition store s (-1: none). */
static int cond_image(const pl_ctx *c, int s, int64_t i) {
    return s == PL_VLM_MISMATCH ? c->text_mismatch[i] : c->text_image[i];
}

/* Row index line of input g of store s. */
static void row_line(FILE *f, const pl_ctx *c, int s, int64_t g, int64_t n_tokens) {
    int img = !PL_IS_CAPTION_STORE(s);
    int64_t k = s == PL_VLM_EDITS ? g % c->n_image : g;
    const rs_manifest_row *r = &c->man->rows[img ? c->image_row[k] : c->text_row[k]];
    fprintf(f, "{\"input\":%lld,\"modality\":\"%s\",", (long long)g, img ? "image" : "text");
    if (PL_IS_COND(s)) {
        fprintf(f, "\"condition\":\"%s\",\"read_with_image\":", PL_STORE_NAME[s]);
        if (s == PL_VLM_BLANK) {
            fputs("\"blank\",", f);
        } else {
            const rs_manifest_row *ir = &c->man->rows[c->image_row[cond_image(c, s, g)]];
            fprintf(f, "{\"image_id\":%lld,\"label\":", (long long)ir->image_id);
            rs_json_write_string(f, ir->label);
            fputs(",\"file_name\":", f);
            rs_json_write_string(f, ir->file_name);
            fputs("},", f);
        }
    }
    fputs("\"label\":", f);
    rs_json_write_string(f, r->label);
    fprintf(f, ",\"image_id\":%lld,\"caption_id\":%lld,\"split\":", (long long)r->image_id, (long long)r->caption_id);
    rs_json_write_string(f, r->split);
    fputs(",\"file_name\":", f);
    rs_json_write_string(f, r->file_name);
    if (s == PL_VLM_EDITS) {
        const pl_variant *v = &c->variants[g / c->n_image];
        fputs(",\"edit\":", f);
        rs_json_write_string(f, v->name);
        fputs(",\"value\":", f);
        rs_json_write_num(f, "%.17g", v->edit.value);
    }
    if (!img) {
        fputs(",\"text\":", f);
        rs_json_write_string(f, r->input);
    }
    fprintf(f, ",\"n_tokens\":%lld}\n", (long long)n_tokens);
}

/* Parse the hooks of store s into h[store_n_hooks]. */
static int hooks_parse(pl_ctx *c, const models *m, int s, hook_request *h, rs_err *err) {
    for (int i = 0; i < store_n_hooks(c, s); i++) {
        memset(&h[i], 0, sizeof h[i]);
        const char *name = store_hook(c->cfg, i);
        int r = s != PL_LLM_TEXT ? paligemma_hook_parse(m->vlm, name, &h[i], err)
                                 : gemma2_hook_parse(&m->llm->cfg, name, &h[i], err);
        if (r) return -1;
    }
    return 0;
}

/* A condition store keeps, of each input, the rows of the caption as llm_text has them:
 * the prefix's <bos> (row 0; excluded from the metrics like the LLM's <bos>) and the
 * caption's suffix tokens, without the image tokens, the prompt, "\n" and the final <eos>.
 * The kept ids must equal the LLM's ids of the caption. Rewrites r in place. */
static int cond_rows(const pl_ctx *c, int64_t first, int64_t count, pg_extract_result *r, rs_err *err) {
    int64_t kept = 0;
    for (int64_t i = 0; i < count; i++) kept += c->text_len[first + i];
    int64_t *src = malloc((size_t)(kept ? kept : 1) * sizeof *src);
    if (!src) return rs_errk(err, RS_ENOMEM, "out of memory");
    int64_t k = 0;
    for (int64_t i = 0; i < count; i++) {
        int64_t t0 = r->offsets[i], t1 = r->offsets[i + 1], bos = -1;
        for (int64_t t = t0; t < t1 && bos < 0; t++)
            if (r->token_kind[t] == PG_TOK_BOS) bos = t;
        int64_t sfx0 = -1;
        for (int64_t t = t0; t < t1 && sfx0 < 0; t++)
            if (r->token_kind[t] == PG_TOK_SUFFIX) sfx0 = t;
        const int32_t *want = c->text_ids[first + i];
        int64_t n = c->text_len[first + i];
        if (bos < 0 || (n > 1 && (sfx0 < 0 || sfx0 + n - 1 > t1))) {
            free(src);
            return rs_errf(err, "caption input %lld: no <bos> / suffix rows in the PaliGemma input", (long long)(first + i));
        }
        src[k++] = bos;
        for (int64_t j = 1; j < n; j++) src[k++] = sfx0 + j - 1;
        for (int64_t j = 0; j < n; j++)
            if (r->token_ids[src[k - n + j]] != want[j]) {
                int got = r->token_ids[src[k - n + j]];
                free(src);
                return rs_errf(err, "caption input %lld: token %lld is %d in the PaliGemma input but %d for the LLM",
                               (long long)(first + i), (long long)j, got, want[j]);
            }
    }
    for (int q = 0; q < r->n_tensors; q++) {
        pg_tensor *t = &r->t[q];
        float *d = malloc((size_t)(kept ? kept : 1) * (size_t)t->width * sizeof *d);
        if (!d) { free(src); return rs_errk(err, RS_ENOMEM, "out of memory"); }
        for (int64_t j = 0; j < kept; j++)
            memcpy(d + (size_t)j * t->width, t->data + (size_t)src[j] * t->width, (size_t)t->width * sizeof *d);
        free(t->data);
        t->data = d;
        t->rows = kept;
    }
    for (int64_t j = 0; j < kept; j++) {
        r->token_ids[j] = r->token_ids[src[j]]; /* src is increasing and src[j] >= j */
        r->token_kind[j] = r->token_kind[src[j]];
    }
    r->offsets[0] = 0;
    for (int64_t i = 0; i < count; i++) r->offsets[i + 1] = r->offsets[i] + c->text_len[first + i];
    free(src);
    return 0;
}

/* Extract shard [first, first+count) of store s and append it. */
static int do_shard(pl_ctx *c, int s, const models *m, rs_store *st, int64_t k, int64_t first, int64_t count,
                    hook_request *hooks, rs_err *err) {
    const rs_config *cfg = c->cfg;
    /* vision hooks are mean-pooled over the patches even when the decoder hooks take the last token */
    extract_opts o = {.n_hooks = store_n_hooks(c, s), .hooks = hooks, .pool = store_pool(c, s),
                      .batch_tokens = cfg->batch_tokens, .vision_mean = 1,
                      .image_processor = cfg->image_processor, .image_threads = c->coarse_threads};
    store_tensor t[STORE_MAX_TENSORS > 64 ? 64 : STORE_MAX_TENSORS];
    int nt = 0, rc = -1;
    char *rows = NULL;
    size_t rows_n = 0;
    FILE *rf = NULL;
    extract_result lr = {0};
    pg_extract_result pr = {0};
    rs_inputs li = {0};
    pg_inputs pi = {0};
    edit_ctx ec = {c, first};
    if (s == PL_LLM_TEXT) {
        for (int64_t i = first; i < first + count; i++)
            if (rs_inputs_add(&li, c->text_ids[i], c->text_len[i], NULL, err)) goto done;
        if (extract_gemma2(m->llm, &li, &o, &lr, NULL, err)) goto done;
        for (int h = 0; h < lr.n_hooks; h++)
            t[nt++] = (store_tensor){lr.names[h], RS_DT_F32, 2, {lr.rows, lr.widths[h]}, lr.data[h]};
        t[nt++] = (store_tensor){"offsets", RS_DT_I64, 1, {count + 1}, lr.offsets};
        t[nt++] = (store_tensor){"token_ids", RS_DT_I32, 1, {lr.offsets[count]}, lr.token_ids};
    } else {
        for (int64_t i = first; i < first + count; i++) {
            int r;
            const char *path = NULL;
            if (s == PL_VLM_TEXT) {
                r = pg_inputs_add_text(&pi, m->vlm, c->text_ids[i], c->text_len[i], NULL, NULL, err);
            } else if (PL_IS_COND(s)) {
                /* image + <bos> prompt "\n" (prefix, bidirectional), then caption <eos> (suffix, causal) */
                int32_t *sfx = malloc((size_t)c->text_len[i] * sizeof *sfx);
                if (!sfx) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
                int64_t ns = pl_caption_suffix(c, i, m->eos, sfx);
                path = c->man->rows[c->image_row[s == PL_VLM_BLANK ? c->text_image[i] : cond_image(c, s, i)]].path;
                r = pg_inputs_add_image(&pi, m->vlm, path, m->prompt, m->n_prompt, sfx, (size_t)ns, NULL, NULL, NULL, err);
                free(sfx);
            } else {
                int64_t j = s == PL_VLM_EDITS ? i % c->n_image : i;
                path = c->man->rows[c->image_row[j]].path;
                r = pg_inputs_add_image(&pi, m->vlm, path, m->prompt, m->n_prompt, NULL, 0, NULL, NULL, NULL, err);
            }
            if (r) goto done;
        }
        if (s == PL_VLM_EDITS) {
            o.load_image = load_edited;
            o.load_image_ctx = &ec;
        }
        if (s == PL_VLM_IMAGE) { /* the same decode as the default loader, noting the luminance */
            o.load_image = load_original;
            o.load_image_ctx = &ec;
        }
        if (s == PL_VLM_BLANK) o.load_image = load_blank;
        if (extract_paligemma(m->vlm, &pi, &o, &pr, NULL, err)) goto done;
        if (PL_IS_COND(s)) {
            if (cond_rows(c, first, count, &pr, err)) goto done;
        }
        for (int q = 0; q < pr.n_tensors; q++)
            t[nt++] = (store_tensor){pr.t[q].name, RS_DT_F32, 2, {pr.t[q].rows, pr.t[q].width}, pr.t[q].data};
        t[nt++] = (store_tensor){"offsets", RS_DT_I64, 1, {count + 1}, pr.offsets};
        t[nt++] = (store_tensor){"token_ids", RS_DT_I32, 1, {pr.offsets[count]}, pr.token_ids};
        t[nt++] = (store_tensor){"token_kind", RS_DT_U8, 1, {pr.offsets[count]}, pr.token_kind};
    }
    rf = open_memstream(&rows, &rows_n);
    if (!rf) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    const int64_t *off = s == PL_LLM_TEXT ? lr.offsets : pr.offsets;
    for (int64_t i = 0; i < count; i++) row_line(rf, c, s, first + i, off[i + 1] - off[i]);
    fclose(rf);
    rf = NULL;
    if (store_append_shard(st, k, t, nt, rows, err)) goto done;
    rc = 0;
done:
    if (rf) fclose(rf);
    free(rows);
    extract_result_free(&lr);
    pg_extract_result_free(&pr);
    rs_inputs_free(&li);
    pg_inputs_free(&pi);
    return rc;
}

/* spec.manifest_hash of an existing store, or ""; *complete (may be NULL): its "complete" */
static void existing_fp_c(const char *dir, char out[80], int *complete) {
    out[0] = 0;
    if (complete) *complete = 0;
    char *p = pl_join(dir, "index.json");
    cJSON *j = NULL;
    rs_err e = {0};
    if (p && rs_path_exists(p) && rs_json_load(p, STORE_INDEX_MAX_BYTES, &j, &e) == 0) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(j, "spec");
        const cJSON *h = sp ? cJSON_GetObjectItemCaseSensitive(sp, "manifest_hash") : NULL;
        if (cJSON_IsString(h)) snprintf(out, 80, "%s", h->valuestring);
        else snprintf(out, 80, "?");
        if (complete) *complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "complete"));
    }
    cJSON_Delete(j);
    free(p);
}

static void existing_fp(const char *dir, char out[80]) { existing_fp_c(dir, out, NULL); }

static int64_t auto_shard(const pl_ctx *c, int s, int n_prompt, int n_patches) {
    if (c->opt->shard_inputs > 0) return c->opt->shard_inputs;
    double per = 1;
    if (PL_IS_CAPTION_STORE(s)) {
        double tot = 0;
        for (int i = 0; i < c->n_text; i++) tot += (double)c->text_len[i];
        per = c->n_text ? tot / c->n_text : 1;
        if (PL_IS_COND(s)) per += n_patches + n_prompt + 1;
    } else {
        per = n_patches + n_prompt + 1;
    }
    int64_t k = (int64_t)(c->cfg->batch_tokens / (per > 1 ? per : 1));
    return k < 1 ? 1 : k > 4096 ? 4096 : k;
}

static int store_fingerprint(pl_ctx *c, int s, int64_t shard, const char *prompt_fp, char fp[65]) {
    char *hl = hooks_csv_n(c->cfg, store_n_hooks(c, s)); /* vision hooks only where stored */
    char *vars = NULL;
    size_t vn = 0;
    FILE *f = open_memstream(&vars, &vn);
    if (!hl || !f) {
        free(hl);
        if (f) fclose(f);
        free(vars);
        return -1;
    }
    /* "names=v2": "redness" became the luminance-controlled edit (the plain one is now
     * redness_plain), so stores written under the old names must not be reused. */
    if (s == PL_VLM_EDITS) fputs("names=v2;", f);
    if (s == PL_VLM_EDITS)
        for (int v = 0; v < c->n_variants; v++)
            fprintf(f, "%s=%.17g;", rs_edit_name(c->variants[v].edit.kind), c->variants[v].edit.value);
    if (PL_IS_COND(s)) fprintf(f, "suffix=caption+eos grey=%d seed=%llu", PL_BLANK_GREY,
                               (unsigned long long)c->cfg->dataset.seed);
    /* Stores with images: a non-default image processor changes the pixels. (The default
     * adds nothing, so stores written before the option existed stay valid.) */
    if (s >= PL_VLM_IMAGE && c->cfg->image_processor != RS_IMAGE_PROCESSOR_PIL)
        fprintf(f, " image_processor=%s", rs_image_processor_name(c->cfg->image_processor));
    /* bf16 compute changes every activation (fp32, the default, adds nothing: older stores stay valid);
     * PaliGemma stores say "+tower" since the vision tower and projector run in bf16 too (stores
     * of the decoder-only bf16 path are redone) */
    if (c->cfg->precision != RS_PREC_FP32)
        fprintf(f, " precision=%s%s", rs_precision_name(c->cfg->precision), s >= PL_VLM_IMAGE ? "+tower" : "");
    fclose(f);
    pl_fp(fp, "store v1 %s %s dataset=%s llm=%s vlm=%s hooks=%s pool=%s prompt=%s shard=%lld edits=%s", RS_VERSION,
          PL_STORE_NAME[s], c->dataset_fp, c->llm_fp, s == PL_LLM_TEXT ? "-" : c->vlm_fp, hl,
          rs_pool_name(store_pool(c, s)), s >= PL_VLM_IMAGE ? prompt_fp : "-", (long long)shard, vars ? vars : "");
    free(hl);
    free(vars);
    return 0;
}

int pl_store_fp(pl_ctx *c, int s, char fp[65], rs_err *err) {
    char *dir = pl_join(c->acts, PL_STORE_NAME[s]), *p = dir ? pl_join(dir, "index.json") : NULL;
    int rc = -1;
    if (p) {
        int64_t b;
        rc = rs_sha256_file(p, fp, &b, err);
    } else {
        rs_errk(err, RS_ENOMEM, "out of memory");
    }
    free(dir);
    free(p);
    return rc;
}

int pl_store_read_hook(pl_ctx *c, int s, const char *hook, float **A, int64_t *rows, int64_t *w, rs_err *err) {
    char *dir = pl_join(c->acts, PL_STORE_NAME[s]);
    store_reader *r = NULL;
    int rc = !dir ? rs_errk(err, RS_ENOMEM, "out of memory")
                  : store_reader_open(&r, dir, err) || store_read_f32(r, hook, A, rows, w, err) ? -1 : 0;
    store_reader_close(r);
    free(dir);
    return rc;
}

/* ---- the stage: one unit per store (run.c's protocol, stages/store_NAME.done) ---- */

/* What the store units share: the models (opened when a store needs one), the prompt, the
 * hook requests. */
typedef struct {
    models m;
    hook_request *hooks;
    int max_hooks;
    int n_patches;
    char prompt_fp[65];
    int *owner[PL_N_STORES]; /* job arrays: the task of each shard of each used store (NULL: none) */
} extract_state;

static int unit_fp(pl_ctx *c, void *arg, int s, char fp[65], rs_err *err) {
    extract_state *x = arg;
    int64_t shard = auto_shard(c, s, (int)x->m.n_prompt, x->n_patches);
    if (store_fingerprint(c, s, shard, x->prompt_fp, fp)) return rs_errk(err, RS_ENOMEM, "out of memory");
    return 0;
}

/* The store's spec.manifest_hash against fp: a store resumes (or is complete) only for its
 * own fingerprint; an unreadable index.json counts as written for other inputs. */
static int unit_written(pl_ctx *c, int s, const char *fp) {
    char have[80];
    char *dir = pl_join(c->acts, PL_STORE_NAME[s]);
    if (!dir) return 0; /* out of memory: as if absent (not complete; the store's open checks its spec) */
    existing_fp(dir, have);
    free(dir);
    return !have[0] ? 0 : !strcmp(have, fp) ? 1 : -1;
}

static void unit_remove(pl_ctx *c, int s) {
    char *dir = pl_join(c->acts, PL_STORE_NAME[s]);
    if (dir) pl_remove_store(dir);
    free(dir);
}

/* Write store s with fingerprint fp (its spec.manifest_hash), resuming at its first missing
 * shard. */
/* The spec of store s for fingerprint fp; *hl receives its hook list (the spec's hooks; to free). */
static int store_spec_of(pl_ctx *c, const extract_state *x, int s, const char *fp, store_spec *spec, char **hl,
                         rs_err *err) {
    if (!(*hl = hooks_csv_n(c->cfg, store_n_hooks(c, s)))) return rs_errk(err, RS_ENOMEM, "out of memory");
    *spec = (store_spec){.model = s != PL_LLM_TEXT ? c->vlm_name : c->llm_name, .hooks = *hl,
                         .pooling = rs_pool_name(store_pool(c, s)), .manifest_hash = fp, .n_inputs = store_inputs(c, s),
                         .shard_inputs = auto_shard(c, s, (int)x->m.n_prompt, x->n_patches)};
    return 0;
}

/* Open the model store s reads (once) and parse its hooks into x->hooks. */
static int store_models(pl_ctx *c, extract_state *x, int s, rs_err *err) {
    const rs_config *cfg = c->cfg;
    models *m = &x->m;
    int vlm = s != PL_LLM_TEXT;
    if (!vlm && !m->llm) {
        if (gemma2_open(&m->llm, cfg->llm, err)) return -1;
        m->llm->be = rs_backend_for(cfg->precision);
    }
    if (vlm && !m->vlm) {
        if (paligemma_open(&m->vlm, cfg->vlm, err)) return -1;
        paligemma_set_backend(m->vlm, rs_backend_for(cfg->precision)); /* tower, projector and decoder */
    }
    return hooks_parse(c, m, s, x->hooks, err);
}

static int unit_run(pl_ctx *c, void *arg, int s, const char *fp, rs_err *err) {
    extract_state *x = arg;
    models *m = &x->m;
    char *hl = NULL, *dir = pl_join(c->acts, PL_STORE_NAME[s]);
    rs_store *st = NULL;
    int rc = -1;
    if (!dir) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    int64_t shard = auto_shard(c, s, (int)m->n_prompt, x->n_patches);
    if (pl_mkdir(dir, err)) goto done;
    int vlm = s != PL_LLM_TEXT;
    store_spec spec;
    if (store_models(c, x, s, err) || store_spec_of(c, x, s, fp, &spec, &hl, err)) goto done;
    int64_t n = spec.n_inputs;
    if (store_open(&st, dir, &spec, err)) goto done;
    int64_t n_shards = (n + shard - 1) / shard, k0 = store_next_shard(st);
    if (k0 > 0 && k0 < n_shards)
        pl_log(c, "extract", "%s: resuming at shard %lld of %lld", PL_STORE_NAME[s], (long long)k0 + 1,
               (long long)n_shards);
    else if (k0 == 0)
        pl_log(c, "extract", "%s: %lld inputs in %lld shards of %lld (%s)", PL_STORE_NAME[s], (long long)n,
               (long long)n_shards, (long long)shard, vlm ? c->vlm_name : c->llm_name);
    rs_progress prog;
    char label[64];
    snprintf(label, sizeof label, "extract %s (inputs)", PL_STORE_NAME[s]);
    rs_progress_start(&prog, label, n);
    prog.quiet = c->opt->quiet;
    for (int64_t k = k0; k < n_shards; k++) {
        int64_t first, count;
        store_shard_range(&spec, k, &first, &count);
        if (do_shard(c, s, m, st, k, first, count, x->hooks, err)) {
            rs_err_prefix(err, "extract %s shard %lld", PL_STORE_NAME[s], (long long)k);
            goto done;
        }
        rs_progress_update(&prog, first + count);
    }
    rs_progress_finish(&prog);
    if (!store_is_complete(st) && store_finalize(st, err)) goto done;
    store_close(st);
    st = NULL;
    pl_log(c, "extract", "%s: complete (%s)", PL_STORE_NAME[s], dir);
    rc = 0;
done:
    store_close(st);
    free(hl);
    free(dir);
    return rc;
}


/* ---- job arrays: tasks write store parts, the merge writes the indexes (docs/cluster.md) ---- */

/* Cost of shard k of store s, in tokens read: the caption's tokens, the prefix (image
 * patches, <bos>, prompt, "\n") of every image input. */
static double shard_cost(const pl_ctx *c, const extract_state *x, int s, int64_t first, int64_t count) {
    double prefix = (double)x->n_patches + (double)x->m.n_prompt + 1, t = 0;
    if (!PL_IS_CAPTION_STORE(s)) return prefix * (double)count;
    for (int64_t i = first; i < first + count; i++) t += (double)c->text_len[i] + (PL_IS_COND(s) ? prefix : 0);
    return t;
}

/* x->owner[s][k]: the task of n_tasks that writes shard k of store s. Every shard of every
 * store the config uses is one item (whether written already or not, so that every task and
 * the merge compute the same assignment), balanced by shard_cost (pl_assign). */
static int assign_shards(pl_ctx *c, extract_state *x, int n_tasks, rs_err *err) {
    int64_t n_items = 0, base[PL_N_STORES], nsh[PL_N_STORES];
    for (int s = 0; s < PL_N_STORES; s++) {
        base[s] = n_items;
        nsh[s] = 0;
        if (!pl_store_used(c, s)) continue;
        int64_t S = auto_shard(c, s, (int)x->m.n_prompt, x->n_patches);
        nsh[s] = (store_inputs(c, s) + S - 1) / S;
        n_items += nsh[s];
    }
    double *cost = malloc((size_t)(n_items + 1) * sizeof *cost);
    int *owner = malloc((size_t)(n_items + 1) * sizeof *owner), rc = -1;
    if (!cost || !owner) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int s = 0; s < PL_N_STORES; s++) {
        int64_t S = nsh[s] ? auto_shard(c, s, (int)x->m.n_prompt, x->n_patches) : 1;
        for (int64_t k = 0; k < nsh[s]; k++) {
            int64_t first = k * S, count = store_inputs(c, s) - first < S ? store_inputs(c, s) - first : S;
            cost[base[s] + k] = shard_cost(c, x, s, first, count);
        }
    }
    if (pl_assign(cost, n_items, n_tasks, owner, err)) goto done;
    for (int s = 0; s < PL_N_STORES; s++) {
        if (!nsh[s]) continue;
        if (!(x->owner[s] = malloc((size_t)nsh[s] * sizeof *x->owner[s]))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        memcpy(x->owner[s], owner + base[s], (size_t)nsh[s] * sizeof *owner);
    }
    rc = 0;
done:
    free(cost);
    free(owner);
    return rc;
}

/* Is store s complete for fp (its marker and a complete index.json, e.g. merged before)? */
static int store_complete(pl_ctx *c, int s, const char *fp) {
    char m[160], have[80];
    int complete;
    snprintf(m, sizeof m, "store_%s", PL_STORE_NAME[s]);
    if (!pl_marker_matches(c, m, fp)) return 0;
    char *dir = pl_join(c->acts, PL_STORE_NAME[s]);
    if (!dir) return 0;
    existing_fp_c(dir, have, &complete);
    free(dir);
    return complete && !strcmp(have, fp);
}

/* Task opt->task of opt->n_tasks: claim a part of every unfinished store it owns shards of
 * (under the setup lock, taken again here, so that two tasks with the same --shard or another
 * N are refused before anything is written), release the setup lock, then write the shards. */
static int extract_task(pl_ctx *c, extract_state *x, rs_err *err) {
    const int me = c->opt->task, N = c->opt->n_tasks;
    rs_store *part[PL_N_STORES] = {0};
    char fp[PL_N_STORES][65];
    int64_t mine = 0, todo = 0, done_before = 0;
    double my_cost = 0, all_cost = 0;
    int rc = -1, n_complete = 0;
    char *hl = NULL;
    int64_t *ks = NULL;
    if (assign_shards(c, x, N, err) || pl_task_setup_lock(c, err)) goto done;
    for (int s = 0; s < PL_N_STORES; s++) {
        if (!pl_store_used(c, s)) continue;
        if (unit_fp(c, x, s, fp[s], err)) goto done;
        store_spec spec;
        free(hl);
        if (store_spec_of(c, x, s, fp[s], &spec, &hl, err)) goto done;
        int64_t nsh = (spec.n_inputs + spec.shard_inputs - 1) / spec.shard_inputs, n_mine = 0;
        for (int64_t k = 0; k < nsh; k++) {
            int64_t first, count;
            store_shard_range(&spec, k, &first, &count);
            double cst = shard_cost(c, x, s, first, count);
            all_cost += cst;
            if (x->owner[s][k] == me) my_cost += cst, n_mine++;
        }
        mine += n_mine;
        if (store_complete(c, s, fp[s])) {
            n_complete++;
            done_before += n_mine;
            continue;
        }
        char *dir = pl_join(c->acts, PL_STORE_NAME[s]);
        if (!dir) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        int removed = rs_is_dir(dir) ? store_parts_remove_stale(dir, fp[s]) : 0;
        if (removed) pl_log(c, "extract", "%s: inputs changed since it was written; %d stale part/index files removed",
                            PL_STORE_NAME[s], removed);
        int r = store_parts_check(dir, N, err);
        if (!r && n_mine) {
            free(ks);
            if (!(ks = malloc((size_t)n_mine * sizeof *ks))) r = rs_errk(err, RS_ENOMEM, "out of memory");
            int64_t q = 0;
            for (int64_t k = 0; !r && k < nsh; k++)
                if (x->owner[s][k] == me) ks[q++] = k;
            if (!r) r = store_open_part(&part[s], dir, &spec, me, N, ks, n_mine, err);
            if (!r) {
                todo += store_part_remaining(part[s]);
                done_before += n_mine - store_part_remaining(part[s]);
            }
        }
        free(dir);
        if (r) goto done;
    }
    pl_task_setup_done(c); /* the other tasks may set up now */
    pl_log(c, "extract", "task %d of %d: %lld shard%s (%.1f%% of the tokens), %lld already written, %d complete store%s",
           me, N, (long long)mine, mine == 1 ? "" : "s", all_cost > 0 ? 100 * my_cost / all_cost : 0.0,
           (long long)done_before, n_complete, n_complete == 1 ? "" : "s");
    for (int s = 0; s < PL_N_STORES; s++) {
        if (!part[s] || !store_part_remaining(part[s])) continue;
        store_spec spec;
        free(hl);
        if (store_models(c, x, s, err) || store_spec_of(c, x, s, fp[s], &spec, &hl, err)) goto done;
        int64_t nsh = (spec.n_inputs + spec.shard_inputs - 1) / spec.shard_inputs;
        for (int64_t k = 0; k < nsh; k++) {
            if (x->owner[s][k] != me || store_part_has(part[s], k)) continue;
            int64_t first, count;
            store_shard_range(&spec, k, &first, &count);
            pl_log(c, "extract", "%s: shard %lld of %lld (inputs %lld..%lld)", PL_STORE_NAME[s], (long long)k + 1,
                   (long long)nsh, (long long)first, (long long)(first + count - 1));
            if (do_shard(c, s, &x->m, part[s], k, first, count, x->hooks, err)) {
                rs_err_prefix(err, "extract %s shard %lld", PL_STORE_NAME[s], (long long)k);
                goto done;
            }
        }
    }
    pl_log(c, "extract", "task %d of %d: %s; merge with `reprshift merge %s` when every task is done", me, N,
           todo ? "its shards are written" : "its shards were complete already", c->out);
    rc = 0;
done:
    for (int s = 0; s < PL_N_STORES; s++) store_close(part[s]);
    free(hl);
    free(ks);
    return rc;
}

/* The merge, for store s: every shard written by some task, then index.json (unit_run of
 * the merge: the protocol of run.c writes the marker after it). */
static int unit_merge(pl_ctx *c, void *arg, int s, const char *fp, rs_err *err) {
    extract_state *x = arg;
    store_spec spec;
    char *hl = NULL, *dir = pl_join(c->acts, PL_STORE_NAME[s]);
    int rc = !dir ? rs_errk(err, RS_ENOMEM, "out of memory") : store_spec_of(c, x, s, fp, &spec, &hl, err);
    if (!rc) rc = store_merge_parts(dir, &spec, x->owner[s], c->merge_tasks, 0, err);
    if (!rc)
        pl_log(c, "extract", "%s: merged, %lld shard%s", PL_STORE_NAME[s],
               (long long)((spec.n_inputs + spec.shard_inputs - 1) / spec.shard_inputs),
               spec.n_inputs > spec.shard_inputs ? "s" : "");
    free(hl);
    free(dir);
    return rc;
}

static const pl_units MERGE_UNITS = {PL_N_STORES, PL_STORE_NAME, "store_", pl_store_used, unit_fp,
                                     unit_written, unit_remove, unit_merge};
static const pl_stage_def MERGE_STAGE = {"extract", NULL, NULL, NULL, NULL, 0, NULL, &MERGE_UNITS};

/* Check every unfinished store before merging any: one error naming all that is missing. */
static int merge_check(pl_ctx *c, extract_state *x, rs_err *err) {
    char msg[RS_ERR_MAX] = "";
    int bad = 0, n = 0;
    if (c->merge_tasks > 0 && assign_shards(c, x, c->merge_tasks, err)) return -1;
    for (int s = 0; s < PL_N_STORES; s++) {
        if (!pl_store_used(c, s)) continue;
        n++;
        char fp[65], *hl = NULL, *dir = pl_join(c->acts, PL_STORE_NAME[s]);
        store_spec spec;
        rs_err e = {0};
        int r = !dir ? rs_errk(err, RS_ENOMEM, "out of memory") : unit_fp(c, x, s, fp, err);
        if (!r && !store_complete(c, s, fp) && !(r = store_spec_of(c, x, s, fp, &spec, &hl, err)) &&
            store_merge_parts(dir, &spec, x->owner[s], c->merge_tasks, 1, &e)) {
            size_t L = strlen(msg), m = strlen(e.msg);
            if (bad && L + 2 < sizeof msg) memcpy(msg + L, "; ", 3), L += 2;
            if (L + m >= sizeof msg) m = sizeof msg - 1 - L;
            memcpy(msg + L, e.msg, m);
            msg[L + m] = 0;
            bad++;
        }
        free(hl);
        free(dir);
        if (r) return -1;
    }
    if (bad) return rs_errf(err, "merge: %d of %d stores cannot be merged: %s", bad, n, msg);
    return 0;
}

static const pl_units EXTRACT_UNITS = {PL_N_STORES, PL_STORE_NAME, "store_", pl_store_used, unit_fp,
                                       unit_written, unit_remove, unit_run};
static const pl_stage_def EXTRACT_STAGE = {"extract", NULL, NULL, NULL, NULL, 0, NULL, &EXTRACT_UNITS};

int pl_stage_extract(pl_ctx *c, rs_err *err) {
    const rs_config *cfg = c->cfg;
    extract_state x;
    memset(&x, 0, sizeof x);
    strcpy(x.prompt_fp, "-");
    x.max_hooks = cfg->n_hooks + cfg->n_vision_hooks;
    x.hooks = calloc((size_t)x.max_hooks + 1, sizeof *x.hooks);
    int rc = -1;
    if (!x.hooks) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    /* a task: the tokenization below writes nothing shared, so other tasks may set up
       meanwhile; it takes the setup lock again to claim its parts (extract_task) */
    if (c->opt->n_tasks > 0) pl_task_setup_done(c);
    if (tokenize_captions(c, err)) goto done;
    paligemma_config pc;
    if (paligemma_config_load(cfg->vlm, &pc, err)) goto done;
    x.n_patches = (pc.vision.image_size / pc.vision.patch_size) * (pc.vision.image_size / pc.vision.patch_size);
    if (c->n_image) {
        if (pl_prompt_ids(c, &x.m.prompt, &x.m.n_prompt, err)) goto done;
        rs_sha256_hex(x.m.prompt, x.m.n_prompt * sizeof *x.m.prompt, x.prompt_fp);
    }
    if (pl_store_used(c, PL_VLM_CAPTION) && rs_config_has_condition(cfg, "vlm_mismatch") &&
        !pl_store_used(c, PL_VLM_MISMATCH))
        pl_log(c, "extract", "vlm_mismatch: skipped, every image has the same label (no image of another group)");
    if (pl_store_used(c, PL_VLM_CAPTION) || pl_store_used(c, PL_VLM_MISMATCH) || pl_store_used(c, PL_VLM_BLANK)) {
        if (condition_images(c, err) || check_suffix_alignment(c, err) || pl_eos_id(c, &x.m.eos, err)) goto done;
    }
    if (c->opt->n_tasks > 0) rc = extract_task(c, &x, err);
    else if (c->opt->merge) rc = merge_check(c, &x, err) ? -1 : pl_run_units(c, &MERGE_STAGE, &x, err);
    else rc = pl_run_units(c, &EXTRACT_STAGE, &x, err);
done:
    for (int s = 0; s < PL_N_STORES; s++) free(x.owner[s]);
    if (x.hooks) hook_requests_free(x.hooks, x.max_hooks);
    free(x.hooks);
    free(x.m.prompt);
    gemma2_close(x.m.llm);
    paligemma_close(x.m.vlm);
    return rc;
}

/* ---- features for the analyses ---- */

int pl_store_features(pl_ctx *c, int s, const char *hook, float **X, int *n, int *d, rs_err *err) {
    char *dir = pl_join(c->acts, PL_STORE_NAME[s]);
    store_reader *r = NULL;
    float *A = NULL;
    int32_t *ids = NULL;
    int64_t *off = NULL, rows, w, n_in, rr, ww;
    int rc = -1;
    *X = NULL;
    if (!dir) return rs_errk(err, RS_ENOMEM, "out of memory");
    if (store_reader_open(&r, dir, err) || store_read_f32(r, hook, &A, &rows, &w, err)) goto done;
    if (!PL_IS_CAPTION_STORE(s)) {
        *X = A;
        A = NULL;
        *n = (int)rows;
        *d = (int)w;
        rc = 0;
        goto done;
    }
    if (store_read_raw(r, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, err) ||
        store_read_offsets(r, "offsets", &off, &n_in, err))
        goto done;
    float *out = calloc((size_t)(n_in ? n_in : 1) * (size_t)w, sizeof *out);
    if (!out) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    int last = !strcmp(c->cfg->pool, "last");
    for (int64_t i = 0; i < n_in; i++) {
        int64_t t0 = off[i], t1 = off[i + 1], cnt = 0;
        float *o = out + (size_t)i * w;
        if (last && t1 > t0) {
            memcpy(o, A + (size_t)(t1 - 1) * w, (size_t)w * sizeof *o);
            continue;
        }
        /* mean over the included tokens (not pad 0, eos 1, bos 2, nor whitespace-only pieces) */
        double *acc = calloc((size_t)w, sizeof *acc);
        if (!acc) { free(out); rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        for (int pass = 0; pass < 2 && cnt == 0; pass++)
            for (int64_t t = t0; t < t1; t++) {
                if (pass == 0 && !pl_token_included(c, ids[t])) continue; /* second pass: no content token */
                for (int64_t k = 0; k < w; k++) acc[k] += A[(size_t)t * w + k];
                cnt++;
            }
        for (int64_t k = 0; k < w; k++) o[k] = cnt ? (float)(acc[k] / cnt) : 0.0f;
        free(acc);
    }
    *X = out;
    *n = (int)n_in;
    *d = (int)w;
    rc = 0;
done:
    free(A);
    free(ids);
    free(off);
    store_reader_close(r);
    free(dir);
    return rc;
}
