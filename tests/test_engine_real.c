/* Real weights: SmolLM2-135M-Instruct (Q4_1 GGUF) and Gemma 3 270M (Q4_K_M GGUF) against
 * transformers running the same GGUF dequantised to fp32 (tests/tools/make_engine_fixtures.py):
 * last-position logits within 1e-3 relative on three prompts, and 32-token greedy chat
 * continuations identical on five chat prompts rendered by gale's template. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/npy.h"
#include "batch_workload.h"
#include "test_support.h"

typedef struct real_case {
    const char *name;          /* fixture folder under engine/ */
    const char *path;          /* the GGUF */
    const char *chat_template; /* NULL: the model's own */
} real_case;

static const real_case cases[] = {
    {"smollm2", GALE_SMOLLM2_GGUF, NULL},
    {"gemma3", GALE_GEMMA3_GGUF, "gemma"}, /* the base-model GGUF carries no template */
};

typedef struct loaded {
    gale_model *model;
    gale_tokenizer *tok;
    gale_session *session;
    int vocab;
} loaded;

static loaded open_case(const real_case *c) {
    loaded l = {0};
    gale_load_params lp = gale_load_params_default();
    lp.quiet = true;
    cr_assert_eq(gale_model_load(c->path, &lp, &l.model), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_tokenizer_load(c->path, &l.tok), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_new(l.model, NULL, &l.session), GALE_OK, "%s", gale_last_error());
    l.vocab = gale_model_config(l.model)->vocab;
    return l;
}

static void close_case(loaded *l) {
    gale_session_free(l->session);
    gale_tokenizer_free(l->tok);
    gale_model_free(l->model);
}

static void assert_same_ids(const gale_tokens *got, const cJSON *want, const char *what) {
    cr_assert_eq((int)got->count, cJSON_GetArraySize(want), "%s: %zu ids, transformers has %d", what, got->count,
                 cJSON_GetArraySize(want));
    for (size_t i = 0; i < got->count; i++)
        cr_assert_eq(got->ids[i], cJSON_GetArrayItem(want, (int)i)->valueint, "%s: id %zu", what, i);
}

static void check_prompts(const real_case *c) {
    loaded l = open_case(c);
    char path[256];
    snprintf(path, sizeof path, "engine/%s/logits_prompts.json", c->name);
    cJSON *root = load_json(fixture(path));
    const cJSON *prompt;
    float *logits = guarded_alloc((size_t)l.vocab);
    cJSON_ArrayForEach(prompt, cJSON_GetObjectItemCaseSensitive(root, "prompts")) {
        const char *text = cJSON_GetObjectItemCaseSensitive(prompt, "text")->valuestring;
        gale_tokens ids = {0};
        cr_assert_eq(gale_tokenizer_encode(l.tok, text, strlen(text), true, &ids), GALE_OK);
        assert_same_ids(&ids, cJSON_GetObjectItemCaseSensitive(prompt, "ids"), text);
        gale_session_reset(l.session);
        cr_assert_eq(gale_session_forward(l.session, ids.ids, ids.count, false, logits), GALE_OK, "%s", gale_last_error());
        snprintf(path, sizeof path, "engine/%s/%s", c->name, cJSON_GetObjectItemCaseSensitive(prompt, "logits_last")->valuestring);
        float *ref;
        int64_t shape[2];
        int n_dims;
        cr_assert_eq(npy_read_f32(fixture(path), &ref, shape, &n_dims, 2), GALE_OK, "%s", gale_last_error());
        cr_assert_eq(shape[n_dims - 1], l.vocab);
        double diff = 0, scale = 0;
        for (int v = 0; v < l.vocab; v++) {
            double d = fabs((double)logits[v] - ref[v]);
            diff = d > diff || isnan(d) ? (isnan(d) ? INFINITY : d) : diff;
            scale = fabs(ref[v]) > scale ? fabs(ref[v]) : scale;
        }
        fprintf(stderr, "parity %s \"%.30s…\": max|a-b|/max|ref| = %.3g\n", c->name, text, diff / scale);
        cr_assert(diff / scale <= 1e-3, "%s: logits of \"%s\" differ by %.3g relative", c->name, text, diff / scale);
        free(ref);
        gale_tokens_free(&ids);
    }
    guarded_check_free(logits, (size_t)l.vocab, "logits");
    cJSON_Delete(root);
    close_case(&l);
}

