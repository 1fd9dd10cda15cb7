/* JumpReLU SAE training (sae_train.h, docs/sae-training.md). Dense float32 BLAS for the five
 * products of a step (pre, x̂, ∂f, ∂W_dec, ∂W_enc); the straight-through terms per entry. */
#include "reprshift/sae_train.h"
#include "sae/train_common.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int sae_jr_new(sae_jr_model **out, int d, int m, rs_err *err) {
    *out = NULL;
    if (d < 1 || m < 1) return rs_errf(err, "JumpReLU SAE: bad sizes (d_in %d, d_sae %d)", d, m);
    sae_jr_model *s = calloc(1, sizeof *s);
    size_t md = (size_t)m * d;
    if (s) s->params = calloc(2 * md + 2 * (size_t)m + (size_t)d, sizeof *s->params);
    if (!s || !s->params) {
        free(s);
        return rs_errk(err, RS_ENOMEM, "JumpReLU SAE: out of memory (d_in %d, d_sae %d)", d, m);
    }
    s->d_in = d, s->d_sae = m;
    s->n_params = 2 * md + 2 * (size_t)m + (size_t)d;
    s->W_enc = s->params;
    s->b_enc = s->W_enc + md;
    s->W_dec = s->b_enc + m;
    s->b_dec = s->W_dec + md;
    s->log_threshold = s->b_dec + d;
    *out = s;
    return 0;
}

void sae_jr_free(sae_jr_model *m) {
    if (!m) return;
    free(m->params);
    free(m);
}

static double sparse_max = 0.125;
void sae_jr_set_sparse_max(double f) { sparse_max = f; }

/* Per entry after pre: the straight-through θ terms (rectangle kernel) and ∂pre = ∂f·H. */
static inline void theta_terms(float pre, float th, float gf, float inv_eps, float lam_b, float *glt, float *gpre) {
    float u = (pre - th) * inv_eps;
    if (u > -0.5f && u < 0.5f) *glt += -(th * inv_eps) * gf - lam_b * inv_eps;
    *gpre = pre > th ? gf : 0.0f; /* the L0 step passes nothing to pre */
}

