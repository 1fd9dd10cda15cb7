/* Probes stage (src/probe/): per captured hook
 *   concept      group label from LLM caption, VLM caption and VLM image features
 *   modality     VLM caption rows vs VLM image rows
 *   cross_modal  probe trained on VLM caption features, tested on the paired image's
 *                features and back, with in-modality baselines and moments / Procrustes /
 *                ridge alignment baselines (rs_transfer_evaluate) -> results/transfer.json
 *   attributes   original vs edited image, one probe per edit value
 * and per vision hook (config vision_hooks: SigLIP tower / projector, patch mean) the
 * image-only ones: concept on VLM images and the attribute probes, listed apart under
 * "vision" (points per hook instead of per layer)
 * -> results/probes.json. Every split is group-aware: an image, its captions and its edited
 * variants are always on the same side (groups = base images). Features per input are
 * the mean over non-special tokens (caption stores) or the pooled image-token mean. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "reprshift/fileio.h"
#include "reprshift/probe.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_transfer.h"
#include "reprshift/version.h"

static int hook_layer(const char *h, int fallback) {
    int L;
    return sscanf(h, "blocks.%d.", &L) == 1 ? L : fallback;
}

static int wants(const rs_config *cfg, const char *family) {
    for (int i = 0; i < cfg->probes.n_which; i++)
        if (!strcmp(cfg->probes.which[i], family)) return 1;
    return 0;
}

/* Probe family of an edit name. */
static const char *edit_family(const char *name) {
    if (!strcmp(name, "redness") || !strcmp(name, "redness_luma")) return "redness";
    if (!strcmp(name, "rotate")) return "rotation";
    return name; /* brightness, contrast, saturation, blur */
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static cJSON *stat_json(double v, double lo, double hi) {
    cJSON *o = cJSON_CreateObject();
    add_num(o, "value", v);
    add_num(o, "ci_lo", lo);
    add_num(o, "ci_hi", hi);
    return o;
}

/* The point list `key` ("layers", or "hooks" for vision entries) of the task entry
 * (task, model) in tasks, created on first use. */
static cJSON *task_points(cJSON *tasks, const char *task, const char *kind, const char *model, const char *key) {
    cJSON *t;
    cJSON_ArrayForEach(t, tasks) {
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(t, "task")->valuestring, task) &&
            !strcmp(cJSON_GetObjectItemCaseSensitive(t, "model")->valuestring, model))
            return cJSON_GetObjectItemCaseSensitive(t, key);
    }
    t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "task", task);
    cJSON_AddStringToObject(t, "kind", kind);
    cJSON_AddStringToObject(t, "model", model);
    cJSON_AddItemToArray(tasks, t);
    return cJSON_AddArrayToObject(t, key);
}

static cJSON *task_layers(cJSON *tasks, const char *task, const char *kind, const char *model) {
    return task_points(tasks, task, kind, model, "layers");
}

typedef struct {
    pl_ctx *c;
    cJSON *tasks, *skipped;
    rs_eval_opts eo;
    int hook_i;
    const char *hook;
    int layer;
    int vision;     /* 1: a vision hook: entries go to "vision" with points under "hooks", no layer */
} probe_run;

/* Evaluate one probe and append its layer entry; a probe the data cannot support (e.g. a
 * class with too few images for the folds) is logged and listed under "skipped". */
