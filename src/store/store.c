/* Activation store writer (see the invariants at the top of include/reprshift/store.h).
 * Write order per shard: rows file, shard file, then index.json, each via temp + rename.
 * A kill between any two steps leaves files the index does not list; the resumed run
 * rewrites them with the same bytes. Orphans are removed at finalize. */
#include "store/store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reprshift/fileio.h"
#include "base/jsonutil.h"

struct rs_store {
    char *dir;
    char *index_path;
    int lock_fd;
    store_index idx;
};

void store_shard_range(const store_spec *spec, int64_t k, int64_t *first, int64_t *count) {
    int64_t f = k * spec->shard_inputs;
    int64_t c = spec->n_inputs - f;
    if (c > spec->shard_inputs) c = spec->shard_inputs;
    if (c < 0) c = 0;
    *first = f;
    *count = c;
}

static int64_t n_shards_total(const store_index *x) {
    return (x->n_inputs + x->shard_inputs - 1) / x->shard_inputs;
}

int64_t store_next_shard(const rs_store *s) { return s->idx.n_shards; }

int64_t store_next_input(const rs_store *s) {
    int64_t f = s->idx.n_shards * s->idx.shard_inputs;
    return f < s->idx.n_inputs ? f : s->idx.n_inputs;
}

int store_is_complete(const rs_store *s) { return s->idx.complete; }

/* mkdir -p */
static int make_dirs(const char *dir, rs_err *err) {
    char *p = strdup(dir);
    if (!p) return rs_errk(err, RS_ENOMEM, "%s: out of memory", dir);
    for (char *q = p + 1; *q; q++) {
        if (*q != '/') continue;
        *q = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return rs_errk(err, RS_EIO, "%s: cannot create directory: %s", dir, strerror(e));
        }
        *q = '/';
    }
    int rc = 0;
    if (mkdir(p, 0777) != 0 && errno != EEXIST) rc = rs_errk(err, RS_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    free(p);
    if (!rc && !rs_is_dir(dir)) rc = rs_errk(err, RS_EIO, "%s: exists and is not a directory", dir);
    return rc;
}

/* Is name one of the files a store may hold? k_out receives the shard number (or -1). */
static int store_file_kind(const char *name, int64_t *k_out, int *is_tmp) {
    *k_out = -1;
    *is_tmp = strstr(name, ".tmp.") != NULL;
    if (!strcmp(name, ".lock") || !strcmp(name, STORE_INDEX_NAME)) return 1;
    if (!strncmp(name, STORE_INDEX_NAME ".tmp.", strlen(STORE_INDEX_NAME) + 5)) return 1;
    if (strncmp(name, "shard-", 6)) return 0;
    char *end;
    long long k = strtoll(name + 6, &end, 10);
    if (end == name + 6 || k < 0) return 0;
    if (strncmp(end, ".safetensors", 12) && strncmp(end, ".rows.jsonl", 11)) return 0;
    *k_out = k;
    return 1;
}

/* Remove temp files (any pid: we hold the lock) and, if below >= 0, shard files numbered
 * >= below. Refuses a directory holding files a store never writes. */
static int sweep_dir(const char *dir, int64_t below, rs_err *err) {
    DIR *d = opendir(dir);
    if (!d) return rs_errk(err, RS_EIO, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        int64_t k;
        int tmp;
        if (!store_file_kind(e->d_name, &k, &tmp)) {
            rc = rs_errf(err, "%s: not an activation store (holds \"%s\"); use an empty or new directory",
                         dir, e->d_name);
            break;
        }
        if (tmp || (below >= 0 && k >= below)) {
            char *p = rs_path_join(dir, e->d_name);
            if (p) unlink(p);
            free(p);
        }
    }
    closedir(d);
    return rc;
}

