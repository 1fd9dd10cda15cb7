/* SigLIP vision tower vs transformers 5.24 goldens (tools/reference/gen_model_fixtures.py):
 * every vision hook from the golden pixel_values, one image at a time and all images packed
 * into one call; the C preprocessing (decode + Pillow bicubic + rescale/normalise) vs the
 * processor's pixels; splices between a residual add and the next LayerNorm (the fused
 * add_layer_norm); tensor-name layout detection; config/tensor shape mismatches.
 * Tolerance: max|diff| <= 1e-4 * max|ref| per hook. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/image.h"
#include "reprshift/siglip.h"

static const char *MODELS[] = {"paligemma-tiny-f32", "paligemma-tiny-bf16", "paligemma-tiny-model-prefix"};
static const char *LAYOUT_PREFIX[] = {"vision_tower.", "vision_tower.vision_model.", "model.vision_tower.vision_model."};
static const char *BLOCK_HOOKS[] = {"hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"};
#define TOL 1e-4

typedef struct {
    paligemma_config cfg;
    st_set *w, *g;
    siglip_model *m;
    int n_runs;
} fixture;

static void open_fixture(fixture *f, int idx) {
    char dir[512], gpath[600];
    rs_err err = {0};
    snprintf(dir, sizeof dir, "tests/fixtures/models/%s", MODELS[idx]);
    snprintf(gpath, sizeof gpath, "%s/golden.safetensors", dir);
    if (paligemma_config_load(dir, &f->cfg, &err)) fail_msg("%s", err.msg);
    if (st_open(&f->w, dir, &err)) fail_msg("%s", err.msg);
    if (st_open(&f->g, gpath, &err)) fail_msg("%s", err.msg);
    char prefix[64];
    if (siglip_find_prefix(f->w, prefix, sizeof prefix, &err)) fail_msg("%s", err.msg);
    assert_string_equal(prefix, LAYOUT_PREFIX[idx]);
    if (siglip_from_weights(&f->m, &f->cfg.vision, f->w, prefix, &err)) fail_msg("%s", err.msg);
    f->n_runs = atoi(st_meta(f->g, "n_prompts"));
    assert_true(f->n_runs >= 2);
}

static void close_fixture(fixture *f) {
    siglip_close(f->m);
    st_close(f->w);
    st_close(f->g);
}

static const st_tensor *golden(const fixture *f, int k, const char *what) {
    char name[200];
    snprintf(name, sizeof name, "p%d.%s", k, what);
    const st_tensor *t = st_get(f->g, name);
    if (!t) fail_msg("golden tensor %s missing", name);
    return t;
}

static int all_vision_hooks(const fixture *f, hook_request *h) {
    rs_err err = {0};
    char name[96];
    int n = 0;
    if (siglip_hook_parse(&f->cfg.vision, f->cfg.projection_dim, "vision.hook_embed", &h[n++], &err))
        fail_msg("%s", err.msg);
    for (int l = 0; l < f->cfg.vision.n_layers; l++)
        for (int s = 0; s < 5; s++) {
            snprintf(name, sizeof name, "vision.blocks.%d.%s", l, BLOCK_HOOKS[s]);
            if (siglip_hook_parse(&f->cfg.vision, f->cfg.projection_dim, name, &h[n++], &err)) fail_msg("%s", err.msg);
        }
    if (siglip_hook_parse(&f->cfg.vision, f->cfg.projection_dim, "vision.ln_post", &h[n++], &err))
        fail_msg("%s", err.msg);
    return n;
}

/* Relative error of rows [row0, row0+N) of a capture against golden p{k}.<what>. */
static double compare(const fixture *f, int k, const char *what, const float *got, const char *model) {
    const st_tensor *g = golden(f, k, what);
    float *ref = st_to_f32_new(g);
    double d = tu_max_abs_diff(ref, got, (size_t)g->numel), mx = tu_max_abs(ref, (size_t)g->numel);
    char label[300];
    snprintf(label, sizeof label, "%s p%d %s", model, k, what);
    tu_assert_close_rel(ref, got, (size_t)g->numel, TOL, label);
    free(ref);
    return mx > 0 ? d / mx : d;
}

