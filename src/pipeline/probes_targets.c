/* Target probes of the probes stage (docs/probes.md, "Target probes"): for every target
 * column of dataset/targets.csv (COCO categories and supercategories, caption colours and
 * actions; include/reprshift/targets.h) a one-vs-rest logistic probe per modality at every
 * decoder hook — text: the LLM's caption activations, image: the VLM's image activations —
 * on the group probes' own splits (the VLM-image concept probe's split of the images), and
 * the joint modality × attribute transfer: the text probe scored on the image activations of
 * the same test images and back, beside the in-modality probe, with the gap.
 *
 * Unit = image: one row per image and modality (the image's first caption row for text).
 * Metric: balanced accuracy (mean of the two recalls): every constant predictor scores 0.5
 * whatever the prevalence, where plain accuracy rewards the majority class (with a target on
 * 5 % of the images, "never" scores 0.95). CIs: nested bootstrap over splits then test images
 * (rs_nested_group_bootstrap). Null: 0.5 (any constant / majority predictor) and a permutation
 * test (training labels permuted over images, same C, scored on the true test labels; the
 * statistic is the seed-mean balanced accuracy). q: Benjamini–Hochberg over the target
 * probes, and separately over the transfer cells. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "pipeline/probes_result.h"
#include "base/jsonutil.h"
#include "io/csv.h"
#include "reprshift/fileio.h"
#include "reprshift/probe.h"
#include "reprshift/probe_eval.h"
#include "reprshift/progress.h"
#include "reprshift/stats.h"

static const char *const MODEL[2] = {"LLM captions", "VLM images"};

/* Growable arrays (cap doubles); NULL: out of memory. */
static void *grow(void *a, int n, int *cap, size_t size) {
    if (n < *cap) return a;
    int nc = *cap ? 2 * *cap : 16;
    void *t = realloc(a, (size_t)nc * size);
    if (t) *cap = nc;
    return t;
}
#define GROW(arr, n, cap, err)                                                      \
    do {                                                                            \
        void *t_ = grow((arr), (n), &(cap), sizeof *(arr));                         \
        if (!t_) return rs_errk((err), RS_ENOMEM, "out of memory");                 \
        (arr) = t_;                                                                 \
    } while (0)

void pl_targets_result_free(pl_tgt_result *t) {
    if (!t) return;
    for (int i = 0; i < t->n_sk; i++) free(t->sk[i].reason);
    free(t->pr);
    free(t->tr);
    free(t->sk);
    free(t->y);
    free(t->is_test);
    free(t->elig);
    free(t->cap);
    free(t);
}

/* Balanced accuracy of pred against y over rows (mean recall over the classes present). */
static double bal_acc(const int *y, const int *pred, int n) {
    int tp = 0, pos = 0, tn = 0, neg = 0;
    for (int i = 0; i < n; i++) {
        if (y[i]) pos++, tp += pred[i] == 1;
        else neg++, tn += pred[i] == 0;
    }
    if (!pos && !neg) return NAN;
    if (!pos) return (double)tn / neg;
    if (!neg) return (double)tp / pos;
    return 0.5 * ((double)tp / pos + (double)tn / neg);
}

static int add_skip(pl_tgt_result *t, const char *target, const char *model, const char *reason, rs_err *err) {
    GROW(t->sk, t->n_sk, t->cap_sk, err);
    char *r = strdup(reason);
    if (!r) return rs_errk(err, RS_ENOMEM, "out of memory");
    t->sk[t->n_sk++] = (pl_tgt_skip){.target = target, .model = model, .reason = r};
    return 0;
}

