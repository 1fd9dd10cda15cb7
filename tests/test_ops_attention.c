/* op_attention (src/tensor/ops.c), the attention kernel of both towers, against a naive
 * double-precision reference written from the definition in include/reprshift/ops.h (and
 * docs/model-spec.md): Gemma-2 style (causal, sliding window, soft-cap, grouped-query heads,
 * PaliGemma prefix block) and SigLIP style (bidirectional), ragged packed sequences, one-token
 * sequences, window 1, a prefix longer than the window; and the same bits with 1 and 2 threads.
 * op_attention_kv (a block of queries against a longer K/V history laid out as a KV cache)
 * against the same reference rows. */
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

#include "reprshift/ops.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* The definition, in double, one entry at a time. */
static void naive(double *Z, const float *Q, const float *K, const float *V, const int64_t *off, int n_seqs,
                  const int *prefix, const op_attn_params *p) {
    int hd = p->head_dim, group = p->n_heads / p->n_kv_heads;
    for (int s = 0; s < n_seqs; s++) {
        int64_t a = off[s];
        int L = (int)(off[s + 1] - a), pre = prefix ? prefix[s] : 0;
        double *w = malloc(sizeof(double) * (size_t)L);
        for (int h = 0; h < p->n_heads; h++) {
            int g = h / group;
            for (int i = 0; i < L; i++) {
                double mx = -INFINITY;
                for (int j = 0; j < L; j++) {
                    int keep = 0;
                    if (!p->causal) keep = 1;
                    if (p->causal && j <= i && (p->window <= 0 || i - j < p->window)) keep = 1;
                    if (i < pre && j < pre) keep = 1;
                    if (!keep) {
                        w[j] = -INFINITY;
                        continue;
                    }
                    double dot = 0;
                    for (int d = 0; d < hd; d++)
                        dot += (double)Q[(a + i) * p->q_stride + h * hd + d] * K[(a + j) * p->kv_stride + g * hd + d];
                    dot *= p->scale;
                    if (p->softcap > 0) dot = tanh(dot / p->softcap) * p->softcap;
                    w[j] = dot;
                    if (dot > mx) mx = dot;
                }
                double sum = 0;
                for (int j = 0; j < L; j++) sum += (w[j] = w[j] == -INFINITY ? 0 : exp(w[j] - mx));
                for (int d = 0; d < hd; d++) {
                    double z = 0;
                    for (int j = 0; j < L; j++) z += w[j] / sum * V[(a + j) * p->kv_stride + g * hd + d];
                    Z[(a + i) * p->z_stride + h * hd + d] = z;
                }
            }
        }
        free(w);
    }
}

typedef struct {
    const char *name;
    int n_heads, n_kv_heads, head_dim, causal, window;
    float scale, softcap;
    int n_seqs;
    int lens[4], prefix[4];
    int use_prefix;
} acase;

static double run_case(const acase *c, int threads, float **out, int64_t *nZ) {
    int64_t off[5] = {0};
    for (int s = 0; s < c->n_seqs; s++) off[s + 1] = off[s] + c->lens[s];
    int64_t T = off[c->n_seqs], maxL = 0;
    for (int s = 0; s < c->n_seqs; s++) maxL = c->lens[s] > maxL ? c->lens[s] : maxL;
    op_attn_params p = {c->n_heads, c->n_kv_heads, c->head_dim, c->n_heads * c->head_dim, c->n_kv_heads * c->head_dim,
                        c->n_heads * c->head_dim, c->scale, c->softcap, c->causal, c->window};
    size_t nq = (size_t)T * p.q_stride, nk = (size_t)T * p.kv_stride;
    float *Q = malloc(nq * sizeof *Q), *K = malloc(nk * sizeof *K), *V = malloc(nk * sizeof *V);
    float *Z = malloc(nq * sizeof *Z);
    double *R = malloc(nq * sizeof *R);
    rng = 88172645463325252ull;
    for (size_t i = 0; i < nq; i++) Q[i] = 3 * frand();
    for (size_t i = 0; i < nk; i++) K[i] = 3 * frand();
    for (size_t i = 0; i < nk; i++) V[i] = frand();
    omp_set_num_threads(threads);
    float *S = malloc((size_t)omp_get_max_threads() * maxL * maxL * sizeof *S);
    op_attention(Z, Q, K, V, off, c->n_seqs, c->use_prefix ? c->prefix : NULL, &p, S, (size_t)maxL * maxL);
    naive(R, Q, K, V, off, c->n_seqs, c->use_prefix ? c->prefix : NULL, &p);
    double worst = 0;
    for (size_t i = 0; i < nq; i++) {
        double e = fabs(Z[i] - R[i]);
        if (!(e <= worst)) worst = e;
    }
    free(Q); free(K); free(V); free(R); free(S);
    *out = Z;
    *nZ = (int64_t)nq;
    return worst;
}

