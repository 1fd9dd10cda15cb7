/* Where the library's messages go. The library never writes to stdout/stderr itself: run
 * messages ("[stage] text") and progress/ETA lines go to one process-wide sink that the
 * program installs (as SQLite's SQLITE_CONFIG_LOG); with none installed they are dropped.
 * The reprshift CLI installs a stderr sink (src/cli/main.c). */
#ifndef REPRSHIFT_LOG_H
#define REPRSHIFT_LOG_H

typedef enum {
    RS_LOG_MESSAGE = 0,  /* one complete line, e.g. "[extract] llm_text: 24 inputs ..." */
    RS_LOG_PROGRESS = 1, /* a progress/ETA line; a later one supersedes it (a terminal may redraw in place) */
    RS_LOG_PROGRESS_END = 2 /* the last line of a progress run */
} rs_log_kind;

/* text: no trailing newline. Called from the thread that does the work (never concurrently
 * by the library's own code: messages come from serial sections). */
typedef void (*rs_log_fn)(void *ctx, rs_log_kind kind, const char *text);

/* Install (fn non-NULL) or remove (NULL) the sink; returns the previous one. Not
 * thread-safe: call it before starting work. */
rs_log_fn rs_log_set(rs_log_fn fn, void *ctx);
/* Send a line to the sink (printf-style); nothing when none is installed. */
void rs_log_emit(rs_log_kind kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