static int eval_one(probe_run *p, const char *task, const char *kind, const char *model, const float *X, const int *y,
                    const int *group, int n, int d, int K, rs_err *err) {
    rs_eval_result r;
    memset(&r, 0, sizeof r);
    rs_err e = {{0}};
    if (rs_probe_evaluate(X, y, group, n, d, K, &p->eo, &r, &e)) {
        if (strstr(e.msg, "out of memory")) return rs_errf(err, "%s", e.msg);
        pl_log(p->c, "probes", "%s / %s at %s: skipped (%s)", task, model, p->hook, e.msg);
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "task", task);
        cJSON_AddStringToObject(s, "model", model);
        cJSON_AddStringToObject(s, "hook", p->hook);
        cJSON_AddStringToObject(s, "reason", e.msg);
        cJSON_AddItemToArray(p->skipped, s);
        rs_eval_result_free(&r);
        return 0;
    }
    /* test rows of the first split (the evaluation's seed rule: seed + 7919·(s+1)) */
    int *is_test = malloc((size_t)n * sizeof *is_test), n_test = 0;
    if (!is_test) {
        rs_eval_result_free(&r);
        return rs_errf(err, "out of memory");
    }
    if (rs_split_stratified_groups(y, group, n, K, p->eo.test_frac, p->eo.seed + 7919u, is_test, &e) == 0)
        for (int i = 0; i < n; i++) n_test += is_test[i];
    free(is_test);
    cJSON *layers = task_points(p->tasks, task, kind, model, p->vision ? "hooks" : "layers");
    cJSON *L = cJSON_CreateObject();
    if (!p->vision) cJSON_AddNumberToObject(L, "layer", p->layer);
    cJSON_AddStringToObject(L, "hook", p->hook);
    cJSON_AddNumberToObject(L, "n", n);
    cJSON_AddNumberToObject(L, "n_test", n_test);
    cJSON_AddItemToObject(L, "accuracy", stat_json(r.mean.accuracy, r.ci_lo.accuracy, r.ci_hi.accuracy));
    cJSON_AddItemToObject(L, "balanced_accuracy",
                          stat_json(r.mean.balanced_accuracy, r.ci_lo.balanced_accuracy, r.ci_hi.balanced_accuracy));
    cJSON_AddItemToObject(L, "macro_f1", stat_json(r.mean.macro_f1, r.ci_lo.macro_f1, r.ci_hi.macro_f1));
    add_num(L, "accuracy_sd", r.acc_sd);
    add_num(L, "chance", r.chance);
    add_num(L, "permuted_label_accuracy", r.perm_accuracy);
    add_num(L, "control_accuracy", r.control_accuracy);
    add_num(L, "selectivity", r.selectivity);
    cJSON_AddItemToArray(layers, L);
    /* the task's chance line: majority share (the same for every layer) */
    cJSON *t;
    cJSON_ArrayForEach(t, p->tasks) {
        if (cJSON_GetObjectItemCaseSensitive(t, p->vision ? "hooks" : "layers") == layers &&
            !cJSON_GetObjectItemCaseSensitive(t, "chance"))
            add_num(t, "chance", r.chance);
    }
    pl_log(p->c, "probes", "%-12s %-28s %s: accuracy %.3f [%.3f, %.3f] (chance %.3f)", task, model, p->hook,
           r.mean.accuracy, r.ci_lo.accuracy, r.ci_hi.accuracy, r.chance);
    rs_eval_result_free(&r);
    return 0;
}

