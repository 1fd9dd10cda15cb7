/* reprshift sae: train a TopK or JumpReLU SAE on stored activations, report an SAE's fit
 * quality, or match two SAEs' decoder directions. */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "store/act_file.h"
#include "reprshift/extract.h"
#include "base/jsonutil.h"
#include "reprshift/sae.h"
#include "reprshift/sae_fit.h"
#include "reprshift/sae_match.h"
#include "reprshift/fileio.h"
#include <cjson/cJSON.h>
#include "reprshift/sae_registry.h"
#include "reprshift/sae_train.h"
#include "reprshift/safetensors.h"

static const char USAGE[] =
    "usage: reprshift sae train --acts FILE.safetensors --hook H --out DIR [--arch topk|jumprelu]\n"
    "                           [--d-sae M] [--k K] [--steps N] [--batch B] [--lr LR] [--seed S]\n"
    "                           [--l0-coef L] [--bandwidth E] [--init-threshold T] [--l0-warmup N]\n"
    "                           [--keep-special]\n"
    "       reprshift sae fit --acts FILE.safetensors --sae PATH [--hook H] [--sae-hook H]\n"
    "                         [--allow-hook-mismatch] [--keep-special]\n"
    "       reprshift sae splice --model DIR --sae PATH (--texts FILE | --ids-file FILE) [...]\n"
    "                            (spliced CE: reprshift sae splice --help)\n"
    "       reprshift sae list [--release R] [--layer L] [--width 16k|65k]\n"
    "       reprshift sae match --a PATH --b PATH --out FILE.json [--pairs FILE.csv] [--threshold T]\n"
    "                           [--bootstrap N] [--null-reps N] [--max-width N] [--seed S]\n"
    "                           [--allow-hook-mismatch]\n"
    "\n"
    "--sae takes a path (sae-lens folder, Gemma Scope params.npz or its folder) or a name\n"
    "RELEASE/SAE_ID from `sae list`, e.g. gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical,\n"
    "found in the Hugging Face cache (HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub).\n"
    "\n"
    "train: an SAE on the rows of tensor H, saved as a sae-lens folder (cfg.json +\n"
    "       sae_weights.safetensors). Defaults: d_sae 4·d_in, 2000 steps of 256 rows, lr 1e-3.\n"
    "       --arch topk (default): TopK (Adam, AuxK for dead features, unit-norm decoder), k 32.\n"
    "       --arch jumprelu: Gemma Scope's JumpReLU SAE (docs/sae-training.md): rows scaled to unit\n"
    "       mean squared norm, loss ||x - x^||^2 + L * L0, straight-through threshold gradient with a\n"
    "       rectangle kernel of bandwidth E, thresholds trained as log(theta) from T, Adam beta1 0,\n"
    "       unit-norm decoder rows. --l0-coef L (default 0.01), --bandwidth E (0.05),\n"
    "       --init-threshold T (0.05), --l0-warmup N (L ramps up linearly over N steps; default 0).\n"
    "       The saved SAE has architecture jumprelu in the original units (sae fit / shift load it).\n"
    "fit:   MSE, relative MSE, explained variance, cosine, L0, L1, alive/dead fraction, mean max\n"
    "       activation, as JSON on stdout; BOS/EOS/pad rows (ids 0-2) reported separately.\n"
    "list:  the SAE names reprshift knows (Gemma Scope residual SAEs of Gemma-2 2B, widths 16k and\n"
    "       65k, canonical and per-L0 ids, from the sae-lens registry) as a tab-separated table:\n"
    "       name, hook, d_sae, l0, Hub repo, file in the repo, Neuronpedia id (- if none), cached\n"
    "       (yes/no in the local Hugging Face cache).\n"
    "match: pair the latents of SAE A and SAE B (e.g. one trained on the VLM and Gemma Scope's at the\n"
    "       same hook) one-to-one by decoder cosine, with the exact assignment maximising the summed\n"
    "       cosine (Hungarian, O(n^3); widths above --max-width, default 4096, are refused). JSON: the\n"
    "       fraction of pairs with cosine > T (default 0.7) and the mean cosine, each with a percentile\n"
    "       bootstrap 95% CI over the pairs (--bootstrap, default 1000), and the nulls the real match\n"
    "       must beat: B replaced by random unit directions, and B with its coordinates permuted\n"
    "       (--null-reps replicates each, default 3). --pairs writes a_latent,b_latent,cos. Refuses\n"
    "       SAEs of different d_in, or recorded hooks that differ unless --allow-hook-mismatch.\n";

