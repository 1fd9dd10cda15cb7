/* Generation with a KV cache (src/model/generate.c) against transformers' generate
 * (greedy, the goldens in tests/fixtures/generate, made by tools/reference/gen_generate_goldens.py) on the
 * tiny random checkpoints (sliding window 8; 20 new tokens take every run past it; one
 * PaliGemma prefix is longer than the window):
 *   - the generated ids are token-identical to transformers';
 *   - the logits of every step match generate's (cached) logits and a no-cache forward of
 *     the whole sequence, both the reference's and our own, within 1e-4;
 *   - seeded sampling is reproducible, top-k = 1 and a tiny top-p are greedy, the sampled
 *     frequencies follow softmax(logits / T) after the top-k / top-p cut;
 *   - the generator's seeding and first outputs (known answers), EOS stops, bad parameters,
 *     an overfull cache. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "reprshift/gemma2.h"
#include "reprshift/generate.h"
#include "reprshift/paligemma.h"
#include "reprshift/safetensors.h"

#define G_DIR "tests/fixtures/models/gemma2-tiny-f32"
#define P_DIR "tests/fixtures/models/paligemma-tiny-f32"
#define G_GOLD "tests/fixtures/generate/gemma2-tiny-f32.safetensors"
#define P_GOLD "tests/fixtures/generate/paligemma-tiny-f32.safetensors"
#define TOL 1e-4

static const st_tensor *gold(const st_set *g, int k, const char *what) {
    char name[64];
    snprintf(name, sizeof name, "g%d.%s", k, what);
    const st_tensor *t = st_get(g, name);
    if (!t) fail_msg("golden tensor %s missing", name);
    return t;
}

static int n_runs(const st_set *g) {
    int k = 0;
    char name[64];
    for (;; k++) {
        snprintf(name, sizeof name, "g%d.ids", k);
        if (!st_get(g, name)) return k;
    }
}

static gen_params greedy(int n, const int32_t *eos, int n_eos) {
    gen_params p = {.max_new_tokens = n, .temperature = 0, .top_k = 0, .top_p = 1, .seed = 0, .eos_ids = eos,
                    .n_eos = n_eos, .keep_logits = 1};
    return p;
}

/* Compare ids and per-step logits with the golden run k. */
static void check_run(const st_set *g, int k, const gen_output *o, int V, const char *label) {
    const st_tensor *ids = gold(g, k, "ids");
    assert_int_equal(o->n, ids->numel);
    assert_memory_equal(o->ids, ids->data, (size_t)o->n * sizeof(int32_t));
    char name[64];
    snprintf(name, sizeof name, "g%d.full_logits", k);
    const st_tensor *lg = gold(g, k, "logits"), *fl = st_get(g, name);
    assert_int_equal(lg->numel, (int64_t)o->n * V);
    double e1 = tu_max_abs_diff(o->logits, lg->data, (size_t)lg->numel);
    double e2 = fl ? tu_max_abs_diff(o->logits, fl->data, (size_t)fl->numel) : 0;
    printf("%s run %d: %d tokens identical; max|logits - generate| = %.3g", label, k, o->n, e1);
    if (fl) printf(", max|logits - full forward| = %.3g", e2);
    printf("\n");
    assert_true(e1 <= TOL);
    assert_true(e2 <= TOL);
}

