/* Progress/ETA reporting on stderr. Environment RS_QUIET=1 silences it (tests). */
#include "reprshift/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

double rs_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void rs_progress_start(rs_progress *p, const char *label, int64_t total) {
    p->label = label;
    p->total = total;
    p->t0 = p->last = rs_now();
    p->tty = isatty(2);
    p->shown = 0;
    const char *q = getenv("RS_QUIET");
    p->quiet = q && *q && *q != '0';
}

void rs_progress_update(rs_progress *p, int64_t done) {
    if (p->quiet) return;
    double now = rs_now(), el = now - p->t0;
    if (el < 1.0 || now - p->last < (p->tty ? 0.25 : 5.0)) return;
    p->last = now;
    double frac = p->total > 0 ? (double)done / (double)p->total : 0;
    double eta = frac > 0 ? el / frac - el : 0;
    fprintf(stderr, "%s%s: %lld/%lld (%.0f%%) elapsed %.0fs, ETA %.0fs%s", p->tty ? "\r" : "", p->label,
            (long long)done, (long long)p->total, 100 * frac, el, eta, p->tty ? "   " : "\n");
    fflush(stderr);
    p->shown = 1;
}

void rs_progress_finish(rs_progress *p) {
    if (p->quiet || !p->shown) return;
    fprintf(stderr, "%s%s: %lld/%lld done in %.1fs\n", p->tty ? "\r" : "", p->label, (long long)p->total,
            (long long)p->total, rs_now() - p->t0);
}
