/* `reprshift run` refuses a config whose probe split leaves fewer test groups (images) than
 * probes.min_test_groups (default 50): one error right after the dataset stage, before
 * any extraction, with the numbers (test groups, images, classes, test fraction, minimum)
 * and how to raise them; lowering the minimum explicitly lets the same run finish. */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reprshift/fileio.h"

static void write_cfg(const char *path, const char *coco, const char *probes) {
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"output_dir\": \"unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\",\n"
            "            \"vlm\": \"%s/examples/quickstart/models/paligemma-tiny\"},\n"
            " \"layers\": [1],\n"
            " \"dataset\": {\"instances\": [\"%s/annotations/instances_train2017.json\", \"%s/annotations/instances_val2017.json\"],\n"
            "             \"captions\": [\"%s/annotations/captions_train2017.json\", \"%s/annotations/captions_val2017.json\"],\n"
            "             \"images\": [\"%s/train2017\", \"%s/val2017\"],\n"
            "             \"groups\": {\"animals\": [\"animal\"], \"vehicles\": [\"vehicle\"]}, \"n_per_group\": 5},\n"
            " \"probes\": %s}\n",
            cwd, cwd, coco, coco, coco, coco, coco, coco, probes);
    fclose(f);
}

static void test_too_few_test_groups(void **state) {
    (void)state;
    char coco[PATH_MAX], cfg[PATH_MAX + 16], out[PATH_MAX + 16], acts[PATH_MAX + 64];
    assert_non_null(realpath("examples/data/coco-sample", coco));
    snprintf(cfg, sizeof cfg, "%s/c.json", tu_tmpdir());
    snprintf(out, sizeof out, "%s/run", tu_tmpdir());
    write_cfg(cfg, coco, "{\"which\": [\"concept\"], \"seeds\": 1, \"folds\": 2, \"bootstrap\": 10}");
    char *msg = NULL;
    assert_int_equal(tu_run_pipeline(cfg, out, 0, &msg), 1);
    printf("  %s\n", msg);
    /* 2 classes x 5 images: round(0.2 x 5) = 1 test image per class -> 2 test groups */
    assert_non_null(strstr(msg, "each split leaves 2 test groups (images) of 10 images in 2 classes at "
                                "probes.test_frac 0.2, fewer than probes.min_test_groups = 50"));
    /* ceil(50 / 2) = 25 per class: round(0.2 n) >= 25 needs n >= 123 */
    assert_non_null(strstr(msg, "about 123 images per class"));
    assert_non_null(strstr(msg, "dataset.n_per_group"));
    assert_non_null(strstr(msg, "lower probes.min_test_groups"));
    free(msg);
    snprintf(acts, sizeof acts, "%s/results/probes.json", out);
    assert_false(rs_path_exists(acts));
    assert_true(tu_count_done(out) <= 1); /* the dataset stage at most: nothing extracted */
    /* the same run with the minimum lowered explicitly (a demo) completes */
    write_cfg(cfg, coco,
              "{\"which\": [\"concept\"], \"seeds\": 1, \"folds\": 2, \"bootstrap\": 10, \"permutations\": 10, "
              "\"min_test_groups\": 2}");
    assert_int_equal(tu_run_pipeline(cfg, out, 0, &msg), 0);
    free(msg);
    assert_true(rs_path_exists(acts));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_too_few_test_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
