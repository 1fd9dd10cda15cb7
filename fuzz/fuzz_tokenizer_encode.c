/* tok_encode on arbitrary bytes (valid UTF-8 or not) with the real Gemma tokenizer
 * (../shared/data/tokenizer/tokenizer.json, or RS_FUZZ_TOKENIZER; falls back to the tiny
 * fixture) and with PaliGemma's added tokens; ids are checked to be in range and decoded.
 * First byte: bit 0 = add <bos>, bit 1 = PaliGemma tokenizer, bit 2 = skip specials. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fuzz_util.h"
#include "base/jsonutil.h"
#include "reprshift/tokenizer.h"

static rs_tokenizer *tok[2];

static void setup(void) {
    const char *p = getenv("RS_FUZZ_TOKENIZER");
    if (!p) {
        const char *shared = getenv("RS_SHARED_DIR");
        static char buf[1024];
        snprintf(buf, sizeof buf, "%s/data/tokenizer/tokenizer.json", shared ? shared : fz_src("../shared"));
        p = access(buf, R_OK) == 0 ? buf : fz_src("tests/fixtures/tokenizer/tiny_bpe.json");
    }
    rs_err err;
    for (int i = 0; i < 2; i++)
        if (tok_load(&tok[i], p, &err)) { fprintf(stderr, "%s\n", err.msg); abort(); }
    if (tok_add_paligemma_tokens(tok[1], &err)) { fprintf(stderr, "%s\n", err.msg); abort(); }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok[0]) setup();
    if (size < 1) return 0;
    int flags = data[0];
    const rs_tokenizer *t = tok[(flags >> 1) & 1];
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    int32_t *ids = NULL;
    size_t m = 0;
    rs_err err;
    int rc = tok_encode(t, text, n, flags & 1, &ids, &m, &err);
    if (rc == 0) {
        size_t V = tok_vocab_size(t);
        for (size_t i = 0; i < m; i++)
            if (ids[i] < 0 || (size_t)ids[i] >= V) abort();
        char *out = NULL;
        size_t len = 0;
        if (tok_decode_ex(t, ids, m, (flags >> 2) & 1, &out, &len, &err) != 0) abort();
        free(out);
    }
    free(ids);
    return 0;
}
