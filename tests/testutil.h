/* Shared helpers for the cmocka tests: fixture paths and tolerance checks. */
#ifndef RS_TESTUTIL_H
#define RS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "reprshift/safetensors.h"

/* Path under the shared data folder (large real assets that are not in the repository: the
 * 17 MB Gemma tokenizer, the COCO mini set, the full caption file, real images). Where it is:
 * env RS_SHARED_DIR when set at test time, else the folder CMake was configured with
 * (RS_SHARED_DIR_DEFAULT, -DRS_SHARED_DIR=..., default ../shared beside the repository).
 * Static buffer, copy if kept. */
const char *tu_shared(const char *rel);
/* Exit status CTest counts as "skipped" (SKIP_RETURN_CODE in tests/CMakeLists.txt). */
#define TU_SKIP_CODE 77
/* 1 when tu_shared(rel) exists. Otherwise 0, after printing one line to stdout,
 *   RS-SKIP: <test program>: needs <path> (<what>); to run it: ...
 * (scripts/test.sh collects these lines into its summary) and remembering that something
 * was skipped, so that tu_exit() reports the program as skipped, never as passed. */
int tu_have_shared(const char *rel, const char *what);
/* In a cmocka test: skip the rest of it (cmocka skip()) unless tu_have_shared(rel, what). */
#define TU_NEED_SHARED(rel, what) do { if (!tu_have_shared(rel, what)) { skip(); return; } } while (0)
/* What main returns: cmocka's failure count when something failed, else TU_SKIP_CODE when
 * any test was skipped for missing shared data, else 0. */
int tu_exit(int failed);
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

/* Tensor name of a fixture, or the test fails naming it. */
const st_tensor *tu_need(const st_set *s, const char *name);
/* max |a − b| / max(max|b|, floor) over a float array a and an F32 or F64 golden tensor b. */
double tu_rel_err(const float *a, const st_tensor *t, double floor);
/* The synthetic-data streams of the trainer tests: xorshift64 uniform in [0, 1) (advances *s)
 * and a normal from two of its draws (Box-Muller). */
double tu_xs_unif(uint64_t *s);
double tu_xs_gauss(uint64_t *s);
#endif
