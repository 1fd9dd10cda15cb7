/* L2 logistic regression in scikit-learn's convention (see probe.h), solved by L-BFGS
 * on sklearn's scaled objective F = f / (C·Σs) = mean-weighted loss + ‖W‖²/(2C·Σs).
 *
 * Preconditioning (a change of variables, the objective is unchanged): the solver works
 * on V, b̃ with W_kj = r_j V_kj and b_k = b̃_k − Σ_j μ_j W_kj, i.e. on centred features
 * scaled by r_j = 1/sqrt(h·var_j + 1/(C·Σs)), the inverse square root of the Hessian's
 * diagonal at the start (h = curvature of the loss there). Anisotropic, uncentred
 * activations then converge in about as many iterations as standardised ones. The
 * stopping test is taken on the gradient in the original (W, b) coordinates, like
 * sklearn's gtol, so "converged" means the same thing in both.
 *
 * Each evaluation of F, ∇F is one blocked pass over the caller's f32 X (never copied);
 * at loose tolerances (≥ 1e-5) the products run in f32, as sklearn's do on f32 input,
 * and the final objective is recomputed in f64. See docs/probes.md. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe.h"

/* Hot loops are built for AVX-512, AVX2+FMA and baseline x86-64 and picked at load time
 * (GCC/clang ifunc); GCC may also fuse multiply-adds there (rounding-level differences). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RS_HOT_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("fp-contract=fast")))
#elif defined(__x86_64__) && defined(__clang__)
#define RS_HOT_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RS_HOT_KERNEL
#endif

rs_logreg_opts rs_logreg_defaults(void) {
    rs_logreg_opts o = {1.0, 0, 1e-4, 1000, 1, 1, 0, 0, RS_PENALTY_L2};
    return o;
}

typedef struct {
    int n, d, R, K;
    const int *y;
    const double *sw;   /* [n] sample weights / Σs */
    const float *X;     /* [n, d] original features (never copied) */
    const double *mu, *r; /* [d] */
    double l2;          /* 1 / (C Σs) */
    int nthreads;
    double *scratch;    /* per thread: G [R·d] | gb [R] | xt [BR·d] | z [BR·R] | loss [1] */
    size_t per_thread;
    int f32;            /* products in f32 (loose tolerances), sums across blocks in double */
    float *fscratch;    /* Vf [R·d], muf [d], rf [d], then per thread: Gf [R·d] | xtf [BR·d] */
    size_t fper_thread, fhead;
    int no_grad;        /* 1: objective only (the final exact f64 evaluation) */
    int centred;        /* f32 only: columns already centred (μ = 0): the f32 pass reads X rows
                           directly, with r folded into V and applied to ∇ after the pass */
    const double *g0;   /* non-NULL: F and ∇F at the starting point, known without a pass */
    double f0;
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

/* Class probabilities kept on the stack up to this many classes. */
#define RS_LOGREG_MAX_CLASSES_STACK 64

/* Rows per block: the transformed block (BR·d doubles) stays in L2 between the forward
 * and the backward product, so X is read from memory once per evaluation. */
#define BR 8

/* One block of rows i0..i0+nb: xt = (x − μ) ⊙ r, z = xt Vᵀ + b̃, residuals, then
 * G += residualsᵀ xt, gb += Σ residuals. Returns the block's weighted loss. */
RS_HOT_KERNEL
static double block_fg(const lr_ctx *c, int i0, int nb, const double *V, const double *bt,
                       double *G, double *gb, double *xt, double *z, const float *next) {
    int d = c->d, R = c->R;
    const double *mu = c->mu, *r = c->r;
    if (next) /* ask for the next block now; it arrives while this one computes */
        for (size_t o = 0; o < (size_t)BR * d * sizeof(float); o += 64) __builtin_prefetch((const char *)next + o, 0, 3);
    for (int i = 0; i < nb; i++) {
        const float *x = c->X + (size_t)(i0 + i) * d;
        double *t = xt + (size_t)i * d;
#pragma omp simd
        for (int j = 0; j < d; j++) t[j] = ((double)x[j] - mu[j]) * r[j];
    }
    for (int k = 0; k < R; k++) {
        const double *v = V + (size_t)k * d;
        if (nb == BR) { /* eight independent sums: one v load feeds eight FMAs, no latency chain */
            const double *t0 = xt, *t1 = t0 + d, *t2 = t1 + d, *t3 = t2 + d, *t4 = t3 + d, *t5 = t4 + d;
            const double *t6 = t5 + d, *t7 = t6 + d;
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3, s4, s5, s6, s7)
            for (int j = 0; j < d; j++) {
                double vj = v[j];
                s0 += t0[j] * vj; s1 += t1[j] * vj; s2 += t2[j] * vj; s3 += t3[j] * vj;
                s4 += t4[j] * vj; s5 += t5[j] * vj; s6 += t6[j] * vj; s7 += t7[j] * vj;
            }
            z[0 * R + k] = s0 + bt[k]; z[1 * R + k] = s1 + bt[k]; z[2 * R + k] = s2 + bt[k];
            z[3 * R + k] = s3 + bt[k]; z[4 * R + k] = s4 + bt[k]; z[5 * R + k] = s5 + bt[k];
            z[6 * R + k] = s6 + bt[k]; z[7 * R + k] = s7 + bt[k];
        } else {
            for (int i = 0; i < nb; i++) {
                const double *t = xt + (size_t)i * d;
                double s = 0;
#pragma omp simd reduction(+ : s)
                for (int j = 0; j < d; j++) s += t[j] * v[j];
                z[i * R + k] = s + bt[k];
            }
        }
    }
    double loss = loss_and_residual(nb, R, c->y + i0, c->sw + i0, z);
    if (c->no_grad) return loss;
    for (int k = 0; k < R; k++) {
        double *g = G + (size_t)k * d;
        for (int i = 0; i < nb; i++) gb[k] += z[i * R + k];
        if (nb == BR) {
            const double a0 = z[0 * R + k], a1 = z[1 * R + k], a2 = z[2 * R + k], a3 = z[3 * R + k];
            const double a4 = z[4 * R + k], a5 = z[5 * R + k], a6 = z[6 * R + k], a7 = z[7 * R + k];
            const double *t0 = xt, *t1 = t0 + d, *t2 = t1 + d, *t3 = t2 + d, *t4 = t3 + d, *t5 = t4 + d;
            const double *t6 = t5 + d, *t7 = t6 + d;
#pragma omp simd
            for (int j = 0; j < d; j++)
                g[j] += ((a0 * t0[j] + a1 * t1[j]) + (a2 * t2[j] + a3 * t3[j])) +
                        ((a4 * t4[j] + a5 * t5[j]) + (a6 * t6[j] + a7 * t7[j]));
        } else {
            for (int i = 0; i < nb; i++) {
                const double a = z[i * R + k], *t = xt + (size_t)i * d;
#pragma omp simd
                for (int j = 0; j < d; j++) g[j] += a * t[j];
            }
        }
    }
    return loss;
}

