/* Streaming parser for COCO annotation JSON. A DOM parser (cJSON) would build a tree of
 * ~100 M nodes for instances_train2017.json (450 MB, mostly segmentation polygons); this
 * reader walks the memory-mapped file once, keeps only the fields coco.h lists, and skips
 * every other value with a recursive validating skipper (JSON syntax and UTF-8 are fully
 * checked, skipped strings included). Consumed pages of the
 * mapping are dropped as it goes (MADV_DONTNEED) so resident memory stays small.
 * Strings are copied into a chunked arena (one free for a million captions/file names). */
#include "reprshift/coco.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "reprshift/fileio.h"
#include "base/jsonutil.h"

#define COCO_MAX_DEPTH 64
#define COCO_DROP_CHUNK ((size_t)64 << 20)

/* ---------------- arena ---------------- */

typedef struct coco_arena_block {
    struct coco_arena_block *next;
    size_t used, cap;
    char data[];
} coco_arena_block;

struct coco_arena {
    coco_arena_block *head;
};

static char *arena_strndup(struct coco_arena *a, const char *s, size_t n) {
    coco_arena_block *b = a->head;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > ((size_t)1 << 20) ? n + 1 : ((size_t)1 << 20);
        coco_arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        a->head = b = nb;
    }
    char *p = b->data + b->used;
    memcpy(p, s, n);
    p[n] = 0;
    b->used += n + 1;
    return p;
}

