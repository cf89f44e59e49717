#include "core/dtype.h"

#include <math.h>

static const dtype_info infos[GALE_DTYPE_COUNT] = {
    [GALE_F32] = {"F32", 1, 4},      [GALE_F16] = {"F16", 1, 2},
    [GALE_BF16] = {"BF16", 1, 2},    [GALE_Q8_0] = {"Q8_0", 32, 34},
    [GALE_Q4_0] = {"Q4_0", 32, 18},  [GALE_Q4_1] = {"Q4_1", 32, 20},
    [GALE_Q4_K] = {"Q4_K", 256, 144}, [GALE_Q5_K] = {"Q5_K", 256, 176},
    [GALE_Q6_K] = {"Q6_K", 256, 210},
    [GALE_Q5_0] = {"Q5_0", 32, 22},    [GALE_Q5_1] = {"Q5_1", 32, 24},
};

const dtype_info *dtype_get_info(gale_dtype dtype) {
    if ((unsigned)dtype >= GALE_DTYPE_COUNT) return NULL;
    return &infos[dtype];
}

const char *gale_dtype_name(gale_dtype dtype) {
    const dtype_info *info = dtype_get_info(dtype);
    return info ? info->name : "?";
}

bool dtype_is_quantized(gale_dtype dtype) {
    const dtype_info *info = dtype_get_info(dtype);
    return info && info->block_elems > 1;
}

bool dtype_row_bytes(gale_dtype dtype, uint64_t n_elems, uint64_t *out_bytes) {
    const dtype_info *info = dtype_get_info(dtype);
    if (!info || n_elems % info->block_elems != 0) return false;
    uint64_t blocks = n_elems / info->block_elems;
    if (blocks > UINT64_MAX / info->block_bytes) return false;
    *out_bytes = blocks * info->block_bytes;
    return true;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {
        /* zero or subnormal: mantissa · 2^-24, exact in fp32 */
        float magnitude = (float)mantissa * 0x1p-24f;
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) return f32_from_bits(sign | 0x7f800000u | (mantissa << 13));
    return f32_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

uint16_t f32_to_f16(float f) {
    uint32_t bits = f32_to_bits(f);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    float magnitude = fabsf(f);
    if (isnan(f)) return sign | 0x7e00u;
    if (magnitude >= 65520.0f) return sign | 0x7c00u; /* rounds to infinity */
    if (magnitude < 0x1p-14f) {
        /* subnormal range: units of 2^-24, round to nearest even */
        float units = magnitude * 0x1p24f;
        return sign | (uint16_t)lrintf(units);
    }
    uint32_t abs_bits = bits & 0x7fffffffu;
    uint32_t rounded = abs_bits + 0xfffu + ((abs_bits >> 13) & 1u);
    return sign | (uint16_t)((rounded - (112u << 23)) >> 13);
}
