/* Shared helpers for the libFuzzer targets: a private per-process temp directory (in
 * /dev/shm when available) for parsers whose public API takes a path, and cleanup at exit.
 * Targets never write anywhere else. */
#ifndef RS_FUZZ_UTIL_H
#define RS_FUZZ_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fz_dir_buf[512];

static inline int fz_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static inline void fz_cleanup(void) {
    if (fz_dir_buf[0]) nftw(fz_dir_buf, fz_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* The private temp directory (created on first use, removed at exit). */
static inline const char *fz_dir(void) {
    if (fz_dir_buf[0]) return fz_dir_buf;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(fz_dir_buf, sizeof fz_dir_buf, "%s/rsfuzz.XXXXXX", base);
    if (!mkdtemp(fz_dir_buf)) {
        perror("mkdtemp");
        abort();
    }
    atexit(fz_cleanup);
    return fz_dir_buf;
}

/* Path of `name` inside the temp directory (static buffer per slot 0..3). */
static inline const char *fz_path(int slot, const char *name) {
    static char buf[4][768];
    snprintf(buf[slot & 3], sizeof buf[0], "%s/%s", fz_dir(), name);
    return buf[slot & 3];
}

/* Write data to `name` in the temp directory (replacing it); returns its path. */
static inline const char *fz_write(int slot, const char *name, const void *data, size_t n) {
    const char *p = fz_path(slot, name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) {
        perror(p);
        abort();
    }
    return p;
}

/* Read a whole file (for loading fixed companion files at start-up); aborts on failure. */
static inline void *fz_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); abort(); }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc((size_t)sz + 1);
    if (!b || fread(b, 1, (size_t)sz, f) != (size_t)sz) abort();
    fclose(f);
    *n = (size_t)sz;
    return b;
}

/* Locate a file in the repo: env RS_SOURCE_DIR (set by the scripts) or the build-time source dir. */
static inline const char *fz_src(const char *rel) {
    static char buf[4][1024];
    static int k;
    const char *root = getenv("RS_SOURCE_DIR");
#ifdef RS_SOURCE_DIR_DEFAULT
    if (!root) root = RS_SOURCE_DIR_DEFAULT;
#endif
    if (!root) root = ".";
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", root, rel);
    return b;
}

#endif
