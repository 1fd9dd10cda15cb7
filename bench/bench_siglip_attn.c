/* The SigLIP tower's attention in isolation (issue 14): 8 images × 16 heads, 256 patches,
 * head dim 72, Q/K/V rows of stride 1152 as siglip_forward lays them out, fp32,
 * bidirectional, scale 72^-0.5. Times the library's op_attention against alternatives of
 * the same computation, interleaved round by round (a burst of load on a shared machine hits
 * every variant alike), and checks each against the library's output first.
 *
 *   bench_siglip_attn [--rounds N] [--images N] [--split] [--only NAME]
 *
 * Variants (wall time with the OpenMP threads, OMP_NUM_THREADS):
 *   lib       op_attention as built (the tower's call; its route: RS_ATTN's default, printed)
 *   blas      op_attention on the BLAS route (op_attn_route_set: two sgemm per head, rows between)
 *   fused     op_attention on the fused AVX-512 kernel (src/tensor/attn_fused.c), where available
 *   base      the loop of the base commit: per (image, head) QKᵀ sgemm, scale + softmax row by
 *             row (op_softmax: sequential double sum), PV sgemm
 *   blasthr   the (image, head) items one after another, each sgemm threaded by OpenBLAS, the
 *             rows in an OpenMP loop
 *   qblk64    each item cut into blocks of 64 queries (4× the items, S blocks of 64×256)
 *   packed    Q, K, V of a head copied to contiguous 256×72 blocks first
 *   dnnl      as base, both products with oneDNN's dnnl_sgemm (where the build has oneDNN)
 * --split: one thread, the thread's CPU time of each part of the base loop (QKᵀ, rows, PV)
 * and the sgemm rate of a linear-layer product (256×1152 · 1152×1152) for scale.
 * Prints one line per variant: median ms, GFLOP/s (4·N²·hd per head), ratio to lib, max|diff|. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#ifdef RS_BUILD_HAS_DNNL /* the library links oneDNN (CMakeLists.txt) */
#include <oneapi/dnnl/dnnl.h>
#define HAVE_DNNL 1
#endif
#include "reprshift/ops.h"

enum { N = 256, H = 16, HD = 72, D = H * HD };
static int g_img = 8;
static float *Q, *K, *V, *Z, *Zref, *S;
static int64_t *off;
static op_attn_params P;

static double tcpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void rows_base(float *Sh, int lq, int n, float scale) {
    for (int r = 0; r < lq; r++) {
        float *row = Sh + (size_t)r * n;
        for (int j = 0; j < n; j++) row[j] *= scale;
        op_softmax(row, n);
    }
}

static void v_lib(void) { op_attention(Z, Q, K, V, off, g_img, NULL, &P, S, (size_t)N * N); }
/* the library's op_attention on each route (op_attn_route_set), then back to the default */
static void v_route(int route) {
    op_attn_route_set(route);
    v_lib();
    op_attn_route_set(OP_ATTN_ROUTE_AUTO);
}
static void v_blasroute(void) { v_route(OP_ATTN_ROUTE_BLAS); }
static void v_fused(void) { v_route(OP_ATTN_ROUTE_FUSED); }

static void item(int it, float *Sh) {
    int s = it / H, h = it % H;
    const float *Qh = Q + (size_t)s * N * D + h * HD, *Kh = K + (size_t)s * N * D + h * HD,
                *Vh = V + (size_t)s * N * D + h * HD;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, HD, 1.0f, Qh, D, Kh, D, 0.0f, Sh, N);
    rows_base(Sh, N, N, P.scale);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, HD, N, 1.0f, Sh, N, Vh, D, 0.0f,
                Z + (size_t)s * N * D + h * HD, D);
}

static void v_base(void) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int it = 0; it < g_img * H; it++) item(it, S + (size_t)omp_get_thread_num() * N * N);
}

static void v_blasthr(void) {
    for (int it = 0; it < g_img * H; it++) {
        int s = it / H, h = it % H;
        const float *Qh = Q + (size_t)s * N * D + h * HD, *Kh = K + (size_t)s * N * D + h * HD,
                    *Vh = V + (size_t)s * N * D + h * HD;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, HD, 1.0f, Qh, D, Kh, D, 0.0f, S, N);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < N; r++) rows_base(S + (size_t)r * N, 1, N, P.scale);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, HD, N, 1.0f, S, N, Vh, D, 0.0f,
                    Z + (size_t)s * N * D + h * HD, D);
    }
}

