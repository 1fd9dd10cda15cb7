/* reprshift run: a whole experiment from a config (src/pipeline/, docs/pipeline.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/pipeline.h"

static const char USAGE[] =
    "usage: reprshift run CONFIG [--out DIR] [--shard-inputs N] [--threads N] [--force] [--quiet]\n"
    "                     [--no-digest-cache]\n"
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
    "\n"
    "environment:\n"
    "  RS_DIGEST_CACHE    the digest cache file (default ${XDG_CACHE_HOME:-~/.cache}/reprshift/\n"
    "                     sha256.tsv; empty or \"off\": none)\n";

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
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    rs_pipeline_opts o = rs_pipeline_defaults();
    int c, no_digest = 0;
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
        case 'h': fputs(USAGE, stdout); return 0;
        default: fputs(USAGE, stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "reprshift run: %s\n%s", optind == argc ? "missing CONFIG" : "more than one CONFIG", USAGE);
        return 2;
    }
    o.config_path = argv[optind];
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
    printf("%s\n", report);
    free(report);
    return 0;
}
