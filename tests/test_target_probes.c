/* The target probes' core (pl_targets_eval, src/pipeline/probes_targets.c) against
 * scikit-learn (tools/reference/gen_target_probe_goldens.py -> tests/fixtures/probe/
 * target_probes.json): 48 images, d = 6, two modalities, 2 given splits, 3 targets (one
 * carried by the same direction in both modalities, one by different directions, one with
 * unknown text labels). Per target and modality: the seed-mean balanced accuracy, accuracy,
 * majority accuracy and the counts; per direction the transfer, the within-modality value and
 * the gap; a target skipped for one modality gets no transfer. Also: the permutation p (on
 * its 1/(1+n) grid, small with signal, large at chance), thread invariance, BH, and
 * pl_targets_prepare (splits, labels, the min_positives rule, skip reasons). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "testutil.h"
#include "pipeline/pipeline_internal.h"
#include "pipeline/probes_result.h"
#include "base/jsonutil.h"

typedef struct {
    cJSON *j;
    int n, d, S;
    float *XT, *XI;
    pl_ctx c;
    rs_targets T;
    int *group;
} fixture;

static void load_rows(const cJSON *arr, float *X, int n, int d) {
    assert_int_equal(cJSON_GetArraySize(arr), n);
    int i = 0;
    for (const cJSON *r = arr->child; r; r = r->next, i++) {
        assert_int_equal(cJSON_GetArraySize(r), d);
        int k = 0;
        for (const cJSON *v = r->child; v; v = v->next, k++) X[(size_t)i * d + k] = (float)v->valuedouble;
    }
}

static void fx_load(fixture *f) {
    memset(f, 0, sizeof *f);
    rs_err err = {0};
    if (rs_json_load("tests/fixtures/probe/target_probes.json", 1 << 22, &f->j, &err)) fail_msg("%s", err.msg);
    f->n = cJSON_GetObjectItem(f->j, "n")->valueint;
    f->d = cJSON_GetObjectItem(f->j, "d")->valueint;
    f->S = cJSON_GetObjectItem(f->j, "seeds")->valueint;
    f->XT = malloc(sizeof(float) * f->n * f->d);
    f->XI = malloc(sizeof(float) * f->n * f->d);
    f->group = malloc(sizeof(int) * f->n);
    assert_true(f->XT && f->XI && f->group);
    load_rows(cJSON_GetObjectItem(f->j, "X_text"), f->XT, f->n, f->d);
    load_rows(cJSON_GetObjectItem(f->j, "X_image"), f->XI, f->n, f->d);
    for (int i = 0; i < f->n; i++) f->group[i] = i;
    f->c.image_group = f->group;
    static char *NAMES[3] = {"category:t0", "colour:t1", "action:t2"};
    static rs_target_kind KINDS[3] = {RS_TGT_CATEGORY, RS_TGT_COLOUR, RS_TGT_ACTION};
    f->T.n_cols = 3, f->T.names = NAMES, f->T.kind = KINDS;
    f->c.targets = &f->T;
}

static void fx_free(fixture *f) {
    cJSON_Delete(f->j);
    free(f->XT);
    free(f->XI);
    free(f->group);
}

/* A prepared result as pl_targets_prepare would leave it, from the fixture's labels and splits. */
static pl_tgt_result *fx_result(const fixture *f, int n_perm, int skip_text_t2) {
    pl_tgt_result *t = calloc(1, sizeof *t);
    assert_non_null(t);
    int n = f->n, C = 3;
    t->min_pos = 1, t->n_perm = n_perm, t->n_seeds = f->S, t->n_boot = 50, t->ni = n, t->n_cols = C;
    t->y = malloc((size_t)2 * C * n);
    t->is_test = malloc(sizeof(int) * f->S * n);
    t->elig = calloc(2 * C, 1);
    assert_true(t->y && t->is_test && t->elig);
    const char *key[2] = {"y_text", "y_image"};
    for (int m = 0; m < 2; m++) {
        const cJSON *Y = cJSON_GetObjectItem(f->j, key[m]);
        for (int k = 0; k < C; k++) {
            const cJSON *row = cJSON_GetArrayItem(Y, k);
            for (int i = 0; i < n; i++) t->y[((size_t)m * C + k) * n + i] = (signed char)cJSON_GetArrayItem(row, i)->valueint;
            t->elig[m * C + k] = 1;
        }
    }
    if (skip_text_t2) t->elig[2] = 0;
    const cJSON *IT = cJSON_GetObjectItem(f->j, "is_test");
    for (int s = 0; s < f->S; s++)
        for (int i = 0; i < n; i++) t->is_test[s * n + i] = cJSON_GetArrayItem(cJSON_GetArrayItem(IT, s), i)->valueint;
    return t;
}

