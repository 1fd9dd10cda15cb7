/* Image decoding, Pillow bicubic resize and SigLIP preprocessing against goldens computed
 * by Pillow 13 / transformers' SiglipImageProcessorPil (tools/reference/gen_image_goldens.py,
 * fixtures in tests/fixtures/images). Every real image in ../shared/data is checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "reprshift/fileio.h"
#include "reprshift/image.h"
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
    assert_non_null(v);
    return (uint32_t)v->valuedouble;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void load_shared(const char *rel, rs_image *img) {
    char path[4096];
    snprintf(path, sizeof path, "%s", tu_shared("data/"));
    strncat(path, rel, sizeof path - strlen(path) - 1);
    rs_err err;
    if (rs_image_load(path, img, &err)) fail_msg("%s", err.msg);
}

/* Every real image decodes to exactly Pillow's convert("RGB") bytes (CRC-32 + samples);
 * the files Pillow cannot open fail here too, naming the file. */
static void test_decode_real_images_match_pillow(void **state) {
    (void)state;
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    cJSON *j = load_json(FIX "decode.json");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "images"), *it;
    int n = 0, bad = 0, errors = 0;
    double t0 = now_s();
    long long pixels = 0;
    cJSON_ArrayForEach(it, arr) {
        const char *rel = cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring;
        char path[4096];
        snprintf(path, sizeof path, "%s%s", tu_shared("data/"), rel);
        rs_image img;
        rs_err err;
        int rc = rs_image_load(path, &img, &err);
        if (cJSON_GetObjectItemCaseSensitive(it, "error")) {
            errors++;
            if (rc == 0) {
                print_error("%s: decoded but Pillow fails\n", rel);
                bad++;
                rs_image_free(&img);
            } else if (!strstr(err.msg, path)) {
                print_error("%s: error does not name the file: %s\n", rel, err.msg);
                bad++;
            }
            continue;
        }
        if (rc) {
            print_error("%s\n", err.msg);
            bad++;
            continue;
        }
        n++;
        pixels += (long long)img.w * img.h;
        int w = cJSON_GetObjectItemCaseSensitive(it, "w")->valueint;
        int h = cJSON_GetObjectItemCaseSensitive(it, "h")->valueint;
        uint32_t want = json_u32(it, "crc32");
        uint32_t got = img.w == w && img.h == h ? crc_bytes(img.rgb, (size_t)w * h * 3) : 0;
        if (img.w != w || img.h != h || got != want) {
            print_error("%s: %dx%d crc %08x, Pillow %dx%d crc %08x\n", rel, img.w, img.h, got, w, h, want);
            bad++;
        } else {
            const cJSON *s;
            cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(it, "samples")) {
                int x = cJSON_GetArrayItem(s, 0)->valueint, y = cJSON_GetArrayItem(s, 1)->valueint;
                for (int c = 0; c < 3; c++)
                    assert_int_equal(img.rgb[((size_t)y * w + x) * 3 + c], cJSON_GetArrayItem(s, 2 + c)->valueint);
            }
        }
        rs_image_free(&img);
    }
    double dt = now_s() - t0;
    print_message("decode: %d images identical to Pillow (%d mismatching), %d expected failures; "
                  "%.2f s, %.1f Mpixel/s\n", n - bad, bad, errors, dt, pixels / dt / 1e6);
    assert_true(n >= 180);
    assert_int_equal(errors, 2);
    assert_int_equal(bad, 0);
    cJSON_Delete(j);
}

/* Synthetic PNGs: every colour type and bit depth, palette + tRNS, 16-bit, Adam7. */
static void test_decode_png_variants_match_pillow(void **state) {
    (void)state;
    cJSON *j = load_json(FIX "png.json");
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "cases")) {
        char path[512];
        snprintf(path, sizeof path, FIX "png/%s.png", it->string);
        rs_image img;
        rs_err err;
        if (rs_image_load(path, &img, &err)) fail_msg("%s", err.msg);
        int w = cJSON_GetObjectItemCaseSensitive(it, "w")->valueint;
        int h = cJSON_GetObjectItemCaseSensitive(it, "h")->valueint;
        const char *hex = cJSON_GetObjectItemCaseSensitive(it, "rgb_hex")->valuestring;
        assert_int_equal(img.w, w);
        assert_int_equal(img.h, h);
        int mism = 0;
        for (int i = 0; i < w * h * 3; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            if (img.rgb[i] != v) mism++;
        }
        if (mism)
            print_error("%s (Pillow mode %s): %d of %d values differ\n", it->string,
                        cJSON_GetObjectItemCaseSensitive(it, "mode")->valuestring, mism, w * h * 3);
        assert_int_equal(mism, 0);
        rs_image_free(&img);
        n++;
    }
    assert_int_equal(n, 21);
    cJSON_Delete(j);
}

