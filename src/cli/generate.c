/* gale generate / gale chat: text generation on the CPU engine, streamed. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

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
    int max_new_tokens; /* 0: as many as the context leaves (-n -1) */
    int threads, n_ctx;
    gale_device device;
    bool chat, output_ids, quiet, enforce_eager;
    bool random_seed; /* no --seed (or -1): sampling.seed was drawn, and is shown */
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
            "  -n, --max-tokens N      new tokens at most (default 256; -1: until the end of the\n"
            "                          sequence or a full context)\n"
            "      --temp T            temperature; 0 is greedy (default 0.8)\n"
            "      --top-k K           0: off (default 40)\n"
            "      --top-p P           in (0, 1] (default 0.95)\n"
            "      --min-p P           in [0, 1] (default 0.05)\n"
            "      --repeat-penalty R  1: off (default 1)\n"
            "      --presence-penalty P, --frequency-penalty F   0: off\n"
            "      --seed S            same seed, same text (default or -1: a random seed, shown\n"
            "                          in the statistics line)\n"
            "      --stop TEXT         stop when the text appears (repeatable, up to %d)\n"
            "      --system TEXT       system message%s\n"
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
                  "streamed answer. Empty lines are skipped; end of input or a line /exit ends\n"
                  "the chat. When the conversation outgrows --ctx its oldest turns are dropped."
                : "Generates text from PROMPT and streams it to stdout. At the end, stderr gets\n"
                  "the prompt and generated token counts with prefill and decode tokens/s.",
            strcmp(command, "chat") == 0 ? ""
                                         : "  -p, --prompt TEXT       the prompt ('-' reads standard input)\n"
                                           "      --chat              wrap the prompt as a user turn of the chat template\n"
                                           "      --output-ids        also print the generated token ids\n",
            MAX_STOP_STRINGS, strcmp(command, "chat") == 0 ? "" : " (with --chat)");
}

/* A seed nobody chose (llama.cpp's and vLLM's default): from the kernel, else the clock. */
static uint64_t random_seed(void) {
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed) return seed;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
}

/* --seed: 0 … UINT64_MAX, or -1 for a random one (llama.cpp's convention). */
static bool parse_seed(const char *command, const char *s, generate_options *o) {
    o->random_seed = strcmp(s, "-1") == 0;
    if (o->random_seed) return true;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    /* strtoull takes a sign and leading blanks (and wraps "-2"): only digits here */
    if (*s < '0' || *s > '9' || *end || errno) {
        fprintf(stderr, "gale %s: --seed needs an integer from 0 to %llu, or -1 for a random seed, got '%s'\n",
                command, (unsigned long long)UINT64_MAX, s);
        return false;
    }
    o->sampling.seed = v;
    return true;
}

/* -n: a positive count, or -1 for as many as the context leaves (stored as 0). */
static bool parse_max_tokens(const char *command, const char *s, int *out) {
    if (strcmp(s, "-1") == 0) {
        *out = 0;
        return true;
    }
    return cli_option_int(command, "--max-tokens", s, 1, 2147483647L,
                          "a positive integer (or -1: until the end of the sequence or a full context)", out);
}

static bool add_stop_string(const char *command, const char *s, generate_options *o) {
    if (o->n_stop_strings == MAX_STOP_STRINGS) {
        fprintf(stderr, "gale %s: at most %d --stop strings\n", command, MAX_STOP_STRINGS);
        return false;
    }
    if (!*s) {
        fprintf(stderr, "gale %s: --stop needs a text, got ''\n", command);
        return false;
    }
    o->stop_strings[o->n_stop_strings++] = s;
    return true;
}

