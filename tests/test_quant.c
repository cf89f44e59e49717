/* quant.c: block dequantisation against the python gguf package, and against blocks
 * packed by hand from the layouts of REFERENCE.md §6.
 *
 * Comparisons are bit-exact. quant.c performs the same fp32 operations in the same
 * order as gguf/quants.py, and FMA contraction could not change a result anyway: every
 * product that is followed by an addition is exact (an fp16 scale times a 6-bit scale
 * times a value of at most 5 bits fits in 24 bits), and Q6_K's inexact product has no
 * addition after it. A NaN never matches, not even another NaN. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/status.h"
#include "model/gguf.h"
#include "model/quant.h"
#include "model/safetensors.h"

#define QUANT_BLOCKS GALE_FIXTURES "/gguf/quant_blocks.gguf"
#define QUANT_EXPECTED GALE_FIXTURES "/gguf/quant_expected.safetensors"

enum { GUARD = 4 };
static const uint32_t GUARD_F32 = 0xdeadbeefu;
static const uint16_t GUARD_BF16 = 0xbeefu;

/* ---- comparison and guarded buffers ---------------------------------------------- */

static bool same_value(float got, float want) {
    return !isnan(got) && !isnan(want) && f32_to_bits(got) == f32_to_bits(want);
}

/* n floats followed by GUARD guard words. */
static float *alloc_f32(uint64_t n) {
    float *p = malloc((n + GUARD) * sizeof *p);
    cr_assert_not_null(p);
    for (uint64_t i = 0; i < n + GUARD; i++) p[i] = f32_from_bits(GUARD_F32);
    return p;
}

static uint16_t *alloc_bf16(uint64_t n) {
    uint16_t *p = malloc((n + GUARD) * sizeof *p);
    cr_assert_not_null(p);
    for (uint64_t i = 0; i < n + GUARD; i++) p[i] = GUARD_BF16;
    return p;
}

static void check_guard_f32(const float *p, uint64_t n, const char *what) {
    for (int i = 0; i < GUARD; i++)
        cr_assert_eq(f32_to_bits(p[n + i]), GUARD_F32, "%s: wrote past the end of its output", what);
}

static void check_guard_bf16(const uint16_t *p, uint64_t n, const char *what) {
    for (int i = 0; i < GUARD; i++)
        cr_assert_eq(p[n + i], GUARD_BF16, "%s: wrote past the end of its output", what);
}

/* Asserts got[i] == want[i] bit for bit, naming the first difference. */
static void expect_same(const float *got, const float *want, uint64_t n, const char *what) {
    uint64_t bad = 0, first = 0;
    for (uint64_t i = 0; i < n; i++)
        if (!same_value(got[i], want[i]) && bad++ == 0) first = i;
    if (bad)
        cr_assert_fail("%s: %llu of %llu values differ; first at %llu: got %.9g (0x%08x), want %.9g (0x%08x)",
                what, (unsigned long long)bad, (unsigned long long)n, (unsigned long long)first,
                (double)got[first], f32_to_bits(got[first]), (double)want[first],
                f32_to_bits(want[first]));
}

static float *dequant_checked(gale_dtype dtype, const uint8_t *src, uint64_t n, const char *what) {
    float *out = alloc_f32(n);
    gale_status status = quant_dequantize_f32(dtype, src, n, out);
    cr_assert_eq(status, GALE_OK, "%s: %s", what, gale_last_error());
    check_guard_f32(out, n, what);
    return out;
}

/* ---- the fixture: blocks written by the gguf package, and what it dequantised ----- */

typedef struct fixture {
    gguf_file gguf;
    safetensors_set set;
    tensor_table table;
} fixture;

static void fixture_open(fixture *f) {
    memset(f, 0, sizeof *f);
    gale_status status = gguf_open(QUANT_BLOCKS, &f->gguf);
    cr_assert_eq(status, GALE_OK, "%s: %s (made by tests/tools)", QUANT_BLOCKS, gale_last_error());
    status = safetensors_open_file(QUANT_EXPECTED, &f->set, &f->table);
    if (status == GALE_OK) status = tensor_table_finish(&f->table);
    cr_assert_eq(status, GALE_OK, "%s: %s", QUANT_EXPECTED, gale_last_error());
    cr_assert_gt(f->gguf.n_tensors, 0, "%s has no tensors", QUANT_BLOCKS);
}

