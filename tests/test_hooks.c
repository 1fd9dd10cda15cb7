/* The hook identity {tower, kind, layer}: every valid TransformerLens name of a tiny
 * PaliGemma config (2 decoder blocks, 2 vision blocks) round-trips through the parser and
 * the formatter; bad names, absent towers and out-of-range layers are refused with the valid
 * names listed; widths, depth and the pipeline's block index. The expected names are
 * written out here from the TransformerLens spelling (docs/models.md), not from the tables. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include "reprshift/hooks.h"
#include "reprshift/model_config.h"

static const char *DEC_SITES[] = {"hook_resid_pre", "hook_resid_mid", "hook_resid_post",
                                  "hook_attn_out",  "hook_mlp_out",   "attn.hook_z"};
static const char *VIS_SITES[] = {"hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out",
                                  "hook_resid_post"};

static paligemma_config load_cfg(void) {
    paligemma_config c;
    rs_err err = {0};
    if (paligemma_config_load("tests/fixtures/models/paligemma-tiny-f32", &c, &err)) fail_msg("%s", err.msg);
    assert_int_equal(c.text.n_layers, 2);
    assert_int_equal(c.vision.n_layers, 2);
    return c;
}

/* The expected canonical names of the tiny PaliGemma, in any order. */
static int expected_names(char names[][64], int cap) {
    int n = 0;
    for (int L = 0; L < 2; L++)
        for (int i = 0; i < 6; i++) snprintf(names[n++], 64, "blocks.%d.%s", L, DEC_SITES[i]);
    snprintf(names[n++], 64, "ln_final.hook_normalized");
    snprintf(names[n++], 64, "ln_final.hook_out");
    for (int L = 0; L < 2; L++)
        for (int i = 0; i < 5; i++) snprintf(names[n++], 64, "vision.blocks.%d.%s", L, VIS_SITES[i]);
    snprintf(names[n++], 64, "vision.ln_post");
    snprintf(names[n++], 64, "projector.hook_out");
    assert_true(n <= cap);
    return n;
}

static void test_round_trip_every_name(void **state) {
    (void)state;
    paligemma_config c = load_cfg();
    rs_hook_space s = rs_hook_space_paligemma(&c);
    char want[64][64];
    int n_want = expected_names(want, 64);
    rs_hook all[64];
    int n = rs_hook_enumerate(&s, all, 64);
    assert_int_equal(n, n_want);
    int seen[64] = {0};
    for (int i = 0; i < n; i++) {
        char buf[96];
        assert_int_equal(rs_hook_format(&all[i], buf, sizeof buf), 0);
        int j = 0;
        while (j < n_want && strcmp(want[j], buf)) j++;
        if (j == n_want) fail_msg("unexpected name %s", buf);
        assert_int_equal(seen[j]++, 0);
        rs_hook back;
        rs_err err = {0};
        if (rs_hook_parse(&s, buf, &back, &err)) fail_msg("%s: %s", buf, err.msg);
        assert_int_equal(back.tower, all[i].tower);
        assert_int_equal(back.kind, all[i].kind);
        assert_int_equal(back.layer, all[i].layer);
        /* the request keeps the name as given and the width of its tower */
        hook_request r;
        assert_int_equal(hook_request_parse(&s, buf, &r, &err), 0);
        assert_string_equal(r.name, buf);
        assert_int_equal(r.capture, 1);
        int w = !strncmp(buf, "vision.", 7) ? c.vision.hidden_size
                : !strncmp(buf, "projector.", 10) ? c.projection_dim
                : strstr(buf, "attn.hook_z")      ? c.text.n_heads * c.text.head_dim
                                                  : c.text.hidden_size;
        assert_int_equal(r.width, w);
    }
}

