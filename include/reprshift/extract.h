/* Activation extraction: run a model over many inputs in token-bounded batches, capture
 * the requested hooks, pool per input, and save one f32 tensor per hook (named exactly by
 * the hook name) to safetensors with a JSON-lines row index beside it. */
#ifndef REPRSHIFT_EXTRACT_H
#define REPRSHIFT_EXTRACT_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/gemma2.h"
#include "reprshift/progress.h"

typedef enum { POOL_NONE, POOL_MEAN, POOL_LAST } rs_pool;

/* Token sequences to run; texts are optional (used for the row index). */
typedef struct {
    int n;
    int32_t **ids;     /* [n] owned arrays */
    int64_t *lens;     /* [n] */
    char **texts;      /* [n] owned strings or NULL entries; array may be NULL */
} rs_inputs;

typedef struct {
    int n_hooks;
    hook_request *hooks;      /* parsed requests; outputs are collected into the result */
    rs_pool pool;
    int pool_special;         /* 1: mean pooling also averages BOS/EOS/pad tokens */
    int64_t batch_tokens;     /* max tokens per forward call */
} extract_opts;

typedef struct {
    int n_hooks;
    char (*names)[96];
    int *widths;
    float **data;             /* per hook [rows, width] */
    int64_t rows;             /* tokens (pool none) or inputs (pooled) */
    int64_t n_inputs;
    int32_t *token_ids;       /* [tokens] (all tokens, even when pooled) */
    int64_t *offsets;         /* [n_inputs + 1] token offsets of each input */
    rs_pool pool;
} extract_result;

/* Free arrays owned by an rs_inputs. */
void rs_inputs_free(rs_inputs *in);
/* Append one sequence (ids copied, text copied if non-NULL). */
int rs_inputs_add(rs_inputs *in, const int32_t *ids, int64_t len, const char *text, rs_err *err);
/* Parse "2,651,18" (commas and/or spaces) into a new id array. */
int rs_parse_ids(const char *s, int32_t **ids, int64_t *len, rs_err *err);

/* Run a Gemma-2 model over all inputs. */
int extract_gemma2(const gemma2_model *m, const rs_inputs *in, const extract_opts *o, extract_result *r,
                   rs_progress *prog, rs_err *err);
/* Write result tensors (+ token_ids, offsets) atomically; meta is NULL-terminated key/value pairs. */
int extract_save(const extract_result *r, const rs_inputs *in, const char *path, const char *const *meta, rs_err *err);
/* Free a result. */
void extract_result_free(extract_result *r);
/* Name of a pooling mode ("none", "mean", "last"); parse returns -1 if unknown. */
const char *rs_pool_name(rs_pool p);
int rs_pool_parse(const char *s, rs_pool *out);

#endif
