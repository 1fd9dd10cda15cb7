/* NumPy .npy: npy_parse_header on the buffer and npy_load on the same bytes as a file;
 * an accepted array is converted to f32 and int64 (reads every element). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "io/npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rs_err err;
    npy_array a;
    size_t off = 0;
    memset(&a, 0, sizeof a);
    if (npy_parse_header(data, size, &a, &off, "fuzz.npy", &err) == 0 && off > size) abort();
    const char *p = fz_write(0, "x.npy", data, size);
    memset(&a, 0, sizeof a);
    if (npy_load(p, (size_t)64 << 20, &a, &err) == 0) {
        if (a.nbytes != (size_t)a.numel * npy_itemsize(a.dtype)) abort();
        float *f = malloc(sizeof(float) * (size_t)(a.numel + 1));
        int64_t *q = malloc(sizeof(int64_t) * (size_t)(a.numel + 1));
        npy_to_f32(&a, f);
        /* floats that are NaN, fractional or out of range must be refused, not cast */
        if (npy_to_i64(&a, q) == 0 && (a.dtype == NPY_F4 || a.dtype == NPY_F8))
            for (int64_t i = 0; i < a.numel; i++)
                if ((double)q[i] != (a.dtype == NPY_F4 ? (double)((const float *)a.data)[i]
                                                       : ((const double *)a.data)[i])) abort();
        free(f);
        free(q);
    }
    npy_array_clear(&a);
    return 0;
}
