/* Image edits against goldens from Pillow 13 (ImageEnhance, GaussianBlur, rotate BICUBIC)
 * and the numpy definition of redness (luminance-controlled) / redness_plain (tools/reference/gen_image_goldens.py,
 * tests/fixtures/images/edits.json), on real images from ../shared/data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "reprshift/fileio.h"
#include "reprshift/image.h"
#include "reprshift/image_edit.h"
#include "testutil.h"

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

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Every (image, edit, value) golden: the edited bytes' CRC-32 equals the reference's. */
static void test_edits_match_pillow(void **state) {
    (void)state;
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    cJSON *j = load_json("tests/fixtures/images/edits.json");
    const cJSON *it;
    char cur[1024] = "";
    rs_image base = {0, 0, NULL};
    int n = 0, bad = 0;
    double t[RS_EDIT_COUNT] = {0};
    long long px[RS_EDIT_COUNT] = {0};
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "cases")) {
        const char *rel = cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring;
        const char *name = cJSON_GetObjectItemCaseSensitive(it, "edit")->valuestring;
        double v = cJSON_GetObjectItemCaseSensitive(it, "value")->valuedouble;
        uint32_t want = (uint32_t)cJSON_GetObjectItemCaseSensitive(it, "crc32")->valuedouble;
        rs_err err;
        if (strcmp(cur, rel)) {
            rs_image_free(&base);
            char path[4096];
            snprintf(path, sizeof path, "%s%s", tu_shared("data/"), rel);
            if (rs_image_load(path, &base, &err)) fail_msg("%s", err.msg);
            snprintf(cur, sizeof cur, "%s", rel);
        }
        char spec[128];
        snprintf(spec, sizeof spec, "%s=%.17g", name, v);
        rs_edit e;
        if (rs_edit_parse(spec, &e, &err)) fail_msg("%s", err.msg);
        rs_image img;
        assert_int_equal(rs_image_copy(&img, &base, &err), 0);
        double t0 = now_s();
        if (rs_edit_apply(&img, &e, &err)) fail_msg("%s", err.msg);
        t[e.kind] += now_s() - t0;
        px[e.kind] += (long long)img.w * img.h;
        assert_int_equal(img.w, base.w);
        assert_int_equal(img.h, base.h);
        uint32_t got = (uint32_t)crc32(0L, img.rgb, (uInt)((size_t)img.w * img.h * 3));
        if (got != want) {
            print_error("%s %s: crc %08x, reference %08x\n", rel, spec, got, want);
            bad++;
        }
        rs_image_free(&img);
        n++;
    }
    rs_image_free(&base);
    for (int k = 0; k < RS_EDIT_COUNT; k++)
        if (px[k]) print_message("%-13s %.1f Mpixel/s\n", rs_edit_name((rs_edit_kind)k), px[k] / t[k] / 1e6);
    print_message("edits: %d of %d identical to the reference\n", n - bad, n);
    assert_true(n >= 200);
    assert_int_equal(bad, 0);
    cJSON_Delete(j);
}

static void test_edit_parse(void **state) {
    (void)state;
    rs_edit e;
    rs_err err;
    assert_int_equal(rs_edit_parse("blur=2.5", &e, &err), 0);
    assert_int_equal(e.kind, RS_EDIT_BLUR);
    assert_true(e.value == 2.5);
    /* redness is the luminance-controlled edit; redness_luma (its old name) is an alias */
    assert_int_equal(rs_edit_parse("redness=1.2", &e, &err), 0);
    assert_int_equal(e.kind, RS_EDIT_REDNESS);
    assert_int_equal(rs_edit_parse("redness_luma=1.2", &e, &err), 0);
    assert_int_equal(e.kind, RS_EDIT_REDNESS);
    assert_true(e.value == 1.2);
    assert_string_equal(rs_edit_name(e.kind), "redness");
    assert_int_equal(rs_edit_parse("redness_plain=1.2", &e, &err), 0);
    assert_int_equal(e.kind, RS_EDIT_REDNESS_PLAIN);
    assert_string_equal(rs_edit_name(e.kind), "redness_plain");
    assert_int_equal(rs_edit_parse("redness_plain=-1", &e, &err), -1);
    assert_int_equal(rs_edit_parse("rotate=-15", &e, &err), 0);
    assert_true(e.value == -15);
    /* unknown name lists the valid ones */
    assert_int_equal(rs_edit_parse("brightnes=1.2", &e, &err), -1);
    assert_non_null(strstr(err.msg, "brightness"));
    assert_non_null(strstr(err.msg, "redness_plain"));
    assert_non_null(strstr(err.msg, "redness_luma"));
    assert_int_equal(rs_edit_parse("blur", &e, &err), -1);
    assert_int_equal(rs_edit_parse("blur=abc", &e, &err), -1);
    assert_int_equal(rs_edit_parse("blur=1x", &e, &err), -1);
    assert_int_equal(rs_edit_parse("blur=-1", &e, &err), -1);
    assert_int_equal(rs_edit_parse("contrast=nan", &e, &err), -1);
    assert_int_equal(rs_edit_parse("redness=inf", &e, &err), -1);
}

