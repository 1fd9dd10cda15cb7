/* .npy header parsing and .npz (ZIP) reading via libzip.
 * Invariants: an npy_array returned to the caller has nbytes == numel * itemsize and data
 * holding exactly that many bytes; no allocation happens before the size it is based on has
 * been checked against the npy header and the caller's byte cap. */
#include "io/npz.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>
#include "reprshift/fileio.h"

static const char *DT_NAMES[] = {"<f4", "<f8", "<i4", "<i8"};
static const size_t DT_SIZES[] = {4, 8, 4, 8};

size_t npy_itemsize(npy_dtype dt) { return DT_SIZES[dt]; }
const char *npy_dtype_name(npy_dtype dt) { return DT_NAMES[dt]; }

/* ---- header dict parser: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } ---- */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* Python string literal with ' or " quotes (no escapes needed for npy keys/descr). */
static int parse_str(cursor *c, char *out, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return -1;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    out[n] = 0;
    return 0;
}

static int parse_word(cursor *c, const char *w) {
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && !memcmp(c->p, w, n)) {
        c->p += n;
        return 0;
    }
    return -1;
}

static int parse_shape(cursor *c, npy_array *a) {
    if (!eat(c, '(')) return -1;
    a->ndim = 0;
    for (;;) {
        skip_ws(c);
        if (eat(c, ')')) return 0;
        if (c->p >= c->end || !isdigit((unsigned char)*c->p)) return -1;
        int64_t v = 0;
        while (c->p < c->end && isdigit((unsigned char)*c->p)) {
            if (v > (INT64_MAX - 9) / 10) return -2; /* dimension overflows */
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 long suffix */
        if (a->ndim >= NPY_MAX_DIMS) return -3;
        a->shape[a->ndim++] = v;
        if (!eat(c, ',')) {
            if (eat(c, ')')) return 0;
            return -1;
        }
    }
}

int npy_parse_header(const void *buf, size_t len, npy_array *a, size_t *data_offset,
                     const char *what, rs_err *err) {
    const unsigned char *b = buf;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6))
        return rs_errk(err, RS_EFORMAT, "%s: not an npy array (bad magic)", what);
    int major = b[6];
    size_t hlen, pre;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        pre = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return rs_errk(err, RS_EFORMAT, "%s: truncated npy header", what);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        pre = 12;
    } else {
        return rs_errk(err, RS_EFORMAT, "%s: unsupported npy version %d.%d", what, major, b[7]);
    }
    if (hlen > NPY_MAX_HEADER_BYTES) return rs_errk(err, RS_EFORMAT, "%s: npy header too large (%zu bytes)", what, hlen);
    if (pre + hlen > len) return rs_errk(err, RS_EFORMAT, "%s: truncated npy header", what);

    cursor c = {(const char *)b + pre, (const char *)b + pre + hlen};
    int have_descr = 0, have_fo = 0, have_shape = 0;
    char key[32], descr[32];
    if (!eat(&c, '{')) return rs_errk(err, RS_EFORMAT, "%s: npy header is not a dict", what);
    for (;;) {
        if (eat(&c, '}')) break;
        if (parse_str(&c, key, sizeof key) || !eat(&c, ':'))
            return rs_errk(err, RS_EFORMAT, "%s: malformed npy header", what);
        if (!strcmp(key, "descr") && !have_descr) {
            if (parse_str(&c, descr, sizeof descr))
                return rs_errk(err, RS_EFORMAT, "%s: npy descr is not a simple dtype string (structured/object dtypes unsupported)", what);
            int found = -1;
            for (int i = 0; i < 4; i++)
                if (!strcmp(descr, DT_NAMES[i])) found = i;
            if (found < 0) {
                if (descr[0] == '>')
                    return rs_errk(err, RS_EFORMAT, "%s: big-endian dtype '%s' unsupported", what, descr);
                if (strchr(descr, 'O'))
                    return rs_errk(err, RS_EFORMAT, "%s: object dtype '%s' unsupported", what, descr);
                return rs_errk(err, RS_EFORMAT, "%s: unsupported dtype '%s' (need <f4, <f8, <i4 or <i8)", what, descr);
            }
            a->dtype = (npy_dtype)found;
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order") && !have_fo) {
            if (!parse_word(&c, "True"))
                return rs_errk(err, RS_EFORMAT, "%s: fortran_order True unsupported (save with C order)", what);
            if (parse_word(&c, "False")) return rs_errk(err, RS_EFORMAT, "%s: malformed fortran_order", what);
            have_fo = 1;
        } else if (!strcmp(key, "shape") && !have_shape) {
            int r = parse_shape(&c, a);
            if (r == -2) return rs_errk(err, RS_EFORMAT, "%s: npy shape dimension overflows", what);
            if (r == -3) return rs_errk(err, RS_EFORMAT, "%s: npy shape has more than %d dims", what, NPY_MAX_DIMS);
            if (r) return rs_errk(err, RS_EFORMAT, "%s: malformed npy shape", what);
            have_shape = 1;
        } else {
            return rs_errk(err, RS_EFORMAT, "%s: unexpected or duplicate npy header key '%s'", what, key);
        }
        if (!eat(&c, ',')) {
            if (eat(&c, '}')) break;
            return rs_errk(err, RS_EFORMAT, "%s: malformed npy header", what);
        }
    }
    if (!have_descr || !have_fo || !have_shape)
        return rs_errk(err, RS_EFORMAT, "%s: npy header lacks descr/fortran_order/shape", what);

    int64_t numel = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] != 0 && numel > INT64_MAX / 8 / a->shape[i])
            return rs_errk(err, RS_EFORMAT, "%s: npy shape product overflows", what);
        numel *= a->shape[i];
    }
    if ((uint64_t)numel * npy_itemsize(a->dtype) > (uint64_t)SIZE_MAX / 2)
        return rs_errk(err, RS_EFORMAT, "%s: npy array too large", what);
    a->numel = numel;
    a->nbytes = (size_t)numel * npy_itemsize(a->dtype);
    *data_offset = pre + hlen;
    return 0;
}

