/* Experiment configuration: one JSON file describing a whole `reprshift run` (models,
 * hooks/layers, SAEs, dataset + sampling, image edits, probes, output). The schema is a
 * table in src/data/config.c (one place for each fact); docs/config.md documents it.
 * Loading validates against the table: unknown keys and wrong types are errors naming the
 * key path (e.g. "dataset.n_per_grup") with the nearest valid key suggested; defaults
 * are filled in so the resolved config can be dumped and stored with a run. Relative paths
 * resolve against the directory of the config file. */
#ifndef REPRSHIFT_CONFIG_H
#define REPRSHIFT_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "reprshift/backend.h"
#include "reprshift/coco.h"
#include "reprshift/error.h"
#include "reprshift/image.h"

typedef struct {
    char *name;      /* an rs_edit name: brightness, contrast, saturation, redness, redness_plain, blur, rotate
                        (or redness_luma, the old name of redness) */
    double *values;  /* [n_values] factors / radii / degrees */
    int n_values;
} rs_config_edit;

typedef struct {
    char *path;         /* the config file */
    char *name;         /* experiment name */
    char *output_dir;
    char *prompt;       /* PaliGemma prompt after the image */

    char *llm, *vlm;    /* model directories (Hugging Face layout) */
    char *tokenizer;    /* NULL: each model's own tokenizer.json */
    int64_t batch_tokens;
    rs_precision precision; /* "models.precision": the decoders' compute precision (fp32 default) */

    int n_layers;
    int *layers;
    int n_hooks;
    char **hooks;       /* expanded: every "{layer}" template once per layer, in order */
    int n_vision_hooks;
    char **vision_hooks; /* VLM vision.* / projector.* hooks for the image stores (NULL-terminated; may be empty) */
    char *pool;         /* none | mean | last */
    rs_image_processor image_processor; /* "image_processor": pil (default) | torchvision */
    int shift_permutations; /* "permutations": pairing permutations per shift metric (0: no p-values) */
    int n_conditions;
    char **conditions;  /* caption conditions (docs/pipeline.md): llm, vlm_text, vlm_caption, vlm_mismatch, vlm_blank */

    int has_saes;
    char *sae_path;     /* may contain {layer} */
    char *sae_hook;     /* may contain {layer}; NULL: the SAE's own hook name */
    int sae_ce_convention; /* "saes.ce_convention": splice_ce_convention (0 sae-lens, 1 reprshift-v1) */

    struct {
        char *manifest; /* prebuilt manifest (then no COCO files) or NULL */
        int n_instances;
        char **instances, **captions, **images; /* [n_instances] each (parallel lists) */
        int n_groups;
        coco_group groups[COCO_MAX_GROUPS]; /* owned strings, NULL-terminated supercategory lists */
        char **exclude; /* NULL-terminated */
        int64_t n_per_group;
        int allow_fewer;
        uint64_t seed;
        double frac_train, frac_val, frac_test;
        int captions_per_image;
        int use_text, use_images;
    } dataset;

    int n_edits;
    rs_config_edit *edits;

    struct {
        int n_which;
        char **which;   /* probe families to run (see docs/config.md) */
        int n_C;
        double *C;      /* regularisation grid */
        int folds, seeds, bootstrap;
        double test_frac;
        int permutations, min_test_groups;
        int n_targets;
        char **targets;    /* probes.targets (NULL when absent: the group probes only) */
        int min_positives; /* target probes: fewest positives and negatives per side (default 5) */
        struct {
            int on;          /* "probes.alignment" is present (else not computed) */
            int text_llm;    /* text side: 1 Gemma-2 captions, 0 PaliGemma captions */
            int dim, steps, batch, learn_temperature;
            int splits, null_draws; /* repeated splits S, shuffled-pair null draws R (default 1, 1) */
            double lr, temperature_init, ridge_alpha;
            uint64_t seed;
        } align;
        /* SAE-feature probes (docs/probes.md): features "raw" / "sae" (absent: raw only),
           penalty 0 = l2 (default), 1 = l1 (every probe of the stage), l1_C the grid used
           with l1 (absent: C), top_features listed per SAE probe */
        int feat_raw, feat_sae, penalty;
        int n_l1_C;
        double *l1_C;   /* NULL: use C */
        int top_features;
    } probes;

    struct {
        int enabled, ablation;  /* "downstream": the stage; the patch ablation (docs/pipeline.md) */
        int bootstrap, permutations;
    } downstream;

    struct {
        int on;         /* the config has a "steer" section (else the stage is skipped) */
        int n_alphas;
        double *alphas; /* in units of the mean prefix-row norm at the hook */
        int n_items, random_directions;
        int n_hooks;
        char **hooks;   /* NULL: every captured decoder hook */
        const cJSON *targets; /* NULL or {name: [words]} inside resolved */
        double C;
        uint64_t seed;
    } steer;

    struct {
        int on;         /* the config has a "crosscoder" section (else the stage is skipped) */
        int batchtopk;  /* sparsity "batchtopk" (else "l1") */
        int n_latents;  /* 0: 8 × the hidden size */
        double l1, lr, exclusive, shared;
        int k, batch, bootstrap;
        int null_runs;  /* side-swap null retrainings (0: none) */
        int seeds;      /* trainings with seeds seed + 1001·s, s < seeds (1: one, no across-seed interval) */
        int64_t steps, resample_every, dead_after, checkpoint_every;
        uint64_t seed;
        int n_hooks;
        char **hooks;   /* NULL: every captured decoder hook */
    } crosscoder;       /* docs/crosscoder.md */

    struct {
        int on;         /* the config has a "sae_train" section (else the stage is skipped) */
        int vlm_text;   /* store "vlm_text" (else "vlm_caption") */
        int topk;       /* arch "topk" (else "jumprelu") */
        int d_sae;      /* 0: the configured SAE's width at the hook, else 4 × the hidden size */
        int batch, k, bootstrap, null_reps, max_width;
        int held_out;   /* train outside the test split, fit also on the test images' captions */
        int64_t steps, l0_warmup;
        double lr, l0_coef, bandwidth, init_threshold, match_threshold;
        uint64_t seed;
        int n_hooks;
        char **hooks;   /* NULL: every captured decoder hook */
    } sae_train;        /* docs/sae-training.md */

#define RS_CONFIG_MAX_LANGUAGES 8
    struct {
        int on;         /* the config has a "languages" section (else the stage is skipped) */
        int n;          /* languages (codes) */
        char **codes;   /* "es", "de", ... (folder-safe: letters, digits, '-', '_') */
        char **prompts; /* PaliGemma prompt per code ("caption <code>" unless languages.prompts says) */
        char *translations; /* CSV caption_id + one column per code, or NULL: the manifest's caption_<code> columns */
        int bootstrap, permutations, transfer_seeds;
        int transfer;   /* the English -> translation probe transfer (default on) */
    } languages;        /* docs/languages.md */

    cJSON *resolved;    /* the validated tree with defaults filled and paths resolved */
} rs_config;