static void check_greedy_chats(const real_case *c) {
    loaded l = open_case(c);
    char path[256];
    snprintf(path, sizeof path, "engine/%s/greedy_chat.json", c->name);
    cJSON *root = load_json(fixture(path));
    float *logits = malloc((size_t)l.vocab * sizeof *logits);
    const cJSON *chat;
    int chats = 0;
    cJSON_ArrayForEach(chat, cJSON_GetObjectItemCaseSensitive(root, "chats")) {
        gale_chat_message m = {"user", cJSON_GetObjectItemCaseSensitive(chat, "user")->valuestring};
        char *prompt;
        cr_assert_eq(gale_chat_render(l.tok, c->chat_template, &m, 1, true, &prompt), GALE_OK, "%s", gale_last_error());
        cr_assert_str_eq(prompt, cJSON_GetObjectItemCaseSensitive(chat, "rendered")->valuestring);
        gale_tokens ids = {0};
        cr_assert_eq(gale_tokenizer_encode(l.tok, prompt, strlen(prompt), false, &ids), GALE_OK);
        assert_same_ids(&ids, cJSON_GetObjectItemCaseSensitive(chat, "prompt_ids"), m.content);
        gale_session_reset(l.session);
        cr_assert_eq(gale_session_forward(l.session, ids.ids, ids.count, false, logits), GALE_OK);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(chat, "generated_ids");
        for (int i = 0; i < cJSON_GetArraySize(want); i++) {
            int32_t best = 0;
            for (int v = 1; v < l.vocab; v++)
                if (logits[v] > logits[best]) best = v;
            cr_assert_eq(best, cJSON_GetArrayItem(want, i)->valueint, "%s \"%s\": greedy token %d is %d, transformers chose %d",
                         c->name, m.content, i, best, cJSON_GetArrayItem(want, i)->valueint);
            cr_assert_eq(gale_session_forward(l.session, &best, 1, false, logits), GALE_OK);
        }
        free(prompt);
        gale_tokens_free(&ids);
        chats++;
    }
    cr_assert_geq(chats, 5);
    free(logits);
    cJSON_Delete(root);
    close_case(&l);
}

ParameterizedTestParameters(engine_real, logits_match_transformers) { return index_params(2); }
ParameterizedTest(size_t *i, engine_real, logits_match_transformers) { check_prompts(&cases[*i]); }

ParameterizedTestParameters(engine_real, greedy_chats_match_transformers) { return index_params(2); }
ParameterizedTest(size_t *i, engine_real, greedy_chats_match_transformers) {
    check_greedy_chats(&cases[*i]);
}

/* ---- continuous batching on SmolLM2 ---- */

static gale_engine *engine_with_tokenizer(const loaded *l, int max_seqs, int budget) {
    gale_engine_params p = gale_engine_params_default();
    p.n_threads = 2;
    p.max_num_seqs = max_seqs;
    p.max_num_batched_tokens = budget;
    gale_engine *e = NULL;
    cr_assert_eq(gale_engine_new(l->model, l->tok, &p, &e), GALE_OK, "%s", gale_last_error());
    return e;
}

/* 16 requests of random ids (prompts of 1 … 300 tokens, 1 … 12 new tokens), greedy:
 * together with 96-token steps and staggered with 32-token steps, each gives the tokens
 * it gives alone, and its streamed text is the decoding of those tokens. */
