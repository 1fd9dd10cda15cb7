/* Writers of the probes stage (probes_result.h): results/probes.json, transfer.json and
 * attribute_transfer.json from the pl_probes_result that probes.c computed. Nothing here
 * computes a value; the q-values come from pl_probes_bh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "pipeline/probes_result.h"
#include "base/jsonutil.h"
#include "reprshift/probe.h" /* RS_PENALTY_L1 */
#include "reprshift/stats.h"

void pl_probes_result_free(pl_probes_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_pt; i++) rs_eval_result_free(&r->pt[i].ev);
    for (int i = 0; i < r->n_skip; i++) free(r->skip[i].reason);
    for (int i = 0; i < r->n_pair; i++) rs_paired_result_free(&r->pair[i].r);
    pl_probes_sae_free(r);
    for (int i = 0; i < r->n_em; i++) {
        free(r->em[i].labels);
        free(r->em[i].acc);
        free(r->em[i].lo);
        free(r->em[i].hi);
    }
    free(r->pt);
    free(r->skip);
    free(r->xf);
    free(r->pair);
    free(r->em);
    free(r->lum);
    pl_targets_result_free(r->tg);
    free(r->al);
    memset(r, 0, sizeof *r);
}

int pl_probes_bh(pl_probes_result *r, rs_err *err) {
    int n = r->n_pt > r->n_pair ? r->n_pt : r->n_pair;
    double *p = calloc((size_t)n + 1, sizeof *p), *q = malloc(sizeof(double) * ((size_t)n + 1));
    int *at = malloc(sizeof(int) * ((size_t)n + 1)), rc = -1, m = 0;
    if (!p || !q || !at) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    /* every evaluated point (not the cross-modal cells: they have no permutation test) */
    r->n_tests = 0;
    for (int i = 0; i < r->n_pt; i++)
        if (r->pt[i].xfer < 0) {
            p[m] = r->pt[i].ev.perm_p;
            r->n_tests += isfinite(p[m]) != 0;
            at[m++] = i;
        }
    if (stats_bh_qvalues(p, m, q)) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (int k = 0; k < m; k++) r->pt[at[k]].q = q[k];
    r->paired_n_tests = 0;
    for (int i = 0; i < r->n_pair; i++) {
        p[i] = r->pair[i].r.p;
        r->paired_n_tests += isfinite(p[i]) != 0;
    }
    if (stats_bh_qvalues(p, r->n_pair, q)) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < r->n_pair; i++) r->pair[i].q = q[i];
    rc = 0;
done:
    free(p);
    free(q);
    free(at);
    return rc;
}

static void add_range01(cJSON *m) {
    cJSON *range = cJSON_AddArrayToObject(m, "range");
    cJSON_AddItemToArray(range, rs_json_number(0));
    cJSON_AddItemToArray(range, rs_json_number(1));
}

/* The task entry (task, model) of list `tasks`, created on first use (points under `key`:
 * "layers", or "hooks" for vision entries). */
static cJSON *task_entry(cJSON *tasks, const char *task, const char *kind, const char *model, const char *key) {
    cJSON *t;
    cJSON_ArrayForEach(t, tasks) {
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(t, "task")->valuestring, task) &&
            !strcmp(cJSON_GetObjectItemCaseSensitive(t, "model")->valuestring, model))
            return t;
    }
    t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "task", task);
    cJSON_AddStringToObject(t, "kind", kind);
    cJSON_AddStringToObject(t, "model", model);
    cJSON_AddItemToArray(tasks, t);
    cJSON_AddArrayToObject(t, key);
    return t;
}

/* The evaluation metrics of one probe into o: accuracy, balanced accuracy and macro F1 with
 * their CIs, the seed sd, chance, the permutation null and p, the control task and selectivity
 * (the permutation test's wall time goes to run.log only: results must be byte-reproducible). */
