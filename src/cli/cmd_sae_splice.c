/* reprshift sae splice: next-token CE with the SAE reconstruction substituted at its hook,
 * vs clean and zero-ablated runs ("CE loss recovered"), for a Gemma-2 model or the
 * decoder of a PaliGemma model (text-only input, positions from 1 as transformers does). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/hf_cache.h"
#include "base/jsonutil.h"
#include "reprshift/paligemma.h"
#include "reprshift/splice.h"
#include "reprshift/tokenizer.h"

static const char USAGE[] =
    "usage: reprshift sae splice --model MODEL --sae SAE (--texts FILE | --ids-file FILE) [options]\n"
    "\n"
    "Spliced evaluation of an SAE: run the model three times over the same text -- clean, with\n"
    "the SAE's reconstruction substituted at its hook, and with that activation zeroed -- and\n"
    "report next-token cross-entropy (nats, token-weighted mean) and\n"
    "  CE loss recovered = (CE_zero - CE_spliced) / (CE_zero - CE_clean).\n"
    "MODEL may be Gemma-2 or PaliGemma (its decoder, text-only input: a different input\n"
    "distribution from image+prompt).\n"
    "Which rows are replaced and which predictions count is --ce-convention:\n"
    "  sae-lens (default): as sae-lens's run_evals and published \"CE loss recovered\" numbers:\n"
    "      rows of special tokens (BOS, EOS, PAD) keep their activation in the spliced pass,\n"
    "      the zero-ablated pass zeroes every row, and predictions made at a special-token\n"
    "      row (e.g. BOS -> first word) are not counted\n"
    "  reprshift-v1: BOS rows keep their activation in both the spliced and the zero-ablated\n"
    "      pass; every prediction counted (reprshift's earlier default)\n"
    "See docs/metrics.md, \"Spliced CE\".\n"
    "\n"
    "options:\n"
    "MODEL is a folder or a Hub name (google/gemma-2-2b) in the local Hugging Face cache.\n"
    "  --revision REV        branch, tag or commit of a Hub-named MODEL (default main)\n"
    "  --sae PATH            sae-lens folder or Gemma Scope params.npz, or an SAE name from\n"
    "                        `reprshift sae list` (found in the Hugging Face cache)\n"
    "  --hook H              hook to splice at (default: the SAE's hook_name)\n"
    "  --allow-hook-mismatch splice an SAE trained on another hook\n"
    "  --texts FILE          one text per line (tokenized with MODEL/tokenizer.json or --tokenizer)\n"
    "  --ids-file FILE       one comma-separated token id sequence per line\n"
    "  --tokenizer FILE      tokenizer.json to use with --texts\n"
    "  --ce-convention C     sae-lens (default) or reprshift-v1\n"
    "  --splice-bos          exempt no row: replace (and zero) every row, count every\n"
    "                        prediction (sae-lens with exclude_special_tokens=False)\n"
    "  --batch-tokens N      tokens per forward batch (default 2048)\n"
    "Output: one JSON object on stdout.\n";

/* Read one input per line (ids or text) into in. */
static int read_inputs(const char *path, int as_ids, const rs_tokenizer *tok, rs_inputs *in, rs_err *err) {
    char *buf;
    if (rs_read_file(path, (size_t)1 << 30, &buf, NULL, err)) return -1;
    int rc = 0, lineno = 0;
    for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line && !rc; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t L = strlen(line);
        if (L && line[L - 1] == '\r') line[--L] = '\0';
        if (!L) continue;
        int32_t *ids = NULL;
        int64_t n = 0;
        size_t nz = 0;
        rc = as_ids ? rs_parse_ids(line, &ids, &n, err) : tok_encode(tok, line, L, 1, &ids, &nz, err);
        if (!as_ids) n = (int64_t)nz;
        if (rc) rs_err_prefix(err, "%s:%d", path, lineno);
        else rc = rs_inputs_add(in, ids, n, NULL, err);
        free(ids);
    }
    free(buf);
    if (!rc && in->n == 0) rc = rs_errf(err, "%s: no inputs", path);
    return rc;
}

