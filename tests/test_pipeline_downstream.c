/* The downstream stage of `reprshift run` (docs/pipeline.md, Stage 3c) against the reference
 * stack: tests/fixtures/downstream/golden.json from tools/reference/gen_downstream_goldens.py
 * (tokenizers, transformers 5.24 fp32 eager, PaliGemmaProcessor, scipy):
 *  - stats_spearman = scipy.stats.spearmanr on fixed vectors (ties, n = 3, constant → NaN);
 *  - a run on five COCO-mini images (six captions: the first image has two) through the
 *    quickstart bundle: per caption, the CE of the suffix with the own image (every caption
 *    token and <eos>), the shift (1 − cos of the pooled a vs c rows) and the CE with the
 *    caption rows patched from Gemma-2 at layers 1 and 3 equal transformers' (≤ 1e-4
 *    relative), n_tokens exactly; ρ in downstream.json = scipy's on the reference vectors;
 *    the p-value within 0.05 of the exact permutation p of the same null (whole images
 *    permuted among images with as many captions: all 24 enumerated by the reference); the
 *    CI and q-value are well formed; 5 images (the bootstrap unit);
 *  - with `pool: "last"` the shift compares the caption's last-token rows (shift_last);
 *  - a second run is skipped; downstream.enabled = false leaves no downstream files and
 *    downstream.ablation = false no patched columns;
 *  - bad config: an unknown key or a wrong type under "downstream" is a clear error. */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "reprshift/config.h"
#include "reprshift/report.h"
#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "reprshift/stats.h"

static cJSON *G;
static char DIR_[PATH_MAX], MAN[PATH_MAX + 16], OUT[PATH_MAX + 16];
static int HAVE;

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* the config of the test run, with extra top-level keys (top: "" or "\"key\": value, ") and
 * extra text inside "downstream": {...} */
static void write_config_top(const char *path, const char *top, const char *downstream) {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) fail_msg("getcwd");
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot write %s", path);
    fprintf(f,
            "{%s\"output_dir\": \"unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\",\n"
            "            \"vlm\": \"%s/examples/quickstart/models/paligemma-tiny\"},\n"
            " \"layers\": [1, 3], \"dataset\": {\"manifest\": \"%s\"},\n"
            " \"conditions\": [\"llm\", \"vlm_text\", \"vlm_caption\"], \"permutations\": 0,\n"
            " \"downstream\": {%s},\n"
            " \"probes\": {\"which\": [\"concept\"], \"seeds\": 1, \"folds\": 2, \"bootstrap\": 10, \"min_test_groups\": 1, "
            "\"permutations\": 0}}\n",
            top, cwd, cwd, MAN, downstream);
    fclose(f);
}
static void write_config(const char *path, const char *downstream) { write_config_top(path, "", downstream); }

