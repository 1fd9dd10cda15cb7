/* Helpers shared by the benchmark programs under bench/ (header only, as CMake makes each C
 * file there an executable): peak RSS, a qsort comparator for medians, a monotonic clock and
 * a seeded uniform generator, the --sgemm-route option. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

#include "reprshift/blas.h"
#include "reprshift/ops.h"
#include "reprshift/ops_bf16.h"

/* Monotonic wall clock, seconds. */
static inline double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* xorshift64* from a fixed seed, uniform in [-1, 1): the same inputs in every run. */
static uint64_t bench_rng = 0x1234567;
static inline float bench_urand(void) {
    bench_rng ^= bench_rng >> 12;
    bench_rng ^= bench_rng << 25;
    bench_rng ^= bench_rng >> 27;
    return (float)((bench_rng * 2685821657736338717ull) >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* Peak resident set size of this process so far, in GiB (getrusage: ru_maxrss is in KiB). */
static inline double peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / (1024.0 * 1024.0);
}

/* --bf16-route auto|native|emulated: the route of --precision bf16's products
 * (op_bf16_set_route, the CLI's RS_BF16_GEMM). 0, or -1 after a message. */
static inline int bench_bf16_route(const char *r) {
    int v = op_bf16_route_parse(r);
    if (v >= 0 && !op_bf16_set_route(v)) return 0;
    fprintf(stderr, "--bf16-route: auto, native (where supported) or emulated, not \"%s\"\n", r);
    return -1;
}

/* --sgemm-route auto|blas|onednn: the fp32 linear layers' route (rs_sgemm_set_route, the CLI's
 * RS_SGEMM; auto, the default, as rs_sgemm_auto_onednn says). 0, or -1 after a message (also
 * when oneDNN, asked for by name, fails its check). */
static inline int bench_sgemm_route(const char *r) {
    int v = rs_sgemm_route_parse(r);
    if (v >= 0 && !rs_sgemm_set_route(v) && (v != RS_SGEMM_ONEDNN || rs_sgemm_use_onednn())) return 0;
    fprintf(stderr, "--sgemm-route: auto, blas or onednn (onednn needs a build with oneDNN whose check passes), not \"%s\"\n", r);
    return -1;
}

/* --attn-route: the fp32 attention's products (op_attn_route_set; the CLI's RS_ATTN). */
static inline int bench_attn_route(const char *r) {
    int v = op_attn_route_parse(r);
    if (v >= 0 && !op_attn_route_set(v)) return 0;
    fprintf(stderr, "--attn-route: auto, blas or fused (fused needs AVX-512), not \"%s\"\n", r ? r : "");
    return -1;
}

/* qsort comparator for doubles, ascending (medians of timed rounds). */
static inline int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
#endif