static void fixture_close(fixture *f) {
    tensor_table_free(&f->table);
    safetensors_set_close(&f->set);
    gguf_close(&f->gguf);
}

/* One tensor of the fixture: its blocks and the expected fp32 values (copied, since the
 * safetensors data need not be aligned for float). */
typedef struct case_data {
    char name[128];
    gale_dtype dtype;
    const uint8_t *blocks;
    uint64_t n;
    float *want; /* [n] */
} case_data;

static void case_load(const fixture *f, uint64_t index, case_data *c) {
    const gguf_tensor_info *info = &f->gguf.tensors[index];
    cr_assert_lt(info->name.len, sizeof c->name, "tensor name too long");
    memcpy(c->name, info->name.ptr, info->name.len);
    c->name[info->name.len] = '\0';
    c->dtype = info->dtype;
    c->blocks = gguf_tensor_data(&f->gguf, info);
    c->n = 1;
    for (uint32_t d = 0; d < info->n_dims; d++) c->n *= info->ne[d];
    uint64_t nbytes = 0;
    cr_assert(dtype_row_bytes(c->dtype, c->n, &nbytes) && nbytes == info->nbytes,
              "%s: %llu values of %s do not fill %llu bytes", c->name, (unsigned long long)c->n,
              gale_dtype_name(c->dtype), (unsigned long long)info->nbytes);

    const tensor_entry *e = tensor_table_find(&f->table, c->name);
    cr_assert_not_null(e, "%s: no tensor '%s'", QUANT_EXPECTED, c->name);
    cr_assert(e->tensor.dtype == GALE_F32 && !e->unsupported_dtype, "%s: '%s' is not F32",
              QUANT_EXPECTED, c->name);
    cr_assert_eq(tensor_numel(&e->tensor), c->n, "%s: '%s' has %llu values, the GGUF %llu",
                 QUANT_EXPECTED, c->name, (unsigned long long)tensor_numel(&e->tensor),
                 (unsigned long long)c->n);
    c->want = malloc(c->n * sizeof *c->want);
    cr_assert_not_null(c->want);
    const uint8_t *bytes = e->tensor.data;
    for (uint64_t i = 0; i < c->n; i++) c->want[i] = load_f32(bytes + 4 * i);
}

static void describe(const case_data *c, char *buf, size_t cap) {
    snprintf(buf, cap, "tensor '%s' (%s, %llu values)", c->name, gale_dtype_name(c->dtype),
             (unsigned long long)c->n);
}

Test(quant_fixture, f32_matches_gguf_package) {
    fixture f;
    fixture_open(&f);
    for (uint64_t t = 0; t < f.gguf.n_tensors; t++) {
        case_data c;
        char what[192];
        case_load(&f, t, &c);
        describe(&c, what, sizeof what);
        float *got = dequant_checked(c.dtype, c.blocks, c.n, what);
        expect_same(got, c.want, c.n, what);
        free(got);
        free(c.want);
    }
    fixture_close(&f);
}

Test(quant_fixture, covers_every_dtype) {
    fixture f;
    fixture_open(&f);
    bool seen[GALE_DTYPE_COUNT] = {false};
    for (uint64_t t = 0; t < f.gguf.n_tensors; t++) seen[f.gguf.tensors[t].dtype] = true;
    for (int d = 0; d < GALE_DTYPE_COUNT; d++)
        cr_expect(seen[d], "%s has no %s tensor", QUANT_BLOCKS, gale_dtype_name((gale_dtype)d));
    fixture_close(&f);
}

Test(quant_fixture, bf16_is_rounded_f32) {
    fixture f;
    fixture_open(&f);
    for (uint64_t t = 0; t < f.gguf.n_tensors; t++) {
        case_data c;
        char what[192];
        case_load(&f, t, &c);
        describe(&c, what, sizeof what);
        uint16_t *got = alloc_bf16(c.n);
        gale_status status = quant_dequantize_bf16(c.dtype, c.blocks, c.n, got);
        cr_assert_eq(status, GALE_OK, "%s: %s", what, gale_last_error());
        check_guard_bf16(got, c.n, what);
        for (uint64_t i = 0; i < c.n; i++) {
            cr_assert(!isnan(c.want[i]), "%s: expected value %llu is NaN", what,
                      (unsigned long long)i);
            cr_assert_eq(got[i], f32_to_bf16(c.want[i]), "%s: bf16 value %llu is 0x%04x, want 0x%04x",
                         what, (unsigned long long)i, got[i], f32_to_bf16(c.want[i]));
        }
        free(got);
        free(c.want);
    }
    fixture_close(&f);
}

