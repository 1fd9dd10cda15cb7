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
#include "reprshift/jsonutil.h"
#include "reprshift/probe.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_transfer.h"
#include "reprshift/stats.h"
#include "reprshift/version.h"

static int hook_layer(const char *h, int fallback) {
    int L = rs_hook_block_index(h);
    return L >= 0 ? L : fallback;
}

static int wants(const rs_config *cfg, const char *family) {
    for (int i = 0; i < cfg->probes.n_which; i++)
        if (!strcmp(cfg->probes.which[i], family)) return 1;
    return 0;
}

/* Probe family of an edit name. */
static const char *edit_family(const char *name) {
    if (!strcmp(name, "redness") || !strcmp(name, "redness_plain") || !strcmp(name, "redness_luma")) return "redness";
    if (!strcmp(name, "rotate")) return "rotation";
    return name; /* brightness, contrast, saturation, blur */
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
    cJSON *edit_matrices; /* attribute_transfer.json: one edit-transfer matrix per hook */
    double *C_dst;        /* non-NULL: eval_one stores the chosen C per seed there (NaN if skipped) */
    double *attr_C;       /* [n_variants × seeds]: the attribute probes' C at the current hook */
    rs_eval_result *keep; /* non-NULL: eval_one keeps the seeds' test rows and predictions there */
    cJSON *root;          /* probes.json (the "paired" list is added on first use) */
    int paired_flips;     /* sign flips of the paired test (0: no p-value) */
} probe_run;

/* Evaluate one probe and append its layer entry; a probe the data cannot support (e.g. a
 * class with too few images for the folds) is logged and listed under "skipped". */
static int eval_one(probe_run *p, const char *task, const char *kind, const char *model, const float *X, const int *y,
                    const int *group, const int *ctype, int n, int d, int K, rs_err *err) {
    rs_eval_result r;
    memset(&r, 0, sizeof r);
    rs_err e = {0};
    rs_eval_opts eo = p->eo;
    eo.control_type = ctype;
    eo.keep_tests = p->keep != NULL;
    if (p->C_dst)
        for (int s = 0; s < eo.n_seeds; s++) p->C_dst[s] = NAN;
    if (rs_probe_evaluate(X, y, group, n, d, K, &eo, &r, &e)) {
        if (e.kind == RS_ENOMEM) return rs_errk(err, e.kind, "%s", e.msg);
        if (e.kind == RS_EBELOWMIN)
            return rs_errk(err, e.kind, "%s / %s: %s (probes.min_test_groups)", task, model, e.msg);
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
    if (p->C_dst) memcpy(p->C_dst, r.C_chosen, sizeof(double) * (size_t)eo.n_seeds);
    if (p->keep) { /* hand the test rows and predictions over (freed with the kept result) */
        memset(p->keep, 0, sizeof *p->keep);
        p->keep->n_seeds = r.n_seeds;
        p->keep->test_n = r.test_n, p->keep->test_row = r.test_row, p->keep->test_pred = r.test_pred;
        r.test_n = r.test_row = r.test_pred = NULL;
    }
    /* test rows of the first split (the evaluation's seed rule: seed + 7919·(s+1)) */
    int *is_test = malloc((size_t)n * sizeof *is_test), n_test = 0;
    if (!is_test) {
        rs_eval_result_free(&r);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    /* the evaluation made this split already: a failure here is out of memory, not a fact */
    if (rs_split_stratified_groups(y, group, n, K, p->eo.test_frac, p->eo.seed + 7919u, is_test, err)) {
        free(is_test);
        rs_eval_result_free(&r);
        return -1;
    }
    for (int i = 0; i < n; i++) n_test += is_test[i];
    free(is_test);
    cJSON *layers = task_points(p->tasks, task, kind, model, p->vision ? "hooks" : "layers");
    cJSON *L = cJSON_CreateObject();
    if (!p->vision) rs_json_add_num(L, "layer", p->layer);
    cJSON_AddStringToObject(L, "hook", p->hook);
    rs_json_add_num(L, "n", n);
    rs_json_add_num(L, "n_test", n_test);
    rs_json_add_num(L, "n_test_groups", r.n_test_groups);
    cJSON_AddItemToObject(L, "accuracy", stat_json(r.mean.accuracy, r.ci_lo.accuracy, r.ci_hi.accuracy));
    cJSON_AddItemToObject(L, "balanced_accuracy",
                          stat_json(r.mean.balanced_accuracy, r.ci_lo.balanced_accuracy, r.ci_hi.balanced_accuracy));
    cJSON_AddItemToObject(L, "macro_f1", stat_json(r.mean.macro_f1, r.ci_lo.macro_f1, r.ci_hi.macro_f1));
    add_num(L, "accuracy_sd", r.acc_sd);
    add_num(L, "chance", r.chance);
    add_num(L, "permuted_label_accuracy", r.perm_accuracy);
    add_num(L, "permutation_p", r.perm_p);
    rs_json_add_num(L, "permutations", r.n_perm);
    /* the permutation test's wall time goes to run.log only: results must be byte-reproducible */
    add_num(L, "control_accuracy", r.control_accuracy);
    add_num(L, "control_type_overlap", r.control_overlap);
    add_num(L, "selectivity", r.selectivity);
    cJSON_AddItemToArray(layers, L);
    /* the task's chance line: majority share (the same for every layer) */
    cJSON *t;
    cJSON_ArrayForEach(t, p->tasks) {
        if (cJSON_GetObjectItemCaseSensitive(t, p->vision ? "hooks" : "layers") == layers &&
            !cJSON_GetObjectItemCaseSensitive(t, "chance"))
            add_num(t, "chance", r.chance);
    }
    pl_log(p->c, "probes", "%-12s %-28s %s: accuracy %.3f [%.3f, %.3f] (chance %.3f, permutation p %.3g: %d x %d fits in %.2f s)",
           task, model, p->hook, r.mean.accuracy, r.ci_lo.accuracy, r.ci_hi.accuracy, r.chance, r.perm_p, r.n_perm,
           r.n_seeds, r.perm_seconds);
    rs_eval_result_free(&r);
    return 0;
}

/* Control-task types of the concept probes (Hewitt & Liang with a type that recurs between
 * train and test): the image's COCO category (pl_ctx text_ctype / image_ctype, from the
 * manifest's category column); NULL (no control task) without the column or when a row has
 * none. */
static const int *concept_ctype(const pl_ctx *c, int images) {
    const int *t = images ? c->image_ctype : c->text_ctype;
    int n = images ? c->n_image : c->n_text;
    if (!t) return NULL;
    for (int i = 0; i < n; i++)
        if (t[i] < 0) return NULL;
    return t;
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
    rs_json_add_num(m, "layer", p->layer);
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
            if (c && c->available && isfinite(c->map_r2)) cJSON_AddItemToArray(rr, rs_json_number(c->map_r2));
            else cJSON_AddItemToArray(rr, cJSON_CreateNull());
        }
        cJSON_AddItemToArray(vals, row);
        cJSON_AddItemToArray(r2, rr);
    }
    rs_json_add_num(m, "n", n_test);
    cJSON *range = cJSON_AddArrayToObject(m, "range");
    cJSON_AddItemToArray(range, rs_json_number(0));
    cJSON_AddItemToArray(range, rs_json_number(1));
    cJSON *dg = cJSON_AddObjectToObject(m, "diagnosis");
    cJSON_AddStringToObject(dg, "captions_to_images", rs_transfer_diagnosis(r, 0));
    cJSON_AddStringToObject(dg, "images_to_captions", rs_transfer_diagnosis(r, 1));
    add_num(m, "chance_captions", r->chance[0]);
    add_num(m, "chance_images", r->chance[1]);
    return m;
}