static int sae_list(int argc, char **argv) {
    const char *release = NULL, *width = NULL;
    int layer = -1;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        if (i + 1 >= argc || (strcmp(o, "--release") && strcmp(o, "--layer") && strcmp(o, "--width"))) {
            fprintf(stderr, "reprshift sae list: unknown or incomplete option '%s' (--release R, --layer L, --width W)\n",
                    o);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(o, "--release")) release = v;
        else if (!strcmp(o, "--width")) width = v;
        else {
            if (cli_parse_int("sae list", "--layer", v, 0, 1000, &layer)) return 2;
        }
    }
    if (release && !rs_sae_registry_has_release(release)) {
        fprintf(stderr, "reprshift sae list: unknown release '%s' (known: gemma-scope-2b-pt-res-canonical, "
                        "gemma-scope-2b-pt-res)\n", release);
        return 1;
    }
    int want_w = 0;
    if (width) {
        if (!strcmp(width, "16k") || !strcmp(width, "16384")) want_w = 16384;
        else if (!strcmp(width, "65k") || !strcmp(width, "65536")) want_w = 65536;
        else {
            fprintf(stderr, "reprshift sae list: --width: '%s' is not 16k or 65k\n", width);
            return 2;
        }
    }
    printf("name\thook\td_sae\tl0\trepo\tfile\tneuronpedia\tcached\n");
    for (int i = 0; i < rs_sae_registry_count(); i++) {
        const rs_sae_entry *e = rs_sae_registry_at(i);
        if ((release && strcmp(e->release, release)) || (layer >= 0 && e->layer != layer) ||
            (want_w && e->d_sae != want_w))
            continue;
        char name[400];
        snprintf(name, sizeof name, "%s/%s", e->release, e->sae_id);
        char *path = NULL;
        const rs_sae_entry *got = NULL;
        rs_err err = {0};
        int cached = rs_sae_resolve(name, &path, &got, &err) == 0 && got;
        free(path);
        printf("%s\t%s\t%d\t%d\t%s\t%s/params.npz\t%s\t%s\n", name, e->hook_name, e->d_sae, e->l0, e->repo_id,
               e->path, e->neuronpedia ? e->neuronpedia : "-", cached ? "yes" : "no");
    }
    return 0;
}

typedef struct {
    const char *acts, *hook, *out, *sae, *sae_hook;
    int d_sae, k, batch, keep_special, allow_mismatch, jumprelu;
    long steps, l0_warmup;
    double lr, l0_coef, bandwidth, init_threshold;
    unsigned long long seed;
} sae_args;

