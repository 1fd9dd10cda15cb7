/* COCO streaming loader and balanced sampling, on the real COCO mini sample:
 * - the streaming parser keeps exactly what cJSON (a DOM parser) reads from the same files;
 * - group counts equal PROVENANCE.md's hand counts and counts derived independently from
 *   image_table.tsv (written by the data helper from the JSON with Python);
 * - sampling is deterministic, balanced, and splits by image;
 * - malformed files and mismatched captions fail with messages naming file and problem. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/coco.h"
#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "reprshift/manifest.h"

static char *dupshared(const char *rel) { return strdup(tu_shared(rel)); }

static coco_data *load_path(const char *p) {
    coco_data *d = NULL;
    rs_err err = {0};
    if (coco_load(p, &d, &err)) fail_msg("coco_load %s: %s", p, err.msg);
    return d;
}

static coco_data *load_ok(const char *rel) {
    char *p = dupshared(rel);
    coco_data *d = load_path(p);
    free(p);
    return d;
}

/* All 159 annotated mini images with captions, each with its split's images dir. */
static coco_data *load_mini(void) {
    rs_err err = {0};
    coco_data *tr = load_ok("data/coco/mini/annotations/instances_train2017.json");
    coco_data *va = load_ok("data/coco/mini/annotations/instances_val2017.json");
    assert_int_equal(coco_set_images_dir(tr, tu_shared("data/coco/mini/train2017"), &err), 0);
    assert_int_equal(coco_set_images_dir(va, tu_shared("data/coco/mini/val2017"), &err), 0);
    if (coco_merge(tr, va, &err)) fail_msg("merge: %s", err.msg);
    size_t dropped = 99;
    if (coco_add_captions(tr, load_ok("data/coco/mini/annotations/captions_train2017.json"), &dropped, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(dropped, 0);
    if (coco_add_captions(tr, load_ok("data/coco/mini/annotations/captions_val2017.json"), &dropped, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(dropped, 0);
    return tr;
}

static int64_t jint(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) fail_msg("cJSON: %s not a number", k);
    return (int64_t)x->valuedouble;
}
static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(x)) fail_msg("cJSON: %s not a string", k);
    return x->valuestring;
}

/* Compare the streaming parser with cJSON on one file (path p), field by field. */
static void compare_with_cjson_at(const char *p) {
    coco_data *d = load_path(p);
    cJSON *root = NULL;
    rs_err err = {0};
    if (rs_json_load(p, 64u << 20, &root, &err)) fail_msg("%s", err.msg);
    const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(root, "images");
    const cJSON *anns = cJSON_GetObjectItemCaseSensitive(root, "annotations");
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(root, "categories");
    assert_int_equal(d->n_images, imgs ? (size_t)cJSON_GetArraySize(imgs) : 0);
    assert_int_equal(d->n_categories, cats ? (size_t)cJSON_GetArraySize(cats) : 0);
    assert_int_equal(d->n_instances + d->n_captions, anns ? (size_t)cJSON_GetArraySize(anns) : 0);
    const cJSON *x;
    cJSON_ArrayForEach(x, imgs) {
        long i = coco_find_image(d, jint(x, "id"));
        assert_true(i >= 0);
        assert_string_equal(d->images[i].file_name, jstr(x, "file_name"));
        assert_int_equal(d->images[i].width, jint(x, "width"));
        assert_int_equal(d->images[i].height, jint(x, "height"));
    }
    cJSON_ArrayForEach(x, cats) {
        long i = coco_find_category(d, jint(x, "id"));
        assert_true(i >= 0);
        assert_string_equal(d->categories[i].name, jstr(x, "name"));
        assert_string_equal(d->categories[i].supercategory, jstr(x, "supercategory"));
    }
    size_t n_cap = 0, n_ins = 0;
    cJSON_ArrayForEach(x, anns) {
        int64_t id = jint(x, "id"), img = jint(x, "image_id");
        int found = 0;
        if (cJSON_GetObjectItemCaseSensitive(x, "caption")) {
            n_cap++;
            size_t b, e;
            coco_image_captions(d, img, &b, &e);
            for (size_t k = b; k < e; k++)
                if (d->captions[k].id == id) {
                    assert_string_equal(d->captions[k].caption, jstr(x, "caption"));
                    found = 1;
                }
        } else {
            n_ins++;
            size_t b, e;
            coco_image_instances(d, img, &b, &e);
            for (size_t k = b; k < e; k++)
                if (d->instances[k].id == id) {
                    assert_int_equal(d->instances[k].category_id, jint(x, "category_id"));
                    assert_int_equal(d->instances[k].iscrowd, jint(x, "iscrowd"));
                    found = 1;
                }
        }
        if (!found) fail_msg("%s: annotation %lld not found by the streaming parser", p, (long long)id);
    }
    assert_int_equal(n_cap, d->n_captions);
    assert_int_equal(n_ins, d->n_instances);
    cJSON_Delete(root);
    coco_free(d);
}

static void compare_with_cjson(const char *rel) {
    char *p = dupshared(rel);
    compare_with_cjson_at(p);
    free(p);
}

/* The COCO sample that ships with the repository (runs without the shared data folder). */
static void test_stream_parser_matches_cjson_on_bundled_sample(void **st) {
    (void)st;
    compare_with_cjson_at("examples/data/coco-sample/annotations/instances_train2017.json");
    compare_with_cjson_at("examples/data/coco-sample/annotations/instances_val2017.json");
    compare_with_cjson_at("examples/data/coco-sample/annotations/captions_train2017.json");
    compare_with_cjson_at("examples/data/coco-sample/annotations/captions_val2017.json");
}

static void test_stream_parser_matches_cjson(void **st) {
    (void)st;
    TU_NEED_SHARED("data/coco/captions_val2017_full.json", "the full COCO val2017 caption file");
    compare_with_cjson("data/coco/mini/annotations/instances_train2017.json");
    compare_with_cjson("data/coco/mini/annotations/instances_val2017.json");
    compare_with_cjson("data/coco/mini/annotations/captions_train2017.json");
    compare_with_cjson("data/coco/mini/annotations/captions_val2017.json");
    compare_with_cjson("data/coco/captions_val2017_full.json"); /* 25,014 captions, escapes, newlines */
    compare_with_cjson("data/coco/categories.json");
}

static void test_mini_totals(void **st) {
    (void)st;
    TU_NEED_SHARED("data/coco/mini", "the 159-image COCO mini set");
    coco_data *d = load_mini();
    /* PROVENANCE.md: 159 images, 795 captions, 1,363 instances, 80 categories */
    assert_int_equal(d->n_images, 159);
    assert_int_equal(d->n_captions, 795);
    assert_int_equal(d->n_instances, 1363);
    assert_int_equal(d->n_categories, 80);
    /* annotation 82445: image 397133, category 44 "bottle" (PROVENANCE.md) */
    size_t b, e;
    coco_image_instances(d, 397133, &b, &e);
    int found = 0;
    for (size_t k = b; k < e; k++)
        if (d->instances[k].id == 82445) {
            assert_int_equal(d->instances[k].category_id, 44);
            assert_string_equal(d->categories[coco_find_category(d, 44)].name, "bottle");
            found = 1;
        }
    assert_true(found);
    /* PROVENANCE.md: images per supercategory */
    static const struct { const char *sc; size_t n; } want[] = {
        {"person", 75}, {"furniture", 53}, {"kitchen", 46}, {"vehicle", 34}, {"indoor", 34}, {"animal", 31},
        {"food", 29}, {"sports", 24}, {"accessory", 23}, {"appliance", 22}, {"electronic", 20}, {"outdoor", 19}};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        size_t n = 0;
        for (size_t i = 0; i < d->n_images; i++) {
            coco_image_instances(d, d->images[i].id, &b, &e);
            int has = 0;
            for (size_t k = b; k < e && !has; k++)
                has = !strcmp(d->categories[coco_find_category(d, d->instances[k].category_id)].supercategory, want[w].sc);
            n += (size_t)has;
        }
        if (n != want[w].n) fail_msg("%s: %zu images, PROVENANCE.md says %zu", want[w].sc, n, want[w].n);
    }
    coco_free(d);
}

