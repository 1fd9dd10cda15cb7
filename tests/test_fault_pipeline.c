/* Fault injection over the stages of `reprshift run` (the sibling of test_fault_alloc.c,
 * with the same link-time wrapping of malloc/calloc/realloc/strdup/strndup,
 * tests/CMakeLists.txt). A tiny run (quickstart models, 9 COCO images, one layer with its
 * SAE, one edit, every caption condition) is made once. Then, for each stage, its marker is
 * removed and the run is repeated with the allocator armed only while that stage's own
 * functions run (its fingerprint and run functions, also wrapped at link time; for the
 * report, report_write): first to count the stage's allocation calls N, then once per
 * k = 1, 1+s, 1+2s, … ≤ N with the k-th call failing. Each failure must give rs_pipeline_run
 * −1 with a message, leave the stage's marker absent (the stage never looks complete), and
 * not crash; under ASan (scripts/ci-sanitize.sh, or the build-asan folder) leaks fail the
 * binary at exit. A run that succeeds although an allocation failed took a fallback (e.g.
 * an unreadable optional file counts as absent, an unreadable marker as "not complete": the
 * work is redone); its stage's outputs must then equal the first run's byte for byte, or it
 * is a silent error. Finally the stages run unarmed once more and their outputs must equal
 * the first run's.
 *
 * The stride s is 1 (every allocation) unless RS_FAULT_STRIDE=s is set or a stage makes more
 * than RS_FAULT_BUDGET (default 40) calls, then s = ceil(N / budget); each stage prints N,
 * s and the calls exercised. RS_FAULT_SITES=1 prints where recovered failures happened,
 * RS_FAULT_TRACE=1 each k before its run, RS_FAULT_STAGE=name runs one stage only,
 * RS_FAULT_FROM=k starts there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <execinfo.h>

#include "testutil.h"
#include "fault_alloc.h"
#include "pipeline/pipeline_internal.h"
#include "reprshift/fileio.h"
#include "reprshift/pipeline.h"
#include "reprshift/report.h"

/* ---- the wrapped allocator (fault_alloc.c): the k-th counted call fails (k = 0: none) ---- */

/* ---- the stage functions, armed while the target stage runs ---- */
static const char *g_target;

#define ARMED(name, call)                                            \
    do {                                                             \
        int arm_ = g_target && !strcmp(g_target, name);              \
        if (arm_) fa_armed = 1;                                       \
        int rc_ = call;                                              \
        if (arm_) fa_armed = 0;                                       \
        return rc_;                                                  \
    } while (0)

#define WRAP_RUN(fn, name)                                                                   \
    int __real_##fn(pl_ctx *c, const char **note, rs_err *err);                              \
    int __wrap_##fn(pl_ctx *c, const char **note, rs_err *err);                              \
    int __wrap_##fn(pl_ctx *c, const char **note, rs_err *err) { ARMED(name, __real_##fn(c, note, err)); }
#define WRAP_FP(fn, name)                                                                    \
    int __real_##fn(pl_ctx *c, char fp[65], rs_err *err);                                    \
    int __wrap_##fn(pl_ctx *c, char fp[65], rs_err *err);                                    \
    int __wrap_##fn(pl_ctx *c, char fp[65], rs_err *err) { ARMED(name, __real_##fn(c, fp, err)); }
#define WRAP_STAGE(fn, name)                                                                 \
    int __real_##fn(pl_ctx *c, rs_err *err);                                                 \
    int __wrap_##fn(pl_ctx *c, rs_err *err);                                                 \
    int __wrap_##fn(pl_ctx *c, rs_err *err) { ARMED(name, __real_##fn(c, err)); }