int sae_jr_loss_grad(const sae_jr_model *M, const float *x, int B, float lambda, float eps, float *grad, double *mse,
                     double *l0, int64_t *active, rs_err *err) {
    int d = M->d_in, m = M->d_sae;
    if (B < 1 || !(eps > 0)) return rs_errf(err, "JumpReLU SAE: bad batch %d or bandwidth %g", B, eps);
    size_t md = (size_t)m * d;
    float *pre = malloc((size_t)B * m * sizeof *pre), *F = malloc((size_t)B * m * sizeof *F),
          *Ge = malloc((size_t)B * d * sizeof *Ge), *th = malloc((size_t)m * sizeof *th);
    if (!pre || !F || !Ge || !th) {
        free(pre), free(F), free(Ge), free(th);
        return rs_errk(err, RS_ENOMEM, "JumpReLU SAE: out of memory (batch %d, d_sae %d)", B, m);
    }
    float *gWe = grad, *gbe = grad + md, *gWd = gbe + m, *gbd = gWd + md, *glt = gbd + d;
    for (int i = 0; i < m; i++) th[i] = expf(M->log_threshold[i]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, m, d, 1.0f, x, d, M->W_enc, m, 0.0f, pre, m);
    double l0s = 0;
    int64_t n_on = 0, n_ker = 0;
    const float inv_eps = 1.0f / eps, lam_b = lambda / B;
    for (int r = 0; r < B; r++)
        for (int i = 0; i < m; i++) {
            size_t j = (size_t)r * m + i;
            pre[j] += M->b_enc[i];
            int on = pre[j] > th[i];
            float u = (pre[j] - th[i]) * inv_eps;
            F[j] = on ? pre[j] : 0.0f;
            l0s += on;
            n_on += on;
            n_ker += !on && u > -0.5f && u < 0.5f;
            if (active && on) active[i]++;
        }
    *l0 = l0s / B;
    /* sparse path: only the active and in-kernel entries touch W_dec / W_enc rows */
    int sparse = (double)(n_on + n_ker) <= sparse_max * (double)B * m;
    double se = 0;
    const float g2 = 2.0f / B;
    memset(gbd, 0, (size_t)d * sizeof *gbd);
    memset(gbe, 0, (size_t)m * sizeof *gbe);
    memset(glt, 0, (size_t)m * sizeof *glt);
    if (!sparse) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, d, m, 1.0f, F, m, M->W_dec, d, 0.0f, Ge, d);
    } else {
        for (int r = 0; r < B; r++) {
            float *e = Ge + (size_t)r * d;
            memset(e, 0, (size_t)d * sizeof *e);
            for (int i = 0; i < m; i++)
                if (pre[(size_t)r * m + i] > th[i])
                    cblas_saxpy(d, F[(size_t)r * m + i], M->W_dec + (size_t)i * d, 1, e, 1);
        }
    }
    for (int r = 0; r < B; r++)
        for (int k = 0; k < d; k++) {
            size_t j = (size_t)r * d + k;
            float e = Ge[j] + M->b_dec[k] - x[j];
            se += (double)e * e;
            Ge[j] = g2 * e;
            gbd[k] += Ge[j];
        }
    *mse = se / B;
    if (!sparse) {
        /* ∂W_dec = Fᵀ·∂x̂ ; ∂f = ∂x̂·W_decᵀ ; ∂W_enc = xᵀ·∂pre */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, d, B, 1.0f, F, m, Ge, d, 0.0f, gWd, d);
        float *gF = malloc((size_t)B * m * sizeof *gF);
        if (!gF) {
            free(pre), free(F), free(Ge), free(th);
            return rs_errk(err, RS_ENOMEM, "JumpReLU SAE: out of memory");
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, m, d, 1.0f, Ge, d, M->W_dec, d, 0.0f, gF, m);
        for (int r = 0; r < B; r++)
            for (int i = 0; i < m; i++) {
                size_t j = (size_t)r * m + i;
                theta_terms(pre[j], th[i], gF[j], inv_eps, lam_b, &glt[i], &gF[j]);
                gbe[i] += gF[j];
            }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, m, B, 1.0f, x, d, gF, m, 0.0f, gWe, m);
        free(gF);
    } else {
        memset(gWd, 0, md * sizeof *gWd);
        memset(gWe, 0, md * sizeof *gWe);
        for (int r = 0; r < B; r++) {
            const float *e = Ge + (size_t)r * d, *xr = x + (size_t)r * d;
            for (int i = 0; i < m; i++) {
                size_t j = (size_t)r * m + i;
                float u = (pre[j] - th[i]) * inv_eps;
                int on = pre[j] > th[i], ker = u > -0.5f && u < 0.5f;
                if (!on && !ker) continue; /* ∂pre and the θ terms are 0 there */
                const float *wd = M->W_dec + (size_t)i * d;
                float gf = cblas_sdot(d, e, 1, wd, 1), gp;
                theta_terms(pre[j], th[i], gf, inv_eps, lam_b, &glt[i], &gp);
                if (!on) continue;
                cblas_saxpy(d, F[j], e, 1, gWd + (size_t)i * d, 1);
                gbe[i] += gp;
                cblas_saxpy(d, gp, xr, 1, gWe + i, m);
            }
        }
    }
    for (int i = 0; i < m; i++) glt[i] *= th[i]; /* θ = exp(log_threshold) */
    free(pre), free(F), free(Ge), free(th);
    return 0;
}

void sae_jr_project_grad(const sae_jr_model *M, float *grad) {
    int d = M->d_in, m = M->d_sae;
    float *gWd = grad + (size_t)m * d + m;
    for (int i = 0; i < m; i++) {
        const float *w = M->W_dec + (size_t)i * d;
        float *g = gWd + (size_t)i * d;
        double ww = 0, wg = 0;
        for (int k = 0; k < d; k++) ww += (double)w[k] * w[k], wg += (double)w[k] * g[k];
        if (ww > 0)
            for (int k = 0; k < d; k++) g[k] -= (float)(wg / ww) * w[k];
    }
}

