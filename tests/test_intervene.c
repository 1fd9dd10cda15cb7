/* Interventions and the logit lens vs transformers forward hooks on the tiny Gemma-2
 * (goldens: tools/reference/gen_intervene_goldens.py): add a direction (relative and
 * absolute α, chosen rows), project it out, clamp / scale / zero an SAE feature with the
 * error term kept (the sae-lens SAE of tests/fixtures/splice), patch from another input's
 * clean run, two specs at once; the lens top-5 ids at every layer and position. Plus the
 * probe-direction convention and the spec parser's errors. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "reprshift/intervene.h"
#include "reprshift/probe_io.h"
#include "reprshift/safetensors.h"

#define MODEL "tests/fixtures/models/gemma2-tiny-f32"
#define GOLD "tests/fixtures/intervene/intervene_golden.safetensors"


static void test_cases_vs_transformers(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    st_set *g;
    if (gemma2_open(&m, MODEL, &err)) fail_msg("%s", err.msg);
    if (st_open(&g, GOLD, &err)) fail_msg("%s", err.msg);
    const st_tensor *ti = tu_need(g, "ids"), *ts = tu_need(g, "source_ids");
    rs_iv_input in[2] = {{.ids = ti->data, .len = ti->numel}, {.ids = ts->data, .len = ts->numel}};
    int T = (int)ti->numel, V = m->cfg.vocab_size;
    cJSON *specs = cJSON_Parse(st_meta(g, "specs"));
    assert_non_null(specs);
    int n_cases = cJSON_GetArraySize(specs);
    assert_int_equal(n_cases, atoi(st_meta(g, "n_cases")));
    assert_true(n_cases >= 11);
    const float *clean_ref = tu_need(g, "logits_clean")->data;
    double *p = malloc(sizeof(double) * V), *q = malloc(sizeof(double) * V);
    for (int k = 0; k < n_cases; k++) {
        cJSON *list = cJSON_GetArrayItem(specs, k);
        int n = cJSON_GetArraySize(list);
        rs_intervention iv[4];
        assert_true(n <= 4);
        for (int i = 0; i < n; i++) {
            const char *s = cJSON_GetArrayItem(list, i)->valuestring;
            if (rs_intervention_parse(s, &iv[i], &err) || rs_intervention_resolve(&iv[i], m, &err))
                fail_msg("case %d: %s", k, err.msg);
        }
        rs_iv_result r;
        if (rs_intervene_run(m, in, 2, 0, iv, n, &r, &err)) fail_msg("case %d: %s", k, err.msg);
        char name[64];
        snprintf(name, sizeof name, "c%d.logits", k);
        const float *ref = tu_need(g, name)->data;
        double dl = tu_max_abs_diff(ref, r.logits_iv, (size_t)T * V);
        double dc = tu_max_abs_diff(clean_ref, r.logits_clean, (size_t)T * V);
        snprintf(name, sizeof name, "c%d.kl", k);
        const double *kl = tu_need(g, name)->data;
        double dkl = 0, dp = 0;
        for (int t = 0; t < T; t++) {
            double d = fabs(kl[t] - r.kl[t]);
            if (d > dkl) dkl = d;
            rs_softmax_row(ref + (size_t)t * V, V, p);
            rs_softmax_row(r.logits_iv + (size_t)t * V, V, q);
            for (int v = 0; v < V; v++) if (fabs(p[v] - q[v]) > dp) dp = fabs(p[v] - q[v]);
        }
        printf("case %d (%s%s): max |dlogit| %.2e (clean %.2e), max |dp| %.2e, max |dKL| %.2e, KL last %.5f\n", k,
               iv[0].spec, n > 1 ? " + ..." : "", dl, dc, dp, dkl, r.kl[T - 1]);
        if (dl > 1e-4 || dc > 1e-4 || dp > 1e-4 || dkl > 1e-4) fail_msg("case %d beyond 1e-4", k);
        /* the intervention changed something (the test would pass vacuously otherwise) */
        assert_true(r.kl[T - 1] > 1e-5 || tu_max_abs_diff(r.logits_iv, r.logits_clean, (size_t)T * V) > 1e-3);
        rs_iv_result_free(&r);
        for (int i = 0; i < n; i++) rs_intervention_free(&iv[i]);
    }
    free(p);
    free(q);
    cJSON_Delete(specs);
    st_close(g);
    gemma2_close(m);
}

