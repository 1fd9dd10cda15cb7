/* A small, stable C ABI over the library for language bindings (the Python package under
 * python/ binds it with ctypes; docs/python.md). Only opaque handles and plain int / int64 /
 * float / char* arguments cross it, so a binding needs no C structs.
 *
 * Conventions:
 *   - every int-returning call returns 0 on success and -1 on failure; the failure's message
 *     and error kind (rs_err_kind, reprshift/error.h) are then kept per thread and read with
 *     rsc_last_error / rsc_last_error_kind until the next failing call on that thread;
 *   - buffers and strings a call hands out are owned by C: either by the handle they came
 *     from (valid until it is freed) or, where the comment says so, by the caller, who
 *     releases them with rsc_free;
 *   - nothing prints or exits; long work reports to the thread's progress callback, which
 *     may ask it to stop (the call then fails with RS_ECANCELLED).
 * The ABI version (RSC_ABI_VERSION) changes whenever a signature or a meaning changes. */
#ifndef REPRSHIFT_CAPI_H
#define REPRSHIFT_CAPI_H

#include <stdint.h>

#define RSC_ABI_VERSION 1

typedef struct rsc_model rsc_model;     /* a loaded checkpoint (Gemma-2 or PaliGemma-2) + its tokenizer */
typedef struct rsc_request rsc_request; /* inputs and options of one run over a model */
typedef struct rsc_result rsc_result;   /* captured activations (C-owned, contiguous row-major) */
typedef struct rsc_sae rsc_sae;         /* a sparse autoencoder (reprshift/sae.h) */

int rsc_abi_version(void);
const char *rsc_version(void); /* the library version (RS_VERSION) */

/* The last failure on this thread ("" and RS_EOK when none yet). */
const char *rsc_last_error(void);
int rsc_last_error_kind(void);
/* The name of an error kind ("EINVAL", ...). */
const char *rsc_error_kind_name(int kind);
/* Free a buffer or string a call handed to the caller (NULL is fine). */
void rsc_free(void *p);

/* Progress of long work on this thread: called at the start (done 0), after every batch and
 * at the end (done = total); a non-zero return stops the work (RS_ECANCELLED). fn NULL
 * removes it. The callback runs on the thread that made the call. */
typedef int (*rsc_progress_fn)(void *ctx, const char *label, int64_t done, int64_t total);
void rsc_set_progress(rsc_progress_fn fn, void *ctx);
/* The library's message lines (kind: 0 message, 1 progress, 2 progress end; reprshift/log.h);
 * process-wide, fn NULL drops them (the default). */
typedef void (*rsc_log_fn)(void *ctx, int kind, const char *text);
void rsc_set_log(rsc_log_fn fn, void *ctx);

/* ---- BLAS kernel (reprshift/blas.h; what the CLI does before it starts, src/cli/main.c) ----
 * OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded; a binding that wants the
 * kernel the CLI would use asks a helper process (rsc_blas_preferred_kernel) and sets the
 * variable before loading this library (python/reprshift/_lib.py). */
/* OpenBLAS's kernel in this process ("" when unknown). */
const char *rsc_blas_kernel(void);
/* The kernel the CLI would set in OPENBLAS_CORETYPE here, or NULL (keep OpenBLAS's choice). */
const char *rsc_blas_preferred_kernel(void);
/* Check this process's sgemm against a double reference (rs_blas_check): 0 when it passes. */
int rsc_blas_check(void);

/* ---- models ---- */

/* Open a checkpoint folder or a Hugging Face Hub name found in the local cache (revision may
 * be NULL: main). precision: NULL or "fp32", or "bf16" (docs/precision.md). tokenizer:
 * tokenizer.json path, or NULL for MODEL/tokenizer.json when present (a checkpoint without
 * one takes token ids only). */
int rsc_model_open(const char *name, const char *revision, const char *precision, const char *tokenizer,
                   rsc_model **out);
void rsc_model_close(rsc_model *m);
/* A JSON object describing the model: type ("gemma2" / "paligemma"), path, n_layers, d_model,
 * vocab_size, bos/eos/pad ids, has_tokenizer, image_size, n_image_tokens, hooks (every
 * valid hook name). Owned by the model. */
const char *rsc_model_info(const rsc_model *m);
/* Text → token ids (add_bos 1: prepend <bos>); *ids is the caller's (rsc_free). */
int rsc_tokenize(const rsc_model *m, const char *text, int add_bos, int32_t **ids, int64_t *n);
/* Token ids → text (special tokens kept); *text is the caller's (rsc_free). */
int rsc_detokenize(const rsc_model *m, const int32_t *ids, int64_t n, char **text);

/* ---- a run: inputs in the order added, then rsc_run ---- */

