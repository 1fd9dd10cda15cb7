/* SigLIP preprocessing as each of transformers 5's two SigLIP image processors does it,
 * against goldens computed by the processors themselves (tools/reference/
 * gen_processor_goldens.py -> tests/fixtures/images/processors/):
 *   RS_IMAGE_PROCESSOR_PIL          = SiglipImageProcessorPil
 *   RS_IMAGE_PROCESSOR_TORCHVISION  = SiglipImageProcessor (torchvision backend, CPU)
 * Committed synthetic images (gradients, noise, edges, odd sizes, L, RGBA, extreme aspect
 * ratios) always run; every real image of the shared data folder runs when it is there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "reprshift/config.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/image.h"
#include "reprshift/paligemma.h"
#include "reprshift/safetensors.h"
#include "testutil.h"

#define FIX "tests/fixtures/images/"

static cJSON *load_json(const char *path) {
    char *buf = NULL;
    size_t len = 0;
    rs_err err;
    if (rs_read_file(path, 64u << 20, &buf, &len, &err)) fail_msg("%s", err.msg);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) fail_msg("%s: bad JSON", path);
    return j;
}

static uint32_t crc_bytes(const void *p, size_t n) {
    return (uint32_t)crc32(0L, (const Bytef *)p, (uInt)n);
}

static uint32_t json_u32(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("golden lacks %s", key);
    return (uint32_t)v->valuedouble;
}

/* The image a case names: committed fixture or a file of the shared data folder. */
static int load_case_image(const cJSON *c, rs_image *img) {
    const char *file = cJSON_GetObjectItemCaseSensitive(c, "file")->valuestring;
    int shared = cJSON_GetObjectItemCaseSensitive(c, "shared")->valueint;
    char path[4096];
    if (shared) snprintf(path, sizeof path, "%s%s", tu_shared("data/"), file);
    else snprintf(path, sizeof path, FIX "%s", file);
    rs_err err;
    if (rs_image_load(path, img, &err)) fail_msg("%s", err.msg);
    return 0;
}

typedef struct {
    int cases, bad_u8[2], bad_pv[2], both_differ;
    long long values;
} tally;

/* Every case of processors.json whose "shared" flag is `shared`: both processors' u8 and
 * float32 outputs bit-identical to the goldens (CRC-32), plus the stored samples. */
static void run_cases(int shared, tally *t) {
    cJSON *j = load_json(FIX "processors/processors.json");
    const cJSON *it;
    static const char *names[2] = {"pil", "torchvision"};
    static const rs_image_processor procs[2] = {RS_IMAGE_PROCESSOR_PIL, RS_IMAGE_PROCESSOR_TORCHVISION};
    rs_image img = {0};
    const char *loaded = NULL;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "cases")) {
        if (cJSON_GetObjectItemCaseSensitive(it, "shared")->valueint != shared) continue;
        const char *file = cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring;
        if (!loaded || strcmp(loaded, file)) {
            rs_image_free(&img);
            load_case_image(it, &img);
            loaded = file;
            assert_int_equal(img.w, cJSON_GetObjectItemCaseSensitive(it, "w")->valueint);
            assert_int_equal(img.h, cJSON_GetObjectItemCaseSensitive(it, "h")->valueint);
        }
        int S = cJSON_GetObjectItemCaseSensitive(it, "size")->valueint;
        size_t n = (size_t)S * S * 3;
        uint8_t *u8[2] = {malloc(n), malloc(n)};
        float *pv = malloc(n * sizeof *pv);
        assert_non_null(u8[0]);
        assert_non_null(u8[1]);
        assert_non_null(pv);
        for (int k = 0; k < 2; k++) {
            rs_err err;
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(it, names[k]);
            if (rs_siglip_preprocess_with(&img, S, procs[k], u8[k], pv, &err)) fail_msg("%s", err.msg);
            if (crc_bytes(u8[k], n) != json_u32(g, "u8_crc32")) {
                t->bad_u8[k]++;
                print_message("%s %s S=%d: resized pixels differ from the processor's\n", names[k], file, S);
            }
            if (crc_bytes(pv, n * sizeof *pv) != json_u32(g, "pv_crc32")) {
                t->bad_pv[k]++;
                print_message("%s %s S=%d: pixel_values differ from the processor's\n", names[k], file, S);
            }
            const cJSON *smp;
            cJSON_ArrayForEach(smp, cJSON_GetObjectItemCaseSensitive(g, "samples")) {
                int c = cJSON_GetArrayItem(smp, 0)->valueint, y = cJSON_GetArrayItem(smp, 1)->valueint,
                    x = cJSON_GetArrayItem(smp, 2)->valueint;
                assert_true(pv[(size_t)c * S * S + (size_t)y * S + x] == (float)cJSON_GetArrayItem(smp, 3)->valuedouble);
            }
            /* A stored full output: count differing values (0 expected). */
            const cJSON *png = cJSON_GetObjectItemCaseSensitive(g, "u8_png");
            if (cJSON_IsString(png)) {
                rs_image ref;
                char path[512];
                snprintf(path, sizeof path, FIX "%s", png->valuestring);
                if (rs_image_load(path, &ref, &err)) fail_msg("%s", err.msg);
                assert_int_equal(ref.w, S);
                assert_int_equal(ref.h, S);
                size_t diff = 0;
                for (size_t i = 0; i < n; i++) diff += ref.rgb[i] != u8[k][i];
                rs_image_free(&ref);
                if (diff) fail_msg("%s %s: %zu of %zu values differ from %s", names[k], file, diff, n, path);
            }
        }
        /* The goldens say how many values the two processors disagree on; so must we. */
        size_t d = 0;
        for (size_t i = 0; i < n; i++) d += u8[0][i] != u8[1][i];
        assert_int_equal((long long)d, (long long)cJSON_GetObjectItemCaseSensitive(it, "u8_values_differing")->valuedouble);
        t->both_differ += d > 0;
        t->cases++;
        t->values += (long long)n;
        free(u8[0]);
        free(u8[1]);
        free(pv);
    }
    rs_image_free(&img);
    cJSON_Delete(j);
}