static rs_eval_opts opts(int threads) {
    static const double C1[1] = {1.0};
    rs_eval_opts eo = rs_eval_defaults();
    eo.Cs = C1, eo.n_Cs = 1, eo.tol = 1e-8, eo.seed = 0, eo.threads = threads;
    return eo;
}

static double num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuedouble; }

static void test_against_sklearn(void **state) {
    (void)state;
    fixture f;
    fx_load(&f);
    pl_tgt_result *t = fx_result(&f, 0, 0);
    rs_eval_opts eo = opts(1);
    eo.n_perm = 0;
    rs_err err = {0};
    if (pl_targets_eval(&f.c, t, &eo, f.XT, f.d, f.XI, f.d, "blocks.0.hook_resid_post", 0, &err)) fail_msg("%s", err.msg);
    assert_int_equal(t->n_pr, 6);
    assert_int_equal(t->n_tr, 6);
    const cJSON *P = cJSON_GetObjectItem(f.j, "probes"), *X = cJSON_GetObjectItem(f.j, "transfer");
    for (int i = 0; i < 6; i++) {
        const cJSON *e = cJSON_GetArrayItem(P, i);
        const pl_tgt_probe *p = &t->pr[i];
        int k = cJSON_GetObjectItem(e, "target")->valueint;
        assert_string_equal(p->target, f.T.names[k]);
        assert_string_equal(p->model, !strcmp(cJSON_GetObjectItem(e, "modality")->valuestring, "text") ? "LLM captions"
                                                                                                    : "VLM images");
        if (fabs(p->bal - num(e, "balanced_accuracy")) > 1e-12)
            fail_msg("probe %d: balanced accuracy %.15g, sklearn %.15g", i, p->bal, num(e, "balanced_accuracy"));
        assert_true(fabs(p->acc - num(e, "accuracy")) < 1e-12);
        assert_true(fabs(p->majority - num(e, "majority_accuracy")) < 1e-12);
        assert_true(fabs(p->prevalence - num(e, "prevalence")) < 1e-12);
        assert_int_equal(p->n_images, (int)num(e, "n_images"));
        assert_int_equal(p->n_test, (int)num(e, "n_test_images"));
        assert_int_equal(p->pos_train, (int)num(e, "positives_train"));
        assert_int_equal(p->pos_test, (int)num(e, "positives_test"));
        assert_true(p->lo <= p->bal + 1e-12 && p->bal <= p->hi + 1e-12);
        assert_true(isnan(p->p)); /* no permutations asked */
    }
    for (int i = 0; i < 6; i++) {
        const cJSON *e = cJSON_GetArrayItem(X, i);
        const pl_tgt_transfer *x = &t->tr[i];
        assert_string_equal(x->target, f.T.names[cJSON_GetObjectItem(e, "target")->valueint]);
        assert_int_equal(x->dir, !strcmp(cJSON_GetObjectItem(e, "direction")->valuestring, "text->image") ? 0 : 1);
        if (fabs(x->xfer - num(e, "transfer")) > 1e-12)
            fail_msg("transfer %d: %.15g, sklearn %.15g", i, x->xfer, num(e, "transfer"));
        assert_true(fabs(x->within - num(e, "within")) < 1e-12);
        assert_true(fabs(x->gap - num(e, "gap")) < 1e-12);
        assert_true(x->gap_lo <= x->gap + 1e-12 && x->gap <= x->gap_hi + 1e-12);
    }
    pl_targets_result_free(t);
    /* t2 not eligible on text: 5 probes, and no transfer for t2 */
    t = fx_result(&f, 0, 1);
    if (pl_targets_eval(&f.c, t, &eo, f.XT, f.d, f.XI, f.d, "h", 0, &err)) fail_msg("%s", err.msg);
    assert_int_equal(t->n_pr, 5);
    assert_int_equal(t->n_tr, 4);
    for (int i = 0; i < t->n_tr; i++) assert_string_not_equal(t->tr[i].target, "action:t2");
    pl_targets_result_free(t);
    fx_free(&f);
}

