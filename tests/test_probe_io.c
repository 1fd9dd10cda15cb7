/* Probe files: save → load round trip is exact (coefficients, intercepts, scaler, classes,
 * hook, C, weighting, data hash) and the loaded probe predicts exactly what the fitted one
 * does; the JSON card carries the same facts; damaged files are rejected with messages.
 * Label encoding: integer labels sort numerically ("2" before "10", as sklearn's
 * np.unique on ints), other labels by bytes. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/fileio.h"
#include "reprshift/probe.h"
#include "reprshift/probe_io.h"
#include "reprshift/safetensors.h"
#include "testutil.h"

static void fit_iris_probe(rs_probe *p, float **Xout, int *nout, int *dout) {
    st_set *s;
    rs_err err;
    if (st_open(&s, "tests/fixtures/probe/data_iris.safetensors", &err)) fail_msg("%s", err.msg);
    const st_tensor *tx = st_get(s, "X"), *ty = st_get(s, "y");
    assert_non_null(tx); assert_non_null(ty);
    int n = (int)tx->shape[0], d = (int)tx->shape[1];
    float *X = st_to_f32_new(tx), *Xs = malloc(sizeof(float) * n * d);
    const int32_t *y = ty->data;
    memset(p, 0, sizeof *p);
    assert_int_equal(rs_scaler_fit(&p->scaler, X, n, d, &err), 0);
    rs_scaler_apply(&p->scaler, X, n, Xs);
    p->standardized = 1;
    rs_logreg_opts o = rs_logreg_defaults();
    o.C = 0.5;
    o.balanced = 1;
    if (rs_logreg_fit(&p->model, Xs, y, n, d, 3, &o, &err)) fail_msg("%s", err.msg);
    p->hook = strdup("blocks.7.hook_resid_post");
    p->n_classes = 3;
    p->classes = calloc(3, sizeof(char *));
    p->classes[0] = strdup("setosa");
    p->classes[1] = strdup("versi\"color");   /* quoting survives the JSON metadata */
    p->classes[2] = strdup("virgínica");      /* and UTF-8 */
    rs_probe_data_hash(X, (size_t)n * d, y, n, p->data_hash);
    p->metrics_json = strdup("{\"train_accuracy\": 0.97}");
    free(Xs);
    st_close(s);
    *Xout = X; *nout = n; *dout = d;
}