/* The transfer matrix of one hook: rows = training modality, cols = test condition. */
static cJSON *transfer_matrix(const probe_run *p, const rs_transfer_result *r, int n_test) {
    static const char *cols[5] = {"same", "direct", "moments", "Procrustes", "ridge"};
    static const rs_map_kind maps[4] = {RS_MAP_NONE, RS_MAP_MOMENTS, RS_MAP_PROCRUSTES, RS_MAP_RIDGE};
    const rs_transfer_cell_def *defs = rs_transfer_cells();
    cJSON *m = cJSON_CreateObject();
    char title[256];
    snprintf(title, sizeof title, "Cross-modal concept transfer, %s (VLM)", p->hook);
    cJSON_AddStringToObject(m, "title", title);
    cJSON_AddStringToObject(m, "metric", "accuracy");
    cJSON_AddStringToObject(m, "row_title", "probe trained on");
    cJSON_AddStringToObject(m, "col_title", "tested on: same / other modality (+ map)");
    cJSON_AddStringToObject(m, "hook", p->hook);
    cJSON_AddNumberToObject(m, "layer", p->layer);
    cJSON *rows = cJSON_AddArrayToObject(m, "rows");
    cJSON_AddItemToArray(rows, cJSON_CreateString("captions"));
    cJSON_AddItemToArray(rows, cJSON_CreateString("images"));
    cJSON *cj = cJSON_AddArrayToObject(m, "cols");
    for (int k = 0; k < 5; k++) cJSON_AddItemToArray(cj, cJSON_CreateString(cols[k]));
    cJSON *vals = cJSON_AddArrayToObject(m, "values"), *r2 = cJSON_AddArrayToObject(m, "map_r2");
    for (int tr = 0; tr < 2; tr++) {
        cJSON *row = cJSON_CreateArray(), *rr = cJSON_CreateArray();
        for (int k = 0; k < 5; k++) {
            int te = k == 0 ? tr : 1 - tr;
            rs_map_kind mk = k == 0 ? RS_MAP_NONE : maps[k - 1];
            int cell = -1;
            for (int q = 0; q < RS_TRANSFER_CELLS; q++)
                if (defs[q].train == tr && defs[q].test == te && defs[q].map == mk) cell = q;
            const rs_transfer_cell *c = cell >= 0 ? &r->cell[cell] : NULL;
            if (!c || !c->available) cJSON_AddItemToArray(row, cJSON_CreateNull());
            else cJSON_AddItemToArray(row, stat_json(c->mean.accuracy, c->ci_lo.accuracy, c->ci_hi.accuracy));
            if (c && c->available && isfinite(c->map_r2)) cJSON_AddItemToArray(rr, cJSON_CreateNumber(c->map_r2));
            else cJSON_AddItemToArray(rr, cJSON_CreateNull());
        }
        cJSON_AddItemToArray(vals, row);
        cJSON_AddItemToArray(r2, rr);
    }
    cJSON_AddNumberToObject(m, "n", n_test);
    cJSON *range = cJSON_AddArrayToObject(m, "range");
    cJSON_AddItemToArray(range, cJSON_CreateNumber(0));
    cJSON_AddItemToArray(range, cJSON_CreateNumber(1));
    cJSON *dg = cJSON_AddObjectToObject(m, "diagnosis");
    cJSON_AddStringToObject(dg, "captions_to_images", rs_transfer_diagnosis(r, 0));
    cJSON_AddStringToObject(dg, "images_to_captions", rs_transfer_diagnosis(r, 1));
    add_num(m, "chance_captions", r->chance[0]);
    add_num(m, "chance_images", r->chance[1]);
    return m;
}

static int write_json(const char *path, cJSON *j, rs_err *err) {
    char *s = cJSON_Print(j);
    if (!s) return rs_errf(err, "out of memory");
    size_t L = strlen(s);
    char *t = realloc(s, L + 2);
    if (!t) {
        free(s);
        return rs_errf(err, "out of memory");
    }
    t[L] = '\n';
    t[L + 1] = 0;
    int rc = pl_write_text(path, t, err);
    free(t);
    return rc;
}

/* Attribute probes at the current hook: original images XI [n_image, d] vs each edited
 * variant in XE [n_variants · n_image, d], one probe per edit value. X, y, g are scratch
 * of at least 2 · n_image rows. */
static int attribute_probes(probe_run *p, const float *XI, const float *XE, int d, float *X, int *y, int *g,
                            rs_err *err) {
    const pl_ctx *c = p->c;
    int ni = c->n_image;
    for (int v = 0; v < c->n_variants; v++) {
        const char *fam = edit_family(c->variants[v].name);
        if (!wants(c->cfg, fam)) continue;
        memcpy(X, XI, (size_t)ni * d * sizeof *X);
        memcpy(X + (size_t)ni * d, XE + (size_t)v * ni * d, (size_t)ni * d * sizeof *X);
        for (int i = 0; i < ni; i++) {
            y[i] = 0, y[ni + i] = 1;
            g[i] = g[ni + i] = c->image_group[i];
        }
        if (eval_one(p, fam, "attribute", c->variants[v].label, X, y, g, 2 * ni, d, 2, err)) return -1;
    }
    return 0;
}

/* One vision hook: the image-only probes (concept on VLM images, attributes). Modality and
 * cross-modal transfer need caption rows, which have no vision activations. */