/* Permutation null: t0 on images is well above chance (0.875): p ≤ 0.1 with 19 permutations,
 * a multiple of 1/20; t2 on images (0.440) gets a large p; the null mean sits near 0.5; 1 and 2
 * threads agree bit for bit. */
static void test_permutation(void **state) {
    (void)state;
    fixture f;
    fx_load(&f);
    rs_err err = {0};
    pl_tgt_result *t1 = fx_result(&f, 19, 0), *t2 = fx_result(&f, 19, 0);
    rs_eval_opts e1 = opts(1), e2 = opts(2);
    if (pl_targets_eval(&f.c, t1, &e1, f.XT, f.d, f.XI, f.d, "h", 0, &err) ||
        pl_targets_eval(&f.c, t2, &e2, f.XT, f.d, f.XI, f.d, "h", 0, &err))
        fail_msg("%s", err.msg);
    const pl_tgt_probe *p = &t1->pr[1]; /* t0, image */
    assert_string_equal(p->model, "VLM images");
    /* (1 + #{null >= 0.875}) / 20: 2/20 here (one permuted fit of 12 test images reaches it) */
    if (p->p > 0.1 + 1e-15 || fabs(p->p * 20 - round(p->p * 20)) > 1e-9)
        fail_msg("p %.6g null mean %.6g bal %.6g", p->p, p->null_mean, p->bal);
    /* t2 on images is at chance (0.440): a large p */
    assert_string_equal(t1->pr[5].target, "action:t2");
    assert_string_equal(t1->pr[5].model, "VLM images");
    assert_true(t1->pr[5].p > 0.3);
    assert_int_equal(p->n_perm, 19);
    assert_true(p->null_mean > 0.3 && p->null_mean < 0.7);
    for (int i = 0; i < t1->n_pr; i++) {
        assert_memory_equal(&t1->pr[i].p, &t2->pr[i].p, sizeof(double));
        assert_memory_equal(&t1->pr[i].null_mean, &t2->pr[i].null_mean, sizeof(double));
        assert_memory_equal(&t1->pr[i].lo, &t2->pr[i].lo, sizeof(double));
    }
    for (int i = 0; i < t1->n_tr; i++) assert_memory_equal(&t1->tr[i].p, &t2->tr[i].p, sizeof(double));
    /* BH over the six probes and six transfer cells */
    assert_int_equal(pl_targets_bh(t1, &err), 0);
    assert_int_equal(t1->n_tests, 6);
    assert_int_equal(t1->n_tr_tests, 6);
    for (int i = 0; i < t1->n_pr; i++) assert_true(t1->pr[i].q >= t1->pr[i].p - 1e-15 && t1->pr[i].q <= 1);
    pl_targets_result_free(t1);
    pl_targets_result_free(t2);
    fx_free(&f);
}

/* pl_targets_prepare: the splits are the group probes' (rs_split_stratified_groups on the image
 * rows' group labels, seed 7919·(s+1)), labels come from the right manifest rows (text: the
 * image's first caption row), and a target × modality is eligible exactly when every split has
 * at least min_positives positive and negative images with a known label on both sides; the
 * others are skipped once with a reason naming the split, the side and the count. */
