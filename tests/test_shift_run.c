/* The shift pipeline end to end (shift_run, used by `reprshift shift`): activation files in
 * the `reprshift extract` layout built from the numpy shift golden, the sae-lens jumprelu
 * fixture SAE; results.json values must equal the numpy statistics (features recomputed by
 * our encoder, checked against sae-lens in test_sae). Bad inputs: hook mismatch, d_in
 * mismatch, NaN activations, missing hook, unknown architecture. The special ids come from
 * the files' special_token_ids metadata. */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "base/jsonutil.h"
#include "reprshift/safetensors.h"
#include "reprshift/shift_run.h"
#include "reprshift/stats.h"

#define FX "tests/fixtures/sae/"
#define HOOK "blocks.3.hook_resid_post"

static st_set *G;
static char DIR_[256];

static int setup(void **st) {
    (void)st;
    rs_err err;
    if (st_open(&G, FX "shift_golden.safetensors", &err)) return -1;
    snprintf(DIR_, sizeof DIR_, "%s", tu_tmpdir());
    return 0;
}

static int teardown(void **st) {
    (void)st;
    st_close(G);
    return 0;
}

/* Write an extract-style file: hook tensor, token_ids, offsets, and the special_token_ids
 * metadata when special is non-NULL (as extract writes it; older files have none). */
static void write_acts_sp(const char *path, const char *hook, const float *x, int64_t n, int64_t d, const int32_t *ids,
                          const int64_t *off, int64_t n_in, const char *special) {
    rs_err err;
    st_writer *w = st_writer_new();
    int64_t sh[2] = {n, d}, nn = n, no = n_in + 1;
    assert_int_equal(st_writer_add(w, hook, RS_DT_F32, 2, sh, x, &err), 0);
    assert_int_equal(st_writer_add(w, "token_ids", RS_DT_I32, 1, &nn, ids, &err), 0);
    assert_int_equal(st_writer_add(w, "offsets", RS_DT_I64, 1, &no, off, &err), 0);
    assert_int_equal(st_writer_meta(w, "pool", "none", &err), 0);
    if (special) assert_int_equal(st_writer_meta(w, "special_token_ids", special, &err), 0);
    if (st_writer_save(w, path, &err)) fail_msg("%s", err.msg);
    st_writer_free(w);
}

static void write_acts(const char *path, const char *hook, const float *x, int64_t n, int64_t d, const int32_t *ids,
                       const int64_t *off, int64_t n_in) {
    write_acts_sp(path, hook, x, n, d, ids, off, n_in, NULL);
}

static void make_files(const char *pa, const char *pb, int differ_ids, const char *hook_b, float poison) {
    const st_tensor *a = st_get(G, "a"), *b = st_get(G, "b"), *off = st_get(G, "offsets");
    int64_t n = a->shape[0], d = a->shape[1], n_in = off->numel - 1;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int64_t t = 0; t < n; t++) ids[t] = 100 + (int32_t)t;
    write_acts(pa, HOOK, a->data, n, d, ids, off->data, n_in);
    if (differ_ids) ids[1] = 99999;
    float *bb = malloc((size_t)(n * d) * sizeof *bb);
    memcpy(bb, b->data, (size_t)(n * d) * sizeof *bb);
    bb[7] = poison;
    if (poison == 0) bb[7] = ((const float *)b->data)[7];
    write_acts(pb, hook_b ? hook_b : HOOK, bb, n, d, ids, off->data, n_in);
    free(bb);
    free(ids);
}

static cJSON *load_results(const char *out) {
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/results.json", out);
    cJSON *j;
    rs_err err;
    if (rs_json_load(p, 1 << 24, &j, &err)) fail_msg("%s", err.msg);
    return j;
}

