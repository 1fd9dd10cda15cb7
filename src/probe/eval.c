/* Evaluation protocol for probes: seeded stratified/group splits, C chosen by inner
 * stratified CV on the training side only, test metrics, bootstrap CIs of the seed-mean,
 * a permuted-label baseline and a control task. Nothing from the test side (rows, scaler
 * statistics, C) leaks into fitting. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "reprshift/probe_eval.h"
#include "reprshift/progress.h"

static const double DEFAULT_CS[] = {1e-4, 1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4};

rs_eval_opts rs_eval_defaults(void) {
    rs_eval_opts o;
    memset(&o, 0, sizeof o);
    o.n_seeds = 5;
    o.test_frac = 0.2;
    o.cv_folds = 5;
    o.Cs = DEFAULT_CS;
    o.n_Cs = 9;
    o.standardize = 1;
    o.n_boot = 1000;
    o.permutation = 1;
    o.n_perm = 100;
    o.control = 1;
    o.min_test_groups = 50;
    o.tol = 1e-4;
    return o;
}

int rs_stratified_kfold(const int *y, int n, int K, int k, int *fold, rs_err *err) {
    if (k < 2 || k > n) return rs_errf(err, "stratified k-fold: need 2 <= k <= n (k=%d, n=%d)", k, n);
    /* classes renumbered by first appearance, as sklearn does */
    int *enc = malloc(sizeof(int) * K), *cnt = calloc(K, sizeof(int));
    int *alloc = calloc((size_t)k * K, sizeof(int)), *next = calloc(K, sizeof(int));
    if (!enc || !cnt || !alloc || !next) {
        free(enc); free(cnt); free(alloc); free(next);
        return rs_errk(err, RS_ENOMEM, "stratified k-fold: out of memory");
    }
    for (int c = 0; c < K; c++) enc[c] = -1;
    int nc = 0;
    for (int i = 0; i < n; i++) {
        if (enc[y[i]] < 0) enc[y[i]] = nc++;
        cnt[enc[y[i]]]++;
    }
    int maxc = 0;
    for (int c = 0; c < nc; c++) maxc = cnt[c] > maxc ? cnt[c] : maxc;
    if (k > maxc) {
        free(enc); free(cnt); free(alloc); free(next);
        return rs_errf(err, "stratified k-fold: k=%d is greater than the size of every class", k);
    }
    /* allocation[f][c] = #class c among sorted labels at positions ≡ f (mod k) */
    for (int c = 0, p = 0; c < nc; c++)
        for (int j = 0; j < cnt[c]; j++, p++) alloc[(size_t)(p % k) * K + c]++;
    /* rows of each class in order: fold 0 repeated alloc[0][c] times, then fold 1, ... */
    int *f_of = calloc(K, sizeof(int)), *left = calloc(K, sizeof(int));
    if (!f_of || !left) {
        free(enc); free(cnt); free(alloc); free(next); free(f_of); free(left);
        return rs_errk(err, RS_ENOMEM, "stratified k-fold: out of memory");
    }
    for (int c = 0; c < nc; c++) left[c] = alloc[c];
    for (int i = 0; i < n; i++) {
        int c = enc[y[i]];
        while (left[c] == 0) {
            f_of[c]++;
            left[c] = alloc[(size_t)f_of[c] * K + c];
        }
        fold[i] = f_of[c];
        left[c]--;
    }
    free(enc); free(cnt); free(alloc); free(next); free(f_of); free(left);
    return 0;
}

/* Fisher-Yates with the counter-based generator (reproducible across platforms). */
static void shuffle_ints(int *a, int n, uint64_t seed) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rs_uniform_at(seed, (uint64_t)i) * (i + 1));
        int t = a[i]; a[i] = a[j]; a[j] = t;
    }
}

int rs_split_stratified_groups(const int *y, const int *group, int n, int K, double test_frac,
                               uint64_t seed, int *is_test, rs_err *err) {
    if (!(test_frac > 0 && test_frac < 1)) return rs_errf(err, "split: test fraction must be in (0,1), got %g", test_frac);
    /* map group ids to dense 0..G-1 in order of first appearance (sort-free: ids via rows) */
    int *gid = malloc(sizeof(int) * n), *first = malloc(sizeof(int) * n);
    if (!gid || !first) { free(gid); free(first); return rs_errk(err, RS_ENOMEM, "split: out of memory"); }
    int G = 0;
    if (!group) {
        for (int i = 0; i < n; i++) { gid[i] = i; first[i] = i; }
        G = n;
    } else {
        /* group ids are arbitrary ints: dense-map through a sorted copy */
        int *ord = malloc(sizeof(int) * n);
        if (!ord) { free(gid); free(first); return rs_errk(err, RS_ENOMEM, "split: out of memory"); }
        for (int i = 0; i < n; i++) ord[i] = i;
        /* insertion-free: qsort on (group, row) */
        const int *gg = group;
        for (int w = 1; w < n; w *= 2) { /* bottom-up merge sort, stable, no globals */
            int *tmp = malloc(sizeof(int) * n);
            if (!tmp) { free(ord); free(gid); free(first); return rs_errk(err, RS_ENOMEM, "split: out of memory"); }
            for (int lo = 0; lo < n; lo += 2 * w) {
                int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
                int a = lo, b = mid, o = lo;
                while (a < mid && b < hi) tmp[o++] = gg[ord[b]] < gg[ord[a]] ? ord[b++] : ord[a++];
                while (a < mid) tmp[o++] = ord[a++];
                while (b < hi) tmp[o++] = ord[b++];
            }
            memcpy(ord, tmp, sizeof(int) * n);
            free(tmp);
        }
        for (int p = 0; p < n; p++) {
            if (p == 0 || gg[ord[p]] != gg[ord[p - 1]]) first[G++] = ord[p];
            gid[ord[p]] = G - 1;
        }
        free(ord);
    }
    /* groups per class (class of a group = label of its first row); G ≥ 1 as n ≥ 1 */
    size_t nG = G > 0 ? (size_t)G : 1;
    int *gclass = malloc(sizeof(int) * nG), *gtest = calloc(nG, sizeof(int));
    int *members = malloc(sizeof(int) * nG);
    if (!gclass || !gtest || !members) {
        free(gid); free(first); free(gclass); free(gtest); free(members);
        return rs_errk(err, RS_ENOMEM, "split: out of memory");
    }
    for (int g = 0; g < G; g++) gclass[g] = y[first[g]];
    int any_test = 0;
    for (int c = 0; c < K; c++) {
        int m = 0;
        for (int g = 0; g < G; g++)
            if (gclass[g] == c) members[m++] = g;
        if (m == 0) continue;
        shuffle_ints(members, m, seed * 1000003u + (uint64_t)c);
        int nt = (int)floor(test_frac * m + 0.5);
        if (nt < 1 && m >= 2) nt = 1;
        if (nt > m - 1) nt = m - 1;
        for (int t = 0; t < nt; t++) gtest[members[t]] = 1;
        any_test += nt;
    }
    for (int i = 0; i < n; i++) is_test[i] = gtest[gid[i]];
    free(gid); free(first); free(gclass); free(gtest); free(members);
    if (!any_test) return rs_errf(err, "split: too few groups per class to hold any out for testing");
    return 0;
}

