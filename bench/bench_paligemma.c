/* PaliGemma-2 throughput: images/s and peak RSS for the SigLIP tower alone (hook
 * vision.ln_post) or through a decoder layer (e.g. blocks.12.hook_resid_post, prompt
 * "caption en\n"), batches of B images. Run by bench/run_paligemma_bench.sh beside the
 * transformers reference (bench_paligemma_ref.py). Prints one JSON line.
 *   bench_paligemma --model DIR --hook H [--batch 8] [--repeat 1] [--suffix-ids FILE] [--save OUT.f32]
 *                   [--prompt-ids 21209,659,108] [--profile] [--tower-f32] [--precision fp32|bf16]
 *                   [--sgemm-route auto|blas|onednn] [--attn-route auto|blas|fused]
 *                   [--bf16-route auto|native|emulated] IMAGE...
 * --suffix-ids: line i holds image i's caption suffix ids (caption tokens + <eos>, no <bos>),
 * appended after the prompt as PaliGemmaProcessor(suffix=caption) does; --save writes the
 * hook's rows of the last repetition as raw float32 (image order; decoder hooks: every token).
 * Time split as in bench_gemma2.c: cblas_sgemm is defined here and forwards to the BLAS's;
 * the calls outside a parallel region (the linear layers, the projector, the patch
 * embedding) are timed, the rest (attention, norms, GELU, widening) is "other". --profile
 * splits it further: every backend entry timed (backend_profile.h), printed as a
 * {"profile": ...} line for the fastest repetition before the result line. --tower-f32: keep
 * an f32 copy of the vision tower's weight matrices (siglip_keep_f32_weights, after loading;
 * its time is "tower_f32_s", not in "load_s"), so the tower no longer widens them per call.
 * --precision bf16: tower, projector and decoder on the bf16 backend (as `extract --precision
 * bf16`; docs/precision.md); "bf16_products" says which product route ran. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/image.h"
#include "reprshift/paligemma.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/progress.h"
#include "reprshift/ops_bf16.h"
#include "gemm_now.h"
#include "reprshift/blas.h"
#include "bench_util.h"
#define BENCH_PROG "bench_paligemma"
#include "sgemm_timed.h"
#include "backend_profile.h"

int main(int argc, char **argv) {
    const char *model = NULL, *hook = "vision.ln_post", *suffix_file = NULL, *save = NULL,
               *prompt_arg = "21209,659,108";
    int batch = 8, repeat = 1, n_img = 0, profile = 0, tower_f32 = 0;
    rs_precision prec = RS_PREC_FP32;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--hook") && i + 1 < argc) hook = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--suffix-ids") && i + 1 < argc) suffix_file = argv[++i];
        else if (!strcmp(argv[i], "--save") && i + 1 < argc) save = argv[++i];
        else if (!strcmp(argv[i], "--prompt-ids") && i + 1 < argc) prompt_arg = argv[++i];
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "--tower-f32")) tower_f32 = 1;
        else if (!strcmp(argv[i], "--attn-route") && i + 1 < argc) {
            if (bench_attn_route(argv[++i])) return 2;
        }
        else if (!strcmp(argv[i], "--sgemm-route") && i + 1 < argc) {
            if (bench_sgemm_route(argv[++i])) return 2;
        }
        else if (!strcmp(argv[i], "--bf16-route") && i + 1 < argc) {
            if (bench_bf16_route(argv[++i])) return 2;
        }
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            if (rs_precision_parse(argv[++i], &prec)) { fprintf(stderr, "--precision: fp32 or bf16\n"); return 2; }
        }
        else paths[n_img++] = argv[i];
    }
    if (!model || n_img < 1 || batch < 1 || repeat < 1) {
        fprintf(stderr, "usage: bench_paligemma --model DIR --hook H [--batch B] [--repeat R] [--profile] [--tower-f32] IMAGE...\n");
        return 2;
    }
    rs_err err = {0};
    double t0 = rs_now();
    paligemma_model *m;
    if (paligemma_open(&m, model, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double load_s = rs_now() - t0, f32_s = 0;
    if (tower_f32) {
        t0 = rs_now();
        if (siglip_keep_f32_weights(m->vision, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        f32_s = rs_now() - t0;
    }
    paligemma_set_backend(m, rs_backend_for(prec));
    if (profile) paligemma_set_backend(m, prof_attach(m->be));
    int S = m->cfg.vision.image_size, N = m->vision->n_patches;
    size_t npix = (size_t)3 * S * S;
    float *pix = malloc((size_t)n_img * npix * sizeof(float));
    t0 = rs_now();
    for (int i = 0; i < n_img; i++) {
        rs_image img = {0};
        if (rs_image_load(paths[i], &img, &err) || rs_siglip_preprocess(&img, S, NULL, pix + (size_t)i * npix, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        rs_image_free(&img);
    }
    double prep_s = rs_now() - t0;
    hook_request h;
    if (paligemma_hook_parse(m, hook, &h, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    /* one input per image: <image>xN <bos> "caption en" "\n" (Gemma ids 21209 659 108)
       [+ that image's caption suffix] */
    int32_t *prompt;
    int64_t n_prompt;
    if (rs_parse_ids(prompt_arg, &prompt, &n_prompt, &err)) { fprintf(stderr, "--prompt-ids: %s\n", err.msg); return 1; }
    int32_t **sfx = calloc((size_t)n_img, sizeof *sfx);
    int64_t *nsfx = calloc((size_t)n_img, sizeof *nsfx);
    if (suffix_file) {
        char *buf;
        if (rs_read_file(suffix_file, 1 << 26, &buf, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        int k = 0;
        for (char *sv = NULL, *line = strtok_r(buf, "\n", &sv); line && k < n_img; line = strtok_r(NULL, "\n", &sv), k++)
            if (rs_parse_ids(line, &sfx[k], &nsfx[k], &err)) { fprintf(stderr, "%s: %s\n", suffix_file, err.msg); return 1; }
        free(buf);
        if (k < n_img) { fprintf(stderr, "%s: %d lines for %d images\n", suffix_file, k, n_img); return 1; }
    }
    int64_t *len = malloc((size_t)n_img * sizeof *len), maxlen = 0, tokens = 0;
    int32_t **one = malloc((size_t)n_img * sizeof *one);
    int P = 0;
    for (int i = 0; i < n_img; i++) {
        uint8_t *kinds;
        if (paligemma_build_input(m, 1, prompt, (int)n_prompt, sfx[i], (int)nsfx[i], &one[i], &kinds, &len[i], &P, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        free(kinds);
        if (len[i] > maxlen) maxlen = len[i];
        tokens += len[i];
    }
    int32_t *ids = malloc((size_t)batch * maxlen * sizeof *ids);
    int64_t *off = malloc((size_t)(batch + 1) * sizeof *off);
    int *pl = malloc((size_t)batch * sizeof *pl);
    FILE *fsave = NULL;
    double best = 1e30, best_lin_s = 0, best_lin_flop = 0, best_pf_s[PF_N], best_pf_lin = 0, best_pf_lg = 0;
    long best_pf_n[PF_N];
    for (int r = 0; r < repeat; r++) {
        prof_reset();
        if (save && r == repeat - 1 && !(fsave = fopen(save, "wb"))) { fprintf(stderr, "cannot write %s\n", save); return 1; }
        lin_s = lin_flop = 0;
        t0 = rs_now();
        for (int i0 = 0; i0 < n_img; i0 += batch) {
            int nb = n_img - i0 < batch ? n_img - i0 : batch;
            off[0] = 0;
            for (int b = 0; b < nb; b++) {
                memcpy(ids + off[b], one[i0 + b], (size_t)len[i0 + b] * sizeof *ids);
                off[b + 1] = off[b] + len[i0 + b];
                pl[b] = P;
            }
            paligemma_batch b = {.n_seqs = nb, .offsets = off, .ids = ids, .prefix_len = pl, .n_images = nb,
                                 .pixel_values = pix + (size_t)i0 * npix};
            if (paligemma_forward(m, &b, &h, 1, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            if (fsave) {
                double ts = rs_now(); /* not timed */
                size_t rows = h.id.tower != RS_TOWER_DECODER ? (size_t)nb * N : (size_t)off[nb];
                if (fwrite(h.out, sizeof(float) * h.width, rows, fsave) != rows) { fprintf(stderr, "cannot write %s\n", save); return 1; }
                t0 += rs_now() - ts;
            }
            hook_requests_free(&h, 1);
        }
        double dt = rs_now() - t0;
        if (dt < best) {
            best = dt, best_lin_s = lin_s, best_lin_flop = lin_flop;
            memcpy(best_pf_s, pf_s, sizeof pf_s), memcpy(best_pf_n, pf_n, sizeof pf_n);
            best_pf_lin = pf_lin_sgemm_s, best_pf_lg = pf_lg_sgemm_s;
        }
        if (fsave && fclose(fsave)) { fprintf(stderr, "cannot write %s\n", save); return 1; }
        fsave = NULL;
    }
    double g_now_s = gemm_now(1), g_now_g = h.id.tower != RS_TOWER_DECODER ? 0 : gemm_now(0);
    if (profile) {
        memcpy(pf_s, best_pf_s, sizeof pf_s), memcpy(pf_n, best_pf_n, sizeof pf_n);
        pf_lin_sgemm_s = best_pf_lin, pf_lg_sgemm_s = best_pf_lg;
        prof_print_json(best);
    }
    printf("{\"impl\": \"reprshift\", \"hook\": \"%s\", \"images\": %d, \"batch\": %d, \"image_size\": %d, "
           "\"tokens_per_image\": %lld, \"seconds\": %.3f, \"images_per_s\": %.3f, \"peak_rss_gb\": %.2f, "
           "\"load_s\": %.2f, \"preprocess_s\": %.3f, \"decoder_tokens\": %lld, \"linear_sgemm_s\": %.3f, "
           "\"linear_sgemm_gflops\": %.1f, \"other_s\": %.3f, \"blas_kernel\": \"%s\", \"linear_route\": \"%s\", \"attention_route\": \"%s\", "
           "\"gemm_now_siglip_gflops\": %.1f, \"gemm_now_gemma2_gflops\": %.1f, \"tower_f32\": %d, \"tower_f32_s\": %.2f, "
           "\"precision\": \"%s\", \"bf16_products\": \"%s\"}\n",
           hook, n_img, batch, S, (long long)(h.id.tower != RS_TOWER_DECODER ? N : tokens / n_img), best, n_img / best,
           peak_rss_gb(), load_s, prep_s, (long long)tokens, best_lin_s,
           best_lin_s > 0 ? best_lin_flop / best_lin_s / 1e9 : 0.0, best - best_lin_s, openblas_get_corename(), rs_sgemm_path(), op_attn_route_name(op_attn_route()), g_now_s, g_now_g, tower_f32, f32_s,
           rs_precision_name(prec), prec == RS_PREC_BF16 ? op_bf16_gemm_path() : "-");
    for (int i = 0; i < n_img; i++) free(one[i]), free(sfx[i]);
    free(one); free(sfx); free(prompt); free(nsfx); free(len); free(ids); free(off); free(pl); free(pix); free(paths);
    paligemma_close(m);
    return 0;
}
