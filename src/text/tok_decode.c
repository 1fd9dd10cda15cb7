/* Decoding: ids -> pieces -> the decoder chain of tokenizer.json (Gemma: Replace "▁" -> " ",
 * ByteFallback, Fuse), each step turning a list of strings into a new list as in
 * `tokenizers` (Decoder::decode_chain), then concatenated. ByteFallback joins runs of
 * "<0xXX>" pieces into bytes; a run that is not valid UTF-8 becomes one U+FFFD per byte. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

/* A list of byte strings stored back to back. */
typedef struct {
    char *buf;
    size_t len, cap;
    size_t *off; /* string i = buf[off[i] .. off[i+1]) */
    size_t n, ncap;
} strlist;

static int sl_reserve(strlist *l, size_t more) {
    if (l->len + more > l->cap) {
        size_t nc = 2 * (l->len + more) + 64;
        char *nb = realloc(l->buf, nc);
        if (!nb) return -1;
        l->buf = nb;
        l->cap = nc;
    }
    return 0;
}

/* Start a new string. Reserves the byte buffer too, so buf is never NULL while a string
 * exists (buf + off on a NULL buf is undefined even for off 0, e.g. all pieces empty). */
static int sl_begin(strlist *l) {
    if (sl_reserve(l, 1)) return -1;
    if (l->n + 2 > l->ncap) {
        size_t nc = 2 * (l->n + 2);
        size_t *no = realloc(l->off, nc * sizeof *no);
        if (!no) return -1;
        l->off = no;
        l->ncap = nc;
    }
    if (l->n == 0) l->off[0] = 0;
    l->off[++l->n] = l->len;
    return 0;
}

/* Append bytes to the last string. */
static int sl_cat(strlist *l, const char *s, size_t len) {
    if (!len) return 0;
    if (sl_reserve(l, len)) return -1;
    memcpy(l->buf + l->len, s, len);
    l->len += len;
    l->off[l->n] = l->len;
    return 0;
}

static int sl_push(strlist *l, const char *s, size_t len) { return sl_begin(l) || sl_cat(l, s, len); }

static void sl_free(strlist *l) {
    free(l->buf);
    free(l->off);
    memset(l, 0, sizeof *l);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Is the string "<0xXX>"? (u8::from_str_radix also takes a '+' sign: "<0x+A>" is 10.) */
static int byte_token(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    if (s[3] == '+') return hexval(s[4]);
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static int valid_utf8(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (i + n > len) return 0;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += n;
    }
    return 1;
}

static int flush_bytes(strlist *out, const char *bytes, size_t nb) {
    if (!nb) return 0;
    if (valid_utf8((const uint8_t *)bytes, nb)) return sl_push(out, bytes, nb);
    for (size_t k = 0; k < nb; k++)
        if (sl_push(out, "\xEF\xBF\xBD", 3)) return -1;
    return 0;
}

static int apply_step(const tok_step *st, const strlist *in, strlist *out) {
    char *bytes = NULL;
    size_t nb = 0;
    int rc = 0;
    if (st->kind == TOK_DEC_BYTE_FALLBACK && !(bytes = malloc(in->n + 1))) return -1;
    if (st->kind == TOK_DEC_FUSE) {
        rc = sl_begin(out);
        for (size_t i = 0; i < in->n && !rc; i++) rc = sl_cat(out, in->buf + in->off[i], in->off[i + 1] - in->off[i]);
        return rc;
    }
    for (size_t i = 0; i < in->n && !rc; i++) {
        const char *s = in->buf + in->off[i];
        size_t len = in->off[i + 1] - in->off[i];
        if (st->kind == TOK_DEC_REPLACE) {
            size_t pl = strlen(st->pattern), cl = strlen(st->content), j = 0, from = 0;
            rc = sl_begin(out);
            while (!rc && j + pl <= len) {
                if (memcmp(s + j, st->pattern, pl) == 0) {
                    rc = sl_cat(out, s + from, j - from) || sl_cat(out, st->content, cl);
                    j += pl;
                    from = j;
                } else {
                    j++;
                }
            }
            if (!rc) rc = sl_cat(out, s + from, len - from);
        } else if (st->kind == TOK_DEC_BYTE_FALLBACK) {
            int b = byte_token(s, len);
            if (b >= 0) {
                bytes[nb++] = (char)b;
            } else {
                rc = flush_bytes(out, bytes, nb) || sl_push(out, s, len);
                nb = 0;
            }
        } else { /* Strip: drop up to `start` leading and `stop` trailing copies of one char */
            size_t cl = strlen(st->pattern), a = 0, b = len;
            for (int k = 0; k < st->start && cl && a + cl <= b && !memcmp(s + a, st->pattern, cl); k++) a += cl;
            for (int k = 0; k < st->stop && cl && b >= a + cl && !memcmp(s + b - cl, st->pattern, cl); k++) b -= cl;
            rc = sl_push(out, s + a, b - a);
        }
    }
    if (!rc && st->kind == TOK_DEC_BYTE_FALLBACK) rc = flush_bytes(out, bytes, nb);
    free(bytes);
    return rc;
}

int tok_decode_ex(const rs_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                  char **out, size_t *out_len, rs_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    strlist cur = {0}, next = {0};
    for (size_t i = 0; i < n; i++) {
        const char *p = tok_piece(tok, ids[i]);
        if (!p) {
            sl_free(&cur);
            return rs_errf(err, "decode: id %d at position %zu is not in the vocabulary (size %zu)", ids[i], i,
                           tok->n_ids);
        }
        if (skip_special && tok->special[ids[i]]) continue;
        if (sl_push(&cur, p, strlen(p))) goto oom;
    }
    for (size_t k = 0; k < tok->n_dec; k++) {
        if (apply_step(&tok->dec[k], &cur, &next)) goto oom;
        sl_free(&cur);
        cur = next;
        memset(&next, 0, sizeof next);
    }
    size_t total = cur.len;
    char *s = malloc(total + 1);
    if (!s) goto oom;
    if (total) memcpy(s, cur.buf, total);
    s[total] = '\0';
    sl_free(&cur);
    *out = s;
    if (out_len) *out_len = total;
    return 0;
oom:
    sl_free(&cur);
    sl_free(&next);
    return rs_errk(err, RS_ENOMEM, "decode: out of memory (%zu ids)", n);
}

int tok_decode(const rs_tokenizer *tok, const int32_t *ids, size_t n, char **out, rs_err *err) {
    return tok_decode_ex(tok, ids, n, 0, out, NULL, err);
}
