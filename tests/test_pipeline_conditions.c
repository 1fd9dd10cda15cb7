/* `reprshift run`'s caption conditions (docs/pipeline.md) on the bundled tiny models and
 * the bundled COCO sample (examples/data/coco-sample; no ../shared needed):
 *  - a VLM whose tokenizer gives other ids for the captions than the LLM's: the run stops
 *    with one error saying the conditions cannot be aligned, leaves no condition store
 *    marked done, and succeeds once models.tokenizer makes both read the same ids;
 *  - 'conditions' without llm / vlm_text, or vlm_blank without vlm_caption: config errors;
 *  - one label only: no mismatched image exists, so vlm_mismatch is skipped (said in the
 *    log) and conditions.json has no c-d pair; the other pairs are there.
 * Expected values of the condition stores themselves are in test_pipeline_golden.c. */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "reprshift/pipeline.h"

static char CWD[PATH_MAX];

static int setup(void **state) {
    (void)state;
    return getcwd(CWD, sizeof CWD) ? 0 : -1;
}

/* Config at path: vlm folder `vlm`, the bundled sample with `groups`, extra top-level keys. */
static void write_cfg(const char *path, const char *vlm, const char *groups, int n_per_group, const char *extra) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    const char *S = "examples/data/coco-sample";
    fprintf(f,
            "{\"output_dir\": \"unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\", \"vlm\": \"%s\"},\n"
            " \"layers\": [1], %s\n"
            " \"dataset\": {\"instances\": [\"%s/%s/annotations/instances_train2017.json\"],\n"
            "             \"captions\": [\"%s/%s/annotations/captions_train2017.json\"],\n"
            "             \"images\": [\"%s/%s/train2017\"], \"groups\": %s, \"n_per_group\": %d,\n"
            "             \"allow_fewer\": true},\n"
            " \"probes\": {\"seeds\": 1, \"folds\": 2, \"bootstrap\": 20, \"min_test_groups\": 1, \"permutations\": 10, \"which\": [\"concept\"]}}\n",
            CWD, vlm, extra ? extra : "", CWD, S, CWD, S, CWD, S, groups, n_per_group);
    fclose(f);
}

static int exists_in(const char *out, const char *rel) {
    char p[PATH_MAX + 256];
    snprintf(p, sizeof p, "%s/%s", out, rel);
    return rs_path_exists(p);
}

/* Copy of the tiny PaliGemma whose tokenizer.json has the ids of "▁a" and "▁the" swapped:
 * the same pieces, other ids. */
static void make_swapped_vlm(const char *dst) {
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cp -r '%s/examples/quickstart/models/paligemma-tiny' '%s'", CWD, dst);
    assert_int_equal(system(cmd), 0);
    char tp[PATH_MAX + 32];
    snprintf(tp, sizeof tp, "%s/tokenizer.json", dst);
    char *buf;
    size_t n;
    rs_err err;
    if (rs_read_file(tp, 1u << 26, &buf, &n, &err)) fail_msg("%s", err.msg);
    char *a = strstr(buf, "\"\xE2\x96\x81" "a\": 339"), *t = strstr(buf, "\"\xE2\x96\x81the\": 361");
    assert_non_null(a);
    assert_non_null(t);
    memcpy(strstr(a, "339"), "361", 3);
    memcpy(strstr(t, "361"), "339", 3);
    FILE *f = fopen(tp, "w");
    assert_non_null(f);
    fwrite(buf, 1, n, f);
    fclose(f);
    free(buf);
}

