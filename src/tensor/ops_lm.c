/* Kernels at the two ends of a language model: the embedding gather and the LM head. */
#include "reprshift/ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

void op_embed_gather(float *row, const st_tensor *E, int32_t id, int D) {
    st_tensor r = *E;
    r.numel = D;
    r.data = (const char *)r.data + (size_t)id * D * rs_dtype_size(r.dtype);
    st_to_f32(&r, row);
}

void op_embed_rows(float *y, const st_tensor *E, const int32_t *ids, const uint8_t *keep, int T, int D, float scale) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int i = 0; i < T; i++) {
        float *row = y + (size_t)i * D;
        if (!keep || !keep[i]) op_embed_gather(row, E, ids[i], D);
        for (int d = 0; d < D; d++) row[d] *= scale;
    }
}

void op_gemm_nt(float *y, int ldy, const float *x, const float *W, int T, int IN, int OUT) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OUT, IN, 1.0f, x, IN, W, IN, 0.0f, y, ldy);
}

void op_softcap(float *x, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i] / cap) * cap;
}
