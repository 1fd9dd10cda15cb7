/* rs_json_parse (UTF-8, NUL and depth checks before cJSON) and the typed field readers,
 * applied to every member of the parsed value; also the JSON string escaper. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "base/jsonutil.h"

static void walk(const cJSON *j, int depth) {
    rs_err err;
    for (const cJSON *c = j->child; c; c = c->next) {
        if (c->string) {
            int64_t v;
            double d;
            rs_json_int(j, c->string, INT64_MIN / 2, INT64_MAX / 2, 1, 0, &v, "fuzz", &err);
            rs_json_int(j, c->string, 0, 1 << 20, 0, 0, &v, "fuzz", &err);
            rs_json_num(j, c->string, 0, 0, &d, "fuzz", &err);
        }
        rs_json_is_int(c, INT64_MIN / 2, INT64_MAX / 2);
        if (cJSON_IsString(c)) {
            char *b = NULL;
            size_t len = 0, cap = 0;
            if (rs_json_append_string(&b, &len, &cap, c->valuestring) == 0 && !rs_utf8_valid(b, len)) abort();
            free(b);
        }
        if (depth < 100) walk(c, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rs_err err;
    cJSON *j = NULL;
    int valid = rs_utf8_valid((const char *)data, size);
    if (rs_json_parse((const char *)data, size, "fuzz.json", &j, &err) == 0) {
        if (!valid) abort(); /* accepted input must have passed the UTF-8 check */
        walk(j, 0);
        cJSON_Delete(j);
    } else if (!strstr(err.msg, "fuzz.json")) {
        abort(); /* every error names its source */
    }
    return 0;
}
