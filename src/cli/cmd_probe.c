/* reprshift probe train|eval|predict: logistic-regression probes on activation files
 * written by `reprshift extract` (one f32 tensor [rows, width] per hook). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "base/jsonutil.h"
#include "reprshift/probe.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_mlp.h"
#include "reprshift/probe_io.h"
#include "reprshift/probe_transfer.h"

static void probe_usage(FILE *f) {
    fprintf(f,
        "usage: reprshift probe train   --acts A.safetensors --hook NAME --labels FILE --out P.safetensors\n"
        "                               [--label-column COL] [--C X | --Cs X,Y,.. --cv K] [--balanced]\n"
        "                               [--no-standardize] [--tol T] [--penalty l2|l1] [MLP options]\n"
        "       reprshift probe eval    --acts A.safetensors --hook NAME --labels FILE [--groups FILE]\n"
        "                               [--control-types FILE] [--seeds N] [--test-frac F] [--C X | --Cs ..]\n"
        "                               [--cv K] [--balanced] [--no-standardize] [--boot B] [--json OUT]\n"
        "                               [--permutations N] [--min-test-groups M] [--penalty l2|l1]\n"
        "                               [MLP options]\n"
        "       reprshift probe predict --probe P.safetensors --acts A.safetensors [--hook NAME]\n"
        "                               [--labels FILE] [--out FILE]\n"
        "       reprshift probe transfer --a A.safetensors --b B.safetensors --hook NAME [--hook-b NAME]\n"
        "                               (--labels FILE | --labels-a FILE --labels-b FILE)\n"
        "                               [--ids-a FILE --ids-b FILE] [--groups FILE] [--seeds N]\n"
        "                               [--test-frac F] [--C X | --Cs ..] [--cv K] [--ridge-alpha A]\n"
        "                               [--no-procrustes-scale] [--balanced] [--no-standardize]\n"
        "                               [--boot B] [--json OUT] [MLP options]\n"
        "--seed S: base seed of the splits (eval, transfer) and of the MLP (default 0).\n"
        "--penalty l1 (train, eval): lasso, ||W||_1 + C sum_i l_i (intercept not penalised; sparse\n"
        "weights; solved by FISTA); default l2. transfer fits l2 probes only.\n"
        "eval: C by group-aware inner CV; CIs by a nested bootstrap (seeds, then test groups);\n"
        "permutation test with N (100) group-level label permutations per seed; control task\n"
        "only with --control-types (types must recur between train and test); fewer test groups\n"
        "per split than M (50) is an error. See docs/probes.md.\n"
        "MLP options: --model mlp [--hidden H (100)] [--alpha A (1e-4)] [--epochs N (200)]:\n"
        "one hidden ReLU layer, Adam (lr 1e-3), early stopping on a stratified 10%% validation split\n"
        "(sklearn MLPClassifier defaults); the default model is L2 logistic regression.\n"
        "Labels: one per line, or a CSV column (--label-column, header row). Classes are the\n"
        "distinct labels, sorted numerically when all are integers, else by byte order.\n"
        "The probe writes P.safetensors + P.json (card).\n"
        "transfer: A and B are two modalities of the same items (e.g. caption and image\n"
        "activations). Rows pair by --ids-a/--ids-b (one item id per row; ids seen in both\n"
        "files are used) or else by row index. --labels gives one label per A row (used for\n"
        "both); --labels-a/--labels-b label each file's rows. --groups is per A row. Per seed\n"
        "the paired items are split (stratified by A's label, groups kept together), probes are\n"
        "fitted on each modality's training items, and scored on both modalities' test items:\n"
        "directly, after per-feature mean/std matching, after an orthogonal Procrustes map\n"
        "(with global scale) and after a ridge map (lambda = ridge-alpha x mean feature sum of\n"
        "squares), all maps fitted on the paired training items. Prints the matrix with 95%%\n"
        "bootstrap CIs and a diagnosis per direction; --json writes it all.\n");
}

typedef struct {
    const char *acts, *hook, *labels, *column, *out, *probe, *groups, *ctypes, *json;
    const char *acts_b, *hook_b, *labels_a, *labels_b, *ids_a, *ids_b;
    double C, test_frac, tol, ridge_alpha, alpha;
    int have_C, cv, seeds, balanced, standardize, boot, no_pscale, mlp, hidden, epochs, seed;
    int perms, min_test_groups, penalty;
    double Cs[32];
    int n_Cs;
} probe_args;

static int parse_Cs(const char *s, probe_args *a) {
    a->n_Cs = 0;
    while (*s && a->n_Cs < 32) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || !(v > 0) || !isfinite(v)) return -1;
        a->Cs[a->n_Cs++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return a->n_Cs > 0 ? 0 : -1;
}

static int parse_args(int argc, char **argv, probe_args *a) {
    memset(a, 0, sizeof *a);
    a->C = 1; a->cv = 5; a->seeds = 5; a->test_frac = 0.2; a->standardize = 1; a->boot = 1000; a->tol = 1e-4;
    a->ridge_alpha = 0.1;
    a->perms = 100; a->min_test_groups = 50;
    a->hidden = 100; a->alpha = 1e-4; a->epochs = 200;
    const double grid[] = {1e-4, 1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4};
    memcpy(a->Cs, grid, sizeof grid);
    a->n_Cs = 9;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define STR(flag, field) if (!strcmp(o, flag)) { if (!v) goto missing; a->field = v; i++; continue; }
#define INT(flag, field, lo, hi) if (!strcmp(o, flag)) { if (!v) goto missing; \
            if (cli_parse_int("probe", flag, v, lo, hi, &a->field)) { return -1; } i++; continue; }
#define NUM(flag, field, lo, hi, lo_open) if (!strcmp(o, flag)) { if (!v) goto missing; \
            if (cli_parse_double("probe", flag, v, lo, hi, lo_open, &a->field)) { return -1; } i++; continue; }
        STR("--acts", acts) STR("--hook", hook) STR("--labels", labels) STR("--label-column", column)
        STR("--out", out) STR("--probe", probe) STR("--groups", groups) STR("--control-types", ctypes)
        STR("--json", json) STR("--a", acts) STR("--b", acts_b) STR("--hook-b", hook_b)
        STR("--labels-a", labels_a) STR("--labels-b", labels_b) STR("--ids-a", ids_a) STR("--ids-b", ids_b)
        NUM("--ridge-alpha", ridge_alpha, 0, INFINITY, 0) NUM("--alpha", alpha, 0, INFINITY, 0)
        INT("--hidden", hidden, 1, INT_MAX) INT("--epochs", epochs, 1, INT_MAX)
        INT("--seed", seed, 0, INT_MAX)
        if (!strcmp(o, "--model")) {
            if (!v) goto missing;
            if (!strcmp(v, "mlp")) a->mlp = 1;
            else if (!strcmp(v, "logreg")) a->mlp = 0;
            else goto bad;
            i++;
            continue;
        }
        INT("--cv", cv, 0, INT_MAX) INT("--seeds", seeds, 0, INT_MAX)
        INT("--boot", boot, 0, INT_MAX) NUM("--test-frac", test_frac, 0, 1, 1)
        NUM("--tol", tol, 0, INFINITY, 1)
        INT("--permutations", perms, 0, INT_MAX)
        INT("--min-test-groups", min_test_groups, 0, INT_MAX)
        if (!strcmp(o, "--C")) {
            if (!v) goto missing;
            if (cli_parse_double("probe", "--C", v, 0, INFINITY, 1, &a->C)) return -1;
            a->have_C = 1;
            i++;
            continue;
        }
        if (!strcmp(o, "--Cs")) {
            if (!v || parse_Cs(v, a)) goto bad;
            i++;
            continue;
        }
        if (!strcmp(o, "--penalty")) {
            if (!v) goto missing;
            if (!strcmp(v, "l1")) a->penalty = RS_PENALTY_L1;
            else if (!strcmp(v, "l2")) a->penalty = RS_PENALTY_L2;
            else goto bad;
            i++;
            continue;
        }
        if (!strcmp(o, "--balanced")) { a->balanced = 1; continue; }
        if (!strcmp(o, "--no-standardize")) { a->standardize = 0; continue; }
        if (!strcmp(o, "--no-procrustes-scale")) { a->no_pscale = 1; continue; }
        fprintf(stderr, "reprshift probe: unknown option '%s'\n", o);
        return -1;
    missing:
        fprintf(stderr, "reprshift probe: %s needs a value\n", o);
        return -1;
    bad:
        fprintf(stderr, "reprshift probe: bad value for %s: '%s'\n", o, v ? v : "");
        return -1;
#undef STR
#undef INT
#undef NUM
    }
    return 0;
}

/* Activations + labels with matching row counts; labels encoded to class ids. */
static int load_xy(const probe_args *a, float **X, int *n, int *d, int **y, char ***classes, int *K, rs_err *err) {
    char **lab = NULL;
    int nl = 0;
    *X = NULL; *y = NULL; *classes = NULL;
    if (rs_acts_load(a->acts, a->hook, X, n, d, err)) return -1;
    if (rs_labels_read(a->labels, a->column, &lab, &nl, err)) goto fail;
    if (nl != *n) {
        rs_errf(err, "%s has %d labels but %s:%s has %d rows", a->labels, nl, a->acts, a->hook, *n);
        goto fail;
    }
    if (rs_labels_encode(lab, nl, y, classes, K, err)) goto fail;
    rs_labels_free(lab, nl);
    if (*K < 2) return rs_errf(err, "%s: only one class ('%s'); a probe needs at least two", a->labels, (*classes)[0]);
    return 0;
fail:
    rs_labels_free(lab, nl);
    free(*X);
    *X = NULL;
    return -1;
}

