/* Subcommands of the gale binary: each parses its own options and returns the exit code. */
#ifndef GALE_CLI_COMMANDS_H
#define GALE_CLI_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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
/* value as cli_parse_int reads it; otherwise prints "gale COMMAND: FLAG needs WHAT, got
 * 'VALUE'" and returns false. */
bool cli_option_int(const char *command, const char *flag, const char *value, long min, long max, const char *what,
                    int *out);
/* value as a finite number → *out; otherwise prints "gale COMMAND: FLAG needs a number, got
 * 'VALUE'" and returns false. */
bool cli_option_float(const char *command, const char *flag, const char *value, float *out);
/* All of standard input, NUL-terminated (*len leaves the NUL out), to free; NULL when
 * out of memory. */
char *cli_read_stdin(size_t *len);
/* fflush that remembers why the first failure failed; main reports any failed write of
 * stdout when the command ends (exit 1). False on failure. */
bool cli_flush(FILE *out);
/* Warns on stderr when n_ctx reaches past the positions the model was trained on (as
 * llama.cpp warns n_ctx > n_ctx_train); the run goes on. */
void cli_warn_context(int n_ctx, const gale_config *config);
/* "cpu" or "cuda" → *out; false for anything else. */
bool cli_parse_device(const char *name, gale_device *out);

#endif