void pl_eval_metrics_json(cJSON *o, const rs_eval_result *e) {
    cJSON_AddItemToObject(o, "accuracy", rs_json_stat(e->mean.accuracy, e->ci_lo.accuracy, e->ci_hi.accuracy));
    cJSON_AddItemToObject(o, "balanced_accuracy",
                          rs_json_stat(e->mean.balanced_accuracy, e->ci_lo.balanced_accuracy, e->ci_hi.balanced_accuracy));
    cJSON_AddItemToObject(o, "macro_f1", rs_json_stat(e->mean.macro_f1, e->ci_lo.macro_f1, e->ci_hi.macro_f1));
    rs_json_add_num(o, "accuracy_sd", e->acc_sd);
    rs_json_add_num(o, "chance", e->chance);
    rs_json_add_num(o, "permuted_label_accuracy", e->perm_accuracy);
    rs_json_add_num(o, "permutation_p", e->perm_p);
    rs_json_add_num(o, "permutations", e->n_perm);
    rs_json_add_num(o, "control_accuracy", e->control_accuracy);
    rs_json_add_num(o, "control_type_overlap", e->control_overlap);
    rs_json_add_num(o, "selectivity", e->selectivity);
}

/* One point of a task's curve: an evaluated probe or a cross-modal transfer cell. */
static cJSON *point_json(const pl_probes_result *r, const pl_probe_point *P) {
    cJSON *L = cJSON_CreateObject();
    if (!P->vision) rs_json_add_num(L, "layer", P->layer);
    cJSON_AddStringToObject(L, "hook", P->hook);
    rs_json_add_num(L, "n", P->n);
    rs_json_add_num(L, "n_test", P->n_test);
    if (P->xfer >= 0) {
        const pl_probe_transfer *X = &r->xf[P->xfer];
        const rs_transfer_cell *cl = &X->r.cell[P->cell];
        cJSON_AddItemToObject(L, "accuracy", rs_json_stat(cl->mean.accuracy, cl->ci_lo.accuracy, cl->ci_hi.accuracy));
        rs_json_add_num(L, "chance", X->r.chance[rs_transfer_cells()[P->cell].test]);
        return L;
    }
    const rs_eval_result *e = &P->ev;
    rs_json_add_num(L, "n_test_groups", e->n_test_groups);
    pl_eval_metrics_json(L, e);
    rs_json_add_num(L, "permutation_q", P->q);
    return L;
}

/* Append every point of list `vision` (0: the decoder hooks, 1: the vision hooks) to its
 * task entry in tasks. */
static void add_points(const pl_probes_result *r, cJSON *tasks, int vision) {
    const char *key = vision ? "hooks" : "layers";
    for (int i = 0; i < r->n_pt; i++) {
        const pl_probe_point *P = &r->pt[i];
        if (P->vision != vision) continue;
        cJSON *t = task_entry(tasks, P->task, P->kind, P->model, key);
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(t, key), point_json(r, P));
        /* the task's chance line: majority share (the same for every layer) */
        if (P->xfer < 0 && !cJSON_GetObjectItemCaseSensitive(t, "chance")) rs_json_add_num(t, "chance", P->ev.chance);
    }
}

static cJSON *paired_json(const pl_probe_paired *Q) {
    const rs_paired_result *r = &Q->r;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", "concept");
    cJSON_AddStringToObject(o, "pair", Q->pair);
    cJSON_AddStringToObject(o, "model_a", Q->model_a);
    cJSON_AddStringToObject(o, "model_b", Q->model_b);
    if (!Q->vision) rs_json_add_num(o, "layer", Q->layer);
    cJSON_AddStringToObject(o, "hook", Q->hook);
    rs_json_add_num(o, "n_seeds", r->n_seeds);
    rs_json_add_num(o, "n_test_groups", r->n_test_groups);
    rs_json_add_num(o, "n_test_items", r->n_test_items);
    rs_json_add_num(o, "n_groups_tested", r->n_groups_tested);
    rs_json_add_num(o, "accuracy_a", r->acc_a);
    rs_json_add_num(o, "accuracy_b", r->acc_b);
    cJSON_AddItemToObject(o, "difference", rs_json_stat(r->diff, r->ci_lo, r->ci_hi));
    cJSON *sd = cJSON_AddArrayToObject(o, "seed_differences");
    for (int s = 0; s < r->n_seeds; s++) cJSON_AddItemToArray(sd, rs_json_number(r->seed_diff[s]));
    rs_json_add_num(o, "p", r->p);
    rs_json_add_num(o, "permutations", r->n_perm);
    rs_json_add_num(o, "q", Q->q);
    return o;
}

