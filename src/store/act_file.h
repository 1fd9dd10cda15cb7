/* Activation files as `reprshift extract` writes them: one f32 tensor per hook (named
 * exactly by the hook name) in a safetensors file, with token_ids / offsets, metadata, and
 * a JSON-lines row index FILE.rows.jsonl beside it (docs/store.md has the run pipeline's
 * sharded store, a different format). */
#ifndef REPRSHIFT_ACT_FILE_H
#define REPRSHIFT_ACT_FILE_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/extract.h"

/* Write result tensors (+ token_ids, offsets) atomically; meta is NULL-terminated key/value pairs. */
int extract_save(const extract_result *r, const rs_inputs *in, const char *path, const char *const *meta, rs_err *err);
/* Write the tensors + token_ids, token_kind (U8), offsets, vision_offsets atomically, and
 * FILE.rows.jsonl (one line per input: modality, image/text, label, rows, and for an input
 * with a suffix suffix_len (its tokens after the prefix_len prefix, <eos> included) and the
 * suffix text). */
int extract_paligemma_save(const pg_extract_result *r, const pg_inputs *in, const char *path,
                           const char *const *meta, rs_err *err);

/* The special_token_ids metadata (rs_special_ids_format / rs_special_ids_parse) is in
 * reprshift/extract.h, where the analyses that read these files find it too. */

#endif
