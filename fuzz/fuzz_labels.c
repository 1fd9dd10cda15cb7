/* Label files for probes: rs_labels_read as plain lines and as a CSV column ("label"),
 * then rs_labels_encode of what was read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "reprshift/probe_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write(0, "labels.csv", data, size);
    rs_err err;
    for (int k = 0; k < 2; k++) {
        char **labels = NULL;
        int n = 0;
        if (rs_labels_read(p, k ? "label" : NULL, &labels, &n, &err) != 0) continue;
        int *y = NULL, K = 0;
        char **classes = NULL;
        if (rs_labels_encode(labels, n, &y, &classes, &K, &err) == 0) {
            for (int i = 0; i < n; i++)
                if (y[i] < 0 || y[i] >= K || strcmp(classes[y[i]], labels[i])) abort();
            free(y);
            rs_labels_free(classes, K);
        }
        rs_labels_free(labels, n);
    }
    return 0;
}