static void test_save_load_round_trip(void **state) {
    (void)state;
    rs_probe p, q;
    float *X;
    int n, d;
    rs_err err;
    fit_iris_probe(&p, &X, &n, &d);
    char path[600], card[600];
    snprintf(path, sizeof path, "%s/p.safetensors", tu_tmpdir());
    snprintf(card, sizeof card, "%.*s.json", (int)(strlen(path) - strlen(".safetensors")), path);
    if (rs_probe_save(&p, path, &err)) fail_msg("save: %s", err.msg);
    if (rs_probe_load(&q, path, &err)) fail_msg("load: %s", err.msg);
    assert_string_equal(q.hook, p.hook);
    assert_int_equal(q.n_classes, 3);
    for (int k = 0; k < 3; k++) assert_string_equal(q.classes[k], p.classes[k]);
    assert_int_equal(q.model.d, d);
    assert_int_equal(q.model.n_rows, 3);
    assert_true(q.model.C == p.model.C);
    assert_int_equal(q.model.balanced, 1);
    assert_int_equal(q.standardized, 1);
    assert_memory_equal(q.model.W, p.model.W, sizeof(double) * 3 * d);
    assert_memory_equal(q.model.b, p.model.b, sizeof(double) * 3);
    assert_memory_equal(q.scaler.mean, p.scaler.mean, sizeof(double) * d);
    assert_memory_equal(q.scaler.scale, p.scaler.scale, sizeof(double) * d);
    assert_string_equal(q.data_hash, p.data_hash);
    int *a = malloc(sizeof(int) * n), *b = malloc(sizeof(int) * n);
    assert_int_equal(rs_probe_predict(&p, X, n, d, a, &err), 0);
    assert_int_equal(rs_probe_predict(&q, X, n, d, b, &err), 0);
    assert_memory_equal(a, b, sizeof(int) * n);
    /* the card */
    char *txt;
    size_t len;
    if (rs_read_file(card, 1 << 20, &txt, &len, &err)) fail_msg("%s", err.msg);
    cJSON *j = cJSON_Parse(txt);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "hook")->valuestring, p.hook);
    assert_string_equal(cJSON_GetObjectItem(j, "data_hash_fnv1a64")->valuestring, p.data_hash);
    assert_int_equal(cJSON_GetObjectItem(j, "features")->valueint, d);
    assert_true(cJSON_GetObjectItem(j, "C")->valuedouble == 0.5);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "classes"), 1)->valuestring, "versi\"color");
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metrics"), "train_accuracy")->valuedouble == 0.97);
    cJSON_Delete(j);
    free(txt);
    /* width mismatch at prediction time */
    assert_int_equal(rs_probe_predict(&q, X, n, d - 1, a, &err), -1);
    assert_non_null(strstr(err.msg, "does not match"));
    rs_probe_free(&q);

    /* damaged files: truncated, and not a probe */
    if (rs_read_file(path, 1 << 24, &txt, &len, &err)) fail_msg("%s", err.msg);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/trunc.safetensors", tu_tmpdir());
    FILE *f = fopen(bad, "wb");
    fwrite(txt, 1, len - 9, f);
    fclose(f);
    assert_int_equal(rs_probe_load(&q, bad, &err), -1);
    assert_non_null(strstr(err.msg, bad));
    free(txt);
    assert_int_equal(rs_probe_load(&q, "tests/fixtures/probe/data_iris.safetensors", &err), -1);
    assert_non_null(strstr(err.msg, "not a reprshift probe"));
    free(a); free(b); free(X);
    rs_probe_free(&p);
}

/* MLP probes round-trip too (format reprshift-probe-mlp-v1, F32 weights kept bit for bit). */
static void test_mlp_round_trip(void **state) {
    (void)state;
    rs_probe p, q;
    float *X;
    int n, d;
    rs_err err;
    fit_iris_probe(&p, &X, &n, &d);
    rs_logreg_free(&p.model);
    float *Xs = malloc(sizeof(float) * n * d);
    rs_scaler_apply(&p.scaler, X, n, Xs);
    int *y = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) y[i] = i % 3; /* any labels: only the file format is under test */
    rs_mlp_opts o = rs_mlp_defaults();
    o.hidden = 7;
    o.early_stopping = 0;
    o.max_epochs = 3;
    if (rs_mlp_fit(&p.mlp, Xs, y, n, d, 3, &o, &err)) fail_msg("%s", err.msg);
    p.is_mlp = 1;
    char path[600];
    snprintf(path, sizeof path, "%s/m.safetensors", tu_tmpdir());
    if (rs_probe_save(&p, path, &err)) fail_msg("save: %s", err.msg);
    if (rs_probe_load(&q, path, &err)) fail_msg("load: %s", err.msg);
    assert_int_equal(q.is_mlp, 1);
    assert_int_equal(q.mlp.hidden, 7);
    assert_int_equal(q.mlp.d, d);
    assert_int_equal(q.mlp.n_out, 3);
    assert_memory_equal(q.mlp.W1, p.mlp.W1, sizeof(float) * d * 7);
    assert_memory_equal(q.mlp.b2, p.mlp.b2, sizeof(float) * 3);
    int *a = malloc(sizeof(int) * n), *b = malloc(sizeof(int) * n);
    assert_int_equal(rs_probe_predict(&p, X, n, d, a, &err), 0);
    assert_int_equal(rs_probe_predict(&q, X, n, d, b, &err), 0);
    assert_memory_equal(a, b, sizeof(int) * n);
    free(a); free(b); free(Xs); free(y); free(X);
    rs_probe_free(&q);
    rs_probe_free(&p);
}

static void check_encode(char **lab, int n, const char *const *want, int K) {
    int *y, k;
    char **cls;
    rs_err err;
    assert_int_equal(rs_labels_encode(lab, n, &y, &cls, &k, &err), 0);
    assert_int_equal(k, K);
    for (int i = 0; i < K; i++) assert_string_equal(cls[i], want[i]);
    for (int i = 0; i < n; i++) assert_string_equal(cls[y[i]], lab[i]);
    rs_labels_free(cls, k);
    free(y);
}

