/* Internal layout of rs_tokenizer, shared by tok_load.c, tok_encode.c and tok_decode.c.
 *
 * Invariants: pieces[id] is NULL or a NUL-terminated string owned by the tokenizer (either
 * inside `strings` or, for tokens added later, in its own allocation flagged in owned[]);
 * vocab_map only holds model (BPE) tokens; added_map holds added tokens, which win in
 * tok_id() as in `tokenizers` (AddedVocabulary::token_to_id looks there first). */
#ifndef RS_TEXT_TOK_INTERNAL_H
#define RS_TEXT_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "reprshift/tokenizer.h"

/* Open-addressing map from a string to an id; keys are the pieces[] strings. */
typedef struct {
    uint64_t *slots; /* (hash high bits << 32) | id, or UINT64_MAX for empty */
    size_t cap;     /* power of two */
    size_t count;
} tok_strmap;

/* Open-addressing map from an id pair to (rank, merged id). */
typedef struct {
    uint64_t *keys; /* (a << 32 | b) + 1, 0 = empty */
    uint32_t *rank;
    int32_t *merged;
    size_t cap;
    size_t count;
} tok_pairmap;

/* Byte trie of added-token patterns for leftmost-longest matching. */
typedef struct {
    int32_t child; /* first child node, -1 if none */
    int32_t sibling;
    int32_t id; /* token id if a pattern ends here, else -1 */
    uint8_t byte;
} tok_trie_node;

typedef struct {
    tok_trie_node *nodes;
    size_t n, cap;
} tok_trie;

typedef struct {
    char *content;
    int32_t id;
    tok_added_flags flags;
} tok_added;

/* One step of the normalizer or the decoder (sequences are flattened). */
enum { TOK_NORM_REPLACE = 1, TOK_NORM_PREPEND };
enum { TOK_DEC_REPLACE = 1, TOK_DEC_BYTE_FALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP };

typedef struct {
    int kind;
    char *pattern; /* Replace: literal pattern; Prepend: the prefix; Strip: the char */
    char *content; /* Replace: replacement */
    int start, stop; /* Strip */
} tok_step;

#define TOK_TEMPLATE_SEQ INT32_MIN /* marks "$A" in the post-processor template */

struct rs_tokenizer {
    char *path;
    char *strings; /* model vocab pieces, NUL-separated */
    char **pieces; /* id -> piece, size n_ids */
    uint8_t *owned; /* 1 if pieces[id] was malloc'd on its own (added later) */
    uint8_t *special; /* 1 if id is a special added token */
    size_t n_ids;
    size_t model_vocab_len; /* entries in model.vocab (BPE get_vocab_size) */
    tok_strmap vocab_map;
    tok_strmap added_map;
    tok_pairmap merges;
    int32_t ascii_id[128]; /* model id of each single ASCII char, -1 if none */
    int32_t byte_id[256];  /* model id of "<0xXX>", -1 if none */
    int32_t unk_id;
    int byte_fallback, fuse_unk;

    /* Added tokens in `tokenizers` order: special ones first, then the others. */
    tok_added *special_list, *added_list;
    size_t n_special_list, n_added_list, cap_special_list, cap_added_list;
    tok_added_flags *flags_by_id; /* latest flags of each added id (size n_ids) */
    uint8_t *is_added;           /* 1 if id is in added_map */
    tok_trie raw_trie, norm_trie;

    tok_step *norm;
    size_t n_norm;
    tok_step *dec;
    size_t n_dec;
    int32_t *tmpl; /* single-sequence template: ids and TOK_TEMPLATE_SEQ */
    size_t n_tmpl;
    int has_template;

    int32_t bos_id, eos_id, pad_id;
};

uint64_t tok_hash_bytes(const char *s, size_t len);
/* Look up len bytes in a string map whose keys are tok->pieces; -1 if absent. */
int32_t tok_strmap_get(const tok_strmap *m, char *const *pieces, const char *s, size_t len);
/* Insert (replacing an equal key); returns -1 on out of memory. */
int tok_strmap_put(tok_strmap *m, char *const *pieces, int32_t id);
void tok_strmap_free(tok_strmap *m);

/* Merge lookup: 1 and (rank, merged) if the pair merges. */
static inline int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, uint32_t *rank,
                                  int32_t *merged) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t mask = m->cap - 1, i = (size_t)(h >> 29) & mask;
    while (m->keys[i]) {
        if (m->keys[i] == key) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return 1;
        }
        i = (i + 1) & mask;
    }
    return 0;
}

/* Rebuild both tries from the added-token lists (normalizing the normalized patterns). */
int tok_rebuild_tries(rs_tokenizer *tok);
/* Apply the normalizer to len bytes into a new buffer (caller frees). */
int tok_normalize(const rs_tokenizer *tok, const char *s, size_t len, char **out, size_t *out_len);

#endif