static int probe_vision_hook(probe_run *p, rs_err *err) {
    pl_ctx *c = p->c;
    int ni = c->n_image, K = c->n_labels, n, d = 0, rc = -1;
    float *XI = NULL, *XE = NULL, *X = NULL;
    int *y = NULL, *g = NULL;
    if (!ni) return 0;
    if (pl_store_features(c, PL_VLM_IMAGE, p->hook, &XI, &n, &d, err)) goto done;
    if (c->n_variants && pl_store_features(c, PL_VLM_EDITS, p->hook, &XE, &n, &d, err)) goto done;
    X = malloc((size_t)(2 * ni) * (size_t)d * sizeof *X);
    y = malloc((size_t)(2 * ni) * sizeof *y);
    g = malloc((size_t)(2 * ni) * sizeof *g);
    if (!X || !y || !g) { rs_errf(err, "out of memory"); goto done; }
    if (wants(c->cfg, "concept") && K >= 2 &&
        eval_one(p, "concept", "concept", "VLM images", XI, c->image_label, c->image_group, ni, d, K, err))
        goto done;
    if (attribute_probes(p, XI, XE, d, X, y, g, err)) goto done;
    rc = 0;
done:
    free(XI);
    free(XE);
    free(X);
    free(y);
    free(g);
    return rc;
}

