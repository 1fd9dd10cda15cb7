/* Digest cache for provenance (docs/pipeline.md, "Provenance"): the SHA-256 of a file keyed
 * by its real path, size, mtime (ns), device and inode, kept in one tab-separated text file
 * that every run may share, so a 5 GB checkpoint is hashed once per machine, not once per
 * run folder. A line:  sha256 TAB bytes TAB mtime_ns TAB dev TAB ino TAB path  (paths with a
 * tab or newline are never cached). Unreadable lines are skipped and dropped on the next save;
 * the file is replaced atomically (write beside it, rename), merging what other runs added. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/pipeline_internal.h"
#include "reprshift/fileio.h"

#define DIGEST_MAX_FILE (64 << 20)

static int is_hex64(const char *s) {
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return s[64] == '\0';
}

void pl_digest_free(pl_digest_cache *dc) {
    for (int i = 0; i < dc->n; i++) free(dc->d[i].path);
    free(dc->d);
    memset(dc, 0, sizeof *dc);
}

static int same_key(const pl_digest *d, const char *real, const struct stat *st) {
    return d->bytes == (int64_t)st->st_size &&
           d->mtime_ns == (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec &&
           d->dev == (uint64_t)st->st_dev && d->ino == (uint64_t)st->st_ino && !strcmp(d->path, real);
}

const char *pl_digest_find(const pl_digest_cache *dc, const char *real, const struct stat *st) {
    for (int i = dc->n - 1; i >= 0; i--)
        if (same_key(&dc->d[i], real, st)) return dc->d[i].sha;
    return NULL;
}

static int add_entry(pl_digest_cache *dc, const pl_digest *e) {
    for (int i = 0; i < dc->n; i++) /* one line per path: the newer key replaces the older */
        if (!strcmp(dc->d[i].path, e->path)) {
            free(dc->d[i].path);
            dc->d[i] = *e;
            return 0;
        }
    if (dc->n == dc->cap) {
        int nc = dc->cap ? 2 * dc->cap : 32;
        pl_digest *nd = realloc(dc->d, (size_t)nc * sizeof *nd);
        if (!nd) return -1;
        dc->d = nd;
        dc->cap = nc;
    }
    dc->d[dc->n++] = *e;
    return 0;
}

int pl_digest_put(pl_digest_cache *dc, const char *real, const struct stat *st, const char *sha, rs_err *err) {
    if (strpbrk(real, "\t\n\r") || strlen(sha) != 64) return 0;
    pl_digest e = {.bytes = (int64_t)st->st_size,
                   .mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
                   .dev = (uint64_t)st->st_dev,
                   .ino = (uint64_t)st->st_ino};
    memcpy(e.sha, sha, 65);
    if (!(e.path = strdup(real)) || add_entry(dc, &e)) {
        free(e.path);
        return rs_errk(err, RS_ENOMEM, "digest cache: out of memory");
    }
    dc->added++;
    return 0;
}

int pl_digest_load(const char *file, pl_digest_cache *dc, int *n_bad, rs_err *err) {
    memset(dc, 0, sizeof *dc);
    *n_bad = 0;
    FILE *f = fopen(file, "r");
    if (!f) return errno == ENOENT ? 0 : rs_errk(err, RS_EIO, "%s: cannot read: %s", file, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    long total = 0;
    while (!rc && (len = getline(&line, &cap, f)) > 0) {
        total += len;
        if (total > DIGEST_MAX_FILE) break; /* a cache this large is not ours: stop reading it */
        if (line[len - 1] == '\n') line[--len] = '\0';
        char sha[65] = {0}, *path = NULL;
        long long bytes, mt;
        unsigned long long dev, ino;
        int used = 0;
        if (sscanf(line, "%64[0-9a-f]\t%lld\t%lld\t%llu\t%llu\t%n", sha, &bytes, &mt, &dev, &ino, &used) != 5 ||
            !is_hex64(sha) || used <= 0 || line[used] != '/' || bytes < 0) {
            (*n_bad)++;
            continue;
        }
        path = strdup(line + used);
        pl_digest e = {.path = path, .bytes = bytes, .mtime_ns = mt, .dev = dev, .ino = ino};
        memcpy(e.sha, sha, 65);
        if (!path || add_entry(dc, &e)) {
            free(path);
            rc = rs_errk(err, RS_ENOMEM, "digest cache: out of memory");
        }
    }
    free(line);
    fclose(f);
    if (rc) pl_digest_free(dc);
    return rc;
}

/* mkdir -p of the folder that holds file. */
static int make_parent(const char *file) {
    char *p = strdup(file);
    if (!p) return -1;
    char *slash = strrchr(p, '/');
    int rc = 0;
    if (slash && slash != p) {
        *slash = '\0';
        for (char *q = p + 1; *q && !rc; q++)
            if (*q == '/') {
                *q = '\0';
                if (mkdir(p, 0777) && errno != EEXIST) rc = -1;
                *q = '/';
            }
        if (!rc && mkdir(p, 0777) && errno != EEXIST) rc = -1;
    }
    free(p);
    return rc;
}

int pl_digest_save(const char *file, const pl_digest_cache *dc, rs_err *err) {
    pl_digest_cache cur;
    int bad;
    if (pl_digest_load(file, &cur, &bad, err)) return -1; /* what other runs added meanwhile */
    for (int i = 0; i < dc->n; i++) {
        pl_digest e = dc->d[i];
        if (!(e.path = strdup(e.path)) || add_entry(&cur, &e)) {
            free(e.path);
            pl_digest_free(&cur);
            return rs_errk(err, RS_ENOMEM, "digest cache: out of memory");
        }
    }
    if (make_parent(file)) {
        pl_digest_free(&cur);
        return rs_errk(err, RS_EIO, "%s: cannot create its folder: %s", file, strerror(errno));
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", file, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int rc = 0;
    if (!f) rc = rs_errk(err, RS_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    for (int i = 0; !rc && i < cur.n; i++)
        if (fprintf(f, "%s\t%lld\t%lld\t%llu\t%llu\t%s\n", cur.d[i].sha, (long long)cur.d[i].bytes,
                    (long long)cur.d[i].mtime_ns, (unsigned long long)cur.d[i].dev, (unsigned long long)cur.d[i].ino,
                    cur.d[i].path) < 0)
            rc = rs_errk(err, RS_EIO, "%s: write error: %s", tmp, strerror(errno));
    if (f && fclose(f) && !rc) rc = rs_errk(err, RS_EIO, "%s: write error: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, file)) rc = rs_errk(err, RS_EIO, "%s: cannot replace: %s", file, strerror(errno));
    if (rc && f) unlink(tmp);
    pl_digest_free(&cur);
    return rc;
}
