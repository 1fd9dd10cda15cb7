/* Activation files written by `reprshift extract`: the tensors (one f32 tensor per hook,
 * named by the hook), token_ids / offsets (and for PaliGemma token_kind / vision_offsets),
 * metadata, and the FILE.rows.jsonl row index beside it. Batching and pooling are in
 * src/model/extract.c; this file only writes. */
#include "store/act_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "reprshift/safetensors.h"
#include "reprshift/version.h"

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

typedef int (*index_writer)(const void *r, const void *in, const char *path, rs_err *err);

/* The common end of both savers (rc: the status so far; the writer is freed either way): the
 * version and caller metadata, then the row index, then the tensors — index first, so a
 * complete-looking .safetensors without its index never exists. */
static int finish_save(st_writer *w, int rc, const char *const *meta, const char *path, index_writer write_index,
                       const void *r, const void *in, rs_err *err) {
    if (!rc) rc = st_writer_meta(w, "reprshift_version", RS_VERSION, err);
    for (int i = 0; meta && meta[i] && !rc; i += 2) rc = st_writer_meta(w, meta[i], meta[i + 1], err);
    char *ipath = rc ? NULL : malloc(strlen(path) + 16);
    if (!rc && !ipath) rc = rs_errk(err, RS_ENOMEM, "out of memory");
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

static int index_gemma2(const void *r, const void *in, const char *path, rs_err *err) {
    return write_index(r, in, path, err);
}

int extract_save(const extract_result *r, const rs_inputs *in, const char *path, const char *const *meta, rs_err *err) {
    st_writer *w = st_writer_new();
    if (!w) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = 0;
    for (int h = 0; h < r->n_hooks && !rc; h++) {
        int64_t shape[2] = {r->rows, r->widths[h]};
        rc = st_writer_add(w, r->names[h], RS_DT_F32, 2, shape, r->data[h], err);
    }
    int64_t ntok = r->offsets[r->n_inputs], noff = r->n_inputs + 1;
    if (!rc) rc = st_writer_add(w, "token_ids", RS_DT_I32, 1, &ntok, r->token_ids, err);
    if (!rc) rc = st_writer_add(w, "offsets", RS_DT_I64, 1, &noff, r->offsets, err);
    if (!rc) rc = st_writer_meta(w, "pool", rs_pool_name(r->pool), err);
    return finish_save(w, rc, meta, path, index_gemma2, r, in, err);
}

static int write_pg_index(const pg_extract_result *r, const pg_inputs *in, const char *path, rs_err *err) {
    rs_atomic_file f;
    if (rs_atomic_open(&f, path, err)) return -1;
    for (int64_t i = 0; i < r->n_inputs; i++) {
        int64_t rs0 = r->pool == POOL_NONE ? r->offsets[i] : i, rs1 = r->pool == POOL_NONE ? r->offsets[i + 1] : i + 1;
        fprintf(f.fp, "{\"input\":%lld,\"modality\":\"%s\",\"row_start\":%lld,\"row_end\":%lld,\"token_start\":%lld,"
                      "\"n_tokens\":%lld,\"prefix_len\":%d",
                (long long)i, in->image_paths[i] ? "image" : "text", (long long)rs0, (long long)rs1,
                (long long)r->offsets[i], (long long)(r->offsets[i + 1] - r->offsets[i]), in->prefix_len[i]);
        if (r->pool == POOL_NONE)
            fprintf(f.fp, ",\"vision_row_start\":%lld,\"vision_row_end\":%lld", (long long)r->vision_offsets[i],
                    (long long)r->vision_offsets[i + 1]);
        if (in->image_paths[i]) { fputs(",\"image\":", f.fp); rs_json_write_string(f.fp, in->image_paths[i]); }
        if (in->texts[i]) { fputs(in->image_paths[i] ? ",\"prompt\":" : ",\"text\":", f.fp); rs_json_write_string(f.fp, in->texts[i]); }
        if (in->labels[i]) { fputs(",\"label\":", f.fp); rs_json_write_string(f.fp, in->labels[i]); }
        int64_t n_after = r->offsets[i + 1] - r->offsets[i] - in->prefix_len[i];
        if (in->image_paths[i] && n_after > 0) fprintf(f.fp, ",\"suffix_len\":%lld", (long long)n_after);
        if (in->suffixes && in->suffixes[i]) { fputs(",\"suffix\":", f.fp); rs_json_write_string(f.fp, in->suffixes[i]); }
        fputs("}\n", f.fp);
    }
    if (ferror(f.fp)) {
        rs_atomic_abort(&f);
        return rs_errf(err, "%s: write failed", path);
    }
    return rs_atomic_commit(&f, err);
}

static int index_paligemma(const void *r, const void *in, const char *path, rs_err *err) {
    return write_pg_index(r, in, path, err);
}

int extract_paligemma_save(const pg_extract_result *r, const pg_inputs *in, const char *path,
                           const char *const *meta, rs_err *err) {
    st_writer *w = st_writer_new();
    if (!w) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < r->n_tensors && !rc; i++) {
        int64_t shape[2] = {r->t[i].rows, r->t[i].width};
        rc = st_writer_add(w, r->t[i].name, RS_DT_F32, 2, shape, r->t[i].data, err);
    }
    int64_t ntok = r->offsets[r->n_inputs], noff = r->n_inputs + 1;
    if (!rc) rc = st_writer_add(w, "token_ids", RS_DT_I32, 1, &ntok, r->token_ids, err);
    if (!rc) rc = st_writer_add(w, "token_kind", RS_DT_U8, 1, &ntok, r->token_kind, err);
    if (!rc) rc = st_writer_add(w, "offsets", RS_DT_I64, 1, &noff, r->offsets, err);
    if (!rc) rc = st_writer_add(w, "vision_offsets", RS_DT_I64, 1, &noff, r->vision_offsets, err);
    if (!rc) rc = st_writer_meta(w, "pool", rs_pool_name(r->pool), err);
    if (!rc) rc = st_writer_meta(w, "token_kind", "0 text (text-only input), 1 image, 2 bos, 3 prompt, 4 sep (\\n), "
                                                  "5 suffix, 6 eos/pad (incl. the <eos> ending a suffix)", err);
    return finish_save(w, rc, meta, path, index_paligemma, r, in, err);
}
