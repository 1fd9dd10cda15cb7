/* SAE-feature probes (probes.features has "sae"; docs/probes.md): at every hook with an SAE,
 * the caption concept probes (LLM captions, VLM captions) are evaluated a second time on the
 * SAE's features instead of the raw activations, with the raw probes' own protocol (labels,
 * image groups, split seeds, C grid, penalty, nested group-bootstrap CIs, permutation test,
 * control task), then compared with the raw probe on the identical splits (paired test) and
 * summarised by the SAE features with the largest standardised weights in an all-rows fit.
 *
 * Pooling order: every token row of a caption is encoded by the SAE first, then the features
 * are pooled over the caption exactly as pl_store_features pools the raw rows (pool "mean":
 * the mean over the included tokens, all tokens when none is included; "last": the last row).
 * Encoding the pooled activation instead would give different (not sparse) features. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "pipeline/probes_result.h"
#include "base/jsonutil.h"
#include "reprshift/probe.h"
#include "reprshift/probe_eval.h"
#include "reprshift/progress.h" /* rs_now */
#include "reprshift/sae.h"
#include "reprshift/sae_registry.h"
#include "reprshift/stats.h"
#include "reprshift/store.h"

/* The SAE features of caption store s at hook: X [n_captions, d_sae] (new), encode per token
 * row, then pool as the raw features are pooled. */
static int sae_caption_features(pl_ctx *c, int s, const char *hook, const rs_sae *sae, float **X, int *n, rs_err *err) {
    char *dir = pl_join(c->acts, PL_STORE_NAME[s]);
    store_reader *r = NULL;
    float *A = NULL, *rows_in = NULL, *acts = NULL, *out = NULL;
    double *acc = NULL;
    int32_t *ids = NULL;
    int64_t *off = NULL, rows, w, n_in, rr, ww, maxlen = 1;
    int rc = -1, D = sae->d_sae;
    *X = NULL;
    if (!dir) return rs_errk(err, RS_ENOMEM, "out of memory");
    if (store_reader_open(&r, dir, err) || store_read_f32(r, hook, &A, &rows, &w, err) ||
        store_read_raw(r, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, err) ||
        store_read_offsets(r, "offsets", &off, &n_in, err))
        goto done;
    if (w != sae->d_in) {
        rs_errf(err, "SAE %s reads width %d, the activations at %s have width %lld", sae->path, sae->d_in, hook,
                (long long)w);
        goto done;
    }
    for (int64_t i = 0; i < n_in; i++)
        if (off[i + 1] - off[i] > maxlen) maxlen = off[i + 1] - off[i];
    rows_in = malloc(sizeof(float) * (size_t)maxlen * (size_t)w);
    acts = malloc(sizeof(float) * (size_t)maxlen * (size_t)D);
    acc = malloc(sizeof(double) * (size_t)D);
    out = calloc((size_t)(n_in ? n_in : 1) * (size_t)D, sizeof *out);
    if (!rows_in || !acts || !acc || !out) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    int last = !strcmp(c->cfg->pool, "last");
    for (int64_t i = 0; i < n_in; i++) {
        int64_t t0 = off[i], t1 = off[i + 1], cnt = 0;
        float *o = out + (size_t)i * D;
        if (t1 <= t0) continue;
        if (last) {
            memcpy(rows_in, A + (size_t)(t1 - 1) * w, sizeof(float) * (size_t)w);
            cnt = 1;
        } else {
            /* the included tokens (not pad, eos, bos, whitespace-only pieces); none: every token */
            for (int pass = 0; pass < 2 && cnt == 0; pass++)
                for (int64_t t = t0; t < t1; t++) {
                    if (pass == 0 && !pl_token_included(c, ids[t])) continue;
                    memcpy(rows_in + (size_t)cnt * w, A + (size_t)t * w, sizeof(float) * (size_t)w);
                    cnt++;
                }
        }
        if (sae_encode(sae, rows_in, cnt, acts, err)) {
            rs_err_prefix(err, "SAE features at %s, input %lld", hook, (long long)i);
            goto done;
        }
        memset(acc, 0, sizeof(double) * (size_t)D);
        for (int64_t t = 0; t < cnt; t++)
            for (int k = 0; k < D; k++) acc[k] += acts[(size_t)t * D + k];
        for (int k = 0; k < D; k++) o[k] = (float)(acc[k] / (double)cnt);
    }
    *X = out;
    out = NULL;
    *n = (int)n_in;
    rc = 0;
done:
    free(A);
    free(ids);
    free(off);
    free(rows_in);
    free(acts);
    free(acc);
    free(out);
    store_reader_close(r);
    free(dir);
    return rc;
}

