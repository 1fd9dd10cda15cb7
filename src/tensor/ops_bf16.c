/* bf16 compute kernels (include/reprshift/ops_bf16.h, docs/precision.md). Each mirrors what
 * torch does on CPU for the same op on bfloat16 tensors in transformers' Gemma-2 code: the
 * arithmetic in fp32 and one round-to-nearest-even to bf16 where torch writes a bf16 tensor.
 * Products: oneDNN's bf16 matmul (bf16 × bf16 → f32) when available, else f32 sgemm on the
 * bf16 values; both accumulate in fp32 and round the output once. */
#include "reprshift/ops_bf16.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tensor/attention_impl.h"
#include "tensor/dnnl_mm.h"
#include "tensor/isa.h"
#include "tensor/norm_stats.h"

/* Elementwise loops are compiled per ISA level (tensor/isa.h; same bits at every level) and cut
 * into chunks of this many values for the OpenMP loops. */
#define EW_CHUNK 4096
#define EW_LOOP(n, call)                                                                     \
    do {                                                                                     \
        size_t nch_ = ((n) + EW_CHUNK - 1) / EW_CHUNK;                                       \
        _Pragma("omp parallel for schedule(static) if (nch_ > 16)")                          \
        for (size_t c_ = 0; c_ < nch_; c_++) {                                               \
            size_t o_ = c_ * EW_CHUNK, m_ = (n) - o_ < EW_CHUNK ? (n) - o_ : EW_CHUNK;       \
            call;                                                                            \
        }                                                                                    \
    } while (0)

RS_KERNEL_BODY void round_body(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = op_bf16_round1(x[i]);
}
RS_ISA_KERNEL(round, (float *x, size_t n), (x, n))


void op_bf16_round(float *x, size_t n) { EW_LOOP(n, RS_ISA_CALL(round)(x + o_, m_)); }

/* ---- the product path ---- */

static int route; /* OP_BF16_AUTO / _EMULATED / _NATIVE */

static int cpu_has_amx_bf16(void) {
#if defined(__x86_64__) && defined(__GNUC__) && __GNUC__ >= 11
    __builtin_cpu_init();
    return __builtin_cpu_supports("amx-bf16") != 0;
#else
    return 0;
#endif
}

static int cpu_has_bf16(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16")) return 1;
#endif
    return cpu_has_amx_bf16();
}


int op_bf16_native_supported(void) {
#ifdef RS_HAVE_DNNL
    return cpu_has_bf16();
#else
    return 0;
#endif
}

int op_bf16_set_route(int r) {
    if (r == OP_BF16_NATIVE && !op_bf16_native_supported()) return -1;
    if (r < OP_BF16_AUTO || r > OP_BF16_NATIVE) return -1;
    route = r;
    return 0;
}

int op_bf16_route_parse(const char *name) {
    return !name ? -1 : !strcmp(name, "auto") ? OP_BF16_AUTO : !strcmp(name, "emulated") ? OP_BF16_EMULATED
         : !strcmp(name, "native") ? OP_BF16_NATIVE : -1;
}

void op_bf16_force_emulated(int on) { route = on ? OP_BF16_EMULATED : OP_BF16_AUTO; }

/* Does this CPU's bf16 arithmetic outrun its fp32 FMAs? With AMX-BF16, yes. With AVX512-BF16
 * alone it depends on the core: on AMD Zen 4 vdpbf16ps does its 32 multiply-adds at the rate
 * vfmadd does 16 (112 vs 57 G multiply-adds/s on one thread) and oneDNN 2.6's bf16 matmul ran
 * at 1.9-2x OpenBLAS sgemm; on Intel cores without AMX (Xeon family 6 model 207 as a VM exposes
 * it) vdpbf16ps issues once per cycle where vfmadd issues twice, and the bf16 matmul measured
 * no faster than sgemm on the bf16 values (slower at 700 rows). bench/README.md, "bf16 compute". */
