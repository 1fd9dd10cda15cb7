/* Dataset manifests: rs_manifest_load on an arbitrary CSV file (columns, modality values,
 * integer ids, split names); an accepted manifest is looked through and checked for images. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "reprshift/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write(0, "manifest.csv", data, size);
    rs_err err;
    rs_manifest *m = NULL;
    if (rs_manifest_load(p, &m, &err) == 0) {
        for (size_t i = 0; i < m->n_rows; i++) {
            const rs_manifest_row *r = &m->rows[i];
            if (!r->input || !r->label) abort();
            if (r->modality == RS_MODALITY_IMAGE && !r->path) abort();
        }
        for (int k = 0; k < m->n_extra; k++)
            if (rs_manifest_extra_col(m, m->extra_names[k]) < 0) abort();
        size_t missing = 0;
        rs_manifest_check_images(m, &missing, &err);
        rs_manifest_free(m);
    } else if (!strstr(err.msg, "manifest.csv")) {
        abort();
    }
    return 0;
}