WRAP_STAGE(pl_stage_dataset, "dataset")
WRAP_STAGE(pl_stage_extract, "extract")
WRAP_STAGE(pl_languages_prepare, "extract")
WRAP_FP(pl_shift_fp, "shift")
WRAP_RUN(pl_shift_run, "shift")
WRAP_FP(pl_conditions_fp, "conditions")
WRAP_RUN(pl_conditions_run, "conditions")
WRAP_FP(pl_probes_fp, "probes")
WRAP_RUN(pl_probes_run, "probes")
WRAP_FP(pl_downstream_fp, "downstream")
WRAP_RUN(pl_downstream_run, "downstream")
WRAP_FP(pl_steer_fp, "steer")
WRAP_RUN(pl_steer_run, "steer")
WRAP_FP(pl_crosscoder_fp, "crosscoder")
WRAP_RUN(pl_crosscoder_run, "crosscoder")
WRAP_FP(pl_sae_train_fp, "sae_train")
WRAP_RUN(pl_sae_train_run, "sae_train")
WRAP_FP(pl_languages_fp, "languages")
WRAP_RUN(pl_languages_run, "languages")
int __real_report_write(const char *results_dir, const char *out_html, int *n_figures, rs_err *err);
int __wrap_report_write(const char *results_dir, const char *out_html, int *n_figures, rs_err *err);
int __wrap_report_write(const char *results_dir, const char *out_html, int *n_figures, rs_err *err) {
    ARMED("report", __real_report_write(results_dir, out_html, n_figures, err));
}

/* ---- the tiny run ---- */
static char CFG[4096], OUT[4096];

static void write_config(const char *path, const char *dir) {
    char cwd[2048];
    assert_non_null(getcwd(cwd, sizeof cwd));
    const char *coco = "examples/data/coco-sample";
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"name\": \"fault\", \"output_dir\": \"%s/unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\",\n"
            "            \"vlm\": \"%s/examples/quickstart/models/paligemma-tiny\", \"batch_tokens\": 256},\n"
            " \"layers\": [1], \"hooks\": [\"blocks.{layer}.hook_resid_post\"], \"permutations\": 4,\n"
            " \"saes\": {\"path\": \"%s/examples/quickstart/models/sae/blocks.{layer}.hook_resid_post\"},\n"
            " \"dataset\": {\"instances\": [\"%s/%s/annotations/instances_train2017.json\",\n"
            "                           \"%s/%s/annotations/instances_val2017.json\"],\n"
            "             \"captions\": [\"%s/%s/annotations/captions_train2017.json\",\n"
            "                          \"%s/%s/annotations/captions_val2017.json\"],\n"
            "             \"images\": [\"%s/%s/train2017\", \"%s/%s/val2017\"],\n"
            "             \"groups\": {\"animals\": [\"animal\"], \"vehicles\": [\"vehicle\"], \"food\": [\"food\"]},\n"
            "             \"n_per_group\": 3, \"seed\": 3},\n"
            " \"edits\": [{\"name\": \"brightness\", \"values\": [0.6]}],\n"
            " \"probes\": {\"seeds\": 1, \"folds\": 2, \"bootstrap\": 4, \"min_test_groups\": 1, \"permutations\": 2,\n"
            "            \"targets\": [\"groups\", \"supercategories\", \"colours\"], \"min_positives\": 1, \"features\": [\"raw\", \"sae\"],\n"
            "            \"alignment\": {\"infonce\": {\"dim\": 4, \"steps\": 10, \"batch\": 8}}},\n"
            " \"downstream\": {\"bootstrap\": 4, \"permutations\": 4},\n"
            " \"steer\": {\"alphas\": [-1, 0, 2], \"n_items\": 2, \"random_directions\": 2},\n"
            " \"crosscoder\": {\"hooks\": [\"blocks.1.hook_resid_post\"], \"n_latents\": 32, \"steps\": 40, \"batch\": 16, \"null_runs\": 1,\n"
            "                \"seeds\": 2},\n"
            " \"sae_train\": {\"hooks\": [\"blocks.1.hook_resid_post\"], \"d_sae\": 32, \"steps\": 20, \"batch\": 16,\n"
            "               \"bootstrap\": 4, \"null_reps\": 1, \"held_out\": true},\n"
            " \"languages\": {\"codes\": [\"es\"], \"translations\": \"%s/%s/annotations/captions_translated.csv\",\n"
            "               \"bootstrap\": 4, \"permutations\": 4, \"transfer_seeds\": 1}}\n",
            dir, cwd, cwd, cwd, cwd, coco, cwd, coco, cwd, coco, cwd, coco, cwd, coco, cwd, coco, cwd, coco);
    fclose(f);
}

static int run_pipeline(rs_err *err) {
    rs_pipeline_opts o = rs_pipeline_defaults();
    o.config_path = CFG;
    o.output_dir = OUT;
    o.quiet = 1;
    o.threads = 1;
    o.shard_inputs = 8;
    char *rep = NULL;
    memset(err, 0, sizeof *err);
    int rc = rs_pipeline_run(&o, &rep, err);
    free(rep);
    return rc;
}