static void test_identities(void **state) {
    (void)state;
    paligemma_config c = load_cfg();
    rs_hook_space s = rs_hook_space_paligemma(&c);
    rs_err err = {0};
    rs_hook h;
    assert_int_equal(rs_hook_parse(&s, "blocks.1.hook_resid_post", &h, &err), 0);
    assert_int_equal(h.tower, RS_TOWER_DECODER);
    assert_int_equal(h.kind, HK_RESID_POST);
    assert_int_equal(h.layer, 1);
    assert_int_equal(rs_hook_parse(&s, "vision.blocks.1.hook_resid_post", &h, &err), 0);
    assert_int_equal(h.tower, RS_TOWER_VISION);
    assert_int_equal(h.kind, HK_RESID_POST);
    assert_int_equal(h.layer, 1);
    assert_int_equal(rs_hook_parse(&s, "projector.hook_out", &h, &err), 0);
    assert_int_equal(h.tower, RS_TOWER_PROJECTOR);
    assert_int_equal(h.kind, HK_PROJECTOR_OUT);
    assert_int_equal(h.layer, -1);
    /* the embedding aliases: blocks.0.hook_resid_pre of their tower, name kept in requests */
    char buf[96];
    assert_int_equal(rs_hook_parse(&s, "hook_embed", &h, &err), 0);
    assert_int_equal(rs_hook_format(&h, buf, sizeof buf), 0);
    assert_string_equal(buf, "blocks.0.hook_resid_pre");
    assert_int_equal(rs_hook_parse(&s, "vision.hook_embed", &h, &err), 0);
    assert_int_equal(rs_hook_format(&h, buf, sizeof buf), 0);
    assert_string_equal(buf, "vision.blocks.0.hook_resid_pre");
    hook_request r;
    assert_int_equal(hook_request_parse(&s, "hook_embed", &r, &err), 0);
    assert_string_equal(r.name, "hook_embed");
    /* formatting: no such hook, or too small a buffer */
    rs_hook bad = {RS_TOWER_PROJECTOR, HK_RESID_POST, 0};
    assert_int_equal(rs_hook_format(&bad, buf, sizeof buf), -1);
    rs_hook z = {RS_TOWER_VISION, HK_ATTN_Z, 0}; /* the vision tower has no attn.hook_z */
    assert_int_equal(rs_hook_format(&z, buf, sizeof buf), -1);
    rs_hook ok = {RS_TOWER_DECODER, HK_RESID_POST, 12};
    assert_int_equal(rs_hook_format(&ok, buf, 10), -1);
    assert_int_equal(rs_hook_format(&ok, buf, sizeof buf), 0);
    assert_string_equal(buf, "blocks.12.hook_resid_post");
}

