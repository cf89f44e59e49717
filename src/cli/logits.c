/* gale logits -m MODEL (-p PROMPT | --ids 1,2,3) --npy FILE: fp32 logits of every
 * position, [n_tokens, vocab], for tests and benchmarks. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/npy.h"
#include "gale.h"

static void print_logits_help(FILE *out) {
    fprintf(out,
            "usage: gale logits -m MODEL (-p PROMPT | --ids 1,2,3) --npy FILE [--threads N]\n\n"
            "Runs the prompt (tokenized with the model's tokenizer and its BOS) or the given ids\n"
            "through the CPU forward and writes the fp32 logits of every position as a .npy\n"
            "array [n_tokens, vocab].\n\n"
            "options:\n"
            "  -m, --model PATH   model directory or .gguf (required)\n"
            "  -p, --prompt TEXT  text to tokenize\n"
            "      --ids LIST     comma-separated token ids instead of a prompt\n"
            "      --npy FILE     output path (required)\n"
            "  -t, --threads N    worker threads (default: one per core)\n"
            "      --device D     cpu or cuda (default cpu)\n"
            "  -h, --help         this text\n");
}

static int parse_ids(const char *list, gale_tokens *out) {
    for (const char *p = list; *p;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "gale logits: --ids: '%s' is not a list of token ids\n", list);
            return 2;
        }
        if (out->count == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 64;
            int32_t *grown = realloc(out->ids, out->cap * sizeof *grown);
            if (!grown) return cli_fail("out of memory");
            out->ids = grown;
        }
        out->ids[out->count++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            fprintf(stderr, "gale logits: --ids: unexpected '%c'\n", *end);
            return 2;
        }
    }
    return 0;
}

static int run_logits(const char *model_path, const char *prompt, const char *ids_list, const char *npy, int threads,
                      gale_device device) {
    gale_load_params lp = gale_load_params_default();
    lp.quiet = true;
    gale_model *model = NULL;
    gale_tokenizer *tok = NULL;
    gale_session *session = NULL;
    gale_tokens ids = {0};
    float *logits = NULL;
    int rc = 0;
    if (gale_model_load(model_path, &lp, &model) != GALE_OK) return cli_fail("cannot load model");
    if (ids_list) {
        rc = parse_ids(ids_list, &ids);
    } else if (gale_tokenizer_load(model_path, &tok) != GALE_OK ||
               gale_tokenizer_encode(tok, prompt, strlen(prompt), true, &ids) != GALE_OK) {
        rc = cli_fail("cannot tokenize the prompt");
    }
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = threads;
    ep.device = device;
    const gale_config *c = gale_model_config(model);
    if (rc == 0 && gale_session_new(model, &ep, &session) != GALE_OK) rc = cli_fail("cannot start the model");
    if (rc == 0 && !(logits = malloc(ids.count * (size_t)c->vocab * sizeof *logits))) rc = cli_fail("out of memory");
    if (rc == 0 && gale_session_forward(session, ids.ids, ids.count, true, logits) != GALE_OK) rc = cli_fail("forward failed");
    int64_t shape[2] = {(int64_t)ids.count, c->vocab};
    if (rc == 0 && npy_write_f32(npy, logits, shape, 2) != GALE_OK) rc = cli_fail("cannot write the logits");
    free(logits);
    gale_tokens_free(&ids);
    gale_session_free(session);
    gale_tokenizer_free(tok);
    gale_model_free(model);
    return rc;
}

int cmd_logits(int argc, char **argv) {
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'}, {"prompt", required_argument, NULL, 'p'},
        {"ids", required_argument, NULL, 'i'},   {"npy", required_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"device", required_argument, NULL, 'D'},  {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *prompt = NULL, *ids = NULL, *npy = NULL;
    int threads = 0, c;
    gale_device device = GALE_DEVICE_CPU;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:t:h", long_options, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'i': ids = optarg; break;
        case 'o': npy = optarg; break;
        case 't':
            if (!cli_parse_int(optarg, 0, 2147483647L, &threads)) {
                fprintf(stderr, "gale logits: --threads needs a number of threads (0: one per core)\n");
                return 2;
            }
            break;
        case 'D':
            if (!cli_parse_device(optarg, &device)) {
                fprintf(stderr, "gale logits: --device is cpu or cuda\n");
                return 2;
            }
            break;
        case 'h': print_logits_help(stdout); return 0;
        default: print_logits_help(stderr); return 2;
        }
    }
    if (!model || !npy || (!prompt == !ids) || threads < 0) {
        fprintf(stderr, "gale logits: needs -m MODEL, --npy FILE and one of -p PROMPT / --ids LIST\n\n");
        print_logits_help(stderr);
        return 2;
    }
    if (prompt && !*prompt) {
        fprintf(stderr, "gale logits: the prompt is empty\n");
        return 2;
    }
    return run_logits(model, prompt, ids, npy, threads, device);
}