Test(quant_fixture, tensor_to_f32_matches) {
    fixture f;
    fixture_open(&f);
    for (uint64_t t = 0; t < f.gguf.n_tensors; t++) {
        const gguf_tensor_info *info = &f.gguf.tensors[t];
        case_data c;
        char what[192];
        case_load(&f, t, &c);
        describe(&c, what, sizeof what);
        gale_tensor tensor = {.dtype = c.dtype, .n_dims = (int)info->n_dims, .data = c.blocks,
                              .nbytes = info->nbytes};
        for (uint32_t d = 0; d < info->n_dims; d++)
            tensor.shape[d] = (int64_t)info->ne[info->n_dims - 1 - d];
        float *got = alloc_f32(c.n);
        gale_status status = tensor_to_f32(&tensor, got);
        cr_assert_eq(status, GALE_OK, "%s: %s", what, gale_last_error());
        check_guard_f32(got, c.n, what);
        expect_same(got, c.want, c.n, what);

        tensor.nbytes -= 1; /* a tensor whose bytes do not cover its shape */
        status = tensor_to_f32(&tensor, got);
        cr_assert_eq(status, GALE_ERR_INVALID_ARG, "%s: short data accepted", what);
        cr_assert_neq(gale_last_error()[0], '\0');
        free(got);
        free(c.want);
    }
    fixture_close(&f);
}

/* Source data sits wherever the file puts it: an odd address must give the same values. */
Test(quant_fixture, unaligned_source) {
    fixture f;
    fixture_open(&f);
    for (uint64_t t = 0; t < f.gguf.n_tensors; t++) {
        case_data c;
        char what[192];
        case_load(&f, t, &c);
        describe(&c, what, sizeof what);
        uint64_t nbytes = f.gguf.tensors[t].nbytes;
        uint8_t *copy = malloc(nbytes + 8);
        cr_assert_not_null(copy);
        for (int offset = 1; offset < 4; offset++) {
            memcpy(copy + offset, c.blocks, nbytes);
            float *got = dequant_checked(c.dtype, copy + offset, c.n, what);
            expect_same(got, c.want, c.n, what);
            free(got);
        }
        free(copy);
        free(c.want);
    }
    fixture_close(&f);
}

/* ---- blocks packed by hand from REFERENCE.md §6 ---------------------------------- */

enum { F16_ONE = 0x3c00, F16_HALF = 0x3800, F16_QUARTER = 0x3400, F16_TWO = 0x4000,
       F16_MINUS_ONE = 0xbc00 };

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

Test(quant_layout, plain_types) {
    uint8_t f32[8], f16[8], bf16[8];
    uint32_t one = f32_to_bits(1.5f), minus = f32_to_bits(-0x1p-130f); /* a subnormal */
    for (int i = 0; i < 4; i++) {
        f32[i] = (uint8_t)(one >> (8 * i));
        f32[4 + i] = (uint8_t)(minus >> (8 * i));
    }
    put_u16(f16, 0x3c00);      /* 1 */
    put_u16(f16 + 2, 0x0001);  /* 2^-24, the smallest subnormal */
    put_u16(f16 + 4, 0xfc00);  /* -inf */
    put_u16(f16 + 6, 0x7bff);  /* 65504, the largest half */
    put_u16(bf16, 0x3f80);     /* 1 */
    put_u16(bf16 + 2, 0xc0a0); /* -5 */
    put_u16(bf16 + 4, 0x0001); /* 2^-133 */
    put_u16(bf16 + 6, 0x7f80); /* inf */

    float *y = dequant_checked(GALE_F32, f32, 2, "F32");
    cr_expect(same_value(y[0], 1.5f) && same_value(y[1], -0x1p-130f));
    free(y);
    y = dequant_checked(GALE_F16, f16, 4, "F16");
    cr_expect(same_value(y[0], 1.0f) && same_value(y[1], 0x1p-24f) && y[2] == -INFINITY &&
              same_value(y[3], 65504.0f));
    free(y);
    y = dequant_checked(GALE_BF16, bf16, 4, "BF16");
    cr_expect(same_value(y[0], 1.0f) && same_value(y[1], -5.0f) && same_value(y[2], 0x1p-133f) &&
              y[3] == INFINITY);
    free(y);
}

