/* Dequantisation of stored weights (F32, F16, BF16 and the GGUF blocks of REFERENCE.md
 * §6) from device memory to fp32 or bf16 device memory. The CPU reference is
 * src/model/quant.c.
 *
 * One thread per output value, in a grid-stride loop of 256-thread blocks: the output
 * is written fully coalesced, and since 256 is a multiple of every block size, each
 * iteration of a thread block covers whole quant blocks, so a warp reads 32 neighbouring
 * quant bytes and its scales are broadcasts that stay in L1. Dequantising is a one-off
 * at load time and memory-bound; this simple shape is near the copy bandwidth.
 *
 * The arithmetic mirrors quant.c (and the python gguf package) operation by operation
 * with explicit round-to-nearest intrinsics, so nvcc cannot contract it into FMAs and
 * the results are bit-identical to the CPU, except the payload of NaNs that arithmetic
 * produces (the GPU's canonical NaN). Source bytes have no alignment: every field is
 * loaded byte by byte. */
#include <stdio.h>

#include "common.cuh"
#include "kernels.h"

extern "C" {
#include "core/dtype.h"
}

namespace {

constexpr unsigned QK = 32;
constexpr unsigned QK_K = 256;
constexpr unsigned K_SCALE_BYTES = 12;

/* Each format: values per block, bytes per block, and value j (< elems) of block b. */

struct FormatF32 {
    static constexpr unsigned elems = 1, bytes = 4;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned) {
        return __uint_as_float(dev_load_u32(b));
    }
};

struct FormatF16 {
    static constexpr unsigned elems = 1, bytes = 2;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned) {
        return dev_f16_to_f32(dev_load_u16(b));
    }
};

struct FormatBF16 {
    static constexpr unsigned elems = 1, bytes = 2;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned) {
        return dev_bf16_to_f32(dev_load_u16(b));
    }
};

/* Q8_0: fp16 d, int8 q[32]; y = q*d. */
struct FormatQ8_0 {
    static constexpr unsigned elems = QK, bytes = 34;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned j) {
        float d = dev_f16_to_f32(dev_load_u16(b));
        return __fmul_rn((float)(int8_t)b[2 + j], d);
    }
};

/* Q4_0: fp16 d, qs[16]; y[j] = (lo nibble of qs[j] - 8)*d, y[j+16] from the hi nibble. */
struct FormatQ4_0 {
    static constexpr unsigned elems = QK, bytes = 18;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned j) {
        float d = dev_f16_to_f32(dev_load_u16(b));
        int q = (b[2 + j % 16] >> (4 * (j / 16))) & 15;
        return __fmul_rn(d, (float)(q - 8));
    }
};

/* Q4_1: fp16 d, fp16 m, qs[16]; nibbles as Q4_0; y = d*q + m. */
struct FormatQ4_1 {
    static constexpr unsigned elems = QK, bytes = 20;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned j) {
        float d = dev_f16_to_f32(dev_load_u16(b));
        float m = dev_f16_to_f32(dev_load_u16(b + 2));
        int q = (b[4 + j % 16] >> (4 * (j / 16))) & 15;
        return __fadd_rn(__fmul_rn(d, (float)q), m);
    }
};

/* 5-bit value of element j of Q5_0/Q5_1: nibble as Q4_0, bit j of the u32 qh as bit 4. */
__device__ __forceinline__ int q5_value(const uint8_t *qh_bytes, const uint8_t *qs, unsigned j) {
    uint32_t qh = (uint32_t)qh_bytes[0] | ((uint32_t)qh_bytes[1] << 8) | ((uint32_t)qh_bytes[2] << 16) |
                  ((uint32_t)qh_bytes[3] << 24);
    int nibble = (qs[j % 16] >> (4 * (j / 16))) & 15;
    return nibble | (int)(((qh >> j) & 1u) << 4);
}

/* Q5_0: fp16 d, u32 qh, qs[16]; y = d*(q - 16). */
struct FormatQ5_0 {
    static constexpr unsigned elems = QK, bytes = 22;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned j) {
        float d = dev_f16_to_f32(dev_load_u16(b));
        return __fmul_rn(d, (float)(q5_value(b + 2, b + 6, j) - 16));
    }
};

