/* L2 logistic regression in scikit-learn's convention (see probe.h), solved by L-BFGS
 * on sklearn's scaled objective F = f / (C·Σs) = mean-weighted loss + ‖W‖²/(2C·Σs).
 *
 * Preconditioning (a change of variables, the objective is unchanged): the solver works
 * on V, b̃ with W_kj = r_j V_kj and b_k = b̃_k − Σ_j μ_j W_kj, i.e. on centred features
 * scaled by r_j = 1/sqrt(h·var_j + 1/(C·Σs)), the inverse square root of the Hessian's
 * diagonal at the start (h = curvature of the loss there). Anisotropic, uncentred
 * activations then converge in about as many iterations as standardised ones. The
 * stopping test is taken on the gradient in the original (W, b) coordinates, like
 * sklearn's gtol, so "converged" means the same thing in both. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe.h"

rs_logreg_opts rs_logreg_defaults(void) {
    rs_logreg_opts o = {1.0, 0, 1e-4, 1000, 1};
    return o;
}

typedef struct {
    int n, d, R, K;
    const int *y;
    const double *sw;   /* [n] sample weights / Σs */
    double *Xt;         /* [n, d] transformed features */
    const double *mu, *r; /* [d] */
    double l2;          /* 1 / (C Σs) */
    double *Z;          /* [n, R] scratch: logits, then residuals */
} lr_ctx;

/* log(1 + e^z) without overflow */
static double log1pexp(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

/* Turns logits Z [n,R] into residuals s_i (p − y) and returns Σ s_i ℓ_i (weights prescaled). */
static double loss_and_residual(int n, int R, const int *y, const double *sw, double *Z) {
    double loss = 0;
    for (int i = 0; i < n; i++) {
        double *z = Z + (size_t)i * R;
        if (R == 1) {
            double yi = y[i] == 1;
            loss += sw[i] * (log1pexp(z[0]) - yi * z[0]);
            double p = z[0] >= 0 ? 1 / (1 + exp(-z[0])) : exp(z[0]) / (1 + exp(z[0]));
            z[0] = sw[i] * (p - yi);
        } else {
            double mx = z[0];
            for (int k = 1; k < R; k++) mx = fmax(mx, z[k]);
            double se = 0;
            for (int k = 0; k < R; k++) se += exp(z[k] - mx);
            double lse = mx + log(se);
            loss += sw[i] * (lse - z[y[i]]);
            for (int k = 0; k < R; k++) z[k] = sw[i] * (exp(z[k] - lse) - (k == y[i]));
        }
    }
    return loss;
}

static double lr_fg(const double *th, double *g, void *vctx) {
    lr_ctx *c = vctx;
    int n = c->n, d = c->d, R = c->R;
    const double *V = th, *bt = th + (size_t)R * d;
    for (int i = 0; i < n; i++) memcpy(c->Z + (size_t)i * R, bt, sizeof(double) * R);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, R, d, 1.0, c->Xt, d, V, d, 1.0,
                c->Z, R);
    double f = loss_and_residual(n, R, c->y, c->sw, c->Z);
    double pen = 0;
    for (int k = 0; k < R; k++)
        for (int j = 0; j < d; j++) {
            double rv = c->r[j] * V[(size_t)k * d + j];
            pen += rv * rv;
            g[(size_t)k * d + j] = c->l2 * c->r[j] * rv;
        }
    f += 0.5 * c->l2 * pen;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, d, n, 1.0, c->Z, R, c->Xt, d, 1.0,
                g, d);
    double *gb = g + (size_t)R * d;
    memset(gb, 0, sizeof(double) * R);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < R; k++) gb[k] += c->Z[(size_t)i * R + k];
    return f;
}

/* max |∂F/∂W|, |∂F/∂b| in the original coordinates (chain rule through V, b̃). */
static double lr_gmeasure(const double *th, const double *g, void *vctx) {
    (void)th;
    lr_ctx *c = vctx;
    const double *gb = g + (size_t)c->R * c->d;
    double m = 0;
    for (int k = 0; k < c->R; k++) {
        m = fmax(m, fabs(gb[k]));
        for (int j = 0; j < c->d; j++)
            m = fmax(m, fabs(g[(size_t)k * c->d + j] / c->r[j] + c->mu[j] * gb[k]));
    }
    return m;
}