int pl_targets_prepare(pl_ctx *c, const rs_eval_opts *eo, pl_tgt_result **out, rs_err *err) {
    *out = NULL;
    const rs_targets *T = c->targets;
    int ni = c->n_image, S = eo->n_seeds, C = T ? T->n_cols : 0;
    pl_tgt_result *t = calloc(1, sizeof *t);
    if (!t) return rs_errk(err, RS_ENOMEM, "out of memory");
    t->min_pos = c->cfg->probes.min_positives;
    t->n_perm = eo->n_perm;
    t->n_seeds = S;
    t->n_boot = eo->n_boot;
    t->ni = ni;
    t->n_cols = C;
    t->y = malloc(sizeof *t->y * ((size_t)2 * C * ni + 1));
    t->is_test = malloc(sizeof *t->is_test * ((size_t)S * ni + 1));
    t->elig = calloc((size_t)2 * C + 1, sizeof *t->elig);
    t->cap = malloc(sizeof *t->cap * ((size_t)ni + 1));
    if (!t->y || !t->is_test || !t->elig || !t->cap) {
        pl_targets_result_free(t);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    *out = t;
    /* the group probes' splits of the images (rs_probe_evaluate's seed rule, the image rows'
       concept labels and groups: the VLM-image concept probe's test images) */
    int K = c->n_labels > 0 ? c->n_labels : 1;
    for (int s = 0; s < S; s++)
        if (ni && rs_split_stratified_groups(c->image_label, c->image_group, ni, K, eo->test_frac,
                                             eo->seed + 7919u * (uint64_t)(s + 1), t->is_test + (size_t)s * ni, err))
            return rs_err_prefix(err, "target probes: split");
    for (int j = 0; j < ni; j++) t->cap[j] = c->image_caption[j];
    for (int k = 0; k < C; k++) {
        if (!pl_targets_wanted(c->cfg, T->kind[k])) continue;
        for (int m = 0; m < 2; m++) {
            signed char *y = t->y + ((size_t)m * C + k) * ni;
            int known = 0;
            for (int j = 0; j < ni; j++) {
                int row = m == 0 ? (t->cap[j] >= 0 ? c->text_row[t->cap[j]] : -1) : c->image_row[j];
                y[j] = row < 0 ? -1 : T->v[(size_t)row * C + k];
                known += y[j] >= 0;
            }
            char reason[200] = "";
            if (!ni) snprintf(reason, sizeof reason, "no image rows (the splits are by image)");
            else if (!known) snprintf(reason, sizeof reason, "no image with a known label (%s)",
                                      m == 0 ? "no caption rows" : "images without caption rows in the manifest");
            for (int s = 0; s < S && !reason[0]; s++) {
                int cnt[2][2] = {{0, 0}, {0, 0}}; /* [test][label] */
                for (int j = 0; j < ni; j++)
                    if (y[j] >= 0) cnt[t->is_test[(size_t)s * ni + j]][y[j]]++;
                static const char *const SIDE[2] = {"training", "test"};
                for (int side = 0; side < 2 && !reason[0]; side++)
                    for (int l = 1; l >= 0 && !reason[0]; l--)
                        if (cnt[side][l] < t->min_pos)
                            snprintf(reason, sizeof reason,
                                     "split %d: %d %s %s image%s (probes.min_positives = %d; %d of %d images positive)", s,
                                     cnt[side][l], l ? "positive" : "negative", SIDE[side], cnt[side][l] == 1 ? "" : "s",
                                     t->min_pos, cnt[0][1] + cnt[1][1], cnt[0][0] + cnt[0][1] + cnt[1][0] + cnt[1][1]);
            }
            if (reason[0]) {
                if (add_skip(t, T->names[k], MODEL[m], reason, err)) return -1;
            } else {
                t->elig[m * C + k] = 1;
            }
        }
    }
    int ne[2] = {0, 0};
    for (int k = 0; k < C; k++) ne[0] += t->elig[k], ne[1] += t->elig[C + k];
    pl_log(c, "probes", "targets: %d evaluated on LLM captions, %d on VLM images, %d target x modality pairs skipped "
           "(fewer than probes.min_positives = %d positive or negative images on a side of a split; listed in "
           "probes.json targets.skipped)", ne[0], ne[1], t->n_sk, t->min_pos);
    return 0;
}

/* Predictions of one (target, training modality) over every split: on the own modality's
 * test images and on the other modality's test images (rows in image order; labels known),
 * and the permutation nulls of both seed-mean balanced accuracies. */
typedef struct {
    int *y_own, *p_own, *g_own, *n_own; /* concatenated over seeds; n_* [S] rows per seed */
    int *y_oth, *p_oth, *g_oth, *n_oth;
    double *null_own, *null_oth;         /* [n_perm] */
    double bal_own, bal_oth, acc_own, maj_own;
    int pos_train0, pos_test0, n_test0, n_known;
} fit_out;

static void fit_out_free(fit_out *f) {
    free(f->y_own); free(f->p_own); free(f->g_own); free(f->n_own);
    free(f->y_oth); free(f->p_oth); free(f->g_oth); free(f->n_oth);
    free(f->null_own); free(f->null_oth);
    memset(f, 0, sizeof *f);
}

/* The permutation refits of one split: refit q (0..NP−1) trains on the labels permuted with
 * stream seed ^ 0x7A26E7·(q+1) and adds its balanced accuracies on the own (no rows) and other
 * (nx rows) test images, divided by S, to null_own[q] / null_oth[q]. The refits are independent
 * and run on eo->threads threads (one thread when a single fit would use several); every value
 * is added in q order after the loop, so the result does not depend on the thread count. */
static int perm_null(const pl_tgt_result *t, const rs_eval_opts *eo, const rs_logreg_opts *lo, uint64_t seed,
                     const float *Xtr, const int *ytr, const int *gtr, int ntr, const float *Xte, int no, int nx, int d,
                     const int *y_own, const int *y_oth, int S, double *null_own, double *null_oth, rs_err *err) {
    int NP = t->n_perm, T = eo->threads > 1 ? eo->threads : 1;
    if (T > NP) T = NP;
    if (rs_logreg_fit_threads(ntr, d, 2, lo) > 1) T = 1;
    double *a = malloc(sizeof(double) * 2 * (size_t)NP);
    int *qrc = calloc((size_t)NP, sizeof(int));
    rs_err *qerr = calloc((size_t)NP, sizeof(rs_err));
    if (!a || !qrc || !qerr) {
        free(a); free(qrc); free(qerr);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    rs_logreg_opts lo1 = *lo;
    if (T > 1) lo1.threads = 1; /* no nested parallel region inside a fit */
    int stop = 0;
#pragma omp parallel num_threads(T)
    {
        int *yp = malloc(sizeof(int) * ((size_t)ntr + 1)), *pred = malloc(sizeof(int) * ((size_t)no + nx + 1));
#pragma omp for schedule(dynamic)
        for (int q = 0; q < NP; q++) {
            int halt;
#pragma omp atomic read
            halt = stop;
            if (halt) { qrc[q] = -2; continue; }
            if (!yp || !pred) qrc[q] = rs_errk(&qerr[q], RS_ENOMEM, "out of memory");
            else if (rs_permute_labels_grouped(ytr, gtr, ntr, seed ^ (0x7A26E7ull * (uint64_t)(q + 1)), yp))
                qrc[q] = rs_errk(&qerr[q], RS_ENOMEM, "out of memory");
            else qrc[q] = rs_logreg_fit_predict(Xtr, yp, ntr, Xte, no + nx, d, 2, 1, &lo1, pred, &qerr[q]);
            if (!qrc[q]) {
                a[2 * q] = bal_acc(y_own, pred, no);
                a[2 * q + 1] = nx ? bal_acc(y_oth, pred + no, nx) : 0;
            } else {
#pragma omp atomic write
                stop = 1;
            }
        }
        free(yp);
        free(pred);
    }
    int rc = 0;
    for (int q = 0; q < NP && !rc; q++)
        if (qrc[q] && qrc[q] != -2) {
            if (err) *err = qerr[q];
            rc = -1;
        }
    for (int q = 0; q < NP && !rc; q++) {
        null_own[q] += a[2 * q] / S;
        if (nx) null_oth[q] += a[2 * q + 1] / S;
    }
    free(a); free(qrc); free(qerr);
    return rc;
}

static int fit_target(pl_ctx *c, pl_tgt_result *t, const rs_eval_opts *eo, const float *Xm, const float *Xo, int d,
                      const signed char *ym, const signed char *yo, fit_out *f, rs_err *err) {
    int ni = t->ni, S = t->n_seeds, NP = t->n_perm, rc = -1;
    memset(f, 0, sizeof *f);
    size_t cap = (size_t)S * ni + 1;
    f->y_own = malloc(cap * sizeof(int)), f->p_own = malloc(cap * sizeof(int)), f->g_own = malloc(cap * sizeof(int));
    f->y_oth = malloc(cap * sizeof(int)), f->p_oth = malloc(cap * sizeof(int)), f->g_oth = malloc(cap * sizeof(int));
    f->n_own = calloc((size_t)S, sizeof(int)), f->n_oth = calloc((size_t)S, sizeof(int));
    f->null_own = calloc((size_t)NP + 1, sizeof(double)), f->null_oth = calloc((size_t)NP + 1, sizeof(double));
    float *Xtr = malloc(((size_t)ni * d + 1) * sizeof *Xtr), *Xte = malloc(((size_t)2 * ni * d + 1) * sizeof *Xte);
    int *ytr = malloc(((size_t)ni + 1) * sizeof(int)), *gtr = malloc(((size_t)ni + 1) * sizeof(int));
    int *fold = malloc(((size_t)ni + 1) * sizeof(int));
    int *pred = malloc(((size_t)2 * ni + 1) * sizeof(int));
    if (!f->y_own || !f->p_own || !f->g_own || !f->y_oth || !f->p_oth || !f->g_oth || !f->n_own || !f->n_oth ||
        !f->null_own || !f->null_oth || !Xtr || !Xte || !ytr || !gtr || !fold || !pred) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    rs_logreg_opts lo = rs_logreg_defaults();
    lo.balanced = 1; /* class_weight="balanced": a rare target is not drowned by its negatives */
    lo.tol = eo->tol;
    size_t po = 0, px = 0;
    for (int s = 0; s < S; s++) {
        const int *it = t->is_test + (size_t)s * ni;
        uint64_t seed = eo->seed + 7919u * (uint64_t)(s + 1);
        int ntr = 0, no = 0, nx = 0;
        for (int j = 0; j < ni; j++)
            if (!it[j] && ym[j] >= 0) {
                memcpy(Xtr + (size_t)ntr * d, Xm + (size_t)j * d, sizeof(float) * d);
                ytr[ntr] = ym[j], gtr[ntr++] = c->image_group[j];
            }
        for (int j = 0; j < ni; j++)
            if (it[j] && ym[j] >= 0) {
                memcpy(Xte + (size_t)no * d, Xm + (size_t)j * d, sizeof(float) * d);
                f->y_own[po + no] = ym[j], f->g_own[po + no++] = j;
            }
        for (int j = 0; Xo && j < ni; j++)
            if (it[j] && yo[j] >= 0) {
                memcpy(Xte + (size_t)(no + nx) * d, Xo + (size_t)j * d, sizeof(float) * d);
                f->y_oth[px + nx] = yo[j], f->g_oth[px + nx++] = j;
            }
        int npos = 0;
        for (int i = 0; i < ntr; i++) npos += ytr[i];
        if (s == 0) {
            f->pos_train0 = npos, f->n_test0 = no;
            for (int i = 0; i < no; i++) f->pos_test0 += f->y_own[i];
        }
        /* C: group-aware inner CV on the training images (as the group probes), folds capped by
           the smaller class; a single C when the grid has one value or the class is too small */
        double Cc = eo->n_Cs > 0 ? eo->Cs[0] : 1.0;
        int folds = eo->cv_folds;
        if (folds > npos) folds = npos;
        if (folds > ntr - npos) folds = ntr - npos;
        if (eo->n_Cs > 1 && folds >= 2) {
            if (rs_group_kfold(ytr, gtr, ntr, 2, folds, seed, fold, err) ||
                rs_logreg_cv_folds(Xtr, ytr, ntr, d, 2, fold, folds, eo->Cs, eo->n_Cs, 1, &lo, NULL, &Cc, err))
                goto done;
        }
        lo.C = Cc;
        if (rs_logreg_fit_predict(Xtr, ytr, ntr, Xte, no + nx, d, 2, 1, &lo, pred, err)) goto done;
        memcpy(f->p_own + po, pred, sizeof(int) * no);
        memcpy(f->p_oth + px, pred + no, sizeof(int) * nx);
        f->bal_own += bal_acc(f->y_own + po, pred, no) / S;
        if (nx) f->bal_oth += bal_acc(f->y_oth + px, pred + no, nx) / S;
        int ok = 0, pt = 0;
        for (int i = 0; i < no; i++) ok += pred[i] == f->y_own[po + i], pt += f->y_own[po + i];
        f->acc_own += (double)ok / no / S;
        f->maj_own += (double)(pt > no - pt ? pt : no - pt) / no / S;
        /* permutation null: training labels permuted over the images (each image one row) */
        if (NP > 0 && perm_null(t, eo, &lo, seed, Xtr, ytr, gtr, ntr, Xte, no, nx, d, f->y_own + po, f->y_oth + px, S,
                                f->null_own, f->null_oth, err))
            goto done;
        f->n_own[s] = no, f->n_oth[s] = nx;
        po += (size_t)no, px += (size_t)nx;
    }
    for (int j = 0; j < ni; j++) f->n_known += ym[j] >= 0;
    rc = 0;
done:
    free(Xtr); free(Xte); free(ytr); free(gtr); free(fold); free(pred);
    if (rc) fit_out_free(f);
    return rc;
}

/* Nested bootstrap CI of a seed-mean balanced accuracy (rs_nested_group_bootstrap; groups =
 * images, dense per seed). */
static int boot_bal(const int *y, const int *pred, const int *img, const int *n_rows, int S, int B, uint64_t seed,
                    double *lo, double *hi, rs_err *err) {
    size_t n = 0;
    for (int s = 0; s < S; s++) n += (size_t)n_rows[s];
    int *gid = malloc((n + 1) * sizeof *gid);
    if (!gid) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (size_t off = 0, s = 0; s < (size_t)S; off += (size_t)n_rows[s], s++)
        if (rs_group_dense(img + off, n_rows[s], gid + off) < 0) { free(gid); return rs_errk(err, RS_ENOMEM, "out of memory"); }
    rs_metrics mlo, mhi;
    int rc = rs_nested_group_bootstrap(y, pred, gid, n_rows, S, 2, B > 0 ? B : 1, seed, &mlo, &mhi, NULL, err);
    free(gid);
    if (rc) return -1;
    *lo = B > 0 ? mlo.balanced_accuracy : NAN;
    *hi = B > 0 ? mhi.balanced_accuracy : NAN;
    return 0;
}

/* Nested bootstrap of the paired difference a − b of seed-mean balanced accuracies on the same
 * rows (one row per test image): replicate r, slot k: seed s = ⌊u(seed, r·S + k)·S⌋, then that
 * seed's n_s rows drawn with replacement, i = ⌊u(seed + 1 + r·S + k, m)·n_s⌋ (the rule of
 * rs_nested_group_bootstrap); the same draws for a and b. */
static int boot_gap(const int *y, const int *pa, const int *pb, const int *n_rows, int S, int B, uint64_t seed,
                    double *lo, double *hi, rs_err *err) {
    *lo = *hi = NAN;
    if (B <= 0) return 0;
    size_t n = 0, *off = malloc(sizeof(size_t) * ((size_t)S + 1));
    if (!off) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (int s = 0; s < S; s++) off[s] = n, n += (size_t)n_rows[s];
    int *yy = malloc((n + 1) * sizeof(int)), *aa = malloc((n + 1) * sizeof(int)), *bb = malloc((n + 1) * sizeof(int));
    double *rep = malloc(sizeof(double) * (size_t)B);
    if (!yy || !aa || !bb || !rep) {
        free(off); free(yy); free(aa); free(bb); free(rep);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int r = 0; r < B; r++) {
        double acc = 0;
        for (int k = 0; k < S; k++) {
            int s = (int)(rs_uniform_at(seed, (uint64_t)r * S + k) * S);
            if (s >= S) s = S - 1;
            int ns = n_rows[s];
            for (int m = 0; m < ns; m++) {
                int i = (int)(rs_uniform_at(seed + 1 + (uint64_t)r * S + k, (uint64_t)m) * ns);
                if (i >= ns) i = ns - 1;
                yy[m] = y[off[s] + i], aa[m] = pa[off[s] + i], bb[m] = pb[off[s] + i];
            }
            acc += (bal_acc(yy, aa, ns) - bal_acc(yy, bb, ns)) / S;
        }
        rep[r] = acc;
    }
    *lo = stats_percentile(rep, B, 0.025);
    *hi = stats_percentile(rep, B, 0.975);
    free(off); free(yy); free(aa); free(bb); free(rep);
    return 0;
}

int pl_targets_hook(pl_ctx *c, pl_tgt_result *t, const rs_eval_opts *eo, const char *hook, int layer, rs_err *err) {
    int ni = t->ni, C = t->n_cols, rc = -1;
    int any = 0;
    for (int k = 0; k < 2 * C; k++) any |= t->elig[k];
    if (!any) return 0;
    float *XL = NULL, *XI = NULL, *XT = NULL;
    int nl = 0, dl = 0, nim = 0, di = 0;
    if (c->n_text && pl_store_features(c, PL_LLM_TEXT, hook, &XL, &nl, &dl, err)) goto done;
    if (pl_store_features(c, PL_VLM_IMAGE, hook, &XI, &nim, &di, err)) goto done;
    /* the text side, one row per image: its first caption (zeros where it has none; those
       images have an unknown text label and are never used) */
    if (XL) {
        XT = calloc((size_t)ni * dl + 1, sizeof *XT);
        if (!XT) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        for (int j = 0; j < ni; j++)
            if (t->cap[j] >= 0) memcpy(XT + (size_t)j * dl, XL + (size_t)t->cap[j] * dl, sizeof(float) * dl);
    }
    double t0 = rs_now();
    int np0 = t->n_pr, nx0 = t->n_tr;
    rc = pl_targets_eval(c, t, eo, XT, dl, XI, di, hook, layer, err);
    if (!rc)
        pl_log(c, "probes", "targets at %s: %d probes, %d transfer cells (%d permutations each, %d splits) in %.2f s", hook,
               t->n_pr - np0, t->n_tr - nx0, t->n_perm, t->n_seeds, rs_now() - t0);
done:
    free(XL);
    free(XI);
    free(XT);
    return rc;
}

int pl_targets_eval(pl_ctx *c, pl_tgt_result *t, const rs_eval_opts *eo, const float *XT, int dl, const float *XI,
                    int di, const char *hook, int layer, rs_err *err) {
    const rs_targets *T = c->targets;
    int ni = t->ni, C = t->n_cols, S = t->n_seeds, NP = t->n_perm, rc = -1;
    fit_out fo[2];
    memset(fo, 0, sizeof fo);
    int same_d = XT && dl == di;
    for (int k = 0; k < C; k++) {
        int e[2] = {t->elig[k], t->elig[C + k]};
        if (!e[0] && !e[1]) continue;
        const signed char *y[2] = {t->y + (size_t)k * ni, t->y + ((size_t)C + k) * ni};
        const float *X[2] = {XT, XI};
        int d[2] = {dl, di};
        int joint = e[0] && e[1] && same_d;
        for (int m = 0; m < 2; m++) {
            if (!e[m]) continue;
            if (fit_target(c, t, eo, X[m], joint ? X[1 - m] : NULL, d[m], y[m], y[1 - m], &fo[m], err)) goto done;
            fit_out *f = &fo[m];
            void *g1 = grow(t->pr, t->n_pr, &t->cap_pr, sizeof *t->pr);
            if (!g1) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
            t->pr = g1;
            pl_tgt_probe *P = &t->pr[t->n_pr];
            memset(P, 0, sizeof *P);
            P->target = T->names[k], P->kind = T->kind[k], P->model = MODEL[m], P->hook = hook, P->layer = layer;
            P->n_images = f->n_known, P->n_test = f->n_test0, P->pos_train = f->pos_train0, P->pos_test = f->pos_test0;
            int pos = 0;
            for (int j = 0; j < ni; j++) pos += y[m][j] == 1;
            P->prevalence = f->n_known ? (double)pos / f->n_known : NAN;
            P->bal = f->bal_own, P->acc = f->acc_own, P->majority = f->maj_own;
            if (boot_bal(f->y_own, f->p_own, f->g_own, f->n_own, S, t->n_boot, eo->seed + 0xB00Bu, &P->lo, &P->hi, err))
                goto done;
            if (NP > 0) {
                stats_null nl_ = stats_null_summary(f->bal_own, f->null_own, NP, STATS_SIM);
                P->null_mean = nl_.mean, P->p = nl_.p, P->n_perm = nl_.n_perm;
            } else {
                P->null_mean = P->p = NAN;
            }
            P->q = NAN;
            t->n_pr++;
        }
        if (!joint) continue;
        /* joint modality × attribute: direction m -> o scores the m probe on o's test images,
           beside o's own probe on the same rows; the gap is within − transfer */
        for (int m = 0; m < 2; m++) {
            int o = 1 - m;
            fit_out *fm = &fo[m], *fw = &fo[o];
            void *g2 = grow(t->tr, t->n_tr, &t->cap_tr, sizeof *t->tr);
            if (!g2) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
            t->tr = g2;
            pl_tgt_transfer *X_ = &t->tr[t->n_tr];
            memset(X_, 0, sizeof *X_);
            X_->target = T->names[k], X_->kind = T->kind[k], X_->hook = hook, X_->layer = layer, X_->dir = m;
            X_->n_test = fw->n_test0;
            X_->n_images = fw->n_known;
            X_->within = fw->bal_own;
            X_->xfer = fm->bal_oth;
            X_->gap = X_->within - X_->xfer;
            /* the other modality's own test rows and the transferred predictions are the same
               images in the same order (both: is_test and a known label of modality o) */
            if (boot_bal(fw->y_own, fw->p_own, fw->g_own, fw->n_own, S, t->n_boot, eo->seed + 0xB00Bu, &X_->within_lo,
                         &X_->within_hi, err) ||
                boot_bal(fm->y_oth, fm->p_oth, fm->g_oth, fm->n_oth, S, t->n_boot, eo->seed + 0xB00Bu, &X_->xfer_lo,
                         &X_->xfer_hi, err) ||
                boot_gap(fw->y_own, fw->p_own, fm->p_oth, fw->n_own, S, t->n_boot, eo->seed + 0x6A9u, &X_->gap_lo,
                         &X_->gap_hi, err))
                goto done;
            if (NP > 0) {
                stats_null nl_ = stats_null_summary(X_->xfer, fm->null_oth, NP, STATS_SIM);
                X_->null_mean = nl_.mean, X_->p = nl_.p;
            } else {
                X_->null_mean = X_->p = NAN;
            }
            X_->q = NAN;
            t->n_tr++;
        }
        fit_out_free(&fo[0]);
        fit_out_free(&fo[1]);
    }
    if (XT == NULL || !same_d) {
        int needs = 0;
        for (int k = 0; k < C; k++) needs |= t->elig[k] && t->elig[C + k];
        if (needs)
            pl_log(c, "probes", "targets at %s: no text<->image transfer (%s)", hook,
                   !XT ? "no caption rows" : "the LLM and VLM widths differ");
    }
    rc = 0;
done:
    fit_out_free(&fo[0]);
    fit_out_free(&fo[1]);
    return rc;
}

int pl_targets_bh(pl_tgt_result *t, rs_err *err) {
    int n = t->n_pr > t->n_tr ? t->n_pr : t->n_tr;
    double *p = malloc(sizeof(double) * ((size_t)n + 1)), *q = malloc(sizeof(double) * ((size_t)n + 1));
    if (!p || !q) {
        free(p); free(q);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    int rc = 0;
    t->n_tests = t->n_tr_tests = 0;
    for (int i = 0; i < t->n_pr; i++) p[i] = t->pr[i].p, t->n_tests += isfinite(p[i]) != 0;
    if (stats_bh_qvalues(p, t->n_pr, q)) rc = rs_errk(err, RS_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < t->n_pr; i++) t->pr[i].q = q[i];
    for (int i = 0; !rc && i < t->n_tr; i++) p[i] = t->tr[i].p, t->n_tr_tests += isfinite(p[i]) != 0;
    if (!rc && stats_bh_qvalues(p, t->n_tr, q)) rc = rs_errk(err, RS_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < t->n_tr; i++) t->tr[i].q = q[i];
    free(p);
    free(q);
    return rc;
}

static const char *short_name(const char *col) {
    const char *s = strchr(col, ':');
    return s ? s + 1 : col;
}

cJSON *pl_targets_json(const pl_tgt_result *t) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    char desc[1200];
    cJSON_AddStringToObject(o, "metric", "balanced_accuracy");
    cJSON_AddStringToObject(
        o, "why",
        "targets are rare (most COCO categories are on a few percent of the images): plain accuracy rewards always "
        "answering 'absent', balanced accuracy (mean of the two recalls) gives every constant predictor 0.5");
    rs_json_add_num(o, "chance", 0.5);
    rs_json_add_num(o, "min_positives", t->min_pos);
    snprintf(desc, sizeof desc,
             "one row per image: text = the LLM's activations of the image's first caption, image = the VLM's "
             "activations of the image; the group probes' splits (%d seeds, the VLM-image concept probe's test images); "
             "one-vs-rest logistic regression, class_weight balanced, C by group-aware inner CV",
             t->n_seeds);
    cJSON_AddStringToObject(o, "protocol", desc);
    snprintf(desc, sizeof desc,
             "95%% nested bootstrap of the seed-mean balanced accuracy (splits, then test images; %d replicates); the "
             "gap's CI resamples the same test images for both probes",
             t->n_boot);
    cJSON_AddStringToObject(o, "ci", desc);
    snprintf(desc, sizeof desc,
             "%d permutations of the training labels over the images per split, same C, scored on the true test "
             "labels; p = (1 + #{null >= observed}) / (1 + n) on the seed-mean balanced accuracy; q: "
             "Benjamini-Hochberg over the n_tests target probes, and apart over the n_transfer_tests transfer cells",
             t->n_perm);
    cJSON_AddStringToObject(o, "permutation_test", desc);
    rs_json_add_num(o, "n_tests", t->n_tests);
    rs_json_add_num(o, "n_transfer_tests", t->n_tr_tests);
    cJSON *arr = cJSON_AddArrayToObject(o, "probes");
    for (int i = 0; i < t->n_pr; i++) {
        const pl_tgt_probe *P = &t->pr[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "target", short_name(P->target));
        cJSON_AddStringToObject(e, "kind", rs_target_kind_name(P->kind));
        cJSON_AddStringToObject(e, "model", P->model);
        cJSON_AddStringToObject(e, "hook", P->hook);
        rs_json_add_num(e, "layer", P->layer);
        rs_json_add_num(e, "n_images", P->n_images);
        rs_json_add_num(e, "n_test_images", P->n_test);
        rs_json_add_num(e, "positives_train", P->pos_train);
        rs_json_add_num(e, "positives_test", P->pos_test);
        rs_json_add_num(e, "prevalence", P->prevalence);
        cJSON_AddItemToObject(e, "balanced_accuracy", rs_json_stat(P->bal, P->lo, P->hi));
        rs_json_add_num(e, "accuracy", P->acc);
        rs_json_add_num(e, "majority_accuracy", P->majority);
        rs_json_add_num(e, "permutation_mean", P->null_mean);
        rs_json_add_num(e, "p", P->p);
        rs_json_add_num(e, "q", P->q);
        cJSON_AddItemToArray(arr, e);
    }
    arr = cJSON_AddArrayToObject(o, "transfer");
    for (int i = 0; i < t->n_tr; i++) {
        const pl_tgt_transfer *X = &t->tr[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "target", short_name(X->target));
        cJSON_AddStringToObject(e, "kind", rs_target_kind_name(X->kind));
        cJSON_AddStringToObject(e, "direction", X->dir == 0 ? "text->image" : "image->text");
        cJSON_AddStringToObject(e, "hook", X->hook);
        rs_json_add_num(e, "layer", X->layer);
        rs_json_add_num(e, "n_images", X->n_images);
        rs_json_add_num(e, "n_test_images", X->n_test);
        cJSON_AddItemToObject(e, "within", rs_json_stat(X->within, X->within_lo, X->within_hi));
        cJSON_AddItemToObject(e, "transfer", rs_json_stat(X->xfer, X->xfer_lo, X->xfer_hi));
        cJSON_AddItemToObject(e, "gap", rs_json_stat(X->gap, X->gap_lo, X->gap_hi));
        rs_json_add_num(e, "permutation_mean", X->null_mean);
        rs_json_add_num(e, "p", X->p);
        rs_json_add_num(e, "q", X->q);
        cJSON_AddItemToArray(arr, e);
    }
    arr = cJSON_AddArrayToObject(o, "skipped");
    for (int i = 0; i < t->n_sk; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "target", t->sk[i].target);
        cJSON_AddStringToObject(e, "model", t->sk[i].model);
        cJSON_AddStringToObject(e, "reason", t->sk[i].reason);
        cJSON_AddItemToArray(arr, e);
    }
    return o;
}

/* x for a CSV cell: empty when not finite. */
static const char *cell(char *buf, const char *fmt, double x) {
    if (!isfinite(x)) return "";
    snprintf(buf, 32, fmt, x);
    return buf;
}
#define CELL(fmt, x) cell((char[32]){0}, fmt, (x))

int pl_targets_write_csv(const pl_tgt_result *t, const char *results_dir, rs_err *err) {
    char *path = pl_join(results_dir, "probe_targets.csv");
    if (!path) return rs_errk(err, RS_ENOMEM, "out of memory");
    rs_atomic_file f;
    if (rs_atomic_open(&f, path, err)) { free(path); return -1; }
    fputs("kind,target,model,hook,layer,n_images,n_test_images,positives_test,balanced_accuracy,ci_lo,ci_hi,"
          "chance,permutation_mean,p,q,within,within_lo,within_hi,gap,gap_lo,gap_hi\n", f.fp);
    for (int i = 0; i < t->n_pr; i++) {
        const pl_tgt_probe *P = &t->pr[i];
        fprintf(f.fp, "%s,", rs_target_kind_name(P->kind));
        rs_csv_write_field(f.fp, short_name(P->target));
        fprintf(f.fp, ",%s,%s,%d,%d,%d,%d,%s,%s,%s,0.5,%s,%s,%s,,,,,,\n", P->model, P->hook, P->layer, P->n_images,
                P->n_test, P->pos_test, CELL("%.6f", P->bal), CELL("%.6f", P->lo),
                CELL("%.6f", P->hi), CELL("%.6f", P->null_mean), CELL("%.6g", P->p),
                CELL("%.6g", P->q));
    }
    for (int i = 0; i < t->n_tr; i++) {
        const pl_tgt_transfer *X = &t->tr[i];
        fprintf(f.fp, "%s,", rs_target_kind_name(X->kind));
        rs_csv_write_field(f.fp, short_name(X->target));
        fprintf(f.fp, ",%s,%s,%d,%d,%d,,%s,%s,%s,0.5,%s,%s,%s,%s,%s,%s,%s,%s,%s\n",
                X->dir == 0 ? "LLM captions -> VLM images" : "VLM images -> LLM captions", X->hook, X->layer,
                X->n_images, X->n_test, CELL("%.6f", X->xfer), CELL("%.6f", X->xfer_lo),
                CELL("%.6f", X->xfer_hi), CELL("%.6f", X->null_mean), CELL("%.6g", X->p),
                CELL("%.6g", X->q), CELL("%.6f", X->within), CELL("%.6f", X->within_lo),
                CELL("%.6f", X->within_hi), CELL("%.6f", X->gap), CELL("%.6f", X->gap_lo),
                CELL("%.6f", X->gap_hi));
    }
    int rc = ferror(f.fp) ? (rs_atomic_abort(&f), rs_errk(err, RS_EIO, "%s: write error", path)) : rs_atomic_commit(&f, err);
    free(path);
    return rc;
}