static int index_write(rs_store *s, rs_err *err) {
    store_index *x = &s->idx;
    char *b = NULL;
    size_t len = 0, cap = 0;
    int oom = 0;
    char num[256];
#define RAW(str) (oom |= rs_json_append_raw(&b, &len, &cap, (str)))
#define STR(str) (oom |= rs_json_append_string(&b, &len, &cap, (str)))
    RAW("{\n  \"format\": ");
    STR(STORE_FORMAT);
    snprintf(num, sizeof num, ",\n  \"version\": %d,\n  \"complete\": %s,\n  \"spec\": {\"model\": ",
             STORE_VERSION, x->complete ? "true" : "false");
    RAW(num);
    STR(x->model);
    RAW(", \"hooks\": ");
    STR(x->hooks);
    RAW(", \"pooling\": ");
    STR(x->pooling);
    RAW(", \"manifest_hash\": ");
    STR(x->manifest_hash);
    snprintf(num, sizeof num, ", \"n_inputs\": %lld, \"shard_inputs\": %lld},\n  \"tensors\": [",
             (long long)x->n_inputs, (long long)x->shard_inputs);
    RAW(num);
    for (int i = 0; i < x->n_schema; i++) {
        store_schema *t = &x->schema[i];
        RAW(i ? ",\n    {\"name\": " : "\n    {\"name\": ");
        STR(t->name);
        RAW(", \"dtype\": ");
        STR(rs_dtype_name(t->dtype));
        RAW(", \"row_shape\": [");
        for (int d = 1; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d > 1 ? ", " : "", (long long)t->shape[d]);
            RAW(num);
        }
        RAW("]}");
    }
    RAW(x->n_schema ? "\n  ],\n  \"shards\": [" : "],\n  \"shards\": [");
    for (int64_t k = 0; k < x->n_shards; k++) {
        store_shard_rec *r = &x->shards[k];
        char name[64];
        store_shard_name(k, 0, name, sizeof name);
        RAW(k ? ",\n    {\"file\": " : "\n    {\"file\": ");
        STR(name);
        snprintf(num, sizeof num, ", \"first_input\": %lld, \"n_inputs\": %lld, \"bytes\": %lld, \"crc32\": \"%08x\", \"tensor_rows\": [",
                 (long long)r->first_input, (long long)r->n_inputs, (long long)r->bytes, (unsigned)r->crc);
        RAW(num);
        for (int i = 0; i < x->n_schema; i++) {
            snprintf(num, sizeof num, "%s%lld", i ? ", " : "", (long long)r->rows[i]);
            RAW(num);
        }
        RAW("], \"rows_file\": ");
        if (r->has_rows_file) {
            store_shard_name(k, 1, name, sizeof name);
            STR(name);
            snprintf(num, sizeof num, ", \"rows_bytes\": %lld, \"rows_crc32\": \"%08x\"}", (long long)r->rows_bytes,
                     (unsigned)r->rows_crc);
            RAW(num);
        } else {
            RAW("null}");
        }
    }
    RAW(x->n_shards ? "\n  ]\n}\n" : "]\n}\n");
#undef RAW
#undef STR
    if (oom) {
        free(b);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", s->index_path);
    }
    rs_atomic_file f;
    int rc = rs_atomic_open(&f, s->index_path, err);
    if (!rc) {
        rc = rs_atomic_write(&f, b, len, err);
        if (rc) rs_atomic_abort(&f);
        else rc = rs_atomic_commit(&f, err);
    }
    free(b);
    return rc;
}

static int spec_check(const store_spec *sp, rs_err *err) {
    if (!sp->model || !sp->hooks || !sp->pooling || !sp->manifest_hash)
        return rs_errf(err, "store spec: model, hooks, pooling and manifest_hash are required");
    if (sp->n_inputs < 1 || sp->shard_inputs < 1)
        return rs_errf(err, "store spec: n_inputs and shard_inputs must be >= 1");
    if ((sp->n_inputs + sp->shard_inputs - 1) / sp->shard_inputs > STORE_MAX_SHARDS)
        return rs_errf(err, "store spec: more than %d shards; raise shard_inputs", STORE_MAX_SHARDS);
    return 0;
}

