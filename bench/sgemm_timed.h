/* The timed cblas_sgemm of bench_gemma2.c and bench_paligemma.c: the program defines
 * cblas_sgemm itself (the static library's calls bind to it) and forwards to the BLAS's via
 * dlsym(RTLD_NEXT); the calls made outside a parallel region (the linear layers) add their
 * wall time to lin_s and their FLOPs to lin_flop. The same for oneDNN's
 * dnnl_primitive_execute when the linear layers run on oneDNN's f32 matmul (rs_sgemm_path;
 * only f32 products count, so a bf16 run's products stay out as before; on the CPU engine
 * the call returns when the product is done). Include it in one file of a program, with
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

#ifdef RS_BUILD_HAS_DNNL /* the library links oneDNN (CMakeLists.txt) */
#include <oneapi/dnnl/dnnl.h>
typedef dnnl_status_t (*dnnl_exec_fn)(const_dnnl_primitive_t, dnnl_stream_t, int, const dnnl_exec_arg_t *);
dnnl_status_t dnnl_primitive_execute(const_dnnl_primitive_t p, dnnl_stream_t st, int nargs, const dnnl_exec_arg_t *args) {
    static dnnl_exec_fn real;
    if (!real) real = (dnnl_exec_fn)dlsym(RTLD_NEXT, "dnnl_primitive_execute");
    if (!real) {
        fprintf(stderr, BENCH_PROG ": no dnnl_primitive_execute after this program (dlsym: %s)\n", dlerror());
        exit(1);
    }
    const_dnnl_primitive_desc_t pd = NULL;
    const dnnl_memory_desc_t *src = NULL, *wei = NULL;
    if (!omp_in_parallel() && dnnl_primitive_get_primitive_desc(p, &pd) == dnnl_success) {
        src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        wei = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    }
    if (!src || !wei || src->data_type != dnnl_f32 || src->ndims != 2) return real(p, st, nargs, args);
    double t0 = rs_now();
    dnnl_status_t rc = real(p, st, nargs, args);
    lin_s += rs_now() - t0;
    lin_flop += 2.0 * (double)src->dims[0] * (double)src->dims[1] * (double)wei->dims[1];
    return rc;
}
#endif
#endif
