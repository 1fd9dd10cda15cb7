/* The ISA levels of the dispatched kernels (src/tensor/isa.h): every level this CPU supports
 * gives bit-identical output to the baseline ("default") level on random inputs at Gemma-2 2B
 * shapes (D 2304, F 9216, 8 heads × 256, T 64…512) and SigLIP shapes (1152, 4304, 729 tokens),
 * plus odd lengths for the vector tails. And the restructured kernels (softmax's lane maximum,
 * attention's kept range, the norms' blocked rows, RoPE's shared cos/sin, the blocked vertical resize) against the code
 * they replaced, kept here verbatim, so the default level matches earlier builds bit for bit
 * (also the decode row product of op_linear_st, which is checked against a double reference).
 * The fused fp32 attention route (ops.h op_attn_route, AVX-512) is held to the BLAS route and
 * to attention in double (test_attention_fused).
 * A level the CPU (or the compiler/architecture) lacks is skipped by name: the program then
 * exits 77 (skipped), never passed. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reprshift/image.h"
#include "reprshift/ops.h"
#include "reprshift/sae.h"
#include "reprshift/safetensors.h"
#include "tensor/vexp.h"
#define RS_ATTN_FUSED_QB_TEST 32 /* the fused kernel's query block (src/tensor/attention_impl.h) */
/* the legacy kernels' exp: the one op_softmax uses now (the restructuring is what is checked) */
#define LEGACY_EXPF rs_vexpf
#include "../bench/legacy_kernels.h"

static int g_skipped;
static float *rand_buf(size_t n, float scale) {
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}
static float *copy_buf(const float *a, size_t n) {
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    memcpy(p, a, n * sizeof *p);
    return p;
}
static void force(int isa) { assert_int_equal(rs_isa_force(isa), 0); }
static void same_bits(const void *a, const void *b, size_t bytes, const char *what, int isa) {
    if (memcmp(a, b, bytes)) {
        const unsigned char *x = a, *y = b;
        size_t i = 0;
        while (x[i] == y[i]) i++;
        fail_msg("%s: level %s differs from default at byte %zu of %zu", what, rs_isa_name(isa), i, bytes);
    }
}

/* The code before the dispatch (legacy_softmax, legacy_attention, legacy_linear_rows: the
 * reference for earlier builds) and the random inputs' generator are shared with the
 * benchmarks: bench/legacy_kernels.h. */

/* ---- per-kernel checks: out_default vs out_isa ---- */
static void check_norms(int isa, int T, int D) {
    size_t n = (size_t)T * D;
    float *x = rand_buf(n, 3.0f), *w = rand_buf((size_t)D, 0.5f), *b = rand_buf((size_t)D, 0.5f);
    float *b0 = rand_buf(n, 2.0f); /* the residual branch added by op_add_layernorm */
    float *y0 = malloc(n * 4), *y1 = malloc(n * 4);
    char what[64];
    for (int k = 0; k < 3; k++) {
        force(RS_ISA_DEFAULT);
        if (k == 0) op_rmsnorm_gemma(y0, x, w, 1e-6f, T, D);
        if (k == 1) op_rmsnorm_gemma(y0, x, NULL, 1e-6f, T, D);
        if (k == 2) op_layernorm(y0, x, w, b, 1e-6f, T, D);
        force(isa);
        if (k == 0) op_rmsnorm_gemma(y1, x, w, 1e-6f, T, D);
        if (k == 1) op_rmsnorm_gemma(y1, x, NULL, 1e-6f, T, D);
        if (k == 2) op_layernorm(y1, x, w, b, 1e-6f, T, D);
        snprintf(what, sizeof what, "%s T=%d D=%d", k == 2 ? "layernorm" : k ? "rmsnorm(no w)" : "rmsnorm", T, D);
        same_bits(y0, y1, n * 4, what, isa);
        if (k == 2) { /* the residual add and the LayerNorm after it, fused: each level, and the two calls */
            float *h0 = copy_buf(x, n), *h1 = copy_buf(x, n), *y2 = malloc(n * 4);
            force(RS_ISA_DEFAULT); op_add_layernorm(h0, b0, y2, w, b, 1e-6f, T, D);
            force(isa); op_add_layernorm(h1, b0, y1, w, b, 1e-6f, T, D);
            same_bits(h0, h1, n * 4, "add_layernorm (stream)", isa);
            same_bits(y2, y1, n * 4, "add_layernorm", isa);
            memcpy(h1, x, n * 4);
            op_add(h1, b0, n);
            op_layernorm(y1, h1, w, b, 1e-6f, T, D);
            same_bits(h0, h1, n * 4, "add_layernorm (stream) vs add", isa);
            same_bits(y2, y1, n * 4, "add_layernorm vs add + layernorm", isa);
            free(h0), free(h1), free(y2);
        }
        /* against the per-row loops of sequential double sums they replaced: the 32-lane sums
         * (tensor/norm_stats.h) round to the same floats on these rows (ragged D included) */
        if (k == 2) legacy_layernorm(y1, x, w, b, 1e-6f, T, D);
        else legacy_rmsnorm(y1, x, k ? NULL : w, 1e-6f, T, D);
        snprintf(what, sizeof what, "%s T=%d D=%d vs the per-row loop", k == 2 ? "layernorm" : k ? "rmsnorm(no w)" : "rmsnorm",
                 T, D);
        same_bits(y0, y1, n * 4, what, isa);
    }
    free(x), free(w), free(b), free(b0), free(y0), free(y1);
}