static const acase CASES[] = {
    /* Gemma-2 global layer: GQA 4:2, scale 1/sqrt(256)-like, soft-cap 50, ragged packed captions */
    {"gemma global", 4, 2, 16, 1, 0, 0.0625f, 50.0f, 3, {9, 1, 17}, {0}, 0},
    /* sliding window 4 (a 17-token sequence crosses it) */
    {"gemma sliding", 4, 2, 16, 1, 4, 0.0625f, 50.0f, 3, {9, 1, 17}, {0}, 0},
    /* window 1: each token sees itself only */
    {"window 1", 2, 1, 8, 1, 1, 0.25f, 0.0f, 2, {5, 12}, {0}, 0},
    /* a small soft-cap that the scores exceed, MHA */
    {"tight cap", 3, 3, 8, 1, 0, 1.0f, 2.0f, 1, {20}, {0}, 0},
    /* PaliGemma: image + prompt prefix bidirectional, suffix causal; prefix longer than the window */
    {"prefix-LM", 4, 1, 16, 1, 3, 0.0625f, 50.0f, 3, {12, 30, 6}, {8, 10, 6}, 1},
    /* SigLIP: bidirectional, no cap, equal-length images */
    {"siglip", 4, 4, 16, 0, 0, 0.25f, 0.0f, 3, {16, 16, 16}, {0}, 0},
    /* longer than a query block (OP_ATTN_QUERY_BLOCK): causal blocks against the keys they keep,
     * ragged last block; with a window that passes whole blocks; with a prefix longer than a block */
    {"long causal", 2, 1, 16, 1, 0, 0.25f, 50.0f, 2, {300, 129}, {0}, 0},
    {"long window", 2, 1, 16, 1, 40, 0.25f, 0.0f, 1, {333}, {0}, 0},
    {"long prefix-LM", 2, 2, 16, 1, 64, 0.25f, 50.0f, 2, {290, 150}, {200, 20}, 1},
};

static void test_against_naive(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        float *Z;
        int64_t n;
        double w = run_case(&CASES[k], 1, &Z, &n);
        printf("%-14s max|op_attention - naive(double)| = %.3g over %lld values\n", CASES[k].name, w, (long long)n);
        assert_true(w < 2e-6);
        free(Z);
    }
}

static void test_threads_same_bits(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        float *Z1, *Z2;
        int64_t n1, n2;
        run_case(&CASES[k], 1, &Z1, &n1);
        run_case(&CASES[k], 2, &Z2, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(Z1, Z2, (size_t)n1 * sizeof *Z1);
        free(Z1);
        free(Z2);
    }
}

/* A masked entry must not leak: with causal attention the first token's output is exactly
 * its own value row (softmax over one entry). */
static void test_first_token_is_own_value(void **state) {
    (void)state;
    const acase c = {"first", 2, 1, 8, 1, 0, 0.3f, 30.0f, 2, {7, 5}, {0}, 0};
    int64_t off[3] = {0, 7, 12};
    float *Z;
    int64_t n;
    run_case(&c, 1, &Z, &n);
    /* regenerate V as run_case did */
    rng = 88172645463325252ull;
    int T = 12, qs = 16, ks = 8;
    float Q[12 * 16], K[12 * 8], V[12 * 8];
    for (int i = 0; i < T * qs; i++) Q[i] = 3 * frand();
    for (int i = 0; i < T * ks; i++) K[i] = 3 * frand();
    for (int i = 0; i < T * ks; i++) V[i] = frand();
    (void)Q; (void)K;
    for (int s = 0; s < 2; s++)
        for (int h = 0; h < 2; h++)
            for (int d = 0; d < 8; d++) assert_true(Z[off[s] * qs + h * 8 + d] == V[off[s] * ks + d]);
    free(Z);
}

/* op_attention_kv: the last Lq tokens of each sequence as queries against the whole
 * sequence's K/V copied into a cache layout (sequence s at row s·cap, rows past its length
 * NaN so a read beyond kv_len shows), for Lq = 1, 3 and the whole sequence; every query row
 * must match the naive full-sequence result at its position. */
