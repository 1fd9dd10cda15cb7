/* safetensors reader/writer.
 * Invariants after st_open: every tensor's bytes lie inside its shard's data section, no two
 * tensors of a shard overlap, nbytes == numel * dtype size, names are unique across shards,
 * and the tensor array is sorted by name (binary search in st_get). */
#include "base/util.h"
#include "reprshift/safetensors.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "base/jsonutil.h"
#include "tensor/isa.h"

static const struct {
    const char *name;
    size_t size;
} DTYPES[RS_DT_COUNT] = {
    [RS_DT_F32] = {"F32", 4}, [RS_DT_F16] = {"F16", 2}, [RS_DT_BF16] = {"BF16", 2},
    [RS_DT_F64] = {"F64", 8}, [RS_DT_I8] = {"I8", 1},   [RS_DT_I16] = {"I16", 2},
    [RS_DT_I32] = {"I32", 4}, [RS_DT_I64] = {"I64", 8}, [RS_DT_U8] = {"U8", 1},
    [RS_DT_U16] = {"U16", 2}, [RS_DT_U32] = {"U32", 4}, [RS_DT_U64] = {"U64", 8},
    [RS_DT_BOOL] = {"BOOL", 1},
};

size_t rs_dtype_size(rs_dtype dt) { return dt < RS_DT_COUNT ? DTYPES[dt].size : 0; }
const char *rs_dtype_name(rs_dtype dt) { return dt < RS_DT_COUNT ? DTYPES[dt].name : "?"; }

int rs_dtype_parse(const char *s, rs_dtype *out) {
    for (int i = 0; i < RS_DT_COUNT; i++)
        if (!strcmp(s, DTYPES[i].name)) {
            *out = (rs_dtype)i;
            return 0;
        }
    return -1;
}

float rs_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float rs_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            man &= 0x3FF;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) u = sign | 0x7F800000u | (man << 13);
    else u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t rs_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---- reading ---- */

typedef struct {
    st_tensor *v;
    int n, cap;
} tensor_list;

static int tensor_push(tensor_list *l, st_tensor *t) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 64;
        st_tensor *nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = *t;
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

typedef struct {
    size_t begin, end;
} range;

