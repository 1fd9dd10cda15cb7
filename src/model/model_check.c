/* Whole-checkpoint validation: run the real loader, then refuse tensors it did not claim. */
#include "model/model_check.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "reprshift/gemma2.h"
#include "reprshift/paligemma.h"

static float elem(const st_tensor *t, size_t i) {
    const unsigned char *p = t->data;
    if (t->dtype == RS_DT_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return t->dtype == RS_DT_BF16 ? rs_bf16_to_f32(h) : rs_f16_to_f32(h);
}

/* An output head saved next to the embedding. Gemma-2 ties lm_head to embed_tokens, so the
 * loaders never read it: accepted only as a copy of the embedding (same shape, float dtype,
 * equal values on 64 rows spread over the vocabulary, compared in f32; a head stored in a
 * narrower dtype than the embedding only has to match after rounding to it). Returns 1 for
 * such a copy, 0 for a tensor of another name, -1 (error set) for an untied head. */
static int tied_head(const st_set *st, const st_tensor *t, const st_tensor *emb, rs_err *err) {
    static const char *const NAMES[] = {"lm_head.weight", "language_model.lm_head.weight"};
    int named = 0;
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) named |= !strcmp(t->name, NAMES[i]);
    if (!named) return 0;
    if (t->ndim != 2 || t->shape[0] != emb->shape[0] || t->shape[1] != emb->shape[1] ||
        (t->dtype != RS_DT_F32 && t->dtype != RS_DT_BF16 && t->dtype != RS_DT_F16))
        return 0; /* reported as an unexpected tensor */
    int64_t V = emb->shape[0], D = emb->shape[1], n = V < 64 ? V : 64;
    for (int64_t k = 0; k < n; k++) {
        int64_t r = n > 1 ? k * (V - 1) / (n - 1) : 0;
        for (int64_t c = 0; c < D; c++) {
            float a = elem(t, (size_t)(r * D + c)), b = elem(emb, (size_t)(r * D + c));
            if (t->dtype != emb->dtype && t->dtype == RS_DT_BF16) b = rs_bf16_to_f32(rs_f32_to_bf16(b));
            if (a != b && !(a != a && b != b))
                return rs_errf(err, "%s: tensor \"%s\" differs from the embedding \"%s\" (row %lld, column %lld: "
                                    "%g vs %g): an untied output head, but Gemma-2 ties it to the embedding and the "
                                    "loader would ignore it",
                               st->paths[t->shard], t->name, emb->name, (long long)r, (long long)c, a, b);
        }
    }
    return 1;
}

static int leftovers(const st_set *st, const st_tensor *emb, const char *family, model_check_info *info,
                     rs_err *err) {
    for (int i = 0; i < st->n_tensors; i++) {
        const st_tensor *t = &st->tensors[i];
        if (st->claimed[i]) continue;
        int tied = tied_head(st, t, emb, err);
        if (tied < 0) return -1;
        if (tied) {
            info->n_tied_head++;
            continue;
        }
        return rs_errf(err, "%s: unexpected tensor \"%s\" (%s %dD): not part of a %s checkpoint with this config "
                            "(the loader would ignore it)",
                       st->paths[t->shard], t->name, rs_dtype_name(t->dtype), t->ndim, family);
    }
    info->n_tensors = st->n_tensors;
    return 0;
}

int model_check(const char *dir, model_check_info *info, rs_err *err) {
    model_check_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    if (model_config_type(dir, &info->type, err)) return -1;
    int rc;
    if (info->type == RS_MODEL_GEMMA2) {
        gemma2_model *m;
        if (gemma2_open(&m, dir, err)) return -1;
        snprintf(info->layout, sizeof info->layout, "model.");
        rc = leftovers(m->st, m->embed_tokens, "Gemma-2", info, err);
        gemma2_close(m);
    } else {
        paligemma_model *m;
        if (paligemma_open(&m, dir, err)) return -1;
        snprintf(info->layout, sizeof info->layout, "%s / %s / %s", m->vision_prefix, m->proj_prefix, m->text_prefix);
        rc = leftovers(m->st, m->text->embed_tokens, "PaliGemma", info, err);
        paligemma_close(m);
    }
    return rc;
}
