/* oneDNN's matmul behind the CPU kernels (internal to the library): one engine and stream for
 * the process, one call per product. Used by op_linear's fp32 route (tensor/blas.c,
 * include/reprshift/blas.h "rs_sgemm_*") and by the bf16 products (ops_bf16.c). Without
 * oneDNN in the build (RS_HAVE_DNNL unset) every function reports "unavailable" and the
 * callers use the BLAS. Nothing here prints or reads the environment. */
#ifndef RS_TENSOR_DNNL_MM_H
#define RS_TENSOR_DNNL_MM_H

#include <stddef.h>

/* 1 when oneDNN is built in and its CPU engine starts. */
int rs_dnnl_available(void);

/* "oneDNN 2.6.3", or "" without oneDNN. */
void rs_dnnl_version_str(char *buf, size_t n);

/* C[M,N] (f32, row stride ldc) = A[M,K]·Bᵀ (+ bias[N] when bias is non-NULL), where B is
 * stored [N,K] with row stride K. bf16 = 0: A and B are f32; bf16 = 1: A and B are bf16 bit
 * patterns (uint16). Accumulation in fp32; the fp32 math mode is set to strict, so an
 * environment default (ONEDNN_DEFAULT_FPMATH_MODE) cannot turn f32 products into bf16 ones.
 * 0 on success, -1 when oneDNN is absent or refuses (C is then unspecified). */
int rs_dnnl_matmul(float *C, int ldc, const void *A, const void *B, const float *bias, int M, int K, int N, int bf16);

/* The implementation oneDNN picks for an f32 product of M×K by K×N (with a bias): its
 * impl_info string, e.g. "brg:avx512_core"; "" when unavailable. */
void rs_dnnl_f32_impl(char *buf, size_t n, int M, int K, int N);

#endif
