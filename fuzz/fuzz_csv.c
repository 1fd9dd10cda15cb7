/* CSV tables (RFC 4180): rs_csv_parse on arbitrary bytes; accepted tables are walked,
 * re-written with rs_csv_write_row and parsed again (must give the same cells). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rs_err err;
    rs_csv *t = NULL;
    if (rs_csv_parse((const char *)data, size, "fuzz.csv", &t, &err) != 0) return 0;
    if (t->n_cols < 1) abort();
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    rs_csv_write_row(fp, (const char *const *)t->header, t->n_cols);
    for (size_t r = 0; r < t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++) (void)strlen(rs_csv_cell(t, r, c));
        rs_csv_write_row(fp, (const char *const *)&t->cells[r * (size_t)t->n_cols], t->n_cols);
        (void)rs_csv_col(t, t->header[r % (size_t)t->n_cols]);
    }
    fclose(fp);
    /* a lone empty field is written as "" so the row survives; only a BOM-looking first
     * header cell legitimately changes on re-read (the reader strips a BOM) */
    int lossy = 0;
    lossy |= !strncmp(t->header[0], "\xEF\xBB\xBF", 3); /* a BOM-looking first cell is stripped on re-read */
    rs_csv *u = NULL;
    if (!lossy && rs_csv_parse(buf, len, "rewritten", &u, &err) == 0) {
        if (u->n_cols != t->n_cols || u->n_rows != t->n_rows) abort();
        for (size_t i = 0; i < t->n_rows * (size_t)t->n_cols; i++)
            if (strcmp(u->cells[i], t->cells[i])) abort();
        rs_csv_free(u);
    }
    free(buf);
    rs_csv_free(t);
    return 0;
}
