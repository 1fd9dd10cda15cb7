/* Richer probe targets (include/reprshift/targets.h, docs/datasets.md "Targets"):
 * - colour and action words of hand-picked captions, expected values written by hand from
 *   the documented rules (including their documented failure modes);
 * - the category / supercategory multi-hot of every image of the bundled COCO sample and the
 *   words of all its 120 captions against tools/reference/gen_targets_fixture.py (Python's
 *   json module, tests/fixtures/data/targets_coco_sample/);
 * - rs_targets_build / write / load on a small manifest (caption union, unknown cells) and
 *   the loader's errors. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "reprshift/coco.h"
#include "reprshift/fileio.h"
#include "reprshift/manifest.h"
#include "reprshift/targets.h"

static int word_index(const char *const *list, const char *w) {
    for (int k = 0; list[k]; k++)
        if (!strcmp(list[k], w)) return k;
    fail_msg("%s is not in the list", w);
    return -1;
}

/* The words of caption, as a space-separated list in list order. */
static void check_words(const char *caption, int colours, const char *expect) {
    unsigned char hit[64] = {0};
    const char *const *list = colours ? RS_COLOUR_WORDS : RS_ACTION_WORDS;
    if (colours) rs_caption_colours(caption, hit);
    else rs_caption_actions(caption, hit);
    char got[512] = "";
    for (int k = 0; list[k]; k++)
        if (hit[k]) {
            if (got[0]) strcat(got, " ");
            strcat(got, list[k]);
        }
    if (strcmp(got, expect)) fail_msg("'%s': %s '%s', expected '%s'", caption ? caption : "(null)", colours ? "colours" : "actions", got, expect);
}

static void test_lists(void **state) {
    (void)state;
    int n = 0;
    while (RS_COLOUR_WORDS[n]) n++;
    assert_int_equal(n, RS_N_COLOURS);
    n = 0;
    while (RS_ACTION_WORDS[n]) n++;
    assert_int_equal(n, RS_N_ACTIONS);
    assert_int_equal(word_index(RS_COLOUR_WORDS, "gray"), 10);
    assert_int_equal(word_index(RS_ACTION_WORDS, "lying"), 9);
}

static void test_hand_captions(void **state) {
    (void)state;
    /* case, punctuation, several words, each counted once */
    check_words("A black and white cat sitting on a RED couch.", 1, "black white red");
    check_words("A black and white cat sitting on a RED couch.", 0, "sitting");
    check_words("Red, red and more red!", 1, "red");
    /* aliases */
    check_words("Two men are laying in the grass near a grey dog", 1, "gray");
    check_words("Two men are laying in the grass near a grey dog", 0, "lying");
    check_words("A dog lying on a gray rug", 0, "lying");
    /* hyphens and digits separate tokens; derived forms and plurals do not match */
    check_words("A dark-blue bus with reddish lights and greenery", 1, "blue");
    check_words("2blue4u", 1, "blue");
    check_words("whitewashed walls, oranges and Greens", 1, "");
    /* documented failure modes: the fruit counts as the colour, -ing nouns/adjectives count */
    check_words("An orange on a plate", 1, "orange");
    check_words("A sitting room next to a running track", 0, "running sitting");
    check_words("A black and white photo of a street", 1, "black white");
    /* base and past forms are not counted */
    check_words("A man rides a horse and sat down; he walks", 0, "");
    /* several actions, in list order; a slash separates */
    check_words("People standing/walking while a dog is eating and a bird flying", 0, "eating flying standing walking");
    /* non-ASCII letters separate tokens (cr\xc3\xa8me -> cr, me) */
    check_words("caf\xc3\xa9 cr\xc3\xa8me, white plates", 1, "white");
    check_words("BLUE", 1, "blue");
    check_words("", 1, "");
    check_words(NULL, 0, "");
    /* a token longer than any word never matches, even if it ends in one */
    check_words("xxxxxxxxxxxxxxxxxxxxxxsitting sitting", 0, "sitting");
    check_words("xxxxxxxxxxxxxxxxxxxxxxsitting", 0, "");
}