static void test_lens_vs_transformers(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    st_set *g;
    if (gemma2_open(&m, MODEL, &err)) fail_msg("%s", err.msg);
    if (st_open(&g, GOLD, &err)) fail_msg("%s", err.msg);
    const st_tensor *ti = tu_need(g, "ids");
    rs_iv_input in = {.ids = ti->data, .len = ti->numel};
    int T = (int)ti->numel, V = m->cfg.vocab_size, L = m->cfg.n_layers;
    int layers[8];
    float *lg[8];
    for (int l = 0; l < L; l++) layers[l] = l;
    if (rs_logit_lens(m, &in, 0, layers, L, lg, &err)) fail_msg("%s", err.msg);
    for (int l = 0; l < L; l++) {
        char name[64];
        snprintf(name, sizeof name, "lens.%d.logits", l);
        double d = tu_max_abs_diff(tu_need(g, name)->data, lg[l], (size_t)T * V);
        snprintf(name, sizeof name, "lens.%d.top5", l);
        const int32_t *top = tu_need(g, name)->data;
        printf("lens layer %d: max |dlogit| %.2e\n", l, d);
        assert_true(d <= 1e-4);
        for (int t = 0; t < T; t++) {
            int idx[5];
            rs_topk(lg[l] + (size_t)t * V, V, 5, idx);
            for (int j = 0; j < 5; j++)
                if (idx[j] != top[t * 5 + j]) fail_msg("lens layer %d pos %d top-%d: %d vs %d", l, t, j, idx[j], top[t * 5 + j]);
        }
        free(lg[l]);
    }
    int bad = 4;
    assert_int_equal(rs_logit_lens(m, &in, 0, &bad, 1, lg, &err), -1);
    assert_non_null(strstr(err.msg, "layer 4"));
    st_close(g);
    gemma2_close(m);
}

/* PaliGemma's decoder with an image input (rs_pg_image_rows), patching the image rows from
 * another image's run, and the lens at the image rows too. */
static void test_paligemma_vs_transformers(void **state) {
    (void)state;
    rs_err err = {0};
    paligemma_model *pg;
    st_set *g;
    if (paligemma_open(&pg, "tests/fixtures/models/paligemma-tiny-f32", &err)) fail_msg("%s", err.msg);
    if (st_open(&g, GOLD, &err)) fail_msg("%s", err.msg);
    const st_tensor *ti = tu_need(g, "pg.ids");
    const int32_t *ids = ti->data;
    int T = (int)ti->numel, V = pg->text->cfg.vocab_size, prefix = *(const int32_t *)tu_need(g, "pg.prefix_len")->data;
    rs_iv_input in[2];
    float *emb[2];
    uint8_t *mask[2];
    const char *px[2] = {"pg.pixel_values", "pg.source_pixel_values"};
    for (int i = 0; i < 2; i++) {
        if (rs_pg_image_rows(pg, ids, T, prefix, tu_need(g, px[i])->data, 1, &emb[i], &mask[i], &err)) fail_msg("%s", err.msg);
        in[i] = (rs_iv_input){.ids = ids, .len = T, .embeds = emb[i], .embeds_mask = mask[i], .prefix_len = prefix};
    }
    cJSON *specs = cJSON_Parse(st_meta(g, "pg_specs"));
    assert_non_null(specs);
    int n_cases = cJSON_GetArraySize(specs);
    assert_int_equal(n_cases, 3);
    for (int k = 0; k < n_cases; k++) {
        rs_intervention iv;
        const char *s = cJSON_GetArrayItem(cJSON_GetArrayItem(specs, k), 0)->valuestring;
        if (rs_intervention_parse(s, &iv, &err) || rs_intervention_resolve(&iv, pg->text, &err)) fail_msg("%s", err.msg);
        rs_iv_result r;
        if (rs_intervene_run(pg->text, in, 2, 1, &iv, 1, &r, &err)) fail_msg("pg case %d: %s", k, err.msg);
        char name[64];
        snprintf(name, sizeof name, "pg%d.logits", k);
        double dl = tu_max_abs_diff(tu_need(g, name)->data, r.logits_iv, (size_t)T * V);
        double dc = tu_max_abs_diff(tu_need(g, "pg.logits_clean")->data, r.logits_clean, (size_t)T * V);
        snprintf(name, sizeof name, "pg%d.kl", k);
        const double *kl = tu_need(g, name)->data;
        double dkl = 0;
        for (int t = 0; t < T; t++) dkl = fmax(dkl, fabs(kl[t] - r.kl[t]));
        printf("pg case %d (%s): max |dlogit| %.2e (clean %.2e), max |dKL| %.2e, KL last %.5f\n", k, s, dl, dc, dkl,
               r.kl[T - 1]);
        if (dl > 1e-4 || dc > 1e-4 || dkl > 1e-4) fail_msg("pg case %d beyond 1e-4", k);
        assert_true(r.kl[T - 1] > 1e-5);
        rs_iv_result_free(&r);
        rs_intervention_free(&iv);
    }
    int layers[2] = {0, 1};
    float *lg[2];
    if (rs_logit_lens(pg->text, &in[0], 1, layers, 2, lg, &err)) fail_msg("%s", err.msg);
    for (int l = 0; l < 2; l++) {
        char name[64];
        snprintf(name, sizeof name, "pglens.%d.logits", l);
        double d = tu_max_abs_diff(tu_need(g, name)->data, lg[l], (size_t)T * V);
        printf("pg lens layer %d: max |dlogit| %.2e\n", l, d);
        assert_true(d <= 1e-4);
        snprintf(name, sizeof name, "pglens.%d.top5", l);
        const int32_t *top = tu_need(g, name)->data;
        for (int t = 0; t < T; t++) {
            int idx[5];
            rs_topk(lg[l] + (size_t)t * V, V, 5, idx);
            for (int j = 0; j < 5; j++)
                if (idx[j] != top[t * 5 + j]) fail_msg("pg lens layer %d pos %d top-%d: %d vs %d", l, t, j, idx[j], top[t * 5 + j]);
        }
        free(lg[l]);
    }
    for (int i = 0; i < 2; i++) {
        free(emb[i]);
        free(mask[i]);
    }
    cJSON_Delete(specs);
    st_close(g);
    paligemma_close(pg);
}

