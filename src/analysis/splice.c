/* Spliced evaluation: three forward passes (clean, SAE reconstruction, zeros) with the
 * replacement applied through the decoder's hook splice callback. Which rows are exempt
 * from the replacement and which predictions are counted is the convention (splice.h). */
#include "reprshift/splice.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const rs_sae *sae;        /* NULL: zero ablation */
    const uint8_t *keep;      /* [T]: 1 = row keeps its activation in this pass (NULL: none) */
    int failed;
    rs_err *err;
} splice_ctx;

const char *splice_ce_convention_name(splice_ce_convention c) {
    return c == SPLICE_CE_REPRSHIFT_V1 ? "reprshift-v1" : "sae-lens";
}

int splice_ce_convention_parse(const char *name, splice_ce_convention *out, rs_err *err) {
    if (name && !strcmp(name, "sae-lens")) *out = SPLICE_CE_SAE_LENS;
    else if (name && !strcmp(name, "reprshift-v1")) *out = SPLICE_CE_REPRSHIFT_V1;
    else return rs_errf(err, "unknown CE convention '%s' (use sae-lens or reprshift-v1)", name ? name : "");
    return 0;
}

/* Replace every row not kept by its reconstruction / zeros. */
static void splice_rows(void *vctx, float *x, int T, int width) {
    splice_ctx *c = vctx;
    /* contiguous runs of rows to replace, so the SAE runs batched */
    for (int i = 0; i < T;) {
        if (c->keep && c->keep[i]) { i++; continue; }
        int j = i;
        while (j < T && !(c->keep && c->keep[j])) j++;
        float *rows = x + (size_t)i * width;
        if (!c->sae) memset(rows, 0, (size_t)(j - i) * width * sizeof(float));
        else if (sae_reconstruct(c->sae, rows, j - i, rows, c->err)) { c->failed = 1; break; }
        i = j;
    }
}

/* Per-prediction CE of the counted rows (count[r]: the prediction row r makes of row r+1 of
 * its sequence), in row order: each becomes a two-row sequence [its hidden row, a filler row]
 * with the target as the second id, so gemma2_next_token_ce scores exactly that one
 * prediction (the LM head runs on the counted rows only). */
static int prediction_ce(const gemma2_model *m, const gemma2_batch *b, const float *final, const uint8_t *count,
                         double *ce, rs_err *err) {
    int D = m->cfg.hidden_size;
    int64_t np = 0;
    for (int s = 0; s < b->n_seqs; s++)
        for (int64_t r = b->offsets[s]; r + 1 < b->offsets[s + 1]; r++) np += count[r] != 0;
    if (np == 0) return 0;
    float *h = malloc((size_t)np * 2 * D * sizeof(float));
    int32_t *ids = malloc((size_t)np * 2 * sizeof *ids);
    int64_t *off = malloc(((size_t)np + 1) * sizeof *off);
    int rc = 0;
    if (!h || !ids || !off) rc = rs_errk(err, RS_ENOMEM, "out of memory");
    else {
        int64_t k = 0;
        off[0] = 0;
        for (int s = 0; s < b->n_seqs; s++)
            for (int64_t r = b->offsets[s]; r + 1 < b->offsets[s + 1]; r++) {
                if (!count[r]) continue;
                memcpy(h + (size_t)(2 * k) * D, final + (size_t)r * D, (size_t)D * sizeof(float));
                memcpy(h + (size_t)(2 * k + 1) * D, final + (size_t)r * D, (size_t)D * sizeof(float));
                ids[2 * k] = b->ids[r];
                ids[2 * k + 1] = b->ids[r + 1];
                off[k + 1] = 2 * (k + 1);
                k++;
            }
        gemma2_batch pb = {.n_seqs = (int)np, .offsets = off, .ids = ids, .pos_offset = b->pos_offset};
        rc = gemma2_next_token_ce(m, &pb, h, ce, err);
    }
    free(h);
    free(ids);
    free(off);
    return rc;
}

/* One pass and its CE over the counted predictions (count[r] for the prediction made at row
 * r): the full forward with hook h (may be NULL), or, when resid is given, the forward
 * continued from block `from` with that residual. */
static int run_ce(const gemma2_model *m, const gemma2_batch *b, hook_request *h, int from, const float *resid,
                  const uint8_t *count, double *seq_ce, double *mean, rs_err *err) {
    int T = (int)b->offsets[b->n_seqs];
    float *final = malloc((size_t)T * m->cfg.hidden_size * sizeof(float));
    double *pc = malloc(((size_t)T + 1) * sizeof(double));
    if (!final || !pc) {
        free(final);
        free(pc);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    int rc = resid ? gemma2_forward_from(m, b, from, resid, NULL, 0, final, err)
                   : gemma2_forward(m, b, h, h ? 1 : 0, final, err);
    if (!rc) rc = prediction_ce(m, b, final, count, pc, err);
    free(final);
    if (rc) {
        free(pc);
        return -1;
    }
    double sum = 0;
    int64_t n = 0, k = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        double ss = 0;
        int64_t ns = 0;
        for (int64_t r = b->offsets[s]; r + 1 < b->offsets[s + 1]; r++)
            if (count[r]) {
                ss += pc[k++];
                ns++;
            }
        seq_ce[s] = ns ? ss / (double)ns : NAN;
        sum += ss;
        n += ns;
    }
    free(pc);
    *mean = n ? sum / (double)n : NAN;
    return 0;
}

