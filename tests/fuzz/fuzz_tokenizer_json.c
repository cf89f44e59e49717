/* Fuzz target: tokenizer.json text → tokenizer; when it loads, encode and decode a
 * sample with it. Must never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer/tokenizer_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gale_tokenizer *t = tokenizer_alloc("fuzz/tokenizer.json");
    if (!t) return 0;
    if (tokenizer_load_json_text(t, (const char *)data, size, NULL, 0) == GALE_OK) {
        static const char sample[] = "Hello  wörld 123 <s> 👩🏽‍💻\n\tend";
        gale_tokens ids = {0};
        if (gale_tokenizer_encode(t, sample, sizeof sample - 1, true, &ids) == GALE_OK) {
            char *text;
            size_t len;
            if (gale_tokenizer_decode(t, ids.ids, ids.count, false, &text, &len) == GALE_OK) free(text);
        }
        gale_tokens_free(&ids);
    }
    gale_tokenizer_free(t);
    return 0;
}
