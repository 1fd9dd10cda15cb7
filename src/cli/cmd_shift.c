/* reprshift shift: representation shift between two models' activations, with SAE features. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/shift_run.h"

static const char USAGE[] =
    "usage: reprshift shift --a ACTS_A.safetensors --b ACTS_B.safetensors --out DIR [options]\n"
    "\n"
    "Compare activations of two models on the same inputs (files from `reprshift extract --pool\n"
    "none`). Token-aligned when both files hold the same token ids, else per-input means.\n"
    "Rows of each model's special tokens (<bos>, <eos>, <pad>: the special_token_ids extract\n"
    "records in a file; Gemma's 2, 1, 0 for files without the key) are excluded (their SAE fit\n"
    "is reported separately); when the tokens align, a row special in either file.\n"
    "\n"
    "options:\n"
    "  --sae PATH             SAE: sae-lens folder (cfg.json + sae_weights.safetensors), Gemma Scope\n"
    "                         params.npz or its folder, or a name from `reprshift sae list`\n"
    "                         (gemma-scope-2b-pt-res-canonical/layer_{layer}/width_16k/canonical) found in\n"
    "                         the Hugging Face cache, whose features then link to Neuronpedia\n"
    "                         (neuronpedia_url in features_<hook>.csv); may contain {layer}.\n"
    "                         Without it: raw metrics only\n"
    "  --hook NAME            activation tensor (default: the file's only one; with --layers\n"
    "                         blocks.{layer}.hook_resid_post); may contain {layer}\n"
    "  --layers 0,6,12        run each layer, substituting {layer}\n"
    "  --sae-hook NAME        hook the SAE was trained on (for SAEs that record none)\n"
    "  --allow-hook-mismatch  apply the SAE even if its hook differs from the activations'\n"
    "  --keep-special         keep BOS/EOS/pad rows (and whitespace-only tokens, which are left out\n"
    "                         by default when --tokenizer is given)\n"
    "  --pooled               compare per-input means even when tokens align\n"
    "  --bootstrap N          bootstrap replicates for the 95% intervals (default 1000; 0 = none)\n"
    "  --permutations N       permutations of the row pairing for each metric's null: p-value and\n"
    "                         the null's 95% band (default 200; 0 = no tests, p-values null)\n"
    "  --seed S               bootstrap and permutation seed (default 24301)\n"
    "  --top-k K              entries in ranking lists (default 20)\n"
    "  --min-count N          token types seen fewer times are not ranked (default 5)\n"
    "  --tokenizer FILE       tokenizer.json: token strings and category aggregation\n"
    "  --categories FILE      CSV word,category replacing the built-in lists\n"
    "\n"
    "Writes DIR/results.json, DIR/summary.csv, DIR/features_<hook>.csv, DIR/tokens_<hook>.csv and\n"
    "DIR/token_types_<hook>.csv (or inputs_<hook>.csv when pooled). Each metric comes with a\n"
    "bootstrap interval, a permutation p-value and null band, a Benjamini-Hochberg q-value over\n"
    "the file, and floors (split-half within each model; SAE misfit per model). Definitions:\n"
    "docs/metrics.md.\n";

static int parse_layers(const char *s, int **out, int *n) {
    int cap = 16, k = 0;
    int *v = malloc((size_t)cap * sizeof *v);
    if (!v) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 100000) {
            free(v);
            return -1;
        }
        if (k == cap) {
            cap *= 2;
            int *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[k++] = (int)x;
        p = end;
        if (*p == ',') p++;
        else if (*p) {
            free(v);
            return -1;
        }
    }
    if (k == 0) {
        free(v);
        return -1;
    }
    *out = v;
    *n = k;
    return 0;
}

int cmd_shift(int argc, char **argv) {
    static const struct option LONG[] = {
        {"a", required_argument, 0, 'a'},          {"b", required_argument, 0, 'b'},
        {"sae", required_argument, 0, 's'},        {"hook", required_argument, 0, 'H'},
        {"layers", required_argument, 0, 'L'},     {"sae-hook", required_argument, 0, 'S'},
        {"allow-hook-mismatch", no_argument, 0, 'M'}, {"keep-special", no_argument, 0, 'K'},
        {"pooled", no_argument, 0, 'P'},           {"bootstrap", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 'r'},       {"top-k", required_argument, 0, 't'},
        {"permutations", required_argument, 0, 'p'}, {"min-count", required_argument, 0, 'm'},
        {"tokenizer", required_argument, 0, 'T'},  {"categories", required_argument, 0, 'C'},
        {"out", required_argument, 0, 'o'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    shift_run_opts o = {0};
    o.n_boot = 1000;
    o.n_perm = 200;
    o.seed = 24301;
    o.top_k = 20;
    o.log = stderr;
    int *layers = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        switch (c) {
        case 'a': o.acts_a = optarg; break;
        case 'b': o.acts_b = optarg; break;
        case 's': o.sae = optarg; break;
        case 'H': o.hook = optarg; break;
        case 'S': o.sae_hook = optarg; break;
        case 'M': o.allow_hook_mismatch = 1; break;
        case 'K': o.keep_special = 1; break;
        case 'P': o.force_pooled = 1; break;
        case 'T': o.tokenizer = optarg; break;
        case 'C': o.categories = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'L':
            free(layers);
            layers = NULL;
            if (parse_layers(optarg, &layers, &o.n_layers)) {
                fprintf(stderr, "reprshift shift: bad --layers '%s' (expected e.g. 0,6,12)\n", optarg);
                return 2;
            }
            o.layers = layers;
            break;
        case 'n':
            if (cli_parse_int("shift", "--bootstrap", optarg, 0, 1000000, &o.n_boot)) goto bad_value;
            break;
        case 'm':
            if (cli_parse_int("shift", "--min-count", optarg, 1, INT_MAX, &o.min_count)) goto bad_value;
            break;
        case 'p':
            if (cli_parse_int("shift", "--permutations", optarg, 0, 1000000, &o.n_perm)) goto bad_value;
            break;
        case 'r': {
            unsigned long long seed;
            if (cli_parse_u64("shift", "--seed", optarg, &seed)) goto bad_value;
            o.seed = seed;
            break;
        }
        case 't':
            if (cli_parse_int("shift", "--top-k", optarg, 1, INT_MAX, &o.top_k)) goto bad_value;
            break;
        case 'h':
            fputs(USAGE, stdout);
            free(layers);
            return 0;
        default:
            fprintf(stderr, "reprshift shift: unknown option or missing value '%s'\n%s", argv[optind - 1], USAGE);
            free(layers);
            return 2;
        }
        continue;
    bad_value: /* the helper printed the message */
        free(layers);
        return 2;
    }
    if (optind < argc || !o.acts_a || !o.acts_b || !o.out_dir) {
        fprintf(stderr, "reprshift shift: --a, --b and --out are required\n%s", USAGE);
        free(layers);
        return 2;
    }
    rs_err err = {0};
    int rc = shift_run(&o, &err);
    free(layers);
    if (rc) {
        fprintf(stderr, "reprshift shift: %s\n", err.msg);
        return 1;
    }
    if (o.n_perm == 0)
        fprintf(stderr, "shift: 0 permutations: metrics reported without p-values (null in results.json)\n");
    fprintf(stderr, "shift: results in %s/results.json\n", o.out_dir);
    return 0;
}
