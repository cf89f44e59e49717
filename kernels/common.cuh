/* Helpers shared by the .cu files: launch checks that turn CUDA errors into a gale_status
 * with a message, and 16-bit float conversions on raw bit patterns.
 *
 * The conversions are written on bits, not with cuda_fp16/cuda_bf16 intrinsics, so that
 * they match src/core/dtype.h bit for bit, NaN payloads included: the CPU backend is
 * the reference every kernel is compared with. */
#ifndef GALE_KERNELS_COMMON_CUH
#define GALE_KERNELS_COMMON_CUH

#include <cuda_runtime.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The library is C: its declarations need C linkage here. */
extern "C" {
#include "core/status.h"
#include "gale.h"
}

/* Turns a CUDA error into GALE_ERR_DEVICE with "what: <cuda message>"; what names the
 * kernel or call (e.g. "dequant Q4_K → bf16"). */
static inline gale_status cuda_status(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return GALE_OK;
    return gale_error(GALE_ERR_DEVICE, "%s: %s (%s)", what, cudaGetErrorString(err),
                      cudaGetErrorName(err));
}

/* After a <<<...>>> launch: reports (and clears) a launch error, such as a bad
 * configuration or no kernel image for this GPU. Asynchronous faults show up later, at
 * the next synchronising call. */
static inline gale_status cuda_check_launch(const char *what) {
    return cuda_status(cudaGetLastError(), what);
}

/* Returns from the enclosing function when a CUDA call fails. */
#define CUDA_TRY(call, what)                                                                \
    do {                                                                                    \
        gale_status cuda_try_status_ = cuda_status((call), (what));                         \
        if (cuda_try_status_ != GALE_OK) return cuda_try_status_;                           \
    } while (0)

/* Threads per block of the element-wise kernels. */
#define GALE_BLOCK_THREADS 256

/* Blocks for a grid-stride loop over n items: never more than the items need, and at
 * most GALE_MAX_GRID_BLOCKS (with 256 threads, a million threads: several waves on the
 * largest GPU; beyond that, threads loop instead of more blocks being scheduled). */
#define GALE_MAX_GRID_BLOCKS 4096u
static inline unsigned grid_blocks(uint64_t n, unsigned threads) {
    uint64_t blocks = (n + threads - 1) / threads;
    return (unsigned)(blocks < GALE_MAX_GRID_BLOCKS ? blocks : GALE_MAX_GRID_BLOCKS);
}

/* ---- device helpers ---------------------------------------------------------------- */

/* Unaligned little-endian loads from file bytes copied to the device as they are. */
__device__ __forceinline__ uint32_t dev_load_u16(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

__device__ __forceinline__ uint32_t dev_load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* IEEE half bits → fp32, exact; same result as f16_to_f32 in core/dtype.c. */
__device__ __forceinline__ float dev_f16_to_f32(uint32_t h) {
    uint32_t sign = (h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {
        float magnitude = __fmul_rn((float)mantissa, 0x1p-24f); /* zero or subnormal */
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

__device__ __forceinline__ float dev_bf16_to_f32(uint32_t h) { return __uint_as_float(h << 16); }

/* fp32 → bf16 bits, round to nearest even, NaN kept quiet: same as f32_to_bf16. */
__device__ __forceinline__ uint16_t dev_f32_to_bf16(float f) {
    uint32_t bits = __float_as_uint(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* The sum of v over the warp's 32 lanes, in every lane; all 32 lanes must call it. */
__device__ __forceinline__ float dev_warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

#endif