/* s_i: 1, or n / (K n_{y_i}) for "balanced" (sklearn's compute_class_weight). */
static void sample_weights(const int *y, int n, int K, int balanced, double *sw) {
    int *cnt = calloc((size_t)K, sizeof(int));
    for (int i = 0; i < n; i++) cnt[y[i]]++;
    for (int i = 0; i < n; i++)
        sw[i] = balanced ? (double)n / ((double)K * cnt[y[i]]) : 1.0;
    free(cnt);
}

int rs_logreg_fit(rs_logreg *m, const float *X, const int *y, int n, int d, int K,
                  const rs_logreg_opts *opts, rs_err *err) {
    memset(m, 0, sizeof *m);
    rs_logreg_opts o = opts ? *opts : rs_logreg_defaults();
    if (n < 2 || d < 1) return rs_errf(err, "logreg: need at least 2 rows and 1 feature (got %d x %d)", n, d);
    if (!(o.C > 0) || !isfinite(o.C)) return rs_errf(err, "logreg: C must be positive and finite (got %g)", o.C);
    if (rs_check_labels(y, n, K, err)) return rs_err_prefix(err, "logreg");
    if (rs_check_finite(X, n, d, err)) return rs_err_prefix(err, "logreg");
    int *cnt = calloc((size_t)K, sizeof(int));
    if (!cnt) return rs_errf(err, "logreg: out of memory");
    for (int i = 0; i < n; i++) cnt[y[i]]++;
    for (int k = 0; k < K; k++)
        if (!cnt[k]) {
            free(cnt);
            return rs_errf(err, "logreg: class %d has no training rows (K=%d)", k, K);
        }
    free(cnt);

    int R = K == 2 ? 1 : K;
    size_t nd = (size_t)n * d, np = (size_t)R * d + R;
    lr_ctx c = {n, d, R, K, y, NULL, NULL, NULL, NULL, 0, NULL};
    double *sw = malloc(sizeof(double) * n), *mu = calloc(d, sizeof(double));
    double *r = malloc(sizeof(double) * d), *th = calloc(np, sizeof(double));
    c.Xt = malloc(sizeof(double) * nd);
    c.Z = malloc(sizeof(double) * (size_t)n * R);
    m->W = calloc((size_t)R * d, sizeof(double));
    m->b = calloc(R, sizeof(double));
    if (!sw || !mu || !r || !th || !c.Xt || !c.Z || !m->W || !m->b) {
        free(sw); free(mu); free(r); free(th); free(c.Xt); free(c.Z);
        rs_logreg_free(m);
        return rs_errf(err, "logreg: out of memory for %d x %d features", n, d);
    }
    sample_weights(y, n, K, o.balanced, sw);
    double S = 0;
    for (int i = 0; i < n; i++) S += sw[i];
    for (int i = 0; i < n; i++) sw[i] /= S;
    c.l2 = 1.0 / (o.C * S);
    if (o.precondition) {
        double h = R == 1 ? 0.25 : (1.0 / K) * (1 - 1.0 / K);
        for (size_t i = 0; i < (size_t)n; i++)
            for (size_t j = 0; j < (size_t)d; j++) mu[j] += X[i * d + j];
        for (int j = 0; j < d; j++) { mu[j] /= n; r[j] = 0; }
        for (size_t i = 0; i < (size_t)n; i++)
            for (size_t j = 0; j < (size_t)d; j++) {
                double t = X[i * d + j] - mu[j];
                r[j] += t * t;
            }
        for (int j = 0; j < d; j++) r[j] = 1.0 / sqrt(h * r[j] / n + c.l2);
    } else {
        for (int j = 0; j < d; j++) r[j] = 1.0;
    }
    for (size_t i = 0; i < (size_t)n; i++)
        for (size_t j = 0; j < (size_t)d; j++) c.Xt[i * d + j] = (X[i * d + j] - mu[j]) * r[j];
    c.sw = sw; c.mu = mu; c.r = r;

    rs_lbfgs_opts lo = {10, o.max_iter, o.tol, 64 * 2.220446049250313e-16, 50};
    rs_lbfgs_result res;
    int rc = rs_lbfgs((int)np, th, lr_fg, lr_gmeasure, &c, &lo, &res, err);
    if (rc == 0) {
        m->d = d; m->n_classes = K; m->n_rows = R; m->C = o.C; m->balanced = o.balanced;
        for (int k = 0; k < R; k++) {
            double b = th[(size_t)R * d + k];
            for (int j = 0; j < d; j++) {
                double w = r[j] * th[(size_t)k * d + j];
                m->W[(size_t)k * d + j] = w;
                b -= mu[j] * w;
            }
            m->b[k] = b;
        }
        m->objective = res.f * o.C * S;
        m->n_iter = res.n_iter;
        m->converged = res.converged;
    } else {
        rs_logreg_free(m);
    }
    free(sw); free(mu); free(r); free(th); free(c.Xt); free(c.Z);
    return rc;
}

