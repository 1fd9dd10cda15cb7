/* Activation store: a directory of safetensors shards + index.json, written one shard at a
 * time so that extraction over a large dataset can be killed at any point and resumed.
 *
 * Layout (docs/store.md):
 *   DIR/index.json                 run spec, tensor schema, completed shards with crc32s,
 *                                  "complete": true only after store_finalize
 *   DIR/shard-00000.safetensors    inputs [0, S), one tensor per hook + anything else given
 *   DIR/shard-00000.rows.jsonl     optional row index of those inputs
 *   DIR/.lock                      flock()ed by the writer (one writer per store)
 *
 * Invariants: shard k always covers inputs [k·S, min((k+1)·S, n_inputs)) (S = shard_inputs
 * of the spec), so a resumed run cuts the same shards; every file is written to a temp name
 * and renamed into place, and the index is rewritten (also atomically) only after a
 * shard's files are in place, so the index never lists a shard that is not complete. File
 * contents depend only on the data (tensors sorted by name, no timestamps), hence a
 * resumed store is byte-identical to an uninterrupted one. */
#ifndef REPRSHIFT_STORE_H
#define REPRSHIFT_STORE_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/safetensors.h"

#define STORE_MAX_SHARDS 1000000
#define STORE_MAX_TENSORS 4096
#define STORE_INDEX_MAX_BYTES (256u * 1024u * 1024u)

/* Identifies a run: re-opening a store with a different spec is an error. */
typedef struct {
    const char *model;          /* model id or path */
    const char *hooks;          /* hook names, comma-separated, as requested */
    const char *pooling;        /* "none", "mean", "last" */
    const char *manifest_hash;  /* checksum of the input manifest (any string) */
    int64_t n_inputs;           /* total inputs the finished store covers (>= 1) */
    int64_t shard_inputs;       /* inputs per shard (>= 1) */
} store_spec;

/* One tensor of a shard; tensors are written sorted by name whatever the order given. */
typedef struct {
    const char *name;
    rs_dtype dtype;
    int ndim;                   /* >= 1: dim 0 is the row axis along which shards concatenate */
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} store_tensor;

typedef struct rs_store rs_store;

/* Open (creating if needed) a store directory for writing. An existing store must have the
 * same spec; its completed shards are kept, leftover temp files are removed. Takes an
 * exclusive lock: a second writer gets an error. */
int store_open(rs_store **out, const char *dir, const store_spec *spec, rs_err *err);
/* First input not covered by a completed shard (n_inputs when all are done). */
int64_t store_next_input(const rs_store *s);
/* Index of the next shard to write (= store_next_input / shard_inputs). */
int64_t store_next_shard(const rs_store *s);
/* Is the store finalized (index.json has "complete": true)? */
int store_is_complete(const rs_store *s);
/* Write shard `shard` (must be store_next_shard) covering its fixed input range: the
 * tensors (same names, dtypes and row shapes in every shard) and optional rows_jsonl text
 * (NULL: no row file). Files then index are replaced atomically. */
int store_append_shard(rs_store *s, int64_t shard, const store_tensor *t, int n_tensors,
                       const char *rows_jsonl, rs_err *err);
/* Mark the store complete (every shard written) by rewriting index.json. */
int store_finalize(rs_store *s, rs_err *err);
/* Release the lock and free (NULL is fine). Does not finalize. */
void store_close(rs_store *s);
/* Input range [*first, *first + *count) of shard k under spec. */
void store_shard_range(const store_spec *spec, int64_t k, int64_t *first, int64_t *count);

/* ---- parts: the tasks of a job array write one store together (docs/store.md "Parts") ----
 * Part p of n writes the shards assigned to it (any subset, disjoint from the other parts')
 * into DIR itself, shard k always as DIR/shard-k.* with the bytes a single writer would
 * write, and lists them in its own DIR/part-PPPPP-of-NNNNN.json (atomically rewritten after
 * each shard, like index.json), under its own lock DIR/part-PPPPP-of-NNNNN.lock. No part
 * writes index.json: store_merge_parts checks every part and writes it, without copying. */