/* One hook: load the features of every store and run every probe family asked for. */
static int probe_hook(probe_run *p, cJSON *matrices, rs_err *err) {
    pl_ctx *c = p->c;
    const rs_config *cfg = c->cfg;
    float *XL = NULL, *XV = NULL, *XI = NULL, *XE = NULL, *X = NULL;
    int *y = NULL, *g = NULL, rc = -1, d = 0, n, dd;
    int K = c->n_labels;
    int nt = c->n_text, ni = c->n_image;
    char label[300];
    if (nt && (pl_store_features(c, PL_LLM_TEXT, p->hook, &XL, &n, &d, err) ||
               pl_store_features(c, PL_VLM_TEXT, p->hook, &XV, &n, &dd, err)))
        goto done;
    if (ni && pl_store_features(c, PL_VLM_IMAGE, p->hook, &XI, &n, &d, err)) goto done;
    if (ni && c->n_variants && pl_store_features(c, PL_VLM_EDITS, p->hook, &XE, &n, &d, err)) goto done;
    int nmax = nt + ni + ni + 1;
    X = malloc((size_t)nmax * (size_t)d * sizeof *X);
    y = malloc((size_t)nmax * sizeof *y);
    g = malloc((size_t)nmax * sizeof *g);
    if (!X || !y || !g) { rs_errf(err, "out of memory"); goto done; }
    if (wants(cfg, "concept") && K >= 2) {
        if (nt) {
            snprintf(label, sizeof label, "LLM captions");
            if (eval_one(p, "concept", "concept", label, XL, c->text_label, c->text_group, nt, d, K, err)) goto done;
            snprintf(label, sizeof label, "VLM captions");
            if (eval_one(p, "concept", "concept", label, XV, c->text_label, c->text_group, nt, d, K, err)) goto done;
        }
        if (ni) {
            snprintf(label, sizeof label, "VLM images");
            if (eval_one(p, "concept", "concept", label, XI, c->image_label, c->image_group, ni, d, K, err)) goto done;
        }
    }
    if (wants(cfg, "modality") && nt && ni) {
        memcpy(X, XV, (size_t)nt * d * sizeof *X);
        memcpy(X + (size_t)nt * d, XI, (size_t)ni * d * sizeof *X);
        for (int i = 0; i < nt; i++) y[i] = 0, g[i] = c->text_group[i];
        for (int i = 0; i < ni; i++) y[nt + i] = 1, g[nt + i] = c->image_group[i];
        snprintf(label, sizeof label, "VLM");
        if (eval_one(p, "modality", "modality", label, X, y, g, nt + ni, d, 2, err)) goto done;
    }
    if (wants(cfg, "cross_modal") && nt && ni && K >= 2) {
        int np = 0;
        float *XB = X + (size_t)ni * d; /* X holds [A rows | B rows] */
        for (int j = 0; j < ni; j++) {
            int t = c->image_caption[j];
            if (t < 0) continue;
            memcpy(X + (size_t)np * d, XV + (size_t)t * d, (size_t)d * sizeof *X);
            memcpy(XB + (size_t)np * d, XI + (size_t)j * d, (size_t)d * sizeof *X);
            y[np] = c->image_label[j];
            g[np] = c->image_group[j];
            np++;
        }
        rs_transfer_opts to = rs_transfer_defaults();
        to.n_seeds = p->eo.n_seeds;
        to.test_frac = p->eo.test_frac;
        to.Cs = p->eo.Cs;
        to.n_Cs = p->eo.n_Cs;
        to.cv_folds = p->eo.cv_folds;
        to.n_boot = p->eo.n_boot;
        to.seed = p->eo.seed;
        rs_transfer_result tr;
        memset(&tr, 0, sizeof tr);
        rs_err e = {{0}};
        if (np < 4 || rs_transfer_evaluate(X, d, XB, d, y, y, g, np, K, &to, &tr, &e)) {
            if (strstr(e.msg, "out of memory")) { rs_errf(err, "%s", e.msg); goto done; }
            pl_log(c, "probes", "cross-modal transfer at %s: skipped (%s)", p->hook, np < 4 ? "fewer than 4 pairs" : e.msg);
        } else {
            int *is_test = malloc((size_t)np * sizeof *is_test), n_test = 0;
            if (is_test && rs_split_stratified_groups(y, g, np, K, to.test_frac, to.seed + 7919u, is_test, &e) == 0)
                for (int i = 0; i < np; i++) n_test += is_test[i];
            free(is_test);
            cJSON_AddItemToArray(matrices, transfer_matrix(p, &tr, n_test));
            const rs_transfer_cell_def *defs = rs_transfer_cells();
            for (int q = 0; q < RS_TRANSFER_CELLS; q++) {
                if (defs[q].train == defs[q].test || (defs[q].map != RS_MAP_NONE && defs[q].map != RS_MAP_PROCRUSTES)) continue;
                const rs_transfer_cell *cl = &tr.cell[q];
                if (!cl->available) continue;
                snprintf(label, sizeof label, "%s%s", defs[q].train ? "img\xe2\x86\x92" "cap" : "cap\xe2\x86\x92" "img",
                         defs[q].map == RS_MAP_NONE ? "" : " Procrustes");
                cJSON *layers = task_layers(p->tasks, "cross-modal transfer", "cross-modal", label);
                cJSON *L = cJSON_CreateObject();
                cJSON_AddNumberToObject(L, "layer", p->layer);
                cJSON_AddStringToObject(L, "hook", p->hook);
                cJSON_AddNumberToObject(L, "n", np);
                cJSON_AddNumberToObject(L, "n_test", n_test);
                cJSON_AddItemToObject(L, "accuracy", stat_json(cl->mean.accuracy, cl->ci_lo.accuracy, cl->ci_hi.accuracy));
                add_num(L, "chance", tr.chance[defs[q].test]);
                cJSON_AddItemToArray(layers, L);
            }
            pl_log(c, "probes", "cross-modal %s: captions->images %.3f, images->captions %.3f (%s / %s)", p->hook,
                   tr.cell[2].mean.accuracy, tr.cell[3].mean.accuracy, rs_transfer_diagnosis(&tr, 0),
                   rs_transfer_diagnosis(&tr, 1));
        }
    }
    if (ni && attribute_probes(p, XI, XE, d, X, y, g, err)) goto done;
    rc = 0;
done:
    free(XL);
    free(XV);
    free(XI);
    free(XE);
    free(X);
    free(y);
    free(g);
    return rc;
}

