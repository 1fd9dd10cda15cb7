/* The kernel seam (backend.h). (1) Each entry of the CPU backend gives exactly (bit for bit)
 * what the op_* kernel it names gives on random inputs (linear on f32 and bf16 weights,
 * RoPE over packed sequences against op_rope per head). (2) The models reach every kernel
 * through the table: a backend whose entries count their calls and delegate to the CPU
 * ones gives a bit-identical forward with the expected number of calls per kernel, and a
 * backend with one kernel replaced changes the output (Gemma-2, SigLIP, the PaliGemma
 * projector). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/backend.h"
#include "reprshift/gemma2.h"
#include "reprshift/generate.h"
#include "reprshift/paligemma.h"

static unsigned g_seed = 12345;
static float frand(void) {
    g_seed = g_seed * 1103515245u + 12345u;
    return (float)((g_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}
static float *rnd(size_t n) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = frand();
    return x;
}
static float *dup(const float *x, size_t n) {
    float *y = malloc(n * sizeof *y);
    assert_non_null(y);
    memcpy(y, x, n * sizeof *y);
    return y;
}
#define SAME(a, b, n) assert_memory_equal(a, b, (n) * sizeof(float))

static void test_cpu_entries_are_the_ops(void **state) {
    (void)state;
    const rs_backend *be = rs_backend_cpu();
    assert_string_equal(be->name, "cpu");
    enum { T = 7, IN = 12, OUT = 5 };
    float *x = rnd(T * IN), *W = rnd(OUT * IN), *bias = rnd(OUT), *scratch = rnd(OUT * IN);
    float y1[T * OUT], y2[T * OUT];
    /* linear, f32 weight (used in place) */
    st_tensor tw = {.name = "w", .dtype = RS_DT_F32, .ndim = 2, .shape = {OUT, IN}, .numel = OUT * IN, .data = W,
                    .nbytes = sizeof(float) * OUT * IN};
    be->linear(y1, x, &tw, bias, T, IN, OUT, scratch);
    op_linear(y2, x, W, bias, T, IN, OUT);
    SAME(y1, y2, T * OUT);
    /* linear, bf16 weight (widened into scratch) */
    uint16_t Wb[OUT * IN];
    float Wbf[OUT * IN];
    for (int i = 0; i < OUT * IN; i++) Wbf[i] = rs_bf16_to_f32(Wb[i] = rs_f32_to_bf16(W[i]));
    st_tensor tb = tw;
    tb.dtype = RS_DT_BF16;
    tb.data = Wb;
    tb.nbytes = sizeof Wb;
    be->linear(y1, x, &tb, NULL, T, IN, OUT, scratch);
    op_linear(y2, x, Wbf, NULL, T, IN, OUT);
    SAME(y1, y2, T * OUT);
    SAME(scratch, Wbf, OUT * IN);
    /* linear_gelu: linear then gelu, bit for bit, with and without the bias, f32 and bf16 weights */
    for (int wb = 0; wb < 2; wb++)
        for (int nb = 0; nb < 2; nb++) {
            be->linear_gelu(y1, x, wb ? &tb : &tw, nb ? NULL : bias, T, IN, OUT, scratch);
            op_linear(y2, x, wb ? Wbf : W, nb ? NULL : bias, T, IN, OUT);
            op_gelu_tanh(y2, T * OUT);
            SAME(y1, y2, T * OUT);
            op_linear_gelu(y1, x, wb ? Wbf : W, nb ? NULL : bias, T, IN, OUT);
            SAME(y1, y2, T * OUT);
        }

    /* norms */
    enum { D = 16 };
    float *h = rnd(T * D), *g = rnd(D), *bb = rnd(D), a1[T * D], a2[T * D];
    be->rms_norm(a1, h, g, 1e-6f, T, D);
    op_rmsnorm_gemma(a2, h, g, 1e-6f, T, D);
    SAME(a1, a2, T * D);
    be->rms_norm(a1, h, NULL, 1e-6f, T, D);
    op_rmsnorm_gemma(a2, h, NULL, 1e-6f, T, D);
    SAME(a1, a2, T * D);
    be->layer_norm(a1, h, g, bb, 1e-6f, T, D);
    op_layernorm(a2, h, g, bb, 1e-6f, T, D);
    SAME(a1, a2, T * D);
    /* add_layer_norm = add, then layer_norm, bit for bit */
    {
        float *hs1 = dup(h, T * D), *hs2 = dup(h, T * D), *ad = rnd(T * D);
        be->add_layer_norm(hs1, ad, a1, g, bb, 1e-6f, T, D);
        op_add(hs2, ad, T * D);
        op_layernorm(a2, hs2, g, bb, 1e-6f, T, D);
        SAME(hs1, hs2, T * D);
        SAME(a1, a2, T * D);
        free(hs1), free(hs2), free(ad);
    }

    /* elementwise */
    float *e1 = dup(h, T * D), *e2 = dup(h, T * D);
    be->gelu(e1, T * D);
    op_gelu_tanh(e2, T * D);
    SAME(e1, e2, T * D);
    be->geglu(e1, h, T * D);
    op_geglu(e2, h, T * D);
    SAME(e1, e2, T * D);
    be->add(e1, h, T * D);
    op_add(e2, h, T * D);
    SAME(e1, e2, T * D);
    be->softmax(e1, D);
    op_softmax(e2, D);
    SAME(e1, e2, D);

    /* RoPE over two packed sequences (rows 0..2, 3..6) at offset 1, vs op_rope per head */
    enum { H = 2, HD = 8, ST = H * HD };
    int64_t off[3] = {0, 3, 7};
    float inv[HD / 2];
    op_rope_inv_freq(inv, HD, 10000.0);
    float *r1 = rnd(T * ST), *r2 = dup(r1, T * ST);
    be->rope(r1, ST, H, HD, off, 2, 1, inv);
    for (int s = 0; s < 2; s++)
        for (int64_t i = off[s]; i < off[s + 1]; i++)
            for (int hh = 0; hh < H; hh++) op_rope(r2 + i * ST + hh * HD, HD, inv, (int)(i - off[s]) + 1);
    SAME(r1, r2, T * ST);

    /* attention: causal, grouped heads, softcap, prefix block */
    float *Q = rnd(T * ST), *K = rnd(T * HD), *V = rnd(T * HD), z1[T * ST], z2[T * ST];
    int prefix[2] = {2, 0};
    op_attn_params p = {.n_heads = H, .n_kv_heads = 1, .head_dim = HD, .q_stride = ST, .kv_stride = HD,
                        .z_stride = ST, .scale = 0.3f, .softcap = 5.0f, .causal = 1, .window = 3};
    size_t spt = 16;
    float *sc = malloc(spt * 64 * sizeof(float));
    assert_non_null(sc);
    be->attention(z1, Q, K, V, off, 2, prefix, &p, sc, spt);
    op_attention(z2, Q, K, V, off, 2, prefix, &p, sc, spt);
    SAME(z1, z2, T * ST);

    free(x); free(W); free(bias); free(scratch); free(h); free(g); free(bb); free(e1); free(e2);
    free(r1); free(r2); free(Q); free(K); free(V); free(sc);
}

