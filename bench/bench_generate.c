/* Greedy generation benchmark (KV cache): per prompt, the time of prefill + first token and
 * of the whole run of N new tokens (EOS off), so decode tok/s = (N − 1) / (t_N − t_1).
 * Run by bench/run_generate_bench.sh beside transformers' generate.
 *
 * usage: bench_generate --model DIR --ids-file F --new N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/generate.h"

static double peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / (1024.0 * 1024.0);
}

int main(int argc, char **argv) {
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
    rs_err err = {{0}};
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