/* block_fg in single precision: the same steps on f32 copies of x, V, μ, r (what sklearn
 * does for f32 input); the caller flushes Gf into the double accumulator every few blocks. */
RS_HOT_KERNEL
static double block_fg_f32(const lr_ctx *c, int i0, int nb, const float *V, const double *bt,
                           float *G, double *gb, float *xt, double *z, const float *next) {
    int d = c->d, R = c->R;
    const float *mu = c->fscratch + (size_t)R * d, *r = mu + d;
    if (next)
        for (size_t o = 0; o < (size_t)BR * d * sizeof(float); o += 64) __builtin_prefetch((const char *)next + o, 0, 3);
    /* centred: the rows of X themselves (contiguous), else their standardised copies in xt */
    const float *tb = c->centred ? c->X + (size_t)i0 * d : xt;
    const float *t0 = tb, *t1 = t0 + d, *t2 = t1 + d, *t3 = t2 + d, *t4 = t3 + d, *t5 = t4 + d;
    const float *t6 = t5 + d, *t7 = t6 + d;
    /* Full blocks are register-tiled: 8 rows x 2 classes per sweep over j, so each loaded
     * x̃ element feeds two FMAs (and μ_j, r_j one load for eight rows). */
    if (c->centred) {
        /* nothing to transform: r is folded into V (see lr_fg) */
    } else if (nb == BR && R >= 2) {
        /* standardised inside the first class pair's dot-product sweep below */
    } else if (nb == BR) {
        const float *x0 = c->X + (size_t)i0 * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
        const float *x4 = x3 + d, *x5 = x4 + d, *x6 = x5 + d, *x7 = x6 + d;
        float *u0 = xt, *u1 = u0 + d, *u2 = u1 + d, *u3 = u2 + d, *u4 = u3 + d, *u5 = u4 + d;
        float *u6 = u5 + d, *u7 = u6 + d;
#pragma omp simd
        for (int j = 0; j < d; j++) {
            float m = mu[j], q = r[j];
            u0[j] = (x0[j] - m) * q; u1[j] = (x1[j] - m) * q; u2[j] = (x2[j] - m) * q; u3[j] = (x3[j] - m) * q;
            u4[j] = (x4[j] - m) * q; u5[j] = (x5[j] - m) * q; u6[j] = (x6[j] - m) * q; u7[j] = (x7[j] - m) * q;
        }
    } else {
        for (int i = 0; i < nb; i++) {
            const float *x = c->X + (size_t)(i0 + i) * d;
            float *t = xt + (size_t)i * d;
#pragma omp simd
            for (int j = 0; j < d; j++) t[j] = (x[j] - mu[j]) * r[j];
        }
    }
    int k = 0;
    if (nb == BR)
        for (; k + 2 <= R; k += 2) {
            const float *v = V + (size_t)k * d, *w = v + d;
            float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
            float b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0, b7 = 0;
            if (k == 0 && !c->centred) { /* first class pair: standardise while taking the dot products */
                const float *x0 = c->X + (size_t)i0 * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
                const float *x4 = x3 + d, *x5 = x4 + d, *x6 = x5 + d, *x7 = x6 + d;
                float *u0 = xt, *u1 = u0 + d, *u2 = u1 + d, *u3 = u2 + d, *u4 = u3 + d, *u5 = u4 + d;
                float *u6 = u5 + d, *u7 = u6 + d;
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7)
                for (int j = 0; j < d; j++) {
                    float m = mu[j], q = r[j], vj = v[j], wj = w[j], e;
                    e = (x0[j] - m) * q; u0[j] = e; a0 += e * vj; b0 += e * wj;
                    e = (x1[j] - m) * q; u1[j] = e; a1 += e * vj; b1 += e * wj;
                    e = (x2[j] - m) * q; u2[j] = e; a2 += e * vj; b2 += e * wj;
                    e = (x3[j] - m) * q; u3[j] = e; a3 += e * vj; b3 += e * wj;
                    e = (x4[j] - m) * q; u4[j] = e; a4 += e * vj; b4 += e * wj;
                    e = (x5[j] - m) * q; u5[j] = e; a5 += e * vj; b5 += e * wj;
                    e = (x6[j] - m) * q; u6[j] = e; a6 += e * vj; b6 += e * wj;
                    e = (x7[j] - m) * q; u7[j] = e; a7 += e * vj; b7 += e * wj;
                }
            } else {
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7)
                for (int j = 0; j < d; j++) {
                    float vj = v[j], wj = w[j], e;
                    e = t0[j]; a0 += e * vj; b0 += e * wj;
                    e = t1[j]; a1 += e * vj; b1 += e * wj;
                    e = t2[j]; a2 += e * vj; b2 += e * wj;
                    e = t3[j]; a3 += e * vj; b3 += e * wj;
                    e = t4[j]; a4 += e * vj; b4 += e * wj;
                    e = t5[j]; a5 += e * vj; b5 += e * wj;
                    e = t6[j]; a6 += e * vj; b6 += e * wj;
                    e = t7[j]; a7 += e * vj; b7 += e * wj;
                }
            }
            const float sa[BR] = {a0, a1, a2, a3, a4, a5, a6, a7}, sb[BR] = {b0, b1, b2, b3, b4, b5, b6, b7};
            for (int i = 0; i < BR; i++) {
                z[i * R + k] = sa[i] + bt[k];
                z[i * R + k + 1] = sb[i] + bt[k + 1];
            }
        }
    for (; k < R; k++) {
        const float *v = V + (size_t)k * d;
        for (int i = 0; i < nb; i++) {
            const float *t = tb + (size_t)i * d;
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (int j = 0; j < d; j++) s += t[j] * v[j];
            z[i * R + k] = s + bt[k];
        }
    }
    double loss = loss_and_residual(nb, R, c->y + i0, c->sw + i0, z);
    for (int kk = 0; kk < R; kk++)
        for (int i = 0; i < nb; i++) gb[kk] += z[i * R + kk];
    k = 0;
    if (nb == BR)
        for (; k + 2 <= R; k += 2) {
            float *g = G + (size_t)k * d, *h = g + d;
            const float p0 = (float)z[0 * R + k], p1 = (float)z[1 * R + k], p2 = (float)z[2 * R + k];
            const float p3 = (float)z[3 * R + k], p4 = (float)z[4 * R + k], p5 = (float)z[5 * R + k];
            const float p6 = (float)z[6 * R + k], p7 = (float)z[7 * R + k];
            const float q0 = (float)z[0 * R + k + 1], q1 = (float)z[1 * R + k + 1], q2 = (float)z[2 * R + k + 1];
            const float q3 = (float)z[3 * R + k + 1], q4 = (float)z[4 * R + k + 1], q5 = (float)z[5 * R + k + 1];
            const float q6 = (float)z[6 * R + k + 1], q7 = (float)z[7 * R + k + 1];
#pragma omp simd
            for (int j = 0; j < d; j++) {
                float e0 = t0[j], e1 = t1[j], e2 = t2[j], e3 = t3[j], e4 = t4[j], e5 = t5[j], e6 = t6[j], e7 = t7[j];
                g[j] += ((p0 * e0 + p1 * e1) + (p2 * e2 + p3 * e3)) + ((p4 * e4 + p5 * e5) + (p6 * e6 + p7 * e7));
                h[j] += ((q0 * e0 + q1 * e1) + (q2 * e2 + q3 * e3)) + ((q4 * e4 + q5 * e5) + (q6 * e6 + q7 * e7));
            }
        }
    for (; k < R; k++) {
        float *g = G + (size_t)k * d;
        for (int i = 0; i < nb; i++) {
            const float a = (float)z[i * R + k], *t = tb + (size_t)i * d;
#pragma omp simd
            for (int j = 0; j < d; j++) g[j] += a * t[j];
        }
    }
    return loss;
}