void rs_logreg_decision(const rs_logreg *m, const float *X, int n, double *Z) {
    int R = m->n_rows, d = m->d;
    for (size_t i = 0; i < (size_t)n; i++)
        for (int k = 0; k < R; k++) {
            double z = m->b[k];
            const double *w = m->W + (size_t)k * d;
            const float *x = X + i * d;
            for (int j = 0; j < d; j++) z += w[j] * x[j];
            Z[i * R + k] = z;
        }
}

double rs_logreg_objective(const rs_logreg *m, const float *X, const int *y, int n) {
    int R = m->n_rows;
    double *Z = malloc(sizeof(double) * (size_t)n * R), *sw = malloc(sizeof(double) * n);
    if (!Z || !sw) { free(Z); free(sw); return NAN; }
    rs_logreg_decision(m, X, n, Z);
    sample_weights(y, n, m->n_classes, m->balanced, sw);
    double f = m->C * loss_and_residual(n, R, y, sw, Z), pen = 0;
    for (size_t i = 0; i < (size_t)R * m->d; i++) pen += m->W[i] * m->W[i];
    free(Z); free(sw);
    return f + 0.5 * pen;
}

void rs_logreg_proba(const rs_logreg *m, const float *X, int n, double *P) {
    int K = m->n_classes, R = m->n_rows;
    double *Z = R == 1 ? P : P; /* decision values fit in P's first R columns per row */
    double *tmp = malloc(sizeof(double) * R);
    if (!tmp) return;
    rs_logreg_decision(m, X, n, Z); /* rows of stride R packed at the front */
    for (int i = n - 1; i >= 0; i--) { /* unpack back to front: stride R → stride K */
        memcpy(tmp, Z + (size_t)i * R, sizeof(double) * R);
        double *p = P + (size_t)i * K;
        if (R == 1) {
            double z = tmp[0];
            p[1] = z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
            p[0] = 1 - p[1];
        } else {
            double mx = tmp[0], se = 0;
            for (int k = 1; k < K; k++) mx = fmax(mx, tmp[k]);
            for (int k = 0; k < K; k++) se += exp(tmp[k] - mx);
            for (int k = 0; k < K; k++) p[k] = exp(tmp[k] - mx) / se;
        }
    }
    free(tmp);
}

void rs_logreg_predict(const rs_logreg *m, const float *X, int n, int *pred) {
    int R = m->n_rows;
    double *z = malloc(sizeof(double) * R);
    if (!z) return;
    for (int i = 0; i < n; i++) {
        rs_logreg_decision(m, X + (size_t)i * m->d, 1, z);
        if (R == 1) pred[i] = z[0] > 0;
        else {
            int best = 0;
            for (int k = 1; k < R; k++)
                if (z[k] > z[best]) best = k;
            pred[i] = best;
        }
    }
    free(z);
}

void rs_logreg_free(rs_logreg *m) {
    free(m->W);
    free(m->b);
    m->W = m->b = NULL;
}
