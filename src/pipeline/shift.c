/* Shift stage: LLM vs VLM decoder on the same caption tokens, one `shift_run` per
 * captured hook (src/analysis/shift_run.c; SAE metrics where the layer's SAE reads that
 * hook), merged into results/shift.json (the schema `reprshift shift` writes, with
 * "layer" set) + per-hook CSVs + shift_summary.csv; and results/sae_fit.json: per layer
 * and model the SAE fit (from the shift run) and the spliced CE loss recovered on the
 * same captions, with a percentile-bootstrap interval over captions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "base/util.h"
#include "reprshift/fileio.h"
#include "reprshift/gemma2.h"
#include "base/jsonutil.h"
#include "reprshift/paligemma.h"
#include "reprshift/probe.h"
#include "reprshift/progress.h"
#include "reprshift/safetensors.h"
#include "reprshift/sae.h"
#include "reprshift/shift_run.h"
#include "reprshift/splice.h"
#include "reprshift/store.h"
#include "reprshift/version.h"

/* A per-token store as a shift source (shift_run.h): token ids and offsets read once, each
 * hook's rows read when the analysis asks for them. */
struct pl_store_src {
    store_reader *r;
    int32_t *ids;
    int64_t *off;
    char *dir;
};

static int store_src_read(void *ctx, const char *hook, const float **data, float **owned, int64_t *rows, int *width,
                          const char **name, rs_err *err) {
    pl_store_src *s = ctx;
    int64_t w = 0;
    if (!hook) return rs_errf(err, "%s: no hook named", s->dir);
    if (store_read_f32(s->r, hook, owned, rows, &w, err)) return -1;
    *data = *owned;
    *width = (int)w;
    *name = hook;
    return 0;
}

void pl_store_source_close(pl_store_src *s) {
    if (!s) return;
    store_reader_close(s->r);
    free(s->ids);
    free(s->off);
    free(s->dir);
    free(s);
}

