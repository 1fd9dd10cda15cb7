/* Steered generation (gen_params.ivs, src/model/generate.c) against transformers' greedy
 * generate with forward hooks that edit the activation on every model call, prefill and
 * cached decode steps (tests/fixtures/generate/steer.safetensors, made by
 * tools/reference/gen_steer_goldens.py): add (relative alpha, and alpha_abs with pos= on
 * prompt rows only), project and an SAE feature clamp, on the tiny Gemma-2 and PaliGemma:
 *   - the generated ids are token-identical, every step's logits within 1e-4, and the s of a
 *     relative add is the reference's clean-prefill mean norm;
 *   - every case moves some step's logits away from the unsteered run (the edit acts);
 *   - bad input: a patch spec, a non-finite alpha, pos= outside the prompt, an unresolved
 *     spec are RS_EINVAL errors with no output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "cJSON.h"
#include "reprshift/gemma2.h"
#include "reprshift/generate.h"
#include "reprshift/intervene.h"
#include "reprshift/paligemma.h"
#include "reprshift/safetensors.h"

#define G_DIR "tests/fixtures/models/gemma2-tiny-f32"
#define P_DIR "tests/fixtures/models/paligemma-tiny-f32"
#define GOLD "tests/fixtures/generate/steer.safetensors"
#define TOL 1e-4

static const st_tensor *need(const st_set *g, const char *fmt, const char *tag, int k) {
    char name[96];
    snprintf(name, sizeof name, fmt, tag, k);
    const st_tensor *t = st_get(g, name);
    if (!t) fail_msg("golden tensor %s missing", name);
    return t;
}

static const st_tensor *need_s(const st_set *g, const char *tag, const char *what) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", tag, what);
    const st_tensor *t = st_get(g, name);
    if (!t) fail_msg("golden tensor %s missing", name);
    return t;
}

static gen_params greedy(int n) {
    gen_params p = {.max_new_tokens = n, .temperature = 0, .top_p = 1, .keep_logits = 1};
    return p;
}

/* Run every case of tag ("gemma2" or "pg") through gen (Gemma-2 or PaliGemma) and compare. */
static void check_cases(const st_set *g, const char *tag, const gemma2_model *dec, const gemma2_model *gm,
                        const paligemma_model *pm) {
    rs_err err = {0};
    char key[64];
    snprintf(key, sizeof key, "%s.specs", tag);
    cJSON *specs = cJSON_Parse(st_meta(g, key));
    assert_non_null(specs);
    int n_cases = cJSON_GetArraySize(specs), V = dec->cfg.vocab_size;
    assert_true(n_cases >= 3);
    const st_tensor *prompt = need_s(g, tag, "prompt");
    const st_tensor *clean_ids = need_s(g, tag, "clean.ids");
    const st_tensor *clean_lg = need_s(g, tag, "clean.logits");
    const float *pix = pm ? need_s(g, tag, "pixel_values")->data : NULL;
    int N = (int)clean_ids->numel;
    gen_params p = greedy(N);
    gen_output o;
    /* unsteered first: the same as the reference's plain generate */
    int rc = pm ? gen_paligemma(pm, pix, prompt->data, (int)prompt->numel, &p, &o, &err)
                : gen_gemma2(gm, prompt->data, (int)prompt->numel, &p, &o, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(o.n, N);
    assert_memory_equal(o.ids, clean_ids->data, (size_t)N * sizeof(int32_t));
    assert_true(tu_max_abs_diff(o.logits, clean_lg->data, (size_t)N * V) <= TOL);
    assert_null(o.iv_scale);
    gen_output_free(&o);
    for (int k = 0; k < n_cases; k++) {
        const char *spec = cJSON_GetArrayItem(specs, k)->valuestring;
        rs_intervention iv;
        if (rs_intervention_parse(spec, &iv, &err) || rs_intervention_resolve(&iv, dec, &err))
            fail_msg("%s: %s", spec, err.msg);
        p.ivs = &iv;
        p.n_iv = 1;
        rc = pm ? gen_paligemma(pm, pix, prompt->data, (int)prompt->numel, &p, &o, &err)
                : gen_gemma2(gm, prompt->data, (int)prompt->numel, &p, &o, &err);
        if (rc) fail_msg("%s: %s", spec, err.msg);
        const st_tensor *ids = need(g, "%s.c%d.ids", tag, k), *lg = need(g, "%s.c%d.logits", tag, k);
        const double *s = need(g, "%s.c%d.scale", tag, k)->data;
        assert_int_equal(o.n, ids->numel);
        assert_memory_equal(o.ids, ids->data, (size_t)o.n * sizeof(int32_t));
        double e = tu_max_abs_diff(o.logits, lg->data, (size_t)lg->numel);
        /* how far the steered run is from the clean one, at the last step (decode-step steering
         * or the cache's memory of the steered prompt) */
        double moved = tu_max_abs_diff(o.logits + (size_t)(N - 1) * V, (const float *)clean_lg->data + (size_t)(N - 1) * V,
                                       (size_t)V);
        assert_non_null(o.iv_scale);
        double ds = fabs(o.iv_scale[0] - s[0]) / (s[0] > 1 ? s[0] : 1);
        printf("%s case %d %s: %d tokens identical (first %d, clean %d); max|logits - generate| = %.3g; "
               "last step moved %.3g; s = %.7g (reference %.7g)\n",
               tag, k, spec, o.n, o.ids[0], ((const int32_t *)clean_ids->data)[0], e, moved, o.iv_scale[0], s[0]);
        assert_true(e <= TOL);
        assert_true(moved > 1e-3);
        assert_true(ds <= 1e-6);
        gen_output_free(&o);
        rs_intervention_free(&iv);
    }
    cJSON_Delete(specs);
}

static void test_gemma2_steered(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    st_set *g;
    if (gemma2_open(&m, G_DIR, &err)) fail_msg("%s", err.msg);
    if (st_open(&g, GOLD, &err)) fail_msg("%s", err.msg);
    check_cases(g, "gemma2", m, m, NULL);
    st_close(g);
    gemma2_close(m);
}

static void test_paligemma_steered(void **state) {
    (void)state;
    rs_err err = {0};
    paligemma_model *m;
    st_set *g;
    if (paligemma_open(&m, P_DIR, &err)) fail_msg("%s", err.msg);
    if (st_open(&g, GOLD, &err)) fail_msg("%s", err.msg);
    check_cases(g, "pg", m->text, NULL, m);
    st_close(g);
    paligemma_close(m);
}

static rs_err last_err;

static void expect_einval(const gemma2_model *m, rs_intervention *iv, const int32_t *prompt, int n, const char *what) {
    rs_err err = {0};
    gen_params p = greedy(4);
    p.ivs = iv;
    p.n_iv = 1;
    gen_output o;
    memset(&o, 0x5a, sizeof o);
    assert_int_equal(gen_gemma2(m, prompt, n, &p, &o, &err), -1);
    printf("%s -> %s\n", what, err.msg);
    assert_int_equal(err.kind, RS_EINVAL);
    assert_null(o.ids);
    assert_null(o.logits);
    assert_null(o.iv_scale);
    assert_int_equal(o.n, 0);
    last_err = err;
}

static void test_bad_steering(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    if (gemma2_open(&m, G_DIR, &err)) fail_msg("%s", err.msg);
    const int32_t prompt[] = {2, 16, 328, 189};
    rs_intervention iv;
    /* patch: no source for generated tokens */
    if (rs_intervention_parse("patch@blocks.1.hook_resid_post:from=1", &iv, &err) ||
        rs_intervention_resolve(&iv, m, &err))
        fail_msg("%s", err.msg);
    expect_einval(m, &iv, prompt, 4, "patch");
    assert_non_null(strstr(last_err.msg, "patch cannot be used with generation"));
    rs_intervention_free(&iv);
    /* alpha not finite: the parser refuses it, and so does generation for a hand-made spec */
    assert_int_equal(rs_intervention_parse("add@blocks.1.hook_resid_post:dir=tests/fixtures/intervene/dir.safetensors:alpha=inf",
                                           &iv, &err), -1);
    assert_int_equal(err.kind, RS_EINVAL);
    if (rs_intervention_parse("add@blocks.1.hook_resid_post:dir=tests/fixtures/intervene/dir.safetensors:alpha=1", &iv,
                              &err) ||
        rs_intervention_resolve(&iv, m, &err))
        fail_msg("%s", err.msg);
    iv.alpha = NAN;
    expect_einval(m, &iv, prompt, 4, "alpha NaN");
    iv.alpha = 1;
    /* pos= outside the prompt */
    iv.pos = malloc(sizeof(int));
    iv.pos[0] = 4;
    iv.n_pos = 1;
    expect_einval(m, &iv, prompt, 4, "pos=4 of 4");
    iv.pos[0] = -5;
    expect_einval(m, &iv, prompt, 4, "pos=-5 of 4");
    rs_intervention_free(&iv);
    /* parsed but not resolved */
    if (rs_intervention_parse("project@blocks.1.hook_resid_post:dir=tests/fixtures/intervene/dir.safetensors", &iv, &err))
        fail_msg("%s", err.msg);
    expect_einval(m, &iv, prompt, 4, "unresolved");
    rs_intervention_free(&iv);
    gemma2_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemma2_steered),
        cmocka_unit_test(test_paligemma_steered),
        cmocka_unit_test(test_bad_steering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
