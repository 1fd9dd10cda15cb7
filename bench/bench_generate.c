/* Greedy generation benchmark (KV cache): per prompt, the time of prefill + first token and
 * of the whole run of N new tokens (EOS off), so decode tok/s = (N − 1) / (t_N − t_1).
 * Run by bench/run_generate_bench.sh beside transformers' generate.
 *
 * usage: bench_generate --model DIR --ids-file F --new N
 *        bench_generate --kernel   (one decode-step linear layer, 2304 -> 9216 BF16, T = 1:
 *                                   op_linear_st's row path vs widen + sgemm, interleaved,
 *                                   median of 15 each, so machine load hits both alike)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/generate.h"
#include "reprshift/ops.h"

static double peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / (1024.0 * 1024.0);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int kernel_bench(void) {
    enum { IN = 2304, OUT = 9216, REPS = 15 };
    size_t n = (size_t)IN * OUT;
    uint16_t *w = malloc(n * 2);
    float *x = malloc(IN * sizeof *x), *y = malloc(OUT * sizeof *y), *scratch = malloc(n * sizeof *scratch);
    for (size_t i = 0; i < n; i++) w[i] = (uint16_t)(0x3c00 + (i * 2654435761u >> 20) % 512); /* bf16 about 0.008..0.03 */
    for (int i = 0; i < IN; i++) x[i] = (float)(i % 13) * 0.1f - 0.6f;
    st_tensor W = {.name = "w", .dtype = RS_DT_BF16, .ndim = 2, .shape = {OUT, IN}, .numel = (int64_t)n, .data = w,
                   .nbytes = n * 2};
    double a[REPS], b[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = rs_now();
        op_linear_st(y, x, &W, scratch, 1, IN, OUT);
        double t1 = rs_now();
        op_linear(y, x, op_weight_f32(&W, scratch), NULL, 1, IN, OUT);
        double t2 = rs_now();
        a[r] = t1 - t0;
        b[r] = t2 - t1;
    }
    qsort(a, REPS, sizeof *a, cmp_d);
    qsort(b, REPS, sizeof *b, cmp_d);
    printf("{\"kernel\": \"bf16 %dx%d, T=1\", \"row_path_ms\": %.2f, \"widen_sgemm_ms\": %.2f, \"speedup\": %.2f, "
           "\"row_path_GBps\": %.1f}\n", OUT, IN, a[REPS / 2] * 1e3, b[REPS / 2] * 1e3, b[REPS / 2] / a[REPS / 2],
           n * 2 / a[REPS / 2] / 1e9);
    free(w); free(x); free(y); free(scratch);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--kernel")) return kernel_bench();
    const char *model = NULL, *ids_file = NULL;
    int n_new = 32;
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--model")) model = argv[++i];
        else if (!strcmp(argv[i], "--ids-file")) ids_file = argv[++i];
        else if (!strcmp(argv[i], "--new")) n_new = atoi(argv[++i]);
    }
    if (!model || !ids_file || n_new < 2) {
        fprintf(stderr, "usage: bench_generate --model DIR --ids-file F --new N (N >= 2)\n");
        return 2;
    }
    rs_err err = {0};
    gemma2_model *m;
    double t0 = rs_now();
    if (gemma2_open(&m, model, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double load_s = rs_now() - t0;
    FILE *f = fopen(ids_file, "r");
    if (!f) { perror(ids_file); return 1; }
    char line[65536];
    double t_first = 0, t_all = 0;
    int n_prompts = 0, prompt_tokens = 0;
    printf("{\"side\": \"reprshift\", \"load_s\": %.2f, \"runs\": [", load_s);
    while (fgets(line, sizeof line, f)) {
        int32_t *ids;
        int64_t n;
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) continue;
        if (rs_parse_ids(line, &ids, &n, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        gen_params p = {.max_new_tokens = 1, .temperature = 0, .top_p = 1};
        gen_output o;
        double a = rs_now();
        if (gen_gemma2(m, ids, (int)n, &p, &o, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double b = rs_now();
        gen_output_free(&o);
        p.max_new_tokens = n_new;
        if (gen_gemma2(m, ids, (int)n, &p, &o, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double c = rs_now();
        printf("%s{\"prompt_tokens\": %d, \"first_s\": %.3f, \"all_s\": %.3f, \"ids\": [", n_prompts ? ", " : "",
               (int)n, b - a, c - b);
        for (int i = 0; i < o.n; i++) printf(i ? ", %d" : "%d", o.ids[i]);
        printf("]}");
        t_first += b - a;
        t_all += c - b;
        prompt_tokens += (int)n;
        n_prompts++;
        gen_output_free(&o);
        free(ids);
    }
    fclose(f);
    printf("], \"new_tokens\": %d, \"decode_tok_s\": %.3f, \"prefill_first_s\": %.3f, \"peak_rss_gb\": %.2f}\n", n_new,
           n_prompts * (n_new - 1) / (t_all - t_first), t_first / n_prompts, peak_rss_gb());
    gemma2_close(m);
    return 0;
}