cJSON *pl_probes_json(const pl_probes_result *r) {
    cJSON *probes = cJSON_CreateObject();
    if (!probes) return NULL;
    char ci[1024];
    snprintf(ci, sizeof ci,
             "95%% nested bootstrap of the mean accuracy over %d group-aware splits (splits, then test images "
             "resampled with replacement; %d replicates; docs/probes.md)",
             r->n_seeds, r->n_boot);
    cJSON_AddStringToObject(probes, "ci", ci);
    snprintf(ci, sizeof ci,
             "%d group-level label permutations per split; p = (1 + #{null >= observed}) / (1 + n); control task "
             "types: the image's concept label (attribute and modality probes), the image's COCO category (concept "
             "probes: manifest column category, the most frequent instance category of the image's concept group, ties "
             "to the smallest category id; null without that column); selectivity = accuracy - control accuracy",
             r->n_perm);
    cJSON_AddStringToObject(probes, "permutation_test", ci);
    cJSON_AddStringToObject(probes, "split", "group-aware: an image, its captions and its edited variants are on one side");
    add_points(r, cJSON_AddArrayToObject(probes, "tasks"), 0);
    cJSON *skipped = cJSON_AddArrayToObject(probes, "skipped");
    for (int i = 0; i < r->n_skip; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "task", r->skip[i].task);
        cJSON_AddStringToObject(s, "model", r->skip[i].model);
        cJSON_AddStringToObject(s, "hook", r->skip[i].hook);
        cJSON_AddStringToObject(s, "reason", r->skip[i].reason);
        cJSON_AddItemToArray(skipped, s);
    }
    if (r->n_pair) {
        cJSON *list = cJSON_AddArrayToObject(probes, "paired");
        for (int i = 0; i < r->n_pair; i++) cJSON_AddItemToArray(list, paired_json(&r->pair[i]));
    }
    /* vision hooks: a separate list, absent without vision_hooks (then probes.json is as before) */
    if (r->has_vision) add_points(r, cJSON_AddArrayToObject(probes, "vision"), 1);
    /* target probes: absent unless probes.targets asks (then probes.json is as before) */
    if (r->tg) {
        cJSON *tg = pl_targets_json(r->tg);
        if (!tg) {
            cJSON_Delete(probes);
            return NULL;
        }
        cJSON_AddItemToObject(probes, "targets", tg);
    }
    rs_json_add_num(probes, "n_tests", r->n_tests);
    cJSON_AddStringToObject(probes, "multiple_comparisons",
                            "permutation_q: Benjamini-Hochberg over the n_tests permutation p-values of this file "
                            "(task x model x layer, and the vision hooks)");
    if (r->n_pair) {
        char desc[900];
        snprintf(desc, sizeof desc,
                 "concept probes compared on identical splits (same seeds, same test captions): a-b = VLM captions "
                 "minus LLM captions, b-c = after own image minus VLM captions, c-d = after other image minus after "
                 "own image, c-e = after blank image minus after own image; difference = mean over splits of accuracy "
                 "B - A, 95%% paired nested bootstrap (splits, then test images, the same draws for A and B); p: "
                 "two-sided paired permutation test with %d random sign-flip patterns (each test image's A and B "
                 "correctness swapped with probability 1/2 on all of its captions, the same flip in every split that "
                 "tests the image), p = (1 + #{|null| >= |observed|}) / (1 + flips)%s; q: Benjamini-Hochberg over the "
                 "paired_n_tests p-values of this list (docs/probes.md)",
                 r->paired_flips, r->paired_flips ? "" : " (probes.permutations = 0: not computed, p null)");
        cJSON_AddStringToObject(probes, "paired_test", desc);
        rs_json_add_num(probes, "paired_n_tests", r->paired_n_tests);
    }
    /* only when configured (probes.penalty "l1", probes.features "sae"): otherwise the file is as before */
    if (r->penalty == RS_PENALTY_L1)
        cJSON_AddStringToObject(probes, "penalty",
                                "l1: every evaluated probe minimises ||W||_1 + C sum_i l_i (intercept not penalised; "
                                "C grid probes.l1_C, else probes.C); the cross-modal transfer probes stay l2");
    if (r->sae_on) {
        cJSON_AddItemToObject(probes, "sae_features", pl_probes_sae_json(r));
        cJSON_AddStringToObject(
            probes, "sae_features_note",
            "concept probes on captions refitted on the SAE's features (each token encoded, then pooled as the raw "
            "activations are) with the raw probes' splits, seeds, C grid, penalty, CIs, permutation test and control "
            "task; raw: the raw-activation probe of the same rows; sae_minus_raw: paired difference on identical "
            "splits (paired nested bootstrap, sign-flip p); permutation_q: Benjamini-Hochberg over the sae_n_tests "
            "p-values of this list (a family apart from the raw probes'); top_features: the all-rows fit "
            "(StandardScaler, C_final = the most frequently chosen C), features ranked by |coef| on the standardised "
            "feature (= |raw weight| x feature std; K > 2: the largest over classes, class = that class), zero "
            "weights not listed; neuronpedia_url where the SAE registry knows a Neuronpedia id (docs/probes.md)");
        rs_json_add_num(probes, "sae_n_tests", r->sae_n_tests);
    }
    return probes;
}

