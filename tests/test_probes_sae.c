/* SAE-feature probes' writer (src/pipeline/probes_sae.c) on a hand-built pl_probes_result:
 * the "sae_features" list of probes.json (every statistic with n, CI and null, the raw probe
 * beside it, the paired difference, top features with Neuronpedia URLs formed from the
 * registry id, none without one), its BH family (pl_probes_sae_bh; expected q-values from
 * scipy.stats.false_discovery_control: p = [0.02, 0.01] -> [0.02, 0.02]), the two CSVs, and
 * probes.json unchanged (no "sae_features", no "penalty") when SAE probes are off. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "testutil.h"
#include "pipeline/pipeline_internal.h"
#include "pipeline/probes_result.h"
#include "base/jsonutil.h"
#include "reprshift/fileio.h"
#include "reprshift/probe.h"

static const char *H = "blocks.12.hook_resid_post";
static const char *LABELS[] = {"animals", "food", "vehicles"};

static void set_ev(rs_eval_result *e, double a, double p) {
    memset(e, 0, sizeof *e);
    e->mean.accuracy = a, e->ci_lo.accuracy = a - 0.1, e->ci_hi.accuracy = a + 0.1;
    e->mean.balanced_accuracy = a, e->mean.macro_f1 = a;
    e->ci_lo.balanced_accuracy = e->ci_hi.balanced_accuracy = e->ci_lo.macro_f1 = e->ci_hi.macro_f1 = NAN;
    e->acc_sd = 0.05, e->chance = 1.0 / 3, e->perm_accuracy = 0.34, e->perm_p = p, e->n_perm = 99;
    e->control_accuracy = 0.3, e->control_overlap = 0.5, e->selectivity = a - 0.3;
    e->n_test_groups = 20, e->n_groups = 100, e->n_seeds = 5, e->K = 3;
}

static void build(pl_probes_result *R, const char *np_id) {
    memset(R, 0, sizeof *R);
    R->n_seeds = 5, R->n_boot = 100, R->n_perm = 99, R->paired_flips = 1000;
    R->pt = calloc(1, sizeof *R->pt);
    assert_non_null(R->pt);
    pl_probe_point *P = &R->pt[R->n_pt++];
    P->task = "concept", P->kind = "concept", P->model = "LLM captions", P->hook = H, P->layer = 12;
    P->n = 120, P->n_test = 24, P->xfer = -1, P->cell = -1, P->q = NAN;
    set_ev(&P->ev, 0.7, 0.01);
    R->sae_on = 1;
    R->penalty = RS_PENALTY_L1;
    R->sae = calloc(2, sizeof *R->sae);
    assert_non_null(R->sae);
    for (int i = 0; i < 2; i++) {
        pl_probe_sae *S = &R->sae[R->n_sae++];
        S->model = i ? "VLM captions" : "LLM captions", S->hook = H, S->layer = 12;
        S->sae = strdup("gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical");
        S->neuronpedia = np_id;
        S->d_sae = 16384, S->labels = LABELS, S->n = 120, S->n_test = 24;
        set_ev(&S->ev, 0.6 + 0.1 * i, i ? 0.01 : 0.02);
        S->raw = i ? -1 : 0;
        S->C_final = 0.1, S->n_nonzero = 37, S->n_dead = 5000;
        if (!i) {
            S->has_diff = 1;
            S->diff.diff = -0.1, S->diff.ci_lo = -0.2, S->diff.ci_hi = 0.0, S->diff.p = 0.05, S->diff.n_perm = 1000;
            S->diff.n_groups_tested = 80, S->diff.n_seeds = 5;
            S->diff.seed_diff = calloc(5, sizeof(double));
        }
        S->top = calloc(2, sizeof *S->top);
        S->n_top = 2;
        S->top[0] = (pl_sae_top){.feature = 4242, .cls = 1, .coef = 0.9, .score = 0.9, .mean = 0.5, .active = 0.25};
        S->top[1] = (pl_sae_top){.feature = 7, .cls = 2, .coef = -0.4, .score = 0.4, .mean = 0.1, .active = 0.05};
        S->q = NAN;
    }
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) fail_msg("no number %s", k);
    return v->valuedouble;
}
static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_json_and_bh(void **st) {
    (void)st;
    pl_probes_result R;
    build(&R, "gemma-2-2b/12-gemmascope-res-16k");
    rs_err err = {0};
    assert_int_equal(pl_probes_sae_bh(&R, &err), 0);
    assert_int_equal(R.sae_n_tests, 2);
    assert_true(fabs(R.sae[0].q - 0.02) < 1e-15 && fabs(R.sae[1].q - 0.02) < 1e-15);
    cJSON *j = pl_probes_json(&R);
    assert_non_null(j);
    assert_non_null(strstr(str(j, "penalty"), "l1"));
    assert_non_null(str(j, "sae_features_note"));
    assert_int_equal((int)num(j, "sae_n_tests"), 2);
    const cJSON *L = cJSON_GetObjectItemCaseSensitive(j, "sae_features");
    assert_int_equal(cJSON_GetArraySize(L), 2);
    const cJSON *a = cJSON_GetArrayItem(L, 0), *b = cJSON_GetArrayItem(L, 1);
    assert_string_equal(str(a, "model"), "LLM captions");
    assert_string_equal(str(a, "penalty"), "l1");
    assert_string_equal(str(a, "neuronpedia_id"), "gemma-2-2b/12-gemmascope-res-16k");
    assert_int_equal((int)num(a, "n"), 120);
    assert_int_equal((int)num(a, "n_images"), 100);
    assert_int_equal((int)num(a, "n_test_groups"), 20);
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(a, "accuracy");
    assert_true(fabs(num(acc, "value") - 0.6) < 1e-15 && fabs(num(acc, "ci_lo") - 0.5) < 1e-15);
    assert_true(fabs(num(a, "permuted_label_accuracy") - 0.34) < 1e-15);
    assert_true(fabs(num(a, "permutation_p") - 0.02) < 1e-15);
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(a, "raw");
    assert_true(fabs(num(cJSON_GetObjectItemCaseSensitive(raw, "accuracy"), "value") - 0.7) < 1e-15);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(a, "sae_minus_raw");
    assert_true(fabs(num(cJSON_GetObjectItemCaseSensitive(d, "difference"), "value") + 0.1) < 1e-15);
    assert_int_equal((int)num(d, "permutations"), 1000);
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(a, "top_features");
    assert_int_equal(cJSON_GetArraySize(top), 2);
    const cJSON *t0 = cJSON_GetArrayItem(top, 0), *t1 = cJSON_GetArrayItem(top, 1);
    assert_int_equal((int)num(t0, "feature"), 4242);
    assert_string_equal(str(t0, "class"), "food");
    assert_string_equal(str(t1, "class"), "vehicles");
    assert_string_equal(str(t0, "neuronpedia_url"), "https://www.neuronpedia.org/gemma-2-2b/12-gemmascope-res-16k/4242");
    assert_string_equal(str(t1, "neuronpedia_url"), "https://www.neuronpedia.org/gemma-2-2b/12-gemmascope-res-16k/7");
    /* no raw probe, no paired difference */
    assert_null(cJSON_GetObjectItemCaseSensitive(b, "raw"));
    assert_null(cJSON_GetObjectItemCaseSensitive(b, "sae_minus_raw"));
    cJSON_Delete(j);

    /* the CSVs */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sae_csv", tu_tmpdir());
    mkdir(dir, 0755);
    assert_int_equal(pl_probes_sae_write_csv(&R, dir, &err), 0);
    char path[600], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/probes_sae_features.csv", dir);
    assert_int_equal(rs_read_file(path, 1 << 20, &text, &len, &err), 0);
    assert_non_null(strstr(text, "model,layer,hook,rank,feature,class,coef,mean_activation,active_share,neuronpedia_url\n"
                                 "LLM captions,12,blocks.12.hook_resid_post,1,4242,food,0.90000000000000002,0.5,0.25,"
                                 "https://www.neuronpedia.org/gemma-2-2b/12-gemmascope-res-16k/4242\n"));
    free(text);
    snprintf(path, sizeof path, "%s/probes_sae.csv", dir);
    assert_int_equal(rs_read_file(path, 1 << 20, &text, &len, &err), 0);
    int lines = 0;
    for (char *s = text; *s; s++) lines += *s == '\n';
    assert_int_equal(lines, 3);
    /* the VLM row has no raw probe: empty raw and difference cells */
    assert_non_null(strstr(text, "VLM captions,12,blocks.12.hook_resid_post,gemma-scope-2b-pt-res-canonical/layer_12/"
                                 "width_16k/canonical,16384,l1,120,100,20,5,0.69999999999999996,"));
    assert_non_null(strstr(text, ",,,,,,,,0.10000000000000001,37,5000\n"));
    free(text);
    pl_probes_result_free(&R);
}

/* Without a Neuronpedia id: no URLs (JSON key absent, CSV cell empty). */
static void test_no_neuronpedia(void **st) {
    (void)st;
    pl_probes_result R;
    build(&R, NULL);
    cJSON *j = pl_probes_json(&R);
    const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "sae_features"), 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(a, "neuronpedia_id"));
    const cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a, "top_features"), 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(t0, "neuronpedia_url"));
    cJSON_Delete(j);
    pl_probes_result_free(&R);
}

/* SAE probes off, penalty l2: probes.json has none of the new keys. */
static void test_off_unchanged(void **st) {
    (void)st;
    pl_probes_result R;
    build(&R, NULL);
    pl_probes_sae_free(&R);
    R.sae_on = 0;
    R.penalty = RS_PENALTY_L2;
    cJSON *j = pl_probes_json(&R);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "sae_features"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "sae_features_note"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "sae_n_tests"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "penalty"));
    cJSON_Delete(j);
    rs_err err = {0};
    assert_int_equal(pl_probes_sae_write_csv(&R, "/nonexistent", &err), 0); /* nothing to write */
    pl_probes_result_free(&R);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_and_bh),
        cmocka_unit_test(test_no_neuronpedia),
        cmocka_unit_test(test_off_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
