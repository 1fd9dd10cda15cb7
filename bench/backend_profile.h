/* A per-entry profile of a forward pass: a backend whose every entry calls the wrapped
 * backend's (same kernels, same outputs) and adds the call's wall time to that entry. Used by
 * bench_gemma2 --profile and bench_paligemma --profile; header-only, include it in one file
 * of a program, after sgemm_timed.h: the sgemm time inside the linear entry (lin_s's growth
 * during its calls) splits "linear" into its sgemm and the rest, the bf16/f16 -> f32 weight
 * widening (plus the bias add).
 *
 *   prof_attach(backend) returns the profiling backend to install in the model;
 *   prof_reset() zeroes the counters (call it before the measured repetition);
 *   prof_print_json(total_s, sgemm_s) prints one JSON object: per entry seconds, calls and
 *   share of total_s, plus "untimed" (the model's own loops: hooks, copies, packing). The
 *   linear_gelu entry (SigLIP's fc1) is split the same way: its sgemm counts in linear_sgemm_s,
 *   the rest (widening, the bias and the GELU in one pass) is linear_gelu_rest_s. */
#ifndef BENCH_BACKEND_PROFILE_H
#define BENCH_BACKEND_PROFILE_H
#ifndef BENCH_SGEMM_TIMED_H
#error "include sgemm_timed.h before backend_profile.h"
#endif
#include <stdio.h>
#include "reprshift/backend.h"
#include "reprshift/progress.h"

enum {
    PF_LINEAR, PF_RMSNORM, PF_LAYERNORM, PF_ROPE, PF_ATTN, PF_ATTN_KV, PF_LINEAR_DECODE, PF_SOFTMAX, PF_GELU, PF_GEGLU,
    PF_ADD, PF_EMBED, PF_GEMM_NT, PF_SOFTCAP, PF_IM2COL, PF_ADD_PERIODIC, PF_LINEAR_GELU, PF_ADD_LN, PF_N
};
static const char *const PF_NAMES[PF_N] = {"linear",  "rms_norm", "layer_norm", "rope",    "attention",
                                           "attention_kv", "linear_decode", "softmax", "gelu", "geglu",
                                           "add",     "embed",    "gemm_nt",    "softcap", "im2col",
                                           "add_periodic", "linear_gelu", "add_layer_norm"};
static double pf_s[PF_N], pf_lin_sgemm_s, pf_lg_sgemm_s; /* the sgemm time inside linear, linear_gelu */
static long pf_n[PF_N];
static const rs_backend *pf_inner;
static rs_backend pf_be;

#define PF_TIMED(slot, call)                                                                                       \
    do {                                                                                                           \
        double t0_ = rs_now();                                                                                     \
        call;                                                                                                      \
        pf_s[slot] += rs_now() - t0_, pf_n[slot]++;                                                                \
    } while (0)

