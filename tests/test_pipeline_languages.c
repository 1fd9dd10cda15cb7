/* `reprshift run` with a `languages` section reads every caption also in its translation:
 * three val2017 images of the bundled COCO sample (examples/data/coco-sample; one per group,
 * each with its first caption, given as a manifest with image_id and caption_id columns),
 * languages {"codes": ["es"], "translations": the sample's captions_translated.csv}, through
 * the quickstart bundle, compared with tests/fixtures/pipeline/golden_lang_es.json from
 * tools/reference/gen_language_golden.py (tokenizers, transformers 5.24 fp32 eager,
 * PaliGemmaProcessor with the pil image processor):
 *  - RUN/acts/lang_es/llm_text, vlm_text, vlm_caption: token_ids = tokenizers' <bos> + Spanish
 *    caption ids, exactly (the same ids in all three stores);
 *  - every row of blocks.1/3.hook_resid_post = the reference's layer output at that token:
 *    Gemma2ForCausalLM and PaliGemma text-only on the ids (llm_text, vlm_text), and
 *    PaliGemmaProcessor(images=own image, text="caption es", suffix=Spanish caption) through
 *    the model at the kept rows (the prefix <bos>, then the suffix tokens; vlm_caption);
 *  - rows.jsonl: "text" is the Spanish caption, caption_id the COCO id, and vlm_caption names
 *    the caption's own image under read_with_image.
 * Tolerance as test_pipeline_golden: 1e-4 relative to the largest |value| of the store's rows.
 * Second case: a translations file without the row of one caption id of the run makes the run
 * fail with a message naming that file and the caption id, and no lang_es store is written. */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "reprshift/store.h"

#define TRANSLATIONS "examples/data/coco-sample/annotations/captions_translated.csv"

static cJSON *G;
static char CWD[PATH_MAX], DIR_[PATH_MAX];
static char OUT[PATH_MAX + 16];
static int RUN_RC = -1; /* exit status of the run (-1: not run yet) */
static char *RUN_MSG;

static int setup(void **state) {
    (void)state;
    rs_err err;
    if (rs_json_load("tests/fixtures/pipeline/golden_lang_es.json", 1 << 24, &G, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    if (!getcwd(CWD, sizeof CWD)) return -1;
    snprintf(DIR_, sizeof DIR_, "%s", tu_tmpdir());
    /* the manifest: each image row, then its (English) caption row, with the COCO ids */
    char man[PATH_MAX + 16];
    snprintf(man, sizeof man, "%s/m.csv", DIR_);
    FILE *f = fopen(man, "w");
    if (!f) return -1;
    fprintf(f, "modality,input,label,file_name,image_id,caption_id\n");
    cJSON *in;
    cJSON_ArrayForEach(in, cJSON_GetObjectItem(G, "inputs")) {
        const char *file = cJSON_GetObjectItem(in, "file")->valuestring, *lab = cJSON_GetObjectItem(in, "label")->valuestring;
        long long iid = (long long)cJSON_GetObjectItem(in, "image_id")->valuedouble;
        long long cid = (long long)cJSON_GetObjectItem(in, "caption_id")->valuedouble;
        fprintf(f, "image,%s/examples/data/coco-sample/val2017/%s,%s,%s,%lld,\n", CWD, file, lab, file, iid);
        fputs("text,\"", f);
        for (const char *p = cJSON_GetObjectItem(in, "caption_en")->valuestring; *p; p++) {
            if (*p == '"') fputc('"', f);
            fputc(*p, f);
        }
        fprintf(f, "\",%s,%s,%lld,%lld\n", lab, file, iid, cid);
    }
    fclose(f);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    cJSON_Delete(G);
    free(RUN_MSG);
    return 0;
}

/* Config c.json of the run: the quickstart bundle, layers 1 and 3, the three captions read as
 * llm / vlm_text / vlm_caption, and languages es from translations (an absolute path). */
static void write_config(const char *cfg, const char *translations) {
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"output_dir\": \"unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\",\n"
            "            \"vlm\": \"%s/examples/quickstart/models/paligemma-tiny\"},\n"
            " \"layers\": [1, 3], \"dataset\": {\"manifest\": \"%s/m.csv\"},\n"
            " \"conditions\": [\"llm\", \"vlm_text\", \"vlm_caption\"],\n"
            " \"permutations\": 10,\n"
            " \"downstream\": {\"enabled\": false},\n"
            " \"languages\": {\"codes\": [\"es\"], \"translations\": \"%s\"},\n"
            " \"probes\": {\"which\": [\"concept\"], \"seeds\": 1, \"bootstrap\": 10, \"min_test_groups\": 1, \"permutations\": 10}}\n",
            CWD, CWD, DIR_, translations);
    fclose(f);
}

/* The run with the sample's translations, once (the store tests share it). */
static void need_run(void) {
    if (RUN_RC < 0) {
        char cfg[PATH_MAX + 16], tr[PATH_MAX + 64];
        snprintf(cfg, sizeof cfg, "%s/c.json", DIR_);
        snprintf(OUT, sizeof OUT, "%s/run", DIR_);
        snprintf(tr, sizeof tr, "%s/%s", CWD, TRANSLATIONS);
        write_config(cfg, tr);
        RUN_RC = tu_run_pipeline(cfg, OUT, 0, &RUN_MSG);
    }
    if (RUN_RC != 0) fail_msg("reprshift run with languages es failed (status %d): %s", RUN_RC, RUN_MSG);
}

/* RUN/acts/lang_es/<name> */
static store_reader *open_store(const char *name) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/acts/lang_es/%s", OUT, name);
    store_reader *r;
    rs_err err;
    if (store_reader_open(&r, p, &err)) fail_msg("%s", err.msg);
    return r;
}

