/* Gemma-2 forward pass vs transformers (eager, fp32) goldens recorded by
 * tools/reference/gen_model_fixtures.py: every hook, logits and CE, per prompt and with all
 * prompts packed into one batch. Tolerance: max|diff| <= 1e-4 * max|ref| per hook. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/blas.h"
#include "reprshift/gemma2.h"
#include "reprshift/ops.h"

static const char *MODELS[] = {"gemma2-tiny-f32", "gemma2-tiny-bf16", "gemma2-tiny-f16"};
static const char *SUFFIXES[] = {"hook_resid_pre", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
                                 "hook_mlp_out", "hook_resid_post"};
#define TOL 1e-4

typedef struct {
    gemma2_model *m;
    st_set *g;
    int n_prompts;
} fixture;

/* the goldens' file in the model's folder: golden.safetensors (gen_model_fixtures.py), or
 * golden_long.safetensors (gen_long_goldens.py: prompts of 33, 77 and 150 tokens) */
static const char *g_golden = "golden.safetensors";

static void open_fixture(fixture *f, const char *name) {
    char dir[512], gpath[600];
    rs_err err = {0};
    snprintf(dir, sizeof dir, "tests/fixtures/models/%s", name);
    snprintf(gpath, sizeof gpath, "%s/%s", dir, g_golden);
    if (gemma2_open(&f->m, dir, &err)) fail_msg("%s", err.msg);
    if (st_open(&f->g, gpath, &err)) fail_msg("%s", err.msg);
    f->n_prompts = atoi(st_meta(f->g, "n_prompts"));
    assert_true(f->n_prompts >= 3);
}

static void close_fixture(fixture *f) {
    gemma2_close(f->m);
    st_close(f->g);
}

static const st_tensor *golden(const fixture *f, int p, const char *hook) {
    char name[200];
    snprintf(name, sizeof name, "p%d.%s", p, hook);
    const st_tensor *t = st_get(f->g, name);
    if (!t) fail_msg("golden tensor %s missing", name);
    return t;
}

/* All hook names of the model, in one request array. */
static int all_hooks(const gemma2_model *m, hook_request *h) {
    rs_err err = {0};
    int n = 0;
    char name[96];
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int s = 0; s < 6; s++) {
            snprintf(name, sizeof name, "blocks.%d.%s", l, SUFFIXES[s]);
            if (gemma2_hook_parse(&m->cfg, name, &h[n++], &err)) fail_msg("%s", err.msg);
        }
    if (gemma2_hook_parse(&m->cfg, "ln_final.hook_normalized", &h[n++], &err)) fail_msg("%s", err.msg);
    if (gemma2_hook_parse(&m->cfg, "ln_final.hook_out", &h[n++], &err)) fail_msg("%s", err.msg);
    return n;
}

/* Compare rows [row0, row0+T) of a captured hook with the golden for prompt p. */
static double compare(const fixture *f, int p, const hook_request *h, int row0, int T) {
    const st_tensor *g = golden(f, p, h->name);
    assert_int_equal(g->numel, (int64_t)T * h->width);
    float *ref = st_to_f32_new(g);
    const float *got = h->out + (size_t)row0 * h->width;
    double d = tu_max_abs_diff(ref, got, (size_t)g->numel), mx = tu_max_abs(ref, (size_t)g->numel);
    char label[300];
    snprintf(label, sizeof label, "%s p%d %s", f->m->cfg.vocab_size ? "" : "", p, h->name);
    tu_assert_close_rel(ref, got, (size_t)g->numel, TOL, label);
    free(ref);
    return mx > 0 ? d / mx : d;
}

