/* One core's peak multiply-add rate: fp32 FMA (vfmadd…ps on 512-bit, else 256-bit vectors) and,
 * where the CPU has AVX512-BF16, the bf16 dot product vdpbf16ps (two bf16 products per fp32
 * lane). Ten independent accumulators in registers, so throughput, not latency, bounds each
 * loop; best of --rounds (default 5). The ratio bf16/fp32 says whether bf16 arithmetic can
 * outrun fp32 on this core (docs/precision.md, "Speed"; the automatic bf16 route of
 * src/tensor/ops_bf16.c). One JSON line:
 *   {"fp32_fma_gmadd_s": …, "fp32_width_bits": 512|256, "bf16_dot_gmadd_s": …|null, "ratio": …}
 * usage: bench_peak [--rounds N] [--iters N]   (iters: loop trips per round, default 20000000) */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

/* The asm statement keeps the ten accumulators live in registers without adding work. */
#define KEEP10(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9)                                         \
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), \
                     "+v"(a7), "+v"(a8), "+v"(a9))

__attribute__((target("avx512f"))) static double fma512(long iters) {
    __m512 a0 = _mm512_set1_ps(0.f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
    __m512 x = _mm512_set1_ps(1.f), y = _mm512_set1_ps(1e-9f);
    double t = bench_now();
    for (long n = 0; n < iters; n++) {
        a0 = _mm512_fmadd_ps(a0, x, y), a1 = _mm512_fmadd_ps(a1, x, y), a2 = _mm512_fmadd_ps(a2, x, y);
        a3 = _mm512_fmadd_ps(a3, x, y), a4 = _mm512_fmadd_ps(a4, x, y), a5 = _mm512_fmadd_ps(a5, x, y);
        a6 = _mm512_fmadd_ps(a6, x, y), a7 = _mm512_fmadd_ps(a7, x, y), a8 = _mm512_fmadd_ps(a8, x, y);
        a9 = _mm512_fmadd_ps(a9, x, y);
        KEEP10(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9);
    }
    t = bench_now() - t;
    volatile float sink = _mm512_reduce_add_ps(a0) + _mm512_reduce_add_ps(a9);
    (void)sink;
    return (double)iters * 10 * 16 / t / 1e9;
}

__attribute__((target("avx2,fma"))) static double fma256(long iters) {
    __m256 a0 = _mm256_set1_ps(0.f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
    __m256 x = _mm256_set1_ps(1.f), y = _mm256_set1_ps(1e-9f);
    double t = bench_now();
    for (long n = 0; n < iters; n++) {
        a0 = _mm256_fmadd_ps(a0, x, y), a1 = _mm256_fmadd_ps(a1, x, y), a2 = _mm256_fmadd_ps(a2, x, y);
        a3 = _mm256_fmadd_ps(a3, x, y), a4 = _mm256_fmadd_ps(a4, x, y), a5 = _mm256_fmadd_ps(a5, x, y);
        a6 = _mm256_fmadd_ps(a6, x, y), a7 = _mm256_fmadd_ps(a7, x, y), a8 = _mm256_fmadd_ps(a8, x, y);
        a9 = _mm256_fmadd_ps(a9, x, y);
        KEEP10(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9);
    }
    t = bench_now() - t;
    float o[8];
    _mm256_storeu_ps(o, _mm256_add_ps(a0, a9));
    volatile float sink = o[0];
    (void)sink;
    return (double)iters * 10 * 8 / t / 1e9;
}

__attribute__((target("avx512f,avx512bf16"))) static double dot_bf16(long iters) {
    __m512 a0 = _mm512_set1_ps(0.f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x0001); /* 1.0, tiny */
    double t = bench_now();
    for (long n = 0; n < iters; n++) {
        a0 = _mm512_dpbf16_ps(a0, x, y), a1 = _mm512_dpbf16_ps(a1, x, y), a2 = _mm512_dpbf16_ps(a2, x, y);
        a3 = _mm512_dpbf16_ps(a3, x, y), a4 = _mm512_dpbf16_ps(a4, x, y), a5 = _mm512_dpbf16_ps(a5, x, y);
        a6 = _mm512_dpbf16_ps(a6, x, y), a7 = _mm512_dpbf16_ps(a7, x, y), a8 = _mm512_dpbf16_ps(a8, x, y);
        a9 = _mm512_dpbf16_ps(a9, x, y);
        KEEP10(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9);
    }
    t = bench_now() - t;
    volatile float sink = _mm512_reduce_add_ps(a0) + _mm512_reduce_add_ps(a9);
    (void)sink;
    return (double)iters * 10 * 32 / t / 1e9;
}

int main(int argc, char **argv) {
    int rounds = 5;
    long iters = 20000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_peak [--rounds N] [--iters N]\n");
            return 2;
        }
    }
    if (rounds < 1 || iters < 1) {
        fprintf(stderr, "bench_peak: --rounds and --iters must be positive\n");
        return 2;
    }
    __builtin_cpu_init();
    int w512 = __builtin_cpu_supports("avx512f"), bf16 = w512 && __builtin_cpu_supports("avx512bf16");
    if (!w512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        fprintf(stderr, "bench_peak: this CPU has neither AVX-512 nor AVX2+FMA\n");
        return 1;
    }
    double best_f = 0, best_b = 0;
    for (int r = 0; r < rounds; r++) { /* interleaved, so load drifts hit both alike */
        double f = w512 ? fma512(iters) : fma256(iters);
        if (f > best_f) best_f = f;
        if (bf16) {
            double b = dot_bf16(iters);
            if (b > best_b) best_b = b;
        }
    }
    if (bf16)
        printf("{\"fp32_fma_gmadd_s\": %.1f, \"fp32_width_bits\": %d, \"bf16_dot_gmadd_s\": %.1f, \"ratio\": %.2f}\n",
               best_f, w512 ? 512 : 256, best_b, best_b / best_f);
    else
        printf("{\"fp32_fma_gmadd_s\": %.1f, \"fp32_width_bits\": %d, \"bf16_dot_gmadd_s\": null, \"ratio\": null}\n",
               best_f, w512 ? 512 : 256);
    return 0;
}
