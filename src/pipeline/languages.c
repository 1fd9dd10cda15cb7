/* Stage languages (docs/languages.md): the captions of the run against their translations,
 * read by the same models (the stores of lang_prepare.c), per language and captured hook:
 *   similarity   per condition (llm, vlm_text, vlm_caption): is a caption's pooled
 *                representation closer to its own translation than to the translations of
 *                other images' captions (rs_crosslang_similarity: gap, recall@1, a pairing
 *                null), and is it more so in the VLM than in Gemma-2 (rs_crosslang_compare)
 *   shift        the adaptation's shift per caption (1 − cos of the pooled representation,
 *                Gemma-2 vs the VLM reading the same caption) in English and in the
 *                language, and the paired difference language − English
 *   transfer     the concept probe trained on the English captions scored on their
 *                translations (rs_transfer_evaluate: English → language direct and after the
 *                linear maps, beside each language's own probe)
 * CIs are percentile bootstraps over images; p-values get one BH family over the file.
 * Writes results/languages.json and results/languages_summary.csv. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "reprshift/crosslang.h"
#include "reprshift/probe_transfer.h"
#include "reprshift/stats.h"
#include "reprshift/version.h"

static const struct {
    int store;
    const char *cond, *reads;
} LCOND[] = {
    {PL_LLM_TEXT, "llm", "Gemma-2: <bos> caption"},
    {PL_VLM_TEXT, "vlm_text", "PaliGemma decoder: <bos> caption, no image"},
    {PL_VLM_CAPTION, "vlm_caption", "PaliGemma: own image, <bos>, prompt, \\n, then the caption (the language's prompt)"},
};
enum { NLC = 3 };

int pl_languages_used(const pl_ctx *c) { return c->cfg->languages.on && c->n_langs > 0; }

int pl_languages_fp(pl_ctx *c, char fp[65], rs_err *err) {
    char *all = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&all, &n);
    if (!f) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = 0;
    for (int k = -1; k < c->n_langs && !rc; k++) {
        pl_ctx *s = k < 0 ? c : pl_language_ctx(c, k);
        for (int q = 0; q < NLC && !rc; q++) {
            char h[65];
            if (!pl_store_used(s, LCOND[q].store)) continue;
            if (!(rc = pl_store_fp(s, LCOND[q].store, h, err))) fprintf(f, "%s:%s=%s ", k < 0 ? "en" : s->lang, LCOND[q].cond, h);
        }
    }
    char *sec = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c->cfg->resolved, "languages"));
    char *pro = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c->cfg->resolved, "probes"));
    fclose(f);
    if (!rc && (!all || !sec || !pro)) rc = rs_errk(err, RS_ENOMEM, "out of memory");
    if (!rc) pl_fp(fp, "languages v1 %s %s %s %s", RS_VERSION, all, sec, pro);
    free(all);
    cJSON_free(sec);
    cJSON_free(pro);
    return rc;
}

/* ---- output: the JSON tree and the summary rows, written after one BH over the file ---- */
typedef struct {
    const char *lang, *hook, *section, *cond, *metric;
    int layer, n, n_images;
    double v, lo, hi;
    cJSON *pq; /* the object whose p_value / q_value the row shows (NULL: none) */
} srow;

typedef struct {
    int oom;
    cJSON **p; /* objects with a finite "p_value", in order */
    int n, cap;
    srow *rows;
    int n_rows, cap_rows;
} lout;

static void *grow(void *v, int *cap, int need, size_t sz, int *oom) {
    if (need <= *cap) return v;
    int nc = *cap ? 2 * *cap : 64;
    while (nc < need) nc *= 2;
    void *nv = realloc(v, (size_t)nc * sz);
    if (!nv) {
        *oom = 1;
        return NULL;
    }
    *cap = nc;
    return nv;
}

static void jnum(lout *O, cJSON *o, const char *k, double v) {
    if (!(isfinite(v) ? cJSON_AddNumberToObject(o, k, v) : cJSON_AddNullToObject(o, k))) O->oom = 1;
}

static void jstr(lout *O, cJSON *o, const char *k, const char *v) {
    if (!cJSON_AddStringToObject(o, k, v)) O->oom = 1;
}