/* The saved raw-space direction reproduces the standardised logits: coef_raw · x +
 * intercept_raw = coef · ((x − mean) / scale) + intercept for every iris row (and for the
 * model's own decision function on the standardised f32 rows); coef_space is recorded. */
static void test_raw_direction(void **state) {
    (void)state;
    rs_probe p;
    float *X;
    int n, d;
    rs_err err;
    fit_iris_probe(&p, &X, &n, &d);
    char path[600];
    snprintf(path, sizeof path, "%s/raw.safetensors", tu_tmpdir());
    if (rs_probe_save(&p, path, &err)) fail_msg("save: %s", err.msg);
    st_set *s;
    if (st_open(&s, path, &err)) fail_msg("%s", err.msg);
    assert_string_equal(st_meta(s, "coef_space"), "standardized");
    const st_tensor *tw = st_get(s, "coef_raw"), *tb = st_get(s, "intercept_raw");
    assert_non_null(tw); assert_non_null(tb);
    assert_int_equal(tw->shape[0], 3); assert_int_equal(tw->shape[1], d);
    const double *Wr = tw->data, *br = tb->data;
    float *Xs = malloc(sizeof(float) * n * d);
    double *Z = malloc(sizeof(double) * n * 3);
    rs_scaler_apply(&p.scaler, X, n, Xs);
    rs_logreg_decision(&p.model, Xs, n, Z);
    double worst = 0, worst_f32 = 0;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < 3; r++) {
            double raw = br[r], std = p.model.b[r];
            for (int j = 0; j < d; j++) {
                raw += Wr[r * d + j] * X[i * d + j];
                std += p.model.W[r * d + j] * (((double)X[i * d + j] - p.scaler.mean[j]) / p.scaler.scale[j]);
            }
            double e = fabs(raw - std) / (1 + fabs(std)), e2 = fabs(raw - Z[i * 3 + r]) / (1 + fabs(std));
            worst = e > worst ? e : worst;
            worst_f32 = e2 > worst_f32 ? e2 : worst_f32;
        }
    print_message("  raw direction vs standardised logit: max rel diff %.3g (f64), %.3g (vs f32 standardised rows)\n",
                  worst, worst_f32);
    assert_true(worst < 1e-12);
    assert_true(worst_f32 < 1e-5);
    st_close(s);
    /* unstandardised probe: coef_raw == coef, coef_space raw */
    p.standardized = 0;
    if (rs_probe_save(&p, path, &err)) fail_msg("save: %s", err.msg);
    if (st_open(&s, path, &err)) fail_msg("%s", err.msg);
    assert_string_equal(st_meta(s, "coef_space"), "raw");
    const double *W2 = st_get(s, "coef_raw")->data, *b2 = st_get(s, "intercept_raw")->data;
    for (int k = 0; k < 3 * d; k++) assert_true(W2[k] == p.model.W[k]);
    for (int r = 0; r < 3; r++) assert_true(b2[r] == p.model.b[r]);
    st_close(s);
    p.standardized = 1;
    free(Xs); free(Z); free(X);
    rs_probe_free(&p);
}

static void test_label_order(void **state) {
    (void)state;
    char *ints[] = {"10", "2", "-1", "2", "100", "01", "1"};
    const char *ints_want[] = {"-1", "01", "1", "2", "10", "100"};
    check_encode(ints, 7, ints_want, 6);
    char *mixed[] = {"10", "2", "b", "10"}; /* not all integers: byte order */
    const char *mixed_want[] = {"10", "2", "b"};
    check_encode(mixed, 4, mixed_want, 3);
    char *spaced[] = {"10", " 2"}; /* leading space is not an integer label */
    const char *spaced_want[] = {" 2", "10"};
    check_encode(spaced, 2, spaced_want, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_mlp_round_trip),
        cmocka_unit_test(test_label_order),
        cmocka_unit_test(test_raw_direction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
