/* Shared between the store writer and reader: the parsed index.json. */
#ifndef RS_STORE_INTERNAL_H
#define RS_STORE_INTERNAL_H

#include <stdint.h>
#include "reprshift/store.h"

struct cJSON;

#define STORE_FORMAT "reprshift-activation-store"
#define STORE_VERSION 1
#define STORE_INDEX_NAME "index.json"
#define STORE_PART_FORMAT "reprshift-activation-store-part"

typedef struct {
    char *name;
    rs_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS]; /* shape[0] unused (rows vary per shard) */
} store_schema;

typedef struct {
    int64_t k;                  /* shard number (= position in an index; any order-preserving subset in a part) */
    int64_t first_input, n_inputs;
    int64_t *rows;              /* [n_schema] dim 0 of each tensor */
    int64_t bytes;
    uint32_t crc;
    int has_rows_file;
    int64_t rows_bytes;
    uint32_t rows_crc;
} store_shard_rec;

typedef struct {
    char *model, *hooks, *pooling, *manifest_hash;
    int64_t n_inputs, shard_inputs;
    int complete;
    int n_schema;
    store_schema *schema;
    int64_t n_shards;
    store_shard_rec *shards;
} store_index;

/* Parse DIR/index.json into idx (zeroed first); errors name the file. */
int store_index_load(const char *path, store_index *idx, rs_err *err);
/* The same for a part file (format STORE_PART_FORMAT): its shards are any ascending subset,
 * each record's k taken from its file name. *json receives the parsed document (caller
 * deletes) for the part's own fields. */
int store_part_load(const char *path, store_index *idx, struct cJSON **json, rs_err *err);
/* Free the arrays and strings of an index. */
void store_index_free(store_index *idx);
/* "shard-00012.safetensors" / "shard-00012.rows.jsonl" into buf. */
void store_shard_name(int64_t k, int rows_file, char *buf, size_t n);

#endif
