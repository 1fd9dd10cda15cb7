/* The timed cblas_sgemm of bench_gemma2.c and bench_paligemma.c: the program defines
 * cblas_sgemm itself (the static library's calls bind to it) and forwards to the BLAS's via
 * dlsym(RTLD_NEXT); the calls made outside a parallel region (the linear layers) add their
 * wall time to lin_s and their FLOPs to lin_flop. Include it in one file of a program, with
 * BENCH_PROG (the program's name, for the error message) defined first. */
#ifndef BENCH_SGEMM_TIMED_H
#define BENCH_SGEMM_TIMED_H
#ifndef BENCH_PROG
#error "define BENCH_PROG before including sgemm_timed.h"
#endif
#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include "reprshift/progress.h"

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE, const blasint,
                         const blasint, const blasint, const float, const float *, const blasint, const float *,
                         const blasint, const float, float *, const blasint);
static double lin_s, lin_flop;
/* OpenBLAS's kernel name; referencing it also keeps libopenblas linked (with --as-needed the
 * linker would drop it, cblas_sgemm being defined here) so that RTLD_NEXT finds its sgemm. */
extern char *openblas_get_corename(void);

static sgemm_fn real_sgemm(void) {
    static sgemm_fn real;
    if (!real) real = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
    if (!real) {
        fprintf(stderr, BENCH_PROG ": no cblas_sgemm after this program (dlsym: %s)\n", dlerror());
        exit(1);
    }
    return real;
}

void cblas_sgemm(const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb, const blasint M,
                 const blasint N, const blasint K, const float alpha, const float *A, const blasint lda, const float *B,
                 const blasint ldb, const float beta, float *C, const blasint ldc) {
    sgemm_fn real = real_sgemm();
    if (omp_in_parallel()) {
        real(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    double t0 = rs_now();
    real(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    lin_s += rs_now() - t0;
    lin_flop += 2.0 * M * N * K;
}
#endif
