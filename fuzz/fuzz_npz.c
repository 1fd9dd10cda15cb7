/* NumPy .npz (ZIP of .npy, stored/deflated, ZIP64): npz_open with a 64 MiB cap on decoded
 * bytes (zip bombs must be refused before inflating), then every member is converted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "io/npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write(0, "x.npz", data, size);
    rs_err err;
    npz_file *z = NULL;
    if (npz_open(&z, p, (size_t)64 << 20, &err) == 0) {
        for (int i = 0; i < z->n; i++) {
            const npy_array *a = &z->arrays[i];
            if (npz_get(z, a->name) == NULL) abort();
            float *f = malloc(sizeof(float) * (size_t)(a->numel + 1));
            npy_to_f32(a, f);
            free(f);
        }
        npz_close(z);
    } else if (!strstr(err.msg, "x.npz")) {
        abort();
    }
    return 0;
}