static void test_captions_tokenized_differently_are_refused(void **state) {
    (void)state;
    char dir[PATH_MAX], vlm[PATH_MAX + 16], cfg[PATH_MAX + 16], out[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(vlm, sizeof vlm, "%s/pg", dir);
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    make_swapped_vlm(vlm);
    const char *groups = "{\"animals\": [\"animal\"], \"vehicles\": [\"vehicle\"]}";
    write_cfg(cfg, vlm, groups, 4, NULL);
    char *msg = NULL;
    assert_int_not_equal(tu_run_pipeline(cfg, out, 0, &msg), 0);
    assert_non_null(msg);
    printf("  error: %s\n", msg);
    assert_non_null(strstr(msg, "cannot be aligned"));
    assert_non_null(strstr(msg, "manifest.csv:"));
    free(msg);
    assert_false(exists_in(out, "stages/store_vlm_caption.done"));
    assert_false(exists_in(out, "results/conditions.json"));
    /* one tokenizer for both (models.tokenizer): the same ids, the run completes */
    char *buf;
    size_t n;
    rs_err err;
    if (rs_read_file(cfg, 1u << 20, &buf, &n, &err)) fail_msg("%s", err.msg);
    char *vk = strstr(buf, "\"vlm\":");
    assert_non_null(vk);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fwrite(buf, 1, (size_t)(vk - buf), f);
    fprintf(f, "\"tokenizer\": \"%s/examples/quickstart/models/gemma2-tiny/tokenizer.json\", ", CWD);
    fputs(vk, f);
    fclose(f);
    free(buf);
    msg = NULL;
    int rc = tu_run_pipeline(cfg, out, 0, &msg);
    if (rc) fail_msg("run with models.tokenizer failed: %s", msg ? msg : "?");
    free(msg);
    assert_true(exists_in(out, "results/conditions.json"));
}

static void test_condition_lists_checked(void **state) {
    (void)state;
    char dir[PATH_MAX], cfg[PATH_MAX + 16], out[PATH_MAX + 16], vlm[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(vlm, sizeof vlm, "%s/examples/quickstart/models/paligemma-tiny", CWD);
    const char *groups = "{\"animals\": [\"animal\"], \"vehicles\": [\"vehicle\"]}";
    struct {
        const char *extra, *needle;
    } cases[] = {
        {"\"conditions\": [\"vlm_text\", \"vlm_caption\"],", "must include \"llm\" and \"vlm_text\""},
        {"\"conditions\": [\"llm\", \"vlm_text\", \"vlm_blank\"],", "add \"vlm_caption\""},
        {"\"conditions\": [\"llm\", \"vlm_text\", \"vlm_captoin\"],", "vlm_caption"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_cfg(cfg, vlm, groups, 4, cases[k].extra);
        char *msg = NULL;
        assert_int_not_equal(tu_run_pipeline(cfg, out, 0, &msg), 0);
        assert_non_null(msg);
        printf("  error: %s\n", msg);
        assert_non_null(strstr(msg, cases[k].needle));
        assert_non_null(strstr(msg, "c.json"));
        free(msg);
        assert_false(exists_in(out, "stages"));
    }
}

static void test_one_label_has_no_mismatch(void **state) {
    (void)state;
    char dir[PATH_MAX], cfg[PATH_MAX + 16], out[PATH_MAX + 16], vlm[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(vlm, sizeof vlm, "%s/examples/quickstart/models/paligemma-tiny", CWD);
    write_cfg(cfg, vlm, "{\"animals\": [\"animal\"]}", 4, NULL);
    char *msg = NULL;
    int rc = tu_run_pipeline(cfg, out, 0, &msg);
    if (rc) fail_msg("run failed: %s", msg ? msg : "?");
    free(msg);
    assert_false(exists_in(out, "acts/vlm_mismatch"));
    {
        char lp[PATH_MAX + 32], *log;
        size_t ln;
        rs_err e;
        snprintf(lp, sizeof lp, "%s/run.log", out);
        if (rs_read_file(lp, 1u << 24, &log, &ln, &e)) fail_msg("%s", e.msg);
        assert_non_null(strstr(log, "vlm_mismatch: skipped, every image has the same label"));
        free(log);
    }
    assert_true(exists_in(out, "acts/vlm_blank"));
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/results/conditions.json", out);
    cJSON *j;
    rs_err err;
    if (rs_json_load(p, 1 << 24, &j, &err)) fail_msg("%s", err.msg);
    const char *want[] = {"a-b", "b-c", "a-c", "c-e"};
    cJSON *pairs = cJSON_GetObjectItem(j, "pairs");
    assert_int_equal(cJSON_GetArraySize(pairs), 4);
    for (int q = 0; q < 4; q++) assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(pairs, q), "id")->valuestring, want[q]);
    cJSON_Delete(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captions_tokenized_differently_are_refused),
        cmocka_unit_test(test_condition_lists_checked),
        cmocka_unit_test(test_one_label_has_no_mismatch),
    };
    return tu_exit(cmocka_run_group_tests(tests, setup, NULL));
}