/* Blocks per flush of the f32 gradient accumulator into double. */
#define FLUSH 8

/* F and ∇F in the preconditioned coordinates (V, b̃): one fused pass over X, split over
 * threads by contiguous row ranges; per-thread partial sums are added in thread order. */
int rs_logreg_fit_threads(int n, int d, int K, const rs_logreg_opts *opts) {
    int R = K == 2 ? 1 : K, nblocks = (n + BR - 1) / BR;
    int t = 1;
    if ((double)n * d * R >= 262144.0) {
        t = omp_get_max_threads();
        if (opts && opts->threads > 0 && opts->threads < t) t = opts->threads;
    }
    if (t > nblocks) t = nblocks;
    return t < 1 ? 1 : t;
}

static double lr_fg(const double *th, double *g, void *vctx) {
    lr_ctx *c = vctx;
    if (c->g0) { /* the L-BFGS's first call is at the warm start, computed from the moments */
        memcpy(g, c->g0, sizeof(double) * ((size_t)c->R * c->d + c->R));
        c->g0 = NULL;
        return c->f0;
    }
    int n = c->n, d = c->d, R = c->R, T = c->nthreads;
    const double *V = th, *bt = th + (size_t)R * d;
    int nblocks = (n + BR - 1) / BR;
    if (c->f32)
        for (int k = 0; k < R; k++)
            for (int j = 0; j < d; j++)
                c->fscratch[(size_t)k * d + j] = (float)(c->centred ? V[(size_t)k * d + j] * c->r[j] : V[(size_t)k * d + j]);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = T > 1 ? omp_get_thread_num() : 0;
        double *G = c->scratch + c->per_thread * t, *gb = G + (size_t)R * d, *xt = gb + R;
        double *z = xt + (size_t)BR * d, *loss = z + BR * R;
        memset(G, 0, sizeof(double) * ((size_t)R * d + R));
        *loss = 0;
        int b0 = (int)((long long)nblocks * t / T), b1 = (int)((long long)nblocks * (t + 1) / T);
#define NEXT_OF(b) ((b) + 1 < b1 && ((b) + 2) * BR <= n ? c->X + (size_t)((b) + 1) * BR * d : NULL)
        if (!c->f32) {
            for (int b = b0; b < b1; b++) {
                int i0 = b * BR, nb = n - i0 < BR ? n - i0 : BR;
                *loss += block_fg(c, i0, nb, V, bt, G, gb, xt, z, NEXT_OF(b));
            }
        } else {
            float *Gf = c->fscratch + c->fhead + c->fper_thread * t, *xf = Gf + (size_t)R * d;
            memset(Gf, 0, sizeof(float) * R * d);
            for (int b = b0; b < b1; b++) {
                int i0 = b * BR, nb = n - i0 < BR ? n - i0 : BR;
                *loss += block_fg_f32(c, i0, nb, c->fscratch, bt, Gf, gb, xf, z, NEXT_OF(b));
                if ((b - b0) % FLUSH == FLUSH - 1 || b == b1 - 1) {
                    for (size_t i = 0; i < (size_t)R * d; i++) G[i] += Gf[i];
                    memset(Gf, 0, sizeof(float) * R * d);
                }
            }
        }
#undef NEXT_OF
    }
    double f = 0;
    double *G0 = c->scratch;
    for (int t = 0; t < T; t++) {
        const double *G = c->scratch + c->per_thread * t;
        f += G[(size_t)R * d + R + (size_t)BR * d + BR * R];
        if (t > 0)
            for (size_t i = 0; i < (size_t)R * d + R; i++) G0[i] += G[i];
    }
    double pen = 0;
    int scale = c->f32 && c->centred; /* the pass summed s·x, not s·x r */
    for (int k = 0; k < R; k++)
        for (int j = 0; j < d; j++) {
            double rv = c->r[j] * V[(size_t)k * d + j];
            pen += rv * rv;
            g[(size_t)k * d + j] = (scale ? G0[(size_t)k * d + j] * c->r[j] : G0[(size_t)k * d + j]) + c->l2 * c->r[j] * rv;
        }
    memcpy(g + (size_t)R * d, G0 + (size_t)R * d, sizeof(double) * R);
    return f + 0.5 * c->l2 * pen;
}