/* The transfer matrix of one hook: rows = training modality, cols = test condition. */
static cJSON *transfer_matrix(const pl_probe_transfer *X) {
    static const char *cols[5] = {"same", "direct", "moments", "Procrustes", "ridge"};
    static const rs_map_kind maps[4] = {RS_MAP_NONE, RS_MAP_MOMENTS, RS_MAP_PROCRUSTES, RS_MAP_RIDGE};
    const rs_transfer_cell_def *defs = rs_transfer_cells();
    const rs_transfer_result *r = &X->r;
    cJSON *m = cJSON_CreateObject();
    char title[256];
    snprintf(title, sizeof title, "Cross-modal concept transfer, %s (VLM)", X->hook);
    cJSON_AddStringToObject(m, "title", title);
    cJSON_AddStringToObject(m, "metric", "accuracy");
    cJSON_AddStringToObject(m, "row_title", "probe trained on");
    cJSON_AddStringToObject(m, "col_title", "tested on: same / other modality (+ map)");
    cJSON_AddStringToObject(m, "hook", X->hook);
    rs_json_add_num(m, "layer", X->layer);
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
            else cJSON_AddItemToArray(row, rs_json_stat(c->mean.accuracy, c->ci_lo.accuracy, c->ci_hi.accuracy));
            if (c && c->available && isfinite(c->map_r2)) cJSON_AddItemToArray(rr, rs_json_number(c->map_r2));
            else cJSON_AddItemToArray(rr, cJSON_CreateNull());
        }
        cJSON_AddItemToArray(vals, row);
        cJSON_AddItemToArray(r2, rr);
    }
    rs_json_add_num(m, "n", X->n_test);
    add_range01(m);
    cJSON *dg = cJSON_AddObjectToObject(m, "diagnosis");
    cJSON_AddStringToObject(dg, "captions_to_images", rs_transfer_diagnosis(r, 0));
    cJSON_AddStringToObject(dg, "images_to_captions", rs_transfer_diagnosis(r, 1));
    rs_json_add_num(m, "chance_captions", r->chance[0]);
    rs_json_add_num(m, "chance_images", r->chance[1]);
    return m;
}

cJSON *pl_probes_transfer_json(const pl_probes_result *r) {
    cJSON *transfer = cJSON_CreateObject();
    if (!transfer) return NULL;
    char ci[1024];
    snprintf(ci, sizeof ci,
             "95%% nested bootstrap of the mean accuracy over %d group-aware splits (splits, then test images "
             "resampled with replacement; %d replicates; the same resamples for every cell)",
             r->n_seeds, r->n_boot);
    cJSON_AddStringToObject(transfer, "ci", ci);
    cJSON *matrices = cJSON_AddArrayToObject(transfer, "matrices");
    for (int i = 0; i < r->n_xf; i++) cJSON_AddItemToArray(matrices, transfer_matrix(&r->xf[i]));
    return transfer;
}

