/* Conditions stage: how each caption's representation depends on what PaliGemma reads it
 * with. The same caption token rows (identical ids, enforced by the extract stage) in up
 * to five conditions
 *   a llm           Gemma-2, <bos> caption
 *   b vlm_text      PaliGemma decoder, the caption alone (causal, no image)
 *   c vlm_caption   PaliGemma, its own image + prompt (prefix), caption as the suffix
 *   d vlm_mismatch  the same with an image of another group
 *   e vlm_blank     the same with a mid-grey image
 * are compared pairwise with `shift_run` per captured hook (SAE metrics where the layer's
 * SAE reads the hook): a-b (weights only), b-c (what the image adds), a-c (the whole
 * adaptation), c-d (this image or any image), c-e (image content or an image at all).
 * Per pair and hook also the raw cosine by caption token position (the first caption
 * tokens sit next to the prefix), with a percentile bootstrap over captions.
 * Writes results/conditions.json and results/conditions_summary.csv. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <omp.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/gemma2.h"
#include "reprshift/image.h"
#include "reprshift/paligemma.h"
#include "reprshift/splice.h"
#include "base/jsonutil.h"
#include "reprshift/probe.h"
#include "reprshift/sae.h"
#include "reprshift/shift.h"
#include "reprshift/shift_run.h"
#include "reprshift/stats.h"
#include "reprshift/store.h"
#include "reprshift/version.h"

typedef struct {
    const char *id;       /* "a-c" */
    int a, b;             /* stores */
    const char *isolates; /* what the comparison isolates, in words */
} pair_def;

static const struct {
    int store;
    const char *letter, *name, *what;
} CONDS[] = {
    {PL_LLM_TEXT, "a", "llm", "Gemma-2 reads <bos> + caption"},
    {PL_VLM_TEXT, "b", "vlm_text", "PaliGemma's decoder reads the caption alone (no image, no prompt, causal)"},
    {PL_VLM_CAPTION, "c", "vlm_caption",
     "PaliGemma reads its own image + <bos> + prompt + \"\\n\" (prefix, bidirectional), then the caption + <eos> "
     "(suffix, causal), as in training"},
    {PL_VLM_MISMATCH, "d", "vlm_mismatch", "as c, with the image of another group (seeded draw)"},
    {PL_VLM_BLANK, "e", "vlm_blank", "as c, with a uniform mid-grey image (128, 128, 128)"},
};
#define N_CONDS 5

static const pair_def PAIRS[] = {
    {"a-b", PL_LLM_TEXT, PL_VLM_TEXT,
     "weights only: the same caption, alone, through Gemma-2 and through PaliGemma's decoder (an input PaliGemma "
     "never sees in training)"},
    {"b-c", PL_VLM_TEXT, PL_VLM_CAPTION,
     "what the image and prompt add: the same PaliGemma weights, caption alone vs after its image"},
    {"a-c", PL_LLM_TEXT, PL_VLM_CAPTION,
     "the whole adaptation: Gemma-2 on the caption vs PaliGemma reading it after its image, as trained"},
    {"c-d", PL_VLM_CAPTION, PL_VLM_MISMATCH,
     "this image or any image: the caption after its own image vs after an image of another group"},
    {"c-e", PL_VLM_CAPTION, PL_VLM_BLANK,
     "image content or the presence of an image: the caption after its own image vs after a blank one"},
};
#define N_PAIRS 5

static const char *cond_letter(int s) {
    for (int i = 0; i < N_CONDS; i++)
        if (CONDS[i].store == s) return CONDS[i].letter;
    return "?";
}


/* Raw cosine between the two stores' rows by caption token position p = 1.. (the <bos>
 * row 0 and special tokens are excluded): mean over the captions that have position p,
 * with a percentile bootstrap over captions (B replicates, the same resampled captions
 * for every position). Positions with fewer than min_n captions are left out. */
