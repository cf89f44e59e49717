/* Subcommands of the gale binary: each parses its own options and returns the exit code. */
#ifndef GALE_CLI_COMMANDS_H
#define GALE_CLI_COMMANDS_H

#include <stdbool.h>

#include "gale.h"

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* gale bench kernels FAMILY … (bench_kernels.c) */
int cli_bench_kernels(int argc, char **argv);

/* Prints "gale: <message>" and the library's last error to stderr; returns 1. */
int cli_fail(const char *what);
/* The default model (SmolLM2-135M-Instruct in ${GALE_CACHE:-~/.cache/gale}/models, filled
 * by scripts/fetch_model), as a string to free. */
char *cli_default_model_path(void);
/* A whole decimal number in [min, max] → *out; false for anything else. */
bool cli_parse_int(const char *s, long min, long max, int *out);
/* "cpu" or "cuda" → *out; false for anything else. */
bool cli_parse_device(const char *name, gale_device *out);

#endif
