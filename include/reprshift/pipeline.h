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
    /* Job arrays (docs/cluster.md). n_tasks > 0: this process is task `task` (0-based) of
     * n_tasks: it runs the dataset stage (serialised between tasks) and writes only the store
     * shards assigned to it (store parts), then stops. merge: check that the tasks wrote every
     * shard, write the stores' indexes (no data copied), then run the analysis stages; without
     * config_path the config the tasks recorded (DIR/stages/tasks.json) is used. Neither goes
     * with force. */
    int task, n_tasks;
    int merge;
} rs_pipeline_opts;

/* Defaults: everything zero / NULL. */
rs_pipeline_opts rs_pipeline_defaults(void);

/* Run (or resume) the whole experiment. On success *report_path (may be NULL) receives the
 * path of report.html (caller frees). On error nothing complete-looking is left for the
 * failed stage; running again continues from the last complete stage / shard. */
int rs_pipeline_run(const rs_pipeline_opts *o, char **report_path, rs_err *err);

/* What the tasks of a job array recorded in DIR/stages/tasks.json (written by every task,
 * removed by a successful merge): the config and run folder as they were given, the working
 * folder they were given in, N and --shard-inputs (0: automatic). A merge must use the same
 * spellings: the paths take part in the fingerprints (and config.resolved.json). */
typedef struct {
    char *config, *out, *cwd;
    int n_tasks;
    int64_t shard_inputs;
} rs_pipeline_tasks;
/* Errors: the file is missing (kind RS_EIO: no task ran there) or malformed. */
int rs_pipeline_tasks_read(const char *dir, rs_pipeline_tasks *t, rs_err *err);
void rs_pipeline_tasks_free(rs_pipeline_tasks *t);

/* SHA-256 of a file as 64 lowercase hex digits into hex[65]; *bytes receives its size. */
int rs_sha256_file(const char *path, char hex[65], int64_t *bytes, rs_err *err);
/* SHA-256 of a buffer as 64 lowercase hex digits. */
void rs_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
