/* Error reporting: library calls return 0 on success and -1 on failure, with a
 * human-readable message in an rs_err the caller owns (SQLite-style: the library never
 * prints or exits; only the CLI does — messages and progress go to the sink of
 * reprshift/log.h, which the CLI points at stderr). */
#ifndef REPRSHIFT_ERROR_H
#define REPRSHIFT_ERROR_H

#include <stddef.h>

#define RS_ERR_MAX 1024

typedef struct {
    char msg[RS_ERR_MAX];
} rs_err;

/* Format a message into err (if non-NULL); always returns -1 so callers can `return rs_errf(...)`. */
int rs_errf(rs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the existing message with "context: " (e.g. a file name); returns -1. */
int rs_err_prefix(rs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear the message. */
void rs_err_clear(rs_err *err);

#endif