/* Column means and population variances of X [n, d] in one pass (shifted by the first row
 * against cancellation), rows split over T threads; partial sums added in thread order.
 * If A is non-NULL it also receives A[k, j] = Σ_{i: y_i = k} sw_i (x_ij − x_0j) (K rows), from
 * which the gradient at the warm start follows without another pass (see warm_start). */
static void column_moments(const float *X, int n, int d, int T, const int *y, const double *sw, int K,
                           double *A, double *mu, double *var) {
    int KA = A ? K : 0;
    size_t per = (size_t)(2 + KA) * d;
    double *acc = calloc(per * T, sizeof(double));
    if (!acc) { /* no room for per-thread sums: two plain passes */
        if (A) memset(A, 0, sizeof(double) * K * d);
        for (size_t i = 0; A && i < (size_t)n; i++)
            for (size_t j = 0; j < (size_t)d; j++) A[(size_t)y[i] * d + j] += sw[i] * ((double)X[i * d + j] - X[j]);
        memset(mu, 0, sizeof(double) * d);
        memset(var, 0, sizeof(double) * d);
        for (size_t i = 0; i < (size_t)n; i++)
            for (size_t j = 0; j < (size_t)d; j++) mu[j] += X[i * d + j];
        for (int j = 0; j < d; j++) mu[j] /= n;
        for (size_t i = 0; i < (size_t)n; i++)
            for (size_t j = 0; j < (size_t)d; j++) var[j] += (X[i * d + j] - mu[j]) * (X[i * d + j] - mu[j]);
        for (int j = 0; j < d; j++) var[j] /= n;
        return;
    }
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = T > 1 ? omp_get_thread_num() : 0;
        double *s1 = acc + per * t, *s2 = s1 + d;
        int i0 = (int)((long long)n * t / T), i1 = (int)((long long)n * (t + 1) / T);
        for (int i = i0; i < i1; i++) {
            const float *x = X + (size_t)i * d;
            if (KA) {
                double *sk = s2 + d + (size_t)y[i] * d, w = sw[i];
#pragma omp simd
                for (int j = 0; j < d; j++) {
                    double v = (double)x[j] - X[j];
                    s1[j] += v;
                    s2[j] += v * v;
                    sk[j] += w * v;
                }
            } else {
#pragma omp simd
                for (int j = 0; j < d; j++) {
                    double v = (double)x[j] - X[j];
                    s1[j] += v;
                    s2[j] += v * v;
                }
            }
        }
    }
    for (size_t e = 0; e < (size_t)KA * d; e++) {
        double a = 0;
        for (int t = 0; t < T; t++) a += acc[per * t + 2 * (size_t)d + e];
        A[e] = a;
    }
    for (int j = 0; j < d; j++) {
        double a = 0, b = 0;
        for (int t = 0; t < T; t++) { a += acc[per * t + j]; b += acc[per * t + d + j]; }
        double m = a / n;
        mu[j] = X[j] + m;
        var[j] = b / n - m * m;
        if (var[j] < 0) var[j] = 0;
    }
    free(acc);
}