static int write_json(const char *path, cJSON *j, rs_err *err) {
    char *s = cJSON_Print(j);
    if (!s) return rs_errk(err, RS_ENOMEM, "out of memory");
    size_t L = strlen(s);
    char *t = realloc(s, L + 2);
    if (!t) {
        free(s);
        return rs_errk(err, RS_ENOMEM, "out of memory");
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
    int *ct = malloc((size_t)(2 * ni + 1) * sizeof *ct); /* control type: the image's concept label */
    if (!ct) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (int i = 0; i < ni; i++) ct[i] = ct[ni + i] = c->image_label[i];
    for (int k = 0; k < c->n_variants * p->eo.n_seeds; k++) p->attr_C[k] = NAN;
    for (int v = 0; v < c->n_variants; v++) {
        const char *fam = edit_family(c->variants[v].name);
        if (!wants(c->cfg, fam)) continue;
        memcpy(X, XI, (size_t)ni * d * sizeof *X);
        memcpy(X + (size_t)ni * d, XE + (size_t)v * ni * d, (size_t)ni * d * sizeof *X);
        for (int i = 0; i < ni; i++) {
            y[i] = 0, y[ni + i] = 1;
            g[i] = g[ni + i] = c->image_group[i];
        }
        p->C_dst = p->attr_C + (size_t)v * p->eo.n_seeds;
        int erc = eval_one(p, fam, "attribute", c->variants[v].label, X, y, g, ct, 2 * ni, d, 2, err);
        p->C_dst = NULL;
        if (erc) {
            free(ct);
            return -1;
        }
    }
    free(ct);
    return 0;
}

/* Edit-transfer matrix at the current hook (rs_edit_transfer_evaluate): the probe "original
 * vs edit v" scored on "original vs edit w" for every pair of wanted variants. The diagonal
 * is the attribute probe; off the diagonal, the same family at another strength is the
 * dose-response, another family the cross-edit control. */
static int edit_transfer(probe_run *p, const float *XI, const float *XE, int d, rs_err *err) {
    const pl_ctx *c = p->c;
    int ni = c->n_image, V = 0, rc = 0;
    if (!XE || c->n_variants < 2) return 0;
    int *vi = malloc((size_t)c->n_variants * sizeof *vi);
    if (!vi) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (int v = 0; v < c->n_variants; v++)
        if (wants(c->cfg, edit_family(c->variants[v].name))) vi[V++] = v;
    if (V < 2) { free(vi); return 0; }
    int S = p->eo.n_seeds;
    float *XS = malloc((size_t)V * ni * d * sizeof *XS);
    double *acc = malloc(sizeof(double) * V * V), *lo = malloc(sizeof(double) * V * V), *hi = malloc(sizeof(double) * V * V);
    double *Cg = malloc(sizeof(double) * V * S);
    if (!XS || !acc || !lo || !hi || !Cg) { rc = rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int k = 0; k < V; k++) {
        memcpy(XS + (size_t)k * ni * d, XE + (size_t)vi[k] * ni * d, (size_t)ni * d * sizeof *XS);
        memcpy(Cg + (size_t)k * S, p->attr_C + (size_t)vi[k] * S, sizeof(double) * S); /* the attribute probes' C */
    }
    rs_err e = {0};
    if (rs_edit_transfer_evaluate(XI, XS, V, ni, d, c->image_group, &p->eo, Cg, acc, lo, hi, &e)) {
        if (e.kind == RS_ENOMEM) { rc = rs_errk(err, e.kind, "%s", e.msg); goto done; }
        pl_log(p->c, "probes", "edit transfer at %s: skipped (%s)", p->hook, e.msg);
        goto done;
    }
    cJSON *m = cJSON_CreateObject();
    char title[300];
    snprintf(title, sizeof title, "Attribute probes across edits, %s (VLM images)", p->hook);
    cJSON_AddStringToObject(m, "title", title);
    cJSON_AddStringToObject(m, "metric", "accuracy");
    cJSON_AddStringToObject(m, "row_title", "probe trained on original vs");
    cJSON_AddStringToObject(m, "col_title", "tested on original vs");
    cJSON_AddStringToObject(m, "hook", p->hook);
    if (!p->vision) rs_json_add_num(m, "layer", p->layer);
    cJSON *rows = cJSON_AddArrayToObject(m, "rows"), *cols = cJSON_AddArrayToObject(m, "cols");
    for (int k = 0; k < V; k++) {
        cJSON_AddItemToArray(rows, cJSON_CreateString(c->variants[vi[k]].label));
        cJSON_AddItemToArray(cols, cJSON_CreateString(c->variants[vi[k]].label));
    }
    cJSON *vals = cJSON_AddArrayToObject(m, "values");
    for (int a = 0; a < V; a++) {
        cJSON *row = cJSON_CreateArray();
        for (int b = 0; b < V; b++)
            cJSON_AddItemToArray(row, stat_json(acc[a * V + b], lo[a * V + b], hi[a * V + b]));
        cJSON_AddItemToArray(vals, row);
    }
    rs_json_add_num(m, "n_images", ni);
    cJSON *range = cJSON_AddArrayToObject(m, "range");
    cJSON_AddItemToArray(range, rs_json_number(0));
    cJSON_AddItemToArray(range, rs_json_number(1));
    cJSON_AddItemToArray(p->edit_matrices, m);
done:
    free(vi); free(XS); free(acc); free(lo); free(hi); free(Cg);
    return rc;
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
    if (!X || !y || !g) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (wants(c->cfg, "concept") && K >= 2 &&
        eval_one(p, "concept", "concept", "VLM images", XI, c->image_label, c->image_group, concept_ctype(c, 1), ni, d, K,
                 err))
        goto done;
    if (attribute_probes(p, XI, XE, d, X, y, g, err) || edit_transfer(p, XI, XE, d, err)) goto done;
    rc = 0;
done:
    free(XI);
    free(XE);
    free(X);
    free(y);
    free(g);
    return rc;
}

/* Paired comparison of concept probes A and B at the current hook (rs_paired_probe_test):
 * kept test rows and predictions of both (eval_one with p->keep); a probe that was skipped
 * leaves nothing to compare. The two must have been evaluated on identical splits (same
 * labels, groups, seeds): a difference in any seed's test rows is an error. */
static int paired_concept(probe_run *p, const char *pair, const char *ma, const char *mb, const rs_eval_result *A,
                          const rs_eval_result *B, const int *label, const int *group, rs_err *err) {
    if (!A->test_n || !B->test_n) {
        pl_log(p->c, "probes", "paired %s (%s vs %s) at %s: skipped (a probe was not evaluated)", pair, ma, mb, p->hook);
        return 0;
    }
    int S = A->n_seeds, tot = 0;
    if (B->n_seeds != S)
        return rs_errf(err, "paired probe test %s (%s vs %s): %d vs %d seeds; the two probes must be evaluated on "
                            "identical splits", pair, ma, mb, S, B->n_seeds);
    for (int s = 0; s < S; s++) {
        if (A->test_n[s] != B->test_n[s] ||
            memcmp(A->test_row + tot, B->test_row + tot, sizeof(int) * (size_t)A->test_n[s]))
            return rs_errf(err, "paired probe test %s (%s vs %s): split %d has different test rows (%d vs %d rows); the "
                                "two probes must be evaluated on identical splits", pair, ma, mb, s, A->test_n[s],
                           B->test_n[s]);
        tot += A->test_n[s];
    }
    int *ca = malloc(sizeof(int) * ((size_t)tot + 1)), *cb = malloc(sizeof(int) * ((size_t)tot + 1));
    int *g = malloc(sizeof(int) * ((size_t)tot + 1));
    if (!ca || !cb || !g) {
        free(ca), free(cb), free(g);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int k = 0; k < tot; k++) {
        int i = A->test_row[k];
        ca[k] = A->test_pred[k] == label[i];
        cb[k] = B->test_pred[k] == label[i];
        g[k] = group[i];
    }
    rs_paired_result r;
    rs_err e = {0};
    int rc = rs_paired_probe_test(ca, cb, g, A->test_n, S, p->eo.n_boot > 0 ? p->eo.n_boot : 1, p->eo.seed + 0xB00Bu,
                                  p->paired_flips, p->eo.seed + 0x5A1F1Bu, &r, &e);
    free(ca), free(cb), free(g);
    if (rc) return rs_errk(err, e.kind, "paired probe test %s: %s", pair, e.msg);
    cJSON *list = cJSON_GetObjectItemCaseSensitive(p->root, "paired");
    if (!list) list = cJSON_AddArrayToObject(p->root, "paired");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", "concept");
    cJSON_AddStringToObject(o, "pair", pair);
    cJSON_AddStringToObject(o, "model_a", ma);
    cJSON_AddStringToObject(o, "model_b", mb);
    if (!p->vision) rs_json_add_num(o, "layer", p->layer);
    cJSON_AddStringToObject(o, "hook", p->hook);
    rs_json_add_num(o, "n_seeds", r.n_seeds);
    rs_json_add_num(o, "n_test_groups", r.n_test_groups);
    rs_json_add_num(o, "n_test_items", r.n_test_items);
    rs_json_add_num(o, "n_groups_tested", r.n_groups_tested);
    add_num(o, "accuracy_a", r.acc_a);
    add_num(o, "accuracy_b", r.acc_b);
    cJSON_AddItemToObject(o, "difference", stat_json(r.diff, r.ci_lo, r.ci_hi));
    cJSON *sd = cJSON_AddArrayToObject(o, "seed_differences");
    for (int s = 0; s < S; s++) cJSON_AddItemToArray(sd, isfinite(r.seed_diff[s]) ? rs_json_number(r.seed_diff[s]) : cJSON_CreateNull());
    add_num(o, "p", r.p);
    rs_json_add_num(o, "permutations", r.n_perm);
    cJSON_AddItemToArray(list, o);
    pl_log(p->c, "probes", "paired %-4s %s: accuracy %s - %s = %+.3f [%+.3f, %+.3f], sign-flip p %.3g (%d flips)", pair,
           p->hook, mb, ma, r.diff, r.ci_lo, r.ci_hi, r.p, r.n_perm);
    rs_paired_result_free(&r);
    return 0;
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
    /* concept probes on caption rows, kept for the paired tests: a LLM, b VLM, c/d/e conditions */
    rs_eval_result kept[5];
    memset(kept, 0, sizeof kept);
    if (nt && (pl_store_features(c, PL_LLM_TEXT, p->hook, &XL, &n, &d, err) ||
               pl_store_features(c, PL_VLM_TEXT, p->hook, &XV, &n, &dd, err)))
        goto done;
    if (ni && pl_store_features(c, PL_VLM_IMAGE, p->hook, &XI, &n, &d, err)) goto done;
    if (ni && c->n_variants && pl_store_features(c, PL_VLM_EDITS, p->hook, &XE, &n, &d, err)) goto done;
    int nmax = nt + ni + ni + 1;
    X = malloc((size_t)nmax * (size_t)d * sizeof *X);
    y = malloc((size_t)nmax * sizeof *y);
    g = malloc((size_t)nmax * sizeof *g);
    if (!X || !y || !g) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (wants(cfg, "concept") && K >= 2) {
        if (nt) {
            snprintf(label, sizeof label, "LLM captions");
            p->keep = &kept[0];
            int erc = eval_one(p, "concept", "concept", label, XL, c->text_label, c->text_group, concept_ctype(c, 0), nt, d, K,
                               err);
            snprintf(label, sizeof label, "VLM captions");
            p->keep = &kept[1];
            if (!erc)
                erc = eval_one(p, "concept", "concept", label, XV, c->text_label, c->text_group, concept_ctype(c, 0), nt, d, K,
                               err);
            p->keep = NULL;
            if (erc) goto done;
        }
        if (ni) {
            snprintf(label, sizeof label, "VLM images");
            if (eval_one(p, "concept", "concept", label, XI, c->image_label, c->image_group, concept_ctype(c, 1), ni, d, K, err))
                goto done;
        }
        /* the caption conditions (docs/pipeline.md): the same captions read after their own
           image, another group's image, a blank image; same labels, groups and splits */
        static const struct {
            int store;
            const char *model;
        } COND[] = {{PL_VLM_CAPTION, "VLM captions after own image (c)"},
                    {PL_VLM_MISMATCH, "VLM captions after other image (d)"},
                    {PL_VLM_BLANK, "VLM captions after blank image (e)"}};
        for (int k = 0; k < 3 && nt; k++) {
            if (!pl_store_used(c, COND[k].store)) continue;
            float *XC = NULL;
            int nc, dc;
            if (pl_store_features(c, COND[k].store, p->hook, &XC, &nc, &dc, err)) goto done;
            p->keep = &kept[2 + k];
            int erc = eval_one(p, "concept", "concept", COND[k].model, XC, c->text_label, c->text_group, concept_ctype(c, 0),
                               nt, d, K, err);
            p->keep = NULL;
            free(XC);
            if (erc) goto done;
        }
        /* paired LLM-vs-VLM and condition comparisons on the identical splits (the pairs of the
           conditions stage); a pair needs both probes (the condition stores may be absent) */
        static const struct {
            const char *pair;
            int a, b;
        } PAIRS[] = {{"a-b", 0, 1}, {"b-c", 1, 2}, {"c-d", 2, 3}, {"c-e", 2, 4}};
        const char *NAMES[5] = {"LLM captions", "VLM captions", COND[0].model, COND[1].model, COND[2].model};
        for (int k = 0; k < 4 && nt; k++) {
            int a = PAIRS[k].a, b = PAIRS[k].b;
            if ((a >= 2 && !pl_store_used(c, COND[a - 2].store)) || (b >= 2 && !pl_store_used(c, COND[b - 2].store)))
                continue;
            if (paired_concept(p, PAIRS[k].pair, NAMES[a], NAMES[b], &kept[a], &kept[b], c->text_label, c->text_group, err))
                goto done;
        }
    }
    if (wants(cfg, "modality") && nt && ni) {
        memcpy(X, XV, (size_t)nt * d * sizeof *X);
        memcpy(X + (size_t)nt * d, XI, (size_t)ni * d * sizeof *X);
        int *ct = malloc((size_t)(nt + ni + 1) * sizeof *ct); /* control type: the concept label */
        if (!ct) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        for (int i = 0; i < nt; i++) y[i] = 0, g[i] = c->text_group[i], ct[i] = c->text_label[i];
        for (int i = 0; i < ni; i++) y[nt + i] = 1, g[nt + i] = c->image_group[i], ct[nt + i] = c->image_label[i];
        snprintf(label, sizeof label, "VLM");
        int erc = eval_one(p, "modality", "modality", label, X, y, g, ct, nt + ni, d, 2, err);
        free(ct);
        if (erc) goto done;
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
        rs_err e = {0};
        if (np < 4 || rs_transfer_evaluate(X, d, XB, d, y, y, g, np, K, &to, &tr, &e)) {
            if (e.kind == RS_ENOMEM) { rs_errk(err, e.kind, "%s", e.msg); goto done; }
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
                rs_json_add_num(L, "layer", p->layer);
                cJSON_AddStringToObject(L, "hook", p->hook);
                rs_json_add_num(L, "n", np);
                rs_json_add_num(L, "n_test", n_test);
                cJSON_AddItemToObject(L, "accuracy", stat_json(cl->mean.accuracy, cl->ci_lo.accuracy, cl->ci_hi.accuracy));
                add_num(L, "chance", tr.chance[defs[q].test]);
                cJSON_AddItemToArray(layers, L);
            }
            pl_log(c, "probes", "cross-modal %s: captions->images %.3f, images->captions %.3f (%s / %s)", p->hook,
                   tr.cell[2].mean.accuracy, tr.cell[3].mean.accuracy, rs_transfer_diagnosis(&tr, 0),
                   rs_transfer_diagnosis(&tr, 1));
        }
    }
    if (ni && (attribute_probes(p, XI, XE, d, X, y, g, err) || edit_transfer(p, XI, XE, d, err))) goto done;
    rc = 0;
done:
    p->keep = NULL;
    for (int k = 0; k < 5; k++) rs_eval_result_free(&kept[k]);
    free(XL);
    free(XV);
    free(XI);
    free(XE);
    free(X);
    free(y);
    free(g);
    return rc;
}