static double jnum(cJSON *o, const char *k) {
    cJSON *x = cJSON_GetObjectItem(o, k);
    if (!x) fail_msg("missing key '%s'", k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static void test_aligned_vs_numpy(void **st) {
    (void)st;
    char pa[512], pb[512], out[512];
    snprintf(pa, sizeof pa, "%s/a.safetensors", DIR_);
    snprintf(pb, sizeof pb, "%s/b.safetensors", DIR_);
    snprintf(out, sizeof out, "%s/out1", DIR_);
    make_files(pa, pb, 0, NULL, 0);
    shift_run_opts o = {.acts_a = pa, .acts_b = pb, .sae = FX "saelens_jumprelu", .n_boot = 50, .seed = 3, .out_dir = out};
    rs_err err = {0};
    if (shift_run(&o, &err)) fail_msg("%s", err.msg);
    cJSON *j = load_results(out);
    cJSON *L = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layers"), 0);
    assert_string_equal(cJSON_GetObjectItem(L, "mode")->valuestring, "token_aligned");
    cJSON *sh = cJSON_GetObjectItem(L, "shift");
    const double *val = st_get(G, "value")->data;
    /* raw metrics and those features FA[3], FA[4], FB[4] zeroing did not touch are compared
     * where the golden applies: raw cos/l2/CKA exactly (same rows, no zeroed features). */
    const char *raw[3] = {"cos_raw", "l2_raw", "cka_linear"};
    const int ri[3] = {0, 1, 9};
    for (int k = 0; k < 3; k++) {
        cJSON *s = cJSON_GetObjectItem(sh, raw[k]);
        double v = cJSON_GetObjectItem(s, "value")->valuedouble;
        if (fabs(v - val[ri[k]]) > 2e-5 * fmax(1, fabs(val[ri[k]]))) fail_msg("%s: %.9g vs numpy %.9g", raw[k], v, val[ri[k]]);
        /* percentile intervals of biased statistics (l2, CKA) need not contain the estimate */
        assert_true(cJSON_GetObjectItem(s, "ci_lo")->valuedouble <= cJSON_GetObjectItem(s, "ci_hi")->valuedouble);
    }
    const char *feat[5] = {"cos_feat", "jaccard_token", "jaccard_feature", "js_mass_bits", "pearson_mean_feat"};
    for (int k = 0; k < 5; k++) assert_true(cJSON_IsObject(cJSON_GetObjectItem(sh, feat[k])));
    double js = cJSON_GetObjectItem(cJSON_GetObjectItem(sh, "js_mass_bits"), "value")->valuedouble;
    assert_true(js >= 0 && js <= 1);
    cJSON *fit = cJSON_GetObjectItem(L, "fit");
    assert_non_null(cJSON_GetObjectItem(fit, "a"));
    assert_non_null(cJSON_GetObjectItem(fit, "b_special_tokens"));
    cJSON_Delete(j);
    char p[600];
    snprintf(p, sizeof p, "%s/summary.csv", out);
    assert_int_equal(tu_system("grep -q '^-1,\"%s\",cka_linear,' %s", HOOK, p), 0);
    snprintf(p, sizeof p, "%s/features_%s.csv", out, HOOK);
    assert_int_equal(tu_system("test -s %s", p), 0);
    snprintf(p, sizeof p, "%s/tokens_%s.csv", out, HOOK);
    assert_int_equal(tu_system("test $(wc -l < %s) -eq %d", p, (int)st_get(G, "a")->shape[0] + 1), 0);
}

static void test_pooled_when_tokens_differ(void **st) {
    (void)st;
    char pa[512], pb[512], out[512];
    snprintf(pa, sizeof pa, "%s/pa.safetensors", DIR_);
    snprintf(pb, sizeof pb, "%s/pb.safetensors", DIR_);
    snprintf(out, sizeof out, "%s/out2", DIR_);
    make_files(pa, pb, 1, NULL, 0);
    shift_run_opts o = {.acts_a = pa, .acts_b = pb, .sae = FX "saelens_jumprelu", .n_boot = 20, .out_dir = out};
    rs_err err = {0};
    if (shift_run(&o, &err)) fail_msg("%s", err.msg);
    cJSON *j = load_results(out);
    cJSON *L = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layers"), 0);
    assert_string_equal(cJSON_GetObjectItem(L, "mode")->valuestring, "pooled_per_input");
    assert_int_equal((int)cJSON_GetObjectItem(L, "n_rows")->valuedouble, (int)(st_get(G, "offsets")->numel - 1));
    /* floors per input: the SAE-misfit floor over the same inputs; no permutations asked → no p */
    cJSON *fl = cJSON_GetObjectItem(L, "floors");
    cJSON *ma = cJSON_GetObjectItem(fl, "sae_misfit_a");
    assert_int_equal((int)jnum(ma, "n_units"), (int)(st_get(G, "offsets")->numel - 1));
    double cf = jnum(cJSON_GetObjectItem(ma, "cos_feat"), "value");
    assert_true(cf > 0 && cf < 1);
    assert_true(jnum(cJSON_GetObjectItem(cJSON_GetObjectItem(fl, "split_half_b"), "cka_linear"), "value") > 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(L, "shift"), "cos_raw"), "p_value")));
    cJSON_Delete(j);
}

