/* Declarative weight tables. A model lists the tensors it reads as a table of rows
 * {name, field, kind, shape}; one loader walks the table to find, validate and load the
 * tensors into the fields of a struct, and one function frees what it copied. gemma2.c,
 * siglip.c and paligemma.c each keep their tables next to their structs, so adding a
 * tensor is one row and loading, validation (`reprshift inspect`) and free follow. */
#ifndef REPRSHIFT_WEIGHTS_H
#define REPRSHIFT_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/safetensors.h"

typedef enum {
    RS_W_MATRIX, /* kept memory-mapped (field: const st_tensor *); widened when used, so its numel
                    counts toward the model's conversion scratch (max_numel) */
    RS_W_ROWS,   /* kept memory-mapped, read a few rows at a time (the token embedding); not counted */
    RS_W_F32,    /* copied to a new f32 array (field: float *): norms, biases, position embeddings */
} rs_wkind;

#define RS_W_MAX_DIMS 4

typedef struct {
    const char *name;           /* tensor name after the prefix, e.g. "self_attn.q_proj.weight" */
    size_t offset;              /* offsetof(struct, field) */
    rs_wkind kind;
    int ndim;
    int dims[RS_W_MAX_DIMS];    /* each an index into the model's dimension array (sizes from its config) */
} rs_wspec;

/* The one dtype rule for model weights: F32, BF16 or F16. Otherwise −1 with
 * `FILE: tensor "NAME" has dtype I32; weights must be F32, BF16 or F16`. */
int rs_weight_dtype_check(const st_set *st, const st_tensor *t, rs_err *err);

/* Load the n rows of tab from st into the struct at base: tensor prefix+row.name must exist
 * (`missing tensor`), have the shape dims[row.dims[0..ndim)] (`has shape … but the config
 * implies …`) and a float dtype (rs_weight_dtype_check). Each tensor is marked claimed in
 * st (model_check then refuses the unclaimed ones). RS_W_MATRIX rows raise *max_numel to
 * their numel (max_numel may be NULL). On error (−1, message naming the file and tensor)
 * the rows loaded so far stay in base: free them with rs_weights_free. */
int rs_weights_load(const st_set *st, const char *prefix, const rs_wspec *tab, int n, const int64_t *dims,
                    void *base, size_t *max_numel, rs_err *err);
/* Free the f32 copies (RS_W_F32 rows) in base and set those fields to NULL. */
void rs_weights_free(const rs_wspec *tab, int n, void *base);

#define RS_W_COUNT(tab) ((int)(sizeof(tab) / sizeof((tab)[0])))

#endif