void npy_array_clear(npy_array *a) {
    if (!a) return;
    free(a->name);
    free(a->data);
    memset(a, 0, sizeof *a);
}

int npy_load(const char *path, size_t max_bytes, npy_array *out, rs_err *err) {
    rs_mmap m = {0};
    memset(out, 0, sizeof *out);
    if (rs_mmap_open(&m, path, err)) return -1;
    size_t off;
    if (npy_parse_header(m.data, m.size, out, &off, path, err)) goto fail;
    if (max_bytes && out->nbytes > max_bytes) {
        rs_errk(err, RS_EFORMAT, "%s: array of %zu bytes exceeds the limit of %zu", path, out->nbytes, max_bytes);
        goto fail;
    }
    if (m.size - off != out->nbytes) {
        rs_errk(err, RS_EFORMAT, "%s: data length %zu does not match header (%zu bytes)", path, m.size - off, out->nbytes);
        goto fail;
    }
    out->data = malloc(out->nbytes ? out->nbytes : 1);
    if (!out->data) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    memcpy(out->data, (const char *)m.data + off, out->nbytes);
    rs_mmap_close(&m);
    return 0;
fail:
    rs_mmap_close(&m);
    npy_array_clear(out);
    return -1;
}

/* ---- npz ---- */

static int read_exact(zip_file_t *zf, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        zip_int64_t r = zip_fread(zf, (char *)buf + got, n - got);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static int read_member(zip_t *za, zip_uint64_t idx, const char *path, size_t *budget, npy_array *a,
                       rs_err *err) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(za, idx, 0, &st) || !(st.valid & ZIP_STAT_NAME))
        return rs_errk(err, RS_EFORMAT, "%s: cannot stat member %llu", path, (unsigned long long)idx);
    const char *nm = st.name;
    size_t nl = strlen(nm);
    char what[1200];
    snprintf(what, sizeof what, "%s[%s]", path, nm);
    if (nl < 4 || strcmp(nm + nl - 4, ".npy")) return rs_errk(err, RS_EFORMAT, "%s: member is not a .npy file", what);

    zip_file_t *zf = zip_fopen_index(za, idx, 0);
    if (!zf) return rs_errk(err, RS_EIO, "%s: cannot open member: %s", what, zip_strerror(za));
    unsigned char pre[12];
    unsigned char *hdr = NULL;
    int rc = -1;
    if (read_exact(zf, pre, 10)) {
        rs_errk(err, RS_EFORMAT, "%s: truncated npy header", what);
        goto done;
    }
    size_t plen = 10, hlen;
    if (pre[6] == 1) hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    else if (pre[6] == 2 || pre[6] == 3) {
        if (read_exact(zf, pre + 10, 2)) {
            rs_errk(err, RS_EFORMAT, "%s: truncated npy header", what);
            goto done;
        }
        plen = 12;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        hlen = 0; /* npy_parse_header reports the bad magic/version */
    }
    if (hlen > NPY_MAX_HEADER_BYTES) {
        rs_errk(err, RS_EFORMAT, "%s: npy header too large (%zu bytes)", what, hlen);
        goto done;
    }
    hdr = malloc(plen + hlen + 1);
    if (!hdr) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
        goto done;
    }
    memcpy(hdr, pre, plen);
    if (read_exact(zf, hdr + plen, hlen)) {
        rs_errk(err, RS_EFORMAT, "%s: truncated npy header", what);
        goto done;
    }
    size_t off;
    if (npy_parse_header(hdr, plen + hlen, a, &off, what, err)) goto done;
    /* The npy header fixes the member's size; the zip directory must agree, and the data
     * must fit the remaining budget, all before we allocate. */
    if ((st.valid & ZIP_STAT_SIZE) && st.size != (zip_uint64_t)(off + a->nbytes)) {
        rs_errk(err, RS_EFORMAT, "%s: member size %llu does not match its npy header (%zu bytes)", what,
                (unsigned long long)st.size, off + a->nbytes);
        goto done;
    }
    if (a->nbytes > *budget) {
        rs_errk(err, RS_EFORMAT, "%s: decoded size exceeds the limit (%zu bytes needed, %zu left)", what, a->nbytes, *budget);
        goto done;
    }
    a->data = malloc(a->nbytes ? a->nbytes : 1);
    if (!a->data) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory for %zu bytes", what, a->nbytes);
        goto done;
    }
    if (read_exact(zf, a->data, a->nbytes)) {
        rs_errk(err, RS_EIO, "%s: member data truncated or corrupt: %s", what, zip_file_strerror(zf));
        goto done;
    }
    unsigned char extra;
    zip_int64_t r = zip_fread(zf, &extra, 1); /* also makes libzip verify the CRC */
    if (r != 0) {
        rs_errk(err, RS_EIO, "%s: %s", what, r > 0 ? "more data than the npy header claims" : zip_file_strerror(zf));
        goto done;
    }
    a->name = strndup(nm, nl - 4);
    if (!a->name) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
        goto done;
    }
    *budget -= a->nbytes;
    rc = 0;