static int cpu_bf16_fast(void) {
    if (cpu_has_amx_bf16()) return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_is("amd") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

/* Automatic choice: native where the CPU's bf16 arithmetic is the faster (cpu_bf16_fast). */
static int use_native(void) {
    if (route == OP_BF16_EMULATED) return 0;
    if (route == OP_BF16_NATIVE) return op_bf16_native_supported();
    return op_bf16_native_supported() && cpu_bf16_fast();
}

const char *op_bf16_gemm_path(void) { return use_native() ? "native" : "emulated"; }

void op_bf16_describe(char *buf, size_t n) {
#ifdef RS_HAVE_DNNL
    char v[32];
    rs_dnnl_version_str(v, sizeof v);
    if (use_native())
        snprintf(buf, n, "native (%s bf16 matmul, %s%s)", v,
                 cpu_has_amx_bf16() ? "AMX-BF16"
                 : cpu_bf16_fast()  ? "AVX512-BF16, whose vdpbf16ps outruns this CPU's fp32 FMAs"
                                    : "AVX512-BF16",
                 route == OP_BF16_NATIVE ? "; forced" : "");
    else if (route == OP_BF16_EMULATED)
        snprintf(buf, n, "emulated (forced; f32 sgemm on bf16 values)");
    else if (op_bf16_native_supported())
        snprintf(buf, n, "emulated (f32 sgemm on bf16 values: this CPU has AVX512-BF16 but no AMX-BF16, and its "
                 "vdpbf16ps is no faster than its fp32 FMAs, so %s's bf16 matmul is no faster either; "
                 "RS_BF16_GEMM=native uses it)", v);
    else
        snprintf(buf, n, "emulated (f32 sgemm on bf16 values; this CPU lacks AVX512-BF16/AMX-BF16)");
#else
    snprintf(buf, n, "emulated (%sbuilt without oneDNN; f32 products on bf16 values)%s",
             route == OP_BF16_EMULATED ? "forced; " : "", cpu_has_bf16() ? "" : ", CPU lacks AVX512-BF16/AMX-BF16");
#endif
}

/* ---- linear ---- */

#ifdef RS_HAVE_DNNL
/* dst[i] = bf16 bits of W's value i (W F32/BF16/F16), in parallel chunks. */
static void weight_bf16(uint16_t *dst, const st_tensor *W) {
    const int64_t CH = 1 << 16;
    int64_t nch = (W->numel + CH - 1) / CH;
    size_t es = rs_dtype_size(W->dtype);
#pragma omp parallel for schedule(static) if (nch > 4)
    for (int64_t c = 0; c < nch; c++) {
        float buf[1024];
        int64_t n = W->numel - c * CH < CH ? W->numel - c * CH : CH;
        for (int64_t i0 = 0; i0 < n; i0 += 1024) {
            int64_t m = n - i0 < 1024 ? n - i0 : 1024;
            st_tensor v = *W;
            v.numel = m;
            v.data = (const char *)W->data + (size_t)(c * CH + i0) * es;
            st_to_f32(&v, buf);
            for (int64_t i = 0; i < m; i++) dst[c * CH + i0 + i] = op_bf16_bits(buf[i]);
        }
    }
}

#endif

/* r[o] = bf16(r[o] + bf16(bias[o])) over one row (exact integer roundings and one fp32 add: the
 * same bits at every ISA level). */
RS_KERNEL_BODY void bias_round_body(float *r, const float *bias, int n) {
    for (int o = 0; o < n; o++) r[o] = op_bf16_round1(r[o] + op_bf16_round1(bias[o]));
}
RS_ISA_KERNEL(bias_round, (float *r, const float *bias, int n), (r, bias, n))
#ifdef RS_HAVE_DNNL /* used by the native route only */
/* dst[i] = bf16 bits of src[i] */
RS_KERNEL_BODY void to_bits_body(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = op_bf16_bits(src[i]);
}
RS_ISA_KERNEL(to_bits, (uint16_t *dst, const float *src, size_t n), (dst, src, n))
#endif

static void finish_rows(float *y, const float *bias, int T, int OUT) {
    if (!bias) {
        op_bf16_round(y, (size_t)T * OUT);
        return;
    }
#pragma omp parallel for schedule(static) if ((size_t)T * OUT > 65536)
    for (int t = 0; t < T; t++) RS_ISA_CALL(bias_round)(y + (size_t)t * OUT, bias, OUT);
}

/* Without a scratch (a decode step's LM head: generate.c passes none): each weight row
 * widened a chunk at a time and dotted with every rounded input row in 16 fp32 lanes. */
static void linear_rows(float *y, const float *x, const st_tensor *W, int T, int IN, int OUT) {
    size_t es = rs_dtype_size(W->dtype);
#pragma omp parallel for schedule(static) if ((size_t)OUT * IN > 65536)
    for (int o = 0; o < OUT; o++) {
        float wb[256], xb[256];
        for (int t = 0; t < T; t++) {
            float lane[16] = {0};
            for (int i0 = 0; i0 < IN; i0 += 256) {
                int n = IN - i0 < 256 ? IN - i0 : 256;
                st_tensor r = *W;
                r.numel = n;
                r.data = (const char *)W->data + ((size_t)o * IN + i0) * es;
                st_to_f32(&r, wb);
                for (int i = 0; i < n; i++) {
                    wb[i] = op_bf16_round1(wb[i]);
                    xb[i] = op_bf16_round1(x[(size_t)t * IN + i0 + i]);
                }
                for (int i = 0; i < n; i++) lane[i % 16] += xb[i] * wb[i];
            }
            double sum = 0;
            for (int k = 0; k < 16; k++) sum += lane[k];
            y[(size_t)t * OUT + o] = (float)sum;
        }
    }
}

void op_linear_bf16(float *y, const float *x, const st_tensor *W, const float *bias, int T, int IN, int OUT,
                    float *scratch) {
    if (T <= 0) return;
    size_t nx = (size_t)T * IN;
    if (!scratch) {
        linear_rows(y, x, W, T, IN, OUT);
        finish_rows(y, bias, T, OUT);
        return;
    }
#ifdef RS_HAVE_DNNL
    if (use_native()) {
        /* scratch: [x as bf16: T·IN halves][W as bf16 when not stored so: numel halves] */
        uint16_t *xb = (uint16_t *)scratch;
        const uint16_t *wb;
        if (W->dtype == RS_DT_BF16 && ((uintptr_t)W->data % 2) == 0) wb = W->data;
        else {
            uint16_t *wc = xb + nx + (nx & 1);
            weight_bf16(wc, W);
            wb = wc;
        }
        EW_LOOP(nx, RS_ISA_CALL(to_bits)(xb + o_, x + o_, m_));
        if (rs_dnnl_matmul(y, OUT, xb, wb, NULL, T, IN, OUT, 1) == 0) {
            finish_rows(y, bias, T, OUT);
            return;
        }
    }
#endif
    /* emulated: the bf16 values as f32 (exact), f32 products (exact) summed in fp32 */
    float *xf = scratch, *wf = scratch + nx;
    const float *wsrc = op_weight_f32(W, wf);
    if (W->dtype != RS_DT_BF16) {
        if (wsrc != wf) {
            memcpy(wf, wsrc, (size_t)W->numel * sizeof(float));
            wsrc = wf;
        }
        op_bf16_round(wf, (size_t)W->numel);
    }
#pragma omp parallel for schedule(static) if (nx > 65536)
    for (size_t i = 0; i < nx; i++) xf[i] = op_bf16_round1(x[i]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OUT, IN, 1.0f, xf, IN, wsrc, IN, 0.0f, y, OUT);
    finish_rows(y, bias, T, OUT);
}

/* ---- elementwise and per-row ---- */

RS_KERNEL_BODY void rmsnorm_row_body(float *yr, const float *xr, const float *w, float eps, int D) {
    float r = rs_rms_inv(xr, D, eps);
    if (w)
        for (int d = 0; d < D; d++) yr[d] = op_bf16_round1((xr[d] * r) * (1.0f + op_bf16_round1(w[d])));
    else
        for (int d = 0; d < D; d++) yr[d] = op_bf16_round1(xr[d] * r);
}
RS_ISA_KERNEL(rmsnorm_row, (float *yr, const float *xr, const float *w, float eps, int D), (yr, xr, w, eps, D))

void op_rmsnorm_gemma_bf16(float *y, const float *x, const float *w, float eps, int T, int D) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) RS_ISA_CALL(rmsnorm_row)(y + (size_t)t * D, x + (size_t)t * D, w, eps, D);
}