static void test_gemma2_greedy(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    st_set *g;
    if (gemma2_open(&m, G_DIR, &err)) fail_msg("%s", err.msg);
    if (st_open(&g, G_GOLD, &err)) fail_msg("%s", err.msg);
    int32_t *eos;
    int n_eos;
    if (gen_eos_ids(G_DIR, &m->cfg, &eos, &n_eos, &err)) fail_msg("%s", err.msg);
    assert_int_equal(n_eos, 1);
    assert_int_equal(eos[0], 1);
    int V = m->cfg.vocab_size, D = m->cfg.hidden_size, K = n_runs(g);
    assert_true(K >= 4);
    for (int k = 0; k < K; k++) {
        const st_tensor *pr = gold(g, k, "prompt");
        int np = (int)pr->numel, n = (int)gold(g, k, "ids")->numel;
        gen_params p = greedy(20, eos, n_eos);
        gen_output o;
        if (gen_gemma2(m, pr->data, np, &p, &o, &err)) fail_msg("%s", err.msg);
        assert_true(np + o.n > m->cfg.sliding_window);
        check_run(g, k, &o, V, "gemma2");
        /* our own no-cache forward of prompt + ids[:-1] */
        int T = np + n - 1;
        int32_t *seq = malloc((size_t)T * sizeof *seq);
        float *h = malloc((size_t)T * D * sizeof *h), *lf = malloc((size_t)T * V * sizeof *lf);
        memcpy(seq, pr->data, (size_t)np * sizeof *seq);
        memcpy(seq + np, o.ids, (size_t)(n - 1) * sizeof *seq);
        int64_t off[2] = {0, T};
        gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = seq};
        if (gemma2_forward(m, &b, NULL, 0, h, &err) || gemma2_logits(m, h, T, lf, &err)) fail_msg("%s", err.msg);
        double e = tu_max_abs_diff(o.logits, lf + (size_t)(np - 1) * V, (size_t)n * V);
        printf("gemma2 run %d: max|cached - own no-cache forward| = %.3g\n", k, e);
        assert_true(e <= TOL);
        free(seq); free(h); free(lf);
        gen_output_free(&o);
    }
    free(eos);
    st_close(g);
    gemma2_close(m);
}

static void test_paligemma_greedy(void **state) {
    (void)state;
    rs_err err = {0};
    paligemma_model *m;
    st_set *g;
    if (paligemma_open(&m, P_DIR, &err)) fail_msg("%s", err.msg);
    if (st_open(&g, P_GOLD, &err)) fail_msg("%s", err.msg);
    int32_t *eos;
    int n_eos;
    if (gen_eos_ids(P_DIR, &m->cfg.text, &eos, &n_eos, &err)) fail_msg("%s", err.msg);
    int V = m->cfg.text.vocab_size, D = m->cfg.text.hidden_size, K = n_runs(g), longer_than_window = 0;
    assert_true(K >= 3);
    for (int k = 0; k < K; k++) {
        const st_tensor *pr = gold(g, k, "prompt"), *pv = gold(g, k, "pixel_values");
        int np = (int)pr->numel, n = (int)gold(g, k, "ids")->numel;
        gen_params p = greedy(20, eos, n_eos);
        gen_output o;
        if (gen_paligemma(m, pv->data, pr->data, np, &p, &o, &err)) fail_msg("%s", err.msg);
        check_run(g, k, &o, V, "paligemma");
        /* our own no-cache forward: prefix (image, bos, prompt, \n) + ids[:-1], suffix causal */
        int32_t *ids;
        uint8_t *kinds;
        int64_t len;
        int P;
        if (paligemma_build_input(m, 1, pr->data, np, o.ids, n - 1, &ids, &kinds, &len, &P, &err))
            fail_msg("%s", err.msg);
        longer_than_window += P > m->cfg.text.sliding_window;
        float *h = malloc((size_t)len * D * sizeof *h), *lf = malloc((size_t)len * V * sizeof *lf);
        int64_t off[2] = {0, len};
        paligemma_batch b = {.n_seqs = 1, .offsets = off, .ids = ids, .prefix_len = &P, .n_images = 1,
                             .pixel_values = pv->data};
        if (paligemma_forward(m, &b, NULL, 0, h, &err) || gemma2_logits(m->text, h, (int)len, lf, &err))
            fail_msg("%s", err.msg);
        double e = tu_max_abs_diff(o.logits, lf + (size_t)(P - 1) * V, (size_t)n * V);
        printf("paligemma run %d (prefix %d): max|cached - own no-cache forward| = %.3g\n", k, P, e);
        assert_true(e <= TOL);
        free(ids); free(kinds); free(h); free(lf);
        gen_output_free(&o);
    }
    assert_true(longer_than_window >= 1);
    free(eos);
    st_close(g);
    paligemma_close(m);
}