/* redness (luminance-controlled) keeps BT.601 luma within rounding where nothing clips;
 * redness_plain does not. */
static void test_redness_luma_keeps_luma(void **state) {
    (void)state;
    rs_image img;
    rs_err err;
    assert_int_equal(rs_image_alloc(&img, 64, 64, &err), 0);
    for (int i = 0; i < 64 * 64 * 3; i++) img.rgb[i] = (uint8_t)(60 + (i * 37) % 120);
    rs_image a, b;
    assert_int_equal(rs_image_copy(&a, &img, &err), 0);
    assert_int_equal(rs_image_copy(&b, &img, &err), 0);
    rs_image_redness_luma(&a, 1.3);
    rs_image_redness_plain(&b, 1.3);
    double max_luma = 0, max_luma_plain = 0;
    for (int i = 0; i < 64 * 64; i++) {
        const uint8_t *p = img.rgb + 3 * i, *q = a.rgb + 3 * i, *r = b.rgb + 3 * i;
        double y0 = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        double y1 = 0.299 * q[0] + 0.587 * q[1] + 0.114 * q[2];
        double y2 = 0.299 * r[0] + 0.587 * r[1] + 0.114 * r[2];
        if (q[0] < 255 && q[1] > 0 && q[2] > 0) max_luma = fmax(max_luma, fabs(y1 - y0));
        max_luma_plain = fmax(max_luma_plain, fabs(y2 - y0));
        assert_true(q[0] >= p[0]);
    }
    assert_true(max_luma <= 0.5 * 0.587 + 0.5 * 0.114 + 0.5 * 0.299 + 1e-9);
    assert_true(max_luma_plain > 5);
    rs_image_free(&img);
    rs_image_free(&a);
    rs_image_free(&b);
}

/* rs_image_luminance against numpy (tools/reference/gen_luminance.py): mean BT.601 luma and
 * mean linear-light Y of real images and of their redness / redness_plain / brightness
 * variants, within 1e-9. */
static void test_luminance_matches_numpy(void **state) {
    (void)state;
    cJSON *j = load_json("tests/fixtures/images/luminance.json");
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "cases")) {
        const char *rel = cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring;
        const char *name = cJSON_GetObjectItemCaseSensitive(it, "edit")->valuestring;
        double v = cJSON_GetObjectItemCaseSensitive(it, "value")->valuedouble;
        double want_l = cJSON_GetObjectItemCaseSensitive(it, "luma_bt601")->valuedouble;
        double want_y = cJSON_GetObjectItemCaseSensitive(it, "linear_y")->valuedouble;
        rs_err err;
        rs_image img;
        if (rs_image_load(rel, &img, &err)) fail_msg("%s", err.msg);
        if (strcmp(name, "none")) {
            char spec[128];
            snprintf(spec, sizeof spec, "%s=%.17g", name, v);
            rs_edit e;
            if (rs_edit_parse(spec, &e, &err)) fail_msg("%s", err.msg);
            if (rs_edit_apply(&img, &e, &err)) fail_msg("%s", err.msg);
        }
        rs_luminance l;
        assert_int_equal(rs_image_luminance(&img, &l, &err), 0);
        if (fabs(l.luma_bt601 - want_l) > 1e-9 || fabs(l.linear_y - want_y) > 1e-9)
            fail_msg("%s %s=%g: luma %.17g (numpy %.17g), Y %.17g (numpy %.17g)", rel, name, v, l.luma_bt601,
                     want_l, l.linear_y, want_y);
        rs_image_free(&img);
        n++;
    }
    assert_int_equal(n, 12);
    cJSON_Delete(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edits_match_pillow),
        cmocka_unit_test(test_edit_parse),
        cmocka_unit_test(test_redness_luma_keeps_luma),
        cmocka_unit_test(test_luminance_matches_numpy),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