/* Test groups (images) one split leaves for the concept probe (stratified by concept) and for
 * the attribute/modality probes (every group holds both labels: groups unstratified). */
static int test_groups(const pl_ctx *c, const int *label, int K, int *out, rs_err *err) {
    int ni = c->n_image, *t = malloc((size_t)(ni + 1) * sizeof *t), *seen = calloc((size_t)ni + 1, sizeof *seen);
    int *gid = malloc((size_t)(ni + 1) * sizeof *gid);
    if (!t || !seen || !gid) { free(t); free(seen); free(gid); return rs_errk(err, RS_ENOMEM, "out of memory"); }
    int rc = rs_split_stratified_groups(label, c->image_group, ni, K, c->cfg->probes.test_frac, 7919u, t, err);
    *out = 0;
    if (rc == 0 && rs_group_dense(c->image_group, ni, gid) >= 0)
        for (int i = 0; i < ni; i++)
            if (t[i] && !seen[gid[i]]) seen[gid[i]] = 1, (*out)++;
    free(t); free(seen); free(gid);
    return rc;
}

int pl_probes_check(pl_ctx *c, rs_err *err) {
    const rs_config *cfg = c->cfg;
    int ni = c->n_image, min = cfg->probes.min_test_groups, ng = 0, a = ni, b = ni;
    if (ni < 2 || cfg->probes.n_which == 0) return 0;
    int *zero = calloc((size_t)ni, sizeof *zero), *gid = malloc((size_t)ni * sizeof *gid);
    if (!zero || !gid) { free(zero); free(gid); return rs_errk(err, RS_ENOMEM, "out of memory"); }
    ng = rs_group_dense(c->image_group, ni, gid);
    rs_err e = {0};
    if (c->n_labels >= 2 && test_groups(c, c->image_label, c->n_labels, &a, &e)) a = ni; /* the probe will report it */
    if (test_groups(c, zero, 1, &b, &e)) b = ni;
    free(zero); free(gid);
    int t = a < b ? a : b;
    if (t >= min) return 0;
    /* images needed per class so that round(test_frac · n) per class reaches the minimum */
    int K = c->n_labels >= 1 ? c->n_labels : 1;
    double tf = cfg->probes.test_frac;
    int need = (int)ceil((ceil((double)min / K) - 0.5) / tf);
    double tf_need = ((double)min - 0.5) / ng;
    char frac[160] = "";
    if (tf_need <= 0.5)
        snprintf(frac, sizeof frac, ", raise probes.test_frac (about %.2f would do with %d images)", tf_need, ng);
    return rs_errf(err,
                   "probes: each split leaves %d test groups (images) of %d images in %d classes at probes.test_frac "
                   "%g, fewer than probes.min_test_groups = %d. Raise dataset.n_per_group (about %d images per class "
                   "are needed at this test fraction)%s, or lower probes.min_test_groups (a small demo only: its "
                   "CIs and p-values are then very coarse)",
                   t, ng, K, tf, min, need, frac);
}

