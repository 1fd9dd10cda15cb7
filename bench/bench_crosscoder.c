/* Crosscoder training speed (Adam steps/s) on random paired data, beside the torch
 * implementation of the same objective (bench/bench_crosscoder_ref.py; run both with
 * bench/run_crosscoder_bench.sh). The data: n rows per side, each side a random mixture of
 * sparse directions (so the latents fire sparsely as on real activations), side 1 scaled
 * ×3 as PaliGemma's activations are larger.
 * usage: bench_crosscoder [--d D] [--m M] [--batch B] [--steps S] [--rows N] [--sparsity l1|batchtopk] [--k K]
 *                         [--l1 LAMBDA] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reprshift/crosscoder.h"

#include "bench_util.h"

int main(int argc, char **argv) {
    int d = 256, m = 4096, B = 512, k = 32;
    float l1 = 1e-3f;
    int64_t steps = 40, n = 8192;
    xc_sparsity sp = XC_L1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--d") && i + 1 < argc) d = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--m") && i + 1 < argc) m = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--k") && i + 1 < argc) k = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--l1") && i + 1 < argc) l1 = (float)atof(argv[++i]);
        else if (!strcmp(argv[i], "--sparsity") && i + 1 < argc) sp = !strcmp(argv[++i], "batchtopk") ? XC_BATCHTOPK : XC_L1;
        else {
            fprintf(stderr, "usage: bench_crosscoder [--d D] [--m M] [--batch B] [--steps S] [--rows N] "
                            "[--sparsity l1|batchtopk] [--k K] [--l1 LAMBDA]\n");
            return 2;
        }
    }
    const int nd = 64; /* planted directions per side */
    float *x0 = calloc((size_t)n * d, sizeof *x0), *x1 = calloc((size_t)n * d, sizeof *x1);
    float *D = malloc((size_t)nd * 2 * d * sizeof *D);
    if (!x0 || !x1 || !D) {
        fprintf(stderr, "bench_crosscoder: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)nd * 2 * d; i++) D[i] = bench_urand();
    for (int64_t r = 0; r < n; r++)
        for (int j = 0; j < 6; j++) {
            int f = (int)((bench_urand() + 1) * 0.5f * nd) % nd;
            float a = bench_urand() + 1.5f;
            for (int t = 0; t < d; t++)
                x0[(size_t)r * d + t] += a * D[(size_t)f * 2 * d + t], x1[(size_t)r * d + t] += 3 * a * D[(size_t)f * 2 * d + d + t];
        }
    xc_train_opts o;
    xc_train_opts_default(&o);
    o.n_latents = m;
    o.sparsity = sp;
    o.k = k;
    o.l1 = l1;
    o.batch = B;
    o.lr = 1e-3f;
    o.resample_every = 0;
    rs_crosscoder *c;
    xc_train_report rep;
    rs_err err;
    /* warm-up (3 steps), then the timed run; each run includes the initialisation, which the
       timed one subtracts by running 3 steps first */
    o.steps = 3;
    double t0 = bench_now();
    if (xc_train(x0, x1, n, d, &o, &c, &rep, &err)) {
        fprintf(stderr, "bench_crosscoder: %s\n", err.msg);
        return 1;
    }
    double t_init = bench_now() - t0;
    xc_free(c);
    o.steps = steps + 3;
    t0 = bench_now();
    if (xc_train(x0, x1, n, d, &o, &c, &rep, &err)) {
        fprintf(stderr, "bench_crosscoder: %s\n", err.msg);
        return 1;
    }
    double t = bench_now() - t0 - t_init;
    /* L0 at the end on the first batch of rows (inference form), the sparsity the last steps ran at */
    int64_t ne = n < B ? n : B;
    double *l0 = malloc((size_t)ne * sizeof *l0), L = 0;
    if (!l0 || xc_eval_rows(c, x0, x1, ne, NULL, NULL, l0, NULL, &err)) return 1;
    for (int64_t r = 0; r < ne; r++) L += l0[r] / ne;
    free(l0);
    printf("reprshift crosscoder %s d=%d m=%d batch=%d l1=%g: %lld steps in %.3f s = %.2f steps/s (final mse %.4g, L0 %.1f)\n",
           sp == XC_L1 ? "l1" : "batchtopk", d, m, B, l1, (long long)steps, t, steps / t, rep.final_mse, L);
    xc_free(c);
    free(x0), free(x1), free(D);
    return 0;
}
