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
/* Write s as a JSON string literal (with quotes) to fp. */
void rs_json_write_string(FILE *fp, const char *s);
/* Append s verbatim to a growing buffer (*buf, *len, *cap); -1 on OOM. */
int rs_json_append_raw(char **buf, size_t *len, size_t *cap, const char *s);
/* Append s as a JSON string literal to a growing buffer (*buf, *len, *cap); -1 on OOM. */
int rs_json_append_string(char **buf, size_t *len, size_t *cap, const char *s);

#endif
