/* NumPy .npy / .npz reading (numpy.save / savez / savez_compressed output).
 * .npz is a ZIP of .npy members (stored or deflated, ZIP64 allowed), opened with libzip.
 * Accepted npy: versions 1.0 / 2.0 / 3.0, descr '<f4' '<f8' '<i4' '<i8', fortran_order False
 * (C order), little endian; big-endian, object and other dtypes are rejected.
 * Every size is checked against the header before allocation (zip bombs: a member's
 * uncompressed size must equal what its npy header claims, and the sum is capped). */
#ifndef REPRSHIFT_NPZ_H
#define REPRSHIFT_NPZ_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/error.h"

#define NPY_MAX_DIMS 8
#define NPY_MAX_HEADER_BYTES (1u << 20)
/* Default cap on the total decoded bytes of one npz (override per call). */
#define NPZ_DEFAULT_MAX_BYTES ((size_t)16 << 30)

typedef enum { NPY_F4, NPY_F8, NPY_I4, NPY_I8 } npy_dtype;

typedef struct {
    char *name;      /* member name without ".npy" (npz) or NULL (single file) */
    npy_dtype dtype;
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    size_t nbytes;   /* numel * itemsize */
    void *data;      /* owned, malloc'd, aligned for the dtype */
} npy_array;

typedef struct {
    char *path;
    int n;
    npy_array *arrays;
} npz_file;

/* Bytes per element of an npy dtype. */
size_t npy_itemsize(npy_dtype dt);
/* "<f4" etc. */
const char *npy_dtype_name(npy_dtype dt);

/* Parse an npy header at buf[0..len): fills dtype/shape/numel/nbytes of out (data untouched)
 * and the offset of the data; `what` names the source in errors. */
int npy_parse_header(const void *buf, size_t len, npy_array *out, size_t *data_offset,
                     const char *what, rs_err *err);
/* Read a whole .npy file (data length must equal the header's numel × itemsize). */
int npy_load(const char *path, size_t max_bytes, npy_array *out, rs_err *err);
/* Free an array's name and data (the struct itself is the caller's). */
void npy_array_clear(npy_array *a);

/* Open and fully decode an .npz; max_bytes caps total decoded data (0 → default). */
int npz_open(npz_file **out, const char *path, size_t max_bytes, rs_err *err);
/* Member by name (without ".npy"); NULL if absent. */
const npy_array *npz_get(const npz_file *z, const char *name);
/* Free everything (NULL is fine). */
void npz_close(npz_file *z);

/* Convert any accepted dtype to f32 into dst (numel floats). */
void npy_to_f32(const npy_array *a, float *dst);
/* Convert an integer or float array to int64 into dst; -1 if a float is NaN, fractional
 * or outside the int64 range (dst is then partly written). */
int npy_to_i64(const npy_array *a, int64_t *dst);

#endif