static void expect_bad(const rs_hook_space *s, const char *name, const char *why, const char *listed) {
    rs_err err = {0};
    rs_hook h;
    hook_request r;
    assert_int_equal(rs_hook_parse(s, name, &h, &err), -1);
    printf("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "unknown hook"));
    assert_int_equal(err.kind, RS_EINVAL);
    assert_non_null(strstr(err.msg, name));
    if (why) assert_non_null(strstr(err.msg, why));
    assert_non_null(strstr(err.msg, "valid hooks for this model: "));
    assert_non_null(strstr(err.msg, listed));
    assert_int_equal(hook_request_parse(s, name, &r, &err), -1);
}

static void test_bad_names_list_valid(void **state) {
    (void)state;
    paligemma_config c = load_cfg();
    rs_hook_space pg = rs_hook_space_paligemma(&c), dec = rs_hook_space_gemma2(&c.text),
                  vis = rs_hook_space_siglip(&c.vision, c.projection_dim);
    const char *DEC_LIST = "blocks.{0..1}.{hook_resid_pre, hook_resid_mid, hook_resid_post, hook_attn_out, "
                           "hook_mlp_out, attn.hook_z}, hook_embed, ln_final.hook_normalized, ln_final.hook_out";
    const char *VIS_LIST = "vision.blocks.{0..1}.{hook_resid_pre, hook_attn_out, hook_resid_mid, hook_mlp_out, "
                           "hook_resid_post}, vision.hook_embed, vision.ln_post, projector.hook_out";
    const char *bad[] = {"",
                         "resid_post",
                         "blocks.1.hook_resid_postx",
                         "blocks.01.hook_resid_post",
                         "blocks.-1.hook_resid_post",
                         "blocks.+1.hook_resid_post",
                         "blocks..hook_resid_post",
                         "blocks.1",
                         "blocks.99999999999999999999.hook_resid_post",
                         "vision.blocks.1.attn.hook_z",
                         "vision.ln_final.hook_out",
                         "projector.blocks.0.hook_resid_post",
                         "ln_post",
                         "Blocks.1.hook_resid_post"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_bad(&pg, bad[i], NULL, DEC_LIST);
        expect_bad(&pg, bad[i], NULL, VIS_LIST);
    }
    /* layer out of range, per tower */
    expect_bad(&pg, "blocks.2.hook_resid_post", "layer 2 is out of range", DEC_LIST);
    expect_bad(&pg, "vision.blocks.2.hook_mlp_out", "layer 2 is out of range", VIS_LIST);
    expect_bad(&dec, "blocks.7.attn.hook_z", "blocks 0..1", DEC_LIST);
    /* a tower the model lacks */
    expect_bad(&dec, "vision.ln_post", "no vision tower", DEC_LIST);
    expect_bad(&dec, "projector.hook_out", "no projector", DEC_LIST);
    expect_bad(&vis, "blocks.0.hook_resid_post", "no decoder", VIS_LIST);
    expect_bad(&vis, "hook_embed", "no decoder", VIS_LIST);
    rs_err err = {0};
    rs_hook h;
    assert_int_equal(rs_hook_parse(&dec, "vision.ln_post", &h, &err), -1);
    assert_null(strstr(err.msg, "vision.blocks")); /* lists only what the model has */
    /* too long for a request's name */
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    hook_request r;
    assert_int_equal(hook_request_parse(&pg, longname, &r, &err), -1);
    assert_non_null(strstr(err.msg, "valid hooks for this model"));
}

static void test_names_only(void **state) {
    (void)state;
    rs_hook h;
    rs_err err = {0};
    /* without a model: any layer, any tower */
    assert_int_equal(rs_hook_parse(NULL, "blocks.25.hook_resid_post", &h, &err), 0);
    assert_int_equal(h.layer, 25);
    assert_int_equal(rs_hook_parse(NULL, "vision.blocks.26.hook_resid_post", &h, &err), 0);
    assert_int_equal(h.tower, RS_TOWER_VISION);
    assert_int_equal(rs_hook_parse(NULL, "blocks.1.hook_resid_postx", &h, &err), -1);
    /* the pipeline's block index: only blocks.L.* decoder names */
    assert_int_equal(rs_hook_block_index("blocks.12.hook_resid_post"), 12);
    assert_int_equal(rs_hook_block_index("blocks.0.attn.hook_z"), 0);
    assert_int_equal(rs_hook_block_index("hook_embed"), -1);
    assert_int_equal(rs_hook_block_index("ln_final.hook_out"), -1);
    assert_int_equal(rs_hook_block_index("vision.blocks.3.hook_resid_post"), -1);
    assert_int_equal(rs_hook_block_index("projector.hook_out"), -1);
    assert_int_equal(rs_hook_block_index("blocks.3.nonsense"), -1);
}

static void test_depth_and_fire(void **state) {
    (void)state;
    paligemma_config c = load_cfg();
    rs_hook_space s = rs_hook_space_paligemma(&c);
    rs_err err = {0};
    hook_request h[3];
    assert_int_equal(hook_request_parse(&s, "blocks.1.hook_resid_pre", &h[0], &err), 0);
    assert_int_equal(hook_request_parse(&s, "vision.blocks.1.hook_resid_post", &h[1], &err), 0);
    assert_int_equal(hook_request_parse(&s, "projector.hook_out", &h[2], &err), 0);
    assert_int_equal(hook_depth(h, 3, RS_TOWER_DECODER, 2), 0);  /* resid_pre of block 1: after block 0 */
    assert_int_equal(hook_depth(h, 3, RS_TOWER_VISION, 2), 1);
    assert_int_equal(hook_depth(h, 3, RS_TOWER_PROJECTOR, 0), 0); /* outside the blocks: n_layers */
    assert_int_equal(hook_depth(h, 1, RS_TOWER_VISION, 2), -2);   /* none on that tower */
    assert_int_equal(hook_request_parse(&s, "ln_final.hook_out", &h[0], &err), 0);
    assert_int_equal(hook_depth(h, 1, RS_TOWER_DECODER, 2), 2);
    /* fire matches tower + kind + layer: a decoder resid_post at layer 1 is not the vision one */
    float x[2 * 64];
    for (int i = 0; i < 2 * 64; i++) x[i] = (float)i;
    assert_int_equal(hook_fire(h, 3, RS_TOWER_DECODER, HK_RESID_POST, 1, x, 2, &err), 0);
    for (int i = 0; i < 3; i++) assert_null(h[i].out);
    assert_int_equal(hook_fire(h, 3, RS_TOWER_VISION, HK_RESID_POST, 1, x, 2, &err), 0);
    assert_null(h[0].out);
    assert_non_null(h[1].out);
    assert_null(h[2].out);
    assert_memory_equal(h[1].out, x, 2 * (size_t)c.vision.hidden_size * sizeof(float));
    hook_requests_free(h, 3);
    assert_null(h[1].out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_name), cmocka_unit_test(test_identities),
        cmocka_unit_test(test_bad_names_list_valid),  cmocka_unit_test(test_names_only),
        cmocka_unit_test(test_depth_and_fire),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
