/* TopK SAE training (see sae_train.h). The encoder is kept transposed during training
 * (W_encT [d_sae, d_in]) so a feature's encoder and decoder rows are both contiguous: the
 * backward pass only touches the k active rows per sample. Gradients are accumulated into
 * dense buffers and Adam updates every parameter each step (simple and exact). */
#include "reprshift/sae_train.h"
#include "sae/train_common.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sae_train_opts_default(sae_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->k = 32;
    o->steps = 2000;
    o->batch = 256;
    o->lr = 1e-3f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->aux_k = -1; /* → 2k */
    o->aux_coef = 1.0f / 32;
    o->dead_after = 100000;
    o->seed = 1;
    o->log_every = 0;
}

/* Indices of the top kk entries of v[0..m) restricted to allow (NULL = all); returns count. */
static int top_indices(const float *v, int m, int kk, const uint8_t *allow, int *idx) {
    int n = 0;
    for (int f = 0; f < m; f++) {
        if (allow && !allow[f]) continue;
        if (n < kk) {
            int p = n++;
            while (p > 0 && v[idx[p - 1]] < v[f]) {
                idx[p] = idx[p - 1];
                p--;
            }
            idx[p] = f;
        } else if (v[f] > v[idx[kk - 1]]) {
            int p = kk - 1;
            while (p > 0 && v[idx[p - 1]] < v[f]) {
                idx[p] = idx[p - 1];
                p--;
            }
            idx[p] = f;
        }
    }
    return n;
}