/* One option (getopt's c, value in optarg) into o; false, with the flag named, when refused. */
static bool set_option(int c, const char *command, generate_options *o) {
    gale_sampling_params *sp = &o->sampling;
    switch (c) {
    case 'm': o->model_path = optarg; return true;
    case 'p': o->prompt = optarg; return true;
    case 'n': return parse_max_tokens(command, optarg, &o->max_new_tokens);
    case 'T': return cli_option_float(command, "--temp", optarg, &sp->temperature);
    case 'K': return cli_option_int(command, "--top-k", optarg, -2147483647L, 2147483647L, "an integer", &sp->top_k);
    case 'P': return cli_option_float(command, "--top-p", optarg, &sp->top_p);
    case 'M': return cli_option_float(command, "--min-p", optarg, &sp->min_p);
    case 'R': return cli_option_float(command, "--repeat-penalty", optarg, &sp->repetition_penalty);
    case 'r': return cli_option_float(command, "--presence-penalty", optarg, &sp->presence_penalty);
    case 'f': return cli_option_float(command, "--frequency-penalty", optarg, &sp->frequency_penalty);
    case 'S': return parse_seed(command, optarg, o);
    case 's': return add_stop_string(command, optarg, o);
    case 'y': o->system = optarg; return true;
    case 'c': o->chat_template = optarg; return true;
    case 'C': o->chat = true; return true;
    case 'O': o->output_ids = true; return true;
    case 't':
        return cli_option_int(command, "--threads", optarg, 0, 2147483647L, "an integer >= 0 (0: one per core)",
                              &o->threads);
    case 'x': return cli_option_int(command, "--ctx", optarg, 1, 2147483647L, "a positive integer", &o->n_ctx);
    case 'q': o->quiet = true; return true;
    case 'E': o->enforce_eager = true; return true;
    case 'D':
        if (cli_parse_device(optarg, &o->device)) return true;
        fprintf(stderr, "gale %s: --device is cpu or cuda, got '%s'\n", command, optarg);
        return false;
    default: /* getopt has named the unknown option or the missing value */
        fprintf(stderr, "gale %s: see --help\n", command);
        return false;
    }
}

/* Usage the command would otherwise ignore is refused: a flag that does nothing there
 * hides a mistake (llama.cpp refuses it too). */
static bool usage_consistent(int argc, char **argv, bool chat_command, const generate_options *o) {
    const char *command = chat_command ? "chat" : "generate";
    if (optind != argc) {
        fprintf(stderr, "gale %s: unexpected argument '%s' (%s)\n", command, argv[optind],
                chat_command ? "chat reads its messages from standard input" : "quote the prompt: -p \"...\"");
        return false;
    }
    if (chat_command && o->prompt) {
        fprintf(stderr, "gale chat: -p is for gale generate; chat reads its messages from standard input\n");
        return false;
    }
    if (!chat_command && o->system && !o->chat) {
        fprintf(stderr, "gale generate: --system needs --chat (the system message is a turn of the chat template)\n");
        return false;
    }
    return true;
}

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
    const char *command = chat_command ? "chat" : "generate";
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 256;
    o->sampling = gale_sampling_params_default();
    o->random_seed = true;
    o->chat = chat_command;
    *done = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:p:n:t:qh", long_options, NULL)) != -1) {
        if (c == 'h') {
            print_generate_help(stdout, command);
            *done = true;
            return 0;
        }
        if (!set_option(c, command, o)) return 2;
    }
    if (!usage_consistent(argc, argv, chat_command, o)) return 2;
    if (!chat_command && !o->prompt) {
        fprintf(stderr, "gale generate: needs -p PROMPT\n\n");
        print_generate_help(stderr, "generate");
        return 2;
    }
    if (o->random_seed) o->sampling.seed = random_seed();
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
    cli_warn_context(o->n_ctx, gale_model_config(r->model));
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

/* False when the text could not be written: generating more is pointless (main reports
 * the failed write). */
