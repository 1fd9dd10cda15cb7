/* Writers of a shift run (shift_run.h): results.json (as a cJSON tree), summary.csv and the
 * per-layer CSVs. They format what shift_layer.c computed; nothing here computes a value. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "analysis/shift_run_internal.h"
#include "analysis/categories.h"
#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "reprshift/sae_registry.h"
#include "reprshift/tokenizer.h"
#include "reprshift/version.h"

static cJSON *json_stat(const rs_stat *s) {
    cJSON *o = cJSON_CreateObject();
    rs_json_add_num(o, "value", s->value);
    rs_json_add_num(o, "ci_lo", s->lo);
    rs_json_add_num(o, "ci_hi", s->hi);
    return o;
}

/* A metric with its permutation test: value, ci_lo, ci_hi, p_value, null_lo, null_hi,
 * null_mean, n_perm, test (what was done, or why there is no p-value), q_value. */
static cJSON *json_metric(const shift_layer *L, int k) {
    const stats_null *z = &L->r.null[k];
    char tbuf[160];
    cJSON *o = json_stat(shift_metric_stat(&L->r, k));
    rs_json_add_num(o, "p_value", z->p);
    rs_json_add_num(o, "null_lo", z->lo);
    rs_json_add_num(o, "null_hi", z->hi);
    rs_json_add_num(o, "null_mean", z->mean);
    rs_json_add_num(o, "n_perm", z->n_perm);
    cJSON_AddStringToObject(o, "test", shift_test_text(k, L, tbuf, sizeof tbuf));
    rs_json_add_num(o, "q_value", L->q[k]);
    return o;
}

static cJSON *json_fit(const sae_fit_metrics *m) {
    cJSON *o = cJSON_CreateObject();
    rs_json_add_num(o, "n_rows", (double)m->n_rows);
    rs_json_add_num(o, "mse", m->mse);
    rs_json_add_num(o, "relative_mse", m->relative_mse);
    rs_json_add_num(o, "explained_variance", m->explained_variance);
    rs_json_add_num(o, "cossim", m->cossim);
    rs_json_add_num(o, "l0", m->l0);
    rs_json_add_num(o, "l1", m->l1);
    rs_json_add_num(o, "frac_alive", m->frac_alive);
    rs_json_add_num(o, "frac_dead", m->frac_dead);
    rs_json_add_num(o, "mean_max_act", m->mean_max_act);
    return o;
}

static void json_sae(cJSON *L, const shift_sae_info *s) {
    cJSON *sj = cJSON_AddObjectToObject(L, "sae");
    cJSON_AddStringToObject(sj, "path", s->path);
    cJSON_AddStringToObject(sj, "format", s->format);
    cJSON_AddStringToObject(sj, "architecture", s->architecture);
    rs_json_add_num(sj, "d_in", s->d_in);
    rs_json_add_num(sj, "d_sae", s->d_sae);
    if (s->is_topk) rs_json_add_num(sj, "k", s->k);
    if (s->hook_name) cJSON_AddStringToObject(sj, "hook_name", s->hook_name);
    cJSON_AddStringToObject(sj, "hook_source", s->hook_source);
    if (s->name) cJSON_AddStringToObject(sj, "name", s->name);
    if (s->neuronpedia) cJSON_AddStringToObject(sj, "neuronpedia", s->neuronpedia);
    cJSON_AddBoolToObject(sj, "hook_mismatch_allowed", s->hook_mismatch_allowed);
}

/* {n_units, unit, <metric>: {value, ci_lo, ci_hi}}, or {unavailable}; caption pairs add n_images, n_pairs. */
static void json_floors(cJSON *L, const shift_layer *lay) {
    cJSON *floors = cJSON_AddObjectToObject(L, "floors");
    for (int i = 0; i < lay->n_floors; i++) {
        const shift_floor *f = &lay->floors[i];
        cJSON *o = cJSON_AddObjectToObject(floors, f->name);
        if (f->unavailable) {
            cJSON_AddStringToObject(o, "unavailable", f->unavailable);
        } else {
            cJSON_AddStringToObject(o, "unit", f->unit);
            rs_json_add_num(o, "n_units", (double)f->r.n_rows);
            for (int j = 0; j < SHIFT_RUN_N_ORDER; j++) {
                int k = SHIFT_RUN_ORDER[j];
                if (shift_metric_is_feature(k) && !f->with_feats) continue;
                cJSON_AddItemToObject(o, shift_metric_name(k), json_stat(shift_metric_stat(&f->r, k)));
            }
        }
        if (f->n_images >= 0) rs_json_add_num(o, "n_images", (double)f->n_images);
        if (f->n_pairs >= 0) rs_json_add_num(o, "n_pairs", (double)f->n_pairs);
    }
}