int splice_pass_ce(const gemma2_model *m, const gemma2_batch *b, hook_request *hooks, int n_hooks,
                   const uint8_t *count, double *seq_ce, int64_t *seq_n, rs_err *err) {
    int T = (int)b->offsets[b->n_seqs];
    float *final = malloc(((size_t)T + 1) * m->cfg.hidden_size * sizeof(float));
    double *pc = malloc(((size_t)T + 1) * sizeof(double));
    int rc = final && pc ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
    if (!rc) rc = gemma2_forward(m, b, hooks, n_hooks, final, err);
    if (!rc) rc = prediction_ce(m, b, final, count, pc, err);
    for (int s = 0, k = 0; !rc && s < b->n_seqs; s++) {
        double ss = 0;
        int64_t ns = 0;
        for (int64_t r = b->offsets[s]; r + 1 < b->offsets[s + 1]; r++)
            if (count[r]) ss += pc[k++], ns++;
        seq_ce[s] = ns ? ss / (double)ns : NAN;
        if (seq_n) seq_n[s] = ns;
    }
    free(final);
    free(pc);
    return rc;
}

static int splice_core(const gemma2_model *m, const rs_sae *sae, hook_request *hp, const gemma2_batch *b,
                       const uint8_t *keep_splice, const uint8_t *keep_zero, const uint8_t *count, splice_ce *out,
                       rs_err *err);

/* Parse and check the hook for splicing (a decoder hook whose width is the SAE's d_in). */
static int splice_hook(const gemma2_model *m, const rs_sae *sae, const char *hook, hook_request *h, rs_err *err) {
    if (gemma2_hook_parse(&m->cfg, hook, h, err)) return -1;
    if (h->id.kind == HK_ATTN_Z || h->id.kind == HK_LN_FINAL_NORMALIZED || h->id.kind == HK_LN_FINAL_OUT)
        return rs_errf(err, "splicing at %s is not supported (use a residual, attn_out or mlp_out hook)", hook);
    if (sae->d_in != h->width)
        return rs_errf(err, "%s: SAE d_in %d does not match the width %d of %s", sae->path ? sae->path : "SAE",
                       sae->d_in, h->width, hook);
    h->capture = 0;
    h->out = NULL;
    return 0;
}

/* Per-sequence result arrays of out (zeroed); -1 when out of memory. */
static int ce_alloc(splice_ce *out, int n_seqs) {
    memset(out, 0, sizeof *out);
    out->seq_clean = calloc((size_t)n_seqs, sizeof(double));
    out->seq_spliced = calloc((size_t)n_seqs, sizeof(double));
    out->seq_zero = calloc((size_t)n_seqs, sizeof(double));
    out->seq_predictions = calloc((size_t)n_seqs, sizeof(int64_t));
    if (out->seq_clean && out->seq_spliced && out->seq_zero && out->seq_predictions) return 0;
    splice_ce_free(out);
    return -1;
}

int splice_ce_eval_masked(const gemma2_model *m, const rs_sae *sae, const char *hook, const gemma2_batch *b,
                          const uint8_t *splice, const uint8_t *count, splice_ce *out, rs_err *err) {
    memset(out, 0, sizeof *out);
    hook_request h;
    if (splice_hook(m, sae, hook, &h, err)) return -1;
    int T = (int)b->offsets[b->n_seqs];
    uint8_t *keep = malloc((size_t)T + 1), *cnt = calloc((size_t)T + 1, 1);
    if (!keep || !cnt || ce_alloc(out, b->n_seqs)) {
        free(keep);
        free(cnt);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int r = 0; r < T; r++) keep[r] = !splice[r];
    for (int s = 0; s < b->n_seqs; s++)
        for (int64_t r = b->offsets[s]; r + 1 < b->offsets[s + 1]; r++) {
            cnt[r] = count[r] != 0;
            out->seq_predictions[s] += cnt[r];
            out->n_predictions += cnt[r];
        }
    int rc = splice_core(m, sae, &h, b, keep, keep, cnt, out, err);
    free(keep);
    free(cnt);
    return rc;
}

