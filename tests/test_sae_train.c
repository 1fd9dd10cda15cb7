/* TopK SAE training recovers a known sparse dictionary: data x = Σ_{f∈S} c_f·D_f with |S| = 3
 * random unit directions out of 48 in 32 dims; after training, every true direction should
 * have a learned decoder row with cosine close to 1 (mean of the max cosines > 0.9). The
 * trained SAE is saved in sae-lens format and reloaded (tools/reference/check_sae_train.py
 * confirms sae-lens itself loads such a folder and encodes identically). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/sae.h"
#include "reprshift/sae_train.h"

static uint64_t S = 99;
static double unif(void) { return tu_xs_unif(&S); }
static double gauss(void) { return tu_xs_gauss(&S); }

static void test_recovers_dictionary(void **st) {
    (void)st;
    const int d = 32, nt = 48, s = 3, n = 16384;
    float *D = malloc((size_t)nt * d * sizeof *D), *x = calloc((size_t)n * d, sizeof *x);
    for (int f = 0; f < nt; f++) {
        double norm = 0;
        for (int i = 0; i < d; i++) {
            D[f * d + i] = (float)gauss();
            norm += D[f * d + i] * D[f * d + i];
        }
        for (int i = 0; i < d; i++) D[f * d + i] /= (float)sqrt(norm);
    }
    for (int r = 0; r < n; r++) {
        int used[3] = {-1, -1, -1};
        for (int j = 0; j < s; j++) {
            int f;
            do f = (int)(unif() * nt);
            while (f == used[0] || f == used[1] || f == used[2]);
            used[j] = f;
            float c = (float)(0.5 + unif());
            for (int i = 0; i < d; i++) x[(size_t)r * d + i] += c * D[f * d + i];
        }
        for (int i = 0; i < d; i++) x[(size_t)r * d + i] += 0.3f; /* a constant offset for b_dec */
    }
    sae_train_opts o;
    sae_train_opts_default(&o);
    o.d_sae = 96;
    o.k = 3;
    o.steps = 1500;
    o.batch = 128;
    o.lr = 3e-3f;
    o.dead_after = 4096;
    rs_sae *sae;
    sae_train_report rep;
    rs_err err;
    if (sae_train_topk(x, n, d, &o, &sae, &rep, &err)) fail_msg("%s", err.msg);
    double mean_max = 0;
    for (int f = 0; f < nt; f++) {
        double best = -1;
        for (int g = 0; g < o.d_sae; g++) {
            double c = 0, nn = 0;
            for (int i = 0; i < d; i++) {
                c += (double)D[f * d + i] * sae->W_dec[(size_t)g * d + i];
                nn += (double)sae->W_dec[(size_t)g * d + i] * sae->W_dec[(size_t)g * d + i];
            }
            c /= sqrt(nn);
            if (c > best) best = c;
        }
        mean_max += best / nt;
    }
    fprintf(stderr, "mean max cosine %.4f, final FVU %.4f, dead %lld\n", mean_max, rep.final_fvu, (long long)rep.dead_at_end);
    assert_true(mean_max > 0.9);
    assert_true(rep.final_fvu < 0.2);
    /* save in sae-lens format and reload: same features */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/trained", tu_tmpdir());
    free(sae->hook_name);
    sae->hook_name = strdup("blocks.0.hook_resid_post");
    if (sae_save_sae_lens(sae, dir, &err)) fail_msg("%s", err.msg);
    rs_sae *back;
    if (sae_load(&back, dir, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(back->arch, SAE_ARCH_TOPK);
    assert_int_equal(back->k, 3);
    assert_int_equal(back->apply_b_dec_to_input, 1);
    float *a1 = malloc((size_t)64 * o.d_sae * sizeof *a1), *a2 = malloc((size_t)64 * o.d_sae * sizeof *a2);
    assert_int_equal(sae_encode(sae, x, 64, a1, &err), 0);
    assert_int_equal(sae_encode(back, x, 64, a2, &err), 0);
    assert_memory_equal(a1, a2, (size_t)64 * o.d_sae * sizeof *a1);
    free(a1);
    free(a2);
    sae_free(back);
    sae_free(sae);
    free(D);
    free(x);
}

static void test_bad_args(void **st) {
    (void)st;
    float x[4] = {1, 2, NAN, 4};
    sae_train_opts o;
    sae_train_opts_default(&o);
    o.d_sae = 4;
    o.k = 2;
    rs_sae *s;
    rs_err err;
    assert_int_equal(sae_train_topk(x, 2, 2, &o, &s, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "not finite"));
    o.k = 5;
    x[2] = 0;
    assert_int_equal(sae_train_topk(x, 2, 2, &o, &s, NULL, &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovers_dictionary),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