/* Corrupt, truncated, empty, zero-size, oversized and non-image files: an error that names
 * the file, never a crash or a partial image. */
static void test_bad_inputs_fail_cleanly(void **state) {
    (void)state;
    static const struct {
        const char *path, *needle;
    } cases[] = {
        {FIX "bad/empty.jpg", "empty"},
        {FIX "bad/not_an_image.png", "unsupported image format"},
        {FIX "bad/truncated.png", "truncated"},
        {FIX "bad/zero_width.png", "zero size"},
        {FIX "bad/huge.png", "limit"},
        {FIX "bad/garbage.jpg", "JPEG"},
        {FIX "bad/rocket_cut.jpg", "truncated"},
        {FIX "bad/progressive_cut.jpg", "truncated"},
        {FIX "bad/no_such_file.jpg", "cannot open"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rs_image img = {1, 1, (uint8_t *)&img};
        rs_err err;
        assert_int_equal(rs_image_load(cases[i].path, &img, &err), -1);
        assert_null(img.rgb);
        if (!strstr(err.msg, cases[i].path) || !strstr(err.msg, cases[i].needle))
            fail_msg("%s: unexpected message: %s", cases[i].path, err.msg);
    }
    /* The two truncated files in the shared data (Pillow: "image file is truncated"). */
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    const char *shared[] = {"data/images/skimage/truncated.jpg",
                            "data/images/cameratrapai/african_elephants_truncated_file.jpg"};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s", tu_shared(shared[i]));
        rs_image img;
        rs_err err;
        assert_int_equal(rs_image_load(path, &img, &err), -1);
        assert_non_null(strstr(err.msg, path));
        assert_non_null(strstr(err.msg, "truncated"));
    }
    /* Zero-size / oversized allocations and resizes are refused. */
    rs_image img;
    rs_err err;
    assert_int_equal(rs_image_alloc(&img, 0, 5, &err), -1);
    assert_int_equal(rs_image_alloc(&img, 70000, 70000, &err), -1);
    assert_int_equal(rs_image_alloc(&img, 3, 2, &err), 0);
    rs_image out;
    assert_int_equal(rs_image_resize_bicubic(&img, 0, 4, &out, &err), -1);
    uint8_t u8[3];
    assert_int_equal(rs_siglip_preprocess(&img, -1, u8, NULL, &err), -1);
    rs_image_free(&img);
}

/* Resize of every real image at 224/448/896 and two non-square sizes (both pass orders)
 * equals Pillow's Image.resize(BICUBIC) byte for byte. */
static void test_resize_matches_pillow(void **state) {
    (void)state;
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    cJSON *j = load_json(FIX "resize.json");
    const cJSON *it;
    int n = 0, bad = 0;
    double t_resize = 0, t_224 = 0;
    int n_224 = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "images")) {
        rs_image img;
        load_shared(cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring, &img);
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(it, "sizes")) {
            int W = cJSON_GetArrayItem(s, 0)->valueint, H = cJSON_GetArrayItem(s, 1)->valueint;
            uint32_t want = (uint32_t)cJSON_GetArrayItem(s, 2)->valuedouble;
            rs_image out;
            rs_err err;
            double t0 = now_s();
            if (rs_image_resize_bicubic(&img, W, H, &out, &err)) fail_msg("%s", err.msg);
            double dt = now_s() - t0;
            t_resize += dt;
            if (W == 224 && H == 224) {
                t_224 += dt;
                n_224++;
            }
            uint32_t got = crc_bytes(out.rgb, (size_t)W * H * 3);
            if (got != want) {
                print_error("%s -> %dx%d: crc %08x, Pillow %08x\n",
                            cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring, W, H, got, want);
                bad++;
            }
            n++;
            rs_image_free(&out);
        }
        rs_image_free(&img);
    }
    print_message("resize: %d of %d resizes identical to Pillow; total %.2f s, %.1f ms per 224x224\n",
                  n - bad, n, t_resize, 1e3 * t_224 / (n_224 ? n_224 : 1));
    assert_true(n >= 900);
    assert_int_equal(bad, 0);
    cJSON_Delete(j);
}

