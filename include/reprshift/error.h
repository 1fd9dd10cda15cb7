/* Error reporting: library calls return 0 on success and -1 on failure, with a
 * human-readable message and an error kind in an rs_err the caller owns (SQLite-style: the
 * library never prints or exits; only the CLI does — messages and progress go to the sink of
 * reprshift/log.h, which the CLI points at stderr). Callers branch on the kind, never on the
 * message text. */
#ifndef REPRSHIFT_ERROR_H
#define REPRSHIFT_ERROR_H

#include <stddef.h>

#define RS_ERR_MAX 1024

/* What went wrong, for callers that react differently (retry, skip, report). */
typedef enum {
    RS_EOK = 0,    /* no error recorded */
    RS_EFAIL,      /* not classified further */
    RS_ENOMEM,     /* an allocation failed */
    RS_EIO,        /* a file could not be opened, read, written, mapped or renamed */
    RS_EFORMAT,    /* a file's content is malformed or not what the loader expects */
    RS_EINVAL,     /* an argument, option or configuration value is invalid */
    RS_EDATA,      /* the data cannot support the analysis asked (one class, too few rows) */
    RS_EBELOWMIN,  /* the data fall below a configured minimum the user can lower */
    RS_ECANCELLED, /* the caller asked the work to stop (progress hook, reprshift/progress.h) */
} rs_err_kind;

typedef struct {
    char msg[RS_ERR_MAX];
    rs_err_kind kind;
} rs_err;

/* Format a message of kind RS_EFAIL into err (if non-NULL); always returns -1 so callers
 * can `return rs_errf(...)`. */
int rs_errf(rs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with an explicit kind. */
int rs_errk(rs_err *err, rs_err_kind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with "context: " (e.g. a file name), keeping its kind; returns -1. */
int rs_err_prefix(rs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear the message and the kind. */
void rs_err_clear(rs_err *err);

/* The kind's name ("ENOMEM", ...), for messages and tests. */
const char *rs_err_kind_name(rs_err_kind kind);

#endif
