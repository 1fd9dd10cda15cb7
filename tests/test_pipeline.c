/* `reprshift run` (src/pipeline/) on a small variant of the quickstart config (bundled
 * tiny models + the bundled real COCO sample, examples/data/coco-sample):
 *  - SHA-256 against the FIPS 180-4 / NIST example vectors;
 *  - a complete run writes every stage's outputs with the documented schemas, and a second
 *    run skips every stage and changes nothing;
 *  - resumability: the run is SIGKILLed at pseudo-random points (seed RS_KILL_SEED) and
 *    started again, several times; the finished run directory (stores, manifest, results,
 *    report, done-markers) is byte-identical to an uninterrupted run's;
 *  - disk full (RLIMIT_FSIZE in a child, SIGXFSZ ignored) during the extract and during the
 *    report: a clear error, no done-marker for the failed stage, and the re-run without the
 *    limit finishes byte-identical to the uninterrupted run.
 * Every run happens in a forked child so the test process itself never starts OpenMP
 * threads (fork after OpenMP is unsafe). */
#include "testutil.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "reprshift/blas.h"
#include "reprshift/fileio.h"
#include "reprshift/ops.h"
#include "base/jsonutil.h"
#include "reprshift/pipeline.h"
#include "reprshift/store.h"
#include "report/svg.h"

#define KILLS 12

static char CFG[4096];   /* the small config */
static char REF[4096];   /* uninterrupted run directory */
static double REF_SECONDS;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Write the small config (absolute paths) into dir/small.json. */
static void write_config(const char *dir, const char *path) {
    char cwd[2048];
    assert_non_null(getcwd(cwd, sizeof cwd));
    const char *coco = "examples/data/coco-sample"; /* relative to cwd, the repository root */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"name\": \"pipeline test\", \"output_dir\": \"%s/unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\",\n"
            "            \"vlm\": \"%s/examples/quickstart/models/paligemma-tiny\", \"batch_tokens\": 256},\n"
            " \"layers\": [1, 3], \"hooks\": [\"blocks.{layer}.hook_resid_post\"],\n"
            " \"saes\": {\"path\": \"%s/examples/quickstart/models/sae/blocks.{layer}.hook_resid_post\"},\n"
            " \"dataset\": {\"instances\": [\"%s/%s/annotations/instances_train2017.json\",\n"
            "                           \"%s/%s/annotations/instances_val2017.json\"],\n"
            "             \"captions\": [\"%s/%s/annotations/captions_train2017.json\",\n"
            "                          \"%s/%s/annotations/captions_val2017.json\"],\n"
            "             \"images\": [\"%s/%s/train2017\", \"%s/%s/val2017\"],\n"
            "             \"groups\": {\"animals\": [\"animal\"], \"vehicles\": [\"vehicle\"], \"food\": [\"food\"]},\n"
            "             \"n_per_group\": 6, \"seed\": 3},\n"
            " \"edits\": [{\"name\": \"brightness\", \"values\": [0.6]}, {\"name\": \"blur\", \"values\": [2]}],\n"
            " \"probes\": {\"seeds\": 2, \"folds\": 2, \"bootstrap\": 50, \"min_test_groups\": 1, \"permutations\": 20}}\n",
            dir, cwd, cwd, cwd, cwd, coco, cwd, coco, cwd, coco, cwd, coco, cwd, coco, cwd, coco);
    fclose(f);
}

/* Run the pipeline in a child; fsize_limit > 0 sets RLIMIT_FSIZE. Returns the child's
 * exit status (0 ok, 1 error); the error message goes to errfile. */
