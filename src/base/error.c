/* Error messages and kinds kept on a caller-owned rs_err. */
#include "reprshift/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int set(rs_err *err, rs_err_kind kind, const char *fmt, va_list ap) {
    if (!err) return -1;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    err->kind = kind;
    return -1;
}

int rs_errf(rs_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set(err, RS_EFAIL, fmt, ap);
    va_end(ap);
    return -1;
}

int rs_errk(rs_err *err, rs_err_kind kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set(err, kind, fmt, ap);
    va_end(ap);
    return -1;
}

int rs_err_prefix(rs_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char old[RS_ERR_MAX];
    memcpy(old, err->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    size_t k = n < 0 ? 0 : (size_t)n;
    if (k >= sizeof err->msg) k = sizeof err->msg - 1;
    /* append ": old", truncating to fit */
    const char *parts[2] = {": ", old};
    for (int p = 0; p < 2; p++)
        for (const char *c = parts[p]; *c && k + 1 < sizeof err->msg; c++) err->msg[k++] = *c;
    err->msg[k] = '\0';
    if (err->kind == RS_EOK) err->kind = RS_EFAIL;
    return -1;
}

void rs_err_clear(rs_err *err) {
    if (err) {
        err->msg[0] = '\0';
        err->kind = RS_EOK;
    }
}

const char *rs_err_kind_name(rs_err_kind kind) {
    switch (kind) {
    case RS_EOK: return "OK";
    case RS_EFAIL: return "EFAIL";
    case RS_ENOMEM: return "ENOMEM";
    case RS_EIO: return "EIO";
    case RS_EFORMAT: return "EFORMAT";
    case RS_EINVAL: return "EINVAL";
    case RS_EDATA: return "EDATA";
    case RS_EBELOWMIN: return "EBELOWMIN";
    case RS_ECANCELLED: return "ECANCELLED";
    }
    return "?";
}
