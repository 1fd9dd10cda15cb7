/* Cross-modal probe transfer and the linear alignment baselines (see probe_transfer.h).
 * Alignment maps are fitted on paired training items only and use no labels, so a mapped
 * transfer cell measures "is the probe's information linearly recoverable", never the
 * test labels. LAPACK (shipped inside OpenBLAS) does the SVD and Cholesky solves. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe_transfer.h"

/* Fortran LAPACK (no lapacke.h installed); trailing size_t are the hidden string lengths. */
extern void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda,
                    double *s, double *u, const int *ldu, double *vt, const int *ldvt,
                    double *work, const int *lwork, int *iwork, int *info, size_t);
extern void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda,
                   double *b, const int *ldb, int *info, size_t);

void rs_linmap_free(rs_linmap *m) {
    free(m->mu_s); free(m->mu_t); free(m->M); free(m->diag);
    memset(m, 0, sizeof *m);
}

/* Column means of X [n, d] into mu and the centred copy into Xc (double). */
static void center(const float *X, int n, int d, double *mu, double *Xc) {
    memset(mu, 0, sizeof(double) * d);
    for (size_t i = 0; i < (size_t)n; i++)
        for (int j = 0; j < d; j++) mu[j] += X[i * d + j];
    for (int j = 0; j < d; j++) mu[j] /= n;
    for (size_t i = 0; i < (size_t)n; i++)
        for (int j = 0; j < d; j++) Xc[i * d + j] = X[i * d + j] - mu[j];
}

static int fit_procrustes(rs_linmap *m, const double *Sc, const double *Tc, int n, int ds, int dt,
                          int with_scale, rs_err *err) {
    /* Cmat = S_cᵀ T_c [ds, dt] row-major, i.e. Cmatᵀ in LAPACK's column-major view:
     * svd(Cmatᵀ) = u Σ vt gives U = vtᵀ, V = u, and M = U Vᵀ = (u vt)ᵀ, whose column-major
     * product u·vt [dt, ds] is exactly M [ds, dt] row-major. */
    /* Divide-and-conquer SVD (dgesdd, scipy's default driver): at d = 2304 it takes ~2 s
     * where dgesvd takes ~70 s. */
    int r = ds < dt ? ds : dt, lwork = -1, info = 0;
    double *C = malloc(sizeof(double) * (size_t)ds * dt), *sv = malloc(sizeof(double) * r);
    double *u = malloc(sizeof(double) * (size_t)dt * r), *vt = malloc(sizeof(double) * (size_t)r * ds);
    int *iwork = malloc(sizeof(int) * 8 * (size_t)r);
    m->M = malloc(sizeof(double) * (size_t)ds * dt);
    double wq, *work = NULL;
    if (!C || !sv || !u || !vt || !iwork || !m->M) goto oom;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ds, dt, n, 1.0, Sc, ds, Tc, dt, 0.0, C, dt);
    dgesdd_("S", &dt, &ds, C, &dt, sv, u, &dt, vt, &r, &wq, &lwork, iwork, &info, 1);
    lwork = (int)wq;
    if (!(work = malloc(sizeof(double) * (size_t)(lwork > 1 ? lwork : 1)))) goto oom;
    dgesdd_("S", &dt, &ds, C, &dt, sv, u, &dt, vt, &r, work, &lwork, iwork, &info, 1);
    if (info != 0) {
        free(C); free(sv); free(u); free(vt); free(work); free(iwork);
        return rs_errf(err, "procrustes: SVD did not converge (dgesdd info %d)", info);
    }
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, dt, ds, r, 1.0, u, dt, vt, r, 0.0, m->M, dt);
    m->s = 1.0;
    if (with_scale) {
        double tr = 0, ss = 0;
        for (int k = 0; k < r; k++) tr += sv[k];
        for (size_t i = 0; i < (size_t)n * ds; i++) ss += Sc[i] * Sc[i];
        m->s = ss > 0 ? tr / ss : 1.0;
    }
    free(C); free(sv); free(u); free(vt); free(work); free(iwork);
    return 0;
