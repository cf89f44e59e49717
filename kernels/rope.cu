/* Rotary position embedding fused with Gemma 3's per-head q/k RMSNorm and with writing
 * keys and values into the paged KV cache. CPU references: cpu_rope_store_kv (cpu_rmsnorm,
 * cpu_rope, cpu_store_kv) in src/backend/cpu/ops.c; the cache layout is
 * src/engine/kvcache.h's (block tables, [n_blocks, block_size, kv_dim] per layer), here
 * in bf16.
 *
 * Split-half pairing (element k rotates with k + head_dim/2), the Hugging Face layout:
 * gale's GGUF loader un-permutes llama Q/K rows into it, so one pairing serves every
 * family. One thread block per token: the token's cos/sin go to shared memory once, then
 * each warp takes whole heads of q and k — a head's sum of squares is one warp reduction,
 * with no block barrier — and rotates its pairs, so every row is read and written once
 * and the norm costs no extra pass over memory (unfused it was two more kernels, each
 * reading and writing q or k). The normalised values stay in fp32 until the rotated
 * result is rounded, one bf16 rounding where the unfused path had two. The angle and the
 * rotation use the CPU's fp32 operations without contraction (cosf/sinf are the accurate
 * versions, not the fast intrinsics): the results differ from the CPU's by the final
 * bf16 rounding, the last bit of cos/sin, and the order of the squares' sum. */
#include "common.cuh"
#include "kernels.h"

namespace {

constexpr int ROPE_THREADS = 256;
constexpr int ROPE_WARPS = ROPE_THREADS / 32;
constexpr int MAX_HALF = 256; /* head_dim ≤ 512 */

__global__ void rope_store_kv_kernel(uint16_t *q, uint16_t *k, const uint16_t *__restrict__ v,
                                     const int32_t *__restrict__ positions, const int32_t *__restrict__ seq_of,
                                     const float *__restrict__ inv_freq, const float *__restrict__ q_norm,
                                     const float *__restrict__ k_norm, float norm_offset, float norm_eps, int n_heads,
                                     int n_kv_heads, int head_dim, uint16_t *key_cache, uint16_t *value_cache,
                                     const int32_t *__restrict__ block_tables, int table_stride, int block_size) {
    __shared__ float cos_of[MAX_HALF], sin_of[MAX_HALF];
    const int token = blockIdx.x, half = head_dim / 2, kv_dim = n_kv_heads * head_dim;
    if (seq_of[token] < 0) return; /* a padding row of a recorded decode step: nothing to store */
    const int pos = positions[token];
    for (int pair = threadIdx.x; pair < half; pair += ROPE_THREADS) {
        const float angle = __fmul_rn((float)pos, inv_freq[pair]);
        cos_of[pair] = cosf(angle);
        sin_of[pair] = sinf(angle);
    }
    __syncthreads();
    const int32_t block = block_tables[(size_t)seq_of[token] * table_stride + pos / block_size];
    const size_t slot = ((size_t)block * block_size + pos % block_size) * kv_dim;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    /* warp-uniform loop: every lane of a warp runs the same heads, as the shuffles need */
    for (int head = warp; head < n_heads + n_kv_heads; head += ROPE_WARPS) {
        const bool is_key = head >= n_heads;
        uint16_t *row = is_key ? k + (size_t)token * kv_dim + (size_t)(head - n_heads) * head_dim
                               : q + ((size_t)token * n_heads + head) * head_dim;
        const float *w = is_key ? k_norm : q_norm;
        float inv = 1.0f; /* cpu_rmsnorm's 1/sqrt(mean(x²) + eps) */
        if (w) {
            float square_sum = 0.0f;
            for (int i = lane; i < head_dim; i += 32) {
                const float x = dev_bf16_to_f32(row[i]);
                square_sum = __fmaf_rn(x, x, square_sum);
            }
            /* every lane has read its values before any writes: the shuffle orders them */
            inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(dev_warp_sum(square_sum), (float)head_dim), norm_eps)));
        }
        for (int pair = lane; pair < half; pair += 32) {
            float a = dev_bf16_to_f32(row[pair]), b = dev_bf16_to_f32(row[pair + half]);
            if (w) {
                a = __fmul_rn(__fmul_rn(a, inv), __fadd_rn(norm_offset, w[pair]));
                b = __fmul_rn(__fmul_rn(b, inv), __fadd_rn(norm_offset, w[pair + half]));
            }
            const float c = cos_of[pair], s = sin_of[pair];
            const uint16_t lo = dev_f32_to_bf16(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
            const uint16_t hi = dev_f32_to_bf16(__fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)));
            row[pair] = lo;
            row[pair + half] = hi;
            if (is_key) {
                uint16_t *cached = key_cache + slot + (size_t)(head - n_heads) * head_dim;
                cached[pair] = lo;
                cached[pair + half] = hi;
            }
        }
    }
    for (int i = threadIdx.x; i < kv_dim; i += ROPE_THREADS) value_cache[slot + i] = v[(size_t)token * kv_dim + i];
}

} // namespace

extern "C" gale_status kernel_rope_store_kv_bf16(void *q, void *k, const void *v, const int32_t *positions,
                                                 const int32_t *seq_of, const float *inv_freq, const rope_qk_norm *norm,
                                                 int n, int n_heads, int n_kv_heads, int head_dim, void *key_cache,
                                                 void *value_cache, const int32_t *block_tables, int table_stride,
                                                 int block_size, void *stream) {
    if (n < 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || head_dim % 2 || head_dim > 2 * MAX_HALF ||
        block_size <= 0 || table_stride <= 0)
        return gale_error(GALE_ERR_INVALID_ARG, "rope: %d tokens, %d/%d heads of %d (even, at most %d), blocks of %d: "
                          "bad shape", n, n_heads, n_kv_heads, head_dim, 2 * MAX_HALF, block_size);
    if (n > 0 && (!q || !k || !v || !positions || !seq_of || !inv_freq || !key_cache || !value_cache || !block_tables))
        return gale_error(GALE_ERR_INVALID_ARG, "rope: NULL buffer");
    if (norm && (!norm->q_weight || !norm->k_weight))
        return gale_error(GALE_ERR_INVALID_ARG, "rope: the q/k norm needs both weights");
    if (n == 0) return GALE_OK;
    rope_store_kv_kernel<<<n, ROPE_THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<uint16_t *>(q), static_cast<uint16_t *>(k), static_cast<const uint16_t *>(v), positions, seq_of,
        inv_freq, norm ? norm->q_weight : nullptr, norm ? norm->k_weight : nullptr, norm ? norm->offset : 0.0f,
        norm ? norm->eps : 0.0f, n_heads, n_kv_heads, head_dim, static_cast<uint16_t *>(key_cache),
        static_cast<uint16_t *>(value_cache), block_tables, table_stride, block_size);
    return cuda_check_launch(norm ? "q/k norm + rope + store kv" : "rope + store kv");
}