static void v_qblk64(void) {
    enum { B = 64, NB = N / B };
#pragma omp parallel for schedule(dynamic, 1)
    for (int it = 0; it < g_img * H * NB; it++) {
        int s = it / (H * NB), h = (it / NB) % H, b = it % NB;
        float *Sh = S + (size_t)omp_get_thread_num() * N * N;
        const float *Qh = Q + ((size_t)s * N + b * B) * D + h * HD, *Kh = K + (size_t)s * N * D + h * HD,
                    *Vh = V + (size_t)s * N * D + h * HD;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, N, HD, 1.0f, Qh, D, Kh, D, 0.0f, Sh, N);
        rows_base(Sh, B, N, P.scale);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, HD, N, 1.0f, Sh, N, Vh, D, 0.0f,
                    Z + ((size_t)s * N + b * B) * D + h * HD, D);
    }
}

static void v_packed(void) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int it = 0; it < g_img * H; it++) {
        int s = it / H, h = it % H;
        float *Sh = S + (size_t)omp_get_thread_num() * N * N;
        float q[N * HD], k[N * HD], v[N * HD], z[N * HD];
        for (int r = 0; r < N; r++) {
            memcpy(q + r * HD, Q + ((size_t)s * N + r) * D + h * HD, HD * sizeof(float));
            memcpy(k + r * HD, K + ((size_t)s * N + r) * D + h * HD, HD * sizeof(float));
            memcpy(v + r * HD, V + ((size_t)s * N + r) * D + h * HD, HD * sizeof(float));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, HD, 1.0f, q, HD, k, HD, 0.0f, Sh, N);
        rows_base(Sh, N, N, P.scale);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, HD, N, 1.0f, Sh, N, v, HD, 0.0f, z, HD);
        for (int r = 0; r < N; r++) memcpy(Z + ((size_t)s * N + r) * D + h * HD, z + r * HD, HD * sizeof(float));
    }
}

#ifdef HAVE_DNNL
/* both products with oneDNN's sgemm (row-major; one thread inside the parallel loop) */
static void v_dnnl(void) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int it = 0; it < g_img * H; it++) {
        int s = it / H, h = it % H;
        float *Sh = S + (size_t)omp_get_thread_num() * N * N;
        const float *Qh = Q + (size_t)s * N * D + h * HD, *Kh = K + (size_t)s * N * D + h * HD,
                    *Vh = V + (size_t)s * N * D + h * HD;
        dnnl_sgemm('N', 'T', N, N, HD, 1.0f, Qh, D, Kh, D, 0.0f, Sh, N);
        rows_base(Sh, N, N, P.scale);
        dnnl_sgemm('N', 'N', N, HD, N, 1.0f, Sh, N, Vh, D, 0.0f, Z + (size_t)s * N * D + h * HD, D);
    }
}
#endif

typedef struct {
    const char *name;
    void (*fn)(void);
    double t[64];
    float diff;
} variant;

static void split(void) {
    omp_set_num_threads(1);
    double tq = 0, tr = 0, tp = 0;
    for (int rep = 0; rep < 3; rep++)
        for (int it = 0; it < g_img * H; it++) {
            int s = it / H, h = it % H;
            const float *Qh = Q + (size_t)s * N * D + h * HD, *Kh = K + (size_t)s * N * D + h * HD,
                        *Vh = V + (size_t)s * N * D + h * HD;
            double t0 = tcpu();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, HD, 1.0f, Qh, D, Kh, D, 0.0f, S, N);
            double t1 = tcpu();
            rows_base(S, N, N, P.scale);
            double t2 = tcpu();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, HD, N, 1.0f, S, N, Vh, D, 0.0f,
                        Z + (size_t)s * N * D + h * HD, D);
            double t3 = tcpu();
            tq += t1 - t0, tr += t2 - t1, tp += t3 - t2;
        }
    double tl = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = tcpu();
        v_lib();
        tl += tcpu() - t0;
    }
    double fl = 3.0 * g_img * H * 2.0 * N * N * HD;
    printf("split: op_attention %.1f ms, i.e. rows about %.1f ms (the total less the two products above)\n", tl * 1e3,
           (tl - tq - tp) * 1e3);
    printf("split (1 thread, CPU time, 3 passes): QK^T %.1f ms (%.1f GFLOP/s), rows %.1f ms, PV %.1f ms (%.1f GFLOP/s); "
           "rows %.1f%% of the item\n",
           tq * 1e3, fl / tq / 1e9, tr * 1e3, tp * 1e3, fl / tp / 1e9, 100 * tr / (tq + tr + tp));
    float *x = malloc(sizeof(float) * N * D), *w = malloc(sizeof(float) * D * D), *y = malloc(sizeof(float) * N * D);
    for (size_t i = 0; i < (size_t)N * D; i++) x[i] = bench_urand();
    for (size_t i = 0; i < (size_t)D * D; i++) w[i] = bench_urand();
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = tcpu();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, D, D, 1.0f, x, D, w, D, 0.0f, y, D);
        double t = tcpu() - t0;
        if (t < best) best = t;
    }
    printf("split: linear-layer sgemm 256x1152x1152, 1 thread: %.1f GFLOP/s\n", 2.0 * N * D * D / best / 1e9);
    free(x), free(w), free(y);
}

