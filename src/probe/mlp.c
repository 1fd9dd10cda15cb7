/* One-hidden-layer MLP probe trained with Adam, following scikit-learn's MLPClassifier
 * step by step (probe_mlp.h): same initialisation law, batch size, loss scaling, Adam
 * update, epoch shuffling and early-stopping rule, so that mean accuracies over seeds
 * agree. f32 parameters and SGEMM: an epoch is a few matrix products per minibatch. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_mlp.h"

rs_mlp_opts rs_mlp_defaults(void) {
    rs_mlp_opts o = {100, 1e-4, 1e-3, 0, 200, 1, 0.1, 10, 1e-4, 0};
    return o;
}

void rs_mlp_free(rs_mlp *m) {
    free(m->W1); /* one allocation holds W1, b1, W2, b2 */
    memset(m, 0, sizeof *m);
}

/* Parameter block layout: W1 [d,h] | b1 [h] | W2 [h,R] | b2 [R]. */
static size_t n_params(int d, int h, int R) { return (size_t)d * h + h + (size_t)h * R + R; }

static void carve(rs_mlp *m, float *p) {
    m->W1 = p;
    m->b1 = p + (size_t)m->d * m->hidden;
    m->W2 = m->b1 + m->hidden;
    m->b2 = m->W2 + (size_t)m->hidden * m->n_out;
}

/* H [n,h] = relu(X W1 + b1), Z [n,R] = H W2 + b2. */
static void forward(const rs_mlp *m, const float *X, int n, float *H, float *Z) {
    int d = m->d, h = m->hidden, R = m->n_out;
    for (int i = 0; i < n; i++) memcpy(H + (size_t)i * h, m->b1, sizeof(float) * h);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, h, d, 1.0f, X, d, m->W1, h, 1.0f, H, h);
    for (size_t i = 0; i < (size_t)n * h; i++) H[i] = H[i] > 0 ? H[i] : 0;
    for (int i = 0; i < n; i++) memcpy(Z + (size_t)i * R, m->b2, sizeof(float) * R);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, R, h, 1.0f, H, h, m->W2, R, 1.0f, Z, R);
}

/* Argmax of one row of logits (binary: z > 0). */
static int argmax_row(const float *z, int R) {
    if (R == 1) return z[0] > 0;
    int b = 0;
    for (int k = 1; k < R; k++)
        if (z[k] > z[b]) b = k;
    return b;
}

#define CHUNK 256

int rs_mlp_predict(const rs_mlp *m, const float *X, int n, int *pred, rs_err *err) {
    float *H = malloc(sizeof(float) * CHUNK * m->hidden), *Z = malloc(sizeof(float) * CHUNK * m->n_out);
    if (!H || !Z) { free(H); free(Z); return rs_errk(err, RS_ENOMEM, "mlp: out of memory"); }
    for (int s = 0; s < n; s += CHUNK) {
        int c = n - s < CHUNK ? n - s : CHUNK;
        forward(m, X + (size_t)s * m->d, c, H, Z);
        for (int i = 0; i < c; i++) pred[s + i] = argmax_row(Z + (size_t)i * m->n_out, m->n_out);
    }
    free(H); free(Z);
    return 0;
}

int rs_mlp_proba(const rs_mlp *m, const float *X, int n, double *P, rs_err *err) {
    int R = m->n_out, K = m->n_classes;
    float *H = malloc(sizeof(float) * CHUNK * m->hidden), *Z = malloc(sizeof(float) * CHUNK * R);
    if (!H || !Z) { free(H); free(Z); return rs_errk(err, RS_ENOMEM, "mlp: out of memory"); }
    for (int s = 0; s < n; s += CHUNK) {
        int c = n - s < CHUNK ? n - s : CHUNK;
        forward(m, X + (size_t)s * m->d, c, H, Z);
        for (int i = 0; i < c; i++) {
            const float *z = Z + (size_t)i * R;
            double *p = P + (size_t)(s + i) * K;
            if (R == 1) {
                p[1] = 1 / (1 + exp(-(double)z[0]));
                p[0] = 1 - p[1];
            } else {
                double mx = z[0], se = 0;
                for (int k = 1; k < K; k++) mx = fmax(mx, z[k]);
                for (int k = 0; k < K; k++) se += exp(z[k] - mx);
                for (int k = 0; k < K; k++) p[k] = exp(z[k] - mx) / se;
            }
        }
    }
    free(H); free(Z);
    return 0;
}