static void test_vision_hooks(void **s) {
    (void)s;
    for (int mi = 0; mi < 3; mi++) {
        fixture f;
        open_fixture(&f, mi);
        int N = f.m->n_patches, D = f.cfg.vision.hidden_size;
        size_t npix = (size_t)3 * f.cfg.vision.image_size * f.cfg.vision.image_size;
        hook_request h[64];
        int nh = all_vision_hooks(&f, h);
        rs_err err = {0};
        double worst = 0;
        /* one image at a time */
        for (int k = 0; k < f.n_runs; k++) {
            const st_tensor *px = golden(&f, k, "pixel_values");
            assert_int_equal(px->numel, (int64_t)npix);
            float *pv = st_to_f32_new(px);
            float *out = malloc((size_t)N * D * sizeof(float));
            if (siglip_forward(f.m, pv, 1, h, nh, out, &err)) fail_msg("%s", err.msg);
            free(pv);
            for (int i = 0; i < nh; i++) {
                double r = compare(&f, k, h[i].name, h[i].out, MODELS[mi]);
                if (r > worst) worst = r;
            }
            /* out == the vision.ln_post capture */
            assert_memory_equal(out, h[nh - 1].out, (size_t)N * D * sizeof(float));
            free(out);
            hook_requests_free(h, nh);
        }
        /* all images packed into one call */
        float *pix = malloc(npix * f.n_runs * sizeof(float));
        for (int k = 0; k < f.n_runs; k++) st_to_f32(golden(&f, k, "pixel_values"), pix + k * npix);
        if (siglip_forward(f.m, pix, f.n_runs, h, nh, NULL, &err)) fail_msg("%s", err.msg);
        for (int k = 0; k < f.n_runs; k++)
            for (int i = 0; i < nh; i++) {
                double r = compare(&f, k, h[i].name, h[i].out + (size_t)k * N * h[i].width, MODELS[mi]);
                if (r > worst) worst = r;
            }
        hook_requests_free(h, nh);
        free(pix);
        printf("# %s: worst vision hook error %.3g x max|ref| (%d hooks x %d images, single + packed)\n",
               MODELS[mi], worst, nh, f.n_runs);
        close_fixture(&f);
    }
}

/* Decode + resize + normalise in C vs the processor's golden pixels, then the tower on the
 * C pixels vs the golden post-LN output. */
static void test_preprocess_vs_processor(void **s) {
    (void)s;
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    for (int mi = 0; mi < 3; mi++) {
        fixture f;
        open_fixture(&f, mi);
        cJSON *runs = cJSON_Parse(st_meta(f.g, "runs"));
        assert_non_null(runs);
        int S = f.cfg.vision.image_size, N = f.m->n_patches, D = f.cfg.vision.hidden_size;
        for (int k = 0; k < f.n_runs; k++) {
            const cJSON *run = cJSON_GetArrayItem(runs, k);
            const char *rel = cJSON_GetObjectItem(run, "image")->valuestring;
            rs_image img = {0};
            rs_err err = {0};
            char path[600];
            snprintf(path, sizeof path, "data/%s", rel); /* runs[] paths are relative to ../shared/data */
            if (rs_image_load(tu_shared(path), &img, &err)) fail_msg("%s", err.msg);
            uint8_t *u8 = malloc((size_t)S * S * 3);
            float *pv = malloc((size_t)3 * S * S * sizeof(float));
            if (rs_siglip_preprocess(&img, S, u8, pv, &err)) fail_msg("%s", err.msg);
            const st_tensor *gu = golden(&f, k, "pixels_u8");
            assert_int_equal(gu->numel, (int64_t)S * S * 3);
            const uint8_t *ref = gu->data;
            int maxd = 0;
            long ndiff = 0;
            for (long i = 0; i < (long)S * S * 3; i++) {
                int d = abs((int)ref[i] - (int)u8[i]);
                if (d > maxd) maxd = d;
                ndiff += d != 0;
            }
            assert_true(maxd <= 1);
            /* pixel_values: at most one 8-bit level (2/255 after normalisation) */
            float *gpv = st_to_f32_new(golden(&f, k, "pixel_values"));
            double pd = tu_max_abs_diff(gpv, pv, (size_t)3 * S * S);
            assert_true(pd <= 2.0 / 255 + 1e-6);
            /* identical pixels must give identical processor values */
            if (ndiff == 0) assert_memory_equal(gpv, pv, (size_t)3 * S * S * sizeof(float));
            float *out = malloc((size_t)N * D * sizeof(float));
            if (siglip_forward(f.m, pv, 1, NULL, 0, out, &err)) fail_msg("%s", err.msg);
            float *gl = st_to_f32_new(golden(&f, k, "vision.ln_post"));
            double vd = tu_max_abs_diff(gl, out, (size_t)N * D) / tu_max_abs(gl, (size_t)N * D);
            if (ndiff == 0) tu_assert_close_rel(gl, out, (size_t)N * D, TOL, "ln_post from C pixels");
            printf("# %s p%d %s: %ld/%d resized values differ (max %d level), pixel_values max|diff| %.3g, "
                   "ln_post from C pixels %.3g x max|ref|\n",
                   MODELS[mi], k, rel, ndiff, S * S * 3, maxd, pd, vd);
            free(gl);
            free(out);
            free(gpv);
            free(u8);
            free(pv);
            rs_image_free(&img);
        }
        cJSON_Delete(runs);
        close_fixture(&f);
    }
}

