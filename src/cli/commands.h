/* Subcommands of the reprshift CLI: each lives in its own cmd_<name>.c, parses its own
 * arguments (argv[0] is the subcommand name), prints errors as one line on stderr and
 * returns the process exit status (0 ok, 1 error, 2 usage). */
#ifndef RS_CLI_COMMANDS_H
#define RS_CLI_COMMANDS_H

int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_extract(int argc, char **argv);
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

#endif
