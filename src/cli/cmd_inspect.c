/* reprshift inspect MODEL_DIR: config summary and tensor table. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/safetensors.h"

int cmd_inspect(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc == 2 ? stdout : stderr;
        fprintf(f, "usage: reprshift inspect MODEL_DIR|FILE.safetensors\n\n"
                   "Print the model config (if MODEL_DIR has a config.json) and a table of every\n"
                   "tensor: name, dtype, shape, shard file. Validates all headers.\n");
        return argc == 2 ? 0 : 2;
    }
    rs_err err = {{0}};
    st_set *s;
    if (st_open(&s, argv[1], &err)) {
        fprintf(stderr, "reprshift inspect: %s\n", err.msg);
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
    st_close(s);
    return 0;
}