int main(int argc, char **argv) {
    int rounds = 7, do_split = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--images") && i + 1 < argc) g_img = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--split")) do_split = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_siglip_attn [--rounds N] [--images N] [--split] [--only NAME]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 64 || g_img < 1) return 2;
    size_t T = (size_t)g_img * N;
    Q = malloc(T * D * sizeof(float)), K = malloc(T * D * sizeof(float)), V = malloc(T * D * sizeof(float));
    Z = malloc(T * D * sizeof(float)), Zref = malloc(T * D * sizeof(float));
    S = malloc((size_t)omp_get_max_threads() * N * N * sizeof(float));
    off = malloc((g_img + 1) * sizeof *off);
    if (!Q || !K || !V || !Z || !Zref || !S || !off) return 3;
    /* q, k of a LayerNormed input through a random projection: entries of a few units, so the
     * scaled scores spread over several units like a trained tower's */
    for (size_t i = 0; i < T * D; i++) Q[i] = 2.0f * bench_urand(), K[i] = 2.0f * bench_urand(), V[i] = bench_urand();
    for (int s = 0; s <= g_img; s++) off[s] = (int64_t)s * N;
    P = (op_attn_params){.n_heads = H, .n_kv_heads = H, .head_dim = HD, .q_stride = D, .kv_stride = D,
                         .z_stride = D, .scale = (float)pow((double)HD, -0.5)};
    int nthr = omp_get_max_threads();
    if (do_split) split();
    omp_set_num_threads(nthr);
    printf("library attention route: %s (fused kernel %s)\n", op_attn_route_name(op_attn_route()),
           op_attn_fused_available() ? "available" : "not available here");
    variant vs[] = {{.name = "lib", .fn = v_lib}, {.name = "base", .fn = v_base}, {.name = "blas", .fn = v_blasroute},
                   {.name = "fused", .fn = v_fused}, {.name = "blasthr", .fn = v_blasthr},
                   {.name = "qblk64", .fn = v_qblk64}, {.name = "packed", .fn = v_packed},
#ifdef HAVE_DNNL
                   {.name = "dnnl", .fn = v_dnnl},
#endif
    };
    int nv = sizeof vs / sizeof vs[0];
    if (!op_attn_fused_available()) { /* no fused route here: drop the variant rather than time BLAS under its name */
        memmove(&vs[3], &vs[4], (size_t)(nv - 4) * sizeof vs[0]);
        nv--;
    }
    v_base();
    memcpy(Zref, Z, T * D * sizeof(float));
    for (int v = 0; v < nv; v++) {
        memset(Z, 0, T * D * sizeof(float));
        vs[v].fn();
        float md = 0;
        for (size_t i = 0; i < T * D; i++) md = fmaxf(md, fabsf(Z[i] - Zref[i]));
        vs[v].diff = md;
    }
    for (int r = 0; r < rounds; r++)
        for (int v = 0; v < nv; v++) {
            if (only && strcmp(only, vs[v].name) && strcmp(vs[v].name, "lib")) continue;
            double t0 = bench_now();
            vs[v].fn();
            vs[v].t[r] = bench_now() - t0;
        }
    double fl = (double)g_img * H * 4.0 * N * N * HD, tlib = 0;
    for (int v = 0; v < nv; v++) {
        if (only && strcmp(only, vs[v].name) && strcmp(vs[v].name, "lib")) continue;
        qsort(vs[v].t, rounds, sizeof(double), cmp_d);
        double med = vs[v].t[rounds / 2];
        if (v == 0) tlib = med;
        printf("%-8s %8.2f ms  %6.1f GFLOP/s  lib/this %.2fx  max|diff| vs base %.3g  (min %.2f ms)\n", vs[v].name,
               med * 1e3, fl / med / 1e9, tlib / med, vs[v].diff, vs[v].t[0] * 1e3);
    }
    printf("threads %d, %d images x %d heads, N %d, hd %d, %d rounds interleaved\n", nthr, g_img, H, N, HD, rounds);
    return 0;
}