static char *path_in(const char *rel) {
    static char buf[8400];
    snprintf(buf, sizeof buf, "%s/%s", OUT, rel);
    return buf;
}

/* What a stage writes, compared with the first run at the end. */
typedef struct {
    const char *name;
    const char *markers[3];  /* removed to redo the stage */
    const char *outputs[4];  /* compared with the first run */
    long max_recovered;      /* fallbacks seen in a full sweep (named below); more only gives a note */
    char *saved[4];
    size_t saved_n[4];
} stage_case;

static stage_case CASES[] = {
    {"dataset", {"stages/dataset.done"}, {"dataset/manifest.csv"}, 0, {0}, {0}},
    {"extract", {"stages/store_llm_text.done", "stages/store_vlm_image.done", "stages/lang_es/store_vlm_caption.done"},
     {"acts/llm_text/index.json", "acts/vlm_image/index.json", "acts/lang_es/vlm_caption/index.json",
      "dataset/manifest_es.csv"}, 0, {0}, {0}},
    /* 4 fallbacks: tokenizer_config.json unreadable counts as absent (test_fault_alloc.c), and
       the permutation null's three cross-product buffers (without them, the O(n·d) path) */
    {"shift", {"stages/shift.done"}, {"results/shift.json", "results/shift_summary.csv", "results/sae_fit.json",
                                      "results/tokens_blocks.1.hook_resid_post.csv"}, 4, {0}, {0}},
    {"conditions", {"stages/conditions.done"}, {"results/conditions.json", "results/conditions_summary.csv"}, 0, {0}, {0}},
    {"downstream", {"stages/downstream.done"}, {"results/downstream.json", "results/downstream_items.csv"}, 0, {0}, {0}},
    {"probes", {"stages/probes.done"}, {"results/probes.json", "results/probes_sae_features.csv", "results/probe_targets.csv",
                                        "results/alignment.json"}, 0, {0}, {0}},
    {"steer", {"stages/steer.done"}, {"results/steer.json", "results/steer.csv"}, 0, {0}, {0}},
    {"crosscoder", {"stages/crosscoder.done"}, {"results/crosscoder.json", "results/crosscoder_latents.csv",
                                                "results/crosscoder/blocks.1.hook_resid_post.safetensors"}, 0, {0}, {0}},
    {"sae_train", {"stages/sae_train.done"}, {"results/sae_train.json",
                                              "results/sae_train/blocks.1.hook_resid_post/sae_weights.safetensors"}, 0, {0}, {0}},
    {"languages", {"stages/languages.done"}, {"results/languages.json", "results/languages_summary.csv"}, 0, {0}, {0}},
    {"report", {"stages/report.done"}, {"results/run.json"}, 0, {0}, {0}},
};
enum { N_CASES = sizeof CASES / sizeof *CASES };

static void remove_markers(const stage_case *s) {
    for (int i = 0; i < 3 && s->markers[i]; i++) unlink(path_in(s->markers[i]));
}

static int any_marker(const stage_case *s) {
    for (int i = 0; i < 3 && s->markers[i]; i++)
        if (rs_path_exists(path_in(s->markers[i]))) return 1;
    return 0;
}

/* The first output that differs from the first run's (missing counts), or NULL. */
static const char *output_differs(const stage_case *s) {
    for (int j = 0; j < 4 && s->outputs[j]; j++) {
        char *buf = NULL;
        size_t n = 0;
        rs_err e;
        int same = rs_read_file(path_in(s->outputs[j]), 1 << 28, &buf, &n, &e) == 0 && n == s->saved_n[j] &&
                   !memcmp(buf, s->saved[j], n);
        free(buf);
        if (!same) return s->outputs[j];
    }
    return NULL;
}

static long g_total_calls, g_total_exercised, g_silent, g_wrong_kind;