typedef struct { int v, row; } vr_pair;

static int cmp_vr(const void *a, const void *b) {
    const vr_pair *x = a, *y = b;
    if (x->v != y->v) return (x->v > y->v) - (x->v < y->v);
    return (x->row > y->row) - (x->row < y->row);
}

int rs_group_dense(const int *group, int n, int *gid) {
    if (!group) {
        for (int i = 0; i < n; i++) gid[i] = i;
        return n;
    }
    vr_pair *p = malloc(sizeof *p * (n + 1)), *runs = malloc(sizeof *runs * (n + 1));
    int *rank = malloc(sizeof(int) * (n + 1));
    if (!p || !runs || !rank) { free(p); free(runs); free(rank); return -1; }
    for (int i = 0; i < n; i++) p[i] = (vr_pair){group[i], i};
    qsort(p, n, sizeof *p, cmp_vr);
    int R = 0;
    for (int k = 0; k < n; k++) {
        if (k == 0 || p[k].v != p[k - 1].v) runs[R] = (vr_pair){p[k].row, R}, R++; /* (first row, run) */
        gid[p[k].row] = R - 1; /* run index for now */
    }
    qsort(runs, R, sizeof *runs, cmp_vr); /* by first row */
    for (int r = 0; r < R; r++) rank[runs[r].row] = r;
    for (int i = 0; i < n; i++) gid[i] = rank[gid[i]];
    free(p); free(runs); free(rank);
    return R;
}

int rs_group_kfold(const int *y, const int *group, int n, int K, int k, uint64_t seed, int *fold,
                   rs_err *err) {
    int *gid = malloc(sizeof(int) * (n + 1));
    if (!gid) return rs_errk(err, RS_ENOMEM, "group k-fold: out of memory");
    int G = rs_group_dense(group, n, gid);
    if (G < 0) { free(gid); return rs_errk(err, RS_ENOMEM, "group k-fold: out of memory"); }
    if (k < 2 || k > G) {
        free(gid);
        return rs_errf(err, "group k-fold: need 2 <= folds <= number of groups (folds=%d, groups=%d)", k, G);
    }
    int *gclass = malloc(sizeof(int) * G), *gfold = malloc(sizeof(int) * G), *mem = malloc(sizeof(int) * G);
    if (!gclass || !gfold || !mem) {
        free(gid); free(gclass); free(gfold); free(mem);
        return rs_errk(err, RS_ENOMEM, "group k-fold: out of memory");
    }
    for (int g = 0; g < G; g++) gclass[g] = -1;
    for (int i = 0; i < n; i++)
        if (gclass[gid[i]] < 0) gclass[gid[i]] = y[i];
    int next = 0;
    for (int c = 0; c < K; c++) {
        int m = 0;
        for (int g = 0; g < G; g++)
            if (gclass[g] == c) mem[m++] = g;
        shuffle_ints(mem, m, seed * 1000003u + 0x5EEDu + (uint64_t)c);
        for (int t = 0; t < m; t++) { gfold[mem[t]] = next; next = (next + 1) % k; }
    }
    for (int i = 0; i < n; i++) fold[i] = gfold[gid[i]];
    free(gid); free(gclass); free(gfold); free(mem);
    return 0;
}

int rs_permute_labels_grouped(const int *y, const int *group, int n, uint64_t seed, int *out) {
    int *gid = malloc(sizeof(int) * (n + 1));
    if (!gid) return -1;
    int G = rs_group_dense(group, n, gid);
    int *glab = G >= 0 ? malloc(sizeof(int) * (G + 1)) : NULL;
    if (!glab) { free(gid); return -1; }
    int homogeneous = 1;
    for (int g = 0; g < G; g++) glab[g] = -1;
    for (int i = 0; i < n; i++) {
        if (glab[gid[i]] < 0) glab[gid[i]] = y[i];
        else if (glab[gid[i]] != y[i]) homogeneous = 0;
    }
    if (homogeneous) {
        shuffle_ints(glab, G, seed);
        for (int i = 0; i < n; i++) out[i] = glab[gid[i]];
    } else {
        /* within each group: gather its rows (CSR by group), shuffle their labels */
        int *start = calloc((size_t)G + 1, sizeof(int)), *rows = malloc(sizeof(int) * (n + 1));
        int *lab = malloc(sizeof(int) * (n + 1));
        if (!start || !rows || !lab) { free(start); free(rows); free(lab); free(gid); free(glab); return -1; }
        for (int i = 0; i < n; i++) start[gid[i] + 1]++;
        for (int g = 0; g < G; g++) start[g + 1] += start[g];
        for (int g = 0; g < G; g++) glab[g] = start[g];
        for (int i = 0; i < n; i++) rows[glab[gid[i]]++] = i;
        /* label vectors move between groups of equal size (π within each size block)... */
        vr_pair *bysz = malloc(sizeof *bysz * (G + 1));
        int *src = malloc(sizeof(int) * (G + 1));
        if (!bysz || !src) { free(bysz); free(src); free(start); free(rows); free(lab); free(gid); free(glab); return -1; }
        for (int g = 0; g < G; g++) bysz[g] = (vr_pair){start[g + 1] - start[g], g};
        qsort(bysz, G, sizeof *bysz, cmp_vr);
        for (int a = 0; a < G;) {
            int b = a;
            while (b < G && bysz[b].v == bysz[a].v) b++;
            for (int k = a; k < b; k++) src[k] = bysz[k].row;
            shuffle_ints(src + a, b - a, seed ^ (0x51u + (uint64_t)bysz[a].v));
            for (int k = a; k < b; k++) { /* group bysz[k].row takes the labels of group src[k] */
                int gd = bysz[k].row, gs = src[k];
                for (int r = 0; r < bysz[k].v; r++) lab[start[gd] + r] = y[rows[start[gs] + r]];
            }
            a = b;
        }
        free(bysz); free(src);
        /* ...then are shuffled within each group (e.g. an image and its edit swap labels) */
        for (int g = 0; g < G; g++) shuffle_ints(lab + start[g], start[g + 1] - start[g], seed + 0x9E37u * (uint64_t)g);
        for (int k = 0; k < n; k++) out[rows[k]] = lab[k];
        free(start); free(rows); free(lab);
    }
    free(gid); free(glab);
    return 0;
}

double rs_permutation_pvalue(double observed, const double *null_stat, int n_null) {
    int ge = 0;
    for (int i = 0; i < n_null; i++) ge += null_stat[i] >= observed;
    return (1.0 + ge) / (1.0 + n_null);
}