static bool sink_emit(text_sink *sink) {
    size_t len;
    const char *text = stop_text_take(&sink->stop, &len);
    fwrite(text, 1, len, sink->out);
    if (sink->capture) fwrite(text, 1, len, sink->capture);
    return cli_flush(sink->out);
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

/* True when the prompt and at least one new token fit in the context. */
static bool prompt_fits(const runner *r, size_t n_prompt) {
    return n_prompt < (size_t)gale_session_context(r->session);
}

/* New tokens at most for this prompt: -n, or with -n -1 as many as the context leaves
 * (vLLM's max_model_len - prompt length). */
static size_t new_token_limit(const runner *r, const generate_options *o, size_t n_prompt) {
    if (o->max_new_tokens > 0) return (size_t)o->max_new_tokens;
    return (size_t)gale_session_context(r->session) - n_prompt;
}

static void print_stats(const generate_options *o, size_t n_prompt, size_t cached, size_t generated, double t_prefill,
                        double t_decode) {
    if (o->quiet) return;
    fprintf(stderr, "gale: prompt %zu tokens (%zu reused), generated %zu tokens, prefill %.1f tok/s, decode %.1f tok/s",
            n_prompt, cached, generated, (double)(n_prompt - cached) / (t_prefill > 0 ? t_prefill : 1e-9),
            generated > 1 ? (double)(generated - 1) / (t_decode > 0 ? t_decode : 1e-9) : 0.0);
    /* a drawn seed is shown so that --seed can repeat the run */
    if (o->sampling.temperature > 0) fprintf(stderr, ", seed %llu", (unsigned long long)o->sampling.seed);
    fputc('\n', stderr);
}

/* Prefills ids (reusing what the session holds of them) and generates up to the limit,
 * streaming the text to out. */
static int generate_from(runner *r, const generate_options *o, const gale_tokens *prompt, FILE *out, FILE *capture) {
    if (!prompt_fits(r, prompt->count)) {
        fprintf(stderr,
                "gale: the prompt (%zu tokens) and at least one new token must fit in the context, which holds %d "
                "tokens (raise --ctx)\n",
                prompt->count, gale_session_context(r->session));
        return 1;
    }
    const size_t max_new = new_token_limit(r, o, prompt->count);
    int32_t *history = malloc((prompt->count + max_new + 1) * sizeof *history);
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
    while (rc == 0 && generated < max_new && !sink.stop.stopped) {
        /* the stop id is counted and listed with the ids, as vLLM's token_ids list it; it
         * has no text, and the session never runs it */
        history[n_history++] = id;
        generated++;
        if (is_stop_id(r, id)) break;
        const char *text;
        size_t len;
        gale_detokenizer_push(d, id, &text, &len);
        if (stop_text_push(&sink.stop, text, len) != GALE_OK) rc = cli_fail("out of memory");
        if (!sink_emit(&sink) || generated == max_new || sink.stop.stopped) break;
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
    fflush(out); /* the text before the statistics on stderr */
    double t_decode = now() - t1;
    if (o->output_ids) {
        fprintf(out, "ids:");
        for (size_t i = prompt->count; i < n_history; i++) fprintf(out, " %d", history[i]);
        fputc('\n', out);
    }
    remember_session(r, history);
    print_stats(o, prompt->count, cached, generated, t_prefill, t_decode);
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

/* -p -: the prompt is standard input, less one final newline (as llama.cpp reads --file),
 * which echo and editors add and the prompt did not mean. */
static char *read_prompt_stdin(void) {
    size_t len;
    char *text = cli_read_stdin(&len);
    if (text && len && text[len - 1] == '\n') text[len - 1] = '\0';
    return text;
}

int cmd_generate(int argc, char **argv) {
    generate_options o;
    bool done;
    int rc = parse_generate_options(argc, argv, false, &o, &done);
    if (rc || done) return rc;
    if (o.quiet) log_set_level(LOG_ERROR);
    char *from_stdin = NULL;
    if (strcmp(o.prompt, "-") == 0 && !(o.prompt = from_stdin = read_prompt_stdin())) return cli_fail("out of memory");
    if (!*o.prompt) {
        fprintf(stderr, "gale generate: the prompt is empty\n");
        free(from_stdin);
        return 2;
    }
    runner r;
    if ((rc = runner_open(&r, &o)) != 0) {
        runner_free(&r);
        free(from_stdin);
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
    free(from_stdin);
    return rc;
}

/* The chat so far, owning its texts: an optional system message, then user and assistant
 * turns. It grows without bound; the context, not a count, limits it. */
typedef struct conversation {
    gale_chat_message *msgs;
    size_t n, cap;
    size_t first_turn; /* index of the first user message: 1 with a system message */
} conversation;

static bool conversation_add(conversation *c, const char *role, char *owned_text) {
    if (!owned_text) return false;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        gale_chat_message *grown = realloc(c->msgs, cap * sizeof *grown);
        if (!grown) {
            free(owned_text);
            return false;
        }
        c->msgs = grown;
        c->cap = cap;
    }
    c->msgs[c->n++] = (gale_chat_message){role, owned_text};
    return true;
}

/* Removes n messages from index at, freeing their texts. */
static void conversation_remove(conversation *c, size_t at, size_t n) {
    for (size_t i = at; i < at + n; i++) free((char *)c->msgs[i].content);
    memmove(c->msgs + at, c->msgs + at + n, (c->n - at - n) * sizeof *c->msgs);
    c->n -= n;
}

static void conversation_free(conversation *c) {
    conversation_remove(c, 0, c->n);
    free(c->msgs);
}

/* Encodes the conversation, whose last message is the user's new one, into a prompt that
 * leaves room for the answer. Like llama-cli's context shift, the oldest user/assistant
 * turns go first (the system message stays); a message that does not fit even alone is
 * reported and dropped, and the chat goes on. Returns 0 with ids empty when dropped. */
static int fit_conversation(runner *r, const generate_options *o, conversation *c, gale_tokens *ids) {
    const int ctx = gale_session_context(r->session);
    /* room for the answer, but an -n near the context would leave no room for the past */
    size_t room = o->max_new_tokens > 0 ? (size_t)o->max_new_tokens : 1;
    if (room > (size_t)ctx / 2) room = (size_t)ctx / 2;
    for (;;) {
        int rc = encode_messages(r, o, c->msgs, c->n, ids);
        if (rc) return rc;
        if (ids->count + room <= (size_t)ctx) return 0;
        if (c->n - c->first_turn >= 3) { /* an answered turn before the new message */
            conversation_remove(c, c->first_turn, 2);
            if (!o->quiet)
                fprintf(stderr, "gale: the conversation outgrew the context of %d tokens: dropped its oldest turn\n",
                        ctx);
            continue;
        }
        if (prompt_fits(r, ids->count)) return 0; /* the answer may be cut at the context */
        fprintf(stderr,
                "gale: this message does not fit in the context of %d tokens (its prompt has %zu tokens, and the "
                "answer needs at least one more; raise --ctx): skipped it\n",
                ctx, ids->count);
        conversation_remove(c, c->n - 1, 1);
        ids->count = 0;
        return 0;
    }
}

/* One user message: fit the conversation, answer it, keep the answer. */
static int chat_turn(runner *r, const generate_options *o, conversation *c, const char *line) {
    if (!conversation_add(c, "user", strdup(line))) return cli_fail("out of memory");
    gale_tokens ids = {0};
    int rc = fit_conversation(r, o, c, &ids);
    if (rc || ids.count == 0) {
        gale_tokens_free(&ids);
        return rc;
    }
    /* capture the answer to put it back into the conversation */
    char *answer = NULL;
    size_t answer_len = 0;
    FILE *tee = open_memstream(&answer, &answer_len);
    if (!tee) rc = cli_fail("out of memory");
    if (rc == 0) rc = generate_from(r, o, &ids, stdout, tee);
    if (tee) fclose(tee);
    gale_tokens_free(&ids);
    while (answer_len && answer[answer_len - 1] == '\n') answer[--answer_len] = '\0';
    if (!conversation_add(c, "assistant", answer) && rc == 0) rc = cli_fail("out of memory");
    return rc;
}

/* Interactive: each turn re-renders the whole conversation, which keeps the template
 * exactly as transformers renders it, and runs only what differs from the tokens the
 * session already holds (the earlier turns, up to where the re-tokenised last answer
 * departs from the generated ids). Empty lines are skipped, as llama-cli skips them, so
 * a piped file's blank lines do not end the chat: end of input or "/exit" does. */
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
    conversation c = {0};
    if (o.system && !conversation_add(&c, "system", strdup(o.system))) rc = cli_fail("out of memory");
    c.first_turn = c.n;
    char *line = NULL;
    size_t cap = 0;
    while (rc == 0) {
        fputs("> ", stdout);
        if (!cli_flush(stdout)) break; /* main reports the failed write */
        ssize_t len = getline(&line, &cap, stdin);
        if (len <= 0) break;
        if (line[len - 1] == '\n') line[--len] = '\0';
        if (strcmp(line, "/exit") == 0) break;
        if (len > 0) rc = chat_turn(&r, &o, &c, line);
        if (ferror(stdout)) break;
    }
    free(line);
    conversation_free(&c);
    runner_free(&r);
    return rc;
}
