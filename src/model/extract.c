/* Batched extraction over many inputs. Inputs are packed greedily into batches of at most
 * batch_tokens tokens (an input longer than that runs alone), so memory stays bounded
 * while the big matmuls still see many rows. */
#include "reprshift/extract.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/fileio.h"
#include "reprshift/jsonutil.h"
#include "reprshift/safetensors.h"
#include "reprshift/version.h"

void rs_inputs_free(rs_inputs *in) {
    for (int i = 0; i < in->n; i++) {
        free(in->ids[i]);
        if (in->texts) free(in->texts[i]);
    }
    free(in->ids);
    free(in->lens);
    free(in->texts);
    memset(in, 0, sizeof *in);
}

int rs_inputs_add(rs_inputs *in, const int32_t *ids, int64_t len, const char *text, rs_err *err) {
    int32_t **ni = realloc(in->ids, (size_t)(in->n + 1) * sizeof *ni);
    if (ni) in->ids = ni;
    int64_t *nl = realloc(in->lens, (size_t)(in->n + 1) * sizeof *nl);
    if (nl) in->lens = nl;
    char **nt = realloc(in->texts, (size_t)(in->n + 1) * sizeof *nt);
    if (nt) in->texts = nt;
    if (!ni || !nl || !nt) return rs_errf(err, "out of memory");
    in->ids[in->n] = malloc((size_t)(len ? len : 1) * sizeof(int32_t));
    in->texts[in->n] = text ? strdup(text) : NULL;
    if (!in->ids[in->n] || (text && !in->texts[in->n])) return rs_errf(err, "out of memory");
    memcpy(in->ids[in->n], ids, (size_t)len * sizeof(int32_t));
    in->lens[in->n] = len;
    in->n++;
    return 0;
}

int rs_parse_ids(const char *s, int32_t **ids, int64_t *len, rs_err *err) {
    *ids = NULL;
    *len = 0;
    int64_t cap = 0;
    const char *p = s;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',' && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n')) {
            free(*ids);
            *ids = NULL;
            return rs_errf(err, "bad token id list near \"%.20s\" (expected non-negative integers separated by commas)", p);
        }
        if (*len == cap) {
            cap = cap ? cap * 2 : 16;
            int32_t *n = realloc(*ids, (size_t)cap * sizeof *n);
            if (!n) { free(*ids); *ids = NULL; return rs_errf(err, "out of memory"); }
            *ids = n;
        }
        (*ids)[(*len)++] = (int32_t)v;
        p = end;
    }
    if (*len == 0) return rs_errf(err, "empty token id list");
    return 0;
}

const char *rs_pool_name(rs_pool p) { return p == POOL_MEAN ? "mean" : p == POOL_LAST ? "last" : "none"; }

int rs_pool_parse(const char *s, rs_pool *out) {
    if (!strcmp(s, "none")) *out = POOL_NONE;
    else if (!strcmp(s, "mean")) *out = POOL_MEAN;
    else if (!strcmp(s, "last")) *out = POOL_LAST;
    else return -1;
    return 0;
}

void extract_result_free(extract_result *r) {
    for (int h = 0; r->data && h < r->n_hooks; h++) free(r->data[h]);
    free(r->data);
    free(r->names);
    free(r->widths);
    free(r->token_ids);
    free(r->offsets);
    memset(r, 0, sizeof *r);
}

static int is_special(const gemma2_config *c, int32_t id) {
    return id == c->bos_id || id == c->eos_id || id == c->pad_id;
}

