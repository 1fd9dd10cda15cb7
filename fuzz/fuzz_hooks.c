/* Hook names: rs_hook_parse on arbitrary bytes, with a model (a PaliGemma-shaped space of
 * 26 decoder and 27 vision blocks) and without one. Accepted names must format back to a
 * name that parses to the same identity, equal to the input unless it is an embedding
 * alias; with the model, the layer must lie inside the tower and the request width must be
 * the tower's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/hooks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char name[256];
    if (size >= sizeof name) size = sizeof name - 1;
    memcpy(name, data, size);
    name[size] = 0;
    rs_hook_space s;
    memset(&s, 0, sizeof s);
    for (int t = 0; t < RS_N_TOWERS; t++) s.present[t] = 1;
    s.n_layers[RS_TOWER_DECODER] = 26;
    s.n_layers[RS_TOWER_VISION] = 27;
    s.width[RS_TOWER_DECODER] = 2304;
    s.width[RS_TOWER_VISION] = 1152;
    s.width[RS_TOWER_PROJECTOR] = 2304;
    s.attn_z_width = 2048;
    rs_err err;
    for (int k = 0; k < 2; k++) {
        const rs_hook_space *sp = k ? &s : NULL;
        rs_hook h, back;
        if (rs_hook_parse(sp, name, &h, &err)) {
            if (!strstr(err.msg, "unknown hook")) abort();
            continue;
        }
        if ((unsigned)h.tower >= RS_N_TOWERS || h.layer < -1) abort();
        if (sp && h.layer >= s.n_layers[h.tower]) abort();
        char buf[128];
        if (rs_hook_format(&h, buf, sizeof buf)) abort();
        if (rs_hook_parse(sp, buf, &back, &err) || back.tower != h.tower || back.kind != h.kind || back.layer != h.layer)
            abort();
        int alias = strstr(name, "hook_embed") != NULL;
        if (!alias && strcmp(buf, name)) abort();
        if (rs_hook_block_index(name) != (h.tower == RS_TOWER_DECODER && !alias ? h.layer : -1)) abort();
        hook_request r;
        if (sp && (hook_request_parse(sp, name, &r, &err) || r.width != rs_hook_width(sp, &h))) abort();
    }
    return 0;
}
