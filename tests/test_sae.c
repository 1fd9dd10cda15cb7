/* SAE loading + encode/decode vs sae-lens (tools/reference/gen_sae_goldens.py): folders
 * written by sae-lens save_model (v6 configs, and pre-6 configs read by sae-lens's own
 * handle_pre_6_0_config), Gemma Scope params.npz (stored; deflated with w_* aliases);
 * features within 1e-5 relative with identical active sets; fit metrics vs sae-lens evals
 * (explained variance) and numpy formulas; bad inputs. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "reprshift/sae.h"
#include "reprshift/sae_fit.h"
#include "reprshift/safetensors.h"

#define FX "tests/fixtures/sae/"
#define HOOK "blocks.3.hook_resid_post"

static st_set *G;
static const float *X;
static int N, D = 64, M = 128;

static int setup(void **st) {
    (void)st;
    rs_err err;
    if (st_open(&G, FX "sae_golden.safetensors", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    const st_tensor *t = st_get(G, "x");
    X = t->data;
    N = (int)t->shape[0];
    return 0;
}

static int teardown(void **st) {
    (void)st;
    st_close(G);
    return 0;
}

static void check_case(const char *path, const char *golden, sae_arch arch) {
    rs_err err;
    rs_sae *s;
    if (sae_load(&s, path, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(s->arch, arch);
    assert_int_equal(s->d_in, D);
    assert_int_equal(s->d_sae, M);
    float *acts = malloc((size_t)N * M * sizeof *acts), *rec = malloc((size_t)N * D * sizeof *rec);
    if (sae_encode(s, X, N, acts, &err)) fail_msg("%s", err.msg);
    if (sae_decode(s, acts, X, N, rec, &err)) fail_msg("%s", err.msg);
    char name[128], label[256];
    snprintf(name, sizeof name, "%s.acts", golden);
    const st_tensor *ra = st_get(G, name);
    assert_non_null(ra);
    const float *ref = ra->data;
    int active = 0;
    for (int i = 0; i < N * M; i++) {
        if ((ref[i] != 0) != (acts[i] != 0))
            fail_msg("%s: active set differs at row %d feature %d (ref %g got %g)", golden, i / M, i % M, ref[i], acts[i]);
        active += ref[i] != 0;
    }
    assert_true(active > N); /* the case exercises real activity */
    assert_true(active < N * M);
    snprintf(label, sizeof label, "%s features", golden);
    tu_assert_close_rel(ref, acts, (size_t)N * M, 1e-5, label);
    snprintf(name, sizeof name, "%s.recon", golden);
    snprintf(label, sizeof label, "%s reconstruction", golden);
    tu_assert_close_rel(st_get(G, name)->data, rec, (size_t)N * D, 1e-5, label);
    printf("# %s: features %.2g, reconstruction %.2g x max|ref|; active sets identical (%d of %d)\n", golden,
           tu_max_abs_diff(ref, acts, (size_t)N * M) / tu_max_abs(ref, (size_t)N * M),
           tu_max_abs_diff(st_get(G, name)->data, rec, (size_t)N * D) / tu_max_abs(st_get(G, name)->data, (size_t)N * D),
           active, N * M);
    /* sae_forward (chunked, in place) equals encode+decode */
    float *buf = malloc((size_t)N * D * sizeof *buf);
    memcpy(buf, X, (size_t)N * D * sizeof *buf);
    if (sae_reconstruct(s, buf, N, buf, &err)) fail_msg("%s", err.msg);
    tu_assert_close_rel(rec, buf, (size_t)N * D, 1e-6, "in-place reconstruct");
    assert_int_equal(sae_check_hook(s, HOOK, 0, &err), 0);
    free(buf);
    free(acts);
    free(rec);
    sae_free(s);
}