static void json_top_features(cJSON *L, const shift_layer *lay) {
    const shift_result *r = &lay->r;
    double U = (double)lay->n_units;
    char url[512];
    cJSON *tf = cJSON_AddObjectToObject(L, "top_features");
    cJSON_AddNumberToObject(tf, "min_count", lay->min_count);
    for (int q = 0; q < SHIFT_N_FEATURE_LISTS; q++) {
        const shift_feature_list *fl = &lay->lists[q];
        cJSON *arr = cJSON_AddArrayToObject(tf, SHIFT_FEATURE_LIST_NAME[q]);
        for (int j = 0; j < fl->n; j++) {
            int f = fl->feat[j];
            cJSON *e = cJSON_CreateObject();
            rs_json_add_num(e, "feature", f);
            if (lay->sae.neuronpedia)
                cJSON_AddStringToObject(e, "neuronpedia_url", rs_neuronpedia_url(lay->sae.neuronpedia, f, url, sizeof url));
            rs_json_add_num(e, "freq_a", (double)r->count_a[f] / U);
            rs_json_add_num(e, "freq_b", (double)r->count_b[f] / U);
            rs_json_add_num(e, "mean_a", r->sum_a[f] / U);
            rs_json_add_num(e, "mean_b", r->sum_b[f] / U);
            rs_json_add_num(e, "delta_freq", lay->dfreq[f]);
            rs_json_add_num(e, "delta_freq_ci_lo", fl->ci[j * 4 + 0]);
            rs_json_add_num(e, "delta_freq_ci_hi", fl->ci[j * 4 + 1]);
            rs_json_add_num(e, "delta_mean", lay->dmean[f]);
            rs_json_add_num(e, "delta_mean_ci_lo", fl->ci[j * 4 + 2]);
            rs_json_add_num(e, "delta_mean_ci_hi", fl->ci[j * 4 + 3]);
            rs_json_add_num(e, "delta_freq_excess", lay->excess[f]);
            cJSON_AddItemToArray(arr, e);
        }
    }
}

/* The input of token row t (model A's offsets). */
static int64_t input_of(const shift_run_result *res, int64_t t) {
    int64_t input = 0;
    while (input + 1 < res->n_in && res->off[input + 1] <= t) input++;
    return input;
}

static void json_top_units(cJSON *L, const shift_run_result *res, const shift_layer *lay) {
    cJSON *tt = cJSON_AddArrayToObject(L, res->aligned ? "top_shifted_tokens" : "top_shifted_inputs");
    for (int64_t j = 0; j < lay->n_units && j < lay->top_k; j++) {
        int64_t u = lay->unit_rank[j], t = lay->unit_tok[u];
        cJSON *e = cJSON_CreateObject();
        if (res->aligned) {
            int64_t input = input_of(res, t);
            const char *piece = res->tok ? tok_piece(res->tok, res->ids[t]) : NULL;
            rs_json_add_num(e, "row", (double)t);
            rs_json_add_num(e, "input", (double)input);
            rs_json_add_num(e, "position", (double)(t - res->off[input]));
            rs_json_add_num(e, "token_id", res->ids[t]);
            if (piece) cJSON_AddStringToObject(e, "token", piece);
        } else {
            rs_json_add_num(e, "input", (double)t);
        }
        rs_json_add_num(e, "cos_raw", lay->r.row_cos_raw[u]);
        rs_json_add_num(e, "l2_raw", lay->r.row_l2_raw[u]);
        if (lay->has_sae) {
            rs_json_add_num(e, "cos_feat", lay->r.row_cos_feat[u]);
            rs_json_add_num(e, "jaccard", lay->r.row_jaccard[u]);
        }
        cJSON_AddItemToArray(tt, e);
    }
}

