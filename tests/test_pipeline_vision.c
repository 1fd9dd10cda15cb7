/* `reprshift run` with `vision_hooks` (src/pipeline/) on the small test config (bundled
 * tiny models + the bundled COCO sample, examples/data/coco-sample, both splits):
 *  - the image stores hold vision.ln_post (vision width) and projector.hook_out (text
 *    width), one row per input, and the caption stores hold no vision tensor;
 *  - the pooled vision.ln_post / projector.hook_out rows of an image equal the mean over the
 *    patches of what `reprshift extract --pool none` writes for that image (the extract path
 *    is checked against transformers goldens elsewhere);
 *  - probes.json lists the vision probes under "vision" (concept + every attribute probe,
 *    one point per vision hook, no layer) and the report shows them with n and CI;
 *  - with pool "last" the vision rows are still the patch mean (same as with "mean");
 *  - changing vision_hooks rebuilds the image stores and leaves the caption stores alone;
 *  - an unknown vision hook and a decoder hook in vision_hooks fail before any work with a
 *    message listing the valid names, leaving no done-marker.
 * Runs happen in forked children (no OpenMP in the test process). */
#include "testutil.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "reprshift/model_config.h"
#include "reprshift/pipeline.h"
#include "reprshift/safetensors.h"
#include "reprshift/store.h"

static char CWD[PATH_MAX], COCO[PATH_MAX], DIR_[PATH_MAX], RUN[PATH_MAX + 16];

#define VLM_REL "examples/quickstart/models/paligemma-tiny"

/* The small config with the given vision_hooks JSON array (NULL: key absent) and pool. */
static void write_cfg_pool(const char *path, const char *vision_hooks, const char *pool) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"name\": \"vision test\", \"output_dir\": \"unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\",\n"
            "            \"vlm\": \"%s/" VLM_REL "\", \"batch_tokens\": 256},\n"
            " \"layers\": [1, 3], \"hooks\": [\"blocks.{layer}.hook_resid_post\"], \"pool\": \"%s\",\n"
            " %s%s%s\n"
            " \"dataset\": {\"instances\": [\"%s/annotations/instances_train2017.json\",\n"
            "                           \"%s/annotations/instances_val2017.json\"],\n"
            "             \"captions\": [\"%s/annotations/captions_train2017.json\",\n"
            "                          \"%s/annotations/captions_val2017.json\"],\n"
            "             \"images\": [\"%s/train2017\", \"%s/val2017\"],\n"
            "             \"groups\": {\"animals\": [\"animal\"], \"vehicles\": [\"vehicle\"], \"food\": [\"food\"]},\n"
            "             \"n_per_group\": 6, \"seed\": 3},\n"
            " \"edits\": [{\"name\": \"brightness\", \"values\": [0.6]}, {\"name\": \"blur\", \"values\": [2]}],\n"
            " \"probes\": {\"seeds\": 2, \"folds\": 2, \"bootstrap\": 50, \"min_test_groups\": 1, \"permutations\": 20}}\n",
            CWD, CWD, pool, vision_hooks ? "\"vision_hooks\": " : "", vision_hooks ? vision_hooks : "",
            vision_hooks ? "," : "", COCO, COCO, COCO, COCO, COCO, COCO);
    fclose(f);
}

static void write_cfg(const char *path, const char *vision_hooks) { write_cfg_pool(path, vision_hooks, "mean"); }

static int run(const char *cfg, const char *out, char **msg) { return tu_run_pipeline(cfg, out, 4, msg); }

static int n_done(const char *out) { return tu_count_done(out); }

/* noinline: inlined, GCC 12 -O3 takes the returned buffer for the address of the local `buf`
 * (a false -Wdangling-pointer) */
