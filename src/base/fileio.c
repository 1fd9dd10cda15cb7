/* File helpers: bounded whole-file reads, read-only mmap, atomic writes. */
#include "reprshift/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int rs_read_file(const char *path, size_t max_bytes, char **out, size_t *len, rs_err *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return rs_errk(err, RS_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return rs_errk(err, RS_EIO, "%s: not a regular file", path);
    }
    if ((size_t)st.st_size > max_bytes) {
        fclose(fp);
        return rs_errf(err, "%s: file is %lld bytes, above the limit of %zu", path,
                       (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    if (n && fread(buf, 1, n, fp) != n) {
        free(buf);
        fclose(fp);
        return rs_errf(err, "%s: short read", path);
    }
    fclose(fp);
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return 0;
}

int rs_mmap_open(rs_mmap *m, const char *path, rs_err *err) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return rs_errk(err, RS_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rs_errk(err, RS_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return rs_errk(err, RS_EIO, "%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void rs_mmap_close(rs_mmap *m) {
    if (m->data) munmap(m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int rs_atomic_open(rs_atomic_file *f, const char *path, rs_err *err) {
    memset(f, 0, sizeof *f);
    size_t n = strlen(path) + 32;
    f->final_path = strdup(path);
    f->tmp_path = malloc(n);
    if (!f->final_path || !f->tmp_path) {
        rs_atomic_abort(f);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    }
    snprintf(f->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(f->tmp_path, "wb");
    if (!f->fp) {
        int e = errno;
        rs_atomic_abort(f);
        return rs_errk(err, RS_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    return 0;
}

int rs_atomic_write(rs_atomic_file *f, const void *buf, size_t n, rs_err *err) {
    if (n && fwrite(buf, 1, n, f->fp) != n)
        return rs_errk(err, RS_EIO, "%s: write failed: %s", f->final_path, strerror(errno));
    return 0;
}

int rs_atomic_commit(rs_atomic_file *f, rs_err *err) {
    int rc = 0;
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0)
        rc = rs_errk(err, RS_EIO, "%s: write failed: %s", f->final_path, strerror(errno));
    if (fclose(f->fp) != 0 && rc == 0)
        rc = rs_errk(err, RS_EIO, "%s: close failed: %s", f->final_path, strerror(errno));
    f->fp = NULL;
    if (rc == 0 && rename(f->tmp_path, f->final_path) != 0)
        rc = rs_errk(err, RS_EIO, "%s: rename failed: %s", f->final_path, strerror(errno));
    if (rc != 0) unlink(f->tmp_path);
    free(f->tmp_path);
    free(f->final_path);
    f->tmp_path = f->final_path = NULL;
    return rc;
}

void rs_atomic_abort(rs_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp_path) unlink(f->tmp_path);
    free(f->tmp_path);
    free(f->final_path);
    memset(f, 0, sizeof *f);
}

int rs_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int rs_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *rs_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}