/* The trained quickstart models (varied text; EOS off so that every run goes 32 tokens, past
 * the window of 16; PaliGemma's prefix of 23 is longer than the window). */
static void test_quickstart_models_greedy(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *gm;
    paligemma_model *pm;
    st_set *g;
    if (gemma2_open(&gm, "examples/quickstart/models/gemma2-tiny", &err)) fail_msg("%s", err.msg);
    if (st_open(&g, "tests/fixtures/generate/qs-gemma2-tiny.safetensors", &err)) fail_msg("%s", err.msg);
    int K = n_runs(g), distinct = 0;
    assert_true(K >= 4);
    for (int k = 0; k < K; k++) {
        const st_tensor *pr = gold(g, k, "prompt");
        gen_params p = greedy(32, NULL, 0);
        gen_output o;
        if (gen_gemma2(gm, pr->data, (int)pr->numel, &p, &o, &err)) fail_msg("%s", err.msg);
        check_run(g, k, &o, gm->cfg.vocab_size, "quickstart gemma2");
        for (int i = 1; i < o.n; i++) distinct += o.ids[i] != o.ids[i - 1];
        gen_output_free(&o);
    }
    assert_true(distinct >= 15); /* not a repeated token */
    st_close(g);
    gemma2_close(gm);
    if (paligemma_open(&pm, "examples/quickstart/models/paligemma-tiny", &err)) fail_msg("%s", err.msg);
    if (st_open(&g, "tests/fixtures/generate/qs-paligemma-tiny.safetensors", &err)) fail_msg("%s", err.msg);
    K = n_runs(g);
    assert_true(K >= 2);
    for (int k = 0; k < K; k++) {
        const st_tensor *pr = gold(g, k, "prompt"), *pv = gold(g, k, "pixel_values");
        gen_params p = greedy(32, NULL, 0);
        gen_output o;
        if (gen_paligemma(pm, pv->data, pr->data, (int)pr->numel, &p, &o, &err)) fail_msg("%s", err.msg);
        check_run(g, k, &o, pm->cfg.text.vocab_size, "quickstart paligemma");
        gen_output_free(&o);
    }
    st_close(g);
    paligemma_close(pm);
}

/* Half-precision checkpoints: decode steps take op_linear_st's row-by-row path (the weights
 * read as BF16/F16), the no-cache forward of the whole sequence widens whole matrices for
 * sgemm; the logits of every step agree within 1e-4 and so do the picks. */
static void test_half_precision_decode(void **state) {
    (void)state;
    const char *dirs[2] = {"tests/fixtures/models/gemma2-tiny-bf16", "tests/fixtures/models/gemma2-tiny-f16"};
    for (int d = 0; d < 2; d++) {
        rs_err err = {0};
        gemma2_model *m;
        if (gemma2_open(&m, dirs[d], &err)) fail_msg("%s", err.msg);
        int V = m->cfg.vocab_size, D = m->cfg.hidden_size, np = 6, n = 16;
        const int32_t prompt[6] = {2, 17, 100, 5, 9, 30};
        gen_params p = greedy(n, NULL, 0);
        gen_output o;
        if (gen_gemma2(m, prompt, np, &p, &o, &err)) fail_msg("%s", err.msg);
        assert_int_equal(o.n, n);
        int T = np + n - 1;
        int32_t *seq = malloc((size_t)T * sizeof *seq);
        float *h = malloc((size_t)T * D * sizeof *h), *lf = malloc((size_t)T * V * sizeof *lf);
        memcpy(seq, prompt, sizeof prompt);
        memcpy(seq + np, o.ids, (size_t)(n - 1) * sizeof *seq);
        int64_t off[2] = {0, T};
        gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = seq};
        if (gemma2_forward(m, &b, NULL, 0, h, &err) || gemma2_logits(m, h, T, lf, &err)) fail_msg("%s", err.msg);
        double e = tu_max_abs_diff(o.logits, lf + (size_t)(np - 1) * V, (size_t)n * V);
        printf("%s: %d decode steps, max|cached - no-cache forward| = %.3g\n", dirs[d], n, e);
        assert_true(e <= TOL);
        for (int i = 0; i < n; i++) {
            const float *r = lf + (size_t)(np - 1 + i) * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                if (r[v] > r[best]) best = v;
            assert_int_equal(best, o.ids[i]);
        }
        free(seq); free(h); free(lf);
        gen_output_free(&o);
        gemma2_close(m);
    }
}