static void run_model(const char *model, int packed) {
    fixture f;
    open_fixture(&f, model);
    hook_request *h = calloc(512, sizeof *h);
    int nh = all_hooks(f.m, h);
    /* ids of every prompt, packed back to back */
    int32_t *ids = NULL;
    int64_t *off = calloc((size_t)f.n_prompts + 1, sizeof *off);
    for (int p = 0; p < f.n_prompts; p++) {
        const st_tensor *t = golden(&f, p, "ids");
        off[p + 1] = off[p] + t->numel;
        ids = realloc(ids, (size_t)off[p + 1] * sizeof *ids);
        memcpy(ids + off[p], t->data, (size_t)t->numel * 4);
    }
    double worst = 0, worst_kind[HK_PROJECTOR_OUT + 1] = {0}; /* per hook type, for the log */
    rs_err err = {0};
    int npass = packed ? 1 : f.n_prompts;
    for (int pass = 0; pass < npass; pass++) {
        int64_t boff[2] = {0, off[pass + 1] - off[pass]};
        gemma2_batch b = {.n_seqs = packed ? f.n_prompts : 1,
                          .offsets = packed ? off : boff,
                          .ids = packed ? ids : ids + off[pass]};
        int T = (int)b.offsets[b.n_seqs];
        float *final = malloc((size_t)T * f.m->cfg.hidden_size * sizeof(float));
        if (gemma2_forward(f.m, &b, h, nh, final, &err)) fail_msg("%s", err.msg);
        for (int p = packed ? 0 : pass; p < (packed ? f.n_prompts : pass + 1); p++) {
            int row0 = packed ? (int)off[p] : 0, Tp = (int)(off[p + 1] - off[p]);
            for (int k = 0; k < nh; k++) {
                double r = compare(&f, p, &h[k], row0, Tp);
                if (r > worst) worst = r;
                if (r > worst_kind[h[k].id.kind]) worst_kind[h[k].id.kind] = r;
            }
            /* logits and CE */
            int V = f.m->cfg.vocab_size;
            float *logits = malloc((size_t)Tp * V * sizeof(float));
            assert_int_equal(gemma2_logits(f.m, final + (size_t)row0 * f.m->cfg.hidden_size, Tp, logits, NULL), 0);
            float *ref = st_to_f32_new(golden(&f, p, "logits"));
            tu_assert_close_rel(ref, logits, (size_t)Tp * V, TOL, "logits");
            free(ref);
            free(logits);
        }
        double *ce = calloc((size_t)b.n_seqs, sizeof *ce);
        assert_int_equal(gemma2_next_token_ce(f.m, &b, final, ce, &err), 0);
        for (int s = 0; s < b.n_seqs; s++) {
            int p = packed ? s : pass;
            char name[64];
            snprintf(name, sizeof name, "p%d.ce", p);
            const st_tensor *g = st_get(f.g, name);
            if (off[p + 1] - off[p] < 2) { assert_null(g); assert_true(isnan(ce[s])); continue; }
            assert_non_null(g);
            float want;
            st_to_f32(g, &want);
            if (fabs(ce[s] - want) > 1e-4 * fabs(want)) fail_msg("%s ce %.7f vs ref %.7f", model, ce[s], want);
        }
        free(ce);
        free(final);
        hook_requests_free(h, nh);
    }
    printf("# %s (%s): worst hook error %.3g x max|ref| over %d hooks x %d prompts\n", model,
           packed ? "packed batch" : "one at a time", worst, nh, f.n_prompts);
    static const char *kn[] = {"resid_pre", "attn.hook_z", "attn_out", "resid_mid", "mlp_out", "resid_post",
                               "ln_final.hook_normalized", "ln_final.hook_out"};
    printf("#   by hook type:");
    for (int k = 0; k <= HK_LN_FINAL_OUT; k++) printf(" %s %.2g%s", kn[k], worst_kind[k], k < HK_LN_FINAL_OUT ? "," : "\n");
    free(ids);
    free(off);
    free(h);
    close_fixture(&f);
}

static void test_each_model_one_at_a_time(void **s) {
    (void)s;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) run_model(MODELS[i], 0);
}

static void test_each_model_packed_batch(void **s) {
    (void)s;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) run_model(MODELS[i], 1);
}