int rs_nested_group_bootstrap(const int *y, const int *pred, const int *gid, const int *n_rows, int S,
                              int K, int B, uint64_t seed, rs_metrics *lo, rs_metrics *hi,
                              double *rep_acc, rs_err *err) {
    if (S < 1 || B < 1) return rs_errf(err, "bootstrap: need at least one seed and one replicate");
    int *off = malloc(sizeof(int) * (S + 1)), *G = malloc(sizeof(int) * S), *gstart = malloc(sizeof(int) * (S + 1));
    int ntot = 0;
    if (!off || !G || !gstart) { free(off); free(G); free(gstart); return rs_errk(err, RS_ENOMEM, "bootstrap: out of memory"); }
    off[0] = 0;
    for (int s = 0; s < S; s++) off[s + 1] = off[s] + n_rows[s];
    ntot = off[S];
    gstart[0] = 0;
    for (int s = 0; s < S; s++) {
        int m = -1;
        for (int i = off[s]; i < off[s + 1]; i++) {
            if (gid[i] < 0) { free(off); free(G); free(gstart); return rs_errf(err, "bootstrap: negative group id"); }
            m = gid[i] > m ? gid[i] : m;
        }
        if (m < 0) { free(off); free(G); free(gstart); return rs_errf(err, "bootstrap: seed %d has no test rows", s); }
        G[s] = m + 1;
        gstart[s + 1] = gstart[s] + G[s];
    }
    /* rows of each (seed, group): CSR over all groups of all seeds */
    int NG = gstart[S];
    int *rs = calloc((size_t)NG + 1, sizeof(int)), *rows = malloc(sizeof(int) * (ntot + 1)), *fill = malloc(sizeof(int) * (NG + 1));
    int *by = malloc(sizeof(int) * (ntot + 1)), *bp = malloc(sizeof(int) * (ntot + 1));
    double *rep = malloc(sizeof(double) * 3 * B);
    int *cm = malloc(sizeof(int) * K * K);
    int rc = 0;
    if (!rs || !rows || !fill || !by || !bp || !rep || !cm) { rc = rs_errk(err, RS_ENOMEM, "bootstrap: out of memory"); goto out; }
    for (int s = 0; s < S; s++)
        for (int i = off[s]; i < off[s + 1]; i++) rs[gstart[s] + gid[i] + 1]++;
    for (int g = 0; g < NG; g++)
        if (rs[g + 1] == 0) { rc = rs_errf(err, "bootstrap: group ids must be dense (0..G-1) within each seed"); goto out; }
    for (int g = 0; g < NG; g++) rs[g + 1] += rs[g];
    memcpy(fill, rs, sizeof(int) * NG);
    for (int s = 0; s < S; s++)
        for (int i = off[s]; i < off[s + 1]; i++) rows[fill[gstart[s] + gid[i]]++] = i;
    for (int b = 0; b < B; b++) {
        double a = 0, ba = 0, f = 0;
        for (int j = 0; j < S; j++) {
            int s = (int)(rs_uniform_at(seed, (uint64_t)b * S + j) * S);
            if (s >= S) s = S - 1;
            int m = 0;
            uint64_t st = seed + 1 + (uint64_t)b * S + j;
            for (int k = 0; k < G[s]; k++) {
                int g = (int)(rs_uniform_at(st, (uint64_t)k) * G[s]);
                if (g >= G[s]) g = G[s] - 1;
                for (int q = rs[gstart[s] + g]; q < rs[gstart[s] + g + 1]; q++) {
                    by[m] = y[rows[q]];
                    bp[m++] = pred[rows[q]];
                }
                /* a group of this seed with no rows cannot occur (G = max id + 1 may skip ids: empty groups add nothing) */
            }
            rs_metrics mm;
            rs_metrics_compute(by, bp, m, K, &mm, cm);
            a += mm.accuracy; ba += mm.balanced_accuracy; f += mm.macro_f1;
        }
        rep[b] = a / S; rep[B + b] = ba / S; rep[2 * B + b] = f / S;
    }
    if (rep_acc) memcpy(rep_acc, rep, sizeof(double) * B);
    for (int k = 0; k < 3; k++) qsort(rep + (size_t)k * B, B, sizeof(double), rs_cmp_double);
    lo->accuracy = rs_percentile_sorted(rep, B, 2.5);
    hi->accuracy = rs_percentile_sorted(rep, B, 97.5);
    lo->balanced_accuracy = rs_percentile_sorted(rep + B, B, 2.5);
    hi->balanced_accuracy = rs_percentile_sorted(rep + B, B, 97.5);
    lo->macro_f1 = rs_percentile_sorted(rep + 2 * B, B, 2.5);
    hi->macro_f1 = rs_percentile_sorted(rep + 2 * B, B, 97.5);
out:
    free(off); free(G); free(gstart); free(rs); free(rows); free(fill); free(by); free(bp); free(rep); free(cm);
    return rc;
}

void rs_metrics_compute(const int *y, const int *pred, int n, int K, rs_metrics *m, int *confusion) {
    int *cm = confusion ? confusion : calloc((size_t)K * K, sizeof(int));
    if (!cm) { m->accuracy = m->balanced_accuracy = m->macro_f1 = NAN; return; }
    memset(cm, 0, sizeof(int) * K * K);
    int correct = 0;
    for (int i = 0; i < n; i++) {
        cm[y[i] * K + pred[i]]++;
        correct += y[i] == pred[i];
    }
    double bal = 0, f1 = 0;
    int nbal = 0, nf1 = 0;
    for (int c = 0; c < K; c++) {
        int tp = cm[c * K + c], row = 0, col = 0;
        for (int j = 0; j < K; j++) { row += cm[c * K + j]; col += cm[j * K + c]; }
        if (row > 0) { bal += (double)tp / row; nbal++; }
        if (row + col > 0) { f1 += 2.0 * tp / (row + col); nf1++; }
    }
    m->accuracy = n ? (double)correct / n : NAN;
    m->balanced_accuracy = nbal ? bal / nbal : NAN;
    m->macro_f1 = nf1 ? f1 / nf1 : NAN;
    if (!confusion) free(cm);
}

int rs_logreg_fit_predict(const float *Xtr, const int *ytr, int ntr, const float *Xte, int nte,
                          int d, int K, int standardize, const rs_logreg_opts *o, int *pred,
                          rs_err *err) {
    float *A = NULL, *B = NULL;
    const float *tr = Xtr, *te = Xte;
    if (standardize) {
        rs_scaler sc;
        if (rs_scaler_fit(&sc, Xtr, ntr, d, err)) return -1;
        A = malloc(sizeof(float) * ntr * d);
        B = malloc(sizeof(float) * ((size_t)nte * d + 1));
        if (!A || !B) { free(A); free(B); rs_scaler_free(&sc); return rs_errk(err, RS_ENOMEM, "out of memory"); }
        rs_scaler_apply(&sc, Xtr, ntr, A);
        rs_scaler_apply(&sc, Xte, nte, B);
        rs_scaler_free(&sc);
        tr = A; te = B;
    }
    rs_logreg m;
    int rc = rs_logreg_fit(&m, tr, ytr, ntr, d, K, o, err);
    if (rc == 0) {
        rs_logreg_predict(&m, te, nte, pred);
        rs_logreg_free(&m);
    }
    free(A); free(B);
    return rc;
}

