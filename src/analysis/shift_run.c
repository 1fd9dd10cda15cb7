/* `reprshift shift` pipeline (see shift_run.h and docs/metrics.md).
 * Row selection: rows whose token id is pad (0), eos (1) or bos (2) are excluded unless
 * keep_special — BOS has a norm orders of magnitude above other tokens and would dominate
 * every mean. Excluded rows still get fit metrics, reported separately. */
#include "reprshift/shift_run.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "reprshift/categories.h"
#include "reprshift/fileio.h"
#include "reprshift/jsonutil.h"
#include "reprshift/sae.h"
#include "reprshift/sae_registry.h"
#include "reprshift/sae_fit.h"
#include "reprshift/safetensors.h"
#include "reprshift/shift.h"
#include "reprshift/stats.h"
#include "reprshift/tokenizer.h"
#include "reprshift/version.h"

typedef struct {
    const char *path;
    st_set *st;
    int32_t *ids; /* owned copies: tensor data in the mapping need not be aligned */
    int64_t *off;
    int64_t n_tok, n_in;
} acts_file;

static void close_acts(acts_file *f) {
    st_close(f->st);
    free(f->ids);
    free(f->off);
    memset(f, 0, sizeof *f);
}

static int open_acts(acts_file *f, const char *path, rs_err *err) {
    memset(f, 0, sizeof *f);
    f->path = path;
    if (st_open(&f->st, path, err)) return -1;
    const char *pool = st_meta(f->st, "pool");
    if (pool && strcmp(pool, "none"))
        return rs_errf(err, "%s: activations are pooled ('%s'); shift needs per-token activations (extract --pool none)", path, pool);
    const st_tensor *ti = st_get(f->st, "token_ids"), *to = st_get(f->st, "offsets");
    if (!ti || ti->dtype != RS_DT_I32 || ti->ndim != 1)
        return rs_errf(err, "%s: missing int32 tensor 'token_ids' (written by reprshift extract)", path);
    if (!to || to->dtype != RS_DT_I64 || to->ndim != 1 || to->numel < 2)
        return rs_errf(err, "%s: missing int64 tensor 'offsets' [n_inputs+1]", path);
    f->n_tok = ti->numel;
    f->n_in = to->numel - 1;
    f->ids = malloc((size_t)f->n_tok * sizeof *f->ids + 1);
    f->off = malloc((size_t)to->numel * sizeof *f->off);
    if (!f->ids || !f->off) return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    memcpy(f->ids, ti->data, (size_t)f->n_tok * sizeof *f->ids);
    memcpy(f->off, to->data, (size_t)to->numel * sizeof *f->off);
    if (f->off[0] != 0 || f->off[f->n_in] != f->n_tok)
        return rs_errf(err, "%s: offsets must run from 0 to the token count %lld", path, (long long)f->n_tok);
    for (int64_t i = 0; i < f->n_in; i++)
        if (f->off[i + 1] < f->off[i]) return rs_errf(err, "%s: offsets decrease at input %lld", path, (long long)i);
    return 0;
}

static char *subst_layer(const char *pat, int layer) {
    if (!pat) return NULL;
    const char *p = strstr(pat, "{layer}");
    size_t n = strlen(pat) + 16;
    char *s = malloc(n);
    if (!s) return NULL;
    if (!p || layer < 0) snprintf(s, n, "%s", pat);
    else snprintf(s, n, "%.*s%d%s", (int)(p - pat), pat, layer, p + 7);
    return s;
}

/* The activation tensor: named, or the only float 2-D tensor of the file. */
static int get_acts(const acts_file *f, const char *hook, const float **data, float **owned, int *width,
                    const char **name_out, rs_err *err) {
    const st_tensor *t = NULL;
    if (hook) {
        t = st_get(f->st, hook);
        if (!t) {
            char list[512] = "";
            size_t L = 0;
            for (int i = 0; i < f->st->n_tensors && L < 400; i++)
                if (f->st->tensors[i].ndim == 2)
                    L += (size_t)snprintf(list + L, sizeof list - L, "%s%s", L ? ", " : "", f->st->tensors[i].name);
            return rs_errf(err, "%s: no activations for hook '%s' (present: %s)", f->path, hook, L ? list : "none");
        }
    } else {
        for (int i = 0; i < f->st->n_tensors; i++) {
            const st_tensor *c = &f->st->tensors[i];
            if (c->ndim != 2 || (c->dtype != RS_DT_F32 && c->dtype != RS_DT_BF16 && c->dtype != RS_DT_F16)) continue;
            if (t) return rs_errf(err, "%s: several hooks in the file; choose one with --hook", f->path);
            t = c;
        }
        if (!t) return rs_errf(err, "%s: no 2-D activation tensor", f->path);
    }
    if (t->ndim != 2 || t->shape[0] != f->n_tok)
        return rs_errf(err, "%s: tensor '%s' must be [tokens=%lld, d]", f->path, t->name, (long long)f->n_tok);
    *width = (int)t->shape[1];
    *name_out = t->name;
    *owned = NULL;
    if (t->dtype == RS_DT_F32) *data = t->data;
    else {
        *owned = st_to_f32_new(t);
        if (!*owned) return rs_errk(err, RS_ENOMEM, "%s: out of memory converting '%s'", f->path, t->name);
        *data = *owned;
    }
    for (int64_t r = 0; r < f->n_tok; r++)
        for (int i = 0; i < *width; i++)
            if (!isfinite((*data)[(size_t)r * *width + i]))
                return rs_errf(err, "%s: '%s' row %lld column %d is not finite (NaN/Inf)", f->path, t->name, (long long)r, i);
    return 0;
}

/* summary.csv rows, kept until every p-value of the run is known (BH q-values over all). */
typedef struct {
    int layer;
    char hook[256], metric[64];
    double v[7]; /* value, ci_lo, ci_hi, p_value, null_lo, null_hi, q_value */
    cJSON *obj;  /* the metric's results.json object (gets q_value), or NULL */
} sum_row;

typedef struct {
    sum_row *r;
    int n, cap;
} sum_rows;

static int add_row(sum_rows *R, int layer, const char *hook, const char *prefix, const char *metric, const rs_stat *s,
                   const stats_null *z, cJSON *obj) {
    if (R->n == R->cap) {
        int cap = R->cap ? 2 * R->cap : 64;
        sum_row *nr = realloc(R->r, (size_t)cap * sizeof *nr);
        if (!nr) return -1;
        R->r = nr;
        R->cap = cap;
    }
    sum_row *w = &R->r[R->n++];
    w->layer = layer;
    snprintf(w->hook, sizeof w->hook, "%s", hook);
    snprintf(w->metric, sizeof w->metric, "%s%s", prefix, metric);
    double v[7] = {s->value, s->lo, s->hi, z ? z->p : NAN, z ? z->lo : NAN, z ? z->hi : NAN, NAN};
    memcpy(w->v, v, sizeof v);
    w->obj = obj;
    return 0;
}

