/* Spliced SAE evaluation vs transformers + sae-lens: next-token CE of the tiny Gemma-2 with
 * layer 1's output left alone, replaced by the sae-lens reconstruction, or zeroed
 * (goldens: tools/reference/gen_splice_goldens.py). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/splice.h"

static double golden(const st_set *g, const char *name) {
    const st_tensor *t = st_get(g, name);
    if (!t) fail_msg("golden %s missing", name);
    double v;
    memcpy(&v, t->data, 8);
    return v;
}

static void check(double got, double want, const char *what) {
    if (!(fabs(got - want) <= 1e-4 * fabs(want))) fail_msg("%s: %.7f vs reference %.7f", what, got, want);
}

static void test_ce_clean_spliced_zero(void **state) {
    (void)state;
    rs_err err = {{0}};
    gemma2_model *m;
    rs_sae *sae;
    st_set *g;
    assert_int_equal(gemma2_open(&m, "tests/fixtures/models/gemma2-tiny-f32", &err), 0);
    if (sae_load(&sae, "tests/fixtures/splice/sae_l1_jumprelu", NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(st_open(&g, "tests/fixtures/splice/splice_golden.safetensors", &err), 0);
    int checked = 0;
    for (int k = 1; k < 4; k++) {
        char name[64];
        snprintf(name, sizeof name, "p%d.ids", k);
        const st_tensor *ids = st_get(g, name);
        assert_non_null(ids);
        int64_t off[2] = {0, ids->numel};
        gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = ids->data};
        for (int all = 0; all < 2; all++) {
            splice_ce r;
            if (splice_ce_eval(m, sae, "blocks.1.hook_resid_post", &b, all, &r, &err)) fail_msg("%s", err.msg);
            const char *tag = all ? "all" : "keepbos";
            char n1[64], n2[64], n3[64];
            snprintf(n1, sizeof n1, "p%d.%s.ce_clean", k, tag);
            snprintf(n2, sizeof n2, "p%d.%s.ce_sae", k, tag);
            snprintf(n3, sizeof n3, "p%d.%s.ce_zero", k, tag);
            check(r.ce_clean, golden(g, n1), n1);
            check(r.ce_spliced, golden(g, n2), n2);
            check(r.ce_zero, golden(g, n3), n3);
            printf("# p%d %s: CE clean %.5f spliced %.5f zero %.5f recovered %.4f\n", k, tag, r.ce_clean,
                   r.ce_spliced, r.ce_zero, r.ce_recovered);
            splice_ce_free(&r);
            checked++;
        }
    }
    assert_int_equal(checked, 6);
    sae_free(sae);
    st_close(g);
    gemma2_close(m);
}

static void test_width_mismatch_is_error(void **state) {
    (void)state;
    rs_err err = {{0}};
    gemma2_model *m;
    rs_sae *sae;
    assert_int_equal(gemma2_open(&m, "tests/fixtures/models/gemma2-tiny-f16", &err), 0); /* D = 32 */
    if (sae_load(&sae, "tests/fixtures/splice/sae_l1_jumprelu", NULL, &err)) fail_msg("%s", err.msg);
    int32_t ids[3] = {2, 5, 6};
    int64_t off[2] = {0, 3};
    gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = ids};
    splice_ce r;
    assert_int_equal(splice_ce_eval(m, sae, "blocks.1.hook_resid_post", &b, 0, &r, &err), -1);
    assert_non_null(strstr(err.msg, "d_in"));
    sae_free(sae);
    gemma2_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ce_clean_spliced_zero),
                                       cmocka_unit_test(test_width_mismatch_is_error)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