int rsc_request_new(rsc_model *m, rsc_request **out);
void rsc_request_free(rsc_request *q);
/* Options (values as text):
 *   hooks           comma-separated TransformerLens hook names (required)
 *   pool            none (default) | mean | last
 *   pool_special    0 | 1 (mean pooling includes BOS/EOS/pad and whitespace-only tokens)
 *   bos             1 (default) | 0: prepend <bos> when tokenizing texts
 *   batch_tokens    tokens per forward batch (default 2048)
 *   prompt          PaliGemma: the prompt after each image (default "caption en")
 *   prompt_ids      PaliGemma: the prompt as ids "1,2,3" (for checkpoints without a tokenizer)
 *   image_processor PaliGemma: pil (default) | torchvision
 *   image_threads   PaliGemma: threads that decode and preprocess images (default 1) */
int rsc_request_set(rsc_request *q, const char *key, const char *value);
/* A text (tokenized with the model's tokenizer). */
int rsc_request_add_text(rsc_request *q, const char *text);
/* A pre-tokenized sequence (copied). */
int rsc_request_add_ids(rsc_request *q, const int32_t *ids, int64_t n);
/* PaliGemma: an image file (JPEG/PNG) + the prompt, optionally followed by a suffix caption
 * (text, or suffix_ids when n_suffix_ids > 0; <eos> is appended either way). */
int rsc_request_add_image(rsc_request *q, const char *path, const char *suffix, const int32_t *suffix_ids,
                          int64_t n_suffix_ids);
/* Run the model over every input and capture the hooks (extract_gemma2 / extract_paligemma:
 * the numbers of `reprshift extract`). The request stays usable. */
int rsc_run(rsc_request *q, rsc_result **out);

/* ---- results: every buffer is owned by the result, contiguous, row-major ---- */

int rsc_result_n_tensors(const rsc_result *r);
/* Tensor i's name: the hook name, or "<hook>@image" / "@text" / "@suffix" (PaliGemma, pool mean). */
const char *rsc_result_name(const rsc_result *r, int i);
/* Tensor i: f32 [*rows, *width]. */
float *rsc_result_tensor(const rsc_result *r, int i, int64_t *rows, int *width);
const int32_t *rsc_result_token_ids(const rsc_result *r, int64_t *n);
/* pg_token_kind per token (PaliGemma); NULL and *n = 0 for Gemma-2. */
const uint8_t *rsc_result_token_kinds(const rsc_result *r, int64_t *n);
/* [n_inputs + 1] token offsets of each input; *n = n_inputs + 1. */
const int64_t *rsc_result_offsets(const rsc_result *r, int64_t *n);
/* PaliGemma: [n_inputs + 1] row offsets of the unpooled vision tensors; NULL for Gemma-2. */
const int64_t *rsc_result_vision_offsets(const rsc_result *r, int64_t *n);
/* "none", "mean" or "last". */
const char *rsc_result_pool(const rsc_result *r);
void rsc_result_free(rsc_result *r);

/* ---- sparse autoencoders (reprshift/sae.h) ---- */

/* A sae-lens folder, a Gemma Scope params.npz (or its folder), or "RELEASE/SAE_ID" from the
 * Hugging Face cache; hook (may be NULL) overrides the recorded hook name. */
int rsc_sae_load(const char *path, const char *hook, rsc_sae **out);
void rsc_sae_free(rsc_sae *s);
/* A JSON object: d_in, d_sae, architecture, hook_name, path, name, neuronpedia. *json is the
 * caller's (rsc_free). */
int rsc_sae_info(const rsc_sae *s, char **json);
/* x [n, d_in] → out [n, d_sae] (caller's buffers). */
int rsc_sae_encode(const rsc_sae *s, const float *x, int64_t n, float *out);
/* f [n, d_sae] → out [n, d_in]; x (the encoded input) is needed only by SAEs that normalise
 * their input (may be NULL otherwise). */
int rsc_sae_decode(const rsc_sae *s, const float *f, const float *x, int64_t n, float *out);

/* ---- representation shift (reprshift/shift_run.h; the numbers of `reprshift shift`) ----
 * options: "key=value" lines ("\n"-separated; NULL for none): sae, hook, sae_hook, layers
 * ("0,6,12"), allow_hook_mismatch, keep_special, pooled (0|1), n_boot (1000), n_perm (200),
 * seed (24301), top_k (20), min_count, tokenizer, categories, threads, out (a folder: also
 * write every file `reprshift shift --out` writes). *json: results.json's text (caller's,
 * rsc_free). */
int rsc_shift(const char *acts_a, const char *acts_b, const char *options, char **json);
/* The same over two unpooled results of rsc_run (token ids and inputs must agree as for
 * files; hook names the tensor, NULL: the only one). */
int rsc_shift_results(const rsc_result *a, const rsc_result *b, const char *options, char **json);

#endif
