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
#include "reprshift/util.h"
#include "reprshift/fileio.h"
#include "reprshift/gemma2.h"
#include "reprshift/jsonutil.h"
#include "reprshift/paligemma.h"
#include "reprshift/probe.h"
#include "reprshift/progress.h"
#include "reprshift/safetensors.h"
#include "reprshift/sae.h"
#include "reprshift/shift_run.h"
#include "reprshift/splice.h"
#include "reprshift/store.h"
#include "reprshift/version.h"

/* A token store as one extract-format safetensors file (what shift_run reads). */
int pl_materialise(pl_ctx *c, int s, const char *path, rs_err *err) {
    char *dir = pl_join(c->acts, PL_STORE_NAME[s]);
    store_reader *r = NULL;
    st_writer *w = st_writer_new();
    float **data = calloc((size_t)c->cfg->n_hooks, sizeof *data);
    int32_t *ids = NULL;
    int64_t *off = NULL, n_in = 0, rows, width, rr, ww;
    int rc = -1;
    if (!dir || !w || !data) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (store_reader_open(&r, dir, err)) goto done;
    for (int h = 0; h < c->cfg->n_hooks; h++) {
        if (store_read_f32(r, c->cfg->hooks[h], &data[h], &rows, &width, err)) goto done;
        int64_t shape[2] = {rows, width};
        if (st_writer_add(w, c->cfg->hooks[h], RS_DT_F32, 2, shape, data[h], err)) goto done;
    }
    if (store_read_raw(r, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, err) ||
        store_read_offsets(r, "offsets", &off, &n_in, err))
        goto done;
    int64_t s1[1] = {rr}, s2[1] = {n_in + 1};
    if (st_writer_add(w, "token_ids", RS_DT_I32, 1, s1, ids, err) || st_writer_add(w, "offsets", RS_DT_I64, 1, s2, off, err) ||
        st_writer_meta(w, "pool", "none", err) ||
        st_writer_meta(w, "model", s == PL_LLM_TEXT ? c->llm_name : c->vlm_name, err) || st_writer_save(w, path, err))
        goto done;
    rc = 0;
done:
    for (int h = 0; data && h < c->cfg->n_hooks; h++) free(data[h]);
    free(data);
    free(ids);
    free(off);
    st_writer_free(w);
    store_reader_close(r);
    free(dir);
    return rc;
}

/* Move every CSV but summary.csv from src into dst; append summary rows (layer fixed). */
static int move_csvs(const char *src, const char *dst, int layer, FILE *summary, rs_err *err) {
    DIR *d = opendir(src);
    if (!d) return rs_errk(err, RS_EIO, "%s: cannot open folder", src);
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L < 5 || strcmp(e->d_name + L - 4, ".csv")) continue;
        char *from = pl_join(src, e->d_name), *to = pl_join(dst, e->d_name);
        if (!from || !to) rc = rs_errk(err, RS_ENOMEM, "out of memory");
        else if (!strcmp(e->d_name, "summary.csv")) {
            char *buf;
            size_t n;
            if (rs_read_file(from, 1u << 30, &buf, &n, err)) rc = -1;
            else {
                char *line = strchr(buf, '\n'); /* skip the header */
                while (line && line[1]) {
                    line++;
                    char *nl = strchr(line, '\n');
                    char *comma = strchr(line, ',');
                    if (comma && (!nl || comma < nl)) fprintf(summary, "%d%.*s\n", layer, (int)((nl ? nl : line + strlen(line)) - comma), comma);
                    line = nl;
                }
                free(buf);
            }
        } else if (rename(from, to)) {
            rc = rs_errf(err, "%s: cannot move to %s", from, to);
        }
        free(from);
        free(to);
    }
    closedir(d);
    return rc;
}

/* summary.csv text with the q_value column (the last) of every shift-metric row replaced
 * by the family-wide q in the merged layers (rows are "layer,hook,metric,...,q_value";
 * floor and fit rows have no test and keep their empty q). New string or NULL. */
