/* Dummy weights made on the GPU: a synthetic tensor (core/tensor.h) filled in place with
 * cuRAND's Philox generator, so a benchmark of Mixtral 8x7B's shapes needs neither 93 GB
 * of host memory nor minutes of host-side generation and upload.
 *
 * Element i comes from Philox subsequence i / 4 (curand_uniform4 gives four numbers per
 * state), so the values depend on the seed and the index only, not on the grid. Philox's
 * state set-up is a few integer operations, cheap enough for one state per four values. */
#include <curand_kernel.h>

#include "common.cuh"
#include "kernels.h"

namespace {

__global__ void fill_uniform_kernel(uint16_t *__restrict__ dst, uint64_t n, float amplitude, uint64_t seed) {
    const uint64_t quads = (n + 3) / 4;
    for (uint64_t q = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; q < quads; q += (uint64_t)gridDim.x * blockDim.x) {
        curandStatePhilox4_32_10_t state;
        curand_init(seed, q, 0, &state);
        const float4 u = curand_uniform4(&state); /* (0, 1] */
        const float values[4] = {u.x, u.y, u.z, u.w};
        for (int k = 0; k < 4; k++) {
            const uint64_t i = q * 4 + k;
            if (i < n) dst[i] = dev_f32_to_bf16((2.0f * values[k] - 1.0f) * amplitude);
        }
    }
}

} // namespace

extern "C" gale_status kernel_fill_uniform_bf16(void *dst, uint64_t n, float amplitude, uint64_t seed, void *stream) {
    if (!dst || !(amplitude > 0.0f))
        return gale_error(GALE_ERR_INVALID_ARG, "fill uniform: %s, amplitude %g", dst ? "buffer" : "NULL buffer",
                          (double)amplitude);
    if (n == 0) return GALE_OK;
    fill_uniform_kernel<<<grid_blocks((n + 3) / 4, GALE_BLOCK_THREADS), GALE_BLOCK_THREADS, 0,
                          static_cast<cudaStream_t>(stream)>>>(static_cast<uint16_t *>(dst), n, amplitude, seed);
    return cuda_check_launch("fill uniform");
}
