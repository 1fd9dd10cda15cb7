/* CSV tables (RFC 4180): fields separated by commas, records by LF or CRLF; a field in
 * double quotes may hold commas, line breaks and "" (an escaped quote). The first record is
 * the header; every record must have as many fields as the header. Errors name the source
 * and the 1-based line. Writers quote only the fields that need it and end records with LF.
 * Spaces are data: nothing is trimmed. See docs/datasets.md. */
#ifndef REPRSHIFT_CSV_H
#define REPRSHIFT_CSV_H

#include <stddef.h>
#include <stdio.h>
#include "reprshift/error.h"

typedef struct {
    int n_cols;
    size_t n_rows;          /* data rows (header excluded) */
    char **header;          /* [n_cols] */
    char **cells;           /* [n_rows * n_cols], row-major; never NULL (empty field = "") */
    size_t *row_line;       /* [n_rows] 1-based line where each row starts (for messages) */
} rs_csv;

/* Parse buf[0..n) (header + rows) into a new table; `what` names the source in errors. */
int rs_csv_parse(const char *buf, size_t n, const char *what, rs_csv **out, rs_err *err);
/* Read and parse a CSV file (fails above max_bytes). */
int rs_csv_load(const char *path, size_t max_bytes, rs_csv **out, rs_err *err);
/* Free a table (NULL is fine). */
void rs_csv_free(rs_csv *t);
/* Index of the named header column, or -1. */
int rs_csv_col(const rs_csv *t, const char *name);
/* Cell (row, col); row < n_rows, col < n_cols. */
const char *rs_csv_cell(const rs_csv *t, size_t row, int col);

/* Does s need quoting (comma, quote, CR or LF; as Python's csv QUOTE_MINIMAL, plus lone CR)? */
int rs_csv_needs_quotes(const char *s);
/* Write one field (quoted if needed) to fp. */
void rs_csv_write_field(FILE *fp, const char *s);
/* Write n fields as one record ending in "\n"; NULL fields are written empty. Returns
 * 0, or -1 if fp reports an error. */
int rs_csv_write_row(FILE *fp, const char *const *fields, int n);

#endif
