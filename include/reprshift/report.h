/* The HTML report: one self-contained file (inline CSS and SVG, no scripts, no external
 * resources) built from a results directory of JSON files written by the analysis stages.
 * Schema of every file consumed: docs/report.md. Sections whose file is absent are skipped
 * with a note; a malformed file is an error naming the file and the field. All text that
 * comes from data is HTML-escaped. The output is deterministic (no timestamps). */
#ifndef REPRSHIFT_REPORT_H
#define REPRSHIFT_REPORT_H

#include <stddef.h>
#include "reprshift/error.h"

/* Largest results JSON/CSV file the report reads. */
#define REPORT_MAX_FILE_BYTES (256u * 1024u * 1024u)

/* Render the report of results_dir into a new NUL-terminated buffer (caller frees).
 * n_figures (may be NULL) receives the number of plots drawn. */
int report_render(const char *results_dir, char **html, size_t *len, int *n_figures, rs_err *err);
/* Render and write atomically to out_path (nothing is written on error). */
int report_write(const char *results_dir, const char *out_path, int *n_figures, rs_err *err);

#endif