/* Z [n,R] logits → D = p − y in place; returns Σ cross-entropy. */
static double output_delta(float *Z, const int *y, int n, int R) {
    double loss = 0;
    for (int i = 0; i < n; i++) {
        float *z = Z + (size_t)i * R;
        if (R == 1) {
            double t = z[0], yi = y[i] == 1;
            loss += (t > 0 ? t + log1p(exp(-t)) : log1p(exp(t))) - yi * t;
            z[0] = (float)(1 / (1 + exp(-t)) - yi);
        } else {
            double mx = z[0], se = 0;
            for (int k = 1; k < R; k++) mx = fmax(mx, z[k]);
            for (int k = 0; k < R; k++) se += exp(z[k] - mx);
            double lse = mx + log(se);
            loss += lse - z[y[i]];
            for (int k = 0; k < R; k++) z[k] = (float)(exp(z[k] - lse) - (k == y[i]));
        }
    }
    return loss;
}

static double accuracy(const rs_mlp *m, const float *X, const int *y, int n, int *pred) {
    if (rs_mlp_predict(m, X, n, pred, NULL)) return NAN;
    int ok = 0;
    for (int i = 0; i < n; i++) ok += pred[i] == y[i];
    return (double)ok / n;
}

int rs_mlp_fit(rs_mlp *m, const float *X, const int *y, int n, int d, int K,
               const rs_mlp_opts *opts, rs_err *err) {
    memset(m, 0, sizeof *m);
    rs_mlp_opts o = opts ? *opts : rs_mlp_defaults();
    if (n < 2 || d < 1) return rs_errf(err, "mlp: need at least 2 rows and 1 feature (got %d x %d)", n, d);
    if (o.hidden < 1 || o.max_epochs < 1 || !(o.lr > 0) || !(o.alpha >= 0))
        return rs_errf(err, "mlp: bad options (hidden %d, epochs %d, lr %g, alpha %g)", o.hidden, o.max_epochs, o.lr, o.alpha);
    if (o.early_stopping && !(o.val_frac > 0 && o.val_frac < 1))
        return rs_errf(err, "mlp: validation fraction must be in (0,1), got %g", o.val_frac);
    if (rs_check_labels(y, n, K, err) || rs_check_finite(X, n, d, err)) return rs_err_prefix(err, "mlp");
    int h = o.hidden, R = K == 2 ? 1 : K;
    size_t np = n_params(d, h, R);
    m->d = d; m->hidden = h; m->n_classes = K; m->n_out = R;
    m->best_val_accuracy = NAN;

    /* training / validation rows (stratified, like sklearn's train_test_split(stratify=y)) */
    int *is_val = calloc(n, sizeof(int)), *idx = malloc(sizeof(int) * n), *pred = malloc(sizeof(int) * n);
    int *yv = malloc(sizeof(int) * n), *yt = malloc(sizeof(int) * n);
    float *Xt = NULL, *Xv = NULL;
    float *P = calloc(np, sizeof(float)), *G = malloc(sizeof(float) * np), *M1 = calloc(np, sizeof(float));
    float *V1 = calloc(np, sizeof(float)), *best = malloc(sizeof(float) * np);
    float *Xb = NULL, *H = NULL, *Z = NULL, *D1 = NULL;
    int rc = 0;
    if (!is_val || !idx || !pred || !yv || !yt || !P || !G || !M1 || !V1 || !best) goto oom;
    if (o.early_stopping &&
        rs_split_stratified_groups(y, NULL, n, K, o.val_frac, o.seed ^ 0x7A11DA7Eull, is_val, err)) {
        rc = rs_err_prefix(err, "mlp: validation split");
        goto done;
    }
    int nt = 0, nv = 0;
    for (int i = 0; i < n; i++) nv += is_val[i];
    nt = n - nv;
    if (o.early_stopping && nv < 2) { rc = rs_errf(err, "mlp: validation set too small (%d rows); raise the fraction", nv); goto done; }
    Xt = malloc(sizeof(float) * (size_t)nt * d);
    Xv = malloc(sizeof(float) * ((size_t)nv * d + 1));
    if (!Xt || !Xv) goto oom;
    for (int i = 0, a = 0, b = 0; i < n; i++) {
        if (is_val[i]) { memcpy(Xv + (size_t)b * d, X + (size_t)i * d, sizeof(float) * d); yv[b++] = y[i]; }
        else { memcpy(Xt + (size_t)a * d, X + (size_t)i * d, sizeof(float) * d); yt[a++] = y[i]; }
    }
    int B = o.batch_size > 0 ? (o.batch_size < nt ? o.batch_size : nt) : (nt < 200 ? nt : 200);
    Xb = malloc(sizeof(float) * (size_t)B * d);
    H = malloc(sizeof(float) * (size_t)B * h);
    Z = malloc(sizeof(float) * (size_t)B * R);
    D1 = malloc(sizeof(float) * (size_t)B * h);
    if (!Xb || !H || !Z || !D1) goto oom;

    /* Glorot-uniform init, weights then biases of each layer */
    carve(m, P);
    uint64_t is = o.seed ^ 0x1D1D1D1Dull, c = 0;
    double b1 = sqrt(6.0 / (d + h)), b2 = sqrt(6.0 / (h + R));
    for (size_t i = 0; i < (size_t)d * h; i++) m->W1[i] = (float)((2 * rs_uniform_at(is, c++) - 1) * b1);
    for (int i = 0; i < h; i++) m->b1[i] = (float)((2 * rs_uniform_at(is, c++) - 1) * b1);
    for (size_t i = 0; i < (size_t)h * R; i++) m->W2[i] = (float)((2 * rs_uniform_at(is, c++) - 1) * b2);
    for (int i = 0; i < R; i++) m->b2[i] = (float)((2 * rs_uniform_at(is, c++) - 1) * b2);
    memcpy(best, P, sizeof(float) * np);

    rs_mlp gm; /* gradient views */
    memset(&gm, 0, sizeof gm);
    gm.d = d; gm.hidden = h; gm.n_out = R;
    carve(&gm, G);
    const double be1 = 0.9, be2 = 0.999, eps = 1e-8;
    double pw1 = 1, pw2 = 1, best_score = -INFINITY, best_loss = INFINITY;
    int no_improve = 0, epoch = 0;
    for (int i = 0; i < nt; i++) idx[i] = i;
    for (epoch = 0; epoch < o.max_epochs; epoch++) {
        uint64_t ss = o.seed * 0x9E3779B97F4A7C15ull + 0x5EED + (uint64_t)epoch;
        for (int i = nt - 1; i > 0; i--) {
            int j = (int)(rs_uniform_at(ss, (uint64_t)i) * (i + 1));
            int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        }
        double acc_loss = 0;
        for (int s = 0; s < nt; s += B) {
            int bl = nt - s < B ? nt - s : B;
            int *yb = pred; /* scratch */
            for (int i = 0; i < bl; i++) {
                memcpy(Xb + (size_t)i * d, Xt + (size_t)idx[s + i] * d, sizeof(float) * d);
                yb[i] = yt[idx[s + i]];
            }
            forward(m, Xb, bl, H, Z);
            double loss = output_delta(Z, yb, bl, R) / bl, sq = 0;
            for (size_t i = 0; i < (size_t)d * h; i++) sq += (double)m->W1[i] * m->W1[i];
            for (size_t i = 0; i < (size_t)h * R; i++) sq += (double)m->W2[i] * m->W2[i];
            loss += 0.5 * o.alpha * sq / bl;
            acc_loss += loss * bl;
            float inv = 1.0f / bl, ra = (float)(o.alpha / bl);
            /* output layer: gW2 = (Hᵀ D2 + α W2)/B, gb2 = Σ D2 / B */
            for (size_t i = 0; i < (size_t)h * R; i++) gm.W2[i] = ra * m->W2[i];
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, h, R, bl, inv, H, h, Z, R, 1.0f, gm.W2, R);
            for (int k = 0; k < R; k++) {
                double sacc = 0;
                for (int i = 0; i < bl; i++) sacc += Z[(size_t)i * R + k];
                gm.b2[k] = (float)(sacc * inv);
            }
            /* hidden layer: D1 = (D2 W2ᵀ) ⊙ [H > 0] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bl, h, R, 1.0f, Z, R, m->W2, R, 0.0f, D1, h);
            for (size_t i = 0; i < (size_t)bl * h; i++) if (H[i] <= 0) D1[i] = 0;
            for (size_t i = 0; i < (size_t)d * h; i++) gm.W1[i] = ra * m->W1[i];
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, h, bl, inv, Xb, d, D1, h, 1.0f, gm.W1, h);
            for (int k = 0; k < h; k++) gm.b1[k] = 0;
            for (int i = 0; i < bl; i++)
                for (int k = 0; k < h; k++) gm.b1[k] += D1[(size_t)i * h + k];
            for (int k = 0; k < h; k++) gm.b1[k] *= inv;
            /* Adam with sklearn's bias-corrected step size */
            pw1 *= be1; pw2 *= be2;
            float lr_t = (float)(o.lr * sqrt(1 - pw2) / (1 - pw1));
            for (size_t i = 0; i < np; i++) {
                float g = G[i];
                M1[i] = (float)be1 * M1[i] + (float)(1 - be1) * g;
                V1[i] = (float)be2 * V1[i] + (float)(1 - be2) * g * g;
                P[i] -= lr_t * M1[i] / (sqrtf(V1[i]) + (float)eps);
            }
        }
        m->train_loss = acc_loss / nt;
        if (!isfinite(m->train_loss)) { rc = rs_errf(err, "mlp: training diverged at epoch %d (loss not finite)", epoch + 1); goto done; }
        /* sklearn's _update_no_improvement_count */
        if (o.early_stopping) {
            double v = accuracy(m, Xv, yv, nv, pred);
            if (v < best_score + o.tol) no_improve++; else no_improve = 0;
            if (v > best_score) { best_score = v; memcpy(best, P, sizeof(float) * np); }
        } else {
            if (m->train_loss > best_loss - o.tol) no_improve++; else no_improve = 0;
            if (m->train_loss < best_loss) best_loss = m->train_loss;
        }
        if (no_improve > o.n_iter_no_change) { epoch++; break; }
    }
    m->n_epochs = epoch < o.max_epochs ? epoch : o.max_epochs;
    if (o.early_stopping) {
        memcpy(P, best, sizeof(float) * np);
        m->best_val_accuracy = best_score;
    }
