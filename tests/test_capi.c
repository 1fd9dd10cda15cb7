/* The C ABI for bindings (reprshift/capi.h): errors kept per call with their kind, request
 * options and inputs, result buffers against the transformers goldens, cancellation through
 * the progress callback, SAE and shift entry points. The Python package's tests
 * (python/tests, tests/cli_python.sh) cover the same calls through ctypes. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include "reprshift/capi.h"
#include "reprshift/error.h"
#include "reprshift/safetensors.h"

#define GEMMA "tests/fixtures/models/gemma2-tiny-f32"

static void test_errors_and_info(void **s) {
    (void)s;
    rsc_model *m = NULL;
    assert_int_equal(rsc_abi_version(), RSC_ABI_VERSION);
    assert_int_equal(rsc_model_open("/nonexistent/folder", NULL, NULL, NULL, &m), -1);
    assert_null(m);
    assert_non_null(strstr(rsc_last_error(), "/nonexistent/folder"));
    assert_int_not_equal(rsc_last_error_kind(), RS_EOK);
    assert_int_equal(rsc_model_open(GEMMA, NULL, "fp8", NULL, &m), -1);
    assert_int_equal(rsc_last_error_kind(), RS_EINVAL);
    assert_string_equal(rsc_error_kind_name(rsc_last_error_kind()), "EINVAL");
    assert_int_equal(rsc_model_open(GEMMA, NULL, NULL, NULL, &m), 0);
    assert_non_null(strstr(rsc_model_info(m), "\"type\":\"gemma2\""));
    assert_non_null(strstr(rsc_model_info(m), "\"blocks.3.hook_mlp_out\""));
    int32_t *ids;
    int64_t n;
    assert_int_equal(rsc_tokenize(m, "hello", 1, &ids, &n), -1); /* no tokenizer.json in the fixture */
    assert_non_null(strstr(rsc_last_error(), "tokenizer"));
    rsc_request *q;
    assert_int_equal(rsc_request_new(m, &q), 0);
    assert_int_equal(rsc_request_set(q, "pool", "median"), -1);
    assert_int_equal(rsc_request_set(q, "colour", "red"), -1);
    assert_non_null(strstr(rsc_last_error(), "colour"));
    assert_int_equal(rsc_request_set(q, "batch_tokens", "0"), -1);
    assert_int_equal(rsc_request_add_ids(q, NULL, 0), -1);
    assert_int_equal(rsc_request_add_image(q, "x.png", NULL, NULL, 0), -1);
    assert_non_null(strstr(rsc_last_error(), "PaliGemma"));
    rsc_result *r = NULL;
    assert_int_equal(rsc_run(q, &r), -1); /* no inputs */
    int32_t one[2] = {2, 3};
    assert_int_equal(rsc_request_add_ids(q, one, 2), 0);
    assert_int_equal(rsc_run(q, &r), -1); /* no hooks */
    assert_int_equal(rsc_request_set(q, "hooks", "blocks.9.hook_resid_post"), 0);
    assert_int_equal(rsc_run(q, &r), -1);
    assert_int_equal(rsc_last_error_kind(), RS_EINVAL);
    assert_null(r);
    rsc_request_free(q);
    rsc_model_close(m);
}

/* Every prompt of the golden file in one request: rows equal the goldens. */
static void test_run_matches_goldens(void **s) {
    (void)s;
    rs_err err = {0};
    st_set *g;
    if (st_open(&g, GEMMA "/golden.safetensors", &err)) fail_msg("%s", err.msg);
    rsc_model *m;
    rsc_request *q;
    assert_int_equal(rsc_model_open(GEMMA, NULL, NULL, NULL, &m), 0);
    assert_int_equal(rsc_request_new(m, &q), 0);
    assert_int_equal(rsc_request_set(q, "hooks", "blocks.2.hook_resid_post,blocks.1.attn.hook_z"), 0);
    int np = atoi(st_meta(g, "n_prompts"));
    for (int p = 0; p < np; p++) {
        char name[64];
        snprintf(name, sizeof name, "p%d.ids", p);
        const st_tensor *t = st_get(g, name);
        int32_t *ids = malloc((size_t)t->numel * sizeof *ids); /* mapped tensor data need not be aligned */
        memcpy(ids, t->data, (size_t)t->numel * sizeof *ids);
        assert_int_equal(rsc_request_add_ids(q, ids, t->numel), 0);
        free(ids);
    }
    rsc_result *r;
    if (rsc_run(q, &r)) fail_msg("%s", rsc_last_error());
    assert_int_equal(rsc_result_n_tensors(r), 2);
    assert_string_equal(rsc_result_name(r, 1), "blocks.1.attn.hook_z");
    assert_null(rsc_result_name(r, 2));
    assert_string_equal(rsc_result_pool(r), "none");
    int64_t n_off, n_tok, nk;
    const int64_t *off = rsc_result_offsets(r, &n_off);
    rsc_result_token_ids(r, &n_tok);
    assert_int_equal(n_off, np + 1);
    assert_int_equal(off[np], n_tok);
    assert_null(rsc_result_token_kinds(r, &nk));
    for (int i = 0; i < 2; i++) {
        int64_t rows;
        int w;
        float *x = rsc_result_tensor(r, i, &rows, &w);
        assert_int_equal(rows, n_tok);
        for (int p = 0; p < np; p++) {
            char name[160];
            snprintf(name, sizeof name, "p%d.%s", p, rsc_result_name(r, i));
            const st_tensor *t = st_get(g, name);
            assert_int_equal(t->numel, (off[p + 1] - off[p]) * w);
            float *ref = st_to_f32_new(t);
            tu_assert_close_rel(ref, x + off[p] * w, (size_t)t->numel, 1e-4, name);
            free(ref);
        }
    }
    rsc_result_free(r);
    rsc_request_free(q);
    rsc_model_close(m);
    st_close(g);
}

