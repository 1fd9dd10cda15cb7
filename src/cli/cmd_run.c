/* reprshift run: a whole experiment from a config (src/pipeline/, docs/pipeline.md). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "reprshift/pipeline.h"

static const char USAGE[] =
    "usage: reprshift run CONFIG [--out DIR] [--shard-inputs N] [--threads N] [--force] [--quiet]\n"
    "                     [--no-digest-cache] [--shard I/N]\n"
    "\n"
    "Run a whole experiment from a config file (docs/config.md):\n"
    "  1 dataset  COCO annotations -> balanced manifest with group-aware train/val/test splits\n"
    "             (or dataset.manifest as given)                       -> DIR/dataset/manifest.csv\n"
    "  2 extract  captions through the LLM and through the VLM decoder (the same token ids),\n"
    "             images + prompt through the VLM, every edited image variant through the VLM\n"
    "             -> resumable sharded activation stores DIR/acts/{llm_text,vlm_text,vlm_image,vlm_edits}\n"
    "  3 shift    LLM vs VLM decoder on the same caption tokens, per hook; SAE metrics where a\n"
    "             layer's SAE reads the hook; SAE fit + spliced CE loss recovered per model\n"
    "             -> DIR/results/shift.json, sae_fit.json, *.csv\n"
    "  3c downstream  PaliGemma's per-caption CE with its own image (suffix, <eos> included),\n"
    "             Spearman rho with each caption's shift per hook, and the CE with the caption rows\n"
    "             patched from Gemma-2 (config 'downstream')\n"
    "             -> DIR/results/downstream.json, downstream_items.csv\n"
    "  3d crosscoder  (with a \"crosscoder\" section) one crosscoder per hook on the paired caption\n"
    "             tokens of Gemma-2 and of PaliGemma with its image; shared / LLM-only / VLM-only\n"
    "             latents -> DIR/results/crosscoder.json, crosscoder_latents.csv, crosscoder/\n"
    "             (crosscoder.seeds S: trained S times, S x the cost, the class fractions with a\n"
    "             t-interval over the seeds)\n"
    "  4 probes   concept (group label), modality (captions vs images), cross-modal transfer\n"
    "             (train on captions, test on images and back, with Procrustes/ridge baselines),\n"
    "             attribute probes (original vs edited) -> DIR/results/probes.json, transfer.json;\n"
    "             with vision_hooks also concept (images) and attribute probes at each vision hook\n"
    "  4b steer   (with a \"steer\" section) each probe direction added at its hook on held-out images\n"
    "             over a range of alpha vs random directions of the same norm: change of the target\n"
    "             tokens' log-probability and of caption CE -> DIR/results/steer.json, steer.csv\n"
    "  5 report   -> DIR/report.html (path printed on stdout)\n"
    "\n"
    "Every stage is skipped when complete (its done-marker in DIR/stages/ matches the\n"
    "fingerprint of its inputs) and redone when its inputs changed. Stores resume shard by\n"
    "shard: a run killed at any point continues where it stopped when started again, and ends\n"
    "byte-identical to an uninterrupted run.\n"
    "DIR also holds config.resolved.json, provenance.json (tool version, config sha256, sha256\n"
    "and size of every model/SAE file) and run.log (every stage's messages, timestamped).\n"
    "A file's sha256 is taken, in this order, from an earlier provenance.json of DIR (same size\n"
    "and mtime), from its name in the Hugging Face cache (blobs/<sha256>), from the digest cache\n"
    "shared by runs (same path, size, mtime and inode), or computed and added to that cache.\n"
    "\n"
    "options:\n"
    "  --out DIR          run directory (default: the config's output_dir)\n"
    "  --shard-inputs N   inputs per store shard (default: about models.batch_tokens tokens)\n"
    "  --threads N        OpenMP/BLAS threads (default: OMP_NUM_THREADS if set; 1 for tiny models\n"
    "                     (hidden size < 512), whose matmuls are too small for threads to pay off;\n"
    "                     else all cores). Loops of independent items (permutation refits and\n"
    "                     nulls, image decoding) use N, else OMP_NUM_THREADS, else all cores;\n"
    "                     the results do not depend on it\n"
    "  --force            redo every stage\n"
    "  --quiet            no progress or messages on stderr (run.log is still written)\n"
    "  --no-digest-cache  neither read nor write the digest cache\n"
    "  --shard I/N        task I (0..N-1) of a job array of N tasks sharing DIR (docs/cluster.md):\n"
    "                     the dataset stage, then only the store shards assigned to task I\n"
    "                     (deterministic, balanced by tokens); then `reprshift merge DIR`.\n"
    "                     Default under Slurm: I = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN,\n"
    "                     N = SLURM_ARRAY_TASK_COUNT (when SLURM_ARRAY_TASK_ID is set)\n"
    "\n"
    "environment:\n"
    "  RS_DIGEST_CACHE    the digest cache file (default ${XDG_CACHE_HOME:-~/.cache}/reprshift/\n"
    "                     sha256.tsv; empty or \"off\": none)\n";

/* "I/N" → task I of N (0 <= I < N <= 99999). */
static int parse_shard(const char *what, const char *v, int *task, int *n) {
    char *e1 = NULL, *e2 = NULL;
    long i = strtol(v, &e1, 10), m = -1;
    if (e1 != v && *e1 == '/') m = strtol(e1 + 1, &e2, 10);
    if (e1 == v || *e1 != '/' || !e2 || e2 == e1 + 1 || *e2 || m < 1 || m > 99999 || i < 0 || i >= m) {
        fprintf(stderr, "reprshift run: %s: '%s' is not I/N with 0 <= I < N <= 99999 (task I of N)\n", what, v);
        return -1;
    }
    *task = (int)i;
    *n = (int)m;
    return 0;
}