int pl_stage_probes(pl_ctx *c, rs_err *err) {
    const rs_config *cfg = c->cfg;
    char *pp = pl_join(c->results, "probes.json"), *tp = pl_join(c->results, "transfer.json");
    cJSON *probes = NULL, *transfer = NULL;
    int rc = -1;
    if (!pp || !tp) { rs_errf(err, "out of memory"); goto done; }
    char fps[PL_N_STORES][65], fp[65];
    for (int s = 0; s < PL_N_STORES; s++) {
        if (!pl_store_used(c, s)) strcpy(fps[s], "-");
        else if (pl_store_fp(c, s, fps[s], err)) goto done;
    }
    char *pj = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cfg->resolved, "probes"));
    pl_fp(fp, "probes v1 %s %s %s %s %s %s pool=%s", RS_VERSION, fps[0], fps[1], fps[2], fps[3], pj ? pj : "-", cfg->pool);
    free(pj);
    char *note = pl_stage_read(c, "probes");
    int none_before = note && strstr(note, "\nno probe could be evaluated");
    free(note);
    if (pl_stage_done(c, "probes", fp) && (rs_path_exists(pp) || none_before)) {
        pl_log(c, "probes", "complete (skipped)");
        rc = 0;
        goto done;
    }
    pl_stage_reset(c, "probes");
    unlink(pp);
    unlink(tp);
    probes = cJSON_CreateObject();
    transfer = cJSON_CreateObject();
    char ci[256];
    snprintf(ci, sizeof ci,
             "95%% percentile bootstrap of the mean accuracy over %d group-aware splits (test rows resampled, %d "
             "replicates)",
             cfg->probes.seeds, cfg->probes.bootstrap);
    cJSON_AddStringToObject(probes, "ci", ci);
    cJSON_AddStringToObject(transfer, "ci", ci);
    cJSON_AddStringToObject(probes, "split", "group-aware: an image, its captions and its edited variants are on one side");
    probe_run p = {.c = c, .tasks = cJSON_AddArrayToObject(probes, "tasks"), .skipped = cJSON_AddArrayToObject(probes, "skipped")};
    cJSON *matrices = cJSON_AddArrayToObject(transfer, "matrices");
    p.eo = rs_eval_defaults();
    p.eo.n_seeds = cfg->probes.seeds;
    p.eo.test_frac = cfg->probes.test_frac;
    p.eo.cv_folds = cfg->probes.folds;
    p.eo.Cs = cfg->probes.C;
    p.eo.n_Cs = cfg->probes.n_C;
    p.eo.n_boot = cfg->probes.bootstrap;
    p.eo.seed = 0;
    for (int h = 0; h < cfg->n_hooks; h++) {
        p.hook_i = h;
        p.hook = cfg->hooks[h];
        p.layer = hook_layer(p.hook, h);
        if (probe_hook(&p, matrices, err)) {
            rs_err_prefix(err, "probes at %s", p.hook);
            goto done;
        }
    }
    /* vision hooks: a separate list, absent without vision_hooks (then probes.json is as before) */
    cJSON *vision = cfg->n_vision_hooks && c->n_image ? cJSON_AddArrayToObject(probes, "vision") : NULL;
    int n_tasks = cJSON_GetArraySize(p.tasks);
    p.tasks = vision;
    p.vision = 1;
    for (int h = 0; vision && h < cfg->n_vision_hooks; h++) {
        p.hook_i = h;
        p.hook = cfg->vision_hooks[h];
        p.layer = -1;
        if (probe_vision_hook(&p, err)) {
            rs_err_prefix(err, "probes at %s", p.hook);
            goto done;
        }
    }
    n_tasks += cJSON_GetArraySize(vision);
    if (cJSON_GetArraySize(matrices) > 0 && write_json(tp, transfer, err)) goto done;
    /* the report needs at least one task in probes.json: with none, the file is not written */
    if (n_tasks > 0 && write_json(pp, probes, err)) goto done;
    if (pl_stage_mark_note(c, "probes", fp, n_tasks ? NULL : "no probe could be evaluated", err)) goto done;
    if (n_tasks) pl_log(c, "probes", "wrote %s%s", pp, cJSON_GetArraySize(matrices) > 0 ? " and transfer.json" : "");
    else pl_log(c, "probes", "no probe could be evaluated on this dataset (see the messages above)");
    rc = 0;
done:
    cJSON_Delete(probes);
    cJSON_Delete(transfer);
    free(pp);
    free(tp);
    return rc;
}