/* A probe's direction is used in raw activation units: coef/scale normalised to unit norm
 * (the sign toward classes[1] of a binary probe, minus toward classes[0]). */
static void test_probe_direction(void **state) {
    (void)state;
    rs_err err = {0};
    int d = 6;
    double W[6] = {1, -2, 0.5, 3, 0, 1}, b = 0.25, mean[6] = {1, 2, 3, 4, 5, 6}, sc[6] = {2, 0.5, 1, 4, 1, 0.25};
    char *cls[2] = {"cat", "dog"};
    rs_probe p = {.hook = "blocks.1.hook_resid_post", .n_classes = 2, .classes = cls, .standardized = 1,
                  .scaler = {.d = d, .mean = mean, .scale = sc},
                  .model = {.d = d, .n_classes = 2, .n_rows = 1, .W = W, .b = &b, .C = 1}};
    char path[512];
    snprintf(path, sizeof path, "%s/p.safetensors", tu_tmpdir());
    if (rs_probe_save(&p, path, &err)) fail_msg("%s", err.msg);
    float *u;
    if (rs_direction_load(path, NULL, d, &u, &err)) fail_msg("%s", err.msg);
    double want[6], n2 = 0;
    for (int j = 0; j < d; j++) {
        want[j] = W[j] / sc[j];
        n2 += want[j] * want[j];
    }
    for (int j = 0; j < d; j++) assert_true(fabs(u[j] - want[j] / sqrt(n2)) < 1e-6);
    free(u);
    if (rs_direction_load(path, "cat", d, &u, &err)) fail_msg("%s", err.msg);
    for (int j = 0; j < d; j++) assert_true(fabs(u[j] + want[j] / sqrt(n2)) < 1e-6);
    free(u);
    assert_int_equal(rs_direction_load(path, "bird", d, &u, &err), -1);
    assert_non_null(strstr(err.msg, "bird"));
    assert_int_equal(rs_direction_load(path, NULL, 7, &u, &err), -1);
    assert_non_null(strstr(err.msg, "width"));
}

static void expect_parse_error(const char *spec, const char *needle) {
    rs_err err = {0};
    rs_intervention iv;
    if (!rs_intervention_parse(spec, &iv, &err)) {
        rs_intervention_free(&iv);
        fail_msg("'%s' accepted", spec);
    }
    if (!strstr(err.msg, needle)) fail_msg("'%s': message '%s' lacks '%s'", spec, err.msg, needle);
}

static void expect_resolve_error(const gemma2_model *m, const char *spec, const char *needle) {
    rs_err err = {0};
    rs_intervention iv;
    if (rs_intervention_parse(spec, &iv, &err)) fail_msg("'%s': %s", spec, err.msg);
    int rc = rs_intervention_resolve(&iv, m, &err);
    rs_intervention_free(&iv);
    if (!rc) fail_msg("'%s' resolved", spec);
    if (!strstr(err.msg, needle)) fail_msg("'%s': message '%s' lacks '%s'", spec, err.msg, needle);
}

