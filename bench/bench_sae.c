/* SAE encode throughput (vectors/s) at Gemma Scope width: d_in 2304, d_sae 16384, jumprelu,
 * random weights generated at run time (no files). Run beside the sae-lens/torch reference
 * with bench/run_sae_bench.sh (2 threads, OMP_WAIT_POLICY=PASSIVE).
 * usage: bench_sae [--n N] [--repeat R] [--arch jumprelu|topk|standard] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reprshift/sae.h"

#include "bench_util.h"

int main(int argc, char **argv) {
    int n = 2048, repeat = 5, d = 2304, m = 16384;
    sae_arch arch = SAE_ARCH_JUMPRELU;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--arch") && i + 1 < argc) {
            i++;
            arch = !strcmp(argv[i], "topk") ? SAE_ARCH_TOPK : !strcmp(argv[i], "standard") ? SAE_ARCH_STANDARD : SAE_ARCH_JUMPRELU;
        } else {
            fprintf(stderr, "usage: bench_sae [--n N] [--repeat R] [--arch jumprelu|topk|standard]\n");
            return 2;
        }
    }
    size_t nw = (size_t)d * m;
    float *we = malloc(nw * sizeof *we), *wd = malloc(nw * sizeof *wd), *be = malloc((size_t)m * sizeof *be);
    float *bd = malloc((size_t)d * sizeof *bd), *th = malloc((size_t)m * sizeof *th);
    float *x = malloc((size_t)n * d * sizeof *x), *acts = malloc((size_t)n * m * sizeof *acts);
    if (!we || !wd || !be || !bd || !th || !x || !acts) {
        fprintf(stderr, "bench_sae: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nw; i++) we[i] = bench_urand() * 0.03f;
    for (size_t i = 0; i < nw; i++) wd[i] = bench_urand() * 0.03f;
    for (int i = 0; i < m; i++) be[i] = bench_urand() * 0.1f;
    for (int i = 0; i < d; i++) bd[i] = bench_urand() * 0.1f;
    for (int i = 0; i < m; i++) th[i] = 0.5f + 0.5f * bench_urand();
    for (size_t i = 0; i < (size_t)n * d; i++) x[i] = bench_urand() * 3.0f;
    rs_sae *s;
    rs_err err;
    if (sae_new(&s, arch, d, m, we, wd, be, bd, arch == SAE_ARCH_JUMPRELU ? th : NULL, &err)) {
        fprintf(stderr, "bench_sae: %s\n", err.msg);
        return 1;
    }
    s->apply_b_dec_to_input = 0;
    s->k = 64;
    if (sae_encode(s, x, n, acts, &err)) { /* warm-up */
        fprintf(stderr, "bench_sae: %s\n", err.msg);
        return 1;
    }
    double best = 1e30;
    for (int r = 0; r < repeat; r++) {
        double t0 = bench_now();
        sae_encode(s, x, n, acts, &err);
        double t = bench_now() - t0;
        if (t < best) best = t;
    }
    size_t nnz = 0;
    for (size_t i = 0; i < (size_t)n * m; i++) nnz += acts[i] != 0;
    printf("reprshift sae_encode %s d_in %d d_sae %d n %d: %.0f vec/s (best of %d, %.3f s; mean L0 %.1f)\n",
           sae_arch_name(arch), d, m, n, n / best, repeat, best, (double)nnz / n);
    sae_free(s);
    free(we);
    free(wd);
    free(be);
    free(bd);
    free(th);
    free(x);
    free(acts);
    return 0;
}