/* Rows with sel[i] == want, gathered into new arrays. */
static int gather(const float *X, const int *y, const int *sel, int want, int n, int d,
                  float **Xo, int **yo, int *no) {
    int m = 0;
    for (int i = 0; i < n; i++) m += sel[i] == want;
    *Xo = malloc(sizeof(float) * ((size_t)m * d + 1));
    *yo = malloc(sizeof(int) * (m + 1));
    if (!*Xo || !*yo) { free(*Xo); free(*yo); return -1; }
    for (int i = 0, k = 0; i < n; i++)
        if (sel[i] == want) {
            memcpy(*Xo + (size_t)k * d, X + (size_t)i * d, sizeof(float) * d);
            (*yo)[k++] = y[i];
        }
    *no = m;
    return 0;
}

/* Does every class 0..K-1 occur in y? 1 yes, 0 no, -1 out of memory. */
static int all_classes(const int *y, int n, int K) {
    int *seen = calloc(K, sizeof(int)), ok = 1;
    if (!seen) return -1;
    for (int i = 0; i < n; i++) seen[y[i]] = 1;
    for (int c = 0; c < K; c++) ok &= seen[c];
    free(seen);
    return ok;
}

/* Mean accuracy over folds per C (acc[] summed over folds, divided here), the first best C
 * (ties to the smaller index, as sklearn's argmax), and the per-C means if wanted. */
static void pick_best_C(double *acc, int n_Cs, int folds, const double *Cs, double *best_C, double *mean_acc) {
    for (int c = 0; c < n_Cs; c++) acc[c] /= folds;
    int best = 0;
    for (int c = 1; c < n_Cs; c++)
        if (acc[c] > acc[best]) best = c;
    *best_C = Cs[best];
    if (mean_acc) memcpy(mean_acc, acc, sizeof(double) * n_Cs);
}

int rs_logreg_cv(const float *X, const int *y, int n, int d, int K, const double *Cs, int n_Cs,
                 int folds, int standardize, const rs_logreg_opts *base, double *mean_acc,
                 double *best_C, rs_err *err) {
    int *fold = malloc(sizeof(int) * (n + 1));
    if (!fold) return rs_errk(err, RS_ENOMEM, "cv: out of memory");
    int rc = rs_stratified_kfold(y, n, K, folds, fold, err);
    if (rc == 0) rc = rs_logreg_cv_folds(X, y, n, d, K, fold, folds, Cs, n_Cs, standardize, base, mean_acc, best_C, err);
    free(fold);
    return rc;
}

static int cv_folds_serial(const float *X, const int *y, int n, int d, int K, const int *fold, int folds,
                           const double *Cs, int n_Cs, int standardize, const rs_logreg_opts *base,
                           double *mean_acc, double *best_C, rs_err *err) {
    if (n_Cs < 1) return rs_errf(err, "cv: empty C grid");
    if (folds < 2) return rs_errf(err, "cv: need at least 2 folds (got %d)", folds);
    for (int i = 0; i < n; i++)
        if (fold[i] < 0 || fold[i] >= folds) return rs_errf(err, "cv: row %d has fold %d outside 0..%d", i, fold[i], folds - 1);
    int *pred = malloc(sizeof(int) * (n + 1)), *other = malloc(sizeof(int) * (n + 1));
    double *acc = calloc(n_Cs, sizeof(double));
    if (!pred || !acc || !other) { free(pred); free(acc); free(other); return rs_errk(err, RS_ENOMEM, "cv: out of memory"); }
    int rc = 0;
    for (int f = 0; rc == 0 && f < folds; f++) {
        float *Xa, *Xb;
        int *ya, *yb, na, nb;
        if (gather(X, y, fold, f, n, d, &Xb, &yb, &nb)) { rc = rs_errk(err, RS_ENOMEM, "cv: out of memory"); break; }
        for (int i = 0; i < n; i++) other[i] = fold[i] != f;
        if (gather(X, y, other, 1, n, d, &Xa, &ya, &na)) {
            free(Xb); free(yb); rc = rs_errk(err, RS_ENOMEM, "cv: out of memory"); break;
        }
        int all = nb ? all_classes(ya, na, K) : 0;
        if (nb == 0) rc = rs_errf(err, "cv: fold %d is empty; use fewer folds", f);
        else if (all < 0) rc = rs_errk(err, RS_ENOMEM, "cv: out of memory");
        else if (!all) rc = rs_errf(err, "cv: fold %d leaves a class without training rows; use fewer folds", f);
        for (int c = 0; rc == 0 && c < n_Cs; c++) {
            rs_logreg_opts o = *base;
            o.C = Cs[c];
            rc = rs_logreg_fit_predict(Xa, ya, na, Xb, nb, d, K, standardize, &o, pred, err);
            if (rc) break;
            int ok = 0;
            for (int i = 0; i < nb; i++) ok += pred[i] == yb[i];
            acc[c] += (double)ok / nb;
        }
        free(Xa); free(ya); free(Xb); free(yb);
    }
    if (rc == 0) pick_best_C(acc, n_Cs, folds, Cs, best_C, mean_acc);
    free(pred); free(acc); free(other);
    return rc;
}

/* rs_logreg_cv_folds over T threads: the folds × Cs fits are independent; each fit's
 * accuracy has its own slot and the per-C means add the folds in order, as the serial loop.
 * Folds that the serial loop would refuse, fits that would use threads of their own, or
 * T ≤ 1: the serial loop itself. On a failed fit, the error of the first in (fold, C) order. */