/* The same parity on the oneDNN route of the fp32 linear layers (include/reprshift/blas.h,
 * RS_SGEMM=onednn): the tolerance does not change with the GEMM. */
static void test_packed_batch_on_onednn(void **s) {
    (void)s;
#ifdef RS_BUILD_HAS_DNNL
    assert_int_equal(rs_sgemm_set_route(RS_SGEMM_ONEDNN), 0);
    assert_int_equal(rs_sgemm_use_onednn(), 1);
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) run_model(MODELS[i], 1);
    assert_int_equal(rs_sgemm_set_route(RS_SGEMM_BLAS), 0);
#else
    assert_int_equal(rs_sgemm_set_route(RS_SGEMM_ONEDNN), -1);
    printf("# this build has no oneDNN: its route is refused (nothing else to compare)\n");
#endif
}

/* Prompts of 33, 77 and 150 tokens (golden_long.safetensors): long enough for the fused fp32
 * attention kernel (blocks of 32 queries; include/reprshift/ops.h op_attn_route) and the
 * causal query blocks of 128, one at a time and packed, on each attention route (the fused one
 * where the CPU has AVX-512): the same tolerance against transformers on both. */
static void test_long_prompts_on_both_attention_routes(void **s) {
    (void)s;
    g_golden = "golden_long.safetensors";
    int routes[2] = {OP_ATTN_ROUTE_BLAS, OP_ATTN_ROUTE_FUSED};
    for (int r = 0; r < 2; r++) {
        if (routes[r] == OP_ATTN_ROUTE_FUSED && !op_attn_fused_available()) {
            assert_int_equal(op_attn_route_set(OP_ATTN_ROUTE_FUSED), -1);
            printf("# the fused attention kernel needs AVX-512: its route is refused here (BLAS route checked)\n");
            continue;
        }
        assert_int_equal(op_attn_route_set(routes[r]), 0);
        printf("# attention route %s\n", op_attn_route_name(op_attn_route()));
        run_model("gemma2-tiny-f32", 0);
        run_model("gemma2-tiny-f32", 1);
    }
    assert_int_equal(op_attn_route_set(OP_ATTN_ROUTE_AUTO), 0);
    g_golden = "golden.safetensors";
}

/* Stopping after the deepest requested hook gives the same values as the full pass. */
static void test_early_exit_matches(void **s) {
    (void)s;
    fixture f;
    open_fixture(&f, "gemma2-tiny-f32");
    rs_err err = {0};
    hook_request h;
    assert_int_equal(gemma2_hook_parse(&f.m->cfg, "blocks.1.hook_resid_post", &h, &err), 0);
    assert_int_equal(gemma2_hooks_depth(f.m, &h, 1), 1);
    const st_tensor *ids = golden(&f, 3, "ids");
    int64_t off[2] = {0, ids->numel};
    gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = ids->data};
    assert_int_equal(gemma2_forward(f.m, &b, &h, 1, NULL, &err), 0);
    compare(&f, 3, &h, 0, (int)ids->numel);
    free(h.out);
    close_fixture(&f);
}

/* gemma2_forward_from(k, resid_pre of block k) reproduces the full pass bit for bit, at
 * every k including n_layers (after the last block). */
static void test_forward_from_is_exact(void **s) {
    (void)s;
    fixture f;
    open_fixture(&f, "gemma2-tiny-bf16");
    rs_err err = {0};
    int64_t off[2] = {0, 0};
    const st_tensor *ids = golden(&f, 2, "ids");
    off[1] = ids->numel;
    gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = ids->data};
    int T = (int)ids->numel, D = f.m->cfg.hidden_size, NL = f.m->cfg.n_layers;
    float *ref = malloc((size_t)T * D * sizeof(float)), *got = malloc((size_t)T * D * sizeof(float));
    for (int k = 0; k <= NL; k++) {
        hook_request h;
        char name[64];
        if (k < NL) snprintf(name, sizeof name, "blocks.%d.hook_resid_pre", k);
        else snprintf(name, sizeof name, "blocks.%d.hook_resid_post", NL - 1);
        assert_int_equal(gemma2_hook_parse(&f.m->cfg, name, &h, &err), 0);
        assert_int_equal(gemma2_forward(f.m, &b, &h, 1, ref, &err), 0);
        assert_int_equal(gemma2_forward_from(f.m, &b, k, h.out, NULL, 0, got, &err), 0);
        assert_memory_equal(ref, got, (size_t)T * D * sizeof(float));
        free(h.out);
    }
    assert_int_equal(gemma2_forward_from(f.m, &b, NL + 1, ref, NULL, 0, got, &err), -1);
    free(ref);
    free(got);
    close_fixture(&f);
}