static void free_classes(char **c, int K) { rs_labels_free(c, K); }

static rs_mlp_opts mlp_opts(const probe_args *a) {
    rs_mlp_opts mo = rs_mlp_defaults();
    mo.hidden = a->hidden;
    mo.alpha = a->alpha;
    mo.max_epochs = a->epochs;
    mo.seed = (uint64_t)a->seed;
    return mo;
}

static int probe_train(const probe_args *a) {
    rs_err err;
    float *X;
    int n, d, K, *y;
    char **classes;
    if (!a->acts || !a->hook || !a->labels || !a->out) {
        fprintf(stderr, "reprshift probe train: --acts, --hook, --labels and --out are required\n");
        return 2;
    }
    if (load_xy(a, &X, &n, &d, &y, &classes, &K, &err)) {
        fprintf(stderr, "reprshift probe train: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    rs_probe p;
    memset(&p, 0, sizeof p);
    rs_logreg_opts o = rs_logreg_defaults();
    o.balanced = a->balanced;
    o.tol = a->tol;
    o.penalty = a->penalty;
    double C = a->C, cv_acc[32];
    int did_cv = !a->mlp && !a->have_C && a->cv >= 2 && a->n_Cs > 1;
    if (did_cv && rs_logreg_cv(X, y, n, d, K, a->Cs, a->n_Cs, a->cv, a->standardize, &o, cv_acc, &C, &err)) goto out;
    o.C = C;
    rs_probe_data_hash(X, (size_t)n * d, y, n, p.data_hash);
    float *Xs = X;
    if (a->standardize) {
        if (rs_scaler_fit(&p.scaler, X, n, d, &err)) goto out;
        rs_scaler_apply(&p.scaler, X, n, X); /* X is ours: standardise in place */
        p.standardized = 1;
    }
    int *pred = NULL;
    if (a->mlp) {
        rs_mlp_opts mo = mlp_opts(a);
        p.is_mlp = 1;
        if (rs_mlp_fit(&p.mlp, Xs, y, n, d, K, &mo, &err)) goto out;
    } else if (rs_logreg_fit(&p.model, Xs, y, n, d, K, &o, &err)) goto out;
    if (!(pred = malloc(sizeof(int) * n))) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto out; }
    if (p.is_mlp) rs_mlp_predict(&p.mlp, Xs, n, pred, NULL);
    else rs_logreg_predict(&p.model, Xs, n, pred);
    rs_metrics m;
    rs_metrics_compute(y, pred, n, K, &m, NULL);
    free(pred);
    char mj[4096];
    size_t used = (size_t)snprintf(mj, sizeof mj, "{\"train_accuracy\": %s, \"train_balanced_accuracy\": %s, "
                                   "\"n_train\": %d", RS_JSON_NUM("%.6f", m.accuracy),
                                   RS_JSON_NUM("%.6f", m.balanced_accuracy), n);
    if (did_cv) {
        used += (size_t)snprintf(mj + used, sizeof mj - used, ", \"cv_folds\": %d, \"cv_grid\": [", a->cv);
        for (int c = 0; c < a->n_Cs; c++)
            used += (size_t)snprintf(mj + used, sizeof mj - used, "%s{\"C\": %s, \"accuracy\": %s}", c ? ", " : "",
                                     RS_JSON_NUM("%g", a->Cs[c]), RS_JSON_NUM("%.6f", cv_acc[c]));
        used += (size_t)snprintf(mj + used, sizeof mj - used, "]");
    }
    snprintf(mj + used, sizeof mj - used, "}");
    p.hook = strdup(a->hook);
    p.classes = classes;
    p.n_classes = K;
    classes = NULL;
    p.metrics_json = strdup(mj);
    if (!p.hook || !p.metrics_json) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto out; }
    if (rs_probe_save(&p, a->out, &err)) goto out;
    if (p.is_mlp)
        fprintf(stderr, "probe: %d rows x %d features, %d classes, MLP %d hidden, %d epochs, train accuracy %.4f -> %s\n",
                n, d, K, p.mlp.hidden, p.mlp.n_epochs, m.accuracy, a->out);
    else
        fprintf(stderr, "probe: %d rows x %d features, %d classes, C=%g%s, train accuracy %.4f, %d iterations -> %s\n",
                n, d, K, C, did_cv ? " (CV)" : "", m.accuracy, p.model.n_iter, a->out);
    rc = 0;
out:
    if (rc) fprintf(stderr, "reprshift probe train: %s\n", err.msg);
    rs_probe_free(&p);
    if (classes) free_classes(classes, K);
    free(X); free(y);
    return rc;
}

