/* Steer stage (docs/pipeline.md "Stage 4b: steer"): for each probe direction (each concept
 * class, each edit variant) at each steered hook, add α·s·d at that hook on every decoder
 * row of PaliGemma reading a held-out image + prompt (+ its caption as a teacher-forced
 * suffix), and measure the change in (a) the log-probability of the direction's target
 * tokens at the first generated position and (b) the caption CE; the same for seeded random
 * unit directions added with the same norm α·s (the control).
 * -> results/steer.json, results/steer.csv, results/steer_probes/ (the fitted probes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "base/jsonutil.h"
#include "pipeline/pipeline_internal.h"
#include "io/csv.h"
#include "reprshift/fileio.h"
#include "reprshift/image.h"
#include "reprshift/intervene.h"
#include "reprshift/paligemma.h"
#include "reprshift/probe.h"
#include "reprshift/probe_io.h"
#include "reprshift/progress.h"
#include "reprshift/stats.h"
#include "reprshift/steer.h"
#include "reprshift/tokenizer.h"
#include "reprshift/version.h"

#define STEER_BOOT_STREAM 0x73746565722d6273ULL /* "steer-bs" */
#define STEER_RAND_STREAM 0x73746565722d7264ULL /* "steer-rd" */

static int is_test(const pl_ctx *c, int j) { return !strcmp(c->man->rows[c->image_row[j]].split, "test"); }

int pl_steer_used(const pl_ctx *c) { return c->cfg->steer.on && c->n_image > 0; }

int pl_steer_fp(pl_ctx *c, char fp[65], rs_err *err) {
    char fi[65] = "-", fe[65] = "-";
    if (pl_store_fp(c, PL_VLM_IMAGE, fi, err)) return -1;
    if (pl_store_used(c, PL_VLM_EDITS) && pl_store_fp(c, PL_VLM_EDITS, fe, err)) return -1;
    char *sj = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c->cfg->resolved, "steer"));
    char *wj = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c->cfg->resolved, "probes"));
    /* llm_fp: the caption tokenizer (models.tokenizer or the LLM's) made the suffix ids */
    pl_fp(fp, "steer v1 %s %s %s %s %s %s %s %s prompt=%s proc=%d boot=%d", RS_VERSION, c->dataset_fp, c->vlm_fp, c->llm_fp, fi, fe,
          sj ? sj : "-", wj ? wj : "-", c->cfg->prompt, (int)c->cfg->image_processor, c->cfg->probes.bootstrap);
    free(sj);
    free(wj);
    return 0;
}

/* One steering direction at one hook. */
typedef struct {
    const char *kind;  /* "concept" / "attribute" */
    char name[64];     /* class label / variant label */
    const char *target_key; /* class label / edit family: the key of steer.targets */
    char file[256];    /* under results/ */
    float *dir;        /* [D] unit, raw activation units */
    int32_t *targets;  /* target token ids */
    char **words;      /* the words as tokenized (" " + word) */
    int n_targets;
} steer_dir;

static void dirs_free(steer_dir *v, int n) {
    for (int i = 0; v && i < n; i++) {
        free(v[i].dir);
        free(v[i].targets);
        for (int k = 0; k < v[i].n_targets; k++) free(v[i].words[k]);
        free(v[i].words);
    }
    free(v);
}

/* Target token ids of a direction: for each word of steer.targets[key] (default: key itself)
 * the first token of " " + word (VLM tokenizer, no <bos>). */
static int dir_targets(pl_ctx *c, const rs_tokenizer *tok, steer_dir *sd, rs_err *err) {
    const cJSON *words = c->cfg->steer.targets ? cJSON_GetObjectItemCaseSensitive(c->cfg->steer.targets, sd->target_key)
                                               : NULL;
    int n = words ? cJSON_GetArraySize(words) : 1;
    sd->targets = calloc((size_t)n, sizeof *sd->targets);
    sd->words = calloc((size_t)n, sizeof *sd->words);
    if (!sd->targets || !sd->words) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (int k = 0; k < n; k++) {
        const char *w = words ? cJSON_GetArrayItem(words, k)->valuestring : sd->target_key;
        size_t len = strlen(w) + 2;
        char *s = malloc(len);
        if (!s) return rs_errk(err, RS_ENOMEM, "out of memory");
        snprintf(s, len, " %s", w);
        int32_t *ids = NULL;
        size_t ni = 0;
        if (tok_encode(tok, s, strlen(s), 0, &ids, &ni, err)) {
            free(s);
            return rs_err_prefix(err, "steer.targets: \"%s\"", w);
        }
        while (ni > 0 && tok_is_blank(tok, ids[0])) { /* a lone-space piece is no target */
            memmove(ids, ids + 1, (ni - 1) * sizeof *ids);
            ni--;
        }
        if (ni == 0) {
            free(ids);
            free(s);
            return rs_errk(err, RS_EINVAL, "%s: 'steer.targets.%s': \"%s\" tokenizes to no token", c->cfg->path,
                           sd->target_key, w);
        }
        sd->words[sd->n_targets] = s;
        sd->targets[sd->n_targets++] = ids[0];
        free(ids);
    }
    return 0;
}

