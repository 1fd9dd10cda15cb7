/* The library never prints: messages and progress go to the installed sink (reprshift/log.h)
 * and, with none installed, nowhere — stderr stays empty (checked on the real fd 2). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "reprshift/log.h"
#include "reprshift/progress.h"

typedef struct {
    int n[3];
    char last[3][256];
} seen;

static void collect(void *ctx, rs_log_kind kind, const char *text) {
    seen *s = ctx;
    s->n[kind]++;
    snprintf(s->last[kind], sizeof s->last[kind], "%s", text);
}

static void work_with_progress(void) {
    rs_progress p;
    rs_progress_start(&p, "unit test", 10);
    p.t0 -= 2.0; /* pretend 2 s have passed: progress is due */
    p.last = p.t0;
    rs_progress_update(&p, 5);
    rs_progress_finish(&p);
}

static void test_sink_receives(void **state) {
    (void)state;
    seen s;
    memset(&s, 0, sizeof s);
    assert_null(rs_log_set(collect, &s));
    rs_log_emit(RS_LOG_MESSAGE, "[%s] %d inputs", "extract", 24);
    work_with_progress();
    assert_int_equal(s.n[RS_LOG_MESSAGE], 1);
    assert_string_equal(s.last[RS_LOG_MESSAGE], "[extract] 24 inputs");
    assert_int_equal(s.n[RS_LOG_PROGRESS], 1);
    assert_non_null(strstr(s.last[RS_LOG_PROGRESS], "unit test: 5/10 (50%)"));
    assert_int_equal(s.n[RS_LOG_PROGRESS_END], 1);
    assert_non_null(strstr(s.last[RS_LOG_PROGRESS_END], "unit test: 10/10 done"));
    /* quiet progress sends nothing */
    rs_progress p;
    rs_progress_start(&p, "quiet", 3);
    p.quiet = 1;
    p.t0 -= 2.0;
    p.last = p.t0;
    rs_progress_update(&p, 1);
    rs_progress_finish(&p);
    assert_int_equal(s.n[RS_LOG_PROGRESS], 1);
    assert_true(rs_log_set(NULL, NULL) == collect);
}

static void test_no_sink_no_output(void **state) {
    (void)state;
    char path[] = "/tmp/rs_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(dup2(fd, 2) >= 0);
    rs_log_emit(RS_LOG_MESSAGE, "should go nowhere %d", 1);
    work_with_progress();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    unlink(path);
    assert_int_equal(st.st_size, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_receives),
        cmocka_unit_test(test_no_sink_no_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
