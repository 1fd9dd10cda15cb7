/* One layer of a shift run (shift_run.h): rows, SAE fit, the comparison, floors, feature and
 * token rankings, into a shift_layer. Nothing here writes files (shift_write.c does).
 * Row selection: rows whose token id is one of the source's special ids (shift_acts_src:
 * the model's <bos>, <eos>, <pad>) are excluded unless keep_special — BOS has a norm orders
 * of magnitude above other tokens and would dominate every mean. Excluded rows still get
 * fit metrics, reported separately. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/shift_run_internal.h"
#include "analysis/categories.h"
#include "reprshift/sae.h"
#include "reprshift/sae_fit.h"
#include "reprshift/shift.h"
#include "reprshift/tokenizer.h"

const int SHIFT_RUN_ORDER[12] = {SHIFT_COS_RAW,      SHIFT_COS_CENTRED,    SHIFT_L2_RAW,     SHIFT_CKA_LINEAR,
                                 SHIFT_CKA_DEBIASED, SHIFT_COS_FEAT,       SHIFT_L2_FEAT,    SHIFT_JACCARD_TOKEN,
                                 SHIFT_JACCARD_FEATURE, SHIFT_JS_TOKEN,    SHIFT_JS_MASS,    SHIFT_PEARSON_MEAN_FEAT};

const char *const SHIFT_FEATURE_LIST_NAME[SHIFT_N_FEATURE_LISTS] = {
    "gained_frequency",       "lost_frequency", "gained_mean_activation", "lost_mean_activation",
    "gained_frequency_freq_matched", "lost_frequency_freq_matched"};

/* ---- small helpers ---- */

typedef struct {
    const double *key;
    int desc;
} sort_ctx;
static sort_ctx SORT; /* qsort has no context argument in C11; used single-threaded only */

static int cmp_idx(const void *a, const void *b) {
    double x = SORT.key[*(const int64_t *)a], y = SORT.key[*(const int64_t *)b];
    if (x == y) return (*(const int64_t *)a > *(const int64_t *)b) - (*(const int64_t *)a < *(const int64_t *)b);
    return SORT.desc ? (x < y) - (x > y) : (x > y) - (x < y);
}

void shift_sort_idx(int64_t *idx, int64_t n, const double *key, int desc) {
    SORT.key = key;
    SORT.desc = desc;
    qsort(idx, (size_t)n, sizeof *idx, cmp_idx);
}

char *shift_subst_layer(const char *pat, int layer) {
    if (!pat) return NULL;
    const char *p = strstr(pat, "{layer}");
    size_t n = strlen(pat) + 16;
    char *s = malloc(n);
    if (!s) return NULL;
    if (!p || layer < 0) snprintf(s, n, "%s", pat);
    else snprintf(s, n, "%.*s%d%s", (int)(p - pat), pat, layer, p + 7);
    return s;
}

const char *shift_test_text(int k, const shift_layer *L, char *buf, size_t cap) {
    const shift_opts *so = &L->so;
    const shift_result *r = &L->r;
    if (so->n_perm <= 0) return "none: 0 permutations requested";
    if (!shift_metric_permutable(k)) return "none: pairing-invariant (compares per-model totals)";
    if (!isfinite(shift_metric_stat(r, k)->value)) return "none: value undefined";
    if ((k == SHIFT_CKA_LINEAR || k == SHIFT_CKA_DEBIASED) && r->n_rows > so->perm_cka_max_rows) {
        snprintf(buf, cap, "none: more than %lld rows (the CKA null needs two n*n Gram matrices)",
                 (long long)so->perm_cka_max_rows);
        return buf;
    }
    if (r->null[k].n_perm == 0) return "none: every permuted value undefined";
    snprintf(buf, cap, "permutation of the row pairing (%d permutations; one-sided: %s)", r->null[k].n_perm,
             shift_metric_direction(k) == STATS_SIM ? "null >= observed" : "null <= observed");
    return buf;
}

void shift_layer_free(shift_layer *L) {
    if (!L) return;
    free(L->hook);
    free(L->sae.path);
    free(L->sae.hook_name);
    free(L->sae.name);
    free(L->sae.neuronpedia);
    shift_result_free(&L->r);
    for (int i = 0; i < L->n_floors; i++) {
        free(L->floors[i].unavailable);
        shift_result_free(&L->floors[i].r);
    }
    free(L->unit_tok);
    free(L->unit_rank);
    free(L->dfreq);
    free(L->dmean);
    free(L->excess);
    for (int q = 0; q < SHIFT_N_FEATURE_LISTS; q++) {
        free(L->lists[q].feat);
        free(L->lists[q].ci);
    }
    free(L->cat_sum);
    free(L->types);
    memset(L, 0, sizeof *L);
}

static char *dup_or_null(const char *s, int *oom) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = 1;
    return d;
}