/* tvF.resize(uint8, (H, W), BICUBIC, antialias=True) at non-square sizes (one axis only,
 * both axes, up and down): CRC-32 of the HWC bytes. */
static void run_resizes(int shared, int *n_out, int *bad_out) {
    cJSON *j = load_json(FIX "processors/processors.json");
    const cJSON *it, *r;
    int n = 0, bad = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "resizes")) {
        if (cJSON_GetObjectItemCaseSensitive(it, "shared")->valueint != shared) continue;
        rs_image img = {0};
        load_case_image(it, &img);
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(it, "resizes")) {
            int W = cJSON_GetArrayItem(r, 0)->valueint, H = cJSON_GetArrayItem(r, 1)->valueint;
            uint32_t want = (uint32_t)cJSON_GetArrayItem(r, 2)->valuedouble;
            rs_image out;
            rs_err err;
            if (rs_image_resize_bicubic_torch(&img, W, H, &out, &err)) fail_msg("%s", err.msg);
            if (crc_bytes(out.rgb, (size_t)W * H * 3) != want) {
                bad++;
                print_message("%s %dx%d -> %dx%d differs from torchvision\n",
                              cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring, img.w, img.h, W, H);
            }
            rs_image_free(&out);
            n++;
        }
        rs_image_free(&img);
    }
    cJSON_Delete(j);
    *n_out = n;
    *bad_out = bad;
}

static void report(const char *what, const tally *t) {
    print_message("%s: %d cases, %lld u8 values per processor; mismatching cases pil u8 %d pv %d, "
                  "torchvision u8 %d pv %d; the processors differ in %d cases\n",
                  what, t->cases, t->values, t->bad_u8[0], t->bad_pv[0], t->bad_u8[1], t->bad_pv[1],
                  t->both_differ);
    assert_int_equal(t->bad_u8[0] + t->bad_pv[0] + t->bad_u8[1] + t->bad_pv[1], 0);
}

static void test_committed_images_match_both_processors(void **state) {
    (void)state;
    tally t = {0};
    run_cases(0, &t);
    report("committed images", &t);
    assert_true(t.cases >= 24);     /* 8 images x 3 sizes */
    assert_true(t.both_differ > 0); /* the option matters on these inputs */
    int n, bad;
    run_resizes(0, &n, &bad);
    print_message("committed images: %d non-square torch resizes, %d differ\n", n, bad);
    assert_true(n >= 25);
    assert_int_equal(bad, 0);
}

static void test_shared_images_match_both_processors(void **state) {
    (void)state;
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    tally t = {0};
    run_cases(1, &t);
    report("shared images", &t);
    assert_true(t.cases >= 3 * 150);
    int n, bad;
    run_resizes(1, &n, &bad);
    print_message("shared images: %d non-square torch resizes, %d differ\n", n, bad);
    assert_true(n >= 4 * 150);
    assert_int_equal(bad, 0);
}