static int calls;
static int stop_at_second(void *ctx, const char *label, int64_t done, int64_t total) {
    (void)ctx;
    (void)label;
    (void)done;
    (void)total;
    return ++calls >= 2;
}

static void test_cancel(void **s) {
    (void)s;
    rsc_model *m;
    rsc_request *q;
    assert_int_equal(rsc_model_open(GEMMA, NULL, NULL, NULL, &m), 0);
    assert_int_equal(rsc_request_new(m, &q), 0);
    assert_int_equal(rsc_request_set(q, "hooks", "blocks.0.hook_resid_post"), 0);
    assert_int_equal(rsc_request_set(q, "batch_tokens", "4"), 0);
    int32_t ids[4] = {2, 5, 6, 7};
    for (int i = 0; i < 6; i++) assert_int_equal(rsc_request_add_ids(q, ids, 4), 0);
    rsc_set_progress(stop_at_second, NULL);
    rsc_result *r = NULL;
    assert_int_equal(rsc_run(q, &r), -1);
    assert_int_equal(rsc_last_error_kind(), RS_ECANCELLED);
    assert_non_null(strstr(rsc_last_error(), "cancelled after 1 of 6"));
    assert_null(r);
    rsc_set_progress(NULL, NULL);
    assert_int_equal(rsc_request_set(q, "hooks", "blocks.0.hook_resid_post,blocks.1.hook_resid_post,"
                                                 "blocks.2.hook_resid_post"), 0);
    assert_int_equal(rsc_run(q, &r), 0); /* usable again */
    /* a layer sweep of shift stops between layers */
    char *js = NULL;
    calls = 0;
    rsc_set_progress(stop_at_second, NULL);
    assert_int_equal(rsc_shift_results(r, r, "layers=0,1,2\nhook=blocks.{layer}.hook_resid_post\nn_boot=5\nn_perm=0",
                                       &js), -1);
    rsc_set_progress(NULL, NULL);
    assert_int_equal(rsc_last_error_kind(), RS_ECANCELLED);
    assert_non_null(strstr(rsc_last_error(), "cancelled after 1 of 3 layers"));
    assert_null(js);
    assert_int_equal(rsc_shift_results(r, r, "layers=0,1,2\nn_boot=5\nn_perm=0", &js), 0);
    assert_non_null(strstr(js, "\"blocks.2.hook_resid_post\""));
    rsc_free(js);
    int64_t n;
    rsc_result_offsets(r, &n);
    assert_int_equal(n, 7);
    rsc_result_free(r);
    rsc_request_free(q);
    rsc_model_close(m);
}

static void test_sae_and_shift_errors(void **s) {
    (void)s;
    rsc_sae *sae;
    assert_int_equal(rsc_sae_load("/no/such/sae", NULL, &sae), -1);
    assert_non_null(strstr(rsc_last_error(), "/no/such/sae"));
    assert_int_equal(rsc_sae_load("examples/quickstart/models/sae/blocks.0.hook_resid_post", NULL, &sae), 0);
    char *js;
    assert_int_equal(rsc_sae_info(sae, &js), 0);
    assert_non_null(strstr(js, "\"d_in\":64"));
    rsc_free(js);
    float x[64] = {0}, f[256], y[64];
    x[3] = 1.5f;
    assert_int_equal(rsc_sae_encode(sae, x, 1, f), 0);
    assert_int_equal(rsc_sae_decode(sae, f, x, 1, y), 0);
    rsc_sae_free(sae);
    assert_int_equal(rsc_shift("/no/a", "/no/b", "n_boot=10\nbogus=1", &js), -1);
    assert_non_null(strstr(rsc_last_error(), "bogus"));
    assert_int_equal(rsc_shift("/no/a", "/no/b", "n_boot=10", &js), -1);
    assert_int_equal(rsc_last_error_kind(), RS_EIO);
    assert_null(js);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_and_info),
        cmocka_unit_test(test_run_matches_goldens),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_sae_and_shift_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