/* ---- the working set of one layer ---- */

typedef struct {
    const shift_run_result *res;
    const shift_run_opts *o;
    const shift_acts_src *fa, *fb;
    shift_layer *L;
    const float *A, *B;
    float *ownA, *ownB;
    int d;
    const char *hname;
    const char *sae_path;
    rs_sae *sae;
    uint8_t *inc_a, *inc_b;
    /* compared units: ca/cb [U, d]; pooled: the included token rows xa/xb with offsets oa/ob */
    float *ca, *cb, *xa, *xb;
    int64_t *oa, *ob, *uoff;
    int64_t U, G;
    sae_sparse sa, sb, ta, tb;
} layer_work;

static void work_free(layer_work *w) {
    free(w->ownA);
    free(w->ownB);
    sae_free(w->sae);
    free(w->inc_a);
    free(w->inc_b);
    free(w->ca);
    free(w->cb);
    free(w->xa);
    free(w->xb);
    free(w->oa);
    free(w->ob);
    free(w->uoff);
    sae_sparse_free(&w->sa);
    sae_sparse_free(&w->sb);
    sae_sparse_free(&w->ta);
    sae_sparse_free(&w->tb);
}

static int oom(layer_work *w, rs_err *err) {
    return rs_errk(err, RS_ENOMEM, "out of memory (layer hook '%s')", w->hname ? w->hname : "?");
}

/* The activations of hook from src, checked: [n_tok, d] and finite. */
static int read_acts(const shift_acts_src *s, const char *hook, const float **data, float **owned, int *width,
                     const char **name, rs_err *err) {
    int64_t rows = 0;
    *owned = NULL;
    if (s->read(s->ctx, hook, data, owned, &rows, width, name, err)) return -1;
    if (rows != s->n_tok)
        return rs_errf(err, "%s: tensor '%s' must be [tokens=%lld, d]", s->label, *name, (long long)s->n_tok);
    for (int64_t r = 0; r < s->n_tok; r++)
        for (int i = 0; i < *width; i++)
            if (!isfinite((*data)[(size_t)r * *width + i]))
                return rs_errf(err, "%s: '%s' row %lld column %d is not finite (NaN/Inf)", s->label, *name,
                               (long long)r, i);
    return 0;
}

static int is_special(const shift_acts_src *f, int32_t id) {
    for (int k = 0; k < f->n_special; k++)
        if (id == f->special[k]) return 1;
    return 0;
}

/* Row masks: each source's special ids (shift_acts_src.special) and, with a tokenizer,
 * whitespace-only pieces are excluded. Token-aligned rows are the same tokens in both
 * sources: a row special in either is excluded from both. */
static int row_masks(layer_work *w, rs_err *err) {
    const rs_tokenizer *tok = w->res->tok;
    w->inc_a = malloc((size_t)w->fa->n_tok + 1);
    w->inc_b = malloc((size_t)w->fb->n_tok + 1);
    if (!w->inc_a || !w->inc_b) return oom(w, err);
    for (int side = 0; side < 2; side++) {
        const shift_acts_src *f = side ? w->fb : w->fa;
        uint8_t *inc = side ? w->inc_b : w->inc_a;
        for (int64_t t = 0; t < f->n_tok; t++)
            inc[t] = w->o->keep_special || (!is_special(f, f->ids[t]) && !(tok && tok_is_blank(tok, f->ids[t])));
    }
    if (w->res->aligned)
        for (int64_t t = 0; t < w->fa->n_tok; t++) w->inc_a[t] = w->inc_b[t] = w->inc_a[t] && w->inc_b[t];
    return 0;
}

static const char *hook_source(const char *sae_hook, const rs_sae *sae) {
    return sae_hook ? "command line" : sae->sae_name ? "SAE registry (sae-lens)" : sae->hook_from_path ? "derived from path"
                                                                                                        : "SAE config";
}