/* The edit-transfer matrix of one hook. */
static cJSON *edit_matrix(const pl_probe_edit_matrix *E) {
    int V = E->V;
    cJSON *m = cJSON_CreateObject();
    char title[300];
    snprintf(title, sizeof title, "Attribute probes across edits, %s (VLM images)", E->hook);
    cJSON_AddStringToObject(m, "title", title);
    cJSON_AddStringToObject(m, "metric", "accuracy");
    cJSON_AddStringToObject(m, "row_title", "probe trained on original vs");
    cJSON_AddStringToObject(m, "col_title", "tested on original vs");
    cJSON_AddStringToObject(m, "hook", E->hook);
    if (!E->vision) rs_json_add_num(m, "layer", E->layer);
    cJSON *rows = cJSON_AddArrayToObject(m, "rows"), *cols = cJSON_AddArrayToObject(m, "cols");
    for (int k = 0; k < V; k++) {
        cJSON_AddItemToArray(rows, cJSON_CreateString(E->labels[k]));
        cJSON_AddItemToArray(cols, cJSON_CreateString(E->labels[k]));
    }
    cJSON *vals = cJSON_AddArrayToObject(m, "values");
    for (int a = 0; a < V; a++) {
        cJSON *row = cJSON_CreateArray();
        for (int b = 0; b < V; b++)
            cJSON_AddItemToArray(row, rs_json_stat(E->acc[a * V + b], E->lo[a * V + b], E->hi[a * V + b]));
        cJSON_AddItemToArray(vals, row);
    }
    rs_json_add_num(m, "n_images", E->n_images);
    add_range01(m);
    return m;
}

cJSON *pl_probes_attribute_json(const pl_probes_result *r) {
    cJSON *attr = cJSON_CreateObject();
    if (!attr) return NULL;
    cJSON_AddStringToObject(attr, "ci", "95% nested bootstrap over splits and test images, the same resamples for every cell");
    cJSON_AddStringToObject(attr, "reading",
                            "diagonal: the attribute probe; same family at another strength: dose-response; another "
                            "family: cross-edit control (near 0.5 unless the edits share a direction)");
    cJSON *matrices = cJSON_AddArrayToObject(attr, "matrices");
    for (int i = 0; i < r->n_em; i++) cJSON_AddItemToArray(matrices, edit_matrix(&r->em[i]));
    if (r->lum) {
        /* per edit variant: the mean change of image-mean luminance with its bootstrap CI */
        char def[512];
        snprintf(def, sizeof def,
                 "per edit variant, mean over the %d base images of (edited - original) image-mean luminance on a "
                 "0..1 scale: d_luma_bt601 of 0.299R+0.587G+0.114B on the gamma-encoded 8-bit values / 255; "
                 "d_linear_Y of 0.2126R+0.7152G+0.0722B on linear light (sRGB EOTF); 95%% percentile bootstrap over "
                 "images (%d resamples, seed 0x1D5)",
                 r->lum_images, r->n_boot);
        cJSON *arr = cJSON_AddArrayToObject(attr, "luminance");
        for (int v = 0; v < r->n_lum; v++) {
            const pl_probe_lum *l = &r->lum[v];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "edit", l->edit);
            rs_json_add_num(o, "value", l->value);
            cJSON_AddItemToObject(o, "d_luma_bt601", rs_json_stat(l->d_luma.value, l->d_luma.lo, l->d_luma.hi));
            cJSON_AddItemToObject(o, "d_linear_Y", rs_json_stat(l->d_linear_y.value, l->d_linear_y.lo, l->d_linear_y.hi));
            rs_json_add_num(o, "n_images", r->lum_images);
            cJSON_AddStringToObject(o, "definition", def);
            cJSON_AddItemToArray(arr, o);
        }
    }
    return attr;
}

/* One direction of one method: recall@k with CIs, the shuffled-pair null, median ranks. */
static cJSON *align_stat(const rs_stat *a, int n) {
    cJSON *o = rs_json_stat(a->value, a->lo, a->hi);
    if (o) rs_json_add_num(o, "n", n);
    return o;
}