/* One id per line → dense ints (for groups / control types); n must match. */
static int read_ids(const char *path, int n, int **ids, rs_err *err) {
    char **lab, **cls;
    int nl, K;
    if (rs_labels_read(path, NULL, &lab, &nl, err)) return -1;
    if (nl != n) {
        rs_labels_free(lab, nl);
        return rs_errf(err, "%s has %d lines, expected %d (one per activation row)", path, nl, n);
    }
    int rc = rs_labels_encode(lab, nl, ids, &cls, &K, err);
    rs_labels_free(lab, nl);
    if (rc == 0) rs_labels_free(cls, K);
    return rc;
}

static int probe_eval(const probe_args *a) {
    rs_err err;
    float *X;
    int n, d, K, *y, *grp = NULL, *ct = NULL;
    char **classes;
    if (!a->acts || !a->hook || !a->labels) {
        fprintf(stderr, "reprshift probe eval: --acts, --hook and --labels are required\n");
        return 2;
    }
    if (load_xy(a, &X, &n, &d, &y, &classes, &K, &err)) {
        fprintf(stderr, "reprshift probe eval: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    rs_eval_result r;
    memset(&r, 0, sizeof r);
    if (a->groups && read_ids(a->groups, n, &grp, &err)) goto out;
    if (a->ctypes && read_ids(a->ctypes, n, &ct, &err)) goto out;
    rs_eval_opts o = rs_eval_defaults();
    o.n_seeds = a->seeds;
    o.test_frac = a->test_frac;
    o.cv_folds = a->cv;
    o.Cs = a->have_C ? &a->C : a->Cs;
    o.n_Cs = a->have_C ? 1 : a->n_Cs;
    o.standardize = a->standardize;
    o.balanced = a->balanced;
    o.n_boot = a->boot;
    o.control_type = ct;
    o.tol = a->tol;
    o.penalty = a->penalty;
    o.seed = (uint64_t)a->seed;
    o.n_perm = a->perms;
    o.min_test_groups = a->min_test_groups;
    if (a->perms < 0 || a->min_test_groups < 0) {
        rs_errf(&err, "--permutations and --min-test-groups must be >= 0");
        goto out;
    }
    rs_mlp_opts mo = mlp_opts(a);
    if (a->mlp) o.mlp = &mo;
    if (rs_probe_evaluate(X, y, grp, n, d, K, &o, &r, &err)) goto out;
    FILE *f = a->json ? fopen(a->json, "w") : stdout;
    if (!f) { rs_errf(&err, "cannot write %s", a->json); goto out; }
    fprintf(f, "{\n  \"hook\": ");
    rs_json_write_string(f, a->hook);
    fprintf(f, ", \"rows\": %d, \"features\": %d, \"classes\": [", n, d);
    for (int k = 0; k < K; k++) {
        if (k) fputs(", ", f);
        rs_json_write_string(f, classes[k]);
    }
    fprintf(f, "],\n  \"seeds\": %d, \"test_frac\": %s, \"grouped\": %s,\n", a->seeds, RS_JSON_NUM("%g", a->test_frac),
            grp ? "true" : "false");
    if (a->mlp)
        fprintf(f, "  \"model\": {\"kind\": \"mlp\", \"hidden\": %d, \"alpha\": %s, \"max_epochs\": %d},\n", a->hidden,
                RS_JSON_NUM("%g", a->alpha), a->epochs);
    else fprintf(f, "  \"model\": {\"kind\": \"logreg\"%s},\n", a->penalty == RS_PENALTY_L1 ? ", \"penalty\": \"l1\"" : "");
#define N6(x) RS_JSON_NUM("%.6f", x)
    fprintf(f, "  \"accuracy\": {\"mean\": %s, \"ci95\": [%s, %s], \"sd_over_seeds\": %s},\n",
            N6(r.mean.accuracy), N6(r.ci_lo.accuracy), N6(r.ci_hi.accuracy), N6(r.acc_sd));
    fprintf(f, "  \"balanced_accuracy\": {\"mean\": %s, \"ci95\": [%s, %s]},\n",
            N6(r.mean.balanced_accuracy), N6(r.ci_lo.balanced_accuracy), N6(r.ci_hi.balanced_accuracy));
    fprintf(f, "  \"macro_f1\": {\"mean\": %s, \"ci95\": [%s, %s]},\n", N6(r.mean.macro_f1), N6(r.ci_lo.macro_f1),
            N6(r.ci_hi.macro_f1));
    fprintf(f, "  \"groups\": %d, \"test_groups_per_split\": %d,\n", r.n_groups, r.n_test_groups);
    fprintf(f, "  \"majority_baseline\": %s, \"permuted_label_accuracy\": %s,\n", N6(r.chance), N6(r.perm_accuracy));
    fprintf(f, "  \"permutation_test\": {\"permutations_per_seed\": %d, \"p_value\": %s, \"seconds\": %s},\n",
            r.n_perm, N6(r.perm_p), RS_JSON_NUM("%.3f", r.perm_seconds));
    fprintf(f, "  \"control_task_accuracy\": %s, \"control_type_overlap\": %s, \"selectivity\": %s,\n  \"C_chosen\": [",
            N6(r.control_accuracy), N6(r.control_overlap), N6(r.selectivity));
#undef N6
    for (int s = 0; !a->mlp && s < r.n_seeds; s++) fprintf(f, "%s%s", s ? ", " : "", RS_JSON_NUM("%g", r.C_chosen[s]));
    fprintf(f, "],\n  \"confusion_summed_over_seeds\": [");
    for (int i = 0; i < K; i++) {
        fprintf(f, "%s[", i ? ", " : "");
        for (int j = 0; j < K; j++) fprintf(f, "%s%d", j ? ", " : "", r.confusion[i * K + j]);
        fputc(']', f);
    }
    fprintf(f, "]\n}\n");
    if (a->json) fclose(f);
    rc = 0;
out:
    if (rc) fprintf(stderr, "reprshift probe eval: %s\n", err.msg);
    rs_eval_result_free(&r);
    free_classes(classes, K);
    free(X); free(y); free(grp); free(ct);
    return rc;
}

static int probe_predict(const probe_args *a) {
    rs_err err;
    rs_probe p;
    if (!a->probe || !a->acts) {
        fprintf(stderr, "reprshift probe predict: --probe and --acts are required\n");
        return 2;
    }
    if (rs_probe_load(&p, a->probe, &err)) {
        fprintf(stderr, "reprshift probe predict: %s\n", err.msg);
        return 1;
    }
    int rc = 1, n = 0, d = 0, *pred = NULL, nl = 0;
    float *X = NULL;
    char **lab = NULL;
    FILE *f = NULL;
    if (a->hook && strcmp(a->hook, p.hook)) {
        rs_errf(&err, "%s was trained on hook '%s', not '%s'", a->probe, p.hook, a->hook);
        goto out;
    }
    if (rs_acts_load(a->acts, p.hook, &X, &n, &d, &err)) goto out;
    if (!(pred = malloc(sizeof(int) * n))) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto out; }
    if (rs_probe_predict(&p, X, n, d, pred, &err)) { rs_err_prefix(&err, "%s", a->acts); goto out; }
    if (a->labels) {
        if (rs_labels_read(a->labels, a->column, &lab, &nl, &err)) goto out;
        if (nl != n) { rs_errf(&err, "%s has %d labels but %s has %d rows", a->labels, nl, a->acts, n); goto out; }
    }
    f = a->out ? fopen(a->out, "w") : stdout;
    if (!f) { rs_errf(&err, "cannot write %s", a->out); goto out; }
    int ok = 0;
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s\n", p.classes[pred[i]]);
        if (lab) ok += !strcmp(lab[i], p.classes[pred[i]]);
    }
    if (lab) fprintf(stderr, "accuracy %.6f (%d/%d)\n", (double)ok / n, ok, n);
    rc = 0;
out:
    if (f && f != stdout) fclose(f);
    if (rc) fprintf(stderr, "reprshift probe predict: %s\n", err.msg);
    rs_labels_free(lab, nl);
    rs_probe_free(&p);
    free(X); free(pred);
    return rc;
}

