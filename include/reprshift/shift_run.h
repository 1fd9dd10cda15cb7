/* The `reprshift shift` analysis as a library: two models' per-token activations (files
 * written by `reprshift extract`, or any source through shift_acts_src), optionally an SAE
 * per layer; fit and shift metrics per layer (with permutation nulls, BH q-values over every
 * p-value of the run, an SAE-misfit floor per model and a split-half noise floor per model;
 * docs/metrics.md).
 *
 * Compute and write are separate: shift_run_compute (or begin / add_layer / finish) returns
 * a shift_run_result; shift_run_json, shift_run_summary_csv and shift_layer_write_csvs turn it
 * into results.json, summary.csv and the per-layer CSVs. shift_run does both for files
 * (DIR/results.json, DIR/summary.csv, DIR/features_<hook>.csv, DIR/tokens_<hook>.csv,
 * DIR/token_types_<hook>.csv). */
#ifndef REPRSHIFT_SHIFT_RUN_H
#define REPRSHIFT_SHIFT_RUN_H

#include <stdint.h>
#include <stdio.h>
#include "reprshift/error.h"
#include "reprshift/sae_fit.h"
#include "reprshift/shift.h"

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

/* Run (compute, then write into out_dir); on error nothing is left in out_dir except files
 * already complete before the call. */
int shift_run(const shift_run_opts *o, rs_err *err);

/* ---- one model's activations ---- */

enum { SHIFT_MAX_SPECIAL = 8 };

/* Token ids and input offsets of one model, its special token ids, and a reader of one
 * hook's activations. */
typedef struct {
    const char *label;    /* file or store path, in messages */
    const int32_t *ids;   /* [n_tok] */
    const int64_t *off;   /* [n_in+1], 0 .. n_tok, non-decreasing */
    int64_t n_tok, n_in;
    /* The model's special tokens (<bos>, <eos>, <pad>, …; from its config.json, or an extract
     * file's special_token_ids): rows with these ids are excluded unless keep_special (in
     * token-aligned runs, ids special in either source). n_special = 0: none. */
    int n_special;
    int32_t special[SHIFT_MAX_SPECIAL];
    /* Activations of hook (NULL: the source's only one) as f32 [rows, *width]: *data, and
     * *owned (to free, may be NULL) when the source made a copy; *name: the tensor name, valid
     * while the source is open. The caller checks rows == n_tok and finiteness. */
    int (*read)(void *ctx, const char *hook, const float **data, float **owned, int64_t *rows, int *width,
                const char **name, rs_err *err);
    void *ctx;
} shift_acts_src;

/* An extract-format safetensors file as a source (pool "none", token_ids, offsets; the
 * special ids from its special_token_ids metadata, Gemma's 2,1,0 for files written before
 * the key). */
typedef struct shift_acts_file shift_acts_file;
int shift_acts_file_open(shift_acts_file **out, const char *path, shift_acts_src *src, rs_err *err);
void shift_acts_file_close(shift_acts_file *f);

/* ---- results ---- */

/* The SAE a layer was compared with (what results.json reports about it). */
typedef struct {
    char *path, *hook_name, *name, *neuronpedia;
    const char *format, *architecture, *hook_source; /* static strings */
    int d_in, d_sae, k, is_topk, hook_mismatch_allowed;
} shift_sae_info;

/* A floor (docs/metrics.md, Floors): a comparison within one model, or why there is none. */
typedef struct {
    char name[32];        /* split_half_a, sae_misfit_a, caption_pair_a, … */
    const char *unit;     /* what one unit is (static text) */
    char *unavailable;    /* NULL when computed, else why not */
    int with_feats;       /* feature metrics are part of it (SAE misfit) */
    shift_result r;
    int64_t n_images, n_pairs; /* caption pairs (-1: not reported) */
} shift_floor;

/* A ranked feature list (top_features in results.json) with its group-bootstrap intervals. */
typedef struct {
    int n;
    int *feat;     /* [n] */
    double *ci;    /* [n × 4]: Δfreq lo, hi, Δmean lo, hi */
} shift_feature_list;

enum { SHIFT_N_FEATURE_LISTS = 6, SHIFT_MAX_FLOORS = 6 };
extern const char *const SHIFT_FEATURE_LIST_NAME[SHIFT_N_FEATURE_LISTS];

/* One layer (hook) of a run. Rows of the compared matrices are "units": included tokens
 * (aligned) or inputs (pooled). */
