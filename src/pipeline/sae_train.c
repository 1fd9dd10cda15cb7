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
#include "reprshift/sae.h"
#include "reprshift/sae_match.h"
#include "reprshift/sae_train.h"
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

static int one_hook(pl_ctx *c, int store, const char *hook, const int32_t *ids, int64_t n_ids, const char *root,
                    cJSON *arr, rs_err *err) {
    const rs_config *cfg = c->cfg;
    float *X = NULL;
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
    int64_t n = 0;
    for (int64_t t = 0; t < rows; t++)
        if (pl_token_included(c, ids[t])) memmove(X + (size_t)n++ * w, X + (size_t)t * w, (size_t)w * sizeof *X);
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
    cJSON_AddStringToObject(tr, "note", "in-sample: mean over the last 10% of training steps (no held-out rows)");
    /* the time goes to run.log, not the results (which a rerun must reproduce byte for byte) */
    pl_log(c, "sae_train", "%s: %d latents trained on %lld rows in %.2f s, in-sample FVU %.3f", hook, d_sae, (long long)n,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), rep.final_fvu);
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
    free(X), free(dir), free(pairs), free(csv);
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
    int64_t rr = 0, ww = 0;
    cJSON *js = NULL;
    int rc = -1;
    if (!jp || !root || !sdir) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    remove_old(root);
    if (store_reader_open(&sr, sdir, err) || store_read_raw(sr, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, err)) goto done;
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
        if (one_hook(c, store, cfg->sae_train.hooks ? cfg->sae_train.hooks[h] : cfg->hooks[h], ids, rr, root, arr, err))
            goto done;
    if (pl_write_json(jp, js, err)) goto done;
    rc = 0;
done:
    cJSON_Delete(js);
    store_reader_close(sr);
    free(ids), free(jp), free(root), free(sdir);
    return rc;
}
