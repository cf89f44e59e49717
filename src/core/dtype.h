/* Element types: sizes, block geometry, and scalar conversions of 16-bit floats. */
#ifndef GALE_CORE_DTYPE_H
#define GALE_CORE_DTYPE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "gale.h"

/* Quantised types store block_elems values in block_bytes; plain types are blocks of 1. */
typedef struct dtype_info {
    const char *name;
    unsigned block_elems;
    unsigned block_bytes;
} dtype_info;

const dtype_info *dtype_get_info(gale_dtype dtype);
bool dtype_is_quantized(gale_dtype dtype);
/* Bytes of n_elems values; false when n_elems is not a whole number of blocks or the
 * size overflows. */
bool dtype_row_bytes(gale_dtype dtype, uint64_t n_elems, uint64_t *out_bytes);

static inline float f32_from_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint32_t f32_to_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

static inline float bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

/* Round to nearest even, as torch and CUDA's __float2bfloat16 do; NaN stays NaN. */
static inline uint16_t f32_to_bf16(float f) {
    uint32_t bits = f32_to_bits(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

/* Unaligned little-endian loads: file data is not aligned for its type. */
static inline uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t load_u64(const uint8_t *p) {
    return (uint64_t)load_u32(p) | ((uint64_t)load_u32(p + 4) << 32);
}
static inline float load_f32(const uint8_t *p) { return f32_from_bits(load_u32(p)); }

#endif