/* F and ∇F at V = 0 with intercepts bt (the warm start), from the class sums A of
 * column_moments (shift x0 = first row of X) and the class weights W (Σ W = 1): every row
 * of class k has the same residual s_i (p − e_k), so ∇_V is a combination of class sums
 * G_kj = r_j (p_k T_j − C_kj), C_kj = Σ_{y_i=k} s_i (x_ij − μ_j) = A_kj − W_k (μ_j − x0_j),
 * T_j = Σ_k C_kj; ∇_b = p − W. Equal to an lr_fg pass up to rounding. */
static double warm_start_fg(const lr_ctx *c, const double *A, const float *X, const double *W, const double *bt,
                            double *g) {
    int d = c->d, R = c->R, K = c->K;
    double p[RS_LOGREG_MAX_CLASSES_STACK], f = 0;
    double *pk = K <= RS_LOGREG_MAX_CLASSES_STACK ? p : malloc(sizeof(double) * K);
    if (!pk) return NAN;
    if (R == 1) { /* binary: one logit z = bt[0] for class 1 */
        double z = bt[0];
        pk[1] = z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
        pk[0] = 1 - pk[1];
        f = W[1] * (log1pexp(z) - z) + W[0] * log1pexp(z);
    } else {
        double mx = bt[0], se = 0;
        for (int k = 1; k < K; k++) mx = fmax(mx, bt[k]);
        for (int k = 0; k < K; k++) se += exp(bt[k] - mx);
        double lse = mx + log(se);
        for (int k = 0; k < K; k++) {
            pk[k] = exp(bt[k] - lse);
            f += W[k] * (lse - bt[k]);
        }
    }
    for (int j = 0; j < d; j++) {
        double shift = c->mu[j] - (double)X[j], T = 0;
        for (int k = 0; k < K; k++) T += A[(size_t)k * d + j] - W[k] * shift;
        for (int k = 0; k < R; k++) {
            int cls = R == 1 ? 1 : k;
            double C = A[(size_t)cls * d + j] - W[cls] * shift;
            g[(size_t)k * d + j] = c->r[j] * (pk[cls] * T - C);
        }
    }
    for (int k = 0; k < R; k++) g[(size_t)R * d + k] = R == 1 ? pk[1] - W[1] : pk[k] - W[k];
    if (pk != p) free(pk);
    return f;
}

/* Test hook (env RS_LOGREG_VERIFY_WARM_START, set by test_probe_logreg): compare the
 * warm start's F and ∇F with a real pass; the gradient's scale is max|∇F|. */
