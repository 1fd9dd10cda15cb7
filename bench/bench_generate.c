/* Greedy generation benchmark (KV cache): per prompt, the time of prefill + first token and
 * of the whole run of N new tokens (EOS off), so decode tok/s = (N − 1) / (t_N − t_1). One
 * untimed 2-token run of the first prompt comes first (warm-up: the mapped weights paged in;
 * the reference does the same), so one-time costs do not land in t_1 and inflate the rate.
 * Run by bench/run_generate_bench.sh beside transformers' generate.
 *
 * usage: bench_generate --model DIR --ids-file F --new N
 *        bench_generate --kernel   (one decode-step linear layer, 2304 -> 9216 BF16, T = 1, over
 *                                   8 matrices larger together than the cache: the base commit's
 *                                   row loop, op_linear_st's row path, widen + sgemm and a plain
 *                                   read, interleaved, median of 9 rounds each, so machine load
 *                                   hits all alike)
 *        --profile (with --model): also the time spent in each backend entry over the prompts
 *                                   after the first (which pages the weights in), one JSON line
 *        RS_ISA=default|avx2|avx512: force the kernels' ISA level (unset: the best here)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/gemma2.h"
#include "reprshift/generate.h"
#include "reprshift/ops.h"
#include "bench_util.h"
#include "legacy_kernels.h"

/* One decode-step layer, 2304 → 9216 BF16, T = 1, on NM different matrices in turn (352 MB,
 * more than the last-level cache, so the weights come from memory as in a real decode step):
 * the row path before (the base commit's loop: legacy_linear_rows of bench/legacy_kernels.h,
 * baseline x86-64 code, OpenMP over the output rows), op_linear_st now (at the RS_ISA level), and
 * widen + sgemm, interleaved matrix by matrix; median per product of REPS rounds. Also a plain
 * read of the same matrices (16 float lanes over the bf16 bits, both threads): the machine's
 * read bandwidth in this run. */
static int kernel_bench(void) {
    enum { IN = 2304, OUT = 9216, REPS = 9, NM = 8 };
    size_t n = (size_t)IN * OUT;
    uint16_t *w[NM];
    st_tensor W[NM];
    float *x = malloc(IN * sizeof *x), *y = malloc(OUT * sizeof *y), *y2 = malloc(OUT * sizeof *y2),
          *scratch = malloc(n * sizeof *scratch);
    for (int m = 0; m < NM; m++) {
        w[m] = malloc(n * 2);
        if (!w[m]) return 3;
        for (size_t i = 0; i < n; i++) w[m][i] = (uint16_t)(0x3c00 + ((i + m) * 2654435761u >> 20) % 512);
        W[m] = (st_tensor){.name = "w", .dtype = RS_DT_BF16, .ndim = 2, .shape = {OUT, IN}, .numel = (int64_t)n,
                           .data = w[m], .nbytes = n * 2};
    }
    for (int i = 0; i < IN; i++) x[i] = (float)(i % 13) * 0.1f - 0.6f;
    legacy_linear_rows(y2, x, &W[0], 1, IN, OUT, 1);
    op_linear_st(y, x, &W[0], scratch, 1, IN, OUT);
    int same = !memcmp(y, y2, OUT * sizeof *y);
    double a[REPS], b[REPS], c[REPS], d[REPS];
    float sink = 0;
    for (int r = 0; r < REPS; r++) {
        a[r] = b[r] = c[r] = d[r] = 0;
        for (int m = 0; m < NM; m++) {
            double t0 = rs_now();
            legacy_linear_rows(y, x, &W[m], 1, IN, OUT, 1);
            double t1 = rs_now();
            op_linear_st(y, x, &W[(m + 3) % NM], scratch, 1, IN, OUT);
            double t2 = rs_now();
            if (m % 4 == 0) op_linear(y, x, op_weight_f32(&W[(m + 5) % NM], scratch), NULL, 1, IN, OUT);
            double t3 = rs_now();
            const float *f = (const float *)w[(m + 6) % NM];
            size_t nf = n / 2;
            float part[2][16];
#pragma omp parallel for schedule(static) num_threads(2)
            for (int t = 0; t < 2; t++) {
                float l[16] = {0};
                for (size_t i = nf / 2 * t; i + 16 <= (t ? nf : nf / 2); i += 16)
                    for (int k = 0; k < 16; k++) l[k] += f[i + k];
                memcpy(part[t], l, sizeof l);
            }
            for (int k = 0; k < 16; k++) sink += part[0][k] + part[1][k];
            double t4 = rs_now();
            a[r] += (t1 - t0) / NM, b[r] += (t2 - t1) / NM, c[r] += (t3 - t2) / (NM / 4), d[r] += (t4 - t3) / NM;
        }
    }
    qsort(a, REPS, sizeof *a, cmp_d);
    qsort(b, REPS, sizeof *b, cmp_d);
    qsort(c, REPS, sizeof *c, cmp_d);
    qsort(d, REPS, sizeof *d, cmp_d);
    double ta = a[REPS / 2], tb = b[REPS / 2], tc = c[REPS / 2], td = d[REPS / 2];
    printf("{\"kernel\": \"bf16 %dx%d, T=1, %d matrices (%.0f MB)\", \"isa\": \"%s\", \"before_ms\": %.2f, "
           "\"row_path_ms\": %.2f, \"widen_sgemm_ms\": %.2f, \"memread_ms\": %.2f, \"speedup_vs_before\": %.2f, "
           "\"before_GBps\": %.2f, \"row_path_GBps\": %.2f, \"memread_GBps\": %.2f, \"same_bits_as_before\": %s, "
           "\"sink\": %g}\n",
           OUT, IN, NM, NM * n * 2 / 1e6, rs_isa_name(rs_isa_active()), ta * 1e3, tb * 1e3, tc * 1e3, td * 1e3,
           ta / tb, n * 2 / ta / 1e9, n * 2 / tb / 1e9, n * 2 / td / 1e9, same ? "true" : "false", (double)(sink != 0));
    for (int m = 0; m < NM; m++) free(w[m]);
    free(x), free(y), free(y2), free(scratch);
    return same ? 0 : 1;
}

