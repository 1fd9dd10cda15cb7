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
 * the mean over non-special tokens (caption stores) or the pooled image-token mean.
 * The stage computes a pl_probes_result (probes_result.h) and probes_write.c writes it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "pipeline/probes_result.h"
#include "reprshift/probe.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_transfer.h"
#include "reprshift/stats.h"
#include "reprshift/version.h"

static int hook_layer(const char *h, int fallback) {
    int L = rs_hook_block_index(h);
    return L >= 0 ? L : fallback;
}

int pl_probes_wants(const rs_config *cfg, const char *family) {
    for (int i = 0; i < cfg->probes.n_which; i++)
        if (!strcmp(cfg->probes.which[i], family)) return 1;
    return 0;
}

const char *pl_edit_family(const char *name) {
    if (!strcmp(name, "redness") || !strcmp(name, "redness_plain") || !strcmp(name, "redness_luma")) return "redness";
    if (!strcmp(name, "rotate")) return "rotation";
    return name; /* brightness, contrast, saturation, blur */
}

/* Room for one more element of a growable result array (cap doubles); NULL: out of memory. */
static void *reserve(void *a, int n, int *cap, size_t size) {
    if (n < *cap) return a;
    int nc = *cap ? 2 * *cap : 8;
    void *t = realloc(a, (size_t)nc * size);
    if (t) *cap = nc;
    return t;
}
#define RESERVE(arr, n, cap, err)                                                        \
    do {                                                                                 \
        void *t_ = reserve((arr), (n), &(cap), sizeof *(arr));                           \
        if (!t_) return rs_errk((err), RS_ENOMEM, "out of memory");                      \
        (arr) = t_;                                                                      \
    } while (0)

typedef struct {
    pl_ctx *c;
    pl_probes_result *res; /* what the stage computes (probes_write.c writes it) */
    rs_eval_opts eo;
    const char *hook;
    int layer;
    int vision;     /* 1: a vision hook: points go to "vision" with points under "hooks", no layer */
    double *attr_C; /* [n_variants × seeds]: the attribute probes' C at the current hook */
} probe_run;

/* Evaluate one probe and append its point to the result (*at = its index); a probe the
 * data cannot support (e.g. a class with too few images for the folds) is logged and
 * listed as skipped (*at = -1; at may be NULL). keep_tests: keep the seeds' test rows and
 * predictions in the point's result (for the paired tests). */