static void arena_free(struct coco_arena *a) {
    if (!a) return;
    for (coco_arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(a);
}

void coco_free(coco_data *d) {
    if (!d) return;
    free(d->images);
    free(d->categories);
    free(d->instances);
    free(d->captions);
    arena_free(d->arena);
    free(d);
}

/* Grow a dynamic array so index n is valid. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 256;
    void *p = realloc(*arr, nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* ---------------- parser ---------------- */

typedef struct {
    const char *buf;
    size_t n, pos;
    const char *what;
    rs_err *err;
    char *map_base; /* non-NULL when buf is an mmap we may drop pages of */
    size_t dropped;
    char *sb; /* scratch for unescaped strings */
    size_t sb_len, sb_cap;
    coco_data *d;
    size_t cap_img, cap_cat, cap_ins, cap_cap;
    int failed;
} parser;

static int failk(parser *p, rs_err_kind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Malformed content (or, for RS_ENOMEM, an allocation that failed while parsing). */
#define fail(p, ...) failk(p, RS_EFORMAT, __VA_ARGS__)
static int failk(parser *p, rs_err_kind kind, const char *fmt, ...) {
    if (p->failed) return -1; /* keep the innermost message */
    p->failed = 1;
    size_t line = 1, col = 1, end = p->pos < p->n ? p->pos : p->n;
    for (size_t i = 0; i < end; i++) {
        if (p->buf[i] == '\n') {
            line++;
            col = 1;
        } else
            col++;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rs_errk(p->err, kind, "%s: line %zu column %zu: %s", p->what, line, col, msg);
}

static void drop_consumed(parser *p) {
    if (!p->map_base || p->pos - p->dropped < COCO_DROP_CHUNK) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t upto = (p->pos / page) * page;
    if (upto > p->dropped) madvise(p->map_base + p->dropped, upto - p->dropped, MADV_DONTNEED);
    p->dropped = upto;
}

static inline void ws(parser *p) {
    while (p->pos < p->n) {
        char c = p->buf[p->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
        p->pos++;
    }
}

static int expect(parser *p, char c) {
    ws(p);
    if (p->pos >= p->n) return fail(p, "unexpected end of file (expected '%c')", c);
    if (p->buf[p->pos] != c) return fail(p, "expected '%c' but found '%c'", c, p->buf[p->pos]);
    p->pos++;
    return 0;
}

static int sb_put(parser *p, const char *s, size_t n) {
    if (p->sb_len + n + 1 > p->sb_cap) {
        size_t nc = p->sb_cap ? p->sb_cap : 256;
        while (nc < p->sb_len + n + 1) nc *= 2;
        char *q = realloc(p->sb, nc);
        if (!q) return failk(p, RS_ENOMEM, "out of memory");
        p->sb = q;
        p->sb_cap = nc;
    }
    memcpy(p->sb + p->sb_len, s, n);
    p->sb_len += n;
    p->sb[p->sb_len] = 0;
    return 0;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Parse a string (at '"') into p->sb, unescaped and UTF-8-checked. */
static int parse_string(parser *p) {
    ws(p);
    if (p->pos >= p->n || p->buf[p->pos] != '"') return fail(p, "expected a string");
    p->pos++;
    p->sb_len = 0;
    if (sb_put(p, "", 0)) return -1;
    for (;;) {
        size_t start = p->pos;
        while (p->pos < p->n && p->buf[p->pos] != '"' && p->buf[p->pos] != '\\' &&
               (unsigned char)p->buf[p->pos] >= 0x20)
            p->pos++;
        if (p->pos >= p->n) return fail(p, "unterminated string");
        if (sb_put(p, p->buf + start, p->pos - start)) return -1;
        char c = p->buf[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if ((unsigned char)c < 0x20) return fail(p, "control character in a string (must be escaped)");
        /* escape */
        if (p->pos + 1 >= p->n) return fail(p, "unterminated string");
        char e = p->buf[p->pos + 1];
        const char *rep = NULL;
        switch (e) {
        case '"': rep = "\""; break;
        case '\\': rep = "\\"; break;
        case '/': rep = "/"; break;
        case 'b': rep = "\b"; break;
        case 'f': rep = "\f"; break;
        case 'n': rep = "\n"; break;
        case 'r': rep = "\r"; break;
        case 't': rep = "\t"; break;
        case 'u': break;
        default: return fail(p, "invalid escape '\\%c' in a string", e);
        }
        if (rep) {
            if (sb_put(p, rep, 1)) return -1;
            p->pos += 2;
            continue;
        }
        unsigned cp;
        if (p->pos + 6 > p->n || hex4(p->buf + p->pos + 2, &cp)) return fail(p, "invalid \\u escape");
        p->pos += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (p->pos + 6 > p->n || p->buf[p->pos] != '\\' || p->buf[p->pos + 1] != 'u' ||
                hex4(p->buf + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return fail(p, "unpaired UTF-16 surrogate in a \\u escape");
            p->pos += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail(p, "unpaired UTF-16 surrogate in a \\u escape");
        if (cp == 0) return fail(p, "\\u0000 (NUL) in a string");
        char u[4];
        size_t k;
        if (cp < 0x80) u[0] = (char)cp, k = 1;
        else if (cp < 0x800) u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), k = 2;
        else if (cp < 0x10000)
            u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[2] = (char)(0x80 | (cp & 0x3F)),
            k = 3;
        else
            u[0] = (char)(0xF0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), k = 4;
        if (sb_put(p, u, k)) return -1;
    }
    if (!rs_utf8_valid(p->sb, p->sb_len)) return fail(p, "string is not valid UTF-8");
    return 0;
}

/* Skip a string without copying (at '"'). */
static int skip_string(parser *p) {
    p->pos++;
    const char *b = p->buf;
    size_t i = p->pos, n = p->n, start = p->pos;
    unsigned high = 0; /* any non-ASCII byte: only then is the UTF-8 check needed */
    while (i < n) {
        unsigned char c = (unsigned char)b[i];
        if (c == '"') {
            if (high && !rs_utf8_valid(b + start, i - start)) {
                p->pos = start;
                return fail(p, "string is not valid UTF-8");
            }
            p->pos = i + 1;
            return 0;
        }
        high |= c & 0x80;
        if (c == '\\') {
            if (i + 1 >= n) break;
            char e = b[i + 1];
            if (e == 'u') {
                unsigned cp;
                if (i + 6 > n || hex4(b + i + 2, &cp)) {
                    p->pos = i;
                    return fail(p, "invalid \\u escape");
                }
                i += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || !e) {
                p->pos = i;
                return fail(p, "invalid escape in a string");
            }
            i += 2;
            continue;
        }
        if (c < 0x20) {
            p->pos = i;
            return fail(p, "control character in a string (must be escaped)");
        }
        i++;
    }
    p->pos = n;
    return fail(p, "unterminated string");
}

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Scan a JSON number at p->pos (strict grammar). *is_int: no fraction/exponent. */
static int scan_number(parser *p, size_t *start, int *is_int) {
    const char *b = p->buf;
    size_t i = p->pos, n = p->n;
    *start = i;
    *is_int = 1;
    if (i < n && b[i] == '-') i++;
    if (i >= n || !is_digit(b[i])) return fail(p, "invalid number");
    if (b[i] == '0') i++;
    else
        while (i < n && is_digit(b[i])) i++;
    if (i < n && b[i] == '.') {
        *is_int = 0;
        i++;
        if (i >= n || !is_digit(b[i])) return fail(p, "invalid number (digit expected after '.')");
        while (i < n && is_digit(b[i])) i++;
    }
    if (i < n && (b[i] == 'e' || b[i] == 'E')) {
        *is_int = 0;
        i++;
        if (i < n && (b[i] == '+' || b[i] == '-')) i++;
        if (i >= n || !is_digit(b[i])) return fail(p, "invalid number (digit expected in exponent)");
        while (i < n && is_digit(b[i])) i++;
    }
    p->pos = i;
    return 0;
}

static int skip_value(parser *p, int depth);

static int skip_container(parser *p, int depth, char close) {
    if (depth >= COCO_MAX_DEPTH) return fail(p, "nesting deeper than %d", COCO_MAX_DEPTH);
    p->pos++;
    ws(p);
    if (p->pos < p->n && p->buf[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            ws(p);
            if (p->pos >= p->n || p->buf[p->pos] != '"') return fail(p, "expected a string key");
            if (skip_string(p) || expect(p, ':')) return -1;
        }
        if (skip_value(p, depth + 1)) return -1;
        ws(p);
        if (p->pos >= p->n) return fail(p, "unexpected end of file (missing '%c')", close);
        char c = p->buf[p->pos++];
        if (c == close) return 0;
        if (c != ',') {
            p->pos--;
            return fail(p, "expected ',' or '%c' but found '%c'", close, c);
        }
    }
}

static int skip_value(parser *p, int depth) {
    ws(p);
    if (p->pos >= p->n) return fail(p, "unexpected end of file (expected a value)");
    char c = p->buf[p->pos];
    switch (c) {
    case '{': return skip_container(p, depth, '}');
    case '[': return skip_container(p, depth, ']');
    case '"': return skip_string(p);
    case 't':
    case 'f':
    case 'n': {
        const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t l = strlen(lit);
        if (p->pos + l > p->n || memcmp(p->buf + p->pos, lit, l)) return fail(p, "invalid literal");
        p->pos += l;
        return 0;
    }
    default: {
        size_t s;
        int is_int;
        return scan_number(p, &s, &is_int);
    }
    }
}

/* Parse an integer value (a JSON number without fraction or exponent). */
static int parse_int(parser *p, const char *field, int64_t *out) {
    ws(p);
    size_t s;
    int is_int;
    if (p->pos >= p->n || (p->buf[p->pos] != '-' && !is_digit(p->buf[p->pos])))
        return fail(p, "%s: expected an integer", field);
    if (scan_number(p, &s, &is_int)) return -1;
    if (!is_int) {
        p->pos = s;
        return fail(p, "%s: expected an integer, found a fraction or exponent", field);
    }
    int neg = p->buf[s] == '-';
    uint64_t v = 0;
    for (size_t i = s + neg; i < p->pos; i++) {
        if (v > (uint64_t)(INT64_MAX - 9) / 10) {
            p->pos = s;
            return fail(p, "%s: integer out of range", field);
        }
        v = v * 10 + (uint64_t)(p->buf[i] - '0');
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* Iterate an object's keys: for each key calls on_key(p, ctx, key) positioned at the value;
 * on_key must consume the value (or return 1 to have it skipped). */
typedef int (*key_fn)(parser *p, void *ctx, const char *key);

static int parse_object(parser *p, void *ctx, key_fn on_key) {
    if (expect(p, '{')) return -1;
    ws(p);
    if (p->pos < p->n && p->buf[p->pos] == '}') {
        p->pos++;
        return 0;
    }
    for (;;) {
        if (parse_string(p)) return -1;
        char key[64];
        snprintf(key, sizeof key, "%s", p->sb);
        if (expect(p, ':')) return -1;
        int r = on_key(p, ctx, key);
        if (r < 0) return -1;
        if (r == 1 && skip_value(p, 2)) return -1;
        ws(p);
        if (p->pos >= p->n) return fail(p, "unexpected end of file (missing '}')");
        char c = p->buf[p->pos++];
        if (c == '}') return 0;
        if (c != ',') {
            p->pos--;
            return fail(p, "expected ',' or '}' but found '%c'", c);
        }
    }
}

static int parse_array(parser *p, void *ctx, int (*on_elem)(parser *, void *, size_t)) {
    if (expect(p, '[')) return -1;
    ws(p);
    if (p->pos < p->n && p->buf[p->pos] == ']') {
        p->pos++;
        return 0;
    }
    for (size_t i = 0;; i++) {
        if (on_elem(p, ctx, i)) return -1;
        drop_consumed(p);
        ws(p);
        if (p->pos >= p->n) return fail(p, "unexpected end of file (missing ']')");
        char c = p->buf[p->pos++];
        if (c == ']') return 0;
        if (c != ',') {
            p->pos--;
            return fail(p, "expected ',' or ']' but found '%c'", c);
        }
    }
}

/* ---- element handlers ---- */

enum { HAS_ID = 1, HAS_FILE = 2, HAS_W = 4, HAS_H = 8, HAS_IMG = 16, HAS_CAT = 32, HAS_CAP = 64, HAS_NAME = 128,
       HAS_SUPER = 256, HAS_CROWD = 512 };

typedef struct {
    unsigned seen;
    int64_t id, image_id, category_id, iscrowd, width, height;
    char *s1, *s2; /* arena strings */
    size_t index;
} elem;

static char *keep_string(parser *p, const char *field) {
    if (parse_string(p)) return NULL;
    char *s = arena_strndup(p->d->arena, p->sb, p->sb_len);
    if (!s) failk(p, RS_ENOMEM, "%s: out of memory", field);
    return s;
}

static int seen_twice(parser *p, elem *e, unsigned bit, const char *key) {
    if (e->seen & bit) return fail(p, "duplicate key \"%s\"", key);
    e->seen |= bit;
    return 0;
}

static int image_key(parser *p, void *ctx, const char *key) {
    elem *e = ctx;
    if (!strcmp(key, "id")) return seen_twice(p, e, HAS_ID, key) || parse_int(p, "images[].id", &e->id) ? -1 : 0;
    if (!strcmp(key, "width"))
        return seen_twice(p, e, HAS_W, key) || parse_int(p, "images[].width", &e->width) ? -1 : 0;
    if (!strcmp(key, "height"))
        return seen_twice(p, e, HAS_H, key) || parse_int(p, "images[].height", &e->height) ? -1 : 0;
    if (!strcmp(key, "file_name")) {
        if (seen_twice(p, e, HAS_FILE, key)) return -1;
        return (e->s1 = keep_string(p, "images[].file_name")) ? 0 : -1;
    }
    return 1;
}

static int image_elem(parser *p, void *ctx, size_t i) {
    (void)ctx;
    elem e = {0};
    size_t at = p->pos;
    if (parse_object(p, &e, image_key)) return -1;
    const char *miss = !(e.seen & HAS_ID) ? "id" : !(e.seen & HAS_FILE) ? "file_name" : !(e.seen & HAS_W) ? "width"
                       : !(e.seen & HAS_H) ? "height" : NULL;
    if (miss) {
        p->pos = at;
        return fail(p, "images[%zu]: missing \"%s\"", i, miss);
    }
    if (e.width <= 0 || e.height <= 0 || e.width > 1000000 || e.height > 1000000) {
        p->pos = at;
        return fail(p, "images[%zu] (id %lld): bad size %lldx%lld", i, (long long)e.id, (long long)e.width,
                    (long long)e.height);
    }
    coco_data *d = p->d;
    if (grow((void **)&d->images, &p->cap_img, d->n_images, sizeof *d->images)) return failk(p, RS_ENOMEM, "out of memory");
    d->images[d->n_images++] = (coco_image){e.id, e.s1, (int)e.width, (int)e.height, NULL};
    return 0;
}

static int ann_key(parser *p, void *ctx, const char *key) {
    elem *e = ctx;
    if (!strcmp(key, "id")) return seen_twice(p, e, HAS_ID, key) || parse_int(p, "annotations[].id", &e->id) ? -1 : 0;
    if (!strcmp(key, "image_id"))
        return seen_twice(p, e, HAS_IMG, key) || parse_int(p, "annotations[].image_id", &e->image_id) ? -1 : 0;
    if (!strcmp(key, "category_id"))
        return seen_twice(p, e, HAS_CAT, key) || parse_int(p, "annotations[].category_id", &e->category_id) ? -1 : 0;
    if (!strcmp(key, "iscrowd"))
        return seen_twice(p, e, HAS_CROWD, key) || parse_int(p, "annotations[].iscrowd", &e->iscrowd) ? -1 : 0;
    if (!strcmp(key, "caption")) {
        if (seen_twice(p, e, HAS_CAP, key)) return -1;
        return (e->s1 = keep_string(p, "annotations[].caption")) ? 0 : -1;
    }
    return 1;
}

static int ann_elem(parser *p, void *ctx, size_t i) {
    (void)ctx;
    elem e = {0};
    size_t at = p->pos;
    if (parse_object(p, &e, ann_key)) return -1;
    coco_data *d = p->d;
    const char *miss = !(e.seen & HAS_ID) ? "id" : !(e.seen & HAS_IMG) ? "image_id"
                       : !(e.seen & (HAS_CAT | HAS_CAP)) ? "category_id\" or \"caption" : NULL;
    if (miss) {
        p->pos = at;
        return fail(p, "annotations[%zu]: missing \"%s\"", i, miss);
    }
    if (e.seen & HAS_CAP) {
        if (grow((void **)&d->captions, &p->cap_cap, d->n_captions, sizeof *d->captions))
            return failk(p, RS_ENOMEM, "out of memory");
        d->captions[d->n_captions++] = (coco_caption){e.id, e.image_id, e.s1};
    } else {
        if (e.iscrowd != 0 && e.iscrowd != 1) {
            p->pos = at;
            return fail(p, "annotations[%zu]: iscrowd must be 0 or 1", i);
        }
        if (grow((void **)&d->instances, &p->cap_ins, d->n_instances, sizeof *d->instances))
            return failk(p, RS_ENOMEM, "out of memory");
        d->instances[d->n_instances++] = (coco_instance){e.id, e.image_id, e.category_id, (int)e.iscrowd};
    }
    return 0;
}

static int cat_key(parser *p, void *ctx, const char *key) {
    elem *e = ctx;
    if (!strcmp(key, "id")) return seen_twice(p, e, HAS_ID, key) || parse_int(p, "categories[].id", &e->id) ? -1 : 0;
    if (!strcmp(key, "name")) {
        if (seen_twice(p, e, HAS_NAME, key)) return -1;
        return (e->s1 = keep_string(p, "categories[].name")) ? 0 : -1;
    }
    if (!strcmp(key, "supercategory")) {
        if (seen_twice(p, e, HAS_SUPER, key)) return -1;
        return (e->s2 = keep_string(p, "categories[].supercategory")) ? 0 : -1;
    }
    return 1;
}

static int cat_elem(parser *p, void *ctx, size_t i) {
    (void)ctx;
    elem e = {0};
    size_t at = p->pos;
    if (parse_object(p, &e, cat_key)) return -1;
    const char *miss = !(e.seen & HAS_ID) ? "id" : !(e.seen & HAS_NAME) ? "name"
                       : !(e.seen & HAS_SUPER) ? "supercategory" : NULL;
    if (miss) {
        p->pos = at;
        return fail(p, "categories[%zu]: missing \"%s\"", i, miss);
    }
    coco_data *d = p->d;
    if (grow((void **)&d->categories, &p->cap_cat, d->n_categories, sizeof *d->categories))
        return failk(p, RS_ENOMEM, "out of memory");
    d->categories[d->n_categories++] = (coco_category){e.id, e.s1, e.s2};
    return 0;
}

static int top_key(parser *p, void *ctx, const char *key) {
    unsigned *seen = ctx;
    unsigned bit = !strcmp(key, "images") ? 1 : !strcmp(key, "annotations") ? 2 : !strcmp(key, "categories") ? 4 : 0;
    if (!bit) return 1;
    if (*seen & bit) return fail(p, "duplicate top-level key \"%s\"", key);
    *seen |= bit;
    ws(p);
    if (p->pos >= p->n || p->buf[p->pos] != '[') return fail(p, "\"%s\" must be an array", key);
    return parse_array(p, NULL, bit == 1 ? image_elem : bit == 2 ? ann_elem : cat_elem);
}

/* ---- sorting and cross-checks ---- */

static int cmp_i64(int64_t a, int64_t b) { return a < b ? -1 : a > b; }
static int cmp_image(const void *a, const void *b) {
    return cmp_i64(((const coco_image *)a)->id, ((const coco_image *)b)->id);
}
static int cmp_cat(const void *a, const void *b) {
    return cmp_i64(((const coco_category *)a)->id, ((const coco_category *)b)->id);
}
static int cmp_ins(const void *a, const void *b) {
    const coco_instance *x = a, *y = b;
    int c = cmp_i64(x->image_id, y->image_id);
    return c ? c : cmp_i64(x->id, y->id);
}
static int cmp_cap(const void *a, const void *b) {
    const coco_caption *x = a, *y = b;
    int c = cmp_i64(x->image_id, y->image_id);
    return c ? c : cmp_i64(x->id, y->id);
}
static int cmp_raw_i64(const void *a, const void *b) { return cmp_i64(*(const int64_t *)a, *(const int64_t *)b); }

/* Sort ids and report the first duplicate (returns 1 and sets *dup). */
static int find_dup(int64_t *ids, size_t n, int64_t *dup) {
    qsort(ids, n, sizeof *ids, cmp_raw_i64);
    for (size_t i = 1; i < n; i++)
        if (ids[i] == ids[i - 1]) {
            *dup = ids[i];
            return 1;
        }
    return 0;
}

static int finish(coco_data *d, const char *what, rs_err *err) {
    /* qsort with a NULL base is undefined even for 0 elements */
    if (d->n_images) qsort(d->images, d->n_images, sizeof *d->images, cmp_image);
    if (d->n_categories) qsort(d->categories, d->n_categories, sizeof *d->categories, cmp_cat);
    if (d->n_instances) qsort(d->instances, d->n_instances, sizeof *d->instances, cmp_ins);
    if (d->n_captions) qsort(d->captions, d->n_captions, sizeof *d->captions, cmp_cap);
    for (size_t i = 1; i < d->n_images; i++)
        if (d->images[i].id == d->images[i - 1].id)
            return rs_errk(err, RS_EFORMAT, "%s: duplicate image id %lld", what, (long long)d->images[i].id);
    for (size_t i = 1; i < d->n_categories; i++)
        if (d->categories[i].id == d->categories[i - 1].id)
            return rs_errk(err, RS_EFORMAT, "%s: duplicate category id %lld", what, (long long)d->categories[i].id);
    size_t n_ann = d->n_instances + d->n_captions;
    if (n_ann) {
        int64_t *ids = malloc(n_ann * sizeof *ids), dup;
        if (!ids) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
        for (size_t i = 0; i < d->n_instances; i++) ids[i] = d->instances[i].id;
        for (size_t i = 0; i < d->n_captions; i++) ids[d->n_instances + i] = d->captions[i].id;
        int has = find_dup(ids, n_ann, &dup);
        free(ids);
        if (has) return rs_errk(err, RS_EFORMAT, "%s: duplicate annotation id %lld", what, (long long)dup);
    }
    if (d->n_instances && !d->n_categories)
        return rs_errk(err, RS_EFORMAT, "%s: has instance annotations but no \"categories\" list", what);
    if ((d->n_instances || d->n_captions) && !d->n_images)
        return rs_errk(err, RS_EFORMAT, "%s: has annotations but no \"images\" list", what);
    for (size_t i = 0; i < d->n_instances; i++) {
        const coco_instance *a = &d->instances[i];
        if (coco_find_image(d, a->image_id) < 0)
            return rs_errk(err, RS_EFORMAT, "%s: annotation %lld refers to image_id %lld, which is not in \"images\"", what,
                           (long long)a->id, (long long)a->image_id);
        if (coco_find_category(d, a->category_id) < 0)
            return rs_errk(err, RS_EFORMAT, "%s: annotation %lld refers to category_id %lld, which is not in \"categories\"",
                           what, (long long)a->id, (long long)a->category_id);
    }
    for (size_t i = 0; i < d->n_captions; i++)
        if (coco_find_image(d, d->captions[i].image_id) < 0)
            return rs_errk(err, RS_EFORMAT, "%s: caption %lld refers to image_id %lld, which is not in \"images\"", what,
                           (long long)d->captions[i].id, (long long)d->captions[i].image_id);
    return 0;
}

static int parse_buf(const char *buf, size_t n, char *map_base, const char *what, coco_data **out, rs_err *err) {
    *out = NULL;
    coco_data *d = calloc(1, sizeof *d);
    if (!d || !(d->arena = calloc(1, sizeof *d->arena))) {
        free(d);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    }
    parser p = {.buf = buf, .n = n, .what = what, .err = err, .map_base = map_base, .d = d};
    unsigned seen = 0;
    int rc = -1;
    if (n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) p.pos = 3;
    ws(&p);
    if (p.pos >= n) {
        rs_errk(err, RS_EFORMAT, "%s: empty file (expected a COCO JSON object)", what);
        goto done;
    }
    if (buf[p.pos] != '{') {
        fail(&p, "not a COCO annotation file (top level must be a JSON object)");
        goto done;
    }
    if (parse_object(&p, &seen, top_key)) goto done;
    ws(&p);
    if (p.pos < n) {
        fail(&p, "trailing data after the top-level object");
        goto done;
    }
    if (!seen) {
        rs_errk(err, RS_EFORMAT, "%s: no \"images\", \"annotations\" or \"categories\" key (not a COCO annotation file)", what);
        goto done;
    }
    if (finish(d, what, err)) goto done;
    rc = 0;
done:
    free(p.sb);
    if (rc) coco_free(d);
    else *out = d;
    return rc;
}

int coco_parse(const char *buf, size_t n, const char *what, coco_data **out, rs_err *err) {
    return parse_buf(buf, n, NULL, what, out, err);
}

int coco_load(const char *path, coco_data **out, rs_err *err) {
    rs_mmap m = {0};
    *out = NULL;
    if (rs_mmap_open(&m, path, err)) return -1;
    if (!m.data) {
        rs_mmap_close(&m);
        return rs_errk(err, RS_EFORMAT, "%s: empty file (expected a COCO JSON object)", path);
    }
    madvise(m.data, m.size, MADV_SEQUENTIAL);
    int rc = parse_buf(m.data, m.size, m.data, path, out, err);
    rs_mmap_close(&m);
    return rc;
}

static void steal_arena(coco_data *dst, coco_data *src);

/* ---- lookups ---- */

long coco_find_image(const coco_data *d, int64_t id) {
    size_t lo = 0, hi = d->n_images;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->images[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < d->n_images && d->images[lo].id == id ? (long)lo : -1;
}

long coco_find_category(const coco_data *d, int64_t id) {
    size_t lo = 0, hi = d->n_categories;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->categories[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < d->n_categories && d->categories[lo].id == id ? (long)lo : -1;
}

/* First index in a sorted-by-image_id array (stride elem, image_id at offset off) with image_id >= id. */
static size_t lower_bound(const void *arr, size_t n, size_t elem, size_t off, int64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t v;
        memcpy(&v, (const char *)arr + mid * elem + off, sizeof v);
        if (v < id) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

void coco_image_instances(const coco_data *d, int64_t image_id, size_t *begin, size_t *end) {
    size_t o = offsetof(coco_instance, image_id);
    *begin = lower_bound(d->instances, d->n_instances, sizeof *d->instances, o, image_id);
    *end = lower_bound(d->instances, d->n_instances, sizeof *d->instances, o, image_id + 1);
}

void coco_image_captions(const coco_data *d, int64_t image_id, size_t *begin, size_t *end) {
    size_t o = offsetof(coco_caption, image_id);
    *begin = lower_bound(d->captions, d->n_captions, sizeof *d->captions, o, image_id);
    *end = lower_bound(d->captions, d->n_captions, sizeof *d->captions, o, image_id + 1);
}

int coco_add_captions(coco_data *dst, coco_data *src, size_t *n_dropped, rs_err *err) {
    size_t keep = 0, dropped = 0;
    for (size_t i = 0; i < src->n_captions; i++) {
        if (coco_find_image(dst, src->captions[i].image_id) >= 0) src->captions[keep++] = src->captions[i];
        else dropped++;
    }
    if (n_dropped) *n_dropped = dropped;
    if (src->n_captions && !keep) {
        int rc = rs_errk(err, RS_EFORMAT, "captions file covers none of the %zu annotated images (its %zu captions are for other "
                              "image ids, e.g. %lld): wrong captions file for this instances file?",
                         dst->n_images, src->n_captions, (long long)src->captions[0].image_id);
        coco_free(src);
        return rc;
    }
    if (!src->n_captions) {
        coco_free(src);
        return rs_errk(err, RS_EFORMAT, "captions file has no captions");
    }
    /* move captions and the arena blocks holding their strings into dst */
    coco_caption *merged = realloc(dst->captions, (dst->n_captions + keep) * sizeof *merged);
    if (!merged) {
        coco_free(src);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    memcpy(merged + dst->n_captions, src->captions, keep * sizeof *merged);
    dst->captions = merged;
    dst->n_captions += keep;
    steal_arena(dst, src);
    coco_free(src);
    qsort(dst->captions, dst->n_captions, sizeof *dst->captions, cmp_cap);
    return 0;
}

/* Move src's arena blocks into dst (strings stay valid, freed with dst). */
static void steal_arena(coco_data *dst, coco_data *src) {
    coco_arena_block *tail = src->arena->head;
    if (!tail) return;
    while (tail->next) tail = tail->next;
    tail->next = dst->arena->head;
    dst->arena->head = src->arena->head;
    src->arena->head = NULL;
}

static int append(void **dst, size_t *n_dst, const void *src, size_t n_src, size_t elem) {
    if (!n_src) return 0;
    void *p = realloc(*dst, (*n_dst + n_src) * elem);
    if (!p) return -1;
    memcpy((char *)p + *n_dst * elem, src, n_src * elem);
    *dst = p;
    *n_dst += n_src;
    return 0;
}

int coco_merge(coco_data *dst, coco_data *src, rs_err *err) {
    int rc = -1;
    if (dst->n_categories && src->n_categories) {
        int same = dst->n_categories == src->n_categories;
        for (size_t i = 0; same && i < dst->n_categories; i++)
            same = dst->categories[i].id == src->categories[i].id &&
                   !strcmp(dst->categories[i].name, src->categories[i].name) &&
                   !strcmp(dst->categories[i].supercategory, src->categories[i].supercategory);
        if (!same) {
            rs_errk(err, RS_EFORMAT, "merging COCO files: the two files have different category lists");
            goto done;
        }
    } else if (src->n_categories) {
        if (append((void **)&dst->categories, &dst->n_categories, src->categories, src->n_categories,
                   sizeof *src->categories))
            goto oom;
    }
    if (append((void **)&dst->images, &dst->n_images, src->images, src->n_images, sizeof *src->images) ||
        append((void **)&dst->instances, &dst->n_instances, src->instances, src->n_instances,
               sizeof *src->instances) ||
        append((void **)&dst->captions, &dst->n_captions, src->captions, src->n_captions, sizeof *src->captions))
        goto oom;
    steal_arena(dst, src);
    if (finish(dst, "merging COCO files", err)) goto done;
    rc = 0;
    goto done;
oom:
    rs_errk(err, RS_ENOMEM, "merging COCO files: out of memory");
done:
    coco_free(src);
    return rc;
}

int coco_set_images_dir(coco_data *d, const char *dir, rs_err *err) {
    char *s = arena_strndup(d->arena, dir, strlen(dir));
    if (!s) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->n_images; i++)
        if (!d->images[i].dir) d->images[i].dir = s;
    return 0;
}
