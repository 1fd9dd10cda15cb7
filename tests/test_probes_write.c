/* The probes stage's writer (src/pipeline/probes_write.c) on a small hand-built
 * pl_probes_result: tasks grouped by (task, model) in order of their first point, a task's
 * chance from its first point, the vision list without layers, cross-modal cells as points,
 * skipped probes, the paired tests, both BH families (pl_probes_bh; expected q-values from
 * scipy.stats.false_discovery_control: p = [0.01, 0.04, 0.03] -> [0.03, 0.04, 0.04],
 * p = [0.2, 0.5] -> [0.4, 0.5]), the edit-transfer matrix and the luminance block, and
 * which files pl_probes_write writes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "testutil.h"
#include "pipeline/pipeline_internal.h"
#include "pipeline/probes_result.h"
#include "base/jsonutil.h"
#include "reprshift/fileio.h"

static const char *H0 = "blocks.0.hook_resid_post", *H1 = "blocks.1.hook_resid_post", *HV = "vision.ln_post";

/* An evaluated point with accuracy a [lo, hi], chance ch and permutation p. */
static pl_probe_point eval_point(const char *task, const char *kind, const char *model, const char *hook, int layer,
                                 int vision, double a, double ch, double p) {
    pl_probe_point P;
    memset(&P, 0, sizeof P);
    P.task = task, P.kind = kind, P.model = model, P.hook = hook, P.layer = layer, P.vision = vision;
    P.n = 24, P.n_test = 6, P.xfer = -1, P.cell = -1, P.q = NAN;
    P.ev.mean.accuracy = a, P.ev.ci_lo.accuracy = a - 0.1, P.ev.ci_hi.accuracy = a + 0.1;
    P.ev.mean.balanced_accuracy = a, P.ev.mean.macro_f1 = a;
    P.ev.ci_lo.balanced_accuracy = P.ev.ci_hi.balanced_accuracy = NAN;
    P.ev.ci_lo.macro_f1 = P.ev.ci_hi.macro_f1 = NAN;
    P.ev.acc_sd = 0.05, P.ev.chance = ch, P.ev.perm_accuracy = 0.5, P.ev.perm_p = p, P.ev.n_perm = 9;
    P.ev.control_accuracy = NAN, P.ev.control_overlap = NAN, P.ev.selectivity = NAN;
    P.ev.n_test_groups = 3;
    return P;
}

/* The result: decoder points at two hooks, one transfer, a vision point, a skip, two paired
 * tests, an edit matrix of two variants and their luminance. Arrays on the heap so that
 * pl_probes_result_free frees them. */