static int run_child(const char *out, long fsize_limit, const char *errfile) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (fsize_limit > 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        rs_pipeline_opts o = rs_pipeline_defaults();
        o.config_path = CFG;
        o.output_dir = out;
        o.quiet = 1;
        o.shard_inputs = 4;
        o.threads = 1;
        rs_err err = {0};
        char *rep = NULL;
        int rc = rs_pipeline_run(&o, &rep, &err);
        if (rc && errfile) {
            FILE *f = fopen(errfile, "w");
            if (f) {
                fputs(err.msg, f);
                fclose(f);
            }
        }
        free(rep);
        _exit(rc ? 1 : 0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Files under dir (recursive, relative paths, sorted), skipping run.log,
 * provenance.json and config.resolved.json (they hold times and the run folder). */
static void list_rec(const char *root, const char *rel, char ***names, int *n) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char r2[4096];
        snprintf(r2, sizeof r2, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        if (!strcmp(r2, "run.log") || !strcmp(r2, "provenance.json") || !strcmp(r2, "config.resolved.json")) continue;
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", root, r2);
        if (rs_is_dir(full)) {
            list_rec(root, r2, names, n);
            continue;
        }
        *names = realloc(*names, (size_t)(*n + 1) * sizeof **names);
        (*names)[(*n)++] = strdup(r2);
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Remove every occurrence of s from buf[n]; returns the new length. */
static size_t cut_all(char *buf, size_t n, const char *s) {
    size_t L = strlen(s), w = 0;
    for (size_t r = 0; r < n;) {
        if (r + L <= n && !memcmp(buf + r, s, L)) {
            r += L;
            continue;
        }
        buf[w++] = buf[r++];
    }
    return w;
}

/* Same file names and same bytes under both run folders. */
static void assert_same_tree(const char *a, const char *b) {
    char **na = NULL, **nb = NULL;
    int ca = 0, cb = 0;
    list_rec(a, "", &na, &ca);
    list_rec(b, "", &nb, &cb);
    qsort(na, (size_t)ca, sizeof *na, cmp_str);
    qsort(nb, (size_t)cb, sizeof *nb, cmp_str);
    for (int i = 0; i < ca || i < cb; i++) {
        if (i >= ca || i >= cb || strcmp(na[i], nb[i]))
            fail_msg("file lists differ at %d: %s vs %s", i, i < ca ? na[i] : "(end)", i < cb ? nb[i] : "(end)");
    }
    int n_store = 0;
    for (int i = 0; i < ca; i++) {
        char pa[8192], pb[8192];
        snprintf(pa, sizeof pa, "%s/%s", a, na[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, nb[i]);
        char *ba = NULL, *bb = NULL;
        size_t la, lb;
        rs_err err;
        if (rs_read_file(pa, 1u << 30, &ba, &la, &err) || rs_read_file(pb, 1u << 30, &bb, &lb, &err))
            fail_msg("%s", err.msg);
        if (!strcmp(na[i], "report.html")) {
            /* the report names its results folder: compare with the run folders cut out */
            la = cut_all(ba, la, a);
            lb = cut_all(bb, lb, b);
        }
        if (la != lb || memcmp(ba, bb, la)) fail_msg("%s differs (%zu vs %zu bytes)", na[i], la, lb);
        n_store += strstr(na[i], ".safetensors") != NULL;
        free(ba);
        free(bb);
        free(na[i]);
        free(nb[i]);
    }
    free(na);
    free(nb);
    assert_true(ca > 20);
    assert_true(n_store >= 20); /* 4 stores of 5-9 shards each */
    printf("  %d files identical (%d store shards)\n", ca, n_store);
}

static char *path_in(const char *dir, const char *rel) {
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s/%s", dir, rel);
    return buf;
}

static int setup(void **state) {
    (void)state;
    char *dir = strdup(tu_tmpdir());
    snprintf(CFG, sizeof CFG, "%s/small.json", dir);
    write_config(dir, CFG);
    snprintf(REF, sizeof REF, "%s/ref", dir);
    free(dir);
    double t0 = now_s();
    char ef[4200];
    snprintf(ef, sizeof ef, "%s.err", REF);
    int rc = run_child(REF, 0, ef);
    REF_SECONDS = now_s() - t0;
    if (rc) {
        char *m = NULL;
        size_t n;
        rs_err e;
        rs_read_file(ef, 1 << 20, &m, &n, &e);
        fprintf(stderr, "uninterrupted run failed: %s\n", m ? m : "?");
        free(m);
        return -1;
    }
    printf("uninterrupted run: %.2f s\n", REF_SECONDS);
    return 0;
}

static void test_sha256_nist_vectors(void **state) {
    (void)state;
    char h[65];
    rs_sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    rs_sha256_hex("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    rs_sha256_hex(m, strlen(m), h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a' through the file reader (several read() calls) */
    char path[4200];
    snprintf(path, sizeof path, "%s/a.bin", tu_tmpdir());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 1000000; i++) fputc('a', f);
    fclose(f);
    int64_t bytes;
    rs_err err;
    assert_int_equal(rs_sha256_file(path, h, &bytes, &err), 0);
    assert_int_equal(bytes, 1000000);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    assert_int_not_equal(rs_sha256_file("/nonexistent/x", h, &bytes, &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/x"));
}

/* Outputs and their schemas; the second run skips everything. */
static void test_run_outputs_and_skip(void **state) {
    (void)state;
    const char *must[] = {"config.resolved.json", "provenance.json", "run.log", "dataset/manifest.csv",
                          "acts/llm_text/index.json", "acts/vlm_text/index.json", "acts/vlm_image/index.json",
                          "acts/vlm_edits/index.json", "results/shift.json", "results/sae_fit.json",
                          "results/probes.json", "results/transfer.json", "report.html", "stages/report.done"};
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        if (!rs_path_exists(path_in(REF, must[i]))) fail_msg("missing %s", must[i]);
    rs_err err;
    cJSON *j;
    /* provenance: version, config checksum, a sha256 + size per model / SAE file */
    if (rs_json_load(path_in(REF, "provenance.json"), 1 << 24, &j, &err)) fail_msg("%s", err.msg);
    assert_string_equal(cJSON_GetObjectItem(j, "version")->valuestring, "0.1.0");
    assert_int_equal(strlen(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"), "sha256")->valuestring), 64);
    /* the GEMM the linear layers ran on: the automatic route's choice for this CPU
     * (include/reprshift/blas.h: oneDNN on AMD with AVX-512 in builds with oneDNN, else the BLAS) */
    cJSON *bl = cJSON_GetObjectItem(j, "blas");
    int dnnl = rs_sgemm_auto_onednn();
    assert_string_equal(cJSON_GetObjectItem(bl, "linear_layers_path")->valuestring, dnnl ? "oneDNN" : "BLAS");
    assert_non_null(strstr(cJSON_GetObjectItem(bl, "linear_layers")->valuestring,
                           dnnl ? "(the automatic choice on AMD CPUs with AVX-512" : "BLAS (the "));
    /* and the attention's products: the route in force in this process (ops.h op_attn_route) */
    assert_string_equal(cJSON_GetObjectItem(bl, "attention_path")->valuestring, op_attn_route_name(op_attn_route()));
    int n_files = 0, n_sae = 0;
    cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(j, "files")) {
        n_files++;
        n_sae += !strcmp(cJSON_GetObjectItem(f, "role")->valuestring, "sae");
        const char *p = cJSON_GetObjectItem(f, "path")->valuestring;
        char h[65];
        int64_t b;
        if (rs_sha256_file(p, h, &b, &err)) fail_msg("%s", err.msg);
        assert_string_equal(h, cJSON_GetObjectItem(f, "sha256")->valuestring);
        assert_int_equal(b, (int64_t)cJSON_GetObjectItem(f, "bytes")->valuedouble);
    }
    assert_true(n_files >= 7);
    assert_int_equal(n_sae, 4); /* cfg.json + sae_weights.safetensors for layers 1 and 3 */
    cJSON_Delete(j);
    /* stores: finished, one input per caption / image / (edit, image) */
    const char *stores[4] = {"acts/llm_text", "acts/vlm_text", "acts/vlm_image", "acts/vlm_edits"};
    int64_t want[4] = {18, 18, 18, 36};
    for (int s = 0; s < 4; s++) {
        store_reader *r;
        int64_t *off = NULL, n = 0;
        if (store_reader_open(&r, path_in(REF, stores[s]), &err) || store_read_offsets(r, "offsets", &off, &n, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(n, want[s]);
        free(off);
        store_reader_close(r);
    }
    /* shift.json: one entry per layer with SAE metrics; sae_fit.json: 2 models x 2 layers */
    if (rs_json_load(path_in(REF, "results/shift.json"), 1 << 26, &j, &err)) fail_msg("%s", err.msg);
    cJSON *layers = cJSON_GetObjectItem(j, "layers");
    assert_int_equal(cJSON_GetArraySize(layers), 2);
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetArrayItem(layers, 1), "layer")->valuedouble, 3);
    assert_string_equal(cJSON_GetObjectItem(j, "mode")->valuestring, "token_aligned");
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(layers, 0), "shift"), "jaccard_token"));
    /* one caption per image: the caption-to-caption floor says why it is missing and how to
       get it, in shift.json and in the report (test_pipeline_captions.c: 2 per image) */
    for (int side = 0; side < 2; side++) {
        cJSON *cp = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(layers, 0), "floors"),
                                        side ? "caption_pair_b" : "caption_pair_a");
        assert_non_null(cp);
        assert_true(cJSON_IsString(cJSON_GetObjectItem(cp, "unavailable")));
        assert_non_null(strstr(cJSON_GetObjectItem(cp, "unavailable")->valuestring, "dataset.captions_per_image >= 2"));
        assert_null(cJSON_GetObjectItem(cp, "cos_raw"));
    }
    cJSON_Delete(j);
    {
        char *html;
        size_t hn;
        if (rs_read_file(path_in(REF, "report.html"), 1 << 26, &html, &hn, &err)) fail_msg("%s", err.msg);
        assert_non_null(strstr(html, "Caption-to-caption floor not available: "));
        assert_null(strstr(html, "floor: caption pair (B)"));
        /* attribute_transfer.json in the report: a table per hook with the file's cells
           (brightness 0.6 and blur 2: one strength each, so no dose-response figure) */
        cJSON *at;
        if (rs_json_load(path_in(REF, "results/attribute_transfer.json"), 1 << 26, &at, &err)) fail_msg("%s", err.msg);
        const char *sec = strstr(html, "<h3>Attribute probes across edits</h3>");
        assert_non_null(sec);
        assert_null(strstr(sec, "Dose-response:"));
        int n_tab = 0;
        cJSON *M;
        cJSON_ArrayForEach(M, cJSON_GetObjectItem(at, "matrices")) {
            char cap[300], cell[200], b1[32], b2[32], b3[32];
            snprintf(cap, sizeof cap, "<caption>%s (n = %d images)</caption>", cJSON_GetObjectItem(M, "hook")->valuestring,
                     (int)cJSON_GetObjectItem(M, "n_images")->valuedouble);
            const char *t = strstr(sec, cap);
            if (!t) fail_msg("no table %s", cap);
            n_tab++;
            int r = 0;
            cJSON *R;
            cJSON_ArrayForEach(R, cJSON_GetObjectItem(M, "values")) {
                int k = 0;
                cJSON *e;
                cJSON_ArrayForEach(e, R) {
                    cJSON *v = cJSON_GetObjectItem(e, "value"), *lo = cJSON_GetObjectItem(e, "ci_lo"),
                          *hi = cJSON_GetObjectItem(e, "ci_hi");
                    snprintf(cell, sizeof cell, "<td>%s%s [%s, %s]%s</td>", r == k ? "<b>" : "",
                             svg_fmt(cJSON_IsNumber(v) ? v->valuedouble : NAN, b1, sizeof b1),
                             svg_fmt(cJSON_IsNumber(lo) ? lo->valuedouble : NAN, b2, sizeof b2),
                             svg_fmt(cJSON_IsNumber(hi) ? hi->valuedouble : NAN, b3, sizeof b3), r == k ? "</b>" : "");
                    const char *end = strstr(t, "</table>");
                    const char *hit = strstr(t, cell);
                    if (!hit || hit > end) fail_msg("%s: cell %d,%d %s not in its table", cap, r, k, cell);
                    k++;
                }
                r++;
            }
        }
        assert_int_equal(n_tab, cJSON_GetArraySize(cJSON_GetObjectItem(at, "matrices")));
        assert_true(n_tab >= 2);
        /* luminance: one entry per edit variant (brightness 0.6, blur 2) over the 18 base
           images; brightness 0.6 darkens in both measures, its CI brackets the mean */
        cJSON *lum = cJSON_GetObjectItem(at, "luminance");
        assert_int_equal(cJSON_GetArraySize(lum), 2);
        const char *names[2] = {"brightness", "blur"};
        for (int k = 0; k < 2; k++) {
            cJSON *e = cJSON_GetArrayItem(lum, k);
            assert_string_equal(cJSON_GetObjectItem(e, "edit")->valuestring, names[k]);
            assert_int_equal((int)cJSON_GetObjectItem(e, "n_images")->valuedouble, 18);
            assert_true(cJSON_IsString(cJSON_GetObjectItem(e, "definition")));
            for (int m = 0; m < 2; m++) {
                cJSON *d = cJSON_GetObjectItem(e, m ? "d_linear_Y" : "d_luma_bt601");
                double v = cJSON_GetObjectItem(d, "value")->valuedouble, lo = cJSON_GetObjectItem(d, "ci_lo")->valuedouble,
                       hi = cJSON_GetObjectItem(d, "ci_hi")->valuedouble;
                assert_true(lo <= v && v <= hi);
                if (k == 0) assert_true(hi < 0);
            }
        }
        assert_non_null(strstr(sec, "<th>Edit</th><th>&Delta;luma BT.601 [95% CI]</th><th>&Delta;Y linear [95% CI]</th>"));
        cJSON_Delete(at);
        free(html);
    }
    if (rs_json_load(path_in(REF, "results/sae_fit.json"), 1 << 26, &j, &err)) fail_msg("%s", err.msg);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "models")), 4);
    cJSON *m0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "models"), 0);
    double ce = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(m0, "metrics"), "ce_loss_recovered"), "value")
                    ->valuedouble;
    /* bundle_info.json (sae-lens + transformers on held-out captions): 0.984-0.990 */
    assert_true(ce > 0.95 && ce <= 1.0);
    /* the sae-lens CE convention by default, recorded (docs/metrics.md, Spliced CE) */
    assert_string_equal(cJSON_GetObjectItem(j, "ce_convention")->valuestring, "sae-lens");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(m0, "ce"), "convention")->valuestring, "sae-lens");
    cJSON_Delete(j);
    /* probes.json: concept x6 models (LLM / VLM captions, VLM images, and the captions read
       after their own, another group's and a blank image), modality, cross-modal, 2 attribute
       families */
    if (rs_json_load(path_in(REF, "results/probes.json"), 1 << 26, &j, &err)) fail_msg("%s", err.msg);
    int kinds[5] = {0};
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks")) {
        const char *k = cJSON_GetObjectItem(t, "kind")->valuestring;
        kinds[!strcmp(k, "concept") ? 0 : !strcmp(k, "modality") ? 1 : !strcmp(k, "cross-modal") ? 2 : !strcmp(k, "attribute") ? 3 : 4]++;
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "layers")), 2);
    }
    assert_int_equal(kinds[0], 6);
    assert_int_equal(kinds[1], 1);
    /* BH over every permutation p-value of the file: p <= q <= 1, n_tests = the finite p's,
       and the smallest p keeps q = p * n_tests / (its rank 1 .. ties) at most */
    {
        int n_p = 0;
        cJSON *T2, *L2;
        cJSON_ArrayForEach(T2, cJSON_GetObjectItem(j, "tasks")) {
            cJSON_ArrayForEach(L2, cJSON_GetObjectItem(T2, "layers")) {
                cJSON *pv = cJSON_GetObjectItem(L2, "permutation_p"), *qv = cJSON_GetObjectItem(L2, "permutation_q");
                if (!cJSON_IsNumber(pv)) continue;
                n_p++;
                assert_true(cJSON_IsNumber(qv));
                assert_true(qv->valuedouble >= pv->valuedouble - 1e-12 && qv->valuedouble <= 1.0);
            }
        }
        cJSON_ArrayForEach(T2, cJSON_GetObjectItem(j, "vision")) {
            cJSON_ArrayForEach(L2, cJSON_GetObjectItem(T2, "hooks")) n_p += cJSON_IsNumber(cJSON_GetObjectItem(L2, "permutation_p"));
        }
        assert_true(n_p > 0);
        assert_int_equal((int)cJSON_GetObjectItem(j, "n_tests")->valuedouble, n_p);
    }
    assert_true(kinds[2] >= 2);
    assert_int_equal(kinds[3], 2);
    assert_int_equal(kinds[4], 0);
    /* concept probes' control task: the image's COCO category (manifest column category)
       as the recurring type; selectivity = accuracy - control accuracy, with the overlap */
    {
        int n_ctrl = 0;
        cJSON *L2;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks")) {
            if (strcmp(cJSON_GetObjectItem(t, "kind")->valuestring, "concept")) continue;
            cJSON_ArrayForEach(L2, cJSON_GetObjectItem(t, "layers")) {
                cJSON *ca = cJSON_GetObjectItem(L2, "control_accuracy"), *ov = cJSON_GetObjectItem(L2, "control_type_overlap");
                cJSON *se = cJSON_GetObjectItem(L2, "selectivity");
                assert_true(cJSON_IsNumber(ca) && cJSON_IsNumber(ov) && cJSON_IsNumber(se));
                double acc = cJSON_GetObjectItem(cJSON_GetObjectItem(L2, "accuracy"), "value")->valuedouble;
                assert_true(fabs(se->valuedouble - (acc - ca->valuedouble)) < 1e-12);
                assert_true(ov->valuedouble >= 0 && ov->valuedouble <= 1);
                n_ctrl++;
            }
        }
        assert_int_equal(n_ctrl, 12); /* 6 concept models x 2 layers */
        assert_non_null(strstr(cJSON_GetObjectItem(j, "permutation_test")->valuestring, "COCO category"));
    }
    /* paired concept tests on identical splits: a-b, b-c, c-d, c-e per layer, the difference
       equal to the two probes' accuracies subtracted, BH q over the list */
    {
        static const char *PAIRS[4][3] = {{"a-b", "LLM captions", "VLM captions"},
                                          {"b-c", "VLM captions", "VLM captions after own image (c)"},
                                          {"c-d", "VLM captions after own image (c)", "VLM captions after other image (d)"},
                                          {"c-e", "VLM captions after own image (c)", "VLM captions after blank image (e)"}};
        cJSON *P = cJSON_GetObjectItem(j, "paired"), *E;
        assert_int_equal(cJSON_GetArraySize(P), 8);
        assert_non_null(cJSON_GetObjectItem(j, "paired_test"));
        int k = 0, n_p = 0;
        cJSON_ArrayForEach(E, P) {
            assert_string_equal(cJSON_GetObjectItem(E, "pair")->valuestring, PAIRS[k % 4][0]);
            assert_string_equal(cJSON_GetObjectItem(E, "model_a")->valuestring, PAIRS[k % 4][1]);
            assert_string_equal(cJSON_GetObjectItem(E, "model_b")->valuestring, PAIRS[k % 4][2]);
            double dv = cJSON_GetObjectItem(cJSON_GetObjectItem(E, "difference"), "value")->valuedouble;
            double lo = cJSON_GetObjectItem(cJSON_GetObjectItem(E, "difference"), "ci_lo")->valuedouble;
            double hi = cJSON_GetObjectItem(cJSON_GetObjectItem(E, "difference"), "ci_hi")->valuedouble;
            double aa = cJSON_GetObjectItem(E, "accuracy_a")->valuedouble, ab = cJSON_GetObjectItem(E, "accuracy_b")->valuedouble;
            assert_true(fabs(dv - (ab - aa)) < 1e-12 && lo <= dv + 1e-12 && dv <= hi + 1e-12);
            /* the accuracies are the concept probes' own (same splits) */
            for (int side = 0; side < 2; side++) {
                const char *model = PAIRS[k % 4][1 + side];
                double want = NAN;
                cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tasks")) {
                    if (strcmp(cJSON_GetObjectItem(t, "task")->valuestring, "concept") ||
                        strcmp(cJSON_GetObjectItem(t, "model")->valuestring, model))
                        continue;
                    cJSON *L2;
                    cJSON_ArrayForEach(L2, cJSON_GetObjectItem(t, "layers")) {
                        if (!strcmp(cJSON_GetObjectItem(L2, "hook")->valuestring, cJSON_GetObjectItem(E, "hook")->valuestring))
                            want = cJSON_GetObjectItem(cJSON_GetObjectItem(L2, "accuracy"), "value")->valuedouble;
                    }
                }
                assert_true(fabs((side ? ab : aa) - want) < 1e-12);
            }
            assert_int_equal((int)cJSON_GetObjectItem(E, "permutations")->valuedouble, 1000);
            double pv = cJSON_GetObjectItem(E, "p")->valuedouble, qv = cJSON_GetObjectItem(E, "q")->valuedouble;
            assert_true(pv >= 1.0 / 1001 && pv <= 1 && qv >= pv - 1e-12 && qv <= 1);
            assert_true(cJSON_GetObjectItem(E, "n_test_groups")->valuedouble >= 1);
            assert_true(cJSON_GetObjectItem(E, "n_test_items")->valuedouble >= cJSON_GetObjectItem(E, "n_test_groups")->valuedouble);
            assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(E, "seed_differences")),
                             (int)cJSON_GetObjectItem(E, "n_seeds")->valuedouble);
            n_p++;
            k++;
        }
        assert_int_equal((int)cJSON_GetObjectItem(j, "paired_n_tests")->valuedouble, n_p);
    }
    cJSON_Delete(j);
    /* second run: every stage skipped, nothing rewritten */
    struct stat before, after;
    assert_int_equal(stat(path_in(REF, "acts/vlm_edits/index.json"), &before), 0);
    assert_int_equal(run_child(REF, 0, NULL), 0);
    assert_int_equal(stat(path_in(REF, "acts/vlm_edits/index.json"), &after), 0);
    assert_true(before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
    char *log;
    size_t n;
    if (rs_read_file(path_in(REF, "run.log"), 1 << 24, &log, &n, &err)) fail_msg("%s", err.msg);
    assert_non_null(strstr(log, "[probes] complete (skipped)"));
    assert_non_null(strstr(log, "[extract] vlm_edits: complete (skipped)"));
    free(log);
}