static int setup(void **state) {
    (void)state;
    rs_err err;
    if (rs_json_load("tests/fixtures/downstream/golden.json", 1 << 24, &G, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    HAVE = tu_have_shared("data/coco/mini", "the COCO mini images");
    if (!HAVE) return 0;
    char coco[PATH_MAX];
    if (!realpath(tu_shared("data/coco/mini"), coco)) return -1;
    snprintf(DIR_, sizeof DIR_, "%s", tu_tmpdir());
    snprintf(MAN, sizeof MAN, "%s/m.csv", DIR_);
    snprintf(OUT, sizeof OUT, "%s/run", DIR_);
    FILE *f = fopen(MAN, "w");
    if (!f) return -1;
    fprintf(f, "modality,input,label,file_name\n");
    const cJSON *im, *in;
    int j = 0;
    cJSON_ArrayForEach(im, cJSON_GetObjectItem(G, "images")) {
        const char *file = cJSON_GetObjectItem(im, "file")->valuestring, *lab = cJSON_GetObjectItem(im, "label")->valuestring;
        fprintf(f, "image,%s/val2017/%s,%s,%s\n", coco, file, lab, file);
        cJSON_ArrayForEach(in, cJSON_GetObjectItem(G, "inputs")) {
            if ((int)num(in, "image") != j) continue;
            fprintf(f, "text,\"%s\",%s,%s\n", cJSON_GetObjectItem(in, "caption")->valuestring, lab, file);
        }
        j++;
    }
    fclose(f);
    char cfg[PATH_MAX + 16];
    snprintf(cfg, sizeof cfg, "%s/c.json", DIR_);
    write_config(cfg, "\"bootstrap\": 200, \"permutations\": 2000");
    char *msg = NULL;
    int rc = tu_run_pipeline(cfg, OUT, 0, &msg);
    if (rc) fprintf(stderr, "run failed: %s\n", msg ? msg : "");
    free(msg);
    return rc ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    cJSON_Delete(G);
    return 0;
}

static void test_spearman_matches_scipy(void **state) {
    (void)state;
    const cJSON *cs;
    int k = 0;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(G, "spearman_cases")) {
        const cJSON *x = cJSON_GetObjectItem(cs, "x"), *y = cJSON_GetObjectItem(cs, "y"), *r = cJSON_GetObjectItem(cs, "rho");
        int n = cJSON_GetArraySize(x), used = -1;
        double *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        for (int i = 0; i < n; i++) a[i] = cJSON_GetArrayItem(x, i)->valuedouble, b[i] = cJSON_GetArrayItem(y, i)->valuedouble;
        double rho = stats_spearman(a, b, n, &used);
        assert_int_equal(used, n);
        if (cJSON_IsNull(r)) {
            assert_true(isnan(rho)); /* a constant side: scipy gives nan too */
        } else {
            if (fabs(rho - r->valuedouble) > 1e-12) fail_msg("case %d: rho %.17g, scipy %.17g", k, rho, r->valuedouble);
        }
        /* a non-finite pair is left out */
        if (n > 3) {
            double keep = a[0];
            a[0] = NAN;
            double r1 = stats_spearman(a, b, n, &used), r2 = stats_spearman(a + 1, b + 1, n - 1, NULL);
            assert_int_equal(used, n - 1);
            assert_true((isnan(r1) && isnan(r2)) || r1 == r2);
            a[0] = keep;
        }
        free(a);
        free(b);
        k++;
    }
    assert_true(k >= 6);
    double x2[2] = {1, 2};
    assert_true(isnan(stats_spearman(x2, x2, 2, NULL))); /* fewer than 3 pairs */
}

/* results/downstream_items.csv as rows of numbers by column name */
typedef struct {
    int n_rows, n_cols;
    char **names;
    char ***cells;
} csv_t;

static void csv_load(const char *path, csv_t *t) {
    char *buf;
    size_t len;
    rs_err err;
    if (rs_read_file(path, 1 << 24, &buf, &len, &err)) fail_msg("%s", err.msg);
    memset(t, 0, sizeof *t);
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char **cells = NULL;
        int nc = 0;
        char *s2 = NULL;
        for (char *c = strtok_r(line, ",", &s2); c; c = strtok_r(NULL, ",", &s2)) {
            cells = realloc(cells, (size_t)(nc + 1) * sizeof *cells);
            cells[nc++] = strdup(c);
        }
        if (!t->names) {
            t->names = cells;
            t->n_cols = nc;
        } else {
            assert_int_equal(nc, t->n_cols);
            t->cells = realloc(t->cells, (size_t)(t->n_rows + 1) * sizeof *t->cells);
            t->cells[t->n_rows++] = cells;
        }
    }
    free(buf);
}

static int csv_col(const csv_t *t, const char *name) {
    for (int k = 0; k < t->n_cols; k++)
        if (!strcmp(t->names[k], name)) return k;
    return -1;
}

static void csv_free(csv_t *t) {
    for (int r = 0; r < t->n_rows; r++) {
        for (int k = 0; k < t->n_cols; k++) free(t->cells[r][k]);
        free(t->cells[r]);
    }
    for (int k = 0; k < t->n_cols; k++) free(t->names[k]);
    free(t->names);
    free(t->cells);
}

static void check_col(const csv_t *t, const char *col, const cJSON *ref, double rel, const char *label) {
    int k = csv_col(t, col);
    if (k < 0) fail_msg("no column %s", col);
    int n = cJSON_GetArraySize(ref);
    assert_int_equal(n, t->n_rows);
    double mx = 0, md = 0;
    for (int i = 0; i < n; i++) {
        double r = cJSON_GetArrayItem(ref, i)->valuedouble, g = strtod(t->cells[i][k], NULL);
        mx = fabs(r) > mx ? fabs(r) : mx;
        md = fabs(g - r) > md ? fabs(g - r) : md;
    }
    printf("  %s: max |diff| %.3g (max |ref| %.3g)\n", label, md, mx);
    if (!(md <= rel * mx)) fail_msg("%s: max |diff| %.3g > %.3g × %.3g", label, md, rel, mx);
}

