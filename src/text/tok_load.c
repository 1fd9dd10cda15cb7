/* Loading a Hugging Face tokenizer.json into rs_tokenizer, plus the small hash maps, the
 * added-token tries and the public accessors.
 *
 * Only the pieces of the `tokenizers` format that Gemma-family files use are accepted; any
 * other component is refused with an error naming the file and the component, so that a
 * tokenizer we would silently get wrong never loads. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/jsonutil.h"
#include "reprshift/fileio.h"
#include "text/tok_internal.h"

#define TOK_MAX_FILE_BYTES ((size_t)1 << 30)
#define TOK_MAX_ID ((1 << 26) - 1) /* far above any real vocab; bounds the id -> piece table */

/* ---------------------------------------------------------------- hash maps */

uint64_t tok_hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 31);
}

#define SLOT_EMPTY UINT64_MAX
#define SLOT_ID(x) ((int32_t)(uint32_t)(x))
#define SLOT_TAG(x) ((uint32_t)((x) >> 32))

static int strmap_init(tok_strmap *m, size_t expected) {
    size_t cap = 64;
    while (cap < expected * 2) cap <<= 1;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    memset(m->slots, 0xff, cap * sizeof *m->slots);
    m->cap = cap;
    m->count = 0;
    return 0;
}

/* The slot keeps the hash's high 32 bits so most probes never touch the piece string. */
int32_t tok_strmap_get(const tok_strmap *m, char *const *pieces, const char *s, size_t len) {
    if (!m->cap || memchr(s, 0, len)) return -1; /* pieces are C strings: no NUL inside */
    uint64_t h = tok_hash_bytes(s, len);
    uint32_t tag = (uint32_t)(h >> 32);
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (uint64_t x; (x = m->slots[i]) != SLOT_EMPTY; i = (i + 1) & mask) {
        if (SLOT_TAG(x) != tag) continue;
        const char *p = pieces[SLOT_ID(x)];
        if (strncmp(p, s, len) == 0 && p[len] == 0) return SLOT_ID(x);
    }
    return -1;
}

static void strmap_put_hashed(tok_strmap *m, char *const *pieces, uint64_t h, int32_t id) {
    uint64_t slot = (h & 0xFFFFFFFF00000000ull) | (uint32_t)id;
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (; m->slots[i] != SLOT_EMPTY; i = (i + 1) & mask) {
        if (SLOT_TAG(m->slots[i]) == (uint32_t)(h >> 32) && strcmp(pieces[SLOT_ID(m->slots[i])], pieces[id]) == 0) {
            m->slots[i] = slot;
            return;
        }
    }
    m->slots[i] = slot;
    m->count++;
}

int tok_strmap_put(tok_strmap *m, char *const *pieces, int32_t id) {
    if (!m->cap && strmap_init(m, 16)) return -1;
    if ((m->count + 1) * 2 > m->cap) { /* grow and rehash */
        tok_strmap bigger;
        if (strmap_init(&bigger, m->cap)) return -1;
        for (size_t i = 0; i < m->cap; i++) {
            uint64_t x = m->slots[i];
            if (x == SLOT_EMPTY) continue;
            const char *p = pieces[SLOT_ID(x)];
            strmap_put_hashed(&bigger, pieces, tok_hash_bytes(p, strlen(p)), SLOT_ID(x));
        }
        free(m->slots);
        *m = bigger;
    }
    const char *s = pieces[id];
    strmap_put_hashed(m, pieces, tok_hash_bytes(s, strlen(s)), id);
    return 0;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static int pairmap_init(tok_pairmap *m, size_t expected) {
    size_t cap = 64;
    while (cap < expected * 2) cap <<= 1;
    m->keys = calloc(cap, sizeof *m->keys);
    m->rank = malloc(cap * sizeof *m->rank);
    m->merged = malloc(cap * sizeof *m->merged);
    m->cap = cap;
    m->count = 0;
    return (m->keys && m->rank && m->merged) ? 0 : -1;
}

/* Later duplicates overwrite earlier ones, as collecting into a HashMap does in tokenizers. */
static void pairmap_put(tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t mask = m->cap - 1, i = (size_t)(h >> 29) & mask;
    while (m->keys[i] && m->keys[i] != key) i = (i + 1) & mask;
    if (!m->keys[i]) m->count++;
    m->keys[i] = key;
    m->rank[i] = rank;
    m->merged[i] = merged;
}

static void pairmap_free(tok_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- tries */

static int trie_insert(tok_trie *t, const char *s, size_t len, int32_t id) {
    if (!t->n) { /* root */
        t->cap = 64;
        t->nodes = malloc(t->cap * sizeof *t->nodes);
        if (!t->nodes) return -1;
        t->nodes[0] = (tok_trie_node){-1, -1, -1, 0};
        t->n = 1;
    }
    int32_t node = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)s[i];
        int32_t ch = t->nodes[node].child;
        while (ch >= 0 && t->nodes[ch].byte != c) ch = t->nodes[ch].sibling;
        if (ch < 0) {
            if (t->n == t->cap) {
                tok_trie_node *nn = realloc(t->nodes, 2 * t->cap * sizeof *nn);
                if (!nn) return -1;
                t->nodes = nn;
                t->cap *= 2;
            }
            ch = (int32_t)t->n++;
            t->nodes[ch] = (tok_trie_node){-1, t->nodes[node].child, -1, c};
            t->nodes[node].child = ch;
        }
        node = ch;
    }
    /* The first pattern wins for identical contents (they map to one id anyway). */
    if (t->nodes[node].id < 0) t->nodes[node].id = id;
    return 0;
}