static void json_categories(cJSON *L, const shift_run_result *res, const shift_layer *lay) {
    cJSON *cj = cJSON_AddObjectToObject(L, "categories");
    int ncat = lay->n_cat;
    for (int c = 0; c < ncat; c++) {
        const double *s = lay->cat_sum[c];
        if (s[0] == 0) continue;
        cJSON *e = cJSON_AddObjectToObject(cj, c < ncat - 1 ? categories_name(res->cats, c) : "other");
        double nn = s[0];
        rs_json_add_num(e, "n_tokens", nn);
        rs_json_add_num(e, "cos_raw", s[1] / nn);
        rs_json_add_num(e, "l2_raw", s[2] / nn);
        if (lay->has_sae) {
            rs_json_add_num(e, "cos_feat", s[3] / nn);
            rs_json_add_num(e, "jaccard", s[4] / nn);
            rs_json_add_num(e, "js_bits", s[5] / nn);
        }
    }
}

/* Token types sorted by mean (q 0) or by excess (q 1), most shifted first; idx [n_types+1]. */
static void types_order(const shift_layer *lay, int q, int64_t *idx, double *key) {
    for (int64_t k = 0; k < lay->n_types; k++) {
        key[k] = q ? lay->types[k].excess : lay->types[k].mean;
        idx[k] = k;
    }
    shift_sort_idx(idx, lay->n_types, key, 0);
}

static int json_token_types(cJSON *L, const shift_run_result *res, const shift_layer *lay) {
    cJSON *tj = cJSON_AddObjectToObject(L, "token_types");
    cJSON_AddStringToObject(tj, "metric", "cos_raw");
    cJSON_AddNumberToObject(tj, "min_count", lay->min_count);
    cJSON_AddNumberToObject(tj, "n_bins", lay->n_bins);
    cJSON_AddNumberToObject(tj, "n_ranked", (double)lay->n_types);
    int64_t *idx = malloc((size_t)(lay->n_types + 1) * sizeof *idx);
    double *key = malloc((size_t)(lay->n_types + 1) * sizeof *key);
    if (!idx || !key) {
        free(idx);
        free(key);
        return -1;
    }
    for (int q = 0; q < 2; q++) {
        types_order(lay, q, idx, key);
        cJSON *arr = cJSON_AddArrayToObject(tj, q ? "most_shifted_freq_matched" : "most_shifted");
        for (int64_t j = 0; j < lay->n_types && j < lay->top_k; j++) {
            const shift_rank_entry *x = &lay->types[idx[j]];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "token_id", x->key);
            const char *pc = res->tok ? tok_piece(res->tok, x->key) : NULL;
            if (pc) cJSON_AddStringToObject(e, "token", pc);
            cJSON_AddNumberToObject(e, "count", (double)x->count);
            rs_json_add_num(e, "mean", x->mean);
            rs_json_add_num(e, "ci_lo", x->lo);
            rs_json_add_num(e, "ci_hi", x->hi);
            rs_json_add_num(e, "excess", x->excess);
            cJSON_AddNumberToObject(e, "freq_bin", x->bin);
            cJSON_AddItemToArray(arr, e);
        }
    }
    free(idx);
    free(key);
    return 0;
}

cJSON *shift_layer_json(const shift_run_result *res, const shift_layer *lay, int layer_last) {
    cJSON *L = cJSON_CreateObject();
    if (!L) return NULL;
    if (lay->layer >= 0 && !layer_last) rs_json_add_num(L, "layer", lay->layer);
    cJSON_AddStringToObject(L, "hook", lay->hook);
    if (lay->has_sae) {
        json_sae(L, &lay->sae);
        cJSON *fit = cJSON_AddObjectToObject(L, "fit");
        cJSON_AddItemToObject(fit, "a", json_fit(&lay->fit_a));
        cJSON_AddItemToObject(fit, "a_special_tokens", json_fit(&lay->fit_a_special));
        cJSON_AddItemToObject(fit, "b", json_fit(&lay->fit_b));
        cJSON_AddItemToObject(fit, "b_special_tokens", json_fit(&lay->fit_b_special));
    }
    cJSON_AddStringToObject(L, "mode", res->aligned ? "token_aligned" : "pooled_per_input");
    rs_json_add_num(L, "n_rows", (double)lay->n_units);
    rs_json_add_num(L, "n_groups", (double)lay->n_groups);
    cJSON *sh = cJSON_AddObjectToObject(L, "shift");
    for (int j = 0; j < SHIFT_RUN_N_ORDER; j++) {
        int k = SHIFT_RUN_ORDER[j];
        if (shift_metric_is_feature(k) && !lay->has_sae) continue;
        cJSON_AddItemToObject(sh, shift_metric_name(k), json_metric(lay, k));
    }
    if (lay->has_sae) {
        rs_json_add_num(sh, "n_features_alive_a", (double)lay->r.n_alive_a);
        rs_json_add_num(sh, "n_features_alive_b", (double)lay->r.n_alive_b);
        rs_json_add_num(sh, "n_features_alive_either", (double)lay->r.n_alive_either);
    }
    if (lay->has_floors) json_floors(L, lay);
    if (lay->has_sae) json_top_features(L, lay);
    json_top_units(L, res, lay);
    if (lay->cat_sum) json_categories(L, res, lay);
    if (res->aligned && json_token_types(L, res, lay)) {
        cJSON_Delete(L);
        return NULL;
    }
    if (lay->layer >= 0 && layer_last) rs_json_add_num(L, "layer", lay->layer);
    return L;
}