static int cmp_range(const void *a, const void *b) {
    const range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Parse one shard's header; append its tensors to l. */
static int parse_shard(st_set *s, int shard, tensor_list *l, rs_err *err) {
    const char *path = s->paths[shard];
    const unsigned char *base = s->maps[shard].data;
    size_t size = s->maps[shard].size;
    if (size < 8) return rs_errk(err, RS_EFORMAT, "%s: truncated safetensors file (%zu bytes, no header)", path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    if (hlen > ST_MAX_HEADER_BYTES)
        return rs_errk(err, RS_EFORMAT, "%s: header length %llu exceeds the %u-byte limit (corrupt file?)", path,
                       (unsigned long long)hlen, ST_MAX_HEADER_BYTES);
    if (hlen > size - 8)
        return rs_errk(err, RS_EFORMAT, "%s: header length %llu runs past the end of the %zu-byte file (truncated?)",
                       path, (unsigned long long)hlen, size);
    const unsigned char *data = base + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;
    cJSON *root;
    char what[600];
    snprintf(what, sizeof what, "%s: header", path);
    if (rs_json_parse((const char *)base + 8, (size_t)hlen, what, &root, err)) return -1;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rs_errk(err, RS_EFORMAT, "%s: header is not a JSON object", path);
    }
    int first = l->n, rc = -1;
    range *ranges = NULL;
    for (cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) { rs_errk(err, RS_EFORMAT, "%s: __metadata__ is not an object", path); goto done; }
            if (shard != 0) continue;
            for (cJSON *m = e->child; m; m = m->next) {
                if (!cJSON_IsString(m)) { rs_errk(err, RS_EFORMAT, "%s: __metadata__[\"%s\"] is not a string", path, m->string); goto done; }
                char **nk = realloc(s->meta_keys, (size_t)(s->n_meta + 1) * sizeof *nk);
                if (nk) s->meta_keys = nk;
                char **nv = realloc(s->meta_vals, (size_t)(s->n_meta + 1) * sizeof *nv);
                if (nv) s->meta_vals = nv;
                if (!nk || !nv) { rs_errk(err, RS_ENOMEM, "%s: out of memory", path); goto done; }
                s->meta_keys[s->n_meta] = strdup(m->string);
                s->meta_vals[s->n_meta] = strdup(m->valuestring);
                s->n_meta++; /* counted before the check: st_close frees what was copied */
                if (!s->meta_keys[s->n_meta - 1] || !s->meta_vals[s->n_meta - 1]) {
                    rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
                    goto done;
                }
            }
            continue;
        }
        if (l->n >= ST_MAX_TENSORS) { rs_errk(err, RS_EFORMAT, "%s: more than %d tensors", path, ST_MAX_TENSORS); goto done; }
        const char *nm = e->string;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of)) {
            rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\": entry needs dtype, shape and data_offsets", path, nm);
            goto done;
        }
        st_tensor t;
        memset(&t, 0, sizeof t);
        t.shard = shard;
        if (rs_dtype_parse(dt->valuestring, &t.dtype)) {
            rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\": unsupported dtype \"%s\"", path, nm, dt->valuestring);
            goto done;
        }
        int nd = cJSON_GetArraySize(sh);
        if (nd > ST_MAX_DIMS) { rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\": %d dims (max %d)", path, nm, nd, ST_MAX_DIMS); goto done; }
        t.ndim = nd;
        uint64_t numel = 1;
        int k = 0;
        for (cJSON *d = sh->child; d; d = d->next, k++) {
            if (!rs_json_is_int(d, 0, INT64_MAX / 2)) {
                rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\": shape entries must be non-negative integers", path, nm);
                goto done;
            }
            t.shape[k] = (int64_t)d->valuedouble;
            if (t.shape[k] != 0 && numel > (uint64_t)SIZE_MAX / 8 / (uint64_t)t.shape[k]) {
                rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\": shape product overflows", path, nm);
                goto done;
            }
            numel *= (uint64_t)t.shape[k];
        }
        t.numel = (int64_t)numel;
        if (cJSON_GetArraySize(of) != 2 || !rs_json_is_int(of->child, 0, INT64_MAX / 2) ||
            !rs_json_is_int(of->child->next, 0, INT64_MAX / 2)) {
            rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\": data_offsets must be two non-negative integers", path, nm);
            goto done;
        }
        uint64_t b = (uint64_t)of->child->valuedouble, en = (uint64_t)of->child->next->valuedouble;
        if (b > en || en > data_size) {
            rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\": data_offsets [%llu, %llu] outside the %zu-byte data section (truncated or corrupt)",
                    path, nm, (unsigned long long)b, (unsigned long long)en, data_size);
            goto done;
        }
        if (en - b != numel * rs_dtype_size(t.dtype)) {
            rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\": %llu bytes but shape x %s needs %llu", path, nm,
                    (unsigned long long)(en - b), rs_dtype_name(t.dtype),
                    (unsigned long long)(numel * rs_dtype_size(t.dtype)));
            goto done;
        }
        t.data = data + b;
        t.nbytes = (size_t)(en - b);
        t.name = strdup(nm);
        if (!t.name || tensor_push(l, &t)) { free(t.name); rs_errk(err, RS_ENOMEM, "%s: out of memory", path); goto done; }
    }
    /* Overlap check within this shard (zero-length tensors may share an offset). */
    int cnt = l->n - first;
    ranges = malloc((size_t)(cnt ? cnt : 1) * sizeof *ranges);
    if (!ranges) { rs_errk(err, RS_ENOMEM, "%s: out of memory", path); goto done; }
    for (int i = 0; i < cnt; i++) {
        size_t b = (size_t)((const unsigned char *)l->v[first + i].data - data);
        ranges[i].begin = b;
        ranges[i].end = b + l->v[first + i].nbytes;
    }
    qsort(ranges, (size_t)cnt, sizeof *ranges, cmp_range);
    for (int i = 1; i < cnt; i++)
        if (ranges[i].begin < ranges[i - 1].end) {
            rs_errk(err, RS_EFORMAT, "%s: tensors overlap at data offset %zu", path, ranges[i].begin);
            goto done;
        }
    rc = 0;
