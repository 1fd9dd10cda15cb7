/* Results of the probes stage: probes.c computes a pl_probes_result (every evaluated probe,
 * cross-modal transfer, paired test, edit-transfer matrix and luminance change, with the
 * multiple-comparison q-values), probes_write.c turns it into results/probes.json,
 * transfer.json and attribute_transfer.json. The writer formats; it computes nothing. */
#ifndef RS_PIPELINE_PROBES_RESULT_H
#define RS_PIPELINE_PROBES_RESULT_H

#include "pipeline/pipeline_internal.h" /* pl_ctx */
#include "reprshift/error.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_align.h"
#include "reprshift/probe_transfer.h"
#include "reprshift/shift.h" /* rs_stat */
#include "reprshift/targets.h"
#include "pipeline/pipeline_internal.h" /* pl_ctx */

struct cJSON;

/* Strings in these structs are not owned unless said: static names, the config's hooks,
 * the dataset's variant labels (they outlive the result). */

/* One point of a probe curve: task × model at one hook. */
typedef struct {
    const char *task, *kind, *model;
    const char *hook;
    int layer;    /* the hook's layer (not written for vision hooks) */
    int vision;   /* 1: a vision hook: listed under "vision", points under "hooks" */
    int n;        /* rows */
    int n_test;   /* test rows of the first split */
    int xfer;     /* -1: an evaluated probe (ev, q); else a cross-modal transfer cell:
                     transfer[xfer].r.cell[cell] */
    int cell;
    rs_eval_result ev; /* owned (rs_eval_result_free) */
    double q;          /* permutation_q: Benjamini–Hochberg over every evaluated probe */
} pl_probe_point;

/* A probe the data could not support (logged and listed under "skipped"). */
typedef struct {
    const char *task, *model, *hook;
    char *reason; /* owned */
} pl_probe_skip;

/* The cross-modal transfer of one hook (one matrix of transfer.json). */
typedef struct {
    const char *hook;
    int layer;
    int n_test; /* test pairs of the first split */
    rs_transfer_result r;
} pl_probe_transfer;

/* A paired comparison of two concept probes on identical splits (probes.json "paired"). */
typedef struct {
    const char *pair, *model_a, *model_b, *hook;
    int layer, vision;
    rs_paired_result r; /* owned (rs_paired_result_free) */
    double q;           /* Benjamini–Hochberg over every paired test */
} pl_probe_paired;

/* The edit-transfer matrix of one hook: probe "original vs row edit" tested on "original vs
 * column edit" (attribute_transfer.json). */
typedef struct {
    const char *hook;
    int layer, vision;
    int V, n_images;
    const char **labels;   /* [V] owned array of the variants' labels */
    double *acc, *lo, *hi; /* [V·V] owned, row-major */
} pl_probe_edit_matrix;

/* The contrastive alignment of one hook (alignment.json, probes.alignment): InfoNCE,
 * Procrustes and ridge retrieval on the held-out caption-image pairs. */
typedef struct {
    const char *hook;
    int layer;
    const char *text;     /* "VLM captions" or "LLM captions" (static) */
    rs_align_result r;
} pl_probe_align;

/* Mean change (edited − original) of image-mean luminance for one edit variant. */
typedef struct {
    const char *edit;
    double value;
    rs_stat d_luma, d_linear_y;
} pl_probe_lum;

/* Target probes (probes_targets.c; docs/probes.md, Target probes): one-vs-rest probes per
 * target column of dataset/targets.csv and modality, and the text<->image transfer. */
typedef struct {
    const char *target, *model, *hook; /* target: the column name ("category:dog") */
    rs_target_kind kind;
    int layer;
    int n_images, n_test, pos_train, pos_test; /* images with a known label; test images, positives (split 0) */
    double prevalence;
    double bal, lo, hi;     /* seed-mean balanced accuracy, 95% nested bootstrap CI */
    double acc, majority;   /* seed-mean accuracy and majority-class test accuracy (context only) */
    double null_mean, p, q; /* permutation null mean, p, BH q over the target probes */
    int n_perm;
} pl_tgt_probe;

typedef struct {
    const char *target, *hook;
    rs_target_kind kind;
    int layer, dir;         /* dir 0: trained on text, scored on images; 1: the reverse */
    int n_images, n_test;   /* of the scored modality */
    double within, within_lo, within_hi; /* the scored modality's own probe on the same test images */
    double xfer, xfer_lo, xfer_hi;       /* the other modality's probe */
    double gap, gap_lo, gap_hi;          /* within − transfer, paired bootstrap CI */
    double null_mean, p, q;              /* permutation null of the transfer; BH q over transfer cells */
} pl_tgt_transfer;