int pl_store_source(pl_ctx *c, int store, pl_store_src **out, shift_acts_src *src, rs_err *err) {
    pl_store_src *s = calloc(1, sizeof *s);
    int64_t n_tok = 0, w = 0, n_in = 0;
    *out = NULL;
    if (!s || !(s->dir = pl_join(c->acts, PL_STORE_NAME[store]))) {
        free(s);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    if (store_reader_open(&s->r, s->dir, err) ||
        store_read_raw(s->r, "token_ids", RS_DT_I32, (void **)&s->ids, &n_tok, &w, err) ||
        store_read_offsets(s->r, "offsets", &s->off, &n_in, err)) {
        pl_store_source_close(s);
        return -1;
    }
    if (n_in < 1 || s->off[n_in] != n_tok) {
        rs_errf(err, "%s: offsets do not cover the %lld token rows", s->dir, (long long)n_tok);
        pl_store_source_close(s);
        return -1;
    }
    /* the special ids of both models' config.json (pl_validate_models), as every caption
       store's non-content tokens (pl_token_included) */
    *src = (shift_acts_src){.label = s->dir, .ids = s->ids, .off = s->off, .n_tok = n_tok, .n_in = n_in,
                            .n_special = 6, .read = store_src_read, .ctx = s};
    _Static_assert(sizeof c->special_ids <= sizeof src->special, "special ids");
    memcpy(src->special, c->special_ids, sizeof c->special_ids);
    *out = s;
    return 0;
}

/* numpy-style linear-interpolated percentile of sorted v[n] */
static double percentile(const double *v, int n, double q) {
    if (n <= 0) return NAN;
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

typedef struct {
    double clean, spliced, zero, recovered, lo, hi;
    int64_t n_pred;
} ce_stat;

/* The convention of the pipeline's spliced CE: saes.ce_convention (default sae-lens, as
 * `sae splice`). */
static splice_ce_convention pl_ce_convention(const pl_ctx *c) {
    return c->cfg->sae_ce_convention == SPLICE_CE_REPRSHIFT_V1 ? SPLICE_CE_REPRSHIFT_V1 : SPLICE_CE_SAE_LENS;
}

/* Spliced CE over all captions, batches of whole captions; bootstrap over captions. */
static int ce_eval(pl_ctx *c, const gemma2_model *dec, int pos_offset, const rs_sae *sae, const char *hook,
                   ce_stat *out, rs_err *err) {
    int n = c->n_text, rc = -1;
    double *seq[3] = {calloc((size_t)n, sizeof(double)), calloc((size_t)n, sizeof(double)), calloc((size_t)n, sizeof(double))};
    double *w = calloc((size_t)n, sizeof(double)), *boot = NULL;
    int64_t *off = malloc(((size_t)n + 1) * sizeof *off);
    int32_t *ids = NULL;
    if (!seq[0] || !seq[1] || !seq[2] || !w || !off) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int i0 = 0; i0 < n;) {
        int i1 = i0;
        int64_t bt = 0;
        while (i1 < n && (i1 == i0 || bt + c->text_len[i1] <= c->cfg->batch_tokens)) bt += c->text_len[i1++];
        free(ids);
        ids = malloc((size_t)bt * sizeof *ids);
        if (!ids) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        off[0] = 0;
        for (int i = i0; i < i1; i++) {
            memcpy(ids + off[i - i0], c->text_ids[i], (size_t)c->text_len[i] * sizeof *ids);
            off[i - i0 + 1] = off[i - i0] + c->text_len[i];
        }
        gemma2_batch b = {.n_seqs = i1 - i0, .offsets = off, .ids = ids, .pos_offset = pos_offset};
        splice_ce r;
        if (splice_ce_eval(dec, sae, hook, &b, pl_ce_convention(c), 0, &r, err)) goto done;
        for (int i = i0; i < i1; i++) {
            seq[0][i] = r.seq_clean[i - i0];
            seq[1][i] = r.seq_spliced[i - i0];
            seq[2][i] = r.seq_zero[i - i0];
            w[i] = (double)r.seq_predictions[i - i0]; /* counted predictions (0: none, NAN means) */
        }
        splice_ce_free(&r);
        i0 = i1;
    }
    double S[3] = {0, 0, 0}, W = 0;
    for (int i = 0; i < n; i++)
        if (w[i] > 0) {
            for (int k = 0; k < 3; k++) S[k] += w[i] * seq[k][i];
            W += w[i];
        }
    if (W == 0) { rs_errf(err, "spliced CE: no caption has a counted next-token prediction"); goto done; }
    out->clean = S[0] / W;
    out->spliced = S[1] / W;
    out->zero = S[2] / W;
    out->n_pred = (int64_t)W;
    out->recovered = S[2] != S[0] ? (S[2] - S[1]) / (S[2] - S[0]) : NAN;
    out->lo = out->hi = NAN;
    int B = c->cfg->probes.bootstrap;
    if (B > 0) {
        boot = malloc((size_t)B * sizeof *boot);
        if (!boot) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        int nb = 0;
        for (int b = 0; b < B; b++) {
            double s[3] = {0, 0, 0};
            for (int j = 0; j < n; j++) {
                int i = (int)(rs_uniform_at(0x5eedce, (uint64_t)b * (uint64_t)n + (uint64_t)j) * n);
                if (i >= n) i = n - 1;
                for (int k = 0; k < 3; k++) s[k] += w[i] * (w[i] > 0 ? seq[k][i] : 0);
            }
            if (s[2] != s[0]) boot[nb++] = (s[2] - s[1]) / (s[2] - s[0]);
        }
        qsort(boot, (size_t)nb, sizeof *boot, rs_cmp_double);
        out->lo = percentile(boot, nb, 0.025);
        out->hi = percentile(boot, nb, 0.975);
    }
    rc = 0;
done:
    for (int k = 0; k < 3; k++) free(seq[k]);
    free(w);
    free(boot);
    free(off);
    free(ids);
    return rc;
}

/* results/sae_fit.json entry of one model at one layer: the SAE's fit (from the shift
 * analysis) and the spliced CE. */
static cJSON *fit_entry(pl_ctx *c, int side, int L, const char *hook, const char *sp, const rs_sae *sae,
                        const sae_fit_metrics *fm, const ce_stat *ce) {
    cJSON *e = cJSON_CreateObject();
    char label[300];
    snprintf(label, sizeof label, "%s L%d", side ? c->vlm_name : c->llm_name, L);
    cJSON_AddStringToObject(e, "model", label);
    const char *sb = strrchr(sp, '/');
    cJSON_AddStringToObject(e, "sae", sae->sae_name ? sae->sae_name : sb && sb[1] ? sb + 1 : sp);
    cJSON_AddStringToObject(e, "sae_path", sae->path);
    cJSON_AddStringToObject(e, "hook", hook);
    rs_json_add_num(e, "layer", L);
    rs_json_add_num(e, "n_rows", (double)fm->n_rows);
    cJSON *met = cJSON_AddObjectToObject(e, "metrics");
    cJSON_AddItemToObject(met, "ce_loss_recovered", rs_json_stat(ce->recovered, ce->lo, ce->hi));
    rs_json_add_num(met, "explained_variance", fm->explained_variance);
    rs_json_add_num(met, "l0", fm->l0);
    rs_json_add_num(met, "cossim", fm->cossim);
    rs_json_add_num(met, "relative_mse", fm->relative_mse);
    rs_json_add_num(met, "frac_dead", fm->frac_dead);
    cJSON *cj = cJSON_AddObjectToObject(e, "ce");
    rs_json_add_num(cj, "clean", ce->clean);
    rs_json_add_num(cj, "spliced", ce->spliced);
    rs_json_add_num(cj, "zero_ablated", ce->zero);
    rs_json_add_num(cj, "n_predictions", (double)ce->n_pred);
    rs_json_add_num(cj, "n_sequences", c->n_text);
    cJSON_AddStringToObject(cj, "convention", splice_ce_convention_name(pl_ce_convention(c)));
    rs_json_add_num(cj, "delta_lm_loss", ce->spliced - ce->clean);
    return e;
}

static void fit_notes(pl_ctx *c, cJSON *fit) {
    char ci[256];
    snprintf(ci, sizeof ci,
             "ce_loss_recovered: 95%% percentile bootstrap over captions (%d replicates); other metrics: point values",
             c->cfg->probes.bootstrap);
    cJSON_AddStringToObject(fit, "ci", ci);
    cJSON_AddStringToObject(fit, "ce_convention", splice_ce_convention_name(pl_ce_convention(c)));
    cJSON_AddStringToObject(fit, "ce_definition",
                            pl_ce_convention(c) == SPLICE_CE_SAE_LENS
                                ? "(CE_zero_ablation - CE_spliced) / (CE_zero_ablation - CE_clean), next-token CE "
                                  "on the captions, sae-lens convention: BOS/EOS/PAD rows keep their activation in "
                                  "the spliced pass, every row is zeroed in the zero-ablated pass, predictions made "
                                  "at BOS/EOS/PAD rows are not counted (docs/metrics.md, Spliced CE); delta_lm_loss "
                                  "= CE_spliced - CE_clean"
                                : "(CE_zero_ablation - CE_spliced) / (CE_zero_ablation - CE_clean), next-token CE "
                                  "on the captions, reprshift-v1 convention: BOS rows keep their activation in the "
                                  "spliced and zero-ablated passes, every prediction counted (docs/metrics.md, "
                                  "Spliced CE); delta_lm_loss = CE_spliced - CE_clean");
}

/* The base image of each caption, numbered by its first caption in the manifest: the
 * caption-to-caption floor pairs captions of one image, images in that order. New array. */
static int64_t *caption_images(const pl_ctx *c) {
    int gmax = 0;
    for (int t = 0; t < c->n_text; t++) gmax = c->text_group[t] > gmax ? c->text_group[t] : gmax;
    int64_t *img_of = malloc(((size_t)gmax + 1) * sizeof *img_of), n_img = 0;
    int64_t *text_image = malloc(((size_t)c->n_text + 1) * sizeof *text_image);
    if (!text_image || !img_of) {
        free(img_of);
        free(text_image);
        return NULL;
    }
    for (int g = 0; g <= gmax; g++) img_of[g] = -1;
    for (int t = 0; t < c->n_text; t++) {
        if (img_of[c->text_group[t]] < 0) img_of[c->text_group[t]] = n_img++;
        text_image[t] = img_of[c->text_group[t]];
    }
    free(img_of);
    return text_image;
}

/* The shift stage's fingerprint (with SAEs, the spliced CE convention too: a run made
 * before it existed, under what is now reprshift-v1, is redone; without, unchanged). */
int pl_shift_fp(pl_ctx *c, char fp[65], rs_err *err) {
    const rs_config *cfg = c->cfg;
    char fa_fp[65], fb_fp[65];
    if (pl_store_fp(c, PL_LLM_TEXT, fa_fp, err) || pl_store_fp(c, PL_VLM_TEXT, fb_fp, err)) return -1;
    pl_fp(fp, "shift v3 %s a=%s b=%s sae=%s path=%s hook=%s boot=%d perm=%d%s%s", RS_VERSION, fa_fp, fb_fp,
          c->sae_fp, cfg->has_saes ? cfg->sae_path : "-", cfg->sae_hook ? cfg->sae_hook : "-", cfg->probes.bootstrap,
          cfg->shift_permutations, cfg->has_saes ? " ce=" : "",
          cfg->has_saes ? splice_ce_convention_name(pl_ce_convention(c)) : "");
    return 0;
}

int pl_shift_used(const pl_ctx *c) { return pl_store_used(c, PL_LLM_TEXT); }

/* Compute every hook's comparison into one run (q-values over the whole file: metric x
 * layer), then write shift.json, shift_summary.csv, the per-hook CSVs and sae_fit.json. */
int pl_shift_run(pl_ctx *c, const char **note, rs_err *err) {
    (void)note;
    const rs_config *cfg = c->cfg;
    char *shift_path = pl_join(c->results, "shift.json"), *fit_path = pl_join(c->results, "sae_fit.json"),
         *summ_path = pl_join(c->results, "shift_summary.csv");
    char *tokp = cfg->tokenizer ? strdup(cfg->tokenizer) : rs_path_join(cfg->llm, "tokenizer.json");
    pl_store_src *store_a = NULL, *store_b = NULL;
    shift_acts_src src_a, src_b;
    shift_run_result *res = NULL;
    cJSON *merged = NULL, *fit = NULL;
    int64_t *text_image = NULL;
    char *summ = NULL;
    size_t summ_n = 0;
    FILE *summary = NULL;
    gemma2_model *llm = NULL;
    paligemma_model *vlm = NULL;
    rs_sae *sae = NULL;
    char *sp = NULL, *sh = NULL;
    int rc = -1;
    if (!shift_path || !fit_path || !summ_path || !tokp || !(fit = cJSON_CreateObject()) ||
        !(text_image = caption_images(c))) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    if (pl_store_source(c, PL_LLM_TEXT, &store_a, &src_a, err) || pl_store_source(c, PL_VLM_TEXT, &store_b, &src_b, err))
        goto done;
    shift_run_opts so = {.n_boot = cfg->probes.bootstrap, .seed = 0, .n_perm = cfg->shift_permutations,
                         .threads = c->coarse_threads, .top_k = 20, .tokenizer = rs_path_exists(tokp) ? tokp : NULL,
                         .input_image = text_image, .n_input_image = c->n_text};
    if (shift_run_begin(&so, &src_a, &src_b, &res, err)) goto done;
    cJSON *fit_models = cJSON_AddArrayToObject(fit, "models");
    for (int h = 0; h < cfg->n_hooks; h++) {
        const char *hook = cfg->hooks[h];
        int L = rs_hook_block_index(hook);
        int use_sae = 0;
        for (int i = 0; cfg->has_saes && L >= 0 && i < cfg->n_layers; i++)
            if (cfg->layers[i] == L) {
                free(sp);
                free(sh);
                sp = rs_config_sae_path(cfg, L);
                sh = rs_config_sae_hook(cfg, L);
                if (!sp) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
                sae_free(sae);
                sae = NULL;
                if (sae_load(&sae, sp, sh, err)) goto done;
                use_sae = sae->hook_name && !strcmp(sae->hook_name, hook);
            }
        pl_log(c, "shift", "%s: LLM vs VLM decoder on %d captions%s", hook, c->n_text, use_sae ? " (with SAE)" : "");
        shift_layer_spec spec = {.layer = L >= 0 ? L : h, .csv_layer = L, .hook = hook, .sae = use_sae ? sp : NULL,
                                 .sae_hook = use_sae ? sh : NULL};
        if (shift_run_add_layer(res, &src_a, &src_b, &spec, err)) goto done;
        const shift_layer *lay = &res->layers[res->n_layers - 1];
        /* SAE fit + spliced CE per model */
        for (int side = 0; use_sae && side < 2; side++) {
            if (side == 0 && !llm) {
                if (gemma2_open(&llm, cfg->llm, err)) goto done;
                llm->be = rs_backend_for(cfg->precision);
            }
            if (side == 1 && !vlm) {
                if (paligemma_open(&vlm, cfg->vlm, err)) goto done;
                paligemma_set_backend(vlm, rs_backend_for(cfg->precision)); /* tower, projector and decoder */
            }
            ce_stat ce = {0};
            pl_log(c, "shift", "%s: spliced CE (%s)", hook, side ? "VLM decoder" : "LLM");
            if (ce_eval(c, side ? vlm->text : llm, side ? 1 : 0, sae, hook, &ce, err)) {
                rs_err_prefix(err, "spliced CE, %s, %s", side ? c->vlm_name : c->llm_name, hook);
                goto done;
            }
            cJSON *e = fit_entry(c, side, L, hook, sp, sae, side ? &lay->fit_b : &lay->fit_a, &ce);
            if (!e || !cJSON_AddItemToArray(fit_models, e)) {
                cJSON_Delete(e);
                rs_errk(err, RS_ENOMEM, "out of memory");
                goto done;
            }
        }
        sae_free(sae);
        sae = NULL;
        free(sp);
        free(sh);
        sp = sh = NULL;
    }
    if (shift_run_finish(res, err)) goto done;
    for (int i = 0; i < res->n_layers; i++)
        if (shift_layer_write_csvs(res, &res->layers[i], c->results, err)) goto done;
    if (cJSON_GetArraySize(fit_models) > 0) {
        fit_notes(c, fit);
        if (pl_write_json(fit_path, fit, err)) goto done;
    }
    char la[300], lb[300];
    snprintf(la, sizeof la, "%s (LLM)", c->llm_name);
    snprintf(lb, sizeof lb, "%s (VLM decoder, captions only)", c->vlm_name);
    shift_json_labels lab = {.model_a = la, .model_b = lb, .n_inputs = c->n_text, .layer_last = 1};
    summary = open_memstream(&summ, &summ_n);
    int sr = summary ? shift_run_summary_csv(res, summary) : -1;
    if (summary && fclose(summary)) sr = -1;
    summary = NULL;
    if (sr || !(merged = shift_run_json(res, &lab))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (pl_write_text(summ_path, summ, err) || pl_write_json(shift_path, merged, err)) goto done;
    pl_log(c, "shift", "wrote %s%s", shift_path, cJSON_GetArraySize(fit_models) > 0 ? " and sae_fit.json" : "");
    rc = 0;
done:
    free(summ);
    cJSON_Delete(merged);
    cJSON_Delete(fit);
    shift_run_result_free(res);
    pl_store_source_close(store_a);
    pl_store_source_close(store_b);
    sae_free(sae);
    free(sp);
    free(sh);
    gemma2_close(llm);
    paligemma_close(vlm);
    free(shift_path);
    free(fit_path);
    free(summ_path);
    free(tokp);
    free(text_image);
    return rc;
}
