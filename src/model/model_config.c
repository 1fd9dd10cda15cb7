/* config.json readers. Absent keys take the values of the released checkpoints
 * (google/gemma-2-2b, paligemma2-3b), so a minimal config still describes those models;
 * present keys must have the right type and range. */
#include "reprshift/model_config.h"

#include <string.h>
#include <stdlib.h>
#include "reprshift/fileio.h"
#include "base/jsonutil.h"

#define MAX_CONFIG_BYTES (4u << 20)

static int geti(const cJSON *j, const char *k, int64_t lo, int64_t hi, int has_def, int64_t def,
                int *out, const char *what, rs_err *err) {
    int64_t v;
    if (rs_json_int(j, k, lo, hi, has_def, def, &v, what, err)) return -1;
    *out = (int)v;
    return 0;
}

/* A nullable float: null or absent means "off" (0). */
static int get_cap(const cJSON *j, const char *k, double def, double *out, const char *what, rs_err *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    if (x && cJSON_IsNull(x)) { *out = 0; return 0; }
    if (rs_json_num(j, k, 1, def, out, what, err)) return -1;
    if (*out < 0) return rs_errk(err, RS_EFORMAT, "%s: \"%s\" must be >= 0", what, k);
    return 0;
}

/* rope_theta: top level (Hub / transformers 4.x) or rope_parameters.rope_theta (transformers 5). */
static int get_rope_theta(const cJSON *j, double *out, const char *what, rs_err *err) {
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    if (rp && !cJSON_IsNull(rp) && !cJSON_GetObjectItemCaseSensitive(j, "rope_theta")) {
        if (!cJSON_IsObject(rp)) return rs_errk(err, RS_EFORMAT, "%s: \"rope_parameters\" must be an object", what);
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rp, "rope_type");
        if (rt && (!cJSON_IsString(rt) || strcmp(rt->valuestring, "default")))
            return rs_errk(err, RS_EFORMAT, "%s: rope_type \"%s\" is not supported (only default RoPE)", what,
                           cJSON_IsString(rt) ? rt->valuestring : "?");
        return rs_json_num(rp, "rope_theta", 1, 10000.0, out, what, err);
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) return rs_errk(err, RS_EFORMAT, "%s: rope_scaling is not supported", what);
    return rs_json_num(j, "rope_theta", 1, 10000.0, out, what, err);
}

int gemma2_config_from_json(const cJSON *j, const char *what, gemma2_config *c, rs_err *err) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(j)) return rs_errk(err, RS_EFORMAT, "%s: config is not a JSON object", what);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "gemma2")))
        return rs_errk(err, RS_EFORMAT, "%s: model_type is \"%s\", expected \"gemma2\"", what,
                       cJSON_IsString(mt) ? mt->valuestring : "?");
    if (geti(j, "vocab_size", 1, 1 << 24, 1, 256000, &c->vocab_size, what, err) ||
        geti(j, "hidden_size", 1, 1 << 16, 1, 2304, &c->hidden_size, what, err) ||
        geti(j, "num_hidden_layers", 1, RS_MAX_LAYERS, 1, 26, &c->n_layers, what, err) ||
        geti(j, "num_attention_heads", 1, 1024, 1, 8, &c->n_heads, what, err) ||
        geti(j, "num_key_value_heads", 1, 1024, 1, 4, &c->n_kv_heads, what, err) ||
        geti(j, "head_dim", 1, 4096, 1, 256, &c->head_dim, what, err) ||
        geti(j, "intermediate_size", 1, 1 << 20, 1, 9216, &c->intermediate_size, what, err) ||
        geti(j, "sliding_window", 0, 1 << 30, 1, 4096, &c->sliding_window, what, err) ||
        geti(j, "bos_token_id", 0, 1 << 24, 1, 2, &c->bos_id, what, err) ||
        geti(j, "eos_token_id", 0, 1 << 24, 1, 1, &c->eos_id, what, err) ||
        geti(j, "pad_token_id", 0, 1 << 24, 1, 0, &c->pad_id, what, err) ||
        get_rope_theta(j, &c->rope_theta, what, err) ||
        rs_json_num(j, "rms_norm_eps", 1, 1e-6, &c->rms_norm_eps, what, err) ||
        rs_json_num(j, "query_pre_attn_scalar", 1, 256.0, &c->query_pre_attn_scalar, what, err) ||
        get_cap(j, "attn_logit_softcapping", 50.0, &c->attn_softcap, what, err) ||
        get_cap(j, "final_logit_softcapping", 30.0, &c->final_softcap, what, err))
        return -1;
    if (c->n_heads % c->n_kv_heads)
        return rs_errk(err, RS_EFORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                       what, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2) return rs_errk(err, RS_EFORMAT, "%s: head_dim %d must be even for RoPE", what, c->head_dim);
    if (c->query_pre_attn_scalar <= 0 || c->rope_theta <= 0 || c->rms_norm_eps < 0)
        return rs_errk(err, RS_EFORMAT, "%s: query_pre_attn_scalar and rope_theta must be > 0", what);
    const cJSON *hact = cJSON_GetObjectItemCaseSensitive(j, "hidden_activation");
    if (!hact || cJSON_IsNull(hact)) hact = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    if (hact && !cJSON_IsNull(hact) &&
        (!cJSON_IsString(hact) || strcmp(hact->valuestring, "gelu_pytorch_tanh")))
        return rs_errk(err, RS_EFORMAT, "%s: unsupported hidden activation \"%s\" (only gelu_pytorch_tanh)", what,
                       cJSON_IsString(hact) ? hact->valuestring : "?");
    /* Sliding layers: "layer_types" when present (newer HF), else even layer indices. */
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != c->n_layers)
            return rs_errk(err, RS_EFORMAT, "%s: \"layer_types\" must list %d entries", what, c->n_layers);
        int i = 0;
        for (const cJSON *e = lt->child; e; e = e->next, i++) {
            if (cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention")) c->layer_sliding[i] = 1;
            else if (cJSON_IsString(e) && !strcmp(e->valuestring, "full_attention")) c->layer_sliding[i] = 0;
            else return rs_errk(err, RS_EFORMAT, "%s: layer_types[%d] must be \"sliding_attention\" or \"full_attention\"", what, i);
        }
    } else {
        for (int i = 0; i < c->n_layers; i++) c->layer_sliding[i] = (i % 2) == 0;
    }
    if (c->sliding_window == 0)
        for (int i = 0; i < c->n_layers; i++) c->layer_sliding[i] = 0;
    return 0;
}