__attribute__((noinline)) static char *slurp(const char *dir, const char *rel) {
    char p[2 * PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    char *buf = NULL;
    size_t n;
    rs_err e;
    if (rs_read_file(p, 64 << 20, &buf, &n, &e)) fail_msg("%s", e.msg);
    return buf;
}

/* Tensor `hook` of store acts/<store> of the run: new array, rows and width. */
static float *store_tensor_f32(const char *store, const char *hook, int64_t *rows, int64_t *w) {
    char p[2 * PATH_MAX];
    snprintf(p, sizeof p, "%s/acts/%s", RUN, store);
    store_reader *r = NULL;
    rs_err e = {0};
    float *x = NULL;
    if (store_reader_open(&r, p, &e) || store_read_f32(r, hook, &x, rows, w, &e)) {
        store_reader_close(r);
        free(x);
        return NULL;
    }
    store_reader_close(r);
    return x;
}

static int setup(void **state) {
    (void)state;
    if (!getcwd(CWD, sizeof CWD) || !realpath("examples/data/coco-sample", COCO)) return -1;
    snprintf(DIR_, sizeof DIR_, "%s", tu_tmpdir());
    snprintf(RUN, sizeof RUN, "%s/run", DIR_);
    char cfg[PATH_MAX + 16];
    snprintf(cfg, sizeof cfg, "%s/vision.json", DIR_);
    write_cfg(cfg, "[\"vision.ln_post\", \"projector.hook_out\"]");
    char *msg = NULL;
    int rc = run(cfg, RUN, &msg);
    if (rc) fprintf(stderr, "run failed: %s\n", msg);
    free(msg);
    return rc ? -1 : 0;
}

static void test_stores_hold_the_vision_hooks(void **state) {
    (void)state;
    paligemma_config pc;
    rs_err e = {0};
    char vlm[PATH_MAX + 64];
    snprintf(vlm, sizeof vlm, "%s/" VLM_REL, CWD);
    assert_int_equal(paligemma_config_load(vlm, &pc, &e), 0);
    assert_int_not_equal(pc.vision.hidden_size, pc.text.hidden_size); /* so the widths tell the hooks apart */
    int64_t n_img, w, r2, w2, n_ed, r3, w3;
    float *dec = store_tensor_f32("vlm_image", "blocks.1.hook_resid_post", &n_img, &w);
    assert_non_null(dec);
    assert_int_equal(n_img, 18); /* 3 groups x 6 images */
    free(dec);
    const char *hooks[2] = {"vision.ln_post", "projector.hook_out"};
    const int64_t width[2] = {pc.vision.hidden_size, pc.text.hidden_size};
    for (int h = 0; h < 2; h++) {
        float *x = store_tensor_f32("vlm_image", hooks[h], &r2, &w2);
        assert_non_null(x);
        assert_int_equal(r2, n_img);
        assert_int_equal(w2, width[h]);
        for (int64_t k = 0; k < r2 * w2; k++) assert_true(isfinite(x[k]));
        float *y = store_tensor_f32("vlm_edits", hooks[h], &n_ed, &w3);
        assert_non_null(y);
        assert_int_equal(n_ed, 2 * n_img); /* brightness 0.6 and blur 2 */
        assert_int_equal(w3, width[h]);
        /* an edit changes the image, so the pooled rows differ from the originals */
        assert_true(tu_max_abs_diff(x, y, (size_t)(r2 * w2)) > 1e-6);
        free(x);
        free(y);
        /* caption stores have no patches: no vision tensors */
        assert_null(store_tensor_f32("llm_text", hooks[h], &r3, &w3));
        assert_null(store_tensor_f32("vlm_text", hooks[h], &r3, &w3));
    }
    char *idx = slurp(RUN, "acts/vlm_image/index.json");
    assert_non_null(strstr(idx, "\"hooks\": \"blocks.1.hook_resid_post,blocks.3.hook_resid_post,vision.ln_post,"
                                "projector.hook_out\""));
    free(idx);
    idx = slurp(RUN, "acts/llm_text/index.json");
    assert_null(strstr(idx, "vision.ln_post"));
    free(idx);
}

/* The store's pooled rows of image 0 = the patch mean of `reprshift extract --pool none`. */
static void test_pooled_rows_match_extract(void **state) {
    (void)state;
    /* image 0's file name from the first row of the store's row index */
    char *rows = slurp(RUN, "acts/vlm_image/shard-00000.rows.jsonl");
    char *nl = strchr(rows, '\n');
    assert_non_null(nl);
    *nl = 0;
    cJSON *row = cJSON_Parse(rows);
    free(rows);
    assert_non_null(row);
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(row, "file_name");
    assert_true(cJSON_IsString(fn));
    char img[2 * PATH_MAX], out[PATH_MAX + 32];
    snprintf(img, sizeof img, "%s/val2017/%s", COCO, fn->valuestring);
    if (access(img, R_OK)) snprintf(img, sizeof img, "%s/train2017/%s", COCO, fn->valuestring);
    cJSON_Delete(row);
    snprintf(out, sizeof out, "%s/img0.safetensors", DIR_);
    const char *cli = getenv("RS_CLI");
    if (!cli) cli = "build/reprshift";
    assert_int_equal(tu_system("'%s' extract --model '%s/" VLM_REL "' --image '%s' --hook vision.ln_post,projector.hook_out "
                               "--pool none --out '%s' >/dev/null 2>&1",
                               cli, CWD, img, out),
                     0);
    st_set *st = NULL;
    rs_err e = {0};
    assert_int_equal(st_open(&st, out, &e), 0);
    const char *hooks[2] = {"vision.ln_post", "projector.hook_out"};
    for (int h = 0; h < 2; h++) {
        const st_tensor *t = st_get(st, hooks[h]);
        assert_non_null(t);
        assert_int_equal(t->ndim, 2);
        int64_t N = t->shape[0], W = t->shape[1], rows_n, w;
        float *all = st_to_f32_new(t);
        assert_non_null(all);
        float *mean = calloc((size_t)W, sizeof *mean);
        for (int64_t k = 0; k < W; k++) {
            double s = 0;
            for (int64_t i = 0; i < N; i++) s += all[i * W + k];
            mean[k] = (float)(s / (double)N);
        }
        float *x = store_tensor_f32("vlm_image", hooks[h], &rows_n, &w);
        assert_non_null(x);
        assert_int_equal(w, W);
        tu_assert_close_rel(mean, x, (size_t)W, 1e-5, hooks[h]); /* row 0 */
        free(x);
        free(mean);
        free(all);
    }
    st_close(st);
}

static void test_probes_and_report(void **state) {
    (void)state;
    char *pj = slurp(RUN, "results/probes.json");
    cJSON *j = cJSON_Parse(pj);
    free(pj);
    assert_non_null(j);
    const cJSON *vision = cJSON_GetObjectItemCaseSensitive(j, "vision");
    assert_true(cJSON_IsArray(vision));
    int seen_concept = 0, seen_brightness = 0, seen_blur = 0;
    const cJSON *T;
    cJSON_ArrayForEach(T, vision) {
        const char *task = cJSON_GetObjectItemCaseSensitive(T, "task")->valuestring;
        seen_concept |= !strcmp(task, "concept");
        seen_brightness |= !strcmp(task, "brightness");
        seen_blur |= !strcmp(task, "blur");
        assert_true(strcmp(task, "modality") && strcmp(task, "cross-modal transfer")); /* decoder-only */
        const cJSON *pts = cJSON_GetObjectItemCaseSensitive(T, "hooks");
        assert_int_equal(cJSON_GetArraySize(pts), 2);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(pts, 0), "hook")->valuestring,
                            "vision.ln_post");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(pts, 1), "hook")->valuestring,
                            "projector.hook_out");
        const cJSON *P;
        cJSON_ArrayForEach(P, pts) {
            assert_null(cJSON_GetObjectItemCaseSensitive(P, "layer"));
            assert_true(cJSON_GetObjectItemCaseSensitive(P, "n_test")->valueint > 0);
            const cJSON *acc = cJSON_GetObjectItemCaseSensitive(P, "accuracy");
            double v = cJSON_GetObjectItemCaseSensitive(acc, "value")->valuedouble;
            assert_true(v >= 0 && v <= 1);
        }
    }
    assert_true(seen_concept && seen_brightness && seen_blur);
    /* decoder tasks never name a vision hook */
    cJSON_ArrayForEach(T, cJSON_GetObjectItemCaseSensitive(j, "tasks")) {
        const cJSON *L;
        cJSON_ArrayForEach(L, cJSON_GetObjectItemCaseSensitive(T, "layers"))
            assert_null(strstr(cJSON_GetObjectItemCaseSensitive(L, "hook")->valuestring, "vision"));
    }
    int n_vision = cJSON_GetArraySize(vision);
    cJSON_Delete(j);
    char *html = slurp(RUN, "report.html");
    const char *sec = strstr(html, "<section id=\"vision\">");
    assert_non_null(sec);
    assert_non_null(strstr(html, "<a href=\"#vision\">"));
    const char *end = strstr(sec, "</section>");
    assert_non_null(end);
    int figs = 0, ns = 0, cis = 0;
    for (const char *p = sec; (p = strstr(p, "<figcaption>")) && p < end; p++) figs++;
    for (const char *p = sec; (p = strstr(p, "<span class=\"n\">n = ")) && p < end; p++) ns++;
    for (const char *p = sec; (p = strstr(p, "<span class=\"ci\">CI: ")) && p < end; p++) cis++;
    assert_int_equal(figs, n_vision);
    assert_int_equal(ns, n_vision);
    assert_int_equal(cis, n_vision);
    const char *hit = strstr(sec, "projector.hook_out");
    assert_true(hit && hit < end);
    hit = strstr(sec, "vision.ln_post");
    assert_true(hit && hit < end);
    free(html);
}