/* column NAME@blocks.L.hook_resid_post against the reference's G[key]["L"] */
static void check_layer_col(const csv_t *t, const char *name, int L, const char *key, const char *label) {
    char col[96], k[8];
    snprintf(col, sizeof col, "%s@blocks.%d.hook_resid_post", name, L);
    snprintf(k, sizeof k, "%d", L);
    check_col(t, col, cJSON_GetObjectItem(cJSON_GetObjectItem(G, key), k), 1e-4, label);
}

static void test_items_match_transformers(void **state) {
    (void)state;
    if (!HAVE) skip();
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/results/downstream_items.csv", OUT);
    csv_t t;
    csv_load(p, &t);
    check_col(&t, "ce", cJSON_GetObjectItem(G, "ce"), 1e-4, "ce (suffix, own image)");
    check_col(&t, "ce", cJSON_GetObjectItem(G, "hf_loss"), 1e-4, "ce vs transformers' own loss");
    int kn = csv_col(&t, "n_tokens");
    assert_true(kn >= 0);
    for (int i = 0; i < t.n_rows; i++)
        assert_int_equal(atoi(t.cells[i][kn]), (int)cJSON_GetArrayItem(cJSON_GetObjectItem(G, "n_tokens"), i)->valuedouble);
    const cJSON *lv;
    cJSON_ArrayForEach(lv, cJSON_GetObjectItem(G, "layers")) {
        int L = (int)lv->valuedouble;
        char col[96], label[96];
        snprintf(label, sizeof label, "shift layer %d", L);
        check_layer_col(&t, "shift", L, "shift", label);
        snprintf(label, sizeof label, "ce patched from Gemma-2 at layer %d", L);
        check_layer_col(&t, "ce_patched", L, "ce_patched", label);
        snprintf(col, sizeof col, "ce_patched@blocks.%d.hook_resid_post", L);
        /* delta_ce = ce_patched − ce */
        int kc = csv_col(&t, "ce"), kp = csv_col(&t, col), kd;
        snprintf(col, sizeof col, "delta_ce@blocks.%d.hook_resid_post", L);
        kd = csv_col(&t, col);
        assert_true(kd >= 0);
        for (int i = 0; i < t.n_rows; i++)
            assert_true(fabs(strtod(t.cells[i][kd], NULL) - (strtod(t.cells[i][kp], NULL) - strtod(t.cells[i][kc], NULL))) < 1e-6);
    }
    csv_free(&t);
}

/* rho = scipy's; p within 0.05 of the exact permutation p-value of the same null (the
 * reference enumerates all 24 permutations; ours draws P = 2000: Monte Carlo sd ≤ 0.011) */
static void check_stat(const cJSON *s, double ref, double p_exact, int n, int P) {
    assert_non_null(s);
    double v = num(s, "value"), lo = num(s, "ci_lo"), hi = num(s, "ci_hi"), p = num(s, "p_value"), q = num(s, "q_value");
    if (fabs(v - ref) > 1e-12) fail_msg("rho %.17g, scipy on the reference vectors %.17g", v, ref);
    printf("  rho %.4f [%.4f, %.4f], p %.4f (exact %.4f), q %.4f\n", v, lo, hi, p, p_exact, q);
    if (!(fabs(p - p_exact) <= 0.05)) fail_msg("p %.4f, exact permutation p %.4f", p, p_exact);
    assert_int_equal((int)num(s, "n"), n);
    assert_true(lo <= hi && lo >= -1 && hi <= 1);
    assert_true(p >= 1.0 / (1 + P) && p <= 1);
    assert_true(q >= p - 1e-15 && q <= 1);
}

