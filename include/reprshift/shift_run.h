/* The `reprshift shift` pipeline as a library call: read two activation files written by
 * `reprshift extract` (one f32 tensor per hook, token_ids, offsets), optionally an SAE per
 * layer, compute fit and shift metrics per layer (with permutation nulls, BH q-values over
 * every p-value of the run, an SAE-misfit floor per model and a split-half noise floor per
 * model; docs/metrics.md), and write DIR/results.json,
 * DIR/summary.csv, DIR/features_<hook>.csv, DIR/tokens_<hook>.csv. */
#ifndef REPRSHIFT_SHIFT_RUN_H
#define REPRSHIFT_SHIFT_RUN_H

#include <stdint.h>
#include <stdio.h>
#include "reprshift/error.h"

typedef struct {
    const char *acts_a, *acts_b;  /* activation safetensors of model A and model B */
    const char *sae;              /* SAE path (may contain "{layer}"), or NULL for raw-only */
    const char *hook;             /* activation tensor (may contain "{layer}"); NULL: the only one */
    const char *sae_hook;         /* override of the SAE's hook name (e.g. for a bare npz) */
    const int *layers;            /* layers substituted for {layer}; NULL/0 → one run */
    int n_layers;
    int allow_hook_mismatch;
    int keep_special;             /* include BOS/EOS/pad rows (default: excluded) */
    int force_pooled;             /* compare per-input means even when token ids agree */
    int n_boot;
    uint64_t seed;                /* bootstrap and permutation seed */
    int n_perm;                   /* permutations of the pairing per metric (0: no p-values; the CLI default is 200) */
    int threads;                  /* threads for the permutation nulls (shift_opts.threads; 0: OpenMP's default) */
    int top_k;                    /* rows in ranking lists (default 20) */
    int min_count;                /* token types with fewer rows are not ranked (0 → 5) */
    int no_floors;                /* 1: skip the split-half and SAE-misfit floors (they are per-model facts; the
                                     pipeline's conditions stage reads them from the shift stage) */
    const int64_t *input_image;   /* optional [n_input_image]: the stimulus (image) of each input of acts_a/acts_b,
                                     < 0 none; given, floors get caption_pair_a/b: per-input means of caption i vs
                                     the next caption of the same image (docs/metrics.md, Floors), or a note why not */
    int64_t n_input_image;
    const char *tokenizer;        /* tokenizer.json for token strings + categories (optional) */
    const char *categories;       /* CSV word,category (optional; default built-in lists) */
    const char *out_dir;
    FILE *log;                    /* progress lines (may be NULL) */
} shift_run_opts;

/* Run; on error nothing is left in out_dir except files already complete. */
int shift_run(const shift_run_opts *o, rs_err *err);

#endif
