/* Gemma-2 prefill benchmark: tokens/s and peak RSS for one workload, plus the machine's
 * sgemm GFLOP/s. Run by bench/run_gemma2_bench.sh beside the transformers reference.
 *
 * usage: bench_gemma2 --model DIR --ids-file F --hook HOOK [--repeat N] [--save OUT.safetensors]
 *                     [--precision fp32|bf16] [--bf16-route auto|native|emulated]
 *                     [--sgemm-route auto|blas|onednn]   (the fp32 linear layers' route, RS_SGEMM)
 *                     [--attn-route auto|blas|fused] (the fp32 attention's products, RS_ATTN)
 *                     [--profile]
 *        bench_gemma2 --sgemm
 *        bench_gemma2 --gemm-bf16 T   (one 2304 → 9216 linear layer on T rows, BF16 weights:
 *                                      fp32 path, bf16 native, bf16 emulated; interleaved)
 *
 * Time split: this program defines cblas_sgemm itself (the static library's calls bind to
 * it; it forwards to the BLAS's via dlsym(RTLD_NEXT)) and adds up the wall time and FLOPs of
 * the calls made outside a parallel region: the linear layers (op_linear). The attention's
 * per-head products run inside a parallel region and count as "other" with the norms, RoPE,
 * soft-cap, softmax, GeGLU and the bf16 -> f32 widening of the weights.
 * --profile splits it further: every backend entry timed (backend_profile.h), printed as a
 * {"profile": ...} line for the fastest repetition before the result line.
 */

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/act_file.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "gemm_now.h"
#include "reprshift/blas.h"
#include "bench_util.h"
#define BENCH_PROG "bench_gemma2"
#include "sgemm_timed.h"
#include "reprshift/ops_bf16.h"
#include "backend_profile.h"

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

/* One Gemma-2 2B gate_proj-shaped product (BF16 weights as mapped) on T rows: the fp32 path
 * (widen the weights, sgemm) against the bf16 path on each product route, interleaved. */
