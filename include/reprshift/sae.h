/* Sparse autoencoders: loading (Gemma Scope params.npz, sae-lens folders), encode/decode
 * equal to sae-lens (see docs/metrics.md and spec §6), and the hook-name check.
 *
 * Math (rows x of width d_in, features of width d_sae):
 *   x' = norm_in(x) - b_dec·[apply_b_dec_to_input]
 *   pre = x'·W_enc + b_enc
 *   standard: f = ReLU(pre); jumprelu: f = ReLU(pre)·1[pre > threshold];
 *   topk: pre *= ‖W_dec[f]‖ if rescale_acts_by_decoder_norm; keep the k largest, ReLU them.
 *   x̂ = norm_out((f / ‖W_dec[f]‖ if rescaled) · W_dec + b_dec)
 * All buffers are row-major float32. Thread safety: an rs_sae is read-only after loading. */
#ifndef REPRSHIFT_SAE_H
#define REPRSHIFT_SAE_H

#include <stdint.h>
#include "reprshift/error.h"

typedef enum { SAE_ARCH_STANDARD, SAE_ARCH_JUMPRELU, SAE_ARCH_TOPK } sae_arch;

typedef enum {
    SAE_NORM_NONE,
    SAE_NORM_EXPECTED_AVERAGE_ONLY_IN, /* identity at inference (factor folded into weights) */
    SAE_NORM_CONSTANT_NORM_RESCALE,    /* x·√d_in/‖x‖ in, inverse out */
    SAE_NORM_LAYER_NORM                /* (x-μ)/(σ_unbiased+1e-5) in, x·σ+μ out */
} sae_norm;

typedef enum { SAE_FORMAT_SAE_LENS, SAE_FORMAT_GEMMA_SCOPE_NPZ } sae_format;

typedef struct {
    sae_arch arch;
    sae_format format;
    int d_in, d_sae;
    int k;                            /* topk only */
    int rescale_acts_by_decoder_norm; /* topk only */
    int apply_b_dec_to_input;
    sae_norm normalize;
    char *hook_name;     /* from cfg.json metadata, the caller, or derived from the path; may be NULL */
    int hook_from_path;  /* 1 when hook_name was derived from a Gemma Scope path (layer_N) */
    char *model_name;    /* may be NULL */
    char *path;          /* what was loaded (for messages) */
    char *sae_name;      /* "RELEASE/SAE_ID" when loaded by registry name (sae_registry.h), else NULL */
    const char *neuronpedia; /* Neuronpedia SAE id from the registry (static string), or NULL */
    float *W_enc;        /* [d_in, d_sae] */
    float *W_dec;        /* [d_sae, d_in]; row f is feature f's decoder direction */
    float *b_enc;        /* [d_sae] */
    float *b_dec;        /* [d_in] */
    float *threshold;    /* [d_sae], jumprelu only, else NULL */
    float *dec_norm;     /* [d_sae] ‖W_dec[f]‖ (unclamped, as sae-lens topk uses it) */
} rs_sae;

/* Architecture / normalisation names as sae-lens spells them. */
const char *sae_arch_name(sae_arch a);
const char *sae_norm_name(sae_norm n);

/* Load an SAE from: a sae-lens folder (cfg.json + sae_weights.safetensors), a Gemma Scope
 * params.npz, a folder holding params.npz, or a registry name "RELEASE/SAE_ID" found in the
 * Hugging Face cache (sae_registry.h; then sae_name, neuronpedia and the hook are set). hook_name (may be NULL) overrides the hook
 * recorded in the files; a Gemma Scope npz records none, so it is then derived from a
 * "layer_N" path component (…-res… → blocks.N.hook_resid_post, …-mlp… → blocks.N.hook_mlp_out,
 * …-att… → blocks.N.attn.hook_z, "embedding" → hook_embed, else resid_post). Caller frees. */
int sae_load(rs_sae **out, const char *path, const char *hook_name, rs_err *err);
/* Build an SAE from in-memory weights (copied); threshold only for jumprelu. */
int sae_new(rs_sae **out, sae_arch arch, int d_in, int d_sae, const float *W_enc, const float *W_dec,
            const float *b_enc, const float *b_dec, const float *threshold, rs_err *err);
/* Free (NULL is fine). */
void sae_free(rs_sae *s);
/* Recompute dec_norm after W_dec changed (e.g. during training). */
void sae_update_dec_norm(rs_sae *s);

/* Check that activations captured at act_hook may be fed to this SAE: error when the SAE's
 * hook is unknown or differs, unless allow_mismatch. */
int sae_check_hook(const rs_sae *s, const char *act_hook, int allow_mismatch, rs_err *err);

/* Features for n rows: x [n, d_in] → acts [n, d_sae]. Fails on NaN/Inf input (naming the row). */
int sae_encode(const rs_sae *s, const float *x, int64_t n, float *acts, rs_err *err);
/* Reconstruction from features: acts [n, d_sae] → out [n, d_in]. x is the encoded input,
 * needed only for the constant_norm_rescale / layer_norm modes (may be NULL otherwise). */
int sae_decode(const rs_sae *s, const float *acts, const float *x, int64_t n, float *out, rs_err *err);
/* encode then decode: x [n, d_in] → out [n, d_in] (out may alias x); acts may be NULL
 * (else receives [n, d_sae]). Usable from a model splice callback. */
int sae_forward(const rs_sae *s, const float *x, int64_t n, float *acts, float *out, rs_err *err);
/* x̂ = decode(encode(x)) for n rows (out may alias x). */
int sae_reconstruct(const rs_sae *s, const float *x, int64_t n, float *out, rs_err *err);

/* Sparse feature rows (CSR): row r's active features are idx[row_ptr[r]..row_ptr[r+1])
 * (ascending) with values val[...]. Feature vectors of real SAEs are >99% zeros. */
typedef struct {
    int64_t n;
    int d_sae;
    int64_t *row_ptr; /* [n+1] */
    int32_t *idx;
    float *val;
} sae_sparse;

/* Encode n rows into a new sparse matrix (chunked: never holds more than a chunk dense). */
int sae_encode_sparse(const rs_sae *s, const float *x, int64_t n, sae_sparse *out, rs_err *err);
/* Build a sparse matrix from dense rows [n, d_sae] (nonzeros kept). */
int sae_sparse_from_dense(const float *f, int64_t n, int d_sae, sae_sparse *out, rs_err *err);
/* Per-group mean rows: group g averages rows offsets[g]..offsets[g+1]-1 (empty group → zero row). */
int sae_sparse_pool_mean(const sae_sparse *in, const int64_t *offsets, int64_t n_groups, sae_sparse *out, rs_err *err);
/* Free the arrays (the struct is the caller's). */
void sae_sparse_free(sae_sparse *sp);

/* Save in sae-lens folder format (cfg.json v6 + sae_weights.safetensors); creates dir. */
int sae_save_sae_lens(const rs_sae *s, const char *dir, rs_err *err);

#endif