static void check_elementwise(int isa, size_t n) {
    float *g = rand_buf(n, 6.0f), *u = rand_buf(n, 2.0f);
    float *a0 = copy_buf(g, n), *a1 = copy_buf(g, n);
    force(RS_ISA_DEFAULT); op_gelu_tanh(a0, n);
    force(isa); op_gelu_tanh(a1, n);
    same_bits(a0, a1, n * 4, "gelu_tanh", isa);
    memcpy(a0, g, n * 4), memcpy(a1, g, n * 4);
    force(RS_ISA_DEFAULT); op_geglu(a0, u, n);
    force(isa); op_geglu(a1, u, n);
    same_bits(a0, a1, n * 4, "geglu", isa);
    memcpy(a0, g, n * 4), memcpy(a1, g, n * 4);
    force(RS_ISA_DEFAULT); op_add(a0, u, n);
    force(isa); op_add(a1, u, n);
    same_bits(a0, a1, n * 4, "add", isa);
    free(g), free(u), free(a0), free(a1);
}

static void check_linear_bias(int isa, int T, int IN, int OUT) {
    float *x = rand_buf((size_t)T * IN, 1), *W = rand_buf((size_t)OUT * IN, 1), *b = rand_buf((size_t)OUT, 1);
    float *y0 = malloc((size_t)T * OUT * 4), *y1 = malloc((size_t)T * OUT * 4);
    force(RS_ISA_DEFAULT); op_linear(y0, x, W, b, T, IN, OUT);
    force(isa); op_linear(y1, x, W, b, T, IN, OUT);
    same_bits(y0, y1, (size_t)T * OUT * 4, "linear bias", isa);
    /* fc1 + GELU: the bias in the GELU's pass, at each level, and equal to the two calls */
    force(RS_ISA_DEFAULT); op_linear_gelu(y0, x, W, b, T, IN, OUT);
    force(isa); op_linear_gelu(y1, x, W, b, T, IN, OUT);
    same_bits(y0, y1, (size_t)T * OUT * 4, "linear_gelu", isa);
    op_linear(y1, x, W, b, T, IN, OUT);
    op_gelu_tanh(y1, (size_t)T * OUT);
    same_bits(y0, y1, (size_t)T * OUT * 4, "linear_gelu vs linear + gelu", isa);
    free(x), free(W), free(b), free(y0), free(y1);
}

/* Rows of length n with −∞ entries, ±0 and equal maxima; the lane maximum vs the old scan too. */
static void check_softmax(int isa, int n) {
    float *x = rand_buf((size_t)n, 20.0f);
    for (int i = 0; i < n; i += 7) x[i] = -INFINITY;
    if (n > 40) x[3] = x[37] = 25.0f, x[5] = -0.0f, x[6] = 0.0f;
    float *a0 = copy_buf(x, (size_t)n), *a1 = copy_buf(x, (size_t)n), *r = copy_buf(x, (size_t)n);
    force(RS_ISA_DEFAULT); op_softmax(a0, n);
    force(isa); op_softmax(a1, n);
    legacy_softmax(r, n);
    same_bits(a0, a1, (size_t)n * 4, "softmax", isa);
    same_bits(r, a0, (size_t)n * 4, "softmax vs the old scan", RS_ISA_DEFAULT);
    for (int i = 0; i < n; i++) x[i] = i % 2 ? 0.0f : -0.0f; /* all zeros of both signs */
    memcpy(a1, x, (size_t)n * 4), memcpy(r, x, (size_t)n * 4);
    op_softmax(a1, n);
    legacy_softmax(r, n);
    same_bits(r, a1, (size_t)n * 4, "softmax ±0 vs the old scan", isa);
    free(x), free(a0), free(a1), free(r);
}

static void check_rope(int isa, int T, int n_heads, int hd) {
    int stride = n_heads * hd + 3; /* a row pitch wider than the heads, as for a fused QKV */
    size_t n = (size_t)T * stride;
    float *x = rand_buf(n, 4.0f), *inv = malloc((size_t)hd / 2 * 4);
    op_rope_inv_freq(inv, hd, 10000.0);
    int64_t off[3] = {0, T / 3, T};
    float *a0 = copy_buf(x, n), *a1 = copy_buf(x, n), *r = copy_buf(x, n);
    force(RS_ISA_DEFAULT); op_rope_seqs(a0, stride, n_heads, hd, off, 2, 5, inv);
    force(isa); op_rope_seqs(a1, stride, n_heads, hd, off, 2, 5, inv);
    for (int s = 0; s < 2; s++) /* the old op_rope_seqs: op_rope per head */
        for (int64_t i = off[s]; i < off[s + 1]; i++)
            for (int h = 0; h < n_heads; h++)
                op_rope(r + (size_t)i * stride + (size_t)h * hd, hd, inv, (int)(i - off[s]) + 5);
    same_bits(a0, a1, n * 4, "rope_seqs", isa);
    same_bits(r, a0, n * 4, "rope_seqs vs op_rope per head", RS_ISA_DEFAULT);
    free(x), free(inv), free(a0), free(a1), free(r);
}

/* a and b agree within rel·max|a| everywhere, and differ at all in at most a share `share` of
 * the n values (0: any share). */
