/* A tensor descriptor: dtype, shape and where the bytes are. It owns nothing. */
#ifndef GALE_CORE_TENSOR_H
#define GALE_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gale.h"

enum { TENSOR_MAX_DIMS = 4 };

typedef struct gale_tensor {
    gale_dtype dtype;
    int n_dims;
    int64_t shape[TENSOR_MAX_DIMS]; /* outermost first, Hugging Face order: a Linear is [out, in] */
    const void *data;               /* host memory (a file mapping or an owned buffer) */
    uint64_t nbytes;
} gale_tensor;

uint64_t tensor_numel(const gale_tensor *t);
/* Writes "[a, b, c]" into buf. */
const char *tensor_shape_str(const int64_t *shape, int n_dims, char *buf, size_t cap);
bool tensor_shape_equals(const gale_tensor *t, int n_dims, const int64_t *shape);

#endif
