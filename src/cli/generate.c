/* gale generate / gale chat: text generation on the CPU engine, streamed. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "engine/stop_text.h"
#include "gale.h"

enum { MAX_STOP_STRINGS = 8, MAX_STOP_IDS = 16 };

typedef struct generate_options {
    const char *model_path;
    const char *prompt;
    const char *system;
    const char *chat_template;
    const char *stop_strings[MAX_STOP_STRINGS];
    int n_stop_strings;
    int max_new_tokens, threads, n_ctx;
    gale_device device;
    bool chat, output_ids, quiet, enforce_eager;
    gale_sampling_params sampling;
} generate_options;

/* The loaded pieces every run needs. */
typedef struct runner {
    gale_model *model;
    gale_tokenizer *tok;
    gale_session *session;
    gale_sampler *sampler;
    int32_t stop_ids[MAX_STOP_IDS];
    size_t n_stop_ids;
    gale_tokens in_session; /* the ids whose keys and values the session holds */
} runner;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_generate_help(FILE *out, const char *command) {
    fprintf(out,
            "usage: gale %s [-m MODEL] %s[options]\n\n"
            "%s\n\n"
            "options:\n"
            "  -m, --model PATH        model directory or .gguf (default: SmolLM2-135M-Instruct,\n"
            "                          fetched by scripts/fetch_model)\n"
            "%s"
            "  -n, --max-tokens N      new tokens at most (default 256)\n"
            "      --temp T            temperature; 0 is greedy (default 0.8)\n"
            "      --top-k K           0: off (default 40)\n"
            "      --top-p P           in (0, 1] (default 0.95)\n"
            "      --min-p P           in [0, 1] (default 0.05)\n"
            "      --repeat-penalty R  1: off (default 1)\n"
            "      --presence-penalty P, --frequency-penalty F   0: off\n"
            "      --seed S            same seed, same text (default 0)\n"
            "      --stop TEXT         stop when the text appears (repeatable, up to 8)\n"
            "      --system TEXT       system message\n"
            "      --chat-template NAME  chatml, llama2, llama3, mistral, gemma, gemma2\n"
            "  -t, --threads N         worker threads (default: one per core)\n"
            "      --ctx N             context length (default: min(model's, 4096))\n"
            "      --device cpu|cuda   where the model runs (default cpu)\n"
            "      --enforce-eager     CUDA: run decode steps op by op, not as CUDA graphs\n"
            "  -q, --quiet             no loading bar or statistics\n"
            "  -h, --help              this text\n",
            command, strcmp(command, "chat") == 0 ? "" : "-p PROMPT ",
            strcmp(command, "chat") == 0
                ? "Interactive chat with the model's chat template: type a message, get the\n"
                  "streamed answer; an empty line or end of input ends the chat."
                : "Generates text from PROMPT and streams it to stdout. At the end, stderr gets\n"
                  "the prompt and generated token counts with prefill and decode tokens/s.",
            strcmp(command, "chat") == 0 ? ""
                                         : "  -p, --prompt TEXT       the prompt ('-' reads standard input)\n"
                                           "      --chat              wrap the prompt as a user turn of the chat template\n"
                                           "      --output-ids        also print the generated token ids\n");
}

static bool parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    *out = strtof(s, &end);
    return *s && !*end && !errno;
}

static bool parse_int(const char *s, int *out) { return cli_parse_int(s, -2147483647L, 2147483647L, out); }