/* ---- a backend that counts its calls and delegates to the CPU one ---- */

enum {
    K_LINEAR, K_RMS, K_LN, K_ROPE, K_ATTN, K_SOFTMAX, K_GELU, K_GEGLU, K_ADD, K_EMBED, K_GEMM, K_SOFTCAP, K_IM2COL,
    K_ADDP, K_ATTN_KV, K_LIN_DEC, K_LIN_GELU, K_ADD_LN, K_N
};
static int g_calls[K_N];
static int g_zero_geglu, g_zero_gelu;

static void c_linear(float *y, const float *x, const st_tensor *W, const float *b, int T, int IN, int OUT, float *s) {
    g_calls[K_LINEAR]++;
    rs_backend_cpu()->linear(y, x, W, b, T, IN, OUT, s);
}
static void c_linear_gelu(float *y, const float *x, const st_tensor *W, const float *b, int T, int IN, int OUT,
                          float *s) {
    g_calls[K_LIN_GELU]++;
    if (g_zero_gelu) memset(y, 0, (size_t)T * OUT * sizeof *y);
    else rs_backend_cpu()->linear_gelu(y, x, W, b, T, IN, OUT, s);
}
static void c_add_ln(float *h, const float *a, float *y, const float *g, const float *b, float eps, int T, int D) {
    g_calls[K_ADD_LN]++;
    rs_backend_cpu()->add_layer_norm(h, a, y, g, b, eps, T, D);
}
static void c_rms(float *y, const float *x, const float *w, float eps, int T, int D) {
    g_calls[K_RMS]++;
    rs_backend_cpu()->rms_norm(y, x, w, eps, T, D);
}
static void c_ln(float *y, const float *x, const float *g, const float *b, float eps, int T, int D) {
    g_calls[K_LN]++;
    rs_backend_cpu()->layer_norm(y, x, g, b, eps, T, D);
}
static void c_rope(float *x, int stride, int nh, int hd, const int64_t *off, int ns, int po, const float *inv) {
    g_calls[K_ROPE]++;
    rs_backend_cpu()->rope(x, stride, nh, hd, off, ns, po, inv);
}
static void c_attn(float *Z, const float *Q, const float *K, const float *V, const int64_t *off, int ns, const int *pre,
                   const op_attn_params *p, float *sc, size_t spt) {
    g_calls[K_ATTN]++;
    rs_backend_cpu()->attention(Z, Q, K, V, off, ns, pre, p, sc, spt);
}
static void c_softmax(float *x, int n) {
    g_calls[K_SOFTMAX]++;
    rs_backend_cpu()->softmax(x, n);
}
static void c_gelu(float *x, size_t n) {
    g_calls[K_GELU]++;
    if (g_zero_gelu) memset(x, 0, n * sizeof *x);
    else rs_backend_cpu()->gelu(x, n);
}
static void c_geglu(float *gate, const float *up, size_t n) {
    g_calls[K_GEGLU]++;
    if (g_zero_geglu) memset(gate, 0, n * sizeof *gate);
    else rs_backend_cpu()->geglu(gate, up, n);
}
static void c_add(float *d, const float *s, size_t n) {
    g_calls[K_ADD]++;
    rs_backend_cpu()->add(d, s, n);
}
static void c_embed(float *y, const st_tensor *E, const int32_t *ids, const uint8_t *keep, int T, int D, float sc) {
    g_calls[K_EMBED]++;
    rs_backend_cpu()->embed(y, E, ids, keep, T, D, sc);
}
static void c_gemm(float *y, int ldy, const float *x, const float *W, int T, int IN, int OUT) {
    g_calls[K_GEMM]++;
    rs_backend_cpu()->gemm_nt(y, ldy, x, W, T, IN, OUT);
}
static void c_softcap(float *x, size_t n, float cap) {
    g_calls[K_SOFTCAP]++;
    rs_backend_cpu()->softcap(x, n, cap);
}
static void c_im2col(float *x, const float *px, int n, int C, int S, int P) {
    g_calls[K_IM2COL]++;
    rs_backend_cpu()->im2col(x, px, n, C, S, P);
}
static void c_addp(float *h, const float *tab, int T, int N, int D) {
    g_calls[K_ADDP]++;
    rs_backend_cpu()->add_periodic(h, tab, T, N, D);
}
static void c_attn_kv(float *Z, const float *Q, const int64_t *qo, const float *K, const float *V, const int64_t *ks,
                      const int *kl, int ns, const int *pre, const op_attn_params *p, float *sc, size_t spt) {
    g_calls[K_ATTN_KV]++;
    rs_backend_cpu()->attention_kv(Z, Q, qo, K, V, ks, kl, ns, pre, p, sc, spt);
}
static void c_lin_dec(float *y, const float *x, const st_tensor *W, float *s, int T, int IN, int OUT) {
    g_calls[K_LIN_DEC]++;
    rs_backend_cpu()->linear_decode(y, x, W, s, T, IN, OUT);
}
static const rs_backend COUNTING = {
    .name = "counting", .linear = c_linear, .linear_gelu = c_linear_gelu, .add_layer_norm = c_add_ln,
    .rms_norm = c_rms, .layer_norm = c_ln, .rope = c_rope,
    .attention = c_attn, .attention_kv = c_attn_kv, .linear_decode = c_lin_dec, .softmax = c_softmax,
    .gelu = c_gelu,     .geglu = c_geglu,     .add = c_add,               .embed = c_embed,     .gemm_nt = c_gemm,
    .softcap = c_softcap, .im2col = c_im2col, .add_periodic = c_addp,
};

