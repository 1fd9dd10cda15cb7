/* Shared state of one `reprshift run` (src/pipeline/). Each stage file reads what the
 * previous stages wrote into the run directory; this struct only carries the config, the
 * run paths, the log and the dataset as loaded from the manifest. */
#ifndef RS_PIPELINE_INTERNAL_H
#define RS_PIPELINE_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include "reprshift/config.h"
#include "reprshift/extract.h"
#include "reprshift/gemma2.h"
#include "reprshift/paligemma.h"
#include "reprshift/error.h"
#include "reprshift/hooks.h" /* rs_hook_block_index: the layer of a "blocks.L.…" name */
#include "reprshift/image_edit.h"
#include "reprshift/manifest.h"
#include "reprshift/pipeline.h"
#include "reprshift/shift_run.h"
#include "reprshift/targets.h"

/* One edited image variant kind (an entry of config edits × values). */
typedef struct {
    rs_edit edit;
    const char *name;     /* canonical edit name (rs_edit_name; the alias redness_luma is "redness") */
    char label[48];       /* "brightness 0.6" */
} pl_variant;

typedef struct {
    const rs_pipeline_opts *opt;
    rs_config *cfg;
    char *out, *results, *stages, *acts, *work; /* run directory and its folders */
    FILE *log;                                  /* run.log (append) */
    char models_fp[65];                         /* checksums of model + SAE files (provenance) */
    char llm_fp[65], vlm_fp[65], sae_fp[65];
    char llm_name[128], vlm_name[128];          /* short model labels (directory names) */

    /* dataset (after the dataset stage) */
    char dataset_fp[65];
    rs_manifest *man;
    int n_labels;
    char **labels;            /* sorted distinct labels (class names) */
    int n_text, n_image;
    int *text_row, *image_row;/* manifest rows of the text / image inputs */
    int *text_label, *image_label;
    int *text_group, *image_group; /* group = base image (an image, its captions and edits) */
    int *image_caption;       /* first text input of each image, or -1 */
    int *text_ctype, *image_ctype; /* concept control-task type (manifest column "category", dense
                                      ids, -1 where empty); NULL without that column */
    int n_ctypes;             /* distinct types */
    rs_targets *targets;      /* per manifest row (dataset/targets.csv); NULL unless probes.targets
                                 asks for more than "groups" (pl_targets_wanted) */
    int n_variants;
    pl_variant *variants;

    /* token ids of the captions (extract stage) and the tokenizer that made them */
    int32_t **text_ids;
    int64_t *text_len;
    struct rs_tokenizer *caption_tok;
    /* <bos>, <eos>, <pad> of the LLM and of the VLM decoder, from their config.json
       (pl_validate_models): never content tokens (pl_token_included) */
    int32_t special_ids[6];
    /* image input read with each caption in the vlm_caption / vlm_mismatch conditions
       ([n_text] image-input indices; NULL until the extract stage builds them) */
    int *text_image, *text_mismatch;
    /* threads for coarse loops of independent work items (permutation refits, permutation
       nulls): --threads N, else OMP_NUM_THREADS, else every available core (pl_set_threads) */
    int coarse_threads;
    /* image-mean luminance of every image the extract stage decoded in this process
       ([(v·n_image + j)·2 + {0: BT.601 luma, 1: linear Y}], v = 0 the original, 1.. the
       variants; NaN where not seen, e.g. a store complete from an earlier run): the probes
       stage's luminance table reads it instead of decoding and editing every image again */
    double *image_lum;
    /* a task of a job array (opt->n_tasks > 0): the lock serialising the tasks' setup
       (work/.setup.lock) until the task has claimed its store parts; -1 when not held */
    int setup_lock_fd;
    int merge_tasks; /* a merge: N of the tasks (stages/tasks.json; 0: unknown) */
    /* languages (lang_prepare.c, docs/languages.md): one sub-run context per language code,
       made by pl_languages_prepare; in a sub-context lang is its code (else NULL) */
    struct pl_lang *langs;
    int n_langs;
    const char *lang;
} pl_ctx;

