/* Skinny GEMM for decode: y[n, out] = x[n, in] · wᵀ for w [out, in] bf16 and a handful of
 * rows (n ≤ GEMV_MAX_ROWS), where the step is a read of the weight and nothing else: the
 * kernel's job is to keep enough 16-byte loads of w in flight to run at the memory
 * bandwidth, reading every weight byte once.
 *
 * One warp per output row (WARPS_PER_BLOCK rows per block): lane l reads the 16-byte
 * pieces l, l + 32, … of the weight row (8 bf16 each), UNROLL pieces per step so several
 * loads are outstanding, and multiplies each by the same 8 values of every x row (x is
 * small and read by every warp: it stays in L1/L2). fp32 accumulation per x row, a warp
 * reduction at the end, one rounding to bf16 — the same numbers as cuBLAS's up to the
 * order of the fp32 sum.
 *
 * Needs in % 8 == 0 and 16-byte aligned w and x (cudaMalloc'd buffers, rows of in values):
 * kernel_gemv_supported says so; otherwise the caller uses cuBLAS. */
#include "common.cuh"
#include "kernels.h"

namespace {

constexpr int WARPS_PER_BLOCK = 8;
constexpr int UNROLL = 4;

__device__ __forceinline__ void bf16x8_to_f32(const uint4 &v, float out[8]) {
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
    for (int i = 0; i < 4; i++) {
        out[2 * i] = __uint_as_float(words[i] << 16);           /* low half: the lower index */
        out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
}

template <int ROWS>
__global__ void __launch_bounds__(WARPS_PER_BLOCK * 32)
    gemv_kernel(const uint16_t *__restrict__ x, const uint16_t *__restrict__ w, int out_dim, int in_dim,
                uint16_t *__restrict__ y) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32;
    if (row >= out_dim) return; /* whole warps leave together: no block-wide sync below */
    const int pieces = in_dim / 8;
    const uint4 *w_row = reinterpret_cast<const uint4 *>(w + (size_t)row * in_dim);
    float acc[ROWS];
    for (int r = 0; r < ROWS; r++) acc[r] = 0.0f;
    for (int base = lane; base < pieces; base += 32 * UNROLL) {
        uint4 wv[UNROLL];
        for (int u = 0; u < UNROLL; u++) { /* the loads first, so UNROLL are in flight */
            const int p = base + u * 32;
            wv[u] = p < pieces ? __ldg(w_row + p) : make_uint4(0, 0, 0, 0);
        }
        for (int u = 0; u < UNROLL; u++) {
            const int p = base + u * 32;
            if (p >= pieces) break;
            float wf[8];
            bf16x8_to_f32(wv[u], wf);
            for (int r = 0; r < ROWS; r++) {
                float xf[8];
                bf16x8_to_f32(__ldg(reinterpret_cast<const uint4 *>(x + (size_t)r * in_dim) + p), xf);
                for (int i = 0; i < 8; i++) acc[r] = fmaf(wf[i], xf[i], acc[r]);
            }
        }
    }
    for (int r = 0; r < ROWS; r++) {
        const float v = dev_warp_sum(acc[r]);
        if (lane == 0) y[(size_t)r * out_dim + row] = dev_f32_to_bf16(v);
    }
}

template <int ROWS>
void launch(const void *x, const void *w, int out_dim, int in_dim, void *y, cudaStream_t stream) {
    const unsigned blocks = (unsigned)((out_dim + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK);
    gemv_kernel<ROWS><<<blocks, WARPS_PER_BLOCK * 32, 0, stream>>>(static_cast<const uint16_t *>(x),
                                                                    static_cast<const uint16_t *>(w), out_dim, in_dim,
                                                                    static_cast<uint16_t *>(y));
}

} // namespace

extern "C" bool kernel_gemv_supported(const void *x, const void *w, int n, int in_dim) {
    return n >= 1 && n <= GEMV_MAX_ROWS && in_dim > 0 && in_dim % 8 == 0 && ((uintptr_t)x % 16) == 0 &&
           ((uintptr_t)w % 16) == 0;
}

extern "C" gale_status kernel_gemv_bf16(const void *x, int n, const void *w, int out_dim, int in_dim, void *y,
                                        void *stream) {
    if (!x || !w || !y || out_dim <= 0 || !kernel_gemv_supported(x, w, n, in_dim))
        return gale_error(GALE_ERR_INVALID_ARG,
                          "gemv: %d rows (1…%d) of %d values (a multiple of 8) into %d, 16-byte aligned buffers", n,
                          GEMV_MAX_ROWS, in_dim, out_dim);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (n) {
    case 1: launch<1>(x, w, out_dim, in_dim, y, s); break;
    case 2: launch<2>(x, w, out_dim, in_dim, y, s); break;
    case 3: launch<3>(x, w, out_dim, in_dim, y, s); break;
    case 4: launch<4>(x, w, out_dim, in_dim, y, s); break;
    case 5: launch<5>(x, w, out_dim, in_dim, y, s); break;
    case 6: launch<6>(x, w, out_dim, in_dim, y, s); break;
    case 7: launch<7>(x, w, out_dim, in_dim, y, s); break;
    default: launch<8>(x, w, out_dim, in_dim, y, s); break;
    }
    return cuda_check_launch("gemv");
}