/* Number of done-markers in dir/stages (how far a run got). */
static int n_markers(const char *dir) { return tu_count_done(dir); }

/* Chains of runs over one folder, each SIGKILLed after a pseudo-random delay (a fraction
 * of the uninterrupted time, so a resumed run is usually killed again before it ends).
 * When a run finishes before its kill, the chain's folder must equal the uninterrupted
 * run's, and a new chain starts in a fresh folder. Ends after KILLS kills; the last chain
 * is then finished and compared too. */
static void test_kill_and_resume(void **state) {
    (void)state;
    const char *seed_env = getenv("RS_KILL_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : 2026u;
    srand(seed);
    int killed = 0, chains = 0, compared = 0, at_stage[16] = {0};
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/chain0", tu_tmpdir());
    for (int attempt = 0; killed < KILLS && attempt < 10 * KILLS; attempt++) {
        double delay = REF_SECONDS * (0.03 + 0.3 * (double)rand() / RAND_MAX);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            rs_pipeline_opts o = rs_pipeline_defaults();
            o.config_path = CFG;
            o.output_dir = dir;
            o.quiet = 1;
            o.shard_inputs = 4;
            o.threads = 1;
            rs_err err = {0};
            char *rep = NULL;
            _exit(rs_pipeline_run(&o, &rep, &err) ? 1 : 0);
        }
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        /* nothing killed may look finished: no report.html without its done-marker */
        if (!rs_path_exists(path_in(dir, "stages/report.done")) && rs_path_exists(path_in(dir, "report.html")))
            fail_msg("report.html exists without its done-marker after a kill");
        if (WIFSIGNALED(st)) {
            int m = n_markers(dir);
            at_stage[m < 15 ? m : 15]++;
            killed++;
            continue;
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("run failed (status %d) before it was killed", st);
        assert_same_tree(REF, dir); /* a chain that finished on its own */
        compared++;
        snprintf(dir, sizeof dir, "%s/chain%d", tu_tmpdir(), ++chains);
    }
    assert_int_equal(killed, KILLS);
    assert_int_equal(run_child(dir, 0, NULL), 0);
    assert_same_tree(REF, dir);
    compared++;
    printf("seed %u: %d kills over %d chains, %d finished folders identical to the uninterrupted run\n", seed, killed,
           chains + 1, compared);
    printf("  kills by done-markers present (0 = before the dataset, 8 = after the probes):");
    for (int i = 0; i < 16; i++)
        if (at_stage[i]) printf(" %d:%d", i, at_stage[i]);
    printf("\n");
}

static char *read_err(const char *path) {
    char *m = NULL;
    size_t n;
    rs_err e;
    if (rs_read_file(path, 1 << 20, &m, &n, &e)) return strdup("(no message)");
    return m;
}

static void test_disk_full_then_recover(void **state) {
    (void)state;
    char dir[4200], ef[4300];
    snprintf(dir, sizeof dir, "%s/full", tu_tmpdir());
    snprintf(ef, sizeof ef, "%s.err", dir);
    /* 1: 12 KiB per file -> the first store shard that large fails */
    assert_int_equal(run_child(dir, 12 * 1024, ef), 1);
    char *m = read_err(ef);
    printf("  12 KiB limit: %s\n", m);
    assert_non_null(strstr(m, "extract"));
    free(m);
    int n_store_done = 0;
    const char *sd[4] = {"stages/store_llm_text.done", "stages/store_vlm_text.done", "stages/store_vlm_image.done",
                         "stages/store_vlm_edits.done"};
    for (int s = 0; s < 4; s++) n_store_done += rs_path_exists(path_in(dir, sd[s]));
    assert_true(n_store_done < 4);
    assert_false(rs_path_exists(path_in(dir, "stages/shift.done")));
    assert_false(rs_path_exists(path_in(dir, "report.html")));
    /* the unfinished store does not open as a finished one */
    store_reader *r = NULL;
    rs_err err;
    int unfinished = 0;
    for (int s = 0; s < 4; s++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/acts/%s", dir, (const char *[]){"llm_text", "vlm_text", "vlm_image", "vlm_edits"}[s]);
        if (!rs_path_exists(path_in(dir, sd[s])) && rs_path_exists(p)) {
            assert_int_not_equal(store_reader_open(&r, p, &err), 0);
            unfinished++;
        }
    }
    assert_true(unfinished >= 1);
    /* 2: 120 KiB: the store shards fit, a later stage's file does not */
    assert_int_equal(run_child(dir, 120 * 1024, ef), 1);
    m = read_err(ef);
    printf("  120 KiB limit: %s\n", m);
    assert_non_null(strstr(m, "File too large"));
    free(m);
    for (int s = 0; s < 4; s++) assert_true(rs_path_exists(path_in(dir, sd[s])));
    assert_false(rs_path_exists(path_in(dir, "stages/report.done")));
    assert_false(rs_path_exists(path_in(dir, "report.html")));
    /* 3: no limit: finishes, byte-identical to the uninterrupted run */
    assert_int_equal(run_child(dir, 0, ef), 0);
    assert_same_tree(REF, dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_nist_vectors),
        cmocka_unit_test(test_run_outputs_and_skip),
        cmocka_unit_test(test_kill_and_resume),
        cmocka_unit_test(test_disk_full_then_recover),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