/* Load, validate and resolve a config file. */
int rs_config_load(const char *path, rs_config **out, rs_err *err);
/* Same from a JSON string; relative paths resolve against base_dir; `what` names it. */
int rs_config_parse(const char *json, const char *base_dir, const char *what, rs_config **out, rs_err *err);
/* Free (NULL is fine). */
void rs_config_free(rs_config *c);
/* Print the resolved config (all defaults filled) as JSON to fp. */
void rs_config_dump(const rs_config *c, FILE *fp);
/* The SAE path for a layer ({layer} replaced); new string or NULL on OOM / no SAEs. */
char *rs_config_sae_path(const rs_config *c, int layer);
/* The SAE hook override for a layer ({layer} replaced); NULL if none set or on OOM. */
char *rs_config_sae_hook(const rs_config *c, int layer);
/* Does the config's `conditions` list include name? */
int rs_config_has_condition(const rs_config *c, const char *name);
/* Sampling options from the dataset section (pointers into c; valid while c lives).
 * images_dir is left NULL: call coco_set_images_dir per instances file. */
void rs_config_sample_opts(const rs_config *c, coco_sample_opts *o);
/* Write the schema as Markdown (the key table of docs/config.md) to fp. */
void rs_config_schema_markdown(FILE *fp);

/* Levenshtein distance between two strings (for "did you mean" suggestions). */
int rs_edit_distance(const char *a, const char *b);
/* The candidate nearest to s if close enough to be a plausible typo, else NULL. */
const char *rs_nearest(const char *s, const char *const *cands, int n);

#endif
