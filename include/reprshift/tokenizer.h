/* Gemma tokenizer read directly from a Hugging Face tokenizer.json (BPE model with byte
 * fallback, added/special tokens, Replace/Prepend normalizer, TemplateProcessing post-
 * processor, Replace/ByteFallback/Fuse/Strip decoder), matching the Rust `tokenizers`
 * library id for id (see docs/tokenizer.md for the algorithm and the parity measured).
 *
 * A loaded tokenizer is read-only during tok_encode/tok_decode, so several threads may
 * encode with one handle; tok_add_tokens must not run concurrently with anything else. */
#ifndef REPRSHIFT_TOKENIZER_H
#define REPRSHIFT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/error.h"

typedef struct rs_tokenizer rs_tokenizer;

/* Matching options of an added token, with the meaning they have in `tokenizers`. */
typedef struct {
    int special;     /* dropped by tok_decode_ex(skip_special = 1) */
    int normalized;  /* matched in the normalized text (spaces already "▁") rather than the raw text */
    int lstrip;      /* the match swallows whitespace on its left */
    int rstrip;      /* the match swallows whitespace on its right */
    int single_word; /* match only when not glued to word characters */
} tok_added_flags;

/* Load tokenizer.json (model type BPE); errors name the file and the offending field. */
int tok_load(rs_tokenizer **out, const char *tokenizer_json_path, rs_err *err);

/* Free a tokenizer (NULL is fine). */
void tok_free(rs_tokenizer *tok);

/* Encode len bytes of UTF-8 text into new ids (caller frees *ids; *ids may be NULL when *n
 * is 0); add_bos applies the post-processor template (Gemma: prepend <bos>). */
int tok_encode(const rs_tokenizer *tok, const char *text, size_t len, int add_bos, int32_t **ids,
               size_t *n, rs_err *err);

/* Decode ids into a new NUL-terminated UTF-8 string (caller frees), keeping special tokens. */
int tok_decode(const rs_tokenizer *tok, const int32_t *ids, size_t n, char **out, rs_err *err);

/* tok_decode, optionally dropping special tokens (as HF decode(skip_special_tokens=True));
 * *out_len (if non-NULL) gets the byte length, which may include NUL bytes. */
int tok_decode_ex(const rs_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                  char **out, size_t *out_len, rs_err *err);

/* The piece (token string) of an id, or NULL if no token has that id. */
const char *tok_piece(const rs_tokenizer *tok, int32_t id);

/* The id of a piece (added tokens first, then the model vocab), or -1 if absent. */
int32_t tok_id(const rs_tokenizer *tok, const char *piece);

/* Number of ids: one past the largest id (model vocab plus added tokens). */
size_t tok_vocab_size(const rs_tokenizer *tok);

/* Special ids (-1 when the tokenizer has none): <bos>, <eos>, <pad>, and the model's unk. */
int32_t tok_bos_id(const rs_tokenizer *tok);
int32_t tok_eos_id(const rs_tokenizer *tok);
int32_t tok_pad_id(const rs_tokenizer *tok);
int32_t tok_unk_id(const rs_tokenizer *tok);

/* 1 when the piece of id is whitespace only ("▁", "\n", "▁▁", <0x0A>, ...), else 0. */
int tok_is_blank(const rs_tokenizer *tok, int32_t id);
/* 1 for the ids that pooling and the shift metrics leave out by default: <bos>, <eos>,
 * <pad> and whitespace-only pieces (docs/metrics.md, "Excluded tokens"). */
int tok_is_excluded(const rs_tokenizer *tok, int32_t id);

/* Add n tokens matched atomically in text, like tokenizers' add_tokens (special = 0,
 * normalized) or add_special_tokens (special = 1, not normalized): a piece already known
 * keeps its id, a new one gets the next free id; *n_added (if non-NULL) counts the tokens
 * not ignored (empty or already added with the same flags). */
int tok_add_tokens(rs_tokenizer *tok, const char *const *pieces, size_t n, int special,
                   size_t *n_added, rs_err *err);

/* Add one token with explicit flags; *id_out (if non-NULL) gets its id. */
int tok_add_token_ex(rs_tokenizer *tok, const char *piece, const tok_added_flags *flags,
                     int32_t *id_out, rs_err *err);

/* Add PaliGemma's tokens on top of a Gemma tokenizer: <loc0000>..<loc1023>, <seg000>..<seg127>
 * (plain added tokens, ids 256000..257151 on the Gemma vocab), then <image> (special, 257152). */
int tok_add_paligemma_tokens(rs_tokenizer *tok, rs_err *err);

#endif