static int by_position(pl_ctx *c, int sa, int sb, const char *hook, int B, cJSON **out, rs_err *err) {
    char *da = pl_join(c->acts, PL_STORE_NAME[sa]), *db = pl_join(c->acts, PL_STORE_NAME[sb]);
    store_reader *ra = NULL, *rb = NULL;
    float *A = NULL, *Bm = NULL;
    int32_t *ids = NULL;
    int64_t *off = NULL, n_in = 0, rows, w, rows_b, w_b, rr, ww;
    double *cs = NULL, *boot = NULL, *acc = NULL;
    int64_t *cnt = NULL;
    int rc = -1;
    *out = NULL;
    if (!da || !db) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (store_reader_open(&ra, da, err) || store_reader_open(&rb, db, err) ||
        store_read_f32(ra, hook, &A, &rows, &w, err) || store_read_f32(rb, hook, &Bm, &rows_b, &w_b, err) ||
        store_read_raw(ra, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, err) ||
        store_read_offsets(ra, "offsets", &off, &n_in, err))
        goto done;
    if (rows != rows_b || w != w_b) {
        rs_errf(err, "%s: %s has %lld×%lld rows but %s %lld×%lld", hook, PL_STORE_NAME[sa], (long long)rows, (long long)w,
                PL_STORE_NAME[sb], (long long)rows_b, (long long)w_b);
        goto done;
    }
    int64_t P = 0;
    for (int64_t i = 0; i < n_in; i++)
        if (off[i + 1] - off[i] > P) P = off[i + 1] - off[i];
    /* cs[i*P + p]: cosine of caption i at position p, NaN where absent or special */
    cs = malloc((size_t)(n_in * P + 1) * sizeof *cs);
    acc = calloc((size_t)P + 1, sizeof *acc);
    cnt = calloc((size_t)P + 1, sizeof *cnt);
    if (!cs || !acc || !cnt) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int64_t i = 0; i < n_in; i++)
        for (int64_t p = 0; p < P; p++) {
            int64_t t = off[i] + p;
            cs[i * P + p] = (t < off[i + 1] && p > 0 && pl_token_included(c, ids[t]))
                                ? shift_cosine(A + (size_t)t * w, Bm + (size_t)t * w, (int)w)
                                : NAN;
        }
    const int min_n = 5;
    cJSON *arr = cJSON_CreateArray();
    if (!arr) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    boot = malloc((size_t)(B > 0 ? B : 1) * (size_t)(P + 1) * sizeof *boot);
    if (!boot) { cJSON_Delete(arr); rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    /* bootstrap: replicate b draws n_in captions with replacement */
    for (int b = 0; b < B; b++) {
        for (int64_t p = 0; p < P; p++) acc[p] = 0, cnt[p] = 0;
        for (int64_t j = 0; j < n_in; j++) {
            int64_t i = (int64_t)(rs_uniform_at(0xc0d1, (uint64_t)b * (uint64_t)n_in + (uint64_t)j) * (double)n_in);
            if (i >= n_in) i = n_in - 1;
            for (int64_t p = 0; p < P; p++)
                if (!isnan(cs[i * P + p])) acc[p] += cs[i * P + p], cnt[p]++;
        }
        for (int64_t p = 0; p < P; p++) boot[(size_t)p * B + b] = cnt[p] ? acc[p] / (double)cnt[p] : NAN;
    }
    for (int64_t p = 1; p < P; p++) {
        double s = 0;
        int64_t n = 0;
        for (int64_t i = 0; i < n_in; i++)
            if (!isnan(cs[i * P + p])) s += cs[i * P + p], n++;
        if (n < min_n) continue;
        double lo = NAN, hi = NAN;
        if (B > 0) {
            double *v = boot + (size_t)p * B;
            lo = stats_percentile(v, B, 0.025); /* reorders v; NaN replicates are skipped */
            hi = stats_percentile(v, B, 0.975);
        }
        cJSON *e = cJSON_CreateObject();
        rs_json_add_num(e, "position", (double)p);
        rs_json_add_num(e, "n_captions", (double)n);
        cJSON *st = cJSON_AddObjectToObject(e, "cos_raw");
        rs_json_add_num(st, "value", s / (double)n);
        rs_json_add_num(st, "ci_lo", lo);
        rs_json_add_num(st, "ci_hi", hi);
        cJSON_AddItemToArray(arr, e);
    }
    *out = arr;
    rc = 0;
done:
    free(da), free(db), free(A), free(Bm), free(ids), free(off), free(cs), free(boot), free(acc), free(cnt);
    store_reader_close(ra);
    store_reader_close(rb);
    return rc;
}

/* ---- spliced CE of the layer's SAE over the caption, in each condition ---- */

/* The image caption i is read with in condition store s (its own, or the mismatched one;
 * the blank condition records its own image's path but reads a grey image). */
static const char *cond_image_path(const pl_ctx *c, int s, int i) {
    int j = s == PL_VLM_MISMATCH ? c->text_mismatch[i] : c->text_image[i];
    return c->man->rows[c->image_row[j]].path;
}

/* Pixel values [3, S, S] of an input of condition store s with image path. */
static int cond_pixels(pl_ctx *c, const paligemma_model *vlm, int s, const char *path, float *pix, rs_err *err) {
    int S = vlm->cfg.vision.image_size;
    rs_image img = {0};
    int rc;
    if (s == PL_VLM_BLANK) {
        rc = rs_image_alloc(&img, 224, 224, err);
        if (!rc) memset(img.rgb, 128, (size_t)224 * 224 * 3); /* the extract stage's blank image */
    } else {
        rc = rs_image_load(path, &img, err);
    }
    if (!rc) rc = rs_siglip_preprocess_with(&img, S, c->cfg->image_processor, NULL, pix, err);
    rs_image_free(&img);
    return rc;
}

/* The PaliGemma inputs of captions [i0, i1) in store s (vlm_text or a condition), built by
 * the front door as the extract stage builds the stores: the caption alone
 * (pg_inputs_add_text), or its image, <bos>, prompt + "\n" (prefix) and the caption after
 * its <bos> + <eos> as the suffix (pg_inputs_add_image). */
