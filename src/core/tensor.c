#include "core/tensor.h"

#include <stdio.h>

#include "core/dtype.h"

uint64_t tensor_numel(const gale_tensor *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= (uint64_t)t->shape[i];
    return n;
}

const char *tensor_shape_str(const int64_t *shape, int n_dims, char *buf, size_t cap) {
    size_t pos = 0;
    pos += (size_t)snprintf(buf + pos, cap - pos, "[");
    for (int i = 0; i < n_dims && pos < cap; i++)
        pos += (size_t)snprintf(buf + pos, cap - pos, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (pos < cap) snprintf(buf + pos, cap - pos, "]");
    return buf;
}

bool tensor_shape_equals(const gale_tensor *t, int n_dims, const int64_t *shape) {
    if (t->n_dims != n_dims) return false;
    for (int i = 0; i < n_dims; i++)
        if (t->shape[i] != shape[i]) return false;
    return true;
}

void tensor_fill_host(const gale_tensor *t, uint16_t *dst) {
    const uint64_t count = tensor_numel(t);
    const float a = t->fill_amplitude;
    uint64_t rng = t->fill_seed | 1; /* xorshift's state must not be zero */
    for (uint64_t i = 0; i < count; i += 4) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        for (uint64_t k = 0; k < 4 && i + k < count; k++) {
            float u = (float)((rng >> (16 * k)) & 0xffffu) * 0x1p-16f; /* [0, 1) */
            dst[i + k] = f32_to_bf16((2 * u - 1) * a);
        }
    }
}
