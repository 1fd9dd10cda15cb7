/* The library's message sink (include/reprshift/log.h). */
#include "reprshift/log.h"

#include <stdarg.h>
#include <stdio.h>

static rs_log_fn g_fn;
static void *g_ctx;

rs_log_fn rs_log_set(rs_log_fn fn, void *ctx) {
    rs_log_fn old = g_fn;
    g_fn = fn;
    g_ctx = ctx;
    return old;
}

void rs_log_emit(rs_log_kind kind, const char *fmt, ...) {
    if (!g_fn) return;
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_fn(g_ctx, kind, buf);
}