static void run_gemma2(gemma2_model *m, float *out) {
    int32_t ids[7] = {2, 651, 432, 9, 2, 17, 300};
    int64_t off[3] = {0, 4, 7};
    gemma2_batch b = {.n_seqs = 2, .ids = ids, .offsets = off};
    rs_err err = {0};
    if (gemma2_forward(m, &b, NULL, 0, out, &err)) fail_msg("%s", err.msg);
}

static void test_gemma2_goes_through_the_table(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    if (gemma2_open(&m, "examples/quickstart/models/gemma2-tiny", &err)) fail_msg("%s", err.msg);
    assert_ptr_equal(m->be, rs_backend_cpu());
    int L = m->cfg.n_layers, D = m->cfg.hidden_size;
    float *ref = calloc((size_t)7 * D, sizeof(float)), *got = calloc((size_t)7 * D, sizeof(float));
    assert_true(ref && got);
    run_gemma2(m, ref);
    memset(g_calls, 0, sizeof g_calls);
    m->be = &COUNTING;
    run_gemma2(m, got);
    SAME(ref, got, (size_t)7 * D);
    assert_int_equal(g_calls[K_LINEAR], 7 * L);
    assert_int_equal(g_calls[K_RMS], 4 * L + 2);
    assert_int_equal(g_calls[K_ROPE], 2 * L);
    assert_int_equal(g_calls[K_ATTN], L);
    assert_int_equal(g_calls[K_GEGLU], L);
    assert_int_equal(g_calls[K_ADD], 2 * L);
    assert_int_equal(g_calls[K_EMBED], 1);
    assert_int_equal(g_calls[K_LN] + g_calls[K_GELU] + g_calls[K_LIN_GELU] + g_calls[K_ADD_LN] + g_calls[K_GEMM] +
                         g_calls[K_SOFTCAP],
                     0);
    /* the LM head: one product per 4096-row block of the tied embedding, then the soft-cap */
    int V = m->cfg.vocab_size;
    float *l1 = malloc((size_t)7 * V * sizeof(float)), *l2 = malloc((size_t)7 * V * sizeof(float));
    assert_true(l1 && l2);
    memset(g_calls, 0, sizeof g_calls);
    if (gemma2_logits(m, ref, 7, l2, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g_calls[K_GEMM], (V + 4095) / 4096);
    assert_int_equal(g_calls[K_SOFTCAP], m->cfg.final_softcap > 0);
    m->be = rs_backend_cpu();
    if (gemma2_logits(m, ref, 7, l1, &err)) fail_msg("%s", err.msg);
    SAME(l1, l2, (size_t)7 * V);
    free(l1);
    free(l2);
    m->be = &COUNTING;
    g_zero_geglu = 1; /* a different MLP kernel gives a different forward */
    run_gemma2(m, got);
    g_zero_geglu = 0;
    assert_true(memcmp(ref, got, (size_t)7 * D * sizeof(float)) != 0);
    free(ref);
    free(got);
    gemma2_close(m);
}

static void run_paligemma(paligemma_model *m, const float *pix, float *out) {
    rs_err err = {0};
    int32_t prompt[2] = {10, 11}, *ids;
    uint8_t *kinds;
    int64_t len;
    int P;
    if (paligemma_build_input(m, 1, prompt, 2, NULL, 0, &ids, &kinds, &len, &P, &err)) fail_msg("%s", err.msg);
    int64_t off[2] = {0, len};
    paligemma_batch b = {.n_seqs = 1, .offsets = off, .ids = ids, .prefix_len = &P, .n_images = 1, .pixel_values = pix};
    if (paligemma_forward(m, &b, NULL, 0, out, &err)) fail_msg("%s", err.msg);
    free(ids);
    free(kinds);
}

static void test_paligemma_goes_through_the_table(void **state) {
    (void)state;
    rs_err err = {0};
    paligemma_model *m;
    if (paligemma_open(&m, "examples/quickstart/models/paligemma-tiny", &err)) fail_msg("%s", err.msg);
    assert_ptr_equal(m->be, rs_backend_cpu());
    const siglip_config *vc = &m->cfg.vision;
    size_t npix = (size_t)vc->num_channels * vc->image_size * vc->image_size;
    float *pix = rnd(npix);
    int Lv = vc->n_layers, Lt = m->cfg.text.n_layers, D = m->cfg.text.hidden_size;
    int T = m->vision->n_patches + 1 + 2;
    float *ref = calloc((size_t)T * D, sizeof(float)), *got = calloc((size_t)T * D, sizeof(float));
    assert_true(ref && got);
    run_paligemma(m, pix, ref);
    memset(g_calls, 0, sizeof g_calls);
    paligemma_set_backend(m, &COUNTING);
    run_paligemma(m, pix, got);
    SAME(ref, got, (size_t)T * D);
    /* tower: patch embedding + 5 per layer and fc1 + GELU; projector: 1; decoder: 7 per layer */
    assert_int_equal(g_calls[K_LINEAR], 1 + 5 * Lv + 1 + 7 * Lt);
    assert_int_equal(g_calls[K_LIN_GELU], Lv);
    /* the tower's LayerNorms: the first, then each residual add with the norm after it */
    assert_int_equal(g_calls[K_LN], 1);
    assert_int_equal(g_calls[K_ADD_LN], 2 * Lv);
    assert_int_equal(g_calls[K_GELU], 0);
    assert_int_equal(g_calls[K_ATTN], Lv + Lt);
    assert_int_equal(g_calls[K_ADD], 2 * Lt);
    assert_int_equal(g_calls[K_RMS], 4 * Lt + 2);
    assert_int_equal(g_calls[K_EMBED], 1);
    assert_int_equal(g_calls[K_IM2COL], 1);
    assert_int_equal(g_calls[K_ADDP], 1);
    g_zero_gelu = 1; /* a different vision MLP kernel changes what reaches the decoder */
    run_paligemma(m, pix, got);
    g_zero_gelu = 0;
    assert_true(memcmp(ref, got, (size_t)T * D * sizeof(float)) != 0);
    free(ref);
    free(got);
    free(pix);
    paligemma_close(m);
}

/* The model ends against naive loops: the LM-head product (with a row stride wider than
 * the block), the soft-cap, and the embedding gather from bf16 rows with kept rows. */
static void test_lm_ends(void **state) {
    (void)state;
    const rs_backend *be = rs_backend_cpu();
    enum { T = 5, IN = 24, OUT = 9, LD = 13, V = 11, D = 6 };
    float *x = rnd(T * IN), *W = rnd(OUT * IN);
    float y[T * LD];
    for (int i = 0; i < T * LD; i++) y[i] = -7.0f;
    be->gemm_nt(y, LD, x, W, T, IN, OUT);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < LD; o++) {
            if (o >= OUT) { assert_true(y[t * LD + o] == -7.0f); continue; } /* outside the block: untouched */
            double r = 0;
            for (int i = 0; i < IN; i++) r += (double)x[t * IN + i] * W[o * IN + i];
            assert_true(fabs(y[t * LD + o] - r) <= 1e-5 * (1 + fabs(r)));
        }
    float c[8] = {-100, -3, -0.5f, 0, 0.25f, 2, 29, 1e4f};
    be->softcap(c, 8, 30.0f);
    const double in[8] = {-100, -3, -0.5, 0, 0.25, 2, 29, 1e4};
    for (int i = 0; i < 8; i++) assert_true(fabs(c[i] - tanh(in[i] / 30.0) * 30.0) <= 2e-5);
    uint16_t Eb[V * D];
    float *Ef = rnd(V * D);
    for (int i = 0; i < V * D; i++) Eb[i] = rs_f32_to_bf16(Ef[i]);
    st_tensor E = {.name = "embed", .dtype = RS_DT_BF16, .ndim = 2, .shape = {V, D}, .numel = V * D, .data = Eb,
                   .nbytes = sizeof Eb};
    int32_t ids[4] = {3, 0, 10, 3};
    uint8_t keep[4] = {0, 1, 0, 0};
    float e[4 * D];
    for (int i = 0; i < 4 * D; i++) e[i] = (float)i;
    be->embed(e, &E, ids, keep, 4, D, 2.5f);
    for (int r = 0; r < 4; r++)
        for (int d = 0; d < D; d++) {
            float want = keep[r] ? (float)(r * D + d) * 2.5f : rs_bf16_to_f32(Eb[ids[r] * D + d]) * 2.5f;
            assert_true(e[r * D + d] == want);
        }
    free(x);
    free(W);
    free(Ef);
}

