/* Tokenizer against Hugging Face: every string of the corpus (tests/fixtures/tokenizer/
 * corpus.json) must encode to exactly the ids transformers produced, with and without
 * special tokens, and decode (whole or streamed one id at a time) to the same text.
 * Fixtures: tests/tools/make_tokenizer_fixtures.py. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

typedef struct tokenizer_case {
    const char *name;     /* for messages */
    const char *source;   /* relative to fixtures/, or an absolute model path */
    const char *expected; /* fixtures-relative expected.json */
    bool digits_split;    /* GGUF "smollm": digits apart, as the original SmolLM2 tokenizer */
} tokenizer_case;

static const tokenizer_case cases[] = {
    {"smollm2 tokenizer.json", "tokenizer/smollm2", "tokenizer/smollm2/expected.json", false},
    {"smollm2 GGUF", GALE_SMOLLM2_GGUF, "tokenizer/smollm2/expected.json", true},
    {"gemma3 GGUF", GALE_GEMMA3_GGUF, "tokenizer/gemma3/expected.json", false},
    {"llama2-style tokenizer.json", "tokenizer/llama2_style", "tokenizer/llama2_style/expected.json", false},
    {"mistral Metaspace tokenizer.json", "tokenizer/mistral_metaspace", "tokenizer/mistral_metaspace/expected.json", false},
    {"llama3-style tokenizer.json", "tokenizer/llama3_style", "tokenizer/llama3_style/expected.json", false},
    {"llama3-style GGUF", "gguf/llama3_style_tokenizer.gguf", "tokenizer/llama3_style/expected.json", false},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static gale_tokenizer *load_case(const tokenizer_case *c) {
    const char *path = c->source[0] == '/' ? c->source : fixture(c->source);
    gale_tokenizer *t = NULL;
    cr_assert_eq(gale_tokenizer_load(path, &t), GALE_OK, "%s: %s", c->name, gale_last_error());
    return t;
}

static cJSON *corpus(void) { return load_json(fixture("tokenizer/corpus.json")); }

/* The expected ids of string i: the original SmolLM2 split (digits apart) where it differs. */
static const cJSON *expected_ids(const tokenizer_case *c, const cJSON *e, const char *key, int i) {
    /* no BOS/EOS for SmolLM2, so the override serves ids_with_special too */
    if (c->digits_split) {
        const cJSON *digits = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "digits_pretokenizer"), "ids");
        char index[16];
        snprintf(index, sizeof index, "%d", i);
        const cJSON *override = cJSON_GetObjectItemCaseSensitive(digits, index);
        if (override) return override;
    }
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, key), i);
}

static void check_ids(const tokenizer_case *c, const char *key, bool add_special) {
    gale_tokenizer *t = load_case(c);
    cJSON *texts = corpus(), *e = load_json(fixture(c->expected));
    gale_tokens tokens = {0};
    int n = cJSON_GetArraySize(texts), mismatches = 0;
    cr_assert_geq(n, 200);
    for (int i = 0; i < n; i++) {
        const char *text = cJSON_GetArrayItem(texts, i)->valuestring;
        cr_assert_eq(gale_tokenizer_encode(t, text, strlen(text), add_special, &tokens), GALE_OK, "%s", gale_last_error());
        const cJSON *want = expected_ids(c, e, key, i);
        bool same = (int)tokens.count == cJSON_GetArraySize(want);
        for (size_t k = 0; same && k < tokens.count; k++) same = tokens.ids[k] == cJSON_GetArrayItem(want, (int)k)->valueint;
        if (!same && mismatches++ < 3) {
            char *w = cJSON_PrintUnformatted(want);
            fprintf(stderr, "%s %s: string %d \"%.60s\": got %zu ids, want %.300s\ngot:", c->name, key, i, text,
                    tokens.count, w);
            for (size_t k = 0; k < tokens.count && k < 60; k++) fprintf(stderr, " %d", tokens.ids[k]);
            fprintf(stderr, "\n");
            free(w);
        }
    }
    cr_assert_eq(mismatches, 0, "%s: %d of %d strings encode differently from transformers (%s)", c->name, mismatches,
                 n, key);
    gale_tokens_free(&tokens);
    cJSON_Delete(texts);
    cJSON_Delete(e);
    gale_tokenizer_free(t);
}

/* hard_cases.json: strings a differential test found gale splitting differently from
 * transformers — characters a byte-level vocabulary lacks (dropped, the neighbours merging
 * across the gap; an error, or <|endoftext|> from the GGUF's unknown id, before), U+180E
 * (not white space since Unicode 6.3; PCRE2's \s took it) and Unicode white space around
 * an added token with lstrip/rstrip (only ASCII was stripped) — for each committed
 * tokenizer.json, and the SmolLM2 GGUF against its tokenizer.json (no digits in them). */