/* Changing vision_hooks rebuilds the image stores only; removing it removes the tensors. */
static void test_changing_vision_hooks(void **state) {
    (void)state;
    char cfg[PATH_MAX + 16];
    snprintf(cfg, sizeof cfg, "%s/vision2.json", DIR_);
    char *llm_before = slurp(RUN, "acts/llm_text/index.json");
    write_cfg(cfg, "[\"vision.ln_post\"]");
    assert_int_equal(run(cfg, RUN, NULL), 0);
    char *idx = slurp(RUN, "acts/vlm_edits/index.json");
    assert_non_null(strstr(idx, "vision.ln_post"));
    assert_null(strstr(idx, "projector.hook_out"));
    free(idx);
    char *llm_after = slurp(RUN, "acts/llm_text/index.json");
    assert_string_equal(llm_before, llm_after);
    free(llm_after);
    write_cfg(cfg, NULL);
    assert_int_equal(run(cfg, RUN, NULL), 0);
    idx = slurp(RUN, "acts/vlm_image/index.json");
    assert_null(strstr(idx, "vision.ln_post"));
    free(idx);
    char *pj = slurp(RUN, "results/probes.json");
    assert_null(strstr(pj, "\"vision\""));
    free(pj);
    llm_after = slurp(RUN, "acts/llm_text/index.json");
    assert_string_equal(llm_before, llm_after);
    free(llm_after);
    free(llm_before);
}

