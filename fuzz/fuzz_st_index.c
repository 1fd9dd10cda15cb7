/* st_open on a model.safetensors.index.json (the fuzz input) in a directory that also
 * holds two valid shards (a.safetensors: x, y; b.safetensors: z) and a corrupt one
 * (c.safetensors) and an empty one (e.safetensors), opened both by the index path and
 * by the directory. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "reprshift/safetensors.h"

static void setup(void) {
    static float x[6] = {1, 2, 3, 4, 5, 6}, y[2] = {7, 8}, z[3] = {9, 10, 11};
    rs_err err;
    int64_t sx[2] = {2, 3}, sy[1] = {2}, sz[1] = {3};
    st_writer *w = st_writer_new();
    if (!w || st_writer_add(w, "x", RS_DT_F32, 2, sx, x, &err) || st_writer_add(w, "y", RS_DT_F32, 1, sy, y, &err) ||
        st_writer_save(w, fz_path(0, "a.safetensors"), &err)) abort();
    st_writer_free(w);
    w = st_writer_new();
    if (!w || st_writer_add(w, "z", RS_DT_F32, 1, sz, z, &err) || st_writer_save(w, fz_path(0, "b.safetensors"), &err))
        abort();
    st_writer_free(w);
    static const char bad[] = "\x40\0\0\0\0\0\0\0{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99]}}";
    fz_write(0, "c.safetensors", bad, sizeof bad - 1);
    static const char empty[] = "\x08\0\0\0\0\0\0\0{}      "; /* valid, no tensors */
    fz_write(0, "e.safetensors", empty, sizeof empty - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) { setup(); ready = 1; }
    const char *p = fz_write(1, "model.safetensors.index.json", data, size);
    for (int k = 0; k < 2; k++) {
        st_set *s = NULL;
        rs_err err;
        if (st_open(&s, k ? fz_dir() : p, &err) == 0) {
            for (int i = 0; i < s->n_tensors; i++) {
                float *f = st_to_f32_new(&s->tensors[i]);
                free(f);
            }
            st_close(s);
        }
    }
    return 0;
}
