/* Hugging Face config.json for Gemma-2 (model_type "gemma2") and PaliGemma
 * ("paligemma": text_config = Gemma-2, vision_config = SigLIP). One struct per model
 * family, filled from the file with the Hub defaults where a key is absent. */
#ifndef REPRSHIFT_MODEL_CONFIG_H
#define REPRSHIFT_MODEL_CONFIG_H

#include <cjson/cJSON.h>
#include "reprshift/error.h"

#define RS_MAX_LAYERS 256

typedef struct {
    int vocab_size;
    int hidden_size;          /* D */
    int n_layers;
    int n_heads;              /* H */
    int n_kv_heads;           /* KV */
    int head_dim;
    int intermediate_size;    /* F */
    double rope_theta;
    double rms_norm_eps;
    double query_pre_attn_scalar;
    double attn_softcap;      /* 0 = off */
    double final_softcap;     /* 0 = off */
    int sliding_window;       /* 0 = no sliding layers */
    unsigned char layer_sliding[RS_MAX_LAYERS]; /* 1 if layer uses the sliding window */
    int bos_id, eos_id, pad_id;
} gemma2_config;

typedef struct {
    int hidden_size;
    int n_layers;
    int n_heads;
    int intermediate_size;
    int image_size;
    int patch_size;
    int num_channels;
    double layer_norm_eps;
} siglip_config;

typedef struct {
    gemma2_config text;
    siglip_config vision;
    int image_token_index;
    int projection_dim;
} paligemma_config;

typedef enum { RS_MODEL_GEMMA2, RS_MODEL_PALIGEMMA } rs_model_type;

/* Which family a config.json describes (from "model_type"). */
int model_config_type(const char *path, rs_model_type *out, rs_err *err);
/* Parse a Gemma-2 config object (a whole config.json, or a PaliGemma text_config); `what` names it in errors. */
int gemma2_config_from_json(const cJSON *j, const char *what, gemma2_config *c, rs_err *err);
/* Read MODEL_DIR/config.json (or a path to a config file) of a Gemma-2 model. */
int gemma2_config_load(const char *path, gemma2_config *c, rs_err *err);
/* Parse a SigLIP vision config object. */
int siglip_config_from_json(const cJSON *j, const char *what, siglip_config *c, rs_err *err);
/* Read a PaliGemma config.json (text_config + vision_config + image token). */
int paligemma_config_load(const char *path, paligemma_config *c, rs_err *err);

#endif
