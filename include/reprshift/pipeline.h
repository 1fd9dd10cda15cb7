/* `reprshift run CONFIG`: one experiment from a config file, as resumable stages
 *   dataset  COCO -> balanced manifest with group-aware splits (or the given manifest)
 *   extract  captions through the LLM and the VLM decoder (same token ids), images and
 *            their edited variants through the VLM -> sharded activation stores
 *   shift    LLM vs VLM on the same captions, per hook (SAE metrics where configured)
 *            -> results/shift.json + CSVs; SAE fit and spliced CE -> results/sae_fit.json
 *   probes   concept, modality, cross-modal transfer, attribute probes; with vision_hooks
 *            also the image-only ones at each vision hook (stored in the image stores)
 *            -> results/probes.json, results/transfer.json
 *   report   -> report.html
 * A stage is complete iff its outputs exist and its done-marker (stages/NAME.done, written
 * atomically last) holds the fingerprint of everything it read; complete stages are
 * skipped, a stage whose inputs changed is redone. Stores resume shard by shard, so a run
 * killed at any point and started again ends byte-identical to an uninterrupted one.
 * See docs/pipeline.md. */
#ifndef REPRSHIFT_PIPELINE_H
#define REPRSHIFT_PIPELINE_H

#include <stdint.h>
#include "reprshift/error.h"

typedef struct {
    const char *config_path;   /* experiment config (docs/config.md) */
    const char *output_dir;    /* overrides the config's output_dir (NULL: the config's) */
    int quiet;                 /* 1: nothing on stderr (run.log still written) */
    int64_t shard_inputs;      /* inputs per store shard (0: automatic, from batch_tokens) */
    int force;                 /* 1: redo every stage (stores are rebuilt) */
    int threads;               /* OpenMP/BLAS threads (0: OMP_NUM_THREADS, else 1 for tiny models
                                  (hidden size < 512), else the default) */
    const char *digest_cache;  /* file of SHA-256s shared by runs (docs/pipeline.md, "Provenance");
                                  NULL: none (files not named by the Hugging Face cache are hashed
                                  unless an earlier provenance.json of this run folder has them) */
} rs_pipeline_opts;

/* Defaults: everything zero / NULL. */
rs_pipeline_opts rs_pipeline_defaults(void);

/* Run (or resume) the whole experiment. On success *report_path (may be NULL) receives the
 * path of report.html (caller frees). On error nothing complete-looking is left for the
 * failed stage; running again continues from the last complete stage / shard. */
int rs_pipeline_run(const rs_pipeline_opts *o, char **report_path, rs_err *err);

/* SHA-256 of a file as 64 lowercase hex digits into hex[65]; *bytes receives its size. */
int rs_sha256_file(const char *path, char hex[65], int64_t *bytes, rs_err *err);
/* SHA-256 of a buffer as 64 lowercase hex digits. */
void rs_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
