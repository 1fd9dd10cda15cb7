/* sae-lens cfg.json: sae_load on a folder whose cfg.json is the fuzz input and whose
 * sae_weights.safetensors is the fixed 64 x 128 fixture; an accepted SAE encodes and
 * decodes one row and checks its hook. A cfg.json claiming huge dimensions must fail on the
 * weights' shapes before anything is allocated from it (ASan would report the allocation). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "reprshift/sae.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        size_t n;
        void *w = fz_slurp(fz_src("tests/fixtures/sae/saelens_standard/sae_weights.safetensors"), &n);
        fz_write(1, "sae_weights.safetensors", w, n);
        free(w);
        ready = 1;
    }
    fz_write(0, "cfg.json", data, size);
    rs_err err;
    rs_sae *s = NULL;
    if (sae_load(&s, fz_dir(), NULL, &err) == 0) {
        float *x = calloc((size_t)s->d_in, sizeof(float));
        float *f = calloc((size_t)s->d_sae, sizeof(float));
        float *o = calloc((size_t)s->d_in, sizeof(float));
        for (int i = 0; i < s->d_in; i++) x[i] = (float)(i % 7) - 3.0f;
        sae_forward(s, x, 1, f, o, &err);
        sae_check_hook(s, "blocks.3.hook_resid_post", 0, &err);
        free(x); free(f); free(o);
        sae_free(s);
    } else if (!strstr(err.msg, "cfg.json") && !strstr(err.msg, "sae_weights") && !strstr(err.msg, fz_dir())) {
        abort();
    }
    return 0;
}