/* results.json "excluded_tokens": the rule that applied, with the special ids of the run
 * (a run of consecutive ids as "0-2"). */
static void excluded_text(const shift_run_result *res, char *buf, size_t n) {
    char ids[160] = "";
    size_t L = 0;
    const int32_t *v = res->special;
    int k = res->n_special;
    if (k >= 3 && v[k - 1] - v[0] == k - 1) L = (size_t)snprintf(ids, sizeof ids, "%d-%d", v[0], v[k - 1]);
    else
        for (int i = 0; i < k && L < sizeof ids; i++)
            L += (size_t)snprintf(ids + L, sizeof ids - L, "%s%d", i ? ", " : "", v[i]);
    const char *blank = res->tok ? " and whitespace-only pieces (tokenizer given)"
                                 : "; whitespace-only pieces are kept (no tokenizer given)";
    if (res->o.keep_special) snprintf(buf, n, "none (--keep-special)");
    else if (k == 0) snprintf(buf, n, "no special token ids given%s", blank);
    else snprintf(buf, n, "<pad>, <eos>, <bos> (ids %s)%s", ids, blank);
}

cJSON *shift_run_json(const shift_run_result *res, const shift_json_labels *lab) {
    const shift_run_opts *o = &res->o;
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "reprshift_version", RS_VERSION);
    if (lab->acts_a) cJSON_AddStringToObject(root, "acts_a", lab->acts_a);
    if (lab->acts_b) cJSON_AddStringToObject(root, "acts_b", lab->acts_b);
    if (lab->sae) cJSON_AddStringToObject(root, "sae", lab->sae);
    cJSON_AddStringToObject(root, "mode", res->aligned ? "token_aligned" : "pooled_per_input");
    cJSON_AddBoolToObject(root, "special_tokens_excluded", !o->keep_special);
    char ex[320];
    excluded_text(res, ex, sizeof ex);
    cJSON_AddStringToObject(root, "excluded_tokens", ex);
    rs_json_add_num(root, "bootstrap_replicates", o->n_boot);
    rs_json_add_num(root, "seed", (double)o->seed);
    cJSON_AddStringToObject(root, "ci", "95% percentile bootstrap over inputs");
    rs_json_add_num(root, "permutations", o->n_perm);
    cJSON_AddStringToObject(root, "permutation_test",
                            o->n_perm > 0 ? "p_value per metric: pairing of rows shuffled, (1 + #extreme)/(1 + n_perm); "
                                            "null_lo/null_hi = 2.5/97.5 percentiles of the null"
                                          : "not run (0 permutations): metrics are reported without p-values (null)");
    if (lab->model_a) cJSON_AddStringToObject(root, "model_a", lab->model_a);
    if (lab->model_b) cJSON_AddStringToObject(root, "model_b", lab->model_b);
    if (lab->n_inputs >= 0) rs_json_add_num(root, "n_inputs", (double)lab->n_inputs);
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int i = 0; i < res->n_layers; i++) {
        cJSON *L = shift_layer_json(res, &res->layers[i], lab->layer_last);
        if (!L || !cJSON_AddItemToArray(layers, L)) {
            cJSON_Delete(L);
            cJSON_Delete(root);
            return NULL;
        }
    }
    rs_json_add_num(root, "n_tests", res->n_tests);
    cJSON_AddStringToObject(root, "multiple_comparisons",
                            "q_value: Benjamini-Hochberg over the n_tests p-values of this file (metric x layer)");
    return root;
}