static void test_early_exit(void **s) {
    (void)s;
    fixture f;
    open_fixture(&f, 2); /* 3 vision layers */
    rs_err err = {0};
    hook_request h;
    assert_int_equal(siglip_hook_parse(&f.cfg.vision, f.cfg.projection_dim, "vision.blocks.1.hook_mlp_out", &h, &err), 0);
    assert_int_equal(siglip_hooks_depth(f.m, &h, 1), 1);
    float *pv = st_to_f32_new(golden(&f, 1, "pixel_values"));
    assert_int_equal(siglip_forward(f.m, pv, 1, &h, 1, NULL, &err), 0);
    free(pv);
    compare(&f, 1, "vision.blocks.1.hook_mlp_out", h.out, MODELS[2]);
    free(h.out);
    /* only the embedding: no layer runs */
    assert_int_equal(siglip_hook_parse(&f.cfg.vision, f.cfg.projection_dim, "vision.hook_embed", &h, &err), 0);
    assert_int_equal(siglip_hooks_depth(f.m, &h, 1), -1);
    pv = st_to_f32_new(golden(&f, 0, "pixel_values"));
    assert_int_equal(siglip_forward(f.m, pv, 1, &h, 1, NULL, &err), 0);
    free(pv);
    compare(&f, 0, "vision.hook_embed", h.out, MODELS[2]);
    free(h.out);
    close_fixture(&f);
}

/* A splice between a residual add and the LayerNorm after it (resid_mid; resid_post of the last
 * block, before the post-LayerNorm) must reach that LayerNorm: the tower runs the add and the
 * norm as one kernel (add_layer_norm) only where no splice sits between them. The splice here
 * overwrites the stream with Z, and what follows it is recomputed from Z with the kernels
 * themselves, so the captures must match bit for bit. A no-op splice at every such point takes
 * the unfused path everywhere: the output must be the fused run's, bit for bit. */
static void set_stream(void *ctx, float *x, int T, int width) { memcpy(x, ctx, (size_t)T * width * sizeof(float)); }
static void no_op(void *ctx, float *x, int T, int width) { (void)ctx, (void)x, (void)T, (void)width; }

