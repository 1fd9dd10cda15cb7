/* st_open on an arbitrary single .safetensors file: header length, JSON header, dtypes,
 * shapes, offsets, overlaps, duplicates. Every accepted tensor is converted to f32 (reads
 * all its bytes, so ASan sees any offset that escapes the mapping). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "reprshift/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write(0, "x.safetensors", data, size);
    st_set *s = NULL;
    rs_err err;
    if (st_open(&s, p, &err) == 0) {
        for (int i = 0; i < s->n_tensors; i++) {
            const st_tensor *t = &s->tensors[i];
            if (st_get(s, t->name) != t) abort();
            if (t->numel > (1 << 22)) continue;
            float *f = st_to_f32_new(t);
            free(f);
            int64_t shape[ST_MAX_DIMS];
            memcpy(shape, t->shape, sizeof shape);
            const st_tensor *o;
            if (st_expect(s, t->name, t->ndim, shape, &o, &err) != 0) abort();
        }
        for (int i = 0; i < s->n_meta; i++) (void)st_meta(s, s->meta_keys[i]);
        st_close(s);
    } else if (!strstr(err.msg, "x.safetensors")) {
        abort(); /* error must name the file */
    }
    return 0;
}
