/* reprshift extract: run a model over texts or token ids and save hook activations. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/tokenizer.h"

static const char USAGE[] =
    "usage: reprshift extract --model DIR --hook H[,H...] INPUT --out FILE.safetensors [options]\n"
    "\n"
    "Run a Gemma-2 checkpoint (Hugging Face folder: config.json + safetensors) and save the\n"
    "activations at the named hooks: one f32 tensor per hook, named exactly by the hook name.\n"
    "\n"
    "INPUT (one of):\n"
    "  --text S           one text (may be repeated)\n"
    "  --texts FILE       one text per line (blank lines are errors)\n"
    "  --ids 2,651,...    one pre-tokenized sequence (for checkpoints without a tokenizer)\n"
    "  --ids-file FILE    one comma/space-separated id sequence per line\n"
    "\n"
    "options:\n"
    "  --hook H[,H...]    hooks, e.g. blocks.12.hook_resid_post, blocks.3.hook_mlp_out,\n"
    "                     blocks.0.attn.hook_z, ln_final.hook_normalized (TransformerLens names)\n"
    "  --pool MODE        none (default): [tokens, d] plus token_ids [tokens] and offsets [n+1];\n"
    "                     mean: [n, d], excluding BOS/EOS/pad tokens; last: [n, d] last token\n"
    "  --pool-special     let mean pooling include BOS/EOS/pad tokens\n"
    "  --no-bos           do not prepend <bos> when tokenizing text\n"
    "  --tokenizer FILE   tokenizer.json (default: MODEL/tokenizer.json)\n"
    "  --batch-tokens N   tokens per forward batch (default 2048)\n"
    "\n"
    "Writes FILE.safetensors and FILE.safetensors.rows.jsonl (one line per input: its rows and\n"
    "text). Both are written atomically: on any error nothing is left behind.\n";

typedef struct {
    const char *model, *hooks, *texts_file, *ids, *ids_file, *tokenizer, *out;
    const char **texts;
    int n_texts, no_bos, pool_special;
    rs_pool pool;
    long batch_tokens;
} extract_args;

static int read_lines_inputs(const char *path, int as_ids, const rs_tokenizer *tok, int add_bos, rs_inputs *in,
                             rs_err *err) {
    char *buf;
    size_t n;
    if (rs_read_file(path, (size_t)1 << 31, &buf, &n, err)) return -1;
    char *line = buf;
    int lineno = 0, rc = 0;
    while (line && *line && !rc) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        lineno++;
        size_t L = strlen(line);
        if (L && line[L - 1] == '\r') line[--L] = '\0';
        if (L == 0) {
            rc = rs_errf(err, "%s:%d: empty line (every line must hold one input)", path, lineno);
            break;
        }
        int32_t *ids = NULL;
        size_t nid = 0;
        int64_t nid64 = 0;
        if (as_ids) {
            rc = rs_parse_ids(line, &ids, &nid64, err);
            nid = (size_t)nid64;
        } else {
            rc = tok_encode(tok, line, L, add_bos, &ids, &nid, err);
        }
        if (rc) { rs_err_prefix(err, "%s:%d", path, lineno); break; }
        rc = rs_inputs_add(in, ids, (int64_t)nid, as_ids ? NULL : line, err);
        free(ids);
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (!rc && in->n == 0) rc = rs_errf(err, "%s: no inputs in file", path);
    return rc;
}

int cmd_extract(int argc, char **argv) {
    extract_args a = {.pool = POOL_NONE, .batch_tokens = 2048};
    a.texts = calloc((size_t)argc, sizeof *a.texts);
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"hook", required_argument, 0, 'k'},
        {"text", required_argument, 0, 't'},      {"texts", required_argument, 0, 'T'},
        {"ids", required_argument, 0, 'i'},       {"ids-file", required_argument, 0, 'I'},
        {"tokenizer", required_argument, 0, 'z'}, {"pool", required_argument, 0, 'p'},
        {"pool-special", no_argument, 0, 'S'},    {"no-bos", no_argument, 0, 'B'},
        {"batch-tokens", required_argument, 0, 'b'}, {"out", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    int c, status = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a.model = optarg; break;
        case 'k': a.hooks = optarg; break;
        case 't': a.texts[a.n_texts++] = optarg; break;
        case 'T': a.texts_file = optarg; break;
        case 'i': a.ids = optarg; break;
        case 'I': a.ids_file = optarg; break;
        case 'z': a.tokenizer = optarg; break;
        case 'p':
            if (rs_pool_parse(optarg, &a.pool)) {
                fprintf(stderr, "reprshift extract: --pool must be none, mean or last (got \"%s\")\n", optarg);
                free(a.texts);
                return 2;
            }
            break;
        case 'S': a.pool_special = 1; break;
        case 'B': a.no_bos = 1; break;
        case 'b': a.batch_tokens = atol(optarg); break;
        case 'o': a.out = optarg; break;
        case 'h': fputs(USAGE, stdout); free(a.texts); return 0;
        default: fputs(USAGE, stderr); free(a.texts); return 2;
        }
    }
    int n_sources = (a.n_texts > 0) + !!a.texts_file + !!a.ids + !!a.ids_file;
    if (optind != argc || !a.model || !a.hooks || !a.out || n_sources != 1 || a.batch_tokens < 1) {
        fprintf(stderr, "reprshift extract: %s\n%s",
                optind != argc ? "unexpected argument" :
                !a.model ? "--model is required" : !a.hooks ? "--hook is required" : !a.out ? "--out is required" :
                a.batch_tokens < 1 ? "--batch-tokens must be >= 1" :
                "give exactly one of --text, --texts, --ids, --ids-file", USAGE);
        free(a.texts);
        return 2;
    }
    rs_err err = {{0}};
    gemma2_model *m = NULL;
    rs_tokenizer *tok = NULL;
    rs_inputs in = {0};
    hook_request *hooks = NULL;
    extract_result res = {0};
    int n_hooks = 0;
    rs_model_type type;
    if (model_config_type(a.model, &type, &err)) goto done;
    if (type != RS_MODEL_GEMMA2) {
        rs_errf(&err, "%s: PaliGemma checkpoints are not supported by extract yet (Gemma-2 only)", a.model);
        goto done;
    }
    if (gemma2_open(&m, a.model, &err)) goto done;
    /* hooks */
    {
        char *list = strdup(a.hooks);
        hooks = calloc(strlen(a.hooks) / 2 + 2, sizeof *hooks);
        for (char *save = NULL, *h = strtok_r(list, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
            if (gemma2_hook_parse(&m->cfg, h, &hooks[n_hooks], &err)) { free(list); goto done; }
            for (int j = 0; j < n_hooks; j++)
                if (!strcmp(hooks[j].name, hooks[n_hooks].name)) {
                    rs_errf(&err, "hook \"%s\" requested twice", h);
                    free(list);
                    goto done;
                }
            n_hooks++;
        }
        free(list);
        if (!n_hooks) { rs_errf(&err, "--hook lists no hooks"); goto done; }
    }
    /* inputs */
    if (a.n_texts || a.texts_file) {
        char *tp = a.tokenizer ? strdup(a.tokenizer) : rs_path_join(a.model, "tokenizer.json");
        if (!a.tokenizer && !rs_path_exists(tp)) {
            rs_errf(&err, "%s has no tokenizer.json: pass --tokenizer FILE, or give token ids with --ids/--ids-file", a.model);
            free(tp);
            goto done;
        }
        int r = tok_load(&tok, tp, &err);
        free(tp);
        if (r) goto done;
    }
    for (int i = 0; i < a.n_texts; i++) {
        int32_t *ids;
        size_t n;
        if (!a.texts[i][0]) { rs_errf(&err, "--text %d is empty", i + 1); goto done; }
        if (tok_encode(tok, a.texts[i], strlen(a.texts[i]), !a.no_bos, &ids, &n, &err)) goto done;
        int r = rs_inputs_add(&in, ids, (int64_t)n, a.texts[i], &err);
        free(ids);
        if (r) goto done;
    }
    if (a.texts_file && read_lines_inputs(a.texts_file, 0, tok, !a.no_bos, &in, &err)) goto done;
    if (a.ids_file && read_lines_inputs(a.ids_file, 1, NULL, 0, &in, &err)) goto done;
    if (a.ids) {
        int32_t *ids;
        int64_t n;
        if (rs_parse_ids(a.ids, &ids, &n, &err)) { rs_err_prefix(&err, "--ids"); goto done; }
        int r = rs_inputs_add(&in, ids, n, NULL, &err);
        free(ids);
        if (r) goto done;
    }
    extract_opts o = {.n_hooks = n_hooks, .hooks = hooks, .pool = a.pool, .pool_special = a.pool_special,
                      .batch_tokens = a.batch_tokens};
    rs_progress prog;
    if (extract_gemma2(m, &in, &o, &res, &prog, &err)) goto done;
    const char *meta[] = {"model", a.model, "hooks", a.hooks, "bos", a.no_bos ? "no" : "yes", NULL};
    if (extract_save(&res, &in, a.out, meta, &err)) goto done;
    fprintf(stderr, "wrote %s: %d hook(s), %lld row(s), %lld input(s), %lld token(s)\n", a.out, n_hooks,
            (long long)res.rows, (long long)res.n_inputs, (long long)res.offsets[res.n_inputs]);
    status = 0;
done:
    if (status) fprintf(stderr, "reprshift extract: %s\n", err.msg);
    extract_result_free(&res);
    if (hooks) hook_requests_free(hooks, n_hooks);
    free(hooks);
    rs_inputs_free(&in);
    tok_free(tok);
    gemma2_close(m);
    free(a.texts);
    return status;
}