/* Every key of steer.targets must name a class or a steered edit family. */
static int check_target_keys(pl_ctx *c, rs_err *err) {
    const cJSON *t = c->cfg->steer.targets;
    for (const cJSON *x = t ? t->child : NULL; x; x = x->next) {
        if (x->string[0] == '_') continue;
        int ok = 0;
        for (int k = 0; k < c->n_labels && !ok; k++) ok = !strcmp(c->labels[k], x->string);
        for (int v = 0; v < c->n_variants && !ok; v++) ok = !strcmp(pl_edit_family(c->variants[v].name), x->string);
        if (!ok) {
            char list[512] = "";
            size_t k2 = 0;
            for (int k = 0; k < c->n_labels && k2 < sizeof list; k++)
                k2 += (size_t)snprintf(list + k2, sizeof list - k2, "%s%s", k2 ? ", " : "", c->labels[k]);
            for (int v = 0; v < c->n_variants && k2 < sizeof list; v++) {
                const char *f = pl_edit_family(c->variants[v].name);
                if (!strstr(list, f)) k2 += (size_t)snprintf(list + k2, sizeof list - k2, "%s%s", k2 ? ", " : "", f);
            }
            return rs_errk(err, RS_EINVAL, "%s: 'steer.targets.%s': no class or edit family of this run is called that "
                                           "(valid: %s)", c->cfg->path, x->string, list);
        }
    }
    return 0;
}

/* Fit a logistic-regression probe (standardised, C = steer.C) on X [n, d] with labels y,
 * save it as results/<file> and load direction NAME from it in raw activation units. (The
 * probes stage fits on its own seeded splits at a cross-validated C, never on these rows at
 * steer.C, so it has no fit to lend: docs/pipeline.md "Stage 4b: steer".) */
static int fit_direction(pl_ctx *c, const char *hook, const float *X, const int *y, int n, int d, int K,
                         char **classes, const char *file, char *const *names, int n_names, float **dirs, rs_err *err) {
    rs_probe p;
    memset(&p, 0, sizeof p);
    float *Z = malloc((size_t)n * d * sizeof *Z);
    char *path = pl_join(c->results, file);
    int rc = -1;
    if (!Z || !path) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (rs_scaler_fit(&p.scaler, X, n, d, err)) goto done;
    rs_scaler_apply(&p.scaler, X, n, Z);
    rs_logreg_opts o = rs_logreg_defaults();
    o.C = c->cfg->steer.C;
    o.threads = 1;
    /* start from b = 0: the warm start's optional class-sum buffer would make the fit's last
       bits depend on whether that allocation succeeded (same optimum either way) */
    o.warm_intercept = 0;
    if (rs_logreg_fit(&p.model, Z, y, n, d, K, &o, err)) goto done;
    p.hook = (char *)hook;
    p.n_classes = K;
    p.classes = classes;
    p.standardized = 1;
    rs_probe_data_hash(X, (size_t)n * d, y, (size_t)n, p.data_hash);
    if (rs_probe_save(&p, path, err)) goto done;
    for (int k = 0; k < n_names; k++)
        if (rs_direction_load(path, names[k], d, &dirs[k], err)) goto done;
    rc = 0;
done:
    if (rc) rs_err_prefix(err, "steer probe %s", file);
    p.hook = NULL;
    p.classes = NULL;
    rs_scaler_free(&p.scaler);
    rs_logreg_free(&p.model);
    free(Z);
    free(path);
    return rc;
}

static void safe_name(char *out, size_t n, const char *s) {
    size_t k = 0;
    for (; *s && k + 1 < n; s++) out[k++] = (char)((*s == ' ' || *s == '/' || *s == ':') ? '_' : *s);
    out[k] = 0;
}

/* The directions of one hook: the concept classes (probes.which has "concept", ≥ 2 labels)
 * and each edit variant whose family is probed (original vs edited, toward "edited"). */