int tok_rebuild_tries(rs_tokenizer *tok) {
    free(tok->raw_trie.nodes);
    free(tok->norm_trie.nodes);
    memset(&tok->raw_trie, 0, sizeof tok->raw_trie);
    memset(&tok->norm_trie, 0, sizeof tok->norm_trie);
    for (int pass = 0; pass < 2; pass++) {
        tok_added *list = pass ? tok->added_list : tok->special_list;
        size_t n = pass ? tok->n_added_list : tok->n_special_list;
        for (size_t i = 0; i < n; i++) {
            const tok_added *a = &list[i];
            if (!a->flags.normalized) {
                if (trie_insert(&tok->raw_trie, a->content, strlen(a->content), a->id)) return -1;
            } else {
                /* Normalized tokens match their normalized form (tokenizers normalizes the pattern). */
                char *norm;
                size_t norm_len;
                if (tok_normalize(tok, a->content, strlen(a->content), &norm, &norm_len)) return -1;
                int rc = trie_insert(&tok->norm_trie, norm, norm_len, a->id);
                free(norm);
                if (rc) return -1;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- added tokens */

static int flags_equal(const tok_added_flags *a, const tok_added_flags *b) {
    return !!a->special == !!b->special && !!a->normalized == !!b->normalized &&
           !!a->lstrip == !!b->lstrip && !!a->rstrip == !!b->rstrip &&
           !!a->single_word == !!b->single_word;
}

/* Make room for ids up to `id` in every id-indexed table. */
static int grow_ids(rs_tokenizer *tok, size_t need) {
    if (need <= tok->n_ids) return 0;
    size_t old = tok->n_ids;
    char **p = realloc(tok->pieces, need * sizeof *p);
    if (!p) return -1;
    tok->pieces = p;
    uint8_t *o = realloc(tok->owned, need), *s = NULL, *ia = NULL;
    if (o) tok->owned = o;
    s = o ? realloc(tok->special, need) : NULL;
    if (s) tok->special = s;
    ia = s ? realloc(tok->is_added, need) : NULL;
    if (ia) tok->is_added = ia;
    tok_added_flags *f = ia ? realloc(tok->flags_by_id, need * sizeof *f) : NULL;
    if (!f) return -1;
    tok->flags_by_id = f;
    for (size_t i = old; i < need; i++) {
        tok->pieces[i] = NULL;
        tok->owned[i] = tok->special[i] = tok->is_added[i] = 0;
        memset(&tok->flags_by_id[i], 0, sizeof *f);
    }
    tok->n_ids = need;
    return 0;
}

static int list_push(tok_added **list, size_t *n, size_t *cap, const tok_added *a) {
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        tok_added *nl = realloc(*list, nc * sizeof *nl);
        if (!nl) return -1;
        *list = nl;
        *cap = nc;
    }
    (*list)[(*n)++] = *a;
    return 0;
}

/* AddedVocabulary::add_tokens for one token, without rebuilding the tries.
 * Returns 1 if added, 0 if ignored, -1 on error. */
static int add_one(rs_tokenizer *tok, const char *piece, const tok_added_flags *flags,
                   int32_t *id_out, rs_err *err) {
    size_t len = strlen(piece);
    int32_t known = tok_id(tok, piece);
    if (id_out) *id_out = known;
    if (len == 0) return 0;
    if (known >= 0 && tok->is_added[known] && flags_equal(&tok->flags_by_id[known], flags))
        return 0; /* the very same AddedToken is already there */
    int32_t id = known;
    if (id < 0) {
        /* Next id: the model size, or one past the largest added id if that is beyond it. */
        size_t next = tok->model_vocab_len;
        for (size_t i = tok->model_vocab_len; i < tok->n_ids; i++)
            if (tok->is_added[i] && i + 1 > next) next = i + 1;
        if (next > TOK_MAX_ID) return rs_errk(err, RS_EFORMAT, "%s: too many added tokens", tok->path);
        id = (int32_t)next;
    }
    if (grow_ids(tok, (size_t)id + 1)) return rs_errk(err, RS_ENOMEM, "%s: out of memory", tok->path);
    if (!tok->pieces[id]) {
        tok->pieces[id] = strdup(piece);
        if (!tok->pieces[id]) return rs_errk(err, RS_ENOMEM, "%s: out of memory", tok->path);
        tok->owned[id] = 1;
    }
    char *content = strdup(piece);
    if (!content) return rs_errk(err, RS_ENOMEM, "%s: out of memory", tok->path);
    tok_added a = {content, id, *flags};
    /* Special-ness is sticky per content, as tokenizers' special_tokens_set is. */
    int in_special_set = tok->special[id];
    if (flags->special) tok->special[id] = 1;
    int rc = 0;
    if (flags->special && !in_special_set) {
        rc = list_push(&tok->special_list, &tok->n_special_list, &tok->cap_special_list, &a);
    } else if (!tok->special[id]) {
        rc = list_push(&tok->added_list, &tok->n_added_list, &tok->cap_added_list, &a);
    } else {
        free(content); /* already listed as special */
    }
    if (rc) {
        free(content);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", tok->path);
    }
    tok->is_added[id] = 1;
    tok->flags_by_id[id] = *flags;
    if (tok_strmap_put(&tok->added_map, tok->pieces, id))
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", tok->path);
    if (id_out) *id_out = id;
    return 1;
}

int tok_add_token_ex(rs_tokenizer *tok, const char *piece, const tok_added_flags *flags,
                     int32_t *id_out, rs_err *err) {
    if (add_one(tok, piece, flags, id_out, err) < 0) return -1;
    if (tok_rebuild_tries(tok)) return rs_errk(err, RS_ENOMEM, "%s: out of memory", tok->path);
    return 0;
}

int tok_add_tokens(rs_tokenizer *tok, const char *const *pieces, size_t n, int special,
                   size_t *n_added, rs_err *err) {
    /* AddedToken::from(content, special): normalized = !special, no stripping. */
    tok_added_flags f = {special ? 1 : 0, special ? 0 : 1, 0, 0, 0};
    size_t added = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = add_one(tok, pieces[i], &f, NULL, err);
        if (rc < 0) return -1;
        added += (size_t)rc;
    }
    if (n_added) *n_added = added;
    if (tok_rebuild_tries(tok)) return rs_errk(err, RS_ENOMEM, "%s: out of memory", tok->path);
    return 0;
}

int tok_add_paligemma_tokens(rs_tokenizer *tok, rs_err *err) {
    enum { N_EXTRA = 1024 + 128 };
    enum { W = 16 }; /* "<loc0000>" / "<seg000>" + NUL fit in 10; 16 leaves the compiler no doubt */
    char *names = malloc(N_EXTRA * W);
    const char **ptrs = malloc(N_EXTRA * sizeof *ptrs);
    if (!names || !ptrs) {
        free(names);
        free(ptrs);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < N_EXTRA; i++) {
        char *p = names + W * i;
        if (i < 1024)
            snprintf(p, W, "<loc%04d>", i & 1023); /* masks: identities here, bounds for the compiler */
        else
            snprintf(p, W, "<seg%03d>", (i - 1024) & 127);
        ptrs[i] = p;
    }
    int rc = tok_add_tokens(tok, ptrs, N_EXTRA, 0, NULL, err);
    free(names);
    free(ptrs);
    if (rc) return -1;
    tok_added_flags image = {1, 0, 0, 0, 0}; /* AddedToken("<image>", normalized=False, special=True) */
    return tok_add_token_ex(tok, "<image>", &image, NULL, err);
}

/* ---------------------------------------------------------------- JSON helpers */

static const char *jstr(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *obj, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static int is_null_or_absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* A Replace pattern must be {"String": "..."}; regex patterns are not supported. */
static int parse_pattern(const rs_tokenizer *tok, const cJSON *step, const char *what,
                         char **out, rs_err *err) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(step, "pattern");
    const char *s = cJSON_IsObject(pat) ? jstr(pat, "String") : NULL;
    if (!s || !*s)
        return rs_errk(err, RS_EFORMAT, "%s: %s Replace: only a non-empty {\"String\": ...} pattern is supported",
                       tok->path, what);
    *out = strdup(s);
    return *out ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
}

static int push_step(tok_step **steps, size_t *n, const tok_step *s) {
    tok_step *ns = realloc(*steps, (*n + 1) * sizeof *ns);
    if (!ns) return -1;
    *steps = ns;
    ns[(*n)++] = *s;
    return 0;
}

static int parse_normalizer(rs_tokenizer *tok, const cJSON *n, rs_err *err) {
    if (is_null_or_absent(n)) return 0;
    const char *type = jstr(n, "type");
    if (!type) return rs_errk(err, RS_EFORMAT, "%s: normalizer has no \"type\"", tok->path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list)) return rs_errk(err, RS_EFORMAT, "%s: normalizer Sequence without a \"normalizers\" array", tok->path);
        const cJSON *it;
        cJSON_ArrayForEach(it, list) if (parse_normalizer(tok, it, err)) return -1;
        return 0;
    }
    tok_step s = {0};
    if (!strcmp(type, "Replace")) {
        const char *content = jstr(n, "content");
        if (!content) return rs_errk(err, RS_EFORMAT, "%s: normalizer Replace without \"content\"", tok->path);
        if (parse_pattern(tok, n, "normalizer", &s.pattern, err)) return -1;
        s.kind = TOK_NORM_REPLACE;
        s.content = strdup(content);
    } else if (!strcmp(type, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (!p) return rs_errk(err, RS_EFORMAT, "%s: normalizer Prepend without \"prepend\"", tok->path);
        s.kind = TOK_NORM_PREPEND;
        s.pattern = strdup(p);
        s.content = strdup("");
    } else {
        return rs_errk(err, RS_EFORMAT, "%s: unsupported normalizer type '%s' (supported: Replace, Prepend, Sequence)",
                       tok->path, type);
    }
    if (!s.pattern || !s.content || push_step(&tok->norm, &tok->n_norm, &s)) {
        free(s.pattern);
        free(s.content);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    return 0;
}

static int parse_decoder(rs_tokenizer *tok, const cJSON *d, rs_err *err) {
    if (is_null_or_absent(d)) return 0;
    const char *type = jstr(d, "type");
    if (!type) return rs_errk(err, RS_EFORMAT, "%s: decoder has no \"type\"", tok->path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        if (!cJSON_IsArray(list)) return rs_errk(err, RS_EFORMAT, "%s: decoder Sequence without a \"decoders\" array", tok->path);
        const cJSON *it;
        cJSON_ArrayForEach(it, list) if (parse_decoder(tok, it, err)) return -1;
        return 0;
    }
    tok_step s = {0};
    if (!strcmp(type, "Replace")) {
        const char *content = jstr(d, "content");
        if (!content) return rs_errk(err, RS_EFORMAT, "%s: decoder Replace without \"content\"", tok->path);
        if (parse_pattern(tok, d, "decoder", &s.pattern, err)) return -1;
        s.kind = TOK_DEC_REPLACE;
        s.content = strdup(content);
        if (!s.content) {
            free(s.pattern);
            return rs_errk(err, RS_ENOMEM, "out of memory");
        }
    } else if (!strcmp(type, "ByteFallback")) {
        s.kind = TOK_DEC_BYTE_FALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        s.kind = TOK_DEC_FUSE;
    } else if (!strcmp(type, "Strip")) {
        const char *c = jstr(d, "content");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(d, "stop");
        /* bounded before the cast: a double outside int's range is undefined behaviour */
        if (!c || !cJSON_IsNumber(st) || !cJSON_IsNumber(sp) || !(st->valuedouble >= 0 && st->valuedouble <= 1e6) ||
            !(sp->valuedouble >= 0 && sp->valuedouble <= 1e6))
            return rs_errk(err, RS_EFORMAT, "%s: decoder Strip needs \"content\" and integer \"start\", \"stop\" in [0, 1e6]",
                           tok->path);
        s.kind = TOK_DEC_STRIP;
        s.pattern = strdup(c);
        s.start = (int)st->valuedouble;
        s.stop = (int)sp->valuedouble;
        if (!s.pattern) return rs_errk(err, RS_ENOMEM, "out of memory");
    } else {
        return rs_errk(err, RS_EFORMAT, "%s: unsupported decoder type '%s' (supported: Replace, ByteFallback, Fuse, Strip, Sequence)",
                       tok->path, type);
    }
    if (push_step(&tok->dec, &tok->n_dec, &s)) {
        free(s.pattern);
        free(s.content);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    return 0;
}

/* A pre-tokenizer splitting on a literal the normalizer has already replaced everywhere is
 * a no-op (Gemma: Split(" ") after Replace(" " -> "▁")); any other one is refused. */
static int parse_pre_tokenizer(rs_tokenizer *tok, const cJSON *p, rs_err *err) {
    if (is_null_or_absent(p)) return 0;
    const char *type = jstr(p, "type");
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list)) return rs_errk(err, RS_EFORMAT, "%s: pre_tokenizer Sequence without a \"pretokenizers\" array", tok->path);
        const cJSON *it;
        cJSON_ArrayForEach(it, list) if (parse_pre_tokenizer(tok, it, err)) return -1;
        return 0;
    }
    if (type && !strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *lit = cJSON_IsObject(pat) ? jstr(pat, "String") : NULL;
        int removed = 0;
        for (size_t i = 0; lit && *lit && i < tok->n_norm; i++) {
            const tok_step *s = &tok->norm[i];
            if (s->kind == TOK_NORM_REPLACE && !strcmp(s->pattern, lit)) removed = 1;
            else if (strstr(s->content, lit) || (s->kind == TOK_NORM_PREPEND && strstr(s->pattern, lit)))
                removed = 0;
        }
        if (removed) return 0;
    }
    return rs_errk(err, RS_EFORMAT, "%s: unsupported pre_tokenizer '%s' (only null, or a Split on a literal the "
                        "normalizer replaces, is supported)", tok->path, type ? type : "?");
}