static int cond_inputs(pl_ctx *c, const pl_cond_models *m, int s, int i0, int i1, pg_inputs *pi, rs_err *err) {
    int64_t max_len = 1;
    for (int i = i0; i < i1; i++) max_len = c->text_len[i] > max_len ? c->text_len[i] : max_len;
    int32_t *sfx = malloc((size_t)max_len * sizeof *sfx);
    int rc = sfx ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
    for (int i = i0; !rc && i < i1; i++) {
        if (!PL_IS_COND(s)) {
            rc = pg_inputs_add_text(pi, m->vlm, c->text_ids[i], c->text_len[i], NULL, NULL, err);
            continue;
        }
        int64_t ns = pl_caption_suffix(c, i, m->eos, sfx);
        rc = pg_inputs_add_image(pi, m->vlm, cond_image_path(c, s, i), m->prompt, m->n_prompt, sfx, (size_t)ns, NULL,
                                 NULL, NULL, err);
    }
    free(sfx);
    return rc;
}

void pl_cond_batch_free(pl_cond_batch *cb) {
    free(cb->ids), free(cb->off), free(cb->cap0), free(cb->n_cap), free(cb->emask), free(cb->embeds);
    pg_inputs_free(&cb->pi);
    memset(cb, 0, sizeof *cb);
}

int pl_cond_batch_build(pl_ctx *c, const pl_cond_models *m, int s, int i0, int i1, pl_cond_batch *cb, rs_err *err) {
    int img = PL_IS_COND(s), n = i1 - i0, rc = -1;
    memset(cb, 0, sizeof *cb);
    int64_t T = 0;
    /* Gemma-2 reads the LLM store's input (<bos> + caption) as is; PaliGemma the front
       door's inputs */
    if (s != PL_LLM_TEXT && cond_inputs(c, m, s, i0, i1, &cb->pi, err)) {
        pl_cond_batch_free(cb);
        return -1;
    }
    for (int i = i0; i < i1; i++) T += s == PL_LLM_TEXT ? c->text_len[i] : cb->pi.lens[i - i0];
    int32_t *ids = cb->ids = malloc((size_t)T * sizeof *ids);
    int64_t *off = cb->off = malloc(((size_t)n + 1) * sizeof *off);
    cb->cap0 = malloc(((size_t)n + 1) * sizeof *cb->cap0);
    cb->n_cap = malloc(((size_t)n + 1) * sizeof *cb->n_cap);
    uint8_t *emask = cb->emask = img ? calloc((size_t)T, 1) : NULL;
    float *embeds = NULL, *pix = NULL;
    pg_inputs *pi = &cb->pi;
    hook_request ph;
    memset(&ph, 0, sizeof ph);
    if (!ids || !off || !cb->cap0 || !cb->n_cap || (img && !emask)) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    off[0] = 0;
    for (int i = i0; i < i1; i++) {
        int k = i - i0;
        int64_t t = off[k], len = s == PL_LLM_TEXT ? c->text_len[i] : pi->lens[k];
        memcpy(ids + t, s == PL_LLM_TEXT ? c->text_ids[i] : pi->ids[k], (size_t)len * sizeof *ids);
        off[k + 1] = t + len;
        /* the caption's tokens after <bos>: after the prefix (image, <bos>, prompt, "\n") up
           to the suffix's closing <eos>, or after the text's <bos> */
        cb->cap0[k] = img ? t + pi->prefix_len[k] : t + 1;
        cb->n_cap[k] = img ? len - pi->prefix_len[k] - 1 : len - 1;
    }
    if (img) {
        /* the projector output of every image: the tower + projector only (no decoder hook) */
        int S = m->vlm->cfg.vision.image_size, D = m->vlm->cfg.text.hidden_size, N = m->vlm->vision->n_patches;
        size_t npix = (size_t)3 * S * S;
        pix = malloc((size_t)n * npix * sizeof *pix);
        embeds = cb->embeds = calloc((size_t)T * D, sizeof *embeds);
        if (!pix || !embeds) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        for (int k = 0; k < n; k++)
            if (cond_pixels(c, m->vlm, s, pi->image_paths[k], pix + (size_t)k * npix, err)) goto done;
        if (paligemma_hook_parse(m->vlm, "projector.hook_out", &ph, err)) goto done;
        ph.capture = 1;
        paligemma_batch pb = {.n_seqs = n, .offsets = off, .ids = ids, .prefix_len = pi->prefix_len, .n_images = n,
                              .pixel_values = pix};
        if (paligemma_forward(m->vlm, &pb, &ph, 1, NULL, err)) goto done;
        /* image rows (the front door's <image> tokens, N per input) enter the decoder as the
           projector output (gemma2_forward scales by √D) */
        const float norm = (float)sqrt((double)D);
        for (int k = 0; k < n; k++)
            for (int64_t q = 0, row = 0; q < pi->lens[k]; q++) {
                if (pi->kinds[k][q] != PG_TOK_IMAGE) continue;
                int64_t t = off[k] + q;
                emask[t] = 1;
                const float *src = ph.out + ((size_t)k * N + (size_t)row++) * D;
                for (int d = 0; d < D; d++) embeds[(size_t)t * D + d] = src[d] / norm;
            }
    }
    cb->n = n;
    cb->T = T;
    cb->b = (gemma2_batch){.n_seqs = n, .offsets = off, .ids = ids, .embeds = embeds, .embeds_mask = emask,
                           .prefix_len = img ? pi->prefix_len : NULL, .pos_offset = s == PL_LLM_TEXT ? 0 : 1};
    cb->dec = s == PL_LLM_TEXT ? m->llm : m->vlm->text;
    rc = 0;
done:
    free(ph.out);
    free(pix);
    if (rc) pl_cond_batch_free(cb);
    return rc;
}

