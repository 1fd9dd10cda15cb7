/* PaliGemma-2 (docs/model-spec.md §4): SigLIP tower → linear projector (+bias) → image
 * features placed at the <image> token positions → Gemma-2 decoder with 1-based positions
 * and prefix-LM attention (bidirectional over image + <bos> + prompt + "\n", causal after).
 * Matches transformers 5.24 (image rows enter the decoder as the projector output itself;
 * old HF's (z/√D)·√D differs by at most 1 ulp). */
#ifndef REPRSHIFT_PALIGEMMA_H
#define REPRSHIFT_PALIGEMMA_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/gemma2.h"
#include "reprshift/hooks.h"
#include "reprshift/model_config.h"
#include "reprshift/safetensors.h"
#include "reprshift/siglip.h"
#include "reprshift/tokenizer.h"

/* What each decoder token is (saved per row as `token_kind`, uint8). */
typedef enum {
    PG_TOK_TEXT = 0,    /* a token of a text-only input (not BOS/EOS/pad) */
    PG_TOK_IMAGE = 1,   /* an <image> token (carries a projected image patch) */
    PG_TOK_BOS = 2,     /* <bos> */
    PG_TOK_PROMPT = 3,  /* prompt text after <bos> (e.g. "caption en") */
    PG_TOK_SEP = 4,     /* the "\n" that ends the prefix */
    PG_TOK_SUFFIX = 5,  /* suffix (caption) tokens after the prefix (causal) */
    PG_TOK_SPECIAL = 6, /* EOS / pad of a text-only input; the <eos> ending a suffix (and any
                           <bos>/<eos>/<pad> id inside a suffix) */
} pg_token_kind;

/* Name of a token kind ("text", "image", "bos", "prompt", "sep", "suffix", "special"). */
const char *pg_token_kind_name(int kind);

typedef struct {
    paligemma_config cfg;
    st_set *st;                 /* owned */
    siglip_model *vision;
    gemma2_model *text;
    const st_tensor *proj_w;    /* multi_modal_projector.linear.weight [D, Dv] */
    float *proj_b;              /* [D] */
    size_t proj_numel;          /* proj_w's numel (its conversion scratch) */
    char vision_prefix[64], text_prefix[64], proj_prefix[64];
    const rs_backend *be;       /* the projector's kernels; paligemma_set_backend sets all three */
} paligemma_model;

/* One packed batch of sequences (no padding). Sequence s covers rows
 * offsets[s]..offsets[s+1]-1; its <image> tokens (image_token_index) take, in order, the
 * N = (S/P)² patch features of its images, which come next in pixel_values. */
typedef struct {
    int n_seqs;
    const int64_t *offsets;     /* [n_seqs+1], offsets[0] = 0 */
    const int32_t *ids;         /* [T], <image> tokens included */
    const int *prefix_len;      /* [n_seqs]: bidirectional prefix length; 0 = plain causal (text-only input) */
    int n_images;               /* images in pixel_values (all sequences together) */
    const float *pixel_values;  /* [n_images, C, S, S] */
    gemma2_kv_cache *cache;     /* optional: handed to the decoder (gemma2_batch.cache) */
} paligemma_batch;

/* Open MODEL_DIR (config.json + safetensors in any of the three tensor-name layouts). */
int paligemma_open(paligemma_model **out, const char *dir, rs_err *err);
/* Free the model and its weights. */
void paligemma_close(paligemma_model *m);
/* Run the tower, projector and decoder on backend be (rs_backend_cpu() after opening). */
void paligemma_set_backend(paligemma_model *m, const rs_backend *be);

/* Parse a hook name of any of the three towers (decoder, vision.*, projector.hook_out; see
 * reprshift/hooks.h). Errors list the valid names. */
int paligemma_hook_parse(const paligemma_model *m, const char *name, hook_request *r, rs_err *err);

/* Build a PaliGemma input: [<image>]×(n_images·N), <bos>, prompt_ids (the tokens of
 * prompt + "\n", the last one being the separator), then suffix ids (may be NULL; as
 * given, e.g. from paligemma_suffix_ids, so normally ending in <eos>). Suffix tokens get
 * kind PG_TOK_SUFFIX, except <bos>/<eos>/<pad> ids (PG_TOK_SPECIAL); a suffix id outside
 * the vocabulary or equal to <image> is an error. Writes new arrays ids/kinds (caller
 * frees) of *len entries and the prefix length (image + <bos> + prompt + "\n": the
 * bidirectional part, token_type_ids 0 in transformers; the suffix is causal). */
int paligemma_build_input(const paligemma_model *m, int n_images, const int32_t *prompt_ids, int n_prompt,
                          const int32_t *suffix_ids, int n_suffix, int32_t **ids, uint8_t **kinds, int64_t *len,
                          int *prefix_len, rs_err *err);
/* The suffix ids PaliGemmaProcessor(images, text, suffix=caption) builds (transformers
 * 5.24): the tokenizer's encoding of caption + "<eos>" as one segment, without <bos>; the
 * caption is not stripped or edited first (leading/trailing spaces and "\n" stay tokens;
 * the tokenizer's own normalizer applies as always). The <eos> must be the model's
 * eos_token_id. New array (caller frees). */
int paligemma_suffix_ids(const paligemma_model *m, const rs_tokenizer *tok, const char *caption, size_t len,
                         int32_t **ids, size_t *n, rs_err *err);

/* The suffix (caption) tokens of a built input (ids/kinds of len tokens, as from
 * paligemma_build_input): their positions in the input (0-based, image tokens included)
 * and ids, in order: every token after the prefix's "\n" (PG_TOK_SEP) except a final
 * <eos> (PG_TOK_SPECIAL), so a literal "<eos>" inside the caption stays in. These are the
 * tokens to align with a Gemma-2 run on "<bos>" + caption (its tokens 1..n; see
 * docs/paligemma.md for when the ids agree). *n = 0 for an input without a suffix (or a
 * text-only input). New arrays (caller frees; NULL when *n is 0). */
int paligemma_suffix_tokens(const int32_t *ids, const uint8_t *kinds, int64_t len, int64_t **pos, int32_t **sids,
                            int64_t *n, rs_err *err);

/* Token kinds of a text-only input (BOS, text, EOS/pad) into kinds[len]. */
void paligemma_text_kinds(const paligemma_model *m, const int32_t *ids, int64_t len, uint8_t *kinds);

/* Run a batch: vision tower + projector for the images, then the decoder (1-based
 * positions, prefix-LM mask). Fills vision.* / projector.* hooks (rows: N per image, in
 * image order) and decoder hooks (rows: all T tokens). If final_hidden is non-NULL the
 * decoder runs to the end and writes the final-norm output [T, D]. The number of <image>
 * tokens must be n_images·N and each sequence's image tokens must lie in its prefix. */
int paligemma_forward(const paligemma_model *m, const paligemma_batch *b, hook_request *hooks, int n_hooks,
                      float *final_hidden, rs_err *err);

#endif