/* Permutation p-values, BH q-values over the file, floors; same seed → same p; 0
 * permutations → null p-values and the output says so. */
static void test_nulls_qvalues_floors(void **st) {
    (void)st;
    char pa[512], pb[512], out[512], out2[512], out0[512];
    snprintf(pa, sizeof pa, "%s/na.safetensors", DIR_);
    snprintf(pb, sizeof pb, "%s/nb.safetensors", DIR_);
    snprintf(out, sizeof out, "%s/outn1", DIR_);
    snprintf(out2, sizeof out2, "%s/outn2", DIR_);
    snprintf(out0, sizeof out0, "%s/outn0", DIR_);
    make_files(pa, pb, 0, NULL, 0);
    shift_run_opts o = {.acts_a = pa, .acts_b = pb, .sae = FX "saelens_jumprelu", .n_boot = 30, .n_perm = 99,
                        .seed = 5, .out_dir = out};
    rs_err err = {0};
    if (shift_run(&o, &err)) fail_msg("%s", err.msg);
    o.out_dir = out2;
    if (shift_run(&o, &err)) fail_msg("%s", err.msg);
    o.out_dir = out0;
    o.n_perm = 0;
    if (shift_run(&o, &err)) fail_msg("%s", err.msg);
    cJSON *j = load_results(out), *j2 = load_results(out2), *j0 = load_results(out0);
    cJSON *L = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layers"), 0);
    cJSON *sh = cJSON_GetObjectItem(L, "shift"), *sh2 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j2, "layers"), 0), "shift");
    cJSON *sh0 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j0, "layers"), 0), "shift");
    const char *tested[] = {"cos_raw", "cos_centred", "l2_raw", "cka_linear", "cka_debiased", "cos_feat", "l2_feat",
                            "jaccard_token", "jaccard_feature", "js_token_bits"};
    double p[12], q[12];
    int n = 0;
    for (int k = 0; k < 10; k++) {
        cJSON *m = cJSON_GetObjectItem(sh, tested[k]);
        p[n] = jnum(m, "p_value");
        q[n] = jnum(m, "q_value");
        /* B is a noisy rotation of A: every pairing-dependent metric beats every permutation */
        if (!(p[n] == 0.01)) fail_msg("%s: p %.9g, want 1/100", tested[k], p[n]);
        assert_true(jnum(m, "null_lo") <= jnum(m, "null_mean") && jnum(m, "null_mean") <= jnum(m, "null_hi"));
        assert_int_equal((int)jnum(m, "n_perm"), 99);
        /* same seed → the same p-value and band */
        cJSON *m2 = cJSON_GetObjectItem(sh2, tested[k]);
        assert_true(jnum(m2, "p_value") == p[n] && jnum(m2, "null_lo") == jnum(m, "null_lo"));
        /* 0 permutations: value unchanged, p null, and said so */
        cJSON *m0 = cJSON_GetObjectItem(sh0, tested[k]);
        assert_true(jnum(m0, "value") == jnum(m, "value"));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(m0, "p_value")) && cJSON_IsNull(cJSON_GetObjectItem(m0, "q_value")));
        assert_non_null(strstr(cJSON_GetObjectItem(m0, "test")->valuestring, "0 permutations"));
        n++;
    }
    /* pairing-invariant metrics: no test, reason given */
    cJSON *jm = cJSON_GetObjectItem(sh, "js_mass_bits");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(jm, "p_value")));
    assert_non_null(strstr(cJSON_GetObjectItem(jm, "test")->valuestring, "pairing-invariant"));
    /* q-values = BH over the file's p-values (all equal here: q = p) */
    assert_int_equal((int)jnum(j, "n_tests"), 10);
    double qq[12];
    assert_int_equal(stats_bh_qvalues(p, n, qq), 0);
    for (int k = 0; k < n; k++) assert_true(fabs(q[k] - qq[k]) < 1e-12);
    assert_non_null(strstr(cJSON_GetObjectItem(j0, "permutation_test")->valuestring, "not run"));
    /* debiased CKA below biased; centred cosine present */
    assert_true(jnum(cJSON_GetObjectItem(sh, "cka_debiased"), "value") < jnum(cJSON_GetObjectItem(sh, "cka_linear"), "value"));
    /* floors: the SAE-misfit floor's raw cosine is the fit's cossim on the same rows */
    cJSON *fl = cJSON_GetObjectItem(L, "floors");
    cJSON *ma = cJSON_GetObjectItem(fl, "sae_misfit_a"), *mb = cJSON_GetObjectItem(fl, "sae_misfit_b");
    cJSON *fit = cJSON_GetObjectItem(L, "fit");
    assert_true(fabs(jnum(cJSON_GetObjectItem(ma, "cos_raw"), "value") - jnum(cJSON_GetObjectItem(fit, "a"), "cossim")) < 1e-6);
    assert_true(fabs(jnum(cJSON_GetObjectItem(mb, "cos_raw"), "value") - jnum(cJSON_GetObjectItem(fit, "b"), "cossim")) < 1e-6);
    assert_int_equal((int)jnum(ma, "n_units"), (int)jnum(L, "n_rows"));
    double cf = jnum(cJSON_GetObjectItem(ma, "cos_feat"), "value");
    assert_true(cf > 0 && cf < 1);
    cJSON *sa = cJSON_GetObjectItem(fl, "split_half_a");
    assert_true(jnum(sa, "n_units") >= 2 && isfinite(jnum(cJSON_GetObjectItem(sa, "cos_raw"), "value")));
    assert_null(cJSON_GetObjectItem(sa, "cos_feat"));
    /* feature rankings: minimum count, intervals of the deltas, frequency-matched lists */
    cJSON *tfj = cJSON_GetObjectItem(L, "top_features");
    assert_int_equal((int)jnum(tfj, "min_count"), 5);
    const char *fl6[6] = {"gained_frequency", "lost_frequency", "gained_mean_activation", "lost_mean_activation",
                          "gained_frequency_freq_matched", "lost_frequency_freq_matched"};
    for (int q = 0; q < 6; q++) {
        cJSON *arr = cJSON_GetObjectItem(tfj, fl6[q]), *e;
        assert_true(cJSON_GetArraySize(arr) > 0);
        double prev = q % 2 ? -INFINITY : INFINITY;
        cJSON_ArrayForEach(e, arr) {
            double fa_ = jnum(e, "freq_a"), fb_ = jnum(e, "freq_b");
            assert_true((fa_ + fb_) * jnum(L, "n_rows") >= 5 - 1e-9);
            assert_true(fabs(jnum(e, "delta_freq") - (fb_ - fa_)) < 1e-12);
            assert_true(jnum(e, "delta_freq_ci_lo") <= jnum(e, "delta_freq_ci_hi"));
            assert_true(jnum(e, "delta_mean_ci_lo") <= jnum(e, "delta_mean_ci_hi"));
            double k = q < 2 ? jnum(e, "delta_freq") : q < 4 ? jnum(e, "delta_mean") : jnum(e, "delta_freq_excess");
            assert_true(q % 2 ? k >= prev : k <= prev); /* sorted */
            prev = k;
        }
    }
    /* token types: the fixture's ids are all distinct (one row each): min_count 1 ranks all
     * rows, each its own type with mean = its cos_raw; default 5 ranks none */
    cJSON *tt = cJSON_GetObjectItem(L, "token_types");
    assert_int_equal((int)jnum(tt, "min_count"), 5);
    assert_int_equal((int)jnum(tt, "n_ranked"), 0);
    cJSON_Delete(j);
    cJSON_Delete(j2);
    cJSON_Delete(j0);
    o.min_count = 1;
    o.n_perm = 0;
    o.out_dir = out0;
    if (shift_run(&o, &err)) fail_msg("%s", err.msg);
    j0 = load_results(out0);
    L = cJSON_GetArrayItem(cJSON_GetObjectItem(j0, "layers"), 0);
    tt = cJSON_GetObjectItem(L, "token_types");
    assert_int_equal((int)jnum(tt, "n_ranked"), (int)jnum(L, "n_rows"));
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(tt, "most_shifted"), 0);
    cJSON *tok0 = cJSON_GetArrayItem(cJSON_GetObjectItem(L, "top_shifted_tokens"), 0);
    assert_int_equal((int)jnum(first, "token_id"), (int)jnum(tok0, "token_id"));
    assert_true(fabs(jnum(first, "mean") - jnum(tok0, "cos_raw")) < 1e-6);
    assert_int_equal((int)jnum(first, "count"), 1);
    cJSON_Delete(j0);
    /* summary.csv: the new columns */
    char pth[600];
    snprintf(pth, sizeof pth, "%s/summary.csv", out);
    assert_int_equal(tu_system("head -1 %s | grep -qx 'layer,hook,metric,value,ci_lo,ci_hi,p_value,null_lo,null_hi,q_value'", pth), 0);
    assert_int_equal(tu_system("grep -q '^-1,\"%s\",cka_debiased,[^,]*,[^,]*,[^,]*,0.01,[^,]*,[^,]*,0.01$' %s", HOOK, pth), 0);
    assert_int_equal(tu_system("grep -q '^-1,\"%s\",sae_misfit_b:jaccard_feature,' %s", HOOK, pth), 0);
    assert_int_equal(tu_system("awk -F, 'NF != 10 { exit 1 }' %s", pth), 0);
}