static int spec_matches(const store_index *x, const store_spec *sp, const char *path, rs_err *err) {
    const char *what = NULL, *have = NULL, *want = NULL;
    char a[32], b[32];
    if (strcmp(x->model, sp->model)) what = "model", have = x->model, want = sp->model;
    else if (strcmp(x->hooks, sp->hooks)) what = "hooks", have = x->hooks, want = sp->hooks;
    else if (strcmp(x->pooling, sp->pooling)) what = "pooling", have = x->pooling, want = sp->pooling;
    else if (strcmp(x->manifest_hash, sp->manifest_hash))
        what = "manifest_hash", have = x->manifest_hash, want = sp->manifest_hash;
    else if (x->n_inputs != sp->n_inputs || x->shard_inputs != sp->shard_inputs) {
        what = x->n_inputs != sp->n_inputs ? "n_inputs" : "shard_inputs";
        snprintf(a, sizeof a, "%lld", (long long)(x->n_inputs != sp->n_inputs ? x->n_inputs : x->shard_inputs));
        snprintf(b, sizeof b, "%lld", (long long)(x->n_inputs != sp->n_inputs ? sp->n_inputs : sp->shard_inputs));
        have = a, want = b;
    }
    if (!what) return 0;
    return rs_errf(err, "%s: store was written for another run (%s \"%s\", this run \"%s\"); use a new directory",
                   path, what, have, want);
}

int store_open(rs_store **out, const char *dir, const store_spec *spec, rs_err *err) {
    *out = NULL;
    if (spec_check(spec, err)) return -1;
    if (make_dirs(dir, err)) return -1;
    rs_store *s = calloc(1, sizeof *s);
    if (!s) return rs_errk(err, RS_ENOMEM, "%s: out of memory", dir);
    s->lock_fd = -1;
    s->dir = strdup(dir);
    s->index_path = rs_path_join(dir, STORE_INDEX_NAME);
    char *lock = rs_path_join(dir, ".lock");
    if (!s->dir || !s->index_path || !lock) {
        free(lock);
        store_close(s);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", dir);
    }
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    free(lock);
    if (s->lock_fd < 0) {
        rs_errk(err, RS_EIO, "%s: cannot create lock file: %s", dir, strerror(errno));
        store_close(s);
        return -1;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rs_errf(err, "%s: store is in use by another process", dir);
        store_close(s);
        return -1;
    }
    if (sweep_dir(dir, -1, err)) {
        store_close(s);
        return -1;
    }
    if (rs_path_exists(s->index_path)) {
        if (store_index_load(s->index_path, &s->idx, err) || spec_matches(&s->idx, spec, s->index_path, err)) {
            store_close(s);
            return -1;
        }
        /* Listed shards were renamed into place before being listed; a size mismatch means
         * someone else changed them. */
        for (int64_t k = 0; k < s->idx.n_shards; k++) {
            char name[64];
            store_shard_name(k, 0, name, sizeof name);
            char *p = rs_path_join(dir, name);
            if (!p) {
                store_close(s);
                return rs_errk(err, RS_ENOMEM, "%s: out of memory", dir);
            }
            struct stat st;
            int bad = stat(p, &st) != 0 || st.st_size != s->idx.shards[k].bytes;
            free(p);
            if (bad) {
                rs_errk(err, RS_EFORMAT, "%s: shard %s is missing or changed size; the store is damaged, use a new directory",
                        dir, name);
                store_close(s);
                return -1;
            }
        }
        *out = s;
        return 0;
    }
    store_index *x = &s->idx;
    x->model = strdup(spec->model);
    x->hooks = strdup(spec->hooks);
    x->pooling = strdup(spec->pooling);
    x->manifest_hash = strdup(spec->manifest_hash);
    x->n_inputs = spec->n_inputs;
    x->shard_inputs = spec->shard_inputs;
    if (!x->model || !x->hooks || !x->pooling || !x->manifest_hash) {
        store_close(s);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", dir);
    }
    if (index_write(s, err)) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_close(rs_store *s) {
    if (!s) return;
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
    store_index_free(&s->idx);
    free(s->dir);
    free(s->index_path);
    free(s);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const store_tensor *const *)a)->name, (*(const store_tensor *const *)b)->name);
}

