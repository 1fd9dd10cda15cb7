/* reprshift CLI entry point: dispatch to one subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    {"sae", cmd_sae, "SAE fit quality / spliced CE / train a TopK SAE on stored activations / list SAE names"},
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

/* OpenMP threads must not spin while they wait. libgomp's default is to busy-wait up to
 * GOMP_SPINCOUNT (300000 iterations) after every parallel region; on a loaded machine the
 * spinning thread takes the core that the other thread needs, and `probe train` ran
 * several times slower than with passive waits (docs/pipeline.md, "Threads"). libgomp reads
 * OMP_WAIT_POLICY only once, from the environment it finds when it is loaded, before main() runs
 * (and before any constructor of the executable: setenv from a .preinit_array function is
 * undone by libc's own start-up), so setting it here would be too late. Instead the CLI
 * re-executes itself once with OMP_WAIT_POLICY=PASSIVE when neither it nor GOMP_SPINCOUNT
 * is set; a value the user set always wins. OpenBLAS (the OpenMP build) runs its threads
 * through libgomp too. If the re-exec fails the run simply goes on with the default. */
static void passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1)) return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on; children still inherit the passive policy */
}

int main(int argc, char **argv) {
    passive_openmp(argv);
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