static void fault_stage(stage_case *s) {
    rs_err err;
    /* count */
    remove_markers(s);
    g_target = s->name;
    fa_calls = 0;
    fa_fail_at = 0;
    if (run_pipeline(&err)) fail_msg("%s: fails without injection: %s", s->name, err.msg);
    long n = fa_calls;
    assert_true(n > 0);
    long budget = getenv("RS_FAULT_BUDGET") ? atol(getenv("RS_FAULT_BUDGET")) : 40;
    long stride = getenv("RS_FAULT_STRIDE") ? atol(getenv("RS_FAULT_STRIDE")) : (n + budget - 1) / budget;
    if (stride < 1) stride = 1;
    long clean = 0, recovered = 0, tried = 0;
    long from = getenv("RS_FAULT_FROM") ? atol(getenv("RS_FAULT_FROM")) : 1;
    for (long k = from > 0 ? from : 1; k <= n; k += stride) {
        remove_markers(s);
        if (getenv("RS_FAULT_TRACE")) fprintf(stderr, "%s: failing allocation %ld\n", s->name, k);
        fa_calls = 0;
        fa_fail_at = k;
        int rc = run_pipeline(&err);
        tried++;
        if (rc == 0) {
            /* a fallback: acceptable only when the stage's outputs are those of the first run */
            const char *bad = output_differs(s);
            recovered++;
            if (bad) {
                printf("FAIL %s: allocation %ld failed, the run succeeded, and %s differs from the first run's\n",
                       s->name, k, bad);
                g_silent++;
            }
            if (getenv("RS_FAULT_SITES")) {
                printf("  %s: allocation %ld failed, run succeeded\n", s->name, k);
                backtrace_symbols_fd(fa_bt, fa_nbt, 1);
            }
            continue;
        }
        if (rc != -1 || !err.msg[0])
            fail_msg("%s: allocation %ld of %ld failed: rc %d, message \"%s\"", s->name, k, n, rc, err.msg);
        if (rc == -1 && err.kind != RS_ENOMEM) { /* the error says what happened, not what it caused */
            printf("  %s: allocation %ld of %ld failed, error kind %s: %s\n", s->name, k, n, rs_err_kind_name(err.kind),
                   err.msg);
            g_wrong_kind++;
        }
        /* a marker left in place must stand for complete outputs (the dataset stage marks its
           manifest before loading it: a failed load leaves a complete manifest, marked) */
        const char *bad = any_marker(s) ? output_differs(s) : NULL;
        if (bad) fail_msg("%s: allocation %ld failed (%s); marked complete, but %s differs", s->name, k, err.msg, bad);
        clean++;
    }
    g_target = NULL;
    g_total_calls += n;
    g_total_exercised += tried;
    printf("%-11s %6ld allocation calls, stride %ld: %ld failed once each, %ld clean errors, %ld recovered\n", s->name, n,
           stride, tried, clean, recovered);
    if (recovered > s->max_recovered)
        printf("note %s: %ld runs succeeded after a failed allocation, outputs identical (RS_FAULT_SITES=1 lists them)\n",
               s->name, recovered);
}

static void test_stages(void **state) {
    (void)state;
    rs_err err;
    if (run_pipeline(&err)) fail_msg("first run: %s", err.msg);
    for (int i = 0; i < N_CASES; i++)
        for (int j = 0; j < 4 && CASES[i].outputs[j]; j++)
            if (rs_read_file(path_in(CASES[i].outputs[j]), 1 << 28, &CASES[i].saved[j], &CASES[i].saved_n[j], &err))
                fail_msg("first run: %s", err.msg);
    const char *only = getenv("RS_FAULT_STAGE");
    for (int i = 0; i < N_CASES; i++)
        if (!only || !strcmp(only, CASES[i].name)) fault_stage(&CASES[i]);
    printf("total: %ld allocation calls in the stages, %ld failed once each\n", g_total_calls, g_total_exercised);
    if (g_wrong_kind) fail_msg("%ld failed allocations surfaced as another error kind than RS_ENOMEM (above)", g_wrong_kind);
    if (g_silent) fail_msg("%ld runs succeeded after a failed allocation with different outputs (above)", g_silent);
    /* the stages again, unarmed: outputs as in the first run */
    for (int i = 0; i < N_CASES; i++) remove_markers(&CASES[i]);
    if (run_pipeline(&err)) fail_msg("final run: %s", err.msg);
    for (int i = 0; i < N_CASES; i++) {
        const char *bad = output_differs(&CASES[i]);
        if (bad) fail_msg("%s: %s differs from the first run's", CASES[i].name, bad);
        for (int j = 0; j < 4; j++) free(CASES[i].saved[j]);
    }
}

static int setup(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    snprintf(CFG, sizeof CFG, "%s/fault.json", dir);
    snprintf(OUT, sizeof OUT, "%s/run", dir);
    write_config(CFG, dir);
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* the lines above a failure survive an abort */
    const struct CMUnitTest tests[] = {cmocka_unit_test_setup(test_stages, setup)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
