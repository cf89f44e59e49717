/* Fused residual add + RMSNorm on bf16 activations, fp32 statistics. The CPU reference is
 * cpu_rmsnorm in src/backend/cpu/ops.c (fp32 throughout).
 *
 * One thread block per row: the sum of squares is reduced within warps by shuffles and
 * across warps through shared memory, then each thread re-reads its own values (L1/L2
 * hits: the row was just read) and writes the normalised row — one HBM read and one
 * write per value, plus the residual's write when an addend is given, which is the
 * memory-bound minimum. With an addend the residual stream is updated in bf16 first (as vLLM's
 * fused_add_rms_norm does) and the norm reads the rounded sum, so the next layer's
 * residual and this norm see the same numbers. Gemma's (1 + w) is the offset argument. */
#include "common.cuh"
#include "kernels.h"

namespace {

constexpr int NORM_THREADS = 256;
constexpr int MAX_DIM = 65536;

/* out may be x (in place): each thread reads a value before it writes it */
__global__ void rmsnorm_kernel(const uint16_t *x, uint16_t *residual, const uint16_t *__restrict__ add,
                               const float *__restrict__ w, float offset, float eps, int dim, uint16_t *out) {
    const size_t row = blockIdx.x;
    const uint16_t *src = residual ? residual + row * dim : x + row * dim;
    float square_sum = 0.0f;
    for (int i = threadIdx.x; i < dim; i += NORM_THREADS) {
        float v = dev_bf16_to_f32(src[i]);
        if (add) {
            /* residual += add, rounded to bf16 as it is stored */
            uint16_t sum = dev_f32_to_bf16(__fadd_rn(v, dev_bf16_to_f32(add[row * dim + i])));
            residual[row * dim + i] = sum;
            v = dev_bf16_to_f32(sum);
        }
        square_sum = __fmaf_rn(v, v, square_sum);
    }
    __shared__ float warp_sums[NORM_THREADS / 32];
    square_sum = dev_warp_sum(square_sum);
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x / 32] = square_sum;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < NORM_THREADS / 32 ? warp_sums[threadIdx.x] : 0.0f;
        v = dev_warp_sum(v);
        if (threadIdx.x == 0) warp_sums[0] = v;
    }
    __syncthreads();
    /* cpu_rmsnorm's 1/sqrtf, correctly rounded (rsqrtf is off by up to 2 ulp and would flip
     * some bf16 roundings); once per row, so its cost does not show */
    const float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(warp_sums[0], (float)dim), eps)));
    for (int i = threadIdx.x; i < dim; i += NORM_THREADS)
        out[row * dim + i] = dev_f32_to_bf16(dev_bf16_to_f32(src[i]) * inv * (offset + w[i]));
}

} // namespace

extern "C" gale_status kernel_rmsnorm_bf16(const void *x, void *residual, const void *add, const float *w, float offset,
                                           float eps, int n, int dim, void *out, void *stream) {
    if (n < 0 || dim <= 0 || dim > MAX_DIM || !w || !out || (!x && !residual))
        return gale_error(GALE_ERR_INVALID_ARG, "rmsnorm: %d rows of %d values (at most %d), weights and output "
                          "required", n, dim, MAX_DIM);
    if (add && !residual) return gale_error(GALE_ERR_INVALID_ARG, "rmsnorm: an addend needs the residual buffer");
    if (n == 0) return GALE_OK;
    rmsnorm_kernel<<<n, NORM_THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const uint16_t *>(x), static_cast<uint16_t *>(residual), static_cast<const uint16_t *>(add), w,
        offset, eps, dim, static_cast<uint16_t *>(out));
    return cuda_check_launch("rmsnorm");
}
