/* Downstream stage: does the representation shift go with how well PaliGemma models the
 * caption of its image? Per caption (item):
 *   ce            PaliGemma's teacher-forced CE of the caption given its own image and the
 *                 prompt (condition c, vlm_caption): mean nats per suffix prediction, each
 *                 caption token and the closing <eos> (the training loss of the suffix);
 *   shift@hook    1 − cosine of the caption's pooled representation at the hook (the mean
 *                 over its content tokens; its last token with pool "last"), Gemma-2
 *                 (condition a, llm_text) vs PaliGemma with its image (c), from the stores;
 *   ce_patched    (ablation) the same CE with the caption's rows at the hook replaced by
 *                 Gemma-2's activation for the same caption tokens (llm_text: identical
 *                 ids): "undo the adaptation at that hook"; delta_ce = ce_patched − ce.
 * Per hook: Spearman ρ of shift vs ce and of shift vs delta_ce, with a percentile bootstrap
 * over images, an image-level permutation p-value and BH q-values over the file's tests.
 * Writes results/downstream.json and results/downstream_items.csv (docs/pipeline.md). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "io/csv.h"
#include "base/jsonutil.h"
#include "reprshift/fileio.h"
#include "reprshift/generate.h"
#include "reprshift/probe.h"
#include "reprshift/splice.h"
#include "reprshift/stats.h"
#include "reprshift/store.h"
#include "reprshift/version.h"

#define DS_GROUP 4 /* hooks whose patched passes share one build of the image prefixes */

int pl_downstream_used(const pl_ctx *c) {
    return c->cfg->downstream.enabled && pl_store_used(c, PL_LLM_TEXT) && pl_store_used(c, PL_VLM_CAPTION);
}

int pl_downstream_fp(pl_ctx *c, char fp[65], rs_err *err) {
    const rs_config *cfg = c->cfg;
    char fa[65], fc[65];
    if (pl_store_fp(c, PL_LLM_TEXT, fa, err) || pl_store_fp(c, PL_VLM_CAPTION, fc, err)) return -1;
    /* the caption stores are per token whatever the pool, so the pool enters here (only when
       "last": the mean-pooled fingerprint is the one earlier versions wrote) */
    pl_fp(fp, "downstream v1 %s %s %s ablation=%d boot=%d perm=%d%s", RS_VERSION, fa, fc, cfg->downstream.ablation,
          cfg->downstream.bootstrap, cfg->downstream.permutations, strcmp(cfg->pool, "last") ? "" : " pool=last");
    return 0;
}

/* ---- per-item shift from the stores ---- */

typedef struct {
    float *A;           /* [rows, w] of the hook */
    int64_t rows, w;
} hook_rows;

static int read_hook(pl_ctx *c, int s, const char *hook, hook_rows *h, rs_err *err) {
    return pl_store_read_hook(c, s, hook, &h->A, &h->rows, &h->w, err);
}

/* 1 − cos of the caption's pooled rows (the same rows in both stores), pooled as the config's
 * pool says (as pl_store_features pools captions): "last", the caption's last row; otherwise
 * the mean over its included tokens. */
static void item_shift(pl_ctx *c, const int32_t *ids, const int64_t *off, int n, const hook_rows *a,
                       const hook_rows *b, double *out) {
    int64_t w = a->w;
    int last = !strcmp(c->cfg->pool, "last");
    double *ma = malloc((size_t)w * 2 * sizeof *ma);
    if (!ma) {
        for (int i = 0; i < n; i++) out[i] = NAN;
        return;
    }
    double *mb = ma + w;
    for (int i = 0; i < n; i++) {
        memset(ma, 0, (size_t)w * 2 * sizeof *ma);
        int64_t cnt = 0;
        for (int64_t t = off[i]; t < off[i + 1]; t++) {
            if (last ? t != off[i + 1] - 1 : !pl_token_included(c, ids[t])) continue;
            for (int64_t d = 0; d < w; d++) ma[d] += a->A[t * w + d], mb[d] += b->A[t * w + d];
            cnt++;
        }
        double dot = 0, na = 0, nb = 0;
        for (int64_t d = 0; d < w; d++) dot += ma[d] * mb[d], na += ma[d] * ma[d], nb += mb[d] * mb[d];
        out[i] = cnt && na > 0 && nb > 0 ? 1.0 - dot / sqrt(na * nb) : NAN;
    }
    free(ma);
}

/* ---- the CE passes ---- */

