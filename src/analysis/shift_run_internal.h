/* Shared by shift_run.c (orchestration), shift_layer.c (one layer's analysis) and
 * shift_write.c (JSON/CSV writers). Not installed. */
#ifndef REPRSHIFT_SHIFT_RUN_INTERNAL_H
#define REPRSHIFT_SHIFT_RUN_INTERNAL_H

#include <stdint.h>
#include "reprshift/shift_run.h"

/* The metrics in results.json / summary.csv order. */
extern const int SHIFT_RUN_ORDER[12];
enum { SHIFT_RUN_N_ORDER = 12 };

/* Sort idx[n] by key[idx] (ascending, or descending with desc), ties by index. Not reentrant. */
void shift_sort_idx(int64_t *idx, int64_t n, const double *key, int desc);

/* "blocks.{layer}.x" with {layer} replaced (layer < 0: a copy); NULL pattern → NULL. */
char *shift_subst_layer(const char *pat, int layer);

/* Why metric k of layer L has (or lacks) a p-value (buf or a static string). */
const char *shift_test_text(int k, const shift_layer *L, char *buf, size_t cap);

/* Free what a layer owns. */
void shift_layer_free(shift_layer *L);

#endif
