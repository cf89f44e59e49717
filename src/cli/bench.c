/* gale bench throughput: offline throughput of continuous batching, as vLLM's
 * benchmark_throughput measures it — N requests of I random prompt tokens each asking
 * for exactly O new tokens (EOS ignored), all submitted at once; requests/s, total and
 * output tokens/s over the wall time from the first step to the last. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "core/log.h"
#include "gale.h"

typedef struct throughput_options {
    const char *model_path;
    int num_prompts, input_len, output_len, threads, n_ctx, seed;
    gale_engine_params engine;
    bool quiet, dummy_weights;
} throughput_options;

static void print_help(FILE *out) {
    fprintf(out,
            "usage: gale bench throughput [-m MODEL] [options]\n\n"
            "Offline throughput of continuous batching (like vLLM's benchmark_throughput):\n"
            "NUM_PROMPTS requests of INPUT_LEN random token ids, each generating exactly\n"
            "OUTPUT_LEN tokens (EOS ignored), submitted together. Prints requests/s, total\n"
            "and output tokens/s, then the same as one JSON line.\n\n"
            "options:\n"
            "  -m, --model PATH              model directory or .gguf (default: SmolLM2-135M-Instruct)\n"
            "      --num-prompts N           requests (default 64)\n"
            "      --input-len I             prompt tokens per request (default 128)\n"
            "      --output-len O            new tokens per request (default 128)\n"
            "      --max-num-seqs S          sequences running at once (default 256)\n"
            "      --max-num-batched-tokens T  tokens per step (default 2048)\n"
            "      --kv-blocks N             KV cache blocks of 16 tokens (default: from memory)\n"
            "      --seed S                  prompt generator seed (default 0)\n"
            "  -t, --threads N               worker threads (default: one per core)\n"
            "      --ctx N                   context length (default: min(model's, 4096))\n"
            "      --device cpu|cuda         where the model runs (default cpu)\n"
            "      --enforce-eager           CUDA: decode steps op by op, not as CUDA graphs\n"
            "      --dummy-weights           MODEL is only a config (directory with config.json,\n"
            "                                or a GGUF's metadata): weights are seeded random bf16\n"
            "  -q, --quiet                   no loading bar\n"
            "  -h, --help                    this text\n");
}

/* A count flag's value (optarg) in [min, 1e8]; refused with the flag and value named. */
static bool parse_count(const char *flag, int min, int *out) {
    return cli_option_int("bench throughput", flag, optarg, min, 100000000L,
                          min > 0 ? "a positive integer (at most 100000000)" : "an integer from 0 to 100000000", out);
}

/* One option (getopt's c, value in optarg) into o; false, with the flag named, when refused. */
static bool set_option(int c, throughput_options *o) {
    switch (c) {
    case 'm': o->model_path = optarg; return true;
    case 'N': return parse_count("--num-prompts", 1, &o->num_prompts);
    case 'I': return parse_count("--input-len", 1, &o->input_len);
    case 'O': return parse_count("--output-len", 1, &o->output_len);
    case 'S': return parse_count("--max-num-seqs", 1, &o->engine.max_num_seqs);
    case 'B': return parse_count("--max-num-batched-tokens", 1, &o->engine.max_num_batched_tokens);
    case 'K': return parse_count("--kv-blocks", 1, &o->engine.kv_blocks);
    case 'r': return parse_count("--seed", 0, &o->seed);
    case 't': return parse_count("--threads", 0, &o->engine.n_threads);
    case 'x': return parse_count("--ctx", 1, &o->engine.n_ctx);
    case 'q': o->quiet = true; return true;
    case 'E': o->engine.enforce_eager = true; return true;
    case 'W': o->dummy_weights = true; return true;
    case 'D':
        if (cli_parse_device(optarg, &o->engine.device)) return true;
        fprintf(stderr, "gale bench throughput: --device is cpu or cuda, got '%s'\n", optarg);
        return false;
    default: /* getopt has named the unknown option or the missing value */
        fprintf(stderr, "gale bench throughput: see --help\n");
        return false;
    }
}