typedef struct {
    const uint8_t *rows; /* [T] rows to replace */
    const float *src;    /* [T, w] their replacements */
} patch_ctx;

static void patch_rows(void *vctx, float *x, int T, int width) {
    const patch_ctx *p = vctx;
    for (int r = 0; r < T; r++)
        if (p->rows[r]) memcpy(x + (size_t)r * width, p->src + (size_t)r * width, (size_t)width * sizeof *x);
}

/* CE of one prediction per sequence: hidden row h[k] (final-norm output) predicting target[k]
 * (each scored as a two-row sequence, as splice.c scores counted rows). */
static int row_ce(const gemma2_model *m, int n, const float *h, const int32_t *target, double *ce, rs_err *err) {
    int D = m->cfg.hidden_size;
    float *hh = malloc((size_t)n * 2 * D * sizeof *hh);
    int32_t *ids = malloc((size_t)n * 2 * sizeof *ids);
    int64_t *off = malloc(((size_t)n + 1) * sizeof *off);
    int rc = hh && ids && off ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
    for (int k = 0; !rc && k < n; k++) {
        memcpy(hh + (size_t)2 * k * D, h + (size_t)k * D, (size_t)D * sizeof *hh);
        memcpy(hh + (size_t)(2 * k + 1) * D, h + (size_t)k * D, (size_t)D * sizeof *hh);
        ids[2 * k] = target[k];
        ids[2 * k + 1] = target[k];
        off[k] = 2 * k;
    }
    if (!rc) {
        off[n] = 2 * n;
        gemma2_batch pb = {.n_seqs = n, .offsets = off, .ids = ids, .pos_offset = 1};
        rc = gemma2_next_token_ce(m, &pb, hh, ce, err);
    }
    free(hh), free(ids), free(off);
    return rc;
}

/* Captions [i0, i1) in condition c: the clean CE (ce != NULL) and, for the ng hooks of the
 * group, the CE with the caption rows patched from llm[g] (Gemma-2's rows, llm_text).
 * Patching the caption rows cannot change the prefix (it is causal with respect to the
 * suffix), so the prefix (image rows, <bos>, prompt, "\n") runs once into a KV cache, whose
 * "\n" row gives the first prediction (of the first caption token), and every pass (clean,
 * and one per hook with the patch as a hook splice) runs only the suffix (caption + <eos>)
 * over the cache: the suffix rows predict the next caption token and finally <eos>. */