static void build(pl_probes_result *R, int with_extras) {
    memset(R, 0, sizeof *R);
    R->n_seeds = 2, R->n_boot = 10, R->n_perm = 9, R->paired_flips = 1000, R->has_vision = with_extras;
    R->pt = calloc(8, sizeof *R->pt);
    assert_non_null(R->pt);
    R->pt[R->n_pt++] = eval_point("concept", "concept", "LLM captions", H0, 0, 0, 0.7, 0.4, 0.01);
    R->pt[R->n_pt++] = eval_point("modality", "modality", "VLM", H0, 0, 0, 0.9, 0.5, 0.04);
    R->pt[R->n_pt++] = eval_point("concept", "concept", "LLM captions", H1, 1, 0, 0.8, 0.45, 0.03);
    if (!with_extras) return;
    R->pt[R->n_pt++] = eval_point("concept", "concept", "VLM images", HV, -1, 1, 0.6, 0.35, NAN);
    /* cross-modal transfer at H1: cell 2 (captions -> images, direct) as a point */
    R->xf = calloc(1, sizeof *R->xf);
    assert_non_null(R->xf);
    R->n_xf = 1;
    pl_probe_transfer *X = &R->xf[0];
    X->hook = H1, X->layer = 1, X->n_test = 5;
    X->r.n_seeds = 2, X->r.K = 3, X->r.chance[0] = 0.4, X->r.chance[1] = 0.3;
    for (int q = 0; q < RS_TRANSFER_CELLS; q++) {
        X->r.cell[q].available = 1;
        X->r.cell[q].mean.accuracy = 0.5 + 0.01 * q;
        X->r.cell[q].ci_lo.accuracy = 0.25, X->r.cell[q].ci_hi.accuracy = 0.75;
        X->r.cell[q].map_r2 = rs_transfer_cells()[q].map == RS_MAP_NONE ? NAN : 0.5;
    }
    const rs_transfer_cell_def *defs = rs_transfer_cells();
    int cell = -1;
    for (int q = 0; q < RS_TRANSFER_CELLS; q++)
        if (defs[q].train == 0 && defs[q].test == 1 && defs[q].map == RS_MAP_NONE) cell = q;
    assert_true(cell >= 0);
    pl_probe_point *T = &R->pt[R->n_pt++];
    memset(T, 0, sizeof *T);
    T->task = "cross-modal transfer", T->kind = "cross-modal", T->model = "cap\xe2\x86\x92img", T->hook = H1, T->layer = 1;
    T->n = 12, T->n_test = 5, T->xfer = 0, T->cell = cell, T->q = NAN;
    R->skip = calloc(1, sizeof *R->skip);
    assert_non_null(R->skip);
    R->skip[0] = (pl_probe_skip){"modality", "VLM", H1, strdup("a class has no training rows")};
    assert_non_null(R->skip[0].reason);
    R->n_skip = 1;
    R->pair = calloc(2, sizeof *R->pair);
    assert_non_null(R->pair);
    for (int k = 0; k < 2; k++) {
        pl_probe_paired *Q = &R->pair[R->n_pair++];
        Q->pair = k ? "b-c" : "a-b", Q->model_a = "LLM captions", Q->model_b = "VLM captions";
        Q->hook = H0, Q->layer = 0, Q->q = NAN;
        Q->r.diff = 0.1 * (k + 1), Q->r.ci_lo = -0.1, Q->r.ci_hi = 0.3, Q->r.acc_a = 0.6, Q->r.acc_b = 0.7;
        Q->r.p = k ? 0.5 : 0.2, Q->r.n_perm = 1000, Q->r.n_seeds = 2, Q->r.n_test_groups = 3;
        Q->r.n_test_items = 6, Q->r.n_groups_tested = 5;
        Q->r.seed_diff = malloc(2 * sizeof(double));
        assert_non_null(Q->r.seed_diff);
        Q->r.seed_diff[0] = 0.1, Q->r.seed_diff[1] = NAN;
    }
    R->em = calloc(1, sizeof *R->em);
    assert_non_null(R->em);
    pl_probe_edit_matrix *E = &R->em[R->n_em++];
    E->hook = HV, E->layer = -1, E->vision = 1, E->V = 2, E->n_images = 12;
    E->labels = malloc(2 * sizeof *E->labels);
    E->acc = malloc(4 * sizeof(double)), E->lo = malloc(4 * sizeof(double)), E->hi = malloc(4 * sizeof(double));
    assert_true(E->labels && E->acc && E->lo && E->hi);
    E->labels[0] = "brightness 0.6", E->labels[1] = "brightness 1.4";
    for (int k = 0; k < 4; k++) E->acc[k] = 0.6 + 0.1 * k, E->lo[k] = 0.5, E->hi[k] = 1;
    R->lum = malloc(2 * sizeof *R->lum);
    assert_non_null(R->lum);
    R->n_lum = 2, R->lum_images = 12;
    R->lum[0] = (pl_probe_lum){"brightness", 0.6, {-0.2, -0.25, -0.15}, {-0.1, -0.12, -0.08}};
    R->lum[1] = (pl_probe_lum){"brightness", 1.4, {0.2, 0.15, 0.25}, {0.1, NAN, NAN}};
}