done:
    free(ranges);
    cJSON_Delete(root);
    return rc;
}

static int add_shard(st_set *s, const char *path, rs_err *err) {
    char **np = realloc(s->paths, (size_t)(s->n_shards + 1) * sizeof *np);
    if (np) s->paths = np;
    rs_mmap *nm = realloc(s->maps, (size_t)(s->n_shards + 1) * sizeof *nm);
    if (nm) s->maps = nm;
    if (!np || !nm) return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    s->paths[s->n_shards] = strdup(path);
    memset(&s->maps[s->n_shards], 0, sizeof(rs_mmap));
    s->n_shards++;
    if (!s->paths[s->n_shards - 1]) return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    return rs_mmap_open(&s->maps[s->n_shards - 1], path, err);
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 2);
    if (!d) return NULL;
    memcpy(d, path, n ? n : 1);
    d[n ? n : 1] = '\0';
    if (!n) d[0] = '/';
    return d;
}

/* Open the shards named by an index.json's weight_map and check every mapped name exists. */
static int open_index(st_set *s, const char *index_path, tensor_list *l, rs_err *err) {
    cJSON *root;
    if (rs_json_load(index_path, 64u << 20, &root, err)) return -1;
    int rc = -1;
    char *dir = dir_of(index_path);
    cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        rs_errk(err, RS_EFORMAT, "%s: missing or empty \"weight_map\" object", index_path);
        goto done;
    }
    for (cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e)) { rs_errk(err, RS_EFORMAT, "%s: weight_map[\"%s\"] is not a file name", index_path, e->string); goto done; }
        const char *f = e->valuestring;
        if (strchr(f, '/') || !strcmp(f, "..") || !*f) {
            rs_errk(err, RS_EFORMAT, "%s: weight_map[\"%s\"] = \"%s\" is not a plain file name", index_path, e->string, f);
            goto done;
        }
        int seen = 0;
        for (int i = 0; i < s->n_shards && !seen; i++) {
            const char *b = strrchr(s->paths[i], '/');
            seen = !strcmp(b ? b + 1 : s->paths[i], f);
        }
        if (seen) continue;
        char *p = rs_path_join(dir, f);
        if (!p) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        int r = add_shard(s, p, err);
        if (r == 0) r = parse_shard(s, s->n_shards - 1, l, err);
        free(p);
        if (r) goto done;
    }
    /* Every mapped name must be in the shard the index says. */
    /* (qsort/bsearch take no NULL base even for 0 elements: shards may hold no tensors.) */
    if (l->n > 1) qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_name);
    for (cJSON *e = wm->child; e; e = e->next) {
        st_tensor key = {.name = e->string};
        st_tensor *t = l->n ? bsearch(&key, l->v, (size_t)l->n, sizeof *l->v, cmp_name) : NULL;
        if (!t) { rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\" is listed in weight_map but absent from %s", index_path, e->string, e->valuestring); goto done; }
        const char *b = strrchr(s->paths[t->shard], '/');
        if (strcmp(b ? b + 1 : s->paths[t->shard], e->valuestring)) {
            rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\" is mapped to %s but found in %s", index_path, e->string, e->valuestring, s->paths[t->shard]);
            goto done;
        }
    }
    rc = 0;
done:
    free(dir);
    cJSON_Delete(root);
    return rc;
}

