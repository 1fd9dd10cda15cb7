/* Gemma-2 prefill benchmark: tokens/s and peak RSS for one workload, plus the machine's
 * sgemm GFLOP/s. Run by bench/run_gemma2_bench.sh beside the transformers reference.
 *
 * usage: bench_gemma2 --model DIR --ids-file F --hook HOOK [--repeat N] [--save OUT.safetensors]
 *        bench_gemma2 --sgemm
 *
 * Time split: this program defines cblas_sgemm itself (the static library's calls bind to
 * it; it forwards to the BLAS's via dlsym(RTLD_NEXT)) and adds up the wall time and FLOPs of
 * the calls made outside a parallel region: the linear layers (op_linear). The attention's
 * per-head products run inside a parallel region and count as "other" with the norms, RoPE,
 * soft-cap, softmax, GeGLU and the bf16 -> f32 widening of the weights.
 */

#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "store/act_file.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "gemm_now.h"

static double peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / (1024.0 * 1024.0);
}

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
        fprintf(stderr, "bench_gemma2: no cblas_sgemm after this program (dlsym: %s)\n", dlerror());
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

static int sgemm_bench(void) {
    int M = 1024, N = 9216, K = 2304;
    float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)N * K * 4), *c = malloc((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    double t0 = rs_now();
    int reps = 5;
    for (int r = 0; r < reps; r++) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    double dt = rs_now() - t0;
    printf("{\"sgemm_gflops\": %.1f, \"shape\": [%d, %d, %d]}\n", 2.0 * M * N * K * reps / dt / 1e9, M, N, K);
    free(a); free(b); free(c);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *ids_file = NULL, *hook = NULL, *save = NULL;
    int repeat = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sgemm")) return sgemm_bench();
        if (i + 1 >= argc) break;
        if (!strcmp(argv[i], "--model")) model = argv[++i];
        else if (!strcmp(argv[i], "--ids-file")) ids_file = argv[++i];
        else if (!strcmp(argv[i], "--hook")) hook = argv[++i];
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--save")) save = argv[++i];
    }
    if (!model || !ids_file || !hook) {
        fprintf(stderr, "usage: bench_gemma2 --model DIR --ids-file F --hook HOOK [--repeat N] | --sgemm\n");
        return 2;
    }
    rs_err err = {0};
    gemma2_model *m;
    double t_load = rs_now();
    if (gemma2_open(&m, model, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    t_load = rs_now() - t_load;
    rs_inputs in = {0};
    char *buf;
    if (rs_read_file(ids_file, 1 << 26, &buf, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int32_t *ids;
        int64_t n;
        if (rs_parse_ids(line, &ids, &n, &err) || rs_inputs_add(&in, ids, n, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        free(ids);
    }
    free(buf);
    hook_request h;
    if (gemma2_hook_parse(&m->cfg, hook, &h, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    extract_opts o = {.n_hooks = 1, .hooks = &h, .pool = POOL_NONE, .batch_tokens = 1 << 20};
    int64_t tokens = 0;
    for (int i = 0; i < in.n; i++) tokens += in.lens[i];
    double best = 1e30, best_lin_s = 0, best_lin_flop = 0;
    for (int r = 0; r < repeat; r++) {
        extract_result res;
        lin_s = lin_flop = 0;
        double t0 = rs_now();
        if (extract_gemma2(m, &in, &o, &res, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double dt = rs_now() - t0;
        if (dt < best) best = dt, best_lin_s = lin_s, best_lin_flop = lin_flop;
        /* the last repetition's activations, for a parity check against the reference */
        if (save && r == repeat - 1 && extract_save(&res, &in, save, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        extract_result_free(&res);
    }
    double g_now = gemm_now(real_sgemm(), 0);
    printf("{\"impl\": \"reprshift\", \"hook\": \"%s\", \"inputs\": %d, \"tokens\": %lld, \"seconds\": %.3f, "
           "\"tokens_per_s\": %.2f, \"peak_rss_gb\": %.2f, \"load_s\": %.2f, \"linear_sgemm_s\": %.3f, "
           "\"linear_sgemm_gflops\": %.1f, \"other_s\": %.3f, \"blas_kernel\": \"%s\", "
           "\"gemm_now_gflops\": %.1f}\n",
           hook, in.n, (long long)tokens, best, tokens / best, peak_rss_gb(), t_load, best_lin_s,
           best_lin_s > 0 ? best_lin_flop / best_lin_s / 1e9 : 0.0, best - best_lin_s, openblas_get_corename(), g_now);
    rs_inputs_free(&in);
    gemma2_close(m);
    return 0;
}
