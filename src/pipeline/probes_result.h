/* Results of the probes stage: probes.c computes a pl_probes_result (every evaluated probe,
 * cross-modal transfer, paired test, edit-transfer matrix and luminance change, with the
 * multiple-comparison q-values), probes_write.c turns it into results/probes.json,
 * transfer.json and attribute_transfer.json. The writer formats; it computes nothing. */
#ifndef RS_PIPELINE_PROBES_RESULT_H
#define RS_PIPELINE_PROBES_RESULT_H

#include "reprshift/error.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_align.h"
#include "reprshift/probe_transfer.h"
#include "reprshift/shift.h" /* rs_stat */

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
    int cap_pt, cap_skip, cap_xf, cap_pair, cap_em;
    pl_probe_align *al;               /* probes.alignment: one per decoder hook with caption-image pairs */
    int n_al, cap_al;
    rs_align_opts al_opts;            /* as run (the description in alignment.json) */
} pl_probes_result;

void pl_probes_result_free(pl_probes_result *r);

/* Benjamini–Hochberg over the evaluated points' permutation p-values (q, n_tests) and over
 * the paired tests' p-values (q, paired_n_tests). */
int pl_probes_bh(pl_probes_result *r, rs_err *err);

/* The three files as cJSON trees (NULL: out of memory). Tasks are listed by (task, model)
 * in order of their first point; a task's chance is that of its first evaluated point. */
struct cJSON *pl_probes_json(const pl_probes_result *r);
struct cJSON *pl_probes_transfer_json(const pl_probes_result *r);
struct cJSON *pl_probes_attribute_json(const pl_probes_result *r);
struct cJSON *pl_probes_align_json(const pl_probes_result *r);

/* Write them into results_dir: transfer.json when a hook has a transfer matrix, alignment.json
 * when a hook has an alignment result,
 * attribute_transfer.json when a hook has an edit-transfer matrix, probes.json when any
 * point was evaluated (the report needs one). */
int pl_probes_write(const pl_probes_result *r, const char *results_dir, rs_err *err);

#endif