static void expect_fail(shift_run_opts *o, const char *needle) {
    rs_err err = {0};
    if (shift_run(o, &err) == 0) fail_msg("expected failure containing '%s'", needle);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void test_bad_inputs(void **st) {
    (void)st;
    char pa[512], pb[512], pn[512], out[512];
    snprintf(pa, sizeof pa, "%s/ba.safetensors", DIR_);
    snprintf(pb, sizeof pb, "%s/bb.safetensors", DIR_);
    snprintf(pn, sizeof pn, "%s/bn.safetensors", DIR_);
    snprintf(out, sizeof out, "%s/out3", DIR_);
    make_files(pa, pb, 0, "blocks.4.hook_resid_post", 0);
    /* hook mismatch: SAE for blocks.3 applied to blocks.4 activations */
    shift_run_opts o = {.acts_a = pa, .acts_b = pa, .sae = FX "saelens_jumprelu", .hook = HOOK, .out_dir = out};
    make_files(pa, pb, 0, NULL, 0);
    char p4[512];
    snprintf(p4, sizeof p4, "%s/b4.safetensors", DIR_);
    {
        const st_tensor *a = st_get(G, "a"), *off = st_get(G, "offsets");
        int64_t n = a->shape[0];
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        for (int64_t t = 0; t < n; t++) ids[t] = 100 + (int32_t)t;
        write_acts(p4, "blocks.4.hook_resid_post", a->data, n, a->shape[1], ids, off->data, off->numel - 1);
        free(ids);
    }
    o.acts_a = p4;
    o.acts_b = p4;
    o.hook = "blocks.4.hook_resid_post";
    expect_fail(&o, "blocks.3.hook_resid_post");
    o.allow_hook_mismatch = 1;
    rs_err err = {0};
    if (shift_run(&o, &err)) fail_msg("override should succeed: %s", err.msg);
    o.allow_hook_mismatch = 0;
    /* missing hook in file names the file and lists what is there */
    o.hook = "blocks.9.hook_resid_post";
    expect_fail(&o, "b4.safetensors");
    /* unknown architecture */
    o.acts_a = pa;
    o.acts_b = pb;
    o.hook = HOOK;
    o.sae = FX "bad_arch";
    expect_fail(&o, "unknown SAE architecture");
    /* NaN in B */
    make_files(pa, pn, 0, NULL, NAN);
    o.acts_b = pn;
    o.sae = FX "saelens_jumprelu";
    expect_fail(&o, "NaN");
    expect_fail(&o, "bn.safetensors");
    /* missing SAE key */
    o.acts_b = pb;
    o.sae = FX "bad_missing";
    o.sae_hook = HOOK;
    expect_fail(&o, "threshold");
}

static void test_width_mismatch(void **st) {
    (void)st;
    const st_tensor *a = st_get(G, "a");
    int64_t n = 4, d = 128;
    float *x = calloc((size_t)(n * d), sizeof *x);
    for (int64_t i = 0; i < n * d; i++) x[i] = ((const float *)a->data)[i % (a->numel)];
    int32_t ids[4] = {2, 10, 11, 12};
    int64_t off[2] = {0, 4};
    char p[512], out[512];
    snprintf(p, sizeof p, "%s/wide.safetensors", DIR_);
    snprintf(out, sizeof out, "%s/out4", DIR_);
    write_acts(p, HOOK, x, n, d, ids, off, 1);
    shift_run_opts o = {.acts_a = p, .acts_b = p, .sae = FX "saelens_jumprelu", .out_dir = out};
    expect_fail(&o, "d_in 64 does not match the activation width 128");
    free(x);
}

/* The rows a run excluded as special, read back from its outputs: fit.a_special_tokens.n_rows,
 * fit.a.n_rows, the token ids of tokens_<hook>.csv, excluded_tokens. */
typedef struct {
    int n_special, n_kept, csv_rows;
    int seen[16]; /* csv rows per token id < 16 */
    char excluded[256];
} special_seen;

static void run_special(const char *pa, const char *pb, const char *out, special_seen *sv) {
    shift_run_opts o = {.acts_a = pa, .acts_b = pb, .sae = FX "saelens_jumprelu", .n_boot = 0, .out_dir = out};
    rs_err err = {0};
    if (shift_run(&o, &err)) fail_msg("%s", err.msg);
    cJSON *j = load_results(out);
    memset(sv, 0, sizeof *sv);
    snprintf(sv->excluded, sizeof sv->excluded, "%s", cJSON_GetObjectItem(j, "excluded_tokens")->valuestring);
    cJSON *L = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layers"), 0);
    assert_string_equal(cJSON_GetObjectItem(L, "mode")->valuestring, "token_aligned");
    cJSON *fit = cJSON_GetObjectItem(L, "fit");
    sv->n_special = (int)jnum(cJSON_GetObjectItem(fit, "a_special_tokens"), "n_rows");
    sv->n_kept = (int)jnum(cJSON_GetObjectItem(fit, "a"), "n_rows");
    assert_int_equal((int)jnum(cJSON_GetObjectItem(fit, "b_special_tokens"), "n_rows"), sv->n_special);
    cJSON_Delete(j);
    char p[600], line[1024];
    snprintf(p, sizeof p, "%s/tokens_%s.csv", out, HOOK);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f)); /* header: row,input,position,token_id,... */
    while (fgets(line, sizeof line, f)) {
        long row, input, pos, id;
        assert_int_equal(sscanf(line, "%ld,%ld,%ld,%ld,", &row, &input, &pos, &id), 4);
        if (id >= 0 && id < 16) sv->seen[id]++;
        sv->csv_rows++;
    }
    fclose(f);
}