int st_open(st_set **out, const char *path, rs_err *err) {
    *out = NULL;
    st_set *s = calloc(1, sizeof *s);
    if (!s) return rs_errk(err, RS_ENOMEM, "out of memory");
    tensor_list l = {0};
    int rc = -1;
    char *idx = NULL, *single = NULL;
    if (rs_is_dir(path)) {
        idx = rs_path_join(path, "model.safetensors.index.json");
        single = rs_path_join(path, "model.safetensors");
        if (!idx || !single) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        if (rs_path_exists(idx)) rc = open_index(s, idx, &l, err);
        else if (rs_path_exists(single)) rc = add_shard(s, single, err) || parse_shard(s, 0, &l, err);
        else rs_errk(err, RS_EFORMAT, "%s: no model.safetensors or model.safetensors.index.json in this directory", path);
    } else if (rs_ends_with(path, ".json")) {
        rc = open_index(s, path, &l, err);
    } else {
        rc = add_shard(s, path, err);
        if (rc == 0) rc = parse_shard(s, 0, &l, err);
    }
    if (rc) goto done;
    if (l.n > 1) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_name); /* a file may hold no tensors (v NULL) */
    for (int i = 1; i < l.n; i++)
        if (!strcmp(l.v[i].name, l.v[i - 1].name)) {
            rc = rs_errk(err, RS_EFORMAT, "%s: duplicate tensor name \"%s\"", s->paths[l.v[i].shard], l.v[i].name);
            goto done;
        }
    if (!(s->claimed = calloc((size_t)(l.n ? l.n : 1), 1))) rc = rs_errk(err, RS_ENOMEM, "out of memory");
done:
    free(idx);
    free(single);
    s->tensors = l.v;
    s->n_tensors = l.n;
    if (rc) {
        st_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void st_close(st_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_tensors; i++) free(s->tensors[i].name);
    free(s->tensors);
    for (int i = 0; i < s->n_shards; i++) {
        rs_mmap_close(&s->maps[i]);
        free(s->paths[i]);
    }
    free(s->maps);
    free(s->paths);
    for (int i = 0; i < s->n_meta; i++) {
        free(s->meta_keys[i]);
        free(s->meta_vals[i]);
    }
    free(s->meta_keys);
    free(s->meta_vals);
    free(s->claimed);
    free(s);
}

const st_tensor *st_get(const st_set *s, const char *name) {
    if (!s || !s->n_tensors) return NULL;
    st_tensor key = {.name = (char *)name};
    return bsearch(&key, s->tensors, (size_t)s->n_tensors, sizeof key, cmp_name);
}

const char *st_meta(const st_set *s, const char *key) {
    for (int i = 0; s && i < s->n_meta; i++)
        if (!strcmp(s->meta_keys[i], key)) return s->meta_vals[i];
    return NULL;
}

/* bf16 → f32 widening (a shift: vectorised per ISA level, the same bits at every level). */
RS_KERNEL_BODY void bf16_widen_body(float *dst, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(dst + i, &u, 4);
    }
}
RS_ISA_KERNEL(bf16_widen, (float *dst, const unsigned char *p, size_t n), (dst, p, n))

/* f16 → f32, the bits of rs_f16_to_f32 without its branches and renormalising loop (so it
 * vectorises): a subnormal m·2⁻²⁴ is computed in float, which is exact (m < 2¹⁰, the result
 * a normal f32); zero is the m = 0 case of it; Inf/NaN keep the payload like rs_f16_to_f32. */
RS_KERNEL_BODY void f16_widen_body(float *dst, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FFu;
        float sub = (float)(int32_t)m * 0x1p-24f;
        uint32_t su;
        memcpy(&su, &sub, 4);
        uint32_t zero_exp = 0u - (uint32_t)(e == 0), max_exp = 0u - (uint32_t)(e == 31); /* all-ones masks */
        uint32_t u = (su & zero_exp) | ((0x7F800000u | (m << 13)) & max_exp) |
                     ((((e + 112) << 23) | (m << 13)) & ~(zero_exp | max_exp));
        u |= sign;
        memcpy(dst + i, &u, 4);
    }
}
RS_ISA_KERNEL(f16_widen, (float *dst, const unsigned char *p, size_t n), (dst, p, n))

