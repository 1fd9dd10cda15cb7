/* JumpReLU SAE training (include/reprshift/sae_train.h, docs/sae-training.md):
 *  - loss, L0 and every gradient (straight-through θ terms included) against torch autograd in
 *    float64, and three full update steps (projected W_dec gradient, Adam, renormalised rows)
 *    against torch.optim.Adam (tools/reference/gen_jumprelu_goldens.py →
 *    tests/fixtures/jumprelu/step.safetensors), on the dense and the sparse path;
 *  - recovery of a planted sparse dictionary whose latents fire above per-latent thresholds;
 *  - the trained SAE saved in sae-lens format loads with sae_load and encodes identically. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/sae.h"
#include "reprshift/sae_train.h"
#include "reprshift/safetensors.h"
#include "sae/train_common.h"



static const char *NAMES[5] = {"W_enc", "b_enc", "W_dec", "b_dec", "log_threshold"};

static void load_params(const st_set *s, sae_jr_model *M) {
    float *dst[5] = {M->W_enc, M->b_enc, M->W_dec, M->b_dec, M->log_threshold};
    for (int i = 0; i < 5; i++) st_to_f32(tu_need(s, NAMES[i]), dst[i]);
}

static void golden(void) {
    st_set *s;
    rs_err err;
    if (st_open(&s, "tests/fixtures/jumprelu/step.safetensors", &err)) fail_msg("%s", err.msg);
    const st_tensor *We = tu_need(s, "W_enc");
    int d = (int)We->shape[0], m = (int)We->shape[1], B = (int)tu_need(s, "X")->shape[0];
    float lam = (float)atof(st_meta(s, "lambda")), eps = (float)atof(st_meta(s, "bandwidth")),
          lr = (float)atof(st_meta(s, "lr")), b1 = (float)atof(st_meta(s, "beta1")), b2 = (float)atof(st_meta(s, "beta2"));
    sae_jr_model *M;
    assert_int_equal(sae_jr_new(&M, d, m, &err), 0);
    load_params(s, M);
    float *X = st_to_f32_new(tu_need(s, "X")), *g = calloc(M->n_params, sizeof *g);
    double mse, l0;
    assert_int_equal(sae_jr_loss_grad(M, X, B, lam, eps, g, &mse, &l0, NULL, &err), 0);
    double e_mse = fabs(mse - ((const double *)tu_need(s, "mse")->data)[0]) / ((const double *)tu_need(s, "mse")->data)[0];
    double e_l0 = fabs(l0 - ((const double *)tu_need(s, "l0")->data)[0]);
    fprintf(stderr, "fixture: d %d m %d B %d, lambda %g eps %g, %s kernel entries, min margin %s\n", d, m, B, lam, eps,
            st_meta(s, "kernel_entries"), st_meta(s, "min_margin"));
    fprintf(stderr, "rel err mse %.2e, abs err l0 %.2e\n", e_mse, e_l0);
    assert_true(e_mse < 1e-6);
    assert_true(e_l0 == 0);
    size_t off = 0;
    float *parts[5] = {M->W_enc, M->b_enc, M->W_dec, M->b_dec, M->log_threshold};
    for (int i = 0; i < 5; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "g_%s", NAMES[i]);
        const st_tensor *t = tu_need(s, nm);
        double e = tu_rel_err(g + off, t, 1e-6);
        fprintf(stderr, "grad %-13s rel err %.2e\n", NAMES[i], e);
        assert_true(e < 1e-5);
        off += (size_t)t->numel;
        (void)parts;
    }
    assert_int_equal(off, M->n_params);
    /* three full update steps: projected gradient, torch-equivalent Adam, renormalised rows */
    float *M1 = calloc(M->n_params, sizeof *M1), *M2 = calloc(M->n_params, sizeof *M2);
    for (int t = 1; t <= 3; t++) {
        assert_int_equal(sae_jr_loss_grad(M, X, B, lam, eps, g, &mse, &l0, NULL, &err), 0);
        sae_jr_project_grad(M, g);
        rs_adam_update_f32(M->params, g, M1, M2, M->n_params, lr, b1, b2, 1e-8f, t);
        sae_jr_renorm(M);
    }
    for (int i = 0; i < 5; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "after3_%s", NAMES[i]);
        double e = tu_rel_err(parts[i], tu_need(s, nm), 1e-3);
        fprintf(stderr, "after 3 steps %-13s rel err %.2e\n", NAMES[i], e);
        assert_true(e < 1e-5);
    }
    /* the thresholds did move (the straight-through θ gradient is not zero) */
    float *lt0 = st_to_f32_new(tu_need(s, "log_threshold"));
    double moved = 0;
    for (int i = 0; i < m; i++) moved = fmax(moved, fabs(M->log_threshold[i] - lt0[i]));
    fprintf(stderr, "largest log_threshold change over 3 steps %.3g\n", moved);
    assert_true(moved > 1e-3);
    free(lt0);
    free(M1), free(M2), free(X), free(g);
    sae_jr_free(M);
    st_close(s);
}