/* Load the SAE, check it against the activations, note what it is, and its fit per model. */
static int sae_and_fit(layer_work *w, const shift_layer_spec *spec, rs_err *err) {
    shift_layer *L = w->L;
    if (sae_load(&w->sae, w->sae_path, spec->sae_hook, err)) return -1;
    if (sae_check_hook(w->sae, w->hname, w->o->allow_hook_mismatch, err)) return -1;
    const rs_sae *sae = w->sae;
    if (sae->d_in != w->d)
        return rs_errf(err, "%s: SAE d_in %d does not match the activation width %d of '%s' in %s", w->sae_path,
                       sae->d_in, w->d, w->hname, w->fa->label);
    int bad = 0;
    L->has_sae = 1;
    L->sae.path = dup_or_null(w->sae_path, &bad);
    L->sae.hook_name = dup_or_null(sae->hook_name, &bad);
    L->sae.name = dup_or_null(sae->sae_name, &bad);
    L->sae.neuronpedia = dup_or_null(sae->neuronpedia, &bad);
    if (bad) return oom(w, err);
    L->sae.format = sae->format == SAE_FORMAT_GEMMA_SCOPE_NPZ ? "gemma_scope_npz" : "sae_lens";
    L->sae.architecture = sae_arch_name(sae->arch);
    L->sae.d_in = sae->d_in;
    L->sae.d_sae = sae->d_sae;
    L->sae.is_topk = sae->arch == SAE_ARCH_TOPK;
    L->sae.k = sae->k;
    L->sae.hook_source = hook_source(spec->sae_hook, sae);
    L->sae.hook_mismatch_allowed = w->o->allow_hook_mismatch;
    /* fit quality per model, special rows separately */
    if (sae_fit_eval(sae, w->A, w->fa->n_tok, w->inc_a, &L->fit_a, &L->fit_a_special, NULL, err)) {
        rs_err_prefix(err, "%s '%s'", w->fa->label, w->hname);
        return -1;
    }
    if (sae_fit_eval(sae, w->B, w->fb->n_tok, w->inc_b, &L->fit_b, &L->fit_b_special, NULL, err)) {
        rs_err_prefix(err, "%s '%s'", w->fb->label, w->hname);
        return -1;
    }
    return 0;
}

/* Aligned units: the included tokens (identical in both files), grouped by input. */
static int units_aligned(layer_work *w, rs_err *err) {
    const shift_acts_src *fa = w->fa;
    int d = w->d;
    int64_t U = 0, G = 0;
    w->L->unit_tok = malloc((size_t)fa->n_tok * sizeof *w->L->unit_tok + 1);
    if (!w->L->unit_tok) return oom(w, err);
    int64_t *unit_tok = w->L->unit_tok;
    w->uoff[0] = 0;
    for (int64_t i = 0; i < fa->n_in; i++) {
        int64_t before = U;
        for (int64_t t = fa->off[i]; t < fa->off[i + 1]; t++)
            if (w->inc_a[t]) unit_tok[U++] = t;
        if (U > before) w->uoff[++G] = U;
    }
    if (U == 0) return rs_errf(err, "%s: no rows left after excluding special tokens", fa->label);
    w->ca = malloc((size_t)U * d * sizeof *w->ca);
    w->cb = malloc((size_t)U * d * sizeof *w->cb);
    if (!w->ca || !w->cb) return oom(w, err);
    for (int64_t u = 0; u < U; u++) {
        memcpy(w->ca + (size_t)u * d, w->A + (size_t)unit_tok[u] * d, (size_t)d * sizeof *w->ca);
        memcpy(w->cb + (size_t)u * d, w->B + (size_t)unit_tok[u] * d, (size_t)d * sizeof *w->cb);
    }
    w->U = U;
    w->G = G;
    if (w->sae && (sae_encode_sparse(w->sae, w->ca, U, &w->sa, err) || sae_encode_sparse(w->sae, w->cb, U, &w->sb, err)))
        return -1;
    return 0;
}

/* Pooled features of the kept inputs: the mean of their token features. */
static int pooled_features(layer_work *w, rs_err *err) {
    int64_t U = w->U;
    const int64_t *sel = w->L->unit_tok;
    sae_sparse pa = {0}, pb = {0};
    int rc = -1;
    /* pool all inputs, then pick the kept ones */
    if (sae_sparse_pool_mean(&w->ta, w->oa, w->fa->n_in, &pa, err) ||
        sae_sparse_pool_mean(&w->tb, w->ob, w->fa->n_in, &pb, err))
        goto done;
    sae_sparse *sa = &w->sa, *sb = &w->sb;
    sa->d_sae = sb->d_sae = w->sae->d_sae;
    sa->row_ptr = calloc((size_t)U + 1, sizeof(int64_t));
    sb->row_ptr = calloc((size_t)U + 1, sizeof(int64_t));
    size_t za = (size_t)pa.row_ptr[pa.n] + 1, zb = (size_t)pb.row_ptr[pb.n] + 1;
    sa->idx = malloc(za * sizeof(int32_t));
    sa->val = malloc(za * sizeof(float));
    sb->idx = malloc(zb * sizeof(int32_t));
    sb->val = malloc(zb * sizeof(float));
    if (!sa->row_ptr || !sb->row_ptr || !sa->idx || !sa->val || !sb->idx || !sb->val) {
        oom(w, err);
        goto done;
    }
    for (int64_t u = 0; u < U; u++) {
        int64_t i = sel[u];
        for (int side = 0; side < 2; side++) {
            const sae_sparse *src = side ? &pb : &pa;
            sae_sparse *dst = side ? sb : sa;
            int64_t z0 = dst->row_ptr[u];
            for (int64_t z = src->row_ptr[i]; z < src->row_ptr[i + 1]; z++, z0++) {
                dst->idx[z0] = src->idx[z];
                dst->val[z0] = src->val[z];
            }
            dst->row_ptr[u + 1] = z0;
            dst->n = u + 1;
        }
    }
    rc = 0;
done:
    sae_sparse_free(&pa);
    sae_sparse_free(&pb);
    return rc;
}