static int load_rows(const sae_args *a, st_set **st, float **x, int64_t *n, int *d, uint8_t **inc, rs_err *err) {
    if (st_open(st, a->acts, err)) return -1;
    const st_tensor *t = st_get(*st, a->hook);
    if (!t || t->ndim != 2) return rs_errf(err, "%s: no 2-D activation tensor '%s'", a->acts, a->hook);
    *n = t->shape[0];
    *d = (int)t->shape[1];
    *x = st_to_f32_new(t);
    if (!*x) return rs_errk(err, RS_ENOMEM, "%s: out of memory", a->acts);
    *inc = malloc((size_t)*n + 1);
    if (!*inc) return rs_errk(err, RS_ENOMEM, "out of memory");
    const st_tensor *ids = st_get(*st, "token_ids");
    int32_t sp[3]; /* <bos>, <eos>, <pad> as extract recorded them (Gemma's for older files) */
    if (rs_special_ids_parse(st_meta(*st, "special_token_ids"), sp, err)) return rs_err_prefix(err, "%s", a->acts);
    for (int64_t r = 0; r < *n; r++) {
        int32_t id = ids && ids->numel == *n ? ((const int32_t *)ids->data)[r] : -1;
        (*inc)[r] = a->keep_special || id < 0 || (id != sp[0] && id != sp[1] && id != sp[2]);
    }
    for (int64_t i = 0; i < *n * *d; i++)
        if (!isfinite((*x)[i]))
            return rs_errf(err, "%s: '%s' row %lld is not finite (NaN/Inf)", a->acts, a->hook, (long long)(i / *d));
    return 0;
}

static void print_fit(const char *name, const sae_fit_metrics *m, int last) {
    /* an empty subset (e.g. no special-token rows) has NaN metrics: written as null */
#define N9(x) RS_JSON_NUM("%.9g", x)
    printf("  \"%s\": {\"n_rows\": %lld, \"mse\": %s, \"relative_mse\": %s, \"explained_variance\": %s, "
           "\"cossim\": %s, \"l0\": %s, \"l1\": %s, \"frac_alive\": %s, \"frac_dead\": %s, "
           "\"mean_max_act\": %s}%s\n",
           name, (long long)m->n_rows, N9(m->mse), N9(m->relative_mse), N9(m->explained_variance), N9(m->cossim),
           N9(m->l0), N9(m->l1), N9(m->frac_alive), N9(m->frac_dead), N9(m->mean_max_act), last ? "" : ",");
#undef N9
}

static int write_text(const char *path, const char *text, rs_err *err) {
    rs_atomic_file af = {0};
    if (rs_atomic_open(&af, path, err) || rs_atomic_write(&af, text, strlen(text), err) || rs_atomic_commit(&af, err)) {
        rs_atomic_abort(&af);
        return -1;
    }
    return 0;
}