/* both the dense path (sgemm) and the sparse path (active / in-kernel entries only) */
static void test_golden(void **st) {
    (void)st;
    sae_jr_set_sparse_max(0);
    fprintf(stderr, "dense path:\n");
    golden();
    sae_jr_set_sparse_max(1);
    fprintf(stderr, "sparse path:\n");
    golden();
    sae_jr_set_sparse_max(0.125);
}

/* ---- planted structure ---- */

static uint64_t S = 11;
static double unif(void) { return tu_xs_unif(&S); }
static double gauss(void) { return tu_xs_gauss(&S); }

enum { PD = 32, NP = 48, PN = 16384 };

/* 48 unit directions in 32 dims; each fires independently with probability 0.06 with
 * coefficient t_p + |N(0, 0.5²)|, t_p ~ U(0.5, 1.5) its threshold; small Gaussian noise. */
static void make_planted(float *D, float *x) {
    S = 11;
    for (int p = 0; p < NP; p++) {
        double nn = 0;
        for (int j = 0; j < PD; j++) D[p * PD + j] = (float)gauss(), nn += D[p * PD + j] * D[p * PD + j];
        for (int j = 0; j < PD; j++) D[p * PD + j] = (float)(D[p * PD + j] / sqrt(nn));
    }
    double t[NP];
    for (int p = 0; p < NP; p++) t[p] = 0.5 + unif();
    memset(x, 0, (size_t)PN * PD * sizeof *x);
    for (int r = 0; r < PN; r++) {
        for (int p = 0; p < NP; p++) {
            if (unif() >= 0.06) continue;
            float a = (float)(t[p] + fabs(0.5 * gauss()));
            for (int j = 0; j < PD; j++) x[(size_t)r * PD + j] += a * D[p * PD + j];
        }
        for (int j = 0; j < PD; j++) x[(size_t)r * PD + j] += (float)(0.01 * gauss()) + 0.2f;
    }
}

static double planted_recovered(const float *D, const rs_sae *sae, double *mean_max) {
    int hit = 0;
    *mean_max = 0;
    for (int p = 0; p < NP; p++) {
        double best = -1;
        for (int g = 0; g < sae->d_sae; g++) {
            const float *w = sae->W_dec + (size_t)g * PD;
            double c = 0, nn = 0;
            for (int j = 0; j < PD; j++) c += (double)D[p * PD + j] * w[j], nn += (double)w[j] * w[j];
            c = nn > 0 ? c / sqrt(nn) : 0;
            best = c > best ? c : best;
        }
        hit += best > 0.9;
        *mean_max += best / NP;
    }
    return (double)hit / NP;
}

