/* SAE fit-quality metrics (see docs/metrics.md). Sums are accumulated in double; the
 * total variance E‖x‖² − ‖E x‖² is formed from double sums as sae-lens does (its
 * ExplainedVarianceCalculator accumulates in float64 for the same cancellation reason). */
#include "reprshift/sae_fit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIT_CHUNK 256

typedef struct {
    int64_t n;
    double ss_resid, ss_x, cos_sum, l0, l1;
    int64_t n_cos;
    double *sum_x;   /* [d_in] */
    float *max_act;  /* [d_sae] */
    int64_t *count;  /* [d_sae] */
} acc;

static int acc_init(acc *a, int d, int m) {
    memset(a, 0, sizeof *a);
    a->sum_x = calloc((size_t)d, sizeof *a->sum_x);
    a->max_act = calloc((size_t)m, sizeof *a->max_act);
    a->count = calloc((size_t)m, sizeof *a->count);
    return a->sum_x && a->max_act && a->count ? 0 : -1;
}

static void acc_free(acc *a) {
    free(a->sum_x);
    free(a->max_act);
    free(a->count);
}

static void acc_row(acc *a, const float *x, const float *xh, const float *f, int d, int m) {
    double r = 0, xx = 0, hh = 0, xh_dot = 0;
    for (int i = 0; i < d; i++) {
        double e = (double)x[i] - xh[i];
        r += e * e;
        xx += (double)x[i] * x[i];
        hh += (double)xh[i] * xh[i];
        xh_dot += (double)x[i] * xh[i];
        a->sum_x[i] += x[i];
    }
    a->ss_resid += r;
    a->ss_x += xx;
    if (xx > 0 && hh > 0) {
        a->cos_sum += xh_dot / (sqrt(xx) * sqrt(hh));
        a->n_cos++;
    }
    for (int j = 0; j < m; j++) {
        if (f[j] == 0) continue;
        a->l0 += 1;
        a->l1 += fabs(f[j]);
        a->count[j]++;
        if (f[j] > a->max_act[j]) a->max_act[j] = f[j];
    }
    a->n++;
}

static void acc_finish(const acc *a, int d, int m, sae_fit_metrics *o) {
    memset(o, 0, sizeof *o);
    o->n_rows = a->n;
    if (a->n == 0) {
        o->mse = o->relative_mse = o->explained_variance = o->cossim = NAN;
        o->mean_max_act = NAN;
        o->frac_dead = 1;
        return;
    }
    double n = (double)a->n;
    o->mse = a->ss_resid / n;
    o->relative_mse = a->ss_x > 0 ? a->ss_resid / a->ss_x : NAN;
    double mean_sq = 0;
    for (int i = 0; i < d; i++) mean_sq += (a->sum_x[i] / n) * (a->sum_x[i] / n);
    double total_var = a->ss_x / n - mean_sq;
    if (total_var < 1e-10) o->explained_variance = o->mse < 1e-10 ? 1.0 : 0.0;
    else o->explained_variance = 1.0 - o->mse / total_var;
    o->cossim = a->n_cos ? a->cos_sum / (double)a->n_cos : NAN;
    o->l0 = a->l0 / n;
    o->l1 = a->l1 / n;
    int64_t alive = 0;
    double mx = 0;
    for (int j = 0; j < m; j++)
        if (a->count[j]) {
            alive++;
            mx += a->max_act[j];
        }
    o->frac_alive = (double)alive / m;
    o->frac_dead = 1.0 - o->frac_alive;
    o->mean_max_act = alive ? mx / (double)alive : NAN;
}

int sae_fit_eval(const rs_sae *s, const float *x, int64_t n, const uint8_t *include,
                 sae_fit_metrics *in, sae_fit_metrics *out, int64_t *alive_out, rs_err *err) {
    int d = s->d_in, m = s->d_sae;
    acc ai, ao;
    float *f = malloc((size_t)FIT_CHUNK * m * sizeof *f);
    float *xh = malloc((size_t)FIT_CHUNK * d * sizeof *xh);
    int rc = -1;
    int ok_i = acc_init(&ai, d, m), ok_o = acc_init(&ao, d, m);
    if (!f || !xh || ok_i || ok_o) {
        rs_errk(err, RS_ENOMEM, "SAE fit: out of memory");
        goto done;
    }
    for (int64_t r0 = 0; r0 < n; r0 += FIT_CHUNK) {
        int64_t nb = n - r0 < FIT_CHUNK ? n - r0 : FIT_CHUNK;
        const float *xc = x + (size_t)r0 * d;
        if (sae_encode(s, xc, nb, f, err)) {
            rs_err_prefix(err, "rows %lld..%lld", (long long)r0, (long long)(r0 + nb - 1));
            goto done;
        }
        if (sae_decode(s, f, xc, nb, xh, err)) goto done;
        for (int64_t r = 0; r < nb; r++) {
            int inc = !include || include[r0 + r];
            acc_row(inc ? &ai : &ao, xc + (size_t)r * d, xh + (size_t)r * d, f + (size_t)r * m, d, m);
        }
    }
    acc_finish(&ai, d, m, in);
    if (out) acc_finish(&ao, d, m, out);
    if (alive_out) memcpy(alive_out, ai.count, (size_t)m * sizeof *alive_out);
    rc = 0;
done:
    free(f);
    free(xh);
    acc_free(&ai);
    acc_free(&ao);
    return rc;
}
