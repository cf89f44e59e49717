/* Block dequantisation on the CPU: the reference kernels/dequant.cu is checked against.
 *
 * The arithmetic follows the python gguf package (gguf/quants.py) operation by operation,
 * in fp32, so the results are bit-identical to it: every product below is a separate
 * statement, and the library is built as ISO C11, where GCC does not contract a*b+c into
 * an FMA. (Where a product is exact — every case here except Q6_K's, which has no
 * addition after it — an FMA would not change the result anyway.)
 *
 * Source bytes come straight from a file mapping and have no alignment: every field is
 * read with load_u16 or byte by byte, never through a float* or uint16_t*. */
#include "model/quant.h"

#include "core/dtype.h"
#include "core/status.h"

enum { QK = 32, QK_K = 256, K_SCALE_BYTES = 12 };

static float load_f16(const uint8_t *p) { return f16_to_f32(load_u16(p)); }

/* F32, F16 and BF16 are converted element by element (blocks of one value). */
static void dequant_plain(gale_dtype dtype, const uint8_t *src, uint64_t n, float *y) {
    switch (dtype) {
    case GALE_F32:
        for (uint64_t i = 0; i < n; i++) y[i] = load_f32(src + 4 * i);
        break;
    case GALE_F16: /* widening is exact */
        for (uint64_t i = 0; i < n; i++) y[i] = load_f16(src + 2 * i);
        break;
    default: /* GALE_BF16: the top 16 bits of an fp32 */
        for (uint64_t i = 0; i < n; i++) y[i] = bf16_to_f32(load_u16(src + 2 * i));
        break;
    }
}

/* Q8_0, 34 bytes: fp16 d, int8 q[32]; y = q*d. */
static void dequant_q8_0(const uint8_t *b, float *y) {
    float d = load_f16(b);
    for (int i = 0; i < QK; i++) y[i] = (float)(int8_t)b[2 + i] * d;
}

/* Q4_0, 18 bytes: fp16 d, qs[16]; low nibble of qs[j] → y[j], high nibble → y[j+16],
 * each as (nibble - 8)*d. */
static void dequant_q4_0(const uint8_t *b, float *y) {
    float d = load_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = d * (float)((qs[j] & 15) - 8);
        y[j + QK / 2] = d * (float)((qs[j] >> 4) - 8);
    }
}

/* Q4_1, 20 bytes: fp16 d, fp16 m, qs[16]; nibble order as Q4_0, y = d*nibble + m. */
static void dequant_q4_1(const uint8_t *b, float *y) {
    float d = load_f16(b);
    float m = load_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < QK / 2; j++) {
        float lo = d * (float)(qs[j] & 15);
        float hi = d * (float)(qs[j] >> 4);
        y[j] = lo + m;
        y[j + QK / 2] = hi + m;
    }
}

/* The 5-bit values of a Q5_0/Q5_1 block: the nibbles as Q4_0, plus bit j of the
 * little-endian u32 qh as bit 4 of element j. */
static void q5_values(const uint8_t *qh_bytes, const uint8_t *qs, int *q) {
    uint32_t qh = load_u32(qh_bytes);
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (qs[j] & 15) | (int)(((qh >> j) & 1u) << 4);
        q[j + QK / 2] = (qs[j] >> 4) | (int)(((qh >> (j + QK / 2)) & 1u) << 4);
    }
}

/* Q5_0, 22 bytes: fp16 d, u32 qh, qs[16]; y = d*(q - 16). Gemma 3 GGUFs use it. */
static void dequant_q5_0(const uint8_t *b, float *y) {
    float d = load_f16(b);
    int q[QK];
    q5_values(b + 2, b + 6, q);
    for (int j = 0; j < QK; j++) y[j] = d * (float)(q[j] - 16);
}