/* Expected group per image id from image_table.tsv's has_<supercategory> columns. */
typedef struct {
    int64_t id;
    int group; /* -1 none, -2 ambiguous */
} tsv_row;

static size_t tsv_groups(const char *const *const *groups, int n_groups, tsv_row *rows) {
    char *buf;
    size_t len;
    rs_err err = {0};
    if (rs_read_file(tu_shared("data/coco/mini/image_table.tsv"), 1 << 20, &buf, &len, &err)) fail_msg("%s", err.msg);
    char *save = NULL, *line = strtok_r(buf, "\n", &save);
    char *cols[64];
    int nc = 0;
    for (char *s = line, *f; (f = strsep(&s, "\t")) && nc < 64;) cols[nc++] = f;
    size_t n = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *vals[64];
        int nv = 0;
        for (char *s = line, *f; (f = strsep(&s, "\t")) && nv < 64;) vals[nv++] = f;
        assert_int_equal(nv, nc);
        rows[n].id = atoll(vals[1]);
        int g = -1;
        for (int k = 0; k < n_groups; k++)
            for (const char *const *sc = groups[k]; *sc; sc++) {
                char name[64];
                snprintf(name, sizeof name, "has_%s", *sc);
                for (int c = 0; c < nc; c++)
                    if (!strcmp(cols[c], name) && !strcmp(vals[c], "1")) {
                        if (g == -1) g = k;
                        else if (g != k) g = -2;
                    }
            }
        rows[n++].group = g;
    }
    free(buf);
    return n;
}