int splice_ce_eval(const gemma2_model *m, const rs_sae *sae, const char *hook, const gemma2_batch *b,
                   splice_ce_convention conv, int splice_all, splice_ce *out, rs_err *err) {
    memset(out, 0, sizeof *out);
    if (conv != SPLICE_CE_SAE_LENS && conv != SPLICE_CE_REPRSHIFT_V1) return rs_errf(err, "unknown CE convention %d", (int)conv);
    hook_request h;
    if (splice_hook(m, sae, hook, &h, err)) return -1;
    int T = (int)b->offsets[b->n_seqs];
    /* special[r]: row r is exempt (keeps its activation in the spliced pass; under sae-lens
     * its prediction is not counted). count[r]: the prediction made at row r is counted. */
    uint8_t *special = calloc((size_t)T + 1, 1), *count = calloc((size_t)T + 1, 1);
    if (!special || !count || ce_alloc(out, b->n_seqs)) {
        free(special);
        free(count);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    const gemma2_config *c = &m->cfg;
    for (int r = 0; r < T && !splice_all; r++) {
        if (b->embeds_mask && b->embeds_mask[r]) continue;
        int32_t id = b->ids[r];
        special[r] = conv == SPLICE_CE_SAE_LENS ? (id == c->bos_id || id == c->eos_id || id == c->pad_id) : id == c->bos_id;
    }
    for (int s = 0; s < b->n_seqs; s++)
        for (int64_t r = b->offsets[s]; r + 1 < b->offsets[s + 1]; r++) {
            count[r] = conv == SPLICE_CE_SAE_LENS ? !special[r] : 1;
            out->seq_predictions[s] += count[r];
            out->n_predictions += count[r];
        }
    /* zero-ablated pass: sae-lens zeroes every row; reprshift-v1 keeps the special rows */
    const uint8_t *keep_zero = conv == SPLICE_CE_SAE_LENS ? NULL : special;
    int rc = splice_core(m, sae, &h, b, special, keep_zero, count, out, err);
    free(special);
    free(count);
    return rc;
}

/* The three passes for hook h: rows with keep_splice[r] keep their activation in the
 * spliced pass, rows with keep_zero[r] in the zero-ablated one (NULL: none kept); the
 * predictions made at rows with count[r] enter the means. Frees out's arrays on error. */
static int splice_core(const gemma2_model *m, const rs_sae *sae, hook_request *hp, const gemma2_batch *b,
                       const uint8_t *keep_splice, const uint8_t *keep_zero, const uint8_t *count, splice_ce *out,
                       rs_err *err) {
    hook_request h = *hp;
    int T = (int)b->offsets[b->n_seqs];
    const uint8_t *special = keep_splice;
    splice_ctx ctx = {.sae = sae, .keep = special, .err = err};
    int rc;
    if (h.id.kind == HK_RESID_POST || h.id.kind == HK_RESID_PRE) {
        /* The three passes agree up to the hook: capture the residual there once in the
         * clean pass and continue the other two from its spliced copies (a third less work
         * at layer 12 of 26, and bit-identical to splicing inside full passes). */
        int from = h.id.kind == HK_RESID_POST ? h.id.layer + 1 : h.id.layer;
        h.capture = 1;
        rc = run_ce(m, b, &h, 0, NULL, count, out->seq_clean, &out->ce_clean, err);
        float *x = rc ? NULL : malloc((size_t)T * h.width * sizeof(float));
        if (!rc && !x) rc = rs_errk(err, RS_ENOMEM, "out of memory");
        for (int pass = 0; !rc && pass < 2; pass++) {
            memcpy(x, h.out, (size_t)T * h.width * sizeof(float));
            ctx.sae = pass == 0 ? sae : NULL;
            ctx.keep = pass == 0 ? special : keep_zero;
            splice_rows(&ctx, x, T, h.width);
            if (ctx.failed) rc = -1;
            else rc = run_ce(m, b, NULL, from, x, count, pass == 0 ? out->seq_spliced : out->seq_zero,
                             pass == 0 ? &out->ce_spliced : &out->ce_zero, err);
        }
        free(x);
        free(h.out);
    } else {
        h.splice = splice_rows;
        h.splice_ctx = &ctx;
        rc = run_ce(m, b, NULL, 0, NULL, count, out->seq_clean, &out->ce_clean, err);
        if (!rc) rc = run_ce(m, b, &h, 0, NULL, count, out->seq_spliced, &out->ce_spliced, err);
        if (!rc && ctx.failed) rc = -1;
        ctx.sae = NULL;
        ctx.keep = keep_zero;
        if (!rc) rc = run_ce(m, b, &h, 0, NULL, count, out->seq_zero, &out->ce_zero, err);
    }
    if (rc) {
        splice_ce_free(out);
        return -1;
    }
    double denom = out->ce_zero - out->ce_clean;
    out->ce_recovered = denom != 0 ? (out->ce_zero - out->ce_spliced) / denom : NAN;
    return 0;
}

void splice_ce_free(splice_ce *r) {
    free(r->seq_clean);
    free(r->seq_spliced);
    free(r->seq_zero);
    free(r->seq_predictions);
    r->seq_clean = r->seq_spliced = r->seq_zero = NULL;
    r->seq_predictions = NULL;
}