Test(engine_real, smollm2_batched_equals_alone, .timeout = 1800) {
    loaded l = open_case(&cases[0]);
    workload alone, batched;
    make_workload(&alone, gale_model_config(l.model), 12);
    run_alone(l.model, &alone);
    struct {
        const char *how;
        int max_seqs, budget, stagger;
    } modes[] = {{"together", 16, 96, 0}, {"staggered", 8, 32, 2}};
    for (size_t k = 0; k < 2; k++) {
        make_workload(&batched, gale_model_config(l.model), 12);
        gale_engine *e = engine_with_tokenizer(&l, modes[k].max_seqs, modes[k].budget);
        run_workload(e, &batched, 0, N_REQUESTS, modes[k].stagger);
        assert_same_tokens(&alone, &batched, "smollm2", modes[k].how);
        for (int r = 0; r < N_REQUESTS; r++) {
            char *text;
            size_t len;
            cr_assert_eq(gale_tokenizer_decode(l.tok, batched.got[r], (size_t)batched.n_got[r], true, &text, &len), GALE_OK);
            cr_assert_eq(batched.text_len[r], len, "request %d: streamed %zu bytes, decoded %zu", r, batched.text_len[r], len);
            cr_assert(len == 0 || memcmp(batched.text[r], text, len) == 0, "request %d: streamed \"%s\", decoded \"%s\"", r,
                      batched.text[r], text);
            free(text);
        }
        assert_pool_full(e);
        gale_engine_free(e);
        free_workload(&batched);
    }
    free_workload(&alone);
    close_case(&l);
}

/* A chat request ends at its stop string (cut from the text) or at the end-of-turn
 * token, whichever comes first; the text is what the session's greedy answer says. */
Test(engine_real, smollm2_stop_string_and_end_of_turn) {
    loaded l = open_case(&cases[0]);
    gale_chat_message m = {"user", "What is the capital of France?"};
    char *prompt;
    cr_assert_eq(gale_chat_render(l.tok, NULL, &m, 1, true, &prompt), GALE_OK, "%s", gale_last_error());
    gale_tokens ids = {0};
    cr_assert_eq(gale_tokenizer_encode(l.tok, prompt, strlen(prompt), false, &ids), GALE_OK);
    gale_engine *e = engine_with_tokenizer(&l, 4, 256);
    const char *stops[] = {"Paris"};
    gale_request with_stop = gale_request_default(), plain = gale_request_default();
    with_stop.ids = plain.ids = ids.ids;
    with_stop.n_ids = plain.n_ids = ids.count;
    with_stop.max_new_tokens = plain.max_new_tokens = 64;
    with_stop.stop = stops;
    with_stop.n_stop = 1;
    uint64_t id_stop, id_plain;
    cr_assert_eq(gale_engine_submit(e, &with_stop, &id_stop), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_engine_submit(e, &plain, &id_plain), GALE_OK, "%s", gale_last_error());
    char text[2][1024] = {{0}};
    gale_finish finish[2] = {GALE_FINISH_NONE, GALE_FINISH_NONE};
    while (gale_engine_busy(e)) {
        const gale_output *out;
        size_t n;
        cr_assert_eq(gale_engine_step(e, &out, &n), GALE_OK, "%s", gale_last_error());
        for (size_t k = 0; k < n; k++) {
            int which = out[k].request_id == id_stop ? 0 : 1;
            cr_assert_lt(strlen(text[which]) + out[k].text_len, sizeof text[which]);
            strncat(text[which], out[k].text, out[k].text_len);
            if (out[k].finish) finish[which] = out[k].finish;
        }
    }
    fprintf(stderr, "with stop: \"%s\"\nplain: \"%s\"\n", text[0], text[1]);
    const char *paris = strstr(text[1], "Paris");
    cr_assert_not_null(paris, "the greedy answer names Paris: \"%s\"", text[1]);
    cr_assert_eq(finish[1], GALE_FINISH_STOP, "the plain answer ends with the end-of-turn token");
    cr_assert_eq(finish[0], GALE_FINISH_STOP);
    cr_assert_eq(strlen(text[0]), (size_t)(paris - text[1]), "the stop string cuts the text where \"Paris\" starts");
    cr_assert_eq(memcmp(text[0], text[1], strlen(text[0])), 0);
    gale_engine_free(e);
    gale_tokens_free(&ids);
    free(prompt);
    close_case(&l);
}