/* Q5_1: fp16 d, fp16 m, u32 qh, qs[16]; y = d*q + m. */
struct FormatQ5_1 {
    static constexpr unsigned elems = QK, bytes = 24;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned j) {
        float d = dev_f16_to_f32(dev_load_u16(b));
        float m = dev_f16_to_f32(dev_load_u16(b + 2));
        return __fadd_rn(__fmul_rn(d, (float)q5_value(b + 4, b + 8, j)), m);
    }
};

/* 6-bit scale and min of sub-block s (0..7) of Q4_K/Q5_K; layout as k_scale_min in
 * quant.c. */
__device__ __forceinline__ void k_scale_min(const uint8_t *sc_bytes, unsigned s, unsigned *sc,
                                            unsigned *mn) {
    if (s < 4) {
        *sc = sc_bytes[s] & 63u;
        *mn = sc_bytes[s + 4] & 63u;
    } else {
        *sc = (sc_bytes[s + 4] & 15u) | ((sc_bytes[s - 4] >> 6) << 4);
        *mn = (sc_bytes[s + 4] >> 4) | ((sc_bytes[s] >> 6) << 4);
    }
}

/* (d*sc)*q - (dmin*mn), in that order, as quant.c. */
__device__ __forceinline__ float k_affine(const uint8_t *b, unsigned s, unsigned q) {
    float d = dev_f16_to_f32(dev_load_u16(b));
    float dmin = dev_f16_to_f32(dev_load_u16(b + 2));
    unsigned sc, mn;
    k_scale_min(b + 4, s, &sc, &mn);
    return __fsub_rn(__fmul_rn(__fmul_rn(d, (float)sc), (float)q), __fmul_rn(dmin, (float)mn));
}

/* Q4_K: fp16 d, fp16 dmin, scales[12], qs[128]; sub-block s = j/32 takes the low
 * (s even) or high (s odd) nibbles of qs[32*(s/2) .. +31]. */
struct FormatQ4_K {
    static constexpr unsigned elems = QK_K, bytes = 144;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned j) {
        unsigned s = j / 32, l = j % 32;
        const uint8_t *qs = b + 4 + K_SCALE_BYTES;
        unsigned q = (qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 15u;
        return k_affine(b, s, q);
    }
};

/* Q5_K: fp16 d, fp16 dmin, scales[12], qh[32], qs[128]; as Q4_K plus bit s of qh[l]
 * as the fifth bit (value 16). */
struct FormatQ5_K {
    static constexpr unsigned elems = QK_K, bytes = 176;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned j) {
        unsigned s = j / 32, l = j % 32;
        const uint8_t *qh = b + 4 + K_SCALE_BYTES;
        const uint8_t *qs = qh + QK_K / 8;
        unsigned q = ((qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 15u) | (((qh[l] >> s) & 1u) << 4);
        return k_affine(b, s, q);
    }
};

/* Q6_K: ql[128], qh[64], int8 scales[16], fp16 d. In half h = j/128, group k of 32
 * takes its low 4 bits from ql[64h + 32(k%2) + l] (low nibble for k<2, high for k>=2)
 * and its top 2 bits from qh[32h + l] >> 2k; y = (d*scales[j/16])*(q - 32). */
struct FormatQ6_K {
    static constexpr unsigned elems = QK_K, bytes = 210;
    static __device__ __forceinline__ float value(const uint8_t *b, unsigned j) {
        const uint8_t *ql = b;
        const uint8_t *qh = b + QK_K / 2;
        const uint8_t *scales = qh + QK_K / 4;
        float d = dev_f16_to_f32(dev_load_u16(scales + QK_K / 16));
        unsigned h = j / 128, k = (j % 128) / 32, l = j % 32;
        int lo = (ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15;
        int hi = (qh[32 * h + l] >> (2 * k)) & 3;
        float ds = __fmul_rn(d, (float)(int8_t)scales[j / 16]);
        return __fmul_rn(ds, (float)((lo | (hi << 4)) - 32));
    }
};

__device__ __forceinline__ void store(float *dst, uint64_t i, float v) { dst[i] = v; }
__device__ __forceinline__ void store(uint16_t *dst, uint64_t i, float v) {
    dst[i] = dev_f32_to_bf16(v);
}

template <typename Format, typename Out>
__global__ void dequant_kernel(const uint8_t *__restrict__ src, uint64_t n, Out *__restrict__ dst) {
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        uint64_t block = i / Format::elems;
        unsigned j = (unsigned)(i % Format::elems);
        store(dst, i, Format::value(src + block * Format::bytes, j));
    }
}

