/* What `reprshift intervene` and `reprshift lens` share: opening a Gemma-2 or PaliGemma
 * model (the decoder they run), building one input (text or ids; with PaliGemma, an image +
 * prompt prefix with the text as its continuation) as decoder rows, and token strings. */
#ifndef RS_CLI_IV_INPUT_H
#define RS_CLI_IV_INPUT_H

#include <stdint.h>
#include "reprshift/gemma2.h"
#include "reprshift/generate.h"
#include "reprshift/intervene.h"
#include "reprshift/model_config.h"
#include "reprshift/paligemma.h"
#include "reprshift/tokenizer.h"

typedef struct {
    rs_model_type type;
    gemma2_model *g;
    paligemma_model *pg;
    const gemma2_model *dec;  /* the decoder the interventions run on */
    int pos_offset;           /* 0 Gemma-2, 1 PaliGemma */
    rs_tokenizer *tok;        /* NULL when the model has none and none was given */
    char *dir;
} iv_model;

/* The options `intervene` and `lens` share: the model and one input. IV_INPUT_LONG_OPTIONS
 * are their getopt_long entries (letters m R z t i I p); iv_input_opt stores the value of one
 * of them (1) or says it is not one of them (0). */
typedef struct {
    const char *model, *revision, *tokenizer, *text, *ids, *image, *prompt;
} iv_input_opts;
#define IV_INPUT_LONG_OPTIONS                                                        \
    {"model", required_argument, 0, 'm'}, {"revision", required_argument, 0, 'R'},   \
        {"tokenizer", required_argument, 0, 'z'}, {"text", required_argument, 0, 't'}, \
        {"ids", required_argument, 0, 'i'}, {"image", required_argument, 0, 'I'},     \
        {"prompt", required_argument, 0, 'p'}
int iv_input_opt(iv_input_opts *o, int c, const char *arg);
/* 1 when a model and one input are given: --text or --ids, or --image (with --text as its
 * continuation, not with --ids). */
int iv_input_opts_ok(const iv_input_opts *o);

/* Open MODEL (folder or Hub name) and its tokenizer (tokp, else MODEL/tokenizer.json if present). */
int iv_model_open(iv_model *m, const char *model, const char *revision, const char *tokp, rs_err *err);
void iv_model_close(iv_model *m);

typedef struct {
    int32_t *ids;
    int64_t len;
    float *embeds;     /* [len, D] image rows (PaliGemma with an image), else NULL */
    uint8_t *mask;     /* [len] 1 = image row */
    int prefix_len;
    int n_image;       /* image-token rows */
    float *pixels;     /* with an image: its pixel values [3, S, S] (for generation) */
    int32_t *prompt_ids; /* with an image: the ids of prompt + "\n" (gen_paligemma's prompt) */
    int n_prompt;
    int n_text;        /* with an image: the continuation's tokens after the prefix */
} iv_in;

/* One input: text (tokenized with <bos>) or ids (comma-separated, as given); with image
 * (PaliGemma only): <image>×N <bos> prompt "\n" then the text's tokens without <bos>. */
int iv_build(iv_model *m, const char *image, const char *prompt, const char *text, const char *ids, iv_in *out,
             rs_err *err);
void iv_in_free(iv_in *in);
rs_iv_input iv_view(const iv_in *in);

/* The interventions of --spec (specs[n_specs], in order) then --specs-file FILE (one spec a
 * line; blank lines and lines starting with # skipped; NULL: none), parsed and resolved
 * against the decoder dec: new iv[*n] (free with iv_specs_free). Shared by `reprshift
 * intervene` and `reprshift generate`. */
int iv_specs_load(const gemma2_model *dec, const char *const *specs, int n_specs, const char *specs_file,
                  rs_intervention **iv, int *n, rs_err *err);
void iv_specs_free(rs_intervention *iv, int n);

/* Steered-generation output (`generate --spec`, `intervene --generate`): print
 * "key": {"ids": [...], "text": TEXT or null, "stop": "eos" | "max_new_tokens"} (JSON) or
 * "  key: TEXT" (text; the ids when text is NULL). */
void iv_print_gen(int json, const char *key, const gen_output *o, const char *text);

/* A token's text (new string; "<id N>" without a tokenizer). */
char *iv_token_text(const iv_model *m, int32_t id);
/* Parse "--targets" (comma-separated strings, each one token with the tokenizer) or
 * "--target-ids" into new ids[*n]. */
int iv_targets(const iv_model *m, const char *strs, const char *ids, int32_t **out, int *n, rs_err *err);
/* Positions "P,P,..." (negative from the end) resolved against T into new pos[*n];
 * NULL spec: def (itself resolved). */
int iv_positions(const char *spec, int def, int T, int **out, int *n, rs_err *err);

#endif
