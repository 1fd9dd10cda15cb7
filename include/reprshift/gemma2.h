/* Gemma-2 decoder forward pass over a batch of variable-length sequences packed without
 * padding, fp32 math on f32/bf16/f16 weights kept memory-mapped; optionally continuing the
 * sequences of a KV cache (generation, reprshift/generate.h). */
#ifndef REPRSHIFT_GEMMA2_H
#define REPRSHIFT_GEMMA2_H

#include <stdint.h>
#include "reprshift/backend.h"
#include "reprshift/error.h"
#include "reprshift/hooks.h"
#include "reprshift/model_config.h"
#include "reprshift/safetensors.h"

/* One decoder layer's weights; the table GEMMA2_LAYER_WEIGHTS in gemma2.c names each
 * field's tensor, shape and kind (loading, validation and free follow it). */
typedef struct {
    const st_tensor *q_proj, *k_proj, *v_proj, *o_proj;
    const st_tensor *gate_proj, *up_proj, *down_proj;
    float *input_layernorm, *post_attention_layernorm;      /* offset weights w (gain 1+w), f32 copies */
    float *pre_feedforward_layernorm, *post_feedforward_layernorm;
} gemma2_layer;

typedef struct {
    gemma2_config cfg;
    st_set *st;            /* weights (owned when owns_st) */
    int owns_st;
    const st_tensor *embed_tokens;
    gemma2_layer *layers;
    float *norm;           /* final norm offset weight */
    float *inv_freq;       /* RoPE inverse frequencies [head_dim/2] */
    size_t max_weight;     /* largest matrix numel (size of the conversion scratch) */
    const rs_backend *be;  /* the kernels the forward pass calls (rs_backend_cpu() after loading) */
} gemma2_model;

/* Keys and values of every layer for n_seqs sequences of up to max_len tokens (after
 * RoPE), for generation (reprshift/generate.h makes and frees one). Token t of sequence s is
 * row s·max_len + t of k[l] / v[l], each row n_kv_heads·head_dim floats (kv_dim). */
typedef struct {
    int n_layers, n_seqs, max_len, kv_dim;
    float **k, **v;  /* [n_layers] → [n_seqs·max_len, kv_dim] */
    int *len;        /* [n_seqs]: tokens cached so far */
} gemma2_kv_cache;

/* One packed batch. Sequence s covers rows offsets[s]..offsets[s+1]-1. */
typedef struct {
    int n_seqs;
    const int64_t *offsets;        /* [n_seqs+1], offsets[0] = 0 */
    const int32_t *ids;            /* [T] token ids */
    const float *embeds;           /* optional [T, D]: rows with embeds_mask[i] != 0 replace E[ids[i]] (before ×√D) */
    const uint8_t *embeds_mask;    /* [T] */
    const int *prefix_len;         /* optional [n_seqs]: bidirectional attention within the first prefix_len tokens */
    int pos_offset;                /* position of a sequence's first token (0 Gemma-2, 1 PaliGemma) */
    gemma2_kv_cache *cache;        /* optional: sequence s continues cached sequence s (its tokens
                                      come after cache->len[s] cached ones, whose keys/values it
                                      attends to; prefix_len counts from the first cached token);
                                      the forward appends the batch's keys/values and advances len.
                                      Every layer runs; gemma2_forward only. */
} gemma2_batch;

/* Open MODEL_DIR (config.json + safetensors). Caller closes with gemma2_close. */
int gemma2_open(gemma2_model **out, const char *dir, rs_err *err);
/* Build a model over an already-open weight set whose decoder tensors start with prefix
 * (e.g. "model." or "language_model.model."); the set stays owned by the caller. */
int gemma2_from_weights(gemma2_model **out, const gemma2_config *cfg, st_set *st, const char *prefix, rs_err *err);
/* Free the model (and its weights if it opened them). */
void gemma2_close(gemma2_model *m);

/* Run the batch, filling/splicing the requested hooks. If final_hidden is non-NULL the
 * forward runs to the end and writes the final-norm output [T, D] there (for logits). */
int gemma2_forward(const gemma2_model *m, const gemma2_batch *b, hook_request *hooks, int n_hooks,
                   float *final_hidden, rs_err *err);
/* Same, continuing from resid [T, D] = the residual stream entering block `layer`
 * (blocks.layer.hook_resid_pre; layer = n_layers: after the last block); no embedding, and
 * hooks of earlier blocks never fire. Bit-identical to the full pass with that residual. */
int gemma2_forward_from(const gemma2_model *m, const gemma2_batch *b, int layer, const float *resid,
                        hook_request *hooks, int n_hooks, float *final_hidden, rs_err *err);
/* logits[T, vocab] = h·Eᵀ with the final soft-cap (if configured). Non-f32 embeddings are
 * widened a 4096-row block at a time; −1 (err set, logits unspecified) when that block
 * cannot be allocated. */
int gemma2_logits(const gemma2_model *m, const float *h, int T, float *logits, rs_err *err);
/* Mean next-token cross-entropy of each sequence from final hidden states (logits computed
 * a row block at a time, never the whole [T, vocab] matrix); ce[s] = NAN for length < 2. */
int gemma2_next_token_ce(const gemma2_model *m, const gemma2_batch *b, const float *final_hidden,
                         double *ce, rs_err *err);
/* Highest layer index the hooks need (−1: only the embedding; n_layers: final norm). */
int gemma2_hooks_depth(const gemma2_model *m, const hook_request *hooks, int n_hooks);

#endif