/* --profile: the CPU backend with every entry a decode step uses timed (wall time summed per
 * entry; the LM head is the linear_decode call whose OUT is the vocabulary). */
enum { P_LIN, P_LIN_BIG, P_HEAD, P_SOFTCAP, P_ATTN, P_NORM, P_ROPE, P_GEGLU, P_ADD, P_EMBED, P_OTHER, P_N };
static const char *const P_NAMES[P_N] = {"linear_decode T<=4", "linear_decode T>4 (prefill)", "lm_head", "softcap",
                                         "attention_kv", "rms_norm", "rope", "geglu", "add", "embed", "other"};
static double g_pt[P_N], g_dt[P_N]; /* all calls; calls inside decode steps */
static long g_pn[P_N];
static int g_dec; /* inside a decode step: the last rms_norm/embed had at most OP_LINEAR_SMALL_T rows */
static int g_vocab;
static const rs_backend *g_cpu;
#define TIMED(slot, call)                                                                                          \
    do {                                                                                                           \
        double t0_ = rs_now();                                                                                     \
        call;                                                                                                      \
        double dt_ = rs_now() - t0_;                                                                               \
        g_pt[slot] += dt_, g_pn[slot]++;                                                                           \
        if (g_dec) g_dt[slot] += dt_;                                                                              \
    } while (0)
static void p_lin(float *y, const float *x, const st_tensor *W, float *s, int T, int IN, int OUT) {
    TIMED(OUT == g_vocab ? P_HEAD : T <= OP_LINEAR_SMALL_T ? P_LIN : P_LIN_BIG, g_cpu->linear_decode(y, x, W, s, T, IN, OUT));
}
static void p_softcap(float *x, size_t n, float cap) { TIMED(P_SOFTCAP, g_cpu->softcap(x, n, cap)); }
static void p_attn(float *Z, const float *Q, const int64_t *qo, const float *K, const float *V, const int64_t *ks,
                   const int *kl, int ns, const int *pre, const op_attn_params *p, float *sc, size_t spt) {
    TIMED(P_ATTN, g_cpu->attention_kv(Z, Q, qo, K, V, ks, kl, ns, pre, p, sc, spt));
}
static void p_norm(float *y, const float *x, const float *w, float eps, int T, int D) {
    g_dec = T <= OP_LINEAR_SMALL_T;
    TIMED(P_NORM, g_cpu->rms_norm(y, x, w, eps, T, D));
}
static void p_rope(float *x, int st, int nh, int hd, const int64_t *off, int ns, int po, const float *inv) {
    TIMED(P_ROPE, g_cpu->rope(x, st, nh, hd, off, ns, po, inv));
}
static void p_geglu(float *g, const float *u, size_t n) { TIMED(P_GEGLU, g_cpu->geglu(g, u, n)); }
static void p_add(float *d, const float *s, size_t n) { TIMED(P_ADD, g_cpu->add(d, s, n)); }
static void p_embed(float *y, const st_tensor *E, const int32_t *ids, const uint8_t *keep, int T, int D, float sc) {
    g_dec = T <= OP_LINEAR_SMALL_T;
    TIMED(P_EMBED, g_cpu->embed(y, E, ids, keep, T, D, sc));
}
static rs_backend g_prof;
static void profile_attach(gemma2_model *m) {
    g_cpu = m->be;
    g_prof = *m->be;
    g_prof.name = "cpu+profile";
    g_prof.linear_decode = p_lin, g_prof.softcap = p_softcap, g_prof.attention_kv = p_attn, g_prof.rms_norm = p_norm;
    g_prof.rope = p_rope, g_prof.geglu = p_geglu, g_prof.add = p_add, g_prof.embed = p_embed;
    g_vocab = m->cfg.vocab_size;
    m->be = &g_prof;
}
static void profile_print(double total_s, int n_layers) {
    double sum = 0, dsum = 0;
    long steps = g_pn[P_LIN] / (7L * n_layers); /* q, k, v, o, gate, up, down per layer */
    printf("{\"profile\": \"the prompts after the first\", \"total_s\": %.3f, \"decode_steps\": %ld, \"entries\": {",
           total_s, steps);
    for (int i = 0; i < P_N; i++) {
        printf("%s\"%s\": {\"s\": %.3f, \"calls\": %ld, \"ms_per_decode_step\": %.2f}", i ? ", " : "", P_NAMES[i],
               g_pt[i], g_pn[i], steps ? 1e3 * g_dt[i] / steps : 0.0);
        sum += g_pt[i], dsum += g_dt[i];
    }
    printf("}, \"untimed_s\": %.3f, \"timed_ms_per_decode_step\": %.2f}\n", total_s - sum, steps ? 1e3 * dsum / steps : 0.0);
}

