/* Fuzz target: arbitrary bytes as text through real tokenizers (byte-level SmolLM2,
 * SentencePiece-style and Llama 3-style fixtures): encode, decode, and stream the ids
 * back. Also reads the input as token ids. Must never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gale.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static gale_tokenizer *tokenizers[3];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const char *const dirs[] = {GALE_FIXTURES "/tokenizer/smollm2", GALE_FIXTURES "/tokenizer/llama2_style",
                                       GALE_FIXTURES "/tokenizer/llama3_style"};
    for (int i = 0; i < 3; i++)
        if (gale_tokenizer_load(dirs[i], &tokenizers[i]) != GALE_OK) abort(); /* a broken fixture, not a finding */
    return 0;
}

static void stream(const gale_tokenizer *t, const int32_t *ids, size_t n) {
    gale_detokenizer *d;
    if (gale_detokenizer_new(t, n % 2 == 0, &d) != GALE_OK) return;
    const char *piece;
    size_t len;
    for (size_t i = 0; i < n; i++) gale_detokenizer_push(d, ids[i], &piece, &len);
    gale_detokenizer_flush(d, &piece, &len);
    gale_detokenizer_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int i = 0; i < 3; i++) {
        const gale_tokenizer *t = tokenizers[i];
        gale_tokens ids = {0};
        if (gale_tokenizer_encode(t, (const char *)data, size, true, &ids) == GALE_OK) {
            char *text;
            size_t len;
            if (gale_tokenizer_decode(t, ids.ids, ids.count, false, &text, &len) == GALE_OK) free(text);
            stream(t, ids.ids, ids.count);
        }
        gale_tokens_free(&ids);
        /* the bytes as ids: out-of-range ones must be refused, not read */
        size_t n = size / 4;
        int32_t *raw = malloc(n * sizeof *raw + 1);
        if (!raw) continue;
        memcpy(raw, data, n * sizeof *raw);
        for (size_t k = 0; k < n; k++) raw[k] %= gale_tokenizer_vocab_size(t) + 8;
        char *text;
        size_t len;
        if (gale_tokenizer_decode(t, raw, n, true, &text, &len) == GALE_OK) free(text);
        stream(t, raw, n);
        free(raw);
    }
    return 0;
}
