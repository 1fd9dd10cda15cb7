/* Interventions during a decoder forward pass (Gemma-2, or the decoder of PaliGemma) and
 * the logit lens. docs/interventions.md has the spec grammar and the conventions.
 *
 * A spec is KIND@HOOK followed by ":key=value" fields:
 *   add@HOOK:dir=FILE[:NAME]:alpha=A      x += A·s·d at the chosen rows, d the unit direction,
 *   add@HOOK:dir=FILE[:NAME]:alpha_abs=A  s = mean over the input's rows of ‖x_clean‖₂ at HOOK
 *                                         (alpha) or 1 (alpha_abs)
 *   project@HOOK:dir=FILE[:NAME]          x -= (x·d)·d
 *   sae@HOOK:sae=PATH:feature=F:clamp=V   x += decode(f') − decode(f), f = encode(x) and f' = f
 *   sae@HOOK:sae=PATH:feature=F:scale=V   with feature F set to V / multiplied by V / zeroed
 *   sae@HOOK:sae=PATH:feature=F:zero      (the SAE's error term is kept, as sae-lens steers)
 *   patch@HOOK:from=K                     x = the activation of input K's clean run (K ≥ 1)
 * Every kind takes pos=P[,P...] (rows of the input, negative from the end; default: every
 * row). A direction FILE is a reprshift probe (`reprshift probe train`; NAME picks a class
 * row of a multiclass probe) used in raw activation units (coef/scale, unit norm), or any
 * safetensors file with a 1-D tensor NAME (or its only tensor), normalised to unit norm. */
#ifndef REPRSHIFT_INTERVENE_H
#define REPRSHIFT_INTERVENE_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/gemma2.h"
#include "reprshift/paligemma.h"
#include "reprshift/sae.h"

typedef enum { IV_ADD, IV_PROJECT, IV_SAE, IV_PATCH } iv_kind;
typedef enum { IV_SAE_CLAMP, IV_SAE_SCALE, IV_SAE_ZERO } iv_sae_op;

typedef struct {
    char *spec;            /* as given */
    iv_kind kind;
    char hook[96];         /* as given */
    hook_request req;      /* parsed hook (width, id); its splice is set by rs_intervene_run */
    /* add / project */
    char *dir_path, *dir_name;
    float *dir;            /* [width] unit direction (after rs_intervention_resolve) */
    double alpha;
    int alpha_abs;         /* 1: alpha in absolute units */
    int has_alpha;
    /* sae */
    char *sae_path;
    rs_sae *sae;           /* owned */
    int feature;
    iv_sae_op sae_op;
    double sae_value;
    /* patch */
    int from;              /* input index (≥ 1) */
    /* rows */
    int *pos;              /* [n_pos] as given (negative: from the end); NULL = every row */
    int n_pos;
} rs_intervention;

/* Kind names "add", "project", "sae", "patch". */
const char *rs_intervention_kind_name(iv_kind k);
/* Parse the spec text (syntax and numbers only; nothing is loaded). Errors quote the spec
 * and name the field. Free with rs_intervention_free. */
int rs_intervention_parse(const char *spec, rs_intervention *iv, rs_err *err);
/* Check the hook against the model (a decoder hook with a residual-width activation, or
 * attn.hook_z for patch) and load what the spec names: the direction (its width must be
 * the hook's) or the SAE (its hook must be the spec's, its d_in the width, the feature
 * below d_sae). */
int rs_intervention_resolve(rs_intervention *iv, const gemma2_model *m, rs_err *err);
void rs_intervention_free(rs_intervention *iv);

/* Load a direction of width d from FILE (probe or safetensors, see above) as a unit vector
 * (new array). name may be NULL. */
int rs_direction_load(const char *path, const char *name, int d, float **out, rs_err *err);

/* Mean over the T rows of x [T, w] of the row's L2 norm (double): the s of a relative add. */
double rs_mean_row_norm(const float *x, int T, int w);

/* A hook splice (hook_request.splice = rs_iv_splice_fn, splice_ctx = an rs_iv_splice) that
 * applies one resolved intervention in place: add (x += scale·d), project, SAE edit, or
 * patch (rows copied from src). rows [T] picks the rows (NULL: every row). On a failure
 * (SAE out of memory) it sets failed and *err, and does nothing more. */
typedef struct {
    rs_intervention *iv;
    const uint8_t *rows;  /* [T] rows to edit, NULL = every row */
    double scale;         /* add: alpha·s */
    const float *src;     /* patch: source activation [T_src, width] */
    int failed;
    rs_err *err;
} rs_iv_splice;
void rs_iv_splice_fn(void *ctx, float *x, int T, int width);

/* One input: a single sequence (ids, optional embeddings as gemma2_batch has them). */
typedef struct {
    const int32_t *ids;
    int64_t len;
    const float *embeds;          /* optional [len, D] */
    const uint8_t *embeds_mask;   /* [len] */
    int prefix_len;               /* bidirectional prefix (PaliGemma), 0 = causal */
} rs_iv_input;

typedef struct {
    int T, vocab;
    float *logits_clean;    /* [T, vocab] */
    float *logits_iv;       /* [T, vocab] */
    double *kl;             /* [T] KL(clean ‖ intervened) of each row's next-token distribution */
    double *scale;          /* [n_iv] the s each add used (mean ‖x_clean‖₂ at its hook, or 1) */
} rs_iv_result;

/* Run inputs[0] clean and with the interventions (applied at their hooks in forward order,
 * specs at the same hook in the given order); patch sources are inputs[from] (clean runs).
 * pos_offset as gemma2_batch. Caller frees with rs_iv_result_free. */
int rs_intervene_run(const gemma2_model *m, const rs_iv_input *inputs, int n_inputs, int pos_offset,
                     rs_intervention *ivs, int n_iv, rs_iv_result *out, rs_err *err);
void rs_iv_result_free(rs_iv_result *r);

/* Next-token probabilities from a logit row (softmax in double) into p[vocab]. */
void rs_softmax_row(const float *logits, int vocab, double *p);
/* KL(p‖q) of two logit rows (double). */
double rs_kl_logits(const float *lp, const float *lq, int vocab);

/* Logit lens: for each layer in layers[n_layers], logits[k] [T, vocab] (new arrays) =
 * soft-cap(RMSNorm_final(blocks.L.hook_resid_post) · Eᵀ) of the clean run of in, with the
 * model's final norm (gain 1+w, its eps) and final logit soft-cap, as TransformerLens's
 * apply_ln_to_stack + unembed. */
int rs_logit_lens(const gemma2_model *m, const rs_iv_input *in, int pos_offset, const int *layers, int n_layers,
                  float **logits, rs_err *err);

/* PaliGemma: the decoder rows of an image input as paligemma_forward builds them, so that
 * rs_intervene_run / rs_logit_lens on m->text with pos_offset 1 and prefix_len reproduce
 * paligemma_forward: runs the vision tower and projector on pixel_values [n_images, 3, S, S]
 * and writes new embeds [len, D] (projector output ÷ √D at the <image> rows; the decoder
 * multiplies by √D) and mask [len] (1 at <image> rows). */
int rs_pg_image_rows(const paligemma_model *m, const int32_t *ids, int64_t len, int prefix_len, const float *pixel_values,
                     int n_images, float **embeds, uint8_t **mask, rs_err *err);

/* The k largest entries of row[n] (ids, descending; ties: lower id first) into idx[k]. */
void rs_topk(const float *row, int n, int k, int *idx);

#endif