/* ---- CSV ---- */

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

static void summary_row(FILE *fp, const shift_layer *L, const char *prefix, const char *metric, const rs_stat *s,
                        const stats_null *z, double q) {
    double v[7] = {s->value, s->lo, s->hi, z ? z->p : NAN, z ? z->lo : NAN, z ? z->hi : NAN, q};
    fprintf(fp, "%d,", L->csv_layer);
    csv_str(fp, L->hook);
    fprintf(fp, ",%s%s", prefix, metric);
    for (int k = 0; k < 7; k++) {
        fputc(',', fp);
        csv_num(fp, v[k]);
    }
    fputc('\n', fp);
}

int shift_run_summary_csv(const shift_run_result *res, FILE *fp) {
    fputs("layer,hook,metric,value,ci_lo,ci_hi,p_value,null_lo,null_hi,q_value\n", fp);
    for (int i = 0; i < res->n_layers; i++) {
        const shift_layer *L = &res->layers[i];
        if (L->has_sae) {
            rs_stat ev = {L->fit_a.explained_variance, NAN, NAN};
            summary_row(fp, L, "", "fit_a_explained_variance", &ev, NULL, NAN);
            ev.value = L->fit_b.explained_variance;
            summary_row(fp, L, "", "fit_b_explained_variance", &ev, NULL, NAN);
        }
        for (int j = 0; j < SHIFT_RUN_N_ORDER; j++) {
            int k = SHIFT_RUN_ORDER[j];
            if (shift_metric_is_feature(k) && !L->has_sae) continue;
            summary_row(fp, L, "", shift_metric_name(k), shift_metric_stat(&L->r, k), &L->r.null[k], L->q[k]);
        }
        for (int f = 0; f < L->n_floors; f++) {
            const shift_floor *fl = &L->floors[f];
            if (fl->unavailable) continue;
            char prefix[64];
            snprintf(prefix, sizeof prefix, "%s:", fl->name);
            for (int j = 0; j < SHIFT_RUN_N_ORDER; j++) {
                int k = SHIFT_RUN_ORDER[j];
                if (shift_metric_is_feature(k) && !fl->with_feats) continue;
                summary_row(fp, L, prefix, shift_metric_name(k), shift_metric_stat(&fl->r, k), NULL, NAN);
            }
        }
    }
    return ferror(fp) ? -1 : 0;
}

static void safe_name(char *dst, size_t cap, const char *hook) {
    size_t j = 0;
    for (size_t i = 0; hook[i] && j + 1 < cap; i++) {
        char c = hook[i];
        dst[j++] = (c == '/' || c == ' ' || c == '{' || c == '}') ? '_' : c;
    }
    dst[j] = 0;
}

/* features_<hook>.csv: every alive feature, by Δfreq (largest first). */
static int write_features_csv(const shift_layer *lay, const char *path, rs_err *err) {
    const shift_result *r = &lay->r;
    int m = lay->sae.d_sae;
    double U = (double)lay->n_units;
    char url[512];
    int64_t *idx = malloc((size_t)m * sizeof *idx + 1), na = 0;
    if (!idx) return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    for (int f = 0; f < m; f++)
        if (r->count_a[f] || r->count_b[f]) idx[na++] = f;
    shift_sort_idx(idx, na, lay->dfreq, 1);
    rs_atomic_file ff = {0};
    int rc = -1;
    if (rs_atomic_open(&ff, path, err)) goto done;
    fputs("feature,count_a,count_b,count_both,freq_a,freq_b,delta_freq,mean_a,mean_b,delta_mean,neuronpedia_url\n", ff.fp);
    for (int64_t j = 0; j < na; j++) {
        int f = (int)idx[j];
        fprintf(ff.fp, "%d,%lld,%lld,%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%s\n", f, (long long)r->count_a[f],
                (long long)r->count_b[f], (long long)r->count_both[f], (double)r->count_a[f] / U,
                (double)r->count_b[f] / U, lay->dfreq[f], r->sum_a[f] / U, r->sum_b[f] / U, lay->dmean[f],
                rs_neuronpedia_url(lay->sae.neuronpedia, f, url, sizeof url));
    }
    rc = rs_atomic_commit(&ff, err);
done:
    rs_atomic_abort(&ff);
    free(idx);
    return rc;
}

