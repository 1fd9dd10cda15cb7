/* fp32 GEMM survey (issue: "the best GEMM the CPU has"): the linear-layer product reprshift
 * runs, y[T×OUT] = x[T×IN] · W[OUT×IN]ᵀ (row-major, cblas NoTrans/Trans), at the shapes of
 * Gemma-2 2B and the SigLIP So400m tower, plus a correctness sweep over small and ragged
 * shapes in all four transpose combinations against a double-precision reference.
 *
 * One source, three builds (bench/run_gemm_survey.sh): against the library reprshift links
 * (Debian OpenBLAS, any OPENBLAS_CORETYPE), against BLIS (its CBLAS layer) and against
 * oneDNN (-DRS_GEMM_DNNL: dnnl_sgemm). It prints one line per shape and a summary line:
 *   gemm LIB KERNEL shape T IN OUT gflops G
 *   gemm LIB KERNEL correct yes|NO worst_ratio R cases N
 * worst_ratio = max over all entries of |C − C_ref| / (u · Σ_k |a_ik||b_kj|), u = 2⁻²⁴:
 * the forward-error bound of a dot product of length K is K·u in these units, and a correct
 * kernel stays far below it (blocked sums give about √K); "correct" means ≤ 4·K_max at every
 * entry. A kernel that computes a wrong product gives ratios of 10⁶ and more.
 *
 * usage: bench_gemm [--quick] [--reps N]   (threads: OMP_NUM_THREADS / the library's own) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef RS_GEMM_DNNL
#include <dnnl.h>
#define LIB "oneDNN"
#else
#include <cblas.h>
#endif

/* Library identification, present only in the library that defines them. */
extern char *openblas_get_corename(void) __attribute__((weak));
extern char *openblas_get_config(void) __attribute__((weak));
extern int64_t bli_arch_query_id(void) __attribute__((weak));
extern const char *bli_arch_string(int64_t id) __attribute__((weak));
extern const char *bli_info_get_version_str(void) __attribute__((weak));

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) - 0.5f;
}

/* C = op(A)·op(B), row-major; ta/tb: 1 = transposed. */
static void gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc) {
#ifdef RS_GEMM_DNNL
    dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda,
                B, ldb, 0.0f, C, ldc);
#endif
}

static const char *lib_name(char *kernel, size_t cap) {
#ifdef RS_GEMM_DNNL
    const dnnl_version_t *v = dnnl_version();
    snprintf(kernel, cap, "v%d.%d.%d(%s)", v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : "seq/tbb");
    return LIB;
#else
    if (openblas_get_corename) {
        snprintf(kernel, cap, "%s", openblas_get_corename());
        return "OpenBLAS";
    }
    if (bli_arch_query_id && bli_arch_string) {
        snprintf(kernel, cap, "%s", bli_arch_string(bli_arch_query_id()));
        return "BLIS";
    }
    snprintf(kernel, cap, "?");
    return "cblas";
#endif
}

typedef struct {
    const char *name;
    int T, IN, OUT;
} shape;

/* Worst |C − ref| / (u Σ|a||b|) over the entries of one case. */
static double check_case(int ta, int tb, int M, int N, int K) {
    int lda = ta ? M : K, ldb = tb ? K : N;
    float *A = malloc(sizeof(float) * (size_t)M * K + 4), *B = malloc(sizeof(float) * (size_t)K * N + 4);
    float *C = malloc(sizeof(float) * (size_t)M * N + 4);
    if (!A || !B || !C) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = frand();
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = frand();
    for (size_t i = 0; i < (size_t)M * N; i++) C[i] = NAN;
    gemm(ta, tb, M, N, K, A, lda, B, ldb, C, N);
    double worst = 0, u = ldexp(1.0, -24);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, sa = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
                sa += fabs(a * b);
            }
            double c = C[(size_t)i * N + j];
            double r = isfinite(c) ? fabs(c - s) / (u * (sa > 0 ? sa : 1e-30)) : INFINITY;
            if (sa == 0 && c == 0) r = 0;
            if (!(r <= worst)) worst = r;
        }
    free(A);
    free(B);
    free(C);
    return worst;
}

