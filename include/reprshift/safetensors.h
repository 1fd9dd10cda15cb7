/* safetensors reading (mmap, bounds-checked, sharded via model.safetensors.index.json)
 * and writing (atomic). Format: u64 LE header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {str: str}}, then data;
 * offsets are relative to the byte after the header; C order, little endian. */
#ifndef REPRSHIFT_SAFETENSORS_H
#define REPRSHIFT_SAFETENSORS_H

#include <stdint.h>
#include <stddef.h>
#include "reprshift/error.h"
#include "reprshift/fileio.h"

typedef enum {
    RS_DT_F32, RS_DT_F16, RS_DT_BF16, RS_DT_F64,
    RS_DT_I8, RS_DT_I16, RS_DT_I32, RS_DT_I64,
    RS_DT_U8, RS_DT_U16, RS_DT_U32, RS_DT_U64, RS_DT_BOOL,
    RS_DT_COUNT
} rs_dtype;

/* Bytes per element of a dtype. */
size_t rs_dtype_size(rs_dtype dt);
/* The safetensors spelling of a dtype ("F32", "BF16", ...). */
const char *rs_dtype_name(rs_dtype dt);
/* Parse a safetensors dtype string; returns -1 if unknown. */
int rs_dtype_parse(const char *s, rs_dtype *out);

/* Resource limits checked before any allocation (see docs/limits.md). */
#define ST_MAX_HEADER_BYTES (100u * 1024u * 1024u)
#define ST_MAX_DIMS 8
#define ST_MAX_TENSORS 1000000

typedef struct {
    char *name;
    rs_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;   /* points into the shard's read-only mapping */
    size_t nbytes;
    int shard;          /* index into st_set.paths */
} st_tensor;

typedef struct {
    int n_shards;
    char **paths;       /* shard file paths */
    rs_mmap *maps;
    int n_tensors;
    st_tensor *tensors; /* sorted by name */
    int n_meta;
    char **meta_keys;   /* __metadata__ of the first shard */
    char **meta_vals;
    unsigned char *claimed; /* [n_tensors]: 1 once st_expect has checked that tensor (a loader used it) */
} st_set;

/* Open a .safetensors file, a model.safetensors.index.json, or a directory holding either.
 * Every header is validated (sizes, offsets in range and non-overlapping, byte length =
 * numel × dtype size, no duplicate names). Caller frees with st_close. */
int st_open(st_set **out, const char *path, rs_err *err);
/* Unmap and free (NULL is fine). */
void st_close(st_set *s);
/* Look a tensor up by exact name; NULL if absent. */
const st_tensor *st_get(const st_set *s, const char *name);
/* Metadata value for key, or NULL. */
const char *st_meta(const st_set *s, const char *key);
/* Convert a floating tensor (F32/F16/BF16/F64) or integer tensor to f32 into dst (numel floats). */
void st_to_f32(const st_tensor *t, float *dst);
/* New f32 copy of a tensor (caller frees); NULL on allocation failure. */
float *st_to_f32_new(const st_tensor *t);
/* Check name exists with the given shape (ndim entries); error names tensor and file.
 * Marks the tensor in s->claimed, so a caller can find tensors no loader asked for. */
int st_expect(const st_set *s, const char *name, int ndim, const int64_t *shape,
              const st_tensor **out, rs_err *err);

/* bf16/f16 <-> f32 scalar conversions (exact for widening). */
float rs_bf16_to_f32(uint16_t h);
float rs_f16_to_f32(uint16_t h);
uint16_t rs_f32_to_bf16(float f); /* round to nearest even */

/* ---- writer ---- */
typedef struct st_writer st_writer;

/* New empty writer. */
st_writer *st_writer_new(void);
/* Add a tensor. The data is referenced, not copied: keep it alive until st_writer_save. */
int st_writer_add(st_writer *w, const char *name, rs_dtype dt, int ndim, const int64_t *shape,
                  const void *data, rs_err *err);
/* Add a string pair to __metadata__ (copied). */
int st_writer_meta(st_writer *w, const char *key, const char *val, rs_err *err);
/* Write the file atomically (temp + rename); tensors are written in the order added. */
int st_writer_save(st_writer *w, const char *path, rs_err *err);
/* Free the writer (not the referenced data). */
void st_writer_free(st_writer *w);

#endif