template <typename Format, typename Out>
gale_status launch(const dtype_info *info, const void *src, uint64_t n, Out *dst,
                   cudaStream_t stream, const char *what) {
    if (info->block_elems != Format::elems || info->block_bytes != Format::bytes)
        return gale_error(GALE_ERR_INTERNAL, "%s: block geometry disagrees with core/dtype.c",
                          what);
    dequant_kernel<Format, Out><<<grid_blocks(n, GALE_BLOCK_THREADS), GALE_BLOCK_THREADS, 0, stream>>>(
        static_cast<const uint8_t *>(src), n, dst);
    return cuda_check_launch(what);
}

template <typename Out>
gale_status dequant(gale_dtype dtype, const void *src, uint64_t n, Out *dst, void *stream_ptr,
                    const char *out_name) {
    const dtype_info *info = dtype_get_info(dtype);
    if (!info)
        return gale_error(GALE_ERR_UNSUPPORTED, "kernel dequant to %s: unsupported dtype %d",
                          out_name, (int)dtype);
    if (n % info->block_elems != 0)
        return gale_error(GALE_ERR_INVALID_ARG,
                          "kernel dequant %s to %s: %llu values are not a whole number of "
                          "%u-value blocks",
                          info->name, out_name, (unsigned long long)n, info->block_elems);
    if (n == 0) return GALE_OK;
    if (!src || !dst)
        return gale_error(GALE_ERR_INVALID_ARG, "kernel dequant %s to %s: NULL %s buffer",
                          info->name, out_name, src ? "destination" : "source");

    char what[64];
    snprintf(what, sizeof what, "kernel dequant %s to %s", info->name, out_name);
    cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
    switch (dtype) {
    case GALE_F32: return launch<FormatF32>(info, src, n, dst, stream, what);
    case GALE_F16: return launch<FormatF16>(info, src, n, dst, stream, what);
    case GALE_BF16: return launch<FormatBF16>(info, src, n, dst, stream, what);
    case GALE_Q8_0: return launch<FormatQ8_0>(info, src, n, dst, stream, what);
    case GALE_Q4_0: return launch<FormatQ4_0>(info, src, n, dst, stream, what);
    case GALE_Q4_1: return launch<FormatQ4_1>(info, src, n, dst, stream, what);
    case GALE_Q5_0: return launch<FormatQ5_0>(info, src, n, dst, stream, what);
    case GALE_Q5_1: return launch<FormatQ5_1>(info, src, n, dst, stream, what);
    case GALE_Q4_K: return launch<FormatQ4_K>(info, src, n, dst, stream, what);
    case GALE_Q5_K: return launch<FormatQ5_K>(info, src, n, dst, stream, what);
    case GALE_Q6_K: return launch<FormatQ6_K>(info, src, n, dst, stream, what);
    default: break;
    }
    return gale_error(GALE_ERR_UNSUPPORTED, "%s: no kernel for this dtype", what);
}

/* A thread block's 256 values must be whole blocks of every format. */
static_assert(GALE_BLOCK_THREADS % QK_K == 0, "a thread block must cover whole K blocks");

} // namespace

/* ---- launchers ----------------------------------------------------------------------- */

extern "C" gale_status kernel_dequant_f32(gale_dtype dtype, const void *src, uint64_t n,
                                          float *dst, void *stream) {
    return dequant<float>(dtype, src, n, dst, stream, "F32");
}

extern "C" gale_status kernel_dequant_bf16(gale_dtype dtype, const void *src, uint64_t n,
                                           void *dst_bf16, void *stream) {
    return dequant<uint16_t>(dtype, src, n, static_cast<uint16_t *>(dst_bf16), stream, "BF16");
}