static void test_bad_specs(void **state) {
    (void)state;
    expect_parse_error("add:blocks.1.hook_resid_post", "KIND@HOOK");
    expect_parse_error("add@:dir=x:alpha=1", "missing or too long hook name");
    expect_parse_error("add@dir=x:alpha=1", "missing or too long hook name");
    expect_parse_error("steer@blocks.1.hook_resid_post:dir=x", "unknown kind 'steer'");
    expect_parse_error("add@blocks.1.hook_resid_post:dir=x:alpha=nan", "alpha must be a finite number");
    expect_parse_error("add@blocks.1.hook_resid_post:dir=x:alpha=inf", "finite");
    expect_parse_error("add@blocks.1.hook_resid_post:dir=x:alpha=1e999", "finite");
    expect_parse_error("add@blocks.1.hook_resid_post:dir=x", "alpha=A");
    expect_parse_error("add@blocks.1.hook_resid_post:alpha=1", "dir=FILE");
    expect_parse_error("add@blocks.1.hook_resid_post:dir=x:alpha=1:alpha_abs=2", "given twice");
    expect_parse_error("add@blocks.1.hook_resid_post:dir=x:alpha=1:pos=1,,2", "pos");
    expect_parse_error("add@blocks.1.hook_resid_post:dir=x:alpha=1:feature=3", "unknown field 'feature'");
    expect_parse_error("sae@blocks.1.hook_resid_post:sae=x:feature=-1:clamp=1", "feature");
    expect_parse_error("sae@blocks.1.hook_resid_post:sae=x:feature=1", "clamp=V");
    expect_parse_error("patch@blocks.1.hook_resid_post:from=0", "from");
    expect_parse_error("patch@blocks.1.hook_resid_post", "from=K");
    rs_err err = {0};
    gemma2_model *m;
    if (gemma2_open(&m, MODEL, &err)) fail_msg("%s", err.msg);
    expect_resolve_error(m, "patch@blocks.9.hook_resid_post:from=1", "blocks.9.hook_resid_post");
    expect_resolve_error(m, "patch@blocks.1.hook_resid_posts:from=1", "hook_resid_posts");
    expect_resolve_error(m, "add@blocks.1.hook_resid_post:dir=tests/fixtures/intervene/dir.safetensors:narrow:alpha=1",
                         "width 64");
    expect_resolve_error(m, "add@blocks.1.hook_resid_post:dir=tests/fixtures/splice/sae_l1_jumprelu/sae_weights.safetensors:alpha=1",
                         "name one");
    expect_resolve_error(m, "sae@blocks.2.hook_resid_post:sae=tests/fixtures/splice/sae_l1_jumprelu:feature=1:zero",
                         "hook");
    expect_resolve_error(m, "sae@blocks.1.hook_resid_post:sae=tests/fixtures/splice/sae_l1_jumprelu:feature=999:zero",
                         "out of range");
    /* rows outside the input / a patch source of another length */
    rs_intervention iv;
    int32_t ids[3] = {2, 5, 6}, ids2[2] = {2, 7};
    rs_iv_input in[2] = {{.ids = ids, .len = 3}, {.ids = ids2, .len = 2}};
    rs_iv_result r;
    assert_int_equal(rs_intervention_parse("patch@blocks.1.hook_resid_post:from=1", &iv, &err), 0);
    assert_int_equal(rs_intervention_resolve(&iv, m, &err), 0);
    assert_int_equal(rs_intervene_run(m, in, 2, 0, &iv, 1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "equal lengths"));
    assert_int_equal(rs_intervene_run(m, in, 1, 0, &iv, 1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "from=1"));
    rs_intervention_free(&iv);
    assert_int_equal(rs_intervention_parse("patch@blocks.1.hook_resid_post:from=1:pos=2", &iv, &err), 0);
    assert_int_equal(rs_intervention_resolve(&iv, m, &err), 0);
    assert_int_equal(rs_intervene_run(m, in, 2, 0, &iv, 1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "outside input 1"));
    rs_intervention_free(&iv);
    gemma2_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases_vs_transformers),
        cmocka_unit_test(test_lens_vs_transformers),
        cmocka_unit_test(test_paligemma_vs_transformers),
        cmocka_unit_test(test_probe_direction),
        cmocka_unit_test(test_bad_specs),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