/* Pooled units: per-input means over included tokens; inputs empty in either model are dropped. */
static int units_pooled(layer_work *w, rs_err *err) {
    const shift_acts_src *fa = w->fa, *fb = w->fb;
    int d = w->d;
    int64_t na = 0, nb = 0, U = 0;
    for (int64_t t = 0; t < fa->n_tok; t++) na += w->inc_a[t];
    for (int64_t t = 0; t < fb->n_tok; t++) nb += w->inc_b[t];
    w->xa = malloc((size_t)(na ? na : 1) * d * sizeof *w->xa);
    w->xb = malloc((size_t)(nb ? nb : 1) * d * sizeof *w->xb);
    w->oa = malloc((size_t)(fa->n_in + 1) * sizeof *w->oa);
    w->ob = malloc((size_t)(fb->n_in + 1) * sizeof *w->ob);
    w->ca = malloc((size_t)fa->n_in * d * sizeof *w->ca + 1);
    w->cb = malloc((size_t)fa->n_in * d * sizeof *w->cb + 1);
    w->L->unit_tok = malloc((size_t)fa->n_in * sizeof *w->L->unit_tok + 1);
    if (!w->xa || !w->xb || !w->oa || !w->ob || !w->ca || !w->cb || !w->L->unit_tok) return oom(w, err);
    int64_t *unit_tok = w->L->unit_tok, ra = 0, rb = 0;
    w->oa[0] = w->ob[0] = 0;
    for (int64_t i = 0; i < fa->n_in; i++) {
        for (int64_t t = fa->off[i]; t < fa->off[i + 1]; t++)
            if (w->inc_a[t]) memcpy(w->xa + (size_t)ra++ * d, w->A + (size_t)t * d, (size_t)d * sizeof *w->xa);
        for (int64_t t = fb->off[i]; t < fb->off[i + 1]; t++)
            if (w->inc_b[t]) memcpy(w->xb + (size_t)rb++ * d, w->B + (size_t)t * d, (size_t)d * sizeof *w->xb);
        w->oa[i + 1] = ra;
        w->ob[i + 1] = rb;
    }
    if (w->sae && (sae_encode_sparse(w->sae, w->xa, ra, &w->ta, err) || sae_encode_sparse(w->sae, w->xb, rb, &w->tb, err)))
        return -1;
    /* keep inputs with tokens in both models */
    for (int64_t i = 0; i < fa->n_in; i++) {
        if (w->oa[i + 1] == w->oa[i] || w->ob[i + 1] == w->ob[i]) continue;
        shift_pool_mean(w->xa, d, w->oa + i, 1, w->ca + (size_t)U * d);
        shift_pool_mean(w->xb, d, w->ob + i, 1, w->cb + (size_t)U * d);
        unit_tok[U++] = i;
    }
    w->U = U;
    if (w->sae && U > 0 && pooled_features(w, err)) return -1;
    if (U == 0) return rs_errf(err, "%s / %s: no input has non-special tokens in both files", fa->label, fb->label);
    for (int64_t u = 0; u <= U; u++) w->uoff[u] = u;
    w->G = U;
    return 0;
}

/* ---- floors ---- */