/* Paired SAE-minus-raw test on identical splits (as the paired concept tests). 0 with
 * *has = 0 when the raw probe kept no test rows. */
static int paired_vs_raw(const rs_eval_result *A, const rs_eval_result *B, const int *label, const int *group,
                         const rs_eval_opts *eo, int flips, rs_paired_result *out, int *has, rs_err *err) {
    *has = 0;
    if (!A->test_n || !B->test_n || A->n_seeds != B->n_seeds) return 0;
    int S = A->n_seeds, tot = 0;
    for (int s = 0; s < S; s++) {
        if (A->test_n[s] != B->test_n[s] || memcmp(A->test_row + tot, B->test_row + tot, sizeof(int) * (size_t)A->test_n[s]))
            return rs_errf(err, "SAE-feature probe: split %d has other test rows than the raw probe's", s);
        tot += A->test_n[s];
    }
    rs_err e = {0};
    if (pl_paired_test_rows(A, B, label, group, tot, eo, flips, out, &e))
        return rs_errk(err, e.kind, "SAE-minus-raw paired test: %s", e.msg);
    *has = 1;
    return 0;
}

static int cmp_top(const void *a, const void *b) {
    const pl_sae_top *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return (x->feature > y->feature) - (x->feature < y->feature);
}

/* The all-rows fit behind the top list: StandardScaler on every row, logistic regression with
 * the most frequently chosen C of the splits (ties: the smaller), the stage's penalty; features
 * ranked by |weight on the standardised feature| (= |raw weight| × feature std; K > 2: the
 * largest over classes), ties by index; features with weight 0 are not listed. */
