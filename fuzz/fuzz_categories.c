/* Token-category CSV ("word,category" per line): categories_load on arbitrary bytes; an
 * accepted table answers lookups for a few pieces and names every category. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "analysis/categories.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write(0, "categories.csv", data, size);
    rs_err err;
    rs_categories *c = NULL;
    if (categories_load(&c, p, &err) == 0) {
        static const char *pieces[] = {"\342\226\201Dog", "red", "", "\xE2\x96\x81", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
        for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) (void)categories_lookup(c, pieces[i]);
        for (int i = 0; i < categories_count(c); i++)
            if (!categories_name(c, i)) abort();
        categories_free(c);
    } else if (!strstr(err.msg, "categories.csv") && !strstr(err.msg, "out of memory")) {
        abort();
    }
    return 0;
}