static int parse_generate_options(int argc, char **argv, bool chat_command, generate_options *o, bool *done) {
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},       {"prompt", required_argument, NULL, 'p'},
        {"max-tokens", required_argument, NULL, 'n'},  {"temp", required_argument, NULL, 'T'},
        {"top-k", required_argument, NULL, 'K'},       {"top-p", required_argument, NULL, 'P'},
        {"min-p", required_argument, NULL, 'M'},       {"repeat-penalty", required_argument, NULL, 'R'},
        {"presence-penalty", required_argument, NULL, 'r'}, {"frequency-penalty", required_argument, NULL, 'f'},
        {"seed", required_argument, NULL, 'S'},        {"stop", required_argument, NULL, 's'},
        {"system", required_argument, NULL, 'y'},      {"chat-template", required_argument, NULL, 'c'},
        {"chat", no_argument, NULL, 'C'},              {"output-ids", no_argument, NULL, 'O'},
        {"threads", required_argument, NULL, 't'},     {"ctx", required_argument, NULL, 'x'},
        {"quiet", no_argument, NULL, 'q'},             {"help", no_argument, NULL, 'h'},
        {"device", required_argument, NULL, 'D'},     {"enforce-eager", no_argument, NULL, 'E'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 256;
    o->sampling = gale_sampling_params_default();
    o->chat = chat_command;
    *done = false;
    optind = 1;
    int c, seed;
    bool ok = true;
    while (ok && (c = getopt_long(argc, argv, "m:p:n:t:qh", long_options, NULL)) != -1) {
        switch (c) {
        case 'm': o->model_path = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'n': ok = parse_int(optarg, &o->max_new_tokens) && o->max_new_tokens > 0; break;
        case 'T': ok = parse_float(optarg, &o->sampling.temperature); break;
        case 'K': ok = parse_int(optarg, &o->sampling.top_k); break;
        case 'P': ok = parse_float(optarg, &o->sampling.top_p); break;
        case 'M': ok = parse_float(optarg, &o->sampling.min_p); break;
        case 'R': ok = parse_float(optarg, &o->sampling.repetition_penalty); break;
        case 'r': ok = parse_float(optarg, &o->sampling.presence_penalty); break;
        case 'f': ok = parse_float(optarg, &o->sampling.frequency_penalty); break;
        case 'S': ok = parse_int(optarg, &seed) && seed >= 0, o->sampling.seed = (uint64_t)seed; break;
        case 's': ok = o->n_stop_strings < MAX_STOP_STRINGS && *optarg; o->stop_strings[o->n_stop_strings++] = optarg; break;
        case 'y': o->system = optarg; break;
        case 'c': o->chat_template = optarg; break;
        case 'C': o->chat = true; break;
        case 'O': o->output_ids = true; break;
        case 't': ok = parse_int(optarg, &o->threads) && o->threads >= 0; break;
        case 'x': ok = parse_int(optarg, &o->n_ctx) && o->n_ctx > 0; break;
        case 'q': o->quiet = true; break;
        case 'D': ok = cli_parse_device(optarg, &o->device); break;
        case 'E': o->enforce_eager = true; break;
        case 'h':
            print_generate_help(stdout, chat_command ? "chat" : "generate");
            *done = true;
            return 0;
        default: ok = false; break;
        }
    }
    if (!ok) {
        fprintf(stderr, "gale %s: bad value for an option (see --help)\n", chat_command ? "chat" : "generate");
        return 2;
    }
    if (!chat_command && (!o->prompt || optind != argc)) {
        fprintf(stderr, "gale generate: needs -p PROMPT\n\n");
        print_generate_help(stderr, "generate");
        return 2;
    }
    return 0;
}

static void runner_free(runner *r) {
    gale_tokens_free(&r->in_session);
    gale_sampler_free(r->sampler);
    gale_session_free(r->session);
    gale_tokenizer_free(r->tok);
    gale_model_free(r->model);
}

static int runner_open(runner *r, const generate_options *o) {
    memset(r, 0, sizeof *r);
    char *fallback = o->model_path ? NULL : cli_default_model_path();
    const char *path = o->model_path ? o->model_path : fallback;
    if (!o->model_path && !path_exists(path)) {
        fprintf(stderr, "gale: the default model is not in the cache (%s); run scripts/fetch_model, or pass -m MODEL\n",
                path);
        free(fallback);
        return 1;
    }
    gale_load_params lp = gale_load_params_default();
    lp.quiet = o->quiet;
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = o->threads;
    ep.n_ctx = o->n_ctx;
    ep.device = o->device;
    ep.enforce_eager = o->enforce_eager;
    int rc = 0;
    if (gale_model_load(path, &lp, &r->model) != GALE_OK) rc = cli_fail("cannot load model");
    else if (gale_tokenizer_load(path, &r->tok) != GALE_OK) rc = cli_fail("cannot load the tokenizer");
    else if (gale_session_new(r->model, &ep, &r->session) != GALE_OK) rc = cli_fail("cannot start the model");
    else if (gale_sampler_new(&o->sampling, gale_model_config(r->model)->vocab, &r->sampler) != GALE_OK)
        rc = cli_fail("bad sampling parameters");
    free(fallback);
    if (rc) return rc;
    /* stop ids: the config's eos ids, then the tokenizer's eos and the template's end of turn */
    const gale_config *c = gale_model_config(r->model);
    for (int i = 0; i < c->n_eos && r->n_stop_ids < MAX_STOP_IDS; i++) r->stop_ids[r->n_stop_ids++] = c->eos_ids[i];
    int32_t more[4];
    size_t n_more = gale_chat_stop_ids(r->tok, o->chat_template, more, 4);
    for (size_t i = 0; i < n_more && r->n_stop_ids < MAX_STOP_IDS; i++) r->stop_ids[r->n_stop_ids++] = more[i];
    return 0;
}

