/* Fuzz target: a GGUF image → metadata, tokenizer, config, Hugging Face tensor index. Must never
 * crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "model/config.h"
#include "model/gguf.h"
#include "model/gguf_names.h"
#include "model/quant.h"
#include "tokenizer/tokenizer_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_metadata(const gguf_file *g) {
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kvs[i];
        if (kv->type != GGUF_TYPE_ARRAY) continue;
        uint64_t cursor = 0;
        gguf_string s;
        for (uint64_t j = 0; j < kv->v.arr.count && j < 64; j++) {
            int64_t v;
            if (kv->v.arr.type == GGUF_TYPE_STRING) {
                if (gguf_array_next_string(kv, &cursor, &s) != GALE_OK) break;
            } else if (gguf_array_get_i64(kv, j, &v) != GALE_OK) {
                break;
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file g;
    if (gguf_parse(data, size, "fuzz.gguf", &g) != GALE_OK) return 0;
    walk_metadata(&g);
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        /* every accepted tensor must be readable in full */
        const gguf_tensor_info *t = &g.tensors[i];
        float out[4096];
        uint64_t numel = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        if (numel <= 4096) quant_dequantize_f32(t->dtype, gguf_tensor_data(&g, t), numel, out);
    }
    gale_tokenizer *t = tokenizer_alloc("fuzz.gguf");
    if (t && tokenizer_load_gguf(t, &g) == GALE_OK) {
        gale_tokens ids = {0};
        gale_tokenizer_encode(t, "Hello world 123 <s>", 19, true, &ids);
        gale_tokens_free(&ids);
    }
    gale_tokenizer_free(t);
    gale_config config;
    if (config_from_gguf(&g, &config) == GALE_OK) {
        tensor_table table = {0};
        gguf_build_tensor_table(&g, &config, false, &table);
        tensor_table_free(&table);
        config_free(&config);
    }
    gguf_close(&g);
    return 0;
}
