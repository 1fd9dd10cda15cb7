/* index.json of an activation store: parsing (writer and reader share it). Every field is
 * checked, so a damaged or foreign index gives an error naming the file and the field. */
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/jsonutil.h"

void store_shard_name(int64_t k, int rows_file, char *buf, size_t n) {
    snprintf(buf, n, "shard-%05lld.%s", (long long)k, rows_file ? "rows.jsonl" : "safetensors");
}

void store_index_free(store_index *idx) {
    free(idx->model);
    free(idx->hooks);
    free(idx->pooling);
    free(idx->manifest_hash);
    for (int i = 0; i < idx->n_schema; i++) free(idx->schema[i].name);
    free(idx->schema);
    for (int64_t k = 0; k < idx->n_shards; k++) free(idx->shards[k].rows);
    free(idx->shards);
    memset(idx, 0, sizeof *idx);
}

static int get_str(const cJSON *o, const char *key, char **out, const char *what, rs_err *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(x)) return rs_errf(err, "%s: field \"%s\" must be a string", what, key);
    *out = strdup(x->valuestring);
    if (!*out) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    return 0;
}

static int get_crc(const cJSON *o, const char *key, uint32_t *out, const char *what, rs_err *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(x) || strlen(x->valuestring) != 8 ||
        strspn(x->valuestring, "0123456789abcdef") != 8)
        return rs_errf(err, "%s: field \"%s\" must be 8 lowercase hex digits", what, key);
    *out = (uint32_t)strtoul(x->valuestring, NULL, 16);
    return 0;
}