typedef struct {
    int layer;            /* results.json "layer" (-1: none) */
    int csv_layer;        /* the summary.csv layer column */
    char *hook;           /* the activation tensor compared */
    int has_sae;
    shift_sae_info sae;
    sae_fit_metrics fit_a, fit_a_special, fit_b, fit_b_special;
    shift_opts so;        /* the options of the comparison (the test text depends on them) */
    shift_result r;       /* metrics with intervals and nulls, per-row and per-feature values */
    double q[SHIFT_N_METRICS]; /* BH q-value over the run (NaN: no test) */
    int has_floors, n_floors;
    shift_floor floors[SHIFT_MAX_FLOORS];
    int64_t n_units, n_groups;
    int64_t *unit_tok;    /* [n_units]: token row of file A (aligned) or input index (pooled) */
    int64_t *unit_rank;   /* [n_units]: units by cos_raw, most shifted first */
    /* features (SAE): Δfreq, Δmean, frequency-matched excess [d_sae]; ranked lists */
    double *dfreq, *dmean, *excess;
    int min_count, top_k;
    shift_feature_list lists[SHIFT_N_FEATURE_LISTS];
    /* category sums [n_cat][6] = count, cos_raw, l2_raw, cos_feat, jaccard, js (n_cat = categories + other) */
    int n_cat;
    double (*cat_sum)[6];
    /* token types (aligned) */
    shift_rank_entry *types;
    int64_t n_types;
    int n_bins;
} shift_layer;

struct rs_tokenizer;
struct rs_categories;

typedef struct {
    shift_run_opts o;      /* the options (strings borrowed from the caller) */
    int aligned;
    /* model A's token ids / offsets (copied; tokens_*.csv reports them) */
    int32_t *ids;
    int64_t *off, n_tok, n_in;
    struct rs_tokenizer *tok;     /* owned, may be NULL */
    struct rs_categories *cats;   /* owned, may be NULL */
    /* the excluded special ids of both sources, sorted, without repeats (results.json) */
    int n_special;
    int32_t special[2 * SHIFT_MAX_SPECIAL];
    shift_layer *layers;
    int n_layers, cap_layers;
    int n_tests;           /* finite p-values (set by shift_run_finish) */
} shift_run_result;

/* The SAE and hook of one layer of a run. */
typedef struct {
    int layer, csv_layer;  /* labels (see shift_layer) */
    const char *hook;      /* activation tensor (NULL: the only one) */
    const char *sae;       /* SAE path or NULL */
    const char *sae_hook;  /* override of the SAE's hook name, or NULL */
} shift_layer_spec;

/* Start a run over sources a and b (checks that they cover the same inputs, loads the
 * tokenizer and categories of o). */
int shift_run_begin(const shift_run_opts *o, const shift_acts_src *a, const shift_acts_src *b,
                    shift_run_result **out, rs_err *err);
/* Compute one layer and append it. */
int shift_run_add_layer(shift_run_result *res, const shift_acts_src *a, const shift_acts_src *b,
                        const shift_layer_spec *spec, rs_err *err);
/* Benjamini–Hochberg q-values over every p-value of the run (metric × layer). */
int shift_run_finish(shift_run_result *res, rs_err *err);
/* begin, each layer of o (hook/sae with {layer} substituted), finish. */
int shift_run_compute(const shift_run_opts *o, const shift_acts_src *a, const shift_acts_src *b,
                      shift_run_result **out, rs_err *err);
void shift_run_result_free(shift_run_result *res);

/* ---- writers ---- */

/* Labels of results.json: the CLI names the files (acts_a, acts_b, sae), the pipeline the
 * models (model_a, model_b, n_inputs) and puts "layer" last in each layer entry. */
typedef struct {
    const char *acts_a, *acts_b, *sae;
    const char *model_a, *model_b;
    int64_t n_inputs;     /* < 0: not written */
    int layer_last;
} shift_json_labels;

/* One layer's results.json entry (NULL: out of memory). */
struct cJSON *shift_layer_json(const shift_run_result *res, const shift_layer *L, int layer_last);
/* The whole results.json tree (NULL: out of memory). */
struct cJSON *shift_run_json(const shift_run_result *res, const shift_json_labels *lab);
/* summary.csv: header, then each layer's fit, metric and floor rows. */
int shift_run_summary_csv(const shift_run_result *res, FILE *fp);
/* DIR/features_<hook>.csv (SAE), DIR/tokens_<hook>.csv or inputs_<hook>.csv, DIR/token_types_<hook>.csv (aligned). */
int shift_layer_write_csvs(const shift_run_result *res, const shift_layer *L, const char *dir, rs_err *err);

#endif