static char g_tmp[512];

static const char *const G_ANIMAL[] = {"animal", NULL}, *const G_VEHICLE[] = {"vehicle", NULL},
                        *const G_FOOD[] = {"food", NULL};

static void test_group_counts(void **st) {
    (void)st;
    TU_NEED_SHARED("data/coco/mini", "the 159-image COCO mini set");
    coco_data *d = load_mini();
    rs_err err = {0};
    /* three groups: PROVENANCE.md counts 24 only-animal, 29 only-vehicle, 25 only-food */
    coco_group three[3] = {{"animals", G_ANIMAL}, {"vehicles", G_VEHICLE}, {"food", G_FOOD}};
    coco_sample_opts o;
    coco_sample_defaults(&o);
    o.groups = three;
    o.n_groups = 3;
    coco_sample_stats s;
    if (coco_group_counts(d, &o, &s, &err)) fail_msg("%s", err.msg);
    assert_int_equal(s.available[0], 24);
    assert_int_equal(s.available[1], 29);
    assert_int_equal(s.available[2], 25);

    /* default four groups vs the table derived by Python */
    coco_sample_defaults(&o);
    if (coco_group_counts(d, &o, &s, &err)) fail_msg("%s", err.msg);
    const char *const *gsc[4];
    for (int k = 0; k < 4; k++) gsc[k] = COCO_DEFAULT_GROUPS[k].supercategories;
    tsv_row rows[200];
    size_t n = tsv_groups(gsc, 4, rows);
    assert_int_equal(n, 159);
    size_t want[4] = {0}, amb = 0, none = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].group >= 0) want[rows[i].group]++;
        else if (rows[i].group == -2) amb++;
        else none++;
        assert_int_equal(coco_image_group(d, rows[i].id, &o), rows[i].group);
    }
    for (int k = 0; k < 4; k++) assert_int_equal(s.available[k], want[k]);
    assert_int_equal(s.n_images_ambiguous, amb);
    assert_int_equal(s.n_images_no_group, none);
    /* PROVENANCE.md: 115 images contain an animal, vehicle, food or indoor object
     * (supercategories animal, vehicle, food, indoor) */
    static const char *const G_IND[] = {"indoor", NULL};
    const char *const *four[4] = {G_ANIMAL, G_VEHICLE, G_FOOD, G_IND};
    size_t n4 = tsv_groups(four, 4, rows), any4 = 0;
    for (size_t i = 0; i < n4; i++) any4 += rows[i].group != -1;
    assert_int_equal(any4, 115);
    printf("default groups: animals %zu vehicles %zu food %zu indoor %zu, ambiguous %zu, none %zu\n",
           s.available[0], s.available[1], s.available[2], s.available[3], amb, none);

    /* excluding person drops every image with a person */
    static const char *const excl[] = {"person", NULL};
    o.exclude = excl;
    coco_sample_stats s2;
    if (coco_group_counts(d, &o, &s2, &err)) fail_msg("%s", err.msg);
    assert_true(s2.n_images_excluded > 0);
    for (int k = 0; k < 4; k++) assert_true(s2.available[k] <= s.available[k]);
    coco_free(d);
}