static cJSON *align_dir(const rs_align_method *M, int dir, int n, int S, int R) {
    cJSON *o = cJSON_CreateObject(), *rec = cJSON_AddObjectToObject(o, "recall"), *nul = cJSON_AddObjectToObject(o, "shuffled_recall");
    for (int k = 0; k < RS_ALIGN_NK; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", rs_align_ks[k]);
        const rs_stat *a = &M->recall[dir][k], *b = &M->null_recall[dir][k];
        cJSON_AddItemToObject(rec, key, align_stat(a, n));
        cJSON_AddItemToObject(nul, key, align_stat(b, n));
    }
    rs_json_add_num(o, "median_rank", M->median_rank[dir]);
    rs_json_add_num(o, "shuffled_median_rank", M->null_median_rank[dir]);
    cJSON *ps = cJSON_AddObjectToObject(o, "recall_per_split");
    for (int k = 0; k < RS_ALIGN_NK; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", rs_align_ks[k]);
        cJSON *arr = cJSON_AddArrayToObject(ps, key);
        for (int s = 0; s < S; s++) cJSON_AddItemToArray(arr, rs_json_number(M->split_recall[s][dir][k]));
    }
    cJSON *nl = cJSON_AddObjectToObject(o, "null"), *mean = cJSON_AddObjectToObject(nl, "mean");
    cJSON *p95 = cJSON_AddObjectToObject(nl, "p95");
    rs_json_add_num(nl, "draws", R);
    for (int k = 0; k < RS_ALIGN_NK; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", rs_align_ks[k]);
        rs_json_add_num(mean, key, M->null_mean[dir][k]);
        rs_json_add_num(p95, key, M->null_p95[dir][k]);
    }
    rs_json_add_num(nl, "p", M->p[dir]);
    rs_json_add_num(nl, "q", M->q[dir]);
    return o;
}

static cJSON *align_hook_json(const pl_probe_align *A) {
    const rs_align_result *r = &A->r;
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "hook", A->hook);
    rs_json_add_num(h, "layer", A->layer);
    cJSON_AddStringToObject(h, "text", A->text);
    cJSON_AddStringToObject(h, "image", "VLM images");
    rs_json_add_num(h, "n_train", r->n_train);
    rs_json_add_num(h, "n_test", r->n_test);
    rs_json_add_num(h, "splits", r->n_splits);
    rs_json_add_num(h, "null_draws", r->n_null);
    cJSON *tr = cJSON_AddArrayToObject(h, "n_train_per_split"), *te = cJSON_AddArrayToObject(h, "n_test_per_split");
    for (int s = 0; s < r->n_splits; s++) {
        cJSON_AddItemToArray(tr, rs_json_number(r->n_train_split[s]));
        cJSON_AddItemToArray(te, rs_json_number(r->n_test_split[s]));
    }
    cJSON *ch = cJSON_AddObjectToObject(h, "chance");
    for (int k = 0; k < RS_ALIGN_NK; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", rs_align_ks[k]);
        rs_json_add_num(ch, key, r->chance[k]);
    }
    cJSON *in = cJSON_AddObjectToObject(h, "infonce_fit");
    rs_json_add_num(in, "loss_first_step", r->loss_first);
    rs_json_add_num(in, "loss_last_step", r->loss_last);
    rs_json_add_num(in, "shuffled_loss_last_step", r->null_loss_last);
    rs_json_add_num(in, "temperature", r->temperature);
    cJSON *ms = cJSON_AddObjectToObject(h, "methods");
    for (int m = 0; m < RS_ALIGN_METHODS; m++) {
        if (!r->m[m].available) {
            cJSON_AddNullToObject(ms, rs_align_method_names[m]);
            continue;
        }
        cJSON *o = cJSON_AddObjectToObject(ms, rs_align_method_names[m]);
        cJSON_AddItemToObject(o, "text_to_image", align_dir(&r->m[m], 0, r->n_test, r->n_splits, r->n_null));
        cJSON_AddItemToObject(o, "image_to_text", align_dir(&r->m[m], 1, r->n_test, r->n_splits, r->n_null));
    }
    return h;
}

