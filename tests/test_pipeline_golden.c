/* What `reprshift run` stores equals the reference stack: three COCO-mini images and their
 * captions (given as a manifest) through the quickstart bundle, compared with
 * tests/fixtures/pipeline/golden.json from tools/reference/gen_pipeline_golden.py
 * (tokenizers, transformers 5.24 fp32 eager, Pillow ImageEnhance / GaussianBlur,
 * SiglipImageProcessor):
 *  - caption token ids in llm_text and vlm_text = tokenizers' ids (with <bos>), exactly;
 *  - llm_text / vlm_text: per-caption mean over non-special tokens of hook_resid_post at
 *    layers 1 and 3 = Gemma2ForCausalLM / PaliGemma text-only hidden_states[L+1];
 *  - vlm_image: image-token mean = PaliGemma with the image + "caption en\n" prefix;
 *  - vlm_edits: the same after brightness 0.6 and blur radius 2, variant-major;
 *  - vlm_caption / vlm_mismatch / vlm_blank: every kept row (the prefix <bos>, then the
 *    caption's suffix tokens) = PaliGemmaProcessor(images, "caption en", suffix=caption)
 *    through the model, for the own image, the mismatched image named in rows.jsonl, and
 *    a mid-grey image; ids = the LLM's <bos> + caption ids;
 *  - conditions.json "ce": per layer and condition, CE clean / spliced / zero-ablated with
 *    the quickstart SAE spliced on the caption rows only = transformers + sae-lens on the
 *    same rows and predictions (summed over the captions, the image the store names). 
 * Tolerance: 1e-4 relative to the largest |value| (the model parity tests reach ~2e-5). */
#include "testutil.h"

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
#include "reprshift/pipeline.h"
#include "reprshift/store.h"

static cJSON *G;
static char OUT[PATH_MAX + 16];

static int setup(void **state) {
    (void)state;
    rs_err err;
    if (rs_json_load("tests/fixtures/pipeline/golden.json", 1 << 24, &G, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    char cwd[PATH_MAX], coco[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd) || !realpath(tu_shared("data/coco/mini"), coco)) return -1;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    char man[PATH_MAX + 16], cfg[PATH_MAX + 16];
    snprintf(man, sizeof man, "%s/m.csv", dir);
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(OUT, sizeof OUT, "%s/run", dir);
    FILE *f = fopen(man, "w");
    if (!f) return -1;
    fprintf(f, "modality,input,label,file_name\n");
    cJSON *in;
    cJSON_ArrayForEach(in, cJSON_GetObjectItem(G, "inputs")) {
        const char *file = cJSON_GetObjectItem(in, "file")->valuestring, *lab = cJSON_GetObjectItem(in, "label")->valuestring;
        fprintf(f, "image,%s/val2017/%s,%s,%s\n", coco, file, lab, file);
        fprintf(f, "text,\"%s\",%s,%s\n", cJSON_GetObjectItem(in, "caption")->valuestring, lab, file);
    }
    fclose(f);
    f = fopen(cfg, "w");
    if (!f) return -1;
    fprintf(f,
            "{\"output_dir\": \"unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\",\n"
            "            \"vlm\": \"%s/examples/quickstart/models/paligemma-tiny\"},\n"
            " \"layers\": [1, 3], \"dataset\": {\"manifest\": \"%s\"},\n"
            " \"saes\": {\"path\": \"%s/examples/quickstart/models/sae/blocks.{layer}.hook_resid_post\"},\n"
            " \"edits\": [{\"name\": \"brightness\", \"values\": [0.6]}, {\"name\": \"blur\", \"values\": [2]}],\n"
            " \"probes\": {\"which\": [\"concept\"], \"seeds\": 1, \"bootstrap\": 10, \"min_test_groups\": 1, \"permutations\": 10}}\n",
            cwd, cwd, man, cwd);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        rs_pipeline_opts o = rs_pipeline_defaults();
        o.config_path = cfg;
        o.output_dir = OUT;
        o.quiet = 1;
        o.threads = 1;
        rs_err e = {0};
        char *rep = NULL;
        int rc = rs_pipeline_run(&o, &rep, &e);
        if (rc) fprintf(stderr, "run failed: %s\n", e.msg);
        _exit(rc ? 1 : 0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    cJSON_Delete(G);
    return 0;
}

static store_reader *open_store(const char *name) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/acts/%s", OUT, name);
    store_reader *r;
    rs_err err;
    if (store_reader_open(&r, p, &err)) fail_msg("%s", err.msg);
    return r;
}

/* golden features [n, d] of a store at layer L */
static float *golden(const char *store, int L, int *n, int *d) {
    char key[16];
    snprintf(key, sizeof key, "%d", L);
    cJSON *rows = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(G, "features"), store), key);
    *n = cJSON_GetArraySize(rows);
    *d = cJSON_GetArraySize(cJSON_GetArrayItem(rows, 0));
    float *x = malloc((size_t)*n * *d * sizeof *x);
    int i = 0;
    cJSON *r, *v;
    cJSON_ArrayForEach(r, rows) {
        cJSON_ArrayForEach(v, r) x[i++] = (float)v->valuedouble;
    }
    return x;
}