static void near(const float *a, const float *b, size_t n, double rel, double share, const char *what) {
    double amax = 0, worst = 0;
    size_t ndiff = 0;
    for (size_t i = 0; i < n; i++) amax = fabs(a[i]) > amax ? fabs(a[i]) : amax;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= worst)) worst = e;
        ndiff += a[i] != b[i];
    }
    printf("%s: max|diff| %.3g of max|value| %.3g, %zu of %zu values differ\n", what, worst, amax, ndiff, n);
    if (!(worst <= rel * amax) || (share > 0 && (double)ndiff > share * (double)n))
        fail_msg("%s: max|diff| %.3g of max|value| %.3g (bound %.3g), %zu of %zu values differ", what, worst, amax, rel,
                 ndiff, n);
}

/* Two packed sequences of lengths L1, L2. */
static void check_attention(int isa, const op_attn_params *p, int L1, int L2, const int *prefix, const char *label) {
    int T = L1 + L2, Lmax = L1 > L2 ? L1 : L2;
    int64_t off[3] = {0, L1, T};
    float *Q = rand_buf((size_t)T * p->q_stride, 2), *K = rand_buf((size_t)T * p->kv_stride, 2),
          *V = rand_buf((size_t)T * p->kv_stride, 1);
    size_t nz = (size_t)T * p->z_stride;
    float *Z0 = calloc(nz, 4), *Z1 = calloc(nz, 4), *Zr = calloc(nz, 4);
    size_t per = (size_t)Lmax * Lmax;
    float *S = malloc((size_t)omp_get_max_threads() * per * 4);
    assert_int_equal(op_attn_route_set(OP_ATTN_ROUTE_BLAS), 0); /* the fused route: check_attention_fused */
    force(RS_ISA_DEFAULT); op_attention(Z0, Q, K, V, off, 2, prefix, p, S, per);
    force(isa); op_attention(Z1, Q, K, V, off, 2, prefix, p, S, per);
    char what[96];
    snprintf(what, sizeof what, "attention %s", label);
    same_bits(Z0, Z1, nz * 4, what, isa);
    int nt = omp_get_max_threads(); /* the old kernel, serially: each (sequence, head) is independent */
    omp_set_num_threads(1);
    legacy_attention(Zr, Q, K, V, off, 2, prefix, p, S);
    omp_set_num_threads(nt);
    snprintf(what, sizeof what, "attention %s vs the old masking loop", label);
    /* a causal sequence longer than a query block skips the masked keys, and its second
     * product's sums can then split differently; the soft-cap's tanh is rs_vtanhf, not glibc's
     * tanhf (within 2 ulp of each other): equal within fp32 rounding */
    int blocked = p->causal && Lmax > OP_ATTN_QUERY_BLOCK;
    if (blocked || p->softcap > 0) near(Zr, Z0, nz, 1e-6, 0, what);
    else same_bits(Zr, Z0, nz * 4, what, RS_ISA_DEFAULT);
    /* the bf16 run's attention (rows in blocks, rounded as torch's bf16): every level against
     * the default, and the default against the old per-row bf16 loop */
    force(RS_ISA_DEFAULT); op_attention_bf16(Z0, Q, K, V, off, 2, prefix, p, S, per);
    force(isa); op_attention_bf16(Z1, Q, K, V, off, 2, prefix, p, S, per);
    snprintf(what, sizeof what, "bf16 attention %s", label);
    same_bits(Z0, Z1, nz * 4, what, isa);
    omp_set_num_threads(1);
    legacy_attention_bf16(Zr, Q, K, V, off, 2, prefix, p, S);
    omp_set_num_threads(nt);
    snprintf(what, sizeof what, "bf16 attention %s vs the old per-row loop", label);
    /* blocked: the fp32 sum before the output's bf16 rounding can differ by rounding, which
     * moves an output across a bf16 rounding boundary now and then (one bf16 step) */
    if (blocked) near(Zr, Z0, nz, 1.0 / 128, 0.001, what);
    else same_bits(Zr, Z0, nz * 4, what, RS_ISA_DEFAULT);
    assert_int_equal(op_attn_route_set(OP_ATTN_ROUTE_AUTO), 0);
    free(Q), free(K), free(V), free(Z0), free(Z1), free(Zr), free(S);
}

/* attention in double, one (sequence, head) at a time, the mask of op_attention_kv: the
 * reference both fp32 routes are held to */
static void attention_double(float *Z, const float *Q, const int64_t *q_off, const float *K, const float *V,
                             const int64_t *kv_start, const int *kv_len, int n_seqs, const int *prefix,
                             const op_attn_params *p) {
    int group = p->n_heads / p->n_kv_heads, hd = p->head_dim;
    for (int s = 0; s < n_seqs; s++) {
        int Lq = (int)(q_off[s + 1] - q_off[s]), Lk = kv_len ? kv_len[s] : Lq, pre = prefix ? prefix[s] : 0;
        double *w = malloc((size_t)Lk * sizeof *w);
        for (int h = 0; h < p->n_heads; h++)
            for (int r = 0; r < Lq; r++) {
                int i = Lk - Lq + r;
                const float *q = Q + (size_t)(q_off[s] + r) * p->q_stride + (size_t)h * hd;
                double m = -INFINITY, sum = 0;
                for (int j = 0; j < Lk; j++) {
                    int keep = !p->causal || (j <= i && (p->window <= 0 || i - j < p->window)) || (i < pre && j < pre);
                    if (!keep) { w[j] = -INFINITY; continue; }
                    const float *k = K + (size_t)(kv_start[s] + j) * p->kv_stride + (size_t)(h / group) * hd;
                    double d = 0;
                    for (int c = 0; c < hd; c++) d += (double)q[c] * k[c];
                    d *= p->scale;
                    if (p->softcap > 0) d = tanh(d / p->softcap) * p->softcap;
                    w[j] = d, m = d > m ? d : m;
                }
                for (int j = 0; j < Lk; j++) sum += w[j] = w[j] == -INFINITY ? 0 : exp(w[j] - m);
                for (int c = 0; c < hd; c++) {
                    double z = 0;
                    for (int j = 0; j < Lk; j++)
                        if (w[j] != 0)
                            z += w[j] / sum * V[(size_t)(kv_start[s] + j) * p->kv_stride + (size_t)(h / group) * hd + c];
                    Z[(size_t)(q_off[s] + r) * p->z_stride + (size_t)h * hd + c] = (float)z;
                }
            }
        free(w);
    }
}