/* Hand-checkable properties of the torch resize and the processor API. */
static void test_api_and_edge_cases(void **state) {
    (void)state;
    rs_image_processor p = RS_IMAGE_PROCESSOR_PIL;
    assert_int_equal(rs_image_processor_parse("torchvision", &p), 0);
    assert_int_equal(p, RS_IMAGE_PROCESSOR_TORCHVISION);
    assert_int_equal(rs_image_processor_parse("pil", &p), 0);
    assert_int_equal(p, RS_IMAGE_PROCESSOR_PIL);
    assert_int_equal(rs_image_processor_parse("PIL", &p), -1);
    assert_int_equal(rs_image_processor_parse("fast", &p), -1);
    assert_int_equal(rs_image_processor_parse(NULL, &p), -1);
    assert_string_equal(rs_image_processor_name(RS_IMAGE_PROCESSOR_TORCHVISION), "torchvision");
    assert_string_equal(rs_image_processor_class(RS_IMAGE_PROCESSOR_TORCHVISION), "SiglipImageProcessor");
    assert_string_equal(rs_image_processor_class(RS_IMAGE_PROCESSOR_PIL), "SiglipImageProcessorPil");

    rs_image img, out;
    rs_err err;
    assert_int_equal(rs_image_alloc(&img, 5, 3, &err), 0);
    for (int i = 0; i < 5 * 3 * 3; i++) img.rgb[i] = (uint8_t)(i * 37 % 256);
    /* Same size: a copy. */
    assert_int_equal(rs_image_resize_bicubic_torch(&img, 5, 3, &out, &err), 0);
    assert_memory_equal(out.rgb, img.rgb, 45);
    rs_image_free(&out);
    /* A constant image stays constant (weights sum to 2^precision up to rounding). */
    memset(img.rgb, 200, 45);
    assert_int_equal(rs_image_resize_bicubic_torch(&img, 11, 2, &out, &err), 0);
    for (int i = 0; i < 11 * 2 * 3; i++) assert_int_equal(out.rgb[i], 200);
    rs_image_free(&out);
    /* 1x1 output works here (torch 2.15's AVX kernel asserts on it; its generic kernel
     * gives the mean-weighted value, which is 200 for a constant image). */
    assert_int_equal(rs_image_resize_bicubic_torch(&img, 1, 1, &out, &err), 0);
    assert_int_equal(out.rgb[0], 200);
    rs_image_free(&out);
    /* Bad sizes and processors are errors, not crashes. */
    assert_int_equal(rs_image_resize_bicubic_torch(&img, 0, 4, &out, &err), -1);
    float pv[3 * 4 * 4];
    uint8_t u8[3 * 4 * 4];
    assert_int_equal(rs_siglip_preprocess_with(&img, 4, (rs_image_processor)7, u8, pv, &err), -1);
    assert_non_null(strstr(err.msg, "unknown image processor"));
    assert_int_equal(rs_siglip_preprocess_with(&img, 0, RS_IMAGE_PROCESSOR_TORCHVISION, u8, pv, &err), -1);
    /* Normalisation constants: level 0 -> -1, 255 -> 1, 128 differs in the last bit between
     * the two processors' formulas ((x/255 - 0.5)/0.5 in PIL vs (x - 127.5)/127.5). */
    memset(img.rgb, 0, 45);
    assert_int_equal(rs_siglip_preprocess_with(&img, 4, RS_IMAGE_PROCESSOR_TORCHVISION, u8, pv, &err), 0);
    assert_true(pv[0] == -1.0f);
    memset(img.rgb, 128, 45);
    float a[48], b[48];
    assert_int_equal(rs_siglip_preprocess_with(&img, 4, RS_IMAGE_PROCESSOR_TORCHVISION, NULL, a, &err), 0);
    assert_int_equal(rs_siglip_preprocess_with(&img, 4, RS_IMAGE_PROCESSOR_PIL, NULL, b, &err), 0);
    assert_true(a[0] == (128.0f - 127.5f) / 127.5f);
    assert_true(b[0] == ((float)(128 * (1.0 / 255.0)) - 0.5f) / 0.5f);
    rs_image_free(&img);
}

/* The run config's "image_processor" key: default pil, torchvision accepted, anything else
 * an error naming the key and the choices; the resolved config shows the value. */
