/* cJSON helpers: strict input checks before parsing, typed field access. */
#include "base/jsonutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/fileio.h"

int rs_utf8_valid(const char *buf, size_t n) {
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        int len;
        unsigned cp;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return 0;
        if (i + (size_t)len > n) return 0;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
            return 0; /* overlong */
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += (size_t)len;
    }
    return 1;
}

/* Bracket depth outside strings: rejects deeply nested input before cJSON recurses. */
static int json_depth_ok(const char *buf, size_t n, int max_depth) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') in_str = 1;
        else if (c == '[' || c == '{') {
            if (++depth > max_depth) return 0;
        } else if (c == ']' || c == '}') depth--;
    }
    return 1;
}

int rs_json_parse(const char *buf, size_t n, const char *what, cJSON **out, rs_err *err) {
    *out = NULL;
    if (!rs_utf8_valid(buf, n)) return rs_errk(err, RS_EFORMAT, "%s: not valid UTF-8", what);
    if (memchr(buf, '\0', n)) return rs_errk(err, RS_EFORMAT, "%s: contains a NUL byte", what);
    if (!json_depth_ok(buf, n, RS_JSON_MAX_DEPTH))
        return rs_errk(err, RS_EFORMAT, "%s: JSON nested deeper than %d levels", what, RS_JSON_MAX_DEPTH);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, n, &end, 0);
    if (!j) {
        size_t off = end ? (size_t)(end - buf) : 0;
        return rs_errk(err, RS_EFORMAT, "%s: malformed JSON near byte %zu", what, off);
    }
    /* Only whitespace may follow the value. */
    for (const char *p = end; p && p < buf + n; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(j);
            return rs_errk(err, RS_EFORMAT, "%s: trailing data after JSON value at byte %zu", what,
                           (size_t)(p - buf));
        }
    *out = j;
    return 0;
}

int rs_json_load(const char *path, size_t max_bytes, cJSON **out, rs_err *err) {
    char *buf;
    size_t n;
    *out = NULL;
    if (rs_read_file(path, max_bytes, &buf, &n, err)) return -1;
    int rc = rs_json_parse(buf, n, path, out, err);
    free(buf);
    return rc;
}

int rs_json_is_int(const cJSON *x, int64_t lo, int64_t hi) {
    if (!cJSON_IsNumber(x)) return 0;
    double v = x->valuedouble;
    if (!isfinite(v) || v != floor(v)) return 0;
    return v >= (double)lo && v <= (double)hi;
}

int rs_json_int(const cJSON *obj, const char *key, int64_t lo, int64_t hi, int has_default,
                int64_t def, int64_t *out, const char *what, rs_err *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!x || cJSON_IsNull(x)) {
        if (has_default) { *out = def; return 0; }
        return rs_errk(err, RS_EFORMAT, "%s: missing required field \"%s\"", what, key);
    }
    if (!rs_json_is_int(x, lo, hi))
        return rs_errk(err, RS_EFORMAT, "%s: field \"%s\" must be an integer in [%lld, %lld]", what, key,
                       (long long)lo, (long long)hi);
    *out = (int64_t)x->valuedouble;
    return 0;
}

int rs_json_num(const cJSON *obj, const char *key, int has_default, double def, double *out,
                const char *what, rs_err *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!x || cJSON_IsNull(x)) {
        if (has_default) { *out = def; return 0; }
        return rs_errk(err, RS_EFORMAT, "%s: missing required field \"%s\"", what, key);
    }
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
        return rs_errk(err, RS_EFORMAT, "%s: field \"%s\" must be a finite number", what, key);
    *out = x->valuedouble;
    return 0;
}

static int buf_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (*len + n + 1 > nc) nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return -1;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

int rs_json_append_raw(char **buf, size_t *len, size_t *cap, const char *s) {
    return buf_put(buf, len, cap, s, strlen(s));
}

int rs_json_append_string(char **buf, size_t *len, size_t *cap, const char *s) {
    if (buf_put(buf, len, cap, "\"", 1)) return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        const char *out = NULL;
        switch (*p) {
        case '"': out = "\\\""; break;
        case '\\': out = "\\\\"; break;
        case '\n': out = "\\n"; break;
        case '\r': out = "\\r"; break;
        case '\t': out = "\\t"; break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                out = esc;
            }
        }
        if (out ? buf_put(buf, len, cap, out, strlen(out)) : buf_put(buf, len, cap, (const char *)p, 1))
            return -1;
    }
    return buf_put(buf, len, cap, "\"", 1);
}

void rs_json_write_string(FILE *fp, const char *s) {
    char *b = NULL;
    size_t len = 0, cap = 0;
    if (rs_json_append_string(&b, &len, &cap, s) == 0) fwrite(b, 1, len, fp);
    free(b);
}

const char *rs_json_fmt_num(char *buf, size_t size, const char *fmt, double x) {
    if (!isfinite(x)) snprintf(buf, size, "null");
    else snprintf(buf, size, fmt, x);
    return buf;
}

void rs_json_write_num(FILE *fp, const char *fmt, double x) {
    char b[RS_JSON_NUM_SIZE];
    fputs(rs_json_fmt_num(b, sizeof b, fmt, x), fp);
}

int rs_json_append_num(char **buf, size_t *len, size_t *cap, const char *fmt, double x) {
    char b[RS_JSON_NUM_SIZE];
    return rs_json_append_raw(buf, len, cap, rs_json_fmt_num(b, sizeof b, fmt, x));
}

cJSON *rs_json_number(double x) {
    return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull();
}

cJSON *rs_json_stat(double v, double lo, double hi) {
    cJSON *o = cJSON_CreateObject();
    if (o && (!rs_json_add_num(o, "value", v) || !rs_json_add_num(o, "ci_lo", lo) || !rs_json_add_num(o, "ci_hi", hi))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

cJSON *rs_json_add_num(cJSON *obj, const char *key, double x) {
    cJSON *v = rs_json_number(x);
    if (v && !cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        v = NULL;
    }
    return v;
}