/* Q5_1, 24 bytes: fp16 d, fp16 m, u32 qh, qs[16]; y = d*q + m. */
static void dequant_q5_1(const uint8_t *b, float *y) {
    float d = load_f16(b);
    float m = load_f16(b + 2);
    int q[QK];
    q5_values(b + 4, b + 8, q);
    for (int j = 0; j < QK; j++) {
        float scaled = d * (float)q[j];
        y[j] = scaled + m;
    }
}

/* The 6-bit scale and min of sub-block j (0..7) packed in the 12 scale bytes of Q4_K
 * and Q5_K: bytes 0-3 hold the low 6 bits of scales 0-3 (top 2 bits: high bits of
 * scale 4-7), bytes 4-7 likewise for mins, bytes 8-11 the low 4 bits of scale/min 4-7. */
static void k_scale_min(const uint8_t *s, int j, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* Q4_K, 144 bytes: fp16 d, fp16 dmin, scales[12], qs[128]. Eight sub-blocks of 32;
 * chunk c (0..3) of qs[32c..32c+31] holds sub-block 2c in its low nibbles and 2c+1 in
 * its high nibbles. y = (d*sc)*q - (dmin*mn). */
static void dequant_q4_k(const uint8_t *b, float *y) {
    float d = load_f16(b);
    float dmin = load_f16(b + 2);
    const uint8_t *scales = b + 4;
    const uint8_t *qs = b + 4 + K_SCALE_BYTES;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        k_scale_min(scales, j, &sc, &mn);
        float ds = d * (float)sc;
        float dm = dmin * (float)mn;
        const uint8_t *q = qs + 32 * (j / 2);
        int shift = 4 * (j % 2);
        for (int l = 0; l < 32; l++) {
            float p = ds * (float)((q[l] >> shift) & 15);
            y[32 * j + l] = p - dm;
        }
    }
}

/* Q5_K, 176 bytes: fp16 d, fp16 dmin, scales[12], qh[32], qs[128]. As Q4_K, plus a
 * fifth bit (value 16) for element l of sub-block j in bit j of qh[l]. */
static void dequant_q5_k(const uint8_t *b, float *y) {
    float d = load_f16(b);
    float dmin = load_f16(b + 2);
    const uint8_t *scales = b + 4;
    const uint8_t *qh = b + 4 + K_SCALE_BYTES;
    const uint8_t *qs = qh + QK_K / 8;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        k_scale_min(scales, j, &sc, &mn);
        float ds = d * (float)sc;
        float dm = dmin * (float)mn;
        const uint8_t *q = qs + 32 * (j / 2);
        int shift = 4 * (j % 2);
        for (int l = 0; l < 32; l++) {
            int v = ((q[l] >> shift) & 15) | (((qh[l] >> j) & 1) << 4);
            float p = ds * (float)v;
            y[32 * j + l] = p - dm;
        }
    }
}

/* Q6_K, 210 bytes: ql[128], qh[64], int8 scales[16], fp16 d last. Two halves of 128
 * values; in half h, group k (0..3) of 32 takes its low 4 bits from ql[64h + 32(k%2) + l]
 * (low nibble for k<2, high for k>=2) and its top 2 bits from qh[32h + l] >> 2k; value
 * i of the block uses scales[i/16]. y = (d*scale)*(q - 32). */
static void dequant_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b;
    const uint8_t *qh = b + QK_K / 2;
    const uint8_t *scales = qh + QK_K / 4;
    float d = load_f16(scales + QK_K / 16);
    /* loops over (half, group, 16-value run) so the inner one vectorises */
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int run = 0; run < 2; run++) {
                int first = 128 * h + 32 * k + 16 * run;
                float ds = d * (float)(int8_t)scales[first / 16];
                const uint8_t *low = ql + 64 * h + 32 * (k % 2) + 16 * run, *high = qh + 32 * h + 16 * run;
                for (int l = 0; l < 16; l++) {
                    int lo = (low[l] >> (4 * (k / 2))) & 15;
                    int hi = (high[l] >> (2 * k)) & 3;
                    y[first + l] = ds * (float)((lo | (hi << 4)) - 32);
                }
            }
}