/* The fused AVX-512 route (op_attn_route FUSED) against the BLAS route and a double reference:
 * two packed sequences of Lq1, Lq2 queries, each against Lk1, Lk2 ≥ Lq keys (a KV history when
 * larger); within 2e-6 of max|value| of the BLAS route (fp32 rounding of two summation
 * orders; on OpenBLAS's AVX-512 kernels the two agree bit for bit, which is printed, not
 * required), and both routes within 1e-5 of the double reference. Sequences of fewer than 32
 * queries take the BLAS route on both: equal bits. */
static void check_attention_fused(const op_attn_params *p, int Lq1, int Lk1, int Lq2, int Lk2, const int *prefix,
                                  const char *label) {
    int Tq = Lq1 + Lq2, Tk = Lk1 + Lk2, Lmax = Lk1 > Lk2 ? Lk1 : Lk2;
    int64_t qoff[3] = {0, Lq1, Tq}, kstart[2] = {0, Lk1};
    int klen[2] = {Lk1, Lk2};
    float *Q = rand_buf((size_t)Tq * p->q_stride, 2), *K = rand_buf((size_t)Tk * p->kv_stride, 2),
          *V = rand_buf((size_t)Tk * p->kv_stride, 1);
    size_t nz = (size_t)Tq * p->z_stride, per = (size_t)Lmax * Lmax;
    float *Zb = calloc(nz, 4), *Zf = calloc(nz, 4), *Zd = calloc(nz, 4), *S = malloc((size_t)omp_get_max_threads() * per * 4);
    assert_int_equal(op_attn_route_set(OP_ATTN_ROUTE_BLAS), 0);
    assert_int_equal(op_attn_route(), OP_ATTN_ROUTE_BLAS);
    op_attention_kv(Zb, Q, qoff, K, V, kstart, klen, 2, prefix, p, S, per);
    assert_int_equal(op_attn_route_set(OP_ATTN_ROUTE_FUSED), 0);
    assert_int_equal(op_attn_route(), OP_ATTN_ROUTE_FUSED);
    op_attention_kv(Zf, Q, qoff, K, V, kstart, klen, 2, prefix, p, S, per);
    assert_int_equal(op_attn_route_set(OP_ATTN_ROUTE_AUTO), 0);
    attention_double(Zd, Q, qoff, K, V, kstart, klen, 2, prefix, p);
    char what[128];
    snprintf(what, sizeof what, "fused attention %s vs the BLAS route", label);
    near(Zb, Zf, nz, 2e-6, 0, what);
    if (Lq1 < RS_ATTN_FUSED_QB_TEST && Lq2 < RS_ATTN_FUSED_QB_TEST) same_bits(Zb, Zf, nz * 4, what, RS_ISA_AVX512);
    snprintf(what, sizeof what, "fused attention %s vs double", label);
    near(Zd, Zf, nz, 1e-5, 0, what);
    snprintf(what, sizeof what, "BLAS attention %s vs double", label);
    near(Zd, Zb, nz, 1e-5, 0, what);
    free(Q), free(K), free(V), free(Zb), free(Zf), free(Zd), free(S);
}

