/* The declarative weight table (weights.h): a toy table over a safetensors file written here
 * loads matrices as mapped tensors, norms/vectors as f32 copies, records the conversion-scratch
 * size, claims what it read and frees what it copied; a missing tensor, a wrong shape and a
 * non-float dtype each give the one clear message naming the file and the tensor. Then the
 * real tables: gemma2_open / paligemma_open on the hand-made broken checkpoints of
 * tests/malformed (tests/malformed/make_cases.py) give exactly those messages. */
#include "testutil.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/gemma2.h"
#include "reprshift/paligemma.h"
#include "model/weights.h"

typedef struct {
    const st_tensor *mat, *emb;
    float *vec, *norm;
} toy;

enum { A, B, C, NDIMS };
static const int64_t DIMS[NDIMS] = {[A] = 2, [B] = 3, [C] = 4};

static const rs_wspec TOY[] = {
    {"mat.weight", offsetof(toy, mat), RS_W_MATRIX, 2, {A, B}},
    {"vec.bias", offsetof(toy, vec), RS_W_F32, 1, {B}},
    {"emb.weight", offsetof(toy, emb), RS_W_ROWS, 2, {C, B}},
    {"norm.weight", offsetof(toy, norm), RS_W_F32, 1, {B}},
};

static char g_path[600];

/* p.mat.weight F32 [2,3], p.vec.bias BF16 [3], p.emb.weight F16 [4,3], p.norm.weight F32 [3],
 * p.bad.weight F32 [3,2], p.int.weight I32 [3]. */
static int setup(void **state) {
    (void)state;
    static float mat[6] = {1, 2, 3, 4, 5, 6}, norm[3] = {0.5f, -1, 2}, bad[6];
    static uint16_t vec[3], emb[12];
    static int32_t ints[3] = {1, 2, 3};
    vec[0] = rs_f32_to_bf16(1.5f); vec[1] = rs_f32_to_bf16(-2.0f); vec[2] = rs_f32_to_bf16(0.25f);
    for (int i = 0; i < 12; i++) emb[i] = 0x3c00; /* f16 1.0 */
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s43[2] = {4, 3}, s32[2] = {3, 2};
    rs_err err = {0};
    st_writer *w = st_writer_new();
    assert_non_null(w);
    if (st_writer_add(w, "p.mat.weight", RS_DT_F32, 2, s23, mat, &err) ||
        st_writer_add(w, "p.vec.bias", RS_DT_BF16, 1, s3, vec, &err) ||
        st_writer_add(w, "p.emb.weight", RS_DT_F16, 2, s43, emb, &err) ||
        st_writer_add(w, "p.norm.weight", RS_DT_F32, 1, s3, norm, &err) ||
        st_writer_add(w, "p.bad.weight", RS_DT_F32, 2, s32, bad, &err) ||
        st_writer_add(w, "p.int.weight", RS_DT_I32, 1, s3, ints, &err))
        fail_msg("%s", err.msg);
    snprintf(g_path, sizeof g_path, "%s/toy.safetensors", tu_tmpdir());
    if (st_writer_save(w, g_path, &err)) fail_msg("%s", err.msg);
    st_writer_free(w);
    return 0;
}

static void test_table_loads(void **state) {
    (void)state;
    rs_err err = {0};
    st_set *st;
    if (st_open(&st, g_path, &err)) fail_msg("%s", err.msg);
    toy t = {0};
    size_t max_numel = 0;
    if (rs_weights_load(st, "p.", TOY, RS_W_COUNT(TOY), DIMS, &t, &max_numel, &err)) fail_msg("%s", err.msg);
    assert_ptr_equal(t.mat, st_get(st, "p.mat.weight"));
    assert_ptr_equal(t.emb, st_get(st, "p.emb.weight"));
    assert_int_equal(max_numel, 6); /* the matrix only: ROWS and F32 rows are never widened whole */
    assert_true(t.vec[0] == 1.5f && t.vec[1] == -2.0f && t.vec[2] == 0.25f);
    assert_true(t.norm[0] == 0.5f && t.norm[1] == -1.0f && t.norm[2] == 2.0f);
    int claimed = 0;
    for (int i = 0; i < st->n_tensors; i++) claimed += st->claimed[i];
    assert_int_equal(claimed, 4);
    assert_int_equal(st->claimed[st_get(st, "p.bad.weight") - st->tensors], 0);
    rs_weights_free(TOY, RS_W_COUNT(TOY), &t);
    assert_null(t.vec);
    assert_null(t.norm);
    assert_non_null(t.mat); /* mapped rows stay: they belong to the weight set */
    st_close(st);
}