static shift_floor *new_floor(shift_layer *L, const char *name) {
    shift_floor *f = &L->floors[L->n_floors++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->n_images = f->n_pairs = -1;
    return f;
}

static int floor_unavailable(layer_work *w, shift_floor *f, const char *msg, rs_err *err) {
    f->unavailable = strdup(msg);
    return f->unavailable ? 0 : oom(w, err);
}

typedef struct {
    int64_t image, input;
} img_input;

static int cmp_img_input(const void *a, const void *b) {
    const img_input *x = a, *y = b;
    if (x->image != y->image) return (x->image > y->image) - (x->image < y->image);
    return (x->input > y->input) - (x->input < y->input);
}

/* Caption-to-caption floor of each model (docs/metrics.md, Floors): the inputs with
 * o->input_image[i] >= 0 and included tokens in both models, by image (input order within
 * an image); pairs = consecutive inputs of one image (c1-c2, c2-c3, ...); bootstrap unit =
 * image; rows = per-input mean of the included tokens. Fewer than 2 images with a pair:
 * unavailable, with why. Returns 0, or -1 out of memory / a failed comparison (err set). */
static int caption_pair_floors(layer_work *w, rs_err *err) {
    const shift_run_opts *o = w->o;
    const shift_acts_src *fa = w->fa, *fb = w->fb;
    int d = w->d;
    int64_t n = fa->n_in, n_items = 0, n_pairs = 0, n_img = 0;
    img_input *it = malloc((size_t)(n + 1) * sizeof *it);
    int64_t *pi = malloc((size_t)(n + 1) * sizeof *pi), *pj = malloc((size_t)(n + 1) * sizeof *pj);
    int64_t *goff = malloc((size_t)(n + 2) * sizeof *goff), *toff = malloc((size_t)(n + 1) * sizeof *toff);
    float *rowsbuf = NULL, *pooled = NULL;
    int rc = -1;
    if (!it || !pi || !pj || !goff || !toff) goto oom;
    if (o->n_input_image != fa->n_in || fb->n_in != fa->n_in) {
        char msg[160];
        snprintf(msg, sizeof msg, "image ids given for %lld inputs, the activation files have %lld and %lld",
                 (long long)o->n_input_image, (long long)fa->n_in, (long long)fb->n_in);
        for (int side = 0; side < 2; side++)
            if (floor_unavailable(w, new_floor(w->L, side ? "caption_pair_b" : "caption_pair_a"), msg, err)) goto done;
        rc = 0;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        if (o->input_image[i] < 0) continue;
        int ok_a = 0, ok_b = 0;
        for (int64_t t = fa->off[i]; t < fa->off[i + 1] && !ok_a; t++) ok_a = w->inc_a[t];
        for (int64_t t = fb->off[i]; t < fb->off[i + 1] && !ok_b; t++) ok_b = w->inc_b[t];
        if (ok_a && ok_b) it[n_items++] = (img_input){o->input_image[i], i};
    }
    qsort(it, (size_t)n_items, sizeof *it, cmp_img_input);
    goff[0] = 0;
    for (int64_t k = 1; k < n_items; k++) {
        if (it[k].image != it[k - 1].image) continue;
        /* a new image's first pair closes the previous image's group */
        if (n_pairs > 0 && o->input_image[pi[n_pairs - 1]] != it[k].image) goff[++n_img] = n_pairs;
        pi[n_pairs] = it[k - 1].input;
        pj[n_pairs++] = it[k].input;
    }
    if (n_pairs > 0) goff[++n_img] = n_pairs;
    if (n_img < 2) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "needs at least 2 images with 2 or more captions, found %lld: each image contributes one caption; "
                 "in `reprshift run` set dataset.captions_per_image >= 2 (COCO has 5 per image)",
                 (long long)n_img);
        for (int side = 0; side < 2; side++) {
            shift_floor *f = new_floor(w->L, side ? "caption_pair_b" : "caption_pair_a");
            if (floor_unavailable(w, f, msg, err)) goto done;
            f->n_images = n_img;
            f->n_pairs = n_pairs;
        }
        rc = 0;
        goto done;
    }
    pooled = calloc((size_t)n * d + 1, sizeof *pooled);
    if (!pooled) goto oom;
    for (int side = 0; side < 2; side++) {
        const shift_acts_src *fx = side ? fb : fa;
        const uint8_t *inc = side ? w->inc_b : w->inc_a;
        const float *X = side ? w->B : w->A;
        int64_t nt = 0;
        for (int64_t t = 0; t < fx->n_tok; t++) nt += inc[t];
        free(rowsbuf);
        rowsbuf = malloc((size_t)(nt ? nt : 1) * d * sizeof *rowsbuf);
        if (!rowsbuf) goto oom;
        int64_t r = 0;
        toff[0] = 0;
        for (int64_t i = 0; i < n; i++) {
            for (int64_t t = fx->off[i]; t < fx->off[i + 1]; t++)
                if (inc[t]) memcpy(rowsbuf + (size_t)r++ * d, X + (size_t)t * d, (size_t)d * sizeof *rowsbuf);
            toff[i + 1] = r;
        }
        shift_pool_mean(rowsbuf, d, toff, n, pooled);
        shift_floor *f = new_floor(w->L, side ? "caption_pair_b" : "caption_pair_a");
        f->unit = "caption pair: mean of the included tokens of caption i vs of the next caption of the same "
                  "image, same model; bootstrap over images";
        if (shift_pair_floor(pooled, d, pi, pj, n_pairs, goff, n_img, &w->L->so, &f->r, err)) {
            rs_err_prefix(err, "caption-pair floor, %s '%s'", fx->label, w->hname);
            goto done;
        }
        f->n_images = n_img;
        f->n_pairs = n_pairs;
    }
    rc = 0;
    goto done;
oom:
    rs_errk(err, RS_ENOMEM, "caption-pair floor: out of memory");
done:
    free(it);
    free(pi);
    free(pj);
    free(goff);
    free(toff);
    free(rowsbuf);
    free(pooled);
    return rc;
}

/* SAE misfit of one model: x vs its SAE reconstruction (aligned: per token; pooled: the
 * mean of each kept input's token rows, xt with token offsets poff). */