typedef struct {
    const char *target, *model;
    char *reason; /* owned */
} pl_tgt_skip;

typedef struct pl_tgt_result {
    int min_pos, n_perm, n_seeds, n_boot;
    pl_tgt_probe *pr;
    int n_pr, cap_pr;
    pl_tgt_transfer *tr;
    int n_tr, cap_tr;
    pl_tgt_skip *sk;
    int n_sk, cap_sk;
    int n_tests, n_tr_tests; /* finite p-values in each BH family */
    /* prepared once (pl_targets_prepare) */
    int ni, n_cols;
    signed char *y;          /* [2][n_cols][ni] label per modality (0 text, 1 image), target, image */
    int *is_test;            /* [n_seeds][ni] */
    unsigned char *elig;     /* [2][n_cols] */
    int *cap;                /* [ni] the image's first caption (text input index) or -1 */
} pl_tgt_result;

/* Labels, splits and the min_positives check (skips listed); *out NULL on error. */
int pl_targets_prepare(pl_ctx *c, const rs_eval_opts *eo, pl_tgt_result **out, rs_err *err);
/* Every eligible target at one decoder hook. */
int pl_targets_hook(pl_ctx *c, pl_tgt_result *t, const rs_eval_opts *eo, const char *hook, int layer, rs_err *err);
/* The same on given features, one row per image: XT [ni, dT] text (the image's first
 * caption; NULL: none), XI [ni, dI] image (pl_targets_hook loads them; tests call this). */
int pl_targets_eval(pl_ctx *c, pl_tgt_result *t, const rs_eval_opts *eo, const float *XT, int dT, const float *XI,
                    int dI, const char *hook, int layer, rs_err *err);
/* Benjamini–Hochberg q over the target probes, and over the transfer cells. */
int pl_targets_bh(pl_tgt_result *t, rs_err *err);
struct cJSON *pl_targets_json(const pl_tgt_result *t);
/* results/probe_targets.csv */
int pl_targets_write_csv(const pl_tgt_result *t, const char *results_dir, rs_err *err);
void pl_targets_result_free(pl_tgt_result *t);
/* One SAE feature of an SAE-feature probe's top list: the final fit's standardised weight. */
typedef struct {
    int feature;   /* SAE feature index */
    int cls;       /* class whose weight is largest in magnitude (K > 2), else 1 (the positive class) */
    double coef;   /* that weight, on the standardised feature (= raw weight × feature std) */
    double score;  /* |coef| (K > 2: max over classes) */
    double mean;   /* mean activation of the feature over the probe's rows */
    double active; /* share of the probe's rows where the pooled feature is > 0 */
} pl_sae_top;

/* A concept probe on an SAE's features (probes.features has "sae"), beside the raw probe of the
 * same rows at the same hook (probes.json "sae_features", probes_sae.csv, probes_sae_features.csv). */
typedef struct {
    const char *model, *hook;  /* "LLM captions" / "VLM captions"; the config's hook */
    int layer;
    char *sae;                 /* owned: the SAE (registry name or path) */
    const char *neuronpedia;   /* Neuronpedia SAE id from the registry (static), or NULL */
    int d_sae;
    const char *const *labels; /* class names (the context's; outlive the result) */
    int n, n_test;             /* rows (captions); test rows of the first split */
    rs_eval_result ev;         /* owned: the protocol on the pooled SAE features */
    int raw;                   /* index into pt of the raw-activation probe (same rows and splits), -1: none */
    int has_diff;
    rs_paired_result diff;     /* owned when has_diff: SAE minus raw on identical splits */
    double C_final;            /* C of the all-rows fit behind the top list (the most frequent chosen C) */
    int n_nonzero;             /* features with a non-zero weight in that fit */
    int n_dead;                /* features that are 0 on every row */
    pl_sae_top *top;           /* owned [n_top] */
    int n_top;
    double q;                  /* Benjamini-Hochberg over the SAE-feature probes' permutation p-values */
} pl_probe_sae;

