/* Subcommands of the reprshift CLI: each lives in its own cmd_<name>.c, parses its own
 * arguments (argv[0] is the subcommand name), prints errors as one line on stderr and
 * returns the process exit status (0 ok, 1 error, 2 usage). */
#ifndef RS_CLI_COMMANDS_H
#define RS_CLI_COMMANDS_H

#include <string.h>

/* Is "--help" or "-h" among argv[from..argc)? Every command and subcommand answers it by
 * printing its help on stdout and exiting 0 (tests/cli_help.sh checks them all). */
static inline int cli_wants_help(int argc, char **argv, int from) {
    for (int i = from; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* Whole-string integer in [lo, hi] ("12abc", "", overflow and out-of-range refused): 0 and
 * *out set, or −1 after one line "reprshift CMD: OPT must be an integer in [lo, hi] (got
 * "S")" on stderr. */
int cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
/* The same for an int. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out);
/* Whole-string unsigned decimal (seeds): no sign, no overflow; the same message on failure. */
int cli_parse_u64(const char *cmd, const char *opt, const char *s, unsigned long long *out);
/* Whole-string finite number in [lo, hi] ((lo, hi] with lo_open; hi may be INFINITY):
 * 0 and *out set, or −1 after one line "reprshift CMD: OPT must be a number in [lo, hi]
 * (got "S")" on stderr. Every subcommand's numeric options go through these helpers. */
int cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi, int lo_open, double *out);

int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_dataset(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_shift(int argc, char **argv);
int cmd_sae(int argc, char **argv);
/* `sae splice`, dispatched from cmd_sae (argv[0] = "splice"). */
int cmd_sae_splice(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_intervene(int argc, char **argv); /* cmd_intervene.c */
int cmd_lens(int argc, char **argv);      /* cmd_lens.c */

#endif
