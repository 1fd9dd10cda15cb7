/* Which token ids carry no word: the special tokens (<bos>, <eos>, <pad>) and pieces made
 * only of whitespace ("▁", "▁▁", "\n", "\t", the byte-fallback pieces <0x09> <0x0A> <0x0D>
 * <0x20>). Pooling and the shift metrics leave them out by default (docs/metrics.md,
 * "Excluded tokens"): their activations say little about the caption and, like <bos>, can
 * be far from the other tokens. */
#include <string.h>

#include "reprshift/tokenizer.h"

int tok_is_blank(const rs_tokenizer *tok, int32_t id) {
    const char *p = tok_piece(tok, id);
    if (!p || !*p) return 0;
    if (!strcmp(p, "<0x09>") || !strcmp(p, "<0x0A>") || !strcmp(p, "<0x0D>") || !strcmp(p, "<0x20>")) return 1;
    while (*p) {
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        else if (!strncmp(p, "\xE2\x96\x81", 3)) p += 3; /* U+2581, the SentencePiece space */
        else return 0;
    }
    return 1;
}

int tok_is_excluded(const rs_tokenizer *tok, int32_t id) {
    return id == tok_bos_id(tok) || id == tok_eos_id(tok) || id == tok_pad_id(tok) || tok_is_blank(tok, id);
}