done:
    free(is_val); free(idx); free(pred); free(yv); free(yt); free(Xt); free(Xv);
    free(G); free(M1); free(V1); free(best); free(Xb); free(H); free(Z); free(D1);
    if (rc) { free(P); memset(m, 0, sizeof *m); }
    return rc;
oom:
    rc = rs_errk(err, RS_ENOMEM, "mlp: out of memory (%d x %d features, %d hidden)", n, d, o.hidden);
    goto done;
}

int rs_mlp_fit_predict(const float *Xtr, const int *ytr, int ntr, const float *Xte, int nte, int d,
                       int K, int standardize, const rs_mlp_opts *o, int *pred, rs_err *err) {
    float *A = NULL, *B = NULL;
    const float *tr = Xtr, *te = Xte;
    if (standardize) {
        rs_scaler sc;
        if (rs_scaler_fit(&sc, Xtr, ntr, d, err)) return -1;
        A = malloc(sizeof(float) * (size_t)ntr * d);
        B = malloc(sizeof(float) * ((size_t)nte * d + 1));
        if (!A || !B) { free(A); free(B); rs_scaler_free(&sc); return rs_errk(err, RS_ENOMEM, "mlp: out of memory"); }
        rs_scaler_apply(&sc, Xtr, ntr, A);
        rs_scaler_apply(&sc, Xte, nte, B);
        rs_scaler_free(&sc);
        tr = A; te = B;
    }
    rs_mlp m;
    int rc = rs_mlp_fit(&m, tr, ytr, ntr, d, K, o, err);
    if (rc == 0) {
        rc = rs_mlp_predict(&m, te, nte, pred, err);
        rs_mlp_free(&m);
    }
    free(A); free(B);
    return rc;
}