/* The Slurm job array's defaults: task SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of
 * SLURM_ARRAY_TASK_COUNT. 1: set, 0: not under an array, -1: unusable (message printed). */
static int slurm_shard(int *task, int *n) {
    const char *id = getenv("SLURM_ARRAY_TASK_ID"), *cnt = getenv("SLURM_ARRAY_TASK_COUNT"),
               *mn = getenv("SLURM_ARRAY_TASK_MIN");
    if (!id || !*id) return 0;
    char *e;
    long i = strtol(id, &e, 10), lo = mn && *mn ? strtol(mn, NULL, 10) : 0, m = cnt && *cnt ? strtol(cnt, NULL, 10) : 0;
    if (*e || m < 1 || i - lo < 0 || i - lo >= m) {
        fprintf(stderr, "reprshift run: the Slurm array (SLURM_ARRAY_TASK_ID=%s, SLURM_ARRAY_TASK_MIN=%s, "
                        "SLURM_ARRAY_TASK_COUNT=%s) is not a contiguous range MIN..MIN+COUNT-1: submit "
                        "--array=0-(N-1), or give --shard I/N\n", id, mn ? mn : "unset", cnt ? cnt : "unset");
        return -1;
    }
    *task = (int)(i - lo);
    *n = (int)m;
    return 1;
}

/* The digest cache file: $RS_DIGEST_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/reprshift/sha256.tsv
 * (NULL: none). *buf receives a new string to free. */
static const char *digest_cache_path(char **buf) {
    *buf = NULL;
    const char *e = getenv("RS_DIGEST_CACHE");
    if (e) return (!*e || !strcmp(e, "off")) ? NULL : e;
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (x && *x && x[0] == '/') {
        if (asprintf(buf, "%s/reprshift/sha256.tsv", x) < 0) *buf = NULL;
    } else if (h && *h) {
        if (asprintf(buf, "%s/.cache/reprshift/sha256.tsv", h) < 0) *buf = NULL;
    }
    return *buf;
}

int cmd_run(int argc, char **argv) {
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"shard-inputs", required_argument, 0, 's'},
                                         {"force", no_argument, 0, 'f'},
                                         {"threads", required_argument, 0, 't'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"no-digest-cache", no_argument, 0, 'D'},
                                         {"shard", required_argument, 0, 'S'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    rs_pipeline_opts o = rs_pipeline_defaults();
    int c, no_digest = 0, have_shard = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o.output_dir = optarg; break;
        case 's': {
            long v;
            if (cli_parse_long("run", "--shard-inputs", optarg, 1, 1000000, &v)) return 2;
            o.shard_inputs = v;
            break;
        }
        case 'f': o.force = 1; break;
        case 't':
            if (cli_parse_int("run", "--threads", optarg, 1, 4096, &o.threads)) return 2;
            break;
        case 'q': o.quiet = 1; break;
        case 'D': no_digest = 1; break;
        case 'S':
            if (parse_shard("--shard", optarg, &o.task, &o.n_tasks)) return 2;
            have_shard = 1;
            break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: fputs(USAGE, stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "reprshift run: %s\n%s", optind == argc ? "missing CONFIG" : "more than one CONFIG", USAGE);
        return 2;
    }
    o.config_path = argv[optind];
    if (!have_shard && slurm_shard(&o.task, &o.n_tasks) < 0) return 2;
    if (o.n_tasks > 0 && o.force) {
        fprintf(stderr, "reprshift run: --force with --shard I/N (or in a Slurm array): redo a run without --shard, "
                        "or remove the run folder\n");
        return 2;
    }
    char *dc_buf = NULL;
    o.digest_cache = no_digest ? NULL : digest_cache_path(&dc_buf);
    rs_err err = {0};
    char *report = NULL;
    int rc = rs_pipeline_run(&o, &report, &err);
    free(dc_buf);
    if (rc) {
        fprintf(stderr, "reprshift run: %s\n", err.msg);
        return 1;
    }
    if (report) printf("%s\n", report); /* a task of a job array writes no report */
    free(report);
    return 0;
}

