/* Encoding: text -> ids, following the `tokenizers` pipeline step by step:
 *   1. split out non-normalized added tokens on the raw text (leftmost-longest),
 *   2. normalize each remaining piece and split out normalized added tokens,
 *   3. BPE-encode each remaining piece as one word (no pre-tokenizer splits),
 *   4. apply the post-processor template (Gemma: <bos> + sequence).
 * BPE repeatedly merges the adjacent pair with the lowest merge rank, leftmost on ties,
 * with a binary heap of (rank, position) and lazy deletion of stale entries; the staleness
 * test is the one the Rust code uses (same merged id), so results agree even when two
 * different pairs merge into the same piece. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

typedef struct {
    int32_t *v;
    size_t n, cap;
} ivec;

static int ivec_push(ivec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? 2 * a->cap : 64;
        int32_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return -1;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return 0;
}

/* ---------------------------------------------------------------- UTF-8 */

static size_t utf8_len(uint8_t lead) {
    return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/* Offset of the first invalid sequence, or len if all of s is valid UTF-8. */
static size_t utf8_check(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07, min = 0x10000;
        else return i;
        if (i + n > len) return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += n;
    }
    return len;
}

static uint32_t utf8_decode(const uint8_t *s, size_t n) {
    if (n == 1) return s[0];
    uint32_t cp = s[0] & (0x7F >> n);
    for (size_t k = 1; k < n; k++) cp = (cp << 6) | (s[k] & 0x3F);
    return cp;
}

/* Unicode White_Space (what Rust's regex \s matches). */
static int is_space_cp(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Approximation of Rust's Unicode \w: exact for ASCII; outside ASCII, everything except
 * white space and the main punctuation/symbol blocks counts as a word character. Only
 * used for single_word added tokens, which no Gemma/PaliGemma token sets. */
static int is_word_cp(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (is_space_cp(c)) return 0;
    if (c <= 0xBF) return c == 0xAA || c == 0xB5 || c == 0xBA;
    if (c == 0xD7 || c == 0xF7) return 0;
    if (c >= 0x2000 && c <= 0x2BFF) return c == 0x200C || c == 0x200D || (c >= 0x2070 && c <= 0x209F);
    if (c >= 0x3000 && c <= 0x303F) return c >= 0x3005 && c <= 0x3007;
    if ((c >= 0xFF00 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20)) return 0;
    if (c >= 0x1F000 && c <= 0x1FAFF) return 0;
    return 1;
}

static uint32_t cp_before(const char *s, size_t pos) {
    size_t i = pos;
    do i--;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
    return utf8_decode((const uint8_t *)s + i, pos - i);
}

/* ---------------------------------------------------------------- normalizer */

static int append(char **buf, size_t *n, size_t *cap, const char *s, size_t len) {
    if (*n + len + 1 > *cap) {
        size_t nc = 2 * (*n + len + 1);
        char *nb = realloc(*buf, nc);
        if (!nb) return -1;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *n, s, len);
    *n += len;
    (*buf)[*n] = '\0';
    return 0;
}

int tok_normalize(const rs_tokenizer *tok, const char *s, size_t len, char **out, size_t *out_len) {
    char *cur = malloc(len + 1);
    if (!cur) return -1;
    memcpy(cur, s, len);
    cur[len] = '\0';
    size_t cur_len = len;
    for (size_t k = 0; k < tok->n_norm; k++) {
        const tok_step *st = &tok->norm[k];
        char *nb = NULL;
        size_t nn = 0, cap = 0;
        if (st->kind == TOK_NORM_PREPEND) {
            if (cur_len == 0) continue; /* Prepend leaves an empty string alone */
            if (append(&nb, &nn, &cap, st->pattern, strlen(st->pattern)) ||
                append(&nb, &nn, &cap, cur, cur_len))
                goto oom;
        } else { /* Replace: all non-overlapping occurrences, left to right */
            size_t pl = strlen(st->pattern), cl = strlen(st->content), i = 0, from = 0;
            if (append(&nb, &nn, &cap, "", 0)) goto oom;
            while (i + pl <= cur_len) {
                if (memcmp(cur + i, st->pattern, pl) == 0) {
                    if (append(&nb, &nn, &cap, cur + from, i - from) || append(&nb, &nn, &cap, st->content, cl))
                        goto oom;
                    i += pl;
                    from = i;
                } else {
                    i++;
                }
            }
            if (append(&nb, &nn, &cap, cur + from, cur_len - from)) goto oom;
        }
        free(cur);
        cur = nb;
        cur_len = nn;
        continue;
    oom:
        free(nb);
        free(cur);
        return -1;
    }
    *out = cur;
    *out_len = cur_len;
    return 0;
}

/* ---------------------------------------------------------------- added-token splitting */

typedef struct {
    int32_t id; /* -1: plain text */
    size_t start, stop;
} split;

typedef struct {
    split *v;
    size_t n, cap;
} splitvec;

static int split_push(splitvec *a, int32_t id, size_t start, size_t stop) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? 2 * a->cap : 16;
        split *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return -1;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = (split){id, start, stop};
    return 0;
}

