/* reprshift inspect MODEL_DIR: config summary and tensor table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/fileio.h"
#include "reprshift/hf_cache.h"
#include "model/model_check.h"
#include "reprshift/model_config.h"
#include "reprshift/safetensors.h"

static void print_gemma2(const char *indent, const gemma2_config *c) {
    printf("%svocab %d, hidden %d, layers %d, heads %d (kv %d, head_dim %d), intermediate %d\n", indent,
           c->vocab_size, c->hidden_size, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->intermediate_size);
    printf("%srope_theta %g, rms_norm_eps %g, query_pre_attn_scalar %g, softcaps attn %g / final %g, sliding_window %d\n",
           indent, c->rope_theta, c->rms_norm_eps, c->query_pre_attn_scalar, c->attn_softcap, c->final_softcap,
           c->sliding_window);
    printf("%ssliding layers:", indent);
    for (int l = 0; l < c->n_layers; l++)
        if (c->layer_sliding[l]) printf(" %d", l);
    printf("\n");
}

/* Config summary of a model folder; a folder without config.json only gets the table. */
static int print_config(const char *dir, rs_err *err) {
    char *cp = rs_path_join(dir, "config.json");
    int has = cp && rs_path_exists(cp);
    free(cp);
    if (!has) return 0;
    rs_model_type type;
    if (model_config_type(dir, &type, err)) return -1;
    if (type == RS_MODEL_GEMMA2) {
        gemma2_config c;
        if (gemma2_config_load(dir, &c, err)) return -1;
        printf("model_type gemma2\n");
        print_gemma2("  ", &c);
    } else {
        paligemma_config c;
        if (paligemma_config_load(dir, &c, err)) return -1;
        printf("model_type paligemma (image_token_index %d, projection_dim %d)\n", c.image_token_index, c.projection_dim);
        printf("  vision: hidden %d, layers %d, heads %d, intermediate %d, image %d px / patch %d (%d tokens), ln eps %g\n",
               c.vision.hidden_size, c.vision.n_layers, c.vision.n_heads, c.vision.intermediate_size,
               c.vision.image_size, c.vision.patch_size,
               (c.vision.image_size / c.vision.patch_size) * (c.vision.image_size / c.vision.patch_size),
               c.vision.layer_norm_eps);
        printf("  text:\n");
        print_gemma2("    ", &c.text);
    }
    return 0;
}

static int inspect_main(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc == 2 ? stdout : stderr;
        fprintf(f, "usage: reprshift inspect MODEL_DIR|FILE.safetensors|ORG/NAME [--revision REV]\n\n"
                   "ORG/NAME is a Hub name (google/gemma-2-2b) found in the local Hugging Face cache\n"
                   "(HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub) at REV (default main).\n"
                   "Print the model config (if MODEL_DIR has a config.json) and a table of every\n"
                   "tensor: name, dtype, shape, shard file. Validates all headers, and for a model\n"
                   "folder the whole checkpoint against its config, with the loaders' own checks:\n"
                   "every tensor the model needs present with the shape the config implies and an\n"
                   "F32/BF16/F16 dtype, and no tensor the loader would ignore (an lm_head.weight\n"
                   "equal to the tied embedding is allowed). Exit 1 with one line naming the\n"
                   "file and tensor otherwise.\n");
        return argc == 2 ? 0 : 2;
    }
    rs_err err = {0};
    int has_config = 0;
    model_check_info info;
    if (rs_is_dir(argv[1])) {
        char *cp = rs_path_join(argv[1], "config.json");
        has_config = cp && rs_path_exists(cp);
        free(cp);
    }
    /* Validate everything before printing anything. */
    if (has_config && model_check(argv[1], &info, &err)) {
        fprintf(stderr, "reprshift inspect: %s\n", err.msg);
        return 1;
    }
    st_set *s;
    if (st_open(&s, argv[1], &err)) {
        fprintf(stderr, "reprshift inspect: %s\n", err.msg);
        return 1;
    }
    if (has_config && print_config(argv[1], &err)) {
        fprintf(stderr, "reprshift inspect: %s\n", err.msg);
        st_close(s);
        return 1;
    }
    printf("%d tensors in %d shard(s)\n", s->n_tensors, s->n_shards);
    for (int i = 0; i < s->n_tensors; i++) {
        const st_tensor *t = &s->tensors[i];
        char shape[128];
        size_t k = (size_t)snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->ndim && k < sizeof shape; d++)
            k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        if (k < sizeof shape) snprintf(shape + k, sizeof shape - k, "]");
        const char *file = strrchr(s->paths[t->shard], '/');
        printf("%-60s %-5s %-22s %s\n", t->name, rs_dtype_name(t->dtype), shape, file ? file + 1 : s->paths[t->shard]);
    }
    if (has_config)
        printf("checkpoint matches its config: %d tensors, all read by the %s loader (prefixes %s)%s\n",
               info.n_tensors, info.type == RS_MODEL_GEMMA2 ? "Gemma-2" : "PaliGemma", info.layout,
               info.n_tied_head ? "; its lm_head.weight is a copy of the tied embedding (not read)" : "");
    else
        printf("no config.json: headers validated, tensors not checked against a model\n");
    st_close(s);
    return 0;
}

/* A Hub name (or --revision) is resolved to its cached snapshot folder first. */
int cmd_inspect(int argc, char **argv) {
    const char *revision = NULL;
    if (argc == 4 && !strcmp(argv[2], "--revision")) {
        revision = argv[3];
        argc = 2;
    }
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || (!revision && rs_path_exists(argv[1])))
        return inspect_main(argc, argv);
    rs_err err = {0};
    char *dir = NULL;
    if (rs_hf_resolve_model(argv[1], revision, &dir, &err)) {
        fprintf(stderr, "reprshift inspect: %s\n", err.msg);
        return 1;
    }
    char *av[3] = {argv[0], dir, NULL};
    int rc = inspect_main(2, av);
    free(dir);
    return rc;
}
