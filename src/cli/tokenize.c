/* gale tokenize -m MODEL [--json] [--decode] [--chat] TEXT|IDS|MESSAGES */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "gale.h"

typedef struct tokenize_options {
    const char *model_path;
    const char *input;
    const char *chat_template; /* --chat-template NAME */
    bool json, decode, add_special, skip_special, chat, generation_prompt;
} tokenize_options;

static void print_tokenize_help(FILE *out) {
    fprintf(out,
            "usage: gale tokenize -m MODEL [options] TEXT\n"
            "       gale tokenize -m MODEL --decode [options] ID [ID ...]\n\n"
            "Encodes TEXT with the model's tokenizer and prints the ids with their pieces,\n"
            "or decodes ids back to text. MODEL is a directory with tokenizer.json or a .gguf\n"
            "file. TEXT '-' reads standard input.\n\n"
            "options:\n"
            "  -m, --model PATH      the model (required)\n"
            "      --json            print JSON: {\"ids\": [...], \"pieces\": [...]} or {\"text\": ...}\n"
            "      --decode          the arguments are token ids; print the text\n"
            "      --no-special      encode without the template's BOS/EOS\n"
            "      --skip-special    decode without special tokens\n"
            "      --chat            TEXT is a JSON list of {\"role\", \"content\"} messages: print the\n"
            "                        prompt the model's chat template renders, then its ids\n"
            "      --chat-template NAME  use a built-in template instead of the model's:\n"
            "                        chatml, llama2, llama3, mistral, gemma, gemma2\n"
            "      --no-generation-prompt  with --chat: do not open an assistant turn\n"
            "  -h, --help            this text\n");
}

static int parse_tokenize_options(int argc, char **argv, tokenize_options *o, bool *done, int *first_arg) {
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'}, {"json", no_argument, NULL, 'j'},
        {"decode", no_argument, NULL, 'd'},      {"no-special", no_argument, NULL, 'n'},
        {"skip-special", no_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'},
        {"chat", no_argument, NULL, 'c'},        {"chat-template", required_argument, NULL, 't'},
        {"no-generation-prompt", no_argument, NULL, 'g'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->add_special = true;
    o->generation_prompt = true;
    *done = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:h", long_options, NULL)) != -1) {
        switch (c) {
        case 'm': o->model_path = optarg; break;
        case 'j': o->json = true; break;
        case 'd': o->decode = true; break;
        case 'n': o->add_special = false; break;
        case 's': o->skip_special = true; break;
        case 'c': o->chat = true; break;
        case 't': o->chat_template = optarg; break;
        case 'g': o->generation_prompt = false; break;
        case 'h':
            print_tokenize_help(stdout);
            *done = true;
            return 0;
        default: print_tokenize_help(stderr); return 2;
        }
    }
    if (!o->model_path || optind >= argc) {
        fprintf(stderr, "gale tokenize: needs -m MODEL and %s\n\n", o->decode ? "ids" : "TEXT");
        print_tokenize_help(stderr);
        return 2;
    }
    if (!o->decode && optind != argc - 1) {
        fprintf(stderr, "gale tokenize: give the text as one argument (quote it)\n");
        return 2;
    }
    *first_arg = optind;
    o->input = argv[optind];
    return 0;
}

/* --chat: messages JSON → the rendered prompt (which holds its own BOS). */
static int render_chat(const gale_tokenizer *t, const tokenize_options *o, const char *json, char **prompt) {
    cJSON *list = cJSON_Parse(json);
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > 1024) {
        cJSON_Delete(list);
        fprintf(stderr, "gale tokenize: --chat needs a JSON list of {\"role\": ..., \"content\": ...}\n");
        return 2;
    }
    gale_chat_message *messages = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *messages);
    size_t n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, list) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role"), *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            fprintf(stderr, "gale tokenize: message %zu needs string \"role\" and \"content\"\n", n);
            free(messages);
            cJSON_Delete(list);
            return 2;
        }
        messages[n++] = (gale_chat_message){role->valuestring, content->valuestring};
    }
    gale_status status = gale_chat_render(t, o->chat_template, messages, n, o->generation_prompt, prompt);
    free(messages);
    cJSON_Delete(list);
    return status == GALE_OK ? 0 : cli_fail("cannot render the chat template");
}