/* Benjamini–Hochberg over every probe permutation p-value of probes.json (task × model ×
 * layer, and the vision hooks): each point gets `permutation_q`; the top level gets
 * `n_tests` and `multiple_comparisons`. */
static int probes_bh(cJSON *probes, rs_err *err) {
    static const char *LISTS[2][2] = {{"tasks", "layers"}, {"vision", "hooks"}};
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        double *p = NULL, *q = NULL;
        cJSON **at = NULL;
        if (pass == 1) {
            p = malloc(((size_t)n + 1) * sizeof *p), q = malloc(((size_t)n + 1) * sizeof *q);
            at = malloc(((size_t)n + 1) * sizeof *at);
            if (!p || !q || !at) {
                free(p), free(q), free(at);
                return rs_errk(err, RS_ENOMEM, "out of memory");
            }
        }
        int k = 0;
        for (int l = 0; l < 2; l++) {
            const cJSON *T;
            cJSON_ArrayForEach(T, cJSON_GetObjectItemCaseSensitive(probes, LISTS[l][0])) {
                cJSON *L;
                cJSON_ArrayForEach(L, cJSON_GetObjectItemCaseSensitive(T, LISTS[l][1])) {
                    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(L, "permutation_p");
                    if (!pv) continue;
                    if (pass == 1) {
                        p[k] = cJSON_IsNumber(pv) ? pv->valuedouble : NAN;
                        at[k] = L;
                    }
                    k++;
                }
            }
        }
        if (pass == 0) {
            n = k;
            continue;
        }
        int bad = stats_bh_qvalues(p, n, q), m = 0;
        for (int i = 0; !bad && i < n; i++) {
            m += isfinite(p[i]) != 0;
            rs_json_add_num(at[i], "permutation_q", q[i]);
        }
        free(p), free(q), free(at);
        if (bad) return rs_errk(err, RS_ENOMEM, "out of memory");
        rs_json_add_num(probes, "n_tests", m);
        cJSON_AddStringToObject(probes, "multiple_comparisons",
                                "permutation_q: Benjamini-Hochberg over the n_tests permutation p-values of this file "
                                "(task x model x layer, and the vision hooks)");
    }
    return 0;
}

