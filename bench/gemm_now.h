/* The fp32 GEMM rate right now, for bench_gemma2.c / bench_paligemma.c: the linear-layer
 * products y = x·Wᵀ at the model's shapes (bench_gemm.c's list: Gemma-2 2B at 512 rows,
 * SigLIP So400m at 256 rows), best of 3 after a warm-up, through op_linear: the route (BLAS
 * and kernel, or oneDNN; rs_sgemm_path) the model ran on, measured in the same process just
 * after the model's runs. The machine is
 * shared and its load swings within minutes, so this is the denominator of "fraction of
 * the GEMM rate" taken closest in time to the model run (the survey at the start of a run
 * gives the best candidate, minutes earlier). Returns Σ flop / Σ time in GFLOP/s. */
#ifndef BENCH_GEMM_NOW_H
#define BENCH_GEMM_NOW_H
#include <stdlib.h>
#include "reprshift/ops.h"
#include "reprshift/progress.h"

static double gemm_now(int siglip) {
    static const int g[][3] = {{512, 2304, 4096}, {512, 2048, 2304}, {512, 2304, 18432}, {512, 9216, 2304}};
    static const int s[][3] = {{256, 1152, 3456}, {256, 1152, 4304}, {256, 4304, 1152}};
    const int(*sh)[3] = siglip ? s : g;
    int n = siglip ? 3 : 4;
    double flop = 0, t = 0;
    for (int i = 0; i < n; i++) {
        int T = sh[i][0], IN = sh[i][1], OUT = sh[i][2];
        float *x = malloc(sizeof(float) * (size_t)T * IN), *w = malloc(sizeof(float) * (size_t)OUT * IN);
        float *y = malloc(sizeof(float) * (size_t)T * OUT);
        if (!x || !w || !y) return 0;
        for (size_t k = 0; k < (size_t)T * IN; k++) x[k] = (float)(k % 7) * 0.1f;
        for (size_t k = 0; k < (size_t)OUT * IN; k++) w[k] = (float)(k % 5) * 0.1f;
        op_linear(y, x, w, NULL, T, IN, OUT);
        double best = 1e30;
        for (int r = 0; r < 3; r++) {
            double t0 = rs_now();
            op_linear(y, x, w, NULL, T, IN, OUT);
            double dt = rs_now() - t0;
            if (dt < best) best = dt;
        }
        flop += 2.0 * T * IN * OUT;
        t += best;
        free(x); free(w); free(y);
    }
    return flop / t / 1e9;
}
#endif