void sae_jr_renorm(sae_jr_model *M) {
    int d = M->d_in, m = M->d_sae;
    for (int i = 0; i < m; i++) {
        float *w = M->W_dec + (size_t)i * d;
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)w[k] * w[k];
        if (s > 0)
            for (int k = 0; k < d; k++) w[k] = (float)(w[k] / sqrt(s));
    }
}

void sae_jr_opts_default(sae_jr_opts *o) {
    memset(o, 0, sizeof *o);
    o->steps = 2000;
    o->batch = 256;
    o->lr = 1e-3f;
    o->beta1 = 0.0f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->lambda = 1e-2f;
    o->bandwidth = 0.05f;
    o->init_threshold = 0.05f;
    o->lambda_warmup = 0;
    o->seed = 1;
}

int sae_train_jumprelu(const float *x, int64_t n, int d, const sae_jr_opts *o, rs_sae **out, sae_train_report *rep,
                       sae_jr_model **model_out, float *scale_out, rs_err *err) {
    *out = NULL;
    if (model_out) *model_out = NULL;
    int m = o->d_sae, B = o->batch;
    if (n < 1 || d < 1 || m < 1 || B < 1 || o->steps < 1)
        return rs_errf(err, "JumpReLU SAE training: bad sizes (n %lld, d_in %d, d_sae %d, batch %d, steps %lld)",
                       (long long)n, d, m, B, (long long)o->steps);
    if (!(o->lambda >= 0) || !(o->bandwidth > 0) || !(o->init_threshold > 0) || !(o->lr > 0))
        return rs_errf(err, "JumpReLU SAE training: need lambda >= 0, bandwidth > 0, initial threshold > 0, lr > 0 "
                            "(got %g, %g, %g, %g)", o->lambda, o->bandwidth, o->init_threshold, o->lr);
    double ms = 0, *mu = calloc((size_t)d, sizeof *mu);
    if (!mu) return rs_errk(err, RS_ENOMEM, "JumpReLU SAE training: out of memory");
    for (int64_t r = 0; r < n; r++)
        for (int k = 0; k < d; k++) {
            double v = x[(size_t)r * d + k];
            if (!isfinite(v)) {
                free(mu);
                return rs_errf(err, "JumpReLU SAE training: activation row %lld is not finite", (long long)r);
            }
            ms += v * v, mu[k] += v;
        }
    ms /= n;
    double tv = 0;
    for (int k = 0; k < d; k++) mu[k] /= n;
    for (int64_t r = 0; r < n; r++)
        for (int k = 0; k < d; k++) tv += (x[(size_t)r * d + k] - mu[k]) * (x[(size_t)r * d + k] - mu[k]);
    tv /= n;
    if (!(ms > 0)) {
        free(mu);
        return rs_errf(err, "JumpReLU SAE training: all activations are zero");
    }
    float s = (float)(1 / sqrt(ms)); /* mean ‖s·x‖² = 1 */
    sae_jr_model *M = NULL;
    if (sae_jr_new(&M, d, m, err)) {
        free(mu);
        return -1;
    }
    size_t np = M->n_params, md = (size_t)m * d;
    float *G = calloc(np, sizeof *G), *M1 = calloc(np, sizeof *M1), *M2 = calloc(np, sizeof *M2),
          *xb = malloc((size_t)B * d * sizeof *xb);
    double *mse_h = calloc((size_t)o->steps, sizeof *mse_h), *l0_h = calloc((size_t)o->steps, sizeof *l0_h);
    int64_t *act = calloc((size_t)m, sizeof *act);
    int rc = -1;
    if (!G || !M1 || !M2 || !xb || !mse_h || !l0_h || !act) {
        rs_errk(err, RS_ENOMEM, "JumpReLU SAE training: out of memory (d_in %d, d_sae %d)", d, m);
        goto done;
    }
    uint64_t rng = o->seed;
    for (int i = 0; i < m; i++) /* unit-norm random decoder rows, W_enc = W_decᵀ, b_enc 0 */
        for (int k = 0; k < d; k++) M->W_dec[(size_t)i * d + k] = rs_train_gauss(&rng);
    sae_jr_renorm(M);
    for (int i = 0; i < m; i++)
        for (int k = 0; k < d; k++) M->W_enc[(size_t)k * m + i] = M->W_dec[(size_t)i * d + k];
    for (int k = 0; k < d; k++) M->b_dec[k] = (float)(s * mu[k]); /* the scaled data mean */
    for (int i = 0; i < m; i++) M->log_threshold[i] = logf(o->init_threshold);
    int64_t tail = o->steps / 10 > 0 ? o->steps / 10 : 1;
    for (int64_t step = 0; step < o->steps; step++) {
        for (int r = 0; r < B; r++) {
            int64_t row = (int64_t)(rs_train_next_u64(&rng) % (uint64_t)n);
            for (int k = 0; k < d; k++) xb[(size_t)r * d + k] = s * x[(size_t)row * d + k];
        }
        float lam = o->lambda;
        if (o->lambda_warmup > 0 && step < o->lambda_warmup) lam *= (float)(step + 1) / (float)o->lambda_warmup;
        double mse, l0;
        if (sae_jr_loss_grad(M, xb, B, lam, o->bandwidth, G, &mse, &l0, step >= o->steps - tail ? act : NULL, err))
            goto done;
        mse_h[step] = mse / ((double)s * s);
        l0_h[step] = l0;
        sae_jr_project_grad(M, G);
        rs_adam_update_f32(M->params, G, M1, M2, np, o->lr, o->beta1, o->beta2, o->eps, step + 1);
        sae_jr_renorm(M);
        if (o->log && o->log_every > 0 && (step + 1) % o->log_every == 0)
            fprintf(o->log, "sae train (jumprelu): step %lld/%lld mse %.6g fvu %.4f l0 %.2f\n", (long long)(step + 1),
                    (long long)o->steps, mse_h[step], tv > 0 ? mse_h[step] / tv : NAN, l0);
    }
    /* fold the scalar: pre is unchanged for raw x, x̂ comes out in raw units */
    float *We = malloc(md * sizeof *We), *Wd = malloc(md * sizeof *Wd), *bd = malloc((size_t)d * sizeof *bd),
          *th = malloc((size_t)m * sizeof *th);
    if (!We || !Wd || !bd || !th) {
        free(We), free(Wd), free(bd), free(th);
        rs_errk(err, RS_ENOMEM, "JumpReLU SAE training: out of memory");
        goto done;
    }
    for (size_t j = 0; j < md; j++) We[j] = M->W_enc[j] * s, Wd[j] = M->W_dec[j] / s;
    for (int k = 0; k < d; k++) bd[k] = M->b_dec[k] / s;
    for (int i = 0; i < m; i++) th[i] = expf(M->log_threshold[i]);
    rs_sae *sae = NULL;
    rc = sae_new(&sae, SAE_ARCH_JUMPRELU, d, m, We, Wd, M->b_enc, bd, th, err);
    free(We), free(Wd), free(bd), free(th);
    if (rc) goto done;
    sae->apply_b_dec_to_input = 0;
    if (rep) {
        double a = 0, b = 0;
        for (int64_t i = o->steps - tail; i < o->steps; i++) a += mse_h[i], b += l0_h[i];
        rep->final_mse = a / tail;
        rep->final_fvu = tv > 0 ? rep->final_mse / tv : NAN;
        rep->final_l0 = b / tail;
        rep->dead_at_end = 0;
        for (int i = 0; i < m; i++) rep->dead_at_end += act[i] == 0;
    }
    *out = sae;
    if (scale_out) *scale_out = s;
    if (model_out) *model_out = M, M = NULL;
    rc = 0;
done:
    sae_jr_free(M);
    free(mu), free(G), free(M1), free(M2), free(xb), free(mse_h), free(l0_h), free(act);
    return rc;
}
