/* Activation extraction: run a model over many inputs in token-bounded batches, capture
 * the requested hooks and pool per input. Writing the results to files (one f32 tensor per
 * hook, named exactly by the hook name, with a JSON-lines row index) is
 * src/store/act_file.h. */
#ifndef REPRSHIFT_EXTRACT_H
#define REPRSHIFT_EXTRACT_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/gemma2.h"
#include "reprshift/image.h"
#include "reprshift/paligemma.h"
#include "reprshift/progress.h"

typedef enum { POOL_NONE, POOL_MEAN, POOL_LAST } rs_pool;

/* Token sequences to run; texts are optional (used for the row index). */
typedef struct {
    int n;
    int32_t **ids;     /* [n] owned arrays */
    int64_t *lens;     /* [n] */
    char **texts;      /* [n] owned strings or NULL entries; array may be NULL */
} rs_inputs;

typedef struct {
    int n_hooks;
    hook_request *hooks;      /* parsed requests; outputs are collected into the result */
    rs_pool pool;
    int pool_special;         /* 1: mean pooling also averages BOS/EOS/pad (and whitespace-only) tokens */
    const struct rs_tokenizer *blank_tok; /* if set (and not pool_special), mean pooling of text also skips
                                             whitespace-only pieces ("\n", "▁", ...): tok_is_blank */
    int64_t batch_tokens;     /* max tokens per forward call */
    int vision_mean;          /* PaliGemma, pool last: vision.* / projector.* hooks are mean-pooled over the
                                 patches instead of being an error (the pipeline's image stores) */
    /* PaliGemma only, optional: decodes input `input`'s image (path = its image_path) into
     * img instead of rs_image_load, e.g. to apply edits in memory. NULL: decode the file.
     * With image_threads > 1 it is called from several threads at once. */
    int (*load_image)(void *ctx, int input, const char *path, rs_image *img, rs_err *err);
    void *load_image_ctx;
    /* PaliGemma only: threads that decode, edit and preprocess the images of a batch, one
     * image each (0 or 1: one); the pixels do not depend on it */
    int image_threads;
    /* PaliGemma only: which transformers SigLIP image processor to reproduce (0 = PIL). */
    rs_image_processor image_processor;
} extract_opts;

typedef struct {
    int n_hooks;
    char (*names)[96];
    int *widths;
    float **data;             /* per hook [rows, width] */
    int64_t rows;             /* tokens (pool none) or inputs (pooled) */
    int64_t n_inputs;
    int32_t *token_ids;       /* [tokens] (all tokens, even when pooled) */
    int64_t *offsets;         /* [n_inputs + 1] token offsets of each input */
    rs_pool pool;
} extract_result;

/* Free arrays owned by an rs_inputs. */
void rs_inputs_free(rs_inputs *in);
/* Append one sequence (ids copied, text copied if non-NULL). */
int rs_inputs_add(rs_inputs *in, const int32_t *ids, int64_t len, const char *text, rs_err *err);
/* Parse "2,651,18" (commas and/or spaces) into a new id array. */
int rs_parse_ids(const char *s, int32_t **ids, int64_t *len, rs_err *err);

/* The model's special tokens as extract writes them to an activations file's metadata
 * (key "special_token_ids"): "<bos>,<eos>,<pad>" from config.json. `sae fit` and `shift`
 * read them back from there. */
#define RS_GEMMA_SPECIAL_IDS "2,1,0" /* Gemma's <bos>, <eos>, <pad>: files written before the key */
void rs_special_ids_format(const gemma2_config *c, char *buf, size_t n);
/* Parse that value (NULL: RS_GEMMA_SPECIAL_IDS) into ids[3]; a malformed value is RS_EFORMAT. */
int rs_special_ids_parse(const char *s, int32_t ids[3], rs_err *err);

/* Run a Gemma-2 model over all inputs. */
int extract_gemma2(const gemma2_model *m, const rs_inputs *in, const extract_opts *o, extract_result *r,
                   rs_progress *prog, rs_err *err);
/* Free a result. */
void extract_result_free(extract_result *r);
/* Name of a pooling mode ("none", "mean", "last"); parse returns -1 if unknown. */
const char *rs_pool_name(rs_pool p);
int rs_pool_parse(const char *s, rs_pool *out);

/* ---- PaliGemma: image inputs (image tokens + <bos> + prompt + "\n") and text-only inputs ---- */