static int sae_match_cmd(int argc, char **argv) {
    static const struct option LONG[] = {
        {"a", required_argument, 0, 'a'},         {"b", required_argument, 0, 'b'},
        {"out", required_argument, 0, 'o'},       {"pairs", required_argument, 0, 'p'},
        {"threshold", required_argument, 0, 't'}, {"bootstrap", required_argument, 0, 'B'},
        {"null-reps", required_argument, 0, 'n'}, {"max-width", required_argument, 0, 'w'},
        {"seed", required_argument, 0, 'r'},      {"allow-hook-mismatch", no_argument, 0, 'M'},
        {0, 0, 0, 0}};
    const char *pa = NULL, *pb = NULL, *out = NULL, *pairs = NULL;
    int allow = 0;
    sae_match_opts o;
    sae_match_opts_default(&o);
    unsigned long long seed = 1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "", LONG, NULL)) != -1) {
        switch (c) {
        case 'a': pa = optarg; break;
        case 'b': pb = optarg; break;
        case 'o': out = optarg; break;
        case 'p': pairs = optarg; break;
        case 'M': allow = 1; break;
        case 't': if (cli_parse_double("sae match", "--threshold", optarg, -1, 1, 0, &o.threshold)) return 2; break;
        case 'B': if (cli_parse_int("sae match", "--bootstrap", optarg, 0, 1000000, &o.n_boot)) return 2; break;
        case 'n': if (cli_parse_int("sae match", "--null-reps", optarg, 0, 1000, &o.n_null)) return 2; break;
        case 'w': if (cli_parse_int("sae match", "--max-width", optarg, 1, 1 << 20, &o.max_width)) return 2; break;
        case 'r': if (cli_parse_u64("sae match", "--seed", optarg, &seed)) return 2; break;
        default:
            fprintf(stderr, "reprshift sae match: unknown option or missing value\n%s", USAGE);
            return 2;
        }
    }
    if (!pa || !pb || !out) {
        fprintf(stderr, "reprshift sae match: missing required options (--a, --b, --out)\n%s", USAGE);
        return 2;
    }
    o.seed = seed;
    rs_err err = {0};
    rs_sae *A = NULL, *B = NULL;
    sae_match_result r = {0};
    cJSON *js = NULL;
    char *txt = NULL, *csv = NULL;
    int rc = 1;
    if (sae_load(&A, pa, NULL, &err) || sae_load(&B, pb, NULL, &err)) goto done;
    if (A->d_in != B->d_in) {
        rs_errf(&err, "%s has d_in %d but %s has d_in %d: decoders of different widths cannot be matched", pa, A->d_in, pb,
                B->d_in);
        goto done;
    }
    if (A->hook_name && B->hook_name && strcmp(A->hook_name, B->hook_name) && !allow) {
        rs_errf(&err, "%s was trained on hook '%s' but %s on '%s' (--allow-hook-mismatch to match anyway)", pa,
                A->hook_name, pb, B->hook_name);
        goto done;
    }
    if (sae_match_decoders(A->W_dec, A->d_sae, B->W_dec, B->d_sae, A->d_in, &o, &r, &err)) goto done;
    js = sae_match_json(&r, &o);
    if (!js) {
        rs_errk(&err, RS_ENOMEM, "out of memory");
        goto done;
    }
    /* the inputs first, then the result's fields */
    cJSON *res = js;
    js = cJSON_CreateObject();
    if (!js) {
        cJSON_Delete(res);
        rs_errk(&err, RS_ENOMEM, "out of memory");
        goto done;
    }
    cJSON_AddStringToObject(js, "a", pa);
    cJSON_AddStringToObject(js, "b", pb);
    if (A->hook_name) cJSON_AddStringToObject(js, "hook_a", A->hook_name);
    else cJSON_AddNullToObject(js, "hook_a");
    if (B->hook_name) cJSON_AddStringToObject(js, "hook_b", B->hook_name);
    else cJSON_AddNullToObject(js, "hook_b");
    cJSON_AddStringToObject(js, "architecture_a", sae_arch_name(A->arch));
    cJSON_AddStringToObject(js, "architecture_b", sae_arch_name(B->arch));
    while (res->child) {
        cJSON *it = cJSON_DetachItemViaPointer(res, res->child);
        cJSON_AddItemToObject(js, it->string, it);
    }
    cJSON_Delete(res);
    txt = cJSON_Print(js);
    if (!txt) {
        rs_errk(&err, RS_ENOMEM, "out of memory");
        goto done;
    }
    if (pairs) {
        size_t cap = 32 + (size_t)r.n_pairs * 48, len = 0;
        csv = malloc(cap);
        if (!csv) {
            rs_errk(&err, RS_ENOMEM, "out of memory");
            goto done;
        }
        len += (size_t)snprintf(csv, cap, "a_latent,b_latent,cos\n");
        for (int i = 0; i < r.n_pairs; i++)
            len += (size_t)snprintf(csv + len, cap - len, "%d,%d,%.6f\n", r.a_idx[i], r.b_idx[i], r.cos[i]);
        if (write_text(pairs, csv, &err)) goto done;
    }
    if (write_text(out, txt, &err)) goto done;
    fprintf(stderr, "sae match: %d pairs, frac cos > %g = %.3f [%.3f, %.3f], mean cos %.3f; null random %.3f, permuted "
                    "%.3f -> %s\n", r.n_pairs, o.threshold, r.frac, r.frac_lo, r.frac_hi, r.mean_cos,
            r.null_random.frac_max, r.null_permuted.frac_max, out);
    rc = 0;
