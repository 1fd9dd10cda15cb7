/* The weight-table loader (weights.h): find, validate and load the rows of a model's table. */
#include "model/weights.h"

#include <stdio.h>
#include <stdlib.h>

int rs_weight_dtype_check(const st_set *st, const st_tensor *t, rs_err *err) {
    if (t->dtype == RS_DT_F32 || t->dtype == RS_DT_BF16 || t->dtype == RS_DT_F16) return 0;
    return rs_errf(err, "%s: tensor \"%s\" has dtype %s; weights must be F32, BF16 or F16", st->paths[t->shard],
                   t->name, rs_dtype_name(t->dtype));
}

int rs_weights_load(const st_set *st, const char *prefix, const rs_wspec *tab, int n, const int64_t *dims,
                    void *base, size_t *max_numel, rs_err *err) {
    char name[256];
    for (int i = 0; i < n; i++) {
        const rs_wspec *w = &tab[i];
        int64_t shape[RS_W_MAX_DIMS];
        for (int d = 0; d < w->ndim; d++) shape[d] = dims[w->dims[d]];
        if (snprintf(name, sizeof name, "%s%s", prefix, w->name) >= (int)sizeof name)
            return rs_errf(err, "tensor name \"%s%s\" too long", prefix, w->name);
        const st_tensor *t;
        if (st_expect(st, name, w->ndim, shape, &t, err) || rs_weight_dtype_check(st, t, err)) return -1;
        void *field = (char *)base + w->offset;
        if (w->kind == RS_W_F32) {
            float *copy = st_to_f32_new(t);
            if (!copy) return rs_errk(err, RS_ENOMEM, "out of memory");
            *(float **)field = copy;
        } else {
            *(const st_tensor **)field = t;
            if (w->kind == RS_W_MATRIX && max_numel && (size_t)t->numel > *max_numel) *max_numel = (size_t)t->numel;
        }
    }
    return 0;
}

void rs_weights_free(const rs_wspec *tab, int n, void *base) {
    for (int i = 0; i < n; i++) {
        if (tab[i].kind != RS_W_F32) continue;
        float **field = (float **)((char *)base + tab[i].offset);
        free(*field);
        *field = NULL;
    }
}