static int top_features(const float *X, const int *y, int n, int d, int K, const rs_eval_opts *eo, int ntop,
                        pl_probe_sae *P, rs_err *err) {
    const rs_eval_result *ev = &P->ev;
    double C = ev->C_chosen[0];
    int best = 0;
    for (int s = 0; s < ev->n_seeds; s++) {
        int cnt = 0;
        for (int t = 0; t < ev->n_seeds; t++) cnt += ev->C_chosen[t] == ev->C_chosen[s];
        if (cnt > best || (cnt == best && ev->C_chosen[s] < C)) best = cnt, C = ev->C_chosen[s];
    }
    P->C_final = C;
    float *Xs = malloc(sizeof(float) * (size_t)n * (size_t)d);
    pl_sae_top *all = malloc(sizeof *all * (size_t)d);
    if (!Xs || !all) {
        free(Xs), free(all);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    rs_scaler sc = {0};
    rs_logreg m = {0};
    rs_logreg_opts o = rs_logreg_defaults();
    o.C = C;
    o.balanced = eo->balanced;
    o.tol = eo->tol;
    o.penalty = eo->penalty;
    int rc = -1;
    if (rs_scaler_fit(&sc, X, n, d, err)) goto done;
    rs_scaler_apply(&sc, X, n, Xs);
    if (rs_logreg_fit(&m, Xs, y, n, d, K, &o, err)) goto done;
    P->n_nonzero = P->n_dead = 0;
    int nl = 0;
    for (int j = 0; j < d; j++) {
        double bestw = 0;
        int cls = m.n_rows == 1 ? 1 : 0, nz = 0;
        for (int k = 0; k < m.n_rows; k++) {
            double wk = m.W[(size_t)k * d + j];
            nz |= wk != 0;
            if (fabs(wk) > fabs(bestw)) bestw = wk, cls = m.n_rows == 1 ? 1 : k;
        }
        P->n_nonzero += nz;
        double s = 0;
        int act = 0;
        for (int i = 0; i < n; i++) {
            float v = X[(size_t)i * d + j];
            s += v;
            act += v > 0;
        }
        P->n_dead += act == 0 && s == 0;
        if (bestw != 0)
            all[nl++] = (pl_sae_top){.feature = j, .cls = cls, .coef = bestw, .score = fabs(bestw), .mean = s / n,
                                     .active = (double)act / n};
    }
    qsort(all, (size_t)nl, sizeof *all, cmp_top);
    P->n_top = nl < ntop ? nl : ntop;
    P->top = malloc(sizeof *P->top * (size_t)(P->n_top ? P->n_top : 1));
    if (!P->top) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(P->top, all, sizeof *P->top * (size_t)P->n_top);
    rc = 0;
done:
    rs_logreg_free(&m);
    rs_scaler_free(&sc);
    free(Xs);
    free(all);
    return rc;
}

/* The SAE configured for hook (saes.path of its layer), NULL when none applies: no SAEs, a
 * hook that is no block hook of a listed layer, or an SAE recorded for another hook. */
static int sae_for_hook(const rs_config *cfg, const char *hook, rs_sae **sae, char **path, rs_err *err) {
    *sae = NULL;
    *path = NULL;
    int L = rs_hook_block_index(hook), listed = 0;
    for (int i = 0; cfg->has_saes && L >= 0 && i < cfg->n_layers; i++) listed |= cfg->layers[i] == L;
    if (!listed) return 0;
    char *sp = rs_config_sae_path(cfg, L), *sh = rs_config_sae_hook(cfg, L);
    if (!sp) {
        free(sh);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    int rc = sae_load(sae, sp, sh, err);
    free(sh);
    if (rc) {
        free(sp);
        return -1;
    }
    if (!(*sae)->hook_name || strcmp((*sae)->hook_name, hook)) {
        sae_free(*sae);
        *sae = NULL;
        free(sp);
        return 0;
    }
    *path = sp;
    return 0;
}

int pl_probes_sae_hook(pl_ctx *c, pl_probes_result *R, const rs_eval_opts *eo0, const char *hook, int layer,
                       const int *ctype, int raw_llm, int raw_vlm, rs_err *err) {
    const rs_config *cfg = c->cfg;
    int K = c->n_labels, nt = c->n_text;
    if (!cfg->probes.feat_sae || nt < 2 || K < 2) return 0;
    rs_sae *sae = NULL;
    char *sp = NULL;
    if (sae_for_hook(cfg, hook, &sae, &sp, err)) return rs_err_prefix(err, "probes.features \"sae\" at %s", hook);
    if (!sae) {
        pl_log(c, "probes", "SAE features at %s: no SAE for this hook", hook);
        return 0;
    }
    static const struct {
        int store;
        const char *model;
    } SIDES[] = {{PL_LLM_TEXT, "LLM captions"}, {PL_VLM_TEXT, "VLM captions"}};
    int rc = -1;
    for (int k = 0; k < 2; k++) {
        float *X = NULL;
        int n = 0;
        double t0 = rs_now();
        if (sae_caption_features(c, SIDES[k].store, hook, sae, &X, &n, err)) goto done;
        if (n != nt) {
            free(X);
            rs_errf(err, "SAE features at %s: %d captions in the store, %d expected", hook, n, nt);
            goto done;
        }
        if (R->n_sae >= R->cap_sae) {
            int nc = R->cap_sae ? 2 * R->cap_sae : 8;
            void *t = realloc(R->sae, sizeof *R->sae * (size_t)nc);
            if (!t) {
                free(X);
                rs_errk(err, RS_ENOMEM, "out of memory");
                goto done;
            }
            R->sae = t;
            R->cap_sae = nc;
        }
        pl_probe_sae *P = &R->sae[R->n_sae];
        memset(P, 0, sizeof *P);
        P->model = SIDES[k].model, P->hook = hook, P->layer = layer;
        P->neuronpedia = sae->neuronpedia;
        P->d_sae = sae->d_sae;
        P->labels = (const char *const *)c->labels;
        P->n = n;
        P->raw = k == 0 ? raw_llm : raw_vlm;
        P->q = NAN;
        rs_eval_opts eo = *eo0;
        eo.control_type = ctype;
        eo.keep_tests = 1;
        rs_err e = {0};
        if (rs_probe_evaluate(X, c->text_label, c->text_group, n, sae->d_sae, K, &eo, &P->ev, &e)) {
            rs_eval_result_free(&P->ev);
            free(X);
            if (e.kind == RS_ENOMEM) {
                rs_errk(err, e.kind, "%s", e.msg);
                goto done;
            }
            pl_log(c, "probes", "SAE features %s at %s: skipped (%s)", SIDES[k].model, hook, e.msg);
            continue;
        }
        if (!(P->sae = strdup(sp))) {
            rs_eval_result_free(&P->ev);
            free(X);
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto done;
        }
        R->n_sae++; /* owned by R from here (freed with it) */
        P->n_test = P->ev.test_n ? P->ev.test_n[0] : 0;
        const rs_eval_result *raw = P->raw >= 0 ? &R->pt[P->raw].ev : NULL;
        int frc = top_features(X, c->text_label, n, sae->d_sae, K, &eo, cfg->probes.top_features, P, err);
        free(X);
        if (frc || (raw && paired_vs_raw(raw, &P->ev, c->text_label, c->text_group, &eo, R->paired_flips, &P->diff,
                                         &P->has_diff, err)))
            goto done;
        pl_log(c, "probes", "%-12s %-28s %s: accuracy %.3f [%.3f, %.3f] on %d SAE features (raw %.3f; permutation p %.3g), "
               "%d non-zero weights in the all-rows fit (%.2f s)",
               "concept", P->model, hook, P->ev.mean.accuracy, P->ev.ci_lo.accuracy, P->ev.ci_hi.accuracy, P->d_sae,
               raw ? raw->mean.accuracy : NAN, P->ev.perm_p, P->n_nonzero, rs_now() - t0);
    }
    rc = 0;
done:
    sae_free(sae);
    free(sp);
    return rc;
}

int pl_probes_sae_bh(pl_probes_result *r, rs_err *err) {
    if (r->n_sae == 0) return 0;
    double *p = malloc(sizeof(double) * (size_t)r->n_sae), *q = malloc(sizeof(double) * (size_t)r->n_sae);
    if (!p || !q) {
        free(p), free(q);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    r->sae_n_tests = 0;
    for (int i = 0; i < r->n_sae; i++) {
        p[i] = r->sae[i].ev.perm_p;
        r->sae_n_tests += isfinite(p[i]) != 0;
    }
    int rc = stats_bh_qvalues(p, r->n_sae, q) ? rs_errk(err, RS_ENOMEM, "out of memory") : 0;
    for (int i = 0; rc == 0 && i < r->n_sae; i++) r->sae[i].q = q[i];
    free(p), free(q);
    return rc;
}

void pl_probes_sae_free(pl_probes_result *r) {
    for (int i = 0; i < r->n_sae; i++) {
        rs_eval_result_free(&r->sae[i].ev);
        if (r->sae[i].has_diff) rs_paired_result_free(&r->sae[i].diff);
        free(r->sae[i].sae);
        free(r->sae[i].top);
    }
    free(r->sae);
    r->sae = NULL;
    r->n_sae = r->cap_sae = 0;
}

static const char *class_name(const pl_probe_sae *P, int k) { return P->labels ? P->labels[k] : ""; }

cJSON *pl_probes_sae_json(const pl_probes_result *r) {
    cJSON *list = cJSON_CreateArray();
    if (!list) return NULL;
    for (int i = 0; i < r->n_sae; i++) {
        const pl_probe_sae *P = &r->sae[i];
        const rs_eval_result *e = &P->ev;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(list, o);
        cJSON_AddStringToObject(o, "task", "concept");
        cJSON_AddStringToObject(o, "model", P->model);
        rs_json_add_num(o, "layer", P->layer);
        cJSON_AddStringToObject(o, "hook", P->hook);
        cJSON_AddStringToObject(o, "features", "sae");
        cJSON_AddStringToObject(o, "sae", P->sae);
        rs_json_add_num(o, "d_sae", P->d_sae);
        if (P->neuronpedia) cJSON_AddStringToObject(o, "neuronpedia_id", P->neuronpedia);
        cJSON_AddStringToObject(o, "penalty", r->penalty == RS_PENALTY_L1 ? "l1" : "l2");
        rs_json_add_num(o, "n", P->n);
        rs_json_add_num(o, "n_images", e->n_groups);
        rs_json_add_num(o, "n_test", P->n_test);
        rs_json_add_num(o, "n_test_groups", e->n_test_groups);
        rs_json_add_num(o, "n_seeds", e->n_seeds);
        pl_eval_metrics_json(o, e);
        rs_json_add_num(o, "permutation_q", P->q);
        if (P->raw >= 0) {
            const rs_eval_result *w = &r->pt[P->raw].ev;
            cJSON *raw = cJSON_AddObjectToObject(o, "raw");
            cJSON_AddItemToObject(raw, "accuracy", rs_json_stat(w->mean.accuracy, w->ci_lo.accuracy, w->ci_hi.accuracy));
            rs_json_add_num(raw, "chance", w->chance);
            rs_json_add_num(raw, "permuted_label_accuracy", w->perm_accuracy);
            rs_json_add_num(raw, "permutation_p", w->perm_p);
            rs_json_add_num(raw, "control_accuracy", w->control_accuracy);
        }
        if (P->has_diff) {
            cJSON *d = cJSON_AddObjectToObject(o, "sae_minus_raw");
            cJSON_AddItemToObject(d, "difference", rs_json_stat(P->diff.diff, P->diff.ci_lo, P->diff.ci_hi));
            rs_json_add_num(d, "p", P->diff.p);
            rs_json_add_num(d, "permutations", P->diff.n_perm);
            rs_json_add_num(d, "n_groups_tested", P->diff.n_groups_tested);
        }
        rs_json_add_num(o, "C_final", P->C_final);
        rs_json_add_num(o, "n_nonzero", P->n_nonzero);
        rs_json_add_num(o, "n_dead", P->n_dead);
        cJSON *top = cJSON_AddArrayToObject(o, "top_features");
        for (int t = 0; t < P->n_top; t++) {
            const pl_sae_top *T = &P->top[t];
            cJSON *f = cJSON_CreateObject();
            cJSON_AddItemToArray(top, f);
            rs_json_add_num(f, "feature", T->feature);
            cJSON_AddStringToObject(f, "class", class_name(P, T->cls));
            rs_json_add_num(f, "coef", T->coef);
            rs_json_add_num(f, "mean_activation", T->mean);
            rs_json_add_num(f, "active_share", T->active);
            if (P->neuronpedia) {
                char url[512];
                cJSON_AddStringToObject(f, "neuronpedia_url", rs_neuronpedia_url(P->neuronpedia, T->feature, url, sizeof url));
            }
        }
    }
    return list;
}

/* "%.17g", empty for NaN */
static void csv_num(FILE *f, double x) {
    if (isfinite(x)) fprintf(f, "%.17g", x);
}

/* a CSV field, quoted when it holds a comma, quote or newline */
static void csv_str(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int pl_probes_sae_write_csv(const pl_probes_result *r, const char *results_dir, rs_err *err) {
    if (r->n_sae == 0) return 0;
    char *buf[2] = {NULL, NULL};
    size_t len[2];
    FILE *f = open_memstream(&buf[0], &len[0]), *g = open_memstream(&buf[1], &len[1]);
    if (!f || !g) {
        if (f) fclose(f);
        if (g) fclose(g);
        free(buf[0]), free(buf[1]);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    fputs("model,layer,hook,sae,d_sae,penalty,n,n_images,n_test_groups,n_seeds,accuracy,ci_lo,ci_hi,chance,"
          "permuted_label_accuracy,permutation_p,permutation_q,control_accuracy,selectivity,raw_accuracy,raw_ci_lo,"
          "raw_ci_hi,raw_permutation_p,sae_minus_raw,diff_ci_lo,diff_ci_hi,diff_p,C_final,n_nonzero,n_dead\n", f);
    fputs("model,layer,hook,rank,feature,class,coef,mean_activation,active_share,neuronpedia_url\n", g);
    for (int i = 0; i < r->n_sae; i++) {
        const pl_probe_sae *P = &r->sae[i];
        const rs_eval_result *e = &P->ev, *w = P->raw >= 0 ? &r->pt[P->raw].ev : NULL;
        csv_str(f, P->model);
        fprintf(f, ",%d,", P->layer);
        csv_str(f, P->hook);
        fputc(',', f);
        csv_str(f, P->sae);
        fprintf(f, ",%d,%s,%d,%d,%d,%d", P->d_sae, r->penalty == RS_PENALTY_L1 ? "l1" : "l2", P->n, e->n_groups,
                e->n_test_groups, e->n_seeds);
        double v[] = {e->mean.accuracy, e->ci_lo.accuracy, e->ci_hi.accuracy, e->chance, e->perm_accuracy, e->perm_p, P->q,
                      e->control_accuracy, e->selectivity, w ? w->mean.accuracy : NAN, w ? w->ci_lo.accuracy : NAN,
                      w ? w->ci_hi.accuracy : NAN, w ? w->perm_p : NAN, P->has_diff ? P->diff.diff : NAN,
                      P->has_diff ? P->diff.ci_lo : NAN, P->has_diff ? P->diff.ci_hi : NAN,
                      P->has_diff ? P->diff.p : NAN, P->C_final};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
            fputc(',', f);
            csv_num(f, v[k]);
        }
        fprintf(f, ",%d,%d\n", P->n_nonzero, P->n_dead);
        for (int t = 0; t < P->n_top; t++) {
            const pl_sae_top *T = &P->top[t];
            csv_str(g, P->model);
            fprintf(g, ",%d,", P->layer);
            csv_str(g, P->hook);
            fprintf(g, ",%d,%d,", t + 1, T->feature);
            csv_str(g, class_name(P, T->cls));
            fputc(',', g);
            csv_num(g, T->coef);
            fputc(',', g);
            csv_num(g, T->mean);
            fputc(',', g);
            csv_num(g, T->active);
            fputc(',', g);
            char url[512];
            if (P->neuronpedia) csv_str(g, rs_neuronpedia_url(P->neuronpedia, T->feature, url, sizeof url));
            fputc('\n', g);
        }
    }
    fclose(f);
    fclose(g);
    char *p1 = pl_join(results_dir, "probes_sae.csv"), *p2 = pl_join(results_dir, "probes_sae_features.csv");
    int rc = !p1 || !p2 ? rs_errk(err, RS_ENOMEM, "out of memory")
                        : (pl_write_text(p1, buf[0], err) || pl_write_text(p2, buf[1], err)) ? -1 : 0;
    free(p1), free(p2);
    free(buf[0]), free(buf[1]);
    return rc;
}
