/* gale — command-line entry point: dispatches to one subcommand. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "gale.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"info", cmd_info, "show a model's architecture, layers, sizes and memory needs"},
    {"generate", cmd_generate, "generate text from a prompt, streamed (default model: SmolLM2-135M)"},
    {"chat", cmd_chat, "interactive multi-turn chat with the model's chat template"},
    {"logits", cmd_logits, "write the fp32 logits of every position of a prompt as .npy"},
    {"tokenize", cmd_tokenize, "encode text to token ids with a model's tokenizer, or decode ids"},
    {"bench", cmd_bench, "throughput of continuous batching; per-kernel GPU benchmarks (bench kernels)"},
};

static void print_usage(FILE *out) {
    fprintf(out,
            "gale %s — LLM inference runtime (Llama, Mistral, Mixtral, Gemma)\n\n"
            "usage: gale <command> [options]\n"
            "       gale --help | --version\n\n"
            "commands:\n",
            GALE_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'gale <command> --help' lists the options of a command.\n");
}

/* The default model: SmolLM2-135M-Instruct in the cache scripts/fetch_model fills. */
char *cli_default_model_path(void) {
    const char *cache = getenv("GALE_CACHE");
    const char *home = getenv("HOME");
    char buf[4096];
    if (cache && *cache) snprintf(buf, sizeof buf, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else snprintf(buf, sizeof buf, "%s/.cache/gale/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
    return strdup(buf);
}

bool cli_parse_int(const char *s, long min, long max, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    *out = (int)v;
    return *s && !*end && !errno && v >= min && v <= max;
}

bool cli_option_int(const char *cmd, const char *flag, const char *value, long min, long max, const char *what,
                    int *out) {
    if (cli_parse_int(value, min, max, out)) return true;
    fprintf(stderr, "gale %s: %s needs %s, got '%s'\n", cmd, flag, what, value);
    return false;
}

bool cli_option_float(const char *cmd, const char *flag, const char *value, float *out) {
    char *end;
    float v = strtof(value, &end);
    /* no errno test: an underflow (ERANGE) still gives the nearest float, 0 or a denormal,
     * which is the value meant; an overflow gives infinity, refused with inf and nan */
    if (end != value && !*end && isfinite(v)) {
        *out = v;
        return true;
    }
    fprintf(stderr, "gale %s: %s needs a number, got '%s'\n", cmd, flag, value);
    return false;
}

char *cli_read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, stdin)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) free(buf);
            buf = grown;
        }
    }
    if (buf) buf[n] = '\0';
    *len = n;
    return buf;
}

void cli_warn_context(int n_ctx, const gale_config *config) {
    if (config->max_position_embeddings > 0 && n_ctx > config->max_position_embeddings)
        fprintf(stderr,
                "gale: warning: --ctx %d is more than the %d positions the model was trained on "
                "(max_position_embeddings); expect worse text past them\n",
                n_ctx, config->max_position_embeddings);
}

bool cli_parse_device(const char *name, gale_device *out) {
    if (strcmp(name, "cpu") == 0) *out = GALE_DEVICE_CPU;
    else if (strcmp(name, "cuda") == 0) *out = GALE_DEVICE_CUDA;
    else return false;
    return true;
}

int cli_fail(const char *what) {
    const char *detail = gale_last_error();
    fprintf(stderr, "gale: %s%s%s\n", what, detail[0] ? ": " : "", detail);
    return 1;
}

static int output_errno; /* why the first failed flush failed, for check_output's message */

bool cli_flush(FILE *out) {
    if (fflush(out) == 0) return true;
    if (!output_errno) output_errno = errno;
    return false;
}

/* Output that could not be written (a full disk, a closed descriptor) fails the command,
 * whatever it returned: a redirected result must not be taken for a whole one. */
static int check_output(int rc) {
    if (cli_flush(stdout) && !ferror(stdout)) return rc;
    fprintf(stderr, "gale: writing the output failed: %s\n",
            output_errno ? strerror(output_errno) : "an earlier write was refused");
    return rc ? rc : 1;
}

static int run(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("gale %s\n", GALE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "gale: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return 2;
}

int main(int argc, char **argv) { return check_output(run(argc, argv)); }