/* Validate the tensors of one shard against the schema (or define it from the first shard). */
static int check_tensors(rs_store *s, const store_tensor **sorted, int n, rs_err *err) {
    store_index *x = &s->idx;
    for (int i = 0; i < n; i++) {
        const store_tensor *t = sorted[i];
        if (!t->name || !*t->name) return rs_errf(err, "%s: tensor %d has no name", s->dir, i);
        if (i && !strcmp(sorted[i - 1]->name, t->name))
            return rs_errf(err, "%s: duplicate tensor name \"%s\"", s->dir, t->name);
        if (t->ndim < 1 || t->ndim > ST_MAX_DIMS)
            return rs_errf(err, "%s: tensor \"%s\" must have 1..%d dims", s->dir, t->name, ST_MAX_DIMS);
        if ((unsigned)t->dtype >= RS_DT_COUNT) return rs_errf(err, "%s: tensor \"%s\": bad dtype", s->dir, t->name);
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0) return rs_errf(err, "%s: tensor \"%s\": negative dimension", s->dir, t->name);
        if (!t->data && t->shape[0] > 0) return rs_errf(err, "%s: tensor \"%s\": no data", s->dir, t->name);
    }
    if (x->n_schema == 0) {
        /* an index written before the first shard (a run stopped there) loads with an empty
           schema array: replace it, do not leak it */
        free(x->schema);
        x->schema = calloc((size_t)n, sizeof *x->schema);
        if (!x->schema) return rs_errk(err, RS_ENOMEM, "%s: out of memory", s->dir);
        for (int i = 0; i < n; i++) {
            store_schema *c = &x->schema[i];
            c->name = strdup(sorted[i]->name);
            if (!c->name) return rs_errk(err, RS_ENOMEM, "%s: out of memory", s->dir);
            c->dtype = sorted[i]->dtype;
            c->ndim = sorted[i]->ndim;
            for (int d = 1; d < c->ndim; d++) c->shape[d] = sorted[i]->shape[d];
            x->n_schema = i + 1;
        }
        return 0;
    }
    if (n != x->n_schema)
        return rs_errf(err, "%s: shard has %d tensors, earlier shards %d", s->dir, n, x->n_schema);
    for (int i = 0; i < n; i++) {
        const store_tensor *t = sorted[i];
        const store_schema *c = &x->schema[i];
        int same = !strcmp(t->name, c->name) && t->dtype == c->dtype && t->ndim == c->ndim;
        for (int d = 1; same && d < c->ndim; d++) same = t->shape[d] == c->shape[d];
        if (!same)
            return rs_errf(err, "%s: tensor \"%s\" differs in name, dtype or row shape from earlier shards (\"%s\")",
                           s->dir, t->name, c->name);
    }
    return 0;
}

/* Write text atomically to path. */
static int write_text(const char *path, const char *text, rs_err *err) {
    rs_atomic_file f;
    if (rs_atomic_open(&f, path, err)) return -1;
    if (rs_atomic_write(&f, text, strlen(text), err)) {
        rs_atomic_abort(&f);
        return -1;
    }
    return rs_atomic_commit(&f, err);
}

