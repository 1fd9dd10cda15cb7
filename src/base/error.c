/* Error messages kept on a caller-owned rs_err. */
#include "reprshift/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int rs_errf(rs_err *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
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
    /* append ": old", truncating to fit */
    const char *parts[2] = {": ", old};
    for (int p = 0; p < 2; p++)
        for (const char *c = parts[p]; *c && k + 1 < sizeof err->msg; c++) err->msg[k++] = *c;
    if (k < sizeof err->msg) err->msg[k] = '\0';
    return -1;
}

void rs_err_clear(rs_err *err) {
    if (err) err->msg[0] = '\0';
}