static void test_json_rho_matches_scipy(void **state) {
    (void)state;
    if (!HAVE) skip();
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/results/downstream.json", OUT);
    cJSON *j;
    rs_err err;
    if (rs_json_load(p, 1 << 24, &j, &err)) fail_msg("%s", err.msg);
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(G, "ce"));
    assert_int_equal((int)num(j, "n_captions"), n);
    assert_int_equal((int)num(j, "n_images"), cJSON_GetArraySize(cJSON_GetObjectItem(G, "images")));
    assert_int_equal((int)num(j, "permutations"), 2000);
    assert_int_equal((int)num(j, "bootstrap"), 200);
    assert_int_equal((int)num(j, "n_tests"), 4);
    const cJSON *cm = cJSON_GetObjectItem(j, "ce_mean");
    double mean = 0;
    for (int i = 0; i < n; i++) mean += cJSON_GetArrayItem(cJSON_GetObjectItem(G, "ce"), i)->valuedouble / n;
    assert_true(fabs(num(cm, "value") - mean) < 1e-4 * mean);
    assert_true(num(cm, "ci_lo") <= num(cm, "value") && num(cm, "value") <= num(cm, "ci_hi"));
    const cJSON *L;
    int k = 0;
    cJSON_ArrayForEach(L, cJSON_GetObjectItem(j, "layers")) {
        char key[8];
        snprintf(key, sizeof key, "%d", (int)num(L, "layer"));
        const cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(G, "rho"), key);
        assert_non_null(r);
        check_stat(cJSON_GetObjectItem(L, "rho_shift_ce"), num(r, "shift_ce"), num(r, "p_exact_shift_ce"), n, 2000);
        check_stat(cJSON_GetObjectItem(L, "rho_shift_delta_ce"), num(r, "shift_delta_ce"), num(r, "p_exact_shift_delta_ce"),
                   n, 2000);
        assert_true(num(L, "shift_mean") > 0 && num(L, "shift_mean") < 2);
        k++;
    }
    assert_int_equal(k, 2);
    assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(j, "ce_definition")), "<eos> included"));
    cJSON_Delete(j);
    /* the report's section: the table with one row per hook */
    snprintf(p, sizeof p, "%s/report.html", OUT);
    char *html;
    size_t len;
    if (rs_read_file(p, 1 << 26, &html, &len, &err)) fail_msg("%s", err.msg);
    const char *sec = strstr(html, "<section id=\"downstream\">");
    assert_non_null(sec);
    assert_non_null(strstr(sec, "<h2>Shift and caption quality</h2>"));
    assert_non_null(strstr(sec, "shift &harr; caption-CE correlation"));
    assert_non_null(strstr(sec, "<tr><td><code>blocks.1.hook_resid_post</code></td><td>1</td>"));
    assert_non_null(strstr(sec, "<tr><td><code>blocks.3.hook_resid_post</code></td><td>3</td>"));
    assert_non_null(strstr(html, "<a href=\"#downstream\">"));
    free(html);
}

/* a malformed downstream.json is an error naming the file; an absent one leaves no section */
static void test_report_bad_file(void **state) {
    (void)state;
    char d[PATH_MAX], p[PATH_MAX + 32];
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char *html = NULL;
    rs_err err = {0};
    assert_int_equal(report_render(d, &html, NULL, NULL, &err), 0);
    assert_null(strstr(html, "id=\"downstream\""));
    free(html);
    snprintf(p, sizeof p, "%s/downstream.json", d);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("{\"ci\": \"x\", \"n_captions\": 3, \"n_images\": 3, \"layers\": 7}\n", f);
    fclose(f);
    html = NULL;
    assert_int_equal(report_render(d, &html, NULL, NULL, &err), -1);
    assert_null(html);
    assert_non_null(strstr(err.msg, "downstream.json"));
    assert_non_null(strstr(err.msg, "layers"));
    printf("  %s\n", err.msg);
}

static int exists_in(const char *dir, const char *rel) {
    char p[PATH_MAX + 96];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return access(p, F_OK) == 0;
}

/* pool "last": the per-item shift compares the caption's last-token rows (shift_last of the
 * reference), not the means; downstream.json says so */
static void test_pool_last(void **state) {
    (void)state;
    if (!HAVE) skip();
    char cfg[PATH_MAX + 16], out[PATH_MAX + 16], p[PATH_MAX + 64], *msg = NULL;
    snprintf(cfg, sizeof cfg, "%s/c_last.json", DIR_);
    snprintf(out, sizeof out, "%s/run_last", DIR_);
    write_config_top(cfg, "\"pool\": \"last\", ", "\"ablation\": false, \"bootstrap\": 20, \"permutations\": 20");
    int rc = tu_run_pipeline(cfg, out, 0, &msg);
    if (rc) fail_msg("run failed: %s", msg ? msg : "");
    free(msg);
    snprintf(p, sizeof p, "%s/results/downstream_items.csv", out);
    csv_t t;
    csv_load(p, &t);
    check_col(&t, "ce", cJSON_GetObjectItem(G, "ce"), 1e-4, "ce (pool last)");
    const cJSON *lv;
    cJSON_ArrayForEach(lv, cJSON_GetObjectItem(G, "layers")) {
        char label[96];
        snprintf(label, sizeof label, "shift (pool last) layer %d", (int)lv->valuedouble);
        check_layer_col(&t, "shift", (int)lv->valuedouble, "shift_last", label);
    }
    csv_free(&t);
    snprintf(p, sizeof p, "%s/results/downstream.json", out);
    cJSON *j;
    rs_err err;
    if (rs_json_load(p, 1 << 24, &j, &err)) fail_msg("%s", err.msg);
    const cJSON *def = cJSON_GetObjectItem(j, "shift_definition");
    assert_true(cJSON_IsString(def));
    assert_non_null(strstr(def->valuestring, "last-token"));
    cJSON_Delete(j);
}