static int hook_dirs(pl_ctx *c, const char *hook, const rs_tokenizer *tok, steer_dir **out, int *n_out, rs_err *err) {
    float *X = NULL, *E = NULL, *Xt = NULL;
    int *y = NULL, n, d, ne = 0, de = 0, nd = 0, rc = -1;
    steer_dir *v = calloc((size_t)(c->n_labels + c->n_variants + 1), sizeof *v);
    char hs[96];
    safe_name(hs, sizeof hs, hook);
    if (!v) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (pl_store_features(c, PL_VLM_IMAGE, hook, &X, &n, &d, err)) goto done;
    int ntr = 0;
    for (int j = 0; j < c->n_image; j++) ntr += !is_test(c, j);
    Xt = malloc((size_t)2 * (ntr ? ntr : 1) * d * sizeof *Xt);
    y = malloc((size_t)2 * (ntr ? ntr : 1) * sizeof *y);
    if (!Xt || !y) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (pl_probes_wants(c->cfg, "concept") && c->n_labels >= 2) {
        int m = 0, *seen = calloc((size_t)c->n_labels, sizeof *seen);
        if (!seen) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        for (int j = 0; j < c->n_image; j++)
            if (!is_test(c, j)) {
                memcpy(Xt + (size_t)m * d, X + (size_t)j * d, (size_t)d * sizeof *Xt);
                y[m++] = c->image_label[j];
                seen[c->image_label[j]] = 1;
            }
        int all = 1;
        for (int k = 0; k < c->n_labels; k++) all &= seen[k];
        free(seen);
        if (!all) {
            pl_log(c, "steer", "%s: concept directions skipped: a class has no training (non-test) image", hook);
        } else {
            float **dd = calloc((size_t)c->n_labels, sizeof *dd);
            if (!dd) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
            char cf[sizeof v[0].file];
            snprintf(cf, sizeof cf, "steer_probes/%s.concept.safetensors", hs);
            int r = fit_direction(c, hook, Xt, y, m, d, c->n_labels, c->labels, cf, c->labels, c->n_labels, dd, err);
            for (int k = 0; k < c->n_labels; k++) {
                v[nd + k].kind = "concept";
                snprintf(v[nd + k].name, sizeof v[nd + k].name, "%s", c->labels[k]);
                v[nd + k].target_key = c->labels[k];
                snprintf(v[nd + k].file, sizeof v[nd + k].file, "%s", cf);
                v[nd + k].dir = dd[k];
            }
            free(dd);
            nd += c->n_labels;
            if (r) goto done;
        }
    }
    int any_attr = 0;
    for (int q = 0; q < c->n_variants; q++) any_attr |= pl_probes_wants(c->cfg, pl_edit_family(c->variants[q].name));
    if (any_attr && pl_store_used(c, PL_VLM_EDITS)) {
        if (pl_store_features(c, PL_VLM_EDITS, hook, &E, &ne, &de, err)) goto done;
        if (de != d || ne != c->n_variants * c->n_image) {
            rs_errf(err, "steer: %s: the edits store has %d rows of width %d, expected %d of width %d", hook, ne, de,
                    c->n_variants * c->n_image, d);
            goto done;
        }
        static char *cls[2] = {"edited", "original"};
        for (int q = 0; q < c->n_variants; q++) {
            if (!pl_probes_wants(c->cfg, pl_edit_family(c->variants[q].name))) continue;
            int m = 0;
            for (int j = 0; j < c->n_image; j++)
                if (!is_test(c, j)) {
                    memcpy(Xt + (size_t)m * d, X + (size_t)j * d, (size_t)d * sizeof *Xt);
                    y[m++] = 1;
                    memcpy(Xt + (size_t)m * d, E + ((size_t)q * c->n_image + j) * d, (size_t)d * sizeof *Xt);
                    y[m++] = 0;
                }
            if (m < 2) continue;
            steer_dir *sd = &v[nd];
            char vs[64];
            safe_name(vs, sizeof vs, c->variants[q].label);
            sd->kind = "attribute";
            snprintf(sd->name, sizeof sd->name, "%s", c->variants[q].label);
            sd->target_key = pl_edit_family(c->variants[q].name);
            snprintf(sd->file, sizeof sd->file, "steer_probes/%s.%s.safetensors", hs, vs);
            nd++;
            if (fit_direction(c, hook, Xt, y, m, d, 2, cls, sd->file, cls, 1, &sd->dir, err)) goto done;
        }
    }
    for (int k = 0; k < nd; k++)
        if (dir_targets(c, tok, &v[k], err)) goto done;
    rc = 0;
done:
    free(X);
    free(E);
    free(Xt);
    free(y);
    if (rc) {
        dirs_free(v, nd);
        return -1;
    }
    *out = v;
    *n_out = nd;
    return 0;
}

/* Per hook: the raw per-item differences. */
typedef struct {
    const char *hook;
    int layer, D, nd;
    steer_dir *dirs;
    double *s;        /* [n_items] the scale s of each item */
    double *lp_probe; /* [nd][A][n] Δ log p(own targets), probe direction */
    double *ce_probe; /* [nd][A][n] Δ CE, probe direction */
    double *lp_rand;  /* [nd][A][K][n] Δ log p(targets of direction p), random direction k */
    double *ce_rand;  /* [A][K][n] */
    float *rand_dirs; /* [K, D] */
} steer_hook;