/* Caption stores: ids equal tokenizers' ids; pooled features equal the goldens. */
static void check_text_store(const char *name) {
    store_reader *r = open_store(name);
    rs_err err;
    int32_t *ids;
    int64_t *off = NULL, n_in = 0, rows, w, rr, ww;
    if (store_read_raw(r, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, &err) ||
        store_read_offsets(r, "offsets", &off, &n_in, &err))
        fail_msg("%s", err.msg);
    cJSON *inputs = cJSON_GetObjectItem(G, "inputs");
    assert_int_equal(n_in, cJSON_GetArraySize(inputs));
    int64_t t = 0;
    for (int i = 0; i < n_in; i++) {
        cJSON *gid = cJSON_GetObjectItem(cJSON_GetArrayItem(inputs, i), "ids");
        assert_int_equal(off[i + 1] - off[i], cJSON_GetArraySize(gid));
        for (int k = 0; k < cJSON_GetArraySize(gid); k++, t++)
            assert_int_equal(ids[t], (int)cJSON_GetArrayItem(gid, k)->valuedouble);
    }
    cJSON *lv;
    cJSON_ArrayForEach(lv, cJSON_GetObjectItem(G, "layers")) {
        int L = (int)lv->valuedouble, gn, gd;
        char hook[64];
        snprintf(hook, sizeof hook, "blocks.%d.hook_resid_post", L);
        float *A;
        if (store_read_f32(r, hook, &A, &rows, &w, &err)) fail_msg("%s", err.msg);
        float *g = golden(name, L, &gn, &gd);
        assert_int_equal(gn, n_in);
        assert_int_equal(gd, w);
        float *got = calloc((size_t)gn * gd, sizeof *got);
        for (int i = 0; i < n_in; i++) {
            double acc[4096] = {0};
            int cnt = 0;
            for (int64_t q = off[i]; q < off[i + 1]; q++) {
                if (ids[q] <= 2) continue;
                for (int k = 0; k < w; k++) acc[k] += A[q * w + k];
                cnt++;
            }
            for (int k = 0; k < w; k++) got[i * w + k] = (float)(acc[k] / cnt);
        }
        char label[96];
        snprintf(label, sizeof label, "%s %s", name, hook);
        tu_assert_close_rel(g, got, (size_t)gn * gd, 1e-4, label);
        printf("  %s: max |diff| %.3g (max |ref| %.3g)\n", label, tu_max_abs_diff(g, got, (size_t)gn * gd),
               tu_max_abs(g, (size_t)gn * gd));
        free(g);
        free(got);
        free(A);
    }
    free(ids);
    free(off);
    store_reader_close(r);
}

static void test_caption_stores_match_transformers(void **state) {
    (void)state;
    check_text_store("llm_text");
    check_text_store("vlm_text");
}

static void check_image_store(const char *name) {
    store_reader *r = open_store(name);
    rs_err err;
    cJSON *lv;
    cJSON_ArrayForEach(lv, cJSON_GetObjectItem(G, "layers")) {
        int L = (int)lv->valuedouble, gn, gd;
        char hook[80];
        for (int v = 0; v < 2; v++) {
            snprintf(hook, sizeof hook, "blocks.%d.hook_resid_post%s", L, v ? "@image" : "");
            float *X;
            int64_t rows, w;
            if (store_read_f32(r, hook, &X, &rows, &w, &err)) fail_msg("%s", err.msg);
            float *g = golden(name, L, &gn, &gd);
            assert_int_equal(rows, gn);
            assert_int_equal(w, gd);
            char label[128];
            snprintf(label, sizeof label, "%s %s", name, hook);
            tu_assert_close_rel(g, X, (size_t)gn * gd, 1e-4, label);
            printf("  %s: max |diff| %.3g (max |ref| %.3g)\n", label, tu_max_abs_diff(g, X, (size_t)gn * gd),
                   tu_max_abs(g, (size_t)gn * gd));
            free(g);
            free(X);
        }
    }
    store_reader_close(r);
}