static void test_attention_fused(void **state) {
    (void)state;
    if (!op_attn_fused_available()) {
        assert_int_equal(op_attn_route_set(OP_ATTN_ROUTE_FUSED), -1);
        assert_int_equal(op_attn_route(), OP_ATTN_ROUTE_BLAS);
        printf("SKIPPED: the fused attention kernel needs AVX-512 (compiled in: %s)\n", "see op_attn_fused_available");
        g_skipped = 1;
        return;
    }
    assert_int_equal(op_attn_route_parse("fused"), OP_ATTN_ROUTE_FUSED);
    assert_int_equal(op_attn_route_parse("blas"), OP_ATTN_ROUTE_BLAS);
    assert_int_equal(op_attn_route_parse("auto"), OP_ATTN_ROUTE_AUTO);
    assert_int_equal(op_attn_route_parse("gpu"), -1);
    assert_int_equal(op_attn_route_set(7), -1);
    /* AUTO follows the ISA level: fused only at avx512 */
    force(RS_ISA_DEFAULT);
    assert_int_equal(op_attn_route(), OP_ATTN_ROUTE_BLAS);
    force(RS_ISA_AVX512);
    assert_int_equal(op_attn_route(), OP_ATTN_ROUTE_FUSED);
    op_attn_params v = {.n_heads = 16, .n_kv_heads = 16, .head_dim = 72, .q_stride = 1152, .kv_stride = 1152,
                        .z_stride = 1152, .scale = 1.0f / sqrtf(72.0f)};
    check_attention_fused(&v, 256, 256, 256, 256, NULL, "siglip 224 (256 patches)");
    check_attention_fused(&v, 729, 729, 45, 45, NULL, "siglip 448-like 729 + ragged 45");
    op_attn_params g = {.n_heads = 8, .n_kv_heads = 4, .head_dim = 256, .q_stride = 8 * 256, .kv_stride = 4 * 256,
                        .z_stride = 8 * 256, .scale = 1.0f / 16.0f, .softcap = 50.0f, .causal = 1};
    check_attention_fused(&g, 77, 77, 33, 33, NULL, "gemma causal softcap");
    g.window = 48;
    int pre[2] = {20, 60};
    check_attention_fused(&g, 300, 300, 100, 100, pre, "gemma window 48 + prefix");
    g.window = 0, g.softcap = 0;
    check_attention_fused(&g, 40, 140, 64, 64, NULL, "gemma KV history (40 queries after 100 keys)");
    check_attention_fused(&g, 1, 90, 31, 31, NULL, "decode step and 31 queries (BLAS on both routes)");
    op_attn_params o = {.n_heads = 3, .n_kv_heads = 1, .head_dim = 37, .q_stride = 3 * 37 + 5, .kv_stride = 37 + 3,
                        .z_stride = 3 * 37 + 1, .scale = 0.2f, .causal = 1, .window = 7};
    check_attention_fused(&o, 70, 70, 35, 35, NULL, "head dim 37, window 7, odd strides");
    o.head_dim = 9, o.causal = 0;
    check_attention_fused(&o, 33, 33, 100, 100, NULL, "head dim 9, bidirectional");
    op_attn_params b = {.n_heads = 2, .n_kv_heads = 2, .head_dim = 200, .q_stride = 400, .kv_stride = 400,
                        .z_stride = 400, .scale = 0.05f};
    check_attention_fused(&b, 50, 50, 13, 13, NULL, "head dim 200 (chunks of 64 + 72)");
    force(rs_isa_best());
}

static void check_bf16(int isa, int64_t n) {
    uint16_t *h = malloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) h[i] = (uint16_t)next64(); /* every bit pattern: NaNs, subnormals, ±0, ±∞ */
    float *a0 = malloc((size_t)n * 4), *a1 = malloc((size_t)n * 4), *s0 = malloc((size_t)n * 4);
    st_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = RS_DT_BF16;
    t.numel = n;
    t.data = h;
    force(RS_ISA_DEFAULT); st_to_f32(&t, a0);
    const float *w0 = op_weight_f32(&t, s0);
    force(isa); st_to_f32(&t, a1);
    same_bits(a0, a1, (size_t)n * 4, "bf16 widening", isa);
    same_bits(a0, w0, (size_t)n * 4, "op_weight_f32 bf16", isa);
    w0 = op_weight_f32(&t, a1);
    same_bits(a0, w0, (size_t)n * 4, "op_weight_f32 bf16", isa);
    /* a large matrix is widened with streaming stores from the first 64-byte boundary of the
     * scratch on: every offset of the scratch from that boundary, and the tail */
    if (n >= (1 << 20))
        for (int off = 1; off < 16; off += 2) {
            float *b = malloc((size_t)(n + 32) * 4);
            float *d = (float *)((uintptr_t)(b + 16) & ~(uintptr_t)63) + off;
            w0 = op_weight_f32(&t, d);
            char what[96];
            snprintf(what, sizeof what, "op_weight_f32 bf16, scratch 64-byte boundary + %d floats", off);
            same_bits(a0, w0, (size_t)n * 4, what, isa);
            free(b);
        }
    for (int64_t i = 0; i < n; i++) { /* the definition */
        uint32_t u = (uint32_t)h[i] << 16;
        if (memcmp(&u, a0 + i, 4)) fail_msg("bf16 widening of %04x is wrong", h[i]);
    }
    free(h), free(a0), free(a1), free(s0);
}

/* f16: every bit pattern (sign, zeros, subnormals, normals, Inf, NaN payloads) at this level
 * against rs_f16_to_f32, the scalar definition the conversion loop used before. */
static void check_f16(int isa) {
    int64_t n = 65536 + 3;
    uint16_t *h = malloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) h[i] = (uint16_t)i;
    float *a = malloc((size_t)n * 4);
    st_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = RS_DT_F16;
    t.numel = n;
    t.data = h;
    force(isa);
    st_to_f32(&t, a);
    for (int64_t i = 0; i < n; i++) {
        float r = rs_f16_to_f32(h[i]);
        if (memcmp(&r, a + i, 4)) fail_msg("f16 widening of %04x at level %s differs from rs_f16_to_f32", h[i], rs_isa_name(isa));
    }
    free(h), free(a);
}

