/* reprshift CLI entry point: dispatch to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/version.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

/* One row per subcommand; keep in the order a user meets them. */
static const command COMMANDS[] = {
    {"run", cmd_run, "run a whole experiment from a config: extract -> shift -> probes -> report"},
    {"inspect", cmd_inspect, "show a checkpoint's config and tensor table"},
    {"tokenize", cmd_tokenize, "text -> token ids (one JSON array per line)"},
    {"config", cmd_config, "validate an experiment config and print it resolved"},
    {"dataset", cmd_dataset, "COCO -> balanced manifest; dataset stats; manifest check"},
    {"preprocess", cmd_preprocess, "image -> SigLIP pixels_u8 / pixel_values (for checking)"},
    {"extract", cmd_extract, "run a model and save activations at named hooks"},
    {"shift", cmd_shift, "representation shift between two models' activations (SAE features, CKA, CIs)"},
    {"sae", cmd_sae, "SAE fit quality / spliced CE / train a TopK SAE on stored activations"},
    {"report", cmd_report, "write one self-contained HTML report from a results directory"},
    {"probe", cmd_probe, "train / evaluate / apply linear probes on extracted activations"},
};

static void usage(FILE *f) {
    fprintf(f, "reprshift %s - how a language model's representations shift in its VLM\n\n"
               "usage: reprshift COMMAND [options]   (reprshift COMMAND --help for details)\n\n"
               "commands:\n", RS_VERSION);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("reprshift %s\n", RS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "reprshift: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