static char *config_path(const char *path) {
    return rs_is_dir(path) ? rs_path_join(path, "config.json") : strdup(path);
}

int model_config_type(const char *path, rs_model_type *out, rs_err *err) {
    if (!rs_path_exists(path)) return rs_errk(err, RS_EIO, "%s: model folder not found", path);
    char *p = config_path(path);
    cJSON *j;
    if (!p) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = rs_json_load(p, MAX_CONFIG_BYTES, &j, err);
    if (rc == 0) {
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
        if (cJSON_IsString(mt) && !strcmp(mt->valuestring, "gemma2")) *out = RS_MODEL_GEMMA2;
        else if (cJSON_IsString(mt) && !strcmp(mt->valuestring, "paligemma")) *out = RS_MODEL_PALIGEMMA;
        else rc = rs_errk(err, RS_EFORMAT, "%s: model_type \"%s\" is not supported (gemma2, paligemma)", p,
                          cJSON_IsString(mt) ? mt->valuestring : "(missing)");
        cJSON_Delete(j);
    }
    free(p);
    return rc;
}

int gemma2_config_load(const char *path, gemma2_config *c, rs_err *err) {
    char *p = config_path(path);
    cJSON *j;
    if (!p) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = rs_json_load(p, MAX_CONFIG_BYTES, &j, err);
    if (rc == 0) {
        rc = gemma2_config_from_json(j, p, c, err);
        /* A standalone bidirectional Gemma-2 is a different model (PaliGemma's text_config
         * may set the flag, but PaliGemma builds its own masks, so only check here). */
        const cJSON *bi = cJSON_GetObjectItemCaseSensitive(j, "use_bidirectional_attention");
        if (rc == 0 && cJSON_IsTrue(bi))
            rc = rs_errk(err, RS_EFORMAT, "%s: use_bidirectional_attention=true is not supported for a Gemma-2 LM", p);
        cJSON_Delete(j);
    }
    free(p);
    return rc;
}

