/* What `reprshift run` stores equals the reference stack: three COCO-mini images and their
 * captions (given as a manifest) through the quickstart bundle, compared with
 * tests/fixtures/pipeline/golden.json from tools/reference/gen_pipeline_golden.py
 * (tokenizers, transformers 5.24 fp32 eager, Pillow ImageEnhance / GaussianBlur,
 * SiglipImageProcessor):
 *  - caption token ids in llm_text and vlm_text = tokenizers' ids (with <bos>), exactly;
 *  - llm_text / vlm_text: per-caption mean over non-special tokens of hook_resid_post at
 *    layers 1 and 3 = Gemma2ForCausalLM / PaliGemma text-only hidden_states[L+1];
 *  - vlm_image: image-token mean = PaliGemma with the image + "caption en\n" prefix;
 *  - vlm_edits: the same after brightness 0.6 and blur radius 2, variant-major.
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
#include "reprshift/jsonutil.h"
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
            " \"edits\": [{\"name\": \"brightness\", \"values\": [0.6]}, {\"name\": \"blur\", \"values\": [2]}],\n"
            " \"probes\": {\"which\": [\"concept\"], \"seeds\": 1, \"bootstrap\": 10}}\n",
            cwd, cwd, man);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        rs_pipeline_opts o = rs_pipeline_defaults();
        o.config_path = cfg;
        o.output_dir = OUT;
        o.quiet = 1;
        o.threads = 1;
        rs_err e = {{0}};
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

static void test_image_stores_match_transformers(void **state) {
    (void)state;
    check_image_store("vlm_image");
    check_image_store("vlm_edits");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caption_stores_match_transformers),
        cmocka_unit_test(test_image_stores_match_transformers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