int main(int argc, char **argv) {
    const char *isa = getenv("RS_ISA"); /* the bench, not the library, reads it (as the CLI does) */
    if (isa && *isa && rs_isa_force(rs_isa_parse(isa))) {
        fprintf(stderr, "bench_generate: RS_ISA=%s is unknown or not supported here\n", isa);
        return 2;
    }
    if (argc == 2 && !strcmp(argv[1], "--kernel")) return kernel_bench();
    const char *model = NULL, *ids_file = NULL;
    int n_new = 32, profile = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (i + 1 == argc) break;
        else if (!strcmp(argv[i], "--model")) model = argv[++i];
        else if (!strcmp(argv[i], "--ids-file")) ids_file = argv[++i];
        else if (!strcmp(argv[i], "--new")) n_new = atoi(argv[++i]);
    }
    if (!model || !ids_file || n_new < 2) {
        fprintf(stderr, "usage: bench_generate --model DIR --ids-file F --new N (N >= 2)\n");
        return 2;
    }
    rs_err err = {0};
    gemma2_model *m;
    double t0 = rs_now();
    if (gemma2_open(&m, model, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double load_s = rs_now() - t0;
    if (profile) profile_attach(m);
    FILE *f = fopen(ids_file, "r");
    if (!f) { perror(ids_file); return 1; }
    char line[65536];
    double t_first = 0, t_all = 0;
    int n_prompts = 0, prompt_tokens = 0;
    double prof_t0 = 0, warmup_s = 0;
    printf("{\"side\": \"reprshift\", \"load_s\": %.2f, \"runs\": [", load_s);
    while (fgets(line, sizeof line, f)) {
        int32_t *ids;
        int64_t n;
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) continue;
        if (rs_parse_ids(line, &ids, &n, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        gen_params p = {.max_new_tokens = 2, .temperature = 0, .top_p = 1};
        gen_output o;
        if (!n_prompts) { /* warm-up, untimed: pages the mapped weights in (as the reference's warm-up) */
            double w0 = rs_now();
            if (gen_gemma2(m, ids, (int)n, &p, &o, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            gen_output_free(&o);
            warmup_s = rs_now() - w0;
        }
        p.max_new_tokens = 1;
        double a = rs_now();
        if (gen_gemma2(m, ids, (int)n, &p, &o, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double b = rs_now();
        gen_output_free(&o);
        p.max_new_tokens = n_new;
        if (gen_gemma2(m, ids, (int)n, &p, &o, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double c = rs_now();
        printf("%s{\"prompt_tokens\": %d, \"first_s\": %.3f, \"all_s\": %.3f, \"ids\": [", n_prompts ? ", " : "",
               (int)n, b - a, c - b);
        for (int i = 0; i < o.n; i++) printf(i ? ", %d" : "%d", o.ids[i]);
        printf("]}");
        t_first += b - a;
        t_all += c - b;
        prompt_tokens += (int)n;
        n_prompts++;
        gen_output_free(&o);
        free(ids);
        if (profile && n_prompts == 1) { /* the first prompt pages the weights in: profile the others */
            memset(g_pt, 0, sizeof g_pt), memset(g_dt, 0, sizeof g_dt), memset(g_pn, 0, sizeof g_pn);
            prof_t0 = t_first + t_all;
        }
    }
    fclose(f);
    printf("], \"new_tokens\": %d, \"decode_tok_s\": %.3f, \"prefill_first_s\": %.3f, \"warmup_s\": %.3f, "
           "\"peak_rss_gb\": %.2f}\n", n_new, n_prompts * (n_new - 1) / (t_all - t_first), t_first / n_prompts, warmup_s,
           peak_rss_gb());
    if (profile) profile_print(t_first + t_all - prof_t0, m->cfg.n_layers);
    gemma2_close(m);
    return 0;
}
