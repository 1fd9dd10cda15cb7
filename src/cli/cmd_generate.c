/* `reprshift generate`: text generation with a KV cache (reprshift/generate.h) from a Gemma-2
 * prompt (text or token ids) or a PaliGemma image + prompt; greedy or seeded sampling; plain
 * text or one JSON object per input. Every input is read, tokenized and preprocessed before
 * the first token is generated, and nothing is printed until all inputs are done, so bad
 * input gives one error and no partial output. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/iv_input.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/generate.h"
#include "reprshift/hf_cache.h"
#include "reprshift/image.h"
#include "base/jsonutil.h"
#include "reprshift/model_config.h"
#include "reprshift/tokenizer.h"

#define NEWLINE_ID 108 /* "\n" in the Gemma / PaliGemma vocabulary (ends a --prompt-ids prompt) */

static const char *USAGE =
    "usage: reprshift generate --model M (--text S | --ids 2,651,... | --image IMG [--prompt S])...\n"
    "                          --max-new-tokens N [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
    "                          [--json] [--no-bos] [--tokenizer FILE] [--prompt-ids IDS] [--revision REV]\n"
    "                          [--image-processor pil|torchvision] [--spec SPEC]... [--specs-file F]\n"
    "                          [--precision fp32|bf16]\n";

static void help(void) {
    printf("%s\n"
           "Generate text after each input with a KV cache: the prompt runs once, then each new token\n"
           "runs alone against the cached keys and values (sliding window, soft-caps and PaliGemma's\n"
           "prefix block as in the full forward pass; docs/generate.md). Stops at an EOS id (from\n"
           "MODEL/generation_config.json \"eos_token_id\", else config.json) or after N new tokens.\n\n"
           "Model and inputs (each --text, --ids or --image is one input; give any number):\n"
           "  --model M             checkpoint folder, or a Hub name in the local Hugging Face cache\n"
           "  --revision REV        branch, tag or commit of a Hub-named --model (default main)\n"
           "  --text S              Gemma-2: a prompt, tokenized with <bos> first (see --no-bos)\n"
           "  --ids 2,651,...       Gemma-2: a prompt as token ids, exactly as given\n"
           "  --no-bos              Gemma-2 --text: no <bos>\n"
           "  --image IMG           PaliGemma: an image (JPEG/PNG); the input is its <image> tokens,\n"
           "                        <bos>, the prompt and \"\\n\" (the bidirectional prefix)\n"
           "  --prompt S            PaliGemma prompt (default \"caption en\")\n"
           "  --prompt-ids IDS      PaliGemma prompt as token ids (\"\\n\" = id %d is appended), for\n"
           "                        checkpoints without a tokenizer\n"
           "  --image-processor P   pil (default, transformers' SiglipImageProcessorPil) or torchvision\n"
           "  --tokenizer FILE      tokenizer.json (default MODEL/tokenizer.json; without one, --text\n"
           "                        and --prompt cannot be used and the output has no text)\n"
           "  --precision P         fp32 (default) or bf16: the decoder computes like transformers in\n"
           "                        bfloat16 (docs/precision.md; PaliGemma: tower, projector, decoder)\n\n"
           "Decoding:\n"
           "  --max-new-tokens N    tokens to generate at most (N >= 1; required)\n"
           "  --temperature T       0 (default): greedy, the most likely token (lowest id on a tie);\n"
           "                        T > 0: sample from softmax(logits / T)\n"
           "  --top-k K             sampling: only the K most likely tokens (default 0 = all)\n"
           "  --top-p P             sampling: only the most likely tokens whose probabilities reach P,\n"
           "                        after top-k; 0 < P <= 1 (default 1 = all)\n"
           "  --seed S              sampling: seed (unsigned 64-bit, default 0) of the portable\n"
           "                        generator (xoshiro256**): a seed gives the same tokens anywhere\n\n"
           "Steering (docs/generate.md, spec grammar as `reprshift intervene`, docs/interventions.md):\n"
           "  --spec SPEC           an intervention applied at its decoder hook on every forward pass,\n"
           "                        the prompt's and every new token's (repeatable): add (alpha in units\n"
           "                        of the clean prompt's mean L2 norm at the hook, alpha_abs absolute),\n"
           "                        project, sae; pos=P,... names prompt rows (negative: from the\n"
           "                        prompt's end; PaliGemma: the whole input, image rows first), steered\n"
           "                        in the prompt pass only. patch cannot be used\n"
           "  --specs-file FILE     specs one per line (blank lines and # comments skipped), after --spec\n"
           "  With specs each input is generated twice, clean and steered (same decoding, same seed).\n\n"
           "Output (stdout, after every input is done):\n"
           "  default               the generated text of each input, one input after another, each\n"
           "                        followed by a newline (token ids when there is no tokenizer)\n"
           "  --json                one JSON object per input and line: {\"input\", [\"prompt\"], \"ids\"\n"
           "                        (generated ids, the EOS included when produced), \"text\" (the ids\n"
           "                        decoded, special tokens kept; null without a tokenizer),\n"
           "                        \"stop\" (\"eos\" or \"max_new_tokens\")}\n"
           "  with --spec           text: \"  clean:      TEXT\" and \"  intervened: TEXT\" lines per\n"
           "                        input; JSON: \"ids\", \"text\", \"stop\" are the steered run's, plus\n"
           "                        \"interventions\" [{\"spec\", \"kind\", \"hook\", [\"alpha\", \"scale\"]}],\n"
           "                        \"clean\" and \"intervened\" {\"ids\", \"text\", \"stop\"}\n\n"
           "Exit status: 0 ok, 1 error (message on stderr), 2 usage error.\n"
           "Examples:\n"
           "  reprshift generate --model google/gemma-2-2b --text 'The capital of France is' --max-new-tokens 8\n"
           "  reprshift generate --model google/paligemma2-3b-pt-224 --image cat.jpg --prompt 'caption en' \\\n"
           "      --max-new-tokens 32 --json\n",
           USAGE, NEWLINE_ID);
}