static int cv_folds_threads(const float *X, const int *y, int n, int d, int K, const int *fold, int folds,
                            const double *Cs, int n_Cs, int standardize, const rs_logreg_opts *base,
                            double *mean_acc, double *best_C, int threads, rs_err *err) {
    int J = folds * n_Cs, T = threads < J ? threads : J;
    if (T <= 1 || n_Cs < 1 || folds < 2 || rs_logreg_fit_threads(n, d, K, base) > 1)
        return cv_folds_serial(X, y, n, d, K, fold, folds, Cs, n_Cs, standardize, base, mean_acc, best_C, err);
    for (int i = 0; i < n; i++)
        if (fold[i] < 0 || fold[i] >= folds)
            return cv_folds_serial(X, y, n, d, K, fold, folds, Cs, n_Cs, standardize, base, mean_acc, best_C, err);
    float **Xa = calloc(folds, sizeof *Xa), **Xb = calloc(folds, sizeof *Xb);
    int **ya = calloc(folds, sizeof *ya), **yb = calloc(folds, sizeof *yb);
    int *na = calloc(folds, sizeof(int)), *nb = calloc(folds, sizeof(int)), *other = malloc(sizeof(int) * (n + 1));
    int *jrc = calloc(J, sizeof(int));
    double *jacc = calloc(J, sizeof(double));
    rs_err *jerr = calloc(J, sizeof(rs_err));
    int rc = 0, serial = 0;
    if (!Xa || !Xb || !ya || !yb || !na || !nb || !other || !jrc || !jacc || !jerr) rc = rs_errk(err, RS_ENOMEM, "cv: out of memory");
    for (int f = 0; rc == 0 && f < folds; f++) {
        if (gather(X, y, fold, f, n, d, &Xb[f], &yb[f], &nb[f])) { rc = rs_errk(err, RS_ENOMEM, "cv: out of memory"); break; }
        for (int i = 0; i < n; i++) other[i] = fold[i] != f;
        if (gather(X, y, other, 1, n, d, &Xa[f], &ya[f], &na[f])) { rc = rs_errk(err, RS_ENOMEM, "cv: out of memory"); break; }
        if (nb[f] == 0 || all_classes(ya[f], na[f], K) != 1) serial = 1; /* refused: the serial loop words it */
    }
    if (rc == 0 && !serial) {
        rs_logreg_opts o1 = *base;
        o1.threads = 1; /* no nested parallel region inside a fit */
#pragma omp parallel num_threads(T)
        {
            int *pred = malloc(sizeof(int) * (n + 1));
#pragma omp for schedule(dynamic)
            for (int j = 0; j < J; j++) {
                int f = j / n_Cs, c = j % n_Cs;
                if (!pred) { jrc[j] = rs_errk(&jerr[j], RS_ENOMEM, "cv: out of memory"); continue; }
                rs_logreg_opts o = o1;
                o.C = Cs[c];
                jrc[j] = rs_logreg_fit_predict(Xa[f], ya[f], na[f], Xb[f], nb[f], d, K, standardize, &o, pred, &jerr[j]);
                if (jrc[j]) continue;
                int ok = 0;
                for (int i = 0; i < nb[f]; i++) ok += pred[i] == yb[f][i];
                jacc[j] = (double)ok / nb[f];
            }
            free(pred);
        }
        for (int j = 0; j < J; j++)
            if (jrc[j]) { *err = jerr[j]; rc = -1; break; }
        if (rc == 0) {
            double *acc = calloc(n_Cs, sizeof(double));
            if (!acc) rc = rs_errk(err, RS_ENOMEM, "cv: out of memory");
            for (int f = 0; rc == 0 && f < folds; f++)
                for (int c = 0; c < n_Cs; c++) acc[c] += jacc[f * n_Cs + c];
            if (rc == 0) pick_best_C(acc, n_Cs, folds, Cs, best_C, mean_acc);
            free(acc);
        }
    }
    for (int f = 0; f < folds && Xa; f++) {
        free(Xa[f]); free(Xb[f]); free(ya[f]); free(yb[f]);
    }
    free(Xa); free(Xb); free(ya); free(yb); free(na); free(nb); free(other); free(jrc); free(jacc); free(jerr);
    if (rc == 0 && serial)
        return cv_folds_serial(X, y, n, d, K, fold, folds, Cs, n_Cs, standardize, base, mean_acc, best_C, err);
    return rc;
}

int rs_logreg_cv_folds(const float *X, const int *y, int n, int d, int K, const int *fold, int folds,
                       const double *Cs, int n_Cs, int standardize, const rs_logreg_opts *base,
                       double *mean_acc, double *best_C, rs_err *err) {
    return cv_folds_serial(X, y, n, d, K, fold, folds, Cs, n_Cs, standardize, base, mean_acc, best_C, err);
}

void rs_eval_result_free(rs_eval_result *res) {
    free(res->C_chosen);
    free(res->confusion);
    res->C_chosen = NULL;
    res->confusion = NULL;
    free(res->test_n);
    free(res->test_row);
    free(res->test_pred);
    res->test_n = res->test_row = res->test_pred = NULL;
}


/* The probe the protocol evaluates: logistic regression (C in lo) or the MLP in o->mlp. */
static int probe_fit_predict(const rs_eval_opts *o, const rs_logreg_opts *lo, uint64_t seed,
                             const float *Xtr, const int *ytr, int ntr, const float *Xte, int nte,
                             int d, int K, int *pred, rs_err *err) {
    if (o->mlp) {
        rs_mlp_opts mo = *o->mlp;
        mo.seed += seed;
        return rs_mlp_fit_predict(Xtr, ytr, ntr, Xte, nte, d, K, o->standardize, &mo, pred, err);
    }
    return rs_logreg_fit_predict(Xtr, ytr, ntr, Xte, nte, d, K, o->standardize, lo, pred, err);
}

/* Values of v at rows with sel[i] == want (v NULL → the row index). */
static int *gather_ints(const int *v, const int *sel, int want, int n) {
    int m = 0;
    for (int i = 0; i < n; i++) m += sel[i] == want;
    int *o = malloc(sizeof(int) * (m + 1));
    if (!o) return NULL;
    for (int i = 0, k = 0; i < n; i++)
        if (sel[i] == want) o[k++] = v ? v[i] : i;
    return o;
}

/* One permutation refit: training labels ya permuted at group level (permutation q of the
 * seed), the probe refitted with the same C and scored on the true test labels yb.
 * *acc = test accuracy. yp, pp: scratch [na], [nb]. */
static int perm_refit_one(const rs_eval_opts *o, const rs_logreg_opts *lo, uint64_t seed, int s, int q,
                          const float *Xa, const int *ya, const int *ga, int na, const float *Xb, const int *yb,
                          int nb, int d, int K, int *yp, int *pp, double *acc, rs_err *err) {
    if (rs_permute_labels_grouped(ya, ga, na, rs_splitmix64_at(seed ^ 0xA5A5A5A5ull, (uint64_t)q), yp))
        return rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
    if (probe_fit_predict(o, lo, seed + 1 + (uint64_t)q, Xa, yp, na, Xb, nb, d, K, pp, err)) {
        rs_err_prefix(err, "evaluate: seed %d: permutation %d", s, q);
        return -1;
    }
    int ok = 0;
    for (int i = 0; i < nb; i++) ok += pp[i] == yb[i];
    *acc = (double)ok / nb;
    return 0;
}

/* The NP permutation refits of seed s: null_acc[q] += accuracy_q / S. The fits are
 * independent, so with o->threads > 1 (and logistic fits that run on one thread anyway) they
 * are spread over threads, each permutation's accuracy in its own slot and added in q order:
 * the same numbers as a serial run. On failure the error of the lowest failing q. */