oom:
    free(C); free(sv); free(u); free(vt); free(work); free(iwork);
    return rs_errk(err, RS_ENOMEM, "procrustes: out of memory (%d x %d map)", ds, dt);
}

static int fit_ridge(rs_linmap *m, const double *Sc, const double *Tc, int n, int ds, int dt,
                     double lambda, rs_err *err) {
    int info = 0;
    m->M = malloc(sizeof(double) * (size_t)ds * dt);
    if (!m->M) return rs_errk(err, RS_ENOMEM, "ridge map: out of memory (%d x %d map)", ds, dt);
    if (ds <= n) {
        /* primal: (S_cᵀS_c + λI) M = S_cᵀT_c; the RHS in column-major is T_cᵀS_c row-major */
        double *G = malloc(sizeof(double) * (size_t)ds * ds), *B = malloc(sizeof(double) * (size_t)ds * dt);
        if (!G || !B) { free(G); free(B); return rs_errk(err, RS_ENOMEM, "ridge map: out of memory (%d features)", ds); }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, ds, n, 1.0, Sc, ds, 0.0, G, ds);
        for (int j = 0; j < ds; j++) G[(size_t)j * ds + j] += lambda;
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dt, ds, n, 1.0, Tc, dt, Sc, ds, 0.0, B, ds);
        /* row-major upper = column-major lower */
        dposv_("L", &ds, &dt, G, &ds, B, &ds, &info, 1);
        if (info == 0)
            for (int a = 0; a < dt; a++)
                for (int j = 0; j < ds; j++) m->M[(size_t)j * dt + a] = B[(size_t)a * ds + j];
        free(G); free(B);
    } else {
        /* dual (fewer pairs than features): M = S_cᵀ (S_c S_cᵀ + λI)⁻¹ T_c */
        double *G = malloc(sizeof(double) * (size_t)n * n), *At = malloc(sizeof(double) * (size_t)n * dt);
        if (!G || !At) { free(G); free(At); return rs_errk(err, RS_ENOMEM, "ridge map: out of memory (%d pairs)", n); }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, ds, 1.0, Sc, ds, 0.0, G, n);
        for (int i = 0; i < n; i++) G[(size_t)i * n + i] += lambda;
        for (int i = 0; i < n; i++)
            for (int a = 0; a < dt; a++) At[(size_t)a * n + i] = Tc[(size_t)i * dt + a];
        dposv_("L", &n, &dt, G, &n, At, &n, &info, 1);
        if (info == 0)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, ds, dt, n, 1.0, Sc, ds, At, n, 0.0, m->M, dt);
        free(G); free(At);
    }
    if (info != 0) return rs_errf(err, "ridge map: system not positive definite (dposv info %d; lambda %g)", info, lambda);
    m->s = 1.0;
    return 0;
}