static void check_resize(int isa, int w, int h, int ow, int oh) {
    rs_image src = {0}, d0 = {0}, d1 = {0};
    rs_err err = {0};
    assert_int_equal(rs_image_alloc(&src, w, h, &err), 0);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) src.rgb[i] = (uint8_t)(next64() >> 56);
    for (int k = 0; k < 3; k++) {
        force(RS_ISA_DEFAULT);
        assert_int_equal(k < 2 ? rs_image_resize_bicubic_order(&src, ow, oh, k ? RS_RESIZE_V_FIRST : RS_RESIZE_H_FIRST, &d0, &err)
                               : rs_image_resize_bicubic_torch(&src, ow, oh, &d0, &err), 0);
        force(isa);
        assert_int_equal(k < 2 ? rs_image_resize_bicubic_order(&src, ow, oh, k ? RS_RESIZE_V_FIRST : RS_RESIZE_H_FIRST, &d1, &err)
                               : rs_image_resize_bicubic_torch(&src, ow, oh, &d1, &err), 0);
        same_bits(d0.rgb, d1.rgb, (size_t)ow * oh * 3, k == 2 ? "resize torch" : "resize pillow", isa);
        rs_image_free(&d0), rs_image_free(&d1);
    }
    rs_image_free(&src);
}

static void check_sae(int isa, int d_in, int d_sae, int n) {
    float *We = rand_buf((size_t)d_in * d_sae, 0.1f), *Wd = rand_buf((size_t)d_sae * d_in, 0.1f);
    float *be = rand_buf((size_t)d_sae, 0.2f), *bd = rand_buf((size_t)d_in, 0.2f), *th = rand_buf((size_t)d_sae, 0.3f);
    float *x = rand_buf((size_t)n * d_in, 1);
    float *a0 = malloc((size_t)n * d_sae * 4), *a1 = malloc((size_t)n * d_sae * 4);
    rs_err err = {0};
    for (int k = 0; k < 2; k++) {
        rs_sae *s = NULL;
        assert_int_equal(sae_new(&s, k ? SAE_ARCH_JUMPRELU : SAE_ARCH_STANDARD, d_in, d_sae, We, Wd, be, bd,
                                 k ? th : NULL, &err), 0);
        force(RS_ISA_DEFAULT); assert_int_equal(sae_encode(s, x, n, a0, &err), 0);
        force(isa); assert_int_equal(sae_encode(s, x, n, a1, &err), 0);
        same_bits(a0, a1, (size_t)n * d_sae * 4, k ? "sae encode jumprelu" : "sae encode relu", isa);
        sae_free(s);
    }
    free(We), free(Wd), free(be), free(bd), free(th), free(x), free(a0), free(a1);
}

/* op_linear_st's decode row path (T ≤ OP_LINEAR_SMALL_T rows against a BF16 or F16 matrix):
 * every level gives the default level's bytes, which are the base commit's (the same 16-lane
 * order), on an odd-aligned copy of the weights too; and each output is within the stated
 * bound of a double dot product: every lane sums m = ⌈IN/16⌉ products, each rounded once
 * (x·w rounded to float) and added with one rounding, so |y − ref| ≤ (m + 1)·u·Σ|x_i·w_i|·1.01
 * + u·|ref| (u = 2⁻²⁴; the final double sum of the 16 lanes adds far less than that slack). */
static void check_linear_rows(int isa, int dtype, int T, int IN, int OUT) {
    size_t nw = (size_t)IN * OUT;
    uint16_t *h = malloc(nw * 2);
    unsigned char *odd = malloc(nw * 2 + 1);
    for (size_t i = 0; i < nw; i++) {
        float v = frand() * 0.5f;
        uint32_t u;
        memcpy(&u, &v, 4);
        h[i] = dtype == RS_DT_BF16 ? (uint16_t)(u >> 16) : (uint16_t)(next64() & 0x3bff) | (uint16_t)(u >> 31 << 15);
    }
    memcpy(odd + 1, h, nw * 2);
    float *x = rand_buf((size_t)T * IN, 1);
    size_t ny = (size_t)T * OUT;
    float *y0 = malloc(ny * 4), *y1 = malloc(ny * 4), *y2 = malloc(ny * 4), *yl = malloc(ny * 4), *wf = malloc(nw * 4);
    st_tensor W;
    memset(&W, 0, sizeof W);
    W.dtype = dtype, W.ndim = 2, W.shape[0] = OUT, W.shape[1] = IN, W.numel = (int64_t)nw, W.data = h;
    force(RS_ISA_DEFAULT); op_linear_st(y0, x, &W, NULL, T, IN, OUT);
    legacy_linear_rows(yl, x, &W, T, IN, OUT, 0);
    st_to_f32(&W, wf);
    force(isa); op_linear_st(y1, x, &W, NULL, T, IN, OUT);
    W.data = odd + 1;
    op_linear_st(y2, x, &W, NULL, T, IN, OUT);
    char what[96];
    snprintf(what, sizeof what, "linear rows %s T=%d IN=%d OUT=%d", dtype == RS_DT_BF16 ? "bf16" : "f16", T, IN, OUT);
    same_bits(y0, y1, ny * 4, what, isa);
    same_bits(y0, y2, ny * 4, what, isa); /* weights at an odd address */
    same_bits(yl, y0, ny * 4, what, RS_ISA_DEFAULT); /* vs the base commit's loop */
    double u = ldexp(1.0, -24), m = (IN + 15) / 16;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OUT; o++) {
            double ref = 0, mag = 0;
            for (int i = 0; i < IN; i++) {
                double p = (double)x[(size_t)t * IN + i] * wf[(size_t)o * IN + i];
                ref += p, mag += fabs(p);
            }
            double got = y0[(size_t)t * OUT + o], bound = (m + 1) * u * mag * 1.01 + u * fabs(ref);
            if (fabs(got - ref) > bound)
                fail_msg("%s: y[%d][%d] = %.9g, double reference %.9g, bound %.3g", what, t, o, got, ref, bound);
        }
    free(h), free(odd), free(x), free(y0), free(y1), free(y2), free(yl), free(wf);
}

