/* safetensors reader/writer: round trip, the real sharded fixture, and malformed headers
 * (each must fail with a message naming the file and the problem). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/safetensors.h"

static char path_buf[512];

/* Write [u64 hlen][header][data_len bytes of 0xAB]; hlen_override < 0 means the true length. */
static const char *write_raw(const char *header, size_t data_len, long long hlen_override) {
    snprintf(path_buf, sizeof path_buf, "%s/bad.safetensors", tu_tmpdir());
    FILE *f = fopen(path_buf, "wb");
    uint64_t h = hlen_override >= 0 ? (uint64_t)hlen_override : strlen(header);
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(h >> (8 * i));
    fwrite(b, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++) fputc(0xAB, f);
    fclose(f);
    return path_buf;
}

static void expect_error(const char *header, size_t data_len, long long hlen, const char *needle) {
    const char *p = write_raw(header, data_len, hlen);
    st_set *s = NULL;
    rs_err err = {0};
    assert_int_equal(st_open(&s, p, &err), -1);
    assert_null(s);
    if (!strstr(err.msg, needle) || !strstr(err.msg, "bad.safetensors"))
        fail_msg("error \"%s\" lacks \"%s\" or the file name", err.msg, needle);
}

static void test_malformed_headers(void **st) {
    (void)st;
    expect_error("{}", 0, 1 << 30, "header length");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, -1, "outside");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1, "needs 12");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, -1, "overlap");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, -1, "duplicate");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, -1, "overflow");
    expect_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1, "dtype");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, -1, "non-negative");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, -1, "non-negative");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, -1, "outside");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, -1, "data_offsets");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, -1, "malformed JSON");
    expect_error("[1,2]", 0, -1, "not a JSON object");
    expect_error("{\"a\xff\":1}", 0, -1, "UTF-8");
    expect_error("{\"__metadata__\":{\"k\":1}}", 0, -1, "not a string");
    expect_error("{}", 0, 100, "past the end");
    /* file shorter than the 8-byte length prefix */
    snprintf(path_buf, sizeof path_buf, "%s/short.safetensors", tu_tmpdir());
    FILE *f = fopen(path_buf, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    st_set *s;
    rs_err err = {0};
    assert_int_equal(st_open(&s, path_buf, &err), -1);
    assert_non_null(strstr(err.msg, "truncated"));
    assert_int_equal(st_open(&s, "/nonexistent/x.safetensors", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/x.safetensors"));
}

static void test_write_read_round_trip(void **st) {
    (void)st;
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", tu_tmpdir());
    float a[6] = {1, -2, 3.5f, 4, 5, 6};
    int32_t ids[3] = {2, 651, 9};
    uint16_t bf[2] = {rs_f32_to_bf16(1.5f), rs_f32_to_bf16(-0.25f)};
    int64_t sa[2] = {2, 3}, si[1] = {3}, sb[1] = {2};
    rs_err err = {0};
    st_writer *w = st_writer_new();
    assert_int_equal(st_writer_add(w, "blocks.0.hook_resid_post", RS_DT_F32, 2, sa, a, &err), 0);
    assert_int_equal(st_writer_add(w, "token_ids", RS_DT_I32, 1, si, ids, &err), 0);
    assert_int_equal(st_writer_add(w, "bf", RS_DT_BF16, 1, sb, bf, &err), 0);
    assert_int_equal(st_writer_add(w, "bf", RS_DT_BF16, 1, sb, bf, &err), -1); /* duplicate */
    assert_int_equal(st_writer_meta(w, "model", "tiny \"quoted\"", &err), 0);
    assert_int_equal(st_writer_save(w, path, &err), 0);
    st_writer_free(w);
    st_set *s;
    assert_int_equal(st_open(&s, path, &err), 0);
    assert_int_equal(s->n_tensors, 3);
    const st_tensor *t = st_get(s, "blocks.0.hook_resid_post");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_memory_equal(t->data, a, sizeof a);
    float got[2];
    st_to_f32(st_get(s, "bf"), got);
    assert_true(got[0] == 1.5f && got[1] == -0.25f);
    assert_string_equal(st_meta(s, "model"), "tiny \"quoted\"");
    /* header is 8-byte aligned so data can be mapped as floats */
    assert_int_equal(((uintptr_t)t->data) % 4, 0);
    st_close(s);
}

static void test_sharded_fixture(void **st) {
    (void)st;
    st_set *s;
    rs_err err = {0};
    assert_int_equal(st_open(&s, "tests/fixtures/models/gemma2-tiny-bf16", &err), 0);
    assert_true(s->n_shards > 1);
    const st_tensor *t = st_get(s, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, RS_DT_BF16);
    st_close(s);
}

static void test_half_conversions(void **st) {
    (void)st;
    assert_true(rs_f16_to_f32(0x3C00) == 1.0f);
    assert_true(rs_f16_to_f32(0xC000) == -2.0f);
    assert_true(rs_f16_to_f32(0x0001) == 5.9604644775390625e-08f); /* smallest subnormal */
    assert_true(rs_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(rs_bf16_to_f32(0x3F80) == 1.0f);
    assert_int_equal(rs_f32_to_bf16(1.00390625f), 0x3F80); /* tie rounds to even */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_headers), cmocka_unit_test(test_write_read_round_trip),
        cmocka_unit_test(test_sharded_fixture), cmocka_unit_test(test_half_conversions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
