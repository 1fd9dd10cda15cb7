/* `reprshift run` on bad input (src/pipeline/): each case must fail with a clear message
 * that names the problem, leave no done-marker (nothing complete-looking), and the run
 * must succeed once the input is fixed:
 *  - a manifest listing an image file that does not exist;
 *  - a captions file for other images than the instances file (train/val mix-up);
 *  - a config asking for hooks the models do not have (layer 9 of a 4-layer model);
 *  - an SAE that reads a hook which is not captured;
 *  - a second run on a folder that a run is using (lock).
 * Runs happen in forked children (no OpenMP in the test process). Data: bundled tiny
 * models + the bundled COCO sample (examples/data/coco-sample). */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reprshift/fileio.h"
#include "reprshift/pipeline.h"

static char CWD[PATH_MAX], COCO[PATH_MAX];

static int setup(void **state) {
    (void)state;
    if (!getcwd(CWD, sizeof CWD) || !realpath("examples/data/coco-sample", COCO)) return -1;
    return 0;
}

/* A config in dir/NAME.json: the bundled models, layer(s) `layers`, the given dataset
 * object and extra top-level keys. */
static void write_cfg(const char *path, const char *layers, const char *dataset, const char *extra) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"output_dir\": \"unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\",\n"
            "            \"vlm\": \"%s/examples/quickstart/models/paligemma-tiny\"},\n"
            " \"layers\": %s, %s\n"
            " \"dataset\": %s,\n"
            " \"probes\": {\"seeds\": 1, \"folds\": 2, \"bootstrap\": 20, \"min_test_groups\": 1, \"permutations\": 10, \"which\": [\"concept\", \"modality\"]}}\n",
            CWD, CWD, layers, extra ? extra : "", dataset);
    fclose(f);
}

static int run(const char *cfg, const char *out, char **msg) { return tu_run_pipeline(cfg, out, 0, msg); }

static int n_done(const char *out) { return tu_count_done(out); }

static int exists_in(const char *out, const char *rel) {
    char p[PATH_MAX + 256];
    snprintf(p, sizeof p, "%s/%s", out, rel);
    return rs_path_exists(p);
}

