/* Text generation with a KV cache for Gemma-2 and PaliGemma-2 (docs/generate.md).
 *
 * The prompt runs once through the ordinary forward pass with a gemma2_kv_cache attached
 * (prefill: every layer's keys/values after RoPE are kept); each new token then runs alone
 * (T = 1) and attends over the cache with the same mask (causal, sliding window on the
 * sliding layers, PaliGemma's prefix block), scale and soft-caps as the prefill. Decoding is
 * greedy (temperature 0) or seeded sampling (temperature, top-k, top-p) with a portable
 * generator, and stops at an EOS id or after max_new_tokens. */
#ifndef REPRSHIFT_GENERATE_H
#define REPRSHIFT_GENERATE_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/gemma2.h"
#include "reprshift/intervene.h"
#include "reprshift/paligemma.h"

/* A cache for n_seqs sequences of up to max_len tokens each (all layers, allocated once). */
int gemma2_kv_cache_new(gemma2_kv_cache **out, const gemma2_config *c, int n_seqs, int max_len, rs_err *err);
void gemma2_kv_cache_free(gemma2_kv_cache *kc);
/* Forget every cached token (len = 0); the memory stays. */
void gemma2_kv_cache_reset(gemma2_kv_cache *kc);

typedef struct {
    int max_new_tokens;      /* > 0 */
    double temperature;      /* 0: greedy (argmax, lowest id on a tie); > 0: sample softmax(logits/T) */
    int top_k;               /* sampling: keep the k most likely tokens (0: all) */
    double top_p;            /* sampling: keep the smallest most-likely set with probability ≥ top_p; (0, 1] */
    uint64_t seed;           /* sampling: seed of the generator (gen_rng) */
    const int32_t *eos_ids;  /* stop after generating any of these (may be NULL) */
    int n_eos;
    int keep_logits;         /* record the logits each token was chosen from */
    /* Steering (docs/generate.md "Generation with interventions"): resolved interventions
     * (rs_intervention_resolve on the decoder) applied at their hooks on every forward pass,
     * the prefill and every decode step; NULL / 0 for none. add, project and sae only (patch
     * is refused). A spec with pos= names prompt rows (negative: from the prompt's end; the
     * whole input PaliGemma's decoder reads, image rows included) and acts in the prefill
     * only; without pos= it acts on every prompt row and on every generated token's row.
     * alpha (relative) is in units of s = the mean L2 norm at the hook over the prompt rows
     * of a clean (unsteered) prefill, computed once. */
    rs_intervention *ivs;
    int n_iv;
} gen_params;

typedef struct {
    int32_t *ids;            /* [n] generated tokens, the EOS included when one ended the run */
    int n;
    int hit_eos;             /* 1 when an EOS id ended the run */
    float *logits;           /* keep_logits: [n, vocab] (after the final soft-cap), else NULL */
    double *iv_scale;        /* n_iv > 0: [n_iv] each spec's s (add: mean norm or 1 with
                                alpha_abs; 0 for the other kinds), else NULL */
} gen_output;

void gen_output_free(gen_output *o);

/* Check p (max_new_tokens > 0, temperature finite ≥ 0, top_k ≥ 0, top_p in (0, 1]; each
 * intervention: not a patch, finite alpha, a decoder hook; RS_EINVAL otherwise). */
int gen_params_check(const gen_params *p, rs_err *err);

/* The stop ids of a checkpoint folder: generation_config.json "eos_token_id" (a number or a
 * list) when present, else config.json's eos id (c->eos_id). New array (caller frees). */
int gen_eos_ids(const char *model_dir, const gemma2_config *c, int32_t **ids, int *n, rs_err *err);

/* Generate after prompt[n_prompt] (token ids as the model reads them, <bos> included if
 * wanted) with a Gemma-2 model. */
int gen_gemma2(const gemma2_model *m, const int32_t *prompt, int n_prompt, const gen_params *p, gen_output *out,
               rs_err *err);

/* Generate with PaliGemma after [<image>]×N, <bos>, prompt_ids (the tokens of prompt + "\n",
 * as for paligemma_build_input), the whole of it the bidirectional prefix. pixel_values: one
 * image [C, S, S], or NULL for none (then the input is <bos> + prompt + "\n"). */
int gen_paligemma(const paligemma_model *m, const float *pixel_values, const int32_t *prompt_ids, int n_prompt,
                  const gen_params *p, gen_output *out, rs_err *err);

/* ---- decoding primitives (exposed for tests) ---- */

/* xoshiro256** (Blackman & Vigna 2018) seeded by four splitmix64 outputs of the seed:
 * integer arithmetic only, so a seed gives the same stream on every machine. */
typedef struct {
    uint64_t s[4];
} gen_rng;
void gen_rng_seed(gen_rng *r, uint64_t seed);
uint64_t gen_rng_next(gen_rng *r);
/* Uniform double in [0, 1): the top 53 bits of gen_rng_next · 2⁻⁵³. */
double gen_rng_uniform(gen_rng *r);

/* Pick the next token from logits[V] (see gen_params; one gen_rng_uniform draw per sampled
 * token, none for greedy). work: scratch of V ints and V doubles (gen_pick_work_size bytes). */
size_t gen_pick_work_size(int V);
int gen_pick(const float *logits, int V, const gen_params *p, gen_rng *r, void *work);

#endif