/* CE with the SAE spliced at `hook` over captions [i0, i1) in condition store s: the rows of
 * the caption's tokens are replaced (spliced pass) or zeroed (zero-ablated pass), and the
 * predictions the caption makes of its own next tokens (at caption token j of tokens
 * 1..n-1, predicting token j+1; so not the <bos> → first token and not the last token →
 * <eos> prediction) are counted. For the LLM and the caption-alone decoder this is the
 * sae-lens convention; in the image conditions the prefix (image, <bos>, prompt, "\n")
 * keeps its activations. The inputs and the image prefix are built once for the nh SAEs
 * (hooks[k], saes[k]); per-caption means and counts into acc[k].seq[3][i], acc[k].w[i]. */
typedef struct {
    double *seq[3], *w;
} ce_acc;

static int cond_ce_chunk(pl_ctx *c, const pl_cond_models *m, int s, int nh, rs_sae *const *saes, const char *const *hooks,
                         int i0, int i1, ce_acc *acc, rs_err *err) {
    int n = i1 - i0, rc = -1;
    pl_cond_batch cb;
    if (pl_cond_batch_build(c, m, s, i0, i1, &cb, err)) return -1;
    const gemma2_model *dec = cb.dec;
    int64_t T = cb.T;
    uint8_t *splice = calloc((size_t)T, 1), *count = calloc((size_t)T, 1);
    splice_ce r = {0};
    if (!splice || !count) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int k = 0; k < n; k++) {
        for (int64_t j = 0; j < cb.n_cap[k]; j++) splice[cb.cap0[k] + j] = 1;
        for (int64_t j = 0; j + 1 < cb.n_cap[k]; j++) count[cb.cap0[k] + j] = 1;
    }
    const gemma2_batch b = cb.b;
    /* the SAEs' passes are independent: with one thread per forward pass (tiny models) they
       run side by side on the coarse threads, each into its own acc[k] (the same numbers) */
    int TK = omp_get_max_threads() == 1 && c->coarse_threads > 1 ? (c->coarse_threads < nh ? c->coarse_threads : nh) : 1;
    if (TK > 1) {
        int *krc = calloc((size_t)nh, sizeof *krc);
        rs_err *kerr = calloc((size_t)nh, sizeof *kerr);
        if (!krc || !kerr) {
            free(krc), free(kerr);
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto done;
        }
#pragma omp parallel for num_threads(TK) schedule(dynamic)
        for (int k = 0; k < nh; k++) {
            splice_ce rk = {0};
            krc[k] = splice_ce_eval_masked(dec, saes[k], hooks[k], &b, splice, count, &rk, &kerr[k]);
            if (krc[k]) continue;
            for (int i = 0; i < n; i++) {
                acc[k].seq[0][i0 + i] = rk.seq_clean[i];
                acc[k].seq[1][i0 + i] = rk.seq_spliced[i];
                acc[k].seq[2][i0 + i] = rk.seq_zero[i];
                acc[k].w[i0 + i] = (double)rk.seq_predictions[i];
            }
            splice_ce_free(&rk);
        }
        int bad = 0;
        for (int k = 0; k < nh && !bad; k++)
            if (krc[k]) *err = kerr[k], bad = 1;
        free(krc), free(kerr);
        if (bad) goto done;
        nh = 0; /* done */
    }
    for (int k = 0; k < nh; k++) {
        if (splice_ce_eval_masked(dec, saes[k], hooks[k], &b, splice, count, &r, err)) goto done;
        for (int i = 0; i < n; i++) {
            acc[k].seq[0][i0 + i] = r.seq_clean[i];
            acc[k].seq[1][i0 + i] = r.seq_spliced[i];
            acc[k].seq[2][i0 + i] = r.seq_zero[i];
            acc[k].w[i0 + i] = (double)r.seq_predictions[i];
        }
        splice_ce_free(&r);
    }
    rc = 0;
done:
    splice_ce_free(&r);
    free(splice), free(count);
    pl_cond_batch_free(&cb);
    return rc;
}

/* CE loss recovered of the nh SAEs (hooks[k]) in condition store s, over all captions, each
 * with a percentile bootstrap over captions (the ratio recomputed from resampled sums), into
 * outs[k]. */