static void pf_linear(float *y, const float *x, const st_tensor *W, const float *b, int T, int IN, int OUT, float *s) {
    double l0 = lin_s;
    PF_TIMED(PF_LINEAR, pf_inner->linear(y, x, W, b, T, IN, OUT, s));
    pf_lin_sgemm_s += lin_s - l0;
}
static void pf_linear_gelu(float *y, const float *x, const st_tensor *W, const float *b, int T, int IN, int OUT,
                           float *s) {
    double l0 = lin_s;
    PF_TIMED(PF_LINEAR_GELU, pf_inner->linear_gelu(y, x, W, b, T, IN, OUT, s));
    pf_lg_sgemm_s += lin_s - l0;
}
static void pf_add_ln(float *h, const float *a, float *y, const float *g, const float *b, float eps, int T, int D) {
    PF_TIMED(PF_ADD_LN, pf_inner->add_layer_norm(h, a, y, g, b, eps, T, D));
}
static void pf_rms(float *y, const float *x, const float *w, float eps, int T, int D) {
    PF_TIMED(PF_RMSNORM, pf_inner->rms_norm(y, x, w, eps, T, D));
}
static void pf_ln(float *y, const float *x, const float *g, const float *b, float eps, int T, int D) {
    PF_TIMED(PF_LAYERNORM, pf_inner->layer_norm(y, x, g, b, eps, T, D));
}
static void pf_rope(float *x, int st, int nh, int hd, const int64_t *off, int ns, int po, const float *inv) {
    PF_TIMED(PF_ROPE, pf_inner->rope(x, st, nh, hd, off, ns, po, inv));
}
static void pf_attn(float *Z, const float *Q, const float *K, const float *V, const int64_t *off, int ns,
                    const int *pre, const op_attn_params *p, float *sc, size_t spt) {
    PF_TIMED(PF_ATTN, pf_inner->attention(Z, Q, K, V, off, ns, pre, p, sc, spt));
}
static void pf_attn_kv(float *Z, const float *Q, const int64_t *qo, const float *K, const float *V, const int64_t *ks,
                       const int *kl, int ns, const int *pre, const op_attn_params *p, float *sc, size_t spt) {
    PF_TIMED(PF_ATTN_KV, pf_inner->attention_kv(Z, Q, qo, K, V, ks, kl, ns, pre, p, sc, spt));
}
static void pf_lin_dec(float *y, const float *x, const st_tensor *W, float *s, int T, int IN, int OUT) {
    PF_TIMED(PF_LINEAR_DECODE, pf_inner->linear_decode(y, x, W, s, T, IN, OUT));
}
static void pf_softmax(float *x, int n) { PF_TIMED(PF_SOFTMAX, pf_inner->softmax(x, n)); }
static void pf_gelu(float *x, size_t n) { PF_TIMED(PF_GELU, pf_inner->gelu(x, n)); }
static void pf_geglu(float *g, const float *u, size_t n) { PF_TIMED(PF_GEGLU, pf_inner->geglu(g, u, n)); }
static void pf_add(float *d, const float *s, size_t n) { PF_TIMED(PF_ADD, pf_inner->add(d, s, n)); }
static void pf_embed(float *y, const st_tensor *E, const int32_t *ids, const uint8_t *keep, int T, int D, float sc) {
    PF_TIMED(PF_EMBED, pf_inner->embed(y, E, ids, keep, T, D, sc));
}
static void pf_gemm_nt(float *y, int ldy, const float *x, const float *W, int T, int IN, int OUT) {
    PF_TIMED(PF_GEMM_NT, pf_inner->gemm_nt(y, ldy, x, W, T, IN, OUT));
}
static void pf_softcap(float *x, size_t n, float cap) { PF_TIMED(PF_SOFTCAP, pf_inner->softcap(x, n, cap)); }
static void pf_im2col(float *x, const float *px, int ni, int C, int S, int P) {
    PF_TIMED(PF_IM2COL, pf_inner->im2col(x, px, ni, C, S, P));
}
static void pf_add_periodic(float *h, const float *t, int T, int N, int D) {
    PF_TIMED(PF_ADD_PERIODIC, pf_inner->add_periodic(h, t, T, N, D));
}

static const rs_backend *prof_attach(const rs_backend *inner) {
    pf_inner = inner;
    pf_be = *inner;
    pf_be.name = "profile";
    pf_be.linear = pf_linear, pf_be.linear_gelu = pf_linear_gelu, pf_be.add_layer_norm = pf_add_ln;
    pf_be.rms_norm = pf_rms, pf_be.layer_norm = pf_ln, pf_be.rope = pf_rope;
    pf_be.attention = pf_attn, pf_be.attention_kv = pf_attn_kv, pf_be.linear_decode = pf_lin_dec;
    pf_be.softmax = pf_softmax, pf_be.gelu = pf_gelu, pf_be.geglu = pf_geglu, pf_be.add = pf_add;
    pf_be.embed = pf_embed, pf_be.gemm_nt = pf_gemm_nt, pf_be.softcap = pf_softcap, pf_be.im2col = pf_im2col;
    pf_be.add_periodic = pf_add_periodic;
    return &pf_be;
}

static void prof_reset(void) {
    for (int i = 0; i < PF_N; i++) pf_s[i] = 0, pf_n[i] = 0;
    pf_lin_sgemm_s = pf_lg_sgemm_s = 0;
}

static void prof_print_json(double total_s) {
    double sgemm_s = pf_lin_sgemm_s;
    double sum = 0;
    printf("{\"profile\": {\"total_s\": %.3f, \"entries\": {", total_s);
    int first = 1;
    for (int i = 0; i < PF_N; i++) {
        sum += pf_s[i];
        if (!pf_n[i]) continue;
        printf("%s\"%s\": {\"s\": %.4f, \"calls\": %ld, \"share\": %.4f}", first ? "" : ", ", PF_NAMES[i], pf_s[i],
               pf_n[i], total_s > 0 ? pf_s[i] / total_s : 0.0);
        first = 0;
    }
    double widen = pf_s[PF_LINEAR] - sgemm_s, lg_rest = pf_s[PF_LINEAR_GELU] - pf_lg_sgemm_s;
    sgemm_s += pf_lg_sgemm_s;
#define PF_SHARE(v) (total_s > 0 ? (v) / total_s : 0.0)
    printf("}, \"linear_sgemm_s\": %.3f, \"linear_sgemm_share\": %.4f, \"linear_widen_bias_s\": %.3f, "
           "\"linear_widen_bias_share\": %.4f, \"linear_gelu_rest_s\": %.3f, \"linear_gelu_rest_share\": %.4f, "
           "\"untimed_s\": %.3f, \"untimed_share\": %.4f}}\n",
           sgemm_s, PF_SHARE(sgemm_s), widen, PF_SHARE(widen), lg_rest, PF_SHARE(lg_rest), total_s - sum,
           PF_SHARE(total_s - sum));
#undef PF_SHARE
}
#endif
