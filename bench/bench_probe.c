/* Logistic-regression probe fit time on 4000×2304 f32, 4 classes (issue 5), standardised
 * and unstandardised-anisotropic, data from the shared generator so that
 * bench/bench_probe_ref.py fits sklearn on the identical matrix. Prints one line per
 * case: seconds (best of --reps), objective (½‖W‖² + C Σ loss), iterations. Options: --tol T,
 * --case NAME, --reps R, --n N, --d D. Threads: OMP_NUM_THREADS (our kernels) / OPENBLAS_NUM_THREADS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reprshift/probe.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
    int n = 4000, d = 2304, K = 4, reps = 3;
    double tol = 1e-4;
    const char *only = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n")) n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--d")) d = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tol")) tol = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--case")) only = argv[i + 1];
    }
    float *X = malloc(sizeof(float) * n * d), *Xs = malloc(sizeof(float) * n * d);
    int *y = malloc(sizeof(int) * n);
    if (!X || !Xs || !y) return 1;
    const char *names[2] = {"standardised", "unstandardised_aniso"};
    for (int c = 0; c < 2; c++) {
        if (only && strcmp(only, names[c])) continue;
        /* same parameters as bench/bench_probe_ref.py */
        rs_synth_classification(101, n, d, K, 0.02, c == 0 ? 0.0 : 1.0, 0, X, y);
        rs_err err;
        if (c == 0) {
            rs_scaler sc;
            if (rs_scaler_fit(&sc, X, n, d, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            rs_scaler_apply(&sc, X, n, Xs);
            rs_scaler_free(&sc);
        } else {
            memcpy(Xs, X, sizeof(float) * n * d);
        }
        double best = 1e30, best_cpu = 1e30;
        rs_logreg m;
        for (int r = 0; r < reps; r++) {
            rs_logreg_opts o = rs_logreg_defaults(); /* C = 1, tol = 1e-4 like sklearn */
            o.tol = tol;
            double t0 = now(), c0 = (double)clock() / CLOCKS_PER_SEC;
            if (rs_logreg_fit(&m, Xs, y, n, d, K, &o, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            double t = now() - t0, tc = (double)clock() / CLOCKS_PER_SEC - c0;
            if (t < best) best = t;
            if (tc < best_cpu) best_cpu = tc;
            if (r + 1 < reps) rs_logreg_free(&m);
        }
        printf("reprshift %-22s %8.3f s  objective %.10g  iters %d  cpu %.3f s  (tol %g)\n", names[c], best,
               m.objective, m.n_iter, best_cpu, tol);
        rs_logreg_free(&m);
    }
    free(X); free(Xs); free(y);
    return 0;
}