static int cond_ce(pl_ctx *c, const pl_cond_models *m, int s, int nh, rs_sae *const *saes, const char *const *hooks,
                   cJSON *const *outs, rs_err *err) {
    int n = c->n_text, rc = -1, B = c->cfg->probes.bootstrap;
    if (nh < 1 || B < 0) return rs_errf(err, "spliced CE: %d SAEs, %d bootstrap replicates", nh, B);
    ce_acc *acc = calloc((size_t)nh, sizeof *acc);
    double *boot = malloc(((size_t)B + 1) * sizeof(double));
    if (!acc || !boot) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int k = 0; k < nh; k++) {
        for (int q = 0; q < 3; q++) acc[k].seq[q] = calloc((size_t)n, sizeof(double));
        acc[k].w = calloc((size_t)n, sizeof(double));
        if (!acc[k].seq[0] || !acc[k].seq[1] || !acc[k].seq[2] || !acc[k].w) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    }
    int per_img = PL_IS_COND(s) ? 300 : 1; /* rough tokens of an image prefix, for the batch size */
    for (int i0 = 0; i0 < n;) {
        int i1 = i0;
        int64_t bt = 0;
        while (i1 < n && (i1 == i0 || bt + per_img + c->text_len[i1] <= c->cfg->batch_tokens)) bt += per_img + c->text_len[i1++];
        if (cond_ce_chunk(c, m, s, nh, saes, hooks, i0, i1, acc, err)) goto done;
        i0 = i1;
    }
    for (int k = 0; k < nh; k++) {
        double **seq = acc[k].seq, *w = acc[k].w, S[3] = {0, 0, 0}, W = 0;
        cJSON *out = outs[k];
        for (int i = 0; i < n; i++)
            if (w[i] > 0) {
                for (int q = 0; q < 3; q++) S[q] += w[i] * seq[q][i];
                W += w[i];
            }
        double rec = W > 0 && S[2] != S[0] ? (S[2] - S[1]) / (S[2] - S[0]) : NAN, lo = NAN, hi = NAN;
        if (B > 0 && W > 0) {
            int nb = 0;
            for (int b = 0; b < B; b++) {
                double t[3] = {0, 0, 0};
                for (int j = 0; j < n; j++) {
                    int i = (int)(rs_uniform_at(0x5eedce, (uint64_t)b * (uint64_t)n + (uint64_t)j) * n);
                    if (i >= n) i = n - 1;
                    for (int q = 0; q < 3; q++) t[q] += w[i] > 0 ? w[i] * seq[q][i] : 0;
                }
                if (t[2] != t[0]) boot[nb++] = (t[2] - t[1]) / (t[2] - t[0]);
            }
            lo = stats_percentile(boot, nb, 0.025);
            hi = stats_percentile(boot, nb, 0.975);
        }
        cJSON_AddStringToObject(out, "condition", PL_STORE_NAME[s]);
        cJSON *st = cJSON_AddObjectToObject(out, "ce_loss_recovered");
        rs_json_add_num(st, "value", rec);
        rs_json_add_num(st, "ci_lo", lo);
        rs_json_add_num(st, "ci_hi", hi);
        rs_json_add_num(out, "ce_clean", W > 0 ? S[0] / W : NAN);
        rs_json_add_num(out, "ce_spliced", W > 0 ? S[1] / W : NAN);
        rs_json_add_num(out, "ce_zero_ablated", W > 0 ? S[2] / W : NAN);
        rs_json_add_num(out, "delta_lm_loss", W > 0 ? (S[1] - S[0]) / W : NAN);
        rs_json_add_num(out, "n_predictions", W);
        rs_json_add_num(out, "n_captions", n);
    }
    rc = 0;
done:
    for (int k = 0; acc && k < nh; k++) {
        for (int q = 0; q < 3; q++) free(acc[k].seq[q]);
        free(acc[k].w);
    }
    free(acc);
    free(boot);
    return rc;
}

/* The SAE of the hook's layer, if the config has one that reads this hook. */
static int hook_sae(pl_ctx *c, const char *hook, char **sp, char **sh, int *use, rs_err *err) {
    const rs_config *cfg = c->cfg;
    int L = rs_hook_block_index(hook);
    *sp = *sh = NULL;
    *use = 0;
    for (int i = 0; cfg->has_saes && L >= 0 && i < cfg->n_layers; i++)
        if (cfg->layers[i] == L) {
            *sp = rs_config_sae_path(cfg, L);
            *sh = rs_config_sae_hook(cfg, L);
            if (!*sp) return rs_errk(err, RS_ENOMEM, "out of memory");
            rs_sae *sae = NULL;
            if (sae_load(&sae, *sp, *sh, err)) return -1;
            *use = sae->hook_name && !strcmp(sae->hook_name, hook);
            sae_free(sae);
        }
    return 0;
}

/* Summary rows of one shift_run layer object:
 * pair,layer,hook,metric,value,ci_lo,ci_hi,p_value,null_lo,null_hi,q_value. */
static void summary_rows(FILE *f, const char *pair, int layer, const char *hook, const cJSON *L) {
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(L, "shift");
    for (const cJSON *m = sh ? sh->child : NULL; m; m = m->next) {
        if (!cJSON_IsObject(m)) continue;
        fprintf(f, "%s,%d,%s,%s", pair, layer, hook, m->string);
        static const char *K[] = {"value", "ci_lo", "ci_hi", "p_value", "null_lo", "null_hi", "q_value"};
        for (int k = 0; k < 7; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, K[k]);
            if (cJSON_IsNumber(v)) fprintf(f, ",%.9g", v->valuedouble);
            else fputs(",", f);
        }
        fputc('\n', f);
    }
}

int pl_conditions_used(const pl_ctx *c) {
    int any = 0;
    for (int q = 0; q < N_PAIRS; q++) any |= PAIRS[q].b >= PL_VLM_CAPTION && pl_store_used(c, PAIRS[q].b);
    return any;
}

