/* Steering dose–response passes (src/analysis/steer.c, the steer stage of `reprshift run`)
 * against transformers forward hooks (tests/fixtures/steer/dose_golden.json, made by
 * tools/reference/gen_steer_dose_goldens.py) on the tiny PaliGemma: for a unit probe direction
 * and two seeded random unit directions, at blocks.0/1.hook_resid_post, α ∈ {−3, 0, 1.5, 4}
 * in units of the mean prefix-row norm s:
 *   - s within 1e-4 (relative) of the reference's clean mean norm over the prefix rows;
 *   - the random directions are the reference's (splitmix64 + Box–Muller, unit norm);
 *   - log p(target set) at the first generated position and the suffix CE within 1e-4;
 *   - α = 0 reproduces the clean pass bit for bit;
 *   - the pass resumed at the hook from the clean activation (rs_steer_pass_from) is bit-identical
 *     to the full steered pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "cJSON.h"
#include "reprshift/fileio.h"
#include "reprshift/intervene.h"
#include "reprshift/paligemma.h"
#include "reprshift/safetensors.h"
#include "reprshift/steer.h"

#define P_DIR "tests/fixtures/models/paligemma-tiny-f32"
#define GOLD "tests/fixtures/steer/dose_golden.json"
#define PG "tests/fixtures/generate/paligemma-tiny-f32.safetensors"
#define DIRF "tests/fixtures/intervene/dir.safetensors"
#define TOL 1e-4

static int32_t *ints(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int32_t *v = malloc((size_t)*n * sizeof *v);
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next) v[i++] = (int32_t)x->valuedouble;
    return v;
}

static void test_dose_golden(void **state) {
    (void)state;
    rs_err err = {0};
    char *txt = NULL;
    size_t len = 0;
    if (rs_read_file(GOLD, 1 << 20, &txt, &len, &err)) fail_msg("%s", err.msg);
    cJSON *g = cJSON_Parse(txt);
    free(txt);
    assert_non_null(g);
    paligemma_model *m;
    if (paligemma_open(&m, P_DIR, &err)) fail_msg("%s", err.msg);
    const int D = m->text->cfg.hidden_size, V = m->text->cfg.vocab_size;
    st_set *pg;
    if (st_open(&pg, PG, &err)) fail_msg("%s", err.msg);
    const st_tensor *pvt = st_get(pg, "g1.pixel_values");
    assert_non_null(pvt);
    float *pv = st_to_f32_new(pvt);
    assert_non_null(pv);

    int np, ns, na, nb;
    int32_t *prompt = ints(cJSON_GetObjectItem(g, "prompt"), &np);
    int32_t *suffix = ints(cJSON_GetObjectItem(g, "suffix"), &ns);
    const cJSON *tg = cJSON_GetObjectItem(g, "targets");
    int32_t *ta = ints(cJSON_GetObjectItem(tg, "a"), &na), *tb = ints(cJSON_GetObjectItem(tg, "b"), &nb);
    int32_t *ids;
    uint8_t *kinds;
    int64_t T;
    int P;
    if (paligemma_build_input(m, 1, prompt, np, suffix, ns, &ids, &kinds, &T, &P, &err)) fail_msg("%s", err.msg);
    assert_int_equal(P, (int)cJSON_GetObjectItem(g, "prefix_len")->valuedouble);
    float *emb;
    uint8_t *mask;
    if (rs_pg_image_rows(m, ids, T, P, pv, 1, &emb, &mask, &err)) fail_msg("%s", err.msg);
    rs_iv_input in = {.ids = ids, .len = T, .embeds = emb, .embeds_mask = mask, .prefix_len = P};

    /* directions */
    int K = (int)cJSON_GetObjectItem(g, "K")->valuedouble;
    uint64_t seed = (uint64_t)cJSON_GetObjectItem(g, "seed")->valuedouble;
    float *rnd = malloc((size_t)K * D * sizeof *rnd), *dprobe = NULL;
    rs_random_unit_dirs(seed, K, D, rnd);
    const cJSON *head = cJSON_GetObjectItem(g, "random_dirs_head");
    for (int k = 0; k < K; k++) {
        double n2 = 0;
        for (int j = 0; j < D; j++) n2 += (double)rnd[k * D + j] * rnd[k * D + j];
        assert_true(fabs(sqrt(n2) - 1) < 1e-6);
        for (int j = 0; j < 4; j++)
            assert_float_equal(rnd[k * D + j], cJSON_GetArrayItem(cJSON_GetArrayItem(head, k), j)->valuedouble, 1e-7);
    }
    if (rs_direction_load(DIRF, "direction", D, &dprobe, &err)) fail_msg("%s", err.msg);

    float *lg = malloc((size_t)V * sizeof *lg), *lg0 = malloc((size_t)V * sizeof *lg0), *lgf = malloc((size_t)V * sizeof *lgf);
    float *act = malloc((size_t)T * D * sizeof *act);
    double worst = 0;
    int n_cases = 0;
    char last_hook[96] = "";
    double s = NAN, ce0 = NAN;
    hook_request h;
    for (const cJSON *c = cJSON_GetObjectItem(g, "cases")->child; c; c = c->next, n_cases++) {
        const char *hook = cJSON_GetObjectItem(c, "hook")->valuestring, *dn = cJSON_GetObjectItem(c, "dir")->valuestring;
        double a = cJSON_GetObjectItem(c, "alpha")->valuedouble;
        if (strcmp(hook, last_hook)) {
            snprintf(last_hook, sizeof last_hook, "%s", hook);
            if (paligemma_hook_parse(m, hook, &h, &err)) fail_msg("%s", err.msg);
            if (rs_steer_pass(m->text, &in, 1, &h, NULL, 0, P - 1, lg0, P - 1, &ce0, P, &s, act, &err)) fail_msg("%s", err.msg);
            assert_true(rs_steer_resumable(&h));
            double sref = cJSON_GetObjectItem(c, "scale")->valuedouble;
            printf("%s: s %.6f (ref %.6f)\n", hook, s, sref);
            assert_true(fabs(s - sref) <= TOL * sref);
        }
        const float *d = !strcmp(dn, "probe") ? dprobe : rnd + (size_t)atoi(dn + 6) * D;
        double ce;
        if (rs_steer_pass(m->text, &in, 1, &h, d, a * s, P - 1, lg, P - 1, &ce, 0, NULL, NULL, &err)) fail_msg("%s", err.msg);
        /* resumed at the hook from the clean activation: bit-identical to the full pass */
        double cef;
        if (rs_steer_pass_from(m->text, &in, 1, &h, act, d, a * s, P - 1, lgf, P - 1, &cef, &err)) fail_msg("%s", err.msg);
        assert_memory_equal(lgf, lg, (size_t)V * sizeof *lg);
        assert_true(cef == ce);
        double got[3] = {rs_log_prob_set(lg, V, ta, na), rs_log_prob_set(lg, V, tb, nb), ce};
        const char *key[3] = {"logp.a", "logp.b", "ce"};
        for (int q = 0; q < 3; q++) {
            double ref = cJSON_GetObjectItem(c, key[q])->valuedouble, e = fabs(got[q] - ref);
            if (e > worst) worst = e;
            if (e > TOL) fail_msg("%s %s alpha %g %s: %.8f vs reference %.8f", hook, dn, a, key[q], got[q], ref);
        }
        if (a == 0) { /* α = 0 is the clean pass exactly */
            assert_memory_equal(lg, lg0, (size_t)V * sizeof *lg);
            assert_true(ce == ce0);
        }
    }
    printf("%d cases, worst |diff| %.3g\n", n_cases, worst);
    assert_int_equal(n_cases, 2 * 3 * 4);
    free(lg);
    free(lg0);
    free(lgf);
    free(act);
    free(rnd);
    free(dprobe);
    free(emb);
    free(mask);
    free(ids);
    free(kinds);
    free(prompt);
    free(suffix);
    free(ta);
    free(tb);
    free(pv);
    st_close(pg);
    paligemma_close(m);
    cJSON_Delete(g);
}

static void test_log_prob_set(void **state) {
    (void)state;
    float z[4] = {0, 1, 2, 3};
    int32_t t[3] = {1, 3, 1};
    double lse = log(1 + exp(1) + exp(2) + exp(3));
    assert_true(fabs(rs_log_prob_set(z, 4, t, 3) - (log(exp(1) + exp(3)) - lse)) < 1e-12);
    assert_true(fabs(rs_log_prob_set(z, 4, t, 1) - (1 - lse)) < 1e-12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dose_golden),
        cmocka_unit_test(test_log_prob_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