static void test_config_key(void **state) {
    (void)state;
#define CFG_BASE "{\"output_dir\": \"out\", \"models\": {\"llm\": \"/m/llm\", \"vlm\": \"/m/vlm\"}, " \
                 "\"dataset\": {\"manifest\": \"/d/m.csv\"}"
    rs_config *c = NULL;
    rs_err err = {0};
    if (rs_config_parse(CFG_BASE "}", "/base", "cfg.json", &c, &err)) fail_msg("%s", err.msg);
    assert_int_equal(c->image_processor, RS_IMAGE_PROCESSOR_PIL);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->resolved, "image_processor")), "pil");
    rs_config_free(c);
    if (rs_config_parse(CFG_BASE ", \"image_processor\": \"torchvision\"}", "/base", "cfg.json", &c, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(c->image_processor, RS_IMAGE_PROCESSOR_TORCHVISION);
    rs_config_free(c);
    c = NULL;
    assert_int_equal(rs_config_parse(CFG_BASE ", \"image_processor\": \"fast\"}", "/base", "cfg.json", &c, &err), -1);
    assert_null(c);
    if (!strstr(err.msg, "image_processor") || !strstr(err.msg, "torchvision"))
        fail_msg("error \"%s\" lacks the key or the choices", err.msg);
    assert_int_equal(rs_config_parse(CFG_BASE ", \"image_processor\": 1}", "/base", "cfg.json", &c, &err), -1);
#undef CFG_BASE
}

/* End to end through extract_paligemma (extract_opts.image_processor): the tiny PaliGemma
 * fixture's vision.ln_post on committed images equals transformers' (fp32 eager) on the
 * same processor's pixel_values within the parity tolerance, and on the hard-edged image
 * the other processor's result is far outside it (the option matters). */
static void test_extract_vision_per_processor(void **state) {
    (void)state;
    static const char *imgs[] = {"noise_301x199.png", "edges_640x480.png", "tall_17x900.png", "gray_L_513x257.png"};
    static const char *names[2] = {"pil", "torchvision"};
    static const rs_image_processor procs[2] = {RS_IMAGE_PROCESSOR_PIL, RS_IMAGE_PROCESSOR_TORCHVISION};
    const double tol = 1e-4;
    paligemma_model *m = NULL;
    st_set *g = NULL;
    rs_err err = {0};
    if (paligemma_open(&m, "tests/fixtures/models/paligemma-tiny-f32", &err)) fail_msg("%s", err.msg);
    if (st_open(&g, FIX "processors/vision_ln_post.safetensors", &err)) fail_msg("%s", err.msg);
    int N = m->vision->n_patches, Dv = m->cfg.vision.hidden_size;
    size_t n = (size_t)N * Dv;
    double worst_own = 0, edges_cross = 0;
    for (int i = 0; i < 4; i++) {
        char path[256];
        snprintf(path, sizeof path, FIX "processors/%s", imgs[i]);
        for (int k = 0; k < 2; k++) {
            pg_inputs in = {0};
            int32_t prompt[2] = {5, 7}, *ids;
            uint8_t *kinds;
            int64_t len;
            int P;
            assert_int_equal(paligemma_build_input(m, 1, prompt, 2, NULL, 0, &ids, &kinds, &len, &P, &err), 0);
            assert_int_equal(pg_inputs_add(&in, ids, kinds, len, P, path, NULL, NULL, &err), 0);
            free(ids);
            free(kinds);
            hook_request h;
            assert_int_equal(paligemma_hook_parse(m, "vision.ln_post", &h, &err), 0);
            extract_opts o = {.n_hooks = 1, .hooks = &h, .pool = POOL_NONE, .batch_tokens = 64,
                              .image_processor = procs[k]};
            pg_extract_result r;
            if (extract_paligemma(m, &in, &o, &r, NULL, &err)) fail_msg("%s", err.msg);
            const pg_tensor *v = NULL;
            for (int t = 0; t < r.n_tensors; t++)
                if (!strcmp(r.t[t].name, "vision.ln_post")) v = &r.t[t];
            assert_non_null(v);
            assert_int_equal(v->rows, N);
            for (int q = 0; q < 2; q++) {
                char gname[128];
                snprintf(gname, sizeof gname, "%s.%s", imgs[i], names[q]);
                const st_tensor *gt = st_get(g, gname);
                if (!gt) fail_msg("golden %s missing", gname);
                float *ref = st_to_f32_new(gt);
                assert_non_null(ref);
                double rel = tu_max_abs_diff(ref, v->data, n) / tu_max_abs(ref, n);
                if (q == k) {
                    if (rel > worst_own) worst_own = rel;
                    tu_assert_close_rel(ref, v->data, n, tol, gname);
                } else if (i == 1 && rel > edges_cross) {
                    edges_cross = rel;
                }
                free(ref);
            }
            pg_extract_result_free(&r);
            pg_inputs_free(&in);
        }
    }
    print_message("vision.ln_post: worst relative error vs the same processor %.2e; edges image vs the other "
                  "processor %.2e (tolerance %.0e)\n", worst_own, edges_cross, tol);
    assert_true(edges_cross > 10 * tol);
    st_close(g);
    paligemma_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_and_edge_cases),
        cmocka_unit_test(test_config_key),
        cmocka_unit_test(test_extract_vision_per_processor),
        cmocka_unit_test(test_committed_images_match_both_processors),
        cmocka_unit_test(test_shared_images_match_both_processors),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
