/* Activation store reader: a finished store directory (every shard's size and crc32
 * checked against index.json) or one safetensors file treated as a one-shard store.
 * Tensors are concatenated along dim 0 across shards. */
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "reprshift/fileio.h"

struct store_reader {
    char *where;        /* path given, for messages */
    int n;
    char **paths, **rows_paths;
    st_set **sets;
};

void store_reader_close(store_reader *r) {
    if (!r) return;
    for (int k = 0; k < r->n; k++) {
        free(r->paths[k]);
        free(r->rows_paths[k]);
        st_close(r->sets[k]);
    }
    free(r->paths);
    free(r->rows_paths);
    free(r->sets);
    free(r->where);
    free(r);
}

static int alloc_shards(store_reader *r, int n, rs_err *err) {
    r->paths = calloc((size_t)n, sizeof *r->paths);
    r->rows_paths = calloc((size_t)n, sizeof *r->rows_paths);
    r->sets = calloc((size_t)n, sizeof *r->sets);
    if (!r->paths || !r->rows_paths || !r->sets) return rs_errk(err, RS_ENOMEM, "%s: out of memory", r->where);
    r->n = n; /* only now: store_reader_close walks n entries of all three */
    return 0;
}

/* Check one file against the size and crc32 recorded in the index. */
static int verify(const char *path, int64_t bytes, uint32_t crc, rs_err *err) {
    uint32_t c;
    int64_t b;
    if (store_file_crc32(path, &c, &b, err)) return -1;
    if (b != bytes) return rs_errf(err, "%s: %lld bytes, index says %lld (damaged store)", path, (long long)b, (long long)bytes);
    if (c != crc) return rs_errf(err, "%s: crc32 %08x, index says %08x (damaged store)", path, (unsigned)c, (unsigned)crc);
    return 0;
}

static int open_dir(store_reader *r, const char *dir, const char *index_path, rs_err *err) {
    store_index x;
    if (store_index_load(index_path, &x, err)) return -1;
    int rc = -1;
    if (!x.complete) {
        rs_errf(err, "%s: store is incomplete (%lld of %lld shards); resume the run that writes it", dir,
                (long long)x.n_shards, (long long)((x.n_inputs + x.shard_inputs - 1) / x.shard_inputs));
        goto out;
    }
    if (alloc_shards(r, (int)x.n_shards, err)) goto out;
    for (int k = 0; k < r->n; k++) {
        char name[64];
        store_shard_name(k, 0, name, sizeof name);
        r->paths[k] = rs_path_join(dir, name);
        if (!r->paths[k]) { rs_errk(err, RS_ENOMEM, "%s: out of memory", dir); goto out; }
        if (verify(r->paths[k], x.shards[k].bytes, x.shards[k].crc, err)) goto out;
        if (x.shards[k].has_rows_file) {
            store_shard_name(k, 1, name, sizeof name);
            r->rows_paths[k] = rs_path_join(dir, name);
            if (!r->rows_paths[k]) { rs_errk(err, RS_ENOMEM, "%s: out of memory", dir); goto out; }
            if (verify(r->rows_paths[k], x.shards[k].rows_bytes, x.shards[k].rows_crc, err)) goto out;
        }
        if (st_open(&r->sets[k], r->paths[k], err)) goto out;
        /* The shard must hold exactly the indexed tensors with the indexed shapes. */
        if (r->sets[k]->n_tensors != x.n_schema) {
            rs_errf(err, "%s: %d tensors, index lists %d", r->paths[k], r->sets[k]->n_tensors, x.n_schema);
            goto out;
        }
        for (int i = 0; i < x.n_schema; i++) {
            const st_tensor *t = st_get(r->sets[k], x.schema[i].name);
            int ok = t && t->dtype == x.schema[i].dtype && t->ndim == x.schema[i].ndim && t->shape[0] == x.shards[k].rows[i];
            for (int d = 1; ok && d < t->ndim; d++) ok = t->shape[d] == x.schema[i].shape[d];
            if (!ok) {
                rs_errf(err, "%s: tensor \"%s\" missing or not as the index describes", r->paths[k], x.schema[i].name);
                goto out;
            }
        }
    }
    rc = 0;
out:
    store_index_free(&x);
    return rc;
}

