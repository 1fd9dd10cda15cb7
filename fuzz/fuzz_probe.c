/* Probe files: rs_probe_load on an arbitrary safetensors file (metadata format/hook/
 * classes/C, coef/intercept/scaler tensors) and rs_acts_load of the "acts" tensor. An
 * accepted probe predicts one row of ones (exercises the loaded shapes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "reprshift/probe_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write(0, "p.safetensors", data, size);
    rs_err err;
    rs_probe pr;
    if (rs_probe_load(&pr, p, &err) == 0) {
        int d = pr.model.d;
        if (d < 1 || pr.n_classes < 2) abort();
        if (d <= (1 << 16)) {
            float *x = malloc(sizeof(float) * (size_t)d);
            for (int i = 0; i < d; i++) x[i] = 1.0f;
            int pred = -1;
            if (rs_probe_predict(&pr, x, 1, d, &pred, &err) == 0 && (pred < 0 || pred >= pr.n_classes)) abort();
            free(x);
        }
        rs_probe_free(&pr);
    } else if (!strstr(err.msg, "p.safetensors")) {
        abort();
    }
    float *X = NULL;
    int n = 0, d = 0;
    if (rs_acts_load(p, "acts", &X, &n, &d, &err) == 0) {
        if (n < 1 || d < 1) abort();
        free(X);
    }
    return 0;
}
