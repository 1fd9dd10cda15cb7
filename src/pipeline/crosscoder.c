/* Crosscoder stage (docs/crosscoder.md): per hook, one crosscoder trained on the paired
 * caption-token activations of Gemma-2 (condition a, acts/llm_text) and PaliGemma reading
 * the caption after its own image (condition c, acts/vlm_caption): the same caption token
 * ids, row for row. Training rows: the content tokens (pl_token_included) of the captions
 * of images outside the test split; fit metrics on the test split's captions (held out), or
 * in-sample when the manifest has no test split. Per latent the relative decoder norm
 * r = ‖d_vlm‖ / (‖d_llm‖ + ‖d_vlm‖) and its class. Writes results/crosscoder.json,
 * results/crosscoder_latents.csv and the models results/crosscoder/<hook>.safetensors;
 * training state for resuming goes to crosscoder_state/ in the run folder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "base/jsonutil.h"
#include "reprshift/crosscoder.h"
#include "reprshift/fileio.h"
#include "reprshift/probe.h"
#include "reprshift/stats.h"
#include "reprshift/store.h"
#include "reprshift/version.h"

#define XC_HIST_BINS 20

int pl_crosscoder_used(const pl_ctx *c) {
    return c->cfg->crosscoder.on && pl_store_used(c, PL_LLM_TEXT) && pl_store_used(c, PL_VLM_CAPTION);
}

int pl_crosscoder_fp(pl_ctx *c, char fp[65], rs_err *err) {
    char fa[65], fc[65];
    if (pl_store_fp(c, PL_LLM_TEXT, fa, err) || pl_store_fp(c, PL_VLM_CAPTION, fc, err)) return -1;
    char *sec = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c->cfg->resolved, "crosscoder"));
    if (!sec) return rs_errk(err, RS_ENOMEM, "out of memory");
    /* the hooks when the section names none: every captured one */
    size_t hl = 1;
    for (int h = 0; h < c->cfg->n_hooks; h++) hl += strlen(c->cfg->hooks[h]) + 1;
    char *hooks = malloc(hl);
    if (!hooks) {
        cJSON_free(sec);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    hooks[0] = 0;
    for (int h = 0; h < c->cfg->n_hooks; h++) strcat(strcat(hooks, c->cfg->hooks[h]), ",");
    pl_fp(fp, "crosscoder v1 %s %s %s %s %s", RS_VERSION, fa, fc, sec, hooks);
    cJSON_free(sec);
    free(hooks);
    return 0;
}

/* Wilson score interval (95%) for x successes of n. */
static void wilson(int64_t x, int64_t n, double *lo, double *hi) {
    if (n <= 0) {
        *lo = *hi = NAN;
        return;
    }
    const double z = 1.959963984540054;
    double p = (double)x / n, z2 = z * z, den = 1 + z2 / n, mid = (p + z2 / (2.0 * n)) / den;
    double half = z * sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / den;
    *lo = mid - half > 0 ? mid - half : 0;
    *hi = mid + half < 1 ? mid + half : 1;
}

/* Seeds of the retrainings across seeds (crosscoder.seeds = S): seed + XC_SEED_STRIDE·s,
 * s = 0 .. S−1. The side-swap null trains with seed + 1 + run, run < null_runs ≤ 1000 (the
 * schema's bound), so a stride of 1001 keeps the two sets apart. */
#define XC_SEED_STRIDE 1001

/* P(|T| ≤ t) for Student's t with nu ≥ 1 degrees of freedom, exact for integer nu
 * (Abramowitz & Stegun 26.7.3–4: finite sums in cos θ, θ = atan(t/√nu)). */
static double t_central(double t, int nu) {
    double th = atan(t / sqrt((double)nu)), cs = cos(th), c2 = cs * cs, sn = sin(th), term = 1, sum = 1;
    if (nu % 2 == 0) {
        for (int k = 2; k <= nu - 2; k += 2) term *= (double)(k - 1) / k * c2, sum += term;
        return sn * sum;
    }
    if (nu == 1) return 2 * th / 3.14159265358979323846;
    for (int k = 3; k <= nu - 2; k += 2) term *= (double)(k - 1) / k * c2, sum += term;
    return 2 / 3.14159265358979323846 * (th + sn * cs * sum);
}