#define ROPE_MAX_HALF 512
void op_rope_seqs_bf16(float *x, int stride, int n_heads, int head_dim, const int64_t *offsets, int n_seqs,
                       int pos_offset, const float *inv_freq) {
    int half = head_dim / 2;
    if (half > ROPE_MAX_HALF) return; /* no such model; the loaders cap head_dim */
#pragma omp parallel for schedule(dynamic, 1) if (n_seqs > 1)
    for (int s = 0; s < n_seqs; s++) {
        float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
        for (int64_t i = offsets[s]; i < offsets[s + 1]; i++) {
            int pos = (int)(i - offsets[s]) + pos_offset;
            for (int k = 0; k < half; k++) { /* fp32 angle and cos/sin, then cast to bf16 */
                float ang = inv_freq[k] * (float)pos;
                cs[k] = op_bf16_round1(cosf(ang));
                sn[k] = op_bf16_round1(sinf(ang));
            }
            for (int h = 0; h < n_heads; h++) {
                float *v = x + (size_t)i * stride + (size_t)h * head_dim;
                for (int k = 0; k < half; k++) {
                    float a = v[k], b = v[k + half];
                    /* q·cos + rotate_half(q)·sin, rotate_half(q) = (−b, a) */
                    v[k] = op_bf16_round1(op_bf16_round1(a * cs[k]) + op_bf16_round1(-b * sn[k]));
                    v[k + half] = op_bf16_round1(op_bf16_round1(b * cs[k]) + op_bf16_round1(a * sn[k]));
                }
            }
        }
    }
}