/* Condition store: ids as llm_text, rows = the reference's rows for the image it names. */
static void check_condition_store(const char *name) {
    store_reader *r = open_store(name);
    rs_err err;
    int32_t *ids;
    int64_t *off = NULL, n_in = 0, rr, ww;
    if (store_read_raw(r, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, &err) ||
        store_read_offsets(r, "offsets", &off, &n_in, &err))
        fail_msg("%s", err.msg);
    cJSON *inputs = cJSON_GetObjectItem(G, "inputs");
    int n = cJSON_GetArraySize(inputs);
    assert_int_equal(n_in, n);
    /* which image each caption was read with (rows.jsonl of the single shard) */
    assert_int_equal(store_reader_n_shards(r), 1);
    FILE *f = fopen(store_reader_rows_path(r, 0), "r");
    assert_non_null(f);
    int img_of[16];
    char line[4096];
    for (int i = 0; i < n; i++) {
        assert_non_null(fgets(line, sizeof line, f));
        cJSON *row = cJSON_Parse(line);
        assert_non_null(row);
        assert_string_equal(cJSON_GetObjectItem(row, "condition")->valuestring, name);
        const cJSON *with = cJSON_GetObjectItem(row, "read_with_image");
        img_of[i] = -1;
        if (!strcmp(name, "vlm_blank")) {
            assert_true(cJSON_IsString(with) && !strcmp(with->valuestring, "blank"));
        } else {
            const char *fn = cJSON_GetObjectItem(with, "file_name")->valuestring;
            for (int j = 0; j < n; j++)
                if (!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(inputs, j), "file")->valuestring, fn)) img_of[i] = j;
            assert_true(img_of[i] >= 0);
            if (!strcmp(name, "vlm_caption")) assert_int_equal(img_of[i], i);
            else assert_int_not_equal(img_of[i], i); /* another group (labels a, b, c differ) */
        }
        cJSON_Delete(row);
    }
    fclose(f);
    int64_t t = 0;
    for (int i = 0; i < n; i++) {
        cJSON *gid = cJSON_GetObjectItem(cJSON_GetArrayItem(inputs, i), "ids");
        assert_int_equal(off[i + 1] - off[i], cJSON_GetArraySize(gid));
        for (int k = 0; k < cJSON_GetArraySize(gid); k++, t++)
            assert_int_equal(ids[t], (int)cJSON_GetArrayItem(gid, k)->valuedouble);
    }
    cJSON *cond = cJSON_GetObjectItem(G, "conditions"), *lv;
    cJSON_ArrayForEach(lv, cJSON_GetObjectItem(G, "layers")) {
        int L = (int)lv->valuedouble;
        char hook[64], key[16];
        snprintf(hook, sizeof hook, "blocks.%d.hook_resid_post", L);
        snprintf(key, sizeof key, "%d", L);
        float *A;
        int64_t rows, w;
        if (store_read_f32(r, hook, &A, &rows, &w, &err)) fail_msg("%s", err.msg);
        assert_int_equal(rows, off[n]);
        float *g = malloc((size_t)rows * w * sizeof *g);
        size_t q = 0;
        for (int i = 0; i < n; i++) {
            cJSON *ci = cJSON_GetArrayItem(cJSON_GetObjectItem(cond, img_of[i] < 0 ? "blank" : "with_image"), i);
            cJSON *ref = cJSON_GetObjectItem(img_of[i] < 0 ? ci : cJSON_GetArrayItem(ci, img_of[i]), key), *rw, *v;
            assert_int_equal(cJSON_GetArraySize(ref), off[i + 1] - off[i]);
            cJSON_ArrayForEach(rw, ref) {
                assert_int_equal(cJSON_GetArraySize(rw), w);
                cJSON_ArrayForEach(v, rw) g[q++] = (float)v->valuedouble;
            }
        }
        char label[96];
        snprintf(label, sizeof label, "%s %s (per token)", name, hook);
        tu_assert_close_rel(g, A, q, 1e-4, label);
        printf("  %s: max |diff| %.3g (max |ref| %.3g)\n", label, tu_max_abs_diff(g, A, q), tu_max_abs(g, q));
        free(g);
        free(A);
    }
    free(ids);
    free(off);
    store_reader_close(r);
}

