/* BLAS identification, sgemm check and OpenBLAS kernel preference (include/reprshift/blas.h). */
#include "reprshift/blas.h"

#include "tensor/dnnl_mm.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
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

/* A product under check: C[M,N] = op(A)·op(B) (+ bias[j] when bias is non-NULL), row-major;
 * 0 on success. */
typedef int (*check_gemm_fn)(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                             const float *bias, float *C);

static int gemm_blas(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                     const float *bias, float *C) {
    (void)bias; /* the BLAS check runs without one */
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda,
                B, ldb, 0.0f, C, N);
    return 0;
}

/* oneDNN's f32 matmul as op_linear calls it: x[M,K]·W[N,K]ᵀ (+ bias), no other transposes */
static int gemm_dnnl(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                     const float *bias, float *C) {
    (void)lda, (void)ldb;
    if (ta || !tb) return -1;
    return rs_dnnl_matmul(C, N, A, B, bias, M, K, N, 0);
}

/* One product C = op(A)·op(B) (+ bias) (row-major, M×N, inner K) against the double
 * reference: the worst |C − C_ref| / (u·(Σ|ab| + |bias|)); Inf when the product failed. */
static double check_one(check_gemm_fn gemm, int ta, int tb, int with_bias, int M, int N, int K, uint64_t *s, float *A,
                        float *B, float *C, float *bias) {
    int lda = ta ? M : K, ldb = tb ? K : N;
    for (int i = 0; i < M * K; i++) A[i] = (float)((xorshift(s) >> 11) * (1.0 / 9007199254740992.0)) - 0.5f;
    for (int i = 0; i < K * N; i++) B[i] = (float)((xorshift(s) >> 11) * (1.0 / 9007199254740992.0)) - 0.5f;
    for (int j = 0; j < N; j++) bias[j] = with_bias ? (float)((xorshift(s) >> 11) * (1.0 / 9007199254740992.0)) : 0;
    for (int i = 0; i < M * N; i++) C[i] = NAN;
    if (gemm(ta, tb, M, N, K, A, lda, B, ldb, with_bias ? bias : NULL, C)) return INFINITY;
    double worst = 0, u = ldexp(1.0, -24);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double ref = bias[j], mag = fabs(bias[j]);
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

/* The sweep of rs_blas_check / rs_sgemm_check: sizes around the kernels' register blocks (4,
 * 8, 16, 24, 32, 48 rows/columns), K up to CHECK_KMAX; transposes: all four, or only the
 * linear layers' A·Bᵀ (nt_only, then every other product has a bias). */
static double check_sweep(check_gemm_fn gemm, int nt_only, int *n_cases) {
    static const int mn[] = {1, 2, 3, 5, 8, 15, 16, 17, 24, 31, 33, 48};
    static const int kk[] = {1, 7, 16, 33, 64, CHECK_KMAX};
    int nmn = (int)(sizeof mn / sizeof mn[0]), nk = (int)(sizeof kk / sizeof kk[0]), cases = 0;
    size_t cap = (size_t)65 * CHECK_KMAX;
    float *A = malloc(cap * sizeof *A), *B = malloc(cap * sizeof *B), *C = malloc((size_t)65 * 65 * sizeof *C);
    float *bias = malloc(65 * sizeof *bias);
    double worst = 0;
    uint64_t s = 0x2545F4914F6CDD1Dull;
    if (!A || !B || !C || !bias) worst = NAN;
    int t0 = nt_only ? 2 : 0, t1 = nt_only ? 3 : 4; /* t = ta | tb << 1: NT is t = 2 */
    for (int t = t0; !isnan(worst) && t < t1; t++)
        for (int a = 0; a < nmn; a++)
            for (int b = nt_only ? a % 2 : (a + t) % 3; b < nmn; b += nt_only ? 2 : 3)
                for (int k = (a + b) % 2; k < nk; k += 2) {
                    double r = check_one(gemm, t & 1, t >> 1, nt_only && cases % 2, mn[a], mn[b], kk[k], &s, A, B, C,
                                         bias);
                    if (!(r <= worst)) worst = r;
                    cases++;
                }
    /* every K on the largest blocks */
    for (int t = t0; !isnan(worst) && t < t1; t++)
        for (int k = 0; k < nk; k++) {
            double r = check_one(gemm, t & 1, t >> 1, nt_only && k % 2, 65, 48, kk[k], &s, A, B, C, bias);
            if (!(r <= worst)) worst = r;
            cases++;
        }
    free(A);
    free(B);
    free(C);
    free(bias);
    if (n_cases) *n_cases = cases;
    return worst;
}

double rs_blas_check(int *n_cases) { return check_sweep(gemm_blas, 0, n_cases); }

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

/* ---- the fp32 linear layers' route (op_linear) ---- */

static pthread_mutex_t sg_mu = PTHREAD_MUTEX_INITIALIZER;
static int sg_route = RS_SGEMM_AUTO;
static int sg_use = -1; /* -1 not yet decided, 0 the BLAS, 1 oneDNN (atomic reads) */
static int sg_inject_fail;
static int sg_rule_forced = -1; /* tests: the automatic rule's answer forced (0/1); -1 the CPU's */
static double sg_worst = -1; /* the oneDNN check's result; -1 not run */
static int sg_cases;
static char sg_impl[64];

/* The shape whose oneDNN implementation is reported (Gemma-2's down projection on 512 rows;
 * oneDNN picks the same kernel family at every model shape measured). */
enum { SG_PROBE_M = 512, SG_PROBE_K = 9216, SG_PROBE_N = 2304 };

/* The automatic rule (caller holds sg_mu): oneDNN on AMD CPUs with AVX-512 (Zen 4), where its
 * f32 matmul ran every real pass measured faster than OpenBLAS 0.3.21's Cooperlake kernel; the
 * BLAS elsewhere (on the AVX-512 + AMX Xeon oneDNN was slower on packed captions and the image
 * path). bench/README.md, "A third machine kind". */
static int sg_rule(void) {
    int cpu = sg_rule_forced;
    if (cpu < 0) {
#if defined(__x86_64__) && defined(__GNUC__)
        __builtin_cpu_init();
        cpu = __builtin_cpu_is("amd") && __builtin_cpu_supports("avx512f");
#else
        cpu = 0;
#endif
    }
    return cpu && rs_dnnl_available(); /* the CPU first: no oneDNN engine started where it is not wanted */
}

static void sg_decide(void) {
    int use = 0;
    sg_worst = -1;
    sg_cases = 0;
    sg_impl[0] = '\0';
    int want = sg_route == RS_SGEMM_ONEDNN || (sg_route == RS_SGEMM_AUTO && sg_rule());
    if (want && rs_dnnl_available()) {
        rs_dnnl_f32_impl(sg_impl, sizeof sg_impl, SG_PROBE_M, SG_PROBE_K, SG_PROBE_N);
        sg_worst = sg_inject_fail ? INFINITY : check_sweep(gemm_dnnl, 1, &sg_cases);
        use = sg_worst <= rs_blas_check_bound();
    }
    __atomic_store_n(&sg_use, use, __ATOMIC_RELEASE);
}

int rs_sgemm_auto_onednn(void) {
    pthread_mutex_lock(&sg_mu);
    int r = sg_rule();
    pthread_mutex_unlock(&sg_mu);
    return r;
}

void rs_sgemm_inject_auto_rule(int v) {
    pthread_mutex_lock(&sg_mu);
    sg_rule_forced = v < 0 ? -1 : v != 0;
    __atomic_store_n(&sg_use, -1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&sg_mu);
}

int rs_sgemm_use_onednn(void) {
    int u = __atomic_load_n(&sg_use, __ATOMIC_ACQUIRE);
    if (u >= 0) return u;
    pthread_mutex_lock(&sg_mu);
    if (__atomic_load_n(&sg_use, __ATOMIC_ACQUIRE) < 0) sg_decide();
    u = sg_use;
    pthread_mutex_unlock(&sg_mu);
    return u;
}

int rs_sgemm_route_parse(const char *name) {
    return !name ? -1 : !strcmp(name, "auto") ? RS_SGEMM_AUTO : !strcmp(name, "blas") ? RS_SGEMM_BLAS
         : !strcmp(name, "onednn") ? RS_SGEMM_ONEDNN : -1;
}

int rs_sgemm_set_route(int route) {
    if (route != RS_SGEMM_BLAS && route != RS_SGEMM_ONEDNN && route != RS_SGEMM_AUTO) return -1;
    if (route == RS_SGEMM_ONEDNN && !rs_dnnl_available()) return -1;
    pthread_mutex_lock(&sg_mu);
    sg_route = route;
    __atomic_store_n(&sg_use, -1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&sg_mu);
    return 0;
}

void rs_sgemm_inject_check_failure(int on) {
    pthread_mutex_lock(&sg_mu);
    sg_inject_fail = on != 0;
    __atomic_store_n(&sg_use, -1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&sg_mu);
}

double rs_sgemm_check(int *n_cases) {
    if (!rs_dnnl_available()) {
        if (n_cases) *n_cases = 0;
        return INFINITY;
    }
    return check_sweep(gemm_dnnl, 1, n_cases);
}

int rs_sgemm_route(void) {
    pthread_mutex_lock(&sg_mu);
    int r = sg_route;
    pthread_mutex_unlock(&sg_mu);
    return r;
}

const char *rs_sgemm_path(void) { return rs_sgemm_use_onednn() ? "oneDNN" : "BLAS"; }

void rs_sgemm_describe(char *buf, size_t n) {
    int use = rs_sgemm_use_onednn();
    char v[32];
    rs_dnnl_version_str(v, sizeof v);
    pthread_mutex_lock(&sg_mu);
    int rule = sg_rule();
    const char *why = sg_route == RS_SGEMM_ONEDNN ? "RS_SGEMM=onednn"
                    : "the automatic choice on AMD CPUs with AVX-512, where it ran faster than the BLAS "
                      "in every pass measured; RS_SGEMM=blas for the BLAS";
    if (use)
        snprintf(buf, n, "%s f32 matmul, %s (%s; its check passed: worst error %.3g x the rounding unit over %d "
                 "products, bound %g)", v, sg_impl, why, sg_worst, sg_cases, rs_blas_check_bound());
    else if (sg_worst != sg_worst) /* NaN: the check's buffers could not be allocated */
        snprintf(buf, n, "BLAS (%s: %s f32 matmul could not run its check: out of memory)",
                 sg_route == RS_SGEMM_ONEDNN ? "RS_SGEMM=onednn refused" : "the automatic choice would be oneDNN", v);
    else if (sg_route == RS_SGEMM_ONEDNN && sg_worst >= 0)
        snprintf(buf, n, "BLAS (RS_SGEMM=onednn refused: %s f32 matmul %s failed its check, worst error %.3g x the "
                 "rounding unit, bound %g)", v, sg_impl, sg_worst, rs_blas_check_bound());
    else if (sg_route == RS_SGEMM_ONEDNN)
        snprintf(buf, n, "BLAS (RS_SGEMM=onednn refused: %s did not start its CPU engine)", v);
    else if (sg_route == RS_SGEMM_AUTO && rule && sg_worst >= 0)
        snprintf(buf, n, "BLAS (the automatic choice on this CPU would be %s f32 matmul, but %s failed its check, "
                 "worst error %.3g x the rounding unit, bound %g)", v, sg_impl, sg_worst, rs_blas_check_bound());
    else if (sg_route == RS_SGEMM_BLAS)
        snprintf(buf, n, "BLAS (asked for: RS_SGEMM=blas)");
    else if (!v[0])
        snprintf(buf, n, "BLAS (the default; this build has no oneDNN)");
    else
        snprintf(buf, n, "BLAS (the automatic choice on this CPU; RS_SGEMM=onednn runs them on %s's f32 matmul, "
                 "faster on AMD with AVX-512 but not at every model shape on Intel: bench/README.md)", v);
    pthread_mutex_unlock(&sg_mu);
}