/* Benjamini–Hochberg over the paired tests of probes.json ("paired": pair × layer): each
 * entry gets `q`; the top level describes the test and the family (`paired_n_tests`). */
static int paired_bh(cJSON *probes, int flips, rs_err *err) {
    cJSON *list = cJSON_GetObjectItemCaseSensitive(probes, "paired");
    int n = cJSON_GetArraySize(list), m = 0, k = 0;
    if (!list || n == 0) return 0;
    double *p = malloc(sizeof(double) * ((size_t)n + 1)), *q = malloc(sizeof(double) * ((size_t)n + 1));
    if (!p || !q) {
        free(p), free(q);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    cJSON *e;
    cJSON_ArrayForEach(e, list) {
        const cJSON *pv = cJSON_GetObjectItemCaseSensitive(e, "p");
        p[k++] = cJSON_IsNumber(pv) ? pv->valuedouble : NAN;
    }
    int bad = stats_bh_qvalues(p, n, q);
    k = 0;
    cJSON_ArrayForEach(e, list) {
        if (!bad) add_num(e, "q", q[k]);
        m += isfinite(p[k]) != 0;
        k++;
    }
    free(p), free(q);
    if (bad) return rs_errk(err, RS_ENOMEM, "out of memory");
    char desc[900];
    snprintf(desc, sizeof desc,
             "concept probes compared on identical splits (same seeds, same test captions): a-b = VLM captions minus "
             "LLM captions, b-c = after own image minus VLM captions, c-d = after other image minus after own image, "
             "c-e = after blank image minus after own image; difference = mean over splits of accuracy B - A, 95%% "
             "paired nested bootstrap (splits, then test images, the same draws for A and B); p: two-sided paired "
             "permutation test with %d random sign-flip patterns (each test image's A and B correctness swapped with "
             "probability 1/2 on all of its captions, the same flip in every split that tests the image), p = (1 + #{|null| >= |observed|}) "
             "/ (1 + flips)%s; q: Benjamini-Hochberg over the paired_n_tests p-values of this list (docs/probes.md)",
             flips, flips ? "" : " (probes.permutations = 0: not computed, p null)");
    cJSON_AddStringToObject(probes, "paired_test", desc);
    rs_json_add_num(probes, "paired_n_tests", m);
    return 0;
}

/* Mean of v[idx[i]] over i < n (idx NULL: identity). */
static double mean_of(const double *v, const int64_t *idx, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[idx ? idx[i] : i];
    return s / n;
}

/* {value, ci_lo, ci_hi}: the mean of d over n images with a 95% percentile bootstrap over
 * images (n_boot resamples with replacement, splitmix64 from seed; index = next % n). */
static cJSON *boot_mean_json(const double *d, int n, int n_boot, uint64_t seed, double *bm, int64_t *idx) {
    double lo = NAN, hi = NAN;
    if (n_boot > 0 && n > 1) {
        uint64_t st = seed;
        for (int b = 0; b < n_boot; b++) {
            for (int i = 0; i < n; i++) idx[i] = (int64_t)(stats_splitmix(&st) % (uint64_t)n);
            bm[b] = mean_of(d, idx, n);
        }
        lo = stats_percentile(bm, n_boot, 0.025);
        hi = stats_percentile(bm, n_boot, 0.975);
    }
    return stat_json(mean_of(d, NULL, n), lo, hi);
}

/* attribute_transfer.json "luminance": per edit variant, the mean change (edited - original)
 * over the base images of BT.601 luma and of linear-light luminance Y, with bootstrap CIs.
 * Images are decoded and edited by pl_load_variant, the extract stage's own path. */
static int luminance_json(pl_ctx *c, cJSON *attr, rs_err *err) {
    int n = c->n_image, V = c->n_variants, B = c->cfg->probes.bootstrap;
    if (n < 1 || V < 1) return 0;
    double *L = malloc(sizeof(double) * (size_t)n * (size_t)(V + 1) * 2);
    double *dl = malloc(sizeof(double) * (size_t)n), *dy = malloc(sizeof(double) * (size_t)n);
    double *bm = malloc(sizeof(double) * (size_t)(B > 0 ? B : 1));
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    int rc = -1;
    if (!L || !dl || !dy || !bm || !idx) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    /* L[(v·n + j)·2 + {0: luma, 1: Y}], v = 0 the original, v = 1.. the variants; images
       in parallel on the coarse threads (each writes its own slots; the error reported is
       that of the first failing image, as a serial loop would report) */
    int first_bad = n, noted = c->image_lum != NULL;
    rs_err bad_err = {0};
    for (size_t i = 0; noted && i < (size_t)n * (size_t)(V + 1) * 2; i++) noted = isfinite(c->image_lum[i]);
    if (noted) /* every image was decoded by this process's extract stage: same functions, same values */
        memcpy(L, c->image_lum, sizeof(double) * (size_t)n * (size_t)(V + 1) * 2);
    else
#pragma omp parallel for schedule(dynamic) num_threads(c->coarse_threads > 0 ? c->coarse_threads : 1)
    for (int j = 0; j < n; j++) {
        const char *path = c->man->rows[c->image_row[j]].path;
        rs_err le = {0};
        /* decoded once (pl_load_variant without an edit); each variant = the same edit
           function the extract stage applies (rs_edit_apply) on a copy */
        rs_image orig = {0, 0, NULL};
        int failed = pl_load_variant(NULL, path, &orig, &le) != 0;
        for (int v = 0; v <= V && !failed; v++) {
            rs_image img = {0, 0, NULL};
            rs_luminance lu;
            if (rs_image_copy(&img, &orig, &le) ||
                (v && rs_edit_apply(&img, &c->variants[v - 1].edit, &le) &&
                 rs_err_prefix(&le, "%s: edit %s", path, c->variants[v - 1].label))) {
                rs_image_free(&img);
                failed = 1;
                break;
            }
            failed = rs_image_luminance(&img, &lu, &le) != 0;
            rs_image_free(&img);
            if (failed) break;
            L[((size_t)v * n + j) * 2] = lu.luma_bt601;
            L[((size_t)v * n + j) * 2 + 1] = lu.linear_y;
        }
        rs_image_free(&orig);
        if (failed) {
#pragma omp critical(rs_luminance_error)
            if (j < first_bad) {
                first_bad = j;
                bad_err = le;
            }
        }
    }
    if (first_bad < n) {
        if (err) *err = bad_err;
        goto done;
    }
    char def[512];
    snprintf(def, sizeof def,
             "per edit variant, mean over the %d base images of (edited - original) image-mean luminance on a 0..1 "
             "scale: d_luma_bt601 of 0.299R+0.587G+0.114B on the gamma-encoded 8-bit values / 255; d_linear_Y of "
             "0.2126R+0.7152G+0.0722B on linear light (sRGB EOTF); 95%% percentile bootstrap over images (%d "
             "resamples, seed 0x1D5)",
             n, B);
    cJSON *arr = cJSON_AddArrayToObject(attr, "luminance");
    for (int v = 1; v <= V; v++) {
        for (int j = 0; j < n; j++) {
            dl[j] = L[((size_t)v * n + j) * 2] - L[(size_t)j * 2];
            dy[j] = L[((size_t)v * n + j) * 2 + 1] - L[(size_t)j * 2 + 1];
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "edit", c->variants[v - 1].name);
        rs_json_add_num(o, "value", c->variants[v - 1].edit.value);
        cJSON_AddItemToObject(o, "d_luma_bt601", boot_mean_json(dl, n, B, 0x1D5u, bm, idx));
        cJSON_AddItemToObject(o, "d_linear_Y", boot_mean_json(dy, n, B, 0x1D5u, bm, idx));
        rs_json_add_num(o, "n_images", n);
        cJSON_AddStringToObject(o, "definition", def);
        cJSON_AddItemToArray(arr, o);
    }
    rc = 0;
done:
    free(L);
    free(dl);
    free(dy);
    free(bm);
    free(idx);
    return rc;
}

int pl_probes_fp(pl_ctx *c, char fp[65], rs_err *err) {
    char fps[PL_N_STORES][65];
    for (int s = 0; s < PL_N_STORES; s++) {
        if (!pl_store_used(c, s)) strcpy(fps[s], "-");
        else if (pl_store_fp(c, s, fps[s], err)) return -1;
    }
    char *pj = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c->cfg->resolved, "probes"));
    pl_fp(fp, "probes v3 %s %s %s %s %s %s %s %s %s pool=%s", RS_VERSION, fps[0], fps[1], fps[2], fps[3], fps[4], fps[5],
          fps[6], pj ? pj : "-", c->cfg->pool);
    free(pj);
    return 0;
}