void st_to_f32(const st_tensor *t, float *dst) {
    const unsigned char *p = t->data;
    size_t n = (size_t)t->numel;
    /* memcpy per element: the mapping gives no alignment guarantee for every dtype. */
    switch (t->dtype) {
    case RS_DT_F32: memcpy(dst, p, n * 4); break;
    case RS_DT_BF16: { /* the hot path: bf16 weights widened per layer (op_weight_f32, 64k-value chunks) */
        const size_t CH = 4096, nch = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (n > (1u << 16))
        for (size_t c = 0; c < nch; c++) RS_ISA_CALL(bf16_widen)(dst + c * CH, p + 2 * c * CH, n - c * CH < CH ? n - c * CH : CH);
        break;
    }
    case RS_DT_F16: {
        const size_t CH = 4096, nch = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (n > (1u << 16))
        for (size_t c = 0; c < nch; c++) RS_ISA_CALL(f16_widen)(dst + c * CH, p + 2 * c * CH, n - c * CH < CH ? n - c * CH : CH);
        break;
    }
    case RS_DT_F64:
        for (size_t i = 0; i < n; i++) { double d; memcpy(&d, p + 8 * i, 8); dst[i] = (float)d; }
        break;
#define INT_CASE(DT, T)                                                                       \
    case DT:                                                                                   \
        for (size_t i = 0; i < n; i++) { T v; memcpy(&v, p + sizeof(T) * i, sizeof(T)); dst[i] = (float)v; } \
        break;
        INT_CASE(RS_DT_I8, int8_t)
        INT_CASE(RS_DT_I16, int16_t)
        INT_CASE(RS_DT_I32, int32_t)
        INT_CASE(RS_DT_I64, int64_t)
        INT_CASE(RS_DT_U8, uint8_t)
        INT_CASE(RS_DT_U16, uint16_t)
        INT_CASE(RS_DT_U32, uint32_t)
        INT_CASE(RS_DT_U64, uint64_t)
        INT_CASE(RS_DT_BOOL, uint8_t)
#undef INT_CASE
    default: break;
    }
}

float *st_to_f32_new(const st_tensor *t) {
    float *d = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    if (d) st_to_f32(t, d);
    return d;
}

static void shape_str(char *buf, size_t n, int nd, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

int st_expect(const st_set *s, const char *name, int ndim, const int64_t *shape,
              const st_tensor **out, rs_err *err) {
    const st_tensor *t = st_get(s, name);
    if (out) *out = t;
    if (!t) return rs_errk(err, RS_EFORMAT, "%s: missing tensor \"%s\"", s->n_shards ? s->paths[0] : "?", name);
    if (s->claimed) s->claimed[t - s->tensors] = 1;
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[160], got[160];
        shape_str(want, sizeof want, ndim, shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return rs_errk(err, RS_EFORMAT, "%s: tensor \"%s\" has shape %s but the config implies %s",
                       s->paths[t->shard], name, got, want);
    }
    return 0;
}

/* ---- writing ---- */

typedef struct {
    char *name;
    rs_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} w_tensor;

struct st_writer {
    w_tensor *t;
    int n, cap;
    char **mk, **mv;
    int nm;
};

st_writer *st_writer_new(void) { return calloc(1, sizeof(st_writer)); }

int st_writer_add(st_writer *w, const char *name, rs_dtype dt, int ndim, const int64_t *shape,
                  const void *data, rs_err *err) {
    if (ndim < 0 || ndim > ST_MAX_DIMS) return rs_errk(err, RS_EINVAL, "tensor \"%s\": %d dims", name, ndim);
    /* Names land in the JSON header: readers (ours and the Rust one) reject non-UTF-8. */
    if (!rs_utf8_valid(name, strlen(name))) return rs_errk(err, RS_EINVAL, "tensor name is not valid UTF-8");
    if (!strcmp(name, "__metadata__")) return rs_errk(err, RS_EINVAL, "\"__metadata__\" is reserved, not a tensor name");
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) return rs_errk(err, RS_EINVAL, "duplicate tensor name \"%s\"", name);
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 16;
        w_tensor *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt) return rs_errk(err, RS_ENOMEM, "out of memory");
        w->t = nt;
        w->cap = nc;
    }
    w_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return rs_errk(err, RS_EINVAL, "tensor \"%s\": negative dimension", name);
        if (shape[i] && numel > SIZE_MAX / 8 / (size_t)shape[i])
            return rs_errk(err, RS_EINVAL, "tensor \"%s\": shape product overflows", name);
        t->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    t->name = strdup(name);
    if (!t->name) return rs_errk(err, RS_ENOMEM, "out of memory");
    t->dtype = dt;
    t->ndim = ndim;
    t->data = data;
    t->nbytes = numel * rs_dtype_size(dt);
    w->n++;
    return 0;
}