static int sae_misfit_floor(layer_work *w, int side, const float *xt, const int64_t *poff, rs_err *err) {
    shift_layer *L = w->L;
    int64_t U = w->U;
    int d = w->d;
    char name[32];
    snprintf(name, sizeof name, "sae_misfit_%c", side ? 'b' : 'a');
    shift_floor *f = new_floor(L, name);
    f->with_feats = 1;
    f->unit = w->res->aligned ? "token: x vs its SAE reconstruction, same model"
                              : "input: mean of x vs mean of its SAE reconstructions, same model";
    if (w->res->aligned) return shift_sae_misfit(w->sae, xt, U, d, NULL, U, w->uoff, w->G, &L->so, &f->r, err);
    /* the kept inputs' token rows, contiguous */
    int64_t nt = 0;
    for (int64_t u = 0; u < U; u++) nt += poff[L->unit_tok[u] + 1] - poff[L->unit_tok[u]];
    float *keep = malloc((size_t)(nt ? nt : 1) * d * sizeof *keep);
    int64_t *keep_off = malloc((size_t)(U + 1) * sizeof *keep_off);
    int rc;
    if (!keep || !keep_off) {
        rc = oom(w, err);
    } else {
        keep_off[0] = 0;
        for (int64_t u = 0; u < U; u++) {
            int64_t a0 = poff[L->unit_tok[u]], a1 = poff[L->unit_tok[u] + 1];
            memcpy(keep + (size_t)keep_off[u] * d, xt + (size_t)a0 * d, (size_t)(a1 - a0) * d * sizeof *keep);
            keep_off[u + 1] = keep_off[u] + (a1 - a0);
        }
        rc = shift_sae_misfit(w->sae, keep, nt, d, keep_off, U, w->uoff, w->G, &L->so, &f->r, err);
    }
    free(keep);
    free(keep_off);
    return rc;
}

/* Floors: split-half within each model; SAE misfit per model; caption pairs (docs/metrics.md). */
static int floors(layer_work *w, rs_err *err) {
    shift_layer *L = w->L;
    L->has_floors = 1;
    for (int side = 0; side < 2; side++) {
        const shift_acts_src *fx = side ? w->fb : w->fa;
        const uint8_t *inc = side ? w->inc_b : w->inc_a;
        /* token rows of the included tokens, by input: aligned → (ca|cb, uoff); pooled →
         * (xa|xb, offsets recomputed from the masks) */
        const float *xt = w->res->aligned ? (side ? w->cb : w->ca) : (side ? w->xb : w->xa);
        const int64_t *toff = w->uoff;
        int64_t ng = w->G, *poff = NULL;
        if (!w->res->aligned) {
            poff = malloc((size_t)(fx->n_in + 1) * sizeof *poff);
            if (!poff) return oom(w, err);
            poff[0] = 0;
            for (int64_t i = 0; i < fx->n_in; i++) {
                poff[i + 1] = poff[i];
                for (int64_t t = fx->off[i]; t < fx->off[i + 1]; t++) poff[i + 1] += inc[t];
            }
            toff = poff;
            ng = fx->n_in;
        }
        int64_t used = 0;
        char name[32];
        snprintf(name, sizeof name, "split_half_%c", side ? 'b' : 'a');
        shift_floor *f = new_floor(L, name);
        f->unit = "input: mean of its even-position vs odd-position included tokens, same model";
        int rc;
        /* too few inputs is a fact to report; any other failure (out of memory) is an error */
        if (shift_split_half_groups(toff, ng) < 2)
            rc = floor_unavailable(w, f, "split-half floor: fewer than 2 inputs with at least 2 rows", err);
        else
            rc = shift_split_half(xt, w->d, toff, ng, &L->so, &f->r, &used, err);
        if (!rc && w->sae) rc = sae_misfit_floor(w, side, xt, poff, err);
        free(poff);
        if (rc) return -1;
    }
    if (w->o->input_image && caption_pair_floors(w, err)) return -1;
    return 0;
}

/* ---- rankings ---- */

typedef struct {
    int64_t count, id;
} fm_item;

static int cmp_fm(const void *a, const void *b) {
    const fm_item *x = a, *y = b;
    if (x->count != y->count) return (x->count > y->count) - (x->count < y->count);
    return (x->id > y->id) - (x->id < y->id);
}

/* Frequency-matched excess of Δfreq: features alive and active on ≥ minc rows, sorted by
 * count_a + count_b (ties by id), cut into n_bins equal bins (the first ones one larger);
 * excess_f = dfreq_f − mean dfreq of its bin. Others: NaN. */
