/* Progress with ETA on stderr for long work. Silent for work that finishes within a
 * second; redraws in place on a terminal, prints a line every few seconds otherwise. */
#ifndef REPRSHIFT_PROGRESS_H
#define REPRSHIFT_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *label;
    int64_t total;
    double t0, last;
    int tty, shown, quiet;
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
