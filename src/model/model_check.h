/* Whole-checkpoint validation (what `reprshift inspect MODEL_DIR` runs): the config parses,
 * and the weights are exactly what the model loaders (gemma2.c, siglip.c, paligemma.c) read
 * for that config — every tensor they need is present with the shape the config implies and
 * a float dtype, and no tensor is left over that they would silently ignore. The check IS
 * the loader (gemma2_open / paligemma_open over the weight tables of weights.h), followed by a scan
 * for tensors it never asked for; there is no second list of names. */
#ifndef REPRSHIFT_MODEL_CHECK_H
#define REPRSHIFT_MODEL_CHECK_H

#include "reprshift/error.h"
#include "reprshift/model_config.h"

typedef struct {
    rs_model_type type;
    int n_tensors;        /* tensors in the checkpoint, all checked */
    int n_tied_head;      /* of which lm_head copies of the tied embedding (0 or 1) */
    char layout[224];     /* tensor-name prefixes found, e.g. "model." or "vision_tower.vision_model. / ..." */
} model_check_info;

/* Validate MODEL_DIR (config.json + safetensors). On error the message names the file
 * and the tensor. info may be NULL. */
int model_check(const char *dir, model_check_info *info, rs_err *err);

#endif
