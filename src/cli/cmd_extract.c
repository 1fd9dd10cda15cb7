/* reprshift extract: run a model over texts or token ids and save hook activations. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "store/act_file.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/hf_cache.h"
#include "reprshift/manifest.h"
#include "reprshift/paligemma.h"
#include "reprshift/tokenizer.h"

static const char USAGE[] =
    "usage: reprshift extract --model MODEL --hook H[,H...] INPUT... --out FILE.safetensors [options]\n"
    "\n"
    "Run a Gemma-2 or PaliGemma-2 checkpoint (Hugging Face folder: config.json + safetensors)\n"
    "and save the activations at the named hooks: one f32 tensor per hook, named by the hook.\n"
    "MODEL is a folder or a Hub name (google/gemma-2-2b) found in the local Hugging Face cache\n"
    "(HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub); --revision REV picks a branch, tag\n"
    "or commit of a Hub name (default main).\n"
    "\n"
    "INPUT (Gemma-2: exactly one; PaliGemma: any mix, in the order manifest, images, texts):\n"
    "  --text S           one text (may be repeated)\n"
    "  --texts FILE       one text per line (blank lines are errors)\n"
    "  --ids 2,651,...    one pre-tokenized sequence (for checkpoints without a tokenizer)\n"
    "  --ids-file FILE    one comma/space-separated id sequence per line\n"
    "  --image PATH       PaliGemma: one image (JPEG/PNG; may be repeated)\n"
    "  --manifest FILE    PaliGemma: CSV with columns modality,input,label (modality text|image;\n"
    "                     input = caption, or image path relative to the manifest's folder)\n"
    "\n"
    "options:\n"
    "  --hook H[,H...]    hooks, e.g. blocks.12.hook_resid_post, blocks.3.hook_mlp_out,\n"
    "                     blocks.0.attn.hook_z, ln_final.hook_normalized (TransformerLens names);\n"
    "                     PaliGemma also: vision.hook_embed, vision.blocks.L.{hook_resid_pre,\n"
    "                     hook_attn_out, hook_resid_mid, hook_mlp_out, hook_resid_post},\n"
    "                     vision.ln_post, projector.hook_out\n"
    "  --pool MODE        none (default): [tokens, d] plus token_ids [tokens] and offsets [n+1];\n"
    "                     mean: [n, d], excluding BOS/EOS/pad (and whitespace-only) tokens; last: [n, d] last token\n"
    "  --pool-special     let mean pooling include BOS/EOS/pad and whitespace-only tokens (\"\\n\", \"▁\";\n"
    "                     skipped by default when a tokenizer is loaded; PaliGemma: every token)\n"
    "  --no-bos           do not prepend <bos> when tokenizing text\n"
    "  --tokenizer FILE   tokenizer.json (default: MODEL/tokenizer.json)\n"
    "  --batch-tokens N   tokens per forward batch (default 2048)\n"
    "  --precision P      fp32 (default) or bf16: the decoder computes like transformers run in\n"
    "                     bfloat16 (every activation rounded to bf16 where torch rounds it;\n"
    "                     docs/precision.md); the file records \"precision\": \"bf16\". PaliGemma:\n"
    "                     the vision tower, projector and decoder, as transformers in bfloat16\n"
    "\n"
    "PaliGemma image inputs are <image>xN, <bos>, PROMPT, \"\\n\" (the processor's format) with\n"
    "prefix-LM attention; text inputs (--text, manifest text rows) run through the decoder\n"
    "alone, causally, as <bos> + text: a different input distribution from image + prompt.\n"
    "  --prompt S         prompt after the image (default \"caption en\"; \"\" for none)\n"
    "  --image-processor P  which transformers SigLIP image processor to reproduce exactly:\n"
    "                     pil (default; SiglipImageProcessorPil) or torchvision\n"
    "                     (SiglipImageProcessor, the torchvision backend transformers picks\n"
    "                     when torchvision is installed); see docs/images.md\n"
    "  --prompt-ids IDS   the prompt as token ids, for checkpoints without a tokenizer (the\n"
    "                     \"\\n\" separator, id 108, is appended)\n"
    "  --suffix TEXT      a caption read as the suffix after an image + prompt (the processor's\n"
    "                     suffix: TEXT as is, not stripped, + <eos>; causal attention); one per\n"
    "                     --image, given in the same order (repeat it)\n"
    "  --suffix-ids IDS   a suffix as token ids (<eos> is appended); counts as one --suffix\n"
    "  A manifest's optional \"suffix\" column does the same for its image rows.\n"
    "PaliGemma outputs: token_kind U8 [tokens] (0 text, 1 image, 2 bos, 3 prompt, 4 sep \"\\n\",\n"
    "5 suffix, 6 eos/pad) and vision_offsets I64 [n+1]. vision.*/projector.* tensors have N rows\n"
    "per image input (pool none) or one row per input (pool mean; NaN for text inputs). With\n"
    "--pool mean each decoder hook H gives H (the input's own content: its image tokens, or a\n"
    "text input's text tokens), H@image (image tokens) and H@text (prompt / text tokens), and\n"
    "H@suffix (suffix tokens) when some input has a suffix; BOS, \"\\n\", EOS and pad are never\n"
    "averaged; NaN rows where an input has no such tokens.\n"
    "\n"
    "Writes FILE.safetensors and FILE.safetensors.rows.jsonl (one line per input: its rows and\n"
    "text). Both are written atomically: on any error nothing is left behind. Inputs are\n"
    "numbered from 0, in rows.jsonl (\"input\") and in error messages alike.\n";