done:
    if (rc) fprintf(stderr, "reprshift sae match: %s\n", err.msg);
    cJSON_Delete(js);
    free(txt);
    free(csv);
    sae_match_result_free(&r);
    sae_free(A);
    sae_free(B);
    return rc;
}

int cmd_sae(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "match") && !cli_wants_help(argc, argv, 2)) return sae_match_cmd(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "splice")) return cmd_sae_splice(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "list") && !cli_wants_help(argc, argv, 2)) return sae_list(argc, argv);
    if (argc < 2 || cli_wants_help(argc, argv, 1)) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int train = !strcmp(argv[1], "train"), fit = !strcmp(argv[1], "fit");
    if (!train && !fit) {
        fprintf(stderr, "reprshift sae: unknown action '%s' (train, fit, splice, list, match)\n", argv[1]);
        return 2;
    }
    static const struct option LONG[] = {
        {"acts", required_argument, 0, 'a'},  {"hook", required_argument, 0, 'H'},
        {"out", required_argument, 0, 'o'},   {"sae", required_argument, 0, 's'},
        {"sae-hook", required_argument, 0, 'S'}, {"d-sae", required_argument, 0, 'm'},
        {"k", required_argument, 0, 'k'},     {"steps", required_argument, 0, 'n'},
        {"batch", required_argument, 0, 'b'}, {"lr", required_argument, 0, 'l'},
        {"seed", required_argument, 0, 'r'},  {"keep-special", no_argument, 0, 'K'},
        {"allow-hook-mismatch", no_argument, 0, 'M'}, {"arch", required_argument, 0, 'A'},
        {"l0-coef", required_argument, 0, 'L'}, {"bandwidth", required_argument, 0, 'E'},
        {"init-threshold", required_argument, 0, 'T'}, {"l0-warmup", required_argument, 0, 'W'}, {0, 0, 0, 0}};
    sae_args a = {0};
    a.k = 32;
    a.batch = 256;
    a.steps = 2000;
    a.lr = 1e-3;
    a.seed = 1;
    a.l0_coef = 0.01;
    a.bandwidth = 0.05;
    a.init_threshold = 0.05;
    int jr_opt = 0, topk_opt = 0;
    optind = 1;
    opterr = 0;
    int c;
    char sub[32];
    snprintf(sub, sizeof sub, "sae %s", argv[1]);
    while ((c = getopt_long(argc - 1, argv + 1, "", LONG, NULL)) != -1) {
        switch (c) {
        case 'a': a.acts = optarg; break;
        case 'H': a.hook = optarg; break;
        case 'o': a.out = optarg; break;
        case 's': a.sae = optarg; break;
        case 'S': a.sae_hook = optarg; break;
        case 'K': a.keep_special = 1; break;
        case 'M': a.allow_mismatch = 1; break;
        case 'm': if (cli_parse_int(sub, "--d-sae", optarg, 1, INT_MAX, &a.d_sae)) return 2; break;
        case 'k': if (cli_parse_int(sub, "--k", optarg, 1, INT_MAX, &a.k)) return 2; topk_opt = 1; break;
        case 'A':
            if (!strcmp(optarg, "jumprelu")) a.jumprelu = 1;
            else if (strcmp(optarg, "topk")) {
                fprintf(stderr, "reprshift %s: --arch must be topk or jumprelu (got \"%s\")\n", sub, optarg);
                return 2;
            }
            break;
        case 'L': if (cli_parse_double(sub, "--l0-coef", optarg, 0, INFINITY, 0, &a.l0_coef)) return 2; jr_opt = 1; break;
        case 'E': if (cli_parse_double(sub, "--bandwidth", optarg, 0, INFINITY, 1, &a.bandwidth)) return 2; jr_opt = 1; break;
        case 'T':
            if (cli_parse_double(sub, "--init-threshold", optarg, 0, INFINITY, 1, &a.init_threshold)) return 2;
            jr_opt = 1;
            break;
        case 'W': if (cli_parse_long(sub, "--l0-warmup", optarg, 0, LONG_MAX, &a.l0_warmup)) return 2; jr_opt = 1; break;
        case 'n': if (cli_parse_long(sub, "--steps", optarg, 1, LONG_MAX, &a.steps)) return 2; break;
        case 'b': if (cli_parse_int(sub, "--batch", optarg, 1, INT_MAX, &a.batch)) return 2; break;
        case 'l': if (cli_parse_double(sub, "--lr", optarg, 0, INFINITY, 1, &a.lr)) return 2; break;
        case 'r': if (cli_parse_u64(sub, "--seed", optarg, &a.seed)) return 2; break;
        default:
            fprintf(stderr, "reprshift sae %s: unknown option or missing value\n%s", argv[1], USAGE);
            return 2;
        }
    }
    if (!a.acts || (train && (!a.hook || !a.out)) || (fit && !a.sae)) {
        fprintf(stderr, "reprshift sae %s: missing required options\n%s", argv[1], USAGE);
        return 2;
    }
    if (train && a.jumprelu && topk_opt) {
        fprintf(stderr, "reprshift sae train: --k is a TopK option; a JumpReLU SAE sets its sparsity with --l0-coef\n");
        return 2;
    }
    if (train && !a.jumprelu && jr_opt) {
        fprintf(stderr, "reprshift sae train: --l0-coef, --bandwidth, --init-threshold and --l0-warmup need --arch jumprelu\n");
        return 2;
    }
    rs_err err = {0};
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
            rs_errf(&err, "%s: the SAE records no hook; pass --sae-hook NAME (the hook it was trained on, also the "
                         "activation tensor read unless --hook names another)", a.sae);
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
        printf("{\n  \"sae\": ");
        rs_json_write_string(stdout, a.sae);
        printf(", \"hook\": ");
        rs_json_write_string(stdout, a.hook);
        printf(", \"architecture\": \"%s\",\n", sae_arch_name(sae->arch));
        print_fit("fit", &in, 0);
        print_fit("special_tokens", &out, 1);
        printf("}\n");
        rc = 0;
    } else {
        if (load_rows(&a, &st, &x, &n, &d, &inc, &err)) goto done;
        int64_t w = 0; /* keep included rows only */
        for (int64_t r = 0; r < n; r++)
            if (inc[r]) memmove(x + (size_t)w++ * d, x + (size_t)r * d, (size_t)d * sizeof *x);
        if (a.jumprelu) {
            sae_jr_opts o;
            sae_jr_opts_default(&o);
            o.d_sae = a.d_sae ? a.d_sae : 4 * d;
            o.steps = a.steps;
            o.batch = a.batch;
            o.lr = (float)a.lr;
            o.seed = a.seed;
            o.lambda = (float)a.l0_coef;
            o.bandwidth = (float)a.bandwidth;
            o.init_threshold = (float)a.init_threshold;
            o.lambda_warmup = a.l0_warmup;
            o.log = stderr;
            o.log_every = a.steps / 10 > 0 ? a.steps / 10 : 1;
            sae_train_report rep;
            if (sae_train_jumprelu(x, w, d, &o, &sae, &rep, NULL, NULL, &err)) goto done;
            sae->hook_name = strdup(a.hook);
            if (sae_save_sae_lens(sae, a.out, &err)) goto done;
            fprintf(stderr, "sae train: jumprelu, %lld rows, d_sae %d, l0 coef %g: final mse %.6g, FVU %.4f, L0 %.2f, "
                            "%lld dead -> %s\n", (long long)w, o.d_sae, a.l0_coef, rep.final_mse, rep.final_fvu,
                    rep.final_l0, (long long)rep.dead_at_end, a.out);
            rc = 0;
            goto done;
        }
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
