/* Manifest CSV: the seed repo's three-column format and our extended one load; relative
 * image paths resolve against the manifest's folder; missing images and malformed rows
 * fail with the file, the line and the problem; writing round-trips (extra columns too). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reprshift/manifest.h"

static char dir[512];

static const char *write_file(const char *name, const char *text) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    return path;
}

static void setup_dir(void) {
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    char p[700];
    snprintf(p, sizeof p, "%s/imgs", dir);
    mkdir(p, 0755);
    write_file("imgs/a.jpg", "x");
    write_file("imgs/b.jpg", "x");
}

static void test_seed_format_and_paths(void **st) {
    (void)st;
    setup_dir();
    /* the seed repo's columns only (coco_imgs_text_balanced_val.csv layout) */
    const char *p = write_file("seed.csv", "modality,input,label\r\n"
                                           "text,\"A dog, running\",animals\r\n"
                                           "image,imgs/a.jpg,animals\r\n"
                                           "image,/nonexistent/abs.jpg,vehicles\r\n");
    rs_manifest *m;
    rs_err err = {0};
    if (rs_manifest_load(p, &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m->n_rows, 3);
    assert_int_equal(m->rows[0].modality, RS_MODALITY_TEXT);
    assert_string_equal(m->rows[0].input, "A dog, running");
    assert_null(m->rows[0].path);
    assert_int_equal(m->rows[0].image_id, -1);
    assert_string_equal(m->rows[0].split, "");
    char want[700];
    snprintf(want, sizeof want, "%s/imgs/a.jpg", dir);
    assert_string_equal(m->rows[1].path, want);
    assert_string_equal(m->rows[2].path, "/nonexistent/abs.jpg");
    assert_int_equal(m->rows[2].line, 4);
    /* one image missing: the error names the manifest, count, line and path */
    size_t missing = 0;
    assert_int_equal(rs_manifest_check_images(m, &missing, &err), -1);
    assert_int_equal(missing, 1);
    if (!strstr(err.msg, "seed.csv") || !strstr(err.msg, "1 of 2 image files") || !strstr(err.msg, "line 4") ||
        !strstr(err.msg, "/nonexistent/abs.jpg"))
        fail_msg("message: %s", err.msg);
    rs_manifest_free(m);
}

static void test_round_trip_with_extras(void **st) {
    (void)st;
    setup_dir();
    const char *p = write_file("full.csv",
                               "split,modality,input,label,file_name,image_id,caption_id,edit,edit_value\n"
                               "train,image,imgs/a.jpg,food,a.jpg,42,,brightness,1.5\n"
                               "test,text,\"He said \"\"hi\"\"\nthen left\",food,a.jpg,42,7,,\n"
                               "val,image,imgs/b.jpg,food,b.jpg,43,,,\n");
    rs_manifest *m;
    rs_err err = {0};
    if (rs_manifest_load(p, &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m->n_rows, 3);
    assert_int_equal(m->n_extra, 2);
    int ev = rs_manifest_extra_col(m, "edit_value");
    assert_int_equal(ev, 1);
    assert_string_equal(m->rows[0].extra[ev], "1.5");
    assert_int_equal(m->rows[1].caption_id, 7);
    assert_int_equal(m->rows[1].image_id, 42);
    assert_string_equal(m->rows[1].input, "He said \"hi\"\nthen left");
    assert_string_equal(m->rows[2].split, "val");
    assert_int_equal(rs_manifest_check_images(m, NULL, &err), 0);
    char out[700];
    snprintf(out, sizeof out, "%s/copy.csv", dir);
    if (rs_manifest_write(m, out, &err)) fail_msg("%s", err.msg);
    rs_manifest *m2;
    if (rs_manifest_load(out, &m2, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m2->n_rows, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(m2->rows[i].input, m->rows[i].input);
        assert_string_equal(m2->rows[i].label, m->rows[i].label);
        assert_string_equal(m2->rows[i].split, m->rows[i].split);
        assert_int_equal(m2->rows[i].image_id, m->rows[i].image_id);
        assert_int_equal(m2->rows[i].caption_id, m->rows[i].caption_id);
        for (int k = 0; k < 2; k++) assert_string_equal(m2->rows[i].extra[k], m->rows[i].extra[k]);
    }
    assert_string_equal(m2->extra_names[0], "edit");
    rs_manifest_free(m2);
    rs_manifest_free(m);
}

static void expect_error(const char *text, const char *needle) {
    const char *p = write_file("bad.csv", text);
    rs_manifest *m = (rs_manifest *)1;
    rs_err err = {0};
    assert_int_equal(rs_manifest_load(p, &m, &err), -1);
    assert_null(m);
    if (!strstr(err.msg, needle) || !strstr(err.msg, "bad.csv"))
        fail_msg("error \"%s\" lacks \"%s\" or the file name", err.msg, needle);
}

static void test_bad_manifests(void **st) {
    (void)st;
    setup_dir();
    expect_error("modality,input\ntext,a\n", "missing required column 'label'");
    expect_error("modality,input,label\nvideo,a,b\n", "line 2: modality 'video' is not \"text\" or \"image\"");
    expect_error("modality,input,label\ntext,,b\n", "line 2: empty input");
    expect_error("modality,input,label,image_id\ntext,a,b,12x\n", "line 2: image_id '12x'");
    expect_error("modality,input,label,caption_id\ntext,a,b,-3\n", "caption_id '-3'");
    expect_error("modality,input,label,split\ntext,a,b,training\n", "split 'training'");
    expect_error("modality,input,label\ntext,\"a,b\n", "unterminated quoted field");
    rs_manifest *m;
    rs_err err = {0};
    assert_int_equal(rs_manifest_load("no/such/manifest.csv", &m, &err), -1);
    assert_non_null(strstr(err.msg, "no/such/manifest.csv"));
}

static void test_relative_paths(void **st) {
    (void)st;
    char *r = rs_path_relative("/a/b/c/img.jpg", "/a/b/out");
    assert_string_equal(r, "../c/img.jpg");
    free(r);
    r = rs_path_relative("/a/b/img.jpg", "/a/b");
    assert_string_equal(r, "img.jpg");
    free(r);
    r = rs_path_relative("/x/./y/../img.jpg", "/z/w/");
    assert_string_equal(r, "../../x/img.jpg");
    free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_format_and_paths),
        cmocka_unit_test(test_round_trip_with_extras),
        cmocka_unit_test(test_bad_manifests),
        cmocka_unit_test(test_relative_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