int store_reader_open(store_reader **out, const char *path, rs_err *err) {
    *out = NULL;
    store_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->where = strdup(path))) {
        free(r);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    }
    int rc;
    if (rs_is_dir(path)) {
        char *ip = rs_path_join(path, STORE_INDEX_NAME);
        if (!ip) rc = rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
        else if (!rs_path_exists(ip)) rc = rs_errf(err, "%s: not an activation store (no %s)", path, STORE_INDEX_NAME);
        else rc = open_dir(r, path, ip, err);
        free(ip);
    } else if (rs_ends_with(path, ".json")) {
        char *dir = strdup(path);
        if (!dir) rc = rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
        else {
            char *slash = strrchr(dir, '/');
            if (slash) *slash = '\0';
            else strcpy(dir, ".");
            rc = open_dir(r, dir, path, err);
        }
        free(dir);
    } else {
        /* A single safetensors file (reprshift extract output). */
        rc = alloc_shards(r, 1, err);
        if (!rc) {
            r->paths[0] = strdup(path);
            size_t n = strlen(path) + 16;
            char *rp = malloc(n);
            if (!r->paths[0] || !rp) {
                free(rp);
                rc = rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
            } else {
                snprintf(rp, n, "%s.rows.jsonl", path);
                if (rs_path_exists(rp)) r->rows_paths[0] = rp;
                else free(rp);
                rc = st_open(&r->sets[0], path, err);
            }
        }
    }
    if (rc) {
        store_reader_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

int store_reader_n_shards(const store_reader *r) { return r->n; }
const char *store_reader_shard_path(const store_reader *r, int k) { return k >= 0 && k < r->n ? r->paths[k] : NULL; }
const char *store_reader_rows_path(const store_reader *r, int k) { return k >= 0 && k < r->n ? r->rows_paths[k] : NULL; }
const st_set *store_reader_shard(const store_reader *r, int k) { return k >= 0 && k < r->n ? r->sets[k] : NULL; }

/* Find name in every shard with consistent dtype and row shape; total rows and row size. */
static int gather(const store_reader *r, const char *name, const st_tensor **ts, int64_t *rows, int64_t *row_elems,
                  rs_err *err) {
    int64_t total = 0, re = 1;
    for (int k = 0; k < r->n; k++) {
        const st_tensor *t = st_get(r->sets[k], name);
        if (!t) return rs_errf(err, "%s: no tensor \"%s\"", r->paths[k], name);
        if (t->ndim < 1) return rs_errf(err, "%s: tensor \"%s\" is a scalar, not rows", r->paths[k], name);
        int64_t e = 1;
        for (int d = 1; d < t->ndim; d++) e *= t->shape[d];
        if (k && (e != re || t->dtype != ts[0]->dtype || t->ndim != ts[0]->ndim))
            return rs_errf(err, "%s: tensor \"%s\" has another dtype or row shape than in %s", r->paths[k], name,
                           r->paths[0]);
        re = e;
        ts[k] = t;
        total += t->shape[0];
    }
    *rows = total;
    *row_elems = re;
    return 0;
}

int store_read_f32(const store_reader *r, const char *name, float **data, int64_t *rows, int64_t *row_elems,
                   rs_err *err) {
    *data = NULL;
    const st_tensor **ts = calloc((size_t)r->n, sizeof *ts);
    if (!ts) return rs_errk(err, RS_ENOMEM, "%s: out of memory", r->where);
    int rc = gather(r, name, ts, rows, row_elems, err);
    if (!rc) {
        size_t n = (size_t)(*rows * *row_elems);
        float *d = malloc((n ? n : 1) * sizeof *d);
        if (!d) rc = rs_errk(err, RS_ENOMEM, "%s: out of memory for %zu floats of \"%s\"", r->where, n, name);
        else {
            size_t off = 0;
            for (int k = 0; k < r->n; k++) {
                st_to_f32(ts[k], d + off);
                off += (size_t)ts[k]->numel;
            }
            *data = d;
        }
    }
    free(ts);
    return rc;
}

int store_read_raw(const store_reader *r, const char *name, rs_dtype dt, void **data, int64_t *rows,
                   int64_t *row_elems, rs_err *err) {
    *data = NULL;
    const st_tensor **ts = calloc((size_t)r->n, sizeof *ts);
    if (!ts) return rs_errk(err, RS_ENOMEM, "%s: out of memory", r->where);
    int rc = gather(r, name, ts, rows, row_elems, err);
    if (!rc && ts[0]->dtype != dt)
        rc = rs_errf(err, "%s: tensor \"%s\" is %s, expected %s", r->paths[0], name, rs_dtype_name(ts[0]->dtype),
                     rs_dtype_name(dt));
    if (!rc) {
        size_t esz = rs_dtype_size(dt), n = (size_t)(*rows * *row_elems);
        unsigned char *d = malloc(n ? n * esz : 1);
        if (!d) rc = rs_errk(err, RS_ENOMEM, "%s: out of memory for \"%s\"", r->where, name);
        else {
            size_t off = 0;
            for (int k = 0; k < r->n; k++) {
                memcpy(d + off, ts[k]->data, ts[k]->nbytes);
                off += ts[k]->nbytes;
            }
            *data = d;
        }
    }
    free(ts);
    return rc;
}

int store_read_offsets(const store_reader *r, const char *offset_name, int64_t **offsets, int64_t *n_inputs,
                       rs_err *err) {
    *offsets = NULL;
    int64_t total = 0;
    for (int k = 0; k < r->n; k++) {
        const st_tensor *t = st_get(r->sets[k], offset_name);
        if (!t || t->dtype != RS_DT_I64 || t->ndim != 1 || t->shape[0] < 1)
            return rs_errf(err, "%s: \"%s\" must be an I64 vector [inputs + 1]", r->paths[k], offset_name);
        total += t->shape[0] - 1;
    }
    int64_t *o = malloc((size_t)(total + 1) * sizeof *o);
    if (!o) return rs_errk(err, RS_ENOMEM, "%s: out of memory", r->where);
    int64_t pos = 0, base = 0;
    o[0] = 0;
    for (int k = 0; k < r->n; k++) {
        const st_tensor *t = st_get(r->sets[k], offset_name);
        int64_t m = t->shape[0];
        int64_t v[2];
        memcpy(&v[0], t->data, 8);
        if (v[0] != 0) {
            free(o);
            return rs_errf(err, "%s: \"%s\" must start at 0", r->paths[k], offset_name);
        }
        int64_t prev = 0;
        for (int64_t i = 1; i < m; i++) {
            memcpy(&v[1], (const char *)t->data + 8 * i, 8);
            if (v[1] < prev) {
                free(o);
                return rs_errf(err, "%s: \"%s\" decreases at %lld", r->paths[k], offset_name, (long long)i);
            }
            prev = v[1];
            o[++pos] = base + v[1];
        }
        base += prev;
    }
    *offsets = o;
    *n_inputs = total;
    return 0;
}
