/* Shared helpers for the cmocka tests: fixture paths and tolerance checks. */
#ifndef RS_TESTUTIL_H
#define RS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Path under ../shared (env RS_SHARED_DIR overrides); static buffer, copy if kept. */
const char *tu_shared(const char *rel);
/* A fresh temporary directory (created); static buffer. */
const char *tu_tmpdir(void);
/* max |a-b| over n floats. */
double tu_max_abs_diff(const float *a, const float *b, size_t n);
/* max |a| over n floats. */
double tu_max_abs(const float *a, size_t n);
/* Fail the test unless max|got-ref| <= rel * max|ref| (prints the numbers and label). */
void tu_assert_close_rel(const float *ref, const float *got, size_t n, double rel, const char *label);
/* Run a shell command, return its exit status (or -1). */
int tu_system(const char *fmt, ...);
/* Run `reprshift run` (rs_pipeline_run: quiet, 1 thread, shard_inputs if > 0) on cfg into
 * out in a forked child; returns its exit status (128 if it did not exit). When msg is
 * non-NULL *msg receives the error message ("" on success; caller frees). */
int tu_run_pipeline(const char *cfg, const char *out, int shard_inputs, char **msg);
/* Number of done-markers (stages/NAME.done) in the run folder out. */
int tu_count_done(const char *out);

#endif
