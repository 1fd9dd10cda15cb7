/* Activation store writer (see the invariants at the top of include/reprshift/store.h).
 * Write order per shard: rows file, shard file, then index.json, each via temp + rename.
 * A kill between any two steps leaves files the index does not list; the resumed run
 * rewrites them with the same bytes. Orphans are removed at finalize. */
#include "store/store_internal.h"

#include <dirent.h>
#include <stdarg.h>
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
#include <cjson/cJSON.h>

struct rs_store {
    char *dir;
    char *index_path;           /* index.json, or the part file of a part */
    int lock_fd;
    store_index idx;            /* a part: its written shards (ascending k) */
    int part, n_parts;          /* n_parts > 0: a part (store_open_part) */
    int64_t *assigned, n_assigned;
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

/* "part-IIIII-of-NNNNN.json" / ".lock" (and temp files of those): a part's index and lock. */
static int part_file_name(const char *name, int *part, int *n_parts, int *lock) {
    int a = -1, b = -1, n = -1;
    if (sscanf(name, "part-%d-of-%d%n", &a, &b, &n) != 2 || n < 0 || a < 0 || b < 1 || a >= b) return 0;
    const char *rest = name + n;
    *part = a;
    *n_parts = b;
    *lock = !strncmp(rest, ".lock", 5);
    return !strncmp(rest, ".json", 5) || *lock;
}

static void part_name(int part, int n_parts, int lock, char *buf, size_t n) {
    snprintf(buf, n, "part-%05d-of-%05d.%s", part, n_parts, lock ? "lock" : "json");
}

/* Is name one of the files a store may hold? k_out receives the shard number (or -1). */
static int store_file_kind(const char *name, int64_t *k_out, int *is_tmp) {
    *k_out = -1;
    *is_tmp = strstr(name, ".tmp.") != NULL;
    if (!strcmp(name, ".lock") || !strcmp(name, STORE_INDEX_NAME)) return 1;
    if (!strncmp(name, STORE_INDEX_NAME ".tmp.", strlen(STORE_INDEX_NAME) + 5)) return 1;
    int part, n_parts, lock;
    if (part_file_name(name, &part, &n_parts, &lock)) return 1;
    if (strncmp(name, "shard-", 6)) return 0;
    char *end;
    long long k = strtoll(name + 6, &end, 10);
    if (end == name + 6 || k < 0) return 0;
    if (strncmp(end, ".safetensors", 12) && strncmp(end, ".rows.jsonl", 11)) return 0;
    *k_out = k;
    return 1;
}

/* Remove temp files (any pid: we hold the lock) and, if below >= 0, shard files numbered
 * >= below and part files (the complete index replaces them). Refuses a directory holding files a store never writes. */
static int sweep_dir(const char *dir, int64_t below, int parts, rs_err *err) {
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
        int pa, pn, pl;
        int part = part_file_name(e->d_name, &pa, &pn, &pl);
        if (tmp || (below >= 0 && k >= below) || (parts && part)) {
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
    STR(s->n_parts ? STORE_PART_FORMAT : STORE_FORMAT);
    snprintf(num, sizeof num, ",\n  \"version\": %d,\n  \"complete\": %s,\n  ", STORE_VERSION,
             x->complete ? "true" : "false");
    RAW(num);
    if (s->n_parts) { /* a part: which task of how many, and the shards it owns */
        snprintf(num, sizeof num, "\"part\": %d, \"n_parts\": %d,\n  \"assigned\": [", s->part, s->n_parts);
        RAW(num);
        for (int64_t i = 0; i < s->n_assigned; i++) {
            snprintf(num, sizeof num, "%s%lld", i ? ", " : "", (long long)s->assigned[i]);
            RAW(num);
        }
        RAW("],\n  ");
    }
    RAW("\"spec\": {\"model\": ");
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
    for (int64_t q = 0; q < x->n_shards; q++) {
        store_shard_rec *r = &x->shards[q];
        int64_t k = r->k;
        char name[64];
        store_shard_name(k, 0, name, sizeof name);
        RAW(q ? ",\n    {\"file\": " : "\n    {\"file\": ");
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

/* A new store's index: the spec's fields, written to index.json. On failure the store is closed. */
static int index_start(rs_store *s, const store_spec *spec, const char *dir, rs_store **out, rs_err *err) {
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
    if (sweep_dir(dir, -1, 0, err)) {
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
    return index_start(s, spec, dir, out, err);
}

void store_close(rs_store *s) {
    if (!s) return;
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
    store_index_free(&s->idx);
    free(s->assigned);
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
    if (s->n_parts) {
        int own = 0;
        for (int64_t i = 0; i < s->n_assigned; i++) own |= s->assigned[i] == shard;
        if (!own || store_part_has(s, shard))
            return rs_errf(err, "%s: shard %lld is not a shard part %d of %d still has to write", s->dir,
                           (long long)shard, s->part, s->n_parts);
    } else if (shard != x->n_shards) {
        return rs_errf(err, "%s: shard %lld written out of order (next is %lld)", s->dir, (long long)shard,
                       (long long)x->n_shards);
    }
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
    rec.k = shard;
    int64_t at = x->n_shards; /* a part keeps its records ascending */
    while (at > 0 && x->shards[at - 1].k > shard) at--;
    memmove(&x->shards[at + 1], &x->shards[at], (size_t)(x->n_shards - at) * sizeof *ns);
    x->shards[at] = rec;
    x->n_shards++;
    rec.rows = NULL;
    if (s->n_parts) x->complete = store_part_remaining(s) == 0;
    if (index_write(s, err)) {
        /* Not listed on disk: forget it in memory too so a retry rewrites it. */
        free(x->shards[at].rows);
        memmove(&x->shards[at], &x->shards[at + 1], (size_t)(x->n_shards - at - 1) * sizeof *ns);
        x->n_shards--;
        x->complete = 0;
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
    if (s->n_parts) return rs_errf(err, "%s: a part is not finalized: merge the parts (store_merge_parts)", s->dir);
    if (x->n_shards != n_shards_total(x))
        return rs_errf(err, "%s: cannot finalize: %lld of %lld shards written", s->dir, (long long)x->n_shards,
                       (long long)n_shards_total(x));
    if (sweep_dir(s->dir, x->n_shards, 1, err)) return -1;
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

/* ---- parts (docs/store.md "Parts") ---- */

int store_part_has(const rs_store *s, int64_t shard) {
    for (int64_t i = 0; i < s->idx.n_shards; i++)
        if (s->idx.shards[i].k == shard) return 1;
    return 0;
}

int64_t store_part_remaining(const rs_store *s) {
    int64_t n = 0;
    for (int64_t i = 0; i < s->n_assigned; i++) n += !store_part_has(s, s->assigned[i]);
    return n;
}

/* Visit the part files (not locks, not temp files) of dir: fn(name, part, n_parts, ctx);
 * a non-zero return stops. */
static int each_part(const char *dir, int (*fn)(const char *, int, int, void *), void *ctx, rs_err *err) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : rs_errk(err, RS_EIO, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        int a, b, lock;
        if (strstr(e->d_name, ".tmp.") || !part_file_name(e->d_name, &a, &b, &lock) || lock) continue;
        rc = fn(e->d_name, a, b, ctx);
    }
    closedir(d);
    return rc;
}

typedef struct {
    const char *dir;
    int n_parts;
    rs_err *err;
} other_split;

static int part_other_split(const char *name, int part, int n_parts, void *vctx) {
    (void)part;
    other_split *o = vctx;
    if (n_parts == o->n_parts) return 0;
    return rs_errf(o->err, "%s: holds %s, a part of a split into %d tasks, but this task is one of %d: every task of a "
                           "run must use the same N (--shard I/N); to split anew, remove the part-* files of the "
                           "run's stores first",
                   o->dir, name, n_parts, o->n_parts);
}

int store_parts_check(const char *dir, int n_parts, rs_err *err) {
    other_split o = {dir, n_parts, err};
    return each_part(dir, part_other_split, &o, err);
}

/* The spec.manifest_hash of an index or part file (new string), NULL if unreadable. */
static char *file_manifest_hash(const char *path, int part) {
    store_index x;
    rs_err e = {0};
    cJSON *j = NULL;
    if (part ? store_part_load(path, &x, &j, &e) : store_index_load(path, &x, &e)) return NULL;
    cJSON_Delete(j);
    char *h = x.manifest_hash;
    x.manifest_hash = NULL;
    store_index_free(&x);
    return h;
}

typedef struct {
    const char *dir, *hash;
    int removed;
} stale_ctx;

static int part_remove_stale(const char *name, int part, int n_parts, void *vctx) {
    stale_ctx *s = vctx;
    char *p = rs_path_join(s->dir, name), *h = p ? file_manifest_hash(p, 1) : NULL;
    if (p && (!h || strcmp(h, s->hash))) {
        char lk[64];
        part_name(part, n_parts, 1, lk, sizeof lk);
        char *lp = rs_path_join(s->dir, lk);
        unlink(p);
        if (lp) unlink(lp);
        free(lp);
        s->removed++;
    }
    free(p);
    free(h);
    return 0;
}

int store_parts_remove_stale(const char *dir, const char *manifest_hash) {
    stale_ctx s = {dir, manifest_hash, 0};
    rs_err ignore = {0};
    each_part(dir, part_remove_stale, &s, &ignore);
    char *ip = rs_path_join(dir, STORE_INDEX_NAME), *h = ip && rs_path_exists(ip) ? file_manifest_hash(ip, 0) : NULL;
    if (ip && rs_path_exists(ip) && (!h || strcmp(h, manifest_hash))) {
        unlink(ip);
        s.removed++;
    }
    free(ip);
    free(h);
    return s.removed;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int store_open_part(rs_store **out, const char *dir, const store_spec *spec, int part, int n_parts,
                    const int64_t *assigned, int64_t n_assigned, rs_err *err) {
    *out = NULL;
    if (spec_check(spec, err)) return -1;
    int64_t total = (spec->n_inputs + spec->shard_inputs - 1) / spec->shard_inputs;
    if (n_parts < 1 || part < 0 || part >= n_parts || n_parts > 99999)
        return rs_errf(err, "%s: part %d of %d: need 0 <= part < n_parts <= 99999", dir, part, n_parts);
    if (n_assigned < 1 || n_assigned > total) return rs_errf(err, "%s: part %d of %d owns no shard", dir, part, n_parts);
    if (make_dirs(dir, err) || store_parts_check(dir, n_parts, err)) return -1;
    rs_store *s = calloc(1, sizeof *s);
    char name[64];
    if (!s) return rs_errk(err, RS_ENOMEM, "%s: out of memory", dir);
    s->lock_fd = -1;
    s->part = part;
    s->n_parts = n_parts;
    s->n_assigned = n_assigned;
    s->assigned = malloc((size_t)n_assigned * sizeof *s->assigned);
    s->dir = strdup(dir);
    part_name(part, n_parts, 0, name, sizeof name);
    s->index_path = rs_path_join(dir, name);
    part_name(part, n_parts, 1, name, sizeof name);
    char *lock = rs_path_join(dir, name);
    if (!s->assigned || !s->dir || !s->index_path || !lock) {
        free(lock);
        store_close(s);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", dir);
    }
    memcpy(s->assigned, assigned, (size_t)n_assigned * sizeof *assigned);
    qsort(s->assigned, (size_t)n_assigned, sizeof *s->assigned, cmp_i64);
    for (int64_t i = 0; i < n_assigned; i++)
        if (s->assigned[i] < 0 || s->assigned[i] >= total || (i && s->assigned[i] == s->assigned[i - 1])) {
            rs_errf(err, "%s: part %d of %d: assigned shard %lld repeated or outside 0..%lld", dir, part, n_parts,
                    (long long)s->assigned[i], (long long)total - 1);
            store_close(s);
            free(lock);
            return -1;
        }
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    free(lock);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (s->lock_fd < 0) rs_errk(err, RS_EIO, "%s: cannot create lock file %s: %s", dir, name, strerror(errno));
        else rs_errf(err, "%s: part %d of %d is being written by another process (two tasks with the same --shard "
                          "%d/%d?)", dir, part, n_parts, part, n_parts);
        store_close(s);
        return -1;
    }
    store_index *x = &s->idx;
    if (rs_path_exists(s->index_path)) {
        cJSON *j = NULL;
        if (store_part_load(s->index_path, x, &j, err) || spec_matches(x, spec, s->index_path, err)) {
            cJSON_Delete(j);
            store_close(s);
            return -1;
        }
        cJSON_Delete(j);
        for (int64_t q = 0; q < x->n_shards; q++) {
            int own = 0;
            for (int64_t i = 0; i < n_assigned; i++) own |= s->assigned[i] == x->shards[q].k;
            char *p = NULL;
            struct stat st;
            store_shard_name(x->shards[q].k, 0, name, sizeof name);
            int bad = !own || !(p = rs_path_join(dir, name)) || stat(p, &st) != 0 || st.st_size != x->shards[q].bytes;
            free(p);
            if (bad) {
                rs_errk(err, RS_EFORMAT, "%s: %s lists %s, which is %s; remove the part file to rewrite the part", dir,
                        s->index_path, name, own ? "missing or changed size" : "not a shard this part owns");
                store_close(s);
                return -1;
            }
        }
        x->complete = store_part_remaining(s) == 0;
        *out = s;
        return 0;
    }
    return index_start(s, spec, dir, out, err);
}

/* ---- merging the parts ---- */

typedef struct {
    char name[300];
    int part, n_parts;
} part_ref;

typedef struct {
    part_ref *p;
    int n, cap;
} part_list;

static int part_collect(const char *name, int part, int n_parts, void *vctx) {
    part_list *l = vctx;
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 16;
        part_ref *np = realloc(l->p, (size_t)nc * sizeof *np);
        if (!np) return -1;
        l->p = np;
        l->cap = nc;
    }
    snprintf(l->p[l->n].name, sizeof l->p[l->n].name, "%s", name);
    l->p[l->n].part = part;
    l->p[l->n].n_parts = n_parts;
    l->n++;
    return 0;
}

static int cmp_part(const void *a, const void *b) {
    const part_ref *x = a, *y = b;
    return x->n_parts != y->n_parts ? (x->n_parts > y->n_parts) - (x->n_parts < y->n_parts)
                                    : (x->part > y->part) - (x->part < y->part);
}

/* Append ", " + text to a bounded message. */
static void msg_add(char *m, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msg_add(char *m, size_t cap, const char *fmt, ...) {
    size_t L = strlen(m);
    if (L + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m + L, cap - L, fmt, ap);
    va_end(ap);
}

/* Remove the part files (and their locks) of dir. */
static int part_unlink(const char *name, int part, int n_parts, void *vctx) {
    const char *dir = vctx;
    char lk[64];
    part_name(part, n_parts, 1, lk, sizeof lk);
    char *p = rs_path_join(dir, name), *lp = rs_path_join(dir, lk);
    if (p) unlink(p);
    if (lp) unlink(lp);
    free(p);
    free(lp);
    return 0;
}

int store_merge_parts(const char *dir, const store_spec *spec, const int *owner, int n_parts, int check_only,
                      rs_err *err) {
    if (spec_check(spec, err)) return -1;
    int64_t total = (spec->n_inputs + spec->shard_inputs - 1) / spec->shard_inputs;
    part_list l = {0};
    store_index *px = NULL;
    store_shard_rec **by_k = NULL;
    int *from = NULL, lock_fd = -1, rc = -1;
    char *lock = rs_path_join(dir, ".lock"), *ip = rs_path_join(dir, STORE_INDEX_NAME);
    char msg[RS_ERR_MAX] = "";
    rs_store w;
    memset(&w, 0, sizeof w);
    w.lock_fd = -1;
    if (!lock || !ip) { rs_errk(err, RS_ENOMEM, "%s: out of memory", dir); goto out; }
    int exists = rs_is_dir(dir);
    if (exists) lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (exists) {
        if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
            rs_errf(err, "%s: %s", dir, lock_fd < 0 ? "cannot create the lock file" : "store is in use by another process");
            goto out;
        }
        /* merged before (a merge killed before it removed the parts): nothing to check */
        if (rs_path_exists(ip)) {
            store_index x;
            rs_err e = {0};
            if (store_index_load(ip, &x, &e) == 0) {
                int done = x.complete && spec_matches(&x, spec, ip, &e) == 0;
                store_index_free(&x);
                if (done) {
                    if (!check_only) each_part(dir, part_unlink, (void *)dir, err);
                    rc = 0;
                    goto out;
                }
            }
        }
        if (each_part(dir, part_collect, &l, err)) { rs_errk(err, RS_ENOMEM, "%s: out of memory", dir); goto out; }
    } /* exists */
    if (l.n) qsort(l.p, (size_t)l.n, sizeof *l.p, cmp_part);
    if (l.n && l.p[0].n_parts != l.p[l.n - 1].n_parts) {
        rs_errf(err, "%s: parts of two splits: %s and %s; N changed between tasks: rerun every task with one N", dir,
                l.p[0].name, l.p[l.n - 1].name);
        goto out;
    }
    if (l.n && n_parts > 0 && l.p[0].n_parts != n_parts) {
        rs_errf(err, "%s: %s is a part of a split into %d tasks, the run's tasks were %d", dir, l.p[0].name,
                l.p[0].n_parts, n_parts);
        goto out;
    }
    px = calloc((size_t)l.n, sizeof *px);
    by_k = calloc((size_t)total, sizeof *by_k);
    from = calloc((size_t)total, sizeof *from);
    if (!px || !by_k || !from) { rs_errk(err, RS_ENOMEM, "%s: out of memory", dir); goto out; }
    int first_schema = -1;
    for (int i = 0; i < l.n; i++) {
        char *pp = rs_path_join(dir, l.p[i].name), lk[64];
        part_name(l.p[i].part, l.p[i].n_parts, 1, lk, sizeof lk);
        char *lp = rs_path_join(dir, lk);
        cJSON *j = NULL;
        int r = !pp || !lp ? rs_errk(err, RS_ENOMEM, "%s: out of memory", dir) : 0;
        if (!r) { /* a task still writing holds its part's lock */
            int fd = open(lp, O_RDWR | O_CLOEXEC);
            if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0)
                r = rs_errf(err, "%s: task %d of %d is still writing its part (%s is locked)", dir, l.p[i].part,
                            l.p[i].n_parts, lk);
            if (fd >= 0) close(fd);
        }
        if (!r) r = store_part_load(pp, &px[i], &j, err);
        cJSON_Delete(j);
        if (!r && strcmp(px[i].manifest_hash, spec->manifest_hash))
            r = rs_errf(err, "%s: %s (task %d of %d) was written for other inputs (fingerprint %.12s..., this merge "
                             "%.12s...): the config, models or --shard-inputs differ between that task and this merge; "
                             "rerun the task with the merge's config",
                        dir, l.p[i].name, l.p[i].part, l.p[i].n_parts, px[i].manifest_hash, spec->manifest_hash);
        if (!r) r = spec_matches(&px[i], spec, pp, err);
        free(pp);
        free(lp);
        if (r) goto out;
        if (px[i].n_schema && first_schema < 0) first_schema = i;
        if (px[i].n_schema && first_schema != i) {
            const store_index *a = &px[first_schema], *b = &px[i];
            int same = a->n_schema == b->n_schema;
            for (int t = 0; same && t < a->n_schema; t++) {
                same = !strcmp(a->schema[t].name, b->schema[t].name) && a->schema[t].dtype == b->schema[t].dtype &&
                       a->schema[t].ndim == b->schema[t].ndim;
                for (int d = 1; same && d < a->schema[t].ndim; d++) same = a->schema[t].shape[d] == b->schema[t].shape[d];
            }
            if (!same) {
                rs_errf(err, "%s: %s and %s differ in their tensors (names, dtypes or row shapes)", dir,
                        l.p[first_schema].name, l.p[i].name);
                goto out;
            }
        }
        for (int64_t q = 0; q < px[i].n_shards; q++) {
            store_shard_rec *r2 = &px[i].shards[q];
            char sn[64];
            store_shard_name(r2->k, 0, sn, sizeof sn);
            if (by_k[r2->k]) {
                rs_errf(err, "%s: %s is listed by two parts, %s and %s (overlapping --shard specs)", dir, sn,
                        l.p[from[r2->k]].name, l.p[i].name);
                goto out;
            }
            by_k[r2->k] = r2;
            from[r2->k] = i;
            for (int rf = 0; rf < 2; rf++) {
                if (rf && !r2->has_rows_file) break;
                store_shard_name(r2->k, rf, sn, sizeof sn);
                char *p = rs_path_join(dir, sn);
                struct stat st;
                int bad = !p || stat(p, &st) != 0 || st.st_size != (rf ? r2->rows_bytes : r2->bytes);
                free(p);
                if (bad) {
                    rs_errf(err, "%s: %s is missing or changed size since task %d of %d wrote it: rerun that task", dir,
                            sn, l.p[i].part, l.p[i].n_parts);
                    goto out;
                }
            }
        }
    }
    int64_t n_missing = 0;
    for (int64_t k = 0; k < total; k++) n_missing += !by_k[k];
    if (n_missing) {
        /* name them by owning task: "task 2 of 3: shards 3, 5" */
        int np = l.n ? l.p[0].n_parts : n_parts, shown = 0;
        for (int t = -1; t < np && strlen(msg) < sizeof msg - 64; t++) {
            int any = 0;
            for (int64_t k = 0; k < total; k++) {
                if (by_k[k] || (owner ? owner[k] : -1) != t) continue;
                if (!any) msg_add(msg, sizeof msg, "%s%s", shown ? "; " : "", t >= 0 ? "" : "shards ");
                if (!any && t >= 0) msg_add(msg, sizeof msg, "task %d of %d (rerun it): shard ", t, np);
                msg_add(msg, sizeof msg, "%s%lld", any ? ", " : "", (long long)k);
                any = shown = 1;
            }
        }
        rs_errf(err, "%s: %lld of %lld shards not written%s: %s", dir, (long long)n_missing, (long long)total,
                !exists ? " (the store folder is missing)" : !l.n ? " (no task wrote a part of this store)" : "", msg);
        goto out;
    }
    if (check_only) {
        rc = 0;
        goto out;
    }
    /* the index of a single-process run: the same spec, schema and records, in order */
    w.dir = (char *)dir;
    w.index_path = ip;
    store_index *x = &w.idx;
    x->model = (char *)spec->model;
    x->hooks = (char *)spec->hooks;
    x->pooling = (char *)spec->pooling;
    x->manifest_hash = (char *)spec->manifest_hash;
    x->n_inputs = spec->n_inputs;
    x->shard_inputs = spec->shard_inputs;
    x->n_schema = px[first_schema].n_schema;
    x->schema = px[first_schema].schema;
    x->n_shards = total;
    x->shards = malloc((size_t)total * sizeof *x->shards);
    if (!x->shards) { rs_errk(err, RS_ENOMEM, "%s: out of memory", dir); goto out; }
    for (int64_t k = 0; k < total; k++) x->shards[k] = *by_k[k];
    x->complete = 1;
    /* stale files first (temp files of killed tasks, shards past the end), then the index,
       then the parts: a merge killed in between finds the index complete and only removes them */
    int wr = sweep_dir(dir, total, 0, err) || index_write(&w, err);
    free(x->shards);
    if (wr) goto out;
    each_part(dir, part_unlink, (void *)dir, err);
    rc = 0;
out:
    if (px)
        for (int i = 0; i < l.n; i++) store_index_free(&px[i]);
    free(px);
    free(by_k);
    free(from);
    free(l.p);
    if (lock_fd >= 0) close(lock_fd);
    free(lock);
    free(ip);
    return rc;
}