static void check_hard_cases(const char *name, const char *source, const char *expected_key) {
    gale_tokenizer *t = NULL;
    const char *path = source[0] == '/' ? source : fixture(source);
    cr_assert_eq(gale_tokenizer_load(path, &t), GALE_OK, "%s: %s", name, gale_last_error());
    cJSON *root = load_json(fixture("tokenizer/hard_cases.json"));
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(root, "strings");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, expected_key);
    cr_assert_not_null(e, "hard_cases.json has no %s", expected_key);
    gale_tokens tokens = {0};
    for (int special = 0; special < 2; special++) {
        const cJSON *all = cJSON_GetObjectItemCaseSensitive(e, special ? "ids_with_special" : "ids");
        for (int i = 0; i < cJSON_GetArraySize(texts); i++) {
            const char *text = cJSON_GetArrayItem(texts, i)->valuestring;
            cr_assert_eq(gale_tokenizer_encode(t, text, strlen(text), special, &tokens), GALE_OK, "%s: string %d: %s",
                         name, i, gale_last_error());
            const cJSON *want = cJSON_GetArrayItem(all, i);
            cr_assert_eq((int)tokens.count, cJSON_GetArraySize(want), "%s: hard case %d (special %d): %zu ids, want %d",
                         name, i, special, tokens.count, cJSON_GetArraySize(want));
            for (size_t k = 0; k < tokens.count; k++)
                cr_assert_eq(tokens.ids[k], cJSON_GetArrayItem(want, (int)k)->valueint, "%s: hard case %d id %zu", name, i,
                             k);
        }
    }
    gale_tokens_free(&tokens);
    cJSON_Delete(root);
    gale_tokenizer_free(t);
}

Test(tokenizer, hard_cases_match_transformers) {
    check_hard_cases("smollm2 tokenizer.json", "tokenizer/smollm2", "smollm2");
    check_hard_cases("smollm2 GGUF", GALE_SMOLLM2_GGUF, "smollm2");
    check_hard_cases("llama3-style tokenizer.json", "tokenizer/llama3_style", "llama3_style");
    check_hard_cases("llama3-style GGUF", "gguf/llama3_style_tokenizer.gguf", "llama3_style");
    check_hard_cases("llama3-style, <|eot_id|> with lstrip and rstrip", "tokenizer/llama3_strip", "llama3_strip");
    check_hard_cases("llama2-style tokenizer.json", "tokenizer/llama2_style", "llama2_style");
    check_hard_cases("mistral Metaspace tokenizer.json", "tokenizer/mistral_metaspace", "mistral_metaspace");
}

/* Decoding the expected ids, whole and streamed id by id. */
static void check_decode(const tokenizer_case *c, bool skip_special) {
    gale_tokenizer *t = load_case(c);
    cJSON *e = load_json(fixture(c->expected));
    const cJSON *all_ids = cJSON_GetObjectItemCaseSensitive(e, "ids_with_special");
    const cJSON *decoded = cJSON_GetObjectItemCaseSensitive(e, skip_special ? "decoded_skip_special" : "decoded");
    int n = cJSON_GetArraySize(all_ids), mismatches = 0;
    for (int i = 0; i < n; i++) {
        /* decoded / decoded_skip_special were made from the ids without special tokens */
        const cJSON *id_list = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "ids"), i);
        size_t count = (size_t)cJSON_GetArraySize(id_list);
        int32_t *ids = malloc((count + 1) * sizeof *ids);
        for (size_t k = 0; k < count; k++) ids[k] = cJSON_GetArrayItem(id_list, (int)k)->valueint;
        const char *want = cJSON_GetArrayItem(decoded, i)->valuestring;
        char *text;
        size_t len;
        cr_assert_eq(gale_tokenizer_decode(t, ids, count, skip_special, &text, &len), GALE_OK, "%s", gale_last_error());
        bool whole_ok = len == strlen(want) && memcmp(text, want, len) == 0;
        /* streamed: the pieces concatenate to the same text, and none ends mid-character */
        gale_detokenizer *d;
        cr_assert_eq(gale_detokenizer_new(t, skip_special, &d), GALE_OK);
        size_t cap = strlen(want) * 4 + 64, streamed_len = 0;
        char *streamed = malloc(cap);
        for (size_t k = 0; k <= count; k++) {
            const char *piece;
            size_t piece_len;
            if (k < count) cr_assert_eq(gale_detokenizer_push(d, ids[k], &piece, &piece_len), GALE_OK);
            else cr_assert_eq(gale_detokenizer_flush(d, &piece, &piece_len), GALE_OK);
            if (streamed_len + piece_len < cap) memcpy(streamed + streamed_len, piece, piece_len);
            streamed_len += piece_len;
        }
        bool stream_ok = streamed_len == len && memcmp(streamed, text, len) == 0;
        if ((!whole_ok || !stream_ok) && mismatches++ < 3)
            fprintf(stderr, "%s decode (skip_special %d) string %d: got \"%.80s\" streamed \"%.*s\", want \"%.80s\"\n",
                    c->name, skip_special, i, text, (int)(streamed_len < 80 ? streamed_len : 80), streamed, want);
        gale_detokenizer_free(d);
        free(streamed);
        free(text);
        free(ids);
    }
    cr_assert_eq(mismatches, 0, "%s: %d strings decode differently from transformers", c->name, mismatches);
    cJSON_Delete(e);
    gale_tokenizer_free(t);
}

