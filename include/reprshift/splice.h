/* Spliced SAE evaluation: run the decoder with the SAE reconstruction substituted at the
 * SAE's hook and compare next-token cross-entropy with the clean and zero-ablated runs.
 * CE loss recovered = (CE_zero − CE_spliced) / (CE_zero − CE_clean) (1 = perfect SAE). */
#ifndef REPRSHIFT_SPLICE_H
#define REPRSHIFT_SPLICE_H

#include "reprshift/gemma2.h"
#include "reprshift/sae.h"

typedef struct {
    double ce_clean, ce_spliced, ce_zero; /* token-weighted mean over all predictions */
    double ce_recovered;                  /* NAN when ce_zero == ce_clean */
    int64_t n_predictions;
    double *seq_clean, *seq_spliced, *seq_zero; /* per sequence [n_seqs] (NAN for length < 2) */
} splice_ce;

/* Evaluate the SAE spliced at its hook (which must be a decoder hook of m: resid_pre,
 * resid_mid, resid_post, attn_out or mlp_out). BOS rows are left untouched unless
 * splice_bos (Gemma Scope SAEs are not trained on BOS). Caller frees with splice_ce_free. */
int splice_ce_eval(const gemma2_model *m, const rs_sae *sae, const char *hook, const gemma2_batch *b,
                   int splice_bos, splice_ce *out, rs_err *err);
/* Free the per-sequence arrays. */
void splice_ce_free(splice_ce *r);

#endif
