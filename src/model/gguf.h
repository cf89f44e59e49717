/* GGUF v3 reader (REFERENCE.md §6): every length, count and offset is checked against
 * the file before use, so a lying header gives an error, never a read out of bounds. */
#ifndef GALE_MODEL_GGUF_H
#define GALE_MODEL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mapped_file.h"
#include "gale.h"

typedef enum gguf_value_type {
    GGUF_TYPE_U8 = 0, GGUF_TYPE_I8 = 1, GGUF_TYPE_U16 = 2, GGUF_TYPE_I16 = 3,
    GGUF_TYPE_U32 = 4, GGUF_TYPE_I32 = 5, GGUF_TYPE_F32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_U64 = 10, GGUF_TYPE_I64 = 11,
    GGUF_TYPE_F64 = 12, GGUF_TYPE_COUNT
} gguf_value_type;

typedef struct gguf_string {
    const char *ptr; /* into the file, NOT NUL-terminated */
    uint64_t len;
} gguf_string;

typedef struct gguf_kv {
    gguf_string key;
    gguf_value_type type;
    union {
        uint64_t u;   /* U8..U64, BOOL */
        int64_t i;    /* I8..I64 */
        double f;     /* F32, F64 */
        gguf_string str;
        struct {
            gguf_value_type type;
            uint64_t count;
            const uint8_t *data; /* first element in the file */
            uint64_t nbytes;     /* all elements */
        } arr;
    } v;
} gguf_kv;

enum { GGUF_MAX_DIMS = 4 };

typedef struct gguf_tensor_info {
    gguf_string name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* innermost first, as ggml writes it */
    uint32_t ggml_type;
    gale_dtype dtype;           /* mapped from ggml_type */
    uint64_t offset;            /* from the start of the data section */
    uint64_t nbytes;
} gguf_tensor_info;

typedef struct gguf_file {
    const char *name; /* for messages (borrowed path) */
    uint32_t version;
    gguf_kv *kvs;     /* [n_kv] */
    uint64_t n_kv;
    gguf_tensor_info *tensors; /* [n_tensors] */
    uint64_t n_tensors;
    uint64_t alignment;
    const uint8_t *data; /* start of the tensor data section */
    uint64_t data_size;
    mapped_file file;    /* set by gguf_open */
} gguf_file;

/* Parses a GGUF image held in memory (the fuzz target's entry point); name is used in
 * messages. On success out borrows buf. */
gale_status gguf_parse(const uint8_t *buf, size_t size, const char *name, gguf_file *out);
gale_status gguf_open(const char *path, gguf_file *out);
void gguf_close(gguf_file *file);

const gguf_kv *gguf_find(const gguf_file *file, const char *key);
bool gguf_string_equals(gguf_string s, const char *text);
/* Heap copy with a NUL (NULL on OOM). */
char *gguf_string_dup(gguf_string s);

/* Typed look-ups. A missing key gives GALE_ERR_MISSING; a value of the wrong type or
 * out of range gives GALE_ERR_FORMAT naming the key. Integers of any width and sign are
 * accepted where the value fits. */
gale_status gguf_get_i64(const gguf_file *file, const char *key, int64_t *out);
gale_status gguf_get_f64(const gguf_file *file, const char *key, double *out);
gale_status gguf_get_bool(const gguf_file *file, const char *key, bool *out);
gale_status gguf_get_string(const gguf_file *file, const char *key, gguf_string *out);
/* Element i of a numeric array value (count checked). */
gale_status gguf_array_get_i64(const gguf_kv *kv, uint64_t index, int64_t *out);
/* Walks a string array: *cursor starts at 0; returns the next string. */
gale_status gguf_array_next_string(const gguf_kv *kv, uint64_t *cursor, gguf_string *out);

const gguf_tensor_info *gguf_find_tensor(const gguf_file *file, const char *name);
static inline const uint8_t *gguf_tensor_data(const gguf_file *file, const gguf_tensor_info *t) {
    return file->data + t->offset;
}

#endif