static void test_planted_recovery(void **st) {
    (void)st;
    float *D = malloc((size_t)NP * PD * sizeof *D), *x = malloc((size_t)PN * PD * sizeof *x);
    make_planted(D, x);
    sae_jr_opts o;
    sae_jr_opts_default(&o);
    o.d_sae = 96;
    o.steps = 3000;
    o.batch = 128;
    o.lr = 3e-3f;
    o.lambda = 0.01f;
    o.bandwidth = 0.05f;
    o.init_threshold = 0.05f;
    o.beta1 = 0.0f;
    rs_sae *sae;
    sae_train_report rep;
    rs_err err;
    sae_jr_model *M;
    float scale;
    if (sae_train_jumprelu(x, PN, PD, &o, &sae, &rep, &M, &scale, &err)) fail_msg("%s", err.msg);
    double mean_max, frac = planted_recovered(D, sae, &mean_max);
    /* Wilson 95% interval of the recovered fraction over the NP planted latents */
    double z = 1.959964, ph = frac, den = 1 + z * z / NP, ctr = (ph + z * z / (2 * NP)) / den,
           hw = z * sqrt(ph * (1 - ph) / NP + z * z / (4.0 * NP * NP)) / den;
    double th_mean = 0;
    for (int i = 0; i < sae->d_sae; i++) th_mean += sae->threshold[i] / sae->d_sae;
    fprintf(stderr, "planted: %d latents, %d rows; learned %d latents: recovered (max cos > 0.9) %.3f (%d/%d, "
                    "Wilson 95%% CI [%.3f, %.3f]), mean max "
                    "cos %.4f, FVU %.4f, L0 %.2f (planted %.2f), dead %lld, mean threshold %.3f\n",
            NP, PN, o.d_sae, frac, (int)lround(frac * NP), NP, ctr - hw, ctr + hw, mean_max, rep.final_fvu, rep.final_l0, 0.06 * NP,
            (long long)rep.dead_at_end, th_mean);
    assert_true(frac >= 0.9);
    assert_true(rep.final_fvu < 0.1);
    /* the folded SAE on raw rows = the trained model on scaled rows (same active set, same x̂/s) */
    enum { NR = 256 };
    float *acts = malloc((size_t)NR * o.d_sae * sizeof *acts), *xs = malloc((size_t)NR * PD * sizeof *xs),
          *g = malloc(M->n_params * sizeof *g);
    assert_int_equal(sae_encode(sae, x, NR, acts, &err), 0);
    for (size_t j = 0; j < (size_t)NR * PD; j++) xs[j] = x[j] * scale;
    int64_t *cnt = calloc(o.d_sae, sizeof *cnt), on = 0;
    double mse, l0;
    assert_int_equal(sae_jr_loss_grad(M, xs, NR, 0, 1, g, &mse, &l0, cnt, &err), 0);
    for (size_t j = 0; j < (size_t)NR * o.d_sae; j++) on += acts[j] > 0;
    fprintf(stderr, "folded SAE: L0 on %d rows %.4f, trained model %.4f\n", NR, (double)on / NR, l0);
    assert_true(fabs((double)on / NR - l0) < 0.05); /* float rounding at the threshold only */
    /* saved in sae-lens format, reloaded by sae_load: identical features */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/jumprelu", tu_tmpdir());
    sae->hook_name = strdup("blocks.0.hook_resid_post");
    assert_int_equal(sae_save_sae_lens(sae, dir, &err), 0);
    rs_sae *back;
    if (sae_load(&back, dir, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(back->arch, SAE_ARCH_JUMPRELU);
    assert_int_equal(back->apply_b_dec_to_input, 0);
    assert_string_equal(back->hook_name, "blocks.0.hook_resid_post");
    float *acts2 = malloc((size_t)NR * o.d_sae * sizeof *acts2);
    assert_int_equal(sae_encode(back, x, NR, acts2, &err), 0);
    assert_memory_equal(acts, acts2, (size_t)NR * o.d_sae * sizeof *acts);
    sae_free(back);
    free(acts), free(acts2), free(xs), free(g), free(cnt);
    sae_jr_free(M);
    sae_free(sae);
    free(D), free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_planted_recovery),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