/* A new object appended to array a (NULL and oom set on failure). */
static cJSON *jobj(lout *O, cJSON *a) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(a, o)) {
        cJSON_Delete(o);
        O->oom = 1;
        return NULL;
    }
    return o;
}

static void jci(lout *O, cJSON *o, const char *k, const rs_xl_ci *v) {
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddItemToObject(o, k, c)) {
        cJSON_Delete(c);
        O->oom = 1;
        return;
    }
    jnum(O, c, "value", v->value);
    jnum(O, c, "ci_lo", v->lo);
    jnum(O, c, "ci_hi", v->hi);
}

/* p_value (null when not finite) and a q_value filled by BH later. */
static void jp(lout *O, cJSON *o, double p) {
    jnum(O, o, "p_value", p);
    if (!cJSON_AddNullToObject(o, "q_value")) O->oom = 1;
    if (!isfinite(p) || O->oom) return;
    cJSON **np = grow(O->p, &O->cap, O->n + 1, sizeof *O->p, &O->oom);
    if (!np) return;
    O->p = np;
    O->p[O->n++] = o;
}

static void row(lout *O, srow r) {
    srow *nr = grow(O->rows, &O->cap_rows, O->n_rows + 1, sizeof *O->rows, &O->oom);
    if (!nr) return;
    O->rows = nr;
    O->rows[O->n_rows++] = r;
}

static int bh_fill(lout *O, rs_err *err) {
    double *p = malloc((size_t)(O->n + 1) * sizeof *p), *q = malloc((size_t)(O->n + 1) * sizeof *q);
    int rc = !p || !q ? rs_errk(err, RS_ENOMEM, "out of memory") : 0;
    for (int i = 0; !rc && i < O->n; i++) p[i] = cJSON_GetObjectItemCaseSensitive(O->p[i], "p_value")->valuedouble;
    if (!rc && stats_bh_qvalues(p, O->n, q)) rc = rs_errk(err, RS_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < O->n; i++) {
        cJSON *v = cJSON_CreateNumber(q[i]);
        if (!v || !cJSON_ReplaceItemInObjectCaseSensitive(O->p[i], "q_value", v)) {
            cJSON_Delete(v);
            rc = rs_errk(err, RS_ENOMEM, "out of memory");
        }
    }
    free(p);
    free(q);
    return rc;
}

static void csv_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.9g", v);
}

static int write_csv(const lout *O, const char *path, rs_err *err) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return rs_errk(err, RS_ENOMEM, "out of memory");
    fputs("language,hook,layer,section,condition,metric,value,ci_lo,ci_hi,n_captions,n_images,p_value,q_value\n", f);
    for (int i = 0; i < O->n_rows; i++) {
        const srow *r = &O->rows[i];
        fprintf(f, "%s,%s,%d,%s,%s,%s,", r->lang, r->hook, r->layer, r->section, r->cond, r->metric);
        csv_num(f, r->v), fputc(',', f), csv_num(f, r->lo), fputc(',', f), csv_num(f, r->hi);
        fprintf(f, ",%d,%d,", r->n, r->n_images);
        const cJSON *p = r->pq ? cJSON_GetObjectItemCaseSensitive(r->pq, "p_value") : NULL;
        const cJSON *q = r->pq ? cJSON_GetObjectItemCaseSensitive(r->pq, "q_value") : NULL;
        if (cJSON_IsNumber(p)) csv_num(f, p->valuedouble);
        fputc(',', f);
        if (cJSON_IsNumber(q)) csv_num(f, q->valuedouble);
        fputc('\n', f);
    }
    fclose(f);
    int rc = buf ? pl_write_text(path, buf, err) : rs_errk(err, RS_ENOMEM, "out of memory");
    free(buf);
    return rc;
}

/* 1 − cos of row i of A and B ([n, d]); a zero row gives 1. */
static void shift_rows(const float *A, const float *B, int n, int d, double *out) {
    for (int i = 0; i < n; i++) {
        double ab = 0, aa = 0, bb = 0;
        for (int k = 0; k < d; k++) {
            double a = A[(size_t)i * d + k], b = B[(size_t)i * d + k];
            ab += a * b, aa += a * a, bb += b * b;
        }
        out[i] = 1 - (aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0);
    }
}

