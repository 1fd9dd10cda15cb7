/* SAE-training stage (docs/sae-training.md): per hook, an SAE (JumpReLU by default, or TopK)
 * trained on the VLM's own activations (store vlm_caption, or vlm_text: the caption content
 * tokens), saved as a sae-lens folder results/sae_train/<hook>/, and matched one-to-one by
 * decoder cosine against the configured SAE at that hook (sae_match_decoders: fraction of
 * pairs above the threshold with a bootstrap CI, random-direction and permuted-dimension
 * nulls). Writes results/sae_train.json and results/sae_train/<hook>/pairs.csv. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "base/jsonutil.h"
#include "reprshift/hooks.h"
#include "reprshift/probe.h"
#include "reprshift/sae.h"
#include "reprshift/sae_match.h"
#include "reprshift/sae_train.h"
#include "reprshift/stats.h"
#include "reprshift/store.h"
#include "reprshift/version.h"

static int st_store(const pl_ctx *c) { return c->cfg->sae_train.vlm_text ? PL_VLM_TEXT : PL_VLM_CAPTION; }

int pl_sae_train_used(const pl_ctx *c) { return c->cfg->sae_train.on && pl_store_used(c, st_store(c)); }

int pl_sae_train_fp(pl_ctx *c, char fp[65], rs_err *err) {
    char fs[65];
    if (pl_store_fp(c, st_store(c), fs, err)) return -1;
    char *sec = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c->cfg->resolved, "sae_train"));
    char *saes = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c->cfg->resolved, "saes"));
    size_t hl = 1;
    for (int h = 0; h < c->cfg->n_hooks; h++) hl += strlen(c->cfg->hooks[h]) + 1;
    char *hooks = malloc(hl);
    if (!sec || !hooks) {
        cJSON_free(sec), cJSON_free(saes), free(hooks);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    hooks[0] = 0;
    for (int h = 0; h < c->cfg->n_hooks; h++) strcat(strcat(hooks, c->cfg->hooks[h]), ",");
    pl_fp(fp, "sae_train v1 %s %s %s %s %s %s", RS_VERSION, fs, sec, saes ? saes : "-", c->sae_fp, hooks);
    cJSON_free(sec), cJSON_free(saes), free(hooks);
    return 0;
}

/* The configured SAE at the hook's layer when it reads this hook (else *out = NULL, *why set). */
static int reference_sae(pl_ctx *c, const char *hook, rs_sae **out, const char **why, rs_err *err) {
    const rs_config *cfg = c->cfg;
    *out = NULL;
    *why = cfg->has_saes ? "no configured SAE reads this hook" : "the config has no saes section";
    int L = rs_hook_block_index(hook);
    for (int i = 0; cfg->has_saes && L >= 0 && i < cfg->n_layers; i++) {
        if (cfg->layers[i] != L) continue;
        char *sp = rs_config_sae_path(cfg, L), *sh = rs_config_sae_hook(cfg, L);
        rs_sae *s = NULL;
        int rc = !sp ? rs_errk(err, RS_ENOMEM, "out of memory") : sae_load(&s, sp, sh, err);
        free(sp), free(sh);
        if (rc) return -1;
        if (s->hook_name && !strcmp(s->hook_name, hook)) {
            sae_free(*out);
            *out = s;
        } else sae_free(s);
    }
    return 0;
}

/* Remove results/sae_train/<hook>/ folders of an earlier run. */
static void remove_old(const char *root) {
    DIR *d = opendir(root);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = pl_join(root, e->d_name);
        if (p) pl_remove_flat_dir(p);
        free(p);
    }
    closedir(d);
    pl_remove_flat_dir(root);
}

/* sae_train.held_out: per caption, the dense index of its image among the held-out (test-split)
 * images, -1 for a training caption, -2 for a test caption without content tokens. A caption's
 * image is the image input of its group (the image it is read with, c->text_image when the
 * extract stage built it); its split is that image's manifest split (the caption row's own
 * when the group has no image row). */
typedef struct {
    int *img;     /* [n_text] */
    int G;        /* held-out images with at least one content token */
    int64_t n_test_rows, n_train_rows;
} held_split;