static int perm_refits(const rs_eval_opts *o, const rs_logreg_opts *lo, uint64_t seed, int s, const float *Xa,
                       const int *ya, const int *ga, int na, const float *Xb, const int *yb, int nb, int d, int K,
                       int NP, int S, double *null_acc, rs_err *err) {
    int T = o->threads > 1 ? o->threads : 1;
    if (T > NP) T = NP;
    if (o->mlp || rs_logreg_fit_threads(na, d, K, lo) > 1) T = 1;
    double *acc = malloc(sizeof(double) * NP);
    int *qrc = calloc(NP, sizeof(int));
    rs_err *qerr = T > 1 ? calloc(NP, sizeof(rs_err)) : NULL;
    if (!acc || !qrc || (T > 1 && !qerr)) {
        free(acc); free(qrc); free(qerr);
        return rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
    }
    if (T == 1) {
        int *yp = malloc(sizeof(int) * (na + 1)), *pp = malloc(sizeof(int) * (nb + 1));
        int rc = !yp || !pp ? rs_errk(err, RS_ENOMEM, "evaluate: out of memory") : 0;
        for (int q = 0; rc == 0 && q < NP; q++) {
            rc = perm_refit_one(o, lo, seed, s, q, Xa, ya, ga, na, Xb, yb, nb, d, K, yp, pp, &acc[q], err);
            if (rc == 0) null_acc[q] += acc[q] / S;
        }
        free(yp); free(pp); free(acc); free(qrc);
        return rc;
    }
    rs_logreg_opts lo1 = *lo;
    lo1.threads = 1; /* no nested parallel region inside a fit */
    int stop = 0;
#pragma omp parallel num_threads(T)
    {
        int *yp = malloc(sizeof(int) * (na + 1)), *pp = malloc(sizeof(int) * (nb + 1));
#pragma omp for schedule(dynamic)
        for (int q = 0; q < NP; q++) {
            int halt;
#pragma omp atomic read
            halt = stop;
            if (halt) { qrc[q] = -2; continue; } /* not run: a lower q failed (or will be reported) */
            if (!yp || !pp) qrc[q] = rs_errk(&qerr[q], RS_ENOMEM, "evaluate: out of memory");
            else qrc[q] = perm_refit_one(o, &lo1, seed, s, q, Xa, ya, ga, na, Xb, yb, nb, d, K, yp, pp, &acc[q], &qerr[q]);
            if (qrc[q]) {
#pragma omp atomic write
                stop = 1;
            }
        }
        free(yp); free(pp);
    }
    int rc = 0;
    for (int q = 0; q < NP; q++) {
        if (qrc[q] == -2) continue;
        if (qrc[q]) { *err = qerr[q]; rc = -1; break; }
    }
    if (rc == 0)
        for (int q = 0; q < NP; q++) null_acc[q] += acc[q] / S;
    free(acc); free(qrc); free(qerr);
    return rc;
}