typedef struct {
    pl_ctx *c;
    lout O;
    rs_crosslang_opts xo;
    rs_transfer_opts to;
    int *group;
} lrun;

/* One language, one hook: every section. */
static int lang_hook(lrun *R, pl_ctx *s, const char *hook, int layer, cJSON *layers, rs_err *err) {
    pl_ctx *c = R->c;
    lout *O = &R->O;
    float *XE[NLC] = {0}, *XL[NLC] = {0};
    double *si[NLC] = {0}, *sh_en = NULL, *sh_l = NULL, *zero = NULL;
    int n = c->n_text, d = 0, rc = -1, have[NLC] = {0};
    cJSON *L = jobj(O, layers);
    cJSON *sim = L ? cJSON_AddArrayToObject(L, "similarity") : NULL;
    cJSON *cmp = L ? cJSON_AddArrayToObject(L, "similarity_vs_llm") : NULL;
    cJSON *shf = L ? cJSON_AddArrayToObject(L, "shift") : NULL;
    cJSON *tra = L ? cJSON_AddArrayToObject(L, "transfer") : NULL;
    if (!sim || !cmp || !shf || !tra) return rs_errk(err, RS_ENOMEM, "out of memory");
    jstr(O, L, "hook", hook);
    jnum(O, L, "layer", layer);
    for (int q = 0; q < NLC; q++) {
        int st = LCOND[q].store, n1, n2, d1, d2;
        if (!pl_store_used(c, st) || !pl_store_used(s, st)) continue;
        if (pl_store_features(c, st, hook, &XE[q], &n1, &d1, err) || pl_store_features(s, st, hook, &XL[q], &n2, &d2, err))
            goto done;
        if (n1 != n || n2 != n || d1 != d2) {
            rs_errf(err, "%s: %s has %d×%d rows in English but %d×%d in %s", hook, LCOND[q].cond, n1, d1, n2, d2, s->lang);
            goto done;
        }
        d = d1;
        have[q] = 1;
        if (!(si[q] = malloc((size_t)n * sizeof *si[q]))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        rs_crosslang_result r;
        if (rs_crosslang_similarity(XE[q], XL[q], n, d, R->group, &R->xo, &r, si[q], err)) goto done;
        cJSON *o = jobj(O, sim);
        if (!o) break;
        jstr(O, o, "condition", LCOND[q].cond);
        jstr(O, o, "reads", LCOND[q].reads);
        jnum(O, o, "n_captions", r.n);
        jnum(O, o, "n_images", r.n_groups);
        jci(O, o, "cos_matched", &r.cos_matched);
        jci(O, o, "cos_other", &r.cos_other);
        jci(O, o, "gap", &r.gap);
        jnum(O, o, "gap_null_mean", r.gap_null_mean);
        jnum(O, o, "gap_null_hi", r.gap_null_hi);
        jci(O, o, "recall1_en_to_lang", &r.r1[0]);
        jci(O, o, "recall1_lang_to_en", &r.r1[1]);
        jnum(O, o, "recall1_chance", r.chance);
        jp(O, o, R->xo.n_perm > 0 ? r.p : NAN);
        srow b = {s->lang, hook, "similarity", LCOND[q].cond, "gap", layer, r.n, r.n_groups, r.gap.value, r.gap.lo,
                  r.gap.hi, o};
        row(O, b);
        b.metric = "cos_matched", b.v = r.cos_matched.value, b.lo = r.cos_matched.lo, b.hi = r.cos_matched.hi, b.pq = NULL;
        row(O, b);
        b.metric = "cos_other", b.v = r.cos_other.value, b.lo = r.cos_other.lo, b.hi = r.cos_other.hi;
        row(O, b);
        b.metric = "recall1_en_to_lang", b.v = r.r1[0].value, b.lo = r.r1[0].lo, b.hi = r.r1[0].hi;
        row(O, b);
        b.metric = "recall1_lang_to_en", b.v = r.r1[1].value, b.lo = r.r1[1].lo, b.hi = r.r1[1].hi;
        row(O, b);
        pl_log(c, "languages", "%s %s %s: cos with own translation %.3f, with others %.3f, gap %.3f [%.3f, %.3f] (null "
               "%.3f), R@1 %.2f (chance %.2f)", s->lang, hook, LCOND[q].cond, r.cos_matched.value, r.cos_other.value,
               r.gap.value, r.gap.lo, r.gap.hi, r.gap_null_mean, r.r1[0].value, r.chance);
    }
    /* the VLM against Gemma-2: is a caption closer to its translation (per caption, paired over images)? */
    for (int q = 1; q < NLC && !O->oom; q++) {
        if (!have[q] || !have[0]) continue;
        rs_xl_ci df;
        double p;
        if (rs_crosslang_compare(si[q], si[0], n, R->group, &R->xo, &df, &p, err)) goto done;
        cJSON *o = jobj(O, cmp);
        if (!o) break;
        jstr(O, o, "condition", LCOND[q].cond);
        jstr(O, o, "minus", "llm");
        jci(O, o, "gap_difference", &df);
        jp(O, o, R->xo.n_perm > 0 ? p : NAN);
        row(O, (srow){s->lang, hook, "similarity_vs_llm", LCOND[q].cond, "gap_difference", layer, n, 0, df.value, df.lo,
                      df.hi, o});
    }
    /* the adaptation's shift per caption, in English and in the language */
    sh_en = malloc((size_t)n * sizeof *sh_en);
    sh_l = malloc((size_t)n * sizeof *sh_l);
    zero = calloc((size_t)n, sizeof *zero);
    if (!sh_en || !sh_l || !zero) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int q = 1; q < NLC && !O->oom; q++) {
        if (!have[q] || !have[0]) continue;
        const char *pair = q == 1 ? "a-b" : "a-c";
        shift_rows(XE[0], XE[q], n, d, sh_en);
        shift_rows(XL[0], XL[q], n, d, sh_l);
        rs_xl_ci me, ml, df;
        double p, pz;
        if (rs_crosslang_compare(sh_en, zero, n, R->group, &R->xo, &me, &pz, err) ||
            rs_crosslang_compare(sh_l, zero, n, R->group, &R->xo, &ml, &pz, err) ||
            rs_crosslang_compare(sh_l, sh_en, n, R->group, &R->xo, &df, &p, err))
            goto done;
        cJSON *o = jobj(O, shf);
        if (!o) break;
        jstr(O, o, "pair", pair);
        jstr(O, o, "vlm", LCOND[q].cond);
        jci(O, o, "shift_en", &me);
        jci(O, o, "shift_lang", &ml);
        jci(O, o, "difference", &df);
        jp(O, o, R->xo.n_perm > 0 ? p : NAN);
        srow b = {s->lang, hook, "shift", pair, "shift_en", layer, n, 0, me.value, me.lo, me.hi, NULL};
        row(O, b);
        b.metric = "shift_lang", b.v = ml.value, b.lo = ml.lo, b.hi = ml.hi;
        row(O, b);
        b.metric = "difference", b.v = df.value, b.lo = df.lo, b.hi = df.hi, b.pq = o;
        row(O, b);
        pl_log(c, "languages", "%s %s shift %s: English %.4f, %s %.4f, difference %.4f [%.4f, %.4f]", s->lang, hook, pair,
               me.value, s->lang, ml.value, df.value, df.lo, df.hi);
    }
    /* the same shift on the shared basis: the token-aligned shift analysis (SAE metrics when the
       hook's SAE reads it) of Gemma-2 vs the VLM within each language, side by side */
    for (int q = NLC - 1; q >= 1 && !O->oom; q--) {
        if (!have[q] || !have[0]) continue;
        cJSON *se = NULL, *sl = NULL, *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToObject(L, "shift_tokens", o)) {
            cJSON_Delete(o);
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto done;
        }
        jstr(O, o, "pair", q == 1 ? "a-b" : "a-c");
        if (pl_pair_shift(c, LCOND[0].store, LCOND[q].store, hook, &se, err) ||
            pl_pair_shift(s, LCOND[0].store, LCOND[q].store, hook, &sl, err)) {
            cJSON_Delete(se);
            goto done;
        }
        static const char *const DROP[] = {"top_features", "categories", "token_types"}; /* in conditions/shift.json */
        for (int k = 0; k < 3; k++) {
            cJSON_DeleteItemFromObjectCaseSensitive(se, DROP[k]);
            cJSON_DeleteItemFromObjectCaseSensitive(sl, DROP[k]);
        }
        if (!cJSON_AddItemToObject(o, "en", se)) cJSON_Delete(se), O->oom = 1;
        if (!cJSON_AddItemToObject(o, "lang", sl)) cJSON_Delete(sl), O->oom = 1;
        break; /* the whole adaptation (a-c) when the VLM read the captions with their images, else a-b */
    }
    /* the concept probe across languages */
    int K = c->n_labels;
    static const struct {
        int cell;
        const char *name;
    } CELLS[] = {{0, "en_to_en"}, {1, "lang_to_lang"}, {2, "en_to_lang"}, {3, "lang_to_en"}, {6, "en_to_lang_procrustes"}};
    for (int q = 0; q < NLC && K >= 2 && c->cfg->languages.transfer && !O->oom; q++) {
        if (!have[q]) continue;
        rs_transfer_result tr;
        rs_err e = {0};
        if (rs_transfer_evaluate(XE[q], d, XL[q], d, c->text_label, c->text_label, R->group, n, K, &R->to, &tr, &e)) {
            if (e.kind == RS_ENOMEM) {
                rs_errk(err, e.kind, "%s", e.msg);
                goto done;
            }
            pl_log(c, "languages", "%s %s %s: probe transfer skipped (%s)", s->lang, hook, LCOND[q].cond, e.msg);
            continue;
        }
        cJSON *o = jobj(O, tra);
        if (!o) break;
        jstr(O, o, "condition", LCOND[q].cond);
        jnum(O, o, "n_captions", n);
        jnum(O, o, "seeds", tr.n_seeds);
        jnum(O, o, "majority", tr.chance[1]);
        for (size_t k = 0; k < sizeof CELLS / sizeof *CELLS; k++) {
            const rs_transfer_cell *tc = &tr.cell[CELLS[k].cell];
            if (!tc->available) continue;
            cJSON *co = cJSON_CreateObject();
            if (!co || !cJSON_AddItemToObject(o, CELLS[k].name, co)) {
                cJSON_Delete(co);
                O->oom = 1;
                break;
            }
            jnum(O, co, "accuracy", tc->mean.accuracy);
            jnum(O, co, "ci_lo", tc->ci_lo.accuracy);
            jnum(O, co, "ci_hi", tc->ci_hi.accuracy);
            jnum(O, co, "balanced_accuracy", tc->mean.balanced_accuracy);
            if (isfinite(tc->map_r2)) jnum(O, co, "map_r2", tc->map_r2);
            row(O, (srow){s->lang, hook, "transfer", LCOND[q].cond, CELLS[k].name, layer, n, 0, tc->mean.accuracy,
                          tc->ci_lo.accuracy, tc->ci_hi.accuracy, NULL});
        }
        jstr(O, o, "diagnosis", rs_transfer_diagnosis(&tr, 0));
        pl_log(c, "languages", "%s %s %s: concept probe English->English %.3f, English->%s %.3f [%.3f, %.3f] (majority %.3f)",
               s->lang, hook, LCOND[q].cond, tr.cell[0].mean.accuracy, s->lang, tr.cell[2].mean.accuracy,
               tr.cell[2].ci_lo.accuracy, tr.cell[2].ci_hi.accuracy, tr.chance[1]);
    }
    rc = O->oom ? rs_errk(err, RS_ENOMEM, "out of memory") : 0;