/* Known answers: splitmix64 from 0 (its published first outputs), then xoshiro256**. */
static void test_rng_known_answers(void **state) {
    (void)state;
    gen_rng r;
    gen_rng_seed(&r, 0);
    assert_true(r.s[0] == 0xe220a8397b1dcdafull && r.s[1] == 0x6e789e6aa1b965f4ull);
    assert_true(r.s[2] == 0x06c45d188009454full && r.s[3] == 0xf88bb8a8724c81ecull);
    assert_true(gen_rng_next(&r) == 0x99ec5f36cb75f2b4ull);
    assert_true(gen_rng_next(&r) == 0xbf6e1f784956452aull);
    assert_true(gen_rng_next(&r) == 0x1a5f849d4933e6e0ull);
    gen_rng_seed(&r, 42);
    assert_true(gen_rng_next(&r) == 0x15780b2e0c2ec716ull);
    for (int i = 0; i < 1000; i++) {
        double u = gen_rng_uniform(&r);
        assert_true(u >= 0 && u < 1);
    }
}

/* Sampled frequencies over a fixed 6-token distribution follow softmax(x/T) after the cut. */
static void test_pick_distribution(void **state) {
    (void)state;
    const float x[6] = {1.0f, 3.0f, 2.5f, -1.0f, 3.0f, 0.0f};
    void *work = malloc(gen_pick_work_size(6));
    struct {
        int top_k;
        double top_p;
        int allowed[6];
    } cases[] = {
        {0, 1.0, {1, 1, 1, 1, 1, 1}},
        {2, 1.0, {0, 1, 0, 0, 1, 0}},  /* the two 3.0s (ids 1 and 4) */
        {0, 0.6, {0, 1, 0, 0, 1, 0}},  /* T = 0.7: p(3.0) = 0.39 each; 0.39 < 0.6 so the second stays, then 0.78 stops */
        {3, 0.999999, {0, 1, 1, 0, 1, 0}},
    };
    double T = 0.7;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gen_params p = {.max_new_tokens = 1, .temperature = T, .top_k = cases[c].top_k, .top_p = cases[c].top_p};
        double w[6], z = 0;
        for (int i = 0; i < 6; i++) z += (w[i] = cases[c].allowed[i] ? exp(x[i] / T) : 0);
        int cnt[6] = {0}, N = 40000;
        gen_rng r;
        gen_rng_seed(&r, 7 + c);
        for (int i = 0; i < N; i++) cnt[gen_pick(x, 6, &p, &r, work)]++;
        for (int i = 0; i < 6; i++) {
            double f = (double)cnt[i] / N, e = w[i] / z, sd = sqrt(e * (1 - e) / N);
            if (!cases[c].allowed[i]) assert_int_equal(cnt[i], 0);
            else assert_true(fabs(f - e) <= 5 * sd + 1e-12);
        }
    }
    /* greedy: the first maximum */
    gen_params gp = {.max_new_tokens = 1, .temperature = 0, .top_p = 1};
    assert_int_equal(gen_pick(x, 6, &gp, NULL, work), 1);
    free(work);
}