int st_writer_meta(st_writer *w, const char *key, const char *val, rs_err *err) {
    /* The header must stay valid UTF-8 JSON (e.g. labels read from a user's file). */
    if (!rs_utf8_valid(key, strlen(key)) || !rs_utf8_valid(val, strlen(val)))
        return rs_errk(err, RS_EINVAL, "__metadata__[\"%.60s\"]: key or value is not valid UTF-8", key);
    char **nk = realloc(w->mk, (size_t)(w->nm + 1) * sizeof *nk);
    if (nk) w->mk = nk;
    char **nv = realloc(w->mv, (size_t)(w->nm + 1) * sizeof *nv);
    if (nv) w->mv = nv;
    if (!nk || !nv) return rs_errk(err, RS_ENOMEM, "out of memory");
    char *k = strdup(key), *v = strdup(val);
    if (!k || !v) {
        free(k);
        free(v);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    w->mk[w->nm] = k;
    w->mv[w->nm] = v;
    w->nm++;
    return 0;
}

int st_writer_save(st_writer *w, const char *path, rs_err *err) {
    char *h = NULL;
    size_t len = 0, cap = 0;
    int oom = 0;
    char num[160];
#define PUT(s) (oom |= rs_json_append_raw(&h, &len, &cap, (s)))
#define PUTS(s) (oom |= rs_json_append_string(&h, &len, &cap, (s)))
    PUT("{");
    int first = 1;
    if (w->nm) {
        PUTS("__metadata__");
        PUT(":{");
        for (int i = 0; i < w->nm; i++) {
            if (i) PUT(",");
            PUTS(w->mk[i]);
            PUT(":");
            PUTS(w->mv[i]);
        }
        PUT("}");
        first = 0;
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        w_tensor *t = &w->t[i];
        if (!first) PUT(",");
        first = 0;
        PUTS(t->name);
        PUT(":{\"dtype\":");
        PUTS(rs_dtype_name(t->dtype));
        PUT(",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            PUT(num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        PUT(num);
        off += t->nbytes;
    }
    PUT("}");
    while (!oom && len % 8) PUT(" "); /* pad so the data section starts 8-byte aligned */
#undef PUT
#undef PUTS
    if (oom) {
        free(h);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory building header", path);
    }
    rs_atomic_file f;
    if (rs_atomic_open(&f, path, err)) {
        free(h);
        return -1;
    }
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)(((uint64_t)len >> (8 * i)) & 0xFF);
    int rc = rs_atomic_write(&f, lenbuf, 8, err) || rs_atomic_write(&f, h, len, err);
    for (int i = 0; !rc && i < w->n; i++) rc = rs_atomic_write(&f, w->t[i].data, w->t[i].nbytes, err);
    free(h);
    if (rc) {
        rs_atomic_abort(&f);
        return -1;
    }
    return rs_atomic_commit(&f, err);
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    for (int i = 0; i < w->nm; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->mk);
    free(w->mv);
    free(w);
}