static int held_out_split(const pl_ctx *c, const int32_t *ids, const int64_t *off, held_split *hs, rs_err *err) {
    int n = c->n_text;
    int *map = malloc(((size_t)c->n_image + (size_t)n + 1) * sizeof *map);
    hs->img = malloc(((size_t)n + 1) * sizeof *hs->img);
    hs->G = 0, hs->n_test_rows = hs->n_train_rows = 0;
    if (!map || !hs->img) {
        free(map), free(hs->img), hs->img = NULL;
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int k = 0; k < c->n_image + n; k++) map[k] = -1;
    for (int i = 0; i < n; i++) {
        int j = c->text_image ? c->text_image[i] : -1;
        for (int q = 0; j < 0 && q < c->n_image; q++)
            if (c->image_group[q] == c->text_group[i]) j = q;
        const char *split = j >= 0 ? c->man->rows[c->image_row[j]].split : c->man->rows[c->text_row[i]].split;
        int64_t rows = 0;
        for (int64_t t = off[i]; t < off[i + 1]; t++) rows += pl_token_included(c, ids[t]);
        hs->img[i] = -1;
        if (strcmp(split, "test")) {
            hs->n_train_rows += rows;
            continue;
        }
        hs->n_test_rows += rows;
        if (!rows) {
            hs->img[i] = -2;
            continue;
        }
        int key = j >= 0 ? j : c->n_image + i; /* a caption without an image row stands for itself */
        if (map[key] < 0) map[key] = hs->G++;
        hs->img[i] = map[key];
    }
    free(map);
    return 0;
}

/* Fit of the trained SAE on the held-out rows H [n, w] (image g of each row in hi[]): FVU =
 * Σ‖x − x̂‖² / Σ‖x − mean‖² (mean over the rows of the replicate), L0 = mean active latents per
 * row, the fraction of latents that fire on none of the rows; 95% percentile bootstrap over
 * the G images (each resampled image with all its rows), B resamples, stream seed. */