static int cmp_idx_str(const void *a, const void *b, void *ctx) {
    char **ids = ctx;
    return strcmp(ids[*(const int *)a], ids[*(const int *)b]);
}

/* Pair rows of A and B: by item id (ids seen in both files, in A's order) or by index.
 * pa[k], pb[k] are the rows of pair k. */
static int pair_rows(const probe_args *a, int nA, int nB, int **pa, int **pb, int *np, rs_err *err) {
    *pa = *pb = NULL;
    *np = 0;
    if (!a->ids_a != !a->ids_b) return rs_errf(err, "give both --ids-a and --ids-b, or neither");
    if (!a->ids_a) {
        if (nA != nB)
            return rs_errf(err, "%s has %d rows but %s has %d; pair them with --ids-a/--ids-b", a->acts, nA, a->acts_b, nB);
        *pa = malloc(sizeof(int) * nA);
        *pb = malloc(sizeof(int) * nA);
        if (!*pa || !*pb) return rs_errk(err, RS_ENOMEM, "out of memory");
        for (int i = 0; i < nA; i++) (*pa)[i] = (*pb)[i] = i;
        *np = nA;
        return 0;
    }
    char **ia = NULL, **ib = NULL;
    int na = 0, nb = 0, rc = -1, *ord = NULL;
    char *used = NULL;
    if (rs_labels_read(a->ids_a, NULL, &ia, &na, err) || rs_labels_read(a->ids_b, NULL, &ib, &nb, err)) goto done;
    if (na != nA) { rs_errf(err, "%s has %d ids but %s has %d rows", a->ids_a, na, a->acts, nA); goto done; }
    if (nb != nB) { rs_errf(err, "%s has %d ids but %s has %d rows", a->ids_b, nb, a->acts_b, nB); goto done; }
    ord = malloc(sizeof(int) * nb);
    used = calloc(nb, 1);
    *pa = malloc(sizeof(int) * na);
    *pb = malloc(sizeof(int) * na);
    if (!ord || !used || !*pa || !*pb) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int i = 0; i < nb; i++) ord[i] = i;
    qsort_r(ord, nb, sizeof(int), cmp_idx_str, ib);
    for (int i = 1; i < nb; i++)
        if (!strcmp(ib[ord[i]], ib[ord[i - 1]])) {
            rs_errf(err, "%s: id '%s' occurs twice (lines %d and %d)", a->ids_b, ib[ord[i]], ord[i - 1] + 1, ord[i] + 1);
            goto done;
        }
    for (int i = 0; i < na; i++) {
        int lo = 0, hi = nb - 1, hit = -1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2, c = strcmp(ia[i], ib[ord[mid]]);
            if (!c) { hit = ord[mid]; break; }
            if (c < 0) hi = mid - 1; else lo = mid + 1;
        }
        if (hit < 0) continue;
        if (used[hit]) { rs_errf(err, "%s: id '%s' occurs twice (line %d)", a->ids_a, ia[i], i + 1); goto done; }
        used[hit] = 1;
        (*pa)[*np] = i;
        (*pb)[*np] = hit;
        (*np)++;
    }
    if (*np < 10) { rs_errf(err, "only %d items have ids in both %s and %s (need at least 10)", *np, a->ids_a, a->ids_b); goto done; }
    if (*np < na || *np < nb) fprintf(stderr, "transfer: paired %d items (%d A rows, %d B rows)\n", *np, na, nb);
    rc = 0;