static int gemm_bf16_bench(int T) {
    int IN = 2304, OUT = 9216;
    size_t nw = (size_t)IN * OUT, nx = (size_t)T * IN;
    uint16_t *wb = malloc(nw * 2);
    float *x = malloc(nx * 4), *y = malloc((size_t)T * OUT * 4), *sc = malloc((nw + nx) * 4);
    if (!wb || !x || !y || !sc) return 1;
    for (size_t i = 0; i < nw; i++) wb[i] = op_bf16_bits((float)((i * 2654435761u) % 1000) / 1000.f - 0.5f);
    for (size_t i = 0; i < nx; i++) x[i] = op_bf16_round1((float)(i % 13) * 0.1f);
    st_tensor W = {.dtype = RS_DT_BF16, .numel = (int64_t)nw, .data = wb};
    double best[3] = {1e30, 1e30, 1e30};
    for (int r = 0; r < 5; r++)
        for (int mode = 0; mode < 3; mode++) {
            if (mode == 1 && !op_bf16_native_supported()) continue;
            double t0 = rs_now();
            if (mode == 0) op_linear_st(y, x, &W, sc, T, IN, OUT);
            else {
                op_bf16_set_route(mode == 2 ? OP_BF16_EMULATED : OP_BF16_NATIVE);
                op_linear_bf16(y, x, &W, NULL, T, IN, OUT, sc);
            }
            double dt = rs_now() - t0;
            if (dt < best[mode]) best[mode] = dt;
        }
    op_bf16_force_emulated(0);
    double f = 2.0 * T * nw / 1e9;
    printf("{\"gemm_bf16\": [%d, %d, %d], \"fp32_widen_sgemm_gflops\": %.1f, \"bf16_native_gflops\": %.1f, "
           "\"bf16_emulated_gflops\": %.1f}\n", T, IN, OUT, f / best[0], best[1] < 1e30 ? f / best[1] : 0.0,
           f / best[2]);
    free(wb); free(x); free(y); free(sc);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *ids_file = NULL, *hook = NULL, *save = NULL;
    int repeat = 1, profile = 0;
    rs_precision prec = RS_PREC_FP32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sgemm")) return sgemm_bench();
        if (!strcmp(argv[i], "--gemm-bf16") && i + 1 < argc) return gemm_bf16_bench(atoi(argv[i + 1]));
        if (!strcmp(argv[i], "--profile")) { profile = 1; continue; }
        if (i + 1 >= argc) break;
        if (!strcmp(argv[i], "--model")) model = argv[++i];
        else if (!strcmp(argv[i], "--ids-file")) ids_file = argv[++i];
        else if (!strcmp(argv[i], "--hook")) hook = argv[++i];
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--save")) save = argv[++i];
        else if (!strcmp(argv[i], "--attn-route") && i + 1 < argc) {
            if (bench_attn_route(argv[++i])) return 2;
        }
        else if (!strcmp(argv[i], "--sgemm-route")) {
            if (bench_sgemm_route(argv[++i])) return 2;
        } else if (!strcmp(argv[i], "--bf16-route")) {
            if (bench_bf16_route(argv[++i])) return 2;
        } else if (!strcmp(argv[i], "--precision")) {
            if (rs_precision_parse(argv[++i], &prec)) { fprintf(stderr, "--precision: fp32 or bf16\n"); return 2; }
        }
    }
    if (!model || !ids_file || !hook) {
        fprintf(stderr, "usage: bench_gemma2 --model DIR --ids-file F --hook HOOK [--repeat N] [--profile] | --sgemm\n");
        return 2;
    }
    rs_err err = {0};
    gemma2_model *m;
    double t_load = rs_now();
    if (gemma2_open(&m, model, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    t_load = rs_now() - t_load;
    m->be = profile ? prof_attach(rs_backend_for(prec)) : rs_backend_for(prec);
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
    double best = 1e30, best_lin_s = 0, best_lin_flop = 0, best_pf_s[PF_N], best_pf_lin = 0, best_pf_lg = 0;
    long best_pf_n[PF_N];
    for (int r = 0; r < repeat; r++) {
        extract_result res;
        lin_s = lin_flop = 0;
        prof_reset();
        double t0 = rs_now();
        if (extract_gemma2(m, &in, &o, &res, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double dt = rs_now() - t0;
        if (dt < best) {
            best = dt, best_lin_s = lin_s, best_lin_flop = lin_flop;
            memcpy(best_pf_s, pf_s, sizeof pf_s), memcpy(best_pf_n, pf_n, sizeof pf_n);
            best_pf_lin = pf_lin_sgemm_s, best_pf_lg = pf_lg_sgemm_s;
        }
        /* the last repetition's activations, for a parity check against the reference */
        if (save && r == repeat - 1 && extract_save(&res, &in, save, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        extract_result_free(&res);
    }
    double g_now = gemm_now(0);
    if (profile) {
        memcpy(pf_s, best_pf_s, sizeof pf_s), memcpy(pf_n, best_pf_n, sizeof pf_n);
        pf_lin_sgemm_s = best_pf_lin, pf_lg_sgemm_s = best_pf_lg;
        prof_print_json(best);
    }
    printf("{\"impl\": \"reprshift\", \"hook\": \"%s\", \"inputs\": %d, \"tokens\": %lld, \"seconds\": %.3f, "
           "\"tokens_per_s\": %.2f, \"peak_rss_gb\": %.2f, \"load_s\": %.2f, \"linear_sgemm_s\": %.3f, "
           "\"linear_sgemm_gflops\": %.1f, \"other_s\": %.3f, \"blas_kernel\": \"%s\", \"linear_route\": \"%s\", \"attention_route\": \"%s\", "
           "\"gemm_now_gflops\": %.1f, \"precision\": \"%s\", \"bf16_products\": \"%s\"}\n",
           hook, in.n, (long long)tokens, best, tokens / best, peak_rss_gb(), t_load, best_lin_s,
           best_lin_s > 0 ? best_lin_flop / best_lin_s / 1e9 : 0.0, best - best_lin_s, openblas_get_corename(), rs_sgemm_path(), op_attn_route_name(op_attn_route()), g_now,
           rs_precision_name(prec), prec == RS_PREC_BF16 ? op_bf16_gemm_path() : "-");
    rs_inputs_free(&in);
    gemma2_close(m);
    return 0;
}