static int freq_matched_excess(const int64_t *alive, int64_t na, const int64_t *ca, const int64_t *cb, int minc,
                               int n_bins, const double *dfreq, double *excess) {
    for (int64_t j = 0; j < na; j++) excess[alive[j]] = NAN;
    fm_item *e = malloc((size_t)(na + 1) * sizeof *e);
    if (!e) return -1;
    int64_t ne = 0;
    for (int64_t j = 0; j < na; j++) {
        int64_t f = alive[j];
        if (ca[f] + cb[f] >= minc) e[ne++] = (fm_item){ca[f] + cb[f], f};
    }
    qsort(e, (size_t)ne, sizeof *e, cmp_fm);
    int64_t nb = ne / 5 < n_bins ? ne / 5 : n_bins, start = 0; /* at least 5 features per bin */
    if (nb < 1) nb = ne ? 1 : 0;
    for (int64_t b = 0; b < nb; b++) {
        int64_t size = ne / nb + (b < ne % nb);
        double s = 0;
        for (int64_t q = start; q < start + size; q++) s += dfreq[e[q].id];
        for (int64_t q = start; q < start + size; q++) excess[e[q].id] = dfreq[e[q].id] - s / size;
        start += size;
    }
    free(e);
    return 0;
}

/* Features: Δfreq and Δmean per feature; the six ranked lists (features active on at least
 * min_count rows in either model) with group-bootstrap intervals; the frequency-matched
 * excess of Δfreq (docs/metrics.md "Rankings"). */
static int feature_rankings(layer_work *w, rs_err *err) {
    shift_layer *L = w->L;
    const shift_result *r = &L->r;
    int m = w->sae->d_sae, top = L->top_k, minc = L->min_count;
    int64_t U = w->U;
    L->dfreq = malloc((size_t)m * sizeof *L->dfreq);
    L->dmean = malloc((size_t)m * sizeof *L->dmean);
    L->excess = malloc((size_t)m * sizeof *L->excess);
    int64_t *idx = malloc((size_t)m * sizeof *idx);
    int rc = -1;
    if (!L->dfreq || !L->dmean || !L->excess || !idx) goto oom;
    int64_t na = 0;
    for (int f = 0; f < m; f++) {
        L->dfreq[f] = ((double)r->count_b[f] - r->count_a[f]) / (double)U;
        L->dmean[f] = (r->sum_b[f] - r->sum_a[f]) / (double)U;
        L->excess[f] = NAN;
        if (r->count_a[f] || r->count_b[f]) idx[na++] = f;
    }
    if (freq_matched_excess(idx, na, r->count_a, r->count_b, minc, 10, L->dfreq, L->excess)) goto oom;
    for (int q = 0; q < SHIFT_N_FEATURE_LISTS; q++) {
        shift_feature_list *fl = &L->lists[q];
        shift_sort_idx(idx, na, q < 2 ? L->dfreq : q < 4 ? L->dmean : L->excess, q % 2 == 0);
        fl->feat = malloc((size_t)(top + 1) * sizeof *fl->feat);
        fl->ci = malloc((size_t)(top + 1) * 4 * sizeof *fl->ci);
        if (!fl->feat || !fl->ci) goto oom;
        for (int64_t j = 0; j < na && fl->n < top; j++)
            if (r->count_a[idx[j]] + r->count_b[idx[j]] >= minc) fl->feat[fl->n++] = (int)idx[j];
        if (shift_feature_ci(&w->sa, &w->sb, w->uoff, w->G, fl->feat, fl->n, w->o->n_boot, w->o->seed, NULL, fl->ci, err))
            goto done;
    }
    rc = 0;
    goto done;
oom:
    rc = oom(w, err);
done:
    free(idx);
    return rc;
}

/* Units by cos_raw, most shifted first; per-category sums over aligned units (categories given). */
static int unit_rankings(layer_work *w, rs_err *err) {
    shift_layer *L = w->L;
    const shift_run_result *res = w->res;
    int64_t U = w->U;
    double *key = malloc((size_t)U * sizeof *key);
    L->unit_rank = malloc((size_t)U * sizeof *L->unit_rank);
    if (!key || !L->unit_rank) {
        free(key);
        return oom(w, err);
    }
    for (int64_t u = 0; u < U; u++) {
        L->unit_rank[u] = u;
        key[u] = L->r.row_cos_raw[u];
    }
    shift_sort_idx(L->unit_rank, U, key, 0);
    free(key);
    if (!res->cats) return 0;
    int ncat = categories_count(res->cats) + 1;
    L->cat_sum = calloc((size_t)ncat, sizeof *L->cat_sum);
    if (!L->cat_sum) return oom(w, err);
    L->n_cat = ncat;
    if (!res->aligned) return 0;
    for (int64_t j = 0; j < U; j++) { /* in rank order, as the sums have always been taken */
        int64_t u = L->unit_rank[j], t = L->unit_tok[u];
        const char *piece = res->tok ? tok_piece(res->tok, res->ids[t]) : NULL;
        const char *cat = categories_lookup(res->cats, piece);
        int ci = ncat - 1;
        for (int c = 0; cat && c < ncat - 1; c++)
            if (!strcmp(categories_name(res->cats, c), cat)) ci = c;
        double fv[3] = {NAN, NAN, NAN};
        if (w->sae) {
            fv[0] = L->r.row_cos_feat[u];
            fv[1] = L->r.row_jaccard[u];
            fv[2] = L->r.row_js[u];
        }
        double v6[6] = {1, L->r.row_cos_raw[u], L->r.row_l2_raw[u], fv[0], fv[1], fv[2]};
        for (int k = 0; k < 6; k++) L->cat_sum[ci][k] += v6[k];
    }
    return 0;
}

