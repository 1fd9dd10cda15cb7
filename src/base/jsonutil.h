/* Small helpers over cJSON shared by all JSON readers: strict parsing with a file name in
 * the error, typed field access, UTF-8 validation and JSON string escaping for writers. */
#ifndef REPRSHIFT_JSONUTIL_H
#define REPRSHIFT_JSONUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "reprshift/error.h"

/* Max nesting accepted by rs_json_parse (cJSON's own limit is 1000; deeper is an error). */
#define RS_JSON_MAX_DEPTH 64

/* Is buf[0..n) valid UTF-8 (no overlongs, no surrogates)? */
int rs_utf8_valid(const char *buf, size_t n);
/* Parse buf[0..n) as JSON after UTF-8 and depth checks; `what` names the source in errors. */
int rs_json_parse(const char *buf, size_t n, const char *what, cJSON **out, rs_err *err);
/* Read and parse a JSON file (size-limited). */
int rs_json_load(const char *path, size_t max_bytes, cJSON **out, rs_err *err);
/* Integer field: must be a number with no fraction in [lo, hi]. Missing → error unless def_ok. */
int rs_json_int(const cJSON *obj, const char *key, int64_t lo, int64_t hi, int has_default,
                int64_t def, int64_t *out, const char *what, rs_err *err);
/* Number field (double); missing → default if has_default else error. */
int rs_json_num(const cJSON *obj, const char *key, int has_default, double def, double *out,
                const char *what, rs_err *err);
/* Is x an integer-valued JSON number in [lo, hi]? */
int rs_json_is_int(const cJSON *x, int64_t lo, int64_t hi);
/* ---- the one JSON number writer ----
 * JSON has no NaN or infinity: every number reprshift writes goes through rs_json_fmt_num,
 * which prints a finite x with the printf format fmt (one double conversion, e.g. "%.9g",
 * "%.6f") and a non-finite one as null. rs_json_write_num / rs_json_append_num write that
 * text; rs_json_number makes the cJSON node (Number, or Null when not finite) for writers
 * that build a cJSON tree. Readers of our JSON: null = undefined (e.g. a metric over an
 * empty subset, a ratio with a zero denominator). */
#define RS_JSON_NUM_SIZE 64
/* x as JSON text into buf (size >= RS_JSON_NUM_SIZE advised); returns buf. */
const char *rs_json_fmt_num(char *buf, size_t size, const char *fmt, double x);
/* rs_json_fmt_num into a fresh buffer that lives until the end of the enclosing block, for
 * printf arguments: printf("{\"mse\": %s}", RS_JSON_NUM("%.9g", mse)). */
#define RS_JSON_NUM(fmt, x) rs_json_fmt_num((char[RS_JSON_NUM_SIZE]){0}, RS_JSON_NUM_SIZE, fmt, (x))
/* Write x as JSON (fmt as above) to fp. */
void rs_json_write_num(FILE *fp, const char *fmt, double x);
/* Append x as JSON to a growing buffer (*buf, *len, *cap); -1 on OOM. */
int rs_json_append_num(char **buf, size_t *len, size_t *cap, const char *fmt, double x);
/* cJSON node for x: a Number, or Null when x is NaN or infinite. */
cJSON *rs_json_number(double x);
/* cJSON_AddItemToObject(obj, key, rs_json_number(x)); the item, or NULL on OOM. */
cJSON *rs_json_add_num(cJSON *obj, const char *key, double x);
/* {"value": v, "ci_lo": lo, "ci_hi": hi} (non-finite numbers as null); NULL on OOM. */
cJSON *rs_json_stat(double v, double lo, double hi);
/* Write s as a JSON string literal (with quotes) to fp. */
void rs_json_write_string(FILE *fp, const char *s);
/* Append s verbatim to a growing buffer (*buf, *len, *cap); -1 on OOM. */
int rs_json_append_raw(char **buf, size_t *len, size_t *cap, const char *s);
/* Append s as a JSON string literal to a growing buffer (*buf, *len, *cap); -1 on OOM. */
int rs_json_append_string(char **buf, size_t *len, size_t *cap, const char *s);

#endif
