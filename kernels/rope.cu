/* Rotary position embedding fused with writing keys and values into the paged KV cache.
 * CPU references: cpu_rope and cpu_store_kv in src/backend/cpu/ops.c; the cache layout is
 * src/engine/kvcache.h's (block tables, [n_blocks, block_size, kv_dim] per layer), here
 * in bf16.
 *
 * Split-half pairing (element k rotates with k + head_dim/2), the Hugging Face layout:
 * gale's GGUF loader un-permutes llama Q/K rows into it, so one pairing serves every
 * family. One thread block per token: its threads walk the (head, k) pairs of q and k and
 * the values of v, so the token's rows are read and written once. The angle and the
 * rotation use the CPU's fp32 operations without contraction (cosf/sinf are the accurate
 * versions, not the fast intrinsics): the rotated values differ from the CPU's only by
 * the final bf16 rounding and the last bit of cos/sin. */
#include "common.cuh"
#include "kernels.h"

namespace {

constexpr int ROPE_THREADS = 128;

__device__ __forceinline__ void rotate_pair(uint16_t *row, int k, int half, float cos_a, float sin_a) {
    float a = dev_bf16_to_f32(row[k]), b = dev_bf16_to_f32(row[k + half]);
    row[k] = dev_f32_to_bf16(__fsub_rn(__fmul_rn(a, cos_a), __fmul_rn(b, sin_a)));
    row[k + half] = dev_f32_to_bf16(__fadd_rn(__fmul_rn(b, cos_a), __fmul_rn(a, sin_a)));
}

__global__ void rope_store_kv_kernel(uint16_t *q, uint16_t *k, const uint16_t *__restrict__ v,
                                     const int32_t *__restrict__ positions, const int32_t *__restrict__ seq_of,
                                     const float *__restrict__ inv_freq, int n_heads, int n_kv_heads, int head_dim,
                                     uint16_t *key_cache, uint16_t *value_cache, const int32_t *__restrict__ block_tables,
                                     int table_stride, int block_size) {
    const int token = blockIdx.x, half = head_dim / 2, kv_dim = n_kv_heads * head_dim;
    if (seq_of[token] < 0) return; /* a padding row of a recorded decode step: nothing to store */
    const int pos = positions[token];
    const int32_t block = block_tables[(size_t)seq_of[token] * table_stride + pos / block_size];
    const size_t slot = ((size_t)block * block_size + pos % block_size) * kv_dim;
    uint16_t *q_row = q + (size_t)token * n_heads * head_dim;
    uint16_t *k_row = k + (size_t)token * kv_dim;
    for (int item = threadIdx.x; item < (n_heads + n_kv_heads) * half; item += blockDim.x) {
        int head = item / half, pair = item % half;
        float angle = __fmul_rn((float)pos, inv_freq[pair]);
        float cos_a = cosf(angle), sin_a = sinf(angle);
        if (head < n_heads) {
            rotate_pair(q_row + head * head_dim, pair, half, cos_a, sin_a);
        } else {
            uint16_t *row = k_row + (head - n_heads) * head_dim;
            rotate_pair(row, pair, half, cos_a, sin_a);
            key_cache[slot + (size_t)(head - n_heads) * head_dim + pair] = row[pair];
            key_cache[slot + (size_t)(head - n_heads) * head_dim + pair + half] = row[pair + half];
        }
    }
    for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) value_cache[slot + i] = v[(size_t)token * kv_dim + i];
}

} // namespace

extern "C" gale_status kernel_rope_store_kv_bf16(void *q, void *k, const void *v, const int32_t *positions,
                                                 const int32_t *seq_of, const float *inv_freq, int n, int n_heads,
                                                 int n_kv_heads, int head_dim, void *key_cache, void *value_cache,
                                                 const int32_t *block_tables, int table_stride, int block_size,
                                                 void *stream) {
    if (n < 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || head_dim % 2 || block_size <= 0 || table_stride <= 0)
        return gale_error(GALE_ERR_INVALID_ARG, "rope: %d tokens, %d/%d heads of %d, blocks of %d: bad shape", n, n_heads,
                          n_kv_heads, head_dim, block_size);
    if (n > 0 && (!q || !k || !v || !positions || !seq_of || !inv_freq || !key_cache || !value_cache || !block_tables))
        return gale_error(GALE_ERR_INVALID_ARG, "rope: NULL buffer");
    if (n == 0) return GALE_OK;
    rope_store_kv_kernel<<<n, ROPE_THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<uint16_t *>(q), static_cast<uint16_t *>(k), static_cast<const uint16_t *>(v), positions, seq_of,
        inv_freq, n_heads, n_kv_heads, head_dim, static_cast<uint16_t *>(key_cache), static_cast<uint16_t *>(value_cache),
        block_tables, table_stride, block_size);
    return cuda_check_launch("rope + store kv");
}
