/* Limited-memory BFGS (Nocedal & Wright, Alg. 7.4/7.5) with a strong-Wolfe line search
 * (Alg. 3.5/3.6, cubic interpolation safeguarded by bisection). Everything in double:
 * the parity target is 1e-6 relative on the objective. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe.h"

static double dot(int n, const double *a, const double *b) {
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double maxabs(int n, const double *a) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* Minimiser of the cubic through (a, fa, da), (b, fb, db); NAN if it has none. */
static double cubic_min(double a, double fa, double da, double b, double fb, double db) {
    double d1 = da + db - 3 * (fa - fb) / (a - b);
    double disc = d1 * d1 - da * db;
    if (!(disc >= 0)) return NAN;
    double d2 = copysign(sqrt(disc), b - a);
    double den = db - da + 2 * d2;
    if (den == 0) return NAN;
    return b - (b - a) * (db + d2 - d1) / den;
}

typedef struct {
    int n;
    const double *x, *d;
    double *xt, *gt;
    rs_lbfgs_fg fg;
    void *ctx;
    int evals;
} ls_ctx;

/* phi(a) = f(x + a d); fills xt, gt and the directional derivative. */
static double ls_eval(ls_ctx *c, double a, double *dphi) {
    for (int i = 0; i < c->n; i++) c->xt[i] = c->x[i] + a * c->d[i];
    double f = c->fg(c->xt, c->gt, c->ctx);
    c->evals++;
    *dphi = dot(c->n, c->gt, c->d);
    return f;
}

/* Strong Wolfe search; on success xt/gt hold the accepted point and *fa its value. */
static int line_search(ls_ctx *c, double f0, double dphi0, double a1, int max_ls, double *fa_out) {
    const double c1 = 1e-4, c2 = 0.9;
    double a_prev = 0, f_prev = f0, dp_prev = dphi0, a = a1;
    double lo = 0, flo = 0, dlo = 0, hi = 0, fhi = 0, dhi = 0;
    int zoom = 0;
    while (c->evals < max_ls) {
        double dp, f = ls_eval(c, a, &dp);
        if (!isfinite(f) || f > f0 + c1 * a * dphi0 || (a_prev > 0 && f >= f_prev)) {
            lo = a_prev; flo = f_prev; dlo = dp_prev; hi = a; fhi = f; dhi = dp;
            zoom = 1;
            break;
        }
        if (fabs(dp) <= -c2 * dphi0) { *fa_out = f; return 0; }
        if (dp >= 0) {
            lo = a; flo = f; dlo = dp; hi = a_prev; fhi = f_prev; dhi = dp_prev;
            zoom = 1;
            break;
        }
        a_prev = a; f_prev = f; dp_prev = dp;
        a *= 4;
    }
    if (!zoom) return -1;
    while (c->evals < max_ls) {
        double lo_b = fmin(lo, hi), hi_b = fmax(lo, hi), w = hi_b - lo_b;
        double a_j = isfinite(fhi) ? cubic_min(lo, flo, dlo, hi, fhi, dhi) : NAN;
        if (!(a_j >= lo_b + 0.1 * w && a_j <= hi_b - 0.1 * w)) a_j = 0.5 * (lo + hi);
        if (w <= 1e-16 * fmax(1.0, hi_b)) break;
        double dp, f = ls_eval(c, a_j, &dp);
        if (!isfinite(f) || f > f0 + c1 * a_j * dphi0 || f >= flo) {
            hi = a_j; fhi = f; dhi = dp;
        } else {
            if (fabs(dp) <= -c2 * dphi0) { *fa_out = f; return 0; }
            if (dp * (hi - lo) >= 0) { hi = lo; fhi = flo; dhi = dlo; }
            lo = a_j; flo = f; dlo = dp;
        }
    }
    /* Budget spent: fall back to the best sufficient-decrease point, if any. */
    if (lo > 0 && flo < f0) {
        double dp, f = ls_eval(c, lo, &dp);
        if (isfinite(f) && f < f0) { *fa_out = f; return 0; }
    }
    return -1;
}