typedef struct {
    /* the protocol as configured (the descriptions in the files) */
    int n_seeds, n_boot, n_perm;
    int paired_flips;                 /* sign flips of the paired test (0: no p-value) */
    int has_vision;                   /* probes.json gets a "vision" list (vision hooks and images) */
    pl_probe_point *pt;               /* in the order computed (hook by hook) */
    int n_pt;
    pl_probe_skip *skip;
    int n_skip;
    pl_probe_transfer *xf;
    int n_xf;
    pl_probe_paired *pair;
    int n_pair;
    pl_probe_edit_matrix *em;
    int n_em;
    pl_probe_lum *lum;                /* [n_lum], NULL: not computed (no edit matrix) */
    int n_lum, lum_images;
    int n_tests, paired_n_tests;      /* finite p-values in each BH family */
    int penalty;                      /* RS_PENALTY_L2 / RS_PENALTY_L1 (probes.penalty) */
    int sae_on;                       /* probes.features has "sae": probes.json gets "sae_features" */
    pl_probe_sae *sae;                /* SAE-feature probes (probes_sae.c) */
    int n_sae, cap_sae, sae_n_tests;
    int cap_pt, cap_skip, cap_xf, cap_pair, cap_em;
    pl_tgt_result *tg;                /* target probes; NULL unless probes.targets asks (owned) */
    pl_probe_align *al;               /* probes.alignment: one per decoder hook with caption-image pairs */
    int n_al, cap_al;
    rs_align_opts al_opts;            /* as run (the description in alignment.json) */
} pl_probes_result;

void pl_probes_result_free(pl_probes_result *r);
/* rs_paired_probe_test of probes A and B over their tot test rows (the two evaluated on
 * identical splits: the caller checks), correct = prediction == label[row], groups group[row],
 * with the probes stage's bootstrap (eo->n_boot) and seeds (eo->seed + 0xB00B, + 0x5A1F1B). */
int pl_paired_test_rows(const rs_eval_result *A, const rs_eval_result *B, const int *label, const int *group, int tot,
                        const rs_eval_opts *eo, int flips, rs_paired_result *out, rs_err *err);

/* SAE-feature probes at one hook (probes_sae.c): when the config has an SAE for `hook`, the
 * caption concept probes refitted on the SAE's features (encoded per token, then pooled as the
 * raw features are), with the evaluation options eo (the raw probes' own: splits, seeds, C grid,
 * CIs, nulls), control types ctype (may be NULL); raw_llm / raw_vlm: indices into r->pt of the
 * raw probes of the same rows (kept test rows; -1: none) for the paired SAE-minus-raw test.
 * Nothing happens without an SAE for the hook. */
int pl_probes_sae_hook(pl_ctx *c, pl_probes_result *r, const rs_eval_opts *eo, const char *hook, int layer,
                       const int *ctype, int raw_llm, int raw_vlm, rs_err *err);
/* Benjamini-Hochberg over the SAE-feature probes' permutation p-values (q, sae_n_tests). */
int pl_probes_sae_bh(pl_probes_result *r, rs_err *err);
/* Free the SAE-feature probes of r (pl_probes_result_free calls it). */
void pl_probes_sae_free(pl_probes_result *r);
/* The "sae_features" list of probes.json (NULL: out of memory). */
struct cJSON *pl_probes_sae_json(const pl_probes_result *r);
/* results/probes_sae.csv and probes_sae_features.csv (only when r->n_sae > 0). */
int pl_probes_sae_write_csv(const pl_probes_result *r, const char *results_dir, rs_err *err);

/* Benjamini–Hochberg over the evaluated points' permutation p-values (q, n_tests) and over
 * the paired tests' p-values (q, paired_n_tests). */
int pl_probes_bh(pl_probes_result *r, rs_err *err);

/* The three files as cJSON trees (NULL: out of memory). Tasks are listed by (task, model)
 * in order of their first point; a task's chance is that of its first evaluated point. */
struct cJSON *pl_probes_json(const pl_probes_result *r);
/* The metrics of one evaluated probe (accuracy, balanced accuracy, macro F1 with CIs, chance,
 * permutation null and p, control task, selectivity) added to o. */
void pl_eval_metrics_json(struct cJSON *o, const rs_eval_result *e);
struct cJSON *pl_probes_transfer_json(const pl_probes_result *r);
struct cJSON *pl_probes_attribute_json(const pl_probes_result *r);
struct cJSON *pl_probes_align_json(const pl_probes_result *r);

/* Write them into results_dir: transfer.json when a hook has a transfer matrix, alignment.json
 * when a hook has an alignment result,
 * attribute_transfer.json when a hook has an edit-transfer matrix, probes.json when any
 * point was evaluated (the report needs one). */
int pl_probes_write(const pl_probes_result *r, const char *results_dir, rs_err *err);

#endif