int rs_linmap_fit(rs_linmap *m, rs_map_kind kind, const float *S, const float *T, int n, int ds,
                  int dt, double lambda, int procrustes_scale, rs_err *err) {
    memset(m, 0, sizeof *m);
    if (n < 2 || ds < 1 || dt < 1) return rs_errf(err, "alignment map: need at least 2 pairs (got %d)", n);
    if (kind == RS_MAP_MOMENTS && ds != dt)
        return rs_errf(err, "moment-matching map needs equal widths (%d vs %d)", ds, dt);
    if (kind == RS_MAP_RIDGE && !(lambda > 0 && isfinite(lambda)))
        return rs_errf(err, "ridge map: lambda must be positive (got %g)", lambda);
    if (kind != RS_MAP_MOMENTS && kind != RS_MAP_PROCRUSTES && kind != RS_MAP_RIDGE)
        return rs_errf(err, "alignment map: unknown kind %d", (int)kind);
    if (rs_check_finite(S, n, ds, err) || rs_check_finite(T, n, dt, err)) return rs_err_prefix(err, "alignment map");
    m->kind = kind; m->ds = ds; m->dt = dt; m->s = 1.0;
    m->mu_s = malloc(sizeof(double) * ds);
    m->mu_t = malloc(sizeof(double) * dt);
    double *Sc = malloc(sizeof(double) * (size_t)n * ds), *Tc = malloc(sizeof(double) * (size_t)n * dt);
    int rc = 0;
    if (!m->mu_s || !m->mu_t || !Sc || !Tc) {
        rc = rs_errk(err, RS_ENOMEM, "alignment map: out of memory (%d pairs, %d/%d features)", n, ds, dt);
        goto done;
    }
    center(S, n, ds, m->mu_s, Sc);
    center(T, n, dt, m->mu_t, Tc);
    if (kind == RS_MAP_MOMENTS) {
        if (!(m->diag = malloc(sizeof(double) * ds))) { rc = rs_errk(err, RS_ENOMEM, "alignment map: out of memory"); goto done; }
        for (int j = 0; j < ds; j++) {
            double vs = 0, vt = 0;
            for (size_t i = 0; i < (size_t)n; i++) {
                vs += Sc[i * ds + j] * Sc[i * ds + j];
                vt += Tc[i * dt + j] * Tc[i * dt + j];
            }
            m->diag[j] = vs > 0 ? sqrt(vt / vs) : 0.0; /* constant source feature → target mean */
        }
    } else if (kind == RS_MAP_PROCRUSTES) {
        rc = fit_procrustes(m, Sc, Tc, n, ds, dt, procrustes_scale, err);
    } else {
        rc = fit_ridge(m, Sc, Tc, n, ds, dt, lambda, err);
    }
done:
    free(Sc); free(Tc);
    if (rc) rs_linmap_free(m);
    return rc;
}

int rs_linmap_apply(const rs_linmap *m, const float *S, int n, float *out, rs_err *err) {
    int ds = m->ds, dt = m->dt;
    if (m->kind == RS_MAP_MOMENTS) {
        for (size_t i = 0; i < (size_t)n; i++)
            for (int j = 0; j < ds; j++)
                out[i * dt + j] = (float)(m->mu_t[j] + m->diag[j] * (S[i * ds + j] - m->mu_s[j]));
        return 0;
    }
    double *Xc = calloc((size_t)n * ds + 1, sizeof(double)), *Y = malloc(sizeof(double) * ((size_t)n * dt + 1));
    if (!Xc || !Y) { free(Xc); free(Y); return rs_errk(err, RS_ENOMEM, "alignment map: out of memory for %d rows", n); }
    for (size_t i = 0; i < (size_t)n; i++)
        for (int j = 0; j < ds; j++) Xc[i * ds + j] = S[i * ds + j] - m->mu_s[j];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dt, ds, m->s, Xc, ds, m->M, dt, 0.0, Y, dt);
    for (size_t i = 0; i < (size_t)n; i++)
        for (int a = 0; a < dt; a++) out[i * dt + a] = (float)(Y[i * dt + a] + m->mu_t[a]);
    free(Xc); free(Y);
    return 0;
}

double rs_linmap_r2(const rs_linmap *m, const float *S, const float *T, int n) {
    double r2;
    rs_err e;
    return rs_linmap_r2_checked(m, S, T, n, &r2, &e) ? NAN : r2;
}

