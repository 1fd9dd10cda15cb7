/* Steering dose–response (the `steer` stage of `reprshift run`, docs/pipeline.md): one
 * decoder pass with x ← x + scale·d added at one hook on every row, read out as the
 * log-probability of a set of target tokens at one row and the teacher-forced CE of a
 * suffix. Matched to transformers forward hooks (tools/reference/gen_steer_dose_goldens.py,
 * tests/test_steer.c). */
#ifndef REPRSHIFT_STEER_H
#define REPRSHIFT_STEER_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/gemma2.h"
#include "reprshift/intervene.h"

/* One pass of in (positions from pos_offset; PaliGemma: 1, embeds from rs_pg_image_rows)
 * with hook's activation x ← x + scale·dir on every row (dir NULL: the clean pass).
 *   logits_row [vocab]  the final logits (after the soft-cap) of row read_row (NULL: skip);
 *   ce                  mean over t = ce_from .. len−2 of −log softmax(logits[t])[ids[t+1]]
 *                       (double; NULL or ce_from ≥ len−1: skip, *ce = NAN);
 *   norm                if non-NULL: mean over rows 0..norm_rows−1 of ‖x‖₂ at the hook
 *                       before the edit (rs_mean_row_norm; the s of a relative α);
 *   act_out             if non-NULL: [len, width] copy of the hook's activation before the edit
 *                       (for rs_steer_pass_from). */
int rs_steer_pass(const gemma2_model *m, const rs_iv_input *in, int pos_offset, const hook_request *hook,
                  const float *dir, double scale, int read_row, float *logits_row, int ce_from, double *ce,
                  int norm_rows, double *norm, float *act_out, rs_err *err);

/* Can a steered pass at hook resume from its clean activation (blocks.L.hook_resid_pre /
 * hook_resid_post of the decoder)? */
int rs_steer_resumable(const hook_request *hook);
/* The same steered pass, resumed at the hook: clean [len, D] is the hook's activation in the
 * clean pass (act_out of rs_steer_pass); x = clean + scale·dir on every row continues through
 * the blocks after the hook (gemma2_forward_from, bit-identical to splicing in a full pass),
 * so the blocks before it are not recomputed. Read-outs as rs_steer_pass. */
int rs_steer_pass_from(const gemma2_model *m, const rs_iv_input *in, int pos_offset, const hook_request *hook,
                       const float *clean, const float *dir, double scale, int read_row, float *logits_row,
                       int ce_from, double *ce, rs_err *err);

/* log Σ_{k} p(targets[k]) with p = softmax(logits) over the vocabulary (double; duplicates
 * counted once). */
double rs_log_prob_set(const float *logits, int vocab, const int32_t *targets, int n);

/* K random unit directions of width d into out [K, d]: direction k has entries
 * rs_normal_at(seed, k·d + j) (splitmix64 + Box–Muller, reprshift/probe.h), divided by
 * their L2 norm (computed in double). */
void rs_random_unit_dirs(uint64_t seed, int K, int d, float *out);

#endif
