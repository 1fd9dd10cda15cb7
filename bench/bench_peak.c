/* One core's peak multiply-add rate: fp32 FMA (vfmadd…ps on 512-bit, else 256-bit vectors) and,
 * where the CPU has AVX512-BF16, the bf16 dot product vdpbf16ps (two bf16 products per fp32
 * lane). Ten independent accumulators in registers, so throughput, not latency, bounds each
 * loop; best of --rounds (default 5). The ratio bf16/fp32 says whether bf16 arithmetic can
 * outrun fp32 on this core (docs/precision.md, "Speed"; the automatic bf16 route of
 * src/tensor/ops_bf16.c). One JSON line:
 *   {"fp32_fma_gmadd_s": …, "fp32_width_bits": 512|256, "bf16_dot_gmadd_s": …|null, "ratio": …}
 * usage: bench_peak [--rounds N] [--iters N] [--fp32-width 256]
 *   (iters: loop trips per round, default 20000000; --fp32-width 256: the 256-bit FMA loop even
 *   where AVX-512 is there, as an AVX2-only CPU runs it) */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

static volatile float sink; /* the accumulators' result goes somewhere */

/* static double NAME(long iters): G multiply-adds per second of OP over ten independent
 * accumulators a0…a9 of type ACC (from ZERO), operands x and y of type XT; MADDS multiply-adds
 * per OP (16 for a 512-bit fp32 FMA, 8 for 256-bit, 32 for vdpbf16ps: two bf16 products per
 * fp32 lane). The asm statement keeps the accumulators live in registers without adding work;
 * LANE0 takes one lane of a0 + a9 so the loop's result is used. */
#define PEAK_FN(NAME, TARGET, ACC, ZERO, XT, X, Y, OP, ADD, LANE0, MADDS)                        \
    __attribute__((target(TARGET))) static double NAME(long iters) {                            \
        ACC a0 = ZERO, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0; \
        XT x = X, y = Y;                                                                        \
        double t = bench_now();                                                                 \
        for (long n = 0; n < iters; n++) {                                                      \
            a0 = OP(a0, x, y), a1 = OP(a1, x, y), a2 = OP(a2, x, y), a3 = OP(a3, x, y);         \
            a4 = OP(a4, x, y), a5 = OP(a5, x, y), a6 = OP(a6, x, y), a7 = OP(a7, x, y);         \
            a8 = OP(a8, x, y), a9 = OP(a9, x, y);                                               \
            __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5),   \
                             "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9));                           \
        }                                                                                       \
        t = bench_now() - t;                                                                    \
        sink = LANE0(ADD(a0, a9));                                                              \
        return (double)iters * 10 * (MADDS) / t / 1e9;                                          \
    }

PEAK_FN(fma512, "avx512f", __m512, _mm512_setzero_ps(), __m512, _mm512_set1_ps(1.f), _mm512_set1_ps(1e-9f),
        _mm512_fmadd_ps, _mm512_add_ps, _mm512_reduce_add_ps, 16)
PEAK_FN(fma256, "avx2,fma", __m256, _mm256_setzero_ps(), __m256, _mm256_set1_ps(1.f), _mm256_set1_ps(1e-9f),
        _mm256_fmadd_ps, _mm256_add_ps, _mm256_cvtss_f32, 8)
/* x = 1.0 and y = the smallest bf16 subnormal in every half */
PEAK_FN(dot_bf16, "avx512f,avx512bf16", __m512, _mm512_setzero_ps(), __m512bh,
        (__m512bh)_mm512_set1_epi16(0x3f80), (__m512bh)_mm512_set1_epi16(0x0001), _mm512_dpbf16_ps, _mm512_add_ps,
        _mm512_reduce_add_ps, 32)

int main(int argc, char **argv) {
    int rounds = 5;
    long iters = 20000000;
    int force256 = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atol(argv[++i]);
        else if (!strcmp(argv[i], "--fp32-width") && i + 1 < argc && !strcmp(argv[i + 1], "256")) force256 = 1, i++;
        else {
            fprintf(stderr, "usage: bench_peak [--rounds N] [--iters N] [--fp32-width 256]\n");
            return 2;
        }
    }
    if (rounds < 1 || iters < 1) {
        fprintf(stderr, "bench_peak: --rounds and --iters must be positive\n");
        return 2;
    }
    __builtin_cpu_init();
    int w512 = __builtin_cpu_supports("avx512f"), bf16 = w512 && __builtin_cpu_supports("avx512bf16");
    if (force256) w512 = 0;
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