/* The start of the vision tower against its definition: patch (gy, gx) of image n, channel
 * ch, pixel (ky, kx) sits at row n·G² + gy·G + gx, column (ch·P + ky)·P + kx; position rows
 * repeat every N rows. */
static void test_vision_start(void **state) {
    (void)state;
    const rs_backend *be = rs_backend_cpu();
    enum { NI = 2, C = 3, S = 6, P = 2, G = S / P, N = G * G, K = C * P * P, D = 4 };
    float *px = rnd(NI * C * S * S);
    float x[NI * N * K];
    be->im2col(x, px, NI, C, S, P);
    for (int n = 0; n < NI; n++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++)
                for (int ch = 0; ch < C; ch++)
                    for (int ky = 0; ky < P; ky++)
                        for (int kx = 0; kx < P; kx++)
                            assert_true(x[(size_t)(n * N + gy * G + gx) * K + (ch * P + ky) * P + kx] ==
                                        px[(((size_t)n * C + ch) * S + gy * P + ky) * S + gx * P + kx]);
    float *h = rnd(NI * N * D), *tab = rnd(N * D), *h0 = malloc(sizeof(float) * NI * N * D);
    assert_non_null(h0);
    memcpy(h0, h, sizeof(float) * NI * N * D);
    be->add_periodic(h, tab, NI * N, N, D);
    for (int t = 0; t < NI * N; t++)
        for (int d = 0; d < D; d++) assert_true(h[t * D + d] == h0[t * D + d] + tab[(t % N) * D + d]);
    free(px);
    free(h);
    free(h0);
    free(tab);
}

