/* 16-bit float conversions, checked by properties over every bit pattern rather than
 * a handful of hand-picked values. */
#include <criterion/criterion.h>
#include <math.h>

#include "core/dtype.h"

Test(dtype, f16_round_trips_every_finite_value) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            cr_assert(isnan(f16_to_f32(f32_to_f16(f))), "NaN %04x must stay NaN", h);
            continue;
        }
        cr_assert_eq(f32_to_f16(f), (uint16_t)h, "f16 %04x -> %g -> %04x", h, (double)f, f32_to_f16(f));
    }
}

Test(dtype, f16_decoding_is_monotonic_and_exact) {
    /* consecutive positive patterns are consecutive representable values: the gap is
     * 2^-24 in the subnormal range and doubles with each binade */
    for (uint32_t h = 1; h < 0x7c00; h++) {
        float lo = f16_to_f32((uint16_t)(h - 1)), hi = f16_to_f32((uint16_t)h);
        int exponent = (int)(h >> 10);
        float gap = exponent <= 1 ? 0x1p-24f : ldexpf(1.0f, exponent - 25);
        if ((h & 0x3ff) == 0 && exponent > 1) gap = ldexpf(1.0f, exponent - 26);
        cr_assert_eq(hi - lo, gap, "gap below %04x", h);
        cr_assert_eq(f16_to_f32((uint16_t)(h | 0x8000)), -hi);
    }
    cr_assert(isinf(f16_to_f32(0x7c00)));
}

Test(dtype, f32_to_f16_rounds_to_nearest_even) {
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float lo = f16_to_f32((uint16_t)h), hi = f16_to_f32((uint16_t)(h + 1));
        float mid = lo + (hi - lo) / 2; /* exact in fp32 */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        cr_assert_eq(f32_to_f16(mid), even, "midpoint above %04x", h);
        cr_assert_eq(f32_to_f16(nextafterf(mid, 0)), (uint16_t)h);
        cr_assert_eq(f32_to_f16(nextafterf(mid, INFINITY)), (uint16_t)(h + 1));
    }
    cr_assert_eq(f32_to_f16(1e6f), 0x7c00);
}

Test(dtype, bf16_round_trips_and_rounds_to_nearest_even) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_f32((uint16_t)h);
        if (isnan(f)) {
            cr_assert(isnan(bf16_to_f32(f32_to_bf16(f))));
            continue;
        }
        cr_assert_eq(f32_to_bf16(f), (uint16_t)h);
        if ((h & 0x7fff) >= 0x7f7f) continue; /* next value is Inf/NaN */
        uint32_t bits = (h << 16) | 0x8000u; /* exactly halfway to the next bf16 */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        cr_assert_eq(f32_to_bf16(f32_from_bits(bits)), even, "halfway above %04x", h);
        cr_assert_eq(f32_to_bf16(f32_from_bits(bits + 1)), (uint16_t)(h + 1));
    }
}

Test(dtype, block_geometry) {
    uint64_t bytes;
    cr_assert(dtype_row_bytes(GALE_Q4_K, 512, &bytes));
    cr_assert_eq(bytes, 2 * 144);
    cr_assert_not(dtype_row_bytes(GALE_Q4_K, 500, &bytes), "partial block accepted");
    cr_assert_not(dtype_row_bytes(GALE_Q8_0, UINT64_MAX - UINT64_MAX % 32, &bytes), "overflow accepted");
    cr_assert_null(dtype_get_info(GALE_DTYPE_COUNT));
}