/* obj[key], which must be there (the test fails naming it, no NULL dereference) */
static const cJSON *need(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(obj, key);
    if (!v) fail_msg("rows.jsonl line without \"%s\"", key);
    return v;
}

/* One language store: ids, rows.jsonl and the per-token rows at every layer against
 * G.tokens[name][L] (rows of all captions in order). */
static void check_lang_store(const char *name) {
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
    int is_caption = !strcmp(name, "vlm_caption");
    int64_t t = 0;
    for (int i = 0; i < n; i++) {
        cJSON *in = cJSON_GetArrayItem(inputs, i);
        cJSON *gid = cJSON_GetObjectItem(in, is_caption ? "vlm_caption_ids" : "ids");
        assert_int_equal(off[i + 1] - off[i], cJSON_GetArraySize(gid));
        for (int k = 0; k < cJSON_GetArraySize(gid); k++, t++)
            assert_int_equal(ids[t], (int)cJSON_GetArrayItem(gid, k)->valuedouble);
    }
    /* rows.jsonl of the single shard: the translation, the COCO ids, the image read with */
    assert_int_equal(store_reader_n_shards(r), 1);
    FILE *f = fopen(store_reader_rows_path(r, 0), "r");
    assert_non_null(f);
    char line[8192];
    for (int i = 0; i < n; i++) {
        cJSON *in = cJSON_GetArrayItem(inputs, i);
        assert_non_null(fgets(line, sizeof line, f));
        cJSON *row = cJSON_Parse(line);
        assert_non_null(row);
        const cJSON *text = need(row, "text");
        assert_true(cJSON_IsString(text));
        assert_string_equal(text->valuestring, cJSON_GetObjectItem(in, "caption")->valuestring);
        assert_int_equal((long long)need(row, "caption_id")->valuedouble,
                         (long long)cJSON_GetObjectItem(in, "caption_id")->valuedouble);
        assert_int_equal((long long)need(row, "n_tokens")->valuedouble, off[i + 1] - off[i]);
        if (is_caption) {
            const cJSON *with = need(row, "read_with_image");
            assert_true(cJSON_IsObject(with));
            assert_string_equal(need(with, "file_name")->valuestring,
                                cJSON_GetObjectItem(in, "file")->valuestring);
        }
        cJSON_Delete(row);
    }
    assert_null(fgets(line, sizeof line, f));
    fclose(f);
    cJSON *lv;
    cJSON_ArrayForEach(lv, cJSON_GetObjectItem(G, "layers")) {
        int L = (int)lv->valuedouble;
        char hook[64], key[16];
        snprintf(hook, sizeof hook, "blocks.%d.hook_resid_post", L);
        snprintf(key, sizeof key, "%d", L);
        float *A;
        int64_t rows, w;
        if (store_read_f32(r, hook, &A, &rows, &w, &err)) fail_msg("%s", err.msg);
        assert_int_equal(rows, off[n]);
        cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(G, "tokens"), name), key);
        assert_int_equal(cJSON_GetArraySize(ref), n);
        float *g = malloc((size_t)rows * w * sizeof *g);
        size_t q = 0;
        for (int i = 0; i < n; i++) {
            cJSON *ri = cJSON_GetArrayItem(ref, i), *rw, *v;
            assert_int_equal(cJSON_GetArraySize(ri), off[i + 1] - off[i]);
            cJSON_ArrayForEach(rw, ri) {
                assert_int_equal(cJSON_GetArraySize(rw), w);
                cJSON_ArrayForEach(v, rw) g[q++] = (float)v->valuedouble;
            }
        }
        assert_int_equal(q, (size_t)rows * w);
        char label[96];
        snprintf(label, sizeof label, "lang_es/%s %s (per token)", name, hook);
        tu_assert_close_rel(g, A, q, 1e-4, label);
        printf("  %s: max |diff| %.3g (max |ref| %.3g)\n", label, tu_max_abs_diff(g, A, q), tu_max_abs(g, q));
        free(g);
        free(A);
    }
    free(ids);
    free(off);
    store_reader_close(r);
}

