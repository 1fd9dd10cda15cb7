/* The elementwise and attention kernels at each ISA level (issue "CPU throughput at the
 * machine's limit", item 2; src/tensor/isa.h): rmsnorm, layernorm, GELU-tanh, GeGLU, add,
 * softmax, RoPE, the bias add of a linear layer, SigLIP's fc1 bias + GELU pass and its residual
 * add + LayerNorm, bf16 → f32 widening, attention (the whole op_attention on its BLAS route:
 * two BLAS products plus the masking/soft-cap/softmax rows), the bicubic resize, and the SAE
 * encode activation, at Gemma-2 2B shapes (D 2304, F 9216, 8 heads × 256, T 64…512)
 * and SigLIP So400m shapes (1152, 4304, 729 tokens), the decode-step row product of few rows
 * against a BF16 matrix (op_linear_st), and a plain read of 1 GiB (memread_f32: the machine's
 * memory read bandwidth, the ceiling of the row product on matrices beyond the cache). Every level is checked to give the same
 * bytes as "default" before it is timed (a mismatch is reported and the program exits 1).
 *
 * Per kernel and level: best of --reps timed runs, each repeated until ≥ 20 ms, the levels
 * interleaved run by run (so a burst of load on a shared machine hits all of them); it prints
 *   kernels LEVEL NAME SHAPE ns_per_elem X gbps G speedup S
 * (GB/s from the bytes the kernel must read and write once; speedup = default time / this).
 * Rows "legacy" time the loops the dispatch replaced (copied here; interleaved with the
 * levels too): per-head cos/sin in RoPE, the per-entry mask test plus the full-row softmax
 * in attention, RMSNorm and LayerNorm one row at a time, and the decode row product widening bf16 into a buffer first. Their output is checked equal to the default level's, and their speedup
 * column is legacy time / default time (>1: the new code is faster before any vector ISA). The
 * one exception: the Gemma attention's old loop may differ from the causal query blocks by
 * rounding (bench/README.md, "causal query blocks"); that is printed and allowed up to 1e-6 of
 * max|ref|.
 *
 * usage: bench_kernels [--reps N] [--threads N] [--quick] [--only NAME]  (NAME: a substring of the kernel names)
 * RS_ISA=default|avx2|avx512 in the environment: time only "default" and that level (the
 * library itself never reads it). Threads: 1 unless --threads (kernel throughput per core);
 * with 1 thread the times are the thread's CPU time (robust on a loaded machine). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reprshift/image.h"
#include "reprshift/ops.h"
#include "reprshift/sae.h"
#include "reprshift/safetensors.h"
#include "tensor/vexp.h"
/* the legacy rows: the loop structure before the dispatch, with the exp and tanh the kernels
 * use now (rs_vexpf, rs_vtanhf), so their outputs can still be checked bit for bit */
#define LEGACY_EXPF rs_vexpf
#define LEGACY_TANHF rs_vtanhf
#include "legacy_kernels.h"

/* With one thread the clock is the thread's CPU time, so time the scheduler gives other
 * processes on a shared machine does not count; with more, wall time. */