static int parse_post_processor(rs_tokenizer *tok, const cJSON *p, rs_err *err) {
    if (is_null_or_absent(p)) return 0;
    const char *type = jstr(p, "type");
    if (!type || strcmp(type, "TemplateProcessing"))
        return rs_errk(err, RS_EFORMAT, "%s: unsupported post_processor type '%s' (supported: TemplateProcessing)",
                       tok->path, type ? type : "?");
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    if (!cJSON_IsArray(single)) return rs_errk(err, RS_EFORMAT, "%s: post_processor without a \"single\" template", tok->path);
    const cJSON *it;
    cJSON_ArrayForEach(it, single) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_IsObject(seq)) {
            int32_t *nt = realloc(tok->tmpl, (tok->n_tmpl + 1) * sizeof *nt);
            if (!nt) return rs_errk(err, RS_ENOMEM, "out of memory");
            tok->tmpl = nt;
            tok->tmpl[tok->n_tmpl++] = TOK_TEMPLATE_SEQ;
        } else if (cJSON_IsObject(sp)) {
            const char *name = jstr(sp, "id");
            const cJSON *def = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
            if (!cJSON_IsArray(ids))
                return rs_errk(err, RS_EFORMAT, "%s: post_processor special token '%s' has no \"ids\" in special_tokens",
                               tok->path, name ? name : "?");
            const cJSON *idv;
            cJSON_ArrayForEach(idv, ids) {
                if (!cJSON_IsNumber(idv) || idv->valuedouble < 0 || idv->valuedouble > TOK_MAX_ID)
                    return rs_errk(err, RS_EFORMAT, "%s: post_processor special token '%s' has a bad id", tok->path, name);
                int32_t *nt = realloc(tok->tmpl, (tok->n_tmpl + 1) * sizeof *nt);
                if (!nt) return rs_errk(err, RS_ENOMEM, "out of memory");
                tok->tmpl = nt;
                tok->tmpl[tok->n_tmpl++] = (int32_t)idv->valuedouble;
            }
        } else {
            return rs_errk(err, RS_EFORMAT, "%s: post_processor template item is neither Sequence nor SpecialToken", tok->path);
        }
    }
    tok->has_template = 1;
    return 0;
}