int rs_linmap_r2_checked(const rs_linmap *m, const float *S, const float *T, int n, double *r2, rs_err *err) {
    int dt = m->dt;
    float *P = malloc(sizeof(float) * ((size_t)n * dt + 1));
    double *mu = calloc(dt, sizeof(double));
    int oom = !P || !mu;
    if (oom || rs_linmap_apply(m, S, n, P, err)) {
        free(P);
        free(mu);
        return oom ? rs_errk(err, RS_ENOMEM, "alignment map: out of memory for R^2 over %d rows", n) : -1;
    }
    for (size_t i = 0; i < (size_t)n; i++)
        for (int a = 0; a < dt; a++) mu[a] += T[i * dt + a];
    for (int a = 0; a < dt; a++) mu[a] /= n;
    double sse = 0, sst = 0;
    for (size_t i = 0; i < (size_t)n; i++)
        for (int a = 0; a < dt; a++) {
            double e = (double)T[i * dt + a] - P[i * dt + a], c = T[i * dt + a] - mu[a];
            sse += e * e;
            sst += c * c;
        }
    free(P); free(mu);
    *r2 = sst > 0 ? 1 - sse / sst : NAN;
    return 0;
}

/* ---- transfer matrix ---- */

static const rs_transfer_cell_def CELLS[RS_TRANSFER_CELLS] = {
    {0, 0, RS_MAP_NONE, "A->A"},
    {1, 1, RS_MAP_NONE, "B->B"},
    {0, 1, RS_MAP_NONE, "A->B direct"},
    {1, 0, RS_MAP_NONE, "B->A direct"},
    {0, 1, RS_MAP_MOMENTS, "A->B moments"},
    {1, 0, RS_MAP_MOMENTS, "B->A moments"},
    {0, 1, RS_MAP_PROCRUSTES, "A->B procrustes"},
    {1, 0, RS_MAP_PROCRUSTES, "B->A procrustes"},
    {0, 1, RS_MAP_RIDGE, "A->B ridge"},
    {1, 0, RS_MAP_RIDGE, "B->A ridge"},
};

const rs_transfer_cell_def *rs_transfer_cells(void) { return CELLS; }

static const double DEFAULT_CS[] = {1e-4, 1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4};

rs_transfer_opts rs_transfer_defaults(void) {
    rs_transfer_opts o;
    memset(&o, 0, sizeof o);
    o.n_seeds = 5;
    o.test_frac = 0.2;
    o.Cs = DEFAULT_CS;
    o.n_Cs = 9;
    o.cv_folds = 5;
    o.standardize = 1;
    o.n_boot = 1000;
    o.tol = 1e-4;
    o.ridge_alpha = 0.1;
    o.procrustes_scale = 1;
    return o;
}

/* A fitted probe: optional scaler + logistic regression or MLP. */
typedef struct {
    int d, standardized, is_mlp;
    rs_scaler sc;
    rs_logreg lr;
    rs_mlp mlp;
} pipe_t;

static void pipe_free(pipe_t *p) {
    rs_scaler_free(&p->sc);
    rs_logreg_free(&p->lr);
    rs_mlp_free(&p->mlp);
}

static int pipe_fit(pipe_t *p, const float *X, const int *y, const int *grp, int n, int d, int K,
                    const rs_transfer_opts *o, double *C_out, rs_err *err) {
    memset(p, 0, sizeof *p);
    p->d = d;
    rs_logreg_opts lo = rs_logreg_defaults();
    lo.balanced = o->balanced;
    lo.tol = o->tol;
    lo.C = o->n_Cs > 0 ? o->Cs[0] : 1.0;
    p->is_mlp = o->mlp != NULL;
    if (!p->is_mlp && o->cv_folds >= 2 && o->n_Cs > 1) {
        if (grp) { /* group-aware inner CV: no group on both sides of a fold */
            int *fold = malloc(sizeof(int) * ((size_t)n + 1)), rc;
            if (!fold) return rs_errk(err, RS_ENOMEM, "out of memory");
            rc = rs_group_kfold(y, grp, n, K, o->cv_folds, o->seed, fold, err);
            if (rc == 0)
                rc = rs_logreg_cv_folds(X, y, n, d, K, fold, o->cv_folds, o->Cs, o->n_Cs, o->standardize, &lo, NULL,
                                        &lo.C, err);
            free(fold);
            if (rc) return -1;
        } else if (rs_logreg_cv(X, y, n, d, K, o->Cs, o->n_Cs, o->cv_folds, o->standardize, &lo, NULL, &lo.C, err))
            return -1;
    }
    *C_out = lo.C;
    const float *use = X;
    float *tmp = NULL;
    if (o->standardize) {
        if (rs_scaler_fit(&p->sc, X, n, d, err)) return -1;
        p->standardized = 1;
        if (!(tmp = malloc(sizeof(float) * (size_t)n * d))) { pipe_free(p); return rs_errk(err, RS_ENOMEM, "out of memory"); }
        rs_scaler_apply(&p->sc, X, n, tmp);
        use = tmp;
    }
    int rc = p->is_mlp ? rs_mlp_fit(&p->mlp, use, y, n, d, K, o->mlp, err)
                       : rs_logreg_fit(&p->lr, use, y, n, d, K, &lo, err);
    free(tmp);
    if (rc) pipe_free(p);
    return rc;
}