/* Generation with a KV cache goes through the table too: the same greedy tokens and logits
 * through the counting backend, whose cache-path entries (attention over the history, the
 * decode product) are the ones called, once per layer per forward. */
static void test_generation_goes_through_the_table(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    if (gemma2_open(&m, "examples/quickstart/models/gemma2-tiny", &err)) fail_msg("%s", err.msg);
    int32_t prompt[4] = {2, 651, 432, 9};
    gen_params p = {.max_new_tokens = 5, .top_p = 1, .keep_logits = 1};
    gen_output a = {0}, b = {0};
    if (gen_gemma2(m, prompt, 4, &p, &a, &err)) fail_msg("%s", err.msg);
    memset(g_calls, 0, sizeof g_calls);
    m->be = &COUNTING;
    if (gen_gemma2(m, prompt, 4, &p, &b, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, (size_t)a.n * sizeof *a.ids);
    SAME(a.logits, b.logits, (size_t)a.n * m->cfg.vocab_size);
    int L = m->cfg.n_layers, passes = b.n; /* the prefill and one step per token after the first */
    assert_int_equal(g_calls[K_ATTN_KV], L * passes);
    assert_int_equal(g_calls[K_LIN_DEC], 7 * L * passes);
    assert_int_equal(g_calls[K_ATTN] + g_calls[K_LINEAR], 0);
    gen_output_free(&a);
    gen_output_free(&b);
    gemma2_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_entries_are_the_ops),
        cmocka_unit_test(test_lm_ends),
        cmocka_unit_test(test_vision_start),
        cmocka_unit_test(test_generation_goes_through_the_table),
        cmocka_unit_test(test_gemma2_goes_through_the_table),
        cmocka_unit_test(test_paligemma_goes_through_the_table),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