int pl_conditions_fp(pl_ctx *c, char fp[65], rs_err *err) {
    const rs_config *cfg = c->cfg;
    char fps[PL_N_STORES][65];
    for (int i = 0; i < N_CONDS; i++) {
        int s = CONDS[i].store;
        if (!pl_store_used(c, s)) strcpy(fps[s], "-");
        else if (pl_store_fp(c, s, fps[s], err)) return -1;
    }
    pl_fp(fp, "conditions v3 %s %s %s %s %s %s sae=%s path=%s hook=%s boot=%d perm=%d", RS_VERSION, fps[PL_LLM_TEXT],
          fps[PL_VLM_TEXT], fps[PL_VLM_CAPTION], fps[PL_VLM_MISMATCH], fps[PL_VLM_BLANK], c->sae_fp,
          cfg->has_saes ? cfg->sae_path : "-", cfg->sae_hook ? cfg->sae_hook : "-", cfg->probes.bootstrap,
          cfg->shift_permutations);
    return 0;
}

/* One pair at one hook: shift_run's analysis of two stores (no floors: per-model facts,
 * in shift.json): its results.json layer entry. */
static int pair_layer(pl_ctx *c, const pair_def *pd, const shift_acts_src *src, const char *hook, int layer,
                      const char *sp, const char *sh, const char *tokp, cJSON **out, rs_err *err) {
    const rs_config *cfg = c->cfg;
    shift_run_opts so = {.n_boot = cfg->probes.bootstrap, .n_perm = cfg->shift_permutations,
                         .threads = c->coarse_threads, .no_floors = 1, .seed = 0, .top_k = 20,
                         .tokenizer = rs_path_exists(tokp) ? tokp : NULL};
    shift_layer_spec spec = {.layer = layer, .csv_layer = layer, .hook = hook, .sae = sp, .sae_hook = sh};
    shift_run_result *res = NULL;
    *out = NULL;
    if (shift_run_begin(&so, &src[pd->a], &src[pd->b], &res, err) || shift_run_add_layer(res, &src[pd->a], &src[pd->b], &spec, err) ||
        shift_run_finish(res, err)) {
        shift_run_result_free(res);
        return -1;
    }
    *out = shift_layer_json(res, &res->layers[0], 1);
    shift_run_result_free(res);
    return *out ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
}

int pl_pair_shift(pl_ctx *c, int store_a, int store_b, const char *hook, cJSON **out, rs_err *err) {
    const rs_config *cfg = c->cfg;
    pair_def pd = {"", store_a, store_b, ""};
    pl_store_src *st[2] = {0};
    shift_acts_src src[PL_N_STORES];
    char *sp = NULL, *sh = NULL;
    char *tokp = cfg->tokenizer ? strdup(cfg->tokenizer) : rs_path_join(cfg->llm, "tokenizer.json");
    int use = 0, L = rs_hook_block_index(hook), rc = -1;
    *out = NULL;
    if (!tokp) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (hook_sae(c, hook, &sp, &sh, &use, err) || pl_store_source(c, store_a, &st[0], &src[store_a], err) ||
        pl_store_source(c, store_b, &st[1], &src[store_b], err))
        goto done;
    if (pair_layer(c, &pd, src, hook, L >= 0 ? L : 0, use ? sp : NULL, use ? sh : NULL, tokp, out, err)) goto done;
    cJSON_DeleteItemFromObjectCaseSensitive(*out, "top_shifted_tokens");
    cJSON_DeleteItemFromObjectCaseSensitive(*out, "floors");
    rc = 0;
done:
    pl_store_source_close(st[0]);
    pl_store_source_close(st[1]);
    free(sp);
    free(sh);
    free(tokp);
    return rc;
}

