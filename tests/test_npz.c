/* npy/npz reader vs files written by numpy (tools/reference/gen_sae_goldens.py):
 * savez (stored), savez_compressed (deflated), zip64 members with npy v2/v3 headers, and
 * malformed files that must fail with a message naming the file. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "io/npz.h"
#include "reprshift/safetensors.h"

#define FX "tests/fixtures/sae/"

static void check_members(const npz_file *z, const st_set *exp, const char **names, int n) {
    for (int i = 0; i < n; i++) {
        const npy_array *a = npz_get(z, names[i]);
        const st_tensor *t = st_get(exp, names[i]);
        if (!a) fail_msg("member %s missing", names[i]);
        assert_non_null(t);
        assert_int_equal(a->ndim, t->ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(a->shape[d], t->shape[d]);
        assert_int_equal(a->nbytes, t->nbytes);
        assert_memory_equal(a->data, t->data, t->nbytes); /* bit-exact */
    }
}

static void test_stored_and_deflated(void **st) {
    (void)st;
    rs_err err;
    st_set *exp;
    assert_int_equal(st_open(&exp, FX "npz_expected.safetensors", &err), 0);
    const char *names[] = {"a", "b", "c", "e"};
    const char *files[] = {FX "stored.npz", FX "deflated.npz"};
    for (int f = 0; f < 2; f++) {
        npz_file *z;
        if (npz_open(&z, files[f], 0, &err)) fail_msg("%s", err.msg);
        assert_int_equal(z->n, 6);
        check_members(z, exp, names, 4);
        assert_int_equal(npz_get(z, "a")->dtype, NPY_F4);
        assert_int_equal(npz_get(z, "b")->dtype, NPY_F8);
        assert_int_equal(npz_get(z, "c")->dtype, NPY_I4);
        assert_int_equal(npz_get(z, "e")->dtype, NPY_I8);
        assert_int_equal(npz_get(z, "s")->ndim, 0);
        assert_int_equal(npz_get(z, "s")->numel, 1);
        assert_true(*(const float *)npz_get(z, "s")->data == 2.5f);
        const npy_array *zz = npz_get(z, "z");
        assert_int_equal(zz->ndim, 2);
        assert_int_equal(zz->shape[0], 0);
        assert_int_equal(zz->numel, 0);
        float b32[7];
        npy_to_f32(npz_get(z, "b"), b32);
        float ref[7];
        st_to_f32(st_get(exp, "b"), ref);
        tu_assert_close_rel(ref, b32, 7, 1e-7, "f8->f32");
        int64_t e64[4];
        assert_int_equal(npy_to_i64(npz_get(z, "e"), e64), 0);
        assert_true(e64[0] == -2000000000000LL && e64[3] == 1000000000000LL);
        assert_null(npz_get(z, "nope"));
        npz_close(z);
    }
    st_close(exp);
}

static void test_zip64_v2_v3(void **st) {
    (void)st;
    rs_err err;
    st_set *exp;
    npz_file *z;
    assert_int_equal(st_open(&exp, FX "npz_expected.safetensors", &err), 0);
    if (npz_open(&z, FX "zip64_v2v3.npz", 0, &err)) fail_msg("%s", err.msg);
    const char *names[] = {"a", "c"};
    check_members(z, exp, names, 2);
    npz_close(z);
    npy_array a;
    if (npy_load(FX "single_v1.npy", 0, &a, &err)) fail_msg("%s", err.msg);
    assert_memory_equal(a.data, st_get(exp, "a")->data, a.nbytes);
    npy_array_clear(&a);
    st_close(exp);
}

static void expect_fail(const char *path, const char *needle, size_t cap) {
    rs_err err = {0};
    npz_file *z = NULL;
    int rc = npz_open(&z, path, cap, &err);
    if (rc == 0) fail_msg("%s: expected failure", path);
    assert_null(z);
    if (!strstr(err.msg, needle)) fail_msg("%s: message '%s' lacks '%s'", path, err.msg, needle);
    if (!strstr(err.msg, path)) fail_msg("message '%s' does not name the file", err.msg);
}

static void test_bad_files(void **st) {
    (void)st;
    expect_fail(FX "bad_fortran.npz", "fortran_order", 0);
    expect_fail(FX "bad_bigendian.npz", "big-endian", 0);
    expect_fail(FX "bad_object.npz", "object", 0);
    expect_fail(FX "bad_overflow.npz", "overflow", 0);
    expect_fail(FX "bad_truncated.npz", "does not match", 0);
    expect_fail(FX "bad_bomb.npz", "does not match", 0);
    expect_fail(FX "bad_huge.npz", "", 0);
    expect_fail(FX "bad_notzip.npz", "zip", 0);
    expect_fail(FX "does_not_exist.npz", "", 0);
    /* global cap checked before allocation */
    expect_fail(FX "stored.npz", "limit", 64);
}

static void test_header_parser(void **st) {
    (void)st;
    rs_err err;
    npy_array a;
    size_t off;
    /* hand-made headers */
    const char ok[] = "\x93NUMPY\x01\x00\x3c\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4,), }";
    memset(&a, 0, sizeof a);
    assert_int_equal(npy_parse_header(ok, sizeof ok - 1, &a, &off, "x", &err), 0);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.numel, 12);
    assert_int_equal(a.nbytes, 96);
    assert_int_equal(off, 10 + 0x3c);
    const char bad_key[] = "\x93NUMPY\x01\x00\x3b\x00{'descr': '<f8', 'fortran_order': False, 'shap': (3, 4), }  ";
    assert_int_equal(npy_parse_header(bad_key, sizeof bad_key - 1, &a, &off, "x", &err), -1);
    const char bad_ver[] = "\x93NUMPY\x09\x00\x00\x00";
    assert_int_equal(npy_parse_header(bad_ver, sizeof bad_ver - 1, &a, &off, "x", &err), -1);
    assert_non_null(strstr(err.msg, "version"));
}

/* floats become int64 only when whole and in range; NaN, 1e300, 2^63 and 0.5 are refused
 * (casting them is undefined behaviour in C) */
static void test_to_i64_range(void **st) {
    (void)st;
    double ok[4] = {-9223372036854775808.0, -3.0, 0.0, 4503599627370496.0};
    int64_t out[4];
    npy_array a = {.dtype = NPY_F8, .ndim = 1, .shape = {4}, .numel = 4, .nbytes = sizeof ok, .data = ok};
    assert_int_equal(npy_to_i64(&a, out), 0);
    assert_true(out[0] == INT64_MIN && out[1] == -3 && out[2] == 0 && out[3] == 4503599627370496LL);
    double bad[4] = {NAN, 1e300, 9223372036854775808.0, 0.5};
    for (int i = 0; i < 4; i++) {
        npy_array b = {.dtype = NPY_F8, .ndim = 1, .shape = {1}, .numel = 1, .nbytes = 8, .data = &bad[i]};
        assert_int_equal(npy_to_i64(&b, out), -1);
    }
    float fb = -INFINITY;
    npy_array c = {.dtype = NPY_F4, .ndim = 1, .shape = {1}, .numel = 1, .nbytes = 4, .data = &fb};
    assert_int_equal(npy_to_i64(&c, out), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stored_and_deflated),
        cmocka_unit_test(test_zip64_v2_v3),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_header_parser),
        cmocka_unit_test(test_to_i64_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
