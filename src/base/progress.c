/* Progress/ETA lines, sent to the library's message sink (reprshift/log.h); the sink
 * decides where they go (the CLI: stderr, redrawn in place on a terminal). */
#include "reprshift/progress.h"

#include <time.h>

#include "reprshift/log.h"

double rs_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static _Thread_local rs_progress_hook hook_fn;
static _Thread_local void *hook_ctx;

void rs_progress_set_hook(rs_progress_hook fn, void *ctx) {
    hook_fn = fn;
    hook_ctx = fn ? ctx : NULL;
}

int rs_progress_cancelled(const rs_progress *p) { return p && p->cancelled; }

static void call_hook(rs_progress *p, int64_t done) {
    if (hook_fn && hook_fn(hook_ctx, p->label, done, p->total)) p->cancelled = 1;
}

void rs_progress_start(rs_progress *p, const char *label, int64_t total) {
    p->label = label;
    p->total = total;
    p->t0 = p->last = rs_now();
    p->shown = 0;
    p->quiet = 0;
    p->cancelled = 0;
    call_hook(p, 0);
}

void rs_progress_update(rs_progress *p, int64_t done) {
    call_hook(p, done);
    if (p->quiet) return;
    double now = rs_now(), el = now - p->t0;
    if (el < 1.0 || now - p->last < 0.25) return;
    p->last = now;
    double frac = p->total > 0 ? (double)done / (double)p->total : 0;
    double eta = frac > 0 ? el / frac - el : 0;
    rs_log_emit(RS_LOG_PROGRESS, "%s: %lld/%lld (%.0f%%) elapsed %.0fs, ETA %.0fs", p->label, (long long)done,
                (long long)p->total, 100 * frac, el, eta);
    p->shown = 1;
}

void rs_progress_finish(rs_progress *p) {
    call_hook(p, p->total);
    if (p->quiet || !p->shown) return;
    rs_log_emit(RS_LOG_PROGRESS_END, "%s: %lld/%lld done in %.1fs", p->label, (long long)p->total,
                (long long)p->total, rs_now() - p->t0);
}
