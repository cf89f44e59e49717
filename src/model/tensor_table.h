/* Name → tensor index over every weight file of a model. Both sources (safetensors
 * and GGUF) fill one, with Hugging Face names and shapes, so binding has one path. */
#ifndef GALE_MODEL_TENSOR_TABLE_H
#define GALE_MODEL_TENSOR_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/tensor.h"

typedef struct tensor_entry {
    char *name;                    /* owned */
    gale_tensor tensor;
    const char *source;            /* file it came from, for messages (borrowed) */
    const char *unsupported_dtype; /* non-NULL: the file's dtype name gale cannot use ("I64") */
    bool bound;                    /* claimed by weight binding */
} tensor_entry;

typedef struct tensor_table {
    tensor_entry *entries; /* [count], sorted by name after tensor_table_finish */
    size_t count, cap;
    void **owned;          /* buffers the table frees (converted or re-ordered copies) */
    size_t n_owned, cap_owned;
} tensor_table;

/* Copies name; the tensor's data stays wherever it points. */
gale_status tensor_table_add(tensor_table *table, const char *name, const gale_tensor *tensor,
                             const char *source, const char *unsupported_dtype);
/* Sorts for lookup and rejects a name that appears twice. */
gale_status tensor_table_finish(tensor_table *table);
tensor_entry *tensor_table_find(const tensor_table *table, const char *name);
/* Hands buffer (malloc'd) to the table; on failure frees it and returns GALE_ERR_OOM. */
gale_status tensor_table_own(tensor_table *table, void *buffer);
void tensor_table_free(tensor_table *table);

#endif
