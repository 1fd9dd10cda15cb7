/* Hugging Face config.json readers: model_config_type, gemma2_config_load and
 * paligemma_config_load on the file, plus the from_json parsers on the object and on its
 * text_config / vision_config. Accepted configs must satisfy the invariants the model
 * code relies on (positive sizes, n_layers within RS_MAX_LAYERS). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "base/jsonutil.h"
#include "reprshift/model_config.h"

static void check_g(const gemma2_config *c) {
    if (c->n_layers < 1 || c->n_layers > RS_MAX_LAYERS || c->hidden_size < 1 || c->n_heads < 1 ||
        c->n_kv_heads < 1 || c->head_dim < 1 || c->vocab_size < 1 || c->intermediate_size < 1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write(0, "config.json", data, size);
    rs_err err;
    rs_model_type t;
    gemma2_config g;
    paligemma_config pg;
    model_config_type(p, &t, &err);
    if (gemma2_config_load(p, &g, &err) == 0) check_g(&g);
    if (paligemma_config_load(p, &pg, &err) == 0) check_g(&pg.text);
    cJSON *j = NULL;
    if (rs_json_parse((const char *)data, size, "config.json", &j, &err) == 0) {
        siglip_config s;
        if (gemma2_config_from_json(j, "config.json", &g, &err) == 0) check_g(&g);
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(j, "text_config");
        const cJSON *vc = cJSON_GetObjectItemCaseSensitive(j, "vision_config");
        if (tc && gemma2_config_from_json(tc, "text_config", &g, &err) == 0) check_g(&g);
        siglip_config_from_json(vc ? vc : j, "vision_config", &s, &err);
        cJSON_Delete(j);
    }
    return 0;
}