void op_softmax_bf16(float *x, int n) {
    op_softmax(x, n);
    for (int i = 0; i < n; i++) x[i] = op_bf16_round1(x[i]);
}

/* The rows of scores in a bf16 run: rs_attn_rows_bf16 (ops.c), blocks of 8 rows whose softmax
 * sums run side by side, each row's operations those of the per-row loop it replaced (bf16(QKᵀ),
 * bf16(·scaling), the soft-cap's roundings, the fp32 softmax of the kept range, the others 0,
 * each probability rounded); tests/test_ops_isa.c checks the bits against that loop. */

/* The attention output, rounded to bf16 (torch's bf16 matmul writes a bf16 tensor). */
static void round_head_bf16(float *Zh, int Lq, int hd, int z_stride) {
    for (int r = 0; r < Lq; r++)
        for (int d = 0; d < hd; d++) Zh[(size_t)r * z_stride + d] = op_bf16_round1(Zh[(size_t)r * z_stride + d]);
}

void op_attention_kv_bf16(float *Z, const float *Q, const int64_t *q_offsets, const float *K, const float *V,
                          const int64_t *kv_start, const int *kv_len, int n_seqs, const int *prefix,
                          const op_attn_params *p, float *scores, size_t scores_per_thread) {
    rs_attention_kv_loop(Z, Q, q_offsets, K, V, kv_start, kv_len, n_seqs, prefix, p, scores, scores_per_thread,
                         rs_attn_rows_bf16, round_head_bf16, 0);
}

void op_attention_bf16(float *Z, const float *Q, const float *K, const float *V, const int64_t *offsets, int n_seqs,
                       const int *prefix, const op_attn_params *p, float *scores, size_t scores_per_thread) {
    op_attention_kv_bf16(Z, Q, offsets, K, V, offsets, NULL, n_seqs, prefix, p, scores, scores_per_thread);
}

/* torch's tanh-approximate GELU, 0.5·x·(1 + tanh(u)) in fp32, rounded to bf16 by the caller.
 * For x > −2.5 the same function as x/(1 + exp(−2u)), which is 4× cheaper here (glibc's expf
 * against its tanhf) and gives the same bf16 result as torch for every bf16 input in that range
 * (checked exhaustively against torch, test_bf16 test_gelu_vs_torch). Below, 1 + tanh(u)
 * cancels, and torch's result is that cancellation's: the tanh form is kept there. */
static inline float gelu_tanh_torch(float x) {
    const float kBeta = 0.7978845608028654f, kKappa = 0.044715f;
    float inner = kBeta * (x + kKappa * x * x * x);
    if (x > -2.5f) return x / (1.0f + expf(-2.0f * inner));
    return 0.5f * x * (1.0f + tanhf(inner));
}

/* bf16(gelu(x)) for every bf16 x, indexed by x's 16 bits: in a bf16 run the GELU's input is a
 * bf16 value (the output of a bf16 product), so its result is a function of 16 bits. The table
 * is built once from gelu_tanh_torch itself (fp-contract off, libm's expf/tanhf: the same bits
 * at every ISA level), so a lookup gives exactly the bits the computation gives; an input with
 * other low bits (not a bf16 value) is computed. The entries are the bf16 results as floats
 * (256 KB, in L2), and a block of bf16 values is looked up without a test per value (the
 * lookups stay scalar: GCC 12's generic tuning emits no gathers); ~2 ms to build, on first use. */
static float g_gelu_tab[65536];
static pthread_once_t g_gelu_once = PTHREAD_ONCE_INIT;
static void gelu_tab_init(void) {
    for (uint32_t b = 0; b < 65536; b++) g_gelu_tab[b] = op_bf16_round1(gelu_tanh_torch(op_bf16_float((uint16_t)b)));
}
static inline float gelu_bf16_one(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if (u & 0xFFFFu) return op_bf16_round1(gelu_tanh_torch(x));
    return g_gelu_tab[u >> 16];
}
/* 1 when every value of x[0, n) is a bf16 value (low 16 bits zero): the branch-free lookup
 * loops below apply; otherwise the per-value loop (a value with low bits is computed). */