static coco_data *load_sample(void) {
    static const char *const S = "examples/data/coco-sample/annotations/";
    const char *split[2] = {"train2017", "val2017"};
    coco_data *all = NULL;
    rs_err err = {0};
    for (int i = 0; i < 2; i++) {
        char p[512], q[512];
        snprintf(p, sizeof p, "%sinstances_%s.json", S, split[i]);
        snprintf(q, sizeof q, "%scaptions_%s.json", S, split[i]);
        coco_data *d, *c;
        size_t dropped;
        if (coco_load(p, &d, &err) || coco_load(q, &c, &err) || coco_add_captions(d, c, &dropped, &err))
            fail_msg("%s", err.msg);
        if (!all) all = d;
        else if (coco_merge(all, d, &err)) fail_msg("merge: %s", err.msg);
    }
    return all;
}

static void test_coco_sample_images(void **state) {
    (void)state;
    coco_data *d = load_sample();
    rs_csv *t;
    rs_err err = {0};
    if (rs_csv_load("tests/fixtures/data/targets_coco_sample/images.csv", 1 << 20, &t, &err)) fail_msg("%s", err.msg);
    const char **supers;
    int ns;
    assert_int_equal(rs_coco_supercategories(d, &supers, &ns, &err), 0);
    assert_int_equal((int)d->n_categories, 80);
    assert_int_equal(ns, 12);
    assert_int_equal(t->n_cols, 1 + 80 + 12);
    for (size_t i = 0; i < d->n_categories; i++) {
        char name[96];
        snprintf(name, sizeof name, "category:%s", d->categories[i].name);
        assert_string_equal(t->header[1 + i], name);
    }
    for (int j = 0; j < ns; j++) {
        char name[96];
        snprintf(name, sizeof name, "supercategory:%s", supers[j]);
        assert_string_equal(t->header[81 + j], name);
    }
    assert_int_equal((int)t->n_rows, 24);
    assert_int_equal((int)d->n_images, 24);
    unsigned char cat[80], sup[12];
    int ones = 0;
    for (size_t r = 0; r < t->n_rows; r++) {
        long long id = atoll(rs_csv_cell(t, r, 0));
        rs_image_category_targets(d, id, supers, ns, cat, sup);
        for (int j = 0; j < 80; j++) {
            if (cat[j] != atoi(rs_csv_cell(t, r, 1 + j))) fail_msg("image %lld %s", id, t->header[1 + j]);
            ones += cat[j];
        }
        for (int j = 0; j < 12; j++)
            if (sup[j] != atoi(rs_csv_cell(t, r, 81 + j))) fail_msg("image %lld %s", id, t->header[81 + j]);
    }
    assert_true(ones > 24); /* real multi-label data: more than one category per image */
    free(supers);
    rs_csv_free(t);
    coco_free(d);
}

static void test_coco_sample_captions(void **state) {
    (void)state;
    coco_data *d = load_sample();
    rs_csv *t;
    rs_err err = {0};
    if (rs_csv_load("tests/fixtures/data/targets_coco_sample/captions.csv", 1 << 20, &t, &err)) fail_msg("%s", err.msg);
    assert_int_equal(t->n_cols, 1 + RS_N_COLOURS + RS_N_ACTIONS);
    assert_int_equal((int)t->n_rows, 120);
    assert_int_equal((int)d->n_captions, 120);
    int ones = 0;
    for (size_t r = 0; r < t->n_rows; r++) {
        long long id = atoll(rs_csv_cell(t, r, 0));
        const char *cap = NULL;
        for (size_t k = 0; k < d->n_captions && !cap; k++)
            if (d->captions[k].id == id) cap = d->captions[k].caption;
        assert_non_null(cap);
        unsigned char hit[RS_N_COLOURS + RS_N_ACTIONS] = {0};
        rs_caption_colours(cap, hit);
        rs_caption_actions(cap, hit + RS_N_COLOURS);
        for (int j = 0; j < RS_N_COLOURS + RS_N_ACTIONS; j++) {
            if (hit[j] != atoi(rs_csv_cell(t, r, 1 + j))) fail_msg("caption %lld (%s): %s", id, cap, t->header[1 + j]);
            ones += hit[j];
        }
    }
    assert_int_equal(ones, 18 + 51); /* 18 colour and 51 action mentions (the fixture's column sums) */
    rs_csv_free(t);
    coco_free(d);
}