ParameterizedTestParameters(tokenizer, ids_match_transformers) { return index_params(N_CASES); }
ParameterizedTest(size_t *i, tokenizer, ids_match_transformers) { check_ids(&cases[*i], "ids", false); }

ParameterizedTestParameters(tokenizer, ids_with_special_match_transformers) { return index_params(N_CASES); }
ParameterizedTest(size_t *i, tokenizer, ids_with_special_match_transformers) {
    check_ids(&cases[*i], "ids_with_special", true);
}

ParameterizedTestParameters(tokenizer, decode_matches_transformers) { return index_params(N_CASES); }
ParameterizedTest(size_t *i, tokenizer, decode_matches_transformers) { check_decode(&cases[*i], false); }

ParameterizedTestParameters(tokenizer, decode_skip_special_matches_transformers) { return index_params(N_CASES); }
ParameterizedTest(size_t *i, tokenizer, decode_skip_special_matches_transformers) { check_decode(&cases[*i], true); }

/* ---- one megabyte: the text bench_tokenizer times, against Hugging Face's ids ---- */

/* The recipe of tests/tools/make_tokenizer_fixtures.py speed_text(): the corpus joined
 * with newlines, repeated, cut to 1,000,000 bytes at a character boundary. */
static char *megabyte_text(size_t *len) {
    cJSON *texts = corpus();
    size_t joined = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, texts) joined += strlen(s->valuestring) + 1;
    char *text = malloc(1000000 + joined + 1);
    size_t n = 0;
    while (n < 1000000) {
        if (n) text[n++] = '\n';
        bool first = true;
        cJSON_ArrayForEach(s, texts) {
            if (!first) text[n++] = '\n';
            first = false;
            size_t k = strlen(s->valuestring);
            memcpy(text + n, s->valuestring, k);
            n += k;
        }
    }
    n = 1000000;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--;
    text[n] = '\0';
    *len = n;
    cJSON_Delete(texts);
    return text;
}

static void check_megabyte(const tokenizer_case *c, const char *speed_key) {
    gale_tokenizer *t = load_case(c);
    size_t len;
    char *text = megabyte_text(&len);
    gale_tokens ids = {0};
    cr_assert_eq(gale_tokenizer_encode(t, text, len, false, &ids), GALE_OK);
    cJSON *speed = load_json(fixture("tokenizer/speed.json"));
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(speed, "tokenizers"), speed_key);
    cr_assert_eq(ids.count, (size_t)cJSON_GetObjectItemCaseSensitive(ref, "n_tokens")->valuedouble, "%s: token count",
                 c->name);
    /* FNV-1a over the ids as little-endian int32, as the fixture script hashes them */
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < ids.count; i++)
        for (int b = 0; b < 4; b++) h = (h ^ (((uint32_t)ids.ids[i] >> (8 * b)) & 0xFF)) * 0x100000001B3ull;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    cr_assert_str_eq(hex, cJSON_GetObjectItemCaseSensitive(ref, "ids_fnv1a64_le_int32")->valuestring,
                     "%s: the 1 MB text encodes to other ids than Hugging Face's", c->name);
    cJSON_Delete(speed);
    gale_tokens_free(&ids);
    free(text);
    gale_tokenizer_free(t);
}

Test(tokenizer, megabyte_smollm2_matches_hugging_face) { check_megabyte(&cases[0], "smollm2"); }
Test(tokenizer, megabyte_gemma3_gguf_matches_hugging_face) { check_megabyte(&cases[2], "gemma3"); }
