/* Element-wise kernels on activations: the gated MLP activation (SiLU or tanh-GELU of the
 * gate times up, bf16), the logit softcap (fp32 or bf16 logits), the residual add and a
 * Mixtral expert's weighted accumulation (bf16). CPU references:
 * cpu_gated_activation and cpu_softcap in src/backend/cpu/ops.c, whose fp32 expressions
 * are repeated here operation by operation (expf/tanhf are the accurate versions).
 * Memory-bound: a grid-stride loop, each value read and written once. */
#include "common.cuh"
#include "kernels.h"

namespace {

__global__ void gated_activation_kernel(const uint16_t *gate, const uint16_t *__restrict__ up, uint64_t count,
                                        int gelu, uint16_t *out) {
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < count; i += (uint64_t)gridDim.x * blockDim.x) {
        float g = dev_bf16_to_f32(gate[i]), u = dev_bf16_to_f32(up[i]), a;
        if (!gelu) {
            a = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
        } else {
            const float c = 0.7978845608028654f; /* sqrt(2/pi) */
            float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, g), g), g);
            float t = tanhf(__fmul_rn(c, __fadd_rn(g, cube)));
            a = __fmul_rn(__fmul_rn(__fmul_rn(0.5f, g), __fadd_rn(1.0f, t)), u);
        }
        out[i] = dev_f32_to_bf16(a);
    }
}

__global__ void softcap_kernel(float *x, uint64_t count, float cap) {
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < count; i += (uint64_t)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(cap, tanhf(__fdiv_rn(x[i], cap)));
}

__global__ void softcap_bf16_kernel(uint16_t *x, uint64_t count, float cap) {
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < count; i += (uint64_t)gridDim.x * blockDim.x)
        x[i] = dev_f32_to_bf16(__fmul_rn(cap, tanhf(__fdiv_rn(dev_bf16_to_f32(x[i]), cap))));
}

/* y[i] = bf16(y[i] + a·x[i]); a = 1 is the residual add */
__global__ void axpy_bf16_kernel(uint16_t *y, const uint16_t *__restrict__ x, float a, uint64_t count) {
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < count; i += (uint64_t)gridDim.x * blockDim.x) {
        float xv = dev_bf16_to_f32(x[i]);
        float term = a == 1.0f ? xv : __fmul_rn(a, xv);
        y[i] = dev_f32_to_bf16(__fadd_rn(dev_bf16_to_f32(y[i]), term));
    }
}

} // namespace

extern "C" gale_status kernel_softcap_bf16(void *x, uint64_t count, float cap, void *stream) {
    if (!(cap > 0)) return gale_error(GALE_ERR_INVALID_ARG, "softcap: cap %g must be positive", (double)cap);
    if (count > 0 && !x) return gale_error(GALE_ERR_INVALID_ARG, "softcap: NULL buffer");
    if (count == 0) return GALE_OK;
    softcap_bf16_kernel<<<grid_blocks(count, GALE_BLOCK_THREADS), GALE_BLOCK_THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<uint16_t *>(x), count, cap);
    return cuda_check_launch("softcap bf16");
}

extern "C" gale_status kernel_axpy_bf16(void *y, const void *x, float a, uint64_t count, void *stream) {
    if (count > 0 && (!x || !y)) return gale_error(GALE_ERR_INVALID_ARG, "axpy: NULL buffer");
    if (count == 0) return GALE_OK;
    axpy_bf16_kernel<<<grid_blocks(count, GALE_BLOCK_THREADS), GALE_BLOCK_THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<uint16_t *>(y), static_cast<const uint16_t *>(x), a, count);
    return cuda_check_launch("axpy bf16");
}

extern "C" gale_status kernel_gated_activation_bf16(const void *gate, const void *up, uint64_t count,
                                                    gale_activation act, void *out, void *stream) {
    if (count > 0 && (!gate || !up || !out)) return gale_error(GALE_ERR_INVALID_ARG, "gated activation: NULL buffer");
    if (count == 0) return GALE_OK;
    gated_activation_kernel<<<grid_blocks(count, GALE_BLOCK_THREADS), GALE_BLOCK_THREADS, 0,
                              static_cast<cudaStream_t>(stream)>>>(static_cast<const uint16_t *>(gate),
                                                                   static_cast<const uint16_t *>(up), count,
                                                                   act == GALE_ACT_SILU ? 0 : 1,
                                                                   static_cast<uint16_t *>(out));
    return cuda_check_launch(act == GALE_ACT_SILU ? "gated SiLU" : "gated GELU");
}

extern "C" gale_status kernel_softcap_f32(float *x, uint64_t count, float cap, void *stream) {
    if (!(cap > 0)) return gale_error(GALE_ERR_INVALID_ARG, "softcap: cap %g must be positive", (double)cap);
    if (count > 0 && !x) return gale_error(GALE_ERR_INVALID_ARG, "softcap: NULL buffer");
    if (count == 0) return GALE_OK;
    softcap_kernel<<<grid_blocks(count, GALE_BLOCK_THREADS), GALE_BLOCK_THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        x, count, cap);
    return cuda_check_launch("softcap");
}