int rs_lbfgs(int n, double *x, rs_lbfgs_fg fg, rs_lbfgs_gmeasure gm, void *ctx,
             const rs_lbfgs_opts *opts, rs_lbfgs_result *res, rs_err *err) {
    int m = opts->m > 0 ? opts->m : 10;
    int max_iter = opts->max_iter > 0 ? opts->max_iter : 1000;
    int max_ls = opts->max_ls > 0 ? opts->max_ls : 50;
    size_t nn = (size_t)n;
    double *buf = malloc(sizeof(double) * (nn * (4 + 2 * (size_t)m) + 2 * (size_t)m));
    if (!buf) return rs_errk(err, RS_ENOMEM, "lbfgs: out of memory (%d parameters, history %d)", n, m);
    double *g = buf, *d = g + nn, *xt = d + nn, *gt = xt + nn;
    double *S = gt + nn, *Y = S + nn * m, *rho = Y + nn * m, *alpha = rho + m;
    memset(res, 0, sizeof *res);

    double f = fg(x, g, ctx);
    res->n_eval = 1;
    if (!isfinite(f)) {
        free(buf);
        return rs_errf(err, "lbfgs: objective is not finite at the starting point");
    }
    double gmeas = gm ? gm(x, g, ctx) : maxabs(n, g);
    int hist = 0, head = 0, it = 0, conv = gmeas <= opts->gtol ? 1 : 0;
    while (!conv && it < max_iter) {
        /* two-loop recursion: d = −H g */
        memcpy(d, g, sizeof(double) * nn);
        for (int k = 0; k < hist; k++) {
            int i = (head - 1 - k + m) % m;
            alpha[i] = rho[i] * dot(n, S + nn * i, d);
            for (size_t j = 0; j < nn; j++) d[j] -= alpha[i] * Y[nn * i + j];
        }
        if (hist > 0) {
            int i = (head - 1 + m) % m;
            double gamma = 1.0 / (rho[i] * dot(n, Y + nn * i, Y + nn * i));
            for (size_t j = 0; j < nn; j++) d[j] *= gamma;
        }
        for (int k = hist - 1; k >= 0; k--) {
            int i = (head - 1 - k + m) % m;
            double beta = rho[i] * dot(n, Y + nn * i, d);
            for (size_t j = 0; j < nn; j++) d[j] += S[nn * i + j] * (alpha[i] - beta);
        }
        for (size_t j = 0; j < nn; j++) d[j] = -d[j];
        double dg = dot(n, d, g);
        if (!(dg < 0)) { /* not a descent direction: restart from steepest descent */
            hist = 0;
            for (size_t j = 0; j < nn; j++) d[j] = -g[j];
            dg = -dot(n, g, g);
        }
        double a0 = hist > 0 ? 1.0 : fmin(1.0, 1.0 / sqrt(-dg));
        ls_ctx c = {n, x, d, xt, gt, fg, ctx, 0};
        double fnew;
        int ls = line_search(&c, f, dg, a0, max_ls, &fnew);
        res->n_eval += c.evals;
        if (ls) {
            if (hist > 0) { hist = 0; continue; } /* retry once along −g */
            break; /* no progress possible at this precision */
        }
        it++;
        double *s = S + nn * head, *y = Y + nn * head;
        for (size_t j = 0; j < nn; j++) {
            s[j] = xt[j] - x[j];
            y[j] = gt[j] - g[j];
        }
        double sy = dot(n, s, y);
        if (sy > 1e-16 * dot(n, y, y)) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % m;
            if (hist < m) hist++;
        }
        double fprev = f;
        memcpy(x, xt, sizeof(double) * nn);
        memcpy(g, gt, sizeof(double) * nn);
        f = fnew;
        gmeas = gm ? gm(x, g, ctx) : maxabs(n, g);
        if (gmeas <= opts->gtol) conv = 1;
        else if (fprev - f <= opts->ftol * fmax(fmax(fabs(fprev), fabs(f)), 1.0)) conv = 2;
    }
    res->f = f;
    res->gmeasure = gmeas;
    res->n_iter = it;
    res->converged = conv;
    free(buf);
    return 0;
}
