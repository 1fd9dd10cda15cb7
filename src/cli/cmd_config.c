/* reprshift config {check,schema}: validate an experiment config and print it resolved
 * (every default filled in, paths resolved), or print the schema table of docs/config.md. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/config.h"

int cmd_config(int argc, char **argv);

int cmd_config(int argc, char **argv) {
    if (cli_wants_help(argc, argv, 1)) {
        printf("usage: reprshift config check CONFIG.json   validate; print the resolved config as JSON\n"
               "       reprshift config schema              print the schema (Markdown table)\n"
               "Unknown keys and wrong types are errors naming the key path, with the nearest valid key.\n");
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "schema")) {
        rs_config_schema_markdown(stdout);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "check")) {
        fprintf(stderr, "usage: reprshift config check CONFIG.json | reprshift config schema\n");
        return 2;
    }
    rs_config *c;
    rs_err err = {0};
    if (rs_config_load(argv[2], &c, &err)) {
        fprintf(stderr, "reprshift config: %s\n", err.msg);
        return 1;
    }
    rs_config_dump(c, stdout);
    char vis[48] = ""; /* only when set, so the line for configs without vision hooks is unchanged */
    if (c->n_vision_hooks) snprintf(vis, sizeof vis, ", %d vision hook(s)", c->n_vision_hooks);
    fprintf(stderr, "%s: ok (%d hook(s), %d layer(s), %d edit(s), %d probe famil%s%s)\n", argv[2], c->n_hooks,
            c->n_layers, c->n_edits, c->probes.n_which, c->probes.n_which == 1 ? "y" : "ies", vis);
    rs_config_free(c);
    return 0;
}
