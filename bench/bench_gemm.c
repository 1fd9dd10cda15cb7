/* fp32 GEMM survey (issue: "the best GEMM the CPU has"): the linear-layer product reprshift
 * runs, y[T×OUT] = x[T×IN] · W[OUT×IN]ᵀ (row-major, cblas NoTrans/Trans), at the shapes of
 * Gemma-2 2B and the SigLIP So400m tower, plus a correctness sweep over small and ragged
 * shapes in all four transpose combinations against a double-precision reference.
 *
 * One source, four builds (bench/run_gemm_survey.sh): against the library reprshift links
 * (Debian OpenBLAS, any OPENBLAS_CORETYPE), against BLIS (its CBLAS layer) and against
 * oneDNN twice: its BLAS-like dnnl_sgemm (-DRS_GEMM_DNNL) and its matmul primitive
 * (-DRS_GEMM_DNNL_MATMUL; a primitive per call, which oneDNN's primitive cache makes cheap
 * for a repeated shape; its kernel is named by the implementation oneDNN picks, e.g.
 * brg:avx512_core). It prints one line per shape and a summary line:
 *   gemm LIB KERNEL shape T IN OUT gflops G
 *   gemm LIB KERNEL correct yes|NO worst_ratio R cases N
 * worst_ratio = max over all entries of |C − C_ref| / (u · Σ_k |a_ik||b_kj|), u = 2⁻²⁴:
 * the forward-error bound of a dot product of length K is K·u in these units, and a correct
 * kernel stays far below it (blocked sums give about √K); "correct" means ≤ 4·K_max at every
 * entry. A kernel that computes a wrong product gives ratios of 10⁶ and more.
 *
 * Timing: by default the best of --reps products on the same operands (weights warm in the
 * caches). --rows N sets every shape's row count (a forward pass's products have as many
 * rows as the batch has tokens: 512 for one 512-token text, 3113 for 256 packed captions,
 * 2048 for 8 images). --cold rotates through 6 copies of the weights (more than any cache)
 * and reports the mean rate, as in a forward pass, which reads each layer's weights once.
 *
 * usage: bench_gemm [--quick] [--reps N] [--rows N] [--cold]
 *        (threads: OMP_NUM_THREADS / the library's own) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(RS_GEMM_DNNL) || defined(RS_GEMM_DNNL_MATMUL)
#include <dnnl.h>
#ifdef RS_GEMM_DNNL_MATMUL
#define LIB "oneDNN-matmul"
#else
#define LIB "oneDNN"
#endif
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

#ifdef RS_GEMM_DNNL_MATMUL
static dnnl_engine_t dn_engine;
static dnnl_stream_t dn_stream;

static void dn_fail(const char *what) {
    fprintf(stderr, "bench_gemm: oneDNN %s failed\n", what);
    exit(1);
}

/* The matmul primitive descriptor of C[M×N] = op(A)·op(B) with the given row strides. */
static dnnl_primitive_desc_t matmul_pd(int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc,
                                       dnnl_memory_desc_t *a, dnnl_memory_desc_t *b, dnnl_memory_desc_t *c) {
    if (!dn_engine && (dnnl_engine_create(&dn_engine, dnnl_cpu, 0) != dnnl_success ||
                       dnnl_stream_create(&dn_stream, dn_engine, dnnl_stream_default_flags) != dnnl_success))
        dn_fail("engine");
    dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N};
    dnnl_dims_t as = {ta ? 1 : lda, ta ? lda : 1}, bs = {tb ? 1 : ldb, tb ? ldb : 1}, cs = {ldc, 1};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    if (dnnl_memory_desc_init_by_strides(a, 2, ad, dnnl_f32, as) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(b, 2, bd, dnnl_f32, bs) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(c, 2, cd, dnnl_f32, cs) != dnnl_success ||
        dnnl_matmul_desc_init(&md, a, b, NULL, c) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &md, NULL, dn_engine, NULL) != dnnl_success)
        dn_fail("matmul descriptor");
    return pd;
}

static void matmul(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                   int ldc) {
    dnnl_memory_desc_t a, b, c;
    dnnl_primitive_desc_t pd = matmul_pd(ta, tb, M, N, K, lda, ldb, ldc, &a, &b, &c);
    dnnl_primitive_t p;
    dnnl_memory_t ma, mb, mc;
    if (dnnl_primitive_create(&p, pd) != dnnl_success || dnnl_memory_create(&ma, &a, dn_engine, (void *)A) != dnnl_success ||
        dnnl_memory_create(&mb, &b, dn_engine, (void *)B) != dnnl_success ||
        dnnl_memory_create(&mc, &c, dn_engine, C) != dnnl_success)
        dn_fail("matmul primitive");
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    if (dnnl_primitive_execute(p, dn_stream, 3, args) != dnnl_success || dnnl_stream_wait(dn_stream) != dnnl_success)
        dn_fail("matmul execution");
    dnnl_memory_destroy(ma);
    dnnl_memory_destroy(mb);
    dnnl_memory_destroy(mc);
    dnnl_primitive_destroy(p);
    dnnl_primitive_desc_destroy(pd);
}
#endif