done:
    free(hdr);
    if (zip_fclose(zf) && rc == 0) rc = rs_errk(err, RS_EFORMAT, "%s: checksum or read error", what);
    if (rc) npy_array_clear(a);
    return rc;
}

int npz_open(npz_file **out, const char *path, size_t max_bytes, rs_err *err) {
    *out = NULL;
    int zerr = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        rs_errk(err,
                zerr == ZIP_ER_MEMORY                                                ? RS_ENOMEM
                : zerr == ZIP_ER_OPEN || zerr == ZIP_ER_READ || zerr == ZIP_ER_NOENT ? RS_EIO
                                                                                     : RS_EFORMAT,
                "%s: cannot open as npz (zip): %s", path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return -1;
    }
    zip_int64_t n = zip_get_num_entries(za, 0);
    if (n < 0 || n > 100000) {
        zip_close(za);
        return rs_errk(err, RS_EFORMAT, "%s: bad number of npz members", path);
    }
    npz_file *z = calloc(1, sizeof *z);
    if (z) {
        z->path = strdup(path);
        z->arrays = calloc((size_t)n + 1, sizeof *z->arrays);
    }
    if (!z || !z->path || !z->arrays) {
        zip_close(za);
        npz_close(z);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    }
    size_t budget = max_bytes ? max_bytes : NPZ_DEFAULT_MAX_BYTES;
    for (zip_int64_t i = 0; i < n; i++) {
        if (read_member(za, (zip_uint64_t)i, path, &budget, &z->arrays[z->n], err)) {
            zip_discard(za);
            npz_close(z);
            return -1;
        }
        for (int j = 0; j < z->n; j++)
            if (!strcmp(z->arrays[j].name, z->arrays[z->n].name)) {
                rs_errk(err, RS_EFORMAT, "%s: duplicate member '%s'", path, z->arrays[j].name);
                z->n++;
                zip_discard(za);
                npz_close(z);
                return -1;
            }
        z->n++;
    }
    zip_discard(za);
    *out = z;
    return 0;
}

const npy_array *npz_get(const npz_file *z, const char *name) {
    for (int i = 0; z && i < z->n; i++)
        if (!strcmp(z->arrays[i].name, name)) return &z->arrays[i];
    return NULL;
}

void npz_close(npz_file *z) {
    if (!z) return;
    for (int i = 0; i < z->n; i++) npy_array_clear(&z->arrays[i]);
    free(z->arrays);
    free(z->path);
    free(z);
}

void npy_to_f32(const npy_array *a, float *dst) {
    for (int64_t i = 0; i < a->numel; i++) {
        switch (a->dtype) {
        case NPY_F4: dst[i] = ((const float *)a->data)[i]; break;
        case NPY_F8: dst[i] = (float)((const double *)a->data)[i]; break;
        case NPY_I4: dst[i] = (float)((const int32_t *)a->data)[i]; break;
        case NPY_I8: dst[i] = (float)((const int64_t *)a->data)[i]; break;
        }
    }
}

/* Floats must be whole numbers inside int64's range: casting NaN or an out-of-range value
 * is undefined behaviour in C, and a fractional id is a bug in the file, not something to
 * truncate silently. 2^63 is exact as a double; the range is [-2^63, 2^63). */
static int f64_to_i64(double v, int64_t *out) {
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0) || v != (double)(int64_t)v)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int npy_to_i64(const npy_array *a, int64_t *dst) {
    for (int64_t i = 0; i < a->numel; i++) {
        switch (a->dtype) {
        case NPY_F4: if (f64_to_i64(((const float *)a->data)[i], &dst[i])) return -1; break;
        case NPY_F8: if (f64_to_i64(((const double *)a->data)[i], &dst[i])) return -1; break;
        case NPY_I4: dst[i] = ((const int32_t *)a->data)[i]; break;
        case NPY_I8: dst[i] = ((const int64_t *)a->data)[i]; break;
        }
    }
    return 0;
}