/* |a - b| <= tol (this cmocka has no assert_double_equal) */
#define eq(a, b, tol) eq_((a), (b), (tol), __LINE__)
static void eq_(double a, double b, double tol, int line) {
    if (!(fabs(a - b) <= tol)) fail_msg("line %d: %.17g != %.17g", line, a, b);
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_non_null(v);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}
static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static void test_probes_json(void **state) {
    (void)state;
    pl_probes_result R;
    build(&R, 1);
    rs_err err = {0};
    assert_int_equal(pl_probes_bh(&R, &err), 0);
    /* BH over the evaluated points (the NaN p of the vision point is no test) */
    assert_int_equal(R.n_tests, 3);
    assert_int_equal(R.paired_n_tests, 2);
    cJSON *j = pl_probes_json(&R);
    assert_non_null(j);
    /* top-level keys in order */
    static const char *KEYS[] = {"ci", "permutation_test", "split", "tasks", "skipped", "paired", "vision", "n_tests",
                                 "multiple_comparisons", "paired_test", "paired_n_tests"};
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        assert_true(k < 11);
        assert_string_equal(it->string, KEYS[k]);
        k++;
    }
    assert_int_equal(k, 11);
    assert_non_null(strstr(str(j, "ci"), "over 2 group-aware splits"));
    assert_non_null(strstr(str(j, "permutation_test"), "9 group-level"));
    assert_non_null(strstr(str(j, "paired_test"), "with 1000 random sign-flip"));
    assert_int_equal((int)num(j, "n_tests"), 3);
    assert_int_equal((int)num(j, "paired_n_tests"), 2);

    /* tasks: concept/LLM (two layers), modality/VLM, cross-modal (no chance line) */
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "tasks");
    assert_int_equal(cJSON_GetArraySize(tasks), 3);
    const cJSON *t0 = cJSON_GetArrayItem(tasks, 0), *t1 = cJSON_GetArrayItem(tasks, 1), *t2 = cJSON_GetArrayItem(tasks, 2);
    assert_string_equal(str(t0, "task"), "concept");
    assert_string_equal(str(t0, "model"), "LLM captions");
    eq(num(t0, "chance"), 0.4, 0); /* the first point's */
    const cJSON *L = cJSON_GetObjectItemCaseSensitive(t0, "layers");
    assert_int_equal(cJSON_GetArraySize(L), 2);
    const cJSON *l0 = cJSON_GetArrayItem(L, 0), *l1 = cJSON_GetArrayItem(L, 1);
    assert_int_equal((int)num(l0, "layer"), 0);
    assert_int_equal((int)num(l1, "layer"), 1);
    assert_string_equal(str(l1, "hook"), H1);
    eq(num(cJSON_GetObjectItemCaseSensitive(l1, "accuracy"), "value"), 0.8, 0);
    eq(num(cJSON_GetObjectItemCaseSensitive(l1, "accuracy"), "ci_lo"), 0.8 - 0.1, 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(l1, "macro_f1"), "ci_lo")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(l1, "selectivity")));
    assert_int_equal((int)num(l1, "permutations"), 9);
    /* q-values: p 0.01, 0.04, 0.03 -> 0.03, 0.04, 0.04 */
    eq(num(l0, "permutation_q"), 0.03, 1e-15);
    eq(num(l1, "permutation_q"), 0.04, 1e-15);
    eq(num(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t1, "layers"), 0), "permutation_q"), 0.04,
                        1e-15);
    assert_string_equal(str(t1, "task"), "modality");
    assert_string_equal(str(t2, "kind"), "cross-modal");
    assert_null(cJSON_GetObjectItemCaseSensitive(t2, "chance"));
    const cJSON *xp = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t2, "layers"), 0);
    assert_int_equal((int)num(xp, "n"), 12);
    assert_int_equal((int)num(xp, "n_test"), 5);
    eq(num(xp, "chance"), 0.3, 0); /* the test modality's (images) */
    assert_null(cJSON_GetObjectItemCaseSensitive(xp, "permutation_p"));

    /* vision: points under "hooks", no layer; NaN p -> null p and q */
    const cJSON *vt = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "vision"), 0);
    const cJSON *vp = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(vt, "hooks"), 0);
    assert_non_null(vp);
    assert_null(cJSON_GetObjectItemCaseSensitive(vp, "layer"));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(vp, "permutation_p")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(vp, "permutation_q")));

    const cJSON *sk = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "skipped"), 0);
    assert_string_equal(str(sk, "reason"), "a class has no training rows");
    assert_string_equal(str(sk, "hook"), H1);

    /* paired: q from BH over the pairs (0.2, 0.5 -> 0.4, 0.5); NaN seed difference -> null */
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "paired");
    assert_int_equal(cJSON_GetArraySize(pr), 2);
    eq(num(cJSON_GetArrayItem(pr, 0), "q"), 0.4, 1e-15);
    eq(num(cJSON_GetArrayItem(pr, 1), "q"), 0.5, 1e-15);
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(pr, 0), "seed_differences");
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(sd, 1)));
    eq(num(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(pr, 1), "difference"), "value"), 0.2, 0);
    cJSON_Delete(j);

    /* transfer.json: the 2 x 5 matrix of the hook */
    j = pl_probes_transfer_json(&R);
    assert_non_null(j);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "matrices"), 0);
    assert_int_equal((int)num(m, "layer"), 1);
    assert_int_equal((int)num(m, "n"), 5);
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(m, "values");
    assert_int_equal(cJSON_GetArraySize(vals), 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(vals, 0)), 5);
    const cJSON *r2 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m, "map_r2"), 0);
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(r2, 0)));      /* same: no map */
    eq(cJSON_GetArrayItem(r2, 3)->valuedouble, 0.5, 0); /* Procrustes */
    cJSON_Delete(j);

    /* attribute_transfer.json: the vision hook's matrix (no layer) and the luminance */
    j = pl_probes_attribute_json(&R);
    assert_non_null(j);
    m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "matrices"), 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(m, "layer"));
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m, "cols"), 1)->valuestring, "brightness 1.4");
    const cJSON *cell = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m, "values"), 1), 0);
    eq(num(cell, "value"), 0.6 + 0.1 * 2, 0); /* row-major: acc[1·V + 0] */
    const cJSON *lu = cJSON_GetObjectItemCaseSensitive(j, "luminance");
    assert_int_equal(cJSON_GetArraySize(lu), 2);
    const cJSON *l = cJSON_GetArrayItem(lu, 1);
    eq(num(l, "value"), 1.4, 0);
    eq(num(cJSON_GetObjectItemCaseSensitive(l, "d_luma_bt601"), "value"), 0.2, 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(l, "d_linear_Y"), "ci_lo")));
    assert_non_null(strstr(str(l, "definition"), "over the 12 base images"));
    cJSON_Delete(j);
    pl_probes_result_free(&R);
}

