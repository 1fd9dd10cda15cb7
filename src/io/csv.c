/* RFC 4180 CSV reader/writer. The reader is a single pass over the whole buffer; the
 * invariant is that `line` is always the 1-based line of buf[pos], so every message can
 * point at the record (and, for an unterminated quote, at the line the quote opened).
 * Blank lines between records are skipped, as Python's csv.DictReader does. */
#include "io/csv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/fileio.h"
#include "base/jsonutil.h"

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

static int sb_put(sbuf *b, char c) {
    if (b->len + 1 >= b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        char *p = realloc(b->buf, nc);
        if (!p) return -1;
        b->buf = p;
        b->cap = nc;
    }
    b->buf[b->len++] = c;
    b->buf[b->len] = 0;
    return 0;
}

static char *sb_take(sbuf *b) {
    char *s = b->len ? b->buf : strdup("");
    if (!b->len) free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
    return s;
}

typedef struct {
    char **v;
    size_t n, cap;
} strvec;

static int sv_push(strvec *sv, char *s) {
    if (!s) return -1;
    if (sv->n == sv->cap) {
        size_t nc = sv->cap ? sv->cap * 2 : 64;
        char **p = realloc(sv->v, nc * sizeof *p);
        if (!p) {
            free(s);
            return -1;
        }
        sv->v = p;
        sv->cap = nc;
    }
    sv->v[sv->n++] = s;
    return 0;
}

static void sv_free(strvec *sv) {
    for (size_t i = 0; i < sv->n; i++) free(sv->v[i]);
    free(sv->v);
}