static bool is_stop_id(const runner *r, int32_t id) {
    for (size_t i = 0; i < r->n_stop_ids; i++)
        if (r->stop_ids[i] == id) return true;
    return false;
}

/* Streamed text through the stop strings, to the terminal (and the chat's capture). */
typedef struct text_sink {
    stop_text stop;
    FILE *out, *capture; /* capture: NULL, or where chat keeps the answer */
} text_sink;

static void sink_emit(text_sink *sink) {
    size_t len;
    const char *text = stop_text_take(&sink->stop, &len);
    fwrite(text, 1, len, sink->out);
    if (sink->capture) fwrite(text, 1, len, sink->capture);
    fflush(sink->out);
}

/* Keeps what the session holds of prompt's beginning (at least one prompt token is left
 * to run, for its logits) and returns how many tokens that is. */
static size_t reuse_prefix(runner *r, const gale_tokens *prompt) {
    size_t same = 0;
    while (same < r->in_session.count && same + 1 < prompt->count && r->in_session.ids[same] == prompt->ids[same]) same++;
    if (!gale_session_truncate(r->session, (int)same)) {
        gale_session_reset(r->session);
        same = 0;
    }
    return same;
}

/* Records the ids the session now holds: the first `position` of history. */
static void remember_session(runner *r, const int32_t *history) {
    size_t n = (size_t)gale_session_position(r->session);
    gale_tokens *t = &r->in_session;
    if (n > t->cap) {
        int32_t *grown = realloc(t->ids, n * sizeof *grown);
        if (!grown) {
            t->count = 0;
            gale_session_reset(r->session);
            return;
        }
        t->ids = grown;
        t->cap = n;
    }
    memcpy(t->ids, history, n * sizeof *history);
    t->count = n;
}

/* Prefills ids (reusing what the session holds of them) and generates up to
 * max_new_tokens, streaming the text to out. */
static int generate_from(runner *r, const generate_options *o, const gale_tokens *prompt, FILE *out, FILE *capture) {
    if ((int)prompt->count + 1 > gale_session_context(r->session)) {
        fprintf(stderr, "gale: the prompt has %zu tokens, more than the context of %d (raise --ctx)\n", prompt->count,
                gale_session_context(r->session));
        return 1;
    }
    int32_t *history = malloc((prompt->count + (size_t)o->max_new_tokens + 1) * sizeof *history);
    gale_detokenizer *d = NULL;
    if (!history || gale_detokenizer_new(r->tok, true, &d) != GALE_OK) {
        free(history);
        return cli_fail("out of memory");
    }
    memcpy(history, prompt->ids, prompt->count * sizeof *history);
    size_t n_history = prompt->count, generated = 0;
    text_sink sink = {.out = out, .capture = capture};
    stop_text_init(&sink.stop, o->stop_strings, (size_t)o->n_stop_strings);
    int rc = 0;
    double t0 = now();
    size_t cached = reuse_prefix(r, prompt);
    /* each forward also draws the next token: on the GPU only its id comes back */
    int32_t id;
    if (gale_session_forward_sample(r->session, prompt->ids + cached, prompt->count - cached, r->sampler, history,
                                    n_history, &id) != GALE_OK)
        rc = cli_fail("forward failed");
    double t_prefill = now() - t0, t1 = now();
    while (rc == 0 && generated < (size_t)o->max_new_tokens && !sink.stop.stopped) {
        if (is_stop_id(r, id)) break;
        history[n_history++] = id;
        generated++;
        const char *text;
        size_t len;
        gale_detokenizer_push(d, id, &text, &len);
        if (stop_text_push(&sink.stop, text, len) != GALE_OK) rc = cli_fail("out of memory");
        sink_emit(&sink);
        if (generated == (size_t)o->max_new_tokens || sink.stop.stopped) break;
        if (gale_session_position(r->session) + 1 > gale_session_context(r->session)) {
            fprintf(stderr, "\ngale: the context of %d tokens is full\n", gale_session_context(r->session));
            break;
        }
        const int32_t last = id;
        if (gale_session_forward_sample(r->session, &last, 1, r->sampler, history, n_history, &id) != GALE_OK)
            rc = cli_fail("forward failed");
    }
    const char *tail;
    size_t tail_len;
    gale_detokenizer_flush(d, &tail, &tail_len);
    if (stop_text_push(&sink.stop, tail, tail_len) != GALE_OK || stop_text_finish(&sink.stop) != GALE_OK)
        rc = cli_fail("out of memory");
    sink_emit(&sink);
    fputc('\n', out);
    fflush(out);
    double t_decode = now() - t1;
    if (o->output_ids) {
        fprintf(out, "ids:");
        for (size_t i = prompt->count; i < n_history; i++) fprintf(out, " %d", history[i]);
        fputc('\n', out);
    }
    remember_session(r, history);
    if (!o->quiet)
        fprintf(stderr, "gale: prompt %zu tokens (%zu reused), generated %zu tokens, prefill %.1f tok/s, decode %.1f tok/s\n",
                prompt->count, cached, generated, (double)(prompt->count - cached) / (t_prefill > 0 ? t_prefill : 1e-9),
                generated > 1 ? (double)(generated - 1) / (t_decode > 0 ? t_decode : 1e-9) : 0.0);
    fflush(out);
    stop_text_free(&sink.stop);
    gale_detokenizer_free(d);
    free(history);
    return rc;
}

