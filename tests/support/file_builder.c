#include "file_builder.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mapped_file.h"
#include "test_support.h"

void bb_put(byte_buf *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        b->data = realloc(b->data, cap);
        cr_assert_not_null(b->data);
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
}

void bb_u32(byte_buf *b, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    bb_put(b, le, 4);
}

void bb_u64(byte_buf *b, uint64_t v) {
    bb_u32(b, (uint32_t)v);
    bb_u32(b, (uint32_t)(v >> 32));
}

void bb_f32(byte_buf *b, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bb_u32(b, bits);
}

void bb_gguf_str(byte_buf *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}

void bb_free(byte_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void build_safetensors(byte_buf *out, const char *header_json, const void *data, size_t data_len) {
    bb_u64(out, strlen(header_json));
    bb_put(out, header_json, strlen(header_json));
    bb_put(out, data, data_len);
}

static void gb_key(gguf_builder *g, const char *key, uint32_t type) {
    bb_gguf_str(&g->kv, key);
    bb_u32(&g->kv, type);
    g->n_kv++;
}

void gb_kv_string(gguf_builder *g, const char *key, const char *value) {
    gb_key(g, key, 8);
    bb_gguf_str(&g->kv, value);
}

void gb_kv_u32(gguf_builder *g, const char *key, uint32_t value) {
    gb_key(g, key, 4);
    bb_u32(&g->kv, value);
}

void gb_kv_f32(gguf_builder *g, const char *key, float value) {
    gb_key(g, key, 6);
    bb_f32(&g->kv, value);
}

void gb_tensor(gguf_builder *g, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t ggml_type,
               const void *data, size_t nbytes) {
    static const uint8_t zeros[32];
    if (g->data.len % 32) bb_put(&g->data, zeros, 32 - g->data.len % 32);
    bb_gguf_str(&g->infos, name);
    bb_u32(&g->infos, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) bb_u64(&g->infos, ne[d]);
    bb_u32(&g->infos, ggml_type);
    bb_u64(&g->infos, g->data.len);
    bb_put(&g->data, data, nbytes);
    g->n_tensors++;
}

void gb_finish(gguf_builder *g, byte_buf *out) {
    static const uint8_t zeros[32];
    bb_put(out, "GGUF", 4);
    bb_u32(out, 3);
    bb_u64(out, g->n_tensors);
    bb_u64(out, g->n_kv);
    bb_put(out, g->kv.data, g->kv.len);
    bb_put(out, g->infos.data, g->infos.len);
    if (out->len % 32) bb_put(out, zeros, 32 - out->len % 32);
    bb_put(out, g->data.data, g->data.len);
}

void gb_free(gguf_builder *g) {
    bb_free(&g->kv);
    bb_free(&g->infos);
    bb_free(&g->data);
}

static const char tiny_llama_config[] =
    "{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
    " \"num_key_value_heads\": 1, \"intermediate_size\": 16, \"vocab_size\": 12, \"rms_norm_eps\": 1e-5,"
    " \"tie_word_embeddings\": false}";

typedef struct tiny_tensor {
    const char *name;
    int n_dims;
    int shape[2];
} tiny_tensor;

static const tiny_tensor tiny_llama_tensors[] = {
    {"model.embed_tokens.weight", 2, {12, 8}},
    {"model.norm.weight", 1, {8, 0}},
    {"lm_head.weight", 2, {12, 8}},
    {"model.layers.0.input_layernorm.weight", 1, {8, 0}},
    {"model.layers.0.post_attention_layernorm.weight", 1, {8, 0}},
    {"model.layers.0.self_attn.q_proj.weight", 2, {8, 8}},
    {"model.layers.0.self_attn.k_proj.weight", 2, {4, 8}},
    {"model.layers.0.self_attn.v_proj.weight", 2, {4, 8}},
    {"model.layers.0.self_attn.o_proj.weight", 2, {8, 8}},
    {"model.layers.0.mlp.gate_proj.weight", 2, {16, 8}},
    {"model.layers.0.mlp.up_proj.weight", 2, {16, 8}},
    {"model.layers.0.mlp.down_proj.weight", 2, {8, 16}},
};

static bool same(const char *a, const char *b) { return a && strcmp(a, b) == 0; }

void write_tiny_llama(const char *dir, const tiny_llama_options *opts) {
    const tiny_llama_options none = {0};
    if (!opts) opts = &none;
    char header[8192];
    size_t pos = (size_t)snprintf(header, sizeof header, "{");
    uint64_t offset = 0;
    for (size_t i = 0; i < sizeof tiny_llama_tensors / sizeof tiny_llama_tensors[0]; i++) {
        const tiny_tensor *t = &tiny_llama_tensors[i];
        if (same(opts->drop_tensor, t->name)) continue;
        bool reshape = same(opts->reshape_tensor, t->name), retype = same(opts->retype_tensor, t->name);
        int rows = reshape ? 3 : t->shape[0], cols = reshape ? 5 : (t->n_dims == 2 ? t->shape[1] : 1);
        int n_dims = reshape ? 2 : t->n_dims;
        uint64_t bytes = (uint64_t)rows * (uint64_t)cols * (retype ? 8 : 4);
        char shape[32];
        if (n_dims == 2) snprintf(shape, sizeof shape, "[%d, %d]", rows, cols);
        else snprintf(shape, sizeof shape, "[%d]", rows);
        pos += (size_t)snprintf(header + pos, sizeof header - pos,
                                "%s\"%s\": {\"dtype\": \"%s\", \"shape\": %s, \"data_offsets\": [%llu, %llu]}",
                                pos > 1 ? ", " : "", t->name, retype ? "I64" : "F32", shape,
                                (unsigned long long)offset, (unsigned long long)(offset + bytes));
        offset += bytes;
    }
    if (opts->extra_tensor) {
        pos += (size_t)snprintf(header + pos, sizeof header - pos,
                                ", \"%s\": {\"dtype\": \"F32\", \"shape\": [8], \"data_offsets\": [%llu, %llu]}",
                                opts->extra_tensor, (unsigned long long)offset, (unsigned long long)(offset + 32));
        offset += 32;
    }
    snprintf(header + pos, sizeof header - pos, "}");
    uint8_t *zeros = calloc(1, offset);
    byte_buf file = {0};
    build_safetensors(&file, header, zeros, offset);
    char *path = path_join(dir, "model.safetensors");
    write_file(path, file.data, file.len);
    free(path);
    free(zeros);
    bb_free(&file);
    write_text_file(dir, "config.json", opts->config_json ? opts->config_json : tiny_llama_config);
}