/* Token types (aligned): mean cos_raw per token id with a group-bootstrap interval, a
 * minimum count and the frequency-matched excess (docs/metrics.md "Rankings"). */
static int token_types(layer_work *w, rs_err *err) {
    shift_layer *L = w->L;
    int64_t U = w->U;
    L->n_bins = 10;
    int32_t *ukey = malloc((size_t)U * sizeof *ukey);
    if (!ukey) return oom(w, err);
    for (int64_t u = 0; u < U; u++) ukey[u] = w->res->ids[L->unit_tok[u]];
    int rc = shift_rank_keys(ukey, L->r.row_cos_raw, U, w->uoff, w->G, L->min_count, L->n_bins, w->o->n_boot,
                             w->o->seed, NULL, &L->types, &L->n_types, err);
    free(ukey);
    return rc;
}

/* ---- the layer ---- */

static int compute_layer(layer_work *w, const shift_layer_spec *spec, rs_err *err) {
    const shift_run_opts *o = w->o;
    shift_layer *L = w->L;
    if (read_acts(w->fa, spec->hook, &w->A, &w->ownA, &w->d, &w->hname, err)) return -1;
    int wb = 0;
    const char *hname_b = NULL;
    if (read_acts(w->fb, spec->hook ? spec->hook : w->hname, &w->B, &w->ownB, &wb, &hname_b, err)) return -1;
    if (w->d != wb)
        return rs_errf(err, "hook '%s': width %d in %s but %d in %s", w->hname, w->d, w->fa->label, wb, w->fb->label);
    if (!(L->hook = strdup(w->hname))) return oom(w, err);
    if (o->log) fprintf(o->log, "shift: %s (%s)\n", w->hname, w->res->aligned ? "token-aligned" : "pooled per input");
    if (row_masks(w, err)) return -1;
    if (w->sae_path && sae_and_fit(w, spec, err)) return -1;
    w->uoff = malloc((size_t)(w->fa->n_in + 1) * sizeof *w->uoff);
    if (!w->uoff) return oom(w, err);
    if (w->res->aligned ? units_aligned(w, err) : units_pooled(w, err)) return -1;
    L->n_units = w->U;
    L->n_groups = w->G;
    shift_opts_default(&L->so);
    L->so.n_boot = o->n_boot;
    L->so.seed = o->seed;
    L->so.n_perm = o->n_perm;
    L->so.threads = o->threads;
    shift_input in = {.n_rows = w->U, .d = w->d, .a = w->ca, .b = w->cb, .fa = w->sae ? &w->sa : NULL,
                      .fb = w->sae ? &w->sb : NULL, .n_groups = w->G, .offsets = w->uoff};
    if (shift_compare(&in, &L->so, &L->r, err)) return -1;
    for (int k = 0; k < SHIFT_N_METRICS; k++) L->q[k] = NAN;
    if (!o->no_floors && floors(w, err)) return -1;
    L->top_k = o->top_k > 0 ? o->top_k : 20;
    L->min_count = o->min_count > 0 ? o->min_count : 5;
    if (w->sae && feature_rankings(w, err)) return -1;
    if (unit_rankings(w, err)) return -1;
    if (w->res->aligned && token_types(w, err)) return -1;
    return 0;
}

int shift_run_add_layer(shift_run_result *res, const shift_acts_src *a, const shift_acts_src *b,
                        const shift_layer_spec *spec, rs_err *err) {
    if (res->n_layers == res->cap_layers) {
        int cap = res->cap_layers ? 2 * res->cap_layers : 4;
        shift_layer *nl = realloc(res->layers, (size_t)cap * sizeof *nl);
        if (!nl) return rs_errk(err, RS_ENOMEM, "out of memory");
        res->layers = nl;
        res->cap_layers = cap;
    }
    shift_layer *L = &res->layers[res->n_layers];
    memset(L, 0, sizeof *L);
    L->layer = spec->layer;
    L->csv_layer = spec->csv_layer;
    layer_work w = {.res = res, .o = &res->o, .fa = a, .fb = b, .L = L, .sae_path = spec->sae};
    int rc = compute_layer(&w, spec, err);
    work_free(&w);
    if (rc) {
        shift_layer_free(L);
        return -1;
    }
    res->n_layers++;
    return 0;
}
