/* Excluded tokens (docs/metrics.md): whitespace-only pieces and the special tokens.
 *  - tok_is_blank / tok_is_excluded on the bundled tiny tokenizer, on pieces named by the
 *    `tokenizers` library for "A cat  on a mat \n" (ids 2 285 488 338 355 339 365 356 338 15:
 *    <bos> A ▁cat ▁ ▁on ▁a ▁m at ▁ <0x0A>);
 *  - extract_gemma2 mean pooling with a tokenizer = the mean of the per-token rows whose
 *    pieces are not blank or special (computed here from the pool-none rows), and without
 *    one = the mean over all but <bos>; --pool-special keeps every row. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/extract.h"
#include "reprshift/gemma2.h"
#include "reprshift/tokenizer.h"

#define MODEL "examples/quickstart/models/gemma2-tiny"

static void test_blank_pieces(void **state) {
    (void)state;
    rs_tokenizer *tok;
    rs_err err;
    if (tok_load(&tok, MODEL "/tokenizer.json", &err)) fail_msg("%s", err.msg);
    int32_t *ids;
    size_t n;
    const char *text = "A cat  on a mat \n";
    if (tok_encode(tok, text, strlen(text), 1, &ids, &n, &err)) fail_msg("%s", err.msg);
    const int32_t want[] = {2, 285, 488, 338, 355, 339, 365, 356, 338, 15};
    const int blank[] = {0, 0, 0, 1, 0, 0, 0, 0, 1, 1};
    const int excluded[] = {1, 0, 0, 1, 0, 0, 0, 0, 1, 1};
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ids[i], want[i]);
        assert_int_equal(tok_is_blank(tok, ids[i]), blank[i]);
        assert_int_equal(tok_is_excluded(tok, ids[i]), excluded[i]);
    }
    assert_int_equal(tok_is_excluded(tok, tok_eos_id(tok)), 1);
    assert_int_equal(tok_is_excluded(tok, tok_pad_id(tok)), 1);
    assert_int_equal(tok_is_blank(tok, -5), 0);
    free(ids);
    tok_free(tok);
}

static void test_mean_pool_skips_blank(void **state) {
    (void)state;
    rs_tokenizer *tok;
    gemma2_model *m;
    rs_err err;
    if (tok_load(&tok, MODEL "/tokenizer.json", &err) || gemma2_open(&m, MODEL, &err)) fail_msg("%s", err.msg);
    int32_t *ids;
    size_t n;
    const char *text = "A cat  on a mat \n";
    if (tok_encode(tok, text, strlen(text), 1, &ids, &n, &err)) fail_msg("%s", err.msg);
    rs_inputs in = {0};
    if (rs_inputs_add(&in, ids, (int64_t)n, NULL, &err)) fail_msg("%s", err.msg);
    hook_request h[1];
    extract_result full = {0}, pooled = {0}, plain = {0}, all = {0};
    struct {
        extract_result *r;
        rs_pool pool;
        const rs_tokenizer *tok;
        int special;
    } runs[] = {{&full, POOL_NONE, NULL, 0}, {&pooled, POOL_MEAN, tok, 0}, {&plain, POOL_MEAN, NULL, 0},
                {&all, POOL_MEAN, tok, 1}};
    for (int k = 0; k < 4; k++) {
        memset(h, 0, sizeof h);
        if (gemma2_hook_parse(&m->cfg, "blocks.1.hook_resid_post", &h[0], &err)) fail_msg("%s", err.msg);
        extract_opts o = {.n_hooks = 1, .hooks = h, .pool = runs[k].pool, .batch_tokens = 512,
                          .blank_tok = runs[k].tok, .pool_special = runs[k].special};
        if (extract_gemma2(m, &in, &o, runs[k].r, NULL, &err)) fail_msg("%s", err.msg);
        hook_requests_free(h, 1);
    }
    int W = full.widths[0];
    const int keep_tok[] = {0, 1, 1, 0, 1, 1, 1, 1, 0, 0}, keep_plain[] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    for (int v = 0; v < 3; v++) {
        const int *keep = v == 0 ? keep_tok : v == 1 ? keep_plain : NULL;
        const extract_result *r = v == 0 ? &pooled : v == 1 ? &plain : &all;
        float *want = calloc((size_t)W, sizeof *want);
        int cnt = 0;
        for (size_t t = 0; t < n; t++) {
            if (keep && !keep[t]) continue;
            for (int d = 0; d < W; d++) want[d] += full.data[0][t * W + d];
            cnt++;
        }
        for (int d = 0; d < W; d++) want[d] /= (float)cnt;
        tu_assert_close_rel(want, r->data[0], (size_t)W, 1e-6, v == 0 ? "blank skipped" : v == 1 ? "no tokenizer" : "all");
        free(want);
    }
    /* the difference is real: skipping the blank rows changes the mean */
    assert_true(tu_max_abs_diff(pooled.data[0], plain.data[0], (size_t)W) > 1e-3);
    extract_result_free(&full);
    extract_result_free(&pooled);
    extract_result_free(&plain);
    extract_result_free(&all);
    rs_inputs_free(&in);
    free(ids);
    gemma2_close(m);
    tok_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blank_pieces),
        cmocka_unit_test(test_mean_pool_skips_blank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