/* Longest pattern of the trie starting at s[pos]; returns its id and sets *end. */
static int32_t trie_longest(const tok_trie *t, const char *s, size_t len, size_t pos, size_t *end) {
    int32_t node = 0, best = -1;
    for (size_t i = pos; i < len; i++) {
        int32_t ch = t->nodes[node].child;
        while (ch >= 0 && t->nodes[ch].byte != (uint8_t)s[i]) ch = t->nodes[ch].sibling;
        if (ch < 0) break;
        node = ch;
        if (t->nodes[node].id >= 0) {
            best = t->nodes[node].id;
            *end = i + 1;
        }
    }
    return best;
}

/* AddedVocabulary::find_matches: leftmost-longest matches (the search resumes after each
 * match, before any rstrip extension), with the single_word / lstrip / rstrip rules. */
static int find_matches(const rs_tokenizer *tok, const tok_trie *t, const char *s, size_t len, splitvec *out) {
    out->n = 0;
    if (len == 0 || t->n == 0) return split_push(out, -1, 0, len);
    size_t start_offset = 0, pos = 0;
    while (pos < len) {
        size_t mend = 0;
        int32_t id = trie_longest(t, s, len, pos, &mend);
        if (id < 0) {
            pos++;
            continue;
        }
        size_t start = pos, stop = mend;
        pos = mend;
        const tok_added_flags *f = &tok->flags_by_id[id];
        if (f->single_word) {
            int start_space = start == 0 || !is_word_cp(cp_before(s, start));
            int stop_space = stop == len ||
                             !is_word_cp(utf8_decode((const uint8_t *)s + stop, utf8_len((uint8_t)s[stop])));
            if (!start_space || !stop_space) continue;
        }
        if (f->lstrip) {
            size_t ns = start;
            while (ns > 0 && is_space_cp(cp_before(s, ns))) {
                size_t i = ns;
                do i--;
                while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
                ns = i;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (f->rstrip) {
            while (stop < len) {
                size_t n = utf8_len((uint8_t)s[stop]);
                if (!is_space_cp(utf8_decode((const uint8_t *)s + stop, n))) break;
                stop += n;
            }
        }
        if (start_offset < start && split_push(out, -1, start_offset, start)) return -1;
        if (split_push(out, id, start, stop)) return -1;
        start_offset = stop;
    }
    if (start_offset != len && split_push(out, -1, start_offset, len)) return -1;
    return 0;
}

/* ---------------------------------------------------------------- BPE */

typedef struct {
    uint32_t rank;
    int32_t pos;
    int32_t merged;
} merge_cand;

static int cand_less(const merge_cand *a, const merge_cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(merge_cand *h, size_t *n, merge_cand x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static merge_cand heap_pop(merge_cand *h, size_t *n) {
    merge_cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const merge_cand *best = &last;
        if (l < *n && cand_less(&h[l], best)) m = l, best = &h[l];
        if (r < *n && cand_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

typedef struct {
    int32_t *c, *prev, *next, *len;
    merge_cand *heap;
    size_t cap;
} bpe_scratch;

static int scratch_reserve(bpe_scratch *s, size_t n) {
    if (n <= s->cap) return 0;
    size_t cap = n < 256 ? 256 : n;
    int32_t *c = realloc(s->c, cap * 4 * sizeof *c);
    if (!c) return -1;
    s->c = c;
    s->prev = c + cap;
    s->next = c + 2 * cap;
    s->len = c + 3 * cap;
    merge_cand *h = realloc(s->heap, 3 * cap * sizeof *h);
    if (!h) return -1;
    s->heap = h;
    s->cap = cap;
    return 0;
}

/* BPE::merge_word + Word::merge_all on one normalized, valid-UTF-8 word. */
static int bpe_word(const rs_tokenizer *tok, const char *w, size_t wlen, bpe_scratch *sc, ivec *out) {
    if (wlen == 0) return 0;
    if (scratch_reserve(sc, wlen + 1)) return -1;
    int32_t *c = sc->c, *prev = sc->prev, *next = sc->next, *len = sc->len;
    size_t ns = 0;
    int32_t unk_len = 0; /* pending (fused) unk */
#define ADD_SYM(id_, l_)                                      \
    do {                                                      \
        c[ns] = (id_);                                        \
        len[ns] = (l_);                                       \
        prev[ns] = (int32_t)ns - 1;                           \
        next[ns] = -1;                                        \
        if (ns) next[ns - 1] = (int32_t)ns;                   \
        ns++;                                                 \
    } while (0)
    for (size_t i = 0; i < wlen;) {
        uint8_t lead = (uint8_t)w[i];
        size_t cl = utf8_len(lead);
        int32_t id = cl == 1 ? tok->ascii_id[lead] : tok_strmap_get(&tok->vocab_map, tok->pieces, w + i, cl);
        if (id >= 0) {
            if (unk_len) {
                ADD_SYM(tok->unk_id, unk_len);
                unk_len = 0;
            }
            ADD_SYM(id, (int32_t)cl);
        } else {
            int fell_back = 0;
            if (tok->byte_fallback) {
                fell_back = 1;
                for (size_t k = 0; k < cl; k++)
                    if (tok->byte_id[(uint8_t)w[i + k]] < 0) fell_back = 0;
                /* As in tokenizers, a pending unk is not flushed before byte tokens. */
                if (fell_back)
                    for (size_t k = 0; k < cl; k++) ADD_SYM(tok->byte_id[(uint8_t)w[i + k]], 1);
            }
            if (!fell_back && tok->unk_id >= 0) {
                if (unk_len && !tok->fuse_unk) {
                    ADD_SYM(tok->unk_id, unk_len);
                    unk_len = 0;
                }
                unk_len += (int32_t)cl;
            }
        }
        i += cl;
    }
    if (unk_len) ADD_SYM(tok->unk_id, unk_len);
#undef ADD_SYM

    merge_cand *heap = sc->heap;
    size_t nh = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        merge_cand m;
        if (tok_pairmap_get(&tok->merges, c[i], c[i + 1], &m.rank, &m.merged)) {
            m.pos = (int32_t)i;
            heap_push(heap, &nh, m);
        }
    }
    while (nh) {
        merge_cand top = heap_pop(heap, &nh);
        int32_t p = top.pos;
        if (len[p] == 0 || next[p] == -1) continue;
        int32_t r = next[p];
        uint32_t rank;
        int32_t merged;
        if (!tok_pairmap_get(&tok->merges, c[p], c[r], &rank, &merged) || merged != top.merged) continue;
        c[p] = top.merged;
        len[p] += len[r];
        next[p] = next[r];
        len[r] = 0;
        if (next[r] >= 0) prev[next[r]] = p;
        merge_cand m;
        if (prev[p] >= 0 && tok_pairmap_get(&tok->merges, c[prev[p]], c[p], &m.rank, &m.merged)) {
            m.pos = prev[p];
            heap_push(heap, &nh, m);
        }
        if (next[p] >= 0 && tok_pairmap_get(&tok->merges, c[p], c[next[p]], &m.rank, &m.merged)) {
            m.pos = p;
            heap_push(heap, &nh, m);
        }
    }
    for (size_t i = 0; i < ns; i++)
        if (len[i] && ivec_push(out, c[i])) return -1;
    return 0;
}

/* ---------------------------------------------------------------- encode */

int tok_encode(const rs_tokenizer *tok, const char *text, size_t len, int add_bos, int32_t **ids,
               size_t *n, rs_err *err) {
    *ids = NULL;
    *n = 0;
    size_t bad = utf8_check((const uint8_t *)text, len);
    if (bad != len) return rs_errf(err, "tokenize: input is not valid UTF-8 (byte %zu)", bad);
    ivec seq = {0}, res = {0};
    splitvec raw = {0}, norm = {0};
    bpe_scratch sc = {0};
    char *nbuf = NULL;
    int rc = -1;
    if (find_matches(tok, &tok->raw_trie, text, len, &raw)) goto oom;
    for (size_t k = 0; k < raw.n; k++) {
        const split *sp = &raw.v[k];
        if (sp->id >= 0) {
            if (ivec_push(&seq, sp->id)) goto oom;
            continue;
        }
        size_t nlen;
        free(nbuf);
        nbuf = NULL;
        if (tok_normalize(tok, text + sp->start, sp->stop - sp->start, &nbuf, &nlen)) goto oom;
        if (find_matches(tok, &tok->norm_trie, nbuf, nlen, &norm)) goto oom;
        for (size_t j = 0; j < norm.n; j++) {
            const split *q = &norm.v[j];
            if (q->id >= 0) {
                if (ivec_push(&seq, q->id)) goto oom;
            } else if (bpe_word(tok, nbuf + q->start, q->stop - q->start, &sc, &seq)) {
                goto oom;
            }
        }
    }
    if (add_bos && tok->has_template) {
        for (size_t i = 0; i < tok->n_tmpl; i++) {
            if (tok->tmpl[i] != TOK_TEMPLATE_SEQ) {
                if (ivec_push(&res, tok->tmpl[i])) goto oom;
            } else {
                for (size_t j = 0; j < seq.n; j++)
                    if (ivec_push(&res, seq.v[j])) goto oom;
            }
        }
        *ids = res.v;
        *n = res.n;
        res.v = NULL;
    } else {
        *ids = seq.v;
        *n = seq.n;
        seq.v = NULL;
    }
    rc = 0;
    goto done;
oom:
    rs_errk(err, RS_ENOMEM, "tokenize: out of memory (input of %zu bytes)", len);
done:
    free(seq.v);
    free(res.v);
    free(raw.v);
    free(norm.v);
    free(sc.c);
    free(sc.heap);
    free(nbuf);
    return rc;
}