static clockid_t g_clock = CLOCK_THREAD_CPUTIME_ID;
static double now(void) {
    struct timespec t;
    clock_gettime(g_clock, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
static float *rnd(size_t n, float sc) {
    float *p = malloc(n * sizeof *p);
    if (!p) exit(3);
    for (size_t i = 0; i < n; i++) p[i] = frand() * sc;
    return p;
}

/* ---- the benchmark cases: setup once, run many times, output buffer for the check ---- */
typedef struct kcase kcase;
struct kcase {
    const char *name, *shape;
    double elems, bytes; /* per run */
    void (*run)(kcase *);
    void (*reset)(kcase *); /* restore in-place inputs (not timed when NULL) */
    float *a, *b, *c, *d, *out, *in0;
    size_t n_out;
    int T, D, H, hd, L1, L2;
    int64_t off[3];
    op_attn_params p;
    int *prefix;
    float *scores;
    size_t per;
    st_tensor st;
    rs_image img, dst;
    rs_sae *sae;
    int legacy, has_legacy; /* legacy: run the replaced loops now; has_legacy: this case has them */
    double legacy_tol;      /* > 0: the legacy rows may differ by rounding, up to this × max|ref| */
};

static void r_rms(kcase *k) {
    if (k->legacy) legacy_rmsnorm(k->out, k->a, k->b, 1e-6f, k->T, k->D);
    else op_rmsnorm_gemma(k->out, k->a, k->b, 1e-6f, k->T, k->D);
}
static void r_ln(kcase *k) {
    if (k->legacy) legacy_layernorm(k->out, k->a, k->b, k->c, 1e-6f, k->T, k->D);
    else op_layernorm(k->out, k->a, k->b, k->c, 1e-6f, k->T, k->D);
}
static void reset_out(kcase *k) { memcpy(k->out, k->in0, k->n_out * 4); }
static void r_gelu(kcase *k) { op_gelu_tanh(k->out, k->n_out); }
static void r_geglu(kcase *k) { op_geglu(k->out, k->a, k->n_out); }
static void r_add(kcase *k) { op_add(k->out, k->a, k->n_out); }
static void r_softmax(kcase *k) {
    for (int t = 0; t < k->T; t++) op_softmax(k->out + (size_t)t * k->D, k->D);
}
static void legacy_rope(float *x, int stride, int n_heads, int head_dim, const int64_t *offsets, int n_seqs,
                        const float *inv_freq) {
    for (int s = 0; s < n_seqs; s++)
        for (int64_t i = offsets[s]; i < offsets[s + 1]; i++)
            for (int h = 0; h < n_heads; h++)
                op_rope(x + (size_t)i * stride + (size_t)h * head_dim, head_dim, inv_freq, (int)(i - offsets[s]));
}
static void r_rope(kcase *k) {
    if (k->legacy) legacy_rope(k->out, k->H * k->hd, k->H, k->hd, k->off, 1, k->a);
    else op_rope_seqs(k->out, k->H * k->hd, k->H, k->hd, k->off, 1, 0, k->a);
}
static void r_bias(kcase *k) { op_linear(k->out, k->a, k->b, k->c, k->T, 1, k->D); }
/* SigLIP's fc1 epilogue (IN = 1: the product is a rank-1 write, the rest is the pass over y):
 * op_linear_gelu's one pass of bias + GELU; legacy: the bias pass then op_gelu_tanh's */
static void r_bias_gelu(kcase *k) {
    if (k->legacy) {
        op_linear(k->out, k->a, k->b, k->c, k->T, 1, k->D);
        op_gelu_tanh(k->out, (size_t)k->T * k->D);
    } else op_linear_gelu(k->out, k->a, k->b, k->c, k->T, 1, k->D);
}
/* the tower's residual add and the LayerNorm after it: op_add_layernorm, one pass per row;
 * legacy: op_add then op_layernorm (the stream is restored before each run: reset) */
static void r_add_ln(kcase *k) {
    if (k->legacy) {
        op_add(k->d, k->a, (size_t)k->T * k->D);
        op_layernorm(k->out, k->d, k->b, k->c, 1e-6f, k->T, k->D);
    } else op_add_layernorm(k->d, k->a, k->out, k->b, k->c, 1e-6f, k->T, k->D);
}
static void reset_stream(kcase *k) { memcpy(k->d, k->in0, (size_t)k->T * k->D * 4); }
static void r_bf16(kcase *k) { st_to_f32(&k->st, k->out); }
static void r_f16(kcase *k) {
    if (!k->legacy) st_to_f32(&k->st, k->out);
    else { /* the loop before: rs_f16_to_f32 per value */
        const uint16_t *h = k->st.data;
        for (int64_t i = 0; i < k->st.numel; i++) k->out[i] = rs_f16_to_f32(h[i]);
    }
}

/* The op_attention of the base commit (single thread), for the "legacy" rows. */
static void legacy_attention_k(kcase *k) {
    legacy_attention(k->out, k->a, k->b, k->c, k->off, 2, k->prefix, &k->p, k->scores);
}
static void r_attn(kcase *k) {
    if (k->legacy) legacy_attention_k(k);
    else op_attention(k->out, k->a, k->b, k->c, k->off, 2, k->prefix, &k->p, k->scores, k->per);
}
/* op_linear_st's row path of the base commit: legacy_linear_rows, serial here (one thread). */
static void r_linrows(kcase *k) {
    if (k->legacy) legacy_linear_rows(k->out, k->a, &k->st, k->T, k->D, k->H, 0);
    else op_linear_st(k->out, k->a, &k->st, NULL, k->T, k->D, k->H);
}
/* The machine's read bandwidth: a sum over a buffer much larger than the last-level cache, in
 * 16 float lanes (vectorised even at the baseline level, far from compute-bound), the buffer
 * split across the threads. Not a dispatched kernel: every level runs this same code. */
static void r_memread(kcase *k) {
    size_t n = (size_t)k->L1 << 20; /* floats in k->b */
    int nt = omp_get_max_threads() < 64 ? omp_get_max_threads() : 64;
    float part[64][16];
#pragma omp parallel for schedule(static)
    for (int t = 0; t < nt; t++) {
        size_t lo = n / nt * t, hi = t == nt - 1 ? n : n / nt * (t + 1);
        float l[16] = {0};
        for (size_t i = lo; i + 16 <= hi; i += 16)
            for (int j = 0; j < 16; j++) l[j] += k->b[i + j];
        memcpy(part[t], l, sizeof l);
    }
    float s = 0;
    for (int t = 0; t < nt; t++)
        for (int j = 0; j < 16; j++) s += part[t][j];
    k->out[0] = s;
}
static void r_resize(kcase *k) {
    rs_image_free(&k->dst);
    rs_err e;
    if (rs_image_resize_bicubic(&k->img, k->T, k->D, &k->dst, &e)) exit(3);
    memcpy(k->out, k->dst.rgb, (size_t)k->T * k->D * 3);
}
static void r_sae(kcase *k) {
    rs_err e;
    if (sae_encode(k->sae, k->a, k->T, k->out, &e)) exit(3);
}

static kcase *cases;
static int n_cases;
static kcase *add_case(const char *name, const char *shape, double elems, double bytes, void (*run)(kcase *),
                       size_t n_out) {
    cases = realloc(cases, (size_t)(n_cases + 1) * sizeof *cases);
    kcase *k = &cases[n_cases++];
    memset(k, 0, sizeof *k);
    k->name = name, k->shape = shape, k->elems = elems, k->bytes = bytes, k->run = run, k->n_out = n_out;
    k->out = calloc(n_out ? n_out : 1, 4);
    return k;
}
static kcase *inplace(kcase *k, float sc) {
    k->in0 = rnd(k->n_out, sc);
    k->reset = reset_out;
    return k;
}

static void setup(int quick) {
    static char sh[64][48];
    int ns = 0;
#define SHAPE(...) (snprintf(sh[ns], sizeof sh[ns], __VA_ARGS__), sh[ns++])
    int Ts[] = {64, 512};
    for (int i = 0; i < 2; i++) {
        int T = Ts[i];
        kcase *k = add_case("rmsnorm", SHAPE("%dx2304", T), (double)T * 2304, (double)T * 2304 * 8, r_rms, (size_t)T * 2304);
        k->a = rnd((size_t)T * 2304, 3), k->b = rnd(2304, 0.5f), k->T = T, k->D = 2304, k->has_legacy = 1;
        k = inplace(add_case("gelu_tanh", SHAPE("%dx9216", T), (double)T * 9216, (double)T * 9216 * 8, r_gelu,
                             (size_t)T * 9216), 4);
        k = inplace(add_case("geglu", SHAPE("%dx9216", T), (double)T * 9216, (double)T * 9216 * 12, r_geglu,
                             (size_t)T * 9216), 4);
        k->a = rnd((size_t)T * 9216, 2);
        k = inplace(add_case("add", SHAPE("%dx2304", T), (double)T * 2304, (double)T * 2304 * 12, r_add,
                             (size_t)T * 2304), 4);
        k->a = rnd((size_t)T * 2304, 2);
        k = inplace(add_case("rope", SHAPE("%dx8x256", T), (double)T * 2048, (double)T * 2048 * 8, r_rope,
                             (size_t)T * 2048), 4);
        k->a = malloc(128 * 4), k->H = 8, k->hd = 256, k->off[1] = T, k->has_legacy = 1;
        op_rope_inv_freq(k->a, 256, 10000.0);
        k = inplace(add_case("softmax", SHAPE("%dx%d", T, T), (double)T * T, (double)T * T * 8, r_softmax, (size_t)T * T), 8);
        k->T = T, k->D = T;
        /* one 8-head Gemma layer, window 4096, cap 50, GQA 8/4: 2 sequences of T */
        k = add_case("attention", SHAPE("2x%dx8x256", T), 2.0 * 8 * T * T, 2.0 * 8 * T * T * 8, r_attn,
                     (size_t)2 * T * 2048);
        k->p = (op_attn_params){8, 4, 256, 2048, 1024, 2048, 1.0f / 16.0f, 50.0f, 1, 4096};
        k->a = rnd((size_t)2 * T * 2048, 2), k->b = rnd((size_t)2 * T * 1024, 2), k->c = rnd((size_t)2 * T * 1024, 1);
        k->off[1] = T, k->off[2] = 2 * T, k->per = (size_t)T * T, k->has_legacy = 1;
        /* causal query blocks (T > 128): the second product's sums split differently, 2.1e-7 of 1 */
        k->legacy_tol = 1e-6;
        k->scores = malloc((size_t)omp_get_max_threads() * k->per * 4);
    }
    kcase *k = add_case("bias_add", SHAPE("512x2304"), 512.0 * 2304, 512.0 * 2304 * 8, r_bias, (size_t)512 * 2304);
    k->a = rnd(512, 1), k->b = rnd(2304, 1), k->c = rnd(2304, 1), k->T = 512, k->D = 2304;
    /* bf16 widening of one Gemma-2 2B MLP matrix 9216×2304 (--quick: a quarter) */
    size_t nw = (size_t)9216 * 2304 / (quick ? 4 : 1);
    k = add_case("bf16_to_f32", SHAPE("%zu", nw), (double)nw, (double)nw * 6, r_bf16, nw);
    uint16_t *h = malloc(nw * 2);
    for (size_t i = 0; i < nw; i++) h[i] = (uint16_t)((next64() >> 48) & 0xBFFF);
    k->st.dtype = RS_DT_BF16, k->st.numel = (int64_t)nw, k->st.data = h;
    k = add_case("f16_to_f32", SHAPE("%zu", nw), (double)nw, (double)nw * 6, r_f16, nw);
    h = malloc(nw * 2);
    for (size_t i = 0; i < nw; i++) h[i] = (uint16_t)((next64() >> 48) & 0xBBFF); /* normals and a few subnormals */
    k->st.dtype = RS_DT_F16, k->st.numel = (int64_t)nw, k->st.data = h, k->has_legacy = 1;
    /* the decode-step row path (op_linear_st, T <= 4 rows against a BF16 matrix): an MLP up
     * projection, the down projection, a ragged IN, and a matrix larger than the last-level
     * cache (as the 5 GB of weights of a decode step are); GB/s counts the bf16 weights read */
    static const int lin[][3] = {{1, 2304, 9216}, {1, 9216, 2304}, {3, 2304, 9216}, {1, 2301, 517}, {1, 2304, 131072}};
    for (int c = 0; c < 5; c++) {
        int T = lin[c][0], IN = lin[c][1], OUT = lin[c][2];
        if (quick && OUT > 65536) OUT /= 4;
        size_t nwl = (size_t)IN * OUT;
        k = add_case("linear_rows_bf16", SHAPE("%dx%d->%d", T, IN, OUT), (double)nwl * T, (double)nwl * 2, r_linrows,
                     (size_t)T * OUT);
        h = malloc(nwl * 2);
        for (size_t i = 0; i < nwl; i++) h[i] = (uint16_t)(0x3c00 + (next64() >> 55)); /* bf16 in [2^-7, 2^-6) ± */
        k->st.dtype = RS_DT_BF16, k->st.numel = (int64_t)nwl, k->st.data = h;
        k->st.ndim = 2, k->st.shape[0] = OUT, k->st.shape[1] = IN;
        k->a = rnd((size_t)T * IN, 1), k->T = T, k->D = IN, k->H = OUT, k->has_legacy = 1;
    }
    k = add_case("memread_f32", SHAPE("%dMi floats", quick ? 64 : 256), (quick ? 64.0 : 256.0) * 1048576,
                 (quick ? 64.0 : 256.0) * 1048576 * 4, r_memread, 1);
    k->L1 = quick ? 64 : 256, k->b = rnd((size_t)k->L1 << 20, 1);
    /* SigLIP So400m/224 */
    k = add_case("layernorm", SHAPE("729x1152"), 729.0 * 1152, 729.0 * 1152 * 8, r_ln, (size_t)729 * 1152);
    k->a = rnd((size_t)729 * 1152, 3), k->b = rnd(1152, 1), k->c = rnd(1152, 1), k->T = 729, k->D = 1152, k->has_legacy = 1;
    k = inplace(add_case("gelu_tanh", SHAPE("729x4304"), 729.0 * 4304, 729.0 * 4304 * 8, r_gelu, (size_t)729 * 4304), 4);
    k = add_case("add_layernorm", SHAPE("729x1152"), 729.0 * 1152, 729.0 * 1152 * 16, r_add_ln, (size_t)729 * 1152);
    k->a = rnd((size_t)729 * 1152, 2), k->b = rnd(1152, 1), k->c = rnd(1152, 1), k->T = 729, k->D = 1152;
    k->in0 = rnd((size_t)729 * 1152, 3), k->d = malloc((size_t)729 * 1152 * 4);
    k->reset = reset_stream, k->has_legacy = 1;
    k = add_case("bias_gelu", SHAPE("729x4304"), 729.0 * 4304, 729.0 * 4304 * 8, r_bias_gelu, (size_t)729 * 4304);
    k->a = rnd(729, 1), k->b = rnd(4304, 1), k->c = rnd(4304, 1), k->T = 729, k->D = 4304, k->has_legacy = 1;
    k = inplace(add_case("add", SHAPE("729x1152"), 729.0 * 1152, 729.0 * 1152 * 12, r_add, (size_t)729 * 1152), 4);
    k->a = rnd((size_t)729 * 1152, 2);
    k = inplace(add_case("softmax", SHAPE("729x729"), 729.0 * 729, 729.0 * 729 * 8, r_softmax, (size_t)729 * 729), 8);
    k->T = 729, k->D = 729;
    k = add_case("attention", SHAPE("2x729x16x72"), 2.0 * 16 * 729 * 729, 2.0 * 16 * 729 * 729 * 8, r_attn,
                 (size_t)2 * 729 * 1152);
    k->p = (op_attn_params){16, 16, 72, 1152, 1152, 1152, 1.0f / sqrtf(72.0f), 0, 0, 0};
    k->a = rnd((size_t)2 * 729 * 1152, 2), k->b = rnd((size_t)2 * 729 * 1152, 2), k->c = rnd((size_t)2 * 729 * 1152, 1);
    k->off[1] = 729, k->off[2] = 1458, k->per = (size_t)729 * 729, k->has_legacy = 1;
    k->scores = malloc((size_t)omp_get_max_threads() * k->per * 4);
    /* the SigLIP preprocessing resize, 640×480 → 224×224 (Pillow) */
    k = add_case("resize_bicubic", SHAPE("640x480->224"), 224.0 * 224 * 3, 640.0 * 480 * 3 + 224 * 224 * 3, r_resize,
                 (size_t)224 * 224 * 3 / 4 + 1);
    rs_err e;
    if (rs_image_alloc(&k->img, 640, 480, &e)) exit(3);
    for (size_t i = 0; i < (size_t)640 * 480 * 3; i++) k->img.rgb[i] = (uint8_t)(next64() >> 56);
    k->T = 224, k->D = 224;
    /* SAE encode, jumprelu 2304 → 16384 (--quick: 4096), 64 vectors: mostly the sgemm */
    int m = quick ? 4096 : 16384;
    k = add_case("sae_encode_jumprelu", SHAPE("64x2304->%d", m), 64.0 * m, 64.0 * m * 8, r_sae, (size_t)64 * m);
    float *We = rnd((size_t)2304 * m, 0.05f), *Wd = rnd((size_t)m * 2304, 0.05f), *be = rnd((size_t)m, 0.1f),
          *bd = rnd(2304, 0.1f), *th = rnd((size_t)m, 0.2f);
    if (sae_new(&k->sae, SAE_ARCH_JUMPRELU, 2304, m, We, Wd, be, bd, th, &e)) exit(3);
    free(We), free(Wd), free(be), free(bd), free(th);
    k->a = rnd((size_t)64 * 2304, 1), k->T = 64;
}

/* One timed run: repeated until ≥ 20 ms, mean per call. */
static double time_once(kcase *k) {
    int it = 0;
    double t = 0;
    while (t < 0.02 || it < 1) {
        if (k->reset) k->reset(k);
        double t0 = now();
        k->run(k);
        t += now() - t0;
        it++;
    }
    return t / it;
}

int main(int argc, char **argv) {
    int reps = 5, threads = 1, quick = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1, reps = 2;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_kernels [--reps N] [--threads N] [--quick] [--only NAME]\n");
            return 2;
        }
    }
    omp_set_num_threads(threads);
    /* the attention rows are timed on the BLAS route (its two products plus the rows each level
     * compiles); the fused AVX-512 route is one level only and has its own benchmark
     * (bench_siglip_attn), its last bits differ from the BLAS route's (docs/pipeline.md) */
    op_attn_route_set(OP_ATTN_ROUTE_BLAS);
    if (threads > 1) g_clock = CLOCK_MONOTONIC;
    int levels[RS_ISA_COUNT], nl = 0;
    const char *env = getenv("RS_ISA");
    if (env && *env) {
        int want = rs_isa_parse(env);
        if (want < 0 || !rs_isa_supported(want)) {
            fprintf(stderr, "bench_kernels: RS_ISA=%s is unknown or not supported here (best: %s)\n", env,
                    rs_isa_name(rs_isa_best()));
            return 2;
        }
        levels[nl++] = RS_ISA_DEFAULT;
        if (want != RS_ISA_DEFAULT) levels[nl++] = want;
    } else
        for (int i = 0; i < RS_ISA_COUNT; i++)
            if (rs_isa_supported(i)) levels[nl++] = i;
    printf("kernels cpu best %s, timing:", rs_isa_name(rs_isa_best()));
    for (int i = 0; i < nl; i++) printf(" %s", rs_isa_name(levels[i]));
    for (int i = 0; i < RS_ISA_COUNT; i++)
        if (!rs_isa_supported(i)) printf(" (skipped %s: not supported here)", rs_isa_name(i));
    printf("; threads %d, clock %s\n", threads, threads > 1 ? "wall" : "thread CPU time");
    setup(quick);
    int bad = 0;
    for (int c = 0; c < n_cases; c++) {
        kcase *k = &cases[c];
        if (only && !strstr(k->name, only)) continue;
        float *ref = malloc(k->n_out * 4);
        /* slots: the levels, then the replaced loops (at the default level) when the case has them */
        int nslot = nl + (k->has_legacy ? 1 : 0);
        double best[RS_ISA_COUNT + 1];
        for (int l = 0; l < nslot; l++) {
            k->legacy = l == nl;
            rs_isa_force(l < nl ? levels[l] : RS_ISA_DEFAULT);
            if (k->reset) k->reset(k);
            k->run(k);
            if (l == 0) memcpy(ref, k->out, k->n_out * 4);
            else if (memcmp(ref, k->out, k->n_out * 4)) {
                double dmax = 0, rmax = 0;
                for (size_t i = 0; i < k->n_out; i++) {
                    double e = fabs((double)ref[i] - k->out[i]), r = fabs((double)ref[i]);
                    if (e > dmax || e != e) dmax = e;
                    if (r > rmax) rmax = r;
                }
                if (l == nl && dmax <= k->legacy_tol * rmax)
                    printf("kernels legacy %s %s: max|diff| %.3g (max|ref| %.3g), rounding within %.0e\n", k->name,
                           k->shape, dmax, rmax, k->legacy_tol);
                else {
                    printf("kernels MISMATCH %s %s at %s: max|diff| %.3g (max|ref| %.3g)\n", k->name, k->shape,
                           l < nl ? rs_isa_name(levels[l]) : "legacy", dmax, rmax);
                    bad = 1;
                }
            }
            best[l] = INFINITY;
        }
        for (int r = 0; r < reps; r++)
            for (int l = 0; l < nslot; l++) {
                k->legacy = l == nl;
                rs_isa_force(l < nl ? levels[l] : RS_ISA_DEFAULT);
                double t = time_once(k);
                if (t < best[l]) best[l] = t;
            }
        for (int l = 0; l < nslot; l++) {
            double t = best[l];
            printf("kernels %-7s %-20s %-15s ns_per_elem %8.3f gbps %7.2f speedup %5.2f\n",
                   l < nl ? rs_isa_name(levels[l]) : "legacy", k->name, k->shape, 1e9 * t / k->elems,
                   k->bytes / t * 1e-9, l < nl ? best[0] / t : t / best[0]);
        }
        fflush(stdout);
        k->legacy = 0;
        free(ref);
    }
    rs_isa_force(rs_isa_best());
    return bad;
}