Test(quant_layout, q8_0) {
    uint8_t b[34];
    put_u16(b, F16_HALF);
    for (int i = 0; i < 32; i++) b[2 + i] = (uint8_t)(int8_t)(i * 8 - 128);
    float *y = dequant_checked(GALE_Q8_0, b, 32, "Q8_0");
    for (int i = 0; i < 32; i++)
        cr_expect(same_value(y[i], 0.5f * (float)(i * 8 - 128)), "y[%d] = %g", i, (double)y[i]);
    free(y);
}

Test(quant_layout, q4_0_and_q4_1) {
    uint8_t b0[18], b1[20];
    put_u16(b0, F16_TWO);
    put_u16(b1, F16_HALF);
    put_u16(b1 + 2, F16_MINUS_ONE);
    for (int j = 0; j < 16; j++) {
        uint8_t q = (uint8_t)(j | ((15 - j) << 4)); /* low nibble j, high nibble 15-j */
        b0[2 + j] = q;
        b1[4 + j] = q;
    }
    float *y0 = dequant_checked(GALE_Q4_0, b0, 32, "Q4_0");
    float *y1 = dequant_checked(GALE_Q4_1, b1, 32, "Q4_1");
    for (int j = 0; j < 16; j++) {
        cr_expect(same_value(y0[j], 2.0f * (float)(j - 8)), "Q4_0 y[%d] = %g", j, (double)y0[j]);
        cr_expect(same_value(y0[j + 16], 2.0f * (float)(7 - j)), "Q4_0 y[%d] = %g", j + 16,
                  (double)y0[j + 16]);
        cr_expect(same_value(y1[j], 0.5f * (float)j - 1.0f), "Q4_1 y[%d] = %g", j, (double)y1[j]);
        cr_expect(same_value(y1[j + 16], 0.5f * (float)(15 - j) - 1.0f), "Q4_1 y[%d] = %g", j + 16,
                  (double)y1[j + 16]);
    }
    free(y0);
    free(y1);
}

/* The inverse of the Q4_K/Q5_K scale unpacking, written from REFERENCE.md §6. */
static void pack_k_scales(uint8_t s[12], const uint8_t sc[8], const uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
}

/* Q4_K (five_bits false) or Q5_K: d = 0.5, dmin = 0.25, scales and mins that use all six
 * bits, and a value pattern that differs in every sub-block. */
static void check_k_quant(bool five_bits) {
    uint8_t b[176] = {0};
    uint8_t sc[8], mn[8], q[256];
    for (int s = 0; s < 8; s++) {
        sc[s] = (uint8_t)(63 - 5 * s);
        mn[s] = (uint8_t)(8 * s + 7); /* 7..63 */
    }
    for (int i = 0; i < 256; i++) q[i] = (uint8_t)((i * 7 + i / 32) % (five_bits ? 32 : 16));
    put_u16(b, F16_HALF);
    put_u16(b + 2, F16_QUARTER);
    pack_k_scales(b + 4, sc, mn);
    uint8_t *qh = b + 16, *qs = five_bits ? b + 48 : b + 16;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int lo = 64 * c + l, hi = 64 * c + 32 + l; /* sub-blocks 2c and 2c+1 */
            qs[32 * c + l] = (uint8_t)((q[lo] & 15) | ((q[hi] & 15) << 4));
            if (five_bits) qh[l] |= (uint8_t)(((q[lo] >> 4) << (2 * c)) | ((q[hi] >> 4) << (2 * c + 1)));
        }
    gale_dtype dtype = five_bits ? GALE_Q5_K : GALE_Q4_K;
    float *y = dequant_checked(dtype, b, 256, gale_dtype_name(dtype));
    for (int i = 0; i < 256; i++) {
        int s = i / 32;
        float want = (float)(0.5 * sc[s] * q[i] - 0.25 * mn[s]); /* exact in double and float */
        cr_expect(same_value(y[i], want), "%s y[%d] = %g, want %g", gale_dtype_name(dtype), i,
                  (double)y[i], (double)want);
    }
    free(y);
}