static void test_splice_reaches_the_next_norm(void **s) {
    (void)s;
    fixture f;
    open_fixture(&f, 0);
    const siglip_config *c = &f.cfg.vision;
    int N = f.m->n_patches, D = c->hidden_size, F = c->intermediate_size, L = c->n_layers;
    float eps = (float)c->layer_norm_eps;
    const rs_backend *be = f.m->be;
    rs_err err = {0};
    float *pv = st_to_f32_new(golden(&f, 0, "pixel_values"));
    float *Z = malloc((size_t)N * D * sizeof(float)), *x = malloc((size_t)N * D * sizeof(float));
    float *mlp = malloc((size_t)N * F * sizeof(float)), *want = malloc((size_t)N * D * sizeof(float));
    float *scratch = malloc((size_t)D * F * sizeof(float));
    assert_true(pv && Z && x && mlp && want && scratch);
    for (size_t i = 0; i < (size_t)N * D; i++) Z[i] = (float)((i * 2654435761u) % 2001) / 500.0f - 2.0f;
    char name[96];
    hook_request h[2];
    /* 1. Z at blocks.0.hook_resid_mid: blocks.0.hook_mlp_out = fc2(gelu(fc1(LN2(Z)))) */
    assert_int_equal(siglip_hook_parse(c, f.cfg.projection_dim, "vision.blocks.0.hook_resid_mid", &h[0], &err), 0);
    assert_int_equal(siglip_hook_parse(c, f.cfg.projection_dim, "vision.blocks.0.hook_mlp_out", &h[1], &err), 0);
    h[0].capture = 0, h[0].splice = set_stream, h[0].splice_ctx = Z;
    if (siglip_forward(f.m, pv, 1, h, 2, NULL, &err)) fail_msg("%s", err.msg);
    const siglip_layer *l0 = &f.m->layers[0];
    be->layer_norm(x, Z, l0->ln2_w, l0->ln2_b, eps, N, D);
    be->linear_gelu(mlp, x, l0->fc1, l0->fc1_bias, N, D, F, scratch);
    be->linear(want, mlp, l0->fc2, l0->fc2_bias, N, F, D, scratch);
    assert_memory_equal(h[1].out, want, (size_t)N * D * sizeof(float));
    hook_requests_free(h, 2);
    /* 2. Z at the last block's hook_resid_post: vision.ln_post = post-LayerNorm(Z) */
    snprintf(name, sizeof name, "vision.blocks.%d.hook_resid_post", L - 1);
    assert_int_equal(siglip_hook_parse(c, f.cfg.projection_dim, name, &h[0], &err), 0);
    assert_int_equal(siglip_hook_parse(c, f.cfg.projection_dim, "vision.ln_post", &h[1], &err), 0);
    h[0].capture = 0, h[0].splice = set_stream, h[0].splice_ctx = Z;
    if (siglip_forward(f.m, pv, 1, h, 2, NULL, &err)) fail_msg("%s", err.msg);
    be->layer_norm(want, Z, f.m->post_w, f.m->post_b, eps, N, D);
    assert_memory_equal(h[1].out, want, (size_t)N * D * sizeof(float));
    hook_requests_free(h, 2);
    /* 3. no-op splices at every resid_mid and resid_post: the same output as the fused run */
    hook_request *hs = calloc((size_t)2 * L, sizeof *hs);
    assert_non_null(hs);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "vision.blocks.%d.hook_resid_%s", l, k ? "post" : "mid");
            assert_int_equal(siglip_hook_parse(c, f.cfg.projection_dim, name, &hs[2 * l + k], &err), 0);
            hs[2 * l + k].capture = 0, hs[2 * l + k].splice = no_op;
        }
    if (siglip_forward(f.m, pv, 1, NULL, 0, want, &err)) fail_msg("%s", err.msg);
    if (siglip_forward(f.m, pv, 1, hs, 2 * L, x, &err)) fail_msg("%s", err.msg);
    assert_memory_equal(x, want, (size_t)N * D * sizeof(float));
    free(hs), free(pv), free(Z), free(x), free(mlp), free(want), free(scratch);
    close_fixture(&f);
}

static void test_hook_names(void **s) {
    (void)s;
    fixture f;
    open_fixture(&f, 0);
    rs_err err = {0};
    hook_request h;
    assert_int_equal(siglip_hook_parse(&f.cfg.vision, 64, "vision.blocks.2.hook_resid_post", &h, &err), -1);
    assert_non_null(strstr(err.msg, "vision.blocks.{0..1}"));
    assert_int_equal(siglip_hook_parse(&f.cfg.vision, 64, "vision.blocks.1.attn.hook_q", &h, &err), -1);
    assert_int_equal(siglip_hook_parse(&f.cfg.vision, 64, "vision.blocks.01.hook_mlp_out", &h, &err), -1);
    assert_int_equal(siglip_hook_parse(&f.cfg.vision, 64, "projector.hook_out", &h, &err), 0);
    assert_int_equal(h.width, 64);
    assert_int_equal(siglip_hook_parse(&f.cfg.vision, 64, "vision.blocks.1.hook_resid_post", &h, &err), 0);
    assert_int_equal(h.id.tower, RS_TOWER_VISION);
    assert_int_equal(h.id.kind, HK_RESID_POST);
    assert_int_equal(h.width, 32);
    close_fixture(&f);
}

