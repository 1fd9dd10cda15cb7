/* Every JSON reprshift writes must parse: runs the CLI commands that write JSON (sae fit
 * with and without special-token rows, sae splice, sae train, shift, probe train / eval /
 * transfer, extract, tokenize, config check) on the tiny fixtures, and `reprshift run` on a
 * small experiment (bundled tiny models + COCO mini), then parses every *.json and every
 * line of every *.jsonl they left (and their stdout JSON) with the strict cJSON reader.
 * A bare nan / inf / -nan anywhere fails the test with the file name. The validator itself
 * is checked to reject such files, and the empty special-token subset of `sae fit` must
 * come out as null metrics (docs: non-finite numbers are written as null). */
#include "testutil.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "reprshift/fileio.h"
#include "base/jsonutil.h"

static const char *CLI;

/* Parse one file: a whole JSON document (*.json) or one per non-empty line (*.jsonl).
 * Returns 0 when valid; else prints why and returns -1. */
static int check_file(const char *path, int lines) {
    rs_err err = {0};
    if (!lines) {
        cJSON *j;
        if (rs_json_load(path, (size_t)1 << 30, &j, &err)) {
            print_error("invalid JSON: %s\n", err.msg);
            return -1;
        }
        cJSON_Delete(j);
        return 0;
    }
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int ln = 0, rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        ln++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (!n) continue;
        cJSON *j;
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "%s line %d", path, ln);
        if (rs_json_parse(line, (size_t)n, what, &j, &err)) {
            print_error("invalid JSON: %s\n", err.msg);
            rc = -1;
            break;
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    return rc;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Check every *.json / *.jsonl under dir (recursively); counts the files checked. */
static int check_tree(const char *dir, int *n_files) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
            if (check_tree(p, n_files)) rc = -1;
        } else if (ends_with(p, ".json") || ends_with(p, ".jsonl")) {
            (*n_files)++;
            if (check_file(p, ends_with(p, ".jsonl"))) rc = -1;
        }
    }
    closedir(d);
    return rc;
}

static void test_validator_rejects_non_finite(void **state) {
    (void)state;
    const char *t = tu_tmpdir();
    char p[PATH_MAX];
    static const char *BAD[] = {"{\"a\": nan}", "{\"a\": -nan}", "[inf]", "{\"a\": -inf}", "[NaN]", "{\"a\": Infinity}"};
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        snprintf(p, sizeof p, "%s/bad%zu.json", t, i);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(BAD[i], f);
        fclose(f);
        assert_int_not_equal(check_file(p, 0), 0);
    }
    snprintf(p, sizeof p, "%s/bad.jsonl", t);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("{\"a\": 1}\n{\"a\": nan}\n", f);
    fclose(f);
    assert_int_not_equal(check_file(p, 1), 0);
    /* the central writer: non-finite -> null, finite numbers in the caller's format */
    char b[RS_JSON_NUM_SIZE];
    assert_string_equal(rs_json_fmt_num(b, sizeof b, "%.6f", 0.0 / 0.0), "null");
    assert_string_equal(rs_json_fmt_num(b, sizeof b, "%.9g", 1.0 / 0.0), "null");
    assert_string_equal(rs_json_fmt_num(b, sizeof b, "%.9g", -1.0 / 0.0), "null");
    assert_string_equal(rs_json_fmt_num(b, sizeof b, "%.6f", 0.25), "0.250000");
    cJSON *o = cJSON_CreateObject();
    rs_json_add_num(o, "x", 0.0 / 0.0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "x")));
    cJSON_Delete(o);
}

#define RUN(...) assert_int_equal(tu_system(__VA_ARGS__), 0)