/* Inputs for PaliGemma; an entry with image_path runs its image through the tower. */
typedef struct {
    int n;
    int32_t **ids;       /* [n] full token sequences (<image> tokens included) */
    int64_t *lens;
    uint8_t **kinds;     /* [n] pg_token_kind per token */
    int *prefix_len;     /* [n] 0 for text-only inputs (plain causal) */
    char **image_paths;  /* [n] NULL for text-only inputs */
    char **texts;        /* [n] caption / prompt (row index), may be NULL */
    char **labels;       /* [n] label (row index), may be NULL */
    char **suffixes;     /* [n] suffix caption text (row index), NULL entries if none or given as ids */
} pg_inputs;

/* One saved tensor of a PaliGemma extraction. */
typedef struct {
    char name[112];      /* hook name, or "<hook>@image" / "<hook>@text" for pooled variants */
    int width;
    int64_t rows;
    float *data;         /* [rows, width] */
} pg_tensor;

typedef struct {
    int n_tensors;
    pg_tensor *t;
    int64_t n_inputs;
    int32_t *token_ids;      /* [tokens] */
    uint8_t *token_kind;     /* [tokens] pg_token_kind */
    int64_t *offsets;        /* [n_inputs + 1] decoder token offsets */
    int64_t *vision_offsets; /* [n_inputs + 1] rows of the unpooled vision tensors (N per image input) */
    rs_pool pool;
} pg_extract_result;

/* Free a pg_inputs. */
void pg_inputs_free(pg_inputs *in);
/* Append one input (arrays and strings copied; image_path/text/label may be NULL). */
int pg_inputs_add(pg_inputs *in, const int32_t *ids, const uint8_t *kinds, int64_t len, int prefix_len,
                  const char *image_path, const char *text, const char *label, rs_err *err);
/* Record the suffix caption of input i (copied) for the row index. */
int pg_inputs_set_suffix(pg_inputs *in, int i, const char *suffix, rs_err *err);

/* The prompt segment PaliGemmaProcessor builds: the tokens of prompt + "\n" encoded as one
 * segment (no <bos>) by tok; or, when given is non-NULL, those n_given ids followed by the
 * "\n" token (tok's encoding of "\n"; with tok NULL, Gemma's id 108). Every id must be a
 * text token of the model (inside the vocabulary, not <image>). New array (caller frees). */
int pg_prompt_ids(const paligemma_config *c, const rs_tokenizer *tok, const char *prompt, const int32_t *given,
                  size_t n_given, int32_t **ids, size_t *n, rs_err *err);
/* The one way an image input is built: <image>×N, <bos>, the prompt segment (from
 * pg_prompt_ids), then the suffix ids if any (normally ending in <eos>), with the token kinds
 * and the prefix length (paligemma_build_input); appended to in with its image path, prompt
 * text, label and suffix text (each may be NULL). */
int pg_inputs_add_image(pg_inputs *in, const paligemma_model *m, const char *image_path, const int32_t *prompt,
                        size_t n_prompt, const int32_t *suffix, size_t n_suffix, const char *text, const char *label,
                        const char *suffix_text, rs_err *err);
/* A text-only input (plain causal; kinds from paligemma_text_kinds). The <image> token is
 * refused: image inputs come from pg_inputs_add_image. */
int pg_inputs_add_text(pg_inputs *in, const paligemma_model *m, const int32_t *ids, int64_t n, const char *text,
                       const char *label, rs_err *err);

/* Run PaliGemma over all inputs (images decoded and preprocessed a batch at a time).
 * Output tensors, for each hook H:
 *   pool none: H [tokens, d] for decoder hooks; H [image inputs × N, d] for vision.* /
 *              projector.* hooks (rows of input i: vision_offsets[i]..[i+1]).
 *   pool mean: H [n, d] = mean over the input's content tokens (image tokens of an image
 *              input, text tokens of a text-only input; never BOS, "\n", EOS, pad unless
 *              pool_special, which averages every token); H@image and H@text [n, d] = mean
 *              over image tokens / prompt or text tokens (NaN rows where an input has none);
 *              when some input has a suffix, also H@suffix [n, d] = mean over its suffix
 *              (caption) tokens, the closing <eos> excluded (NaN rows for inputs without).
 *              Vision hooks: H [n, d] mean over the patches (NaN rows for text inputs).
 *   pool last: decoder hooks only, H [n, d] = last token (the "\n" of an image input, the
 *              <eos> of one with a suffix); with vision_mean, vision hooks are mean-pooled
 *              as for pool mean. */
int extract_paligemma(const paligemma_model *m, const pg_inputs *in, const extract_opts *o, pg_extract_result *r,
                      rs_progress *prog, rs_err *err);
/* Free a result. */
void pg_extract_result_free(pg_extract_result *r);

#endif
