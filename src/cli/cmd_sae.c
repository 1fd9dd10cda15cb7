/* reprshift sae: train a TopK SAE on stored activations, or report an SAE's fit quality. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/sae.h"
#include "reprshift/sae_fit.h"
#include "reprshift/sae_train.h"
#include "reprshift/safetensors.h"

static const char USAGE[] =
    "usage: reprshift sae train --acts FILE.safetensors --hook H --out DIR [--d-sae M] [--k K]\n"
    "                           [--steps N] [--batch B] [--lr LR] [--seed S] [--keep-special]\n"
    "       reprshift sae fit --acts FILE.safetensors --sae PATH [--hook H] [--sae-hook H]\n"
    "       reprshift sae splice --model DIR --sae PATH (--texts FILE | --ids-file FILE) [...]\n"
    "                            (spliced CE: reprshift sae splice --help)\n"
    "                         [--allow-hook-mismatch] [--keep-special]\n"
    "\n"
    "train: TopK SAE (Adam, AuxK for dead features, unit-norm decoder) on the rows of tensor H,\n"
    "       saved as a sae-lens folder (cfg.json + sae_weights.safetensors). Defaults: d_sae 4·d_in,\n"
    "       k 32, 2000 steps of 256 rows, lr 1e-3.\n"
    "fit:   MSE, relative MSE, explained variance, cosine, L0, L1, alive/dead fraction, mean max\n"
    "       activation, as JSON on stdout; BOS/EOS/pad rows (ids 0-2) reported separately.\n";

typedef struct {
    const char *acts, *hook, *out, *sae, *sae_hook;
    int d_sae, k, batch, keep_special, allow_mismatch;
    long steps;
    double lr;
    unsigned long long seed;
} sae_args;

static int load_rows(const sae_args *a, st_set **st, float **x, int64_t *n, int *d, uint8_t **inc, rs_err *err) {
    if (st_open(st, a->acts, err)) return -1;
    const st_tensor *t = st_get(*st, a->hook);
    if (!t || t->ndim != 2) return rs_errf(err, "%s: no 2-D activation tensor '%s'", a->acts, a->hook);
    *n = t->shape[0];
    *d = (int)t->shape[1];
    *x = st_to_f32_new(t);
    if (!*x) return rs_errf(err, "%s: out of memory", a->acts);
    *inc = malloc((size_t)*n + 1);
    if (!*inc) return rs_errf(err, "out of memory");
    const st_tensor *ids = st_get(*st, "token_ids");
    for (int64_t r = 0; r < *n; r++)
        (*inc)[r] = a->keep_special || !ids || ids->numel != *n || ((const int32_t *)ids->data)[r] > 2;
    for (int64_t i = 0; i < *n * *d; i++)
        if (!isfinite((*x)[i]))
            return rs_errf(err, "%s: '%s' row %lld is not finite (NaN/Inf)", a->acts, a->hook, (long long)(i / *d));
    return 0;
}

static void print_fit(const char *name, const sae_fit_metrics *m, int last) {
    printf("  \"%s\": {\"n_rows\": %lld, \"mse\": %.9g, \"relative_mse\": %.9g, \"explained_variance\": %.9g, "
           "\"cossim\": %.9g, \"l0\": %.9g, \"l1\": %.9g, \"frac_alive\": %.9g, \"frac_dead\": %.9g, "
           "\"mean_max_act\": %.9g}%s\n",
           name, (long long)m->n_rows, m->mse, m->relative_mse, m->explained_variance, m->cossim, m->l0, m->l1,
           m->frac_alive, m->frac_dead, m->mean_max_act, last ? "" : ",");
}

int cmd_sae(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "splice")) return cmd_sae_splice(argc - 1, argv + 1);
    int train = !strcmp(argv[1], "train"), fit = !strcmp(argv[1], "fit");
    if (!train && !fit) {
        fprintf(stderr, "reprshift sae: unknown action '%s' (train, fit, splice)\n", argv[1]);
        return 2;
    }
    static const struct option LONG[] = {
        {"acts", required_argument, 0, 'a'},  {"hook", required_argument, 0, 'H'},
        {"out", required_argument, 0, 'o'},   {"sae", required_argument, 0, 's'},
        {"sae-hook", required_argument, 0, 'S'}, {"d-sae", required_argument, 0, 'm'},
        {"k", required_argument, 0, 'k'},     {"steps", required_argument, 0, 'n'},
        {"batch", required_argument, 0, 'b'}, {"lr", required_argument, 0, 'l'},
        {"seed", required_argument, 0, 'r'},  {"keep-special", no_argument, 0, 'K'},
        {"allow-hook-mismatch", no_argument, 0, 'M'}, {0, 0, 0, 0}};
    sae_args a = {0};
    a.k = 32;
    a.batch = 256;
    a.steps = 2000;
    a.lr = 1e-3;
    a.seed = 1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "", LONG, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'a': a.acts = optarg; break;
        case 'H': a.hook = optarg; break;
        case 'o': a.out = optarg; break;
        case 's': a.sae = optarg; break;
        case 'S': a.sae_hook = optarg; break;
        case 'K': a.keep_special = 1; break;
        case 'M': a.allow_mismatch = 1; break;
        case 'm': a.d_sae = (int)strtol(optarg, &end, 10); if (*end || a.d_sae < 1) goto bad; break;
        case 'k': a.k = (int)strtol(optarg, &end, 10); if (*end || a.k < 1) goto bad; break;
        case 'n': a.steps = strtol(optarg, &end, 10); if (*end || a.steps < 1) goto bad; break;
        case 'b': a.batch = (int)strtol(optarg, &end, 10); if (*end || a.batch < 1) goto bad; break;
        case 'l': a.lr = strtod(optarg, &end); if (*end || !(a.lr > 0)) goto bad; break;
        case 'r': a.seed = strtoull(optarg, &end, 10); if (*end) goto bad; break;
        default:
            fprintf(stderr, "reprshift sae %s: unknown option or missing value\n%s", argv[1], USAGE);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "reprshift sae %s: bad value '%s'\n", argv[1], optarg);
        return 2;
    }
    if (!a.acts || (train && (!a.hook || !a.out)) || (fit && !a.sae)) {
        fprintf(stderr, "reprshift sae %s: missing required options\n%s", argv[1], USAGE);
        return 2;
    }
    rs_err err = {{0}};
    st_set *st = NULL;
    float *x = NULL;
    uint8_t *inc = NULL;
    rs_sae *sae = NULL;
    int64_t n = 0;
    int d = 0, rc = 1;
    if (fit) {
        if (sae_load(&sae, a.sae, a.sae_hook, &err)) goto done;
        if (!a.hook) a.hook = sae->hook_name;
        if (!a.hook) {
            rs_errf(&err, "%s: SAE records no hook; pass --hook", a.sae);
            goto done;
        }
        if (sae_check_hook(sae, a.hook, a.allow_mismatch, &err)) goto done;
        if (load_rows(&a, &st, &x, &n, &d, &inc, &err)) goto done;
        if (d != sae->d_in) {
            rs_errf(&err, "%s: SAE d_in %d does not match the width %d of '%s' in %s", a.sae, sae->d_in, d, a.hook, a.acts);
            goto done;
        }
        sae_fit_metrics in, out;
        if (sae_fit_eval(sae, x, n, inc, &in, &out, NULL, &err)) {
            rs_err_prefix(&err, "%s", a.acts);
            goto done;
        }
        printf("{\n  \"sae\": \"%s\", \"hook\": \"%s\", \"architecture\": \"%s\",\n", a.sae, a.hook, sae_arch_name(sae->arch));
        print_fit("fit", &in, 0);
        print_fit("special_tokens", &out, 1);
        printf("}\n");
        rc = 0;
    } else {
        if (load_rows(&a, &st, &x, &n, &d, &inc, &err)) goto done;
        int64_t w = 0; /* keep included rows only */
        for (int64_t r = 0; r < n; r++)
            if (inc[r]) memmove(x + (size_t)w++ * d, x + (size_t)r * d, (size_t)d * sizeof *x);
        sae_train_opts o;
        sae_train_opts_default(&o);
        o.d_sae = a.d_sae ? a.d_sae : 4 * d;
        o.k = a.k;
        o.steps = a.steps;
        o.batch = a.batch;
        o.lr = (float)a.lr;
        o.seed = a.seed;
        o.log = stderr;
        o.log_every = a.steps / 10 > 0 ? a.steps / 10 : 1;
        sae_train_report rep;
        if (sae_train_topk(x, w, d, &o, &sae, &rep, &err)) goto done;
        sae->hook_name = strdup(a.hook);
        if (sae_save_sae_lens(sae, a.out, &err)) goto done;
        fprintf(stderr, "sae train: %lld rows, d_sae %d, k %d: final mse %.6g, FVU %.4f, %lld dead -> %s\n", (long long)w,
                o.d_sae, o.k, rep.final_mse, rep.final_fvu, (long long)rep.dead_at_end, a.out);
        rc = 0;
    }
done:
    if (rc) fprintf(stderr, "reprshift sae %s: %s\n", argv[1], err.msg);
    sae_free(sae);
    free(x);
    free(inc);
    st_close(st);
    return rc;
}