/* ---------------------------------------------------------------- model */

static int parse_bpe(rs_tokenizer *tok, const cJSON *model, rs_err *err) {
    const char *path = tok->path;
    if (!cJSON_IsObject(model)) return rs_errk(err, RS_EFORMAT, "%s: no \"model\" object", path);
    const char *type = jstr(model, "type");
    if (type && strcmp(type, "BPE"))
        return rs_errk(err, RS_EFORMAT, "%s: model type is '%s'; only BPE is supported", path, type);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) return rs_errk(err, RS_EFORMAT, "%s: model.vocab is missing or not an object", path);
    if (!cJSON_IsArray(merges)) return rs_errk(err, RS_EFORMAT, "%s: model.merges is missing or not an array", path);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return rs_errk(err, RS_EFORMAT, "%s: BPE dropout %g is not supported (encoding would be random)", path, dropout->valuedouble);
    const char *csp = jstr(model, "continuing_subword_prefix"), *ews = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (ews && *ews))
        return rs_errk(err, RS_EFORMAT, "%s: continuing_subword_prefix / end_of_word_suffix are not supported", path);
    if (jbool(model, "ignore_merges", 0))
        return rs_errk(err, RS_EFORMAT, "%s: BPE ignore_merges=true is not supported", path);
    tok->byte_fallback = jbool(model, "byte_fallback", 0);
    tok->fuse_unk = jbool(model, "fuse_unk", 0);

    /* Vocab: one pass for sizes, one to fill. */
    size_t n_vocab = 0, bytes = 0;
    int32_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (v < 0 || v > TOK_MAX_ID || v != floor(v))
            return rs_errk(err, RS_EFORMAT, "%s: model.vocab entry \"%.60s\" has a bad id (want an integer 0..%d)",
                           path, it->string ? it->string : "", TOK_MAX_ID);
        if ((int32_t)v > max_id) max_id = (int32_t)v;
        n_vocab++;
        bytes += strlen(it->string) + 1;
    }
    if (!n_vocab) return rs_errk(err, RS_EFORMAT, "%s: model.vocab is empty", path);
    if ((size_t)max_id >= 2 * n_vocab + 65536) /* bounds the id -> piece table by the file's size */
        return rs_errk(err, RS_EFORMAT, "%s: model.vocab ids are too sparse (largest %d for %zu entries)", path, max_id, n_vocab);
    tok->model_vocab_len = n_vocab;
    tok->strings = malloc(bytes);
    if (!tok->strings || grow_ids(tok, (size_t)max_id + 1) || strmap_init(&tok->vocab_map, n_vocab))
        return rs_errk(err, RS_ENOMEM, "%s: out of memory for %zu vocab entries", path, n_vocab);
    char *w = tok->strings;
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = (int32_t)it->valuedouble;
        if (tok->pieces[id])
            return rs_errk(err, RS_EFORMAT, "%s: model.vocab gives id %d to both \"%.60s\" and \"%.60s\"", path, id,
                           tok->pieces[id], it->string);
        size_t l = strlen(it->string);
        memcpy(w, it->string, l + 1);
        tok->pieces[id] = w;
        w += l + 1;
        tok_strmap_put(&tok->vocab_map, tok->pieces, id);
    }
    for (int c = 0; c < 128; c++) {
        char s = (char)c;
        tok->ascii_id[c] = c ? tok_strmap_get(&tok->vocab_map, tok->pieces, &s, 1) : -1;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_id[b] = tok_strmap_get(&tok->vocab_map, tok->pieces, name, 6);
    }
    const char *unk = jstr(model, "unk_token");
    tok->unk_id = unk ? tok_strmap_get(&tok->vocab_map, tok->pieces, unk, strlen(unk)) : -1;
    if (unk && tok->unk_id < 0) return rs_errk(err, RS_EFORMAT, "%s: model.unk_token \"%.60s\" is not in model.vocab", path, unk);

    /* Merges: rank = index; "a b" strings (exactly one space) or [a, b] arrays. */
    size_t n_merges = (size_t)cJSON_GetArraySize(merges);
    if (pairmap_init(&tok->merges, n_merges)) return rs_errk(err, RS_ENOMEM, "%s: out of memory for %zu merges", path, n_merges);
    char *buf = NULL;
    size_t buf_cap = 0, rank = 0;
    int rc = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(it)) {
            const char *sp = strchr(it->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                rc = rs_errk(err, RS_EFORMAT, "%s: model.merges[%zu] \"%.60s\" is not two pieces separated by one space",
                             path, rank, it->valuestring);
                break;
            }
            a = it->valuestring;
            la = (size_t)(sp - a);
            b = sp + 1;
            lb = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            a = it->child->valuestring;
            la = strlen(a);
            b = it->child->next->valuestring;
            lb = strlen(b);
        } else {
            rc = rs_errk(err, RS_EFORMAT, "%s: model.merges[%zu] is neither a \"a b\" string nor a [a, b] pair", path, rank);
            break;
        }
        if (la + lb + 1 > buf_cap) {
            buf_cap = 2 * (la + lb + 1);
            char *nb = realloc(buf, buf_cap);
            if (!nb) {
                rc = rs_errk(err, RS_ENOMEM, "out of memory");
                break;
            }
            buf = nb;
        }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int32_t ia = tok_strmap_get(&tok->vocab_map, tok->pieces, a, la);
        int32_t ib = tok_strmap_get(&tok->vocab_map, tok->pieces, b, lb);
        int32_t im = tok_strmap_get(&tok->vocab_map, tok->pieces, buf, la + lb);
        if (ia < 0 || ib < 0 || im < 0) {
            const char *bad = ia < 0 ? a : ib < 0 ? b : buf;
            int bl = (int)(ia < 0 ? la : ib < 0 ? lb : la + lb);
            rc = rs_errk(err, RS_EFORMAT, "%s: model.merges[%zu]: piece \"%.*s\" is not in model.vocab", path, rank,
                         bl > 60 ? 60 : bl, bad);
            break;
        }
        pairmap_put(&tok->merges, ia, ib, (uint32_t)rank, im);
        rank++;
    }
    free(buf);
    return rc;
}

