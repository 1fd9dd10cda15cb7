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
} rs_progress;

/* Start timing `total` units of work named label. */
void rs_progress_start(rs_progress *p, const char *label, int64_t total);
/* Report that `done` units are complete (prints at most a few times a second). */
void rs_progress_update(rs_progress *p, int64_t done);
/* Final line (only if anything was shown). */
void rs_progress_finish(rs_progress *p);
/* Monotonic seconds. */
double rs_now(void);

#endif