static int ds_chunk(pl_ctx *c, const pl_cond_models *m, int i0, int i1, const int64_t *llm_off, double *ce,
                    int64_t *n_tok, int ng, const char *const *hooks, const hook_rows *llm, double *const *cep,
                    rs_err *err) {
    (void)c;
    pl_cond_batch cb;
    if (ng > DS_GROUP) return rs_errf(err, "%d hooks in one group (at most %d)", ng, DS_GROUP);
    if (pl_cond_batch_build(c, m, PL_VLM_CAPTION, i0, i1, &cb, err)) return -1;
    const gemma2_model *dec = cb.dec;
    int n = cb.n, rc = -1, D = dec->cfg.hidden_size, maxlen = 1;
    gemma2_kv_cache *kc = NULL;
    int *plen = malloc(((size_t)n + 1) * sizeof *plen);
    int64_t *poff = malloc(((size_t)n + 1) * sizeof *poff), *soff = malloc(((size_t)n + 1) * sizeof *soff);
    int64_t *sn = malloc(((size_t)n + 1) * sizeof *sn);
    int32_t *target = malloc(((size_t)n + 1) * sizeof *target);
    double *first = malloc(((size_t)n + 1) * sizeof *first), *seq = malloc(((size_t)n + 1) * sizeof *seq);
    int32_t *pids = NULL, *sids = NULL;
    uint8_t *pmask = NULL, *count = NULL, *prow = NULL;
    float *pemb = NULL, *pfinal = NULL, *hrow = NULL, *src = NULL;
    if (!plen || !poff || !soff || !sn || !target || !first || !seq) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    /* rows of caption k in cb: prefix [off, off + P), suffix [off + P, off + len) = caption + <eos> */
    poff[0] = soff[0] = 0;
    for (int k = 0; k < n; k++) {
        int i = i0 + k;
        int64_t P = cb.cap0[k] - cb.off[k], len = cb.off[k + 1] - cb.off[k];
        if (cb.n_cap[k] != llm_off[i + 1] - llm_off[i] - 1 || len - P != cb.n_cap[k] + 1) {
            rs_errf(err, "caption %d: %lld caption tokens in vlm_caption but %lld in llm_text", i,
                    (long long)cb.n_cap[k], (long long)(llm_off[i + 1] - llm_off[i] - 1));
            goto done;
        }
        plen[k] = (int)P;
        poff[k + 1] = poff[k] + P;
        soff[k + 1] = soff[k] + (len - P);
        target[k] = cb.ids[cb.cap0[k]];
        if (len > maxlen) maxlen = (int)len;
    }
    int64_t TP = poff[n], TS = soff[n];
    pids = malloc((size_t)TP * sizeof *pids);
    pmask = calloc((size_t)TP, 1);
    pemb = malloc((size_t)TP * D * sizeof *pemb);
    pfinal = malloc((size_t)TP * D * sizeof *pfinal);
    hrow = malloc((size_t)n * D * sizeof *hrow);
    sids = malloc((size_t)TS * sizeof *sids);
    count = calloc((size_t)TS + 1, 1);
    prow = calloc((size_t)TS + 1, 1);
    if (!pids || !pmask || !pemb || !pfinal || !hrow || !sids || !count || !prow) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (int k = 0; k < n; k++) {
        int64_t P = plen[k], S = soff[k + 1] - soff[k];
        memcpy(pids + poff[k], cb.ids + cb.off[k], (size_t)P * sizeof *pids);
        memcpy(pmask + poff[k], cb.emask + cb.off[k], (size_t)P);
        memcpy(pemb + (size_t)poff[k] * D, cb.embeds + (size_t)cb.off[k] * D, (size_t)P * D * sizeof *pemb);
        memcpy(sids + soff[k], cb.ids + cb.off[k] + P, (size_t)S * sizeof *sids);
        /* the suffix's rows predict the next caption token, the last caption token <eos>; the
           <eos> row predicts nothing. The caption rows (not <eos>) are the ones patched. */
        for (int64_t j = 0; j + 1 < S; j++) count[soff[k] + j] = prow[soff[k] + j] = 1;
    }
    /* the prefix, once, into the cache; its "\n" rows predict the first caption tokens */
    if (gemma2_kv_cache_new(&kc, &dec->cfg, n, maxlen, err)) goto done;
    gemma2_batch pb = {.n_seqs = n, .offsets = poff, .ids = pids, .embeds = pemb, .embeds_mask = pmask,
                       .prefix_len = plen, .pos_offset = 1, .cache = kc};
    if (gemma2_forward(dec, &pb, NULL, 0, pfinal, err)) goto done;
    for (int k = 0; k < n; k++) memcpy(hrow + (size_t)k * D, pfinal + (size_t)(poff[k + 1] - 1) * D, (size_t)D * sizeof *hrow);
    if (row_ce(dec, n, hrow, target, first, err)) goto done;
    /* the suffix over the cache (prefix_len counts from the first cached token: the suffix
       rows are causal), clean and with each hook's caption rows patched from Gemma-2 */
    gemma2_batch sb = {.n_seqs = n, .offsets = soff, .ids = sids, .prefix_len = plen, .pos_offset = 1, .cache = kc};
    int64_t w = 1;
    for (int g = 0; g < ng; g++) w = llm[g].w > w ? llm[g].w : w;
    if (ng > 0 && !(src = malloc((size_t)TS * (size_t)w * sizeof *src))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int pass = ce ? -1 : 0; pass < ng; pass++) {
        hook_request h;
        patch_ctx pc = {.rows = prow, .src = src};
        if (pass >= 0) {
            const hook_rows *l = &llm[pass];
            if (gemma2_hook_parse(&dec->cfg, hooks[pass], &h, err)) goto done;
            if (h.width != l->w) {
                rs_errf(err, "%s: width %d in the VLM decoder but %lld in llm_text", hooks[pass], h.width, (long long)l->w);
                goto done;
            }
            for (int k = 0; k < n; k++)
                memcpy(src + (size_t)soff[k] * l->w, l->A + (size_t)(llm_off[i0 + k] + 1) * l->w,
                       (size_t)cb.n_cap[k] * l->w * sizeof *src);
            h.capture = 0;
            h.out = NULL;
            h.splice = patch_rows;
            h.splice_ctx = &pc;
        }
        for (int k = 0; k < n; k++) kc->len[k] = plen[k]; /* forget the previous pass's suffix */
        if (splice_pass_ce(dec, &sb, pass >= 0 ? &h : NULL, pass >= 0, count, seq, sn, err)) {
            if (pass >= 0) rs_err_prefix(err, "%s", hooks[pass]);
            goto done;
        }
        /* mean over the n_cap + 1 predictions: the "\n" row's, then the suffix's */
        for (int k = 0; k < n; k++) {
            double v = (first[k] + (sn[k] ? seq[k] * (double)sn[k] : 0.0)) / (double)(sn[k] + 1);
            if (pass < 0) ce[i0 + k] = v, n_tok[i0 + k] = sn[k] + 1;
            else cep[pass][i0 + k] = v;
        }
    }
    rc = 0;
done:
    gemma2_kv_cache_free(kc);
    free(plen), free(poff), free(soff), free(sn), free(target), free(first), free(seq);
    free(pids), free(sids), free(pmask), free(count), free(prow), free(pemb), free(pfinal), free(hrow), free(src);
    pl_cond_batch_free(&cb);
    return rc;
}