static int parse_added_tokens(rs_tokenizer *tok, const cJSON *list, rs_err *err) {
    if (is_null_or_absent(list)) return 0;
    if (!cJSON_IsArray(list)) return rs_errk(err, RS_EFORMAT, "%s: \"added_tokens\" is not an array", tok->path);
    const cJSON *it;
    size_t i = 0;
    cJSON_ArrayForEach(it, list) {
        const char *content = jstr(it, "content");
        if (!content) return rs_errk(err, RS_EFORMAT, "%s: added_tokens[%zu] has no \"content\" string", tok->path, i);
        tok_added_flags f = {jbool(it, "special", 0), jbool(it, "normalized", 1), jbool(it, "lstrip", 0),
                             jbool(it, "rstrip", 0), jbool(it, "single_word", 0)};
        if (add_one(tok, content, &f, NULL, err) < 0) return -1;
        i++;
    }
    return 0;
}

/* Special token names: tokenizer_config.json beside tokenizer.json if present, else Gemma's. */
/* −1 only when memory runs out (an unreadable tokenizer_config.json counts as absent). */
static int resolve_special_ids(rs_tokenizer *tok, rs_err *err) {
    const char *names[3] = {"<bos>", "<eos>", "<pad>"};
    const char *keys[3] = {"bos_token", "eos_token", "pad_token"};
    int32_t *dst[3] = {&tok->bos_id, &tok->eos_id, &tok->pad_id};
    cJSON *cfg = NULL;
    char *dir = strdup(tok->path);
    if (!dir) return rs_errk(err, RS_ENOMEM, "out of memory");
    {
        char *slash = strrchr(dir, '/');
        char *cfg_path = slash ? (*slash = '\0', rs_path_join(dir, "tokenizer_config.json"))
                               : strdup("tokenizer_config.json");
        if (!cfg_path) {
            free(dir);
            return rs_errk(err, RS_ENOMEM, "out of memory");
        }
        char *text = NULL;
        size_t len;
        if (cfg_path && rs_path_exists(cfg_path) && rs_read_file(cfg_path, 64u << 20, &text, &len, NULL) == 0)
            rs_json_parse(text, len, cfg_path, &cfg, NULL); /* optional file: unreadable = absent */
        free(text);
        free(cfg_path);
        free(dir);
    }
    for (int k = 0; k < 3; k++) {
        const char *name = names[k];
        const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, keys[k]) : NULL;
        if (cJSON_IsString(v)) name = v->valuestring;
        else if (cJSON_IsObject(v) && jstr(v, "content")) name = jstr(v, "content");
        *dst[k] = tok_id(tok, name);
    }
    cJSON_Delete(cfg);
    return 0;
}

