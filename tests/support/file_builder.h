/* Builders of safetensors and GGUF images in memory, for bad-input tests: every field
 * can be made to lie. */
#ifndef GALE_TEST_FILE_BUILDER_H
#define GALE_TEST_FILE_BUILDER_H

#include <stddef.h>
#include <stdint.h>

typedef struct byte_buf {
    uint8_t *data;
    size_t len, cap;
} byte_buf;

void bb_put(byte_buf *b, const void *data, size_t n);
void bb_u32(byte_buf *b, uint32_t v);
void bb_u64(byte_buf *b, uint64_t v);
void bb_f32(byte_buf *b, float v);
/* GGUF string: u64 length + bytes */
void bb_gguf_str(byte_buf *b, const char *s);
void bb_free(byte_buf *b);

/* u64 header length + header_json + data */
void build_safetensors(byte_buf *out, const char *header_json, const void *data, size_t data_len);

typedef struct gguf_builder {
    byte_buf kv, infos, data;
    uint64_t n_kv, n_tensors;
} gguf_builder;

void gb_kv_string(gguf_builder *g, const char *key, const char *value);
void gb_kv_u32(gguf_builder *g, const char *key, uint32_t value);
void gb_kv_f32(gguf_builder *g, const char *key, float value);
/* Appends data at the next 32-byte aligned offset. ne is innermost first. */
void gb_tensor(gguf_builder *g, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t ggml_type,
               const void *data, size_t nbytes);
/* magic, version, counts, kvs, infos, padding to 32, data */
void gb_finish(gguf_builder *g, byte_buf *out);
void gb_free(gguf_builder *g);

/* A complete tiny llama as a Hugging Face directory (config.json + model.safetensors,
 * zero weights) written into dir, with hidden 8, 1 layer, 2 heads of 4, 1 kv head,
 * intermediate 16, vocab 12. The hooks bend one thing for a bad-input case. */
typedef struct tiny_llama_options {
    const char *drop_tensor;    /* omit this tensor */
    const char *reshape_tensor; /* give this tensor shape [3, 5] */
    const char *retype_tensor;  /* store this tensor as I64 */
    const char *config_json;    /* replaces the generated config.json when set */
    const char *extra_tensor;   /* one more tensor of shape [8] by this name */
} tiny_llama_options;

void write_tiny_llama(const char *dir, const tiny_llama_options *opts);

#endif