static void test_saelens_v6(void **st) {
    (void)st;
    check_case(FX "saelens_standard", "standard", SAE_ARCH_STANDARD);
    check_case(FX "saelens_standard_nobdec", "standard_nobdec", SAE_ARCH_STANDARD);
    check_case(FX "saelens_standard_layernorm", "standard_layernorm", SAE_ARCH_STANDARD);
    check_case(FX "saelens_standard_cnr", "standard_cnr", SAE_ARCH_STANDARD);
    check_case(FX "saelens_jumprelu", "jumprelu", SAE_ARCH_JUMPRELU);
    check_case(FX "saelens_topk", "topk", SAE_ARCH_TOPK);
    check_case(FX "saelens_topk_rescale", "topk_rescale", SAE_ARCH_TOPK);
}

static void test_saelens_pre6(void **st) {
    (void)st;
    check_case(FX "saelens_pre6_topk", "pre6_topk", SAE_ARCH_TOPK);
    check_case(FX "saelens_pre6_standard", "pre6_standard", SAE_ARCH_STANDARD);
    rs_sae *s;
    rs_err err;
    assert_int_equal(sae_load(&s, FX "saelens_pre6_topk", NULL, &err), 0);
    assert_int_equal(s->k, 9);
    sae_free(s);
    assert_int_equal(sae_load(&s, FX "saelens_pre6_standard", NULL, &err), 0);
    assert_int_equal(s->normalize, SAE_NORM_EXPECTED_AVERAGE_ONLY_IN);
    sae_free(s);
}

static void test_gemma_scope_npz(void **st) {
    (void)st;
    const char *gs = FX "gemma-scope-2b-pt-res/layer_3/width_128/average_l0_5";
    check_case(gs, "gemmascope", SAE_ARCH_JUMPRELU);
    char p[512];
    snprintf(p, sizeof p, "%s/params.npz", gs);
    check_case(p, "gemmascope", SAE_ARCH_JUMPRELU);
    rs_sae *s;
    rs_err err;
    assert_int_equal(sae_load(&s, gs, NULL, &err), 0);
    assert_int_equal(s->apply_b_dec_to_input, 0);
    assert_string_equal(s->hook_name, HOOK); /* derived from layer_3 in a -res path */
    assert_int_equal(s->hook_from_path, 1);
    /* the hook must match unless overridden */
    assert_int_equal(sae_check_hook(s, "blocks.2.hook_resid_post", 0, &err), -1);
    assert_non_null(strstr(err.msg, "blocks.2.hook_resid_post"));
    assert_int_equal(sae_check_hook(s, "blocks.2.hook_resid_post", 1, &err), 0);
    sae_free(s);
    /* deflated + lowercase w_* aliases; no layer in path → no hook unless given */
    assert_int_equal(sae_load(&s, FX "gemma-scope-alias", NULL, &err), 0);
    assert_null(s->hook_name);
    assert_int_equal(sae_check_hook(s, HOOK, 0, &err), -1);
    float *a = malloc((size_t)N * M * sizeof *a);
    assert_int_equal(sae_encode(s, X, N, a, &err), 0);
    tu_assert_close_rel(st_get(G, "gemmascope.acts")->data, a, (size_t)N * M, 1e-5, "alias npz");
    free(a);
    sae_free(s);
    assert_int_equal(sae_load(&s, FX "gemma-scope-alias", "blocks.9.hook_mlp_out", &err), 0);
    assert_string_equal(s->hook_name, "blocks.9.hook_mlp_out");
    sae_free(s);
}

static void expect_load_fail(const char *path, const char *needle) {
    rs_err err = {0};
    rs_sae *s = NULL;
    if (sae_load(&s, path, NULL, &err) == 0) fail_msg("%s: expected failure", path);
    assert_null(s);
    if (!strstr(err.msg, needle)) fail_msg("%s: message '%s' lacks '%s'", path, err.msg, needle);
}