cJSON *pl_probes_align_json(const pl_probes_result *r) {
    cJSON *a = cJSON_CreateObject();
    if (!a) return NULL;
    const rs_align_opts *o = &r->al_opts;
    int S = r->n_al > 0 ? r->al[0].r.n_splits : 1, R = o->null_draws;
    char desc[1400];
    snprintf(desc, sizeof desc,
             "held-out caption-image retrieval after a map fitted on the training pairs of %d group-aware split%s "
             "(stratified by concept, seeds 7919 + k; split 0 = the cross-modal transfer's first split; every value "
             "is the mean over the splits, recall_per_split lists them): infonce = two linear projections to %d dims with a "
             "learnable logit scale, L2-normalised, symmetric InfoNCE, Adam (lr %g, %d steps, batch %d, seed %llu, "
             "inputs standardised with the training pairs' mean and sd); procrustes and ridge (lambda = %g x the "
             "training text rows' centred sum of squares / d) map text into the image space (both sides centred on "
             "the training image mean); all three are scored by the same cosine retrieval. recall@k: share of test "
             "items whose partner ranks among the top k of the n_test candidates (ties count against it); "
             "text_to_image ranks the images for each caption, image_to_text the captions for each image",
             S, S == 1 ? "" : "s", o->infonce.dim, o->infonce.lr, o->infonce.steps, o->infonce.batch,
             (unsigned long long)o->infonce.seed, o->ridge_alpha);
    cJSON_AddStringToObject(a, "description", desc);
    if (S == 1)
        snprintf(desc, sizeof desc,
                 "95%% percentile bootstrap over the held-out pairs (images; %d resamples, the same draws for every "
                 "method and direction); the candidate set stays the n_test items",
                 o->n_boot);
    else
        snprintf(desc, sizeof desc,
                 "95%% nested percentile bootstrap of the split mean: splits, then the bootstrap over the held-out "
                 "pairs (images) of each drawn split (%d resamples, the same draws for every method and direction); "
                 "the candidate set stays each split's n_test items",
                 o->n_boot);
    cJSON_AddStringToObject(a, "ci", desc);
    snprintf(desc, sizeof desc,
             "chance = k / n_test (a random ranking); shuffled_recall = the same method fitted the same way on the "
             "training pairs with the images permuted (null draw 0), scored on the true test pairs; null = %d "
             "independent shufflings of every split's training pairing, each refitted: mean and 95th percentile of "
             "the split-mean recall, p = (1 + #{null recall@1 >= observed}) / (1 + %d) (one-sided; at least %.3g), "
             "q = Benjamini-Hochberg over methods x directions x hooks of this file",
             R, R, 1.0 / (1 + R));
    cJSON_AddStringToObject(a, "null", desc);
    cJSON *hooks = cJSON_AddArrayToObject(a, "hooks");
    for (int i = 0; i < r->n_al; i++) cJSON_AddItemToArray(hooks, align_hook_json(&r->al[i]));
    return a;
}

/* Write tree j (NULL: out of memory) to results_dir/name and free it. */
static int write_tree(cJSON *j, const char *results_dir, const char *name, rs_err *err) {
    char *path = pl_join(results_dir, name);
    int rc = !j || !path ? rs_errk(err, RS_ENOMEM, "out of memory") : pl_write_json(path, j, err);
    cJSON_Delete(j);
    free(path);
    return rc;
}

int pl_probes_write(const pl_probes_result *r, const char *results_dir, rs_err *err) {
    if (r->n_xf > 0 && write_tree(pl_probes_transfer_json(r), results_dir, "transfer.json", err)) return -1;
    if (r->n_em > 0 && write_tree(pl_probes_attribute_json(r), results_dir, "attribute_transfer.json", err)) return -1;
    if (r->n_al > 0 && write_tree(pl_probes_align_json(r), results_dir, "alignment.json", err)) return -1;
    if (r->n_al == 0) { /* a rerun without probes.alignment: no stale file for the report to show */
        char *path = pl_join(results_dir, "alignment.json");
        if (!path) return rs_errk(err, RS_ENOMEM, "out of memory");
        if (rs_path_exists(path)) remove(path);
        free(path);
    }
    if (r->n_pt > 0 && write_tree(pl_probes_json(r), results_dir, "probes.json", err)) return -1;
    if (r->tg && pl_targets_write_csv(r->tg, results_dir, err)) return -1;
    if (r->n_sae > 0 && pl_probes_sae_write_csv(r, results_dir, err)) return -1;
    return 0;
}