/* A manifest: image 7 with two captions, image 9 without any, a caption with no image id. */
static rs_manifest *small_manifest(void) {
    rs_manifest *m = rs_manifest_new(".");
    rs_err err = {0};
    assert_non_null(m);
    assert_int_equal(rs_manifest_add(m, RS_MODALITY_IMAGE, "a.jpg", "x", "a.jpg", 7, -1, "train", NULL, &err), 0);
    assert_int_equal(rs_manifest_add(m, RS_MODALITY_TEXT, "A red bus driving", "x", "a.jpg", 7, 70, "train", NULL, &err), 0);
    assert_int_equal(rs_manifest_add(m, RS_MODALITY_TEXT, "A grey bus, parked", "x", "a.jpg", 7, 71, "train", NULL, &err), 0);
    assert_int_equal(rs_manifest_add(m, RS_MODALITY_IMAGE, "b.jpg", "y", "b.jpg", 9, -1, "test", NULL, &err), 0);
    assert_int_equal(rs_manifest_add(m, RS_MODALITY_TEXT, "Someone eating", "y", "", -1, -1, "", NULL, &err), 0);
    return m;
}

static void test_build_write_load(void **state) {
    (void)state;
    rs_manifest *m = small_manifest();
    rs_targets t;
    rs_err err = {0};
    assert_int_equal(rs_targets_build(m, NULL, &t, &err), 0);
    assert_int_equal(t.n_cols, RS_N_COLOURS + RS_N_ACTIONS); /* no COCO data: no category columns */
    assert_string_equal(t.names[0], "colour:black");
    assert_string_equal(t.names[RS_N_COLOURS], "action:carrying");
    int red = 2, gray = 10, driving = RS_N_COLOURS + 3, eating = RS_N_COLOURS + 4;
    const signed char *v = t.v;
    int C = t.n_cols;
    /* image 7: the union of its two captions */
    assert_int_equal(v[0 * C + red], 1);
    assert_int_equal(v[0 * C + gray], 1);
    assert_int_equal(v[0 * C + driving], 1);
    assert_int_equal(v[0 * C + 0], 0);
    /* each caption its own */
    assert_int_equal(v[1 * C + red], 1);
    assert_int_equal(v[1 * C + gray], 0);
    assert_int_equal(v[2 * C + gray], 1);
    assert_int_equal(v[2 * C + driving], 0);
    /* image 9 has no caption: unknown */
    for (int j = 0; j < C; j++) assert_int_equal(v[3 * C + j], -1);
    assert_int_equal(v[4 * C + eating], 1);
    char path[512];
    snprintf(path, sizeof path, "%s/targets.csv", tu_tmpdir());
    assert_int_equal(rs_targets_write(&t, m, path, &err), 0);
    /* the first two records, by hand */
    rs_mmap mm;
    assert_int_equal(rs_mmap_open(&mm, path, &err), 0);
    const char *want1 = "row,modality,image_id,caption_id,colour:black,";
    assert_memory_equal(mm.data, want1, strlen(want1));
    const char *rec = memchr(mm.data, '\n', mm.size) + 1;
    const char *want2 = "0,image,7,,0,0,1,0,0,0,0,0,0,0,1,0,0,0,1,"; /* red, gray, driving */
    assert_memory_equal(rec, want2, strlen(want2));
    const char *rec4 = rec;
    for (int i = 0; i < 3; i++) rec4 = memchr(rec4, '\n', mm.size - (size_t)(rec4 - (const char *)mm.data)) + 1;
    const char *want4 = "3,image,9,,,,,";
    assert_memory_equal(rec4, want4, strlen(want4));
    rs_mmap_close(&mm);
    rs_targets u;
    assert_int_equal(rs_targets_load(path, m->n_rows, &u, &err), 0);
    assert_int_equal(u.n_cols, t.n_cols);
    for (int j = 0; j < C; j++) {
        assert_string_equal(u.names[j], t.names[j]);
        assert_int_equal(u.kind[j], t.kind[j]);
    }
    assert_memory_equal(u.v, t.v, (size_t)C * m->n_rows);
    rs_targets_free(&u);
    /* wrong row count */
    assert_int_equal(rs_targets_load(path, 4, &u, &err), -1);
    assert_non_null(strstr(err.msg, "5 rows, but the manifest has 4"));
    rs_targets_free(&t);
    rs_manifest_free(m);
}