/* Log a line to run.log (with a UTC timestamp) and, unless quiet, to stderr. */
void pl_log(pl_ctx *c, const char *stage, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* SHA-256 hex of a formatted string (stage fingerprints). */
void pl_fp(char out[65], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* mkdir -p of one level (existing is fine). */
int pl_mkdir(const char *path, rs_err *err);
/* Remove a store directory written by this pipeline (its files, then the folder). */
void pl_remove_store(const char *dir);
/* Write text to path atomically. */
int pl_write_text(const char *path, const char *text, rs_err *err);
/* Remove a flat folder of scratch files (its files, then the folder; missing is fine). */
void pl_remove_flat_dir(const char *dir);
/* A hook name as a file-name part: letters, digits, '.' and '_' kept, anything else '_'
 * ("blocks.2.hook_resid_post" is one already); at most n − 1 characters. */
void pl_safe_name(const char *hook, char *out, size_t n);
/* Write a cJSON tree, pretty-printed + newline, atomically. */
struct cJSON;
int pl_write_json(const char *path, const struct cJSON *j, rs_err *err);
/* Path of a file/folder inside dir (new string). */
char *pl_join(const char *dir, const char *name);

/* Stages with their own entry functions (each logs, skips what is complete, returns 0 / -1):
 * dataset runs its one-unit pl_stage_def, then loads the manifest into the context; extract
 * prepares (caption tokens, prompt, condition images) and runs its units, one per store. */
int pl_stage_dataset(pl_ctx *c, rs_err *err);
/* Does probes.targets ask for target kind k (RS_TGT_*), or (k < 0) for any beyond "groups"? */
int pl_targets_wanted(const rs_config *cfg, int k);
int pl_stage_extract(pl_ctx *c, rs_err *err);
/* Decode the image at path and apply variant v's edit (v NULL: the original), exactly as
 * the extract stage builds the edited store's images. */
int pl_load_variant(const pl_variant *v, const char *path, rs_image *img, rs_err *err);

/* A stage made of several units, each with its own done-marker
 * stages/<marker_prefix><names[u]>.done and fingerprint (extract: one unit per store). Its
 * outputs may be resumable: `written` tells what a unit's outputs hold now, and outputs
 * written for the current fingerprint are kept (the unit's run resumes them); outputs for
 * other inputs (or any, under --force) are removed before the unit runs. arg is the stage's
 * shared state (pl_run_units; pl_run_stage passes NULL). Every function but used is required. */
typedef struct {
    int n;                                                /* units 0..n-1 */
    const char *const *names;                             /* log label "NAME: ..." and marker name */
    const char *marker_prefix;                            /* "store_" */
    int (*used)(const pl_ctx *c, int u);                  /* NULL: always used */
    int (*fingerprint)(pl_ctx *c, void *arg, int u, char fp[65], rs_err *err);
    /* 1: outputs written for fp (complete or partly), 0: none, -1: written for other inputs */
    int (*written)(pl_ctx *c, int u, const char *fp);
    void (*remove)(pl_ctx *c, int u);                     /* remove unit u's outputs */
    int (*run)(pl_ctx *c, void *arg, int u, const char *fp, rs_err *err); /* fp: the unit's fingerprint */
} pl_units;

/* One stage of `reprshift run` (the table in run.c). With a fingerprint (or units), the
 * protocol, written once in run.c for a stage and for each unit of a stage: not used → its
 * marker and outputs removed; marker with the same fingerprint and the outputs complete
 * (one-unit stage: the first output present, or a note in the marker; unit: `written` says
 * 1) → skipped; else marker removed, outputs removed (a unit's only when written for other
 * inputs, or under --force), run, marker written last (with the note run set, if any).
 * Without either, run is called as is: dataset and extract are such entries, calling their
 * entry functions, which run their own defs through the same protocol (the dataset stage then
 * loads the manifest, extract shares models and prompt among its units). */
typedef struct {
    const char *name;                                     /* stages/NAME.done; the log tag */
    int (*used)(const pl_ctx *c);                         /* NULL: always used */
    const char *unused_note;                              /* logged when not used */
    int (*fingerprint)(pl_ctx *c, char fp[65], rs_err *err);
    const char *const *outputs;                           /* paths under the run folder, NULL-terminated */
    int log_output;                                       /* "complete (skipped): <first output>" */
    int (*run)(pl_ctx *c, const char **note, rs_err *err);
    const pl_units *units;                                /* several units (then the fields above but name unused) */
} pl_stage_def;
int pl_run_stage(pl_ctx *c, const pl_stage_def *st, rs_err *err);
/* Does the marker stages/NAME.done hold fp (and no --force)? */
int pl_marker_matches(pl_ctx *c, const char *name, const char *fp);
/* Every unit of a stage with units, in order, with the stage's shared state arg. */
int pl_run_units(pl_ctx *c, const pl_stage_def *st, void *arg, rs_err *err);
/* Every stage in order. */
int pl_run_stages(pl_ctx *c, rs_err *err);

/* Job arrays (shard.c, docs/cluster.md). */
/* The setup lock of a task (work/.setup.lock, exclusive, waits): the tasks run the dataset
 * stage and claim their store parts one at a time. pl_task_setup_done releases it. */
int pl_task_setup_lock(pl_ctx *c, rs_err *err);
void pl_task_setup_done(pl_ctx *c);
/* Record the task's config, N and --shard-inputs in stages/tasks.json (for `reprshift merge`). */
int pl_tasks_write(pl_ctx *c, rs_err *err);
/* Append the tasks' logs (stages/task-*.log) to run.log, in task order, and remove them. */
void pl_tasks_fold_logs(pl_ctx *c);
/* The task's log file stages/task-IIIII-of-NNNNN.log (new string). */
char *pl_task_log_path(pl_ctx *c);
/* Deterministic assignment of n items with costs cost[] to n_tasks tasks, balanced by cost:
 * largest first (ties by index), each to the least-loaded task (ties: the lowest). owner[i]
 * receives the task of item i. */
int pl_assign(const double *cost, int64_t n, int n_tasks, int *owner, rs_err *err);

/* shift (shift.c), conditions (conditions.c), probes (probes.c): the parts of their table entries. */
int pl_shift_used(const pl_ctx *c);
int pl_shift_fp(pl_ctx *c, char fp[65], rs_err *err);
int pl_shift_run(pl_ctx *c, const char **note, rs_err *err);
int pl_conditions_used(const pl_ctx *c);
int pl_conditions_fp(pl_ctx *c, char fp[65], rs_err *err);
int pl_conditions_run(pl_ctx *c, const char **note, rs_err *err);
int pl_downstream_used(const pl_ctx *c);
int pl_downstream_fp(pl_ctx *c, char fp[65], rs_err *err);
int pl_downstream_run(pl_ctx *c, const char **note, rs_err *err);
/* crosscoder (crosscoder.c): one crosscoder per hook on llm_text × vlm_caption (docs/crosscoder.md) */
int pl_crosscoder_used(const pl_ctx *c);
int pl_crosscoder_fp(pl_ctx *c, char fp[65], rs_err *err);
int pl_crosscoder_run(pl_ctx *c, const char **note, rs_err *err);
/* SAE training on the VLM's activations + matching with the configured SAE (sae_train.c, docs/sae-training.md) */
int pl_sae_train_used(const pl_ctx *c);
int pl_sae_train_fp(pl_ctx *c, char fp[65], rs_err *err);
int pl_sae_train_run(pl_ctx *c, const char **note, rs_err *err);
int pl_probes_fp(pl_ctx *c, char fp[65], rs_err *err);
int pl_probes_run(pl_ctx *c, const char **note, rs_err *err);
/* 1 when probes.which names the probe family (probes.c; the steer stage uses it too). */
int pl_probes_wants(const rs_config *cfg, const char *family);
/* The probe family of an edit name, as the probes stage names them ("redness_luma" → "redness",
 * "rotate" → "rotation", others themselves). */
const char *pl_edit_family(const char *name);
/* steer (steer.c): steering dose-response of the probe directions with a random control */
int pl_steer_used(const pl_ctx *c);
int pl_steer_fp(pl_ctx *c, char fp[65], rs_err *err);
int pl_steer_run(pl_ctx *c, const char **note, rs_err *err);
/* Error unless each probe split leaves at least probes.min_test_groups test groups (images);
 * the message gives the numbers and how to raise them. Needs the dataset stage. */
int pl_probes_check(pl_ctx *c, rs_err *err);

/* Benjamini–Hochberg over one family: every `shift.<metric>.p_value` in the given
 * `layers` arrays (each entry's `shift` object) gets its `q_value` replaced by the
 * family-wide one; *n_tests = the number of finite p-values. */
int pl_bh_family(struct cJSON *const *layer_arrays, int n_arrays, int *n_tests, rs_err *err);

/* A per-token store as a shift source (shift_run.h): token ids and offsets read now, a
 * hook's rows when the analysis reads them. Close with pl_store_source_close. */
typedef struct pl_store_src pl_store_src;
int pl_store_source(pl_ctx *c, int store, pl_store_src **out, shift_acts_src *src, rs_err *err);
void pl_store_source_close(pl_store_src *s);

/* Validation before any work: hooks exist in both models, SAEs load and read a captured
 * hook, model widths agree. */
int pl_validate_models(pl_ctx *c, rs_err *err);
/* Thread count for this run (option, OMP_NUM_THREADS, or 1 for tiny models). */
void pl_set_threads(pl_ctx *c);

/* Languages (lang_prepare.c): the derived manifests dataset/manifest_<code>.csv and a sub-run
 * context per language (its stores in acts/lang_<code>/, markers in stages/lang_<code>/);
 * extract runs the store units of each (llm_text, vlm_text, vlm_caption); free with the dataset. */
int pl_languages_prepare(pl_ctx *c, rs_err *err);
int pl_languages_extract(pl_ctx *c, rs_err *err);
void pl_languages_free(pl_ctx *c);
/* The sub-run context of language k (NULL when out of range). */
pl_ctx *pl_language_ctx(pl_ctx *c, int k);
/* The shift analysis (shift_run, no floors) of two caption stores of c at one hook, with the
 * SAE of the hook's layer when it reads that hook: a shift.json layer entry, as each pair of
 * conditions.json has (conditions.c). New object in *out. */
int pl_pair_shift(pl_ctx *c, int store_a, int store_b, const char *hook, struct cJSON **out, rs_err *err);
/* the languages stage (languages.c) */
int pl_languages_used(const pl_ctx *c);
int pl_languages_fp(pl_ctx *c, char fp[65], rs_err *err);
int pl_languages_run(pl_ctx *c, const char **note, rs_err *err);

/* Stores (src/pipeline/extract.c). The last three are the caption conditions read with an
 * image (docs/pipeline.md): per caption token, rows aligned with llm_text (same ids). */
enum { PL_LLM_TEXT, PL_VLM_TEXT, PL_VLM_IMAGE, PL_VLM_EDITS, PL_VLM_CAPTION, PL_VLM_MISMATCH, PL_VLM_BLANK, PL_N_STORES };
/* Is store s one of the captions-with-an-image conditions (vlm_caption/mismatch/blank)? */
#define PL_IS_COND(s) ((s) >= PL_VLM_CAPTION)
/* Is store s a per-token caption store (llm_text, vlm_text or a condition)? */
#define PL_IS_CAPTION_STORE(s) ((s) <= PL_VLM_TEXT || PL_IS_COND(s))
extern const char *const PL_STORE_NAME[PL_N_STORES];
/* Fingerprint of a finished store (sha256 of its index.json), for downstream stages. */
int pl_store_fp(pl_ctx *c, int store, char fp[65], rs_err *err);
/* All rows of one hook's tensor of a store: new array [*rows, *w]. */
int pl_store_read_hook(pl_ctx *c, int store, const char *hook, float **A, int64_t *rows, int64_t *w, rs_err *err);
/* Per-input feature rows of one hook from a store: token stores are mean-pooled over
 * non-special tokens (or the last token for pool "last"); pooled stores are read as is.
 * New array [*n, *d]. */
int pl_store_features(pl_ctx *c, int store, const char *hook, float **X, int *n, int *d, rs_err *err);
/* Is this store used by the config (text / image / edits present)? */
int pl_store_used(const pl_ctx *c, int store);

/* Re-running captions in a condition (conditions.c; the downstream stage too): both models,
 * the prompt + "\n" ids and the VLM's <eos>. */
typedef struct {
    gemma2_model *llm;
    paligemma_model *vlm;
    int32_t *prompt;
    size_t n_prompt;
    int32_t eos;
} pl_cond_models;
/* One decoder batch of captions [i0, i1) in caption store s, built as the extract stage
 * builds the store's inputs: llm_text = <bos> caption (Gemma-2), vlm_text = the caption alone
 * (PaliGemma's decoder), a condition = image rows (the projector output, as embeddings),
 * <bos>, prompt, "\n" (prefix) then caption + <eos> (suffix). cap0[k] is the row of
 * caption k's first token after <bos>, n_cap[k] its caption tokens (not <bos>, not the
 * suffix's <eos>); dec the decoder to run b with. Free with pl_cond_batch_free. */
typedef struct {
    gemma2_batch b;
    const gemma2_model *dec;
    int n;
    int64_t T;
    int64_t *cap0, *n_cap;
    int32_t *ids;
    int64_t *off;
    uint8_t *emask;
    float *embeds;
    pg_inputs pi;
} pl_cond_batch;
int pl_cond_batch_build(pl_ctx *c, const pl_cond_models *m, int s, int i0, int i1, pl_cond_batch *cb, rs_err *err);
void pl_cond_batch_free(pl_cond_batch *cb);

/* prompt + "\n" as token ids (no <bos>), as PaliGemmaProcessor builds it (new array). */
int pl_prompt_ids(pl_ctx *c, int32_t **ids, size_t *n, rs_err *err);
/* The VLM tokenizer's <eos> id. */
int pl_eos_id(pl_ctx *c, int32_t *eos, rs_err *err);
/* Caption i as PaliGemma's suffix (PaliGemmaProcessor's suffix=caption): its ids after the
 * <bos>, then eos, into sfx (room for text_len[i] ids). Returns the length, text_len[i]. */
int64_t pl_caption_suffix(const pl_ctx *c, int64_t i, int32_t eos, int32_t *sfx);

/* Is caption token id counted by the metrics and pooling (not the models' <pad>/<eos>/<bos>,
 * nor a whitespace-only piece of the caption tokenizer)? docs/metrics.md "Excluded tokens". */
int pl_token_included(const pl_ctx *c, int32_t id);

/* Free the dataset part of the context. */
void pl_dataset_free(pl_ctx *c);

/* ---- digest cache (digest.c): SHA-256 of files by (real path, size, mtime, dev, inode) ---- */
typedef struct {
    char *path; /* real path */
    int64_t bytes, mtime_ns;
    uint64_t dev, ino;
    char sha[65];
} pl_digest;
typedef struct {
    pl_digest *d;
    int n, cap, added;
} pl_digest_cache;
/* A missing file is an empty cache; *n_bad counts skipped unreadable lines. */
int pl_digest_load(const char *file, pl_digest_cache *dc, int *n_bad, rs_err *err);
/* The cached SHA-256 of real path with stat st, or NULL. */
const char *pl_digest_find(const pl_digest_cache *dc, const char *real, const struct stat *st);
int pl_digest_put(pl_digest_cache *dc, const char *real, const struct stat *st, const char *sha, rs_err *err);
/* Merge with the file's current lines and replace it atomically (its folder is created). */
int pl_digest_save(const char *file, const pl_digest_cache *dc, rs_err *err);
void pl_digest_free(pl_digest_cache *dc);

#endif