int tok_load(rs_tokenizer **out, const char *path, rs_err *err) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    if (rs_read_file(path, TOK_MAX_FILE_BYTES, &text, &len, err)) return -1;
    cJSON *root = NULL;
    int prc = rs_json_parse(text, len, path, &root, err); /* UTF-8, depth and syntax checks */
    free(text);
    if (prc) return -1;
    rs_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok || !(tok->path = strdup(path))) {
        free(tok);
        cJSON_Delete(root);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    }
    tok->unk_id = tok->bos_id = tok->eos_id = tok->pad_id = -1;
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        rs_errk(err, RS_EFORMAT, "%s: top level is not a JSON object", path);
    } else if (parse_normalizer(tok, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err) == 0 &&
               parse_pre_tokenizer(tok, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err) == 0 &&
               parse_decoder(tok, cJSON_GetObjectItemCaseSensitive(root, "decoder"), err) == 0 &&
               parse_bpe(tok, cJSON_GetObjectItemCaseSensitive(root, "model"), err) == 0 &&
               parse_post_processor(tok, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), err) == 0 &&
               parse_added_tokens(tok, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err) == 0) {
        rc = 0;
        for (size_t i = 0; i < tok->n_tmpl; i++)
            if (tok->tmpl[i] != TOK_TEMPLATE_SEQ && !tok_piece(tok, tok->tmpl[i]))
                rc = rs_errk(err, RS_EFORMAT, "%s: post_processor uses id %d, which is not in the vocab", path, tok->tmpl[i]);
        if (rc == 0 && tok_rebuild_tries(tok)) rc = rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    }
    cJSON_Delete(root);
    if (rc) {
        tok_free(tok);
        return -1;
    }
    if (resolve_special_ids(tok, err)) {
        tok_free(tok);
        return -1;
    }
    *out = tok;
    return 0;
}