static void json_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) rs_json_add_num(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static cJSON *json_stat(const rs_stat *s) {
    cJSON *o = cJSON_CreateObject();
    json_num(o, "value", s->value);
    json_num(o, "ci_lo", s->lo);
    json_num(o, "ci_hi", s->hi);
    return o;
}

/* A metric with its permutation test: value, ci_lo, ci_hi, p_value, null_lo, null_hi,
 * null_mean, n_perm, test (what was done, or why there is no p-value). */
static cJSON *json_metric(const rs_stat *s, const stats_null *z, const char *test) {
    cJSON *o = json_stat(s);
    json_num(o, "p_value", z->p);
    json_num(o, "null_lo", z->lo);
    json_num(o, "null_hi", z->hi);
    json_num(o, "null_mean", z->mean);
    rs_json_add_num(o, "n_perm", z->n_perm);
    cJSON_AddStringToObject(o, "test", test);
    return o;
}

/* Why metric k has (or lacks) a p-value. */
static const char *test_text(int k, const shift_result *r, const shift_opts *so, char *buf, size_t cap) {
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

/* Floor results as {n_units, unit, <metric>: {value, ci_lo, ci_hi}} + summary rows. */
static int add_floor(cJSON *floors, sum_rows *R, int layer, const char *hook, const char *name, const char *unit,
                     const shift_result *fr, int with_feats) {
    cJSON *o = cJSON_AddObjectToObject(floors, name);
    if (!o) return -1;
    cJSON_AddStringToObject(o, "unit", unit);
    rs_json_add_num(o, "n_units", (double)fr->n_rows);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s:", name);
    static const int ORDER[] = {SHIFT_COS_RAW, SHIFT_COS_CENTRED, SHIFT_L2_RAW, SHIFT_CKA_LINEAR, SHIFT_CKA_DEBIASED,
                                SHIFT_COS_FEAT, SHIFT_L2_FEAT, SHIFT_JACCARD_TOKEN, SHIFT_JACCARD_FEATURE,
                                SHIFT_JS_TOKEN, SHIFT_JS_MASS, SHIFT_PEARSON_MEAN_FEAT};
    for (size_t i = 0; i < sizeof ORDER / sizeof *ORDER; i++) {
        int k = ORDER[i];
        if (shift_metric_is_feature(k) && !with_feats) continue;
        cJSON_AddItemToObject(o, shift_metric_name(k), json_stat(shift_metric_stat(fr, k)));
        if (add_row(R, layer, hook, prefix, shift_metric_name(k), shift_metric_stat(fr, k), NULL, NULL)) return -1;
    }
    return 0;
}

static cJSON *json_fit(const sae_fit_metrics *m) {
    cJSON *o = cJSON_CreateObject();
    rs_json_add_num(o, "n_rows", (double)m->n_rows);
    json_num(o, "mse", m->mse);
    json_num(o, "relative_mse", m->relative_mse);
    json_num(o, "explained_variance", m->explained_variance);
    json_num(o, "cossim", m->cossim);
    json_num(o, "l0", m->l0);
    json_num(o, "l1", m->l1);
    json_num(o, "frac_alive", m->frac_alive);
    json_num(o, "frac_dead", m->frac_dead);
    json_num(o, "mean_max_act", m->mean_max_act);
    return o;
}

static void csv_str(FILE *fp, const char *s) {
    fputc('"', fp);
    for (; s && *s; s++) {
        if (*s == '"') fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

static void csv_num(FILE *fp, double v) {
    if (isfinite(v)) fprintf(fp, "%.9g", v);
}

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

static void sort_by(int64_t *idx, int64_t n, const double *key, int desc) {
    SORT.key = key;
    SORT.desc = desc;
    qsort(idx, (size_t)n, sizeof *idx, cmp_idx);
}

static int safe_name(char *dst, size_t cap, const char *hook) {
    size_t j = 0;
    for (size_t i = 0; hook[i] && j + 1 < cap; i++) {
        char c = hook[i];
        dst[j++] = (c == '/' || c == ' ' || c == '{' || c == '}') ? '_' : c;
    }
    dst[j] = 0;
    return 0;
}

/* Frequency-matched excess of Δfreq: features alive and active on ≥ minc rows, sorted by
 * count_a + count_b (ties by id), cut into n_bins equal bins (the first ones one larger);
 * excess_f = dfreq_f − mean dfreq of its bin. Others: NaN. */
typedef struct {
    int64_t count, id;
} fm_item;

static int cmp_fm(const void *a, const void *b) {
    const fm_item *x = a, *y = b;
    if (x->count != y->count) return (x->count > y->count) - (x->count < y->count);
    return (x->id > y->id) - (x->id < y->id);
}

static void freq_matched_excess(const int64_t *alive, int64_t na, const int64_t *ca, const int64_t *cb, int minc,
                                int n_bins, const double *dfreq, double *excess) {
    for (int64_t j = 0; j < na; j++) excess[alive[j]] = NAN;
    fm_item *e = malloc((size_t)(na + 1) * sizeof *e);
    if (!e) return;
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
 * {"unavailable": why}. Returns 0, or -1 out of memory / a failed comparison (err set). */
static int caption_pair_floors(const shift_run_opts *o, const acts_file *fa, const acts_file *fb, const float *A,
                               const float *B, const uint8_t *inc_a, const uint8_t *inc_b, int d, const shift_opts *so,
                               cJSON *floors, sum_rows *rows, int layer, const char *hname, rs_err *err) {
    int64_t n = fa->n_in, n_items = 0, n_pairs = 0, n_img = 0;
    img_input *it = malloc((size_t)(n + 1) * sizeof *it);
    int64_t *pi = malloc((size_t)(n + 1) * sizeof *pi), *pj = malloc((size_t)(n + 1) * sizeof *pj);
    int64_t *goff = malloc((size_t)(n + 2) * sizeof *goff), *toff = malloc((size_t)(n + 1) * sizeof *toff);
    float *rowsbuf = NULL, *pooled = NULL;
    shift_result fr = {0};
    int rc = -1;
    if (!it || !pi || !pj || !goff || !toff) goto oom;
    if (o->n_input_image != fa->n_in || fb->n_in != fa->n_in) {
        for (int side = 0; side < 2; side++) {
            cJSON *fo = cJSON_AddObjectToObject(floors, side ? "caption_pair_b" : "caption_pair_a");
            char msg[160];
            snprintf(msg, sizeof msg, "image ids given for %lld inputs, the activation files have %lld and %lld",
                     (long long)o->n_input_image, (long long)fa->n_in, (long long)fb->n_in);
            cJSON_AddStringToObject(fo, "unavailable", msg);
        }
        rc = 0;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        if (o->input_image[i] < 0) continue;
        int ok_a = 0, ok_b = 0;
        for (int64_t t = fa->off[i]; t < fa->off[i + 1] && !ok_a; t++) ok_a = inc_a[t];
        for (int64_t t = fb->off[i]; t < fb->off[i + 1] && !ok_b; t++) ok_b = inc_b[t];
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
        int64_t with2 = n_img;
        for (int side = 0; side < 2; side++) {
            cJSON *fo = cJSON_AddObjectToObject(floors, side ? "caption_pair_b" : "caption_pair_a");
            char msg[400];
            snprintf(msg, sizeof msg,
                     "needs at least 2 images with 2 or more captions, found %lld: each image contributes one caption; "
                     "in `reprshift run` set dataset.captions_per_image >= 2 (COCO has 5 per image)",
                     (long long)with2);
            cJSON_AddStringToObject(fo, "unavailable", msg);
            rs_json_add_num(fo, "n_images", (double)with2);
            rs_json_add_num(fo, "n_pairs", (double)n_pairs);
        }
        rc = 0;
        goto done;
    }
    pooled = calloc((size_t)n * d + 1, sizeof *pooled);
    if (!pooled) goto oom;
    for (int side = 0; side < 2; side++) {
        const acts_file *fx = side ? fb : fa;
        const uint8_t *inc = side ? inc_b : inc_a;
        const float *X = side ? B : A;
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
        const char *name = side ? "caption_pair_b" : "caption_pair_a";
        if (shift_pair_floor(pooled, d, pi, pj, n_pairs, goff, n_img, so, &fr, err)) {
            rs_err_prefix(err, "caption-pair floor, %s '%s'", fx->path, hname);
            goto done;
        }
        if (add_floor(floors, rows, layer, hname, name,
                      "caption pair: mean of the included tokens of caption i vs of the next caption of the same "
                      "image, same model; bootstrap over images",
                      &fr, 0))
            goto oom;
        cJSON *fo = cJSON_GetObjectItemCaseSensitive(floors, name);
        rs_json_add_num(fo, "n_images", (double)n_img);
        rs_json_add_num(fo, "n_pairs", (double)n_pairs);
        shift_result_free(&fr);
    }
    rc = 0;
    goto done;
oom:
    rs_errk(err, RS_ENOMEM, "caption-pair floor: out of memory");
done:
    shift_result_free(&fr);
    free(it);
    free(pi);
    free(pj);
    free(goff);
    free(toff);
    free(rowsbuf);
    free(pooled);
    return rc;
}

/* Per-layer work. Rows of the compared matrices are "units": included tokens (aligned) or
 * inputs (pooled); unit_tok[u] is the token row in file A of an aligned unit (or -1). */
static int run_layer(const shift_run_opts *o, const acts_file *fa, const acts_file *fb, int layer,
                     const rs_tokenizer *tok, const rs_categories *cats, int aligned, cJSON *layers_json,
                     sum_rows *rows, rs_err *err) {
    char *hook = subst_layer(o->hook, layer), *sae_path = subst_layer(o->sae, layer);
    const float *A = NULL, *B = NULL;
    float *ownA = NULL, *ownB = NULL, *ca = NULL, *cb = NULL, *xa = NULL, *xb = NULL;
    int wa = 0, wb = 0, rc = -1;
    const char *hname = NULL, *hname_b = NULL;
    rs_sae *sae = NULL;
    sae_sparse sa = {0}, sb = {0}, ta = {0}, tb = {0};
    shift_result r = {0};
    int64_t *uoff = NULL, *unit_tok = NULL, *idx = NULL;
    uint8_t *inc_a = NULL, *inc_b = NULL;
    double *key = NULL;
    rs_atomic_file ff = {0}, tf = {0}, kf = {0};
    shift_rank_entry *rk = NULL;
    int32_t *ukey = NULL;
    cJSON *L = cJSON_CreateObject();
    if ((o->hook && !hook) || (o->sae && !sae_path) || !L) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    if (get_acts(fa, hook, &A, &ownA, &wa, &hname, err) || get_acts(fb, hook ? hook : hname, &B, &ownB, &wb, &hname_b, err))
        goto done;
    if (wa != wb) {
        rs_errf(err, "hook '%s': width %d in %s but %d in %s", hname, wa, fa->path, wb, fb->path);
        goto done;
    }
    int d = wa;
    if (layer >= 0) rs_json_add_num(L, "layer", layer);
    cJSON_AddStringToObject(L, "hook", hname);
    if (o->log) fprintf(o->log, "shift: %s (%s)\n", hname, aligned ? "token-aligned" : "pooled per input");

    /* row masks */
    inc_a = malloc((size_t)fa->n_tok + 1);
    inc_b = malloc((size_t)fb->n_tok + 1);
    if (!inc_a || !inc_b) goto oom;
    /* excluded: <pad>/<eos>/<bos> (ids 0-2) and, with a tokenizer, whitespace-only pieces */
    for (int64_t t = 0; t < fa->n_tok; t++)
        inc_a[t] = o->keep_special || (fa->ids[t] > 2 && !(tok && tok_is_blank(tok, fa->ids[t])));
    for (int64_t t = 0; t < fb->n_tok; t++)
        inc_b[t] = o->keep_special || (fb->ids[t] > 2 && !(tok && tok_is_blank(tok, fb->ids[t])));

    if (sae_path) {
        if (sae_load(&sae, sae_path, o->sae_hook, err)) goto done;
        if (sae_check_hook(sae, hname, o->allow_hook_mismatch, err)) goto done;
        if (sae->d_in != d) {
            rs_errf(err, "%s: SAE d_in %d does not match the activation width %d of '%s' in %s", sae_path, sae->d_in, d,
                    hname, fa->path);
            goto done;
        }
        cJSON *sj = cJSON_AddObjectToObject(L, "sae");
        cJSON_AddStringToObject(sj, "path", sae_path);
        cJSON_AddStringToObject(sj, "format", sae->format == SAE_FORMAT_GEMMA_SCOPE_NPZ ? "gemma_scope_npz" : "sae_lens");
        cJSON_AddStringToObject(sj, "architecture", sae_arch_name(sae->arch));
        rs_json_add_num(sj, "d_in", sae->d_in);
        rs_json_add_num(sj, "d_sae", sae->d_sae);
        if (sae->arch == SAE_ARCH_TOPK) rs_json_add_num(sj, "k", sae->k);
        if (sae->hook_name) cJSON_AddStringToObject(sj, "hook_name", sae->hook_name);
        cJSON_AddStringToObject(sj, "hook_source", o->sae_hook          ? "command line"
                                                   : sae->sae_name        ? "SAE registry (sae-lens)"
                                                   : sae->hook_from_path  ? "derived from path"
                                                                          : "SAE config");
        if (sae->sae_name) cJSON_AddStringToObject(sj, "name", sae->sae_name);
        if (sae->neuronpedia) cJSON_AddStringToObject(sj, "neuronpedia", sae->neuronpedia);
        cJSON_AddBoolToObject(sj, "hook_mismatch_allowed", o->allow_hook_mismatch);
        /* fit quality per model, special rows separately */
        sae_fit_metrics fi, fo;
        cJSON *fit = cJSON_AddObjectToObject(L, "fit");
        if (sae_fit_eval(sae, A, fa->n_tok, inc_a, &fi, &fo, NULL, err)) {
            rs_err_prefix(err, "%s '%s'", fa->path, hname);
            goto done;
        }
        cJSON_AddItemToObject(fit, "a", json_fit(&fi));
        cJSON_AddItemToObject(fit, "a_special_tokens", json_fit(&fo));
        rs_stat ev = {fi.explained_variance, NAN, NAN};
        if (add_row(rows, layer, hname, "", "fit_a_explained_variance", &ev, NULL, NULL)) goto oom;
        if (sae_fit_eval(sae, B, fb->n_tok, inc_b, &fi, &fo, NULL, err)) {
            rs_err_prefix(err, "%s '%s'", fb->path, hname);
            goto done;
        }
        cJSON_AddItemToObject(fit, "b", json_fit(&fi));
        cJSON_AddItemToObject(fit, "b_special_tokens", json_fit(&fo));
        ev.value = fi.explained_variance;
        if (add_row(rows, layer, hname, "", "fit_b_explained_variance", &ev, NULL, NULL)) goto oom;
    }

    /* units */
    int64_t U = 0, G = 0;
    uoff = malloc((size_t)(fa->n_in + 1) * sizeof *uoff);
    if (!uoff) goto oom;
    if (aligned) {
        unit_tok = malloc((size_t)fa->n_tok * sizeof *unit_tok);
        if (!unit_tok) goto oom;
        uoff[0] = 0;
        for (int64_t i = 0; i < fa->n_in; i++) {
            int64_t before = U;
            for (int64_t t = fa->off[i]; t < fa->off[i + 1]; t++)
                if (inc_a[t]) unit_tok[U++] = t;
            if (U > before) uoff[++G] = U;
        }
        if (U == 0) {
            rs_errf(err, "%s: no rows left after excluding special tokens", fa->path);
            goto done;
        }
        ca = malloc((size_t)U * d * sizeof *ca);
        cb = malloc((size_t)U * d * sizeof *cb);
        if (!ca || !cb) goto oom;
        for (int64_t u = 0; u < U; u++) {
            memcpy(ca + (size_t)u * d, A + (size_t)unit_tok[u] * d, (size_t)d * sizeof *ca);
            memcpy(cb + (size_t)u * d, B + (size_t)unit_tok[u] * d, (size_t)d * sizeof *cb);
        }
        if (sae && (sae_encode_sparse(sae, ca, U, &sa, err) || sae_encode_sparse(sae, cb, U, &sb, err))) goto done;
    } else {
        /* per-input means over included tokens; inputs empty in either model are dropped */
        int64_t na = 0, nb = 0;
        for (int64_t t = 0; t < fa->n_tok; t++) na += inc_a[t];
        for (int64_t t = 0; t < fb->n_tok; t++) nb += inc_b[t];
        xa = malloc((size_t)(na ? na : 1) * d * sizeof *xa);
        xb = malloc((size_t)(nb ? nb : 1) * d * sizeof *xb);
        int64_t *oa = malloc((size_t)(fa->n_in + 1) * sizeof *oa), *ob = malloc((size_t)(fb->n_in + 1) * sizeof *ob);
        ca = malloc((size_t)fa->n_in * d * sizeof *ca);
        cb = malloc((size_t)fa->n_in * d * sizeof *cb);
        unit_tok = malloc((size_t)fa->n_in * sizeof *unit_tok);
        if (!xa || !xb || !oa || !ob || !ca || !cb || !unit_tok) {
            free(oa);
            free(ob);
            goto oom;
        }
        int64_t ra = 0, rb = 0;
        oa[0] = ob[0] = 0;
        for (int64_t i = 0; i < fa->n_in; i++) {
            for (int64_t t = fa->off[i]; t < fa->off[i + 1]; t++)
                if (inc_a[t]) memcpy(xa + (size_t)ra++ * d, A + (size_t)t * d, (size_t)d * sizeof *xa);
            for (int64_t t = fb->off[i]; t < fb->off[i + 1]; t++)
                if (inc_b[t]) memcpy(xb + (size_t)rb++ * d, B + (size_t)t * d, (size_t)d * sizeof *xb);
            oa[i + 1] = ra;
            ob[i + 1] = rb;
        }
        if (sae && (sae_encode_sparse(sae, xa, ra, &ta, err) || sae_encode_sparse(sae, xb, rb, &tb, err))) {
            free(oa);
            free(ob);
            goto done;
        }
        /* keep inputs with tokens in both models */
        for (int64_t i = 0; i < fa->n_in; i++) {
            if (oa[i + 1] == oa[i] || ob[i + 1] == ob[i]) continue;
            shift_pool_mean(xa, d, oa + i, 1, ca + (size_t)U * d);
            shift_pool_mean(xb, d, ob + i, 1, cb + (size_t)U * d);
            unit_tok[U++] = i;
        }
        if (sae && U > 0) {
            /* pooled features = mean of token features (pool each kept input's range) */
            sae_sparse pa = {0}, pb = {0};
            int64_t *sel = malloc((size_t)(U + 1) * sizeof *sel);
            int bad = !sel;
            if (!bad) {
                /* pool all inputs, then pick the kept ones */
                if (sae_sparse_pool_mean(&ta, oa, fa->n_in, &pa, err) || sae_sparse_pool_mean(&tb, ob, fa->n_in, &pb, err))
                    bad = 2;
            }
            if (!bad) {
                for (int64_t u = 0; u < U; u++) sel[u] = unit_tok[u];
                sa.d_sae = sb.d_sae = sae->d_sae;
                sa.row_ptr = calloc((size_t)U + 1, sizeof(int64_t));
                sb.row_ptr = calloc((size_t)U + 1, sizeof(int64_t));
                size_t za = (size_t)pa.row_ptr[pa.n] + 1, zb = (size_t)pb.row_ptr[pb.n] + 1;
                sa.idx = malloc(za * sizeof(int32_t));
                sa.val = malloc(za * sizeof(float));
                sb.idx = malloc(zb * sizeof(int32_t));
                sb.val = malloc(zb * sizeof(float));
                if (!sa.row_ptr || !sb.row_ptr || !sa.idx || !sa.val || !sb.idx || !sb.val) bad = 1;
                for (int64_t u = 0; u < U && !bad; u++) {
                    int64_t i = sel[u];
                    for (int side = 0; side < 2; side++) {
                        const sae_sparse *src = side ? &pb : &pa;
                        sae_sparse *dst = side ? &sb : &sa;
                        int64_t z0 = dst->row_ptr[u];
                        for (int64_t z = src->row_ptr[i]; z < src->row_ptr[i + 1]; z++, z0++) {
                            dst->idx[z0] = src->idx[z];
                            dst->val[z0] = src->val[z];
                        }
                        dst->row_ptr[u + 1] = z0;
                        dst->n = u + 1;
                    }
                }
            }
            sae_sparse_free(&pa);
            sae_sparse_free(&pb);
            free(sel);
            if (bad) {
                free(oa);
                free(ob);
                if (bad == 1) goto oom;
                goto done;
            }
        }
        free(oa);
        free(ob);
        if (U == 0) {
            rs_errf(err, "%s / %s: no input has non-special tokens in both files", fa->path, fb->path);
            goto done;
        }
        for (int64_t u = 0; u <= U; u++) uoff[u] = u;
        G = U;
    }

    shift_opts so;
    shift_opts_default(&so);
    so.n_boot = o->n_boot;
    so.seed = o->seed;
    so.n_perm = o->n_perm;
    so.threads = o->threads;
    shift_input in = {.n_rows = U, .d = d, .a = ca, .b = cb, .fa = sae ? &sa : NULL, .fb = sae ? &sb : NULL,
                      .n_groups = G, .offsets = uoff};
    if (shift_compare(&in, &so, &r, err)) goto done;

    cJSON_AddStringToObject(L, "mode", aligned ? "token_aligned" : "pooled_per_input");
    rs_json_add_num(L, "n_rows", (double)U);
    rs_json_add_num(L, "n_groups", (double)G);
    cJSON *sh = cJSON_AddObjectToObject(L, "shift");
    static const int ORDER[] = {SHIFT_COS_RAW, SHIFT_COS_CENTRED, SHIFT_L2_RAW, SHIFT_CKA_LINEAR, SHIFT_CKA_DEBIASED,
                                SHIFT_COS_FEAT, SHIFT_L2_FEAT, SHIFT_JACCARD_TOKEN, SHIFT_JACCARD_FEATURE,
                                SHIFT_JS_TOKEN, SHIFT_JS_MASS, SHIFT_PEARSON_MEAN_FEAT};
    for (size_t i = 0; i < sizeof ORDER / sizeof *ORDER; i++) {
        int k = ORDER[i];
        if (shift_metric_is_feature(k) && !sae) continue;
        char tbuf[160];
        cJSON *mo = json_metric(shift_metric_stat(&r, k), &r.null[k], test_text(k, &r, &so, tbuf, sizeof tbuf));
        cJSON_AddItemToObject(sh, shift_metric_name(k), mo);
        if (add_row(rows, layer, hname, "", shift_metric_name(k), shift_metric_stat(&r, k), &r.null[k], mo)) goto oom;
    }
    if (sae) {
        rs_json_add_num(sh, "n_features_alive_a", (double)r.n_alive_a);
        rs_json_add_num(sh, "n_features_alive_b", (double)r.n_alive_b);
        rs_json_add_num(sh, "n_features_alive_either", (double)r.n_alive_either);
    }

    /* floors: split-half within each model; SAE misfit per model (docs/metrics.md) */
    if (!o->no_floors) {
        cJSON *floors = cJSON_AddObjectToObject(L, "floors");
        shift_result fr = {0};
        int64_t *poff = NULL, *keep_off = NULL;
        float *keep = NULL;
        int ferr = 0;
        for (int side = 0; side < 2 && !ferr; side++) {
            const acts_file *fx = side ? fb : fa;
            const uint8_t *inc = side ? inc_b : inc_a;
            /* token rows of the included tokens, by input: aligned → (ca|cb, uoff); pooled →
             * (xa|xb, offsets recomputed from the masks) */
            const float *xt = aligned ? (side ? cb : ca) : (side ? xb : xa);
            const int64_t *toff = uoff;
            int64_t ng = G;
            if (!aligned) {
                poff = malloc((size_t)(fx->n_in + 1) * sizeof *poff);
                if (!poff) {
                    ferr = 1;
                    break;
                }
                poff[0] = 0;
                for (int64_t i = 0; i < fx->n_in; i++) {
                    poff[i + 1] = poff[i];
                    for (int64_t t = fx->off[i]; t < fx->off[i + 1]; t++) poff[i + 1] += inc[t];
                }
                toff = poff;
                ng = fx->n_in;
            }
            int64_t used = 0;
            rs_err ferr_msg = {0};
            char name[32];
            snprintf(name, sizeof name, "split_half_%c", side ? 'b' : 'a');
            if (shift_split_half(xt, d, toff, ng, &so, &fr, &used, &ferr_msg) == 0) {
                if (add_floor(floors, rows, layer, hname, name,
                              "input: mean of its even-position vs odd-position included tokens, same model", &fr, 0))
                    ferr = 1;
                shift_result_free(&fr);
            } else {
                cJSON *fo = cJSON_AddObjectToObject(floors, name);
                cJSON_AddStringToObject(fo, "unavailable", ferr_msg.msg);
            }
            if (sae && !ferr) {
                snprintf(name, sizeof name, "sae_misfit_%c", side ? 'b' : 'a');
                int frc;
                if (aligned) {
                    frc = shift_sae_misfit(sae, xt, U, d, NULL, U, uoff, G, &so, &fr, err);
                } else {
                    /* the kept inputs' token rows, contiguous */
                    int64_t nt = 0;
                    for (int64_t u = 0; u < U; u++) nt += poff[unit_tok[u] + 1] - poff[unit_tok[u]];
                    keep = malloc((size_t)(nt ? nt : 1) * d * sizeof *keep);
                    keep_off = malloc((size_t)(U + 1) * sizeof *keep_off);
                    if (!keep || !keep_off) {
                        ferr = 1;
                        break;
                    }
                    keep_off[0] = 0;
                    for (int64_t u = 0; u < U; u++) {
                        int64_t a0 = poff[unit_tok[u]], a1 = poff[unit_tok[u] + 1];
                        memcpy(keep + (size_t)keep_off[u] * d, xt + (size_t)a0 * d, (size_t)(a1 - a0) * d * sizeof *keep);
                        keep_off[u + 1] = keep_off[u] + (a1 - a0);
                    }
                    frc = shift_sae_misfit(sae, keep, nt, d, keep_off, U, uoff, G, &so, &fr, err);
                    free(keep);
                    free(keep_off);
                    keep = NULL;
                    keep_off = NULL;
                }
                if (frc) {
                    free(poff);
                    goto done;
                }
                if (add_floor(floors, rows, layer, hname, name,
                              aligned ? "token: x vs its SAE reconstruction, same model"
                                      : "input: mean of x vs mean of its SAE reconstructions, same model",
                              &fr, 1))
                    ferr = 1;
                shift_result_free(&fr);
            }
            free(poff);
            poff = NULL;
        }
        free(poff);
        free(keep);
        free(keep_off);
        if (ferr) goto oom;
        if (o->input_image &&
            caption_pair_floors(o, fa, fb, A, B, inc_a, inc_b, d, &so, floors, rows, layer, hname, err))
            goto done;
    }

    char sname[256], path[1024];
    safe_name(sname, sizeof sname, hname);
    int top = o->top_k > 0 ? o->top_k : 20;

    /* features: frequency and mean activation per model, ranked by the shift; each with its
     * Neuronpedia page when the SAE was named from the registry and Neuronpedia hosts it */
    char url[512];
    if (sae) {
        int m = sae->d_sae;
        idx = malloc((size_t)m * sizeof *idx);
        key = malloc((size_t)m * 2 * sizeof *key);
        if (!idx || !key) goto oom;
        double *dfreq = key, *dmean = key + m;
        int64_t na = 0;
        for (int f = 0; f < m; f++) {
            dfreq[f] = ((double)r.count_b[f] - r.count_a[f]) / (double)U;
            dmean[f] = (r.sum_b[f] - r.sum_a[f]) / (double)U;
            if (r.count_a[f] || r.count_b[f]) idx[na++] = f;
        }
        cJSON *tf_json = cJSON_AddObjectToObject(L, "top_features");
        /* rankings: features active on at least min_count rows (either model), each with
         * group-bootstrap intervals of Δfreq and Δmean; the *_freq_matched lists rank the
         * frequency-matched excess of Δfreq (docs/metrics.md "Rankings") */
        int minc = o->min_count > 0 ? o->min_count : 5;
        double *excess = malloc((size_t)m * sizeof *excess);
        int *shown = malloc((size_t)(top + 1) * sizeof *shown);
        double *fci = malloc((size_t)(top + 1) * 4 * sizeof *fci);
        if (!excess || !shown || !fci) {
            free(excess);
            free(shown);
            free(fci);
            goto oom;
        }
        freq_matched_excess(idx, na, r.count_a, r.count_b, minc, 10, dfreq, excess);
        cJSON_AddNumberToObject(tf_json, "min_count", minc);
        const char *lists[6] = {"gained_frequency", "lost_frequency", "gained_mean_activation", "lost_mean_activation",
                                "gained_frequency_freq_matched", "lost_frequency_freq_matched"};
        for (int q = 0; q < 6; q++) {
            sort_by(idx, na, q < 2 ? dfreq : q < 4 ? dmean : excess, q % 2 == 0);
            cJSON *arr = cJSON_AddArrayToObject(tf_json, lists[q]);
            int ns = 0;
            for (int64_t j = 0; j < na && ns < top; j++)
                if (r.count_a[idx[j]] + r.count_b[idx[j]] >= minc) shown[ns++] = (int)idx[j];
            if (shift_feature_ci(&sa, &sb, uoff, G, shown, ns, o->n_boot, o->seed, NULL, fci, err)) {
                free(excess);
                free(shown);
                free(fci);
                goto done;
            }
            for (int j = 0; j < ns; j++) {
                int f = shown[j];
                cJSON *e = cJSON_CreateObject();
                rs_json_add_num(e, "feature", f);
                if (sae->neuronpedia)
                    cJSON_AddStringToObject(e, "neuronpedia_url", rs_neuronpedia_url(sae->neuronpedia, f, url, sizeof url));
                json_num(e, "freq_a", (double)r.count_a[f] / U);
                json_num(e, "freq_b", (double)r.count_b[f] / U);
                json_num(e, "mean_a", r.sum_a[f] / U);
                json_num(e, "mean_b", r.sum_b[f] / U);
                json_num(e, "delta_freq", dfreq[f]);
                json_num(e, "delta_freq_ci_lo", fci[j * 4 + 0]);
                json_num(e, "delta_freq_ci_hi", fci[j * 4 + 1]);
                json_num(e, "delta_mean", dmean[f]);
                json_num(e, "delta_mean_ci_lo", fci[j * 4 + 2]);
                json_num(e, "delta_mean_ci_hi", fci[j * 4 + 3]);
                json_num(e, "delta_freq_excess", excess[f]);
                cJSON_AddItemToArray(arr, e);
            }
        }
        free(excess);
        free(shown);
        free(fci);
        snprintf(path, sizeof path, "%s/features_%s.csv", o->out_dir, sname);
        if (rs_atomic_open(&ff, path, err)) goto done;
        fputs("feature,count_a,count_b,count_both,freq_a,freq_b,delta_freq,mean_a,mean_b,delta_mean,neuronpedia_url\n",
              ff.fp);
        sort_by(idx, na, dfreq, 1);
        for (int64_t j = 0; j < na; j++) {
            int f = (int)idx[j];
            fprintf(ff.fp, "%d,%lld,%lld,%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%s\n", f, (long long)r.count_a[f],
                    (long long)r.count_b[f], (long long)r.count_both[f], (double)r.count_a[f] / U,
                    (double)r.count_b[f] / U, dfreq[f], r.sum_a[f] / U, r.sum_b[f] / U, dmean[f],
                    rs_neuronpedia_url(sae->neuronpedia, f, url, sizeof url));
        }
        if (rs_atomic_commit(&ff, err)) goto done;
        free(idx);
        free(key);
        idx = NULL;
        key = NULL;
    }

    /* units (tokens or inputs): per-row metrics, most shifted first */
    idx = malloc((size_t)U * sizeof *idx);
    key = malloc((size_t)U * sizeof *key);
    if (!idx || !key) goto oom;
    for (int64_t u = 0; u < U; u++) {
        idx[u] = u;
        key[u] = r.row_cos_raw[u];
    }
    sort_by(idx, U, key, 0);
    snprintf(path, sizeof path, "%s/%s_%s.csv", o->out_dir, aligned ? "tokens" : "inputs", sname);
    if (rs_atomic_open(&tf, path, err)) goto done;
    fputs(aligned ? "row,input,position,token_id,token,category,cos_raw,l2_raw,cos_feat,l2_feat,jaccard,js_bits\n"
                  : "input,cos_raw,l2_raw,cos_feat,l2_feat,jaccard,js_bits\n",
          tf.fp);
    cJSON *tt = cJSON_AddArrayToObject(L, aligned ? "top_shifted_tokens" : "top_shifted_inputs");
    /* category aggregation */
    int ncat = cats ? categories_count(cats) + 1 : 0;
    double (*cagg)[6] = ncat ? calloc((size_t)ncat, sizeof *cagg) : NULL;
    if (ncat && !cagg) goto oom;
    for (int64_t j = 0; j < U; j++) {
        int64_t u = idx[j];
        double fv[4] = {NAN, NAN, NAN, NAN};
        if (sae) {
            fv[0] = r.row_cos_feat[u];
            fv[1] = r.row_l2_feat[u];
            fv[2] = r.row_jaccard[u];
            fv[3] = r.row_js[u];
        }
        const char *piece = NULL, *cat = NULL;
        int64_t t = unit_tok[u], input = 0;
        if (aligned) {
            while (input + 1 < fa->n_in && fa->off[input + 1] <= t) input++;
            if (tok) piece = tok_piece(tok, fa->ids[t]);
            if (cats) {
                cat = categories_lookup(cats, piece);
                int ci = ncat - 1;
                for (int c = 0; cat && c < ncat - 1; c++)
                    if (!strcmp(categories_name(cats, c), cat)) ci = c;
                double v6[6] = {1, r.row_cos_raw[u], r.row_l2_raw[u], fv[0], fv[2], fv[3]};
                for (int k = 0; k < 6; k++) cagg[ci][k] += v6[k];
            }
            fprintf(tf.fp, "%lld,%lld,%lld,%d,", (long long)t, (long long)input, (long long)(t - fa->off[input]), fa->ids[t]);
            csv_str(tf.fp, piece ? piece : "");
            fputc(',', tf.fp);
            csv_str(tf.fp, cat ? cat : (cats ? "other" : ""));
            fputc(',', tf.fp);
        } else {
            fprintf(tf.fp, "%lld,", (long long)t);
        }
        fprintf(tf.fp, "%.9g,%.9g,", (double)r.row_cos_raw[u], (double)r.row_l2_raw[u]);
        for (int k = 0; k < 4; k++) {
            csv_num(tf.fp, fv[k]);
            fputc(k < 3 ? ',' : '\n', tf.fp);
        }
        if (j < top) {
            cJSON *e = cJSON_CreateObject();
            if (aligned) {
                rs_json_add_num(e, "row", (double)t);
                rs_json_add_num(e, "input", (double)input);
                rs_json_add_num(e, "position", (double)(t - fa->off[input]));
                rs_json_add_num(e, "token_id", fa->ids[t]);
                if (piece) cJSON_AddStringToObject(e, "token", piece);
            } else {
                rs_json_add_num(e, "input", (double)t);
            }
            json_num(e, "cos_raw", r.row_cos_raw[u]);
            json_num(e, "l2_raw", r.row_l2_raw[u]);
            if (sae) {
                json_num(e, "cos_feat", fv[0]);
                json_num(e, "jaccard", fv[2]);
            }
            cJSON_AddItemToArray(tt, e);
        }
    }
    if (rs_atomic_commit(&tf, err)) {
        free(cagg);
        goto done;
    }
    if (cagg) {
        cJSON *cj = cJSON_AddObjectToObject(L, "categories");
        for (int c = 0; c < ncat; c++) {
            if (cagg[c][0] == 0) continue;
            cJSON *e = cJSON_AddObjectToObject(cj, c < ncat - 1 ? categories_name(cats, c) : "other");
            double nn = cagg[c][0];
            rs_json_add_num(e, "n_tokens", nn);
            json_num(e, "cos_raw", cagg[c][1] / nn);
            json_num(e, "l2_raw", cagg[c][2] / nn);
            if (sae) {
                json_num(e, "cos_feat", cagg[c][3] / nn);
                json_num(e, "jaccard", cagg[c][4] / nn);
                json_num(e, "js_bits", cagg[c][5] / nn);
            }
        }
        free(cagg);
    }
    /* token types (aligned): mean cos_raw per token id with a group-bootstrap interval, a
     * minimum count and the frequency-matched excess (docs/metrics.md "Rankings") */
    if (aligned) {
        int64_t nk = 0;
        int minc = o->min_count > 0 ? o->min_count : 5, nbins = 10;
        ukey = malloc((size_t)U * sizeof *ukey);
        if (!ukey) goto oom;
        for (int64_t u = 0; u < U; u++) ukey[u] = fa->ids[unit_tok[u]];
        if (shift_rank_keys(ukey, r.row_cos_raw, U, uoff, G, minc, nbins, o->n_boot, o->seed, NULL, &rk, &nk, err))
            goto done;
        cJSON *tj = cJSON_AddObjectToObject(L, "token_types");
        cJSON_AddStringToObject(tj, "metric", "cos_raw");
        cJSON_AddNumberToObject(tj, "min_count", minc);
        cJSON_AddNumberToObject(tj, "n_bins", nbins);
        cJSON_AddNumberToObject(tj, "n_ranked", (double)nk);
        free(idx);
        free(key);
        idx = malloc((size_t)(nk + 1) * sizeof *idx);
        key = malloc((size_t)(nk + 1) * 2 * sizeof *key);
        if (!idx || !key) goto oom;
        for (int64_t k = 0; k < nk; k++) {
            key[k] = rk[k].mean;
            key[nk + k] = rk[k].excess;
        }
        for (int q = 0; q < 2; q++) {
            for (int64_t k = 0; k < nk; k++) idx[k] = k;
            sort_by(idx, nk, key + q * nk, 0);
            cJSON *arr = cJSON_AddArrayToObject(tj, q ? "most_shifted_freq_matched" : "most_shifted");
            for (int64_t j = 0; j < nk && j < top; j++) {
                const shift_rank_entry *x = &rk[idx[j]];
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "token_id", x->key);
                const char *pc = tok ? tok_piece(tok, x->key) : NULL;
                if (pc) cJSON_AddStringToObject(e, "token", pc);
                cJSON_AddNumberToObject(e, "count", (double)x->count);
                json_num(e, "mean", x->mean);
                json_num(e, "ci_lo", x->lo);
                json_num(e, "ci_hi", x->hi);
                json_num(e, "excess", x->excess);
                cJSON_AddNumberToObject(e, "freq_bin", x->bin);
                cJSON_AddItemToArray(arr, e);
            }
        }
        snprintf(path, sizeof path, "%s/token_types_%s.csv", o->out_dir, sname);
        if (rs_atomic_open(&kf, path, err)) goto done;
        fputs("token_id,token,count,mean_cos_raw,ci_lo,ci_hi,freq_bin,excess\n", kf.fp);
        for (int64_t j = 0; j < nk; j++) { /* idx: by excess, most shifted first */
            const shift_rank_entry *x = &rk[idx[j]];
            const char *pc = tok ? tok_piece(tok, x->key) : NULL;
            fprintf(kf.fp, "%d,", x->key);
            csv_str(kf.fp, pc ? pc : "");
            fprintf(kf.fp, ",%lld,", (long long)x->count);
            csv_num(kf.fp, x->mean);
            fputc(',', kf.fp);
            csv_num(kf.fp, x->lo);
            fputc(',', kf.fp);
            csv_num(kf.fp, x->hi);
            fprintf(kf.fp, ",%d,", x->bin);
            csv_num(kf.fp, x->excess);
            fputc('\n', kf.fp);
        }
        if (rs_atomic_commit(&kf, err)) goto done;
    }
    cJSON_AddItemToArray(layers_json, L);
    L = NULL;
    rc = 0;
    goto done;
oom:
    rs_errk(err, RS_ENOMEM, "out of memory (layer hook '%s')", hname ? hname : "?");
done:
    rs_atomic_abort(&ff);
    rs_atomic_abort(&tf);
    rs_atomic_abort(&kf);
    free(rk);
    free(ukey);
    cJSON_Delete(L);
    free(hook);
    free(sae_path);
    free(ownA);
    free(ownB);
    free(ca);
    free(cb);
    free(xa);
    free(xb);
    sae_free(sae);
    sae_sparse_free(&sa);
    sae_sparse_free(&sb);
    sae_sparse_free(&ta);
    sae_sparse_free(&tb);
    shift_result_free(&r);
    free(uoff);
    free(unit_tok);
    free(idx);
    free(key);
    free(inc_a);
    free(inc_b);
    return rc;
}


/* Remove a folder this run created, with what it wrote there (per-layer CSVs committed
 * before a later layer failed): a refused shift leaves nothing behind. */
static void remove_folder(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4096];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                (size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < sizeof path)
                unlink(path);
        closedir(d);
    }
    rmdir(dir);
}
int shift_run(const shift_run_opts *o, rs_err *err) {
    acts_file fa = {0}, fb = {0};
    rs_tokenizer *tok = NULL;
    rs_categories *cats = NULL;
    cJSON *root = NULL;
    char *summ_buf = NULL;
    size_t summ_len = 0;
    FILE *summary = NULL;
    sum_rows rows = {0};
    double *pv = NULL, *qv = NULL;
    rs_atomic_file rf = {0}, sf = {0};
    char *js = NULL;
    int rc = -1;
    if (!o->acts_a || !o->acts_b || !o->out_dir) return rs_errf(err, "shift: --a, --b and --out are required");
    shift_run_opts oo = *o;
    if (o->n_layers > 0) {
        /* a layer sweep: hook defaults to the Gemma Scope residual site */
        if (!oo.hook) oo.hook = "blocks.{layer}.hook_resid_post";
        if (!strstr(oo.hook, "{layer}") && !(oo.sae && strstr(oo.sae, "{layer}")))
            return rs_errf(err, "shift: --layers needs --hook or --sae containing {layer}");
    }
    o = &oo;
    struct stat out_st;
    int created = stat(o->out_dir, &out_st) != 0; /* a folder made here is removed again on failure */
    if (mkdir(o->out_dir, 0777) && errno != EEXIST) return rs_errk(err, RS_EIO, "%s: cannot create folder: %s", o->out_dir, strerror(errno));
    if (open_acts(&fa, o->acts_a, err) || open_acts(&fb, o->acts_b, err)) goto done;
    int aligned = !o->force_pooled && fa.n_tok == fb.n_tok && fa.n_in == fb.n_in &&
                  !memcmp(fa.ids, fb.ids, (size_t)fa.n_tok * sizeof *fa.ids) &&
                  !memcmp(fa.off, fb.off, (size_t)(fa.n_in + 1) * sizeof *fa.off);
    if (!aligned && fa.n_in != fb.n_in) {
        rs_errf(err, "%s has %lld inputs but %s has %lld: the files must cover the same inputs", fa.path,
                (long long)fa.n_in, fb.path, (long long)fb.n_in);
        goto done;
    }
    if (o->tokenizer && tok_load(&tok, o->tokenizer, err)) goto done;
    if (tok) {
        if (o->categories ? categories_load(&cats, o->categories, err) : categories_builtin(&cats, err)) goto done;
    } else if (o->categories) {
        rs_errf(err, "--categories needs --tokenizer (token strings are matched against the word lists)");
        goto done;
    }
    summary = open_memstream(&summ_buf, &summ_len);
    root = cJSON_CreateObject();
    if (!summary || !root) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    fputs("layer,hook,metric,value,ci_lo,ci_hi,p_value,null_lo,null_hi,q_value\n", summary);
    cJSON_AddStringToObject(root, "reprshift_version", RS_VERSION);
    cJSON_AddStringToObject(root, "acts_a", o->acts_a);
    cJSON_AddStringToObject(root, "acts_b", o->acts_b);
    if (o->sae) cJSON_AddStringToObject(root, "sae", o->sae);
    cJSON_AddStringToObject(root, "mode", aligned ? "token_aligned" : "pooled_per_input");
    cJSON_AddBoolToObject(root, "special_tokens_excluded", !o->keep_special);
    cJSON_AddStringToObject(root, "excluded_tokens",
                            o->keep_special ? "none (--keep-special)"
                            : tok ? "<pad>, <eos>, <bos> (ids 0-2) and whitespace-only pieces (tokenizer given)"
                                  : "<pad>, <eos>, <bos> (ids 0-2); whitespace-only pieces are kept (no tokenizer given)");
    rs_json_add_num(root, "bootstrap_replicates", o->n_boot);
    rs_json_add_num(root, "seed", (double)o->seed);
    cJSON_AddStringToObject(root, "ci", "95% percentile bootstrap over inputs");
    rs_json_add_num(root, "permutations", o->n_perm);
    cJSON_AddStringToObject(root, "permutation_test",
                            o->n_perm > 0 ? "p_value per metric: pairing of rows shuffled, (1 + #extreme)/(1 + n_perm); "
                                            "null_lo/null_hi = 2.5/97.5 percentiles of the null"
                                          : "not run (0 permutations): metrics are reported without p-values (null)");
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    int nl = o->n_layers > 0 ? o->n_layers : 1;
    for (int i = 0; i < nl; i++) {
        int layer = o->n_layers > 0 ? o->layers[i] : -1;
        if (run_layer(o, &fa, &fb, layer, tok, cats, aligned, layers, &rows, err)) goto done;
    }
    /* Benjamini–Hochberg over every p-value of this run (metric × layer) */
    pv = malloc((size_t)(rows.n + 1) * sizeof *pv);
    qv = malloc((size_t)(rows.n + 1) * sizeof *qv);
    if (!pv || !qv) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    int n_tests = 0;
    for (int i = 0; i < rows.n; i++) {
        pv[i] = rows.r[i].v[3];
        n_tests += isfinite(pv[i]) != 0;
    }
    if (stats_bh_qvalues(pv, rows.n, qv)) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    rs_json_add_num(root, "n_tests", n_tests);
    cJSON_AddStringToObject(root, "multiple_comparisons",
                            "q_value: Benjamini-Hochberg over the n_tests p-values of this file (metric x layer)");
    for (int i = 0; i < rows.n; i++) {
        sum_row *w = &rows.r[i];
        w->v[6] = qv[i];
        if (w->obj) json_num(w->obj, "q_value", qv[i]);
        fprintf(summary, "%d,", w->layer);
        csv_str(summary, w->hook);
        fprintf(summary, ",%s", w->metric);
        for (int k = 0; k < 7; k++) {
            fputc(',', summary);
            csv_num(summary, w->v[k]);
        }
        fputc('\n', summary);
    }
    fflush(summary);
    js = cJSON_Print(root);
    char path[1024];
    snprintf(path, sizeof path, "%s/summary.csv", o->out_dir);
    if (!js || rs_atomic_open(&sf, path, err) || rs_atomic_write(&sf, summ_buf, summ_len, err) || rs_atomic_commit(&sf, err))
        goto done;
    snprintf(path, sizeof path, "%s/results.json", o->out_dir);
    if (rs_atomic_open(&rf, path, err) || rs_atomic_write(&rf, js, strlen(js), err) || rs_atomic_write(&rf, "\n", 1, err) ||
        rs_atomic_commit(&rf, err))
        goto done;
    rc = 0;
done:
    if (rc && err && !err->msg[0]) rs_errf(err, "shift failed");
    rs_atomic_abort(&rf);
    rs_atomic_abort(&sf);
    if (rc && created) remove_folder(o->out_dir);
    if (summary) fclose(summary);
    free(rows.r);
    free(pv);
    free(qv);
    free(summ_buf);
    free(js);
    cJSON_Delete(root);
    close_acts(&fa);
    close_acts(&fb);
    tok_free(tok);
    categories_free(cats);
    return rc;
}