int siglip_config_from_json(const cJSON *j, const char *what, siglip_config *c, rs_err *err) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(j)) return rs_errk(err, RS_EFORMAT, "%s: vision_config is not a JSON object", what);
    if (geti(j, "hidden_size", 1, 1 << 16, 1, 1152, &c->hidden_size, what, err) ||
        geti(j, "num_hidden_layers", 1, RS_MAX_LAYERS, 1, 27, &c->n_layers, what, err) ||
        geti(j, "num_attention_heads", 1, 1024, 1, 16, &c->n_heads, what, err) ||
        geti(j, "intermediate_size", 1, 1 << 20, 1, 4304, &c->intermediate_size, what, err) ||
        geti(j, "image_size", 1, 1 << 14, 1, 224, &c->image_size, what, err) ||
        geti(j, "patch_size", 1, 1 << 10, 1, 14, &c->patch_size, what, err) ||
        geti(j, "num_channels", 1, 4, 1, 3, &c->num_channels, what, err) ||
        rs_json_num(j, "layer_norm_eps", 1, 1e-6, &c->layer_norm_eps, what, err))
        return -1;
    if (c->hidden_size % c->n_heads)
        return rs_errk(err, RS_EFORMAT, "%s: vision hidden_size %d not divisible by heads %d", what, c->hidden_size, c->n_heads);
    if (c->image_size % c->patch_size)
        return rs_errk(err, RS_EFORMAT, "%s: image_size %d not divisible by patch_size %d", what, c->image_size, c->patch_size);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "gelu_pytorch_tanh")))
        return rs_errk(err, RS_EFORMAT, "%s: unsupported vision activation \"%s\"", what, cJSON_IsString(act) ? act->valuestring : "?");
    return 0;
}

int paligemma_config_load(const char *path, paligemma_config *c, rs_err *err) {
    char *p = config_path(path);
    cJSON *j;
    if (!p) return rs_errk(err, RS_ENOMEM, "out of memory");
    memset(c, 0, sizeof *c);
    int rc = rs_json_load(p, MAX_CONFIG_BYTES, &j, err);
    if (rc) { free(p); return -1; }
    char what[1200];
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (!cJSON_IsString(mt) || strcmp(mt->valuestring, "paligemma")) {
        rc = rs_errk(err, RS_EFORMAT, "%s: model_type must be \"paligemma\"", p);
        goto done;
    }
    snprintf(what, sizeof what, "%s: text_config", p);
    if ((rc = gemma2_config_from_json(cJSON_GetObjectItemCaseSensitive(j, "text_config"), what, &c->text, err))) goto done;
    snprintf(what, sizeof what, "%s: vision_config", p);
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(j, "vision_config");
    if ((rc = siglip_config_from_json(vc, what, &c->vision, err))) goto done;
    /* Sparse Hub configs may omit vision_config.image_size (SigLIP's class default is 224)
     * while giving num_image_tokens = (S/P)²: derive S from it so 448/896 checkpoints work. */
    if (!cJSON_GetObjectItemCaseSensitive(vc, "image_size")) {
        const cJSON *nt = cJSON_GetObjectItemCaseSensitive(vc, "num_image_tokens");
        if (!cJSON_IsNumber(nt)) nt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "text_config"), "num_image_tokens");
        if (cJSON_IsNumber(nt)) {
            int g = 0;
            while ((double)(g + 1) * (g + 1) <= nt->valuedouble && g < 1 << 14) g++;
            if (g < 1 || (double)g * g != nt->valuedouble) {
                rc = rs_errk(err, RS_EFORMAT, "%s: num_image_tokens %g is not a square number of patches", p, nt->valuedouble);
                goto done;
            }
            c->vision.image_size = g * c->vision.patch_size;
            if (c->vision.image_size > 1 << 14) { /* the cap an explicit image_size has */
                rc = rs_errk(err, RS_EFORMAT, "%s: num_image_tokens %g x patch_size %d implies image_size %d (max %d)", p,
                             nt->valuedouble, c->vision.patch_size, c->vision.image_size, 1 << 14);
                goto done;
            }
        }
    }
    rc = geti(j, "image_token_index", 0, 1 << 24, 1, 257152, &c->image_token_index, p, err);
    if (rc == 0) {
        /* Newer configs call it image_token_id. */
        const cJSON *alt = cJSON_GetObjectItemCaseSensitive(j, "image_token_id");
        if (alt && !cJSON_GetObjectItemCaseSensitive(j, "image_token_index"))
            rc = geti(j, "image_token_id", 0, 1 << 24, 1, 257152, &c->image_token_index, p, err);
    }
    if (rc == 0) rc = geti(j, "projection_dim", 1, 1 << 16, 1, c->text.hidden_size, &c->projection_dim, p, err);
    if (rc == 0 && c->image_token_index >= c->text.vocab_size)
        rc = rs_errk(err, RS_EFORMAT, "%s: image_token_index %d is outside the text vocabulary (%d)", p, c->image_token_index, c->text.vocab_size);
done:
    cJSON_Delete(j);
    free(p);
    return rc;
}
