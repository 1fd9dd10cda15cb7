/* Spliced SAE evaluation: run the decoder with the SAE reconstruction substituted at the
 * SAE's hook and compare next-token cross-entropy with the clean and zero-ablated runs.
 * CE loss recovered = (CE_zero − CE_spliced) / (CE_zero − CE_clean) (1 = perfect SAE).
 * Which rows are replaced and which predictions enter the means is the convention
 * (docs/metrics.md, "Spliced CE"). */
#ifndef REPRSHIFT_SPLICE_H
#define REPRSHIFT_SPLICE_H

#include "reprshift/gemma2.h"
#include "reprshift/sae.h"

typedef enum {
    /* sae-lens 6 run_evals (exclude_special_tokens=True), the convention of published
     * "CE loss recovered" numbers: rows whose token is a special token (BOS, EOS, PAD of the
     * model config) keep their activation in the spliced pass; the zero-ablated pass zeroes
     * every row; predictions made at a special-token row are left out of all three means
     * (so the prediction from BOS of the first text token is not counted). */
    SPLICE_CE_SAE_LENS = 0,
    /* reprshift's earlier default: BOS rows keep their activation in both the spliced and the
     * zero-ablated pass; every next-token prediction is counted. */
    SPLICE_CE_REPRSHIFT_V1 = 1,
} splice_ce_convention;

/* "sae-lens" / "reprshift-v1". */
const char *splice_ce_convention_name(splice_ce_convention c);
/* Parse a name above; -1 with a message naming the valid ones. */
int splice_ce_convention_parse(const char *name, splice_ce_convention *out, rs_err *err);

typedef struct {
    double ce_clean, ce_spliced, ce_zero; /* token-weighted mean over the counted predictions */
    double ce_recovered;                  /* NAN when ce_zero == ce_clean */
    int64_t n_predictions;                /* counted predictions (all three passes count the same) */
    double *seq_clean, *seq_spliced, *seq_zero; /* per sequence [n_seqs] (NAN when it counts none) */
    int64_t *seq_predictions;             /* per sequence [n_seqs]: counted predictions */
} splice_ce;

/* Evaluate the SAE spliced at its hook (which must be a decoder hook of m: resid_pre,
 * resid_mid, resid_post, attn_out or mlp_out) under convention conv. With splice_all no row
 * is exempt under either convention: every row is replaced (or zeroed) and every prediction
 * counted (sae-lens's exclude_special_tokens=False). Rows given as embeddings
 * (b->embeds_mask) are never special. Caller frees with splice_ce_free. */
int splice_ce_eval(const gemma2_model *m, const rs_sae *sae, const char *hook, const gemma2_batch *b,
                   splice_ce_convention conv, int splice_all, splice_ce *out, rs_err *err);
/* The same three passes with explicit rows: splice[r] = 1 → row r is replaced by its
 * reconstruction in the spliced pass and zeroed in the zero-ablated pass (every other row
 * keeps its activation in both); count[r] = 1 → the prediction made at row r (of the next
 * token of its sequence) enters the means. The pipeline's caption conditions use it to
 * splice only the caption and count only its own next-token predictions. */
int splice_ce_eval_masked(const gemma2_model *m, const rs_sae *sae, const char *hook, const gemma2_batch *b,
                          const uint8_t *splice, const uint8_t *count, splice_ce *out, rs_err *err);
/* One forward pass of b (hooks: captures / splices, may be NULL with n_hooks 0) and the mean
 * next-token CE (nats) of each sequence over its counted predictions (count[r] = 1: the
 * prediction row r makes of row r+1 of its sequence) into seq_ce[n_seqs] (NaN where none is
 * counted) and their number into seq_n (may be NULL). b may carry a KV cache. The downstream
 * stage's per-caption CE. */
int splice_pass_ce(const gemma2_model *m, const gemma2_batch *b, hook_request *hooks, int n_hooks,
                   const uint8_t *count, double *seq_ce, int64_t *seq_n, rs_err *err);
/* Free the per-sequence arrays. */
void splice_ce_free(splice_ce *r);

#endif
