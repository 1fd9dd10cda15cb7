/* rs_err: messages, kinds, prefixing and clearing (include/reprshift/error.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "reprshift/error.h"
#include "io/npz.h"

static void test_kinds_and_prefix(void **state) {
    (void)state;
    rs_err e;
    rs_err_clear(&e);
    assert_int_equal(e.kind, RS_EOK);
    assert_string_equal(e.msg, "");
    assert_int_equal(rs_errf(&e, "plain %d", 1), -1);
    assert_int_equal(e.kind, RS_EFAIL);
    assert_string_equal(e.msg, "plain 1");
    assert_int_equal(rs_errk(&e, RS_ENOMEM, "out of memory for %s", "x"), -1);
    assert_int_equal(e.kind, RS_ENOMEM);
    assert_int_equal(rs_err_prefix(&e, "%s", "file.bin"), -1);
    assert_string_equal(e.msg, "file.bin: out of memory for x");
    assert_int_equal(e.kind, RS_ENOMEM); /* context does not change what happened */
    rs_err_clear(&e);
    assert_int_equal(e.kind, RS_EOK);
    /* NULL err is allowed */
    assert_int_equal(rs_errk(NULL, RS_EIO, "x"), -1);
    assert_int_equal(rs_err_prefix(NULL, "x"), -1);
}

static void test_prefix_truncates(void **state) {
    (void)state;
    rs_err e;
    char big[2 * RS_ERR_MAX];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    rs_errk(&e, RS_EFORMAT, "tail");
    rs_err_prefix(&e, "%s", big);
    assert_int_equal(strlen(e.msg), RS_ERR_MAX - 1);
    assert_int_equal(e.kind, RS_EFORMAT);
}

static void test_names(void **state) {
    (void)state;
    const rs_err_kind k[] = {RS_EOK, RS_EFAIL, RS_ENOMEM, RS_EIO, RS_EFORMAT, RS_EINVAL, RS_EDATA, RS_EBELOWMIN, RS_ECANCELLED};
    const char *n[] = {"OK", "EFAIL", "ENOMEM", "EIO", "EFORMAT", "EINVAL", "EDATA", "EBELOWMIN", "ECANCELLED"};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) assert_string_equal(rs_err_kind_name(k[i]), n[i]);
}

/* A loader tells a file that is absent (EIO) from one that is there but malformed (EFORMAT). */
static void test_loader_kinds(void **state) {
    (void)state;
    rs_err e;
    npz_file *z = NULL;
    rs_err_clear(&e);
    assert_int_equal(npz_open(&z, "tests/malformed/does-not-exist.npz", 0, &e), -1);
    assert_int_equal(e.kind, RS_EIO);
    assert_int_equal(npz_open(&z, "tests/malformed/npz_not_zip.npz", 0, &e), -1);
    assert_int_equal(e.kind, RS_EFORMAT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds_and_prefix),
        cmocka_unit_test(test_prefix_truncates),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_loader_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
