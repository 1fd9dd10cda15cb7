/* A lone blocks.L.hook_resid_pre request (L > 0) stops the forward pass after block L-1; the
 * hook must still fire there (it did not: the capture stayed NULL and `reprshift extract
 * --hook blocks.2.hook_resid_pre` crashed). Decoder: against the transformers goldens of the
 * tiny Gemma-2; vision tower: against vision.blocks.L-1.hook_resid_post of the same pass. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/paligemma.h"

static void test_decoder_lone_resid_pre(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    st_set *g;
    if (gemma2_open(&m, "tests/fixtures/models/gemma2-tiny-f32", &err)) fail_msg("%s", err.msg);
    if (st_open(&g, "tests/fixtures/models/gemma2-tiny-f32/golden.safetensors", &err)) fail_msg("%s", err.msg);
    const st_tensor *ids = st_get(g, "p1.ids");
    assert_non_null(ids);
    int64_t off[2] = {0, ids->numel};
    gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = ids->data};
    for (int L = 0; L < m->cfg.n_layers; L++) {
        char name[96];
        snprintf(name, sizeof name, "blocks.%d.hook_resid_pre", L);
        hook_request r;
        if (gemma2_hook_parse(&m->cfg, name, &r, &err)) fail_msg("%s", err.msg);
        r.capture = 1;
        r.out = NULL;
        if (gemma2_forward(m, &b, &r, 1, NULL, &err)) fail_msg("%s", err.msg);
        if (!r.out) fail_msg("%s alone was not captured", name);
        char gname[128];
        snprintf(gname, sizeof gname, "p1.%s", name);
        const st_tensor *want = st_get(g, gname);
        assert_non_null(want);
        tu_assert_close_rel(want->data, r.out, (size_t)want->numel, 1e-5, name);
        hook_requests_free(&r, 1);
    }
    st_close(g);
    gemma2_close(m);
}

static void test_vision_lone_resid_pre(void **state) {
    (void)state;
    rs_err err = {0};
    paligemma_model *m;
    st_set *g;
    if (paligemma_open(&m, "tests/fixtures/models/paligemma-tiny-f32", &err)) fail_msg("%s", err.msg);
    if (st_open(&g, "tests/fixtures/models/paligemma-tiny-f32/golden.safetensors", &err)) fail_msg("%s", err.msg);
    const st_tensor *ids = st_get(g, "p0.ids"), *px = st_get(g, "p0.pixel_values");
    assert_non_null(ids);
    assert_non_null(px);
    int prefix = (int)ids->numel;
    int64_t off[2] = {0, ids->numel};
    paligemma_batch b = {.n_seqs = 1, .offsets = off, .ids = ids->data, .prefix_len = &prefix, .n_images = 1,
                         .pixel_values = px->data};
    hook_request lone, pair[2];
    if (paligemma_hook_parse(m, "vision.blocks.1.hook_resid_pre", &lone, &err) ||
        paligemma_hook_parse(m, "vision.blocks.1.hook_resid_pre", &pair[0], &err) ||
        paligemma_hook_parse(m, "vision.blocks.0.hook_resid_post", &pair[1], &err)) fail_msg("%s", err.msg);
    lone.capture = pair[0].capture = pair[1].capture = 1;
    lone.out = pair[0].out = pair[1].out = NULL;
    if (paligemma_forward(m, &b, &lone, 1, NULL, &err) || paligemma_forward(m, &b, pair, 2, NULL, &err))
        fail_msg("%s", err.msg);
    if (!lone.out) fail_msg("vision.blocks.1.hook_resid_pre alone was not captured");
    assert_non_null(pair[1].out);
    size_t n = (size_t)m->vision->n_patches * lone.width;
    assert_true(tu_max_abs_diff(pair[1].out, lone.out, n) == 0);
    assert_true(tu_max_abs_diff(pair[0].out, lone.out, n) == 0);
    hook_requests_free(&lone, 1);
    hook_requests_free(pair, 2);
    st_close(g);
    paligemma_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decoder_lone_resid_pre),
        cmocka_unit_test(test_vision_lone_resid_pre),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