/* The 0.975 quantile of Student's t with nu ≥ 1 degrees of freedom (bisection on t_central). */
static double t975(int nu) {
    double lo = 0, hi = 16;
    while (t_central(hi, nu) < 0.95) hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (t_central(mid, nu) < 0.95) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

typedef struct {
    int64_t n;        /* rows */
    int G;            /* images */
    int *img;         /* [n] image index 0..G-1 of each row */
    float *x0, *x1;   /* [n, d] */
} row_set;

static void row_set_free(row_set *r) { free(r->img), free(r->x0), free(r->x1); }

/* Per-image sums for the fit-metric bootstrap: err per side, l0, rows, Σx and Σ‖x‖² per side. */
typedef struct {
    double *e0, *e1, *l0, *n, *s2;  /* [G] (s2: [2G]) */
    double *s1;                     /* [2G, d] */
} img_sums;

/* FVU of side s over the images in w[g] multiplicities (w NULL: each once). */
static double fvu_of(const img_sums *S, int G, int d, int s, const int *w, double *tmp) {
    double e = 0, n = 0, s2 = 0;
    for (int j = 0; j < d; j++) tmp[j] = 0;
    for (int g = 0; g < G; g++) {
        int m = w ? w[g] : 1;
        if (!m) continue;
        e += m * (s ? S->e1[g] : S->e0[g]);
        n += m * S->n[g];
        s2 += m * S->s2[2 * g + s];
        const double *v = S->s1 + ((size_t)2 * g + s) * d;
        for (int j = 0; j < d; j++) tmp[j] += m * v[j];
    }
    double c = 0;
    for (int j = 0; j < d; j++) c += tmp[j] * tmp[j];
    double tv = n > 0 ? s2 - c / n : 0;
    return tv > 0 ? e / tv : NAN;
}

static cJSON *stat_n(double v, double lo, double hi, int64_t n) {
    cJSON *o = rs_json_stat(v, lo, hi);
    if (o) rs_json_add_num(o, "n", (double)n);
    return o;
}

/* Fit metrics of rows r with a percentile bootstrap over its images → "fit" object. */
static cJSON *fit_json(const rs_crosscoder *x, const row_set *r, int B, double fvu[2], rs_err *err) {
    int d = x->d_in, G = r->G;
    int64_t n = r->n;
    double *e0 = malloc((size_t)n * sizeof *e0), *e1 = malloc((size_t)n * sizeof *e1), *l0 = malloc((size_t)n * sizeof *l0);
    img_sums S = {calloc((size_t)G, sizeof(double)), calloc((size_t)G, sizeof(double)), calloc((size_t)G, sizeof(double)),
                  calloc((size_t)G, sizeof(double)), calloc((size_t)2 * G, sizeof(double)),
                  calloc((size_t)2 * G * d, sizeof(double))};
    double *tmp = malloc((size_t)d * sizeof *tmp), *bf[3] = {NULL, NULL, NULL};
    int *w = calloc((size_t)G, sizeof *w);
    cJSON *o = NULL;
    for (int q = 0; q < 3; q++) bf[q] = malloc(((size_t)B + 1) * sizeof(double));
    if (!e0 || !e1 || !l0 || !S.e0 || !S.e1 || !S.l0 || !S.n || !S.s2 || !S.s1 || !tmp || !w || !bf[0] || !bf[1] || !bf[2]) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    if (xc_eval_rows(x, r->x0, r->x1, n, e0, e1, l0, NULL, err)) goto done;
    for (int64_t t = 0; t < n; t++) {
        int g = r->img[t];
        S.e0[g] += e0[t], S.e1[g] += e1[t], S.l0[g] += l0[t], S.n[g] += 1;
        for (int s = 0; s < 2; s++) {
            const float *v = (s ? r->x1 : r->x0) + (size_t)t * d;
            double *acc = S.s1 + ((size_t)2 * g + s) * d, q = 0;
            for (int j = 0; j < d; j++) acc[j] += v[j], q += (double)v[j] * v[j];
            S.s2[2 * g + s] += q;
        }
    }
    double f0 = fvu_of(&S, G, d, 0, NULL, tmp), f1 = fvu_of(&S, G, d, 1, NULL, tmp), L = 0, N = 0;
    fvu[0] = f0, fvu[1] = f1;
    for (int g = 0; g < G; g++) L += S.l0[g], N += S.n[g];
    L = N > 0 ? L / N : NAN;
    for (int b = 0; b < B; b++) {
        memset(w, 0, (size_t)G * sizeof *w);
        for (int j = 0; j < G; j++) {
            int g = (int)(rs_uniform_at(0xc0ffee5c, (uint64_t)b * (uint64_t)G + (uint64_t)j) * G);
            w[g < G ? g : G - 1]++;
        }
        double ll = 0, nn = 0;
        for (int g = 0; g < G; g++) ll += w[g] * S.l0[g], nn += w[g] * S.n[g];
        bf[0][b] = fvu_of(&S, G, d, 0, w, tmp);
        bf[1][b] = fvu_of(&S, G, d, 1, w, tmp);
        bf[2][b] = nn > 0 ? ll / nn : NAN;
    }
    double lo[3] = {NAN, NAN, NAN}, hi[3] = {NAN, NAN, NAN};
    for (int q = 0; q < 3 && B > 0; q++) lo[q] = stats_percentile(bf[q], B, 0.025), hi[q] = stats_percentile(bf[q], B, 0.975);
    o = cJSON_CreateObject();
    if (!o) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    const char *side[2] = {"llm", "vlm"};
    double fv[2] = {f0, f1};
    for (int s = 0; s < 2; s++) {
        cJSON *so = cJSON_AddObjectToObject(o, side[s]);
        cJSON_AddItemToObject(so, "fvu", stat_n(fv[s], lo[s], hi[s], n));
        cJSON_AddItemToObject(so, "explained_variance", stat_n(1 - fv[s], 1 - hi[s], 1 - lo[s], n));
    }
    cJSON_AddItemToObject(o, "l0", stat_n(L, lo[2], hi[2], n));
    rs_json_add_num(o, "n_rows", (double)n);
    rs_json_add_num(o, "n_images", G);
done:
    free(e0), free(e1), free(l0), free(S.e0), free(S.e1), free(S.l0), free(S.n), free(S.s2), free(S.s1), free(tmp), free(w);
    for (int q = 0; q < 3; q++) free(bf[q]);
    return o;
}

/* The content-token rows of the captions whose image is (test = 1) or is not (0) in the
 * test split; test = -1: every caption. */
static int gather_rows(pl_ctx *c, const int32_t *ids, const int64_t *off, const float *A, const float *C, int64_t w,
                       int test, row_set *r, rs_err *err) {
    memset(r, 0, sizeof *r);
    int n = c->n_text;
    int *map = malloc(((size_t)c->n_image + 1) * sizeof *map);
    if (!map) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (int j = 0; j < c->n_image; j++) map[j] = -1;
    int64_t cnt = 0;
    for (int pass = 0; pass < 2; pass++) {
        cnt = 0;
        for (int i = 0; i < n; i++) {
            int j = c->text_image[i];
            int is_test = !strcmp(c->man->rows[c->image_row[j]].split, "test");
            if (test >= 0 && is_test != test) continue;
            for (int64_t t = off[i]; t < off[i + 1]; t++) {
                if (!pl_token_included(c, ids[t])) continue;
                if (pass) {
                    if (map[j] < 0) map[j] = r->G++;
                    r->img[cnt] = map[j];
                    memcpy(r->x0 + (size_t)cnt * w, A + (size_t)t * w, (size_t)w * sizeof *A);
                    memcpy(r->x1 + (size_t)cnt * w, C + (size_t)t * w, (size_t)w * sizeof *C);
                }
                cnt++;
            }
        }
        if (!pass) {
            r->n = cnt;
            r->img = malloc(((size_t)cnt + 1) * sizeof *r->img);
            r->x0 = malloc(((size_t)cnt * w + 1) * sizeof *r->x0);
            r->x1 = malloc(((size_t)cnt * w + 1) * sizeof *r->x1);
            if (!r->img || !r->x0 || !r->x1) {
                free(map);
                row_set_free(r);
                return rs_errk(err, RS_ENOMEM, "out of memory (%lld rows × %lld)", (long long)cnt, (long long)w);
            }
        }
    }
    free(map);
    return 0;
}

/* Latent class by its relative decoder norm r: -1 dead (never fired on a training row, or r
 * undefined), 0 LLM-only, 1 shared, 2 VLM-only, 3 other. */
static int latent_class(double r, int64_t fires, double ex, double sh) {
    if (fires <= 0 || !isfinite(r)) return -1;
    return r < ex ? 0 : r > 1 - ex ? 2 : fabs(r - 0.5) <= sh ? 1 : 3;
}

/* Class counts cls[4] and *alive of crosscoder x, firing counted on the rows x0, x1 [n, d]. */
static int count_classes(const rs_crosscoder *x, const float *x0, const float *x1, int64_t n, double ex, double sh,
                         int64_t cls[4], int64_t *alive, rs_err *err) {
    int m = x->n_latents, rc = -1;
    double *n0 = malloc((size_t)m * sizeof *n0), *n1 = malloc((size_t)m * sizeof *n1), *rel = malloc((size_t)m * sizeof *rel);
    int64_t *fires = malloc((size_t)m * sizeof *fires);
    if (!n0 || !n1 || !rel || !fires) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    xc_decoder_norms(x, n0, n1, rel);
    if (xc_eval_rows(x, x0, x1, n, NULL, NULL, NULL, fires, err)) goto done;
    *alive = 0;
    for (int k = 0; k < 4; k++) cls[k] = 0;
    for (int i = 0; i < m; i++) {
        int k = latent_class(rel[i], fires[i], ex, sh);
        if (k >= 0) cls[k]++, (*alive)++;
    }
    rc = 0;
done:
    free(n0), free(n1), free(rel), free(fires);
    return rc;
}

/* Retraining s ≥ 1 across seeds: the same rows and options with seed o->seed + XC_SEED_STRIDE·s
 * (its own checkpoint file and tag) → class counts cls[4] of its alive latents and *alive. */
static int seed_run(const row_set *tr, int d, const xc_train_opts *o0, int s, const char *ck0, const char *tag0,
                    double ex, double sh, int64_t cls[4], int64_t *alive, rs_err *err) {
    char ck[1100], tag[400];
    rs_crosscoder *x = NULL;
    xc_train_opts o = *o0;
    o.seed = o0->seed + (uint64_t)XC_SEED_STRIDE * (uint64_t)s;
    snprintf(ck, sizeof ck, "%s.seed%d", ck0, s);
    snprintf(tag, sizeof tag, "%s seed %d", tag0, s);
    o.checkpoint = o0->checkpoint ? ck : NULL;
    o.checkpoint_tag = tag;
    xc_train_report rep;
    int rc = -1;
    if (xc_train(tr->x0, tr->x1, tr->n, d, &o, &x, &rep, err)) {
        rs_err_prefix(err, "retraining %d of crosscoder.seeds (seed %llu)", s, (unsigned long long)o.seed);
        goto done;
    }
    rc = count_classes(x, tr->x0, tr->x1, tr->n, ex, sh, cls, alive, err);
done:
    xc_free(x);
    return rc;
}

/* The side-swap null, run q: the same training rows with each token's two sides swapped with
 * probability 1/2 (so that neither side is special), trained with the same options but seed
 * o->seed + 1 + q (its own checkpoint file and tag) → class counts cls[4] of its alive
 * latents and *alive. */
static int null_run(const row_set *tr, int d, const xc_train_opts *o0, int q, const char *ck0, const char *tag0,
                    double ex, double sh, int64_t cls[4], int64_t *alive, rs_err *err) {
    int64_t n = tr->n;
    size_t nd = (size_t)n * d;
    float *x0 = malloc((nd + 1) * sizeof *x0), *x1 = malloc((nd + 1) * sizeof *x1);
    char ck[1100], tag[400];
    rs_crosscoder *x = NULL;
    int rc = -1;
    if (!x0 || !x1) { rs_errk(err, RS_ENOMEM, "out of memory (side-swap null: %lld rows)", (long long)n); goto done; }
    xc_swap_sides(tr->x0, tr->x1, n, d, (o0->seed ^ 0x5a5bd1e995ULL) + (uint64_t)q, x0, x1);
    xc_train_opts o = *o0;
    o.seed = o0->seed + 1 + (uint64_t)q;
    snprintf(ck, sizeof ck, "%s.null%d", ck0, q);
    snprintf(tag, sizeof tag, "%s null %d", tag0, q);
    o.checkpoint = o0->checkpoint ? ck : NULL;
    o.checkpoint_tag = tag;
    xc_train_report rep;
    if (xc_train(x0, x1, n, d, &o, &x, &rep, err)) { rs_err_prefix(err, "side-swap null %d", q); goto done; }
    rc = count_classes(x, x0, x1, n, ex, sh, cls, alive, err);
done:
    free(x0), free(x1);
    xc_free(x);
    return rc;
}

/* One hook: train (resuming a checkpoint), save, evaluate → its JSON entry and CSV rows. */
static int one_hook(pl_ctx *c, const char *hook, const int32_t *ids, const int64_t *off, const char *fp, FILE *csv,
                    cJSON *arr, rs_err *err) {
    const rs_config *cfg = c->cfg;
    float *A = NULL, *C = NULL;
    int64_t ra, wa, rb, wb;
    row_set tr = {0}, ev = {0};
    rs_crosscoder *x = NULL;
    char safe[200], name[256], *ckdir = pl_join(c->out, "crosscoder_state"), *ck = NULL, *mdir = pl_join(c->results, "crosscoder");
    char *mpath = NULL;
    double *n0 = NULL, *n1 = NULL, *rel = NULL;
    int64_t *fires = NULL, (*ncls)[5] = NULL; /* per null run: 4 class counts, alive */
    int64_t (*scls)[5] = NULL;                /* per retraining seed s ≥ 1: 4 class counts, alive */
    int rc = -1;
    pl_safe_name(hook, safe, sizeof safe);
    snprintf(name, sizeof name, "%s.state.safetensors", safe);
    if (!ckdir || !mdir || !(ck = pl_join(ckdir, name))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    snprintf(name, sizeof name, "%s.safetensors", safe);
    if (!(mpath = pl_join(mdir, name))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (pl_store_read_hook(c, PL_LLM_TEXT, hook, &A, &ra, &wa, err) || pl_store_read_hook(c, PL_VLM_CAPTION, hook, &C, &rb, &wb, err))
        goto done;
    if (ra != rb || wa != wb || ra != off[c->n_text]) {
        rs_errf(err, "%s: llm_text has %lld×%lld rows, vlm_caption %lld×%lld", hook, (long long)ra, (long long)wa,
                (long long)rb, (long long)wb);
        goto done;
    }
    if (gather_rows(c, ids, off, A, C, wa, 0, &tr, err) || gather_rows(c, ids, off, A, C, wa, 1, &ev, err)) goto done;
    int held_out = ev.n > 0 && tr.n > 0;
    if (!held_out) { /* no test split: train and evaluate on every caption */
        row_set_free(&tr), row_set_free(&ev);
        if (gather_rows(c, ids, off, A, C, wa, -1, &tr, err) || gather_rows(c, ids, off, A, C, wa, -1, &ev, err)) goto done;
    }
    free(A), free(C);
    A = C = NULL;
    if (tr.n < 1) { rs_errf(err, "%s: no caption content token to train the crosscoder on", hook); goto done; }
    xc_train_opts o;
    xc_train_opts_default(&o);
    o.n_latents = cfg->crosscoder.n_latents > 0 ? cfg->crosscoder.n_latents : 8 * (int)wa;
    o.sparsity = cfg->crosscoder.batchtopk ? XC_BATCHTOPK : XC_L1;
    o.l1 = (float)cfg->crosscoder.l1;
    o.k = cfg->crosscoder.k;
    o.steps = cfg->crosscoder.steps;
    o.batch = cfg->crosscoder.batch;
    o.lr = (float)cfg->crosscoder.lr;
    o.resample_every = cfg->crosscoder.resample_every;
    o.dead_after = cfg->crosscoder.dead_after;
    o.seed = cfg->crosscoder.seed;
    o.checkpoint = ck;
    char tag[300];
    snprintf(tag, sizeof tag, "%s %s", fp, hook);
    o.checkpoint_tag = tag;
    o.checkpoint_every = cfg->crosscoder.checkpoint_every;
    if (o.sparsity == XC_BATCHTOPK && o.k > o.n_latents) {
        rs_errf(err, "crosscoder.k = %d is more than the %d latents", o.k, o.n_latents);
        goto done;
    }
    if (pl_mkdir(ckdir, err)) goto done;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    xc_train_report rep;
    if (xc_train(tr.x0, tr.x1, tr.n, (int)wa, &o, &x, &rep, err)) {
        rs_err_prefix(err, "crosscoder at %s", hook);
        goto done;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    int R = cfg->crosscoder.null_runs;
    double ex = cfg->crosscoder.exclusive, sh = cfg->crosscoder.shared;
    int S = cfg->crosscoder.seeds > 1 ? cfg->crosscoder.seeds : 1;
    if (R > 0 && !(ncls = calloc((size_t)R, sizeof *ncls))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (S > 1 && !(scls = calloc((size_t)S, sizeof *scls))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int q = 1; q < S; q++)
        if (seed_run(&tr, (int)wa, &o, q, ck, tag, ex, sh, scls[q], &scls[q][4], err)) {
            rs_err_prefix(err, "crosscoder at %s", hook);
            goto done;
        }
    for (int q = 0; q < R; q++)
        if (null_run(&tr, (int)wa, &o, q, ck, tag, ex, sh, ncls[q], &ncls[q][4], err)) {
            rs_err_prefix(err, "crosscoder at %s", hook);
            goto done;
        }
    rmdir(ckdir); /* when empty */
    char ntr[32], lay[32];
    snprintf(ntr, sizeof ntr, "%lld", (long long)tr.n);
    int L = rs_hook_block_index(hook);
    snprintf(lay, sizeof lay, "%d", L);
    const char *kv[] = {"hook", hook, "llm", c->llm_name, "vlm", c->vlm_name, "train_rows", ntr, "layer", lay, NULL};
    if (pl_mkdir(mdir, err) || xc_save(x, mpath, kv, err)) goto done;
    int m = x->n_latents;
    n0 = malloc((size_t)m * sizeof *n0), n1 = malloc((size_t)m * sizeof *n1), rel = malloc((size_t)m * sizeof *rel);
    fires = malloc((size_t)m * sizeof *fires);
    if (!n0 || !n1 || !rel || !fires) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    xc_decoder_norms(x, n0, n1, rel);
    if (xc_eval_rows(x, tr.x0, tr.x1, tr.n, NULL, NULL, NULL, fires, err)) goto done;
    double fvu[2] = {NAN, NAN};
    cJSON *fit = fit_json(x, &ev, cfg->crosscoder.bootstrap, fvu, err);
    if (!fit) goto done;
    /* classes over the alive latents (fired on at least one training row) */
    int64_t cls[4] = {0, 0, 0, 0}, alive = 0; /* llm_only, shared, vlm_only, other */
    double hist[XC_HIST_BINS] = {0};
    for (int i = 0; i < m; i++) {
        const char *cn = "dead";
        int k = latent_class(rel[i], fires[i], ex, sh);
        if (k >= 0) {
            alive++;
            cls[k]++;
            cn = k == 0 ? "llm_only" : k == 1 ? "shared" : k == 2 ? "vlm_only" : "other";
            int b = (int)(rel[i] * XC_HIST_BINS);
            hist[b < 0 ? 0 : b >= XC_HIST_BINS ? XC_HIST_BINS - 1 : b] += 1;
        }
        fprintf(csv, "%s,%d,%.9g,%.9g,%.9g,%lld,%.9g,%s\n", hook, i, n0[i], n1[i], rel[i], (long long)fires[i],
                (double)fires[i] / (double)tr.n, cn);
    }
    cJSON *e = cJSON_CreateObject();
    if (!e) { cJSON_Delete(fit); rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    cJSON_AddItemToArray(arr, e);
    cJSON_AddStringToObject(e, "hook", hook);
    rs_json_add_num(e, "layer", L);
    char rel_path[300];
    snprintf(rel_path, sizeof rel_path, "crosscoder/%s", name);
    cJSON_AddStringToObject(e, "file", rel_path);
    cJSON_AddStringToObject(e, "sparsity", o.sparsity == XC_L1 ? "l1" : "batchtopk");
    rs_json_add_num(e, "n_latents", m);
    rs_json_add_num(e, "d_in", (double)wa);
    if (o.sparsity == XC_L1) rs_json_add_num(e, "l1", o.l1);
    else rs_json_add_num(e, "k", o.k), rs_json_add_num(e, "threshold", x->threshold);
    rs_json_add_num(e, "steps", (double)o.steps);
    rs_json_add_num(e, "batch", o.batch);
    rs_json_add_num(e, "lr", o.lr);
    rs_json_add_num(e, "seed", (double)o.seed);
    cJSON *sc = cJSON_AddArrayToObject(e, "scale");
    cJSON_AddItemToArray(sc, rs_json_number(x->scale[0]));
    cJSON_AddItemToArray(sc, rs_json_number(x->scale[1]));
    rs_json_add_num(e, "n_train_rows", (double)tr.n);
    rs_json_add_num(e, "n_train_images", tr.G);
    cJSON_AddStringToObject(e, "eval", held_out ? "held out: the captions of the test-split images"
                                                : "in-sample: the manifest has no test split, so the training rows");
    cJSON *tj = cJSON_AddObjectToObject(e, "training");
    rs_json_add_num(tj, "final_mse_scaled", rep.final_mse);
    rs_json_add_num(tj, "epochs", (double)rep.epochs);
    rs_json_add_num(tj, "resampled", (double)rep.resampled);
    rs_json_add_num(tj, "dead_at_end", (double)rep.dead_at_end);
    cJSON_AddItemToObject(e, "fit", fit);
    cJSON *lj = cJSON_AddObjectToObject(e, "latents");
    rs_json_add_num(lj, "n", m);
    rs_json_add_num(lj, "alive", (double)alive);
    rs_json_add_num(lj, "dead", (double)(m - alive));
    cJSON *cj = cJSON_AddObjectToObject(e, "classes");
    const char *cname[4] = {"llm_only", "shared", "vlm_only", "other"};
    char defs[4][96];
    snprintf(defs[0], sizeof defs[0], "r < %g", ex);
    snprintf(defs[1], sizeof defs[1], "|r - 0.5| <= %g", sh);
    snprintf(defs[2], sizeof defs[2], "r > %g", 1 - ex);
    snprintf(defs[3], sizeof defs[3], "none of the above");
    if (S > 1) { /* seed 0 is the saved model */
        for (int k = 0; k < 4; k++) scls[0][k] = cls[k];
        scls[0][4] = alive;
    }
    for (int k = 0; k < 4; k++) {
        double lo, hi;
        wilson(cls[k], alive, &lo, &hi);
        cJSON *k1 = cJSON_AddObjectToObject(cj, cname[k]);
        cJSON_AddStringToObject(k1, "definition", defs[k]);
        rs_json_add_num(k1, "count", (double)cls[k]);
        cJSON_AddItemToObject(k1, "fraction", stat_n(alive ? (double)cls[k] / alive : NAN, lo, hi, alive));
        if (R > 0) { /* the side-swap null's fractions: mean and range over its runs; p one-sided, by the rule */
            double fs = 0, fmin = INFINITY, fmax = -INFINITY, real = alive ? (double)cls[k] / alive : NAN;
            int ge = 0, le = 0;
            for (int q = 0; q < R; q++) {
                double fq = ncls[q][4] ? (double)ncls[q][k] / (double)ncls[q][4] : NAN;
                fs += fq;
                if (fq < fmin) fmin = fq;
                if (fq > fmax) fmax = fq;
                ge += fq >= real, le += fq <= real;
            }
            cJSON *nj = cJSON_AddObjectToObject(k1, "null_side_swap");
            rs_json_add_num(nj, "fraction_mean", fs / R);
            rs_json_add_num(nj, "fraction_min", fmin);
            rs_json_add_num(nj, "fraction_max", fmax);
            rs_json_add_num(nj, "runs", R);
            /* exclusive classes: is the real fraction larger than under exchangeable sides? shared:
             * smaller? (p = (1 + #null runs at least as extreme) / (1 + runs)) */
            rs_json_add_num(nj, "p", (1.0 + (k == 1 ? le : ge)) / (1.0 + R));
            cJSON_AddStringToObject(nj, "alternative", k == 1 ? "real fraction below the null" : "real fraction above the null");
        }
        if (S > 1) { /* the fraction over the S trainings: mean, range and a 95% t-interval over seeds */
            double *fr = malloc((size_t)S * sizeof *fr), sum = 0, ss = 0, fmin = INFINITY, fmax = -INFINITY;
            if (!fr) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
            for (int q = 0; q < S; q++) {
                fr[q] = scls[q][4] ? (double)scls[q][k] / (double)scls[q][4] : NAN;
                sum += fr[q];
                if (fr[q] < fmin) fmin = fr[q];
                if (fr[q] > fmax) fmax = fr[q];
            }
            double mean = sum / S;
            for (int q = 0; q < S; q++) ss += (fr[q] - mean) * (fr[q] - mean);
            double half = t975(S - 1) * sqrt(ss / (S - 1)) / sqrt((double)S);
            double lo = mean - half < 0 ? 0 : mean - half, hi = mean + half > 1 ? 1 : mean + half;
            cJSON *aj = cJSON_AddObjectToObject(k1, "across_seeds");
            rs_json_add_num(aj, "n_seeds", S);
            cJSON *fa = cJSON_AddArrayToObject(aj, "fractions");
            for (int q = 0; q < S; q++) cJSON_AddItemToArray(fa, rs_json_number(fr[q]));
            free(fr);
            rs_json_add_num(aj, "mean", mean);
            rs_json_add_num(aj, "min", fmin);
            rs_json_add_num(aj, "max", fmax);
            rs_json_add_num(aj, "ci_lo", lo);
            rs_json_add_num(aj, "ci_hi", hi);
            if (R > 0 && k != 1) { /* exclusive and other classes: does the whole seed interval lie above the null? */
                double nmax = -INFINITY;
                for (int q = 0; q < R; q++) {
                    double fq = ncls[q][4] ? (double)ncls[q][k] / (double)ncls[q][4] : NAN;
                    if (fq > nmax) nmax = fq;
                }
                cJSON_AddItemToObject(aj, "beats_null", isfinite(lo) && isfinite(nmax) ? cJSON_CreateBool(lo > nmax)
                                                                                         : cJSON_CreateNull());
            } else if (R > 0) { /* shared: below the null's min */
                double nmin = INFINITY;
                for (int q = 0; q < R; q++) {
                    double fq = ncls[q][4] ? (double)ncls[q][k] / (double)ncls[q][4] : NAN;
                    if (fq < nmin) nmin = fq;
                }
                cJSON_AddItemToObject(aj, "beats_null", isfinite(hi) && isfinite(nmin) ? cJSON_CreateBool(hi < nmin)
                                                                                        : cJSON_CreateNull());
            }
        }
    }
    if (S > 1) {
        cJSON *sj = cJSON_AddObjectToObject(e, "across_seeds");
        char sd[400];
        snprintf(sd, sizeof sd, "the same crosscoder trained %d times on the same rows with seeds seed + %d*s (s = 0 .. "
                 "%d); the first is the saved model, whose latents the file and the CSV describe", S, XC_SEED_STRIDE, S - 1);
        cJSON_AddStringToObject(sj, "definition", sd);
        rs_json_add_num(sj, "n_seeds", S);
        cJSON *sa = cJSON_AddArrayToObject(sj, "seeds"), *al = cJSON_AddArrayToObject(sj, "alive");
        for (int q = 0; q < S; q++) {
            cJSON_AddItemToArray(sa, rs_json_number((double)(o.seed + (uint64_t)XC_SEED_STRIDE * (uint64_t)q)));
            cJSON_AddItemToArray(al, rs_json_number((double)scls[q][4]));
        }
        cJSON *cc = cJSON_AddObjectToObject(sj, "counts");
        for (int k = 0; k < 4; k++) {
            cJSON *a = cJSON_AddArrayToObject(cc, cname[k]);
            for (int q = 0; q < S; q++) cJSON_AddItemToArray(a, rs_json_number((double)scls[q][k]));
        }
        cJSON_AddStringToObject(sj, "ci", "per class: mean of the S fractions +- t(S-1, 0.975) * sd / sqrt(S) (sd with "
                                          "S - 1 in the denominator), clipped to [0, 1]; n = seeds");
        if (R > 0)
            cJSON_AddStringToObject(sj, "beats_null", "per class: LLM-only, VLM-only and other: the interval's lower end "
                                                      "above the largest side-swap null fraction; shared: its upper end "
                                                      "below the smallest");
    }
    if (R > 0) {
        cJSON *nj = cJSON_AddObjectToObject(e, "null_side_swap");
        cJSON_AddStringToObject(nj, "definition",
                                "the same crosscoder retrained on the same training rows with each token's two sides "
                                "swapped with probability 1/2 (seed + 1 + run), so that neither model is special: the "
                                "class fractions a crosscoder produces when the two sides are exchangeable");
        rs_json_add_num(nj, "runs", R);
        cJSON *al = cJSON_AddArrayToObject(nj, "alive");
        for (int q = 0; q < R; q++) cJSON_AddItemToArray(al, rs_json_number((double)ncls[q][4]));
        cJSON *cc = cJSON_AddObjectToObject(nj, "counts");
        for (int k = 0; k < 4; k++) {
            cJSON *a = cJSON_AddArrayToObject(cc, cname[k]);
            for (int q = 0; q < R; q++) cJSON_AddItemToArray(a, rs_json_number((double)ncls[q][k]));
        }
    }
    cJSON *hj = cJSON_AddObjectToObject(e, "rel_norm_hist");
    cJSON *ed = cJSON_AddArrayToObject(hj, "edges"), *ct = cJSON_AddArrayToObject(hj, "counts");
    for (int b = 0; b <= XC_HIST_BINS; b++) cJSON_AddItemToArray(ed, rs_json_number((double)b / XC_HIST_BINS));
    for (int b = 0; b < XC_HIST_BINS; b++) cJSON_AddItemToArray(ct, rs_json_number(hist[b]));
    rs_json_add_num(hj, "n", (double)alive);
    pl_log(c, "crosscoder", "%s: %d latents, %lld training rows, %lld steps in %.2f s (%.0f steps/s%s); alive %lld: "
           "LLM-only %lld, shared %lld, VLM-only %lld; FVU llm %.3f vlm %.3f (%s)", hook, m, (long long)tr.n,
           (long long)(rep.steps_done - rep.resumed_from), secs, (double)(rep.steps_done - rep.resumed_from) / (secs > 0 ? secs : 1e-9),
           rep.resumed_from ? ", resumed" : "", (long long)alive, (long long)cls[0], (long long)cls[1], (long long)cls[2],
           fvu[0], fvu[1],
           held_out ? "held-out captions" : "in-sample");
    if (S > 1)
        pl_log(c, "crosscoder", "%s: class counts over %d seeds in results/crosscoder.json (across_seeds)", hook, S);
    rc = 0;
done:
    free(A), free(C), free(n0), free(n1), free(rel), free(fires), free(ncls), free(scls);
    row_set_free(&tr), row_set_free(&ev);
    xc_free(x);
    free(ckdir), free(ck), free(mdir), free(mpath);
    return rc;
}

int pl_crosscoder_run(pl_ctx *c, const char **note, rs_err *err) {
    (void)note;
    const rs_config *cfg = c->cfg;
    char *jp = pl_join(c->results, "crosscoder.json"), *cp = pl_join(c->results, "crosscoder_latents.csv");
    char *mdir = pl_join(c->results, "crosscoder"), *llm_dir = pl_join(c->acts, PL_STORE_NAME[PL_LLM_TEXT]);
    store_reader *lr = NULL;
    int32_t *ids = NULL;
    int64_t *off = NULL, n_in = 0, rr, ww;
    cJSON *root = NULL;
    char *csv = NULL;
    size_t csv_n = 0;
    FILE *f = NULL;
    int rc = -1;
    char fp[65];
    if (!jp || !cp || !mdir || !llm_dir) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (pl_crosscoder_fp(c, fp, err)) goto done;
    pl_remove_flat_dir(mdir); /* models of an earlier run */
    if (store_reader_open(&lr, llm_dir, err) || store_read_raw(lr, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, err) ||
        store_read_offsets(lr, "offsets", &off, &n_in, err))
        goto done;
    if (n_in != c->n_text) { rs_errf(err, "llm_text holds %lld captions, the dataset %d", (long long)n_in, c->n_text); goto done; }
    root = cJSON_CreateObject();
    f = open_memstream(&csv, &csv_n);
    if (!root || !f) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    fputs("hook,latent,norm_llm,norm_vlm,rel_norm,fires_train,freq_train,class\n", f);
    cJSON_AddStringToObject(root, "definition",
                            "one crosscoder per hook on paired activations of the same caption tokens: side llm = "
                            "Gemma-2 reading <bos> caption (condition a, acts/llm_text), side vlm = PaliGemma reading the "
                            "caption after its own image and the prompt (condition c, acts/vlm_caption); f = ReLU(sum_s "
                            "x_s W_enc,s + b_enc), x_hat_s = f W_dec,s + b_dec,s; each side scaled so its mean norm is "
                            "sqrt(d) (scale); docs/crosscoder.md");
    cJSON_AddStringToObject(root, "rows",
                            "the caption content tokens (not <bos>/<eos>/<pad> nor whitespace-only pieces), one row per "
                            "token with both sides");
    cJSON_AddStringToObject(root, "rel_norm", "r = ||W_dec,vlm,i|| / (||W_dec,llm,i|| + ||W_dec,vlm,i||) per latent");
    cJSON_AddStringToObject(root, "alive", "a latent is alive when it fires on at least one training row; only alive "
                                           "latents are classified and drawn");
    char txt[512];
    snprintf(txt, sizeof txt, "fit metrics (fvu = sum of squared errors / total variance per side, in the original "
             "units; l0 = mean active latents per token): 95%% percentile bootstrap over images (%d resamples, each "
             "image with all its caption tokens); n = token rows", cfg->crosscoder.bootstrap);
    cJSON_AddStringToObject(root, "ci", txt);
    cJSON_AddStringToObject(root, "class_ci",
                            cfg->crosscoder.seeds > 1
                                ? "class fractions: Wilson score 95% interval for a binomial proportion over the n alive "
                                  "latents of the saved model (latents as independent draws); across_seeds: a 95% "
                                  "t-interval over the retrainings (seeds), which includes the training variation but "
                                  "not that between image samples"
                                : "class fractions: Wilson score 95% interval for a binomial proportion over the n alive latents "
                                  "(latents as independent draws); it does not include the variation between retrainings "
                                  "(seeds) or between image samples");
    rs_json_add_num(root, "bootstrap", cfg->crosscoder.bootstrap);
    cJSON *arr = cJSON_AddArrayToObject(root, "hooks");
    int nh = cfg->crosscoder.hooks ? cfg->crosscoder.n_hooks : cfg->n_hooks;
    for (int h = 0; h < nh; h++)
        if (one_hook(c, cfg->crosscoder.hooks ? cfg->crosscoder.hooks[h] : cfg->hooks[h], ids, off, fp, f, arr, err)) goto done;
    fclose(f);
    f = NULL;
    if (pl_write_text(cp, csv ? csv : "", err) || pl_write_json(jp, root, err)) goto done;
    rc = 0;
done:
    if (f) fclose(f);
    free(csv);
    cJSON_Delete(root);
    store_reader_close(lr);
    free(ids), free(off), free(jp), free(cp), free(mdir), free(llm_dir);
    return rc;
}