/* mean of x [n] over the items idx [n] (a bootstrap resample), NaN entries skipped. */
static double mean_idx(const double *x, const int *idx, int n, int *m) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        double v = x[idx ? idx[i] : i];
        if (isfinite(v)) {
            s += v;
            k++;
        }
    }
    if (m) *m = k;
    return k ? s / k : NAN;
}

/* {value, ci_lo, ci_hi, n} of the mean over items of x [n] with a percentile bootstrap over
 * items (the resamples boot [B][n] shared by every statistic). */
static cJSON *stat_json(const double *x, int n, const int *boot, int B, double *tmp) {
    int m;
    double v = mean_idx(x, NULL, n, &m), lo = NAN, hi = NAN;
    if (B > 0 && m > 0) {
        for (int b = 0; b < B; b++) tmp[b] = mean_idx(x, boot + (size_t)b * n, n, NULL);
        lo = stats_percentile(tmp, B, 0.025);
        hi = stats_percentile(tmp, B, 0.975);
    }
    cJSON *o = rs_json_stat(v, lo, hi);
    if (o && !cJSON_AddNumberToObject(o, "n", m)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

/* A number of a stat object (empty when null). */
static void csv_num(FILE *f, const cJSON *st, const char *key) {
    const cJSON *x = cJSON_GetObjectItem(st, key);
    if (cJSON_IsNumber(x)) fprintf(f, "%.10g", x->valuedouble);
}

static void csv_row(FILE *f, const steer_hook *h, const steer_dir *sd, double a, const char *measure, const char *series,
                    const cJSON *st) {
    rs_csv_write_field(f, h->hook);
    fprintf(f, ",%d,%s,", h->layer, sd->kind);
    rs_csv_write_field(f, sd->name);
    fprintf(f, ",%.17g,%s,%s,", a, measure, series);
    csv_num(f, st, "value");
    fputc(',', f);
    csv_num(f, st, "ci_lo");
    fputc(',', f);
    csv_num(f, st, "ci_hi");
    fprintf(f, ",%d\n", (int)cJSON_GetObjectItem(st, "n")->valuedouble);
}

/* Tree building with out-of-memory tracking: a failed node sets oom (the file is then not
 * written); an item that could not be attached is freed. */
static int push_item(cJSON *arr, cJSON *item) {
    if (item && arr && cJSON_AddItemToArray(arr, item)) return 1;
    cJSON_Delete(item);
    return 0;
}
static int put_item(cJSON *obj, const char *key, cJSON *item) {
    if (item && obj && cJSON_AddItemToObject(obj, key, item)) return 1;
    cJSON_Delete(item);
    return 0;
}
#define CHK(x) (oom |= !(x))
#define PUSH(arr, item) do { if (!push_item((arr), (item))) { oom = 1; goto nomem; } } while (0)
#define PUT(obj, key, item) do { if (!put_item((obj), (key), (item))) { oom = 1; goto nomem; } } while (0)

/* The steer.json tree and the CSV text. */
static int write_results(pl_ctx *c, steer_hook *H, int nh, const int *items, int n, const int *boot, int B, rs_err *err) {
    const rs_config *cfg = c->cfg;
    const int A = cfg->steer.n_alphas, K = cfg->steer.random_directions;
    int oom = 0;
    double *tmp = malloc((size_t)(B ? B : 1) * sizeof *tmp), *x = malloc((size_t)n * sizeof *x);
    cJSON *root = cJSON_CreateObject();
    char *csv = NULL;
    size_t csv_len = 0;
    FILE *f = open_memstream(&csv, &csv_len);
    char *jp = pl_join(c->results, "steer.json"), *cp = pl_join(c->results, "steer.csv");
    int rc = -1;
    if (!tmp || !x || !root || !f || !jp || !cp) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    fprintf(f, "hook,layer,direction_kind,direction,alpha,measure,series,value,ci_lo,ci_hi,n\n");
    CHK(cJSON_AddStringToObject(root, "definition",
                            "At each steered hook, x <- x + alpha*s*d on every decoder row (image, <bos>, prompt, \\n and "
                            "the caption suffix) of PaliGemma reading a held-out image; s = mean L2 norm of the clean "
                            "activation at the hook over the prefix rows of that item; d = the probe's unit direction in raw "
                            "activation units (coef/scaler_scale, normalised), or a seeded random unit direction (same "
                            "norm alpha*s). target_logprob = log of the summed probability of the direction's target tokens "
                            "at the first generated position (the prediction after \\n); caption_ce = mean next-token "
                            "cross-entropy of the item's first caption + <eos> as the suffix (teacher-forced). Each is "
                            "reported as the mean over items of steered - unsteered; random = the mean over the random "
                            "directions; probe_minus_random = per item probe - random; 95% percentile bootstrap over "
                            "items."));
    cJSON *al = cJSON_AddArrayToObject(root, "alphas");
    CHK(al);
    for (int a = 0; a < A; a++) PUSH(al, rs_json_number(cfg->steer.alphas[a]));
    CHK(cJSON_AddNumberToObject(root, "n_items", n));
    CHK(cJSON_AddNumberToObject(root, "random_directions", K));
    CHK(cJSON_AddNumberToObject(root, "seed", (double)cfg->steer.seed));
    CHK(cJSON_AddNumberToObject(root, "bootstrap", B));
    CHK(cJSON_AddNumberToObject(root, "ci", 0.95));
    CHK(cJSON_AddNumberToObject(root, "C", cfg->steer.C));
    cJSON *it = cJSON_AddArrayToObject(root, "items");
    CHK(it);
    for (int i = 0; i < n; i++) {
        const rs_manifest_row *r = &c->man->rows[c->image_row[items[i]]];
        cJSON *o = cJSON_CreateObject();
        CHK(cJSON_AddNumberToObject(o, "image_id", (double)r->image_id));
        CHK(cJSON_AddStringToObject(o, "label", r->label));
        CHK(cJSON_AddStringToObject(o, "file_name", r->file_name ? r->file_name : ""));
        CHK(cJSON_AddBoolToObject(o, "has_caption", c->image_caption && c->image_caption[items[i]] >= 0 && c->text_ids));
        PUSH(it, o);
    }
    cJSON *hooks = cJSON_AddArrayToObject(root, "hooks");
    CHK(hooks);
    for (int hi = 0; hi < nh; hi++) {
        steer_hook *h = &H[hi];
        cJSON *ho = cJSON_CreateObject();
        PUSH(hooks, ho);
        CHK(cJSON_AddStringToObject(ho, "hook", h->hook));
        if (h->layer >= 0) CHK(cJSON_AddNumberToObject(ho, "layer", h->layer));
        cJSON *sc = cJSON_AddArrayToObject(ho, "scale");
        CHK(sc);
        for (int i = 0; i < n; i++) PUSH(sc, rs_json_number(h->s[i]));
        cJSON *rn = cJSON_AddArrayToObject(ho, "random_direction_norms");
        CHK(rn);
        for (int k = 0; k < K; k++) {
            double n2 = 0;
            for (int j = 0; j < h->D; j++) n2 += (double)h->rand_dirs[(size_t)k * h->D + j] * h->rand_dirs[(size_t)k * h->D + j];
            PUSH(rn, rs_json_number(sqrt(n2)));
        }
        cJSON *ds = cJSON_AddArrayToObject(ho, "directions");
        CHK(ds);
        for (int p = 0; p < h->nd; p++) {
            steer_dir *sd = &h->dirs[p];
            cJSON *dobj = cJSON_CreateObject();
            PUSH(ds, dobj);
            CHK(cJSON_AddStringToObject(dobj, "kind", sd->kind));
            CHK(cJSON_AddStringToObject(dobj, "name", sd->name));
            CHK(cJSON_AddStringToObject(dobj, "probe_file", sd->file));
            double n2 = 0;
            for (int j = 0; j < h->D; j++) n2 += (double)sd->dir[j] * sd->dir[j];
            CHK(rs_json_add_num(dobj, "direction_norm", sqrt(n2)));
            cJSON *tg = cJSON_AddArrayToObject(dobj, "targets");
            CHK(tg);
            for (int k = 0; k < sd->n_targets; k++) {
                cJSON *t = cJSON_CreateObject();
                CHK(cJSON_AddStringToObject(t, "word", sd->words[k]));
                CHK(cJSON_AddNumberToObject(t, "token_id", sd->targets[k]));
                PUSH(tg, t);
            }
            cJSON *pts = cJSON_AddArrayToObject(dobj, "points");
            CHK(pts);
            for (int a = 0; a < A; a++) {
                cJSON *pt = cJSON_CreateObject();
                PUSH(pts, pt);
                PUT(pt, "alpha", rs_json_number(cfg->steer.alphas[a]));
                for (int meas = 0; meas < 2; meas++) {
                    const char *mname = meas ? "caption_ce" : "target_logprob";
                    const double *pr = (meas ? h->ce_probe : h->lp_probe) + ((size_t)p * A + a) * n;
                    /* the random control: per item the mean over the K directions; per direction the mean over items */
                    double kmean[1024];
                    int Kc = K < 1024 ? K : 1024;
                    for (int i = 0; i < n; i++) {
                        double s = 0;
                        int m = 0;
                        for (int k = 0; k < K; k++) {
                            double v = meas ? h->ce_rand[((size_t)a * K + k) * n + i]
                                            : h->lp_rand[(((size_t)p * A + a) * K + k) * n + i];
                            if (isfinite(v)) { s += v; m++; }
                        }
                        x[i] = m ? s / m : NAN;
                    }
                    for (int k = 0; k < Kc; k++)
                        kmean[k] = mean_idx(meas ? h->ce_rand + ((size_t)a * K + k) * n
                                                 : h->lp_rand + (((size_t)p * A + a) * K + k) * n, NULL, n, NULL);
                    cJSON *mo = cJSON_CreateObject();
                    PUT(pt, mname, mo);
                    cJSON *ps = stat_json(pr, n, boot, B, tmp), *rs = stat_json(x, n, boot, B, tmp);
                    double lo = INFINITY, hi2 = -INFINITY, mu = 0, ss = 0;
                    int km = 0;
                    for (int k = 0; k < Kc; k++)
                        if (isfinite(kmean[k])) {
                            mu += kmean[k];
                            km++;
                            if (kmean[k] < lo) lo = kmean[k];
                            if (kmean[k] > hi2) hi2 = kmean[k];
                        }
                    mu = km ? mu / km : NAN;
                    for (int k = 0; k < Kc; k++)
                        if (isfinite(kmean[k])) ss += (kmean[k] - mu) * (kmean[k] - mu);
                    if (rs) {
                        CHK(rs_json_add_num(rs, "sd_over_directions", km > 1 ? sqrt(ss / (km - 1)) : NAN));
                        CHK(rs_json_add_num(rs, "min_over_directions", km ? lo : NAN));
                        CHK(rs_json_add_num(rs, "max_over_directions", km ? hi2 : NAN));
                    }
                    for (int i = 0; i < n; i++) x[i] = pr[i] - x[i];
                    cJSON *ds2 = stat_json(x, n, boot, B, tmp);
                    if (!ps || !rs || !ds2) {
                        cJSON_Delete(ps);
                        cJSON_Delete(rs);
                        cJSON_Delete(ds2);
                        rs_errk(err, RS_ENOMEM, "out of memory");
                        goto done;
                    }
                    int okp = put_item(mo, "probe", ps), okr = put_item(mo, "random", rs),
                        okd = put_item(mo, "probe_minus_random", ds2);
                    if (!okp || !okr || !okd) goto nomem;
                    csv_row(f, h, sd, cfg->steer.alphas[a], mname, "probe", ps);
                    csv_row(f, h, sd, cfg->steer.alphas[a], mname, "random", rs);
                    csv_row(f, h, sd, cfg->steer.alphas[a], mname, "probe_minus_random", ds2);
                }
            }
        }
    }
    fclose(f);
    f = NULL;
    if (oom || !csv) {
    nomem:
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    if (pl_write_text(cp, csv, err) || pl_write_json(jp, root, err)) goto done;
    rc = 0;
done:
    if (f) fclose(f);
    free(csv);
    free(tmp);
    free(x);
    free(jp);
    free(cp);
    cJSON_Delete(root);
    return rc;
}

/* Tokenize every target word before anything is written (a word that tokenizes to nothing
 * is a config error). */
static int check_targets(pl_ctx *c, const rs_tokenizer *tok, rs_err *err) {
    for (int k = 0; k < c->n_labels + c->n_variants; k++) {
        steer_dir sd;
        memset(&sd, 0, sizeof sd);
        sd.target_key = k < c->n_labels ? c->labels[k] : pl_edit_family(c->variants[k - c->n_labels].name);
        int rc = dir_targets(c, tok, &sd, err);
        free(sd.targets);
        for (int q = 0; q < sd.n_targets; q++) free(sd.words[q]);
        free(sd.words);
        if (rc) return -1;
    }
    return 0;
}

static int load_vlm_tokenizer(const rs_config *cfg, rs_tokenizer **tok, rs_err *err) {
    char *tp = cfg->tokenizer ? strdup(cfg->tokenizer) : rs_path_join(cfg->vlm, "tokenizer.json");
    if (!tp) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = tok_load(tok, tp, err);
    free(tp);
    return rc;
}

int pl_steer_run(pl_ctx *c, const char **note, rs_err *err) {
    const rs_config *cfg = c->cfg;
    const int A = cfg->steer.n_alphas, K = cfg->steer.random_directions, B = cfg->probes.bootstrap;
    int nh = cfg->steer.hooks ? cfg->steer.n_hooks : cfg->n_hooks;
    char *const *hooks = cfg->steer.hooks ? cfg->steer.hooks : cfg->hooks;
    paligemma_model *m = NULL;
    rs_tokenizer *tok = NULL;
    steer_hook *H = calloc((size_t)nh, sizeof *H);
    int *items = malloc((size_t)c->n_image * sizeof *items), *boot = NULL, n = 0, rc = -1;
    int32_t *prompt = NULL, *ids = NULL, *sfx = NULL;
    uint8_t *kinds = NULL, *mask = NULL;
    float *px = NULL, *emb = NULL, *lg0 = NULL, *lg = NULL, *act = NULL;
    double *lp0 = NULL;
    size_t np = 0;
    rs_image img = {0};
    char *pdir = pl_join(c->results, "steer_probes");
    if (!H || !items || !pdir) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (check_target_keys(c, err)) goto done;
    for (int j = 0; j < c->n_image && n < cfg->steer.n_items; j++)
        if (is_test(c, j)) items[n++] = j;
    if (n == 0) {
        pl_log(c, "steer", "skipped: the manifest has no test-split image to steer");
        *note = "no test-split image";
        rc = 0;
        goto done;
    }
    if (load_vlm_tokenizer(cfg, &tok, err) || check_targets(c, tok, err)) goto done;
    if (paligemma_open(&m, cfg->vlm, err)) goto done;
    /* models.precision, as the image store (its fingerprint, part of this stage's, says it) */
    paligemma_set_backend(m, rs_backend_for(cfg->precision));
    if (pl_prompt_ids(c, &prompt, &np, err)) goto done;
    int32_t eos;
    if (pl_eos_id(c, &eos, err)) goto done;
    const int D = m->text->cfg.hidden_size, V = m->text->cfg.vocab_size, S = m->cfg.vision.image_size;
    for (int hi = 0; hi < nh; hi++) { /* every hook checked before anything is written */
        hook_request hr;
        if (paligemma_hook_parse(m, hooks[hi], &hr, err)) goto done;
        if (hr.id.tower != RS_TOWER_DECODER || hr.width != D || !strcmp(hooks[hi], "ln_final.hook_normalized")) {
            rs_errf(err, "%s: 'steer.hooks': %s cannot be steered (a decoder hook with residual-width activations is "
                         "needed, not ln_final.hook_normalized)", cfg->path, hooks[hi]);
            goto done;
        }
    }
    pl_remove_flat_dir(pdir);
    if (pl_mkdir(pdir, err)) goto done;
    int nd_max = 0;
    for (int hi = 0; hi < nh; hi++) {
        steer_hook *h = &H[hi];
        h->hook = hooks[hi];
        h->layer = rs_hook_block_index(hooks[hi]);
        if (hook_dirs(c, hooks[hi], tok, &h->dirs, &h->nd, err)) goto done;
        h->D = D;
        if (h->nd > nd_max) nd_max = h->nd;
        const int nd = h->nd;
        h->s = calloc((size_t)n, sizeof *h->s);
        h->lp_probe = malloc((size_t)(nd ? nd : 1) * A * n * sizeof(double));
        h->ce_probe = malloc((size_t)(nd ? nd : 1) * A * n * sizeof(double));
        h->lp_rand = malloc((size_t)(nd ? nd : 1) * A * K * n * sizeof(double));
        h->ce_rand = malloc((size_t)A * K * n * sizeof(double));
        h->rand_dirs = malloc((size_t)K * D * sizeof(float));
        if (!h->s || !h->lp_probe || !h->ce_probe || !h->lp_rand || !h->ce_rand || !h->rand_dirs) {
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto done;
        }
        /* random directions: one stream per hook index, so adding a hook leaves the others' */
        rs_random_unit_dirs(cfg->steer.seed ^ STEER_RAND_STREAM ^ (uint64_t)hi * 0x9E3779B97F4A7C15ULL, K, D, h->rand_dirs);
    }
    px = malloc((size_t)3 * S * S * sizeof *px);
    lg0 = malloc((size_t)V * sizeof *lg0);
    lg = malloc((size_t)V * sizeof *lg);
    lp0 = malloc((size_t)(nd_max ? nd_max : 1) * sizeof *lp0);
    if (!px || !lg0 || !lg || !lp0) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    rs_progress prog;
    rs_progress_start(&prog, "steer (images)", n);
    prog.quiet = c->opt->quiet;
    int passes = 0;
    for (int i = 0; i < n; i++) {
        const int j = items[i];
        const rs_manifest_row *row = &c->man->rows[c->image_row[j]];
        int ti = c->image_caption && c->text_ids ? c->image_caption[j] : -1;
        int64_t ns = 0;
        free(sfx);
        sfx = NULL;
        if (ti >= 0) { /* the caption as PaliGemma's suffix: caption ids (after <bos>) + <eos> */
            if (!(sfx = malloc((size_t)c->text_len[ti] * sizeof *sfx))) {
                rs_errk(err, RS_ENOMEM, "out of memory");
                goto done;
            }
            ns = pl_caption_suffix(c, ti, eos, sfx);
        }
        rs_image_free(&img);
        if (rs_image_load(row->path, &img, err) ||
            rs_siglip_preprocess_with(&img, S, cfg->image_processor, NULL, px, err)) {
            rs_err_prefix(err, "steer");
            goto done;
        }
        free(ids);
        free(kinds);
        free(emb);
        free(mask);
        ids = NULL, kinds = NULL, emb = NULL, mask = NULL;
        int64_t T;
        int P;
        if (paligemma_build_input(m, 1, prompt, (int)np, sfx, (int)ns, &ids, &kinds, &T, &P, err) ||
            rs_pg_image_rows(m, ids, T, P, px, 1, &emb, &mask, err))
            goto done;
        rs_iv_input in = {.ids = ids, .len = T, .embeds = emb, .embeds_mask = mask, .prefix_len = P};
        const int ce_from = ns > 0 ? P - 1 : -1;
        for (int hi = 0; hi < nh; hi++) {
            steer_hook *h = &H[hi];
            hook_request hr;
            if (paligemma_hook_parse(m, h->hook, &hr, err)) goto done;
            double ce0, s;
            const int resume = rs_steer_resumable(&hr);
            free(act);
            act = NULL;
            if (resume && !(act = malloc((size_t)T * D * sizeof *act))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
            if (rs_steer_pass(m->text, &in, 1, &hr, NULL, 0, P - 1, lg0, ce_from, &ce0, P, &s, act, err)) goto done;
            h->s[i] = s;
            for (int p = 0; p < h->nd; p++) lp0[p] = rs_log_prob_set(lg0, V, h->dirs[p].targets, h->dirs[p].n_targets);
            for (int a = 0; a < A; a++) {
                const double al = cfg->steer.alphas[a];
                for (int p = 0; p < h->nd + K; p++) {
                    const int is_rand = p >= h->nd;
                    const float *d = is_rand ? h->rand_dirs + (size_t)(p - h->nd) * D : h->dirs[p].dir;
                    double ce = ce0;
                    /* α = 0 is the clean pass (x + 0·d = x exactly; tests/test_steer.c checks it): Δ = 0 */
                    if (al != 0) {
                        /* a residual hook: resume from the clean activation (the blocks before it are
                           not recomputed; bit-identical, test_steer) */
                        if (resume ? rs_steer_pass_from(m->text, &in, 1, &hr, act, d, al * s, P - 1, lg, ce_from, &ce, err)
                                   : rs_steer_pass(m->text, &in, 1, &hr, d, al * s, P - 1, lg, ce_from, &ce, 0, NULL, NULL,
                                                   err))
                            goto done;
                        passes++;
                    }
                    const double dce = ns > 0 ? ce - ce0 : NAN;
                    if (!is_rand) {
                        size_t o = ((size_t)p * A + a) * n + i;
                        h->lp_probe[o] = al != 0 ? rs_log_prob_set(lg, V, h->dirs[p].targets, h->dirs[p].n_targets) - lp0[p] : 0;
                        h->ce_probe[o] = al != 0 ? dce : (ns > 0 ? 0 : NAN);
                    } else {
                        const int k = p - h->nd;
                        for (int q = 0; q < h->nd; q++)
                            h->lp_rand[(((size_t)q * A + a) * K + k) * n + i] =
                                al != 0 ? rs_log_prob_set(lg, V, h->dirs[q].targets, h->dirs[q].n_targets) - lp0[q] : 0;
                        h->ce_rand[((size_t)a * K + k) * n + i] = al != 0 ? dce : (ns > 0 ? 0 : NAN);
                    }
                }
            }
        }
        rs_progress_update(&prog, i + 1);
    }
    rs_progress_finish(&prog);
    /* bootstrap resamples of the items, shared by every statistic (paired probe − random) */
    boot = malloc((size_t)(B ? B : 1) * n * sizeof *boot);
    if (!boot) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n; i++) {
            int k = (int)(rs_uniform_at(cfg->steer.seed ^ STEER_BOOT_STREAM, (uint64_t)b * n + i) * n);
            boot[(size_t)b * n + i] = k < n ? k : n - 1;
        }
    int total = 0;
    for (int hi = 0; hi < nh; hi++) total += H[hi].nd;
    pl_log(c, "steer", "%d directions at %d hook%s, %d alphas, %d random directions, %d held-out images: %d steered passes",
           total, nh, nh == 1 ? "" : "s", A, K, n, passes);
    if (write_results(c, H, nh, items, n, boot, B, err)) goto done;
    pl_log(c, "steer", "-> results/steer.json, results/steer.csv");
    rc = 0;
done:
    for (int hi = 0; H && hi < nh; hi++) {
        dirs_free(H[hi].dirs, H[hi].nd);
        free(H[hi].s);
        free(H[hi].lp_probe);
        free(H[hi].ce_probe);
        free(H[hi].lp_rand);
        free(H[hi].ce_rand);
        free(H[hi].rand_dirs);
    }
    free(H);
    free(items);
    free(boot);
    free(prompt);
    free(ids);
    free(sfx);
    free(kinds);
    free(mask);
    free(emb);
    free(px);
    free(lg0);
    free(lg);
    free(act);
    free(lp0);
    free(pdir);
    rs_image_free(&img);
    tok_free(tok);
    paligemma_close(m);
    return rc;
}