/* Load a one-row table {name, kind, shape dims} and return the error message. */
static void expect_error(const char *name, rs_wkind kind, int ndim, int d0, int d1, const char *want_tail) {
    rs_err err = {0};
    st_set *st;
    if (st_open(&st, g_path, &err)) fail_msg("%s", err.msg);
    rs_wspec row = {name, kind == RS_W_F32 ? offsetof(toy, vec) : offsetof(toy, mat), kind, ndim, {d0, d1}};
    /* a loaded row before the bad one: it must be freeable after the failure (ASan: no leak) */
    rs_wspec tab[2] = {TOY[3], row};
    toy t = {0};
    size_t max_numel = 0;
    assert_int_equal(rs_weights_load(st, "p.", tab, 2, DIMS, &t, &max_numel, &err), -1);
    char want[900];
    snprintf(want, sizeof want, "%s: %s", g_path, want_tail);
    assert_string_equal(err.msg, want);
    assert_non_null(t.norm);
    rs_weights_free(tab, 2, &t);
    st_close(st);
}

static void test_table_errors(void **state) {
    (void)state;
    expect_error("missing.weight", RS_W_MATRIX, 2, A, B, "missing tensor \"p.missing.weight\"");
    expect_error("bad.weight", RS_W_MATRIX, 2, A, B, "tensor \"p.bad.weight\" has shape [3, 2] but the config implies [2, 3]");
    expect_error("vec.bias", RS_W_F32, 1, C, 0, "tensor \"p.vec.bias\" has shape [3] but the config implies [4]");
    expect_error("int.weight", RS_W_F32, 1, B, 0,
                 "tensor \"p.int.weight\" has dtype I32; weights must be F32, BF16 or F16");
    expect_error("int.weight", RS_W_MATRIX, 1, B, 0,
                 "tensor \"p.int.weight\" has dtype I32; weights must be F32, BF16 or F16");
}

static void expect_gemma2(const char *dir, const char *want) {
    rs_err err = {0};
    gemma2_model *m = (gemma2_model *)1;
    assert_int_equal(gemma2_open(&m, dir, &err), -1);
    assert_null(m);
    assert_string_equal(err.msg, want);
}

static void expect_paligemma(const char *dir, const char *want) {
    rs_err err = {0};
    paligemma_model *m = (paligemma_model *)1;
    assert_int_equal(paligemma_open(&m, dir, &err), -1);
    assert_null(m);
    assert_string_equal(err.msg, want);
}

static void test_model_tables(void **state) {
    (void)state;
    expect_gemma2("tests/malformed/model_missing_tensor",
                  "tests/malformed/model_missing_tensor/model.safetensors: missing tensor "
                  "\"model.layers.0.mlp.up_proj.weight\"");
    expect_gemma2("tests/malformed/model_hidden_contradicts",
                  "tests/malformed/model_hidden_contradicts/model.safetensors: tensor \"model.embed_tokens.weight\" "
                  "has shape [16, 8] but the config implies [16, 12]");
    expect_gemma2("tests/malformed/model_int_weight",
                  "tests/malformed/model_int_weight/model.safetensors: tensor "
                  "\"model.layers.0.self_attn.o_proj.weight\" has dtype I32; weights must be F32, BF16 or F16");
    expect_gemma2("tests/malformed/model_int_norm",
                  "tests/malformed/model_int_norm/model.safetensors: tensor \"model.norm.weight\" has dtype I32; "
                  "weights must be F32, BF16 or F16");
    expect_paligemma("tests/malformed/pali_missing_vision_bias",
                     "vision tower (vision_config: hidden_size 8, 1 layers, intermediate_size 16, image_size 4, "
                     "patch_size 2): tests/malformed/pali_missing_vision_bias/model.safetensors: missing tensor "
                     "\"vision_tower.vision_model.encoder.layers.0.mlp.fc2.bias\"");
    expect_paligemma("tests/malformed/pali_prefix_missing_decoder",
                     "PaliGemma decoder (text_config): tests/malformed/pali_prefix_missing_decoder/model.safetensors: "
                     "missing tensor \"model.language_model.layers.0.self_attn.k_proj.weight\"");
    expect_paligemma("tests/malformed/pali_prefix_int_bias",
                     "projector (projection_dim 8, vision hidden_size 8): "
                     "tests/malformed/pali_prefix_int_bias/model.safetensors: tensor "
                     "\"model.multi_modal_projector.linear.bias\" has dtype I32; weights must be F32, BF16 or F16");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_loads),
        cmocka_unit_test(test_table_errors),
        cmocka_unit_test(test_model_tables),
    };
    return tu_exit(cmocka_run_group_tests(tests, setup, NULL));
}