int sae_train_topk(const float *x, int64_t n, int d, const sae_train_opts *o, rs_sae **out, sae_train_report *rep,
                   rs_err *err) {
    *out = NULL;
    int m = o->d_sae, k = o->k, B = o->batch;
    int aux_k = o->aux_k < 0 ? 2 * k : o->aux_k;
    if (n < 1 || d < 1 || m < 1 || k < 1 || k > m || B < 1 || o->steps < 1 || aux_k > m)
        return rs_errf(err, "SAE training: bad sizes (n %lld, d_in %d, d_sae %d, k %d, batch %d)", (long long)n, d, m, k, B);
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(x[i])) return rs_errf(err, "SAE training: activation row %lld is not finite", (long long)(i / d));
    size_t md = (size_t)m * d;
    /* parameters, gradients, Adam moments: [W_encT, W_dec] (md each), b_enc (m), b_dec (d) */
    size_t np = 2 * md + (size_t)m + (size_t)d;
    float *P = calloc(np, sizeof *P), *Gr = calloc(np, sizeof *Gr), *M1 = calloc(np, sizeof *M1), *M2 = calloc(np, sizeof *M2);
    float *xb = malloc((size_t)B * d * sizeof *xb), *xp = malloc((size_t)B * d * sizeof *xp);
    float *pre = malloc((size_t)B * m * sizeof *pre), *e = malloc((size_t)d * sizeof *e), *ea = malloc((size_t)d * sizeof *ea);
    int *idx = malloc((size_t)(k > aux_k ? k : aux_k) * sizeof *idx);
    int64_t *last = calloc((size_t)m, sizeof *last);
    uint8_t *dead = malloc((size_t)m);
    double *loss_hist = calloc((size_t)o->steps, sizeof *loss_hist);
    int rc = -1;
    if (!P || !Gr || !M1 || !M2 || !xb || !xp || !pre || !e || !ea || !idx || !last || !dead || !loss_hist) {
        rs_errk(err, RS_ENOMEM, "SAE training: out of memory (d_in %d, d_sae %d)", d, m);
        goto done;
    }
    float *WeT = P, *Wd = P + md, *be = P + 2 * md, *bd = P + 2 * md + m;
    float *gWeT = Gr, *gWd = Gr + md, *gbe = Gr + 2 * md, *gbd = Gr + 2 * md + m;
    uint64_t rng = o->seed;
    for (int f = 0; f < m; f++) {
        float *w = Wd + (size_t)f * d;
        double s = 0;
        for (int i = 0; i < d; i++) {
            w[i] = rs_train_gauss(&rng);
            s += (double)w[i] * w[i];
        }
        for (int i = 0; i < d; i++) w[i] = (float)(w[i] / sqrt(s));
    }
    memcpy(WeT, Wd, md * sizeof *WeT);
    /* b_dec starts at the data mean (a cheap stand-in for the geometric median) */
    double tv = 0;
    {
        double *mu = calloc((size_t)d, sizeof *mu);
        if (!mu) {
            rs_errk(err, RS_ENOMEM, "SAE training: out of memory");
            goto done;
        }
        for (int64_t r = 0; r < n; r++)
            for (int i = 0; i < d; i++) mu[i] += x[(size_t)r * d + i];
        for (int i = 0; i < d; i++) bd[i] = (float)(mu[i] / n);
        for (int64_t r = 0; r < n; r++)
            for (int i = 0; i < d; i++) {
                double c = x[(size_t)r * d + i] - mu[i] / n;
                tv += c * c;
            }
        tv /= n;
        free(mu);
    }
    int64_t seen = 0;
    for (int64_t step = 0; step < o->steps; step++) {
        for (int r = 0; r < B; r++) {
            int64_t row = (int64_t)(rs_train_next_u64(&rng) % (uint64_t)n);
            memcpy(xb + (size_t)r * d, x + (size_t)row * d, (size_t)d * sizeof *xb);
            for (int i = 0; i < d; i++) xp[(size_t)r * d + i] = xb[(size_t)r * d + i] - bd[i];
        }
        for (int r = 0; r < B; r++) memcpy(pre + (size_t)r * m, be, (size_t)m * sizeof *pre);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, m, d, 1.0f, xp, d, WeT, d, 1.0f, pre, m);
        memset(Gr, 0, np * sizeof *Gr);
        int any_dead = 0;
        for (int f = 0; f < m; f++) {
            dead[f] = seen - last[f] > o->dead_after;
            any_dead |= dead[f];
        }
        double loss = 0;
        const float g_scale = 2.0f / B;
        for (int r = 0; r < B; r++) {
            const float *pr = pre + (size_t)r * m, *xr = xb + (size_t)r * d, *xpr = xp + (size_t)r * d;
            int na = top_indices(pr, m, k, NULL, idx);
            memcpy(e, bd, (size_t)d * sizeof *e);
            for (int j = 0; j < na; j++)
                if (pr[idx[j]] > 0) cblas_saxpy(d, pr[idx[j]], Wd + (size_t)idx[j] * d, 1, e, 1);
            for (int i = 0; i < d; i++) e[i] -= xr[i]; /* e = x̂ − x */
            loss += cblas_sdot(d, e, 1, e, 1);
            /* AuxK: dead features reconstruct the (detached) residual x − x̂ */
            if (any_dead && aux_k > 0) {
                int nd = top_indices(pr, m, aux_k, dead, idx + 0);
                memcpy(ea, e, (size_t)d * sizeof *ea); /* ê − (x − x̂) = ê + e */
                for (int j = 0; j < nd; j++)
                    if (pr[idx[j]] > 0) cblas_saxpy(d, pr[idx[j]], Wd + (size_t)idx[j] * d, 1, ea, 1);
                float ga = g_scale * o->aux_coef;
                for (int j = 0; j < nd; j++) {
                    int f = idx[j];
                    float a = pr[f];
                    if (a <= 0) continue;
                    cblas_saxpy(d, ga * a, ea, 1, gWd + (size_t)f * d, 1);
                    float dv = ga * cblas_sdot(d, ea, 1, Wd + (size_t)f * d, 1);
                    cblas_saxpy(d, dv, xpr, 1, gWeT + (size_t)f * d, 1);
                    gbe[f] += dv;
                    cblas_saxpy(d, -dv, WeT + (size_t)f * d, 1, gbd, 1);
                }
                na = top_indices(pr, m, k, NULL, idx); /* restore the main active set */
            }
            cblas_saxpy(d, g_scale, e, 1, gbd, 1);
            for (int j = 0; j < na; j++) {
                int f = idx[j];
                float a = pr[f];
                if (a <= 0) continue;
                last[f] = seen + B;
                cblas_saxpy(d, g_scale * a, e, 1, gWd + (size_t)f * d, 1);
                float dv = g_scale * cblas_sdot(d, e, 1, Wd + (size_t)f * d, 1);
                cblas_saxpy(d, dv, xpr, 1, gWeT + (size_t)f * d, 1);
                gbe[f] += dv;
                cblas_saxpy(d, -dv, WeT + (size_t)f * d, 1, gbd, 1);
            }
        }
        seen += B;
        loss_hist[step] = loss / B;
        double c1 = 1 - pow(o->beta1, (double)(step + 1)), c2 = 1 - pow(o->beta2, (double)(step + 1));
        rs_adam_update(P, Gr, M1, M2, np, o->lr, o->beta1, o->beta2, o->eps, c1, c2);
        for (int f = 0; f < m; f++) { /* unit-norm decoder rows */
            float *w = Wd + (size_t)f * d;
            float nr = cblas_snrm2(d, w, 1);
            if (nr > 0) cblas_sscal(d, 1.0f / nr, w, 1);
        }
        if (o->log && o->log_every > 0 && (step + 1) % o->log_every == 0)
            fprintf(o->log, "sae train: step %lld/%lld mse %.6g fvu %.4f\n", (long long)(step + 1), (long long)o->steps,
                    loss_hist[step], tv > 0 ? loss_hist[step] / tv : NAN);
    }
    rs_sae *s;
    float *We = malloc(md * sizeof *We);
    if (!We) {
        rs_errk(err, RS_ENOMEM, "SAE training: out of memory");
        goto done;
    }
    for (int f = 0; f < m; f++)
        for (int i = 0; i < d; i++) We[(size_t)i * m + f] = WeT[(size_t)f * d + i];
    rc = sae_new(&s, SAE_ARCH_TOPK, d, m, We, Wd, be, bd, NULL, err);
    free(We);
    if (rc) goto done;
    s->k = k;
    s->apply_b_dec_to_input = 1;
    if (rep) {
        int64_t tail = o->steps / 10 > 0 ? o->steps / 10 : 1;
        double sum = 0;
        for (int64_t i = o->steps - tail; i < o->steps; i++) sum += loss_hist[i];
        rep->final_mse = sum / tail;
        rep->final_fvu = tv > 0 ? rep->final_mse / tv : NAN;
        rep->final_l0 = NAN; /* at most k by construction */
        rep->dead_at_end = 0;
        for (int f = 0; f < m; f++) rep->dead_at_end += seen - last[f] > o->dead_after;
    }
    *out = s;
    rc = 0;
done:
    free(P);
    free(Gr);
    free(M1);
    free(M2);
    free(xb);
    free(xp);
    free(pre);
    free(e);
    free(ea);
    free(idx);
    free(last);
    free(dead);
    free(loss_hist);
    return rc;
}