/* The special ids are data: an extract file's special_token_ids metadata decides which rows
 * are excluded (here <bos> 7, <eos> 8, <pad> 9, so 0..2 are ordinary tokens); a file without
 * the key gets Gemma's 2,1,0; aligned files exclude a row special in either; a malformed value
 * is refused naming the file. */
static void test_special_ids_from_metadata(void **st) {
    (void)st;
    const st_tensor *a = st_get(G, "a"), *b = st_get(G, "b"), *off = st_get(G, "offsets");
    int64_t n = a->shape[0], d = a->shape[1], n_in = off->numel - 1;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    /* per 4 rows: one of 7/8/9, one of 0/1/2, two ordinary ids */
    int n_789 = 0, n_012 = 0;
    for (int64_t t = 0; t < n; t++) {
        int k = (int)(t % 4), r = (int)((t / 4) % 3);
        ids[t] = k == 0 ? 7 + r : k == 1 ? r : 100 + (int32_t)t;
        n_789 += k == 0;
        n_012 += k == 1;
    }
    char pa[512], pb[512], pg[512], pgb[512], px[512], out[512];
    snprintf(pa, sizeof pa, "%s/sa.safetensors", DIR_);
    snprintf(pb, sizeof pb, "%s/sb.safetensors", DIR_);
    snprintf(pg, sizeof pg, "%s/sg.safetensors", DIR_);
    snprintf(pgb, sizeof pgb, "%s/sgb.safetensors", DIR_);
    snprintf(px, sizeof px, "%s/sx.safetensors", DIR_);
    write_acts_sp(pa, HOOK, a->data, n, d, ids, off->data, n_in, "7,8,9");
    write_acts_sp(pb, HOOK, b->data, n, d, ids, off->data, n_in, "7,8,9");
    write_acts_sp(pg, HOOK, a->data, n, d, ids, off->data, n_in, NULL);
    write_acts_sp(pgb, HOOK, b->data, n, d, ids, off->data, n_in, NULL);
    write_acts_sp(px, HOOK, b->data, n, d, ids, off->data, n_in, "7,8");
    special_seen sv;

    /* special_token_ids 7,8,9: exactly those rows are excluded, 0..2 are compared */
    snprintf(out, sizeof out, "%s/out_sp1", DIR_);
    run_special(pa, pb, out, &sv);
    assert_int_equal(sv.n_special, n_789);
    assert_int_equal(sv.n_kept, n - n_789);
    assert_int_equal(sv.csv_rows, n - n_789);
    for (int id = 7; id <= 9; id++) assert_int_equal(sv.seen[id], 0);
    assert_int_equal(sv.seen[0] + sv.seen[1] + sv.seen[2], n_012);
    assert_non_null(strstr(sv.excluded, "(ids 7-9)"));

    /* no key (a file written before it): Gemma's 2,1,0 */
    snprintf(out, sizeof out, "%s/out_sp2", DIR_);
    run_special(pg, pgb, out, &sv);
    assert_int_equal(sv.n_special, n_012);
    assert_int_equal(sv.csv_rows, n - n_012);
    for (int id = 0; id <= 2; id++) assert_int_equal(sv.seen[id], 0);
    assert_int_equal(sv.seen[7] + sv.seen[8] + sv.seen[9], n_789);
    assert_non_null(strstr(sv.excluded, "(ids 0-2)"));

    /* aligned, 7,8,9 in A and Gemma's in B: a row special in either file is left out */
    snprintf(out, sizeof out, "%s/out_sp3", DIR_);
    run_special(pa, pgb, out, &sv);
    assert_int_equal(sv.n_special, n_789 + n_012);
    assert_int_equal(sv.csv_rows, n - n_789 - n_012);
    assert_non_null(strstr(sv.excluded, "(ids 0, 1, 2, 7, 8, 9)"));

    /* malformed value: refused, naming the file and the key */
    shift_run_opts o = {.acts_a = pa, .acts_b = px, .n_boot = 0};
    snprintf(out, sizeof out, "%s/out_sp4", DIR_);
    o.out_dir = out;
    rs_err err = {0};
    assert_int_equal(shift_run(&o, &err), -1);
    assert_int_equal(err.kind, RS_EFORMAT);
    assert_non_null(strstr(err.msg, "sx.safetensors"));
    assert_non_null(strstr(err.msg, "special_token_ids"));
    assert_int_equal(tu_system("test ! -e %s", out), 0); /* nothing left behind */
    free(ids);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aligned_vs_numpy),
        cmocka_unit_test(test_pooled_when_tokens_differ),
        cmocka_unit_test(test_nulls_qvalues_floors),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_width_mismatch),
        cmocka_unit_test(test_special_ids_from_metadata),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