static char *manifest_text(const coco_data *d, const coco_sample_opts *o, coco_sample_stats *s, const char *name) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    rs_manifest *m = rs_manifest_new(g_tmp);
    rs_err err = {0};
    if (coco_sample(d, o, m, s, &err)) fail_msg("%s", err.msg);
    if (rs_manifest_write(m, path, &err)) fail_msg("%s", err.msg);
    rs_manifest_free(m);
    char *buf;
    size_t len;
    if (rs_read_file(path, 1 << 24, &buf, &len, &err)) fail_msg("%s", err.msg);
    return buf;
}

/* The concept probes' control-task type (coco_image_type) on the bundled sample: the rule of
 * docs/probes.md, checked image by image against tools/reference/gen_coco_types.py
 * (tests/fixtures/coco/sample_types.json, 24 images, 2 decided by the tie rule); coco_sample
 * with type_column writes it as a manifest column on every row of the image. */
static void test_image_types(void **st) {
    (void)st;
    rs_err err = {0};
    coco_data *d = load_path("examples/data/coco-sample/annotations/instances_train2017.json");
    if (coco_merge(d, load_path("examples/data/coco-sample/annotations/instances_val2017.json"), &err))
        fail_msg("merge: %s", err.msg);
    assert_int_equal(coco_set_images_dir(d, "examples/data/coco-sample/train2017", &err), 0);
    coco_group three[3] = {{"animals", G_ANIMAL}, {"vehicles", G_VEHICLE}, {"food", G_FOOD}};
    coco_sample_opts o;
    coco_sample_defaults(&o);
    o.groups = three;
    o.n_groups = 3;
    o.n_per_group = 8;
    o.include_captions = 0;
    cJSON *j;
    if (rs_json_load("tests/fixtures/coco/sample_types.json", 1 << 20, &j, &err)) fail_msg("%s", err.msg);
    const cJSON *im;
    int n = 0;
    cJSON_ArrayForEach(im, cJSON_GetObjectItemCaseSensitive(j, "images")) {
        int64_t id = jint(im, "image_id");
        int g = (int)jint(im, "group");
        assert_int_equal(coco_image_group(d, id, &o), g);
        long t = coco_image_type(d, id, &o, g);
        assert_true(t >= 0);
        if (strcmp(d->categories[t].name, jstr(im, "category")))
            fail_msg("image %lld: type %s, reference %s", (long long)id, d->categories[t].name, jstr(im, "category"));
        n++;
    }
    assert_int_equal(n, 24);
    /* no group filter: every annotation counts; an unknown image has no type */
    assert_int_equal(coco_image_type(d, -5, &o, -1), -1);
    /* the manifest column */
    rs_manifest *m = rs_manifest_new(".");
    o.type_column = "category";
    if (coco_sample(d, &o, m, NULL, &err)) fail_msg("%s", err.msg);
    int col = rs_manifest_extra_col(m, "category");
    assert_true(col >= 0);
    assert_int_equal((int)m->n_rows, 24);
    for (size_t r = 0; r < m->n_rows; r++) {
        const char *want = NULL;
        cJSON_ArrayForEach(im, cJSON_GetObjectItemCaseSensitive(j, "images"))
            if (jint(im, "image_id") == m->rows[r].image_id) want = jstr(im, "category");
        assert_non_null(want);
        assert_string_equal(m->rows[r].extra[col], want);
    }
    rs_manifest_free(m);
    cJSON_Delete(j);
    coco_free(d);
}