/* Two resized images stored in full: count differing values (expected 0). */
static void test_resize_full_images(void **state) {
    (void)state;
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    static const char *cases[][2] = {
        {"images/skimage/chelsea.png", FIX "resize_chelsea_224.png"},
        {"coco/mini/train2017/000000069468.jpg", FIX "resize_000000069468_224.png"},
    };
    for (int i = 0; i < 2; i++) {
        rs_image src, ref, out, hfirst;
        rs_err err;
        load_shared(cases[i][0], &src);
        if (rs_image_load(cases[i][1], &ref, &err)) fail_msg("%s", err.msg);
        assert_int_equal(rs_image_resize_bicubic(&src, 224, 224, &out, &err), 0);
        assert_int_equal(rs_image_resize_bicubic_order(&src, 224, 224, RS_RESIZE_H_FIRST, &hfirst, &err), 0);
        size_t n = 224 * 224 * 3;
        int mism = 0, maxd = 0, mism_h = 0;
        for (size_t k = 0; k < n; k++) {
            int d = abs((int)out.rgb[k] - (int)ref.rgb[k]);
            mism += d != 0;
            if (d > maxd) maxd = d;
            mism_h += hfirst.rgb[k] != ref.rgb[k];
        }
        print_message("%s -> 224: %d of %zu values differ from Pillow (max %d); "
                      "Pillow<=12 pass order would differ in %d\n", cases[i][0], mism, n, maxd, mism_h);
        assert_int_equal(mism, 0);
        rs_image_free(&src);
        rs_image_free(&ref);
        rs_image_free(&out);
        rs_image_free(&hfirst);
    }
}

/* pixel_values equal transformers' SiglipImageProcessorPil output bit for bit (CRC of the
 * float32 CHW buffer), from the raw file (RGB, L, RGBA, CMYK inputs). */
static void test_preprocess_matches_transformers(void **state) {
    (void)state;
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    cJSON *j = load_json(FIX "preprocess.json");
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "cases")) {
        const char *rel = cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring;
        int S = cJSON_GetObjectItemCaseSensitive(it, "size")->valueint;
        rs_image img;
        load_shared(rel, &img);
        size_t np = (size_t)S * S;
        uint8_t *u8 = malloc(np * 3);
        float *pv = malloc(np * 3 * sizeof *pv);
        rs_err err;
        double t0 = now_s();
        if (rs_siglip_preprocess(&img, S, u8, pv, &err)) fail_msg("%s", err.msg);
        double dt = now_s() - t0;
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(it, "samples")) {
            int c = cJSON_GetArrayItem(s, 0)->valueint, y = cJSON_GetArrayItem(s, 1)->valueint,
                x = cJSON_GetArrayItem(s, 2)->valueint;
            float want = (float)cJSON_GetArrayItem(s, 3)->valuedouble;
            assert_true(pv[(size_t)c * np + (size_t)y * S + x] == want);
            assert_true(u8[((size_t)y * S + x) * 3 + c] == (uint8_t)((want * 0.5f + 0.5f) * 255.0f + 0.5f));
        }
        uint32_t got = crc_bytes(pv, np * 3 * sizeof *pv), want = json_u32(it, "crc32_f32");
        if (got != want) fail_msg("%s @%d: pixel_values crc %08x, transformers %08x", rel, S, got, want);
        print_message("preprocess %s (%dx%d) -> %d: identical to transformers, %.1f ms\n", rel, img.w,
                      img.h, S, dt * 1e3);
        free(u8);
        free(pv);
        rs_image_free(&img);
        n++;
    }
    assert_int_equal(n, 6);
    cJSON_Delete(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_real_images_match_pillow),
        cmocka_unit_test(test_decode_png_variants_match_pillow),
        cmocka_unit_test(test_bad_inputs_fail_cleanly),
        cmocka_unit_test(test_resize_matches_pillow),
        cmocka_unit_test(test_resize_full_images),
        cmocka_unit_test(test_preprocess_matches_transformers),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
