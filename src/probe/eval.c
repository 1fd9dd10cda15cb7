/* Evaluation protocol for probes: seeded stratified/group splits, C chosen by inner
 * stratified CV on the training side only, test metrics, bootstrap CIs of the seed-mean,
 * a permuted-label baseline and a control task. Nothing from the test side (rows, scaler
 * statistics, C) leaks into fitting. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe_eval.h"

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
    o.control = 1;
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
        return rs_errf(err, "stratified k-fold: out of memory");
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
        return rs_errf(err, "stratified k-fold: out of memory");
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
    if (!gid || !first) { free(gid); free(first); return rs_errf(err, "split: out of memory"); }
    int G = 0;
    if (!group) {
        for (int i = 0; i < n; i++) { gid[i] = i; first[i] = i; }
        G = n;
    } else {
        /* group ids are arbitrary ints: dense-map through a sorted copy */
        int *ord = malloc(sizeof(int) * n);
        if (!ord) { free(gid); free(first); return rs_errf(err, "split: out of memory"); }
        for (int i = 0; i < n; i++) ord[i] = i;
        /* insertion-free: qsort on (group, row) */
        const int *gg = group;
        for (int w = 1; w < n; w *= 2) { /* bottom-up merge sort, stable, no globals */
            int *tmp = malloc(sizeof(int) * n);
            if (!tmp) { free(ord); free(gid); free(first); return rs_errf(err, "split: out of memory"); }
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
    /* groups per class (class of a group = label of its first row) */
    int *gclass = malloc(sizeof(int) * G), *gtest = calloc(G, sizeof(int));
    int *members = malloc(sizeof(int) * G);
    if (!gclass || !gtest || !members) {
        free(gid); free(first); free(gclass); free(gtest); free(members);
        return rs_errf(err, "split: out of memory");
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
        if (!A || !B) { free(A); free(B); rs_scaler_free(&sc); return rs_errf(err, "out of memory"); }
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

/* Does every class 0..K-1 occur in y? */
static int all_classes(const int *y, int n, int K) {
    int *seen = calloc(K, sizeof(int)), ok = 1;
    if (!seen) return 0;
    for (int i = 0; i < n; i++) seen[y[i]] = 1;
    for (int c = 0; c < K; c++) ok &= seen[c];
    free(seen);
    return ok;
}

int rs_logreg_cv(const float *X, const int *y, int n, int d, int K, const double *Cs, int n_Cs,
                 int folds, int standardize, const rs_logreg_opts *base, double *mean_acc,
                 double *best_C, rs_err *err) {
    if (n_Cs < 1) return rs_errf(err, "cv: empty C grid");
    int *fold = malloc(sizeof(int) * n), *pred = malloc(sizeof(int) * n);
    double *acc = calloc(n_Cs, sizeof(double));
    if (!fold || !pred || !acc) { free(fold); free(pred); free(acc); return rs_errf(err, "cv: out of memory"); }
    int rc = rs_stratified_kfold(y, n, K, folds, fold, err);
    for (int f = 0; rc == 0 && f < folds; f++) {
        float *Xa, *Xb;
        int *ya, *yb, na, nb;
        if (gather(X, y, fold, f, n, d, &Xb, &yb, &nb)) { rc = rs_errf(err, "cv: out of memory"); break; }
        /* training side = every other fold: select by "fold != f" via a flag array */
        int *other = malloc(sizeof(int) * n);
        if (!other) { free(Xb); free(yb); rc = rs_errf(err, "cv: out of memory"); break; }
        for (int i = 0; i < n; i++) other[i] = fold[i] != f;
        if (gather(X, y, other, 1, n, d, &Xa, &ya, &na)) {
            free(other); free(Xb); free(yb); rc = rs_errf(err, "cv: out of memory"); break;
        }
        free(other);
        if (!all_classes(ya, na, K)) {
            rc = rs_errf(err, "cv: fold %d leaves a class without training rows; use fewer folds", f);
        }
        for (int c = 0; rc == 0 && c < n_Cs; c++) {
            rs_logreg_opts o = *base;
            o.C = Cs[c];
            rc = rs_logreg_fit_predict(Xa, ya, na, Xb, nb, d, K, standardize, &o, pred, err);
            if (rc) break;
            int ok = 0;
            for (int i = 0; i < nb; i++) ok += pred[i] == yb[i];
            acc[c] += (double)ok / nb / folds;
        }
        free(Xa); free(ya); free(Xb); free(yb);
    }
    if (rc == 0) {
        int best = 0;
        for (int c = 1; c < n_Cs; c++)
            if (acc[c] > acc[best]) best = c;
        *best_C = Cs[best];
        if (mean_acc) memcpy(mean_acc, acc, sizeof(double) * n_Cs);
    }
    free(fold); free(pred); free(acc);
    return rc;
}

void rs_eval_result_free(rs_eval_result *res) {
    free(res->C_chosen);
    free(res->confusion);
    res->C_chosen = NULL;
    res->confusion = NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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

int rs_probe_evaluate(const float *X, const int *y, const int *group, int n, int d, int K,
                      const rs_eval_opts *opts, rs_eval_result *res, rs_err *err) {
    rs_eval_opts o = opts ? *opts : rs_eval_defaults();
    memset(res, 0, sizeof *res);
    if (o.n_seeds < 1) return rs_errf(err, "evaluate: need at least one seed");
    if (rs_check_labels(y, n, K, err) || rs_check_finite(X, n, d, err)) return rs_err_prefix(err, "evaluate");
    int S = o.n_seeds;
    res->K = K;
    res->n_seeds = S;
    res->C_chosen = calloc(S, sizeof(double));
    res->confusion = calloc((size_t)K * K, sizeof(int));
    int *is_test = malloc(sizeof(int) * n);
    int *tests_y = malloc(sizeof(int) * (size_t)n * S), *tests_p = malloc(sizeof(int) * (size_t)n * S);
    int *nte_s = calloc(S, sizeof(int)), *ctrl = malloc(sizeof(int) * n);
    int *cm = malloc(sizeof(int) * K * K);
    double *accs = calloc(S, sizeof(double));
    if (!res->C_chosen || !res->confusion || !is_test || !tests_y || !tests_p || !nte_s || !ctrl || !cm || !accs) {
        free(is_test); free(tests_y); free(tests_p); free(nte_s); free(ctrl); free(cm); free(accs);
        rs_eval_result_free(res);
        return rs_errf(err, "evaluate: out of memory");
    }
    int rc = 0;
    rs_logreg_opts lo = rs_logreg_defaults();
    lo.balanced = o.balanced;
    lo.tol = o.tol;
    for (int s = 0; rc == 0 && s < S; s++) {
        uint64_t seed = o.seed + 7919u * (uint64_t)(s + 1);
        rc = rs_split_stratified_groups(y, group, n, K, o.test_frac, seed, is_test, err);
        if (rc) break;
        float *Xa, *Xb;
        int *ya, *yb, na, nb;
        if (gather(X, y, is_test, 0, n, d, &Xa, &ya, &na) ||
            gather(X, y, is_test, 1, n, d, &Xb, &yb, &nb)) { rc = rs_errf(err, "evaluate: out of memory"); break; }
        if (!all_classes(ya, na, K)) rc = rs_errf(err, "evaluate: seed %d: a class has no training rows", s);
        double C = o.n_Cs > 0 ? o.Cs[0] : 1.0;
        if (rc == 0 && !o.mlp && o.cv_folds >= 2 && o.n_Cs > 1)
            rc = rs_logreg_cv(Xa, ya, na, d, K, o.Cs, o.n_Cs, o.cv_folds, o.standardize, &lo, NULL, &C, err);
        res->C_chosen[s] = C;
        lo.C = C;
        int *pred = tests_p + (size_t)n * s;
        if (rc == 0) rc = probe_fit_predict(&o, &lo, seed, Xa, ya, na, Xb, nb, d, K, pred, err);
        if (rc == 0) {
            memcpy(tests_y + (size_t)n * s, yb, sizeof(int) * nb);
            nte_s[s] = nb;
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
            }
            res->chance += (double)mx / nb / S;
        }
        int *pp = malloc(sizeof(int) * (nb + 1));
        if (!pp && rc == 0) rc = rs_errf(err, "evaluate: out of memory");
        if (rc == 0 && o.permutation) { /* same C, training labels shuffled */
            int *yp = malloc(sizeof(int) * (na + 1));
            if (!yp) rc = rs_errf(err, "evaluate: out of memory");
            else {
                memcpy(yp, ya, sizeof(int) * na);
                shuffle_ints(yp, na, seed ^ 0xA5A5A5A5ull);
                if (probe_fit_predict(&o, &lo, seed, Xa, yp, na, Xb, nb, d, K, pp, err) == 0) {
                    int ok = 0;
                    for (int i = 0; i < nb; i++) ok += pp[i] == yb[i];
                    res->perm_accuracy += (double)ok / nb / S;
                } else rc = -1;
                free(yp);
            }
        }
        if (rc == 0 && o.control) {
            /* Hewitt & Liang: each type (control_type, else group, else row) gets a label drawn
             * from the empirical label distribution; the probe is fitted and scored on it. */
            const int *type = o.control_type ? o.control_type : group;
            for (int i = 0; i < n; i++) {
                uint64_t t = type ? (uint64_t)(int64_t)type[i] : (uint64_t)i;
                int src = (int)(rs_uniform_at(seed ^ 0xC0C0C0C0ull, t) * n);
                ctrl[i] = y[src < n ? src : n - 1];
            }
            int *ca, *cb, nca, ncb;
            float *Xc, *Xd;
            if (gather(X, ctrl, is_test, 0, n, d, &Xc, &ca, &nca) || gather(X, ctrl, is_test, 1, n, d, &Xd, &cb, &ncb)) {
                rc = rs_errf(err, "evaluate: out of memory");
            } else {
                int ok = 0, distinct = 0;
                for (int i = 1; i < nca; i++) distinct |= ca[i] != ca[0];
                if (!distinct) ok = 0; /* degenerate control labelling: predict the one class */
                if (!distinct) {
                    for (int i = 0; i < ncb; i++) ok += cb[i] == ca[0];
                } else if (probe_fit_predict(&o, &lo, seed, Xc, ca, nca, Xd, ncb, d, K, pp, err) == 0) {
                    for (int i = 0; i < ncb; i++) ok += pp[i] == cb[i];
                } else {
                    /* a control class absent from training is fine: remap is not needed for
                     * logreg (labels index classes), but fitting needs every class present */
                    rs_err_clear(err);
                    ok = 0;
                    int *cnt = calloc(K, sizeof(int)), best = 0;
                    if (cnt) {
                        for (int i = 0; i < nca; i++) cnt[ca[i]]++;
                        for (int c = 1; c < K; c++) if (cnt[c] > cnt[best]) best = c;
                        free(cnt);
                    }
                    for (int i = 0; i < ncb; i++) ok += cb[i] == best;
                }
                res->control_accuracy += (double)ok / (ncb ? ncb : 1) / S;
                free(Xc); free(ca); free(Xd); free(cb);
            }
        }
        free(pp);
        free(Xa); free(ya); free(Xb); free(yb);
    }
    if (rc == 0) {
        double m = res->mean.accuracy, v = 0;
        for (int s = 0; s < S; s++) v += (accs[s] - m) * (accs[s] - m);
        res->acc_sd = S > 1 ? sqrt(v / (S - 1)) : 0;
        res->selectivity = res->mean.accuracy - res->control_accuracy;
        /* bootstrap: resample each seed's test rows, average the metric over seeds */
        int B = o.n_boot > 0 ? o.n_boot : 1;
        double *ba = malloc(sizeof(double) * B * 3);
        int *by = malloc(sizeof(int) * (n + 1)), *bp = malloc(sizeof(int) * (n + 1));
        if (!ba || !by || !bp) rc = rs_errf(err, "evaluate: out of memory");
        for (int b = 0; rc == 0 && b < B; b++) {
            double a = 0, ba2 = 0, f = 0;
            for (int s = 0; s < S; s++) {
                int nb = nte_s[s];
                for (int i = 0; i < nb; i++) {
                    int j = (int)(rs_uniform_at(o.seed + 0xB00Bu + (uint64_t)b * S + s, (uint64_t)i) * nb);
                    by[i] = tests_y[(size_t)n * s + j];
                    bp[i] = tests_p[(size_t)n * s + j];
                }
                rs_metrics m;
                rs_metrics_compute(by, bp, nb, K, &m, cm);
                a += m.accuracy / S; ba2 += m.balanced_accuracy / S; f += m.macro_f1 / S;
            }
            ba[b] = a; ba[B + b] = ba2; ba[2 * B + b] = f;
        }
        if (rc == 0) {
            for (int k = 0; k < 3; k++) qsort(ba + (size_t)k * B, B, sizeof(double), cmp_double);
            int lo_i = (int)floor(0.025 * (B - 1)), hi_i = (int)ceil(0.975 * (B - 1));
            res->ci_lo.accuracy = ba[lo_i]; res->ci_hi.accuracy = ba[hi_i];
            res->ci_lo.balanced_accuracy = ba[B + lo_i]; res->ci_hi.balanced_accuracy = ba[B + hi_i];
            res->ci_lo.macro_f1 = ba[2 * B + lo_i]; res->ci_hi.macro_f1 = ba[2 * B + hi_i];
        }
        free(ba); free(by); free(bp);
    }
    free(is_test); free(tests_y); free(tests_p); free(nte_s); free(ctrl); free(cm); free(accs);
    if (rc) rs_eval_result_free(res);
    return rc;
}