static cJSON *held_out_json(const rs_sae *s, const float *H, const int *hi, int64_t n, int G, int B, uint64_t seed,
                            rs_err *err) {
    const int w = s->d_in, m = s->d_sae, nw = (m + 63) / 64;
    const int64_t CH = 256;
    double *e = calloc((size_t)G, sizeof *e), *l0 = calloc((size_t)G, sizeof *l0), *cnt = calloc((size_t)G, sizeof *cnt);
    double *s2 = calloc((size_t)G, sizeof *s2), *s1 = calloc((size_t)G * w, sizeof *s1), *tmp = malloc((size_t)w * sizeof *tmp);
    uint64_t *fired = calloc((size_t)G * nw, sizeof *fired), *any = malloc((size_t)nw * sizeof *any);
    float *acts = malloc((size_t)CH * m * sizeof *acts), *out = malloc((size_t)CH * w * sizeof *out);
    double *bf[3] = {malloc(((size_t)B + 1) * sizeof(double)), malloc(((size_t)B + 1) * sizeof(double)),
                     malloc(((size_t)B + 1) * sizeof(double))};
    int *wt = malloc((size_t)G * sizeof *wt);
    cJSON *o = NULL;
    if (!e || !l0 || !cnt || !s2 || !s1 || !tmp || !fired || !any || !acts || !out || !bf[0] || !bf[1] || !bf[2] || !wt) {
        rs_errk(err, RS_ENOMEM, "out of memory (held-out fit: %lld rows × %d latents)", (long long)n, m);
        goto done;
    }
    for (int64_t r0 = 0; r0 < n; r0 += CH) {
        int64_t nc = n - r0 < CH ? n - r0 : CH;
        if (sae_forward(s, H + (size_t)r0 * w, nc, acts, out, err)) goto done;
        for (int64_t r = 0; r < nc; r++) {
            const float *x = H + (size_t)(r0 + r) * w, *xh = out + (size_t)r * w, *f = acts + (size_t)r * m;
            int g = hi[r0 + r];
            double se = 0, q = 0, *acc = s1 + (size_t)g * w;
            for (int j = 0; j < w; j++) {
                double dlt = (double)x[j] - xh[j];
                se += dlt * dlt, q += (double)x[j] * x[j], acc[j] += x[j];
            }
            int a = 0;
            uint64_t *fw = fired + (size_t)g * nw;
            for (int i = 0; i < m; i++)
                if (f[i] > 0) a++, fw[i >> 6] |= UINT64_C(1) << (i & 63);
            e[g] += se, s2[g] += q, l0[g] += a, cnt[g] += 1;
        }
    }
    /* b = -1: the point estimates (each image once); b >= 0: bootstrap replicate b (image g
     * wt[g] times) */
    double val[3];
    for (int b = -1; b < B; b++) {
        if (b >= 0) {
            memset(wt, 0, (size_t)G * sizeof *wt);
            for (int j = 0; j < G; j++) {
                int g = (int)(rs_uniform_at(seed ^ UINT64_C(0x686f6c646f7574), (uint64_t)b * (uint64_t)G + (uint64_t)j) * G);
                wt[g < G ? g : G - 1]++;
            }
        }
        double E = 0, N = 0, S2 = 0, L = 0, c2 = 0;
        for (int j = 0; j < w; j++) tmp[j] = 0;
        for (int k = 0; k < nw; k++) any[k] = 0;
        for (int g = 0; g < G; g++) {
            int mult = b >= 0 ? wt[g] : 1;
            if (!mult) continue;
            E += mult * e[g], N += mult * cnt[g], S2 += mult * s2[g], L += mult * l0[g];
            const double *v = s1 + (size_t)g * w;
            for (int j = 0; j < w; j++) tmp[j] += mult * v[j];
            const uint64_t *fw = fired + (size_t)g * nw;
            for (int k = 0; k < nw; k++) any[k] |= fw[k];
        }
        for (int j = 0; j < w; j++) c2 += tmp[j] * tmp[j];
        double tv = N > 0 ? S2 - c2 / N : 0;
        int64_t alive = 0;
        for (int k = 0; k < nw; k++)
            for (uint64_t v = any[k]; v; v &= v - 1) alive++; /* set bits */
        double r[3] = {tv > 0 ? E / tv : NAN, N > 0 ? L / N : NAN, (double)(m - alive) / m};
        for (int q = 0; q < 3; q++) {
            if (b < 0) val[q] = r[q];
            else bf[q][b] = r[q];
        }
    }
    double lo[3] = {NAN, NAN, NAN}, hi_[3] = {NAN, NAN, NAN};
    for (int q = 0; q < 3 && B > 0; q++) lo[q] = stats_percentile(bf[q], B, 0.025), hi_[q] = stats_percentile(bf[q], B, 0.975);
    o = cJSON_CreateObject();
    if (!o) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    cJSON_AddStringToObject(o, "definition",
                            "fit of the trained SAE on the held-out rows (the caption content tokens of the images in the "
                            "manifest's test split, none of them trained on): fvu = sum of squared errors / total variance "
                            "around the held-out mean; l0 = mean active latents per row; dead_fraction = latents active on "
                            "no held-out row / d_sae");
    char ci[256];
    snprintf(ci, sizeof ci, "95%% percentile bootstrap over the held-out images (%d resamples, each image with all its "
             "caption tokens); n = rows (fvu, l0) or latents (dead_fraction)", B);
    cJSON_AddStringToObject(o, "ci", ci);
    rs_json_add_num(o, "n_images", G);
    rs_json_add_num(o, "n_rows", (double)n);
    const char *key[3] = {"fvu", "l0", "dead_fraction"};
    for (int q = 0; q < 3; q++) {
        cJSON *st = rs_json_stat(val[q], lo[q], hi_[q]);
        if (st) rs_json_add_num(st, "n", q < 2 ? (double)n : (double)m);
        cJSON_AddItemToObject(o, key[q], st);
    }
    rs_json_add_num(o, "dead_latents", round(val[2] * m));
done:
    free(e), free(l0), free(cnt), free(s2), free(s1), free(tmp), free(fired), free(any), free(acts), free(out), free(wt);
    for (int q = 0; q < 3; q++) free(bf[q]);
    return o;
}