int rs_probe_evaluate(const float *X, const int *y, const int *group, int n, int d, int K,
                      const rs_eval_opts *opts, rs_eval_result *res, rs_err *err) {
    rs_eval_opts o = opts ? *opts : rs_eval_defaults();
    memset(res, 0, sizeof *res);
    if (o.n_seeds < 1) return rs_errf(err, "evaluate: need at least one seed");
    if (rs_check_labels(y, n, K, err) || rs_check_finite(X, n, d, err)) return rs_err_prefix(err, "evaluate");
    int S = o.n_seeds, NP = o.permutation && o.n_perm > 0 ? o.n_perm : 0;
    res->K = K;
    res->n_seeds = S;
    res->perm_p = res->perm_accuracy = NAN;
    res->control_accuracy = res->control_overlap = res->selectivity = NAN;
    res->C_chosen = calloc(S, sizeof(double));
    res->confusion = calloc((size_t)K * K, sizeof(int));
    if (o.keep_tests) {
        res->test_n = calloc(S, sizeof(int));
        res->test_row = malloc(sizeof(int) * ((size_t)n * S + 1));
        res->test_pred = malloc(sizeof(int) * ((size_t)n * S + 1));
        if (!res->test_n || !res->test_row || !res->test_pred) {
            rs_eval_result_free(res);
            return rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
        }
    }
    int *is_test = malloc(sizeof(int) * n), *gid = malloc(sizeof(int) * n);
    int *tests_y = malloc(sizeof(int) * (size_t)n * S), *tests_p = malloc(sizeof(int) * (size_t)n * S);
    int *tests_g = malloc(sizeof(int) * (size_t)n * S);
    int *nte_s = calloc(S, sizeof(int)), *ctrl = malloc(sizeof(int) * n), *seen = malloc(sizeof(int) * n);
    int *cm = malloc(sizeof(int) * K * K), *fold = malloc(sizeof(int) * n), *yp = malloc(sizeof(int) * n);
    int *pp = malloc(sizeof(int) * n);
    double *accs = calloc(S, sizeof(double)), *null_acc = calloc((size_t)NP + 1, sizeof(double));
    if (!res->C_chosen || !res->confusion || !is_test || !gid || !tests_y || !tests_p || !tests_g || !nte_s || !ctrl ||
        !seen || !cm || !fold || !yp || !pp || !accs || !null_acc) {
        free(is_test); free(gid); free(tests_y); free(tests_p); free(tests_g); free(nte_s); free(ctrl); free(seen);
        free(cm); free(fold); free(yp); free(pp); free(accs); free(null_acc);
        rs_eval_result_free(res);
        return rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
    }
    int G = rs_group_dense(group, n, gid), rc = 0, pos = 0;
    if (G < 0) rc = rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
    res->n_groups = G;
    double ctrl_sum = 0, overlap_sum = 0, t_perm = 0;
    int ctrl_runs = 0;
    rs_logreg_opts lo = rs_logreg_defaults();
    lo.balanced = o.balanced;
    lo.tol = o.tol;
    lo.penalty = o.penalty;
    for (int s = 0; rc == 0 && s < S; s++) {
        uint64_t seed = o.seed + 7919u * (uint64_t)(s + 1);
        rc = rs_split_stratified_groups(y, group, n, K, o.test_frac, seed, is_test, err);
        if (rc) break;
        /* test groups: the count is fixed by the class sizes, so every seed has the same */
        memset(seen, 0, sizeof(int) * n);
        int ntg = 0;
        for (int i = 0; i < n; i++)
            if (is_test[i] && !seen[gid[i]]) seen[gid[i]] = 1, ntg++;
        if (s == 0) res->n_test_groups = ntg;
        if (ntg < o.min_test_groups) {
            rc = rs_errk(err, RS_EBELOWMIN,
                         "evaluate: the split leaves %d test group%s (%d groups, test fraction %g), fewer than the "
                         "minimum of %d; use more groups (e.g. more images per class), a larger test fraction, or "
                         "lower the minimum test groups",
                         ntg, ntg == 1 ? "" : "s", G, o.test_frac, o.min_test_groups);
            break;
        }
        float *Xa, *Xb;
        int *ya, *yb, na, nb;
        if (gather(X, y, is_test, 0, n, d, &Xa, &ya, &na)) { rc = rs_errk(err, RS_ENOMEM, "evaluate: out of memory"); break; }
        if (gather(X, y, is_test, 1, n, d, &Xb, &yb, &nb)) {
            free(Xa); free(ya); rc = rs_errk(err, RS_ENOMEM, "evaluate: out of memory"); break;
        }
        int *ga = gather_ints(gid, is_test, 0, n), *gb = gather_ints(gid, is_test, 1, n);
        if (!ga || !gb) rc = rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
        int all = rc == 0 ? all_classes(ya, na, K) : 1;
        if (all < 0) rc = rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
        else if (!all) rc = rs_errf(err, "evaluate: seed %d: a class has no training rows", s);
        double C = o.n_Cs > 0 ? o.Cs[0] : 1.0;
        if (rc == 0 && !o.mlp && o.cv_folds >= 2 && o.n_Cs > 1) {
            /* inner CV on the training side, group-aware: no group on both sides of a fold */
            rc = rs_group_kfold(ya, ga, na, K, o.cv_folds, seed, fold, err);
            if (rc == 0)
                rc = cv_folds_threads(Xa, ya, na, d, K, fold, o.cv_folds, o.Cs, o.n_Cs, o.standardize, &lo, NULL, &C,
                                      o.threads, err);
            if (rc) rs_err_prefix(err, "evaluate: seed %d: inner CV", s);
        }
        res->C_chosen[s] = C;
        lo.C = C;
        int *pred = tests_p + pos;
        if (rc == 0) rc = probe_fit_predict(&o, &lo, seed, Xa, ya, na, Xb, nb, d, K, pred, err);
        if (rc == 0) {
            if (o.keep_tests) {
                for (int i = 0, k = 0; i < n; i++)
                    if (is_test[i]) res->test_row[pos + k++] = i;
                memcpy(res->test_pred + pos, pred, sizeof(int) * nb);
                res->test_n[s] = nb;
            }
            memcpy(tests_y + pos, yb, sizeof(int) * nb);
            if (rs_group_dense(gb, nb, tests_g + pos) < 0) rc = rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
            nte_s[s] = nb;
            pos += nb;
            rs_metrics m;
            rs_metrics_compute(yb, pred, nb, K, &m, cm);
            for (int i = 0; i < K * K; i++) res->confusion[i] += cm[i];
            accs[s] = m.accuracy;
            res->mean.accuracy += m.accuracy / S;
            res->mean.balanced_accuracy += m.balanced_accuracy / S;
            res->mean.macro_f1 += m.macro_f1 / S;
            int *cnt = calloc(K, sizeof(int)), mx = 0;
            if (cnt) {
                for (int i = 0; i < nb; i++) cnt[yb[i]]++;
                for (int c = 0; c < K; c++) mx = cnt[c] > mx ? cnt[c] : mx;
                free(cnt);
            } else if (rc == 0) {
                rc = rs_errk(err, RS_ENOMEM, "evaluate: out of memory"); /* was: chance 0, silently */
            }
            res->chance += (double)mx / nb / S;
        }
        /* permutation test: training labels permuted at group level, same C, scored on the
           true test labels; null statistic q = seed-mean accuracy under permutation q */
        double t0 = rs_now();
        if (rc == 0 && NP > 0) rc = perm_refits(&o, &lo, seed, s, Xa, ya, ga, na, Xb, yb, nb, d, K, NP, S, null_acc, err);
        t_perm += rs_now() - t0;
        if (rc == 0 && o.control && o.control_type) {
            /* Hewitt & Liang: each control type gets a label drawn from the empirical label
             * distribution (the same for every seed); types recur between train and test */
            const int *type = o.control_type;
            for (int i = 0; i < n; i++) {
                int src = (int)(rs_uniform_at(o.seed ^ 0xC0C0C0C0ull, (uint64_t)(uint32_t)type[i]) * n);
                ctrl[i] = y[src < n ? src : n - 1];
            }
            /* share of test rows whose type occurs among the training rows */
            int *ttr = gather_ints(type, is_test, 0, n), *tte = gather_ints(type, is_test, 1, n);
            int *cca = gather_ints(ctrl, is_test, 0, n), *ccb = gather_ints(ctrl, is_test, 1, n);
            if (!ttr || !tte || !cca || !ccb) rc = rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
            if (rc == 0) {
                vr_pair *tp = malloc(sizeof *tp * (na + 1));
                if (!tp) rc = rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
                else {
                    for (int i = 0; i < na; i++) tp[i] = (vr_pair){ttr[i], 0};
                    qsort(tp, na, sizeof *tp, cmp_vr);
                    int hit = 0;
                    for (int i = 0; i < nb; i++) {
                        vr_pair key = {tte[i], 0};
                        hit += bsearch(&key, tp, na, sizeof *tp, cmp_vr) != NULL;
                    }
                    overlap_sum += nb ? (double)hit / nb : 0;
                    free(tp);
                }
            }
            if (rc == 0) {
                int *cnt = calloc(K, sizeof(int)), present = 0, best = 0, ok = 0;
                if (!cnt) rc = rs_errk(err, RS_ENOMEM, "evaluate: out of memory");
                else {
                    for (int i = 0; i < na; i++) cnt[cca[i]]++;
                    for (int c = 0; c < K; c++) {
                        present += cnt[c] > 0;
                        if (cnt[c] > cnt[best]) best = c;
                    }
                    free(cnt);
                }
                if (rc == 0 && present == K) {
                    if (probe_fit_predict(&o, &lo, seed, Xa, cca, na, Xb, nb, d, K, pp, err)) {
                        rs_err_prefix(err, "evaluate: seed %d: control task", s);
                        rc = -1;
                    }
                    for (int i = 0; rc == 0 && i < nb; i++) ok += pp[i] == ccb[i];
                } else if (rc == 0) {
                    /* a control class absent from training: the probe can only predict the
                       majority training control label */
                    for (int i = 0; i < nb; i++) ok += ccb[i] == best;
                }
                ctrl_sum += nb ? (double)ok / nb : 0;
                ctrl_runs++;
            }
            free(ttr); free(tte); free(cca); free(ccb);
        }
        free(ga); free(gb);
        free(Xa); free(ya); free(Xb); free(yb);
    }
    if (rc == 0) {
        double m = res->mean.accuracy, v = 0;
        for (int s = 0; s < S; s++) v += (accs[s] - m) * (accs[s] - m);
        res->acc_sd = S > 1 ? sqrt(v / (S - 1)) : 0;
        res->n_perm = NP;
        res->perm_seconds = t_perm;
        if (NP > 0) {
            double mu = 0;
            for (int q = 0; q < NP; q++) mu += null_acc[q];
            res->perm_accuracy = mu / NP;
            res->perm_p = rs_permutation_pvalue(res->mean.accuracy, null_acc, NP);
        }
        if (ctrl_runs == S) {
            res->control_accuracy = ctrl_sum / S;
            res->control_overlap = overlap_sum / S;
            res->selectivity = res->mean.accuracy - res->control_accuracy;
        }
        rc = rs_nested_group_bootstrap(tests_y, tests_p, tests_g, nte_s, S, K, o.n_boot > 0 ? o.n_boot : 1,
                                       o.seed + 0xB00Bu, &res->ci_lo, &res->ci_hi, NULL, err);
        if (rc) rs_err_prefix(err, "evaluate");
    }
    free(is_test); free(gid); free(tests_y); free(tests_p); free(tests_g); free(nte_s); free(ctrl); free(seen);
    free(cm); free(fold); free(yp); free(pp); free(accs); free(null_acc);
    if (rc) rs_eval_result_free(res);
    return rc;
}