done:
    for (int q = 0; q < NLC; q++) {
        free(XE[q]);
        free(XL[q]);
        free(si[q]);
    }
    free(sh_en);
    free(sh_l);
    free(zero);
    return rc;
}

int pl_languages_run(pl_ctx *c, const char **note, rs_err *err) {
    (void)note;
    const rs_config *cfg = c->cfg;
    lrun R;
    memset(&R, 0, sizeof R);
    lout *O = &R.O;
    R.c = c;
    R.xo = rs_crosslang_defaults();
    R.xo.n_boot = cfg->languages.bootstrap;
    R.xo.n_perm = cfg->languages.permutations;
    R.xo.seed = 0;
    R.xo.threads = c->coarse_threads;
    R.to = rs_transfer_defaults();
    R.to.n_seeds = cfg->languages.transfer_seeds;
    R.to.test_frac = cfg->probes.test_frac;
    R.to.Cs = cfg->probes.C;
    R.to.n_Cs = cfg->probes.n_C;
    R.to.cv_folds = cfg->probes.folds;
    R.to.n_boot = cfg->probes.bootstrap;
    R.to.seed = 0;
    R.group = c->text_group;
    cJSON *root = cJSON_CreateObject(), *langs = NULL;
    char *jpath = pl_join(c->results, "languages.json"), *cpath = pl_join(c->results, "languages_summary.csv");
    int rc = -1, n_images = 0;
    if (!root || !jpath || !cpath) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int i = 0; i < c->n_text; i++) { /* distinct groups = images */
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = c->text_group[j] == c->text_group[i];
        n_images += !seen;
    }
    jnum(O, root, "n_captions", c->n_text);
    jnum(O, root, "n_images", n_images);
    jnum(O, root, "bootstrap", cfg->languages.bootstrap);
    jnum(O, root, "permutations", cfg->languages.permutations);
    jstr(O, root, "ci", "95% percentile bootstrap over images (all captions of a drawn image)");
    jstr(O, root, "q_values", "Benjamini-Hochberg over every p_value of this file");
    jstr(O, root, "pool", cfg->pool);
    langs = cJSON_AddArrayToObject(root, "languages");
    if (!langs || O->oom) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int k = 0; k < c->n_langs; k++) {
        pl_ctx *s = pl_language_ctx(c, k);
        cJSON *lo = jobj(O, langs), *layers = lo ? cJSON_AddArrayToObject(lo, "layers") : NULL;
        if (!layers) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        char mf[64];
        snprintf(mf, sizeof mf, "dataset/manifest_%s.csv", s->lang);
        jstr(O, lo, "code", s->lang);
        jstr(O, lo, "prompt", s->cfg->prompt);
        jstr(O, lo, "manifest", mf);
        for (int h = 0; h < cfg->n_hooks; h++)
            if (lang_hook(&R, s, cfg->hooks[h], rs_hook_block_index(cfg->hooks[h]), layers, err)) {
                rs_err_prefix(err, "languages %s", s->lang);
                goto done;
            }
    }
    /* the token-level shift entries' p-values: one more BH family over the file (metric x hook x
       language x English/language), as conditions.json does over its pairs */
    {
        cJSON *refs = cJSON_CreateArray();
        int nt = 0;
        const cJSON *lo, *H;
        cJSON_ArrayForEach(lo, langs) cJSON_ArrayForEach(H, cJSON_GetObjectItemCaseSensitive(lo, "layers")) {
            cJSON *st = cJSON_GetObjectItemCaseSensitive(H, "shift_tokens");
            for (int k = 0; st && refs && k < 2; k++) {
                cJSON *e = cJSON_GetObjectItemCaseSensitive(st, k ? "lang" : "en");
                if (e && !cJSON_AddItemReferenceToArray(refs, e)) O->oom = 1;
            }
        }
        int r = !refs || O->oom ? rs_errk(err, RS_ENOMEM, "out of memory") : pl_bh_family(&refs, 1, &nt, err);
        cJSON_Delete(refs);
        if (r) goto done;
        jnum(O, root, "n_tests_shift_tokens", nt);
    }
    if (bh_fill(O, err)) goto done;
    jnum(O, root, "n_tests", O->n);
    if (O->oom) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (pl_write_json(jpath, root, err) || write_csv(O, cpath, err)) goto done;
    pl_log(c, "languages", "wrote %s (%d p-values, BH over the file)", jpath, O->n);
    rc = 0;
done:
    free(O->p);
    free(O->rows);
    cJSON_Delete(root);
    free(jpath);
    free(cpath);
    return rc;
}