typedef struct {
    const char *model, *hooks, *texts_file, *ids, *ids_file, *tokenizer, *out;
    const char *model_name, *revision; /* as given (folder or Hub name); model is the resolved folder */
    const char **texts, **images;
    const char *prompt, *prompt_ids, *manifest;
    struct { const char *s; int is_ids; } *suffixes; /* --suffix / --suffix-ids, in order: one per --image */
    int n_texts, n_images, no_bos, pool_special, n_suffixes;
    rs_pool pool;
    long batch_tokens;
    rs_image_processor image_processor; /* PaliGemma images (default PIL) */
    rs_precision precision;             /* the decoder's (--precision; fp32 default) */
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

/* ---- PaliGemma ---- */

typedef struct {
    const paligemma_model *m;
    rs_tokenizer *tok;
    int32_t *prompt;      /* prompt + "\n" tokens */
    size_t n_prompt;
    int no_bos;
    pg_inputs in;
} pg_ctx;

/* Suffix ids of one image input: a caption, tokenized as PaliGemmaProcessor(suffix=...)
 * does (paligemma_suffix_ids), or an id list; both end in <eos>. */
static int pg_suffix(pg_ctx *c, const char *s, int is_ids, int32_t **ids, size_t *n, rs_err *err) {
    *ids = NULL;
    *n = 0;
    if (is_ids) {
        int64_t k;
        if (rs_parse_ids(s, ids, &k, err)) return rs_err_prefix(err, "--suffix-ids");
        int32_t *p = realloc(*ids, (size_t)(k + 1) * sizeof *p);
        if (!p) { free(*ids); *ids = NULL; return rs_errk(err, RS_ENOMEM, "out of memory"); }
        *ids = p;
        (*ids)[k] = c->m->cfg.text.eos_id;
        *n = (size_t)k + 1;
        return 0;
    }
    if (!s[0]) return rs_errf(err, "empty suffix: a suffix is a caption (leave it out for image + prompt alone)");
    return paligemma_suffix_ids(c->m, c->tok, s, strlen(s), ids, n, err);
}

/* One image input: <image>s, <bos>, prompt + "\n", then the suffix if sfx is non-NULL. */
static int pg_add_image(pg_ctx *c, const char *path, const char *prompt_text, const char *label, const char *sfx,
                        int sfx_is_ids, rs_err *err) {
    int32_t *sids = NULL;
    size_t ns = 0;
    if (sfx && pg_suffix(c, sfx, sfx_is_ids, &sids, &ns, err)) return -1;
    int rc = pg_inputs_add_image(&c->in, c->m, path, c->prompt, c->n_prompt, sids, ns, prompt_text, label,
                                 sfx && !sfx_is_ids ? sfx : NULL, err);
    free(sids);
    return rc;
}

static int pg_add_ids(pg_ctx *c, const int32_t *ids, int64_t n, const char *text, const char *label, rs_err *err) {
    return pg_inputs_add_text(&c->in, c->m, ids, n, text, label, err);
}

static int pg_add_text(pg_ctx *c, const char *text, const char *label, rs_err *err) {
    int32_t *ids;
    size_t n;
    if (!text[0]) return rs_errf(err, "empty text input");
    if (tok_encode(c->tok, text, strlen(text), !c->no_bos, &ids, &n, err)) return -1;
    int rc = n ? pg_add_ids(c, ids, (int64_t)n, text, label, err) : rs_errf(err, "text \"%.40s\" gives no tokens", text);
    free(ids);
    return rc;
}

static int pg_lines(pg_ctx *c, const char *path, int as_ids, rs_err *err) {
    char *buf;
    size_t n;
    if (rs_read_file(path, (size_t)1 << 31, &buf, &n, err)) return -1;
    int lineno = 0, rc = 0, before = c->in.n;
    for (char *line = buf; line && *line && !rc;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        lineno++;
        size_t L = strlen(line);
        if (L && line[L - 1] == '\r') line[--L] = '\0';
        if (L == 0) { rc = rs_errf(err, "%s:%d: empty line (every line must hold one input)", path, lineno); break; }
        if (as_ids) {
            int32_t *ids;
            int64_t ni;
            rc = rs_parse_ids(line, &ids, &ni, err);
            if (!rc) { rc = pg_add_ids(c, ids, ni, NULL, NULL, err); free(ids); }
        } else {
            rc = pg_add_text(c, line, NULL, err);
        }
        if (rc) rs_err_prefix(err, "%s:%d", path, lineno);
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (!rc && c->in.n == before) rc = rs_errf(err, "%s: no inputs in file", path);
    return rc;
}

static int run_paligemma(const extract_args *a, rs_err *err) {
    pg_ctx c = {.no_bos = a->no_bos};
    paligemma_model *m = NULL;
    hook_request *hooks = NULL;
    rs_manifest *man = NULL;
    pg_extract_result res = {0};
    int n_hooks = 0, rc = -1;
    if (a->n_suffixes && a->n_suffixes != a->n_images) {
        rs_errf(err, !a->n_images ? "--suffix needs --image: a suffix (caption) follows an image + prompt prefix; "
                                    "text-only inputs take none"
                : a->n_suffixes > a->n_images ? "more --suffix/--suffix-ids (%d) than --image (%d): give one suffix "
                                                "per image, in the same order"
                                              : "fewer --suffix/--suffix-ids (%d) than --image (%d): give one suffix "
                                                "per image, in the same order (or none)",
                a->n_suffixes, a->n_images);
        goto done;
    }
    if (paligemma_open(&m, a->model, err)) {
        if (a->n_suffixes) rs_err_prefix(err, "--suffix needs a PaliGemma checkpoint with its image tower");
        goto done;
    }
    c.m = m;
    paligemma_set_backend(m, rs_backend_for(a->precision)); /* tower, projector and decoder */
    /* hooks */
    {
        char *list = strdup(a->hooks);
        hooks = calloc(strlen(a->hooks) / 2 + 2, sizeof *hooks);
        if (!list || !hooks) { free(list); rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        for (char *save = NULL, *h = strtok_r(list, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
            if (paligemma_hook_parse(m, h, &hooks[n_hooks], err)) { free(list); goto done; }
            for (int j = 0; j < n_hooks; j++)
                if (!strcmp(hooks[j].name, hooks[n_hooks].name)) {
                    rs_errf(err, "hook \"%s\" requested twice", h);
                    free(list);
                    goto done;
                }
            n_hooks++;
        }
        free(list);
        if (!n_hooks) { rs_errf(err, "--hook lists no hooks"); goto done; }
    }
    if (a->manifest && rs_manifest_load(a->manifest, &man, err)) goto done;
    int has_images = a->n_images > 0, has_texts = a->n_texts > 0 || a->texts_file, has_text_suffix = 0;
    int scol = man ? rs_manifest_extra_col(man, "suffix") : -1;
    for (size_t i = 0; man && i < man->n_rows; i++) {
        const rs_manifest_row *row = &man->rows[i];
        int sfx = scol >= 0 && row->extra[scol][0];
        if (row->modality == RS_MODALITY_IMAGE) has_images = 1;
        else has_texts = 1;
        if (sfx && row->modality != RS_MODALITY_IMAGE) {
            rs_errf(err, "%s:%zu: a text row has a suffix; the suffix column is for image rows (a caption after the "
                         "image + prompt)", a->manifest, row->line);
            goto done;
        }
        has_text_suffix |= sfx;
    }
    for (int i = 0; i < a->n_suffixes; i++) has_text_suffix |= !a->suffixes[i].is_ids;
    /* tokenizer: for text inputs and text suffixes, and for the prompt unless given as ids */
    if (has_texts || has_text_suffix || (has_images && !a->prompt_ids)) {
        char *tp = a->tokenizer ? strdup(a->tokenizer) : rs_path_join(a->model, "tokenizer.json");
        if (!tp) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        if (!a->tokenizer && !rs_path_exists(tp)) {
            rs_errf(err, "%s has no tokenizer.json: pass --tokenizer FILE, or give the prompt as --prompt-ids%s and "
                         "texts as --ids/--ids-file", a->model, has_text_suffix ? ", suffixes as --suffix-ids" : "");
            free(tp);
            goto done;
        }
        int r = tok_load(&c.tok, tp, err);
        free(tp);
        if (r) goto done;
        if (tok_id(c.tok, "<image>") < 0 && tok_add_paligemma_tokens(c.tok, err)) goto done;
    }
    /* the prompt: tokens of prompt + "\n" (one segment, no BOS), as the processor does */
    if (a->prompt_ids) {
        int32_t *given;
        int64_t n;
        if (rs_parse_ids(a->prompt_ids, &given, &n, err)) { rs_err_prefix(err, "--prompt-ids"); goto done; }
        int r = pg_prompt_ids(&m->cfg, c.tok, NULL, given, (size_t)n, &c.prompt, &c.n_prompt, err);
        free(given);
        if (r) { rs_err_prefix(err, "--prompt-ids"); goto done; }
    } else if (c.tok && pg_prompt_ids(&m->cfg, c.tok, a->prompt, NULL, 0, &c.prompt, &c.n_prompt, err)) {
        rs_err_prefix(err, "--prompt");
        goto done;
    }
    const char *ptext = a->prompt_ids ? NULL : a->prompt;
    /* inputs: manifest rows, then --image, then texts and ids */
    if (man) {
        size_t missing;
        if (rs_manifest_check_images(man, &missing, err)) goto done;
        for (size_t i = 0; i < man->n_rows; i++) {
            const rs_manifest_row *row = &man->rows[i];
            const char *sfx = scol >= 0 && row->extra[scol][0] ? row->extra[scol] : NULL;
            int r = row->modality == RS_MODALITY_IMAGE ? pg_add_image(&c, row->path, ptext, row->label, sfx, 0, err)
                                                        : pg_add_text(&c, row->input, row->label, err);
            if (r) { rs_err_prefix(err, "%s:%zu", a->manifest, row->line); goto done; }
        }
    }
    for (int i = 0; i < a->n_images; i++) {
        if (!rs_path_exists(a->images[i]) || rs_is_dir(a->images[i])) {
            rs_errf(err, "%s: image file not found", a->images[i]);
            goto done;
        }
        if (pg_add_image(&c, a->images[i], ptext, NULL, a->n_suffixes ? a->suffixes[i].s : NULL,
                         a->n_suffixes ? a->suffixes[i].is_ids : 0, err)) {
            if (a->n_suffixes) rs_err_prefix(err, "input %d (%s)", c.in.n, a->images[i]);
            goto done;
        }
    }
    for (int i = 0; i < a->n_texts; i++)
        if (pg_add_text(&c, a->texts[i], NULL, err)) { rs_err_prefix(err, "--text %d", i + 1); goto done; }
    if (a->texts_file && pg_lines(&c, a->texts_file, 0, err)) goto done;
    if (a->ids_file && pg_lines(&c, a->ids_file, 1, err)) goto done;
    if (a->ids) {
        int32_t *ids;
        int64_t n;
        if (rs_parse_ids(a->ids, &ids, &n, err)) { rs_err_prefix(err, "--ids"); goto done; }
        int r = pg_add_ids(&c, ids, n, NULL, NULL, err);
        free(ids);
        if (r) goto done;
    }
    extract_opts o = {.n_hooks = n_hooks, .hooks = hooks, .pool = a->pool, .pool_special = a->pool_special,
                      .batch_tokens = a->batch_tokens, .image_processor = a->image_processor, .blank_tok = c.tok};
    rs_progress prog;
    if (extract_paligemma(m, &c.in, &o, &res, &prog, err)) goto done;
    char special[48];
    rs_special_ids_format(&m->cfg.text, special, sizeof special);
    const char *meta[] = {"model", a->model_name, "hooks", a->hooks, "prompt", ptext ? ptext : a->prompt_ids,
                          "bos", a->no_bos ? "no" : "yes", "special_token_ids", special, "image_processor",
                          rs_image_processor_name(a->image_processor), "image_processor_class",
                          rs_image_processor_class(a->image_processor), NULL, NULL, NULL};
    if (a->precision == RS_PREC_BF16) { /* fp32 files keep their metadata unchanged */
        meta[14] = "precision";
        meta[15] = "bf16";
    }
    if (extract_paligemma_save(&res, &c.in, a->out, meta, err)) goto done;
    fprintf(stderr, "wrote %s: %d tensor(s), %lld input(s), %lld token(s)\n", a->out, res.n_tensors,
            (long long)res.n_inputs, (long long)res.offsets[res.n_inputs]);
    rc = 0;
done:
    pg_extract_result_free(&res);
    if (hooks) hook_requests_free(hooks, n_hooks);
    free(hooks);
    rs_manifest_free(man);
    pg_inputs_free(&c.in);
    free(c.prompt);
    tok_free(c.tok);
    paligemma_close(m);
    return rc ? 1 : 0;
}

int cmd_extract(int argc, char **argv) {
    extract_args a = {.pool = POOL_NONE, .batch_tokens = 2048};
    a.texts = calloc((size_t)argc, sizeof *a.texts);
    a.images = calloc((size_t)argc, sizeof *a.images);
    a.suffixes = calloc((size_t)argc, sizeof *a.suffixes);
    a.prompt = "caption en";
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"hook", required_argument, 0, 'k'},
        {"text", required_argument, 0, 't'},      {"texts", required_argument, 0, 'T'},
        {"ids", required_argument, 0, 'i'},       {"ids-file", required_argument, 0, 'I'},
        {"tokenizer", required_argument, 0, 'z'}, {"pool", required_argument, 0, 'p'},
        {"pool-special", no_argument, 0, 'S'},    {"no-bos", no_argument, 0, 'B'},
        {"batch-tokens", required_argument, 0, 'b'}, {"out", required_argument, 0, 'o'},
        {"image", required_argument, 0, 'g'},     {"prompt", required_argument, 0, 'P'},
        {"prompt-ids", required_argument, 0, 'Q'}, {"manifest", required_argument, 0, 'M'},
        {"revision", required_argument, 0, 'R'},  {"suffix", required_argument, 0, 'X'},
        {"suffix-ids", required_argument, 0, 'Y'},  {"help", no_argument, 0, 'h'},
        {"image-processor", required_argument, 0, 'G'},
        {"precision", required_argument, 0, 'E'},
        {0, 0, 0, 0}};
    int c, status = 1;
    char *model_dir = NULL;
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
                free(a.images); free(a.suffixes);
                return 2;
            }
            break;
        case 'S': a.pool_special = 1; break;
        case 'B': a.no_bos = 1; break;
        case 'b':
            if (cli_parse_long("extract", "--batch-tokens", optarg, 1, 1L << 24, &a.batch_tokens)) {
                free(a.texts);
                free(a.images); free(a.suffixes);
                return 2;
            }
            break;
        case 'o': a.out = optarg; break;
        case 'g': a.images[a.n_images++] = optarg; break;
        case 'P': a.prompt = optarg; break;
        case 'Q': a.prompt_ids = optarg; break;
        case 'M': a.manifest = optarg; break;
        case 'R': a.revision = optarg; break;
        case 'G':
            if (rs_image_processor_parse(optarg, &a.image_processor)) {
                fprintf(stderr, "reprshift extract: --image-processor must be pil or torchvision (got \"%s\")\n",
                        optarg);
                free(a.texts);
                free(a.images);
                free(a.suffixes);
                return 2;
            }
            break;
        case 'E':
            if (rs_precision_parse(optarg, &a.precision)) {
                fprintf(stderr, "reprshift extract: --precision must be fp32 or bf16 (got \"%s\")\n", optarg);
                free(a.texts);
                free(a.images);
                free(a.suffixes);
                return 2;
            }
            break;
        case 'X':
        case 'Y':
            a.suffixes[a.n_suffixes].s = optarg;
            a.suffixes[a.n_suffixes++].is_ids = c == 'Y';
            break;
        case 'h': fputs(USAGE, stdout); free(a.texts); free(a.images); free(a.suffixes); return 0;
        default: fputs(USAGE, stderr); free(a.texts); free(a.images); free(a.suffixes); return 2;
        }
    }
    int n_sources = (a.n_texts > 0) + !!a.texts_file + !!a.ids + !!a.ids_file;
    int n_vl = (a.n_images > 0) + !!a.manifest;
    if (optind != argc || !a.model || !a.hooks || !a.out || n_sources + n_vl < 1 || a.batch_tokens < 1) {
        fprintf(stderr, "reprshift extract: %s\n%s",
                optind != argc ? "unexpected argument" :
                !a.model ? "--model is required" : !a.hooks ? "--hook is required" : !a.out ? "--out is required" :
                a.batch_tokens < 1 ? "--batch-tokens must be >= 1" :
                "give an input: --text, --texts, --ids, --ids-file (or --image, --manifest for PaliGemma)", USAGE);
        free(a.texts);
        free(a.images); free(a.suffixes);
        return 2;
    }
    rs_err err = {0};
    gemma2_model *m = NULL;
    rs_tokenizer *tok = NULL;
    rs_inputs in = {0};
    hook_request *hooks = NULL;
    extract_result res = {0};
    int n_hooks = 0;
    rs_model_type type;
    a.model_name = a.model;
    if (rs_hf_resolve_model(a.model_name, a.revision, &model_dir, &err)) goto done;
    a.model = model_dir;
    if (model_config_type(a.model, &type, &err)) goto done;
    if (type == RS_MODEL_PALIGEMMA) {
        status = run_paligemma(&a, &err);
        goto done;
    }
    if (n_vl || a.prompt_ids || a.n_suffixes) {
        rs_errf(&err, "%s is a Gemma-2 checkpoint: --image, --manifest, --prompt-ids and --suffix need PaliGemma", a.model);
        goto done;
    }
    if (n_sources != 1) {
        fprintf(stderr, "reprshift extract: give exactly one of --text, --texts, --ids, --ids-file\n%s", USAGE);
        free(a.texts);
        free(a.images); free(a.suffixes);
        return 2;
    }
    if (gemma2_open(&m, a.model, &err)) goto done;
    m->be = rs_backend_for(a.precision);
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
                      .batch_tokens = a.batch_tokens, .blank_tok = tok};
    rs_progress prog;
    if (extract_gemma2(m, &in, &o, &res, &prog, &err)) goto done;
    char special[48];
    rs_special_ids_format(&m->cfg, special, sizeof special);
    const char *meta[] = {"model", a.model_name, "hooks", a.hooks, "bos", a.no_bos ? "no" : "yes",
                          "special_token_ids", special, NULL, NULL, NULL};
    if (a.precision == RS_PREC_BF16) { /* fp32 files keep their metadata unchanged */
        meta[8] = "precision";
        meta[9] = "bf16";
    }
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
    free(model_dir);
    free(a.texts);
    free(a.images); free(a.suffixes);
    return status;
}
