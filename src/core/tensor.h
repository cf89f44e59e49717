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
    /* Dummy weights (weights_bind_dummy): a bf16 matrix with data NULL whose values are
     * made up where the tensor is placed — uniform in [-fill_amplitude, fill_amplitude],
     * from fill_seed — so a GPU fills its copy with cuRAND and no host memory holds a
     * 90 GB model that does not exist. 0: an ordinary tensor. */
    float fill_amplitude;
    uint64_t fill_seed;
} gale_tensor;

static inline bool tensor_is_synthetic(const gale_tensor *t) { return !t->data && t->fill_amplitude > 0; }

uint64_t tensor_numel(const gale_tensor *t);
/* Writes "[a, b, c]" into buf. */
const char *tensor_shape_str(const int64_t *shape, int n_dims, char *buf, size_t cap);
bool tensor_shape_equals(const gale_tensor *t, int n_dims, const int64_t *shape);
/* A synthetic tensor's values on the host, as bf16 bits into dst[numel]: a xorshift
 * stream from fill_seed, four 16-bit uniforms per step (a 7B model's worth in seconds).
 * The GPU's fill (kernels.h: kernel_fill_uniform_bf16) draws other numbers from the same
 * distribution: dummy weights are for timing, not for comparing devices. */
void tensor_fill_host(const gale_tensor *t, uint16_t *dst);

#endif