static void test_sampling(void **st) {
    (void)st;
    TU_NEED_SHARED("data/coco/mini", "the 159-image COCO mini set");
    coco_data *d = load_mini();
    rs_err err = {0};
    coco_group three[3] = {{"animals", G_ANIMAL}, {"vehicles", G_VEHICLE}, {"food", G_FOOD}};
    coco_sample_opts o;
    coco_sample_defaults(&o);
    o.groups = three;
    o.n_groups = 3;
    o.n_per_group = 20;
    o.seed = 7;
    o.captions_per_image = 0; /* all 5 */
    coco_sample_stats s;
    snprintf(g_tmp, sizeof g_tmp, "%s", tu_tmpdir());
    char *a = manifest_text(d, &o, &s, "a.csv");
    char *b = manifest_text(d, &o, &s, "b.csv");
    assert_string_equal(a, b); /* same seed → byte-identical manifest */
    for (int g = 0; g < 3; g++) {
        assert_int_equal(s.taken[g], 20);
        assert_int_equal(s.split_count[g][0], 14); /* round(20*0.7) */
        assert_int_equal(s.split_count[g][1], 3);  /* round(20*0.15) */
        assert_int_equal(s.split_count[g][2], 3);
    }
    o.seed = 8;
    char *c = manifest_text(d, &o, &s, "c.csv");
    assert_true(strcmp(a, c) != 0);
    free(a);
    free(b);
    free(c);

    /* read back: 60 images + 300 captions; all rows of an image share label and split;
     * labels agree with the Python-derived table; every image file exists */
    char path[600];
    snprintf(path, sizeof path, "%s/a.csv", g_tmp);
    rs_manifest *m;
    if (rs_manifest_load(path, &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m->n_rows, 60 * 6);
    if (rs_manifest_check_images(m, NULL, &err)) fail_msg("%s", err.msg);
    const char *const *gsc[3] = {G_ANIMAL, G_VEHICLE, G_FOOD};
    tsv_row rows[200];
    size_t n = tsv_groups(gsc, 3, rows);
    size_t n_img = 0;
    for (size_t i = 0; i < m->n_rows; i++) {
        const rs_manifest_row *r = &m->rows[i];
        int want = -9;
        for (size_t k = 0; k < n; k++)
            if (rows[k].id == r->image_id) want = rows[k].group;
        assert_true(want >= 0);
        assert_string_equal(r->label, three[want].name);
        if (r->modality == RS_MODALITY_IMAGE) {
            n_img++;
            assert_int_equal(r->caption_id, -1);
            assert_non_null(strstr(r->path, r->file_name));
        } else {
            assert_true(r->caption_id >= 0);
            /* the image row of this caption precedes it and has the same split */
            size_t j = i;
            while (j > 0 && m->rows[j].modality != RS_MODALITY_IMAGE) j--;
            assert_int_equal(m->rows[j].image_id, r->image_id);
            assert_string_equal(m->rows[j].split, r->split);
        }
    }
    assert_int_equal(n_img, 60);
    rs_manifest_free(m);

    /* too few: 25 food images < 30 → error listing the counts; allow_fewer → 24 each */
    o.n_per_group = 30;
    rs_manifest *m2 = rs_manifest_new(g_tmp);
    assert_int_equal(coco_sample(d, &o, m2, &s, &err), -1);
    if (!strstr(err.msg, "animals 24") || !strstr(err.msg, "food 25")) fail_msg("message: %s", err.msg);
    o.allow_fewer = 1;
    if (coco_sample(d, &o, m2, &s, &err)) fail_msg("%s", err.msg);
    for (int g = 0; g < 3; g++) assert_int_equal(s.taken[g], 24);
    rs_manifest_free(m2);

    /* unknown supercategory → error naming it */
    static const char *const bogus[] = {"animall", NULL};
    coco_group bad[1] = {{"x", bogus}};
    o.groups = bad;
    o.n_groups = 1;
    assert_int_equal(coco_group_counts(d, &o, &s, &err), -1);
    assert_non_null(strstr(err.msg, "animall"));
    coco_free(d);
}

static void test_prng_reference_values(void **st) {
    (void)st;
    /* SplitMix64 from seed 1234567: the published test vector of Rosetta Code's
     * "Pseudo-random numbers/Splitmix64" task (also reproduced with Python integers) */
    uint64_t s = 1234567;
    assert_true(rs_splitmix64(&s) == 6457827717110365317ULL);
    assert_true(rs_splitmix64(&s) == 3203168211198807973ULL);
    assert_true(rs_splitmix64(&s) == 9817491932198370423ULL);
    assert_true(rs_splitmix64(&s) == 4593380528125082431ULL);
    assert_true(rs_splitmix64(&s) == 16408922859458223821ULL);
    for (int i = 0; i < 1000; i++) assert_true(rs_rand_below(&s, 7) < 7);
}

static void expect_parse_error(const char *json, const char *needle) {
    char path[600];
    snprintf(path, sizeof path, "%s/bad_coco.json", tu_tmpdir());
    FILE *f = fopen(path, "wb");
    fputs(json, f);
    fclose(f);
    coco_data *d = NULL;
    rs_err err = {0};
    assert_int_equal(coco_load(path, &d, &err), -1);
    assert_null(d);
    if (!strstr(err.msg, needle) || !strstr(err.msg, "bad_coco.json"))
        fail_msg("error \"%s\" lacks \"%s\" or the file name", err.msg, needle);
}

static void test_malformed(void **st) {
    (void)st;
    expect_parse_error("", "empty file");
    expect_parse_error("[1,2]", "top level must be a JSON object");
    expect_parse_error("{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 4, \"height\": 4}", "line 1");
    expect_parse_error("{\"images\": [{\"id\": 1 \"file_name\": \"a.jpg\"}]}", "expected ',' or '}'");
    expect_parse_error("{\"images\": [{\"id\": 1.5, \"file_name\": \"a.jpg\", \"width\": 4, \"height\": 4}]}",
                       "images[].id: expected an integer");
    expect_parse_error("{\"images\": [{\"id\": 1, \"width\": 4, \"height\": 4}]}", "missing \"file_name\"");
    expect_parse_error("{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 4, \"height\": 4},\n"
                       "{\"id\": 1, \"file_name\": \"b.jpg\", \"width\": 4, \"height\": 4}]}",
                       "duplicate image id 1");
    expect_parse_error("{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 4, \"height\": 4}],\n"
                       "\"annotations\": [{\"id\": 5, \"image_id\": 2, \"caption\": \"x\"}]}",
                       "refers to image_id 2");
    expect_parse_error("{\"images\": [], \"categories\": [],\n\"annotations\": [{\"id\": 5, \"image_id\": 2, "
                       "\"category_id\": 3, \"segmentation\": [[1,2,3,]]}]}",
                       "line 2");
    expect_parse_error("{\"info\": {\"a\": [1, 2}, \"images\": []}", "expected ',' or ']'");
    expect_parse_error("{\"images\": [{\"id\": 1, \"file_name\": \"a\\q.jpg\", \"width\": 4, \"height\": 4}]}",
                       "invalid escape");
    expect_parse_error("{\"images\": [{\"id\": 1, \"file_name\": \"a\xff.jpg\", \"width\": 4, \"height\": 4}]}",
                       "UTF-8");
    expect_parse_error("{\"images\": []} x", "trailing data");
    expect_parse_error("{\"licenses\": []}", "not a COCO annotation file");
    expect_parse_error("{\"images\": {}}", "must be an array");
    /* deep nesting inside a skipped value is bounded, not a stack overflow */
    char deep[400];
    strcpy(deep, "{\"info\": ");
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    strcat(deep, "}");
    expect_parse_error(deep, "nesting deeper");
}

static void test_escapes_decoded(void **st) {
    (void)st;
    const char *j = "{\"images\": [{\"id\": 3, \"file_name\": \"a\\u00e9\\ud83d\\ude00\\\"\\n.jpg\", \"width\": 4,"
                    " \"height\": 5, \"extra\": {\"x\": [true, false, null, -1e-3]}}],"
                    " \"annotations\": [{\"id\": 1, \"image_id\": 3, \"caption\": \" A  cat\\t\"}]}";
    coco_data *d;
    rs_err err = {0};
    if (coco_parse(j, strlen(j), "inline", &d, &err)) fail_msg("%s", err.msg);
    assert_string_equal(d->images[0].file_name, "a\xc3\xa9\xf0\x9f\x98\x80\"\n.jpg");
    assert_string_equal(d->captions[0].caption, " A  cat\t");
    coco_free(d);
}

static void test_captions_for_other_images(void **st) {
    (void)st;
    TU_NEED_SHARED("data/coco/mini", "the 159-image COCO mini set");
    rs_err err = {0};
    /* train instances + val captions: no image in common */
    coco_data *tr = load_ok("data/coco/mini/annotations/instances_train2017.json");
    assert_int_equal(coco_add_captions(tr, load_ok("data/coco/mini/annotations/captions_val2017.json"), NULL, &err),
                     -1);
    assert_non_null(strstr(err.msg, "covers none"));
    /* val instances + the full val captions (5,000 images): overlap, the other 4,921 images' captions dropped */
    coco_data *va = load_ok("data/coco/mini/annotations/instances_val2017.json");
    size_t dropped = 0;
    if (coco_add_captions(va, load_ok("data/coco/captions_val2017_full.json"), &dropped, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(va->n_captions + dropped, 25014);
    assert_true(va->n_captions >= 79 * 5);
    for (size_t i = 0; i < va->n_images; i++) {
        size_t b, e;
        coco_image_captions(va, va->images[i].id, &b, &e);
        assert_true(e - b >= 5);
    }
    coco_free(tr);
    coco_free(va);
}

/* Every truncation of a real file is an error (never a crash or a partial success), and
 * random byte corruption never crashes (run under ASan in CI). */
static void test_truncation_and_corruption(void **st) {
    (void)st;
    TU_NEED_SHARED("data/coco/mini", "the 159-image COCO mini set");
    char *buf;
    size_t n;
    rs_err err = {0};
    if (rs_read_file(tu_shared("data/coco/mini/annotations/instances_val2017.json"), 1 << 20, &buf, &n, &err))
        fail_msg("%s", err.msg);
    uint64_t s = 42;
    for (int t = 0; t < 300; t++) {
        size_t k = (size_t)rs_rand_below(&s, n - 1); /* strictly shorter than the file */
        coco_data *d = NULL;
        if (!coco_parse(buf, k, "trunc", &d, &err)) fail_msg("truncation at %zu of %zu parsed", k, n);
        assert_null(d);
    }
    char *copy = malloc(n);
    for (int t = 0; t < 300; t++) {
        memcpy(copy, buf, n);
        for (int f = 0; f < 4; f++) copy[rs_rand_below(&s, n)] = (char)rs_rand_below(&s, 256);
        coco_data *d = NULL;
        if (!coco_parse(copy, n, "flip", &d, &err)) coco_free(d);
    }
    free(copy);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_parser_matches_cjson_on_bundled_sample),
        cmocka_unit_test(test_stream_parser_matches_cjson),
        cmocka_unit_test(test_mini_totals),
        cmocka_unit_test(test_group_counts),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_prng_reference_values),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_escapes_decoded),
        cmocka_unit_test(test_captions_for_other_images),
        cmocka_unit_test(test_truncation_and_corruption),
        cmocka_unit_test(test_image_types),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
