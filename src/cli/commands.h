/* Subcommands of the gale binary: each parses its own options and returns the exit code. */
#ifndef GALE_CLI_COMMANDS_H
#define GALE_CLI_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);

/* Prints "gale: <message>" and the library's last error to stderr; returns 1. */
int cli_fail(const char *what);

#endif
