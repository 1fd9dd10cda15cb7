/* Word-list token categories (see categories.h). Lists are small, so lookup is linear. */
#include "analysis/categories.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/fileio.h"

struct rs_categories {
    int n, cap;
    char **words;
    int *cat;
    int n_cat;
    char *cats[64];
};

static const char *BUILTIN[][2] = {
    {"object", "dog cat horse bird cow sheep elephant bear zebra giraffe car bus truck train bicycle "
               "motorcycle airplane boat person man woman child boy girl table chair bed couch sofa "
               "tv laptop phone book clock vase bottle cup bowl plate fork knife spoon pizza cake "
               "banana apple orange sandwich umbrella bag tie kite ball tree flower house building "
               "window door street road sign light sky water grass wall floor"},
    {"colour", "red green blue yellow orange purple pink brown black white gray grey silver gold "
               "beige violet cyan magenta"},
    {"spatial", "left right above below under over behind front next near beside between top "
                "bottom middle center centre inside outside on in up down far close"},
    {"function", "the a an of to and or but is are was were be been it its this that these those "
                 "with for from by as at which who what there their they he she we you i not no "
                 "so if then than"},
};

static int add_cat(rs_categories *c, const char *name) {
    for (int i = 0; i < c->n_cat; i++)
        if (!strcmp(c->cats[i], name)) return i;
    if (c->n_cat == 64) return -1;
    c->cats[c->n_cat] = strdup(name);
    return c->cats[c->n_cat] ? c->n_cat++ : -1;
}

static int add_word(rs_categories *c, const char *w, size_t len, int cat) {
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 256;
        char **nw = realloc(c->words, (size_t)nc * sizeof *nw);
        if (!nw) return -1;
        c->words = nw;
        int *ncat = realloc(c->cat, (size_t)nc * sizeof *ncat);
        if (!ncat) return -1;
        c->cat = ncat;
        c->cap = nc;
    }
    char *s = strndup(w, len);
    if (!s) return -1;
    for (char *p = s; *p; p++) *p = (char)tolower((unsigned char)*p);
    c->words[c->n] = s;
    c->cat[c->n++] = cat;
    return 0;
}

int categories_builtin(rs_categories **out, rs_err *err) {
    rs_categories *c = calloc(1, sizeof *c);
    if (!c) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (size_t k = 0; k < sizeof BUILTIN / sizeof BUILTIN[0]; k++) {
        int cat = add_cat(c, BUILTIN[k][0]);
        const char *p = BUILTIN[k][1];
        while (*p && cat >= 0) {
            while (*p == ' ') p++;
            const char *q = p;
            while (*q && *q != ' ') q++;
            if (q > p && add_word(c, p, (size_t)(q - p), cat)) cat = -1;
            p = q;
        }
        if (cat < 0) {
            categories_free(c);
            return rs_errk(err, RS_ENOMEM, "out of memory");
        }
    }
    *out = c;
    return 0;
}

int categories_load(rs_categories **out, const char *path, rs_err *err) {
    char *buf;
    size_t n;
    if (rs_read_file(path, 16u << 20, &buf, &n, err)) return -1;
    rs_categories *c = calloc(1, sizeof *c);
    int rc = c ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
    int lineno = 0;
    for (char *line = buf; line && *line && !rc;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        lineno++;
        size_t L = strlen(line);
        if (L && line[L - 1] == '\r') line[--L] = 0;
        if (L && line[0] != '#') {
            char *comma = strchr(line, ',');
            if (!comma || comma == line || !comma[1] || strchr(comma + 1, ','))
                rc = rs_errf(err, "%s:%d: expected \"word,category\"", path, lineno);
            else {
                *comma = 0;
                int cat = add_cat(c, comma + 1);
                if (cat < 0) rc = rs_errf(err, "%s:%d: too many categories (max 64)", path, lineno);
                else if (add_word(c, line, strlen(line), cat)) rc = rs_errk(err, RS_ENOMEM, "out of memory");
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (!rc && c->n == 0) rc = rs_errf(err, "%s: no words", path);
    if (rc) categories_free(c);
    else *out = c;
    return rc;
}

const char *categories_lookup(const rs_categories *c, const char *piece) {
    if (!piece) return NULL;
    if (!strncmp(piece, "\xE2\x96\x81", 3)) piece += 3; /* "▁" word-start marker */
    char low[64];
    size_t L = strlen(piece);
    if (L == 0 || L >= sizeof low) return NULL;
    for (size_t i = 0; i <= L; i++) low[i] = (char)tolower((unsigned char)piece[i]);
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->words[i], low)) return c->cats[c->cat[i]];
    return NULL;
}

int categories_count(const rs_categories *c) { return c->n_cat; }
const char *categories_name(const rs_categories *c, int i) { return c->cats[i]; }

void categories_free(rs_categories *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) free(c->words[i]);
    for (int i = 0; i < c->n_cat; i++) free(c->cats[i]);
    free(c->words);
    free(c->cat);
    free(c);
}