static void test_with_coco(void **state) {
    (void)state;
    coco_data *d = load_sample();
    rs_manifest *m = rs_manifest_new(".");
    rs_err err = {0};
    /* the first image of the sample, and an id the files do not list */
    int64_t id = d->images[0].id;
    assert_int_equal(rs_manifest_add(m, RS_MODALITY_IMAGE, "a.jpg", "x", "", id, -1, "", NULL, &err), 0);
    assert_int_equal(rs_manifest_add(m, RS_MODALITY_TEXT, "A cat", "x", "", 123456789, -1, "", NULL, &err), 0);
    rs_targets t;
    assert_int_equal(rs_targets_build(m, d, &t, &err), 0);
    assert_int_equal(t.n_cols, 80 + 12 + RS_N_COLOURS + RS_N_ACTIONS);
    assert_int_equal(t.kind[0], RS_TGT_CATEGORY);
    assert_int_equal(t.kind[80], RS_TGT_SUPERCATEGORY);
    assert_int_equal(t.kind[92], RS_TGT_COLOUR);
    const char **supers;
    int ns;
    assert_int_equal(rs_coco_supercategories(d, &supers, &ns, &err), 0);
    unsigned char cat[80], sup[12];
    rs_image_category_targets(d, id, supers, ns, cat, sup);
    for (int j = 0; j < 80; j++) assert_int_equal(t.v[j], cat[j]);
    for (int j = 0; j < 12; j++) assert_int_equal(t.v[80 + j], sup[j]);
    for (int j = 92; j < t.n_cols; j++) assert_int_equal(t.v[j], -1); /* the image has no caption row */
    for (int j = 0; j < 92; j++) assert_int_equal(t.v[t.n_cols + j], -1); /* unknown image id */
    free(supers);
    rs_targets_free(&t);
    rs_manifest_free(m);
    coco_free(d);
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static void test_load_errors(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/bad_targets.csv", tu_tmpdir());
    rs_targets t;
    rs_err err = {0};
    write_file(path, "row,modality,image_id,caption_id,colour:red\n0,text,,,2\n");
    assert_int_equal(rs_targets_load(path, 1, &t, &err), -1);
    assert_non_null(strstr(err.msg, "holds '2'"));
    assert_non_null(strstr(err.msg, path));
    write_file(path, "row,modality,image,caption_id,colour:red\n0,text,,,1\n");
    assert_int_equal(rs_targets_load(path, 1, &t, &err), -1);
    assert_non_null(strstr(err.msg, "'image_id'"));
    write_file(path, "row,modality,image_id,caption_id,shape:round\n0,text,,,1\n");
    assert_int_equal(rs_targets_load(path, 1, &t, &err), -1);
    assert_non_null(strstr(err.msg, "'shape:round' is not a target"));
    write_file(path, "row,modality,image_id,caption_id,colour:red,action:eating\n0,text,,,1,\n");
    assert_int_equal(rs_targets_load(path, 1, &t, &err), 0);
    assert_int_equal(t.v[0], 1);
    assert_int_equal(t.v[1], -1);
    assert_int_equal(t.kind[1], RS_TGT_ACTION);
    assert_string_equal(t.names[1], "action:eating");
    rs_targets_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_hand_captions),
        cmocka_unit_test(test_coco_sample_images),
        cmocka_unit_test(test_coco_sample_captions),
        cmocka_unit_test(test_build_write_load),
        cmocka_unit_test(test_with_coco),
        cmocka_unit_test(test_load_errors),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
