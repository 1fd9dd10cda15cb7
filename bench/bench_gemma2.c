/* Gemma-2 prefill benchmark: tokens/s and peak RSS for one workload, plus the machine's
 * sgemm GFLOP/s. Run by bench/run_gemma2_bench.sh beside the transformers reference.
 *
 * usage: bench_gemma2 --model DIR --ids-file F --hook HOOK [--repeat N] [--save OUT.safetensors]
 *        bench_gemma2 --sgemm
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "store/act_file.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"

static double peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / (1024.0 * 1024.0);
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
    double best = 1e30;
    for (int r = 0; r < repeat; r++) {
        extract_result res;
        double t0 = rs_now();
        if (extract_gemma2(m, &in, &o, &res, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double dt = rs_now() - t0;
        if (dt < best) best = dt;
        /* the last repetition's activations, for a parity check against the reference */
        if (save && r == repeat - 1 && extract_save(&res, &in, save, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        extract_result_free(&res);
    }
    printf("{\"impl\": \"reprshift\", \"hook\": \"%s\", \"inputs\": %d, \"tokens\": %lld, \"seconds\": %.3f, "
           "\"tokens_per_s\": %.2f, \"peak_rss_gb\": %.2f, \"load_s\": %.2f}\n",
           hook, in.n, (long long)tokens, best, tokens / best, peak_rss_gb(), t_load);
    rs_inputs_free(&in);
    gemma2_close(m);
    return 0;
}