/* A config that disagrees with the tensors is an error naming the tensor, never a crash. */
static void test_shape_mismatch(void **s) {
    (void)s;
    fixture f;
    open_fixture(&f, 0);
    rs_err err = {0};
    siglip_model *m = NULL;
    siglip_config c = f.cfg.vision;
    c.image_size = 42; /* 9 patches, the file has 4 position embeddings */
    assert_int_equal(siglip_from_weights(&m, &c, f.w, "vision_tower.", &err), -1);
    assert_null(m);
    assert_non_null(strstr(err.msg, "position_embedding"));
    c = f.cfg.vision;
    c.hidden_size = 48;
    assert_int_equal(siglip_from_weights(&m, &c, f.w, "vision_tower.", &err), -1);
    assert_non_null(strstr(err.msg, "patch_embedding.weight"));
    c = f.cfg.vision;
    c.intermediate_size = 65;
    assert_int_equal(siglip_from_weights(&m, &c, f.w, "vision_tower.", &err), -1);
    assert_non_null(strstr(err.msg, "mlp.fc1.weight"));
    c = f.cfg.vision;
    c.n_layers = 3;
    assert_int_equal(siglip_from_weights(&m, &c, f.w, "vision_tower.", &err), -1);
    assert_non_null(strstr(err.msg, "encoder.layers.2."));
    c = f.cfg.vision;
    c.n_layers = 1;
    assert_int_equal(siglip_from_weights(&m, &c, f.w, "vision_tower.", &err), -1);
    assert_non_null(strstr(err.msg, "more vision layers"));
    assert_int_equal(siglip_from_weights(&m, &f.cfg.vision, f.w, "vision_tower.vision_model.", &err), -1);
    assert_non_null(strstr(err.msg, "vision_tower.vision_model.embeddings.patch_embedding.weight"));
    close_fixture(&f);
    /* a weight set with no tower at all */
    st_set *g;
    assert_int_equal(st_open(&g, "tests/fixtures/models/gemma2-tiny-f32", &err), 0);
    char prefix[64];
    assert_int_equal(siglip_find_prefix(g, prefix, sizeof prefix, &err), -1);
    assert_non_null(strstr(err.msg, "no vision tower"));
    st_close(g);
}

/* siglip_keep_f32_weights: the BF16 tower's seven kinds of matrix become F32 copies and every
 * output stays bit-identical, on the fp32 and the bf16 backend; a second call changes nothing. */
static void test_keep_f32(void **s) {
    (void)s;
    for (int mi = 0; mi < 2; mi++) {
        fixture f;
        open_fixture(&f, mi);
        int N = f.m->n_patches, D = f.cfg.vision.hidden_size, L = f.cfg.vision.n_layers;
        size_t npix = (size_t)3 * f.cfg.vision.image_size * f.cfg.vision.image_size, no = (size_t)f.n_runs * N * D;
        float *pix = malloc(npix * f.n_runs * sizeof(float));
        for (int k = 0; k < f.n_runs; k++) st_to_f32(golden(&f, k, "pixel_values"), pix + k * npix);
        float *o[2][2];
        rs_err err = {0};
        const st_tensor *q0 = f.m->layers[0].q_proj;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                assert_int_equal(siglip_keep_f32_weights(f.m, &err), 0);
                int nv = f.m->n_f32_views;
                assert_int_equal(siglip_keep_f32_weights(f.m, &err), 0); /* idempotent */
                assert_int_equal(f.m->n_f32_views, nv);
                if (mi == 1) { /* paligemma-tiny-bf16: every matrix was BF16 */
                    assert_int_equal(nv, 1 + 6 * L);
                    assert_int_equal(q0->dtype, RS_DT_BF16);
                }
                for (int l = 0; l < L; l++) {
                    const siglip_layer *ly = &f.m->layers[l];
                    const st_tensor *mats[] = {ly->q_proj, ly->k_proj, ly->v_proj, ly->out_proj, ly->fc1, ly->fc2};
                    for (int i = 0; i < 6; i++) assert_int_equal(mats[i]->dtype, RS_DT_F32);
                }
                assert_int_equal(f.m->patch_w->dtype, RS_DT_F32);
            }
            for (int bf = 0; bf < 2; bf++) {
                f.m->be = bf ? rs_backend_cpu_bf16() : rs_backend_cpu();
                o[pass][bf] = malloc(no * sizeof(float));
                if (siglip_forward(f.m, pix, f.n_runs, NULL, 0, o[pass][bf], &err)) fail_msg("%s", err.msg);
            }
        }
        for (int bf = 0; bf < 2; bf++) {
            assert_memory_equal(o[0][bf], o[1][bf], no * sizeof(float));
            free(o[0][bf]), free(o[1][bf]);
        }
        free(pix);
        close_fixture(&f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vision_hooks), cmocka_unit_test(test_preprocess_vs_processor),
        cmocka_unit_test(test_early_exit),   cmocka_unit_test(test_splice_reaches_the_next_norm),
        cmocka_unit_test(test_hook_names),
        cmocka_unit_test(test_shape_mismatch), cmocka_unit_test(test_keep_f32),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
