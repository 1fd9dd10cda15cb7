/* reprshift intervene: run one input clean and with interventions at decoder hooks, and
 * read out next-token logits / probabilities of chosen tokens and KL(clean ‖ intervened). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/iv_input.h"
#include "reprshift/fileio.h"
#include "base/jsonutil.h"

static const char USAGE[] =
    "usage: reprshift intervene --model MODEL (--text S | --ids LIST) --spec SPEC [--spec SPEC ...] [options]\n"
    "\n"
    "Run the input clean and with the interventions applied at decoder hooks during the same\n"
    "forward pass, then compare the next-token distributions at the read-out positions\n"
    "(default: the last token): target tokens' logits and probabilities clean vs intervened,\n"
    "their differences, KL(clean || intervened) in nats, and the top-k tokens of each.\n"
    "MODEL is Gemma-2 or PaliGemma (its decoder; with --image, image + prompt prefix first).\n"
    "\n"
    "SPEC (docs/interventions.md):\n"
    "  add@HOOK:dir=FILE[:NAME]:alpha=A       x += A*s*d; d = unit direction, s = mean L2 norm of\n"
    "                                         the clean activation at HOOK over the input's tokens\n"
    "  add@HOOK:dir=FILE[:NAME]:alpha_abs=A   x += A*d (absolute units)\n"
    "  project@HOOK:dir=FILE[:NAME]           x -= (x.d) d\n"
    "  sae@HOOK:sae=PATH:feature=F:clamp=V    SAE feature F set to V (scale=V multiplies, zero\n"
    "                                         zeroes); x += decode(f') - decode(f) (error term kept)\n"
    "  patch@HOOK:from=K                      x = the clean activation of source input K (1, 2, ...)\n"
    "  any of them :pos=P[,P...]              only these rows (negative: from the end)\n"
    "  A direction FILE is a probe from `reprshift probe train` (in raw activation units,\n"
    "  NAME = a class) or a safetensors file with a 1-D tensor NAME (default: its only tensor\n"
    "  or 'direction'); every direction is normalised to unit norm.\n"
    "\n"
    "options:\n"
    "  --model MODEL        folder or Hub name in the local Hugging Face cache\n"
    "  --revision REV       branch, tag or commit of a Hub-named MODEL\n"
    "  --tokenizer FILE     tokenizer.json (default: MODEL/tokenizer.json)\n"
    "  --text S             the input text (<bos> prepended; with --image: the continuation)\n"
    "  --ids LIST           the input as comma-separated token ids (used as given)\n"
    "  --image IMG          PaliGemma: image input; --prompt P (default \"caption en\")\n"
    "  --source S           a source input for patch (from=1 is the first --source/--source-ids/\n"
    "  --source-ids LIST      --source-image, in command-line order); --source-image IMG: the\n"
    "  --source-image IMG     same prompt and text with another image\n"
    "  --spec SPEC          an intervention (repeatable; applied in forward order, in the given\n"
    "                       order at one hook)\n"
    "  --specs-file FILE    specs one per line (blank lines and # comments skipped), after --spec\n"
    "  --targets LIST       comma-separated target strings, each one token (\" cat, dog\": the\n"
    "                       pieces are kept verbatim, leading spaces included)\n"
    "  --target-ids LIST    target token ids\n"
    "  --positions LIST     read-out rows (default -1, the last)\n"
    "  --top-k K            top tokens listed per row (default 5, 0 for none)\n"
    "  --generate N         also generate N tokens (greedy, stopping at the model's EOS) clean and\n"
    "                       with the interventions on every forward pass (prefill and each decode\n"
    "                       step; pos= rows are prompt rows, steered in the prefill only) and print\n"
    "                       both texts; the input is the prompt (PaliGemma: --image and --prompt,\n"
    "                       no --text). patch specs cannot be used (no source for new tokens)\n"
    "  --json               one JSON object on stdout\n";

typedef struct {
    char kind; /* 't' text, 'i' ids, 'm' image */
    const char *v;
} src_arg;

static void json_str_or_null(const char *s) {
    if (s) rs_json_write_string(stdout, s);
    else fputs("null", stdout);
}

