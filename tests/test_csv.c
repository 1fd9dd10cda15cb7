/* CSV reader/writer against Python's csv module: tricky.csv parsed as csv.reader does
 * (goldens in tests/fixtures/data/csv_cases, made by tools/reference/gen_csv_fixtures.py),
 * the writer byte-identical to csv.writer, and malformed input failing with file + line. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "reprshift/fileio.h"
#include "base/jsonutil.h"

#define CASES "tests/fixtures/data/csv_cases/"

static void test_reader_matches_python(void **st) {
    (void)st;
    rs_csv *t;
    rs_err err = {0};
    if (rs_csv_load(CASES "tricky.csv", 1 << 20, &t, &err)) fail_msg("%s", err.msg);
    cJSON *ref;
    if (rs_json_load(CASES "tricky.expected.json", 1 << 20, &ref, &err)) fail_msg("%s", err.msg);
    const cJSON *hdr = cJSON_GetObjectItem(ref, "header"), *rows = cJSON_GetObjectItem(ref, "rows");
    assert_int_equal(t->n_cols, cJSON_GetArraySize(hdr));
    for (int c = 0; c < t->n_cols; c++) assert_string_equal(t->header[c], cJSON_GetArrayItem(hdr, c)->valuestring);
    assert_int_equal(t->n_rows, (size_t)cJSON_GetArraySize(rows));
    for (size_t r = 0; r < t->n_rows; r++) {
        const cJSON *row = cJSON_GetArrayItem(rows, (int)r);
        assert_int_equal(cJSON_GetArraySize(row), t->n_cols);
        for (int c = 0; c < t->n_cols; c++)
            if (strcmp(rs_csv_cell(t, r, c), cJSON_GetArrayItem(row, c)->valuestring))
                fail_msg("row %zu col %d: got \"%s\", Python read \"%s\"", r, c, rs_csv_cell(t, r, c),
                         cJSON_GetArrayItem(row, c)->valuestring);
    }
    assert_int_equal(rs_csv_col(t, "label"), 2);
    assert_int_equal(rs_csv_col(t, "nope"), -1);
    /* line numbers: row 3 ("two\nlines") starts on line 5 after a blank line 4 */
    assert_int_equal(t->row_line[0], 2);
    assert_int_equal(t->row_line[2], 5);
    assert_int_equal(t->row_line[3], 7);
    cJSON_Delete(ref);

    /* writer: same bytes as csv.writer(lineterminator="\n") for the rows without a lone CR */
    char path[600];
    snprintf(path, sizeof path, "%s/w.csv", tu_tmpdir());
    FILE *f = fopen(path, "wb");
    rs_csv_write_row(f, (const char *const *)t->header, t->n_cols);
    for (size_t r = 0; r < t->n_rows; r++) {
        const char *const *row = (const char *const *)&t->cells[r * (size_t)t->n_cols];
        int lone_cr = 0;
        for (int c = 0; c < t->n_cols; c++)
            for (const char *p = row[c]; *p; p++) lone_cr |= p[0] == '\r' && p[1] != '\n';
        if (!lone_cr) assert_int_equal(rs_csv_write_row(f, row, t->n_cols), 0);
    }
    fclose(f);
    char *got, *want;
    size_t gl, wl;
    assert_int_equal(rs_read_file(path, 1 << 20, &got, &gl, &err), 0);
    assert_int_equal(rs_read_file(CASES "written.csv", 1 << 20, &want, &wl, &err), 0);
    assert_int_equal(gl, wl);
    assert_memory_equal(got, want, wl);
    free(got);
    free(want);

    /* round trip of everything (lone CR included) through our writer and reader */
    f = fopen(path, "wb");
    rs_csv_write_row(f, (const char *const *)t->header, t->n_cols);
    for (size_t r = 0; r < t->n_rows; r++)
        rs_csv_write_row(f, (const char *const *)&t->cells[r * (size_t)t->n_cols], t->n_cols);
    fclose(f);
    rs_csv *t2;
    if (rs_csv_load(path, 1 << 20, &t2, &err)) fail_msg("%s", err.msg);
    assert_int_equal(t2->n_rows, t->n_rows);
    for (size_t i = 0; i < t->n_rows * (size_t)t->n_cols; i++) assert_string_equal(t2->cells[i], t->cells[i]);
    rs_csv_free(t2);
    rs_csv_free(t);
}

static void expect_error(const char *text, size_t len, const char *needle) {
    rs_csv *t = (rs_csv *)1;
    rs_err err = {0};
    assert_int_equal(rs_csv_parse(text, len, "m.csv", &t, &err), -1);
    assert_null(t);
    if (!strstr(err.msg, needle) || !strstr(err.msg, "m.csv"))
        fail_msg("error \"%s\" lacks \"%s\" or the file name", err.msg, needle);
}
#define EXPECT(s, needle) expect_error(s, sizeof(s) - 1, needle)

static void test_malformed(void **st) {
    (void)st;
    EXPECT("a,b\n1,2\n\"open,3\n4,5\n", "line 3: unterminated quoted field");
    EXPECT("a,b\n\"x\ny\",1\nz\n", "line 4: 1 fields, but the header has 2");
    EXPECT("a,b\r\n1,2,3\r\n", "line 2: 3 fields");
    EXPECT("a,b\n1,x\"y\n", "line 2: quote inside an unquoted field");
    EXPECT("a,b\n1,\"x\"y\n", "line 2: unexpected character 'y' after a closing quote");
    EXPECT("", "empty CSV");
    EXPECT("\n\n", "empty CSV");
    EXPECT("a,a\n1,2\n", "duplicate column name 'a'");
    EXPECT("a,b\n1,2\0\n", "NUL byte");
    EXPECT("a,b\n1,\xff\n", "UTF-8");
    EXPECT("a,b\n1,2\r3,4\n", "carriage return");
}

static void test_edge_cases(void **st) {
    (void)st;
    rs_csv *t;
    rs_err err = {0};
    /* header only; BOM stripped; CRLF; trailing empty field */
    const char *s = "\xEF\xBB\xBFx,y\r\n";
    assert_int_equal(rs_csv_parse(s, strlen(s), "h", &t, &err), 0);
    assert_int_equal(t->n_rows, 0);
    assert_string_equal(t->header[0], "x");
    rs_csv_free(t);
    s = "x,y\n1,\n";
    assert_int_equal(rs_csv_parse(s, strlen(s), "h", &t, &err), 0);
    assert_int_equal(t->n_rows, 1);
    assert_string_equal(rs_csv_cell(t, 0, 1), "");
    rs_csv_free(t);
    assert_int_equal(rs_csv_load("tests/fixtures/data/csv_cases/does_not_exist.csv", 1 << 20, &t, &err), -1);
    assert_non_null(strstr(err.msg, "does_not_exist.csv"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_matches_python),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_edge_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