static void test_cli_outputs(void **state) {
    (void)state;
    const char *t0 = tu_tmpdir();
    char T[PATH_MAX];
    snprintf(T, sizeof T, "%s", t0);
    const char *F = "tests/fixtures/sae", *GS = "tests/fixtures/sae/gemma-scope-2b-pt-res/layer_3/width_128/average_l0_5";
    const char *P = "tests/fixtures/probe", *H = "blocks.1.hook_resid_post";
    /* sae fit: all rows kept (--keep-special) leaves the special-token subset empty */
    RUN("RS_QUIET=1 %s sae fit --acts %s/acts_a.safetensors --sae %s --keep-special > %s/fit_keep.json", CLI, F, GS, T);
    RUN("RS_QUIET=1 %s sae fit --acts %s/acts_a.safetensors --sae %s > %s/fit.json", CLI, F, GS, T);
    RUN("RS_QUIET=1 %s sae train --acts %s/acts_a.safetensors --hook blocks.3.hook_resid_post --d-sae 16 --k 2 "
        "--steps 5 --batch 8 --out %s/sae 2>/dev/null", CLI, F, T);
    RUN("RS_QUIET=1 %s shift --a %s/acts_a.safetensors --b %s/acts_b.safetensors --sae %s --bootstrap 10 --out %s/shift "
        "2>/dev/null", CLI, F, F, GS, T);
    RUN("printf '2,17,300,4,9,33\\n2,45\\n' > %s/ids.txt && RS_QUIET=1 %s sae splice --model "
        "tests/fixtures/models/gemma2-tiny-f32 --sae tests/fixtures/splice/sae_l1_jumprelu --ids-file %s/ids.txt > %s/splice.json",
        T, CLI, T, T);
    RUN("RS_QUIET=1 %s probe train --acts %s/cli_acts.safetensors --hook %s --labels %s/cli_labels.txt --Cs 0.1,1 --cv 2 "
        "--out %s/p.safetensors 2>/dev/null", CLI, P, H, P, T);
    RUN("RS_QUIET=1 %s probe eval --acts %s/cli_acts.safetensors --hook %s --labels %s/cli_labels.txt --seeds 2 --boot 20 --test-frac 0.4 "
        "--json %s/eval.json > /dev/null 2>&1", CLI, P, H, P, T);
    RUN("RS_QUIET=1 %s probe transfer --a %s/cli_transfer_a.safetensors --b %s/cli_transfer_b.safetensors --hook %s "
        "--labels %s/cli_transfer_labels_a.txt --ids-a %s/cli_transfer_ids_a.txt --ids-b %s/cli_transfer_ids_b.txt "
        "--seeds 2 --boot 20 --json %s/transfer.json > /dev/null 2>&1", CLI, P, P, H, P, P, P, T);
    RUN("RS_QUIET=1 %s extract --model tests/fixtures/models/gemma2-tiny-f32 --hook blocks.0.hook_resid_post "
        "--ids 2,3,4 --pool mean --out %s/x.safetensors 2>/dev/null", CLI, T);
    RUN("%s tokenize --tokenizer examples/quickstart/models/gemma2-tiny/tokenizer.json --text 'a cat, two dogs' "
        "> %s/tok.jsonl", CLI, T);
    RUN("%s config check examples/quickstart.json > %s/config.json 2>/dev/null", CLI, T);

    int n = 0;
    assert_int_equal(check_tree(T, &n), 0);
    static const char *EXPECT[] = {"fit_keep.json", "fit.json", "sae/cfg.json", "shift/results.json", "splice.json",
                                   "p.json", "eval.json", "transfer.json", "x.safetensors.rows.jsonl", "tok.jsonl", "config.json"};
    for (size_t i = 0; i < sizeof EXPECT / sizeof EXPECT[0]; i++) {
        char q[PATH_MAX + 64];
        snprintf(q, sizeof q, "%s/%s", T, EXPECT[i]);
        if (!rs_path_exists(q)) print_error("missing output %s\n", q);
        assert_true(rs_path_exists(q));
    }
    assert_true(n >= (int)(sizeof EXPECT / sizeof EXPECT[0]));

    /* the empty subset's undefined metrics are null, the defined ones numbers */
    cJSON *j;
    rs_err err = {0};
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/fit_keep.json", T);
    assert_int_equal(rs_json_load(p, 1 << 20, &j, &err), 0);
    const cJSON *sp = cJSON_GetObjectItem(j, "special_tokens"), *fit = cJSON_GetObjectItem(j, "fit");
    assert_int_equal((int)cJSON_GetObjectItem(sp, "n_rows")->valuedouble, 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(sp, "mse")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(sp, "explained_variance")));
    assert_int_equal((int)cJSON_GetObjectItem(fit, "n_rows")->valuedouble, 40);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(fit, "mse")));
    cJSON_Delete(j);
}

static void test_run_outputs(void **state) {
    (void)state;
    TU_NEED_SHARED("data/coco/mini", "the 159-image COCO mini set");
    char cwd[PATH_MAX], coco[PATH_MAX], T[PATH_MAX], cfg[PATH_MAX + 16], out[PATH_MAX + 16];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_non_null(realpath(tu_shared("data/coco/mini"), coco));
    snprintf(T, sizeof T, "%s", tu_tmpdir());
    snprintf(cfg, sizeof cfg, "%s/cfg.json", T);
    snprintf(out, sizeof out, "%s/run", T);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"output_dir\": \"unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\",\n"
            "            \"vlm\": \"%s/examples/quickstart/models/paligemma-tiny\"},\n"
            " \"layers\": [1], \"vision_hooks\": [\"vision.ln_post\"],\n"
            " \"saes\": {\"path\": \"%s/examples/quickstart/models/sae/blocks.{layer}.hook_resid_post\"},\n"
            " \"dataset\": {\"instances\": \"%s/annotations/instances_val2017.json\",\n"
            "             \"captions\": \"%s/annotations/captions_val2017.json\", \"images\": \"%s/val2017\",\n"
            "             \"groups\": {\"animals\": [\"animal\"], \"vehicles\": [\"vehicle\"]}, \"n_per_group\": 4},\n"
            " \"edits\": [{\"name\": \"contrast\", \"values\": [0.5]}],\n"
            " \"probes\": {\"seeds\": 2, \"folds\": 2, \"bootstrap\": 20, \"min_test_groups\": 1, \"permutations\": 10}}\n",
            cwd, cwd, cwd, coco, coco, coco);
    fclose(f);
    RUN("%s run %s --out %s --threads 1 --quiet > /dev/null", CLI, cfg, out);
    int n = 0;
    assert_int_equal(check_tree(out, &n), 0);
    print_message("run: %d JSON files parsed\n", n);
    assert_true(n >= 8); /* config.resolved, provenance, shift, sae_fit, probes, transfer, store indexes, ... */
}

int main(void) {
    CLI = getenv("RS_CLI");
    if (!CLI) {
        fprintf(stderr, "RS_CLI not set\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator_rejects_non_finite),
        cmocka_unit_test(test_cli_outputs),
        cmocka_unit_test(test_run_outputs),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