void tok_free(rs_tokenizer *tok) {
    if (!tok) return;
    for (size_t i = 0; i < tok->n_ids; i++)
        if (tok->owned[i]) free(tok->pieces[i]);
    for (size_t i = 0; i < tok->n_special_list; i++) free(tok->special_list[i].content);
    for (size_t i = 0; i < tok->n_added_list; i++) free(tok->added_list[i].content);
    for (size_t i = 0; i < tok->n_norm; i++) {
        free(tok->norm[i].pattern);
        free(tok->norm[i].content);
    }
    for (size_t i = 0; i < tok->n_dec; i++) {
        free(tok->dec[i].pattern);
        free(tok->dec[i].content);
    }
    free(tok->special_list);
    free(tok->added_list);
    free(tok->norm);
    free(tok->dec);
    free(tok->tmpl);
    free(tok->pieces);
    free(tok->owned);
    free(tok->special);
    free(tok->is_added);
    free(tok->flags_by_id);
    free(tok->strings);
    free(tok->raw_trie.nodes);
    free(tok->norm_trie.nodes);
    tok_strmap_free(&tok->vocab_map);
    tok_strmap_free(&tok->added_map);
    pairmap_free(&tok->merges);
    free(tok->path);
    free(tok);
}

/* ---------------------------------------------------------------- accessors */

const char *tok_piece(const rs_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || (size_t)id >= tok->n_ids) return NULL;
    return tok->pieces[id];
}

int32_t tok_id(const rs_tokenizer *tok, const char *piece) {
    if (!tok || !piece) return -1;
    size_t len = strlen(piece);
    int32_t id = tok_strmap_get(&tok->added_map, tok->pieces, piece, len);
    return id >= 0 ? id : tok_strmap_get(&tok->vocab_map, tok->pieces, piece, len);
}

size_t tok_vocab_size(const rs_tokenizer *tok) { return tok ? tok->n_ids : 0; }
int32_t tok_bos_id(const rs_tokenizer *tok) { return tok ? tok->bos_id : -1; }
int32_t tok_eos_id(const rs_tokenizer *tok) { return tok ? tok->eos_id : -1; }
int32_t tok_pad_id(const rs_tokenizer *tok) { return tok ? tok->pad_id : -1; }
int32_t tok_unk_id(const rs_tokenizer *tok) { return tok ? tok->unk_id : -1; }
