/* tok_load on an arbitrary tokenizer.json; a loaded tokenizer then encodes and decodes a
 * fixed text (with and without <bos>), looks up every id, and takes PaliGemma's tokens. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "reprshift/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write(0, "tokenizer.json", data, size);
    rs_tokenizer *tok = NULL;
    rs_err err;
    if (tok_load(&tok, p, &err) != 0) {
        if (!strstr(err.msg, "tokenizer.json") && !strstr(err.msg, "out of memory")) abort();
        return 0;
    }
    static const char text[] = "Hello  world!\n\t<s> caf\xc3\xa9 \xe2\x96\x81x \xf0\x9f\x98\x80 </s>";
    for (int bos = 0; bos < 2; bos++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tok_encode(tok, text, sizeof text - 1, bos, &ids, &n, &err) == 0) {
            char *out = NULL;
            size_t len;
            if (tok_decode_ex(tok, ids, n, bos, &out, &len, &err) == 0) free(out);
            free(ids);
        }
    }
    size_t V = tok_vocab_size(tok);
    for (size_t i = 0; i < V && i < 4096; i++) {
        const char *pc = tok_piece(tok, (int32_t)i);
        if (pc && tok_id(tok, pc) < 0) abort();
    }
    int32_t junk[4] = {-1, (int32_t)V, INT32_MAX, 0};
    char *out = NULL;
    if (tok_decode(tok, junk, 4, &out, &err) == 0) free(out);
    if (V < 4096 && size % 8 == 0) tok_add_paligemma_tokens(tok, &err); /* costly: 1 input in 8 */
    tok_free(tok);
    return 0;
}