/* tokens_<hook>.csv (aligned) or inputs_<hook>.csv: per-unit metrics, most shifted first. */
static int write_units_csv(const shift_run_result *res, const shift_layer *lay, const char *path, rs_err *err) {
    rs_atomic_file tf = {0};
    if (rs_atomic_open(&tf, path, err)) return -1;
    fputs(res->aligned ? "row,input,position,token_id,token,category,cos_raw,l2_raw,cos_feat,l2_feat,jaccard,js_bits\n"
                       : "input,cos_raw,l2_raw,cos_feat,l2_feat,jaccard,js_bits\n",
          tf.fp);
    const shift_result *r = &lay->r;
    for (int64_t j = 0; j < lay->n_units; j++) {
        int64_t u = lay->unit_rank[j], t = lay->unit_tok[u];
        double fv[4] = {NAN, NAN, NAN, NAN};
        if (lay->has_sae) {
            fv[0] = r->row_cos_feat[u];
            fv[1] = r->row_l2_feat[u];
            fv[2] = r->row_jaccard[u];
            fv[3] = r->row_js[u];
        }
        if (res->aligned) {
            int64_t input = input_of(res, t);
            const char *piece = res->tok ? tok_piece(res->tok, res->ids[t]) : NULL;
            const char *cat = res->cats ? categories_lookup(res->cats, piece) : NULL;
            fprintf(tf.fp, "%lld,%lld,%lld,%d,", (long long)t, (long long)input, (long long)(t - res->off[input]),
                    res->ids[t]);
            csv_str(tf.fp, piece ? piece : "");
            fputc(',', tf.fp);
            csv_str(tf.fp, cat ? cat : (res->cats ? "other" : ""));
            fputc(',', tf.fp);
        } else {
            fprintf(tf.fp, "%lld,", (long long)t);
        }
        fprintf(tf.fp, "%.9g,%.9g,", (double)r->row_cos_raw[u], (double)r->row_l2_raw[u]);
        for (int k = 0; k < 4; k++) {
            csv_num(tf.fp, fv[k]);
            fputc(k < 3 ? ',' : '\n', tf.fp);
        }
    }
    int rc = rs_atomic_commit(&tf, err);
    rs_atomic_abort(&tf);
    return rc;
}

/* token_types_<hook>.csv: every ranked token type, by excess (most shifted first). */
static int write_types_csv(const shift_run_result *res, const shift_layer *lay, const char *path, rs_err *err) {
    int64_t *idx = malloc((size_t)(lay->n_types + 1) * sizeof *idx);
    double *key = malloc((size_t)(lay->n_types + 1) * sizeof *key);
    rs_atomic_file kf = {0};
    int rc = -1;
    if (!idx || !key) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    types_order(lay, 1, idx, key);
    if (rs_atomic_open(&kf, path, err)) goto done;
    fputs("token_id,token,count,mean_cos_raw,ci_lo,ci_hi,freq_bin,excess\n", kf.fp);
    for (int64_t j = 0; j < lay->n_types; j++) {
        const shift_rank_entry *x = &lay->types[idx[j]];
        const char *pc = res->tok ? tok_piece(res->tok, x->key) : NULL;
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
    rc = rs_atomic_commit(&kf, err);
done:
    rs_atomic_abort(&kf);
    free(idx);
    free(key);
    return rc;
}

int shift_layer_write_csvs(const shift_run_result *res, const shift_layer *lay, const char *dir, rs_err *err) {
    char sname[256], path[1024];
    safe_name(sname, sizeof sname, lay->hook);
    if (lay->has_sae) {
        snprintf(path, sizeof path, "%s/features_%s.csv", dir, sname);
        if (write_features_csv(lay, path, err)) return -1;
    }
    snprintf(path, sizeof path, "%s/%s_%s.csv", dir, res->aligned ? "tokens" : "inputs", sname);
    if (write_units_csv(res, lay, path, err)) return -1;
    if (res->aligned) {
        snprintf(path, sizeof path, "%s/token_types_%s.csv", dir, sname);
        if (write_types_csv(res, lay, path, err)) return -1;
    }
    return 0;
}