/* a second run skips the stage; off removes its outputs; no ablation: no patched columns */
static void test_rerun_off_and_no_ablation(void **state) {
    (void)state;
    if (!HAVE) skip();
    char cfg[PATH_MAX + 16], *msg = NULL, logp[PATH_MAX + 32];
    snprintf(cfg, sizeof cfg, "%s/c.json", DIR_);
    assert_int_equal(tu_run_pipeline(cfg, OUT, 0, &msg), 0);
    free(msg);
    snprintf(logp, sizeof logp, "%s/run.log", OUT);
    char *log;
    size_t len;
    rs_err err;
    if (rs_read_file(logp, 1 << 24, &log, &len, &err)) fail_msg("%s", err.msg);
    assert_non_null(strstr(log, "[downstream] complete (skipped)"));
    free(log);

    write_config(cfg, "\"enabled\": false");
    assert_int_equal(tu_run_pipeline(cfg, OUT, 0, &msg), 0);
    free(msg);
    assert_false(exists_in(OUT, "results/downstream.json"));
    assert_false(exists_in(OUT, "results/downstream_items.csv"));
    assert_false(exists_in(OUT, "stages/downstream.done"));
    assert_true(exists_in(OUT, "report.html"));

    write_config(cfg, "\"ablation\": false, \"bootstrap\": 20, \"permutations\": 20");
    assert_int_equal(tu_run_pipeline(cfg, OUT, 0, &msg), 0);
    free(msg);
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/results/downstream_items.csv", OUT);
    csv_t t;
    csv_load(p, &t);
    assert_int_equal(csv_col(&t, "ce_patched@blocks.1.hook_resid_post"), -1);
    assert_true(csv_col(&t, "shift@blocks.3.hook_resid_post") >= 0);
    check_col(&t, "ce", cJSON_GetObjectItem(G, "ce"), 1e-4, "ce (no ablation)");
    csv_free(&t);
    snprintf(p, sizeof p, "%s/results/downstream.json", OUT);
    cJSON *j;
    if (rs_json_load(p, 1 << 24, &j, &err)) fail_msg("%s", err.msg);
    assert_int_equal((int)num(j, "n_tests"), 2);
    assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layers"), 0), "rho_shift_delta_ce"));
    cJSON_Delete(j);
}

static void bad_config(const char *downstream, const char *expect) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"output_dir\": \"o\", \"models\": {\"llm\": \"a\", \"vlm\": \"b\"}, \"dataset\": {\"manifest\": \"m.csv\"}, "
             "\"downstream\": %s}",
             downstream);
    rs_config *c = NULL;
    rs_err err = {0};
    assert_int_equal(rs_config_parse(json, ".", "cfg.json", &c, &err), -1);
    assert_null(c);
    if (!strstr(err.msg, expect)) fail_msg("error '%s' lacks '%s'", err.msg, expect);
    printf("  %s -> %s\n", downstream, err.msg);
}

static void test_bad_config(void **state) {
    (void)state;
    bad_config("{\"enable\": true}", "unknown key 'downstream.enable' (did you mean 'downstream.enabled'?)");
    bad_config("{\"bootstrap\": \"many\"}", "downstream.bootstrap");
    bad_config("{\"permutations\": -1}", "downstream.permutations");
    bad_config("{\"ablation\": 1}", "downstream.ablation");
    bad_config("true", "downstream");
    /* the defaults */
    rs_config *c = NULL;
    rs_err err = {0};
    assert_int_equal(rs_config_parse("{\"output_dir\": \"o\", \"models\": {\"llm\": \"a\", \"vlm\": \"b\"}, "
                                     "\"dataset\": {\"manifest\": \"m.csv\"}}",
                                     ".", "cfg.json", &c, &err),
                     0);
    assert_int_equal(c->downstream.enabled, 1);
    assert_int_equal(c->downstream.ablation, 1);
    assert_int_equal(c->downstream.bootstrap, 1000);
    assert_int_equal(c->downstream.permutations, 1000);
    rs_config_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spearman_matches_scipy),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_items_match_transformers),
        cmocka_unit_test(test_json_rho_matches_scipy),
        cmocka_unit_test(test_rerun_off_and_no_ablation),
        cmocka_unit_test(test_pool_last),
        cmocka_unit_test(test_report_bad_file),
    };
    return tu_exit(cmocka_run_group_tests(tests, setup, teardown));
}