static int pipe_predict(const pipe_t *p, const float *X, int n, int *pred, rs_err *err) {
    float *tmp = NULL;
    if (p->standardized) {
        if (!(tmp = malloc(sizeof(float) * ((size_t)n * p->d + 1)))) return rs_errk(err, RS_ENOMEM, "out of memory");
        rs_scaler_apply(&p->sc, X, n, tmp);
        X = tmp;
    }
    int rc = 0;
    if (p->is_mlp) rc = rs_mlp_predict(&p->mlp, X, n, pred, err);
    else rs_logreg_predict(&p->lr, X, n, pred);
    free(tmp);
    return rc;
}

/* Rows with sel[i] == want of X [n, d] into a new array. */
static float *rows_where(const float *X, int n, int d, const int *sel, int want, int *m) {
    int c = 0;
    for (int i = 0; i < n; i++) c += sel[i] == want;
    float *o = malloc(sizeof(float) * ((size_t)c * d + 1));
    if (!o) return NULL;
    for (int i = 0, k = 0; i < n; i++)
        if (sel[i] == want) memcpy(o + (size_t)k++ * d, X + (size_t)i * d, sizeof(float) * d);
    *m = c;
    return o;
}

static int *labels_where(const int *y, int n, const int *sel, int want) {
    int *o = malloc(sizeof(int) * (n + 1));
    if (!o) return NULL;
    for (int i = 0, k = 0; i < n; i++)
        if (sel[i] == want) o[k++] = y[i];
    return o;
}

/* Σ‖x − mean‖² over rows, divided by d: the scale that makes ridge_alpha unit-free. */
static double mean_ss(const float *X, int n, int d) {
    double tot = 0;
    for (int j = 0; j < d; j++) {
        double mu = 0, ss = 0;
        for (size_t i = 0; i < (size_t)n; i++) mu += X[i * d + j];
        mu /= n;
        for (size_t i = 0; i < (size_t)n; i++) ss += (X[i * d + j] - mu) * (X[i * d + j] - mu);
        tot += ss;
    }
    return tot / d;
}