static int print_encoded(const gale_tokenizer *t, const tokenize_options *o) {
    size_t len = strlen(o->input);
    char *owned = NULL, *prompt = NULL;
    const char *text = o->input;
    if (strcmp(o->input, "-") == 0) {
        if (!(owned = cli_read_stdin(&len))) return cli_fail("out of memory");
        text = owned;
    }
    bool add_special = o->add_special;
    if (o->chat) {
        int rc = render_chat(t, o, text, &prompt);
        free(owned);
        if (rc) return rc;
        text = owned = prompt;
        len = strlen(prompt);
        add_special = false; /* the template wrote BOS where it wants one */
        if (!o->json) printf("%s\n---\n", prompt);
    }
    gale_tokens tokens = {0};
    gale_status status = gale_tokenizer_encode(t, text, len, add_special, &tokens);
    if (status != GALE_OK) {
        free(owned);
        return cli_fail("cannot encode");
    }
    cJSON *root = o->json ? cJSON_CreateObject() : NULL;
    if (o->chat && o->json) cJSON_AddStringToObject(root, "prompt", text);
    free(owned);
    cJSON *ids = o->json ? cJSON_AddArrayToObject(root, "ids") : NULL;
    cJSON *pieces = o->json ? cJSON_AddArrayToObject(root, "pieces") : NULL;
    for (size_t i = 0; i < tokens.count; i++) {
        size_t piece_len;
        const char *piece = gale_tokenizer_piece(t, tokens.ids[i], &piece_len);
        if (o->json) {
            char *copy = strndup(piece, piece_len);
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(tokens.ids[i]));
            cJSON_AddItemToArray(pieces, cJSON_CreateString(copy ? copy : ""));
            free(copy);
        } else {
            printf("%6d  %.*s\n", tokens.ids[i], (int)piece_len, piece);
        }
    }
    if (o->json) {
        char *out = cJSON_PrintUnformatted(root);
        puts(out ? out : "{}");
        cJSON_free(out);
        cJSON_Delete(root);
    }
    gale_tokens_free(&tokens);
    return 0;
}

static int print_decoded(const gale_tokenizer *t, const tokenize_options *o, int argc, char **argv, int first) {
    size_t n = (size_t)(argc - first);
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) return cli_fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long v = strtol(argv[first + (int)i], &end, 10);
        if (*end || errno || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "gale tokenize: '%s' is not a token id\n", argv[first + (int)i]);
            free(ids);
            return 2;
        }
        ids[i] = (int32_t)v;
    }
    char *text;
    size_t len;
    gale_status status = gale_tokenizer_decode(t, ids, n, o->skip_special, &text, &len);
    free(ids);
    if (status != GALE_OK) return cli_fail("cannot decode");
    if (o->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "text", text);
        char *out = cJSON_PrintUnformatted(root);
        puts(out ? out : "{}");
        cJSON_free(out);
        cJSON_Delete(root);
    } else {
        fwrite(text, 1, len, stdout);
        putchar('\n');
    }
    free(text);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    tokenize_options o;
    bool done;
    int first = 0;
    int rc = parse_tokenize_options(argc, argv, &o, &done, &first);
    if (rc || done) return rc;
    gale_tokenizer *t;
    if (gale_tokenizer_load(o.model_path, &t) != GALE_OK) return cli_fail("cannot load tokenizer");
    rc = o.decode ? print_decoded(t, &o, argc, argv, first) : print_encoded(t, &o);
    gale_tokenizer_free(t);
    return rc;
}