/* 0: run; 1: done (help); 2: usage error */
static int parse_options(int argc, char **argv, throughput_options *o) {
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},        {"num-prompts", required_argument, NULL, 'N'},
        {"input-len", required_argument, NULL, 'I'},    {"output-len", required_argument, NULL, 'O'},
        {"max-num-seqs", required_argument, NULL, 'S'}, {"max-num-batched-tokens", required_argument, NULL, 'B'},
        {"kv-blocks", required_argument, NULL, 'K'},    {"seed", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'},      {"ctx", required_argument, NULL, 'x'},
        {"quiet", no_argument, NULL, 'q'},              {"help", no_argument, NULL, 'h'},
        {"device", required_argument, NULL, 'D'},       {"dummy-weights", no_argument, NULL, 'W'},
        {"enforce-eager", no_argument, NULL, 'E'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->num_prompts = 64, o->input_len = 128, o->output_len = 128;
    o->engine = gale_engine_params_default();
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:t:qh", long_options, NULL)) != -1) {
        if (c == 'h') {
            print_help(stdout);
            return 1;
        }
        if (!set_option(c, o)) return 2;
    }
    if (optind != argc) {
        fprintf(stderr, "gale bench throughput: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Prompts of uniform random ids (vLLM's random dataset), from a seeded generator. */
static int32_t *random_prompts(const throughput_options *o, int vocab) {
    size_t n = (size_t)o->num_prompts * (size_t)o->input_len;
    int32_t *ids = malloc(n * sizeof *ids);
    uint64_t state = 0x853C49E6748FEA9Bull + (uint64_t)o->seed;
    for (size_t i = 0; ids && i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((state >> 33) % (uint64_t)vocab);
    }
    return ids;
}

static int run_throughput(const throughput_options *o, gale_engine *e, int vocab) {
    int32_t *prompts = random_prompts(o, vocab);
    if (!prompts) return cli_fail("out of memory");
    int rc = 0;
    for (int r = 0; r < o->num_prompts && rc == 0; r++) {
        gale_request q = gale_request_default();
        q.ids = prompts + (size_t)r * o->input_len;
        q.n_ids = (size_t)o->input_len;
        q.max_new_tokens = o->output_len;
        q.ignore_eos = true;
        if (gale_engine_submit(e, &q, NULL) != GALE_OK) rc = cli_fail("request refused");
    }
    free(prompts);
    if (rc) return rc;
    uint64_t generated = 0;
    double t0 = now();
    while (gale_engine_busy(e)) {
        const gale_output *out;
        size_t n;
        if (gale_engine_step(e, &out, &n) != GALE_OK) return cli_fail("step failed");
        for (size_t k = 0; k < n; k++) generated += out[k].token >= 0;
    }
    double elapsed = now() - t0;
    gale_engine_stats st = gale_engine_get_stats(e);
    double total_tokens = (double)st.prompt_tokens + (double)generated;
    printf("Throughput: %.2f requests/s, %.2f total tokens/s, %.2f output tokens/s\n", o->num_prompts / elapsed,
           total_tokens / elapsed, (double)generated / elapsed);
    printf("(%d requests, %d in / %d out tokens each, max_num_seqs %d, %.2f s, %llu steps, %llu preemptions)\n",
           o->num_prompts, o->input_len, o->output_len, o->engine.max_num_seqs, elapsed, (unsigned long long)st.steps,
           (unsigned long long)st.preemptions);
    cJSON *json = cJSON_CreateObject();
    cJSON_AddNumberToObject(json, "elapsed_time", elapsed);
    cJSON_AddNumberToObject(json, "num_requests", o->num_prompts);
    cJSON_AddNumberToObject(json, "total_num_tokens", total_tokens);
    cJSON_AddNumberToObject(json, "requests_per_second", o->num_prompts / elapsed);
    cJSON_AddNumberToObject(json, "tokens_per_second", total_tokens / elapsed);
    cJSON_AddNumberToObject(json, "output_tokens_per_second", (double)generated / elapsed);
    cJSON_AddNumberToObject(json, "input_len", o->input_len);
    cJSON_AddNumberToObject(json, "output_len", o->output_len);
    cJSON_AddNumberToObject(json, "max_num_seqs", o->engine.max_num_seqs);
    cJSON_AddNumberToObject(json, "steps", (double)st.steps);
    cJSON_AddNumberToObject(json, "preemptions", (double)st.preemptions);
    char *line = cJSON_PrintUnformatted(json);
    if (line) puts(line);
    free(line);
    cJSON_Delete(json);
    return 0;
}

static int bench_throughput(int argc, char **argv) {
    throughput_options o;
    int parsed = parse_options(argc, argv, &o);
    if (parsed) return parsed == 1 ? 0 : 2;
    if (o.quiet) log_set_level(LOG_ERROR);
    char *fallback = o.model_path ? NULL : cli_default_model_path();
    const char *path = o.model_path ? o.model_path : fallback;
    gale_load_params lp = gale_load_params_default();
    lp.quiet = o.quiet;
    lp.dummy_weights = o.dummy_weights;
    gale_model *model = NULL;
    gale_engine *e = NULL;
    int rc = 0;
    if (gale_model_load(path, &lp, &model) != GALE_OK) rc = cli_fail("cannot load model");
    if (rc == 0) cli_warn_context(o.engine.n_ctx, gale_model_config(model));
    if (rc == 0 && gale_engine_new(model, NULL, &o.engine, &e) != GALE_OK) rc = cli_fail("cannot start the engine");
    if (rc == 0) rc = run_throughput(&o, e, gale_model_config(model)->vocab);
    gale_engine_free(e);
    gale_model_free(model);
    free(fallback);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "throughput") == 0) return bench_throughput(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "kernels") == 0) return cli_bench_kernels(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        print_help(stdout);
        return 0;
    }
    fprintf(stderr, "usage: gale bench throughput|kernels [options] (see gale bench throughput --help,\n"
                    "       gale bench kernels --help)\n");
    return 2;
}
