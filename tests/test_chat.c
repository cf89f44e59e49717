/* Chat templates against transformers' apply_chat_template: every conversation of
 * tests/fixtures/chat/expected.json renders to the same text (or fails where the Jinja
 * template raises), and that text encodes to the same ids. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

typedef struct chat_case {
    const char *template_name;
    const char *tokenizer; /* fixtures-relative dir or absolute GGUF path */
} chat_case;

static const chat_case cases[] = {
    {"chatml", "tokenizer/smollm2"},  {"llama3", "tokenizer/llama3_style"}, {"llama2", "tokenizer/llama2_style"},
    {"mistral", "tokenizer/llama2_style"}, {"gemma", GALE_GEMMA3_GGUF},     {"gemma2", GALE_GEMMA3_GGUF},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static const cJSON *find_conversation(const cJSON *root, const char *name) {
    const cJSON *conv;
    cJSON_ArrayForEach(conv, cJSON_GetObjectItemCaseSensitive(root, "conversations"))
        if (strcmp(cJSON_GetObjectItemCaseSensitive(conv, "name")->valuestring, name) == 0) return conv;
    cr_assert_fail("conversation %s not in the fixture", name);
    return NULL;
}

static void check_template(const chat_case *c) {
    const char *path = c->tokenizer[0] == '/' ? c->tokenizer : fixture(c->tokenizer);
    gale_tokenizer *t;
    cr_assert_eq(gale_tokenizer_load(path, &t), GALE_OK, "%s", gale_last_error());
    cJSON *root = load_json(fixture("chat/expected.json"));
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "templates"), c->template_name);
    const cJSON *render;
    int checked = 0, errors = 0;
    cJSON_ArrayForEach(render, cJSON_GetObjectItemCaseSensitive(tmpl, "renders")) {
        const char *conv_name = cJSON_GetObjectItemCaseSensitive(render, "conversation")->valuestring;
        bool gen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(render, "add_generation_prompt"));
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(find_conversation(root, conv_name), "messages");
        gale_chat_message messages[16];
        size_t n = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, msgs) {
            messages[n].role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
            messages[n++].content = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        }
        char *text = NULL;
        gale_status status = gale_chat_render(t, c->template_name, messages, n, gen, &text);
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(render, "error");
        if (error) {
            assert_error(status, GALE_ERR_INVALID_ARG, error->valuestring);
            errors++;
            continue;
        }
        cr_assert_eq(status, GALE_OK, "%s/%s: %s", c->template_name, conv_name, gale_last_error());
        const char *want = cJSON_GetObjectItemCaseSensitive(render, "text")->valuestring;
        cr_assert_str_eq(text, want, "%s/%s (generation prompt %d) renders differently", c->template_name, conv_name, gen);
        gale_tokens tokens = {0};
        cr_assert_eq(gale_tokenizer_encode(t, text, strlen(text), false, &tokens), GALE_OK);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(render, "ids");
        cr_assert_eq((int)tokens.count, cJSON_GetArraySize(ids), "%s/%s: id count", c->template_name, conv_name);
        for (size_t k = 0; k < tokens.count; k++)
            cr_assert_eq(tokens.ids[k], cJSON_GetArrayItem(ids, (int)k)->valueint, "%s/%s: id %zu", c->template_name,
                         conv_name, k);
        gale_tokens_free(&tokens);
        free(text);
        checked++;
    }
    cr_assert_geq(checked + errors, 8, "%s: too few renders compared", c->template_name);
    /* the end-of-turn token stops generation */
    int32_t stops[4];
    size_t n_stops = gale_chat_stop_ids(t, c->template_name, stops, 4);
    int eot = cJSON_GetObjectItemCaseSensitive(tmpl, "end_of_turn_id")->valueint;
    bool found = false;
    for (size_t i = 0; i < n_stops; i++) found |= stops[i] == eot;
    cr_assert(found, "%s: end-of-turn id %d is not a stop id", c->template_name, eot);
    cJSON_Delete(root);
    gale_tokenizer_free(t);
}

ParameterizedTestParameters(chat, renders_like_transformers) { return index_params(N_CASES); }
ParameterizedTest(size_t *i, chat, renders_like_transformers) { check_template(&cases[*i]); }

Test(chat, recognises_templates_by_their_markers) {
    gale_tokenizer *t;
    cr_assert_eq(gale_tokenizer_load(fixture("tokenizer/smollm2"), &t), GALE_OK, "%s", gale_last_error());
    cr_assert_str_eq(gale_chat_template_name(t), "chatml");
    gale_tokenizer_free(t);
    cr_assert_eq(gale_tokenizer_load(fixture("tokenizer/llama2_style"), &t), GALE_OK);
    cr_assert_str_eq(gale_chat_template_name(t), "llama2");
    gale_tokenizer_free(t);
    /* the Gemma 3 270M GGUF has no template: its <start_of_turn> token names the format,
     * and <end_of_turn> ends a turn */
    cr_assert_eq(gale_tokenizer_load(GALE_GEMMA3_GGUF, &t), GALE_OK, "%s", gale_last_error());
    cr_assert_null(gale_tokenizer_chat_template(t), "the fixture has no chat template");
    cr_assert_str_eq(gale_chat_template_name(t), "gemma");
    int32_t stops[4];
    const size_t n_stops = gale_chat_stop_ids(t, NULL, stops, 4);
    gale_tokens eot = {0};
    cr_assert_eq(gale_tokenizer_encode(t, "<end_of_turn>", 13, false, &eot), GALE_OK);
    cr_assert_eq(eot.count, 1, "<end_of_turn> is one token");
    bool found = false;
    for (size_t i = 0; i < n_stops; i++) found |= stops[i] == eot.ids[0];
    cr_assert(found, "<end_of_turn> (%d) ends a turn", eot.ids[0]);
    gale_tokens_free(&eot);
    gale_tokenizer_free(t);
}

Test(chat, unknown_template_name_is_an_error) {
    gale_tokenizer *t;
    cr_assert_eq(gale_tokenizer_load(fixture("tokenizer/smollm2"), &t), GALE_OK);
    gale_chat_message m = {"user", "hi"};
    char *text;
    assert_error(gale_chat_render(t, "vicuna", &m, 1, true, &text), GALE_ERR_INVALID_ARG, "vicuna");
    gale_tokenizer_free(t);
}
