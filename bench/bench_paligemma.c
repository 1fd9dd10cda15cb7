/* PaliGemma-2 throughput: images/s and peak RSS for the SigLIP tower alone (hook
 * vision.ln_post) or through a decoder layer (e.g. blocks.12.hook_resid_post, prompt
 * "caption en\n"), batches of B images. Run by bench/run_paligemma_bench.sh beside the
 * transformers reference (bench_paligemma_ref.py). Prints one JSON line.
 *   bench_paligemma --model DIR --hook H [--batch 8] [--repeat 1] IMAGE... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "reprshift/image.h"
#include "reprshift/paligemma.h"
#include "reprshift/progress.h"

static double peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / (1024.0 * 1024.0);
}

int main(int argc, char **argv) {
    const char *model = NULL, *hook = "vision.ln_post";
    int batch = 8, repeat = 1, n_img = 0;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--hook") && i + 1 < argc) hook = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else paths[n_img++] = argv[i];
    }
    if (!model || n_img < 1 || batch < 1 || repeat < 1) {
        fprintf(stderr, "usage: bench_paligemma --model DIR --hook H [--batch B] [--repeat R] IMAGE...\n");
        return 2;
    }
    rs_err err = {0};
    double t0 = rs_now();
    paligemma_model *m;
    if (paligemma_open(&m, model, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double load_s = rs_now() - t0;
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
    /* one input per image: <image>xN <bos> "caption en" "\n" (Gemma ids 21209 659 108) */
    const int32_t prompt[3] = {21209, 659, 108};
    int32_t *one;
    uint8_t *kinds;
    int64_t len;
    int P;
    if (paligemma_build_input(m, 1, prompt, 3, NULL, 0, &one, &kinds, &len, &P, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int32_t *ids = malloc((size_t)batch * len * sizeof *ids);
    int64_t *off = malloc((size_t)(batch + 1) * sizeof *off);
    int *pl = malloc((size_t)batch * sizeof *pl);
    for (int b = 0; b < batch; b++) {
        memcpy(ids + (size_t)b * len, one, (size_t)len * sizeof *ids);
        off[b] = (int64_t)b * len;
        pl[b] = P;
    }
    double best = 1e30;
    for (int r = 0; r < repeat; r++) {
        t0 = rs_now();
        for (int i0 = 0; i0 < n_img; i0 += batch) {
            int nb = n_img - i0 < batch ? n_img - i0 : batch;
            off[nb] = (int64_t)nb * len;
            paligemma_batch b = {.n_seqs = nb, .offsets = off, .ids = ids, .prefix_len = pl, .n_images = nb,
                                 .pixel_values = pix + (size_t)i0 * npix};
            if (paligemma_forward(m, &b, &h, 1, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            hook_requests_free(&h, 1);
        }
        double dt = rs_now() - t0;
        if (dt < best) best = dt;
    }
    printf("{\"impl\": \"reprshift\", \"hook\": \"%s\", \"images\": %d, \"batch\": %d, \"image_size\": %d, "
           "\"tokens_per_image\": %lld, \"seconds\": %.3f, \"images_per_s\": %.3f, \"peak_rss_gb\": %.2f, "
           "\"load_s\": %.2f, \"preprocess_s\": %.3f}\n",
           hook, n_img, batch, S, (long long)(h.id.tower != RS_TOWER_DECODER ? N : len), best, n_img / best, peak_rss_gb(),
           load_s, prep_s);
    free(one); free(kinds); free(ids); free(off); free(pl); free(pix); free(paths);
    paligemma_close(m);
    return 0;
}