int cmd_intervene(int argc, char **argv) {
    static const struct option LONG[] = {
        IV_INPUT_LONG_OPTIONS,                      {"source", required_argument, 0, 's'},
        {"source-ids", required_argument, 0, 'S'},  {"source-image", required_argument, 0, 'J'},
        {"spec", required_argument, 0, 'x'},        {"targets", required_argument, 0, 'g'},
        {"target-ids", required_argument, 0, 'G'},  {"positions", required_argument, 0, 'P'},
        {"top-k", required_argument, 0, 'k'},       {"json", no_argument, 0, 'j'},
        {"specs-file", required_argument, 0, 'F'}, {"generate", required_argument, 0, 'N'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    iv_input_opts io = {0};
    const char *targets = NULL, *target_ids = NULL, *positions = NULL, *specs_file = NULL;
    int json = 0, top_k = 5, c, gen_n = 0;
    int n_specs = 0, n_src = 0;
    const char **specs = calloc((size_t)argc + 1, sizeof *specs);
    src_arg *srcs = calloc((size_t)argc + 1, sizeof *srcs);
    if (!specs || !srcs) {
        free(specs);
        free(srcs);
        fprintf(stderr, "reprshift intervene: out of memory\n");
        return 1;
    }
    optind = 1;
    opterr = 0;
    int usage_err = 0;
    while (!usage_err && (c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        if (iv_input_opt(&io, c, optarg)) continue;
        switch (c) {
        case 's': srcs[n_src++] = (src_arg){'t', optarg}; break;
        case 'S': srcs[n_src++] = (src_arg){'i', optarg}; break;
        case 'J': srcs[n_src++] = (src_arg){'m', optarg}; break;
        case 'x': specs[n_specs++] = optarg; break;
        case 'F': specs_file = optarg; break;
        case 'g': targets = optarg; break;
        case 'G': target_ids = optarg; break;
        case 'P': positions = optarg; break;
        case 'k':
            if (cli_parse_int("intervene", "--top-k", optarg, 0, 1000, &top_k)) usage_err = 1;
            break;
        case 'j': json = 1; break;
        case 'N':
            if (cli_parse_int("intervene", "--generate", optarg, 1, 1 << 20, &gen_n)) usage_err = 1;
            break;
        case 'h':
            fputs(USAGE, stdout);
            free(specs);
            free(srcs);
            return 0;
        default:
            fprintf(stderr, "reprshift intervene: unknown option or missing value\n%s", USAGE);
            usage_err = 1;
        }
    }
    if (!usage_err && (!iv_input_opts_ok(&io) ||
                       (!n_specs && !specs_file) ||
                       (targets && target_ids) || optind != argc)) {
        fprintf(stderr, "reprshift intervene: need --model, an input (--text or --ids; --image for PaliGemma) and "
                        "at least one --spec or --specs-file\n%s", USAGE);
        usage_err = 1;
    }
    if (usage_err) {
        free(specs);
        free(srcs);
        return 2;
    }
    rs_err err = {0};
    iv_model m;
    memset(&m, 0, sizeof m);
    int status = 1, n_in = 1 + n_src, n_t = 0, n_pos = 0;
    rs_iv_result r = {0};
    iv_in *in = NULL;
    rs_iv_input *view = NULL;
    rs_intervention *iv = NULL;
    gen_output gc = {0}, gi = {0};
    char *text_c = NULL, *text_i = NULL;
    int32_t *eos = NULL;
    int32_t *tgt = NULL;
    int *pos = NULL, *top = NULL;
    double *pc = NULL, *pi = NULL;
    in = calloc((size_t)n_in, sizeof *in);
    view = calloc((size_t)n_in, sizeof *view);
    if (iv_model_open(&m, io.model, io.revision, io.tokenizer, &err)) goto done;
    if (!in || !view) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
    if (iv_specs_load(m.dec, specs, n_specs, specs_file, &iv, &n_specs, &err)) goto done;
    if (iv_build(&m, io.image, io.prompt, io.text, io.ids, &in[0], &err)) goto done;
    for (int s = 0; s < n_src; s++) {
        const src_arg *a = &srcs[s];
        int rc = a->kind == 'm' ? iv_build(&m, a->v, io.prompt, io.text, NULL, &in[s + 1], &err)
               : a->kind == 'i' ? iv_build(&m, NULL, NULL, NULL, a->v, &in[s + 1], &err)
                                : iv_build(&m, io.image, io.prompt, a->v, NULL, &in[s + 1], &err);
        if (rc) { rs_err_prefix(&err, "source input %d", s + 1); goto done; }
    }
    for (int i = 0; i < n_in; i++) view[i] = iv_view(&in[i]);
    if (iv_targets(&m, targets, target_ids, &tgt, &n_t, &err)) goto done;
    int T = (int)in[0].len;
    if (iv_positions(positions, -1, T, &pos, &n_pos, &err)) goto done;
    if (gen_n && m.type == RS_MODEL_PALIGEMMA && (!io.image || in[0].n_text)) {
        rs_errk(&err, RS_EINVAL, "--generate with PaliGemma continues the image + prompt prefix: give --image (and "
                                 "--prompt), not --text / --ids");
        goto done;
    }
    if (rs_intervene_run(m.dec, view, n_in, m.pos_offset, iv, n_specs, &r, &err)) goto done;
    if (gen_n) { /* clean, then steered; everything before any output */
        int n_eos = 0;
        if (gen_eos_ids(m.dir, &m.dec->cfg, &eos, &n_eos, &err)) goto done;
        gen_params gp = {.max_new_tokens = gen_n, .top_p = 1, .eos_ids = eos, .n_eos = n_eos};
        for (int w = 0; w < 2; w++) {
            gen_output *o = w ? &gi : &gc;
            gp.ivs = w ? iv : NULL;
            gp.n_iv = w ? n_specs : 0;
            int rc = m.pg ? gen_paligemma(m.pg, in[0].pixels, in[0].prompt_ids, in[0].n_prompt, &gp, o, &err)
                          : gen_gemma2(m.g, in[0].ids, T, &gp, o, &err);
            if (rc) { rs_err_prefix(&err, "--generate (%s)", w ? "intervened" : "clean"); goto done; }
            size_t len;
            if (m.tok && tok_decode_ex(m.tok, o->ids, (size_t)o->n, 0, w ? &text_i : &text_c, &len, &err)) goto done;
        }
    }
    int V = r.vocab;
    pc = malloc((size_t)V * sizeof(double));
    pi = malloc((size_t)V * sizeof(double));
    top = malloc((size_t)(top_k + 1) * sizeof(int));
    if (!pc || !pi || !top) { rs_errk(&err, RS_ENOMEM, "out of memory"); goto done; }
    /* ---- output ---- */
    if (json) {
        printf("{\"model\": ");
        rs_json_write_string(stdout, io.model);
        printf(", \"n_tokens\": %d, \"n_image_tokens\": %d, \"ids\": [", T, in[0].n_image);
        for (int t = 0; t < T; t++) printf("%s%d", t ? ", " : "", in[0].ids[t]);
        printf("], \"interventions\": [");
        for (int i = 0; i < n_specs; i++) {
            printf("%s{\"spec\": ", i ? ", " : "");
            rs_json_write_string(stdout, iv[i].spec);
            printf(", \"kind\": \"%s\", \"hook\": ", rs_intervention_kind_name(iv[i].kind));
            rs_json_write_string(stdout, iv[i].req.name);
            if (iv[i].kind == IV_ADD)
                printf(", \"alpha\": %s, \"alpha_units\": \"%s\", \"scale\": %s", RS_JSON_NUM("%.9g", iv[i].alpha),
                       iv[i].alpha_abs ? "absolute" : "mean_l2_norm", RS_JSON_NUM("%.9g", r.scale[i]));
            printf("}");
        }
        printf("], \"positions\": [");
    } else {
        printf("model %s: %d tokens%s", io.model, T, in[0].n_image ? "" : "\n");
        if (in[0].n_image) printf(" (%d image tokens)\n", in[0].n_image);
        for (int i = 0; i < n_specs; i++) {
            printf("intervention %d: %s", i, iv[i].spec);
            if (iv[i].kind == IV_ADD && !iv[i].alpha_abs)
                printf("  (mean |x| at the hook %.6g: added norm %.6g)", r.scale[i], fabs(iv[i].alpha) * r.scale[i]);
            printf("\n");
        }
    }
    for (int k = 0; k < n_pos; k++) {
        int t = pos[k];
        const float *lc = r.logits_clean + (size_t)t * V, *li = r.logits_iv + (size_t)t * V;
        rs_softmax_row(lc, V, pc);
        rs_softmax_row(li, V, pi);
        char *cur = iv_token_text(&m, in[0].ids[t]);
        if (json) {
            printf("%s{\"pos\": %d, \"token_id\": %d, \"token\": ", k ? ", " : "", t, in[0].ids[t]);
            json_str_or_null(cur);
            printf(", \"kl\": %s, \"targets\": [", RS_JSON_NUM("%.9g", r.kl[t]));
        } else {
            printf("\nposition %d (token %d %s): KL(clean || intervened) = %.6g nats\n", t, in[0].ids[t],
                   cur ? cur : "", r.kl[t]);
            if (n_t)
                printf("  %-16s %7s %12s %12s %12s %12s %12s %12s\n", "target", "id", "logit_clean", "logit_iv",
                       "d_logit", "p_clean", "p_iv", "d_p");
        }
        free(cur);
        for (int j = 0; j < n_t; j++) {
            int id = tgt[j];
            char *s = iv_token_text(&m, id);
            if (json) {
                printf("%s{\"id\": %d, \"token\": ", j ? ", " : "", id);
                json_str_or_null(s);
                printf(", \"logit_clean\": %s, \"logit_intervened\": %s, \"delta_logit\": %s, \"prob_clean\": %s, "
                       "\"prob_intervened\": %s, \"delta_prob\": %s}",
                       RS_JSON_NUM("%.9g", lc[id]), RS_JSON_NUM("%.9g", li[id]),
                       RS_JSON_NUM("%.9g", (double)li[id] - lc[id]), RS_JSON_NUM("%.9g", pc[id]),
                       RS_JSON_NUM("%.9g", pi[id]), RS_JSON_NUM("%.9g", pi[id] - pc[id]));
            } else {
                char q[40];
                snprintf(q, sizeof q, "'%s'", s ? s : "");
                printf("  %-16s %7d %12.6f %12.6f %+12.6f %12.6g %12.6g %+12.6g\n", q, id, lc[id], li[id],
                       (double)li[id] - lc[id], pc[id], pi[id], pi[id] - pc[id]);
            }
            free(s);
        }
        for (int w = 0; w < 2; w++) {
            const float *l = w ? li : lc;
            const double *p = w ? pi : pc;
            rs_topk(l, V, top_k, top);
            if (json) printf("], \"top_%s\": [", w ? "intervened" : "clean");
            else if (top_k) printf("  top-%d %-10s", top_k, w ? "intervened" : "clean");
            for (int j = 0; j < top_k && j < V; j++) {
                char *s = iv_token_text(&m, top[j]);
                if (json) {
                    printf("%s{\"id\": %d, \"token\": ", j ? ", " : "", top[j]);
                    json_str_or_null(s);
                    printf(", \"logit\": %s, \"prob\": %s}", RS_JSON_NUM("%.9g", l[top[j]]), RS_JSON_NUM("%.9g", p[top[j]]));
                } else printf("  '%s' %.4f", s ? s : "", p[top[j]]);
                free(s);
            }
            if (!json && top_k) printf("\n");
        }
        if (json) printf("]}");
    }
    if (gen_n) {
        if (json) {
            printf("], \"generation\": {\"max_new_tokens\": %d, ", gen_n);
            iv_print_gen(1, "clean", &gc, text_c);
            printf(", ");
            iv_print_gen(1, "intervened", &gi, text_i);
            printf("}}\n");
        } else {
            printf("\ngenerated (greedy, at most %d new tokens):\n", gen_n);
            iv_print_gen(0, "clean:", &gc, text_c);
            iv_print_gen(0, "intervened:", &gi, text_i);
        }
    } else if (json) printf("]}\n");
    status = 0;
done:
    if (status) fprintf(stderr, "reprshift intervene: %s\n", err.msg);
    rs_iv_result_free(&r);
    iv_specs_free(iv, n_specs);
    for (int i = 0; in && i < n_in; i++) iv_in_free(&in[i]);
    free(in);
    free(view);
    gen_output_free(&gc);
    gen_output_free(&gi);
    free(text_c);
    free(text_i);
    free(eos);
    free(tgt);
    free(pos);
    free(top);
    free(pc);
    free(pi);
    free(specs);
    free(srcs);
    iv_model_close(&m);
    return status;
}