static int encode_messages(runner *r, const generate_options *o, const gale_chat_message *msgs, size_t n, gale_tokens *ids) {
    char *prompt;
    if (gale_chat_render(r->tok, o->chat_template, msgs, n, true, &prompt) != GALE_OK)
        return cli_fail("cannot render the chat template");
    /* the template wrote BOS where it wants one */
    gale_status status = gale_tokenizer_encode(r->tok, prompt, strlen(prompt), false, ids);
    free(prompt);
    return status == GALE_OK ? 0 : cli_fail("cannot tokenize the prompt");
}

int cmd_generate(int argc, char **argv) {
    generate_options o;
    bool done;
    int rc = parse_generate_options(argc, argv, false, &o, &done);
    if (rc || done) return rc;
    if (o.quiet) log_set_level(LOG_ERROR);
    if (!*o.prompt) {
        fprintf(stderr, "gale generate: the prompt is empty\n");
        return 2;
    }
    runner r;
    if ((rc = runner_open(&r, &o)) != 0) {
        runner_free(&r);
        return rc;
    }
    gale_tokens ids = {0};
    if (o.chat) {
        gale_chat_message msgs[2];
        size_t n = 0;
        if (o.system) msgs[n++] = (gale_chat_message){"system", o.system};
        msgs[n++] = (gale_chat_message){"user", o.prompt};
        rc = encode_messages(&r, &o, msgs, n, &ids);
    } else if (gale_tokenizer_encode(r.tok, o.prompt, strlen(o.prompt), true, &ids) != GALE_OK) {
        rc = cli_fail("cannot tokenize the prompt");
    }
    if (rc == 0) rc = generate_from(&r, &o, &ids, stdout, NULL);
    gale_tokens_free(&ids);
    runner_free(&r);
    return rc;
}

/* Interactive: each turn re-renders the whole conversation, which keeps the template
 * exactly as transformers renders it, and runs only what differs from the tokens the
 * session already holds (the earlier turns, up to where the re-tokenised last answer
 * departs from the generated ids). */
int cmd_chat(int argc, char **argv) {
    generate_options o;
    bool done;
    int rc = parse_generate_options(argc, argv, true, &o, &done);
    if (rc || done) return rc;
    if (o.quiet) log_set_level(LOG_ERROR);
    runner r;
    if ((rc = runner_open(&r, &o)) != 0) {
        runner_free(&r);
        return rc;
    }
    enum { MAX_TURNS = 256 };
    gale_chat_message msgs[MAX_TURNS];
    char *owned[MAX_TURNS];
    size_t n = 0, n_owned = 0;
    if (o.system) msgs[n++] = (gale_chat_message){"system", o.system};
    char *line = NULL;
    size_t cap = 0;
    while (rc == 0 && n + 2 < MAX_TURNS) {
        fputs("> ", stdout);
        fflush(stdout);
        ssize_t len = getline(&line, &cap, stdin);
        if (len <= 0) break;
        if (line[len - 1] == '\n') line[--len] = '\0';
        if (len == 0) break;
        owned[n_owned++] = strdup(line);
        msgs[n++] = (gale_chat_message){"user", owned[n_owned - 1]};
        gale_tokens ids = {0};
        rc = encode_messages(&r, &o, msgs, n, &ids);
        /* capture the answer to put it back into the conversation */
        char *answer = NULL;
        size_t answer_len = 0;
        FILE *tee = open_memstream(&answer, &answer_len);
        if (rc == 0) rc = generate_from(&r, &o, &ids, stdout, tee);
        fclose(tee);
        while (answer_len && answer[answer_len - 1] == '\n') answer[--answer_len] = '\0';
        owned[n_owned++] = answer;
        msgs[n++] = (gale_chat_message){"assistant", answer};
        gale_tokens_free(&ids);
    }
    free(line);
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
    runner_free(&r);
    return rc;
}