int pl_probes_run(pl_ctx *c, const char **note, rs_err *err) {
    const rs_config *cfg = c->cfg;
    char *pp = pl_join(c->results, "probes.json"), *tp = pl_join(c->results, "transfer.json");
    char *ap = pl_join(c->results, "attribute_transfer.json");
    cJSON *probes = NULL, *transfer = NULL, *attr = NULL;
    double *attr_C = NULL;
    int rc = -1;
    if (!pp || !tp || !ap) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    probes = cJSON_CreateObject();
    transfer = cJSON_CreateObject();
    char ci[1024];
    snprintf(ci, sizeof ci,
             "95%% nested bootstrap of the mean accuracy over %d group-aware splits (splits, then test images "
             "resampled with replacement; %d replicates; the same resamples for every cell)",
             cfg->probes.seeds, cfg->probes.bootstrap);
    cJSON_AddStringToObject(transfer, "ci", ci);
    snprintf(ci, sizeof ci,
             "95%% nested bootstrap of the mean accuracy over %d group-aware splits (splits, then test images "
             "resampled with replacement; %d replicates; docs/probes.md)",
             cfg->probes.seeds, cfg->probes.bootstrap);
    cJSON_AddStringToObject(probes, "ci", ci);
    snprintf(ci, sizeof ci,
             "%d group-level label permutations per split; p = (1 + #{null >= observed}) / (1 + n); control task "
             "types: the image's concept label (attribute and modality probes), the image's COCO category (concept "
             "probes: manifest column category, the most frequent instance category of the image's concept group, ties "
             "to the smallest category id; null without that column); selectivity = accuracy - control accuracy",
             cfg->probes.permutations);
    cJSON_AddStringToObject(probes, "permutation_test", ci);
    cJSON_AddStringToObject(probes, "split", "group-aware: an image, its captions and its edited variants are on one side");
    probe_run p = {.c = c, .tasks = cJSON_AddArrayToObject(probes, "tasks"), .skipped = cJSON_AddArrayToObject(probes, "skipped")};
    cJSON *matrices = cJSON_AddArrayToObject(transfer, "matrices");
    attr = cJSON_CreateObject();
    cJSON_AddStringToObject(attr, "ci", "95% nested bootstrap over splits and test images, the same resamples for every cell");
    cJSON_AddStringToObject(attr, "reading",
                            "diagonal: the attribute probe; same family at another strength: dose-response; another "
                            "family: cross-edit control (near 0.5 unless the edits share a direction)");
    p.edit_matrices = cJSON_AddArrayToObject(attr, "matrices");
    p.attr_C = attr_C = malloc(sizeof(double) * ((size_t)(c->n_variants + 1) * (size_t)cfg->probes.seeds));
    if (!attr_C) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    p.eo = rs_eval_defaults();
    p.eo.n_seeds = cfg->probes.seeds;
    p.eo.test_frac = cfg->probes.test_frac;
    p.eo.cv_folds = cfg->probes.folds;
    p.eo.Cs = cfg->probes.C;
    p.eo.n_Cs = cfg->probes.n_C;
    p.eo.n_boot = cfg->probes.bootstrap;
    p.eo.n_perm = cfg->probes.permutations;
    p.eo.min_test_groups = cfg->probes.min_test_groups;
    p.eo.seed = 0;
    p.root = probes;
    p.paired_flips = cfg->probes.permutations > 0 ? 1000 : 0;
    p.eo.threads = c->coarse_threads;
    if (pl_probes_check(c, err)) goto done;
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
    if (cJSON_GetArraySize(p.edit_matrices) > 0 && (luminance_json(c, attr, err) || write_json(ap, attr, err)))
        goto done;
    /* the report needs at least one task in probes.json: with none, the file is not written */
    if (n_tasks > 0 && (probes_bh(probes, err) || paired_bh(probes, p.paired_flips, err) || write_json(pp, probes, err)))
        goto done;
    *note = n_tasks ? NULL : "no probe could be evaluated";
    if (n_tasks) pl_log(c, "probes", "wrote %s%s", pp, cJSON_GetArraySize(matrices) > 0 ? " and transfer.json" : "");
    else pl_log(c, "probes", "no probe could be evaluated on this dataset (see the messages above)");
    rc = 0;
done:
    cJSON_Delete(probes);
    cJSON_Delete(transfer);
    cJSON_Delete(attr);
    free(attr_C);
    free(pp);
    free(tp);
    free(ap);
    return rc;
}