/* ---- statistics over images ---- */

typedef struct {
    int n, G;            /* items, images */
    int *unit;           /* [n] image index 0..G-1 */
    int *start, *members;/* members of image g: members[start[g] .. start[g+1]) (item order) */
    int *cls_n, *cls_start, *cls_members; /* images by caption count (permutation classes) */
    int max_size;        /* most captions of one image */
} ds_units;

static void units_free(ds_units *u) {
    free(u->unit), free(u->start), free(u->members), free(u->cls_n), free(u->cls_start), free(u->cls_members);
}

static int units_build(const pl_ctx *c, ds_units *u, rs_err *err) {
    int n = c->n_text, NI = c->n_image;
    memset(u, 0, sizeof *u);
    u->n = n;
    int *map = malloc(((size_t)NI + 1) * sizeof *map);
    u->unit = malloc(((size_t)n + 1) * sizeof *u->unit);
    u->start = calloc((size_t)n + 2, sizeof *u->start);
    u->members = malloc(((size_t)n + 1) * sizeof *u->members);
    u->cls_n = calloc((size_t)n + 2, sizeof *u->cls_n);
    u->cls_start = calloc((size_t)n + 2, sizeof *u->cls_start);
    u->cls_members = malloc(((size_t)n + 1) * sizeof *u->cls_members);
    if (!map || !u->unit || !u->start || !u->members || !u->cls_n || !u->cls_start || !u->cls_members) {
        free(map);
        units_free(u);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int j = 0; j < NI; j++) map[j] = -1;
    for (int i = 0; i < n; i++) {
        int j = c->text_image[i];
        if (map[j] < 0) map[j] = u->G++;
        u->unit[i] = map[j];
    }
    free(map);
    int *cnt = u->start + 1; /* counts, then prefix sums */
    for (int i = 0; i < n; i++) cnt[u->unit[i]]++;
    /* classes: images with the same number of captions (cls_n[size] images of that size) */
    for (int g = 0; g < u->G; g++) {
        u->cls_n[cnt[g]]++;
        if (cnt[g] > u->max_size) u->max_size = cnt[g];
    }
    for (int g = 0; g < u->G; g++) u->start[g + 1] += u->start[g];
    int *fill = calloc((size_t)u->G + 1, sizeof *fill);
    if (!fill) { units_free(u); return rs_errk(err, RS_ENOMEM, "out of memory"); }
    for (int i = 0; i < n; i++) u->members[u->start[u->unit[i]] + fill[u->unit[i]]++] = i;
    /* cls_start over sizes 0..n, members in image order */
    for (int s = 1; s <= n + 1; s++) u->cls_start[s] = u->cls_start[s - 1] + u->cls_n[s - 1];
    memset(fill, 0, ((size_t)u->G + 1) * sizeof *fill);
    int *pos = calloc((size_t)n + 2, sizeof *pos);
    if (!pos) { free(fill); units_free(u); return rs_errk(err, RS_ENOMEM, "out of memory"); }
    for (int g = 0; g < u->G; g++) {
        int s = u->start[g + 1] - u->start[g];
        u->cls_members[u->cls_start[s] + pos[s]++] = g;
    }
    free(pos);
    free(fill);
    return 0;
}

typedef struct {
    double rho, lo, hi, p;
    int n, n_perm;
} ds_stat;