int pl_conditions_run(pl_ctx *c, const char **note, rs_err *err) {
    (void)note;
    const rs_config *cfg = c->cfg;
    char *jp = pl_join(c->results, "conditions.json"), *cp = pl_join(c->results, "conditions_summary.csv");
    char *tokp = cfg->tokenizer ? strdup(cfg->tokenizer) : rs_path_join(cfg->llm, "tokenizer.json");
    pl_store_src *stores[PL_N_STORES] = {0};
    shift_acts_src src[PL_N_STORES];
    pl_cond_models cm = {0};
    char **hs_path = NULL, **hs_hook = NULL;
    cJSON *shift_j = NULL;
    int *hs_use = NULL;
    cJSON *root = NULL;
    char *summ = NULL;
    size_t summ_n = 0;
    FILE *summary = NULL;
    int rc = -1;
    if (!jp || !cp || !tokp) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    /* the SAE of each hook's layer, if it reads that hook (loaded once here to learn its hook) */
    hs_path = calloc((size_t)cfg->n_hooks + 1, sizeof *hs_path);
    hs_hook = calloc((size_t)cfg->n_hooks + 1, sizeof *hs_hook);
    hs_use = calloc((size_t)cfg->n_hooks + 1, sizeof *hs_use);
    if (!hs_path || !hs_hook || !hs_use) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int h = 0; h < cfg->n_hooks; h++)
        if (hook_sae(c, cfg->hooks[h], &hs_path[h], &hs_hook[h], &hs_use[h], err)) goto done;
    root = cJSON_CreateObject();
    summary = open_memstream(&summ, &summ_n);
    if (!root || !summary) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    fputs("pair,layer,hook,metric,value,ci_lo,ci_hi,p_value,null_lo,null_hi,q_value\n", summary);
    rs_json_add_num(root, "n_inputs", c->n_text);
    char ci[256];
    snprintf(ci, sizeof ci, "95%% percentile bootstrap over captions (%d replicates)", cfg->probes.bootstrap);
    cJSON_AddStringToObject(root, "ci", ci);
    cJSON_AddStringToObject(root, "rows",
                            "the caption's tokens, identical ids in every condition (the <bos> row and special tokens "
                            "excluded from every metric)");
    cJSON *conds = cJSON_AddArrayToObject(root, "conditions");
    for (int i = 0; i < N_CONDS; i++) {
        if (!pl_store_used(c, CONDS[i].store)) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "letter", CONDS[i].letter);
        cJSON_AddStringToObject(e, "name", CONDS[i].name);
        cJSON_AddStringToObject(e, "store", PL_STORE_NAME[CONDS[i].store]);
        cJSON_AddStringToObject(e, "reads", CONDS[i].what);
        cJSON_AddItemToArray(conds, e);
    }
    /* a-b is the shift stage's comparison (same stores, SAEs, seed, bootstrap and
       permutations): its layer entries are taken from results/shift.json, not recomputed */
    {
        char *sp = pl_join(c->results, "shift.json");
        if (!sp) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        if (rs_path_exists(sp) && rs_json_load(sp, 1u << 30, &shift_j, err)) { free(sp); goto done; }
        free(sp);
    }
    cJSON *pairs = cJSON_AddArrayToObject(root, "pairs");
    for (int q = 0; q < N_PAIRS; q++) {
        const pair_def *pd = &PAIRS[q];
        if (!pl_store_used(c, pd->a) || !pl_store_used(c, pd->b)) continue;
        for (int k = 0; k < 2; k++) {
            int s = k ? pd->b : pd->a;
            if (!stores[s] && pl_store_source(c, s, &stores[s], &src[s], err)) goto done;
        }
        cJSON *pj = cJSON_CreateObject();
        cJSON_AddItemToArray(pairs, pj);
        cJSON_AddStringToObject(pj, "id", pd->id);
        cJSON_AddStringToObject(pj, "a", PL_STORE_NAME[pd->a]);
        cJSON_AddStringToObject(pj, "b", PL_STORE_NAME[pd->b]);
        cJSON_AddStringToObject(pj, "isolates", pd->isolates);
        cJSON *layers = cJSON_AddArrayToObject(pj, "layers");
        cJSON *bypos = cJSON_AddArrayToObject(pj, "by_position");
        for (int h = 0; h < cfg->n_hooks; h++) {
            const char *hook = cfg->hooks[h];
            int L = rs_hook_block_index(hook);
            char *sp = hs_path[h], *sh = hs_hook[h];
            int use_sae = hs_use[h];
            cJSON *lj = NULL;
            if (pd->a == PL_LLM_TEXT && pd->b == PL_VLM_TEXT && shift_j) {
                const cJSON *e;
                cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(shift_j, "layers")) {
                    const char *eh = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "hook"));
                    if (eh && !strcmp(eh, hook)) lj = cJSON_Duplicate(e, 1);
                }
            }
            if (!lj) {
                pl_log(c, "conditions", "%s: %s (%s) vs %s (%s)%s", hook, cond_letter(pd->a), PL_STORE_NAME[pd->a],
                       cond_letter(pd->b), PL_STORE_NAME[pd->b], use_sae ? " with SAE" : "");
                if (pair_layer(c, pd, src, hook, L >= 0 ? L : h, use_sae ? sp : NULL, use_sae ? sh : NULL, tokp, &lj,
                               err)) {
                    rs_err_prefix(err, "conditions %s, %s", pd->id, hook);
                    goto done;
                }
            }
            cJSON_DeleteItemFromObjectCaseSensitive(lj, "layer");
            rs_json_add_num(lj, "layer", L >= 0 ? L : h);
            cJSON_DeleteItemFromObjectCaseSensitive(lj, "top_shifted_tokens");
            cJSON_DeleteItemFromObjectCaseSensitive(lj, "floors"); /* per-model facts, in shift.json */
            cJSON_AddItemToArray(layers, lj);
            cJSON *pos = NULL;
            if (by_position(c, pd->a, pd->b, hook, cfg->probes.bootstrap, &pos, err)) {
                rs_err_prefix(err, "conditions %s, %s, by position", pd->id, hook);
                goto done;
            }
            cJSON *pe = cJSON_CreateObject();
            rs_json_add_num(pe, "layer", L >= 0 ? L : h);
            cJSON_AddStringToObject(pe, "hook", hook);
            cJSON_AddItemToObject(pe, "positions", pos);
            cJSON_AddItemToArray(bypos, pe);
        }
    }
    /* spliced CE of each layer's SAE over the caption, per condition; SAEs in groups of
       CE_GROUP so that a condition's image prefixes are computed once per group */
    {
        enum { CE_GROUP = 4 };
        cJSON *ces = NULL;
        for (int h0 = 0; h0 < cfg->n_hooks;) {
            rs_sae *saes[CE_GROUP] = {0};
            const char *hooks[CE_GROUP];
            cJSON *ents[CE_GROUP];
            int ng = 0, r = 0, h = h0;
            for (; h < cfg->n_hooks && ng < CE_GROUP && !r; h++) {
                char *sp = hs_path[h], *sh = hs_hook[h];
                if (hs_use[h] && !(r = sae_load(&saes[ng], sp, sh, err))) {
                    if (!ces) {
                        ces = cJSON_AddArrayToObject(root, "ce");
                        cJSON_AddStringToObject(root, "ce_definition",
                                                "(CE_zero - CE_spliced) / (CE_zero - CE_clean); the SAE reconstruction "
                                                "replaces (zeros: zero-ablation) the caption's token rows only, and the "
                                                "caption's own next-token predictions are counted (token j predicting "
                                                "j+1 within the caption): the sae-lens convention for llm and vlm_text; "
                                                "in the image conditions the prefix keeps its activations; 95% "
                                                "percentile bootstrap over captions");
                    }
                    hooks[ng] = cfg->hooks[h];
                    ents[ng] = cJSON_CreateObject();
                    cJSON_AddItemToArray(ces, ents[ng]);
                    int L = rs_hook_block_index(cfg->hooks[h]);
                    rs_json_add_num(ents[ng], "layer", L >= 0 ? L : h);
                    cJSON_AddStringToObject(ents[ng], "hook", cfg->hooks[h]);
                    cJSON_AddStringToObject(ents[ng], "sae_path", sp);
                    cJSON_AddArrayToObject(ents[ng], "conditions");
                    ng++;
                }
            }
            if (!r && ng && !cm.llm && !(r = gemma2_open(&cm.llm, cfg->llm, err)) &&
                !(r = paligemma_open(&cm.vlm, cfg->vlm, err)) && pl_store_used(c, PL_VLM_CAPTION))
                r = pl_prompt_ids(c, &cm.prompt, &cm.n_prompt, err) || pl_eos_id(c, &cm.eos, err) ? -1 : 0;
            if (!r && cm.llm && cm.vlm) { /* the decoders at the configured precision */
                cm.llm->be = rs_backend_for(cfg->precision);
                paligemma_set_backend(cm.vlm, rs_backend_for(cfg->precision));
            }
            for (int i = 0; !r && ng && i < N_CONDS; i++) {
                int st = CONDS[i].store;
                if (!pl_store_used(c, st)) continue;
                pl_log(c, "conditions", "spliced CE in %s (%s) at %d hook%s", CONDS[i].letter, PL_STORE_NAME[st], ng,
                       ng == 1 ? "" : "s");
                cJSON *outs[CE_GROUP];
                for (int k = 0; k < ng; k++) {
                    outs[k] = cJSON_CreateObject();
                    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(ents[k], "conditions"), outs[k]);
                }
                r = cond_ce(c, &cm, st, ng, saes, hooks, outs, err);
            }
            for (int k = 0; k < CE_GROUP; k++) sae_free(saes[k]);
            if (r) {
                rs_err_prefix(err, "conditions, spliced CE");
                goto done;
            }
            h0 = h;
        }
    }
    /* one family for Benjamini–Hochberg: metric × layer × pair */
    {
        cJSON *arrs[N_PAIRS];
        int na = 0, n_tests = 0;
        const cJSON *pj;
        cJSON_ArrayForEach(pj, pairs) arrs[na++] = cJSON_GetObjectItemCaseSensitive(pj, "layers");
        if (pl_bh_family(arrs, na, &n_tests, err)) goto done;
        rs_json_add_num(root, "permutations", cfg->shift_permutations);
        rs_json_add_num(root, "n_tests", n_tests);
        cJSON_AddStringToObject(root, "multiple_comparisons",
                                "q_value: Benjamini-Hochberg over the n_tests permutation p-values of this file "
                                "(metric x layer x pair)");
        cJSON_ArrayForEach(pj, pairs) {
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pj, "id"));
            const cJSON *L;
            cJSON_ArrayForEach(L, cJSON_GetObjectItemCaseSensitive(pj, "layers")) {
                const cJSON *lv = cJSON_GetObjectItemCaseSensitive(L, "layer");
                summary_rows(summary, id, cJSON_IsNumber(lv) ? (int)lv->valuedouble : -1,
                             cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(L, "hook")), L);
            }
        }
    }
    fclose(summary);
    summary = NULL;
    if (pl_write_text(cp, summ ? summ : "", err) || pl_write_json(jp, root, err)) goto done;
    pl_log(c, "conditions", "wrote %s", jp);
    rc = 0;
done:
    for (int h = 0; hs_path && h < cfg->n_hooks; h++) free(hs_path[h]);
    for (int h = 0; hs_hook && h < cfg->n_hooks; h++) free(hs_hook[h]);
    free(hs_path);
    free(hs_hook);
    free(hs_use);
    cJSON_Delete(shift_j);
    gemma2_close(cm.llm);
    paligemma_close(cm.vlm);
    free(cm.prompt);
    if (summary) fclose(summary);
    free(summ);
    for (int s = 0; s < PL_N_STORES; s++) pl_store_source_close(stores[s]);
    cJSON_Delete(root);
    free(jp);
    free(cp);
    free(tokp);
    return rc;
}