int cmd_sae_splice(int argc, char **argv) {
    static const struct option LONG[] = {
        {"model", required_argument, 0, 'm'}, {"sae", required_argument, 0, 's'},
        {"hook", required_argument, 0, 'H'},  {"texts", required_argument, 0, 't'},
        {"ids-file", required_argument, 0, 'i'}, {"tokenizer", required_argument, 0, 'z'},
        {"splice-bos", no_argument, 0, 'B'},  {"allow-hook-mismatch", no_argument, 0, 'M'},
        {"batch-tokens", required_argument, 0, 'b'}, {"revision", required_argument, 0, 'R'},
        {"ce-convention", required_argument, 0, 'C'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *revision = NULL, *model_name = NULL;
    char *model_dir = NULL;
    const char *model = NULL, *sae_path = NULL, *hook = NULL, *texts = NULL, *ids_file = NULL, *tokp = NULL;
    int splice_bos = 0, allow = 0, c;
    const char *conv_name = "sae-lens";
    long batch_tokens = 2048;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 's': sae_path = optarg; break;
        case 'H': hook = optarg; break;
        case 't': texts = optarg; break;
        case 'i': ids_file = optarg; break;
        case 'z': tokp = optarg; break;
        case 'B': splice_bos = 1; break;
        case 'M': allow = 1; break;
        case 'b':
            if (cli_parse_long("sae splice", "--batch-tokens", optarg, 1, 1L << 24, &batch_tokens)) return 2;
            break;
        case 'R': revision = optarg; break;
        case 'C': conv_name = optarg; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: fprintf(stderr, "reprshift sae splice: unknown option or missing value\n%s", USAGE); return 2;
        }
    }
    if (!model || !sae_path || !!texts == !!ids_file || batch_tokens < 1 || optind != argc) {
        fprintf(stderr, "reprshift sae splice: need --model, --sae and exactly one of --texts/--ids-file\n%s", USAGE);
        return 2;
    }
    rs_err err = {0};
    splice_ce_convention conv;
    if (splice_ce_convention_parse(conv_name, &conv, &err)) {
        fprintf(stderr, "reprshift sae splice: %s\n%s", err.msg, USAGE);
        return 2;
    }
    rs_model_type type;
    gemma2_model *g = NULL;
    paligemma_model *pg = NULL;
    const gemma2_model *dec;
    rs_sae *sae = NULL;
    rs_tokenizer *tok = NULL;
    rs_inputs in = {0};
    splice_ce total = {0};
    double *seq[3] = {NULL, NULL, NULL};
    int status = 1, pos_offset = 0;
    model_name = model;
    if (rs_hf_resolve_model(model_name, revision, &model_dir, &err)) goto done;
    model = model_dir;
    if (model_config_type(model, &type, &err)) goto done;
    if (type == RS_MODEL_GEMMA2) {
        if (gemma2_open(&g, model, &err)) goto done;
        dec = g;
    } else {
        if (paligemma_open(&pg, model, &err)) goto done;
        dec = pg->text;
        pos_offset = 1; /* transformers' PaliGemma positions start at 1, text-only too */
    }
    if (sae_load(&sae, sae_path, NULL, &err)) goto done;
    /* an SAE that records no hook (e.g. a params.npz outside a layer_N folder) reads the
     * hook the user names; one that records a hook must match it (or --allow-hook-mismatch) */
    if (!sae->hook_name && hook && !(sae->hook_name = strdup(hook))) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
    if (!hook) hook = sae->hook_name;
    if (!hook) { rs_errf(&err, "%s: the SAE names no hook; pass --hook", sae_path); goto done; }
    if (sae_check_hook(sae, hook, allow, &err)) goto done;
    if (texts) {
        char *tp = tokp ? strdup(tokp) : rs_path_join(model, "tokenizer.json");
        int r = tok_load(&tok, tp, &err);
        free(tp);
        if (r || read_inputs(texts, 0, tok, &in, &err)) goto done;
    } else if (read_inputs(ids_file, 1, NULL, &in, &err)) goto done;
    /* Batches of whole inputs; totals are token-weighted across batches. */
    double sum[3] = {0, 0, 0};
    int64_t npred = 0;
    for (int k = 0; k < 3; k++) seq[k] = calloc((size_t)in.n, sizeof(double));
    if (!seq[0] || !seq[1] || !seq[2]) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
    rs_progress prog;
    int64_t all = 0;
    for (int i = 0; i < in.n; i++) all += in.lens[i];
    rs_progress_start(&prog, "sae splice (tokens)", all);
    int64_t doneTok = 0;
    for (int i0 = 0; i0 < in.n;) {
        int i1 = i0;
        int64_t bt = 0;
        while (i1 < in.n && (i1 == i0 || bt + in.lens[i1] <= batch_tokens)) bt += in.lens[i1++];
        int64_t *off = malloc((size_t)(i1 - i0 + 1) * sizeof *off);
        int32_t *ids = malloc((size_t)bt * sizeof *ids);
        if (!off || !ids) { free(off); free(ids); rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
        off[0] = 0;
        for (int i = i0; i < i1; i++) {
            memcpy(ids + off[i - i0], in.ids[i], (size_t)in.lens[i] * sizeof *ids);
            off[i - i0 + 1] = off[i - i0] + in.lens[i];
        }
        gemma2_batch b = {.n_seqs = i1 - i0, .offsets = off, .ids = ids, .pos_offset = pos_offset};
        splice_ce r;
        int rc = splice_ce_eval(dec, sae, hook, &b, conv, splice_bos, &r, &err);
        free(off);
        free(ids);
        if (rc) goto done;
        if (r.n_predictions > 0) { /* a batch may count none (NAN means) */
            sum[0] += r.ce_clean * (double)r.n_predictions;
            sum[1] += r.ce_spliced * (double)r.n_predictions;
            sum[2] += r.ce_zero * (double)r.n_predictions;
            npred += r.n_predictions;
        }
        for (int i = i0; i < i1; i++) {
            seq[0][i] = r.seq_clean[i - i0];
            seq[1][i] = r.seq_spliced[i - i0];
            seq[2][i] = r.seq_zero[i - i0];
        }
        splice_ce_free(&r);
        doneTok += bt;
        rs_progress_update(&prog, doneTok);
        i0 = i1;
    }
    rs_progress_finish(&prog);
    if (npred == 0) {
        rs_errf(&err, "no counted next-token predictions: every input has a single token%s",
                conv == SPLICE_CE_SAE_LENS && !splice_bos ? " or only special tokens before its last" : "");
        goto done;
    }
    total.ce_clean = sum[0] / npred;
    total.ce_spliced = sum[1] / npred;
    total.ce_zero = sum[2] / npred;
    double denom = total.ce_zero - total.ce_clean;
    total.ce_recovered = denom != 0 ? (total.ce_zero - total.ce_spliced) / denom : NAN;
    printf("{\"model\": ");
    rs_json_write_string(stdout, model_name);
    printf(", \"sae\": ");
    rs_json_write_string(stdout, sae_path);
    printf(", \"hook\": ");
    rs_json_write_string(stdout, hook);
    printf(", \"ce_convention\": \"%s\", \"splice_bos\": %s, \"n_inputs\": %d, \"n_predictions\": %lld, "
           "\"ce_clean\": %s, \"ce_spliced\": %s, \"ce_zero\": %s, \"ce_loss_recovered\": %s, "
           "\"delta_lm_loss\": %s}\n",
           splice_ce_convention_name(conv), splice_bos ? "true" : "false", in.n, (long long)npred,
           RS_JSON_NUM("%.6f", total.ce_clean), RS_JSON_NUM("%.6f", total.ce_spliced),
           RS_JSON_NUM("%.6f", total.ce_zero), RS_JSON_NUM("%.6f", total.ce_recovered),
           RS_JSON_NUM("%.6f", total.ce_spliced - total.ce_clean));
    status = 0;
done:
    if (status) fprintf(stderr, "reprshift sae splice: %s\n", err.msg);
    for (int k = 0; k < 3; k++) free(seq[k]);
    rs_inputs_free(&in);
    tok_free(tok);
    sae_free(sae);
    gemma2_close(g);
    paligemma_close(pg);
    free(model_dir);
    return status;
}