static void test_kv_block_against_naive(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        const acase *c = &CASES[k];
        if (!c->causal) continue;
        int64_t off[5] = {0};
        for (int s = 0; s < c->n_seqs; s++) off[s + 1] = off[s] + c->lens[s];
        int T = (int)off[c->n_seqs], maxL = 0;
        for (int s = 0; s < c->n_seqs; s++) maxL = c->lens[s] > maxL ? c->lens[s] : maxL;
        op_attn_params p = {c->n_heads, c->n_kv_heads, c->head_dim, c->n_heads * c->head_dim,
                            c->n_kv_heads * c->head_dim, c->n_heads * c->head_dim, c->scale, c->softcap, c->causal,
                            c->window};
        size_t nq = (size_t)T * p.q_stride, nk = (size_t)T * p.kv_stride;
        float *Q = malloc(nq * sizeof *Q), *K = malloc(nk * sizeof *K), *V = malloc(nk * sizeof *V);
        double *R = malloc(nq * sizeof *R);
        rng = 88172645463325252ull;
        for (size_t i = 0; i < nq; i++) Q[i] = 3 * frand();
        for (size_t i = 0; i < nk; i++) K[i] = 3 * frand();
        for (size_t i = 0; i < nk; i++) V[i] = frand();
        const int *prefix = c->use_prefix ? c->prefix : NULL;
        naive(R, Q, K, V, off, c->n_seqs, prefix, &p);
        int cap = maxL + 3;
        size_t ncache = (size_t)c->n_seqs * cap * p.kv_stride;
        float *Kc = malloc(ncache * sizeof *Kc), *Vc = malloc(ncache * sizeof *Vc);
        for (size_t i = 0; i < ncache; i++) Kc[i] = Vc[i] = NAN;
        int64_t start[4];
        int len[4];
        for (int s = 0; s < c->n_seqs; s++) {
            start[s] = (int64_t)s * cap;
            len[s] = c->lens[s];
            memcpy(Kc + (size_t)start[s] * p.kv_stride, K + (size_t)off[s] * p.kv_stride,
                   (size_t)len[s] * p.kv_stride * sizeof *K);
            memcpy(Vc + (size_t)start[s] * p.kv_stride, V + (size_t)off[s] * p.kv_stride,
                   (size_t)len[s] * p.kv_stride * sizeof *V);
        }
        /* 200: more queries than a query block (OP_ATTN_QUERY_BLOCK), fewer than the keys */
        const int BLOCKS[4] = {1, 3, 200, 1 << 20};
        for (int b = 0; b < 4; b++) {
            int64_t qoff[5] = {0};
            for (int s = 0; s < c->n_seqs; s++) qoff[s + 1] = qoff[s] + (BLOCKS[b] < len[s] ? BLOCKS[b] : len[s]);
            int Tq = (int)qoff[c->n_seqs];
            float *Qb = malloc((size_t)Tq * p.q_stride * sizeof *Qb), *Zb = malloc((size_t)Tq * p.q_stride * sizeof *Zb);
            for (int s = 0; s < c->n_seqs; s++) {
                int lq = (int)(qoff[s + 1] - qoff[s]);
                memcpy(Qb + (size_t)qoff[s] * p.q_stride, Q + (size_t)(off[s + 1] - lq) * p.q_stride,
                       (size_t)lq * p.q_stride * sizeof *Q);
            }
            float *S = malloc((size_t)omp_get_max_threads() * maxL * maxL * sizeof *S);
            op_attention_kv(Zb, Qb, qoff, Kc, Vc, start, len, c->n_seqs, prefix, &p, S, (size_t)maxL * maxL);
            double worst = 0;
            for (int s = 0; s < c->n_seqs; s++) {
                int lq = (int)(qoff[s + 1] - qoff[s]);
                for (int r = 0; r < lq; r++)
                    for (int d = 0; d < p.q_stride; d++) {
                        double e = fabs(Zb[(size_t)(qoff[s] + r) * p.q_stride + d] -
                                        R[(size_t)(off[s + 1] - lq + r) * p.q_stride + d]);
                        if (!(e <= worst)) worst = e;
                    }
            }
            printf("%-14s block %-7d max|op_attention_kv - naive| = %.3g\n", c->name, BLOCKS[b], worst);
            assert_true(worst < 2e-6);
            free(Qb); free(Zb); free(S);
        }
        free(Q); free(K); free(V); free(R); free(Kc); free(Vc);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_naive),
        cmocka_unit_test(test_threads_same_bits),
        cmocka_unit_test(test_first_token_is_own_value),
        cmocka_unit_test(test_kv_block_against_naive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