/* pl_probes_write writes a file only when it has content; without pairs and vision hooks
 * probes.json has neither key. */
static void test_write_files(void **state) {
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    pl_probes_result R;
    build(&R, 0);
    rs_err err = {0};
    assert_int_equal(pl_probes_bh(&R, &err), 0);
    assert_int_equal(pl_probes_write(&R, dir, &err), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/transfer.json", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/attribute_transfer.json", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/probes.json", dir);
    cJSON *j = NULL;
    assert_int_equal(rs_json_load(path, 1 << 20, &j, &err), 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "paired"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "vision"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "paired_test"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "tasks")), 2);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "targets"));
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/probe_targets.csv", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    pl_probes_result_free(&R);

    /* nothing evaluated: no file at all */
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    memset(&R, 0, sizeof R);
    assert_int_equal(pl_probes_write(&R, dir, &err), 0);
    snprintf(path, sizeof path, "%s/probes.json", dir);
    assert_int_not_equal(access(path, F_OK), 0);
}

/* The target probes' block (probes_targets.c): both BH families (scipy
 * false_discovery_control: p = [0.01, 0.04, 0.03] -> [0.03, 0.04, 0.04], p = [0.2, 0.5] ->
 * [0.4, 0.5]), probes.json "targets" and results/probe_targets.csv, absent without targets
 * (test_write_files). */