static void test_missing_image_in_manifest(void **state) {
    (void)state;
    char dir[PATH_MAX], man[PATH_MAX + 16], cfg[PATH_MAX + 16], out[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(man, sizeof man, "%s/m.csv", dir);
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    /* the first 9 images of the sample, by name */
    char img[9][256];
    {
        char vd[PATH_MAX + 16];
        snprintf(vd, sizeof vd, "%s/val2017", COCO);
        struct dirent **ents;
        int ne = scandir(vd, &ents, NULL, alphasort), k = 0;
        assert_true(ne > 9);
        for (int i = 0; i < ne; i++) {
            if (k < 9 && strstr(ents[i]->d_name, ".jpg")) snprintf(img[k++], sizeof img[0], "%.200s", ents[i]->d_name);
            free(ents[i]);
        }
        free(ents);
        assert_int_equal(k, 9);
    }
    FILE *f = fopen(man, "w");
    assert_non_null(f);
    fprintf(f, "modality,input,label,file_name\n");
    for (int i = 0; i < 9; i++) {
        const char *lab = i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "c";
        /* row 5's image is missing (relative: resolves next to the manifest) */
        if (i == 5) fprintf(f, "image,missing_photo.jpg,%s,missing_photo.jpg\n", lab);
        else fprintf(f, "image,%s/val2017/%s,%s,%s\n", COCO, img[i], lab, img[i]);
        fprintf(f, "text,a photo number %d of class %s,%s,%s\n", i, lab, lab, i == 5 ? "missing_photo.jpg" : img[i]);
    }
    fclose(f);
    char ds[PATH_MAX + 64];
    snprintf(ds, sizeof ds, "{\"manifest\": \"%s\"}", man);
    write_cfg(cfg, "[1]", ds, NULL);
    char *msg;
    assert_int_equal(run(cfg, out, &msg), 1);
    printf("  %s\n", msg);
    assert_non_null(strstr(msg, "m.csv"));
    assert_non_null(strstr(msg, "missing_photo.jpg"));
    free(msg);
    assert_int_equal(n_done(out), 0);
    assert_false(exists_in(out, "dataset/manifest.csv"));
    /* fixed: the file appears */
    char src[PATH_MAX + 300];
    snprintf(src, sizeof src, "%s/val2017/%s", COCO, img[5]);
    assert_int_equal(tu_system("cp '%s' '%s/missing_photo.jpg'", src, dir), 0);
    assert_int_equal(run(cfg, out, &msg), 0);
    free(msg);
    assert_true(exists_in(out, "report.html"));
    assert_true(exists_in(out, "stages/report.done"));
}

static void test_captions_for_other_images(void **state) {
    (void)state;
    char dir[PATH_MAX], cfg[PATH_MAX + 16], out[PATH_MAX + 16], ds[4 * PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    const char *fmt = "{\"instances\": \"%s/annotations/instances_train2017.json\", "
                      "\"captions\": \"%s/annotations/captions_%s2017.json\", \"images\": \"%s/train2017\", "
                      "\"groups\": {\"animals\": [\"animal\"], \"vehicles\": [\"vehicle\"]}, \"n_per_group\": 4}";
    snprintf(ds, sizeof ds, fmt, COCO, COCO, "val", COCO);
    write_cfg(cfg, "[1]", ds, NULL);
    char *msg;
    assert_int_equal(run(cfg, out, &msg), 1);
    printf("  %s\n", msg);
    assert_non_null(strstr(msg, "captions_val2017.json"));
    assert_non_null(strstr(msg, "covers none"));
    free(msg);
    assert_int_equal(n_done(out), 0);
    assert_false(exists_in(out, "dataset/manifest.csv"));
    snprintf(ds, sizeof ds, fmt, COCO, COCO, "train", COCO);
    write_cfg(cfg, "[1]", ds, NULL);
    assert_int_equal(run(cfg, out, &msg), 0);
    free(msg);
    assert_true(exists_in(out, "report.html"));
}

static void test_hooks_the_models_lack(void **state) {
    (void)state;
    char dir[PATH_MAX], cfg[PATH_MAX + 16], out[PATH_MAX + 16], ds[4 * PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(ds, sizeof ds, "{\"instances\": \"%s/annotations/instances_val2017.json\", \"captions\": "
                            "\"%s/annotations/captions_val2017.json\", \"images\": \"%s/val2017\", \"n_per_group\": 3, "
                            "\"groups\": {\"animals\": [\"animal\"], \"vehicles\": [\"vehicle\"]}}",
             COCO, COCO, COCO);
    char *msg;
    write_cfg(cfg, "[9]", ds, NULL); /* the models have 4 layers */
    assert_int_equal(run(cfg, out, &msg), 1);
    printf("  %s\n", msg);
    assert_non_null(strstr(msg, "blocks.9.hook_resid_post"));
    assert_non_null(strstr(msg, "models.llm"));
    free(msg);
    write_cfg(cfg, "[1]", ds, "\"hooks\": [\"blocks.{layer}.hook_resid_pots\"],");
    assert_int_equal(run(cfg, out, &msg), 1);
    printf("  %s\n", msg);
    assert_non_null(strstr(msg, "hook_resid_pots"));
    free(msg);
    /* an SAE that reads a hook that is not captured */
    char extra[PATH_MAX + 128];
    snprintf(extra, sizeof extra, "\"saes\": {\"path\": \"%s/examples/quickstart/models/sae/blocks.2.hook_resid_post\"},",
             CWD);
    write_cfg(cfg, "[1]", ds, extra);
    assert_int_equal(run(cfg, out, &msg), 1);
    printf("  %s\n", msg);
    assert_non_null(strstr(msg, "blocks.2.hook_resid_post"));
    assert_non_null(strstr(msg, "not among the captured hooks"));
    free(msg);
    assert_int_equal(n_done(out), 0);
    assert_false(exists_in(out, "dataset/manifest.csv"));
    assert_false(exists_in(out, "acts/llm_text/index.json"));
}

static void test_second_run_on_a_busy_folder(void **state) {
    (void)state;
    char dir[PATH_MAX], cfg[PATH_MAX + 16], out[PATH_MAX + 16], lk[PATH_MAX + 32], ds[4 * PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(lk, sizeof lk, "%s/.lock", out);
    snprintf(ds, sizeof ds, "{\"instances\": \"%s/annotations/instances_val2017.json\", \"captions\": "
                            "\"%s/annotations/captions_val2017.json\", \"images\": \"%s/val2017\", \"n_per_group\": 3}",
             COCO, COCO, COCO);
    write_cfg(cfg, "[1]", ds, NULL);
    assert_int_equal(mkdir(out, 0777), 0);
    int fd = open(lk, O_RDWR | O_CREAT, 0666);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0); /* as a running `reprshift run` holds it */
    char *msg;
    assert_int_equal(run(cfg, out, &msg), 1);
    printf("  %s\n", msg);
    assert_non_null(strstr(msg, "another `reprshift run` is using this run folder"));
    free(msg);
    close(fd);
    assert_int_equal(n_done(out), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_image_in_manifest),
        cmocka_unit_test(test_captions_for_other_images),
        cmocka_unit_test(test_hooks_the_models_lack),
        cmocka_unit_test(test_second_run_on_a_busy_folder),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