static void test_condition_stores_match_transformers(void **state) {
    (void)state;
    check_condition_store("vlm_caption");
    check_condition_store("vlm_mismatch");
    check_condition_store("vlm_blank");
}

/* results/conditions.json: the five pairs in order, and the c-e cos_raw at each layer =
 * the mean over caption tokens (ids > 2) of the cosine between the reference's rows for the
 * own image and for the blank image. */
static void test_conditions_json_pairs(void **state) {
    (void)state;
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/results/conditions.json", OUT);
    cJSON *j;
    rs_err err;
    if (rs_json_load(p, 1 << 26, &j, &err)) fail_msg("%s", err.msg);
    const char *want[] = {"a-b", "b-c", "a-c", "c-d", "c-e"};
    cJSON *pairs = cJSON_GetObjectItem(j, "pairs");
    assert_int_equal(cJSON_GetArraySize(pairs), 5);
    for (int q = 0; q < 5; q++) assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(pairs, q), "id")->valuestring, want[q]);
    cJSON *ce = cJSON_GetArrayItem(pairs, 4), *cond = cJSON_GetObjectItem(G, "conditions"), *inputs = cJSON_GetObjectItem(G, "inputs");
    int li = 0;
    cJSON *lv;
    cJSON_ArrayForEach(lv, cJSON_GetObjectItem(G, "layers")) {
        char key[16];
        snprintf(key, sizeof key, "%d", (int)lv->valuedouble);
        double sum = 0;
        int cnt = 0;
        for (int i = 0; i < cJSON_GetArraySize(inputs); i++) {
            cJSON *ids = cJSON_GetObjectItem(cJSON_GetArrayItem(inputs, i), "ids");
            cJSON *a = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cond, "with_image"), i), i), key);
            cJSON *b = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cond, "blank"), i), key);
            for (int t = 0; t < cJSON_GetArraySize(ids); t++) {
                if (cJSON_GetArrayItem(ids, t)->valuedouble <= 2) continue;
                cJSON *ra = cJSON_GetArrayItem(a, t), *rb = cJSON_GetArrayItem(b, t);
                double ab = 0, aa = 0, bb = 0;
                for (int k = 0; k < cJSON_GetArraySize(ra); k++) {
                    double x = cJSON_GetArrayItem(ra, k)->valuedouble, y = cJSON_GetArrayItem(rb, k)->valuedouble;
                    ab += x * y, aa += x * x, bb += y * y;
                }
                sum += ab / sqrt(aa * bb);
                cnt++;
            }
        }
        cJSON *L = cJSON_GetArrayItem(cJSON_GetObjectItem(ce, "layers"), li++);
        assert_int_equal((int)cJSON_GetObjectItem(L, "layer")->valuedouble, (int)lv->valuedouble);
        double got = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(L, "shift"), "cos_raw"), "value")->valuedouble;
        printf("  c-e layer %s cos_raw: %.7f (reference rows %.7f, %d tokens)\n", key, got, sum / cnt, cnt);
        assert_true(fabs(got - sum / cnt) < 1e-5);
    }
    cJSON_Delete(j);
}

static void test_image_stores_match_transformers(void **state) {
    (void)state;
    check_image_store("vlm_image");
    check_image_store("vlm_edits");
}

/* Image each caption of a condition store was read with (-1: the blank image). */
static void store_images(const char *name, int n, int *img_of) {
    store_reader *r = open_store(name);
    FILE *f = fopen(store_reader_rows_path(r, 0), "r");
    assert_non_null(f);
    cJSON *inputs = cJSON_GetObjectItem(G, "inputs");
    char line[4096];
    for (int i = 0; i < n; i++) {
        assert_non_null(fgets(line, sizeof line, f));
        cJSON *row = cJSON_Parse(line);
        const cJSON *with = cJSON_GetObjectItem(row, "read_with_image");
        img_of[i] = -1;
        for (int j = 0; cJSON_IsObject(with) && j < n; j++)
            if (!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(inputs, j), "file")->valuestring,
                        cJSON_GetObjectItem(with, "file_name")->valuestring))
                img_of[i] = j;
        cJSON_Delete(row);
    }
    fclose(f);
    store_reader_close(r);
}