int rs_transfer_split(const float *XA, int dA, const float *XB, int dB, const int *yA,
                      const int *yB, int n, int K, const int *is_test,
                      const rs_transfer_opts *opts, int *pred, double *r2, double *C_out,
                      rs_err *err) {
    rs_transfer_opts o = opts ? *opts : rs_transfer_defaults();
    const float *X[2] = {XA, XB};
    const int *Y[2] = {yA, yB}, dim[2] = {dA, dB};
    float *tr[2] = {NULL, NULL}, *te[2] = {NULL, NULL}, *mapped = NULL;
    int *ytr[2] = {NULL, NULL}, *gtr = NULL, ntr = 0, nte = 0, rc = 0;
    pipe_t P[2];
    memset(P, 0, sizeof P);
    double Cs[2] = {0, 0};
    for (int m = 0; m < 2; m++) {
        tr[m] = rows_where(X[m], n, dim[m], is_test, 0, &ntr);
        te[m] = rows_where(X[m], n, dim[m], is_test, 1, &nte);
        ytr[m] = labels_where(Y[m], n, is_test, 0);
        if (!tr[m] || !te[m] || !ytr[m]) { rc = rs_errk(err, RS_ENOMEM, "transfer: out of memory"); goto done; }
    }
    if (ntr < 2 || nte < 1) { rc = rs_errf(err, "transfer: split leaves %d training and %d test items", ntr, nte); goto done; }
    if (o.cv_group && !(gtr = labels_where(o.cv_group, n, is_test, 0))) { rc = rs_errk(err, RS_ENOMEM, "transfer: out of memory"); goto done; }
    for (int m = 0; m < 2; m++)
        if (pipe_fit(&P[m], tr[m], ytr[m], gtr, ntr, dim[m], K, &o, &Cs[m], err)) {
            rc = rs_err_prefix(err, "transfer: probe on modality %c", "AB"[m]);
            goto done;
        }
    if (C_out) { C_out[0] = Cs[0]; C_out[1] = Cs[1]; }
    int dmax = dA > dB ? dA : dB;
    if (!(mapped = malloc(sizeof(float) * ((size_t)nte * dmax + 1)))) { rc = rs_errk(err, RS_ENOMEM, "transfer: out of memory"); goto done; }
    for (int c = 0; c < RS_TRANSFER_CELLS; c++) {
        const rs_transfer_cell_def *cd = &CELLS[c];
        int t = cd->train, u = cd->test, *pc = pred ? pred + (size_t)c * nte : NULL;
        if (r2) r2[c] = NAN;
        int same = dA == dB;
        if (cd->map == RS_MAP_NONE && t == u) {
            if (pc && pipe_predict(&P[t], te[t], nte, pc, err)) { rc = -1; goto done; }
        } else if (cd->map == RS_MAP_NONE || cd->map == RS_MAP_MOMENTS) {
            if (!same) { /* needs equal widths */
                if (pc) for (int i = 0; i < nte; i++) pc[i] = -1;
                continue;
            }
        }
        if (cd->map == RS_MAP_NONE && t != u) {
            if (pc && pipe_predict(&P[t], te[u], nte, pc, err)) { rc = -1; goto done; }
        } else if (cd->map != RS_MAP_NONE) {
            /* map the test modality's rows into the probe's space: fitted on paired training rows */
            rs_linmap lm;
            double lambda = cd->map == RS_MAP_RIDGE ? o.ridge_alpha * mean_ss(tr[u], ntr, dim[u]) : 0;
            if (cd->map == RS_MAP_RIDGE && !(lambda > 0)) lambda = o.ridge_alpha > 0 ? o.ridge_alpha : 1.0;
            if (rs_linmap_fit(&lm, cd->map, tr[u], tr[t], ntr, dim[u], dim[t], lambda, o.procrustes_scale, err)) {
                rc = rs_err_prefix(err, "transfer: %s", cd->name);
                goto done;
            }
            rc = r2 ? rs_linmap_r2_checked(&lm, te[u], te[t], nte, &r2[c], err) : 0;
            if (!rc) rc = rs_linmap_apply(&lm, te[u], nte, mapped, err);
            rs_linmap_free(&lm);
            if (rc) goto done;
            if (pc && pipe_predict(&P[t], mapped, nte, pc, err)) { rc = -1; goto done; }
        }
    }
done:
    for (int m = 0; m < 2; m++) { free(tr[m]); free(te[m]); free(ytr[m]); pipe_free(&P[m]); }
    free(mapped);
    free(gtr);
    return rc;
}

