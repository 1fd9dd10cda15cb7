/* Steering passes for the steer stage (reprshift/steer.h). */
#include "reprshift/steer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe.h"

typedef struct {
    const float *dir;
    double scale;
    int norm_rows;
    double *norm;
    float *act_out;
} steer_ctx;

static void steer_splice(void *vctx, float *x, int T, int width) {
    steer_ctx *c = vctx;
    if (c->norm) *c->norm = rs_mean_row_norm(x, c->norm_rows < T ? c->norm_rows : T, width);
    if (c->act_out) memcpy(c->act_out, x, (size_t)T * width * sizeof *x);
    if (!c->dir) return;
    for (int t = 0; t < T; t++) {
        float *r = x + (size_t)t * width;
        for (int j = 0; j < width; j++) r[j] += (float)(c->scale * c->dir[j]);
    }
}

static double log_sum_exp(const float *z, int n) {
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < n; v++)
        if (z[v] > mx) mx = z[v];
    for (int v = 0; v < n; v++) s += exp((double)z[v] - mx);
    return mx + log(s);
}

/* Logits of read_row and the suffix CE from the final hidden states (rs_steer_pass). */
static int readout(const gemma2_model *m, const rs_iv_input *in, const float *final, int read_row, float *logits_row,
                   int ce_from, double *ce, rs_err *err) {
    const int T = (int)in->len, D = m->cfg.hidden_size, V = m->cfg.vocab_size;
    int nce = ce && ce_from >= 0 && ce_from < T - 1 ? T - 1 - ce_from : 0;
    float *lg = nce ? malloc((size_t)nce * V * sizeof *lg) : NULL;
    int rc = -1;
    if (nce && !lg) return rs_errk(err, RS_ENOMEM, "out of memory");
    if (logits_row && gemma2_logits(m, final + (size_t)read_row * D, 1, logits_row, err)) goto done;
    if (nce) {
        if (gemma2_logits(m, final + (size_t)ce_from * D, nce, lg, err)) goto done;
        double sum = 0;
        for (int k = 0; k < nce; k++) {
            const float *z = lg + (size_t)k * V;
            int32_t y = in->ids[ce_from + k + 1];
            if (y < 0 || y >= V) { rs_errk(err, RS_EINVAL, "steer: token id %d outside the vocabulary", (int)y); goto done; }
            sum += log_sum_exp(z, V) - z[y];
        }
        *ce = sum / nce;
    }
    rc = 0;
done:
    free(lg);
    return rc;
}

static gemma2_batch one_batch(const rs_iv_input *in, int pos_offset, int64_t off[2], int *prefix) {
    off[0] = 0;
    off[1] = in->len;
    *prefix = in->prefix_len;
    return (gemma2_batch){.n_seqs = 1, .offsets = off, .ids = in->ids, .embeds = in->embeds,
                          .embeds_mask = in->embeds_mask, .prefix_len = *prefix > 0 ? prefix : NULL,
                          .pos_offset = pos_offset};
}

int rs_steer_pass(const gemma2_model *m, const rs_iv_input *in, int pos_offset, const hook_request *hook,
                  const float *dir, double scale, int read_row, float *logits_row, int ce_from, double *ce,
                  int norm_rows, double *norm, float *act_out, rs_err *err) {
    const int T = (int)in->len, D = m->cfg.hidden_size;
    if (ce) *ce = NAN;
    if (norm) *norm = NAN;
    if (T < 1 || (logits_row && (read_row < 0 || read_row >= T)) || (norm && (norm_rows < 1 || norm_rows > T)))
        return rs_errk(err, RS_EINVAL, "steer: rows out of range (input of %d tokens)", T);
    steer_ctx sc = {dir, scale, norm_rows, norm, act_out};
    hook_request r = *hook;
    r.capture = 0;
    r.out = NULL;
    r.splice = steer_splice;
    r.splice_ctx = &sc;
    int64_t off[2];
    int prefix;
    gemma2_batch b = one_batch(in, pos_offset, off, &prefix);
    float *final = malloc((size_t)T * D * sizeof *final);
    if (!final) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = gemma2_forward(m, &b, &r, 1, final, err) || readout(m, in, final, read_row, logits_row, ce_from, ce, err) ? -1 : 0;
    free(final);
    return rc;
}

