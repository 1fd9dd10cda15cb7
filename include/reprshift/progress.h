/* Progress with ETA for long work, sent to the library's message sink (reprshift/log.h) as
 * RS_LOG_PROGRESS lines at most 4 times a second, then one RS_LOG_PROGRESS_END line. Silent
 * for work that finishes within a second. */
#ifndef REPRSHIFT_PROGRESS_H
#define REPRSHIFT_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *label;
    int64_t total;
    double t0, last;
    int shown, quiet; /* quiet: send nothing (set it after rs_progress_start) */
    int cancelled;    /* set when the thread's progress hook asked the work to stop */
} rs_progress;

/* An observer of every progress run on the calling thread (language bindings: a progress
 * bar, and a way to stop long work, e.g. on Ctrl-C): called by rs_progress_start (done 0),
 * by every rs_progress_update and by rs_progress_finish (done = total), even when quiet.
 * A non-zero return asks the work to stop: rs_progress_cancelled() is then true and the
 * work that checks it (extraction, between batches) fails with RS_ECANCELLED. Thread-local;
 * fn NULL removes it. */
typedef int (*rs_progress_hook)(void *ctx, const char *label, int64_t done, int64_t total);
void rs_progress_set_hook(rs_progress_hook fn, void *ctx);
/* 1 when the progress hook asked p's work to stop (p may be NULL: 0). */
int rs_progress_cancelled(const rs_progress *p);

/* Start timing `total` units of work named label. */
void rs_progress_start(rs_progress *p, const char *label, int64_t total);
/* Report that `done` units are complete (prints at most a few times a second). */
void rs_progress_update(rs_progress *p, int64_t done);
/* Final line (only if anything was shown). */
void rs_progress_finish(rs_progress *p);
/* Monotonic seconds. */
double rs_now(void);

#endif