static double num_or_nan_local(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static int one_hook(pl_ctx *c, int store, const char *hook, const int32_t *ids, int64_t n_ids, const held_split *hs,
                    const int64_t *off, const char *root, cJSON *arr, rs_err *err) {
    const rs_config *cfg = c->cfg;
    float *X = NULL, *H = NULL;
    int *hi = NULL;
    int64_t rows, w;
    rs_sae *own = NULL, *ref = NULL;
    sae_match_result mr = {0};
    char safe[200], *dir = NULL, *pairs = NULL, *csv = NULL;
    int rc = -1;
    pl_safe_name(hook, safe, sizeof safe);
    if (!(dir = pl_join(root, safe)) || !(pairs = pl_join(dir, "pairs.csv"))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (pl_store_read_hook(c, store, hook, &X, &rows, &w, err)) goto done;
    if (rows != n_ids) {
        rs_errf(err, "%s: %s has %lld rows but %lld token ids", hook, PL_STORE_NAME[store], (long long)rows, (long long)n_ids);
        goto done;
    }
    int64_t n = 0, nh = 0;
    if (hs) { /* held out: the test images' rows to H (image index in hi), the others compacted in X */
        if (!(H = malloc(((size_t)hs->n_test_rows * w + 1) * sizeof *H)) ||
            !(hi = malloc(((size_t)hs->n_test_rows + 1) * sizeof *hi))) {
            rs_errk(err, RS_ENOMEM, "out of memory (%lld held-out rows)", (long long)hs->n_test_rows);
            goto done;
        }
        for (int i = 0; i < c->n_text; i++)
            for (int64_t t = off[i]; t < off[i + 1]; t++) {
                if (!pl_token_included(c, ids[t])) continue;
                if (hs->img[i] >= 0) {
                    memcpy(H + (size_t)nh * w, X + (size_t)t * w, (size_t)w * sizeof *X);
                    hi[nh++] = hs->img[i];
                } else {
                    memmove(X + (size_t)n++ * w, X + (size_t)t * w, (size_t)w * sizeof *X);
                }
            }
    } else {
        for (int64_t t = 0; t < rows; t++)
            if (pl_token_included(c, ids[t])) memmove(X + (size_t)n++ * w, X + (size_t)t * w, (size_t)w * sizeof *X);
    }
    if (n < 1) { rs_errf(err, "%s: no caption content token in %s to train an SAE on", hook, PL_STORE_NAME[store]); goto done; }
    const char *why = NULL;
    if (reference_sae(c, hook, &ref, &why, err)) goto done;
    if (ref && ref->d_in != w) why = "the configured SAE's d_in differs from the activation width";
    int d_sae = cfg->sae_train.d_sae > 0 ? cfg->sae_train.d_sae : ref && ref->d_in == w ? ref->d_sae : 4 * (int)w;
    sae_train_report rep;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pl_log(c, "sae_train", "%s: %s SAE, %d latents, on %lld %s content tokens", hook,
           cfg->sae_train.topk ? "TopK" : "JumpReLU", d_sae, (long long)n, PL_STORE_NAME[store]);
    if (cfg->sae_train.topk) {
        sae_train_opts o;
        sae_train_opts_default(&o);
        o.d_sae = d_sae, o.k = cfg->sae_train.k < d_sae ? cfg->sae_train.k : d_sae, o.steps = cfg->sae_train.steps;
        o.batch = cfg->sae_train.batch, o.lr = (float)cfg->sae_train.lr, o.seed = cfg->sae_train.seed;
        if (2 * o.k > d_sae) o.aux_k = d_sae;
        if (sae_train_topk(X, n, (int)w, &o, &own, &rep, err)) goto train_failed;
    } else {
        sae_jr_opts o;
        sae_jr_opts_default(&o);
        o.d_sae = d_sae, o.steps = cfg->sae_train.steps, o.batch = cfg->sae_train.batch, o.lr = (float)cfg->sae_train.lr;
        o.seed = cfg->sae_train.seed, o.lambda = (float)cfg->sae_train.l0_coef;
        o.bandwidth = (float)cfg->sae_train.bandwidth, o.init_threshold = (float)cfg->sae_train.init_threshold;
        o.lambda_warmup = cfg->sae_train.l0_warmup;
        if (sae_train_jumprelu(X, n, (int)w, &o, &own, &rep, NULL, NULL, err)) goto train_failed;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    own->hook_name = strdup(hook);
    own->model_name = strdup(c->vlm_name);
    if (!own->hook_name || !own->model_name) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (pl_mkdir(root, err) || sae_save_sae_lens(own, dir, err)) goto done;
    cJSON *e = cJSON_CreateObject();
    if (!e) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    cJSON_AddItemToArray(arr, e);
    cJSON_AddStringToObject(e, "hook", hook);
    rs_json_add_num(e, "layer", rs_hook_block_index(hook));
    rs_json_add_num(e, "n_rows", (double)n);
    rs_json_add_num(e, "d_in", (double)w);
    rs_json_add_num(e, "d_sae", d_sae);
    char rel[300];
    snprintf(rel, sizeof rel, "results/sae_train/%s", safe);
    cJSON_AddStringToObject(e, "sae_dir", rel);
    cJSON *tr = cJSON_AddObjectToObject(e, "train");
    rs_json_add_num(tr, "final_mse", rep.final_mse);
    rs_json_add_num(tr, "final_fvu", rep.final_fvu);
    rs_json_add_num(tr, "final_l0", cfg->sae_train.topk ? NAN : rep.final_l0);
    rs_json_add_num(tr, "dead_latents", (double)rep.dead_at_end);
    if (!hs) cJSON_AddStringToObject(tr, "note", "in-sample: mean over the last 10% of training steps (no held-out rows)");
    else {
        cJSON_AddStringToObject(tr, "note", "in-sample: mean over the last 10% of training steps, on the training rows "
                                            "(the captions of the images outside the test split); the held-out fit is "
                                            "eval_held_out");
    }
    /* the time goes to run.log, not the results (which a rerun must reproduce byte for byte) */
    pl_log(c, "sae_train", "%s: %d latents trained on %lld rows in %.2f s, in-sample FVU %.3f", hook, d_sae, (long long)n,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), rep.final_fvu);
    if (hs) { /* the fit on the held-out rows, with its bootstrap over the test images */
        cJSON *hj = held_out_json(own, H, hi, nh, hs->G, cfg->sae_train.bootstrap, cfg->sae_train.seed, err);
        if (!hj) goto done;
        cJSON_AddItemToObject(e, "eval_held_out", hj);
        pl_log(c, "sae_train", "%s: held-out FVU %.3f on %lld rows of %d test images", hook,
               num_or_nan_local(cJSON_GetObjectItemCaseSensitive(hj, "fvu"), "value"), (long long)nh, hs->G);
    }
    if (!ref || ref->d_in != w) {
        cJSON_AddNullToObject(e, "reference_sae");
        cJSON_AddNullToObject(e, "match");
        cJSON_AddStringToObject(e, "match_skipped", why);
        rc = 0;
        goto done;
    }
    cJSON_AddStringToObject(e, "reference_sae", ref->sae_name ? ref->sae_name : ref->path);
    sae_match_opts mo;
    sae_match_opts_default(&mo);
    mo.threshold = cfg->sae_train.match_threshold, mo.n_boot = cfg->sae_train.bootstrap;
    mo.n_null = cfg->sae_train.null_reps, mo.max_width = cfg->sae_train.max_width, mo.seed = cfg->sae_train.seed;
    pl_log(c, "sae_train", "%s: matching %d trained latents with the configured SAE's %d", hook, own->d_sae, ref->d_sae);
    if (sae_match_decoders(own->W_dec, own->d_sae, ref->W_dec, ref->d_sae, (int)w, &mo, &mr, err)) {
        rs_err_prefix(err, "sae_train at %s", hook);
        goto done;
    }
    cJSON *mj = sae_match_json(&mr, &mo);
    if (!mj) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    cJSON_AddItemToObject(e, "match", mj);
    size_t cap = 32 + (size_t)mr.n_pairs * 48, len = 0;
    if (!(csv = malloc(cap))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    len += (size_t)snprintf(csv, cap, "own_latent,reference_latent,cos\n");
    for (int i = 0; i < mr.n_pairs; i++)
        len += (size_t)snprintf(csv + len, cap - len, "%d,%d,%.6f\n", mr.a_idx[i], mr.b_idx[i], mr.cos[i]);
    if (pl_write_text(pairs, csv, err)) goto done;
    rc = 0;
    goto done;
train_failed:
    rs_err_prefix(err, "sae_train at %s", hook);
done:
    free(X), free(H), free(hi), free(dir), free(pairs), free(csv);
    sae_free(own), sae_free(ref);
    sae_match_result_free(&mr);
    return rc;
}

int pl_sae_train_run(pl_ctx *c, const char **note, rs_err *err) {
    (void)note;
    const rs_config *cfg = c->cfg;
    int store = st_store(c);
    char *jp = pl_join(c->results, "sae_train.json"), *root = pl_join(c->results, "sae_train"),
         *sdir = pl_join(c->acts, PL_STORE_NAME[store]);
    store_reader *sr = NULL;
    int32_t *ids = NULL;
    int64_t rr = 0, ww = 0, *off = NULL, n_in = 0;
    held_split hs = {0};
    cJSON *js = NULL;
    int rc = -1;
    if (!jp || !root || !sdir) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    remove_old(root);
    if (store_reader_open(&sr, sdir, err) || store_read_raw(sr, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, err)) goto done;
    if (cfg->sae_train.held_out) { /* the split first: nothing is trained when it cannot be evaluated */
        if (store_read_offsets(sr, "offsets", &off, &n_in, err)) goto done;
        if (n_in != c->n_text || off[n_in] != rr) {
            rs_errf(err, "%s: holds %lld captions of %lld tokens, the dataset %d captions", sdir, (long long)n_in,
                    (long long)off[n_in], c->n_text);
            goto done;
        }
        if (held_out_split(c, ids, off, &hs, err)) goto done;
        if (hs.G < 2) {
            rs_errf(err, "%s: sae_train.held_out needs at least 2 images with captions in the test split (column "
                         "split = \"test\"), it has %d", c->man->path, hs.G);
            goto done;
        }
        if (hs.n_train_rows < 1) {
            rs_errf(err, "%s: sae_train.held_out: no caption outside the test split to train on", c->man->path);
            goto done;
        }
    }
    js = cJSON_CreateObject();
    if (!js) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    cJSON_AddStringToObject(js, "definition",
                            "per hook, an SAE trained on the VLM's own activations (the store's caption content tokens, "
                            "not <bos>/<eos>/<pad> nor whitespace-only pieces), saved as a sae-lens folder, and its "
                            "decoder directions matched one-to-one (exact assignment maximising the summed cosine) with "
                            "the configured SAE's at the same hook; docs/sae-training.md");
    cJSON_AddStringToObject(js, "store", PL_STORE_NAME[store]);
    cJSON_AddStringToObject(js, "arch", cfg->sae_train.topk ? "topk" : "jumprelu");
    cJSON_AddStringToObject(js, "vlm", c->vlm_name);
    cJSON *arr = cJSON_AddArrayToObject(js, "hooks");
    int nh = cfg->sae_train.hooks ? cfg->sae_train.n_hooks : cfg->n_hooks;
    for (int h = 0; h < nh; h++)
        if (one_hook(c, store, cfg->sae_train.hooks ? cfg->sae_train.hooks[h] : cfg->hooks[h], ids, rr,
                     cfg->sae_train.held_out ? &hs : NULL, off, root, arr, err))
            goto done;
    if (pl_write_json(jp, js, err)) goto done;
    rc = 0;
done:
    cJSON_Delete(js);
    store_reader_close(sr);
    free(ids), free(off), free(hs.img), free(jp), free(root), free(sdir);
    return rc;
}