static void test_targets_block(void **state) {
    (void)state;
    pl_probes_result R;
    build(&R, 0);
    pl_tgt_result *t = calloc(1, sizeof *t);
    assert_non_null(t);
    R.tg = t;
    t->min_pos = 2, t->n_perm = 9, t->n_seeds = 2, t->n_boot = 10;
    t->pr = calloc(3, sizeof *t->pr);
    t->tr = calloc(2, sizeof *t->tr);
    t->sk = calloc(1, sizeof *t->sk);
    assert_true(t->pr && t->tr && t->sk);
    static const char *const NAME[3] = {"category:dog", "supercategory:animal", "colour:red"};
    static const rs_target_kind KIND[3] = {RS_TGT_CATEGORY, RS_TGT_SUPERCATEGORY, RS_TGT_COLOUR};
    const double P[3] = {0.01, 0.04, 0.03};
    for (int i = 0; i < 3; i++)
        t->pr[t->n_pr++] = (pl_tgt_probe){.target = NAME[i], .kind = KIND[i], .model = "VLM images", .hook = H0,
                                          .n_images = 24, .n_test = 6, .pos_train = 5, .pos_test = 2,
                                          .prevalence = 7.0 / 24, .bal = 0.75, .lo = 0.5, .hi = 1, .acc = 0.8,
                                          .majority = 2.0 / 3, .null_mean = 0.5, .p = P[i], .n_perm = 9};
    for (int i = 0; i < 2; i++)
        t->tr[t->n_tr++] = (pl_tgt_transfer){.target = "category:dog", .kind = RS_TGT_CATEGORY, .hook = H0, .dir = i,
                                             .n_images = 24, .n_test = 6, .within = 0.75, .within_lo = 0.5,
                                             .within_hi = 1, .xfer = 0.5, .xfer_lo = 0.25, .xfer_hi = 0.75,
                                             .gap = 0.25, .gap_lo = -0.125, .gap_hi = 0.5, .null_mean = 0.5,
                                             .p = i ? 0.5 : 0.2};
    t->sk[t->n_sk++] = (pl_tgt_skip){.target = "action:eating", .model = "LLM captions", .reason = strdup("too few")};
    rs_err err = {0};
    assert_int_equal(pl_targets_bh(t, &err), 0);
    assert_int_equal(t->n_tests, 3);
    assert_int_equal(t->n_tr_tests, 2);
    const double Q[3] = {0.03, 0.04, 0.04};
    for (int i = 0; i < 3; i++) assert_true(fabs(t->pr[i].q - Q[i]) < 1e-15);
    assert_true(fabs(t->tr[0].q - 0.4) < 1e-15);
    assert_true(fabs(t->tr[1].q - 0.5) < 1e-15);
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    assert_int_equal(pl_probes_bh(&R, &err), 0);
    assert_int_equal(pl_probes_write(&R, dir, &err), 0);
    snprintf(path, sizeof path, "%s/probes.json", dir);
    cJSON *j = NULL;
    assert_int_equal(rs_json_load(path, 1 << 20, &j, &err), 0);
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(j, "targets");
    assert_non_null(tg);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(tg, "metric")->valuestring, "balanced_accuracy");
    assert_true(cJSON_GetObjectItemCaseSensitive(tg, "chance")->valuedouble == 0.5);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(tg, "probes");
    assert_int_equal(cJSON_GetArraySize(pr), 3);
    const cJSON *e = cJSON_GetArrayItem(pr, 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "target")->valuestring, "animal");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "kind")->valuestring, "supercategories");
    assert_true(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "balanced_accuracy"), "ci_lo")
                    ->valuedouble == 0.5);
    assert_true(fabs(cJSON_GetObjectItemCaseSensitive(e, "q")->valuedouble - 0.04) < 1e-9);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "n_test_images")->valueint, 6);
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(tg, "transfer");
    assert_int_equal(cJSON_GetArraySize(tr), 2);
    e = cJSON_GetArrayItem(tr, 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "direction")->valuestring, "image->text");
    assert_true(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "gap"), "ci_lo")->valuedouble ==
                -0.125);
    const cJSON *sk = cJSON_GetObjectItemCaseSensitive(tg, "skipped");
    assert_int_equal(cJSON_GetArraySize(sk), 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sk, 0), "reason")->valuestring, "too few");
    cJSON_Delete(j);
    /* the CSV: header, 3 probe rows, 2 transfer rows */
    snprintf(path, sizeof path, "%s/probe_targets.csv", dir);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(rs_read_file(path, 1 << 20, &buf, &len, &err), 0);
    assert_non_null(strstr(buf, "\ncategories,dog,VLM images,blocks.0.hook_resid_post,0,24,6,2,0.750000,0.500000,1.000000,"
                                "0.5,0.500000,0.01,0.03,,,,,,\n"));
    assert_non_null(strstr(buf, "\ncategories,dog,VLM images -> LLM captions,blocks.0.hook_resid_post,0,24,6,,0.500000,"
                                "0.250000,0.750000,0.5,0.500000,0.5,0.5,0.750000,0.500000,1.000000,0.250000,-0.125000,"
                                "0.500000\n"));
    int lines = 0;
    for (char *q = buf; *q; q++) lines += *q == '\n';
    assert_int_equal(lines, 6);
    free(buf);
    pl_probes_result_free(&R);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probes_json),
        cmocka_unit_test(test_write_files),
        cmocka_unit_test(test_targets_block),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