/* C = op(A)·op(B), row-major; ta/tb: 1 = transposed. */
static void gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc) {
#if defined(RS_GEMM_DNNL_MATMUL)
    matmul(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
#elif defined(RS_GEMM_DNNL)
    dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda,
                B, ldb, 0.0f, C, ldc);
#endif
}

static const char *lib_name(char *kernel, size_t cap) {
#if defined(RS_GEMM_DNNL) || defined(RS_GEMM_DNNL_MATMUL)
    const dnnl_version_t *v = dnnl_version();
    int n = snprintf(kernel, cap, "v%d.%d.%d(%s)", v->major, v->minor, v->patch,
                     v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : "seq/tbb");
#ifdef RS_GEMM_DNNL_MATMUL
    { /* the implementation oneDNN picks for a linear layer's product (Gemma-2's down projection) */
        dnnl_memory_desc_t a, b, c;
        dnnl_primitive_desc_t pd = matmul_pd(0, 1, 512, 2304, 9216, 9216, 9216, 2304, &a, &b, &c);
        const char *impl = NULL;
        if (n > 0 && (size_t)n < cap && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
            snprintf(kernel + n, cap - (size_t)n, ":%s", impl);
        dnnl_primitive_desc_destroy(pd);
    }
#else
    (void)n;
#endif
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
    int quick = 0, reps = 5, rows = 0, cold = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cold")) cold = 1;
        else {
            fprintf(stderr, "usage: bench_gemm [--quick] [--reps N] [--rows N] [--cold]\n");
            return 2;
        }
    }
    if (reps < 1 || rows < 0 || rows > 65536) {
        fprintf(stderr, "bench_gemm: --reps must be >= 1 and --rows in 1..65536\n");
        return 2;
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
    enum { NCOLD = 6 };
    int nw = cold ? NCOLD : 1;
    double best = 0, flop_all = 0, t_all = 0;
    for (int s = 0; s < ns; s++) {
        const shape *p = &shapes[s];
        if (rows && p->T != 512 && p->T != 256) continue; /* --rows: one row count, the layer shapes once each */
        int T = rows ? rows : quick ? p->T / 4 : p->T;
        float *x = malloc(sizeof(float) * (size_t)T * p->IN), *y = malloc(sizeof(float) * (size_t)T * p->OUT);
        float *w[NCOLD] = {0};
        int ok = x && y;
        for (int j = 0; j < nw; j++) ok = ok && (w[j] = malloc(sizeof(float) * (size_t)p->OUT * p->IN));
        if (!ok) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < (size_t)T * p->IN; i++) x[i] = frand();
        for (int j = 0; j < nw; j++)
            for (size_t i = 0; i < (size_t)p->OUT * p->IN; i++) w[j][i] = frand();
        gemm(0, 1, T, p->OUT, p->IN, x, p->IN, w[0], p->IN, y, p->OUT); /* warm-up */
        double tb = 1e30, tsum = 0;
        int nrun = cold ? reps * nw : reps;
        for (int r = 0; r < nrun; r++) {
            const float *wr = w[(r + 1) % nw]; /* cold: never the copy the previous product read */
            double t0 = now();
            gemm(0, 1, T, p->OUT, p->IN, x, p->IN, wr, p->IN, y, p->OUT);
            double dt = now() - t0;
            if (dt < tb) tb = dt;
            tsum += dt;
        }
        double t = cold ? tsum / nrun : tb;
        double flop = 2.0 * T * p->IN * p->OUT, g = flop / t / 1e9;
        flop_all += flop;
        t_all += t;
        if (g > best) best = g;
        printf("gemm %s %s shape %s T %d IN %d OUT %d gflops %.1f%s\n", lib, kernel, p->name, T, p->IN, p->OUT, g,
               cold ? " cold" : "");
        fflush(stdout);
        free(x);
        for (int j = 0; j < nw; j++) free(w[j]);
        free(y);
    }
    printf("gemm %s %s summary best_gflops %.1f overall_gflops %.1f correct %s\n", lib, kernel, best, flop_all / t_all / 1e9,
           correct ? "yes" : "NO");
    return correct ? 0 : 3;
}