static void test_lang_text_stores_match_transformers(void **state) {
    (void)state;
    need_run();
    check_lang_store("llm_text");
    check_lang_store("vlm_text");
}

static void test_lang_caption_store_matches_transformers(void **state) {
    (void)state;
    need_run();
    check_lang_store("vlm_caption");
}

/* The translations file without the row of the second caption: the run fails, naming the file
 * and the caption id, and writes no language store. */
static void test_missing_translation_fails(void **state) {
    (void)state;
    cJSON *in = cJSON_GetArrayItem(cJSON_GetObjectItem(G, "inputs"), 1);
    long long cid = (long long)cJSON_GetObjectItem(in, "caption_id")->valuedouble;
    char *buf;
    size_t len;
    rs_err err;
    if (rs_read_file(TRANSLATIONS, 1 << 24, &buf, &len, &err)) fail_msg("%s", err.msg);
    char key[32];
    snprintf(key, sizeof key, "\n%lld,", cid);
    char *row = strstr(buf, key);
    assert_non_null(row);
    char *end = strchr(row + 1, '\n');
    assert_non_null(end);
    char tr[PATH_MAX + 64], cfg[PATH_MAX + 16], out[PATH_MAX + 16];
    snprintf(tr, sizeof tr, "%s/translations_missing_one.csv", DIR_);
    snprintf(cfg, sizeof cfg, "%s/c_missing.json", DIR_);
    snprintf(out, sizeof out, "%s/run_missing", DIR_);
    FILE *f = fopen(tr, "w");
    assert_non_null(f);
    fwrite(buf, 1, (size_t)(row - buf), f);  /* up to the row's line break */
    fputs(end, f);                            /* from the row's own line break on */
    fclose(f);
    free(buf);
    write_config(cfg, tr);
    char *msg = NULL;
    int rc = tu_run_pipeline(cfg, out, 0, &msg);
    printf("  missing caption_id %lld: status %d, message: %s\n", cid, rc, msg);
    assert_int_not_equal(rc, 0);
    assert_int_not_equal(rc, 128); /* an error, not a crash */
    char idtxt[32];
    snprintf(idtxt, sizeof idtxt, "%lld", cid);
    assert_non_null(strstr(msg, "translations_missing_one.csv"));
    assert_non_null(strstr(msg, idtxt));
    char p[PATH_MAX + 64];
    struct stat st;
    snprintf(p, sizeof p, "%s/acts/lang_es", out);
    assert_int_not_equal(stat(p, &st), 0);
    free(msg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lang_text_stores_match_transformers),
        cmocka_unit_test(test_lang_caption_store_matches_transformers),
        cmocka_unit_test(test_missing_translation_fails),
    };
    return tu_exit(cmocka_run_group_tests(tests, setup, teardown));
}