int rs_transfer_evaluate(const float *XA, int dA, const float *XB, int dB, const int *yA,
                         const int *yB, const int *group, int n, int K,
                         const rs_transfer_opts *opts, rs_transfer_result *res, rs_err *err) {
    rs_transfer_opts o = opts ? *opts : rs_transfer_defaults();
    o.cv_group = group; /* group-aware inner CV when items are grouped */
    memset(res, 0, sizeof *res);
    if (o.n_seeds < 1) return rs_errf(err, "transfer: need at least one seed");
    if (rs_check_labels(yA, n, K, err) || rs_check_labels(yB, n, K, err)) return rs_err_prefix(err, "transfer");
    if (rs_check_finite(XA, n, dA, err)) return rs_err_prefix(err, "transfer: modality A");
    if (rs_check_finite(XB, n, dB, err)) return rs_err_prefix(err, "transfer: modality B");
    int S = o.n_seeds, C = RS_TRANSFER_CELLS;
    res->n_seeds = S;
    res->K = K;
    int *is_test = malloc(sizeof(int) * n), *nte = calloc(S, sizeof(int));
    int *pred = malloc(sizeof(int) * (size_t)S * C * n), *yt = malloc(sizeof(int) * (size_t)S * 2 * n);
    double *r2 = malloc(sizeof(double) * C);
    int *by = malloc(sizeof(int) * ((size_t)S * n + 1)), *bp = malloc(sizeof(int) * ((size_t)S * n + 1)), *cnt = malloc(sizeof(int) * K);
    int *tg = malloc(sizeof(int) * ((size_t)S * n + 1)), *gtmp = malloc(sizeof(int) * (n + 1)), pos = 0;
    int *cm = malloc(sizeof(int) * (size_t)K * K); /* rs_metrics_compute's confusion (its own would be unchecked) */
    int rc = 0;
    if (!is_test || !nte || !pred || !yt || !r2 || !by || !bp || !cnt || !tg || !gtmp || !cm) {
        rc = rs_errk(err, RS_ENOMEM, "transfer: out of memory (%d items, %d seeds)", n, S);
        goto done;
    }
    for (int c = 0; c < C; c++) res->cell[c].map_r2 = CELLS[c].map == RS_MAP_NONE ? NAN : 0;
    double logC[2] = {0, 0};
    for (int s = 0; s < S; s++) {
        uint64_t seed = o.seed + 7919u * (uint64_t)(s + 1);
        if (rs_split_stratified_groups(yA, group, n, K, o.test_frac, seed, is_test, err)) { rc = rs_err_prefix(err, "transfer"); goto done; }
        int m = 0;
        for (int i = 0; i < n; i++) m += is_test[i];
        nte[s] = m;
        for (int i = 0, k = 0; i < n; i++)
            if (is_test[i]) {
                yt[((size_t)s * 2) * n + k] = yA[i];
                yt[((size_t)s * 2 + 1) * n + k] = yB[i];
                gtmp[k++] = group ? group[i] : i;
            }
        /* test groups of this seed, dense in order of first appearance (for the group bootstrap) */
        if (rs_group_dense(gtmp, m, tg + pos) < 0) { rc = rs_errk(err, RS_ENOMEM, "transfer: out of memory"); goto done; }
        pos += m;
        int *ps = malloc(sizeof(int) * ((size_t)C * m + 1));
        double Cc[2];
        if (!ps) { rc = rs_errk(err, RS_ENOMEM, "transfer: out of memory"); goto done; }
        if (rs_transfer_split(XA, dA, XB, dB, yA, yB, n, K, is_test, &o, ps, r2, Cc, err)) {
            free(ps);
            rc = rs_err_prefix(err, "seed %d", s);
            goto done;
        }
        for (int c = 0; c < C; c++) {
            memcpy(pred + ((size_t)s * C + c) * n, ps + (size_t)c * m, sizeof(int) * m);
            if (CELLS[c].map != RS_MAP_NONE) res->cell[c].map_r2 += r2[c] / S;
        }
        free(ps);
        for (int t = 0; t < 2; t++) {
            logC[t] += log(Cc[t]) / S;
            memset(cnt, 0, sizeof(int) * K);
            int mx = 0;
            for (int i = 0; i < m; i++) cnt[yt[((size_t)s * 2 + t) * n + i]]++;
            for (int k = 0; k < K; k++) mx = cnt[k] > mx ? cnt[k] : mx;
            res->chance[t] += (double)mx / m / S;
        }
    }
    res->C[0] = exp(logC[0]);
    res->C[1] = exp(logC[1]);
    int B = o.n_boot > 0 ? o.n_boot : 1;
    for (int c = 0; c < C; c++) {
        rs_transfer_cell *cell = &res->cell[c];
        const int *p0 = pred + (size_t)c * n;
        cell->available = p0[0] >= 0;
        if (!cell->available) {
            cell->map_r2 = NAN;
            cell->mean.accuracy = cell->mean.balanced_accuracy = cell->mean.macro_f1 = NAN;
            cell->ci_lo = cell->ci_hi = cell->mean;
            continue;
        }
        int u = CELLS[c].test;
        for (int s = 0; s < S; s++) {
            rs_metrics mt;
            rs_metrics_compute(yt + ((size_t)s * 2 + u) * n, pred + ((size_t)s * C + c) * n, nte[s], K, &mt, cm);
            cell->mean.accuracy += mt.accuracy / S;
            cell->mean.balanced_accuracy += mt.balanced_accuracy / S;
            cell->mean.macro_f1 += mt.macro_f1 / S;
        }
        /* nested group bootstrap (seeds, then test groups; rs_nested_group_bootstrap): the
           draws depend only on the seed and the group counts, so every cell gets the same
           resamples (paired) */
        for (int s = 0, q = 0; s < S; s++)
            for (int i = 0; i < nte[s]; i++, q++) {
                by[q] = yt[((size_t)s * 2 + u) * n + i];
                bp[q] = pred[((size_t)s * C + c) * n + i];
            }
        if (rs_nested_group_bootstrap(by, bp, tg, nte, S, K, B, o.seed + 0xB00Bu, &cell->ci_lo, &cell->ci_hi, NULL, err)) {
            rc = rs_err_prefix(err, "transfer");
            goto done;
        }
    }
done:
    free(is_test); free(nte); free(pred); free(yt); free(r2); free(by); free(bp); free(cnt);
    free(tg); free(gtmp); free(cm);
    return rc;
}