static void test_conditions_ce_matches_reference(void **state) {
    (void)state;
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/results/conditions.json", OUT);
    cJSON *j;
    rs_err err;
    if (rs_json_load(p, 1 << 26, &j, &err)) fail_msg("%s", err.msg);
    cJSON *gce = cJSON_GetObjectItem(G, "conditions_ce"), *inputs = cJSON_GetObjectItem(G, "inputs");
    int n = cJSON_GetArraySize(inputs), img_mis[16];
    store_images("vlm_mismatch", n, img_mis);
    cJSON *ces = cJSON_GetObjectItem(j, "ce"), *e;
    assert_int_equal(cJSON_GetArraySize(ces), cJSON_GetArraySize(cJSON_GetObjectItem(G, "layers")));
    int checked = 0;
    cJSON_ArrayForEach(e, ces) {
        char key[16];
        snprintf(key, sizeof key, "%d", (int)cJSON_GetObjectItem(e, "layer")->valuedouble);
        cJSON *cc;
        cJSON_ArrayForEach(cc, cJSON_GetObjectItem(e, "conditions")) {
            const char *cond = cJSON_GetObjectItem(cc, "condition")->valuestring;
            double sum[3] = {0, 0, 0}, cnt = 0;
            for (int i = 0; i < n; i++) {
                const cJSON *g;
                if (!strcmp(cond, "llm_text")) g = cJSON_GetArrayItem(cJSON_GetObjectItem(gce, "llm"), i);
                else if (!strcmp(cond, "vlm_text")) g = cJSON_GetArrayItem(cJSON_GetObjectItem(gce, "vlm_text"), i);
                else if (!strcmp(cond, "vlm_blank")) g = cJSON_GetArrayItem(cJSON_GetObjectItem(gce, "blank"), i);
                else g = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(gce, "with_image"), i),
                                            !strcmp(cond, "vlm_caption") ? i : img_mis[i]);
                const cJSON *gl = cJSON_GetObjectItem(g, key);
                assert_non_null(gl);
                sum[0] += cJSON_GetObjectItem(gl, "clean")->valuedouble;
                sum[1] += cJSON_GetObjectItem(gl, "spliced")->valuedouble;
                sum[2] += cJSON_GetObjectItem(gl, "zero")->valuedouble;
                cnt += cJSON_GetObjectItem(gl, "n")->valuedouble;
            }
            static const char *K[3] = {"ce_clean", "ce_spliced", "ce_zero_ablated"};
            assert_int_equal((int)cJSON_GetObjectItem(cc, "n_predictions")->valuedouble, (int)cnt);
            for (int k = 0; k < 3; k++) {
                double got = cJSON_GetObjectItem(cc, K[k])->valuedouble, want = sum[k] / cnt;
                printf("  layer %s %-12s %-15s %.6f (reference %.6f)\n", key, cond, K[k], got, want);
                assert_true(fabs(got - want) < 1e-4 * fabs(want));
            }
            double rec = cJSON_GetObjectItem(cJSON_GetObjectItem(cc, "ce_loss_recovered"), "value")->valuedouble;
            assert_true(fabs(rec - (sum[2] - sum[1]) / (sum[2] - sum[0])) < 1e-3);
            checked++;
        }
    }
    assert_int_equal(checked, 2 * 5);
    cJSON_Delete(j);
}

int main(void) {
    if (!tu_have_shared("data/coco/mini", "the 159-image COCO mini set")) return TU_SKIP_CODE;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caption_stores_match_transformers),
        cmocka_unit_test(test_image_stores_match_transformers),
        cmocka_unit_test(test_condition_stores_match_transformers),
        cmocka_unit_test(test_conditions_json_pairs),
        cmocka_unit_test(test_conditions_ce_matches_reference),
    };
    return tu_exit(cmocka_run_group_tests(tests, setup, teardown));
}