int rs_edit_transfer_evaluate(const float *XI, const float *XE, int V, int n, int d, const int *group,
                              const rs_eval_opts *opts, const double *C_given, double *acc, double *lo, double *hi,
                              rs_err *err) {
    rs_eval_opts o = opts ? *opts : rs_eval_defaults();
    if (o.mlp) return rs_errf(err, "edit transfer: only logistic-regression probes are supported");
    if (V < 1 || n < 2 || o.n_seeds < 1) return rs_errf(err, "edit transfer: need >= 1 variant, >= 2 images, >= 1 seed");
    if (rs_check_finite(XI, n, d, err) || rs_check_finite(XE, V * n, d, err)) return rs_err_prefix(err, "edit transfer");
    int S = o.n_seeds, N = 2 * n, rc = 0;
    int *y = malloc(sizeof(int) * N), *g = malloc(sizeof(int) * N), *is_test = malloc(sizeof(int) * N);
    int *gid = malloc(sizeof(int) * N), *seen = calloc((size_t)N, sizeof(int)), *fold = malloc(sizeof(int) * N);
    int *trow = malloc(sizeof(int) * N), *pred = malloc(sizeof(int) * N);
    /* per (v, w): concatenated test labels / predictions / dense test groups over seeds */
    size_t VV = (size_t)V * V;
    int *ty = malloc(sizeof(int) * (size_t)N * S), *tg = malloc(sizeof(int) * (size_t)N * S);
    int *tp = malloc(sizeof(int) * (size_t)N * S * VV), *nte = malloc(sizeof(int) * S);
    float *Xa = malloc(sizeof(float) * ((size_t)N * d + 1)), *Xb = malloc(sizeof(float) * ((size_t)N * d + 1));
    int *ya = malloc(sizeof(int) * N), *ga = malloc(sizeof(int) * N), *gb = malloc(sizeof(int) * N);
    if (!y || !g || !is_test || !gid || !seen || !fold || !trow || !pred || !ty || !tg || !tp || !nte || !Xa || !Xb ||
        !ya || !ga || !gb) {
        rc = rs_errk(err, RS_ENOMEM, "edit transfer: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        y[i] = 0, y[n + i] = 1;
        g[i] = g[n + i] = group ? group[i] : i;
    }
    for (size_t k = 0; k < VV; k++) acc[k] = 0;
    int G = rs_group_dense(g, N, gid), pos = 0;
    if (G < 0) { rc = rs_errk(err, RS_ENOMEM, "edit transfer: out of memory"); goto out; }
    rs_logreg_opts lo_ = rs_logreg_defaults();
    lo_.balanced = o.balanced;
    lo_.tol = o.tol;
    lo_.penalty = o.penalty;
    for (int s = 0; rc == 0 && s < S; s++) {
        uint64_t seed = o.seed + 7919u * (uint64_t)(s + 1);
        if ((rc = rs_split_stratified_groups(y, g, N, 2, o.test_frac, seed, is_test, err))) break;
        memset(seen, 0, sizeof(int) * N);
        int ntg = 0, na = 0, nb = 0;
        for (int i = 0; i < N; i++)
            if (is_test[i] && !seen[gid[i]]) seen[gid[i]] = 1, ntg++;
        if (ntg < o.min_test_groups) {
            rc = rs_errk(err, RS_EBELOWMIN,
                         "edit transfer: the split leaves %d test group%s (%d groups, test fraction %g), fewer than the "
                         "minimum of %d; use more groups (e.g. more images per class), a larger test fraction, or "
                         "lower the minimum test groups",
                         ntg, ntg == 1 ? "" : "s", G, o.test_frac, o.min_test_groups);
            break;
        }
        for (int i = 0; i < N; i++) {
            if (is_test[i]) { trow[nb] = i; ty[pos + nb] = y[i]; gb[nb++] = gid[i]; }
            else { ya[na] = y[i]; ga[na++] = gid[i]; }
        }
        if (rs_group_dense(gb, nb, tg + pos) < 0) { rc = rs_errk(err, RS_ENOMEM, "edit transfer: out of memory"); break; }
        nte[s] = nb;
        for (int v = 0; rc == 0 && v < V; v++) {
            /* probe v: training rows = XI / XE_v rows not in test */
            for (int i = 0, k = 0; i < N; i++)
                if (!is_test[i]) {
                    const float *src = i < n ? XI + (size_t)i * d : XE + ((size_t)v * n + (i - n)) * d;
                    memcpy(Xa + (size_t)k++ * d, src, sizeof(float) * d);
                }
            double C = o.n_Cs > 0 ? o.Cs[0] : 1.0;
            if (C_given && isfinite(C_given[(size_t)v * S + s]) && C_given[(size_t)v * S + s] > 0) {
                C = C_given[(size_t)v * S + s];
            } else if (o.cv_folds >= 2 && o.n_Cs > 1) {
                rc = rs_group_kfold(ya, ga, na, 2, o.cv_folds, seed, fold, err);
                if (rc == 0)
                    rc = cv_folds_threads(Xa, ya, na, d, 2, fold, o.cv_folds, o.Cs, o.n_Cs, o.standardize, &lo_, NULL, &C, o.threads, err);
                if (rc) { rs_err_prefix(err, "edit transfer: seed %d, variant %d: inner CV", s, v); break; }
            }
            rs_logreg_opts fo = lo_;
            fo.C = C;
            rs_scaler sc;
            memset(&sc, 0, sizeof sc);
            if (o.standardize) {
                if ((rc = rs_scaler_fit(&sc, Xa, na, d, err))) break;
                rs_scaler_apply(&sc, Xa, na, Xa);
            }
            rs_logreg m;
            if ((rc = rs_logreg_fit(&m, Xa, ya, na, d, 2, &fo, err))) { rs_scaler_free(&sc); break; }
            for (int w = 0; w < V; w++) {
                for (int k = 0; k < nb; k++) {
                    int i = trow[k];
                    const float *src = i < n ? XI + (size_t)i * d : XE + ((size_t)w * n + (i - n)) * d;
                    memcpy(Xb + (size_t)k * d, src, sizeof(float) * d);
                }
                if (o.standardize) rs_scaler_apply(&sc, Xb, nb, Xb);
                int *pp = tp + ((size_t)v * V + w) * (size_t)N * S + pos;
                rs_logreg_predict(&m, Xb, nb, pp);
                int ok = 0;
                for (int k = 0; k < nb; k++) ok += pp[k] == ty[pos + k];
                acc[(size_t)v * V + w] += (double)ok / nb / S;
            }
            rs_logreg_free(&m);
            rs_scaler_free(&sc);
        }
        pos += nb;
    }
    for (size_t k = 0; rc == 0 && k < VV && (lo || hi); k++) {
        rs_metrics l = {0}, h = {0};
        rc = rs_nested_group_bootstrap(ty, tp + k * (size_t)N * S, tg, nte, S, 2, o.n_boot > 0 ? o.n_boot : 1,
                                       o.seed + 0xB00Bu, &l, &h, NULL, err);
        if (rc == 0 && lo) lo[k] = l.accuracy;
        if (rc == 0 && hi) hi[k] = h.accuracy;
    }
out:
    free(y); free(g); free(is_test); free(gid); free(seen); free(fold); free(trow); free(pred);
    free(ty); free(tg); free(tp); free(nte); free(Xa); free(Xb); free(ya); free(ga); free(gb);
    return rc;
}