static void test_resid_identity(void **s) {
    (void)s;
    /* resid_post == resid_pre + attn_out + mlp_out (spec §2), on our own outputs. */
    fixture f;
    open_fixture(&f, "gemma2-tiny-bf16");
    rs_err err = {0};
    hook_request h[4];
    const char *names[4] = {"blocks.2.hook_resid_pre", "blocks.2.hook_attn_out", "blocks.2.hook_mlp_out",
                            "blocks.2.hook_resid_post"};
    for (int i = 0; i < 4; i++) assert_int_equal(gemma2_hook_parse(&f.m->cfg, names[i], &h[i], &err), 0);
    const st_tensor *ids = golden(&f, 2, "ids");
    int64_t off[2] = {0, ids->numel};
    gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = ids->data};
    assert_int_equal(gemma2_forward(f.m, &b, h, 4, NULL, &err), 0);
    size_t n = (size_t)ids->numel * h[0].width;
    for (size_t i = 0; i < n; i++) {
        float sum = (h[0].out[i] + h[1].out[i]) + h[2].out[i];
        assert_true(sum == h[3].out[i]);
    }
    hook_requests_free(h, 4);
    close_fixture(&f);
}

static void test_unknown_hook_lists_valid(void **s) {
    (void)s;
    gemma2_config c;
    rs_err err = {0};
    assert_int_equal(gemma2_config_load("tests/fixtures/models/gemma2-tiny-f32", &c, &err), 0);
    hook_request h;
    assert_int_equal(gemma2_hook_parse(&c, "blocks.4.hook_resid_post", &h, &err), -1); /* 4 layers: 0..3 */
    assert_non_null(strstr(err.msg, "blocks.{0..3}"));
    assert_int_equal(gemma2_hook_parse(&c, "blocks.1.hook_resid_postx", &h, &err), -1);
    assert_int_equal(gemma2_hook_parse(&c, "blocks.01.hook_resid_post", &h, &err), -1);
    assert_int_equal(gemma2_hook_parse(&c, "blocks.1.attn.hook_z", &h, &err), 0);
    assert_int_equal(h.width, 4 * 32);
}

static void test_bad_token_id(void **s) {
    (void)s;
    fixture f;
    open_fixture(&f, "gemma2-tiny-f16");
    int32_t ids[3] = {2, 5, 99999};
    int64_t off[2] = {0, 3};
    gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = ids};
    hook_request h;
    rs_err err = {0};
    assert_int_equal(gemma2_hook_parse(&f.m->cfg, "blocks.0.hook_resid_post", &h, &err), 0);
    assert_int_equal(gemma2_forward(f.m, &b, &h, 1, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "99999"));
    free(h.out);
    close_fixture(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_model_one_at_a_time), cmocka_unit_test(test_each_model_packed_batch),
        cmocka_unit_test(test_packed_batch_on_onednn),
        cmocka_unit_test(test_long_prompts_on_both_attention_routes),
        cmocka_unit_test(test_early_exit_matches),       cmocka_unit_test(test_resid_identity),
        cmocka_unit_test(test_forward_from_is_exact),
        cmocka_unit_test(test_unknown_hook_lists_valid), cmocka_unit_test(test_bad_token_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