/* ρ(x, y) over the items; CI: B resamples of the images (each with all its captions);
 * p: two-sided, y permuted between images with the same number of captions (whole images,
 * caption order kept); p = (1 + #{|ρ_null| ≥ |ρ| − 1e-12}) / (1 + P). */
static int ds_spearman(const ds_units *u, const double *x, const double *y, int B, int P, int threads, ds_stat *st,
                       rs_err *err) {
    int n = u->n;
    if (threads < 1) threads = 1;
    st->rho = st->lo = st->hi = st->p = NAN;
    st->n = st->n_perm = 0;
    /* every buffer the loops need, one set per thread, allocated here: a loop iteration
       never allocates, so a failed allocation is an error, never a replicate left out */
    size_t cap = (size_t)u->G * (size_t)u->max_size + 1, W = cap > (size_t)n + 1 ? cap : (size_t)n + 1;
    size_t per_d = 2 * cap + ((size_t)n + 1) + 4 * W, per_i = 2 * W;
    double *boot = malloc(((size_t)B + 1) * sizeof *boot), *null = malloc(((size_t)P + 1) * sizeof *null);
    double *dws = malloc((size_t)threads * per_d * sizeof *dws);
    int *iws = malloc((size_t)threads * per_i * sizeof *iws);
    int64_t *pws = malloc((size_t)threads * ((size_t)u->G + 1) * sizeof *pws);
    int rc = 0;
    if (!boot || !null || !dws || !iws || !pws) { rc = rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    st->rho = stats_spearman_ws(x, y, n, &st->n, dws + 2 * cap + (size_t)n + 1, iws);
#pragma omp parallel for num_threads(threads) schedule(dynamic)
    for (int b = 0; b < B; b++) {
        int t = omp_get_thread_num();
        double *xs = dws + (size_t)t * per_d, *ys = xs + cap, *w = xs + 2 * cap + (size_t)n + 1;
        int m = 0;
        for (int j = 0; j < u->G; j++) {
            int g = (int)(rs_uniform_at(0xd0e57ea3, (uint64_t)b * (uint64_t)u->G + (uint64_t)j) * u->G);
            if (g >= u->G) g = u->G - 1;
            for (int q = u->start[g]; q < u->start[g + 1]; q++) xs[m] = x[u->members[q]], ys[m++] = y[u->members[q]];
        }
        boot[b] = stats_spearman_ws(xs, ys, m, NULL, w, iws + (size_t)t * per_i);
    }
    if (B > 0) {
        st->lo = stats_percentile(boot, B, 0.025);
        st->hi = stats_percentile(boot, B, 0.975);
    }
    if (P > 0 && isfinite(st->rho)) {
#pragma omp parallel for num_threads(threads) schedule(dynamic)
        for (int r = 0; r < P; r++) {
            int t = omp_get_thread_num();
            double *yp = dws + (size_t)t * per_d + 2 * cap, *w = yp + (size_t)n + 1;
            int64_t *perm = pws + (size_t)t * ((size_t)u->G + 1);
            for (int s = 1; s <= n; s++) {
                int m = u->cls_n[s];
                if (!m) continue;
                const int *gs = u->cls_members + u->cls_start[s];
                stats_permutation(0x5eed0d5 ^ ((uint64_t)s * 0x9E3779B97F4A7C15ull), r, m, perm);
                for (int k = 0; k < m; k++) {
                    int g = gs[k], h = gs[perm[k]];
                    for (int q = 0; q < s; q++) yp[u->members[u->start[g] + q]] = y[u->members[u->start[h] + q]];
                }
            }
            null[r] = fabs(stats_spearman_ws(x, yp, n, NULL, w, iws + (size_t)t * per_i));
        }
        /* two-sided, add-one; a null value equal to the observed one up to rounding (1e-12:
           the same rank pairs summed in another order) counts as at least as extreme */
        double obs = fabs(st->rho) - 1e-12;
        int ge = 0, nf = 0;
        for (int r = 0; r < P; r++)
            if (isfinite(null[r])) nf++, ge += null[r] >= obs;
        st->p = nf ? (1.0 + ge) / (1.0 + nf) : NAN;
        st->n_perm = nf;
    }
done:
    free(boot), free(null), free(dws), free(iws), free(pws);
    return rc;
}

static cJSON *stat_json(const ds_stat *s) {
    cJSON *o = rs_json_stat(s->rho, s->lo, s->hi);
    if (!o) return NULL;
    rs_json_add_num(o, "p_value", s->p);
    rs_json_add_num(o, "q_value", NAN);
    rs_json_add_num(o, "n", s->n);
    return o;
}

static double mean_finite(const double *v, int n) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) s += v[i], k++;
    return k ? s / k : NAN;
}