static inline __attribute__((always_inline)) int all_bf16(const float *x, size_t n) {
    uint32_t low = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        low |= u;
    }
    return (low & 0xFFFFu) == 0;
}
RS_KERNEL_BODY void gelu_body(float *x, size_t n) {
    if (all_bf16(x, n))
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, x + i, sizeof u);
            x[i] = g_gelu_tab[u >> 16];
        }
    else
        for (size_t i = 0; i < n; i++) x[i] = gelu_bf16_one(x[i]);
}
RS_ISA_KERNEL(gelu, (float *x, size_t n), (x, n))
RS_KERNEL_BODY void geglu_body(float *gate, const float *up, size_t n) {
    if (all_bf16(gate, n))
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, gate + i, sizeof u);
            gate[i] = op_bf16_round1(g_gelu_tab[u >> 16] * up[i]);
        }
    else
        for (size_t i = 0; i < n; i++) gate[i] = op_bf16_round1(gelu_bf16_one(gate[i]) * up[i]);
}
RS_ISA_KERNEL(geglu, (float *gate, const float *up, size_t n), (gate, up, n))
RS_KERNEL_BODY void add_body(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = op_bf16_round1(dst[i] + src[i]);
}
RS_ISA_KERNEL(add, (float *dst, const float *src, size_t n), (dst, src, n))

void op_gelu_tanh_bf16(float *x, size_t n) {
    pthread_once(&g_gelu_once, gelu_tab_init);
    EW_LOOP(n, RS_ISA_CALL(gelu)(x + o_, m_));
}

void op_geglu_bf16(float *gate, const float *up, size_t n) {
    pthread_once(&g_gelu_once, gelu_tab_init);
    EW_LOOP(n, RS_ISA_CALL(geglu)(gate + o_, up + o_, m_));
}

void op_add_bf16(float *dst, const float *src, size_t n) { EW_LOOP(n, RS_ISA_CALL(add)(dst + o_, src + o_, m_)); }

void op_embed_rows_bf16(float *y, const st_tensor *E, const int32_t *ids, const uint8_t *keep, int T, int D,
                        float scale) {
    float sc = op_bf16_round1(scale); /* embed_scale.to(weight.dtype) */
#pragma omp parallel for schedule(static) if (T > 16)
    for (int i = 0; i < T; i++) {
        float *row = y + (size_t)i * D;
        if (!keep || !keep[i]) {
            op_embed_gather(row, E, ids[i], D);
            for (int d = 0; d < D; d++) row[d] = op_bf16_round1(op_bf16_round1(row[d]) * sc);
        } else /* a row given as embedding/scale (an image row z/√D): z itself, rounded once */
            for (int d = 0; d < D; d++) row[d] = op_bf16_round1(row[d] * scale);
    }
}

void op_gemm_nt_bf16(float *y, int ldy, const float *x, const float *W, int T, int IN, int OUT) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OUT, IN, 1.0f, x, IN, W, IN, 0.0f, y, ldy);
#pragma omp parallel for schedule(static) if ((size_t)T * OUT > 65536)
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OUT; o++) y[(size_t)t * ldy + o] = op_bf16_round1(y[(size_t)t * ldy + o]);
}

void op_softcap_bf16(float *x, size_t n, float cap) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        x[i] = op_bf16_round1(op_bf16_round1(tanhf(op_bf16_round1(x[i] / cap))) * cap);
}

/* ---- the SigLIP vision tower in bf16 ---- */

/* nn.LayerNorm on a bf16 tensor: statistics and the affine map in fp32 with the bf16 weight
 * and bias, rounded once (the statistics as op_layernorm computes them). */
void op_layernorm_bf16(float *y, const float *x, const float *gamma, const float *beta, float eps, int T, int D) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * D;
        float *yr = y + (size_t)t * D;
        float m, r;
        rs_layernorm_stats(xr, D, eps, &m, &r);
        for (int d = 0; d < D; d++)
            yr[d] = op_bf16_round1((xr[d] - m) * r * op_bf16_round1(gamma[d]) + op_bf16_round1(beta[d]));
    }
}

/* h[t] = bf16(h[t] + bf16(table[t mod N])): the position-embedding add of a bf16 run. */
void op_add_periodic_bf16(float *h, const float *table, int T, int N, int D) {
#pragma omp parallel for schedule(static) if (T > 64)
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++)
            h[(size_t)t * D + d] = op_bf16_round1(h[(size_t)t * D + d] + op_bf16_round1(table[(size_t)(t % N) * D + d]));
}