static int verify_warm_start(lr_ctx *c, const double *th, size_t np, rs_err *err) {
    const double *g0 = c->g0;
    double f0 = c->f0, *g = malloc(sizeof(double) * np);
    if (!g) return rs_errk(err, RS_ENOMEM, "logreg: out of memory");
    c->g0 = NULL;
    double f = lr_fg(th, g, c), dg = 0, sg = 0;
    c->g0 = g0;
    for (size_t i = 0; i < np; i++) {
        dg = fmax(dg, fabs(g[i] - g0[i]));
        sg = fmax(sg, fabs(g[i]));
    }
    free(g);
    double tol = c->f32 ? 1e-5 : 1e-10;
    if (!(fabs(f - f0) <= tol * fabs(f) && dg <= tol * sg))
        return rs_errf(err, "logreg: warm start F %.17g vs pass %.17g, max|dG| %.3g vs max|G| %.3g", f0, f, dg, sg);
    return 0;
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

/* ---- L1 (lasso) penalty: accelerated proximal gradient ----
 * F(θ) = loss(θ) + λ Σ_kj r_j |V_kj| with λ = 1/(C Σs): the L1 norm of W = r ⊙ V in the
 * preconditioned coordinates (still separable, so its prox is a soft threshold at t λ r_j;
 * the intercepts b̃ are not penalised). FISTA (Beck & Teboulle 2009) with backtracking on the
 * step 1/L, the gradient restart of O'Donoghue & Candès (2015) and a step that may grow again
 * (L ← 0.9 L each iteration). Iterates are exactly sparse (soft thresholding). Stopping: the
 * minimum-norm subgradient of F at the iterate, in the original (W, b) coordinates, ≤ tol. */

/* λ Σ r_j |V_kj| */
static double l1_term(const lr_ctx *c, const double *th, double lam) {
    double s = 0;
    for (int k = 0; k < c->R; k++)
        for (int j = 0; j < c->d; j++) s += c->r[j] * fabs(th[(size_t)k * c->d + j]);
    return lam * s;
}

/* out = prox_{step·λ‖r⊙·‖₁}(u): soft threshold of the weights, intercepts unchanged. */
static void l1_prox(const lr_ctx *c, const double *u, double thr, double *out) {
    int R = c->R, d = c->d;
    for (int k = 0; k < R; k++)
        for (int j = 0; j < d; j++) {
            double v = u[(size_t)k * d + j], t = thr * c->r[j];
            out[(size_t)k * d + j] = v > t ? v - t : v < -t ? v + t : 0.0;
        }
    memcpy(out + (size_t)R * d, u + (size_t)R * d, sizeof(double) * R);
}

/* Minimum-norm subgradient of F at th (g = ∇loss there) into s, then measured in the
 * original coordinates (lr_gmeasure). */
static double l1_gmeasure(lr_ctx *c, const double *th, const double *g, double lam, double *s) {
    int R = c->R, d = c->d;
    for (int k = 0; k < R; k++)
        for (int j = 0; j < d; j++) {
            size_t i = (size_t)k * d + j;
            double t = lam * c->r[j];
            if (th[i] > 0) s[i] = g[i] + t;
            else if (th[i] < 0) s[i] = g[i] - t;
            else s[i] = g[i] > t ? g[i] - t : g[i] < -t ? g[i] + t : 0.0;
        }
    memcpy(s + (size_t)R * d, g + (size_t)R * d, sizeof(double) * R);
    return lr_gmeasure(th, s, c);
}

static int fista_l1(lr_ctx *c, double *x, size_t np, double lam, double tol, int max_iter, rs_lbfgs_result *res,
                    rs_err *err) {
    double *buf = malloc(sizeof(double) * np * 5);
    if (!buf) return rs_errk(err, RS_ENOMEM, "logreg: out of memory (%zu parameters)", np);
    double *y = buf, *gy = y + np, *xn = gy + np, *gn = xn + np, *s = gn + np;
    memset(res, 0, sizeof *res);
    memcpy(y, x, sizeof(double) * np);
    double fy = lr_fg(y, gy, c), L = 1.0, t = 1.0;
    res->n_eval = 1;
    if (!isfinite(fy)) {
        free(buf);
        return rs_errf(err, "logreg: objective is not finite at the starting point");
    }
    double fx = fy, gmeas = l1_gmeasure(c, x, gy, lam, s);
    int it = 0, conv = gmeas <= tol;
    while (!conv && it < max_iter) {
        double fn = NAN;
        for (;;) { /* backtracking: the quadratic model at y must bound the loss at xn */
            for (size_t i = 0; i < np; i++) xn[i] = y[i] - gy[i] / L;
            l1_prox(c, xn, lam / L, xn);
            fn = lr_fg(xn, gn, c);
            res->n_eval++;
            double lin = 0, sq = 0;
            for (size_t i = 0; i < np; i++) {
                double dd = xn[i] - y[i];
                lin += gy[i] * dd;
                sq += dd * dd;
            }
            /* slack: F at y may come from the warm start's class sums or an f32 pass */
            if (sq == 0 || (isfinite(fn) && fn <= fy + lin + 0.5 * L * sq + (c->f32 ? 1e-6 : 1e-13) * fabs(fy))) break;
            L *= 2;
            if (L > 1e30) break;
        }
        if (!(L <= 1e30)) break; /* no decrease possible at this precision */
        it++;
        gmeas = l1_gmeasure(c, xn, gn, lam, s);
        double Fn = fn + l1_term(c, xn, lam), Fx = fx + l1_term(c, x, lam);
        /* gradient restart: momentum that points uphill is dropped (also on an increase) */
        double dir = 0;
        for (size_t i = 0; i < np; i++) dir += (y[i] - xn[i]) * (xn[i] - x[i]);
        double tn = 0.5 * (1 + sqrt(1 + 4 * t * t));
        if (dir > 0 || Fn > Fx) tn = 1, t = 1;
        double beta = (t - 1) / tn;
        if (gmeas <= tol) {
            memcpy(x, xn, sizeof(double) * np);
            fx = fn;
            conv = 1;
            break;
        }
        if (beta == 0) {
            memcpy(y, xn, sizeof(double) * np);
            memcpy(gy, gn, sizeof(double) * np);
            fy = fn;
        } else {
            for (size_t i = 0; i < np; i++) y[i] = xn[i] + beta * (xn[i] - x[i]);
            fy = lr_fg(y, gy, c);
            res->n_eval++;
        }
        memcpy(x, xn, sizeof(double) * np);
        fx = fn;
        t = tn;
        L *= 0.9;
    }
    res->f = fx + l1_term(c, x, lam);
    res->gmeasure = gmeas;
    res->n_iter = it;
    res->converged = conv;
    free(buf);
    return 0;
}

/* s_i: 1, or n / (K n_{y_i}) for "balanced" (sklearn's compute_class_weight). */
static int sample_weights(const int *y, int n, int K, int balanced, double *sw) {
    int *cnt = calloc((size_t)K, sizeof(int));
    if (!cnt) return -1;
    for (int i = 0; i < n; i++) cnt[y[i]]++;
    for (int i = 0; i < n; i++)
        sw[i] = balanced ? (double)n / ((double)K * cnt[y[i]]) : 1.0;
    free(cnt);
    return 0;
}

int rs_logreg_fit(rs_logreg *m, const float *X, const int *y, int n, int d, int K,
                  const rs_logreg_opts *opts, rs_err *err) {
    memset(m, 0, sizeof *m);
    rs_logreg_opts o = opts ? *opts : rs_logreg_defaults();
    if (n < 2 || d < 1) return rs_errf(err, "logreg: need at least 2 rows and 1 feature (got %d x %d)", n, d);
    if (!(o.C > 0) || !isfinite(o.C)) return rs_errf(err, "logreg: C must be positive and finite (got %g)", o.C);
    if (o.penalty != RS_PENALTY_L2 && o.penalty != RS_PENALTY_L1)
        return rs_errf(err, "logreg: unknown penalty %d (0 = l2, 1 = l1)", o.penalty);
    if (rs_check_labels(y, n, K, err)) return rs_err_prefix(err, "logreg");
    /* with preconditioning the moments pass below doubles as the finiteness check (a
     * NaN/Inf makes its column sums non-finite); otherwise check here */
    if (!o.precondition && rs_check_finite(X, n, d, err)) return rs_err_prefix(err, "logreg");
    int *cnt = calloc((size_t)K, sizeof(int));
    if (!cnt) return rs_errk(err, RS_ENOMEM, "logreg: out of memory");
    for (int i = 0; i < n; i++) cnt[y[i]]++;
    for (int k = 0; k < K; k++)
        if (!cnt[k]) {
            free(cnt);
            return rs_errf(err, "logreg: class %d has no training rows (K=%d)", k, K);
        }
    free(cnt);

    int R = K == 2 ? 1 : K;
    size_t np = (size_t)R * d + R;
    lr_ctx c;
    memset(&c, 0, sizeof c);
    c.n = n; c.d = d; c.R = R; c.K = K; c.y = y; c.X = X;
    /* threads only pay off on large problems (a parallel region costs microseconds) */
    c.nthreads = rs_logreg_fit_threads(n, d, K, &o);
    c.per_thread = ((size_t)R * d + R + (size_t)BR * d + BR * R + 1 + 7) & ~(size_t)7; /* 64-byte strides */
    double *sw = malloc(sizeof(double) * n), *mu = calloc(d, sizeof(double));
    double *r = malloc(sizeof(double) * d), *th = calloc(np, sizeof(double)), *A = NULL, *g0 = NULL;
    c.scratch = aligned_alloc(64, sizeof(double) * c.per_thread * c.nthreads);
    c.f32 = o.tol >= 1e-5 && o.precision != 64;
    if (c.f32) {
        c.fper_thread = ((size_t)R * d + (size_t)BR * d + 15) & ~(size_t)15;
        c.fhead = ((size_t)R * d + 2 * (size_t)d + 15) & ~(size_t)15;
        c.fscratch = aligned_alloc(64, sizeof(float) * (c.fhead + c.fper_thread * c.nthreads));
        if (!c.fscratch) c.f32 = 0;
    }
    m->W = calloc((size_t)R * d, sizeof(double));
    m->b = calloc(R, sizeof(double));
    if (!sw || !mu || !r || !th || !c.scratch || !m->W || !m->b || sample_weights(y, n, K, o.balanced, sw)) {
        free(sw); free(mu); free(r); free(th); free(c.scratch); free(c.fscratch);
        rs_logreg_free(m);
        return rs_errk(err, RS_ENOMEM, "logreg: out of memory for %d x %d features", n, d);
    }
    double S = 0;
    for (int i = 0; i < n; i++) S += sw[i];
    for (int i = 0; i < n; i++) sw[i] /= S;
    int l1 = o.penalty == RS_PENALTY_L1;
    double lam = 1.0 / (o.C * S); /* the penalty's weight in the scaled objective */
    c.l2 = l1 ? 0.0 : lam;
    if (o.precondition) {
        double h = R == 1 ? 0.25 : (1.0 / K) * (1 - 1.0 / K);
        /* class sums for the warm start's gradient (K x d doubles; optional) */
        A = o.warm_intercept ? malloc(sizeof(double) * K * (size_t)d) : NULL;
        column_moments(X, n, d, c.nthreads, y, sw, K, A, mu, r);
        /* Already-centred columns (e.g. after StandardScaler): take μ = 0, which the
         * objective does not depend on, so the f32 pass can skip standardising X. */
        if (c.f32) {
            int centred = 1;
            for (int j = 0; j < d && centred; j++) centred = fabs(mu[j]) <= 1e-3 * sqrt(r[j]);
            if (centred) {
                memset(mu, 0, sizeof(double) * d);
                c.centred = 1;
            }
        }
        int finite = 1;
        for (int j = 0; j < d; j++) finite &= isfinite(mu[j]) && isfinite(r[j]);
        if (!finite) { /* find the offending value for the message */
            rs_check_finite(X, n, d, err);
            free(sw); free(mu); free(r); free(th); free(c.scratch); free(c.fscratch); free(A);
            rs_logreg_free(m);
            return rs_err_prefix(err, "logreg");
        }
        for (int j = 0; j < d; j++) r[j] = 1.0 / sqrt(h * r[j] + lam); /* L1: λ only bounds r */
    } else {
        for (int j = 0; j < d; j++) r[j] = 1.0;
    }
    c.sw = sw; c.mu = mu; c.r = r;
    if (c.f32)
        for (int j = 0; j < d; j++) {
            c.fscratch[(size_t)R * d + j] = (float)mu[j];
            c.fscratch[(size_t)R * d + d + j] = (float)r[j];
        }
    /* start at the intercept-only optimum (W = 0, b = log weighted class priors): saves the
     * first iterations that would otherwise only learn the class balance */
    if (o.warm_intercept) {
        double *pi = calloc(K, sizeof(double));
        if (pi) {
            for (int i = 0; i < n; i++) pi[y[i]] += sw[i];
            if (R == 1) th[(size_t)R * d] = log(pi[1] / pi[0]);
            else {
                double mean = 0;
                for (int k = 0; k < K; k++) mean += log(pi[k]) / K;
                for (int k = 0; k < K; k++) th[(size_t)R * d + k] = log(pi[k]) - mean;
            }
            /* F and ∇F at this start come from the class sums (saves the first pass) */
            if (A && (g0 = malloc(sizeof(double) * np)) != NULL) {
                c.f0 = warm_start_fg(&c, A, X, pi, th + (size_t)R * d, g0);
                c.g0 = g0;
                if (getenv("RS_LOGREG_VERIFY_WARM_START") && verify_warm_start(&c, th, np, err)) {
                    free(pi);
                    free(sw); free(mu); free(r); free(th); free(c.scratch); free(c.fscratch); free(A); free(g0);
                    rs_logreg_free(m);
                    return -1;
                }
            }
            free(pi);
        }
    }

    rs_lbfgs_opts lo = {10, o.max_iter, o.tol, 64 * 2.220446049250313e-16, 50};
    rs_lbfgs_result res;
    int rc = l1 ? fista_l1(&c, th, np, lam, o.tol, o.max_iter, &res, err)
                : rs_lbfgs((int)np, th, lr_fg, lr_gmeasure, &c, &lo, &res, err);
    if (rc == 0 && c.f32) { /* report the objective of the solution exactly (one f64 pass) */
        double *gt = malloc(sizeof(double) * np);
        if (gt) {
            c.f32 = 0;
            c.no_grad = 1;
            res.f = lr_fg(th, gt, &c) + (l1 ? l1_term(&c, th, lam) : 0.0);
            free(gt);
        }
    }
    if (rc == 0) {
        m->d = d; m->n_classes = K; m->n_rows = R; m->C = o.C; m->balanced = o.balanced; m->penalty = l1;
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
    free(sw); free(mu); free(r); free(th); free(c.scratch); free(c.fscratch); free(A); free(g0);
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
    if (sample_weights(y, n, m->n_classes, m->balanced, sw)) { free(Z); free(sw); return NAN; }
    double f = m->C * loss_and_residual(n, R, y, sw, Z), pen = 0;
    for (size_t i = 0; i < (size_t)R * m->d; i++) pen += m->penalty == RS_PENALTY_L1 ? fabs(m->W[i]) : 0.5 * m->W[i] * m->W[i];
    free(Z); free(sw);
    return f + pen;
}

/* No allocation (these cannot fail): an unchecked scratch buffer here once left P and pred
 * unset when memory ran out (tests/test_fault_pipeline.c). */
void rs_logreg_proba(const rs_logreg *m, const float *X, int n, double *P) {
    int K = m->n_classes, R = m->n_rows;
    rs_logreg_decision(m, X, n, P); /* rows of stride R packed at the front */
    for (int i = n - 1; i >= 0; i--) { /* unpack back to front: stride R → stride K (K ≥ R, rows < i untouched) */
        double *p = P + (size_t)i * K;
        memmove(p, P + (size_t)i * R, sizeof(double) * R);
        if (R == 1) {
            double z = p[0];
            p[1] = z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
            p[0] = 1 - p[1];
        } else {
            double mx = p[0], se = 0;
            for (int k = 1; k < K; k++) mx = fmax(mx, p[k]);
            for (int k = 0; k < K; k++) se += exp(p[k] - mx);
            for (int k = 0; k < K; k++) p[k] = exp(p[k] - mx) / se;
        }
    }
}

void rs_logreg_predict(const rs_logreg *m, const float *X, int n, int *pred) {
    int R = m->n_rows, d = m->d;
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)i * d;
        double zbest = 0;
        int best = 0;
        for (int k = 0; k < R; k++) { /* the decision value of rs_logreg_decision */
            double z = m->b[k];
            const double *w = m->W + (size_t)k * d;
            for (int j = 0; j < d; j++) z += w[j] * x[j];
            if (k == 0 || z > zbest) {
                zbest = z;
                best = k;
            }
        }
        pred[i] = R == 1 ? zbest > 0 : best;
    }
}

void rs_logreg_free(rs_logreg *m) {
    free(m->W);
    free(m->b);
    m->W = m->b = NULL;
}