/* Parse one record starting at *pos into fields (appended to sv). Returns 0, or -1 with err. */
static int parse_record(const char *buf, size_t n, size_t *pos, size_t *line, strvec *sv, const char *what,
                        rs_err *err) {
    size_t p = *pos;
    sbuf f = {0};
    for (;;) {
        if (p < n && buf[p] == '"') {
            size_t open_line = *line;
            p++;
            for (;;) {
                if (p >= n) {
                    free(f.buf);
                    return rs_errk(err, RS_EFORMAT, "%s: line %zu: unterminated quoted field (the quote opened on this line "
                                   "is never closed before the end of the file)", what, open_line);
                }
                char c = buf[p];
                if (c == '"') {
                    if (p + 1 < n && buf[p + 1] == '"') {
                        if (sb_put(&f, '"')) goto oom;
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (c == '\n') (*line)++;
                if (sb_put(&f, c)) goto oom;
                p++;
            }
            if (p < n && buf[p] != ',' && buf[p] != '\n' && !(buf[p] == '\r' && p + 1 < n && buf[p + 1] == '\n')) {
                free(f.buf);
                return rs_errk(err, RS_EFORMAT, "%s: line %zu: unexpected character '%c' after a closing quote", what, *line,
                               buf[p]);
            }
        } else {
            while (p < n && buf[p] != ',' && buf[p] != '\n' && buf[p] != '\r') {
                if (buf[p] == '"') {
                    free(f.buf);
                    return rs_errk(err, RS_EFORMAT, "%s: line %zu: quote inside an unquoted field (quote the whole field "
                                   "and double the inner quotes)", what, *line);
                }
                if (sb_put(&f, buf[p])) goto oom;
                p++;
            }
            if (p < n && buf[p] == '\r' && !(p + 1 < n && buf[p + 1] == '\n')) {
                free(f.buf);
                return rs_errk(err, RS_EFORMAT, "%s: line %zu: carriage return not followed by a line feed", what, *line);
            }
        }
        if (sv_push(sv, sb_take(&f))) goto oom;
        if (p < n && buf[p] == ',') {
            p++;
            continue;
        }
        if (p < n && buf[p] == '\r') p++;
        if (p < n && buf[p] == '\n') {
            p++;
            (*line)++;
        }
        *pos = p;
        return 0;
    }
oom:
    free(f.buf);
    return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
}

int rs_csv_parse(const char *buf, size_t n, const char *what, rs_csv **out, rs_err *err) {
    *out = NULL;
    if (memchr(buf, 0, n)) return rs_errk(err, RS_EFORMAT, "%s: contains a NUL byte (not a text CSV file)", what);
    if (!rs_utf8_valid(buf, n)) return rs_errk(err, RS_EFORMAT, "%s: not valid UTF-8", what);
    size_t pos = 0, line = 1;
    if (n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) pos = 3; /* byte-order mark written by spreadsheets */
    strvec cells = {0};
    size_t *lines = NULL, n_lines_cap = 0, n_rows = 0;
    rs_csv *t = calloc(1, sizeof *t);
    if (!t) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    int n_cols = -1;
    while (pos < n) {
        if (buf[pos] == '\n' || (buf[pos] == '\r' && pos + 1 < n && buf[pos + 1] == '\n')) {
            pos += buf[pos] == '\r' ? 2 : 1; /* blank line */
            line++;
            continue;
        }
        size_t rec_line = line, before = cells.n;
        if (parse_record(buf, n, &pos, &line, &cells, what, err)) goto fail;
        size_t got = cells.n - before;
        if (n_cols < 0) {
            if (got > 100000) {
                rs_errk(err, RS_EFORMAT, "%s: header has %zu columns (too many)", what, got);
                goto fail;
            }
            n_cols = (int)got;
            for (int i = 0; i < n_cols; i++)
                for (int j = 0; j < i; j++)
                    if (!strcmp(cells.v[i], cells.v[j])) {
                        rs_errk(err, RS_EFORMAT, "%s: line %zu: duplicate column name '%s' in the header", what, rec_line,
                                cells.v[i]);
                        goto fail;
                    }
            continue;
        }
        if (got != (size_t)n_cols) {
            rs_errk(err, RS_EFORMAT, "%s: line %zu: %zu fields, but the header has %d", what, rec_line, got, n_cols);
            goto fail;
        }
        if (n_rows == n_lines_cap) {
            size_t nc = n_lines_cap ? n_lines_cap * 2 : 64;
            size_t *p = realloc(lines, nc * sizeof *p);
            if (!p) {
                rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
                goto fail;
            }
            lines = p;
            n_lines_cap = nc;
        }
        lines[n_rows++] = rec_line;
    }
    if (n_cols < 0) {
        rs_errk(err, RS_EFORMAT, "%s: empty CSV (no header row)", what);
        goto fail;
    }
    t->n_cols = n_cols;
    t->n_rows = n_rows;
    t->header = malloc((size_t)n_cols * sizeof *t->header);
    t->cells = malloc((n_rows ? n_rows : 1) * (size_t)n_cols * sizeof *t->cells + 1);
    if (!t->header || !t->cells) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
        goto fail;
    }
    memcpy(t->header, cells.v, (size_t)n_cols * sizeof *t->header);
    if (n_rows) memcpy(t->cells, cells.v + n_cols, n_rows * (size_t)n_cols * sizeof *t->cells);
    free(cells.v);
    t->row_line = lines;
    *out = t;
    return 0;
fail:
    sv_free(&cells);
    free(lines);
    free(t->header);
    free(t->cells);
    free(t);
    return -1;
}

int rs_csv_load(const char *path, size_t max_bytes, rs_csv **out, rs_err *err) {
    char *buf;
    size_t len;
    *out = NULL;
    if (rs_read_file(path, max_bytes, &buf, &len, err)) return -1;
    int rc = rs_csv_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}

void rs_csv_free(rs_csv *t) {
    if (!t) return;
    for (int i = 0; i < t->n_cols; i++) free(t->header[i]);
    for (size_t i = 0; i < t->n_rows * (size_t)t->n_cols; i++) free(t->cells[i]);
    free(t->header);
    free(t->cells);
    free(t->row_line);
    free(t);
}

int rs_csv_col(const rs_csv *t, const char *name) {
    for (int i = 0; i < t->n_cols; i++)
        if (!strcmp(t->header[i], name)) return i;
    return -1;
}

const char *rs_csv_cell(const rs_csv *t, size_t row, int col) {
    return t->cells[row * (size_t)t->n_cols + (size_t)col];
}

int rs_csv_needs_quotes(const char *s) {
    if (!s || !*s) return 0;
    return strpbrk(s, ",\"\r\n") != NULL;
}

void rs_csv_write_field(FILE *fp, const char *s) {
    if (!s) return;
    if (!rs_csv_needs_quotes(s)) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', fp);
        fputc(*p, fp);
    }
    fputc('"', fp);
}

int rs_csv_write_row(FILE *fp, const char *const *fields, int n) {
    /* a row of one empty field would be a blank line, which readers skip: quote it */
    if (n == 1 && (!fields[0] || !fields[0][0])) fputs("\"\"", fp);
    else for (int i = 0; i < n; i++) {
        if (i) fputc(',', fp);
        rs_csv_write_field(fp, fields[i]);
    }
    fputc('\n', fp);
    return ferror(fp) ? -1 : 0;
}