/* Parse an index (sparse 0) or a part file (sparse 1: shards any ascending subset). */
static int index_parse(const char *path, store_index *idx, int sparse, cJSON **json, rs_err *err) {
    memset(idx, 0, sizeof *idx);
    if (json) *json = NULL;
    cJSON *j;
    if (rs_json_load(path, STORE_INDEX_MAX_BYTES, &j, err)) return -1;
    const char *format = sparse ? STORE_PART_FORMAT : STORE_FORMAT;
    char what[600];
    int rc = -1;
    if (!cJSON_IsObject(j)) { rs_errf(err, "%s: not a JSON object", path); goto out; }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, format)) {
        rs_errf(err, "%s: not an activation store %s (\"format\" is not \"%s\")", path, sparse ? "part" : "index",
                format);
        goto out;
    }
    int64_t ver;
    if (rs_json_int(j, "version", 1, STORE_VERSION, 0, 0, &ver, path, err)) goto out;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "complete");
    if (!cJSON_IsBool(c)) { rs_errf(err, "%s: field \"complete\" must be true or false", path); goto out; }
    idx->complete = cJSON_IsTrue(c);

    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(j, "spec");
    snprintf(what, sizeof what, "%s: spec", path);
    if (!cJSON_IsObject(spec)) { rs_errf(err, "%s: missing object \"spec\"", path); goto out; }
    if (get_str(spec, "model", &idx->model, what, err) || get_str(spec, "hooks", &idx->hooks, what, err) ||
        get_str(spec, "pooling", &idx->pooling, what, err) ||
        get_str(spec, "manifest_hash", &idx->manifest_hash, what, err) ||
        rs_json_int(spec, "n_inputs", 1, INT64_C(1) << 50, 0, 0, &idx->n_inputs, what, err) ||
        rs_json_int(spec, "shard_inputs", 1, INT64_C(1) << 50, 0, 0, &idx->shard_inputs, what, err))
        goto out;

    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "tensors");
    if (!cJSON_IsArray(ts)) { rs_errf(err, "%s: missing array \"tensors\"", path); goto out; }
    int nt = cJSON_GetArraySize(ts);
    if (nt > STORE_MAX_TENSORS) { rs_errf(err, "%s: %d tensors, above the limit %d", path, nt, STORE_MAX_TENSORS); goto out; }
    idx->schema = calloc((size_t)nt + 1, sizeof *idx->schema);
    if (!idx->schema) { rs_errk(err, RS_ENOMEM, "%s: out of memory", path); goto out; }
    for (int i = 0; i < nt; i++) {
        const cJSON *t = cJSON_GetArrayItem(ts, i);
        snprintf(what, sizeof what, "%s: tensors[%d]", path, i);
        store_schema *s = &idx->schema[i];
        idx->n_schema = i + 1;
        if (!cJSON_IsObject(t)) { rs_errf(err, "%s: not an object", what); goto out; }
        if (get_str(t, "name", &s->name, what, err)) goto out;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
        int d;
        if (!cJSON_IsString(dt) || (d = rs_dtype_parse(dt->valuestring, &s->dtype)) < 0) {
            rs_errf(err, "%s: unknown \"dtype\"", what);
            goto out;
        }
        const cJSON *rsh = cJSON_GetObjectItemCaseSensitive(t, "row_shape");
        int nd = cJSON_IsArray(rsh) ? cJSON_GetArraySize(rsh) : -1;
        if (nd < 0 || nd + 1 > ST_MAX_DIMS) { rs_errf(err, "%s: \"row_shape\" must be an array of at most %d dims", what, ST_MAX_DIMS - 1); goto out; }
        s->ndim = nd + 1;
        for (int k = 0; k < nd; k++) {
            const cJSON *x = cJSON_GetArrayItem(rsh, k);
            if (!rs_json_is_int(x, 0, INT64_C(1) << 40)) { rs_errf(err, "%s: bad \"row_shape\" entry", what); goto out; }
            s->shape[k + 1] = (int64_t)x->valuedouble;
        }
        if (i && strcmp(idx->schema[i - 1].name, s->name) >= 0) {
            rs_errf(err, "%s: tensors not sorted by name or duplicated (\"%s\")", what, s->name);
            goto out;
        }
    }

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shards");
    if (!cJSON_IsArray(sh)) { rs_errf(err, "%s: missing array \"shards\"", path); goto out; }
    int64_t ns = cJSON_GetArraySize(sh);
    int64_t max_shards = (idx->n_inputs + idx->shard_inputs - 1) / idx->shard_inputs;
    if (ns > max_shards || ns > STORE_MAX_SHARDS) {
        rs_errf(err, "%s: %lld shards listed but the spec allows %lld", path, (long long)ns, (long long)max_shards);
        goto out;
    }
    if (ns && nt == 0) { rs_errf(err, "%s: shards listed but no tensors", path); goto out; }
    idx->shards = calloc((size_t)ns + 1, sizeof *idx->shards);
    if (!idx->shards) { rs_errk(err, RS_ENOMEM, "%s: out of memory", path); goto out; }
    int64_t pos = 0, k = 0;
    for (const cJSON *e = sh->child; e; e = e->next, pos++) {
        snprintf(what, sizeof what, "%s: shards[%lld]", path, (long long)pos);
        store_shard_rec *r = &idx->shards[pos];
        idx->n_shards = pos + 1;
        r->rows = calloc((size_t)nt + 1, sizeof *r->rows);
        if (!r->rows) { rs_errk(err, RS_ENOMEM, "%s: out of memory", what); goto out; }
        if (!cJSON_IsObject(e)) { rs_errf(err, "%s: not an object", what); goto out; }
        char expect[64];
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "file");
        if (sparse) {
            /* "shard-NNNNN.safetensors", ascending, within the spec */
            char *end = NULL;
            long long kk = cJSON_IsString(f) && !strncmp(f->valuestring, "shard-", 6)
                               ? strtoll(f->valuestring + 6, &end, 10) : -1;
            int64_t prev = pos ? idx->shards[pos - 1].k : -1;
            if (kk < 0 || kk >= max_shards || kk <= prev || !end || strcmp(end, ".safetensors")) {
                rs_errf(err, "%s: \"file\" must name a shard of the spec (shard-NNNNN.safetensors, below %lld, "
                             "ascending)", what, (long long)max_shards);
                goto out;
            }
            k = kk;
        } else {
            k = pos;
        }
        r->k = k;
        store_shard_name(k, 0, expect, sizeof expect);
        if (!cJSON_IsString(f) || strcmp(f->valuestring, expect)) {
            rs_errf(err, "%s: \"file\" must be \"%s\"", what, expect);
            goto out;
        }
        int64_t first = k * idx->shard_inputs;
        int64_t cnt = idx->n_inputs - first < idx->shard_inputs ? idx->n_inputs - first : idx->shard_inputs;
        if (rs_json_int(e, "first_input", first, first, 0, 0, &r->first_input, what, err) ||
            rs_json_int(e, "n_inputs", cnt, cnt, 0, 0, &r->n_inputs, what, err) ||
            rs_json_int(e, "bytes", 8, INT64_C(1) << 50, 0, 0, &r->bytes, what, err) ||
            get_crc(e, "crc32", &r->crc, what, err))
            goto out;
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(e, "tensor_rows");
        if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) != nt) {
            rs_errf(err, "%s: \"tensor_rows\" must be an array of %d integers", what, nt);
            goto out;
        }
        for (int i = 0; i < nt; i++) {
            const cJSON *x = cJSON_GetArrayItem(rows, i);
            if (!rs_json_is_int(x, 0, INT64_C(1) << 50)) { rs_errf(err, "%s: bad \"tensor_rows\" entry", what); goto out; }
            r->rows[i] = (int64_t)x->valuedouble;
        }
        const cJSON *rf = cJSON_GetObjectItemCaseSensitive(e, "rows_file");
        if (rf && !cJSON_IsNull(rf)) {
            store_shard_name(k, 1, expect, sizeof expect);
            if (!cJSON_IsString(rf) || strcmp(rf->valuestring, expect)) {
                rs_errf(err, "%s: \"rows_file\" must be \"%s\" or null", what, expect);
                goto out;
            }
            r->has_rows_file = 1;
            if (rs_json_int(e, "rows_bytes", 0, INT64_C(1) << 50, 0, 0, &r->rows_bytes, what, err) ||
                get_crc(e, "rows_crc32", &r->rows_crc, what, err))
                goto out;
        }
    }
    if (!sparse && idx->complete && ns != max_shards) {
        rs_errf(err, "%s: marked complete but lists %lld of %lld shards", path, (long long)ns, (long long)max_shards);
        goto out;
    }
    rc = 0;
out:
    if (!rc && json) *json = j;
    else cJSON_Delete(j);
    if (rc) store_index_free(idx);
    return rc;
}

int store_index_load(const char *path, store_index *idx, rs_err *err) { return index_parse(path, idx, 0, NULL, err); }

int store_part_load(const char *path, store_index *idx, cJSON **json, rs_err *err) {
    return index_parse(path, idx, 1, json, err);
}

int store_file_crc32(const char *path, uint32_t *crc, int64_t *bytes, rs_err *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return rs_errk(err, RS_EIO, "%s: cannot open", path);
    uLong c = crc32(0L, Z_NULL, 0);
    int64_t total = 0;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) {
        c = crc32(c, buf, (uInt)n);
        total += (int64_t)n;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) return rs_errf(err, "%s: read error", path);
    *crc = (uint32_t)c;
    if (bytes) *bytes = total;
    return 0;
}