typedef void (*block_fn)(const uint8_t *block, float *out);

/* NULL for the plain types, which dequant_plain handles. (Calls through this table
 * measured faster than loops with the block bodies inlined, which GCC unrolls whole.) */
static const block_fn block_fns[GALE_DTYPE_COUNT] = {
    [GALE_Q8_0] = dequant_q8_0, [GALE_Q4_0] = dequant_q4_0, [GALE_Q4_1] = dequant_q4_1,
    [GALE_Q5_0] = dequant_q5_0, [GALE_Q5_1] = dequant_q5_1,
    [GALE_Q4_K] = dequant_q4_k, [GALE_Q5_K] = dequant_q5_k, [GALE_Q6_K] = dequant_q6_k,
};

static gale_status check_args(gale_dtype dtype, const uint8_t *src, uint64_t n, const void *dst) {
    const dtype_info *info = dtype_get_info(dtype);
    if (!info)
        return gale_error(GALE_ERR_UNSUPPORTED, "dequantize: unsupported dtype %d", (int)dtype);
    if (n % info->block_elems != 0)
        return gale_error(GALE_ERR_INVALID_ARG,
                          "dequantize %s: %llu values are not a whole number of %u-value blocks",
                          info->name, (unsigned long long)n, info->block_elems);
    if (n > 0 && (!src || !dst))
        return gale_error(GALE_ERR_INVALID_ARG, "dequantize %s: NULL %s buffer", info->name,
                          src ? "destination" : "source");
    return GALE_OK;
}

gale_status quant_dequantize_f32(gale_dtype dtype, const uint8_t *src, uint64_t n, float *dst) {
    GALE_TRY(check_args(dtype, src, n, dst));
    const dtype_info *info = dtype_get_info(dtype);
    block_fn fn = block_fns[dtype];
    if (!fn) {
        dequant_plain(dtype, src, n, dst);
        return GALE_OK;
    }
    for (uint64_t i = 0; i < n; i += info->block_elems) {
        fn(src, dst + i);
        src += info->block_bytes;
    }
    return GALE_OK;
}

gale_status quant_dequantize_bf16(gale_dtype dtype, const uint8_t *src, uint64_t n, uint16_t *dst) {
    GALE_TRY(check_args(dtype, src, n, dst));
    const dtype_info *info = dtype_get_info(dtype);
    /* QK_K values at a time: a whole number of blocks of every dtype. */
    float chunk[QK_K];
    for (uint64_t i = 0; i < n; i += QK_K) {
        uint64_t count = n - i < QK_K ? n - i : QK_K;
        GALE_TRY(quant_dequantize_f32(dtype, src, count, chunk));
        for (uint64_t j = 0; j < count; j++) dst[i + j] = f32_to_bf16(chunk[j]);
        src += count / info->block_elems * info->block_bytes;
    }
    return GALE_OK;
}

gale_status tensor_to_f32(const gale_tensor *t, float *dst) {
    if (!t) return gale_error(GALE_ERR_INVALID_ARG, "tensor_to_f32: NULL tensor");
    uint64_t n = tensor_numel(t);
    GALE_TRY(check_args(t->dtype, t->data, n, dst));
    uint64_t need;
    if (!dtype_row_bytes(t->dtype, n, &need))
        return gale_error(GALE_ERR_INVALID_ARG, "tensor_to_f32: %llu %s values overflow a size",
                          (unsigned long long)n, gale_dtype_name(t->dtype));
    if (t->nbytes < need) {
        char shape[96];
        return gale_error(GALE_ERR_INVALID_ARG,
                          "tensor_to_f32: %s tensor of shape %s needs %llu bytes, has %llu",
                          gale_dtype_name(t->dtype),
                          tensor_shape_str(t->shape, t->n_dims, shape, sizeof shape),
                          (unsigned long long)need, (unsigned long long)t->nbytes);
    }
    return quant_dequantize_f32(t->dtype, t->data, n, dst);
}
