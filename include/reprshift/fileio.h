/* Whole-file reading, memory mapping and atomic writes (temp file + rename), so that an
 * interrupted or failed write never leaves a complete-looking output behind. */
#ifndef REPRSHIFT_FILEIO_H
#define REPRSHIFT_FILEIO_H

#include <stddef.h>
#include <stdio.h>
#include "reprshift/error.h"

/* Read a whole file into a new NUL-terminated buffer (caller frees); fails above max_bytes. */
int rs_read_file(const char *path, size_t max_bytes, char **out, size_t *len, rs_err *err);

typedef struct {
    void *data;
    size_t size;
} rs_mmap;

/* Map a file read-only; an empty file maps to data == NULL, size 0. */
int rs_mmap_open(rs_mmap *m, const char *path, rs_err *err);
/* Unmap (safe on a zeroed struct). */
void rs_mmap_close(rs_mmap *m);

typedef struct {
    FILE *fp;
    char *final_path;
    char *tmp_path;
} rs_atomic_file;

/* Open "<path>.tmp.<pid>" for writing; rs_atomic_commit renames it onto path. */
int rs_atomic_open(rs_atomic_file *f, const char *path, rs_err *err);
/* Flush, fsync and rename into place; on failure the temp file is removed. */
int rs_atomic_commit(rs_atomic_file *f, rs_err *err);
/* Abandon: close and delete the temp file (safe after commit or on a zeroed struct). */
void rs_atomic_abort(rs_atomic_file *f);
/* fwrite that records a write error (e.g. disk full) as an rs_err naming the path. */
int rs_atomic_write(rs_atomic_file *f, const void *buf, size_t n, rs_err *err);

/* Does a regular file or directory exist at path? */
int rs_path_exists(const char *path);
int rs_is_dir(const char *path);

/* Join a directory and a name into a new string (caller frees). */
char *rs_path_join(const char *dir, const char *name);

#endif