int pl_downstream_run(pl_ctx *c, const char **note, rs_err *err) {
    (void)note;
    const rs_config *cfg = c->cfg;
    int n = c->n_text, H = cfg->n_hooks, abl = cfg->downstream.ablation, rc = -1;
    int B = cfg->downstream.bootstrap, P = cfg->downstream.permutations;
    char *jp = pl_join(c->results, "downstream.json"), *cp = pl_join(c->results, "downstream_items.csv");
    char *llm_dir = pl_join(c->acts, PL_STORE_NAME[PL_LLM_TEXT]);
    pl_cond_models cm = {0};
    store_reader *lr = NULL;
    int32_t *ids = NULL;
    int64_t *off = NULL, n_in = 0, rr, ww;
    double *ce = calloc((size_t)n + 1, sizeof *ce), *shift = calloc((size_t)n * H + 1, sizeof *shift);
    double *cep = calloc((size_t)n * H + 1, sizeof *cep), *dce = calloc((size_t)n + 1, sizeof *dce);
    int64_t *ntok = calloc((size_t)n + 1, sizeof *ntok);
    hook_rows hr[DS_GROUP];
    memset(hr, 0, sizeof hr);
    ds_units u = {0};
    cJSON *root = NULL;
    char *csv = NULL;
    size_t csv_n = 0;
    FILE *f = NULL;
    if (!jp || !cp || !llm_dir || !ce || !shift || !cep || !dce || !ntok) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (store_reader_open(&lr, llm_dir, err) || store_read_raw(lr, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, err) ||
        store_read_offsets(lr, "offsets", &off, &n_in, err))
        goto done;
    if (n_in != n) { rs_errf(err, "llm_text holds %lld captions, the dataset %d", (long long)n_in, n); goto done; }
    if (units_build(c, &u, err)) goto done;
    if (paligemma_open(&cm.vlm, cfg->vlm, err) || pl_prompt_ids(c, &cm.prompt, &cm.n_prompt, err) ||
        pl_eos_id(c, &cm.eos, err))
        goto done;
    /* models.precision, as the stores it reads (their fingerprints, part of this stage's, say it) */
    paligemma_set_backend(cm.vlm, rs_backend_for(cfg->precision));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pl_log(c, "downstream", "caption CE with the own image for %d captions (%d images)%s", n, u.G,
           abl ? ", and with each hook's caption rows patched from Gemma-2" : "");
    /* hooks in groups: the shift from the stores, and the patched passes sharing the chunks'
       image prefixes; the clean CE with the first group */
    for (int h0 = 0; h0 < H || (h0 == 0 && H == 0); h0 += DS_GROUP) {
        int ng = H - h0 < DS_GROUP ? H - h0 : DS_GROUP;
        const char *hooks[DS_GROUP];
        double *cepg[DS_GROUP];
        for (int g = 0; g < ng; g++) {
            hook_rows cr = {0};
            hooks[g] = cfg->hooks[h0 + g];
            cepg[g] = cep + (size_t)(h0 + g) * n;
            if (read_hook(c, PL_LLM_TEXT, hooks[g], &hr[g], err) || read_hook(c, PL_VLM_CAPTION, hooks[g], &cr, err)) {
                free(cr.A);
                goto done;
            }
            if (cr.rows != hr[g].rows || cr.w != hr[g].w || hr[g].rows != off[n]) {
                rs_errf(err, "%s: llm_text has %lld×%lld rows, vlm_caption %lld×%lld", hooks[g], (long long)hr[g].rows,
                        (long long)hr[g].w, (long long)cr.rows, (long long)cr.w);
                free(cr.A);
                goto done;
            }
            item_shift(c, ids, off, n, &hr[g], &cr, shift + (size_t)(h0 + g) * n);
            free(cr.A);
        }
        if (h0 == 0 || abl) {
            int per_img = 300; /* rough tokens of an image prefix, for the batch size */
            for (int i0 = 0; i0 < n;) {
                int i1 = i0;
                int64_t bt = 0;
                while (i1 < n && (i1 == i0 || bt + per_img + c->text_len[i1] <= cfg->batch_tokens))
                    bt += per_img + c->text_len[i1++];
                if (ds_chunk(c, &cm, i0, i1, off, h0 == 0 ? ce : NULL, ntok, abl ? ng : 0, hooks, hr, cepg, err)) {
                    rs_err_prefix(err, "downstream, captions %d-%d", i0, i1 - 1);
                    goto done;
                }
                i0 = i1;
            }
        }
        for (int g = 0; g < DS_GROUP; g++) free(hr[g].A), hr[g].A = NULL;
        if (H == 0) break;
    }

    /* downstream.json */
    root = cJSON_CreateObject();
    if (!root) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    rs_json_add_num(root, "n_captions", n);
    rs_json_add_num(root, "n_images", u.G);
    cJSON_AddStringToObject(root, "condition", "vlm_caption");
    cJSON_AddStringToObject(root, "ce_definition",
                            "PaliGemma (condition c: its own image, <bos>, prompt, \"\\n\" as the prefix, then the "
                            "caption + <eos> as the suffix), teacher-forced: mean next-token cross-entropy in nats over "
                            "the suffix's predictions, i.e. every caption token and the closing <eos> (<eos> included; "
                            "n_tokens = caption tokens + 1); = transformers' PaliGemmaForConditionalGeneration loss with "
                            "the processor's suffix labels");
    cJSON_AddStringToObject(root, "shift_definition",
                            strcmp(cfg->pool, "last")
                                ? "1 - cosine (dimensionless, 0..2) of the caption's mean-pooled representation at the "
                                  "hook: Gemma-2 reading <bos> caption (condition a, acts/llm_text) vs PaliGemma reading "
                                  "it after its own image (condition c, acts/vlm_caption); the mean over the caption's "
                                  "content tokens (not <bos>/<eos>/<pad> nor whitespace-only pieces), the same rows in "
                                  "both"
                                : "1 - cosine (dimensionless, 0..2) of the caption's last-token representation at the "
                                  "hook (pool: last): Gemma-2 reading <bos> caption (condition a, acts/llm_text) vs "
                                  "PaliGemma reading it after its own image (condition c, acts/vlm_caption); the row of "
                                  "the caption's last token (before the suffix's <eos>) in both");
    cJSON_AddStringToObject(root, "ablation_definition",
                            abl ? "ce_patched: the same CE with the caption's token rows (after the prefix, not the "
                                  "suffix's <eos>) at the hook replaced by Gemma-2's activation at that hook for the "
                                  "same caption tokens (acts/llm_text; identical ids); the prefix keeps its "
                                  "activations. delta_ce = ce_patched - ce (> 0: undoing the adaptation there hurts)"
                                : "off (downstream.ablation = false)");
    char txt[512];
    snprintf(txt, sizeof txt, "95%% percentile bootstrap over images (%d resamples of the %d images, each with all "
             "its captions)", B, u.G);
    cJSON_AddStringToObject(root, "ci", txt);
    snprintf(txt, sizeof txt, "two-sided: p = (1 + #{|rho_null| >= |rho| - 1e-12}) / (1 + %d); the CE values "
             "permuted between images with the same number of captions (whole images)", P);
    cJSON_AddStringToObject(root, "p_value", txt);
    rs_json_add_num(root, "bootstrap", B);
    rs_json_add_num(root, "permutations", P);
    {
        /* mean CE with its bootstrap over images */
        double *bm = malloc(((size_t)B + 1) * sizeof *bm);
        if (!bm) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        for (int b = 0; b < B; b++) {
            double s = 0;
            int k = 0;
            for (int j = 0; j < u.G; j++) {
                int g = (int)(rs_uniform_at(0xd0e57ea3, (uint64_t)b * (uint64_t)u.G + (uint64_t)j) * u.G);
                if (g >= u.G) g = u.G - 1;
                for (int q = u.start[g]; q < u.start[g + 1]; q++)
                    if (isfinite(ce[u.members[q]])) s += ce[u.members[q]], k++;
            }
            bm[b] = k ? s / k : NAN;
        }
        cJSON_AddItemToObject(root, "ce_mean",
                              rs_json_stat(mean_finite(ce, n), B ? stats_percentile(bm, B, 0.025) : NAN,
                                           B ? stats_percentile(bm, B, 0.975) : NAN));
        free(bm);
    }
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    int nt = 0;
    double *pv = malloc(((size_t)H * 2 + 1) * sizeof *pv), *qv = malloc(((size_t)H * 2 + 1) * sizeof *qv);
    cJSON **sj = calloc((size_t)H * 2 + 1, sizeof *sj);
    if (!pv || !qv || !sj) {
        free(pv), free(qv), free(sj);
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    int bad = 0;
    for (int h = 0; h < H && !bad; h++) {
        const char *hook = cfg->hooks[h];
        int L = rs_hook_block_index(hook);
        const double *sh = shift + (size_t)h * n, *cp_h = cep + (size_t)h * n;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(layers, e);
        rs_json_add_num(e, "layer", L >= 0 ? L : h);
        cJSON_AddStringToObject(e, "hook", hook);
        rs_json_add_num(e, "shift_mean", mean_finite(sh, n));
        ds_stat st;
        if (ds_spearman(&u, sh, ce, B, P, c->coarse_threads, &st, err)) { bad = 1; break; }
        cJSON_AddItemToObject(e, "rho_shift_ce", sj[nt] = stat_json(&st));
        pv[nt++] = st.p;
        if (abl) {
            for (int i = 0; i < n; i++) dce[i] = cp_h[i] - ce[i];
            rs_json_add_num(e, "ce_patched_mean", mean_finite(cp_h, n));
            rs_json_add_num(e, "delta_ce_mean", mean_finite(dce, n));
            if (ds_spearman(&u, sh, dce, B, P, c->coarse_threads, &st, err)) { bad = 1; break; }
            cJSON_AddItemToObject(e, "rho_shift_delta_ce", sj[nt] = stat_json(&st));
            pv[nt++] = st.p;
        }
    }
    int m_tests = 0;
    if (!bad && stats_bh_qvalues(pv, nt, qv)) bad = rs_errk(err, RS_ENOMEM, "out of memory");
    for (int k = 0; !bad && k < nt; k++) {
        if (isfinite(pv[k])) m_tests++;
        if (sj[k]) cJSON_ReplaceItemInObjectCaseSensitive(sj[k], "q_value", rs_json_number(qv[k]));
    }
    free(pv), free(qv), free(sj);
    if (bad) goto done;
    rs_json_add_num(root, "n_tests", m_tests);
    cJSON_AddStringToObject(root, "multiple_comparisons",
                            "q_value: Benjamini-Hochberg over the n_tests permutation p-values of this file (shift vs "
                            "ce and shift vs delta_ce, every hook)");

    /* downstream_items.csv */
    f = open_memstream(&csv, &csv_n);
    if (!f) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    fputs("item,caption_id,image_id,file_name,label,n_tokens,ce", f);
    for (int h = 0; h < H; h++) {
        fprintf(f, ",shift@%s", cfg->hooks[h]);
        if (abl) fprintf(f, ",ce_patched@%s,delta_ce@%s", cfg->hooks[h], cfg->hooks[h]);
    }
    fputc('\n', f);
    for (int i = 0; i < n; i++) {
        const rs_manifest_row *mr = &c->man->rows[c->text_row[i]];
        const rs_manifest_row *ir = &c->man->rows[c->image_row[c->text_image[i]]];
        fprintf(f, "%d,%lld,%lld,", i, (long long)mr->caption_id, (long long)ir->image_id);
        rs_csv_write_field(f, ir->file_name);
        fputc(',', f);
        rs_csv_write_field(f, c->labels[c->text_label[i]]);
        fprintf(f, ",%lld,%.9g", (long long)ntok[i], ce[i]);
        for (int h = 0; h < H; h++) {
            fprintf(f, ",%.9g", shift[(size_t)h * n + i]);
            if (abl) fprintf(f, ",%.9g,%.9g", cep[(size_t)h * n + i], cep[(size_t)h * n + i] - ce[i]);
        }
        fputc('\n', f);
    }
    fclose(f);
    f = NULL;
    if (pl_write_text(cp, csv ? csv : "", err) || pl_write_json(jp, root, err)) goto done;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pl_log(c, "downstream", "mean caption CE %.4f nats/token (%.2f s) -> %s", mean_finite(ce, n),
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), jp);
    rc = 0;
done:
    if (f) fclose(f);
    free(csv);
    cJSON_Delete(root);
    for (int g = 0; g < DS_GROUP; g++) free(hr[g].A);
    units_free(&u);
    paligemma_close(cm.vlm);
    free(cm.prompt);
    store_reader_close(lr);
    free(ids), free(off), free(ce), free(shift), free(cep), free(dce), free(ntok);
    free(jp), free(cp), free(llm_dir);
    return rc;
}