static void test_sampling_seeded(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    if (gemma2_open(&m, G_DIR, &err)) fail_msg("%s", err.msg);
    const int32_t prompt[3] = {2, 17, 300};
    gen_params g = greedy(24, NULL, 0);
    gen_output og, a, b, c, k1, p0;
    if (gen_gemma2(m, prompt, 3, &g, &og, &err)) fail_msg("%s", err.msg);
    gen_params s = {.max_new_tokens = 24, .temperature = 1.3, .top_k = 50, .top_p = 0.95, .seed = 12345};
    if (gen_gemma2(m, prompt, 3, &s, &a, &err) || gen_gemma2(m, prompt, 3, &s, &b, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, (size_t)a.n * sizeof *a.ids);
    s.seed = 54321;
    if (gen_gemma2(m, prompt, 3, &s, &c, &err)) fail_msg("%s", err.msg);
    assert_true(c.n != a.n || memcmp(c.ids, a.ids, (size_t)a.n * sizeof *a.ids));
    assert_true(memcmp(a.ids, og.ids, (size_t)og.n * sizeof *og.ids)); /* T = 1.3 does not follow greedy */
    gen_params k = {.max_new_tokens = 24, .temperature = 2.0, .top_k = 1, .top_p = 1, .seed = 9};
    if (gen_gemma2(m, prompt, 3, &k, &k1, &err)) fail_msg("%s", err.msg);
    assert_int_equal(k1.n, og.n);
    assert_memory_equal(k1.ids, og.ids, (size_t)og.n * sizeof *og.ids);
    gen_params pp = {.max_new_tokens = 24, .temperature = 0.5, .top_k = 0, .top_p = 1e-9, .seed = 3};
    if (gen_gemma2(m, prompt, 3, &pp, &p0, &err)) fail_msg("%s", err.msg);
    assert_memory_equal(p0.ids, og.ids, (size_t)og.n * sizeof *og.ids);
    gen_output_free(&og); gen_output_free(&a); gen_output_free(&b); gen_output_free(&c);
    gen_output_free(&k1); gen_output_free(&p0);
    gemma2_close(m);
}

static void test_eos_and_errors(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    st_set *g;
    if (gemma2_open(&m, G_DIR, &err)) fail_msg("%s", err.msg);
    if (st_open(&g, G_GOLD, &err)) fail_msg("%s", err.msg);
    const st_tensor *pr = gold(g, 2, "prompt"), *ids = gold(g, 2, "ids");
    const int32_t *gi = ids->data;
    /* stop at the 6th generated token when it is named a stop id (not at an earlier equal one) */
    int first = 5;
    while (first > 0) {
        int dup = 0;
        for (int i = 0; i < first; i++) dup |= gi[i] == gi[first];
        if (!dup) break;
        first--;
    }
    int32_t stop[2] = {99999, gi[first]};
    gen_params p = greedy(20, stop, 2);
    gen_output o;
    if (gen_gemma2(m, pr->data, (int)pr->numel, &p, &o, &err)) fail_msg("%s", err.msg);
    assert_int_equal(o.n, first + 1);
    assert_int_equal(o.hit_eos, 1);
    assert_memory_equal(o.ids, gi, (size_t)o.n * sizeof *gi);
    gen_output_free(&o);
    /* max_new_tokens = 1 */
    p = greedy(1, NULL, 0);
    if (gen_gemma2(m, pr->data, (int)pr->numel, &p, &o, &err)) fail_msg("%s", err.msg);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.ids[0], gi[0]);
    assert_int_equal(o.hit_eos, 0);
    gen_output_free(&o);
    /* bad parameters: one message each, no output */
    gen_params bad[5] = {greedy(0, NULL, 0), greedy(4, NULL, 0), greedy(4, NULL, 0), greedy(4, NULL, 0),
                         greedy(4, NULL, 0)};
    bad[1].temperature = NAN;
    bad[2].temperature = -1;
    bad[3].top_p = 0;
    bad[4].top_p = 1.5;
    for (int i = 0; i < 5; i++) {
        err.msg[0] = 0;
        assert_int_equal(gen_gemma2(m, pr->data, (int)pr->numel, &bad[i], &o, &err), -1);
        assert_true(err.msg[0] != 0);
        assert_null(o.ids);
    }
    p = greedy(4, NULL, 0);
    assert_int_equal(gen_gemma2(m, pr->data, 0, &p, &o, &err), -1);
    /* a cache that cannot take the batch */
    gemma2_kv_cache *kc;
    if (gemma2_kv_cache_new(&kc, &m->cfg, 1, 4, &err)) fail_msg("%s", err.msg);
    int32_t five[5] = {2, 3, 4, 5, 6};
    int64_t off[2] = {0, 5};
    float h[5 * 64];
    gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = five, .cache = kc};
    assert_int_equal(gemma2_forward(m, &b, NULL, 0, h, &err), -1);
    assert_non_null(strstr(err.msg, "exceed the KV cache"));
    assert_int_equal(kc->len[0], 0);
    off[1] = 4;
    if (gemma2_forward(m, &b, NULL, 0, h, &err)) fail_msg("%s", err.msg);
    assert_int_equal(kc->len[0], 4);
    off[1] = 1;
    assert_int_equal(gemma2_forward(m, &b, NULL, 0, h, &err), -1);
    gemma2_kv_cache_reset(kc);
    assert_int_equal(kc->len[0], 0);
    gemma2_kv_cache_free(kc);
    st_close(g);
    gemma2_close(m);
}