static void run_level(int isa) {
    if (!rs_isa_supported(isa)) {
        printf("RS-SKIP: test_ops_isa: ISA level \"%s\" is not available on this CPU/build; its kernels were not checked\n",
               rs_isa_name(isa));
        g_skipped = 1;
        skip();
        return;
    }
    /* Gemma-2 2B */
    check_norms(isa, 64, 2304);
    check_norms(isa, 3, 2301); /* vector tails */
    check_norms(isa, 21, 37);  /* two blocks of 8 rows and a partial one, across the threads */
    check_elementwise(isa, (size_t)64 * 9216);
    check_elementwise(isa, 4099);
    check_linear_bias(isa, 17, 8, 2304);
    check_linear_rows(isa, RS_DT_BF16, 1, 2304, 1031); /* a decode step: 4-row blocks and 3 left over */
    check_linear_rows(isa, RS_DT_BF16, 1, 9216, 70);
    check_linear_rows(isa, RS_DT_BF16, 2, 2301, 67);   /* ragged IN, T > 1 */
    check_linear_rows(isa, RS_DT_BF16, 4, 4100, 9);    /* IN past the old 2048 chunks */
    check_linear_rows(isa, RS_DT_BF16, 3, 15, 5);      /* IN shorter than the lanes */
    check_linear_rows(isa, RS_DT_BF16, 1, 1, 1);
    check_linear_rows(isa, RS_DT_F16, 1, 2301, 33);
    check_linear_rows(isa, RS_DT_F16, 4, 4100, 6);
    for (int n = 1; n <= 70; n += 23) check_softmax(isa, n);
    check_softmax(isa, 512);
    check_softmax(isa, 729);
    check_rope(isa, 64, 8, 256);
    check_rope(isa, 9, 3, 10);
    op_attn_params g = {.n_heads = 8, .n_kv_heads = 4, .head_dim = 256, .q_stride = 8 * 256, .kv_stride = 4 * 256,
                        .z_stride = 8 * 256, .scale = 1.0f / 16.0f, .softcap = 50.0f, .causal = 1, .window = 0};
    check_attention(isa, &g, 64, 37, NULL, "gemma causal softcap");
    g.window = 48;
    int pre[2] = {20, 60};
    check_attention(isa, &g, 256, 100, pre, "gemma window 48 + prefix");
    g.softcap = 0, g.window = 0;
    check_attention(isa, &g, 512, 5, NULL, "gemma T=512 no cap");
    /* SigLIP so400m/224: 16 heads × 72, 729 tokens, bidirectional */
    op_attn_params v = {.n_heads = 16, .n_kv_heads = 16, .head_dim = 72, .q_stride = 1152, .kv_stride = 1152,
                        .z_stride = 1152, .scale = 1.0f / sqrtf(72.0f), .softcap = 0, .causal = 0, .window = 0};
    check_attention(isa, &v, 729, 13, NULL, "siglip");
    check_norms(isa, 729, 1152);
    check_elementwise(isa, (size_t)729 * 4304);
    check_linear_bias(isa, 729, 4, 4304);
    check_bf16(isa, (int64_t)2304 * 256 + 5);
    check_bf16(isa, (int64_t)1152 * 1152 + 11); /* above the streaming-store size */
    check_f16(isa);
    check_f16(RS_ISA_DEFAULT);
    check_resize(isa, 640, 480, 224, 224);
    check_resize(isa, 97, 301, 448, 448);
    check_resize(isa, 333, 250, 333, 120); /* vertical pass only */
    check_sae(isa, 256, 2048, 37);
    force(rs_isa_best());
}

/* rs_vexpf (tensor/vexp.h) against exp in double: every 61st float of [−104, 89] (37 million
 * values, every binade, the subnormal results included) within 1 ulp of the correctly rounded
 * value (0.966 ulp measured on all 2.24e9 floats of the range, docs/precision.md), at most
 * 1 ulp from glibc's expf, and the special values. */
static double ulps_vs(float got, double ref) {
    float rf = (float)ref;
    if (rf == 0 || isinf(rf)) return got == rf ? 0 : 1e9;
    float up = nextafterf(fabsf(rf), INFINITY) - fabsf(rf);
    return fabs((double)got - ref) / up;
}
/* f against the double function ref and the glibc float function g on every 61st float x
 * of [lo, hi]: the worst ulp errors (*worst, *worst_glibc); returns how many values. */