/* With pool "last" the decoder rows are the last token, but vision hooks are still the
 * patch mean: the same rows as with pool "mean". */
static void test_pool_last_keeps_the_patch_mean(void **state) {
    (void)state;
    char cfg[PATH_MAX + 16], out[PATH_MAX + 16], run_dir[PATH_MAX + 16];
    snprintf(cfg, sizeof cfg, "%s/last.json", DIR_);
    snprintf(out, sizeof out, "%s/last_run", DIR_);
    write_cfg_pool(cfg, "[\"vision.ln_post\"]", "last");
    assert_int_equal(run(cfg, out, NULL), 0);
    int64_t r1, w1, r2, w2;
    float *mean_run = store_tensor_f32("vlm_image", "vision.ln_post", &r1, &w1);
    snprintf(run_dir, sizeof run_dir, "%s", RUN);
    snprintf(RUN, sizeof RUN, "%s", out); /* store_tensor_f32 reads from RUN */
    float *last_run = store_tensor_f32("vlm_image", "vision.ln_post", &r2, &w2);
    float *edits = store_tensor_f32("vlm_edits", "vision.ln_post", &r2, &w2);
    snprintf(RUN, sizeof RUN, "%s", run_dir);
    assert_non_null(mean_run);
    assert_non_null(last_run);
    assert_non_null(edits);
    assert_int_equal(r1 * w1 * 2, r2 * w2);
    assert_memory_equal(mean_run, last_run, (size_t)(r1 * w1) * sizeof(float));
    free(mean_run);
    free(last_run);
    free(edits);
}

static void expect_bad_vision_hooks(const char *hooks_json, const char *want1, const char *want2) {
    char cfg[PATH_MAX + 16], out[PATH_MAX + 16];
    snprintf(cfg, sizeof cfg, "%s/bad.json", DIR_);
    snprintf(out, sizeof out, "%s/bad_run", DIR_);
    write_cfg(cfg, hooks_json);
    char *msg;
    assert_int_equal(run(cfg, out, &msg), 1);
    printf("  %s\n", msg);
    assert_non_null(strstr(msg, "vision_hooks"));
    assert_non_null(strstr(msg, want1));
    assert_non_null(strstr(msg, want2));
    /* the valid names are listed */
    assert_non_null(strstr(msg, "vision.ln_post"));
    assert_non_null(strstr(msg, "projector.hook_out"));
    assert_non_null(strstr(msg, "vision.blocks."));
    free(msg);
    assert_int_equal(n_done(out), 0);
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/dataset/manifest.csv", out);
    assert_false(rs_path_exists(p));
}

static void test_unknown_vision_hook(void **state) {
    (void)state;
    expect_bad_vision_hooks("[\"vision.ln_post\", \"vision.ln_pots\"]", "vision.ln_pots", "valid hooks");
    expect_bad_vision_hooks("[\"vision.blocks.7.hook_resid_post\"]", "vision.blocks.7.hook_resid_post", "out of range");
}

static void test_decoder_hook_in_vision_hooks(void **state) {
    (void)state;
    expect_bad_vision_hooks("[\"blocks.1.hook_resid_post\"]", "blocks.1.hook_resid_post", "put it in 'hooks'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stores_hold_the_vision_hooks),
        cmocka_unit_test(test_pooled_rows_match_extract),
        cmocka_unit_test(test_probes_and_report),
        cmocka_unit_test(test_pool_last_keeps_the_patch_mean),
        cmocka_unit_test(test_changing_vision_hooks),
        cmocka_unit_test(test_unknown_vision_hook),
        cmocka_unit_test(test_decoder_hook_in_vision_hooks),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
