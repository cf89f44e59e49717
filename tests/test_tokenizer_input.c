/* Tokenizer edge cases and bad input: invalid UTF-8 in the text, malformed
 * tokenizer.json files, merges that name unknown tokens; round trips and streaming. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

static gale_tokenizer *load(const char *rel) {
    gale_tokenizer *t;
    cr_assert_eq(gale_tokenizer_load(fixture(rel), &t), GALE_OK, "%s", gale_last_error());
    return t;
}

static bool same_ids(const gale_tokens *a, const gale_tokens *b) {
    return a->count == b->count && memcmp(a->ids, b->ids, a->count * sizeof *a->ids) == 0;
}

/* Documented behaviour: each invalid sequence is read as U+FFFD, as Python's
 * bytes.decode(errors="replace") reads it; the same ids as the repaired text. */
Test(tokenizer_input, invalid_utf8_reads_as_replacement_characters) {
    static const char *const dirs[] = {"tokenizer/smollm2", "tokenizer/llama2_style", "tokenizer/llama3_style"};
    static const char bad[] = "ok \xff\xfe mid \xe2\x82 end \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 tail \xe2\x82";
    size_t repaired_len;
    char *repaired = utf8_repair((const uint8_t *)bad, sizeof bad - 1, &repaired_len);
    /* Python: b"...".decode("utf-8", "replace") gives this many U+FFFD */
    size_t replacements = 0;
    for (const char *p = repaired; (p = strstr(p, "\xEF\xBF\xBD")); p += 3) replacements++;
    cr_assert_eq(replacements, 13, "got %zu U+FFFD", replacements);
    for (size_t d = 0; d < 3; d++) {
        gale_tokenizer *t = load(dirs[d]);
        gale_tokens a = {0}, b = {0};
        cr_assert_eq(gale_tokenizer_encode(t, bad, sizeof bad - 1, false, &a), GALE_OK);
        cr_assert_eq(gale_tokenizer_encode(t, repaired, repaired_len, false, &b), GALE_OK);
        cr_assert(same_ids(&a, &b), "%s: invalid UTF-8 is not read as U+FFFD", dirs[d]);
        gale_tokens_free(&a);
        gale_tokens_free(&b);
        gale_tokenizer_free(t);
    }
    free(repaired);
}

Test(tokenizer_input, round_trip_where_lossless) {
    static const char *const dirs[] = {"tokenizer/smollm2", "tokenizer/llama2_style", "tokenizer/mistral_metaspace",
                                       "tokenizer/llama3_style"};
    cJSON *corpus = load_json(fixture("tokenizer/corpus.json"));
    for (size_t d = 0; d < 4; d++) {
        gale_tokenizer *t = load(dirs[d]);
        char path[256];
        snprintf(path, sizeof path, "%s/expected.json", dirs[d]);
        cJSON *e = load_json(fixture(path));
        const cJSON *lossless = cJSON_GetObjectItemCaseSensitive(e, "lossless");
        int round_trips = 0;
        for (int i = 0; i < cJSON_GetArraySize(corpus); i++) {
            if (!cJSON_IsTrue(cJSON_GetArrayItem(lossless, i))) continue;
            const char *s = cJSON_GetArrayItem(corpus, i)->valuestring;
            gale_tokens ids = {0};
            char *text;
            size_t len;
            cr_assert_eq(gale_tokenizer_encode(t, s, strlen(s), false, &ids), GALE_OK);
            cr_assert_eq(gale_tokenizer_decode(t, ids.ids, ids.count, false, &text, &len), GALE_OK);
            cr_assert_str_eq(text, s, "%s: string %d does not round-trip", dirs[d], i);
            round_trips++;
            free(text);
            gale_tokens_free(&ids);
        }
        cr_assert_gt(round_trips, 100, "%s: only %d lossless strings", dirs[d], round_trips);
        cJSON_Delete(e);
        gale_tokenizer_free(t);
    }
    cJSON_Delete(corpus);
}

/* Byte-fallback tokens split characters: no streamed piece may end inside one. */
Test(tokenizer_input, streaming_never_splits_a_character) {
    gale_tokenizer *t = load("tokenizer/llama2_style");
    static const char text[] = "emoji 👩🏽‍💻 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 日本語 \xee\x80\x80";
    gale_tokens ids = {0};
    cr_assert_eq(gale_tokenizer_encode(t, text, sizeof text - 1, false, &ids), GALE_OK);
    gale_detokenizer *d;
    cr_assert_eq(gale_detokenizer_new(t, false, &d), GALE_OK);
    size_t held = 0;
    for (size_t i = 0; i < ids.count; i++) {
        const char *piece;
        size_t len;
        cr_assert_eq(gale_detokenizer_push(d, ids.ids[i], &piece, &len), GALE_OK);
        cr_assert(utf8_is_valid((const uint8_t *)piece, len), "piece %zu is not whole UTF-8", i);
        held += len == 0;
    }
    cr_assert_gt(held, 0, "no token was held back: the text has no byte-fallback characters?");
    gale_detokenizer_free(d);
    gale_tokens_free(&ids);
    gale_tokenizer_free(t);
}

Test(tokenizer_input, unfinished_character_flushes_as_replacement) {
    gale_tokenizer *t = load("tokenizer/llama2_style");
    char name[] = "<0xE2>";
    int32_t id = vocab_find(&t->vocab, name, 6);
    cr_assert_geq(id, 0);
    gale_detokenizer *d;
    cr_assert_eq(gale_detokenizer_new(t, false, &d), GALE_OK);
    const char *piece;
    size_t len;
    cr_assert_eq(gale_detokenizer_push(d, id, &piece, &len), GALE_OK);
    cr_assert_eq(len, 0, "a lone lead byte must be held");
    cr_assert_eq(gale_detokenizer_flush(d, &piece, &len), GALE_OK);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(piece, "\xEF\xBF\xBD", 3), 0);
    gale_detokenizer_free(d);
    gale_tokenizer_free(t);
}