static int eval_one(probe_run *p, const char *task, const char *kind, const char *model, const float *X, const int *y,
                    const int *group, const int *ctype, int n, int d, int K, int keep_tests, int *at, rs_err *err) {
    pl_probes_result *R = p->res;
    if (at) *at = -1;
    RESERVE(R->pt, R->n_pt, R->cap_pt, err);
    pl_probe_point *P = &R->pt[R->n_pt];
    memset(P, 0, sizeof *P);
    rs_eval_result *r = &P->ev;
    rs_err e = {0};
    rs_eval_opts eo = p->eo;
    eo.control_type = ctype;
    eo.keep_tests = keep_tests;
    if (rs_probe_evaluate(X, y, group, n, d, K, &eo, r, &e)) {
        rs_eval_result_free(r);
        if (e.kind == RS_ENOMEM) return rs_errk(err, e.kind, "%s", e.msg);
        if (e.kind == RS_EBELOWMIN)
            return rs_errk(err, e.kind, "%s / %s: %s (probes.min_test_groups)", task, model, e.msg);
        pl_log(p->c, "probes", "%s / %s at %s: skipped (%s)", task, model, p->hook, e.msg);
        RESERVE(R->skip, R->n_skip, R->cap_skip, err);
        char *reason = strdup(e.msg);
        if (!reason) return rs_errk(err, RS_ENOMEM, "out of memory");
        R->skip[R->n_skip++] = (pl_probe_skip){.task = task, .model = model, .hook = p->hook, .reason = reason};
        return 0;
    }
    /* test rows of the first split (the evaluation's seed rule: seed + 7919·(s+1)) */
    int *is_test = malloc((size_t)n * sizeof *is_test), n_test = 0;
    if (!is_test) {
        rs_eval_result_free(r);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    /* the evaluation made this split already: a failure here is out of memory, not a fact */
    if (rs_split_stratified_groups(y, group, n, K, p->eo.test_frac, p->eo.seed + 7919u, is_test, err)) {
        free(is_test);
        rs_eval_result_free(r);
        return -1;
    }
    for (int i = 0; i < n; i++) n_test += is_test[i];
    free(is_test);
    P->task = task, P->kind = kind, P->model = model, P->hook = p->hook;
    P->layer = p->layer, P->vision = p->vision;
    P->n = n, P->n_test = n_test;
    P->xfer = -1, P->cell = -1;
    P->q = NAN;
    if (at) *at = R->n_pt;
    R->n_pt++;
    pl_log(p->c, "probes", "%-12s %-28s %s: accuracy %.3f [%.3f, %.3f] (chance %.3f, permutation p %.3g: %d x %d fits in %.2f s)",
           task, model, p->hook, r->mean.accuracy, r->ci_lo.accuracy, r->ci_hi.accuracy, r->chance, r->perm_p, r->n_perm,
           r->n_seeds, r->perm_seconds);
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
        const char *fam = pl_edit_family(c->variants[v].name);
        if (!pl_probes_wants(c->cfg, fam)) continue;
        memcpy(X, XI, (size_t)ni * d * sizeof *X);
        memcpy(X + (size_t)ni * d, XE + (size_t)v * ni * d, (size_t)ni * d * sizeof *X);
        for (int i = 0; i < ni; i++) {
            y[i] = 0, y[ni + i] = 1;
            g[i] = g[ni + i] = c->image_group[i];
        }
        int at;
        if (eval_one(p, fam, "attribute", c->variants[v].label, X, y, g, ct, 2 * ni, d, 2, 0, &at, err)) {
            free(ct);
            return -1;
        }
        if (at >= 0) /* the C chosen per seed, for the edit-transfer matrix */
            memcpy(p->attr_C + (size_t)v * p->eo.n_seeds, p->res->pt[at].ev.C_chosen, sizeof(double) * p->eo.n_seeds);
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
        if (pl_probes_wants(c->cfg, pl_edit_family(c->variants[v].name))) vi[V++] = v;
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
    pl_probes_result *R = p->res;
    void *t = reserve(R->em, R->n_em, &R->cap_em, sizeof *R->em);
    if (t) R->em = t; /* (the old block is gone once realloc moved it) */
    const char **labels = t ? malloc(sizeof *labels * (size_t)V) : NULL;
    if (!labels) { rc = rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int k = 0; k < V; k++) labels[k] = c->variants[vi[k]].label;
    R->em[R->n_em++] = (pl_probe_edit_matrix){.hook = p->hook, .layer = p->layer, .vision = p->vision, .V = V,
                                              .n_images = ni, .labels = labels, .acc = acc, .lo = lo, .hi = hi};
    acc = lo = hi = NULL; /* owned by the result */
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
    if (pl_probes_wants(c->cfg, "concept") && K >= 2 &&
        eval_one(p, "concept", "concept", "VLM images", XI, c->image_label, c->image_group, concept_ctype(c, 1), ni, d, K,
                 0, NULL, err))
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

int pl_paired_test_rows(const rs_eval_result *A, const rs_eval_result *B, const int *label, const int *group, int tot,
                        const rs_eval_opts *eo, int flips, rs_paired_result *out, rs_err *err) {
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
    int rc = rs_paired_probe_test(ca, cb, g, A->test_n, A->n_seeds, eo->n_boot > 0 ? eo->n_boot : 1, eo->seed + 0xB00Bu,
                                  flips, eo->seed + 0x5A1F1Bu, out, err);
    free(ca), free(cb), free(g);
    return rc;
}

/* Paired comparison of concept probes A and B at the current hook (rs_paired_probe_test):
 * the points ia and ib, evaluated with their test rows and predictions kept (-1: the probe
 * was skipped, leaving nothing to compare). The two must have been evaluated on identical
 * splits (same labels, groups, seeds): a difference in any seed's test rows is an error. */
static int paired_concept(probe_run *p, const char *pair, const char *ma, const char *mb, int ia, int ib,
                          const int *label, const int *group, rs_err *err) {
    pl_probes_result *R = p->res;
    if (ia < 0 || ib < 0 || !R->pt[ia].ev.test_n || !R->pt[ib].ev.test_n) {
        pl_log(p->c, "probes", "paired %s (%s vs %s) at %s: skipped (a probe was not evaluated)", pair, ma, mb, p->hook);
        return 0;
    }
    const rs_eval_result *A = &R->pt[ia].ev, *B = &R->pt[ib].ev;
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
    rs_paired_result r;
    rs_err e = {0};
    if (pl_paired_test_rows(A, B, label, group, tot, &p->eo, R->paired_flips, &r, &e))
        return rs_errk(err, e.kind, "paired probe test %s: %s", pair, e.msg);
    void *t = reserve(R->pair, R->n_pair, &R->cap_pair, sizeof *R->pair);
    if (!t) {
        rs_paired_result_free(&r);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    R->pair = t;
    R->pair[R->n_pair++] = (pl_probe_paired){.pair = pair, .model_a = ma, .model_b = mb, .hook = p->hook,
                                             .layer = p->layer, .vision = p->vision, .r = r, .q = NAN};
    pl_log(p->c, "probes", "paired %-4s %s: accuracy %s - %s = %+.3f [%+.3f, %+.3f], sign-flip p %.3g (%d flips)", pair,
           p->hook, mb, ma, r.diff, r.ci_lo, r.ci_hi, r.p, r.n_perm);
    return 0;
}

/* Append the cross-modal transfer tr of the current hook (np caption-image pairs with labels
 * y and groups g) and its points: caption->image and image->caption, direct and after
 * Procrustes, as tasks "cross-modal transfer". */
static int add_transfer(probe_run *p, const rs_transfer_result *tr, const int *y, const int *g, int np, int K,
                        double test_frac, uint64_t seed, rs_err *err) {
    static const char *const MODEL[2][2] = {{"cap\xe2\x86\x92" "img", "cap\xe2\x86\x92" "img Procrustes"},
                                            {"img\xe2\x86\x92" "cap", "img\xe2\x86\x92" "cap Procrustes"}};
    pl_probes_result *R = p->res;
    /* test pairs of the first split (the evaluation's seed rule); it made this split already:
       a failure here is out of memory */
    int *is_test = malloc((size_t)np * sizeof *is_test), n_test = 0;
    if (!is_test) return rs_errk(err, RS_ENOMEM, "out of memory");
    if (rs_split_stratified_groups(y, g, np, K, test_frac, seed + 7919u, is_test, err)) {
        free(is_test);
        return -1;
    }
    for (int i = 0; i < np; i++) n_test += is_test[i];
    free(is_test);
    RESERVE(R->xf, R->n_xf, R->cap_xf, err);
    int xi = R->n_xf++;
    R->xf[xi] = (pl_probe_transfer){.hook = p->hook, .layer = p->layer, .n_test = n_test, .r = *tr};
    const rs_transfer_cell_def *defs = rs_transfer_cells();
    for (int q = 0; q < RS_TRANSFER_CELLS; q++) {
        if (defs[q].train == defs[q].test || (defs[q].map != RS_MAP_NONE && defs[q].map != RS_MAP_PROCRUSTES)) continue;
        if (!tr->cell[q].available) continue;
        RESERVE(R->pt, R->n_pt, R->cap_pt, err);
        R->pt[R->n_pt++] = (pl_probe_point){.task = "cross-modal transfer", .kind = "cross-modal",
                                            .model = MODEL[defs[q].train][defs[q].map == RS_MAP_PROCRUSTES],
                                            .hook = p->hook, .layer = p->layer, .vision = p->vision, .n = np,
                                            .n_test = n_test, .xfer = xi, .cell = q, .q = NAN};
    }
    return 0;
}

/* probes.alignment at the current hook: caption (VLM or LLM, config text) ↔ VLM image pairs,
 * one per image with a caption, split probes.alignment.splits times (group-aware, stratified by
 * concept, seed + 7919 + k; split 0 = the cross-modal transfer's first split);
 * rs_align_evaluate_splits fits InfoNCE, Procrustes and ridge on each split's training pairs and
 * on null_draws shufflings of them, and retrieves among the test pairs.
 * X, y, g: scratch of at least 2 · n_image rows. */
static int align_hook(probe_run *p, const float *XL, const float *XV, const float *XI, int d, float *X, int *y, int *g,
                      rs_err *err) {
    pl_ctx *c = p->c;
    const rs_config *cfg = c->cfg;
    const float *XT = cfg->probes.align.text_llm ? XL : XV;
    int np = 0, K = c->n_labels >= 1 ? c->n_labels : 1;
    float *XB = X + (size_t)c->n_image * d;
    for (int j = 0; j < c->n_image; j++) {
        int t = c->image_caption[j];
        if (t < 0) continue;
        memcpy(X + (size_t)np * d, XT + (size_t)t * d, (size_t)d * sizeof *X);
        memcpy(XB + (size_t)np * d, XI + (size_t)j * d, (size_t)d * sizeof *X);
        y[np] = c->n_labels >= 1 ? c->image_label[j] : 0;
        g[np] = c->image_group[j];
        np++;
    }
    int S = cfg->probes.align.splits > 0 ? cfg->probes.align.splits : 1, sp = 0;
    int *is_test = malloc((size_t)S * (np + 1) * sizeof *is_test);
    if (!is_test) return rs_errk(err, RS_ENOMEM, "out of memory");
    pl_probes_result *R = p->res;
    rs_align_result ar;
    rs_err e = {0};
    /* split k: seed + 7919 + k (split 0 = the cross-modal transfer's first split) */
    for (; np >= 4 && sp < S; sp++)
        if (rs_split_stratified_groups(y, g, np, K, p->eo.test_frac, p->eo.seed + 7919u + (uint64_t)sp,
                                       is_test + (size_t)sp * np, &e))
            break;
    if (np < 4 || sp < S || rs_align_evaluate_splits(X, d, XB, d, np, is_test, S, &R->al_opts, &ar, &e)) {
        free(is_test);
        if (e.kind == RS_ENOMEM) return rs_errk(err, e.kind, "%s", e.msg);
        pl_log(c, "probes", "alignment at %s: skipped (%s)", p->hook, np < 4 ? "fewer than 4 pairs" : e.msg);
        return 0;
    }
    free(is_test);
    RESERVE(R->al, R->n_al, R->cap_al, err);
    R->al[R->n_al++] = (pl_probe_align){.hook = p->hook, .layer = p->layer,
                                        .text = cfg->probes.align.text_llm ? "LLM captions" : "VLM captions", .r = ar};
    pl_log(c, "probes",
           "alignment %s (%d test pairs, chance R@1 %.3f): text->image R@1 InfoNCE %.3f (shuffled %.3f), Procrustes %.3f, "
           "ridge %.3f",
           p->hook, ar.n_test, ar.chance[0], ar.m[0].recall[0][0].value, ar.m[0].null_recall[0][0].value,
           ar.m[1].available ? ar.m[1].recall[0][0].value : NAN, ar.m[2].recall[0][0].value);
    if (S > 1 || ar.n_null > 1)
        pl_log(c, "probes", "alignment %s: %d splits, %d null draws: InfoNCE text->image null R@1 mean %.3f, p %.3g", p->hook,
               S, ar.n_null, ar.m[0].null_mean[0][0], ar.m[0].p[0]);
    return 0;
}

/* BH q of the alignment permutation p over methods × directions × hooks (one family: alignment.json). */
static int align_bh(pl_probes_result *R, rs_err *err) {
    if (R->n_al == 0) return 0;
    rs_align_result **rp = malloc(sizeof *rp * (size_t)R->n_al);
    if (!rp) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (int i = 0; i < R->n_al; i++) rp[i] = &R->al[i].r;
    int rc = rs_align_bh(rp, R->n_al, err);
    free(rp);
    return rc;
}

/* One hook: load the features of every store and run every probe family asked for. */
static int probe_hook(probe_run *p, rs_err *err) {
    pl_ctx *c = p->c;
    const rs_config *cfg = c->cfg;
    float *XL = NULL, *XV = NULL, *XI = NULL, *XE = NULL, *X = NULL;
    int *y = NULL, *g = NULL, rc = -1, d = 0, n, dd;
    int K = c->n_labels;
    int nt = c->n_text, ni = c->n_image;
    /* concept probes on caption rows (points with their test rows kept, -1: not evaluated),
       for the paired tests: a LLM, b VLM, c/d/e conditions */
    int kept[5] = {-1, -1, -1, -1, -1};
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
    if (pl_probes_wants(cfg, "concept") && K >= 2) {
        if (nt && (eval_one(p, "concept", "concept", "LLM captions", XL, c->text_label, c->text_group, concept_ctype(c, 0),
                            nt, d, K, 1, &kept[0], err) ||
                   eval_one(p, "concept", "concept", "VLM captions", XV, c->text_label, c->text_group, concept_ctype(c, 0),
                            nt, d, K, 1, &kept[1], err)))
            goto done;
        if (ni && eval_one(p, "concept", "concept", "VLM images", XI, c->image_label, c->image_group, concept_ctype(c, 1), ni,
                           d, K, 0, NULL, err))
            goto done;
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
            int erc = eval_one(p, "concept", "concept", COND[k].model, XC, c->text_label, c->text_group, concept_ctype(c, 0),
                               nt, d, K, 1, &kept[2 + k], err);
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
            if (paired_concept(p, PAIRS[k].pair, NAMES[a], NAMES[b], kept[a], kept[b], c->text_label, c->text_group, err))
                goto done;
        }
    }
    /* the caption concept probes again on the SAE's features (probes.features "sae"; probes_sae.c) */
    if (pl_probes_wants(cfg, "concept") && K >= 2 && nt &&
        pl_probes_sae_hook(c, p->res, &p->eo, p->hook, p->layer, concept_ctype(c, 0), kept[0], kept[1], err))
        goto done;
    if (pl_probes_wants(cfg, "modality") && nt && ni) {
        memcpy(X, XV, (size_t)nt * d * sizeof *X);
        memcpy(X + (size_t)nt * d, XI, (size_t)ni * d * sizeof *X);
        int *ct = malloc((size_t)(nt + ni + 1) * sizeof *ct); /* control type: the concept label */
        if (!ct) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        for (int i = 0; i < nt; i++) y[i] = 0, g[i] = c->text_group[i], ct[i] = c->text_label[i];
        for (int i = 0; i < ni; i++) y[nt + i] = 1, g[nt + i] = c->image_group[i], ct[nt + i] = c->image_label[i];
        int erc = eval_one(p, "modality", "modality", "VLM", X, y, g, ct, nt + ni, d, 2, 0, NULL, err);
        free(ct);
        if (erc) goto done;
    }
    if (pl_probes_wants(cfg, "cross_modal") && nt && ni && K >= 2) {
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
        } else if (add_transfer(p, &tr, y, g, np, K, to.test_frac, to.seed, err))
            goto done;
        else {
            pl_log(c, "probes", "cross-modal %s: captions->images %.3f, images->captions %.3f (%s / %s)", p->hook,
                   tr.cell[2].mean.accuracy, tr.cell[3].mean.accuracy, rs_transfer_diagnosis(&tr, 0),
                   rs_transfer_diagnosis(&tr, 1));
        }
    }
    if (cfg->probes.align.on && nt && ni && align_hook(p, XL, XV, XI, d, X, y, g, err)) goto done;
    if (ni && (attribute_probes(p, XI, XE, d, X, y, g, err) || edit_transfer(p, XI, XE, d, err))) goto done;
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

/* Mean of v[idx[i]] over i < n (idx NULL: identity). */
static double mean_of(const double *v, const int64_t *idx, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[idx ? idx[i] : i];
    return s / n;
}

/* The mean of d over n images with a 95% percentile bootstrap over images (n_boot resamples
 * with replacement, splitmix64 from seed; index = next % n). */
static rs_stat boot_mean(const double *d, int n, int n_boot, uint64_t seed, double *bm, int64_t *idx) {
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
    return (rs_stat){mean_of(d, NULL, n), lo, hi};
}

/* attribute_transfer.json "luminance" (R->lum): per edit variant, the mean change (edited -
 * original) over the base images of BT.601 luma and of linear-light luminance Y, with
 * bootstrap CIs. Images are decoded and edited by pl_load_variant, the extract stage's own
 * path. */
static int luminance(pl_ctx *c, pl_probes_result *R, rs_err *err) {
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
    R->lum = malloc(sizeof *R->lum * (size_t)V);
    if (!R->lum) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    R->n_lum = V;
    R->lum_images = n;
    for (int v = 1; v <= V; v++) {
        for (int j = 0; j < n; j++) {
            dl[j] = L[((size_t)v * n + j) * 2] - L[(size_t)j * 2];
            dy[j] = L[((size_t)v * n + j) * 2 + 1] - L[(size_t)j * 2 + 1];
        }
        R->lum[v - 1] = (pl_probe_lum){.edit = c->variants[v - 1].name,
                                       .value = c->variants[v - 1].edit.value,
                                       .d_luma = boot_mean(dl, n, B, 0x1D5u, bm, idx),
                                       .d_linear_y = boot_mean(dy, n, B, 0x1D5u, bm, idx)};
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
    /* SAE-feature probes also depend on the SAE files and hooks (appended only then: the
       fingerprint of a run without them is as before) */
    const rs_config *cfg = c->cfg;
    int sae = cfg->probes.feat_sae;
    char *tail = NULL;
    if (sae && asprintf(&tail, " sae=%s %s %s", c->sae_fp, cfg->sae_path ? cfg->sae_path : "-",
                        cfg->sae_hook ? cfg->sae_hook : "-") < 0) {
        free(pj);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    pl_fp(fp, "probes v3 %s %s %s %s %s %s %s %s %s pool=%s%s", RS_VERSION, fps[0], fps[1], fps[2], fps[3], fps[4], fps[5],
          fps[6], pj ? pj : "-", cfg->pool, tail ? tail : "");
    free(tail);
    free(pj);
    if (c->targets) { /* the target probes' labels (absent: the fingerprint is as before) */
        char *tp = pl_join(c->out, "dataset/targets.csv"), sha[65];
        int64_t b;
        int rc = !tp ? rs_errk(err, RS_ENOMEM, "out of memory") : rs_sha256_file(tp, sha, &b, err);
        free(tp);
        if (rc) return -1;
        pl_fp(fp, "%s targets v1 %s", fp, sha);
    }
    return 0;
}

int pl_probes_run(pl_ctx *c, const char **note, rs_err *err) {
    const rs_config *cfg = c->cfg;
    pl_probes_result R;
    memset(&R, 0, sizeof R);
    R.n_seeds = cfg->probes.seeds;
    R.n_boot = cfg->probes.bootstrap;
    R.n_perm = cfg->probes.permutations;
    R.paired_flips = cfg->probes.permutations > 0 ? 1000 : 0;
    /* vision hooks: a separate list, absent without vision_hooks (then probes.json is as before) */
    R.has_vision = cfg->n_vision_hooks && c->n_image;
    char *pp = pl_join(c->results, "probes.json");
    double *attr_C = NULL;
    int rc = -1;
    if (!pp) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    probe_run p = {.c = c, .res = &R};
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
    p.eo.threads = c->coarse_threads;
    if (cfg->probes.align.on) {
        rs_align_opts *ao = &R.al_opts;
        *ao = rs_align_defaults();
        ao->infonce.dim = cfg->probes.align.dim;
        ao->infonce.steps = cfg->probes.align.steps;
        ao->infonce.batch = cfg->probes.align.batch;
        ao->infonce.lr = cfg->probes.align.lr;
        ao->infonce.temperature_init = cfg->probes.align.temperature_init;
        ao->infonce.learn_temperature = cfg->probes.align.learn_temperature;
        ao->infonce.seed = cfg->probes.align.seed;
        ao->ridge_alpha = cfg->probes.align.ridge_alpha;
        ao->n_boot = cfg->probes.bootstrap;
        ao->seed = 0;
        ao->null_draws = cfg->probes.align.null_draws > 0 ? cfg->probes.align.null_draws : 1;
    }
    /* probes.penalty applies to every evaluated probe; l1 takes its own C grid (probes.l1_C) */
    p.eo.penalty = cfg->probes.penalty ? RS_PENALTY_L1 : RS_PENALTY_L2;
    if (cfg->probes.penalty && cfg->probes.l1_C) p.eo.Cs = cfg->probes.l1_C, p.eo.n_Cs = cfg->probes.n_l1_C;
    R.penalty = p.eo.penalty;
    R.sae_on = cfg->probes.feat_sae;
    if (cfg->probes.feat_sae && !cfg->has_saes) {
        rs_errf(err, "probes.features has \"sae\" but the config has no saes (set saes.path)");
        goto done;
    }
    if (pl_probes_check(c, err)) goto done;
    if (c->targets && pl_targets_prepare(c, &p.eo, &R.tg, err)) goto done;
    for (int h = 0; h < cfg->n_hooks; h++) {
        p.hook = cfg->hooks[h];
        p.layer = hook_layer(p.hook, h);
        if (probe_hook(&p, err) || (R.tg && pl_targets_hook(c, R.tg, &p.eo, p.hook, p.layer, err))) {
            rs_err_prefix(err, "probes at %s", p.hook);
            goto done;
        }
    }
    p.vision = 1;
    for (int h = 0; R.has_vision && h < cfg->n_vision_hooks; h++) {
        p.hook = cfg->vision_hooks[h];
        p.layer = -1;
        if (probe_vision_hook(&p, err)) {
            rs_err_prefix(err, "probes at %s", p.hook);
            goto done;
        }
    }
    /* the report needs at least one task in probes.json: with none, the file is not written */
    if ((R.n_em > 0 && luminance(c, &R, err)) || (R.n_pt > 0 && pl_probes_bh(&R, err)) || align_bh(&R, err) ||
        (R.tg && pl_targets_bh(R.tg, err)) || pl_probes_sae_bh(&R, err) ||
        pl_probes_write(&R, c->results, err))
        goto done;
    *note = R.n_pt ? NULL : "no probe could be evaluated";
    if (R.n_pt) pl_log(c, "probes", "wrote %s%s%s", pp, R.n_xf > 0 ? " and transfer.json" : "", R.n_al > 0 ? " and alignment.json" : "");
    else pl_log(c, "probes", "no probe could be evaluated on this dataset (see the messages above)");
    rc = 0;
done:
    pl_probes_result_free(&R);
    free(attr_C);
    free(pp);
    return rc;
}