typedef struct {
    const char *label;   /* text, ids string or image path */
    int is_image;
    int32_t *ids;        /* Gemma-2 prompt ids */
    int n_ids;
    float *pixels;       /* PaliGemma [3, S, S] */
    gen_output out;      /* the steered run with --spec */
    gen_output clean;    /* --spec: the clean run */
} gen_input;

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "reprshift generate: %s%s%s\n%s", msg, arg ? " " : "", arg ? arg : "", USAGE);
    return 2;
}

static int parse_double(const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE) {
        fprintf(stderr, "reprshift generate: %s must be a number (got \"%s\")\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

static void print_ids_json(const int32_t *ids, int n) {
    putchar('[');
    for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    putchar(']');
}

int cmd_generate(int argc, char **argv) {
    if (cli_wants_help(argc, argv, 1)) {
        help();
        return 0;
    }
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"revision", required_argument, 0, 'R'},
        {"text", required_argument, 0, 't'},        {"ids", required_argument, 0, 'i'},
        {"image", required_argument, 0, 'g'},       {"prompt", required_argument, 0, 'P'},
        {"prompt-ids", required_argument, 0, 'Q'},  {"tokenizer", required_argument, 0, 'z'},
        {"no-bos", no_argument, 0, 'B'},            {"max-new-tokens", required_argument, 0, 'n'},
        {"temperature", required_argument, 0, 'T'}, {"top-k", required_argument, 0, 'k'},
        {"top-p", required_argument, 0, 'p'},       {"seed", required_argument, 0, 's'},
        {"json", no_argument, 0, 'j'},              {"image-processor", required_argument, 0, 'G'},
        {"spec", required_argument, 0, 'x'},        {"specs-file", required_argument, 0, 'F'},
        {"precision", required_argument, 0, 'E'},
        {0, 0, 0, 0}};
    const char *model = NULL, *revision = NULL, *prompt = "caption en", *prompt_ids = NULL, *tokenizer = NULL;
    const char *specs_file = NULL;
    int no_bos = 0, json = 0, n_in = 0, have_max = 0, n_specs = 0;
    long max_new = 0, top_k = 0;
    double temperature = 0, top_p = 1;
    unsigned long long seed = 0;
    rs_image_processor proc = RS_IMAGE_PROCESSOR_PIL;
    rs_precision prec = RS_PREC_FP32;
    gen_input *in = calloc((size_t)argc, sizeof *in);
    const char **specs = calloc((size_t)argc + 1, sizeof *specs);
    rs_intervention *iv = NULL;
    if (!in || !specs) {
        free(in);
        free(specs);
        fprintf(stderr, "reprshift generate: out of memory\n");
        return 1;
    }
    int c, status = 2;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'R': revision = optarg; break;
        case 't': in[n_in++].label = optarg; break;
        case 'i':
            in[n_in].label = optarg;
            in[n_in++].n_ids = -1; /* marks an --ids input until parsed */
            break;
        case 'g':
            in[n_in].label = optarg;
            in[n_in++].is_image = 1;
            break;
        case 'P': prompt = optarg; break;
        case 'Q': prompt_ids = optarg; break;
        case 'z': tokenizer = optarg; break;
        case 'B': no_bos = 1; break;
        case 'j': json = 1; break;
        case 'x': specs[n_specs++] = optarg; break;
        case 'F': specs_file = optarg; break;
        case 'n':
            if (cli_parse_long("generate", "--max-new-tokens", optarg, 1, 1L << 20, &max_new)) goto out;
            have_max = 1;
            break;
        case 'k':
            if (cli_parse_long("generate", "--top-k", optarg, 0, INT_MAX, &top_k)) goto out;
            break;
        case 'T':
            if (parse_double("--temperature", optarg, &temperature)) goto out;
            if (!isfinite(temperature) || temperature < 0) {
                fprintf(stderr, "reprshift generate: --temperature must be a finite number >= 0 (got \"%s\")\n", optarg);
                goto out;
            }
            break;
        case 'p':
            if (parse_double("--top-p", optarg, &top_p)) goto out;
            if (!(top_p > 0 && top_p <= 1)) {
                fprintf(stderr, "reprshift generate: --top-p must be in (0, 1] (got \"%s\")\n", optarg);
                goto out;
            }
            break;
        case 's': {
            char *end;
            errno = 0;
            seed = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno == ERANGE || optarg[0] == '-') {
                fprintf(stderr, "reprshift generate: --seed must be an unsigned 64-bit integer (got \"%s\")\n", optarg);
                goto out;
            }
            break;
        }
        case 'G':
            if (rs_image_processor_parse(optarg, &proc)) {
                fprintf(stderr, "reprshift generate: --image-processor must be pil or torchvision (got \"%s\")\n",
                        optarg);
                goto out;
            }
            break;
        case 'E':
            if (rs_precision_parse(optarg, &prec)) {
                fprintf(stderr, "reprshift generate: --precision must be fp32 or bf16 (got \"%s\")\n", optarg);
                goto out;
            }
            break;
        default:
            status = usage_error("unknown option or missing value:", argv[optind - 1]);
            goto out;
        }
    }
    if (optind != argc) { status = usage_error("unexpected argument", argv[optind]); goto out; }
    if (!model) { status = usage_error("--model is required", NULL); goto out; }
    if (!have_max) { status = usage_error("--max-new-tokens is required", NULL); goto out; }
    if (!n_in) { status = usage_error("give an input: --text, --ids (Gemma-2) or --image (PaliGemma)", NULL); goto out; }

    status = 1;
    rs_err err = {0};
    char *model_dir = NULL;
    gemma2_model *gm = NULL;
    paligemma_model *pm = NULL;
    rs_tokenizer *tok = NULL;
    int32_t *eos = NULL, *pids = NULL;
    size_t n_pids = 0;
    int n_eos = 0;
    rs_model_type type;
    if (rs_hf_resolve_model(model, revision, &model_dir, &err)) goto done;
    if (model_config_type(model_dir, &type, &err)) goto done;
    int is_pg = type == RS_MODEL_PALIGEMMA, needs_tok = 0;
    for (int i = 0; i < n_in; i++) {
        if (in[i].is_image && !is_pg) {
            rs_errf(&err, "%s is a Gemma-2 checkpoint: --image needs a PaliGemma model", model);
            goto done;
        }
        if (!in[i].is_image && is_pg) {
            rs_errf(&err, "%s is a PaliGemma checkpoint: give --image (with --prompt), not --text / --ids", model);
            goto done;
        }
        needs_tok |= !in[i].is_image && in[i].n_ids == 0;
    }
    needs_tok |= is_pg && !prompt_ids;
    /* tokenizer: needed for --text / --prompt, used for the output text whenever present */
    {
        char *tp = tokenizer ? strdup(tokenizer) : rs_path_join(model_dir, "tokenizer.json");
        if (!tp) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
        if (tokenizer || rs_path_exists(tp)) {
            int r = tok_load(&tok, tp, &err);
            free(tp);
            if (r) goto done;
            if (is_pg && tok_id(tok, "<image>") < 0 && tok_add_paligemma_tokens(tok, &err)) goto done;
        } else {
            free(tp);
            if (needs_tok) {
                rs_errf(&err, "%s has no tokenizer.json: pass --tokenizer FILE, or give token ids (%s)", model,
                        is_pg ? "--prompt-ids" : "--ids");
                goto done;
            }
        }
    }
    if (is_pg) {
        if (paligemma_open(&pm, model_dir, &err)) goto done;
        paligemma_set_backend(pm, rs_backend_for(prec)); /* tower, projector and decoder */
    } else {
        if (gemma2_open(&gm, model_dir, &err)) goto done;
        gm->be = rs_backend_for(prec);
    }
    const gemma2_config *tc = is_pg ? &pm->cfg.text : &gm->cfg;
    if ((n_specs || specs_file) &&
        iv_specs_load(is_pg ? pm->text : gm, specs, n_specs, specs_file, &iv, &n_specs, &err)) goto done;
    if (gen_eos_ids(model_dir, tc, &eos, &n_eos, &err)) goto done;
    /* the PaliGemma prompt: prompt + "\n" as one segment without <bos>, as the processor does */
    if (is_pg && prompt_ids) {
        int64_t n;
        if (rs_parse_ids(prompt_ids, &pids, &n, &err)) { rs_err_prefix(&err, "--prompt-ids"); goto done; }
        int32_t *p = realloc(pids, (size_t)(n + 1) * sizeof *p);
        if (!p) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
        pids = p;
        pids[n] = NEWLINE_ID;
        n_pids = (size_t)n + 1;
    } else if (is_pg) {
        size_t L = strlen(prompt);
        char *pt = malloc(L + 2);
        if (!pt) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
        memcpy(pt, prompt, L);
        memcpy(pt + L, "\n", 2);
        int r = tok_encode(tok, pt, L + 1, 0, &pids, &n_pids, &err);
        free(pt);
        if (r) { rs_err_prefix(&err, "--prompt"); goto done; }
    }
    /* every input read before anything runs */
    for (int i = 0; i < n_in; i++) {
        gen_input *x = &in[i];
        if (x->is_image) {
            int S = pm->cfg.vision.image_size;
            rs_image img = {0};
            if (!(x->pixels = malloc((size_t)3 * S * S * sizeof(float)))) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
            int r = rs_image_load(x->label, &img, &err) ||
                    rs_siglip_preprocess_with(&img, S, proc, NULL, x->pixels, &err);
            rs_image_free(&img);
            if (r) goto done;
        } else if (x->n_ids < 0) {
            int64_t n;
            if (rs_parse_ids(x->label, &x->ids, &n, &err)) { rs_err_prefix(&err, "--ids"); goto done; }
            x->n_ids = (int)n;
            for (int k = 0; k < x->n_ids; k++)
                if (x->ids[k] < 0 || x->ids[k] >= tc->vocab_size) {
                    rs_errf(&err, "--ids \"%s\": token id %d is outside the vocabulary (size %d)", x->label, x->ids[k],
                            tc->vocab_size);
                    goto done;
                }
        } else {
            size_t n;
            if (!x->label[0]) { rs_errf(&err, "--text %d is empty", i + 1); goto done; }
            if (tok_encode(tok, x->label, strlen(x->label), !no_bos, &x->ids, &n, &err)) goto done;
            if (n == 0) { rs_errf(&err, "--text \"%s\" has no tokens (with --no-bos)", x->label); goto done; }
            x->n_ids = (int)n;
        }
    }
    gen_params gp = {.max_new_tokens = (int)max_new, .temperature = temperature, .top_k = (int)top_k,
                     .top_p = top_p, .seed = (uint64_t)seed, .eos_ids = eos, .n_eos = n_eos};
    for (int i = 0; i < n_in; i++) {
        gen_input *x = &in[i];
        for (int w = n_specs ? 0 : 1; w < 2; w++) { /* with specs: the clean run, then the steered one */
            gen_output *o = w ? &x->out : &x->clean;
            gp.ivs = w ? iv : NULL;
            gp.n_iv = w ? n_specs : 0;
            int r = is_pg ? gen_paligemma(pm, x->pixels, pids, (int)n_pids, &gp, o, &err)
                          : gen_gemma2(gm, x->ids, x->n_ids, &gp, o, &err);
            if (r) { rs_err_prefix(&err, "input %d (%s)", i + 1, x->label); goto done; }
        }
    }
    /* decode everything, then print */
    char **texts = calloc((size_t)2 * n_in + 1, sizeof *texts), **ctexts = texts + n_in; /* steered, clean */
    if (!texts) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
    int dec_fail = 0;
    for (int i = 0; tok && i < n_in && !dec_fail; i++) {
        size_t len;
        if (tok_decode_ex(tok, in[i].out.ids, (size_t)in[i].out.n, 0, &texts[i], &len, &err)) dec_fail = 1;
        if (!dec_fail && n_specs &&
            tok_decode_ex(tok, in[i].clean.ids, (size_t)in[i].clean.n, 0, &ctexts[i], &len, &err))
            dec_fail = 1;
    }
    if (!dec_fail) {
        for (int i = 0; i < n_in; i++) {
            const gen_output *o = &in[i].out;
            if (json) {
                fputs("{\"input\":", stdout);
                rs_json_write_string(stdout, in[i].label);
                if (is_pg) {
                    fputs(",\"prompt\":", stdout);
                    rs_json_write_string(stdout, prompt_ids ? prompt_ids : prompt);
                }
                fputs(",\"ids\":", stdout);
                print_ids_json(o->ids, o->n);
                fputs(",\"text\":", stdout);
                if (texts[i]) rs_json_write_string(stdout, texts[i]);
                else fputs("null", stdout);
                printf(",\"stop\":\"%s\"", o->hit_eos ? "eos" : "max_new_tokens");
                if (n_specs) {
                    fputs(",\"interventions\":[", stdout);
                    for (int k = 0; k < n_specs; k++) {
                        fputs(k ? ",{\"spec\":" : "{\"spec\":", stdout);
                        rs_json_write_string(stdout, iv[k].spec);
                        printf(",\"kind\":\"%s\",\"hook\":", rs_intervention_kind_name(iv[k].kind));
                        rs_json_write_string(stdout, iv[k].req.name);
                        if (iv[k].kind == IV_ADD)
                            printf(",\"alpha\":%s,\"alpha_units\":\"%s\",\"scale\":%s", RS_JSON_NUM("%.9g", iv[k].alpha),
                                   iv[k].alpha_abs ? "absolute" : "mean_l2_norm", RS_JSON_NUM("%.9g", o->iv_scale[k]));
                        putchar('}');
                    }
                    fputs("],", stdout);
                    iv_print_gen(1, "clean", &in[i].clean, ctexts[i]);
                    fputs(", ", stdout);
                    iv_print_gen(1, "intervened", o, texts[i]);
                }
                fputs("}\n", stdout);
            } else if (n_specs) {
                iv_print_gen(0, "clean:", &in[i].clean, ctexts[i]);
                iv_print_gen(0, "intervened:", o, texts[i]);
            } else if (texts[i]) {
                printf("%s\n", texts[i]);
            } else {
                for (int k = 0; k < o->n; k++) printf(k ? " %d" : "%d", o->ids[k]);
                putchar('\n');
            }
        }
        status = 0;
    }
    for (int i = 0; i < 2 * n_in; i++) free(texts[i]);
    free(texts);
done:
    if (status) fprintf(stderr, "reprshift generate: %s\n", err.msg);
    for (int i = 0; i < n_in; i++) {
        free(in[i].ids);
        free(in[i].pixels);
        gen_output_free(&in[i].out);
        gen_output_free(&in[i].clean);
    }
    iv_specs_free(iv, n_specs);
    free(eos);
    free(pids);
    tok_free(tok);
    gemma2_close(gm);
    paligemma_close(pm);
    free(model_dir);
out:
    free(in);
    free(specs);
    return status;
}