static long ulp_sweep(float (*f)(float), double (*ref)(double), float (*g)(float), float lo, float hi, double *worst,
                      double *worst_glibc) {
    long n = 0;
    *worst = *worst_glibc = 0;
    for (uint64_t b = 0; b <= 0xffffffffu; b += 61) {
        uint32_t u = (uint32_t)b;
        float x;
        memcpy(&x, &u, 4);
        if (!(x >= lo && x <= hi)) continue;
        float y = f(x);
        double e = ulps_vs(y, ref((double)x)), eg = ulps_vs(y, (double)g(x));
        if (e > *worst) *worst = e;
        if (eg > *worst_glibc) *worst_glibc = eg;
        n++;
    }
    return n;
}
static float vexp_fn(float x) { return rs_vexpf(x); }
static float vtanh_fn(float x) { return rs_vtanhf(x); }
static void test_vexp_accuracy(void **state) {
    (void)state;
    double worst, worst_glibc;
    long n = ulp_sweep(vexp_fn, exp, expf, -104.0f, 89.0f, &worst, &worst_glibc);
    printf("rs_vexpf: %ld values, worst %.3f ulp vs exp (double), %.3f ulp vs glibc expf\n", n, worst, worst_glibc);
    assert_true(n > 30000000);
    assert_true(worst <= 1.0);
    assert_true(worst_glibc <= 1.0);
    assert_true(isnan(rs_vexpf(NAN)));
    assert_true(rs_vexpf(INFINITY) == INFINITY && rs_vexpf(88.73f) == INFINITY && rs_vexpf(1e30f) == INFINITY);
    assert_true(rs_vexpf(-INFINITY) == 0.0f && rs_vexpf(-104.5f) == 0.0f && rs_vexpf(-1e30f) == 0.0f);
    assert_true(rs_vexpf(0.0f) == 1.0f && rs_vexpf(-0.0f) == 1.0f);
    assert_true(rs_vexpf(-103.9f) == expf(-103.9f)); /* the smallest subnormal */
    /* The GELU built on it, relative to the tanh form in double (torch's definition) where
     * |gelu| > 1e-6, and to the same float formula with glibc's expf (the kernel before): the
     * float evaluation of u dominates (2.2e-6 near x = −4.55 for both), the exp adds < 3e-7. */
    double wg = 0, wd = 0;
    for (int i = -200000; i <= 200000; i++) {
        float x = (float)i * 1e-4f, y = x;
        op_gelu_tanh(&y, 1);
        double xd = x, r = 0.5 * xd * (1.0 + tanh(0.7978845608028654 * (xd + 0.044715 * xd * xd * xd)));
        float u = 0.7978845608028654f * (x + 0.044715f * x * x * x), old = x / (1.0f + expf(-2.0f * u));
        if (fabs(r) <= 1e-6) continue;
        if (fabs(y - r) / fabs(r) > wg) wg = fabs(y - r) / fabs(r);
        if (fabs((double)y - old) / fabs(r) > wd) wd = fabs((double)y - old) / fabs(r);
    }
    printf("gelu_tanh on [-20, 20]: worst relative error %.3g vs the tanh form in double, %.3g vs the expf kernel\n",
           wg, wd);
    assert_true(wg < 3e-6);
    assert_true(wd < 3e-7);
}

/* rs_vtanhf (the fp32 attention soft-cap) against tanh in double on every 61st float, and
 * against glibc's tanhf (the function it replaced there); the special values. */
static void test_vtanh_accuracy(void **state) {
    (void)state;
    double worst, worst_glibc;
    long n = ulp_sweep(vtanh_fn, tanh, tanhf, -INFINITY, INFINITY, &worst, &worst_glibc);
    printf("rs_vtanhf: %ld values, worst %.3f ulp vs tanh (double), %.3f ulp vs glibc tanhf\n", n, worst, worst_glibc);
    assert_true(n > 70000000);
    assert_true(worst <= 1.5); /* 1.298 measured */
    assert_true(worst_glibc <= 2.5); /* glibc's tanhf is not correctly rounded either */
    assert_true(isnan(rs_vtanhf(NAN)));
    assert_true(rs_vtanhf(INFINITY) == 1.0f && rs_vtanhf(-INFINITY) == -1.0f && rs_vtanhf(1e30f) == 1.0f);
    assert_true(rs_vtanhf(0.0f) == 0.0f && !signbit(rs_vtanhf(0.0f)));
    assert_true(rs_vtanhf(-0.0f) == 0.0f && signbit(rs_vtanhf(-0.0f)));
    assert_true(rs_vtanhf(1e-30f) == 1e-30f && rs_vtanhf(-1e-40f) == -1e-40f); /* tiny and subnormal: x */
}

static void test_avx2(void **state) { (void)state; run_level(RS_ISA_AVX2); }
static void test_avx512(void **state) { (void)state; run_level(RS_ISA_AVX512); }

static void test_api(void **state) {
    (void)state;
    assert_true(rs_isa_supported(RS_ISA_DEFAULT));
    assert_int_equal(rs_isa_parse("avx2"), RS_ISA_AVX2);
    assert_int_equal(rs_isa_parse("avx512"), RS_ISA_AVX512);
    assert_int_equal(rs_isa_parse("default"), RS_ISA_DEFAULT);
    assert_int_equal(rs_isa_parse("sse9"), -1);
    assert_int_equal(rs_isa_force(RS_ISA_COUNT), -1);
    assert_int_equal(rs_isa_force(-1), -1);
    int best = rs_isa_best();
    assert_true(rs_isa_supported(best));
    assert_int_equal(rs_isa_active(), best); /* nothing forced yet: the best level */
    printf("ISA levels: best %s; avx2 %s, avx512 %s\n", rs_isa_name(best),
           rs_isa_supported(RS_ISA_AVX2) ? "yes" : "no", rs_isa_supported(RS_ISA_AVX512) ? "yes" : "no");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api),
        cmocka_unit_test(test_vexp_accuracy),
        cmocka_unit_test(test_vtanh_accuracy),
        cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_attention_fused),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed ? failed : g_skipped ? 77 : 0;
}
