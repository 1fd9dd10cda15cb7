/* reprshift lens: the logit lens -- the final norm and the tied unembedding (with the final
 * logit soft-cap) applied to the residual stream after each layer. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/iv_input.h"
#include "base/jsonutil.h"

static const char USAGE[] =
    "usage: reprshift lens --model MODEL (--text S | --ids LIST) [options]\n"
    "\n"
    "Logit lens: for each chosen layer L, the next-token distribution read from the residual\n"
    "stream blocks.L.hook_resid_post by the model's own head -- the final RMSNorm (gain 1+w,\n"
    "the model's eps, as TransformerLens's apply_ln_to_stack uses ln_final), the tied\n"
    "unembedding and the final logit soft-cap -- at every position (text tokens, and with\n"
    "--image the image-token rows too). The last layer's lens is the model's own output.\n"
    "MODEL is Gemma-2 or PaliGemma (its decoder; with --image, image + prompt prefix first).\n"
    "\n"
    "options:\n"
    "  --model MODEL        folder or Hub name in the local Hugging Face cache\n"
    "  --revision REV       branch, tag or commit of a Hub-named MODEL\n"
    "  --tokenizer FILE     tokenizer.json (default: MODEL/tokenizer.json)\n"
    "  --text S             the input text (<bos> prepended; with --image: the continuation)\n"
    "  --ids LIST           the input as comma-separated token ids\n"
    "  --image IMG          PaliGemma: image input; --prompt P (default \"caption en\")\n"
    "  --layers LIST        layers (default: all)\n"
    "  --positions LIST     rows (default: all; negative from the end)\n"
    "  --top-k K            tokens per row and layer (default 5)\n"
    "  --json               one JSON object on stdout\n";

int cmd_lens(int argc, char **argv) {
    static const struct option LONG[] = {
        IV_INPUT_LONG_OPTIONS,                    {"layers", required_argument, 0, 'l'},
        {"positions", required_argument, 0, 'P'}, {"top-k", required_argument, 0, 'k'},
        {"json", no_argument, 0, 'j'},            {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    iv_input_opts io = {0};
    const char *layers_s = NULL, *positions = NULL;
    int json = 0, top_k = 5, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        if (iv_input_opt(&io, c, optarg)) continue;
        switch (c) {
        case 'l': layers_s = optarg; break;
        case 'P': positions = optarg; break;
        case 'k':
            if (cli_parse_int("lens", "--top-k", optarg, 1, 1000, &top_k)) return 2;
            break;
        case 'j': json = 1; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: fprintf(stderr, "reprshift lens: unknown option or missing value\n%s", USAGE); return 2;
        }
    }
    if (!iv_input_opts_ok(&io) || optind != argc) {
        fprintf(stderr, "reprshift lens: need --model and an input (--text or --ids; --image for PaliGemma)\n%s", USAGE);
        return 2;
    }
    rs_err err = {0};
    iv_model m;
    iv_in in = {0};
    int status = 1, n_l = 0, n_pos = 0, *layers = NULL, *pos = NULL, *top = NULL;
    float **lg = NULL;
    double *p = NULL;
    if (iv_model_open(&m, io.model, io.revision, io.tokenizer, &err) ||
        iv_build(&m, io.image, io.prompt, io.text, io.ids, &in, &err)) goto done;
    int L = m.dec->cfg.n_layers, T = (int)in.len, V = m.dec->cfg.vocab_size;
    if (layers_s) {
        if (iv_positions(layers_s, 0, L, &layers, &n_l, &err)) {
            rs_errf(&err, "--layers \"%s\": need comma-separated layers in 0..%d (negative from the end)", layers_s, L - 1);
            goto done;
        }
    } else {
        if (!(layers = malloc((size_t)L * sizeof(int)))) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
        for (int l = 0; l < L; l++) layers[l] = l;
        n_l = L;
    }
    if (positions) {
        if (iv_positions(positions, 0, T, &pos, &n_pos, &err)) goto done;
    } else {
        if (!(pos = malloc((size_t)T * sizeof(int)))) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
        for (int t = 0; t < T; t++) pos[t] = t;
        n_pos = T;
    }
    lg = calloc((size_t)n_l, sizeof *lg);
    p = malloc((size_t)V * sizeof(double));
    top = malloc((size_t)top_k * sizeof(int));
    if (!lg || !p || !top) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
    rs_iv_input v = iv_view(&in);
    if (rs_logit_lens(m.dec, &v, m.pos_offset, layers, n_l, lg, &err)) goto done;
    if (json) {
        printf("{\"model\": ");
        rs_json_write_string(stdout, io.model);
        printf(", \"final_norm\": \"ln_final (RMSNorm, gain 1+w)\", \"n_tokens\": %d, \"n_image_tokens\": %d, "
               "\"layers\": [", T, in.n_image);
    } else printf("model %s: %d tokens, logit lens at blocks.L.hook_resid_post (final norm + unembedding)\n", io.model, T);
    for (int a = 0; a < n_l; a++) {
        if (json) printf("%s{\"layer\": %d, \"hook\": \"blocks.%d.hook_resid_post\", \"positions\": [", a ? ", " : "",
                         layers[a], layers[a]);
        else printf("\nlayer %d\n", layers[a]);
        for (int k = 0; k < n_pos; k++) {
            int t = pos[k];
            const float *row = lg[a] + (size_t)t * V;
            rs_softmax_row(row, V, p);
            rs_topk(row, V, top_k, top);
            int is_img = in.mask && in.mask[t];
            char *cur = iv_token_text(&m, in.ids[t]);
            if (json) {
                printf("%s{\"pos\": %d, \"token_id\": %d, \"token\": ", k ? ", " : "", t, in.ids[t]);
                rs_json_write_string(stdout, cur ? cur : "");
                printf(", \"image\": %s, \"top\": [", is_img ? "true" : "false");
            } else printf("  %4d %-14.14s%s ->", t, cur ? cur : "", is_img ? " [img]" : "");
            free(cur);
            for (int j = 0; j < top_k && j < V; j++) {
                char *s = iv_token_text(&m, top[j]);
                if (json) {
                    printf("%s{\"id\": %d, \"token\": ", j ? ", " : "", top[j]);
                    rs_json_write_string(stdout, s ? s : "");
                    printf(", \"logit\": %s, \"prob\": %s}", RS_JSON_NUM("%.9g", row[top[j]]), RS_JSON_NUM("%.9g", p[top[j]]));
                } else printf("  '%s' %.3f", s ? s : "", p[top[j]]);
                free(s);
            }
            printf(json ? "]}" : "\n");
        }
        if (json) printf("]}");
    }
    if (json) printf("]}\n");
    status = 0;
done:
    if (status) fprintf(stderr, "reprshift lens: %s\n", err.msg);
    for (int a = 0; lg && a < n_l; a++) free(lg[a]);
    free(lg);
    free(p);
    free(top);
    free(layers);
    free(pos);
    iv_in_free(&in);
    iv_model_close(&m);
    return status;
}