int extract_gemma2(const gemma2_model *m, const rs_inputs *in, const extract_opts *o, extract_result *r,
                   rs_progress *prog, rs_err *err) {
    memset(r, 0, sizeof *r);
    if (in->n < 1) return rs_errf(err, "no inputs");
    int64_t total = 0;
    for (int i = 0; i < in->n; i++) {
        if (in->lens[i] < 1) return rs_errf(err, "input %d is empty (no tokens)", i + 1);
        total += in->lens[i];
    }
    r->n_hooks = o->n_hooks;
    r->pool = o->pool;
    r->n_inputs = in->n;
    r->rows = o->pool == POOL_NONE ? total : in->n;
    r->names = calloc((size_t)o->n_hooks, sizeof *r->names);
    r->widths = calloc((size_t)o->n_hooks, sizeof *r->widths);
    r->data = calloc((size_t)o->n_hooks, sizeof *r->data);
    r->token_ids = malloc((size_t)total * sizeof(int32_t));
    r->offsets = malloc((size_t)(in->n + 1) * sizeof(int64_t));
    if (!r->names || !r->widths || !r->data || !r->token_ids || !r->offsets) goto oom;
    for (int h = 0; h < o->n_hooks; h++) {
        memcpy(r->names[h], o->hooks[h].name, sizeof r->names[h]);
        r->widths[h] = o->hooks[h].width;
        r->data[h] = calloc((size_t)r->rows * r->widths[h], sizeof(float));
        if (!r->data[h]) goto oom;
    }
    r->offsets[0] = 0;
    for (int i = 0; i < in->n; i++) {
        r->offsets[i + 1] = r->offsets[i] + in->lens[i];
        memcpy(r->token_ids + r->offsets[i], in->ids[i], (size_t)in->lens[i] * sizeof(int32_t));
    }
    if (prog) rs_progress_start(prog, "extract (tokens)", total);
    int64_t *boff = malloc((size_t)(in->n + 1) * sizeof *boff);
    if (!boff) goto oom;
    for (int i0 = 0; i0 < in->n;) {
        /* greedy batch [i0, i1) */
        int i1 = i0;
        int64_t bt = 0;
        while (i1 < in->n && (i1 == i0 || bt + in->lens[i1] <= o->batch_tokens)) bt += in->lens[i1++];
        boff[0] = 0;
        for (int i = i0; i < i1; i++) boff[i - i0 + 1] = boff[i - i0] + in->lens[i];
        gemma2_batch b = {.n_seqs = i1 - i0, .offsets = boff, .ids = r->token_ids + r->offsets[i0]};
        if (gemma2_forward(m, &b, o->hooks, o->n_hooks, NULL, err)) {
            free(boff);
            hook_requests_free(o->hooks, o->n_hooks);
            extract_result_free(r);
            return -1;
        }
        for (int h = 0; h < o->n_hooks; h++) {
            int W = r->widths[h];
            const float *src = o->hooks[h].out;
            for (int i = i0; i < i1; i++) {
                const float *seq = src + (size_t)boff[i - i0] * W;
                int64_t L = in->lens[i];
                if (o->pool == POOL_NONE) {
                    memcpy(r->data[h] + (size_t)r->offsets[i] * W, seq, (size_t)L * W * sizeof(float));
                } else if (o->pool == POOL_LAST) {
                    memcpy(r->data[h] + (size_t)i * W, seq + (size_t)(L - 1) * W, (size_t)W * sizeof(float));
                } else {
                    double *acc = calloc((size_t)W, sizeof(double));
                    if (!acc) { free(boff); goto oom; }
                    int64_t cnt = 0;
                    for (int64_t t = 0; t < L; t++) {
                        if (!o->pool_special && is_special(&m->cfg, in->ids[i][t])) continue;
                        for (int d = 0; d < W; d++) acc[d] += seq[(size_t)t * W + d];
                        cnt++;
                    }
                    if (cnt == 0) {
                        free(acc);
                        free(boff);
                        hook_requests_free(o->hooks, o->n_hooks);
                        extract_result_free(r);
                        return rs_errf(err, "input %d has only special tokens (BOS/EOS/pad): nothing to mean-pool "
                                            "(use --pool-special to include them)", i + 1);
                    }
                    for (int d = 0; d < W; d++) r->data[h][(size_t)i * W + d] = (float)(acc[d] / cnt);
                    free(acc);
                }
            }
        }
        hook_requests_free(o->hooks, o->n_hooks);
        if (prog) rs_progress_update(prog, r->offsets[i1]);
        i0 = i1;
    }
    free(boff);
    if (prog) rs_progress_finish(prog);
    return 0;
oom:
    extract_result_free(r);
    return rs_errf(err, "out of memory for %lld tokens of activations", (long long)total);
}

/* The row index: one JSON line per input linking it to its rows (and text). */
static int write_index(const extract_result *r, const rs_inputs *in, const char *path, rs_err *err) {
    rs_atomic_file f;
    if (rs_atomic_open(&f, path, err)) return -1;
    for (int64_t i = 0; i < r->n_inputs; i++) {
        int64_t rs0 = r->pool == POOL_NONE ? r->offsets[i] : i;
        int64_t rs1 = r->pool == POOL_NONE ? r->offsets[i + 1] : i + 1;
        fprintf(f.fp, "{\"input\":%lld,\"row_start\":%lld,\"row_end\":%lld,\"token_start\":%lld,\"n_tokens\":%lld",
                (long long)i, (long long)rs0, (long long)rs1, (long long)r->offsets[i],
                (long long)(r->offsets[i + 1] - r->offsets[i]));
        if (in->texts && in->texts[i]) {
            fputs(",\"text\":", f.fp);
            rs_json_write_string(f.fp, in->texts[i]);
        }
        fputs("}\n", f.fp);
    }
    if (ferror(f.fp)) {
        rs_atomic_abort(&f);
        return rs_errf(err, "%s: write failed", path);
    }
    return rs_atomic_commit(&f, err);
}

int extract_save(const extract_result *r, const rs_inputs *in, const char *path, const char *const *meta, rs_err *err) {
    st_writer *w = st_writer_new();
    if (!w) return rs_errf(err, "out of memory");
    int rc = 0;
    for (int h = 0; h < r->n_hooks && !rc; h++) {
        int64_t shape[2] = {r->rows, r->widths[h]};
        rc = st_writer_add(w, r->names[h], RS_DT_F32, 2, shape, r->data[h], err);
    }
    int64_t ntok = r->offsets[r->n_inputs], noff = r->n_inputs + 1;
    if (!rc) rc = st_writer_add(w, "token_ids", RS_DT_I32, 1, &ntok, r->token_ids, err);
    if (!rc) rc = st_writer_add(w, "offsets", RS_DT_I64, 1, &noff, r->offsets, err);
    if (!rc) rc = st_writer_meta(w, "pool", rs_pool_name(r->pool), err);
    if (!rc) rc = st_writer_meta(w, "reprshift_version", RS_VERSION, err);
    for (int i = 0; meta && meta[i] && !rc; i += 2) rc = st_writer_meta(w, meta[i], meta[i + 1], err);
    /* index first: a complete-looking .safetensors without its index never exists */
    char *ipath = malloc(strlen(path) + 16);
    if (!ipath) rc = rs_errf(err, "out of memory");
    if (!rc) {
        sprintf(ipath, "%s.rows.jsonl", path);
        rc = write_index(r, in, ipath, err);
    }
    if (!rc) {
        rc = st_writer_save(w, path, err);
        if (rc) remove(ipath);
    }
    free(ipath);
    st_writer_free(w);
    return rc;
}