static const char MERGE_USAGE[] =
    "usage: reprshift merge DIR [--config CONFIG] [--shard-inputs N] [--threads N] [--quiet]\n"
    "                       [--no-digest-cache]\n"
    "\n"
    "Finish a run whose extraction ran as a job array (`reprshift run CONFIG --out DIR --shard I/N`\n"
    "in every task; docs/cluster.md): check that the tasks wrote every shard of every store, for\n"
    "the same config fingerprint (the error names each missing shard and the task that owns it,\n"
    "and any part written for other inputs), write each store's index.json (no activation data is\n"
    "copied), then run the analysis stages (shift, conditions, downstream, probes, steer, report)\n"
    "as `reprshift run` does. The results are byte-identical to a single-process run of the same\n"
    "config. Prints the report's path.\n"
    "\n"
    "options:\n"
    "  --config CONFIG    the config (default: the one the tasks recorded in DIR/stages/tasks.json;\n"
    "                     the merge then runs in the folder the tasks ran in, with the config and\n"
    "                     DIR spelled as they were: the paths take part in the fingerprints)\n"
    "  --shard-inputs N   as given to the tasks (default: the tasks' own, from stages/tasks.json)\n"
    "  --threads N, --quiet, --no-digest-cache   as for `reprshift run`\n";

int cmd_merge(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"shard-inputs", required_argument, 0, 's'},
                                         {"threads", required_argument, 0, 't'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"no-digest-cache", no_argument, 0, 'D'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    rs_pipeline_opts o = rs_pipeline_defaults();
    int c, no_digest = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config_path = optarg; break;
        case 's': {
            long v;
            if (cli_parse_long("merge", "--shard-inputs", optarg, 1, 1000000, &v)) return 2;
            o.shard_inputs = v;
            break;
        }
        case 't':
            if (cli_parse_int("merge", "--threads", optarg, 1, 4096, &o.threads)) return 2;
            break;
        case 'q': o.quiet = 1; break;
        case 'D': no_digest = 1; break;
        case 'h': fputs(MERGE_USAGE, stdout); return 0;
        default: fputs(MERGE_USAGE, stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "reprshift merge: %s\n%s", optind == argc ? "missing DIR" : "more than one DIR", MERGE_USAGE);
        return 2;
    }
    o.output_dir = argv[optind];
    o.merge = 1;
    rs_err err = {0};
    rs_pipeline_tasks t = {0};
    if (!o.config_path) {
        /* the config and run folder as the tasks gave them, from the folder they were given in:
           the paths take part in the fingerprints */
        if (rs_pipeline_tasks_read(o.output_dir, &t, &err)) {
            fprintf(stderr, "reprshift merge: %s\n", err.msg);
            return 1;
        }
        char *here = realpath(o.output_dir, NULL), *cwd = getcwd(NULL, 0);
        int moved = cwd && strcmp(cwd, t.cwd);
        if (moved && chdir(t.cwd)) {
            fprintf(stderr, "reprshift merge: cannot enter %s, the folder the tasks ran in (stages/tasks.json): %s; "
                            "give --config\n", t.cwd, strerror(errno));
            free(here), free(cwd), rs_pipeline_tasks_free(&t);
            return 1;
        }
        char *there = realpath(t.out, NULL);
        if (!here || !there || strcmp(here, there)) {
            fprintf(stderr, "reprshift merge: %s: its stages/tasks.json names another run folder (%s in %s)\n",
                    o.output_dir, t.out, t.cwd);
            free(here), free(there), free(cwd), rs_pipeline_tasks_free(&t);
            return 1;
        }
        free(here), free(there), free(cwd);
        o.config_path = t.config;
        o.output_dir = t.out;
    }
    char *dc_buf = NULL;
    o.digest_cache = no_digest ? NULL : digest_cache_path(&dc_buf);
    char *report = NULL;
    int rc = rs_pipeline_run(&o, &report, &err);
    free(dc_buf);
    rs_pipeline_tasks_free(&t);
    if (rc) {
        fprintf(stderr, "reprshift merge: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", report);
    free(report);
    return 0;
}