done:
    rs_labels_free(ia, na);
    rs_labels_free(ib, nb);
    free(ord);
    free(used);
    if (rc) { free(*pa); free(*pb); *pa = *pb = NULL; }
    return rc;
}

static void json_str(FILE *f, const char *s) { rs_json_write_string(f, s); }

static int probe_transfer(const probe_args *a) {
    rs_err err;
    if (!a->acts || !a->acts_b || !a->hook || (!a->labels && !(a->labels_a && a->labels_b))) {
        fprintf(stderr, "reprshift probe transfer: --a, --b, --hook and --labels (or --labels-a and --labels-b) are required\n");
        return 2;
    }
    if (a->penalty == RS_PENALTY_L1) {
        fprintf(stderr, "reprshift probe transfer: --penalty l1 is not supported (the transfer probes are l2)\n");
        return 2;
    }
    const char *hook_b = a->hook_b ? a->hook_b : a->hook;
    float *XA = NULL, *XB = NULL, *PA = NULL, *PB = NULL;
    char **la = NULL, **lb = NULL, **both = NULL, **classes = NULL;
    int nA, dA, nB, dB, nla = 0, nlb = 0, *pa = NULL, *pb = NULL, np = 0, K = 0, *y = NULL, *grp = NULL, *gall = NULL;
    int rc = 1;
    rs_transfer_result r;
    if (rs_acts_load(a->acts, a->hook, &XA, &nA, &dA, &err) || rs_acts_load(a->acts_b, hook_b, &XB, &nB, &dB, &err)) goto out;
    if (pair_rows(a, nA, nB, &pa, &pb, &np, &err)) goto out;
    const char *fa = a->labels ? a->labels : a->labels_a;
    if (rs_labels_read(fa, a->column, &la, &nla, &err)) goto out;
    if (nla != nA) { rs_errf(&err, "%s has %d labels but %s:%s has %d rows", fa, nla, a->acts, a->hook, nA); goto out; }
    if (!a->labels) {
        if (rs_labels_read(a->labels_b, a->column, &lb, &nlb, &err)) goto out;
        if (nlb != nB) { rs_errf(&err, "%s has %d labels but %s:%s has %d rows", a->labels_b, nlb, a->acts_b, hook_b, nB); goto out; }
    }
    /* one class set for both modalities: encode A's then B's labels of the pairs together */
    if (!(both = malloc(sizeof(char *) * 2 * np))) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto out; }
    for (int k = 0; k < np; k++) {
        both[k] = la[pa[k]];
        both[np + k] = lb ? lb[pb[k]] : la[pa[k]];
    }
    if (rs_labels_encode(both, 2 * np, &y, &classes, &K, &err)) goto out;
    if (K < 2) { rs_errf(&err, "only one class ('%s'); a probe needs at least two", classes[0]); goto out; }
    if (a->groups) {
        if (read_ids(a->groups, nA, &gall, &err)) goto out;
        if (!(grp = malloc(sizeof(int) * np))) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto out; }
        for (int k = 0; k < np; k++) grp[k] = gall[pa[k]];
    }
    PA = malloc(sizeof(float) * (size_t)np * dA);
    PB = malloc(sizeof(float) * (size_t)np * dB);
    if (!PA || !PB) { rs_errk(&err, RS_ENOMEM, "out of memory for %d paired items", np); goto out; }
    for (int k = 0; k < np; k++) {
        memcpy(PA + (size_t)k * dA, XA + (size_t)pa[k] * dA, sizeof(float) * dA);
        memcpy(PB + (size_t)k * dB, XB + (size_t)pb[k] * dB, sizeof(float) * dB);
    }
    rs_transfer_opts o = rs_transfer_defaults();
    o.n_seeds = a->seeds;
    o.test_frac = a->test_frac;
    o.cv_folds = a->cv;
    o.Cs = a->have_C ? &a->C : a->Cs;
    o.n_Cs = a->have_C ? 1 : a->n_Cs;
    o.standardize = a->standardize;
    o.balanced = a->balanced;
    o.n_boot = a->boot;
    o.tol = a->tol;
    o.ridge_alpha = a->ridge_alpha;
    o.procrustes_scale = !a->no_pscale;
    o.seed = (uint64_t)a->seed;
    rs_mlp_opts mo = mlp_opts(a);
    if (a->mlp) o.mlp = &mo;
    if (!(a->ridge_alpha > 0)) { rs_errf(&err, "--ridge-alpha must be positive"); goto out; }
    if (rs_transfer_evaluate(PA, dA, PB, dB, y, y + np, grp, np, K, &o, &r, &err)) goto out;
    const rs_transfer_cell_def *cd = rs_transfer_cells();
    printf("transfer: %d paired items, A = %s:%s (%d), B = %s:%s (%d), %d classes, %d seeds\n", np, a->acts, a->hook,
           dA, a->acts_b, hook_b, dB, K, a->seeds);
    printf("%-17s %9s %17s %9s %9s\n", "probe -> test", "accuracy", "95% CI", "bal.acc", "map R2");
    for (int c = 0; c < RS_TRANSFER_CELLS; c++) {
        const rs_transfer_cell *x = &r.cell[c];
        if (!x->available) { printf("%-17s %9s   (needs equal widths)\n", cd[c].name, "-"); continue; }
        printf("%-17s %9.4f  [%.4f, %.4f] %9.4f", cd[c].name, x->mean.accuracy, x->ci_lo.accuracy, x->ci_hi.accuracy,
               x->mean.balanced_accuracy);
        if (isnan(x->map_r2)) printf("\n"); else printf(" %9.4f\n", x->map_r2);
    }
    printf("majority baseline: A %.4f, B %.4f\n", r.chance[0], r.chance[1]);
    printf("A->B: %s\nB->A: %s\n", rs_transfer_diagnosis(&r, 0), rs_transfer_diagnosis(&r, 1));
    if (a->json) {
        FILE *f = fopen(a->json, "w");
        if (!f) { rs_errf(&err, "cannot write %s", a->json); goto out; }
        fprintf(f, "{\n  \"a\": {\"acts\": ");
        json_str(f, a->acts);
        fprintf(f, ", \"hook\": ");
        json_str(f, a->hook);
        fprintf(f, ", \"features\": %d},\n  \"b\": {\"acts\": ", dA);
        json_str(f, a->acts_b);
        fprintf(f, ", \"hook\": ");
        json_str(f, hook_b);
#define N6(x) RS_JSON_NUM("%.6f", x)
#define NG(x) RS_JSON_NUM("%g", x)
        fprintf(f, ", \"features\": %d},\n  \"paired_items\": %d, \"seeds\": %d, \"test_frac\": %s, \"grouped\": %s,\n", dB, np,
                a->seeds, NG(a->test_frac), grp ? "true" : "false");
        fprintf(f, "  \"ridge_alpha\": %s, \"procrustes_scale\": %s, \"standardized\": %s,\n", NG(a->ridge_alpha),
                a->no_pscale ? "false" : "true", a->standardize ? "true" : "false");
        if (a->mlp) fprintf(f, "  \"model\": {\"kind\": \"mlp\", \"hidden\": %d, \"alpha\": %s},\n", a->hidden, NG(a->alpha));
        else fprintf(f, "  \"model\": {\"kind\": \"logreg\"},\n");
        fprintf(f, "  \"classes\": [");
        for (int k = 0; k < K; k++) {
            if (k) fputs(", ", f);
            json_str(f, classes[k]);
        }
        fprintf(f, "],\n  \"majority_baseline\": {\"A\": %s, \"B\": %s},\n", N6(r.chance[0]), N6(r.chance[1]));
        fprintf(f, "  \"C_geomean\": {\"A\": %s, \"B\": %s},\n  \"cells\": [\n", NG(r.C[0]), NG(r.C[1]));
        static const char *mapn[] = {"none", "moments", "procrustes", "ridge"};
        for (int c = 0; c < RS_TRANSFER_CELLS; c++) {
            const rs_transfer_cell *x = &r.cell[c];
            fprintf(f, "    {\"name\": \"%s\", \"train\": \"%c\", \"test\": \"%c\", \"map\": \"%s\", \"available\": %s",
                    cd[c].name, "AB"[cd[c].train], "AB"[cd[c].test], mapn[cd[c].map], x->available ? "true" : "false");
            if (x->available) {
                fprintf(f, ",\n     \"accuracy\": {\"mean\": %s, \"ci95\": [%s, %s]}", N6(x->mean.accuracy),
                        N6(x->ci_lo.accuracy), N6(x->ci_hi.accuracy));
                fprintf(f, ", \"balanced_accuracy\": {\"mean\": %s, \"ci95\": [%s, %s]}",
                        N6(x->mean.balanced_accuracy), N6(x->ci_lo.balanced_accuracy), N6(x->ci_hi.balanced_accuracy));
                fprintf(f, ", \"macro_f1\": {\"mean\": %s, \"ci95\": [%s, %s]}", N6(x->mean.macro_f1),
                        N6(x->ci_lo.macro_f1), N6(x->ci_hi.macro_f1));
                if (!isnan(x->map_r2)) fprintf(f, ", \"map_r2_heldout\": %s", N6(x->map_r2));
            }
            fprintf(f, "}%s\n", c + 1 < RS_TRANSFER_CELLS ? "," : "");
        }
#undef N6
#undef NG
        fprintf(f, "  ],\n  \"diagnosis\": {\"A->B\": \"%s\", \"B->A\": \"%s\"}\n}\n", rs_transfer_diagnosis(&r, 0),
                rs_transfer_diagnosis(&r, 1));
        fclose(f);
    }
    rc = 0;
out:
    if (rc) fprintf(stderr, "reprshift probe transfer: %s\n", err.msg);
    free(XA); free(XB); free(PA); free(PB); free(pa); free(pb); free(both); free(y); free(grp); free(gall);
    rs_labels_free(la, nla);
    rs_labels_free(lb, nlb);
    if (classes) rs_labels_free(classes, K);
    return rc;
}

int cmd_probe(int argc, char **argv) {
    if (argc < 2 || cli_wants_help(argc, argv, 1)) {
        probe_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    probe_args a;
    if (parse_args(argc, argv, &a)) return 2;
    if (!strcmp(argv[1], "train")) return probe_train(&a);
    if (!strcmp(argv[1], "eval")) return probe_eval(&a);
    if (!strcmp(argv[1], "predict")) return probe_predict(&a);
    if (!strcmp(argv[1], "transfer")) return probe_transfer(&a);
    fprintf(stderr, "reprshift probe: unknown action '%s' (train, eval, predict, transfer)\n", argv[1]);
    probe_usage(stderr);
    return 2;
}
