/* reprshift report --results DIR --out report.html: one self-contained HTML report. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/report.h"

static const char *USAGE =
    "usage: reprshift report --results DIR --out FILE.html\n"
    "Writes one self-contained HTML file (inline SVG plots, no scripts) from the JSON results\n"
    "in DIR: shift.json, sae_fit.json, probes.json, transfer.json, run.json (see docs/report.md).\n"
    "Missing files are skipped with a note; a malformed file is an error naming it.\n";

int cmd_report(int argc, char **argv) {
    const char *results = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
        const char **dst = !strcmp(argv[i], "--results") ? &results : !strcmp(argv[i], "--out") ? &out : NULL;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "reprshift report: unknown option or missing value '%s'\n%s", argv[i], USAGE);
            return 2;
        }
        *dst = argv[++i];
    }
    if (!results || !out) {
        fprintf(stderr, "reprshift report: --results and --out are required\n%s", USAGE);
        return 2;
    }
    rs_err err;
    int n_fig = 0;
    if (report_write(results, out, &n_fig, &err)) {
        fprintf(stderr, "reprshift report: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", out);
    fprintf(stderr, "report: %d figures\n", n_fig);
    return 0;
}