static void test_prepare(void **state) {
    (void)state;
    enum { NI = 16, C = 3, S = 2 };
    /* manifest rows: image j at 2j, its caption at 2j + 1 */
    rs_targets T;
    memset(&T, 0, sizeof T);
    static char *NAMES[C] = {"category:many", "colour:rare", "action:textonly"};
    static rs_target_kind KINDS[C] = {RS_TGT_CATEGORY, RS_TGT_COLOUR, RS_TGT_ACTION};
    T.n_cols = C, T.names = NAMES, T.kind = KINDS, T.n_rows = 2 * NI;
    signed char v[2 * NI * C];
    int label[NI], group[NI], cap[NI], trow[NI], irow[NI];
    for (int j = 0; j < NI; j++) {
        label[j] = j % 2, group[j] = j, cap[j] = j, trow[j] = 2 * j + 1, irow[j] = 2 * j;
        signed char many = (signed char)(j % 4 < 2), rare = (signed char)(j == 3);
        v[(2 * j) * C + 0] = many, v[(2 * j + 1) * C + 0] = many;
        v[(2 * j) * C + 1] = rare, v[(2 * j + 1) * C + 1] = rare;
        v[(2 * j) * C + 2] = -1, v[(2 * j + 1) * C + 2] = (signed char)(j % 3 == 0); /* unknown on images */
    }
    T.v = v;
    char *tg[4] = {"groups", "categories", "colours", "actions"};
    rs_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.probes.targets = tg, cfg.probes.n_targets = 4, cfg.probes.min_positives = 2;
    rs_pipeline_opts po;
    memset(&po, 0, sizeof po);
    po.quiet = 1;
    pl_ctx c;
    memset(&c, 0, sizeof c);
    c.cfg = &cfg, c.opt = &po, c.targets = &T;
    c.n_image = NI, c.n_text = NI, c.n_labels = 2;
    c.image_label = label, c.image_group = group, c.image_caption = cap, c.text_row = trow, c.image_row = irow;
    rs_eval_opts eo = opts(1);
    eo.n_seeds = S, eo.test_frac = 0.5;
    pl_tgt_result *t;
    rs_err err = {0};
    assert_int_equal(pl_targets_prepare(&c, &eo, &t, &err), 0);
    /* the concept probe's splits */
    int it[NI];
    for (int s = 0; s < S; s++) {
        assert_int_equal(rs_split_stratified_groups(label, group, NI, 2, 0.5, 7919u * (uint64_t)(s + 1), it, &err), 0);
        assert_memory_equal(it, t->is_test + s * NI, sizeof it);
    }
    /* labels and eligibility, counted here */
    int n_skip = 0;
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < C; k++) {
            int ok = 1;
            for (int j = 0; j < NI; j++)
                assert_int_equal(t->y[((size_t)m * C + k) * NI + j], v[(m == 0 ? trow[j] : irow[j]) * C + k]);
            for (int s = 0; s < S; s++) {
                int cnt[2][2] = {{0, 0}, {0, 0}};
                for (int j = 0; j < NI; j++) {
                    signed char y = v[(m == 0 ? trow[j] : irow[j]) * C + k];
                    if (y >= 0) cnt[t->is_test[s * NI + j]][y]++;
                }
                ok &= cnt[0][0] >= 2 && cnt[0][1] >= 2 && cnt[1][0] >= 2 && cnt[1][1] >= 2;
            }
            assert_int_equal(t->elig[m * C + k], ok);
            n_skip += !ok;
        }
    /* many: eligible on both; rare (one positive image) and textonly on images: skipped */
    assert_int_equal(t->elig[0], 1);
    assert_int_equal(t->elig[C + 0], 1);
    assert_int_equal(t->elig[1], 0);
    assert_int_equal(t->elig[C + 2], 0);
    assert_int_equal(t->n_sk, n_skip);
    int seen_rare = 0, seen_unknown = 0;
    for (int i = 0; i < t->n_sk; i++) {
        if (!strcmp(t->sk[i].target, "colour:rare") && !strcmp(t->sk[i].model, "LLM captions")) {
            seen_rare = 1;
            assert_non_null(strstr(t->sk[i].reason, "split 0: "));
            assert_non_null(strstr(t->sk[i].reason, "positive"));
            assert_non_null(strstr(t->sk[i].reason, "probes.min_positives = 2; 1 of 16 images positive"));
        }
        if (!strcmp(t->sk[i].target, "action:textonly") && !strcmp(t->sk[i].model, "VLM images")) {
            seen_unknown = 1;
            assert_non_null(strstr(t->sk[i].reason, "no image with a known label"));
        }
    }
    assert_true(seen_rare && seen_unknown);
    pl_targets_result_free(t);
    /* only colours asked: the other kinds are neither evaluated nor listed */
    char *only[1] = {"colours"};
    cfg.probes.targets = only, cfg.probes.n_targets = 1;
    assert_int_equal(pl_targets_prepare(&c, &eo, &t, &err), 0);
    assert_int_equal(t->elig[0] + t->elig[C + 0] + t->elig[2] + t->elig[C + 2], 0);
    for (int i = 0; i < t->n_sk; i++) assert_string_equal(t->sk[i].target, "colour:rare");
    pl_targets_result_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare),
        cmocka_unit_test(test_against_sklearn),
        cmocka_unit_test(test_permutation),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