Test(tokenizer_input, ids_outside_the_vocabulary) {
    gale_tokenizer *t = load("tokenizer/smollm2");
    int32_t ids[] = {1, 49152};
    char *text;
    size_t len;
    assert_error(gale_tokenizer_decode(t, ids, 2, false, &text, &len), GALE_ERR_INVALID_ARG, "49152");
    gale_detokenizer *d;
    const char *piece;
    cr_assert_eq(gale_detokenizer_new(t, false, &d), GALE_OK);
    assert_error(gale_detokenizer_push(d, -1, &piece, &len), GALE_ERR_INVALID_ARG, "-1");
    gale_detokenizer_free(d);
    gale_tokenizer_free(t);
}

/* ---- malformed tokenizer.json ---- */

#define VOCAB "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"<s>\": 3}"

typedef struct bad_json {
    const char *json;
    gale_status status;
    const char *needle;
} bad_json;

static bad_json bad_json_cases[] = {
    {"{\"model\": ", GALE_ERR_FORMAT, "not valid JSON"},
    {"[]", GALE_ERR_FORMAT, "not a JSON object"},
    {"{\"added_tokens\": []}", GALE_ERR_MISSING, "model"},
    {"{\"model\": {\"type\": \"WordPiece\", " VOCAB "}}", GALE_ERR_UNSUPPORTED, "WordPiece"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": [\"a c\"]}}", GALE_ERR_FORMAT, "\"c\", which is not in the vocabulary"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": [\"b a\"]}}", GALE_ERR_FORMAT, "\"ba\", which is not in the vocabulary"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": [\"ab\"]}}", GALE_ERR_FORMAT, "not two pieces"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": [[\"a\"]]}}", GALE_ERR_FORMAT, "merge 0"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": 7}}", GALE_ERR_FORMAT, "merges must be a list"},
    {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", GALE_ERR_FORMAT, "not a token id"},
    {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1e63}, \"merges\": []}}", GALE_ERR_FORMAT, "not a token id"},
    {"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", GALE_ERR_FORMAT, "vocabulary is empty"},
    {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0.5}, \"merges\": []}}", GALE_ERR_FORMAT, "not a token id"},
    {"{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", GALE_ERR_FORMAT, "vocab must be an object"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": [], \"unk_token\": \"<unk>\"}}", GALE_ERR_FORMAT, "unk_token"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": []}, \"added_tokens\": [{\"content\": \"<x>\"}]}",
     GALE_ERR_FORMAT, "needs an \"id\""},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": []}, \"normalizer\": {\"type\": \"NFKC\"}}",
     GALE_ERR_UNSUPPORTED, "NFKC"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": []}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
     GALE_ERR_UNSUPPORTED, "BertPreTokenizer"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", "
     "\"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}", GALE_ERR_UNSUPPORTED, "does not compile"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", "
     "\"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Sideways\"}}", GALE_ERR_UNSUPPORTED, "Sideways"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": []}, \"decoder\": {\"type\": \"WordPiece\"}}",
     GALE_ERR_UNSUPPORTED, "WordPiece"},
    {"{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": []}, \"post_processor\": {\"type\": \"TemplateProcessing\", "
     "\"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}], \"special_tokens\": {\"<s>\": {\"ids\": [99]}}}}",
     GALE_ERR_FORMAT, "bad id"},
};

ParameterizedTestParameters(tokenizer_input, malformed_tokenizer_json) {
    return index_params(sizeof bad_json_cases / sizeof bad_json_cases[0]);
}

ParameterizedTest(size_t *index, tokenizer_input, malformed_tokenizer_json) {
    const bad_json *c = &bad_json_cases[*index];
    gale_tokenizer *t = tokenizer_alloc("bad/tokenizer.json");
    assert_error(tokenizer_load_json_text(t, c->json, strlen(c->json), NULL, 0), c->status, c->needle);
    gale_tokenizer_free(t);
}

Test(tokenizer_input, a_minimal_tokenizer_json_loads_and_merges) {
    static const char json[] = "{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": [[\"a\", \"b\"]]}, "
                               "\"added_tokens\": [{\"id\": 3, \"content\": \"<s>\", \"special\": true}]}";
    gale_tokenizer *t = tokenizer_alloc("mini/tokenizer.json");
    cr_assert_eq(tokenizer_load_json_text(t, json, strlen(json), NULL, 0), GALE_OK, "%s", gale_last_error());
    gale_tokens ids = {0};
    cr_assert_eq(gale_tokenizer_encode(t, "ab<s>ba", 7, false, &ids), GALE_OK);
    int32_t want[] = {2, 3, 1, 0};
    cr_assert_eq(ids.count, 4);
    cr_assert_arr_eq(ids.ids, want, sizeof want);
    gale_tokens_free(&ids);
    gale_tokenizer_free(t);
}

Test(tokenizer_input, missing_files_are_named) {
    gale_tokenizer *t;
    char *dir = make_temp_dir();
    assert_error(gale_tokenizer_load(dir, &t), GALE_ERR_IO, "tokenizer.json");
    assert_error(gale_tokenizer_load("/nonexistent/model.gguf", &t), GALE_ERR_IO, "/nonexistent/model.gguf");
    remove_tree(dir);
    free(dir);
}