int store_append_shard(rs_store *s, int64_t shard, const store_tensor *t, int n_tensors,
                       const char *rows_jsonl, rs_err *err) {
    store_index *x = &s->idx;
    if (x->complete) return rs_errf(err, "%s: store is already complete", s->dir);
    if (shard != x->n_shards)
        return rs_errf(err, "%s: shard %lld written out of order (next is %lld)", s->dir, (long long)shard,
                       (long long)x->n_shards);
    if (shard >= n_shards_total(x))
        return rs_errf(err, "%s: shard %lld is past the last shard (%lld inputs)", s->dir, (long long)shard,
                       (long long)x->n_inputs);
    if (n_tensors < 1 || n_tensors > STORE_MAX_TENSORS)
        return rs_errf(err, "%s: a shard needs 1..%d tensors", s->dir, STORE_MAX_TENSORS);
    const store_tensor **sorted = malloc((size_t)n_tensors * sizeof *sorted);
    store_shard_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.rows = calloc((size_t)n_tensors, sizeof *rec.rows);
    char name[64], *path = NULL, *rpath = NULL;
    st_writer *w = NULL;
    int rc = -1, wrote = 0;
    if (!sorted || !rec.rows) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", s->dir);
        goto out;
    }
    for (int i = 0; i < n_tensors; i++) sorted[i] = &t[i];
    qsort(sorted, (size_t)n_tensors, sizeof *sorted, cmp_tensor_name);
    if (check_tensors(s, sorted, n_tensors, err)) goto out;

    store_spec sp = {.n_inputs = x->n_inputs, .shard_inputs = x->shard_inputs};
    store_shard_range(&sp, shard, &rec.first_input, &rec.n_inputs);
    store_shard_name(shard, 0, name, sizeof name);
    path = rs_path_join(s->dir, name);
    store_shard_name(shard, 1, name, sizeof name);
    rpath = rs_path_join(s->dir, name);
    w = st_writer_new();
    if (!path || !rpath || !w) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", s->dir);
        goto out;
    }
    char v[32];
    if (st_writer_meta(w, "format", STORE_FORMAT, err)) goto out;
    snprintf(v, sizeof v, "%lld", (long long)shard);
    if (st_writer_meta(w, "shard", v, err)) goto out;
    snprintf(v, sizeof v, "%lld", (long long)rec.first_input);
    if (st_writer_meta(w, "first_input", v, err)) goto out;
    snprintf(v, sizeof v, "%lld", (long long)rec.n_inputs);
    if (st_writer_meta(w, "n_inputs", v, err)) goto out;
    for (int i = 0; i < n_tensors; i++) {
        if (st_writer_add(w, sorted[i]->name, sorted[i]->dtype, sorted[i]->ndim, sorted[i]->shape, sorted[i]->data,
                          err)) {
            rs_err_prefix(err, "%s", path);
            goto out;
        }
        rec.rows[i] = sorted[i]->shape[0];
    }
    if (rows_jsonl) {
        if (write_text(rpath, rows_jsonl, err)) goto out;
        wrote = 1;
        rec.has_rows_file = 1;
        if (store_file_crc32(rpath, &rec.rows_crc, &rec.rows_bytes, err)) goto out;
    }
    if (st_writer_save(w, path, err)) goto out;
    wrote = 2;
    /* The checksum is of the bytes on disk, read back. */
    if (store_file_crc32(path, &rec.crc, &rec.bytes, err)) goto out;

    store_shard_rec *ns = realloc(x->shards, (size_t)(x->n_shards + 1) * sizeof *ns);
    if (!ns) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", s->dir);
        goto out;
    }
    x->shards = ns;
    x->shards[x->n_shards++] = rec;
    rec.rows = NULL;
    if (index_write(s, err)) {
        /* Not listed on disk: forget it in memory too so a retry rewrites it. */
        x->n_shards--;
        free(x->shards[x->n_shards].rows);
        goto out;
    }
    rc = 0;
out:
    /* On failure remove what this call renamed into place: only listed shards may look done. */
    if (rc && wrote >= 1 && rows_jsonl) unlink(rpath);
    if (rc && wrote >= 2) unlink(path);
    st_writer_free(w);
    free(sorted);
    free(rec.rows);
    free(path);
    free(rpath);
    return rc;
}

int store_finalize(rs_store *s, rs_err *err) {
    store_index *x = &s->idx;
    if (x->n_shards != n_shards_total(x))
        return rs_errf(err, "%s: cannot finalize: %lld of %lld shards written", s->dir, (long long)x->n_shards,
                       (long long)n_shards_total(x));
    if (sweep_dir(s->dir, x->n_shards, err)) return -1;
    /* A rows file left by an earlier run for a shard now written without one is an orphan. */
    for (int64_t k = 0; k < x->n_shards; k++)
        if (!x->shards[k].has_rows_file) {
            char name[64];
            store_shard_name(k, 1, name, sizeof name);
            char *p = rs_path_join(s->dir, name);
            if (p) unlink(p);
            free(p);
        }
    x->complete = 1;
    if (index_write(s, err)) {
        x->complete = 0;
        return -1;
    }
    return 0;
}