Test(quant_layout, q4_k) { check_k_quant(false); }
Test(quant_layout, q5_k) { check_k_quant(true); }

Test(quant_layout, q6_k) {
    uint8_t b[210] = {0};
    uint8_t q[256];
    for (int i = 0; i < 256; i++) q[i] = (uint8_t)((i * 37 + i / 64) % 64);
    uint8_t *ql = b, *qh = b + 128;
    int8_t scales[16];
    for (int j = 0; j < 16; j++) scales[j] = (int8_t)(j * 17 - 128);
    for (int half = 0; half < 2; half++) {
        const uint8_t *y = q + 128 * half;
        for (int l = 0; l < 32; l++) {
            ql[64 * half + l] = (uint8_t)((y[l] & 15) | ((y[l + 64] & 15) << 4));
            ql[64 * half + l + 32] = (uint8_t)((y[l + 32] & 15) | ((y[l + 96] & 15) << 4));
            qh[32 * half + l] = (uint8_t)((y[l] >> 4) | ((y[l + 32] >> 4) << 2) |
                                          ((y[l + 64] >> 4) << 4) | ((y[l + 96] >> 4) << 6));
        }
    }
    memcpy(b + 192, scales, 16);
    put_u16(b + 208, F16_QUARTER);
    float *y = dequant_checked(GALE_Q6_K, b, 256, "Q6_K");
    for (int i = 0; i < 256; i++) {
        float want = (float)(0.25 * scales[i / 16] * (q[i] - 32));
        cr_expect(same_value(y[i], want), "Q6_K y[%d] = %g, want %g", i, (double)y[i], (double)want);
    }
    free(y);
}

/* Several blocks in a row: each block's values land in its own slot. */
Test(quant_layout, consecutive_blocks) {
    uint8_t b[3 * 34];
    for (int k = 0; k < 3; k++) {
        put_u16(b + 34 * k, (uint16_t)(F16_ONE + (k << 10))); /* 1, 2, 4 */
        for (int i = 0; i < 32; i++) b[34 * k + 2 + i] = (uint8_t)(i - k);
    }
    float *y = dequant_checked(GALE_Q8_0, b, 96, "Q8_0 x3");
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 32; i++)
            cr_expect(same_value(y[32 * k + i], (float)(1 << k) * (float)(int8_t)(uint8_t)(i - k)));
    free(y);
}

/* ---- bf16 output and bad arguments, on pseudo-random blocks ---------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng_next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* n_blocks random blocks of dtype whose fp16 scales are finite (random bytes elsewhere). */
static uint8_t *random_blocks(gale_dtype dtype, uint64_t n_blocks) {
    const dtype_info *info = dtype_get_info(dtype);
    uint8_t *b = malloc(n_blocks * info->block_bytes + 1);
    cr_assert_not_null(b);
    for (uint64_t i = 0; i < n_blocks * info->block_bytes; i++) b[i] = (uint8_t)rng_next();
    for (uint64_t k = 0; k < n_blocks; k++) {
        uint8_t *p = b + k * info->block_bytes;
        float scale = (float)(rng_next() % 2000) / 4096.0f - 0.25f;
        switch (dtype) {
        case GALE_Q4_K: case GALE_Q5_K: put_u16(p + 2, f32_to_f16(scale * 0.5f)); /* fall through */
        case GALE_Q8_0: case GALE_Q4_0: case GALE_Q5_0: put_u16(p, f32_to_f16(scale)); break;
        case GALE_Q4_1: case GALE_Q5_1: put_u16(p, f32_to_f16(scale)); put_u16(p + 2, f32_to_f16(-scale)); break;
        case GALE_Q6_K: put_u16(p + 208, f32_to_f16(scale)); break;
        default: break; /* plain types: random bit patterns, NaN included */
        }
    }
    return b;
}

