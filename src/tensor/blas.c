/* BLAS identification, sgemm check and OpenBLAS kernel preference (include/reprshift/blas.h). */
#include "reprshift/blas.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Present only when the linked CBLAS is OpenBLAS. */
extern char *openblas_get_corename(void) __attribute__((weak));
extern char *openblas_get_config(void) __attribute__((weak));

void rs_blas_info_get(rs_blas_info *out) {
    memset(out, 0, sizeof *out);
    if (openblas_get_corename && openblas_get_config) {
        snprintf(out->library, sizeof out->library, "OpenBLAS");
        snprintf(out->kernel, sizeof out->kernel, "%s", openblas_get_corename());
        snprintf(out->config, sizeof out->config, "%s", openblas_get_config());
    } else {
        snprintf(out->library, sizeof out->library, "cblas");
    }
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One product C = op(A)·op(B) (row-major, M×N, inner K) against the double reference. */
static double check_one(int ta, int tb, int M, int N, int K, uint64_t *s, float *A, float *B, float *C) {
    int lda = ta ? M : K, ldb = tb ? K : N;
    for (int i = 0; i < M * K; i++) A[i] = (float)((xorshift(s) >> 11) * (1.0 / 9007199254740992.0)) - 0.5f;
    for (int i = 0; i < K * N; i++) B[i] = (float)((xorshift(s) >> 11) * (1.0 / 9007199254740992.0)) - 0.5f;
    for (int i = 0; i < M * N; i++) C[i] = NAN;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda, B,
                ldb, 0.0f, C, N);
    double worst = 0, u = ldexp(1.0, -24);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double ref = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
                ref += a * b;
                mag += fabs(a * b);
            }
            double c = C[i * N + j], r;
            if (!isfinite(c)) r = INFINITY;
            else if (mag == 0) r = c == 0 ? 0 : INFINITY;
            else r = fabs(c - ref) / (u * mag);
            if (!(r <= worst)) worst = r;
        }
    return worst;
}

#define CHECK_KMAX 130

double rs_blas_check_bound(void) { return 4.0 * CHECK_KMAX; }

double rs_blas_check(int *n_cases) {
    /* sizes around the kernels' register blocks (4, 8, 16, 24, 32, 48 rows/columns) */
    static const int mn[] = {1, 2, 3, 5, 8, 15, 16, 17, 24, 31, 33, 48};
    static const int kk[] = {1, 7, 16, 33, 64, CHECK_KMAX};
    int nmn = (int)(sizeof mn / sizeof mn[0]), nk = (int)(sizeof kk / sizeof kk[0]), cases = 0;
    size_t cap = (size_t)65 * CHECK_KMAX;
    float *A = malloc(cap * sizeof *A), *B = malloc(cap * sizeof *B), *C = malloc((size_t)65 * 65 * sizeof *C);
    double worst = 0;
    uint64_t s = 0x2545F4914F6CDD1Dull;
    if (!A || !B || !C) worst = NAN;
    for (int t = 0; !isnan(worst) && t < 4; t++)
        for (int a = 0; a < nmn; a++)
            for (int b = (a + t) % 3; b < nmn; b += 3)
                for (int k = (a + b) % 2; k < nk; k += 2) {
                    double r = check_one(t & 1, t >> 1, mn[a], mn[b], kk[k], &s, A, B, C);
                    if (!(r <= worst)) worst = r;
                    cases++;
                }
    /* every K on the largest blocks */
    for (int t = 0; !isnan(worst) && t < 4; t++)
        for (int k = 0; k < nk; k++) {
            double r = check_one(t & 1, t >> 1, 65, 48, kk[k], &s, A, B, C);
            if (!(r <= worst)) worst = r;
            cases++;
        }
    free(A);
    free(B);
    free(C);
    if (n_cases) *n_cases = cases;
    return worst;
}

/* ISA class of an OpenBLAS x86-64 kernel name: 1 SSE, 2 AVX, 3 AVX2, 4 AVX-512, 5 AVX-512 +
 * BF16; 0 unknown (not x86, or a name this table does not know: left alone). */
static int kernel_class(const char *k) {
    static const struct {
        const char *name;
        int cls;
    } T[] = {{"Katmai", 1},     {"Coppermine", 1}, {"Northwood", 1}, {"Prescott", 1},   {"Banias", 1},
             {"Core2", 1},      {"Penryn", 1},     {"Dunnington", 1}, {"Nehalem", 1},   {"Atom", 1},
             {"Opteron", 1},    {"Barcelona", 1},  {"Bobcat", 1},    {"Sandybridge", 2}, {"Bulldozer", 2},
             {"Piledriver", 2}, {"Steamroller", 2}, {"Excavator", 2}, {"Haswell", 3},    {"Zen", 3},
             {"SkylakeX", 4},   {"Cooperlake", 5}, {"SapphireRapids", 5}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (!strcasecmp(k, T[i].name)) return T[i].cls;
    return 0;
}

const char *rs_blas_preferred_kernel(const char *detected) {
#if defined(__x86_64__) && defined(__GNUC__)
    int have = kernel_class(detected ? detected : "");
    if (have == 0 || have >= 3) return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16")) return "Cooperlake";
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
#else
    (void)detected;
    return NULL;
#endif
}
