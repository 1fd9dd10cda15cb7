/* reprshift probe train|eval|predict: logistic-regression probes on activation files
 * written by `reprshift extract` (one f32 tensor [rows, width] per hook). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/probe.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_io.h"

static void probe_usage(FILE *f) {
    fprintf(f,
        "usage: reprshift probe train   --acts A.safetensors --hook NAME --labels FILE --out P.safetensors\n"
        "                               [--label-column COL] [--C X | --Cs X,Y,.. --cv K] [--balanced]\n"
        "                               [--no-standardize] [--tol T]\n"
        "       reprshift probe eval    --acts A.safetensors --hook NAME --labels FILE [--groups FILE]\n"
        "                               [--control-types FILE] [--seeds N] [--test-frac F] [--C X | --Cs ..]\n"
        "                               [--cv K] [--balanced] [--no-standardize] [--boot B] [--json OUT]\n"
        "       reprshift probe predict --probe P.safetensors --acts A.safetensors [--hook NAME]\n"
        "                               [--labels FILE] [--out FILE]\n"
        "Labels: one per line, or a CSV column (--label-column, header row). Classes are the\n"
        "distinct labels sorted by byte order. The probe writes P.safetensors + P.json (card).\n");
}

typedef struct {
    const char *acts, *hook, *labels, *column, *out, *probe, *groups, *ctypes, *json;
    double C, test_frac, tol;
    int have_C, cv, seeds, balanced, standardize, boot;
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
    const double grid[] = {1e-4, 1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4};
    memcpy(a->Cs, grid, sizeof grid);
    a->n_Cs = 9;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define STR(flag, field) if (!strcmp(o, flag)) { if (!v) goto missing; a->field = v; i++; continue; }
#define NUM(flag, field, conv) if (!strcmp(o, flag)) { if (!v) goto missing; char *e; a->field = conv; if (*e) goto bad; i++; continue; }
        STR("--acts", acts) STR("--hook", hook) STR("--labels", labels) STR("--label-column", column)
        STR("--out", out) STR("--probe", probe) STR("--groups", groups) STR("--control-types", ctypes)
        STR("--json", json)
        NUM("--cv", cv, (int)strtol(v, &e, 10)) NUM("--seeds", seeds, (int)strtol(v, &e, 10))
        NUM("--boot", boot, (int)strtol(v, &e, 10)) NUM("--test-frac", test_frac, strtod(v, &e))
        NUM("--tol", tol, strtod(v, &e))
        if (!strcmp(o, "--C")) {
            if (!v) goto missing;
            char *e;
            a->C = strtod(v, &e);
            if (*e || !(a->C > 0)) goto bad;
            a->have_C = 1;
            i++;
            continue;
        }
        if (!strcmp(o, "--Cs")) {
            if (!v || parse_Cs(v, a)) goto bad;
            i++;
            continue;
        }
        if (!strcmp(o, "--balanced")) { a->balanced = 1; continue; }
        if (!strcmp(o, "--no-standardize")) { a->standardize = 0; continue; }
        fprintf(stderr, "reprshift probe: unknown option '%s'\n", o);
        return -1;
    missing:
        fprintf(stderr, "reprshift probe: %s needs a value\n", o);
        return -1;
    bad:
        fprintf(stderr, "reprshift probe: bad value for %s: '%s'\n", o, v ? v : "");
        return -1;
#undef STR
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
    double C = a->C, cv_acc[32];
    int did_cv = !a->have_C && a->cv >= 2 && a->n_Cs > 1;
    if (did_cv && rs_logreg_cv(X, y, n, d, K, a->Cs, a->n_Cs, a->cv, a->standardize, &o, cv_acc, &C, &err)) goto out;
    o.C = C;
    rs_probe_data_hash(X, (size_t)n * d, y, n, p.data_hash);
    float *Xs = X;
    if (a->standardize) {
        if (rs_scaler_fit(&p.scaler, X, n, d, &err)) goto out;
        rs_scaler_apply(&p.scaler, X, n, X); /* X is ours: standardise in place */
        p.standardized = 1;
    }
    if (rs_logreg_fit(&p.model, Xs, y, n, d, K, &o, &err)) goto out;
    int *pred = malloc(sizeof(int) * n);
    if (!pred) { rs_errf(&err, "out of memory"); goto out; }
    rs_logreg_predict(&p.model, Xs, n, pred);
    rs_metrics m;
    rs_metrics_compute(y, pred, n, K, &m, NULL);
    free(pred);
    char mj[4096];
    size_t used = (size_t)snprintf(mj, sizeof mj, "{\"train_accuracy\": %.6f, \"train_balanced_accuracy\": %.6f, "
                                   "\"n_train\": %d", m.accuracy, m.balanced_accuracy, n);
    if (did_cv) {
        used += (size_t)snprintf(mj + used, sizeof mj - used, ", \"cv_folds\": %d, \"cv_grid\": [", a->cv);
        for (int c = 0; c < a->n_Cs; c++)
            used += (size_t)snprintf(mj + used, sizeof mj - used, "%s{\"C\": %g, \"accuracy\": %.6f}", c ? ", " : "", a->Cs[c], cv_acc[c]);
        used += (size_t)snprintf(mj + used, sizeof mj - used, "]");
    }
    snprintf(mj + used, sizeof mj - used, "}");
    p.hook = strdup(a->hook);
    p.classes = classes;
    p.n_classes = K;
    classes = NULL;
    p.metrics_json = strdup(mj);
    if (!p.hook || !p.metrics_json) { rs_errf(&err, "out of memory"); goto out; }
    if (rs_probe_save(&p, a->out, &err)) goto out;
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
    if (rs_probe_evaluate(X, y, grp, n, d, K, &o, &r, &err)) goto out;
    FILE *f = a->json ? fopen(a->json, "w") : stdout;
    if (!f) { rs_errf(&err, "cannot write %s", a->json); goto out; }
    fprintf(f, "{\n  \"hook\": \"%s\", \"rows\": %d, \"features\": %d, \"classes\": [", a->hook, n, d);
    for (int k = 0; k < K; k++) {
        fputs(k ? ", \"" : "\"", f);
        for (const char *c = classes[k]; *c; c++) {
            if (*c == '"' || *c == '\\') fputc('\\', f);
            if ((unsigned char)*c >= 0x20) fputc(*c, f);
        }
        fputc('"', f);
    }
    fprintf(f, "],\n  \"seeds\": %d, \"test_frac\": %g, \"grouped\": %s,\n", a->seeds, a->test_frac, grp ? "true" : "false");
    fprintf(f, "  \"accuracy\": {\"mean\": %.6f, \"ci95\": [%.6f, %.6f], \"sd_over_seeds\": %.6f},\n",
            r.mean.accuracy, r.ci_lo.accuracy, r.ci_hi.accuracy, r.acc_sd);
    fprintf(f, "  \"balanced_accuracy\": {\"mean\": %.6f, \"ci95\": [%.6f, %.6f]},\n",
            r.mean.balanced_accuracy, r.ci_lo.balanced_accuracy, r.ci_hi.balanced_accuracy);
    fprintf(f, "  \"macro_f1\": {\"mean\": %.6f, \"ci95\": [%.6f, %.6f]},\n", r.mean.macro_f1, r.ci_lo.macro_f1, r.ci_hi.macro_f1);
    fprintf(f, "  \"majority_baseline\": %.6f, \"permuted_label_accuracy\": %.6f,\n", r.chance, r.perm_accuracy);
    fprintf(f, "  \"control_task_accuracy\": %.6f, \"selectivity\": %.6f,\n  \"C_chosen\": [", r.control_accuracy, r.selectivity);
    for (int s = 0; s < r.n_seeds; s++) fprintf(f, "%s%g", s ? ", " : "", r.C_chosen[s]);
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
    if (!(pred = malloc(sizeof(int) * n))) { rs_errf(&err, "out of memory"); goto out; }
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

int cmd_probe(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        probe_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    probe_args a;
    if (parse_args(argc, argv, &a)) return 2;
    if (!strcmp(argv[1], "train")) return probe_train(&a);
    if (!strcmp(argv[1], "eval")) return probe_eval(&a);
    if (!strcmp(argv[1], "predict")) return probe_predict(&a);
    fprintf(stderr, "reprshift probe: unknown action '%s' (train, eval, predict)\n", argv[1]);
    probe_usage(stderr);
    return 2;
}