Test(quant_bf16, equals_rounded_f32_output) {
    const uint64_t counts[] = {1, 7, 1000};
    for (int d = 0; d < GALE_DTYPE_COUNT; d++) {
        const dtype_info *info = dtype_get_info((gale_dtype)d);
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            uint64_t n = counts[c] * info->block_elems;
            uint8_t *src = random_blocks((gale_dtype)d, counts[c]);
            char what[64];
            snprintf(what, sizeof what, "%s x%llu", info->name, (unsigned long long)counts[c]);
            float *f = dequant_checked((gale_dtype)d, src, n, what);
            uint16_t *h = alloc_bf16(n);
            cr_assert_eq(quant_dequantize_bf16((gale_dtype)d, src, n, h), GALE_OK, "%s: %s", what,
                         gale_last_error());
            check_guard_bf16(h, n, what);
            for (uint64_t i = 0; i < n; i++)
                cr_assert_eq(h[i], f32_to_bf16(f[i]), "%s: bf16 value %llu is 0x%04x, f32 %a", what,
                             (unsigned long long)i, h[i], (double)f[i]);
            free(h);
            free(f);
            free(src);
        }
    }
}

Test(quant_args, n_not_whole_blocks) {
    uint8_t src[4 * 210] = {0};
    for (int d = 0; d < GALE_DTYPE_COUNT; d++) {
        const dtype_info *info = dtype_get_info((gale_dtype)d);
        if (info->block_elems == 1) continue;
        const uint64_t bad_n[] = {1, info->block_elems - 1, info->block_elems + 1,
                                  info->block_elems * 2 + info->block_elems / 2};
        for (size_t k = 0; k < sizeof bad_n / sizeof bad_n[0]; k++) {
            float *f = alloc_f32(0);
            uint16_t *h = alloc_bf16(0);
            gale_error_clear();
            cr_assert_eq(quant_dequantize_f32((gale_dtype)d, src, bad_n[k], f), GALE_ERR_INVALID_ARG,
                         "%s n=%llu accepted", info->name, (unsigned long long)bad_n[k]);
            cr_assert_neq(gale_last_error()[0], '\0', "no message");
            gale_error_clear();
            cr_assert_eq(quant_dequantize_bf16((gale_dtype)d, src, bad_n[k], h), GALE_ERR_INVALID_ARG,
                         "%s n=%llu accepted (bf16)", info->name, (unsigned long long)bad_n[k]);
            cr_assert_neq(gale_last_error()[0], '\0', "no message");
            check_guard_f32(f, 0, "rejected call");
            check_guard_bf16(h, 0, "rejected call");
            free(f);
            free(h);
        }
    }
}

Test(quant_args, unknown_dtype) {
    uint8_t src[64] = {0};
    const int bad[] = {GALE_DTYPE_COUNT, GALE_DTYPE_COUNT + 7, -1};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        float *f = alloc_f32(0);
        uint16_t *h = alloc_bf16(0);
        gale_error_clear();
        cr_assert_eq(quant_dequantize_f32((gale_dtype)bad[k], src, 32, f), GALE_ERR_UNSUPPORTED);
        cr_assert_neq(gale_last_error()[0], '\0', "no message");
        gale_error_clear();
        cr_assert_eq(quant_dequantize_bf16((gale_dtype)bad[k], src, 32, h), GALE_ERR_UNSUPPORTED);
        cr_assert_neq(gale_last_error()[0], '\0', "no message");
        gale_tensor t = {.dtype = (gale_dtype)bad[k], .n_dims = 1, .shape = {32}, .data = src,
                         .nbytes = sizeof src};
        cr_assert_eq(tensor_to_f32(&t, f), GALE_ERR_UNSUPPORTED);
        check_guard_f32(f, 0, "rejected call");
        check_guard_bf16(h, 0, "rejected call");
        free(f);
        free(h);
    }
}

Test(quant_args, zero_values) {
    float *f = alloc_f32(0);
    cr_assert_eq(quant_dequantize_f32(GALE_Q4_K, NULL, 0, f), GALE_OK);
    check_guard_f32(f, 0, "n = 0");
    free(f);
}

Test(quant_compare, nan_never_matches) {
    cr_assert(!same_value(NAN, NAN));
    cr_assert(!same_value(NAN, 1.0f));
    cr_assert(!same_value(1.0f, NAN));
    cr_assert(!same_value(0.0f, -0.0f), "the sign of zero is compared");
    cr_assert(same_value(-0.0f, -0.0f));
}