static char *summary_family_q(const char *summ, const cJSON *layers) {
    char *out = NULL;
    size_t on = 0;
    FILE *f = open_memstream(&out, &on);
    if (!f) return NULL;
    const char *line = summ;
    int first = 1;
    while (line && *line) {
        const char *nl = strchr(line, '\n'), *end = nl ? nl : line + strlen(line);
        const char *c1 = memchr(line, ',', (size_t)(end - line)), *c2 = c1 ? memchr(c1 + 1, ',', (size_t)(end - c1 - 1)) : NULL;
        const char *c3 = c2 ? memchr(c2 + 1, ',', (size_t)(end - c2 - 1)) : NULL, *last = end;
        while (last > line && last[-1] != ',') last--;
        const cJSON *q = NULL;
        if (!first && c3 && last > line) {
            int L = atoi(line);
            const char *h0 = c1 + 1, *h1 = c2; /* the hook field, without the CSV quotes */
            if (h1 - h0 >= 2 && *h0 == '"' && h1[-1] == '"') h0++, h1--;
            const cJSON *e;
            cJSON_ArrayForEach(e, layers) {
                const cJSON *lj = cJSON_GetObjectItemCaseSensitive(e, "layer"), *hj = cJSON_GetObjectItemCaseSensitive(e, "hook");
                if (!cJSON_IsNumber(lj) || (int)lj->valuedouble != L || !cJSON_IsString(hj) ||
                    strlen(hj->valuestring) != (size_t)(h1 - h0) || strncmp(hj->valuestring, h0, (size_t)(h1 - h0)))
                    continue;
                char metric[96];
                snprintf(metric, sizeof metric, "%.*s", (int)(c3 - c2 - 1), c2 + 1);
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "shift"), metric);
                q = cJSON_GetObjectItemCaseSensitive(m, "q_value");
            }
        }
        if (q) {
            fprintf(f, "%.*s", (int)(last - line), line);
            if (cJSON_IsNumber(q)) fprintf(f, "%.9g", q->valuedouble);
            fputc('\n', f);
        } else {
            fprintf(f, "%.*s\n", (int)(end - line), line);
        }
        first = 0;
        line = nl ? nl + 1 : NULL;
    }
    fclose(f);
    return out;
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

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) rs_json_add_num(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static cJSON *stat_json(double v, double lo, double hi) {
    cJSON *o = cJSON_CreateObject();
    add_num(o, "value", v);
    add_num(o, "ci_lo", lo);
    add_num(o, "ci_hi", hi);
    return o;
}

int pl_stage_shift(pl_ctx *c, rs_err *err) {
    const rs_config *cfg = c->cfg;
    char *shift_path = pl_join(c->results, "shift.json"), *fit_path = pl_join(c->results, "sae_fit.json"),
         *summ_path = pl_join(c->results, "shift_summary.csv");
    char *fa = pl_join(c->work, "llm_text.safetensors"), *fb = pl_join(c->work, "vlm_text.safetensors");
    char *tokp = cfg->tokenizer ? strdup(cfg->tokenizer) : rs_path_join(cfg->llm, "tokenizer.json");
    cJSON *merged = NULL, *fit = NULL;
    int64_t *text_image = NULL;
    char *summ = NULL;
    size_t summ_n = 0;
    FILE *summary = NULL;
    gemma2_model *llm = NULL;
    paligemma_model *vlm = NULL;
    rs_sae *sae = NULL;
    int rc = -1;
    if (!shift_path || !fit_path || !summ_path || !fa || !fb || !tokp) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (!pl_store_used(c, PL_LLM_TEXT)) {
        pl_log(c, "shift", "skipped: the dataset has no captions");
        pl_stage_reset(c, "shift");
        unlink(shift_path);
        unlink(fit_path);
        rc = 0;
        goto done;
    }
    char fa_fp[65], fb_fp[65], fp[65];
    if (pl_store_fp(c, PL_LLM_TEXT, fa_fp, err) || pl_store_fp(c, PL_VLM_TEXT, fb_fp, err)) goto done;
    /* with SAEs, the spliced CE convention too (a run made before it existed, under what is
     * now reprshift-v1, is redone); without, the fingerprint is unchanged */
    pl_fp(fp, "shift v3 %s a=%s b=%s sae=%s path=%s hook=%s boot=%d perm=%d%s%s", RS_VERSION, fa_fp, fb_fp,
          c->sae_fp, cfg->has_saes ? cfg->sae_path : "-", cfg->sae_hook ? cfg->sae_hook : "-", cfg->probes.bootstrap,
          cfg->shift_permutations, cfg->has_saes ? " ce=" : "",
          cfg->has_saes ? splice_ce_convention_name(pl_ce_convention(c)) : "");
    if (pl_stage_done(c, "shift", fp) && rs_path_exists(shift_path)) {
        pl_log(c, "shift", "complete (skipped)");
        rc = 0;
        goto done;
    }
    pl_stage_reset(c, "shift");
    unlink(shift_path);
    unlink(fit_path);
    unlink(summ_path);
    if (pl_materialise(c, PL_LLM_TEXT, fa, err) || pl_materialise(c, PL_VLM_TEXT, fb, err)) goto done;
    /* the base image of each caption, numbered by its first caption in the manifest: the
     * caption-to-caption floor pairs captions of one image, images in that order */
    {
        int gmax = 0;
        for (int t = 0; t < c->n_text; t++) gmax = c->text_group[t] > gmax ? c->text_group[t] : gmax;
        int64_t *img_of = malloc(((size_t)gmax + 1) * sizeof *img_of), n_img = 0;
        text_image = malloc(((size_t)c->n_text + 1) * sizeof *text_image);
        if (!text_image || !img_of) { free(img_of); rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        for (int g = 0; g <= gmax; g++) img_of[g] = -1;
        for (int t = 0; t < c->n_text; t++) {
            if (img_of[c->text_group[t]] < 0) img_of[c->text_group[t]] = n_img++;
            text_image[t] = img_of[c->text_group[t]];
        }
        free(img_of);
    }
    merged = cJSON_CreateObject();
    fit = cJSON_CreateObject();
    summary = open_memstream(&summ, &summ_n);
    if (!merged || !fit || !summary) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    fputs("layer,hook,metric,value,ci_lo,ci_hi,p_value,null_lo,null_hi,q_value\n", summary);
    cJSON *layers = NULL;
    cJSON *fit_models = cJSON_AddArrayToObject(fit, "models");
    for (int h = 0; h < cfg->n_hooks; h++) {
        const char *hook = cfg->hooks[h];
        int L = rs_hook_block_index(hook);
        char *sp = NULL, *sh = NULL;
        int use_sae = 0;
        for (int i = 0; cfg->has_saes && L >= 0 && i < cfg->n_layers; i++)
            if (cfg->layers[i] == L) {
                sp = rs_config_sae_path(cfg, L);
                sh = rs_config_sae_hook(cfg, L);
                if (!sp) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
                if (sae_load(&sae, sp, sh, err)) { free(sp); free(sh); goto done; }
                use_sae = sae->hook_name && !strcmp(sae->hook_name, hook);
            }
        char sub[32];
        snprintf(sub, sizeof sub, "shift_%d", h);
        char *wd = pl_join(c->work, sub);
        if (!wd) { free(sp); free(sh); rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        pl_remove_flat_dir(wd);
        shift_run_opts so = {.acts_a = fa, .acts_b = fb, .sae = use_sae ? sp : NULL, .hook = hook,
                             .sae_hook = use_sae ? sh : NULL, .n_boot = cfg->probes.bootstrap, .seed = 0,
                             .n_perm = cfg->shift_permutations, .threads = c->coarse_threads,
                             .top_k = 20, .tokenizer = rs_path_exists(tokp) ? tokp : NULL, .out_dir = wd,
                             .input_image = text_image, .n_input_image = c->n_text};
        pl_log(c, "shift", "%s: LLM vs VLM decoder on %d captions%s", hook, c->n_text, use_sae ? " (with SAE)" : "");
        int r = shift_run(&so, err);
        cJSON *res = NULL;
        char *rp = r ? NULL : pl_join(wd, "results.json");
        if (!r) r = rp ? rs_json_load(rp, 1u << 30, &res, err) : rs_errk(err, RS_ENOMEM, "out of memory");
        free(rp);
        if (!r) r = move_csvs(wd, c->results, L, summary, err);
        pl_remove_flat_dir(wd);
        free(wd);
        if (r) {
            free(sp);
            free(sh);
            cJSON_Delete(res);
            goto done;
        }
        cJSON *lj = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "layers"), 0);
        if (!layers) {
            /* top-level fields from the first run, then our labels */
            cJSON *it;
            cJSON_ArrayForEach(it, res) {
                if (!strcmp(it->string, "layers") || !strcmp(it->string, "acts_a") || !strcmp(it->string, "acts_b") ||
                    !strcmp(it->string, "sae"))
                    continue;
                cJSON_AddItemToObject(merged, it->string, cJSON_Duplicate(it, 1));
            }
            char la[300], lb[300];
            snprintf(la, sizeof la, "%s (LLM)", c->llm_name);
            snprintf(lb, sizeof lb, "%s (VLM decoder, captions only)", c->vlm_name);
            cJSON_AddStringToObject(merged, "model_a", la);
            cJSON_AddStringToObject(merged, "model_b", lb);
            rs_json_add_num(merged, "n_inputs", c->n_text);
            layers = cJSON_AddArrayToObject(merged, "layers");
        }
        cJSON *lcopy = cJSON_Duplicate(lj, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(lcopy, "layer");
        rs_json_add_num(lcopy, "layer", L >= 0 ? L : h);
        cJSON_AddItemToArray(layers, lcopy);
        /* SAE fit + spliced CE per model */
        if (use_sae) {
            const cJSON *fj = cJSON_GetObjectItemCaseSensitive(lj, "fit");
            for (int side = 0; side < 2; side++) {
                if (side == 0 && !llm && gemma2_open(&llm, cfg->llm, err)) { free(sp); free(sh); cJSON_Delete(res); goto done; }
                if (side == 1 && !vlm && paligemma_open(&vlm, cfg->vlm, err)) { free(sp); free(sh); cJSON_Delete(res); goto done; }
                ce_stat ce = {0};
                pl_log(c, "shift", "%s: spliced CE (%s)", hook, side ? "VLM decoder" : "LLM");
                if (ce_eval(c, side ? vlm->text : llm, side ? 1 : 0, sae, hook, &ce, err)) {
                    rs_err_prefix(err, "spliced CE, %s, %s", side ? c->vlm_name : c->llm_name, hook);
                    free(sp);
                    free(sh);
                    cJSON_Delete(res);
                    goto done;
                }
                const cJSON *fm = cJSON_GetObjectItemCaseSensitive(fj, side ? "b" : "a");
                cJSON *e = cJSON_CreateObject();
                char label[300];
                snprintf(label, sizeof label, "%s L%d", side ? c->vlm_name : c->llm_name, L);
                cJSON_AddStringToObject(e, "model", label);
                const char *sb = strrchr(sp, '/');
                cJSON_AddStringToObject(e, "sae", sae->sae_name ? sae->sae_name : sb && sb[1] ? sb + 1 : sp);
                cJSON_AddStringToObject(e, "sae_path", sae->path);
                cJSON_AddStringToObject(e, "hook", hook);
                rs_json_add_num(e, "layer", L);
                const cJSON *nr = cJSON_GetObjectItemCaseSensitive(fm, "n_rows");
                rs_json_add_num(e, "n_rows", cJSON_IsNumber(nr) ? nr->valuedouble : 0);
                cJSON *met = cJSON_AddObjectToObject(e, "metrics");
                cJSON_AddItemToObject(met, "ce_loss_recovered", stat_json(ce.recovered, ce.lo, ce.hi));
                static const char *keep[] = {"explained_variance", "l0", "cossim", "relative_mse", "frac_dead"};
                for (int q = 0; q < 5; q++) {
                    const cJSON *v = cJSON_GetObjectItemCaseSensitive(fm, keep[q]);
                    if (v) cJSON_AddItemToObject(met, keep[q], cJSON_Duplicate(v, 1));
                }
                cJSON *cj = cJSON_AddObjectToObject(e, "ce");
                add_num(cj, "clean", ce.clean);
                add_num(cj, "spliced", ce.spliced);
                add_num(cj, "zero_ablated", ce.zero);
                rs_json_add_num(cj, "n_predictions", (double)ce.n_pred);
                rs_json_add_num(cj, "n_sequences", c->n_text);
                cJSON_AddStringToObject(cj, "convention", splice_ce_convention_name(pl_ce_convention(c)));
                add_num(cj, "delta_lm_loss", ce.spliced - ce.clean);
                cJSON_AddItemToArray(fit_models, e);
            }
        }
        cJSON_Delete(res);
        sae_free(sae);
        sae = NULL;
        free(sp);
        free(sh);
    }
    fclose(summary);
    summary = NULL;
    if (cJSON_GetArraySize(fit_models) > 0) {
        char ci[256];
        snprintf(ci, sizeof ci,
                 "ce_loss_recovered: 95%% percentile bootstrap over captions (%d replicates); other metrics: point values",
                 cfg->probes.bootstrap);
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
        if (pl_write_json(fit_path, fit, err)) goto done;
    }
    /* Benjamini–Hochberg over the whole file's family (metric × layer), not per hook run */
    int n_tests = 0;
    cJSON *all_layers = cJSON_GetObjectItemCaseSensitive(merged, "layers");
    if (all_layers && pl_bh_family(&all_layers, 1, &n_tests, err)) goto done;
    cJSON_DeleteItemFromObjectCaseSensitive(merged, "n_tests");
    cJSON_DeleteItemFromObjectCaseSensitive(merged, "multiple_comparisons");
    rs_json_add_num(merged, "n_tests", n_tests);
    cJSON_AddStringToObject(merged, "multiple_comparisons",
                            "q_value: Benjamini-Hochberg over the n_tests p-values of this file (metric x layer)");
    char *summ_q = summary_family_q(summ ? summ : "", all_layers);
    if (!summ_q) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    int wr = pl_write_text(summ_path, summ_q, err);
    free(summ_q);
    if (wr || pl_write_json(shift_path, merged, err)) goto done;
    unlink(fa);
    unlink(fb);
    if (pl_stage_mark(c, "shift", fp, err)) goto done;
    pl_log(c, "shift", "wrote %s%s", shift_path, cJSON_GetArraySize(fit_models) > 0 ? " and sae_fit.json" : "");
    rc = 0;
done:
    if (summary) fclose(summary);
    free(summ);
    cJSON_Delete(merged);
    cJSON_Delete(fit);
    sae_free(sae);
    gemma2_close(llm);
    paligemma_close(vlm);
    free(shift_path);
    free(fit_path);
    free(summ_path);
    free(fa);
    free(fb);
    free(tokp);
    free(text_image);
    return rc;
}