const char *rs_transfer_diagnosis(const rs_transfer_result *r, int train) {
    int t = train ? 1 : 0, u = 1 - t;
    const rs_transfer_cell *in_u = &r->cell[u]; /* cells 0, 1 are A->A, B->B */
    double ch = r->chance[u], span = in_u->mean.accuracy - ch;
    if (!(in_u->ci_lo.accuracy > ch) || !(span > 0))
        return u ? "not present in B (the in-modality B probe is at chance)"
                 : "not present in A (the in-modality A probe is at chance)";
    /* fraction of the in-modality gain over chance that a cell recovers */
    double best = -1;
    int best_c = -1;
    for (int c = 2; c < RS_TRANSFER_CELLS; c++) {
        if (CELLS[c].train != t || !r->cell[c].available) continue;
        double f = (r->cell[c].mean.accuracy - ch) / span;
        if (CELLS[c].map == RS_MAP_NONE && f >= 0.9) return "transfers directly (>= 90% of the in-modality gain)";
        if (f > best) { best = f; best_c = c; }
    }
    if (best >= 0.9) {
        switch (CELLS[best_c].map) {
        case RS_MAP_MOMENTS: return "present but not aligned: per-feature mean/std matching recovers it";
        case RS_MAP_PROCRUSTES: return "present but not aligned: a rotation (Procrustes) recovers it";
        default: return "present but not aligned: a linear (ridge) map recovers it";
        }
    }
    if (best >= 0.5) return "present, partly recovered by a linear map (50-90% of the in-modality gain)";
    return "present, not recovered by the linear maps (< 50% of the in-modality gain)";
}