static void test_bad_inputs(void **st) {
    (void)st;
    expect_load_fail(FX "bad_missing", "threshold");
    expect_load_fail(FX "bad_missing", "params.npz");
    expect_load_fail(FX "bad_shape", "W_dec");
    expect_load_fail(FX "bad_arch", "unknown SAE architecture 'gated_mystery'");
    expect_load_fail(FX "bad_arch", "cfg.json");
    expect_load_fail(FX "nonexistent_sae", "nonexistent_sae");
    expect_load_fail(FX "bad_truncated.npz", "bad_truncated.npz");
    /* NaN / Inf activations */
    rs_sae *s;
    rs_err err;
    assert_int_equal(sae_load(&s, FX "saelens_standard", NULL, &err), 0);
    float *x = malloc((size_t)N * D * sizeof *x), *a = malloc((size_t)N * M * sizeof *a);
    memcpy(x, X, (size_t)N * D * sizeof *x);
    x[5 * D + 7] = NAN;
    assert_int_equal(sae_encode(s, x, N, a, &err), -1);
    assert_non_null(strstr(err.msg, "row 5"));
    assert_non_null(strstr(err.msg, "NaN"));
    x[5 * D + 7] = INFINITY;
    assert_int_equal(sae_encode(s, x, N, a, &err), -1);
    assert_non_null(strstr(err.msg, "Inf"));
    free(x);
    free(a);
    sae_free(s);
}

static void test_fit_metrics(void **st) {
    (void)st;
    rs_sae *s;
    rs_err err;
    assert_int_equal(sae_load(&s, FX "gemma-scope-2b-pt-res/layer_3/width_128/average_l0_5", NULL, &err), 0);
    const int32_t *mask = st_get(G, "fit.mask")->data;
    uint8_t *inc = malloc((size_t)N);
    for (int i = 0; i < N; i++) inc[i] = (uint8_t)mask[i];
    sae_fit_metrics in, out;
    if (sae_fit_eval(s, X, N, inc, &in, &out, NULL, &err)) fail_msg("%s", err.msg);
    cJSON *fit = cJSON_Parse(st_meta(G, "fit"));
    assert_non_null(fit);
#define CHK(field, key, tol)                                                                        \
    do {                                                                                            \
        double ref = cJSON_GetObjectItem(fit, key)->valuedouble;                                    \
        if (!(fabs(in.field - ref) <= tol * fmax(1.0, fabs(ref))))                                   \
            fail_msg("%s: got %.9g ref %.9g", key, in.field, ref);                                  \
    } while (0)
    CHK(explained_variance, "explained_variance", 1e-5);
    CHK(mse, "mse", 1e-5);
    CHK(relative_mse, "relative_mse", 1e-5);
    CHK(cossim, "cossim", 1e-5);
    CHK(l0, "l0", 1e-9);
    CHK(l1, "l1", 1e-5);
    CHK(frac_alive, "frac_alive", 1e-12);
    CHK(frac_dead, "frac_dead", 1e-12);
    CHK(mean_max_act, "mean_max_act", 1e-5);
    assert_int_equal(in.n_rows, (int64_t)cJSON_GetObjectItem(fit, "n_rows")->valuedouble);
    assert_int_equal(out.n_rows, N - in.n_rows);
    double bos = cJSON_GetObjectItem(fit, "bos_mse")->valuedouble;
    assert_true(fabs(out.mse - bos) <= 1e-5 * bos);
    cJSON_Delete(fit);
    free(inc);
    sae_free(s);
}

static void test_save_roundtrip(void **st) {
    (void)st;
    rs_sae *s, *t;
    rs_err err;
    assert_int_equal(sae_load(&s, FX "saelens_topk_rescale", NULL, &err), 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sae_out", tu_tmpdir());
    if (sae_save_sae_lens(s, dir, &err)) fail_msg("%s", err.msg);
    if (sae_load(&t, dir, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(t->arch, SAE_ARCH_TOPK);
    assert_int_equal(t->k, s->k);
    assert_int_equal(t->rescale_acts_by_decoder_norm, 1);
    assert_string_equal(t->hook_name, HOOK);
    assert_memory_equal(t->W_enc, s->W_enc, (size_t)D * M * sizeof(float));
    assert_memory_equal(t->W_dec, s->W_dec, (size_t)D * M * sizeof(float));
    sae_free(s);
    sae_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saelens_v6),
        cmocka_unit_test(test_saelens_pre6),
        cmocka_unit_test(test_gemma_scope_npz),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_fit_metrics),
        cmocka_unit_test(test_save_roundtrip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