/* Open (creating) part `part` of n_parts for writing the given shards (ascending or not).
 * An existing part file must have the same spec; its listed shards are kept. Errors: another
 * process holds the part (two tasks with the same --shard), parts of another n_parts in DIR
 * (N changed between tasks). Write with store_append_shard (any owned shard not yet written),
 * never store_finalize. */
int store_open_part(rs_store **out, const char *dir, const store_spec *spec, int part, int n_parts,
                    const int64_t *assigned, int64_t n_assigned, rs_err *err);
/* Has this part written shard k? */
int store_part_has(const rs_store *s, int64_t shard);
/* Owned shards not written yet (0: the part is complete). */
int64_t store_part_remaining(const rs_store *s);
/* 0 if DIR holds no part file of a split other than into n_parts (a missing DIR is fine). */
int store_parts_check(const char *dir, int n_parts, rs_err *err);
/* Remove the part files and index.json of DIR written for a manifest_hash other than the
 * given one (a config changed since they were written). Returns how many were removed. */
int store_parts_remove_stale(const char *dir, const char *manifest_hash);
/* Check the parts of DIR against spec and write the complete index.json, listing every shard
 * as the parts recorded it (no data is copied or read; sizes are checked), then remove the
 * part files. Errors name what is wrong: no part, parts of two splits (or other than n_parts
 * when > 0), a part for another spec, a task still writing, a shard listed twice, a shard
 * file missing or resized, and the shards no part lists, grouped by owner[k] (the task that
 * should have written shard k; NULL: unknown). A complete index.json for spec: parts removed,
 * 0. check_only: the checks only, nothing written or removed. */
int store_merge_parts(const char *dir, const store_spec *spec, const int *owner, int n_parts, int check_only,
                      rs_err *err);

/* ---- reading ---- */
typedef struct store_reader store_reader;

/* Open a finished store for reading: a store directory, its index.json, or a single
 * safetensors file (e.g. `reprshift extract` output, read as a one-shard store with
 * FILE.rows.jsonl as its row index). Every shard's size and crc32 are checked; an
 * incomplete store is an error (resume the run first). */
int store_reader_open(store_reader **out, const char *path, rs_err *err);
/* Free (NULL is fine). */
void store_reader_close(store_reader *r);
/* Number of shards (1 for a single file). */
int store_reader_n_shards(const store_reader *r);
/* Path of shard k's safetensors file / row index (NULL if none); owned by the reader. */
const char *store_reader_shard_path(const store_reader *r, int k);
const char *store_reader_rows_path(const store_reader *r, int k);
/* Open safetensors set of shard k (owned by the reader). */
const st_set *store_reader_shard(const store_reader *r, int k);
/* All rows of tensor `name` over all shards, concatenated along dim 0 and converted to
 * f32: new array [*rows × *row_elems] (caller frees); row_elems = product of dims 1... */
int store_read_f32(const store_reader *r, const char *name, float **data, int64_t *rows,
                   int64_t *row_elems, rs_err *err);
/* Same for an integer tensor of exactly dtype dt (I32/I64/U8...) without conversion. */
int store_read_raw(const store_reader *r, const char *name, rs_dtype dt, void **data,
                   int64_t *rows, int64_t *row_elems, rs_err *err);
/* Concatenated per-input row offsets [n_inputs + 1] from the shards' `offset_name` tensors
 * (I64 [shard inputs + 1], each starting at 0), rebased to global rows. */
int store_read_offsets(const store_reader *r, const char *offset_name, int64_t **offsets,
                       int64_t *n_inputs, rs_err *err);

/* crc32 (zlib) of a whole file, for checks and tests. */
int store_file_crc32(const char *path, uint32_t *crc, int64_t *bytes, rs_err *err);

#endif