int main(int argc, char **argv) {
    int quick = 0, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_gemm [--quick] [--reps N]\n");
            return 2;
        }
    }
    char kernel[128];
    const char *lib = lib_name(kernel, sizeof kernel);
    if (openblas_get_config) printf("# %s\n", openblas_get_config());
    if (bli_info_get_version_str) printf("# BLIS %s\n", bli_info_get_version_str());

    /* correctness: ragged and small shapes (kernel edge paths), every transpose pair */
    static const int dims[] = {1, 2, 3, 5, 8, 15, 16, 17, 31, 33, 48, 64, 65, 100, 129};
    int nd = (int)(sizeof dims / sizeof dims[0]), cases = 0, kmax = 0;
    double worst = 0;
    for (int t = 0; t < 4; t++)
        for (int a = 0; a < nd; a++)
            for (int b = 0; b < nd; b += 2)
                for (int c = 0; c < nd; c += 3) {
                    double r = check_case(t & 1, t >> 1, dims[a], dims[b], dims[c]);
                    if (!(r <= worst)) worst = r;
                    if (dims[c] > kmax) kmax = dims[c];
                    cases++;
                }
    /* and the model shapes' inner dimensions, a few rows each */
    static const int bigk[][3] = {{7, 2304, 300}, {9, 9216, 130}, {5, 1152, 257}, {3, 4304, 200}, {33, 256, 512}};
    for (int i = 0; i < 5; i++)
        for (int t = 0; t < 4; t++) {
            double r = check_case(t & 1, t >> 1, bigk[i][0], bigk[i][2], bigk[i][1]);
            if (!(r <= worst)) worst = r;
            if (bigk[i][1] > kmax) kmax = bigk[i][1];
            cases++;
        }
    int correct = worst <= 4.0 * kmax;
    printf("gemm %s %s correct %s worst_ratio %.3g cases %d kmax %d\n", lib, kernel, correct ? "yes" : "NO", worst, cases,
           kmax);
    fflush(stdout);

    /* throughput: Gemma-2 2B per-layer products (hidden 2304, q 2048, kv 1024, MLP 9216)
       and SigLIP So400m (hidden 1152, MLP 4304) at 256-token / 1-image blocks */
    static const shape shapes[] = {
        {"gemma2.qkv", 512, 2304, 4096}, {"gemma2.o", 512, 2048, 2304},   {"gemma2.gate_up", 512, 2304, 18432},
        {"gemma2.down", 512, 9216, 2304}, {"gemma2.down.T64", 64, 9216, 2304}, {"siglip.qkv", 256, 1152, 3456},
        {"siglip.fc1", 256, 1152, 4304}, {"siglip.fc2", 256, 4304, 1152},
    };
    int ns = (int)(sizeof shapes / sizeof shapes[0]);
    double best = 0, flop_all = 0, t_all = 0;
    for (int s = 0; s < ns; s++) {
        const shape *p = &shapes[s];
        int T = quick ? p->T / 4 : p->T;
        float *x = malloc(sizeof(float) * (size_t)T * p->IN), *w = malloc(sizeof(float) * (size_t)p->OUT * p->IN);
        float *y = malloc(sizeof(float) * (size_t)T * p->OUT);
        if (!x || !w || !y) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < (size_t)T * p->IN; i++) x[i] = frand();
        for (size_t i = 0; i < (size_t)p->OUT * p->IN; i++) w[i] = frand();
        gemm(0, 1, T, p->OUT, p->IN, x, p->IN, w, p->IN, y, p->OUT); /* warm-up */
        double tb = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            gemm(0, 1, T, p->OUT, p->IN, x, p->IN, w, p->IN, y, p->OUT);
            double dt = now() - t0;
            if (dt < tb) tb = dt;
        }
        double flop = 2.0 * T * p->IN * p->OUT, g = flop / tb / 1e9;
        flop_all += flop;
        t_all += tb;
        if (g > best) best = g;
        printf("gemm %s %s shape %s T %d IN %d OUT %d gflops %.1f\n", lib, kernel, p->name, T, p->IN, p->OUT, g);
        fflush(stdout);
        free(x);
        free(w);
        free(y);
    }
    printf("gemm %s %s summary best_gflops %.1f overall_gflops %.1f correct %s\n", lib, kernel, best, flop_all / t_all / 1e9,
           correct ? "yes" : "NO");
    return correct ? 0 : 3;
}