/* Two sequences in one cache, prefilled and stepped together, equal each run alone. */
static void test_batched_cache(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *m;
    if (gemma2_open(&m, G_DIR, &err)) fail_msg("%s", err.msg);
    int V = m->cfg.vocab_size, D = m->cfg.hidden_size;
    const int32_t pa[4] = {2, 40, 41, 42}, pb[9] = {2, 7, 8, 9, 10, 11, 12, 13, 14};
    gen_params g = greedy(12, NULL, 0);
    gen_output oa, ob;
    if (gen_gemma2(m, pa, 4, &g, &oa, &err) || gen_gemma2(m, pb, 9, &g, &ob, &err)) fail_msg("%s", err.msg);
    gemma2_kv_cache *kc;
    if (gemma2_kv_cache_new(&kc, &m->cfg, 2, 9 + 12, &err)) fail_msg("%s", err.msg);
    int32_t ids[13];
    memcpy(ids, pa, sizeof pa);
    memcpy(ids + 4, pb, sizeof pb);
    int64_t off[3] = {0, 4, 13};
    float *h = malloc(13 * (size_t)D * sizeof *h), *lg = malloc(2 * (size_t)V * sizeof *lg), hl[2 * 64];
    gemma2_batch b = {.n_seqs = 2, .offsets = off, .ids = ids, .cache = kc};
    if (gemma2_forward(m, &b, NULL, 0, h, &err)) fail_msg("%s", err.msg);
    memcpy(hl, h + 3 * D, (size_t)D * sizeof *h);
    memcpy(hl + D, h + 12 * D, (size_t)D * sizeof *h);
    double worst = 0;
    for (int step = 0; step < 12; step++) {
        if (gemma2_logits(m, hl, 2, lg, &err)) fail_msg("%s", err.msg);
        double ea = tu_max_abs_diff(lg, oa.logits + (size_t)step * V, (size_t)V);
        double eb = tu_max_abs_diff(lg + V, ob.logits + (size_t)step * V, (size_t)V);
        worst = fmax(worst, fmax(ea, eb));
        if (step == 11) break;
        int32_t next[2] = {oa.ids[step], ob.ids[step]};
        int64_t o2[3] = {0, 1, 2};
        gemma2_batch d = {.n_seqs = 2, .offsets = o2, .ids = next, .cache = kc};
        if (gemma2_forward(m, &d, NULL, 0, hl, &err)) fail_msg("%s", err.msg);
    }
    printf("two sequences in one cache vs each alone: max|logits diff| = %.3g\n", worst);
    assert_true(worst <= TOL);
    assert_int_equal(kc->len[0], 4 + 11);
    assert_int_equal(kc->len[1], 9 + 11);
    free(h); free(lg);
    gemma2_kv_cache_free(kc);
    gen_output_free(&oa); gen_output_free(&ob);
    gemma2_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemma2_greedy),        cmocka_unit_test(test_paligemma_greedy),
        cmocka_unit_test(test_quickstart_models_greedy), cmocka_unit_test(test_half_precision_decode),
        cmocka_unit_test(test_rng_known_answers),    cmocka_unit_test(test_pick_distribution),
        cmocka_unit_test(test_sampling_seeded),      cmocka_unit_test(test_eos_and_errors),
        cmocka_unit_test(test_batched_cache),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