int rs_steer_resumable(const hook_request *hook) {
    return hook->id.tower == RS_TOWER_DECODER && (hook->id.kind == HK_RESID_PRE || hook->id.kind == HK_RESID_POST);
}

int rs_steer_pass_from(const gemma2_model *m, const rs_iv_input *in, int pos_offset, const hook_request *hook,
                       const float *clean, const float *dir, double scale, int read_row, float *logits_row,
                       int ce_from, double *ce, rs_err *err) {
    const int T = (int)in->len, D = m->cfg.hidden_size;
    if (ce) *ce = NAN;
    if (!rs_steer_resumable(hook) || hook->width != D)
        return rs_errk(err, RS_EINVAL, "steer: %s is not a residual-stream hook (resume needs hook_resid_pre/post)",
                       hook->name);
    if (T < 1 || (logits_row && (read_row < 0 || read_row >= T)))
        return rs_errk(err, RS_EINVAL, "steer: rows out of range (input of %d tokens)", T);
    /* the residual entering the next block: blocks.L.hook_resid_pre enters block L, hook_resid_post block L+1 */
    const int layer = hook->id.kind == HK_RESID_PRE ? hook->id.layer : hook->id.layer + 1;
    int64_t off[2];
    int prefix;
    gemma2_batch b = one_batch(in, pos_offset, off, &prefix);
    float *x = malloc((size_t)T * D * sizeof *x), *final = malloc((size_t)T * D * sizeof *final);
    int rc = -1;
    if (!x || !final) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    memcpy(x, clean, (size_t)T * D * sizeof *x);
    steer_ctx sc = {dir, scale, T, NULL, NULL};
    steer_splice(&sc, x, T, D);
    if (gemma2_forward_from(m, &b, layer, x, NULL, 0, final, err) ||
        readout(m, in, final, read_row, logits_row, ce_from, ce, err))
        goto done;
    rc = 0;
done:
    free(x);
    free(final);
    return rc;
}

double rs_log_prob_set(const float *logits, int vocab, const int32_t *targets, int n) {
    double lse = log_sum_exp(logits, vocab), mx = -INFINITY, s = 0;
    for (int k = 0; k < n; k++) {
        int dup = 0;
        for (int q = 0; q < k; q++) dup |= targets[q] == targets[k];
        if (!dup && targets[k] >= 0 && targets[k] < vocab && logits[targets[k]] > mx) mx = logits[targets[k]];
    }
    if (mx == -INFINITY) return -INFINITY;
    for (int k = 0; k < n; k++) {
        int dup = 0;
        for (int q = 0; q < k; q++) dup |= targets[q] == targets[k];
        if (!dup && targets[k] >= 0 && targets[k] < vocab) s += exp((double)logits[targets[k]] - mx);
    }
    return mx + log(s) - lse;
}

void rs_random_unit_dirs(uint64_t seed, int K, int d, float *out) {
    for (int k = 0; k < K; k++) {
        double n2 = 0;
        float *o = out + (size_t)k * d;
        for (int j = 0; j < d; j++) {
            double v = rs_normal_at(seed, (uint64_t)k * (uint64_t)d + (uint64_t)j);
            o[j] = (float)v;
            n2 += v * v;
        }
        double inv = n2 > 0 ? 1.0 / sqrt(n2) : 0;
        for (int j = 0; j < d; j++) o[j] = (float)(rs_normal_at(seed, (uint64_t)k * (uint64_t)d + (uint64_t)j) * inv);
    }
}
