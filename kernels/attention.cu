/* Attention over the paged KV cache, the simple correct kernel of the CUDA backend (the
 * flash-style prefill and split-KV decode kernels are the attention issue's). CPU
 * reference: cpu_attention in src/backend/cpu/ops.c; cache layout: src/engine/kvcache.h
 * (bf16 here).
 *
 * One thread block per (query token, head). The query's visible keys (causal, windowed)
 * are walked in tiles of ATTN_THREADS: each thread scores one key of the tile (fp32 dot
 * over head_dim, scale, optional softcap), the tile's maximum and sum come from block
 * reductions, and an online softmax rescales the running output when the maximum grows
 * — so any context length works with fixed shared memory. For the weighted sum each
 * thread owns output dimensions d (head_dim ≤ 256: at most two each) and reads the tile's
 * value rows at d: consecutive threads read consecutive bf16s of a row. GQA: head h reads
 * kv head h / (n_heads / n_kv_heads). fp32 throughout; the output is rounded to bf16. */
#include <math.h>

#include "common.cuh"
#include "kernels.h"

namespace {

constexpr int ATTN_THREADS = 128;
constexpr int MAX_HEAD_DIM = 256;
constexpr int DIMS_PER_THREAD = MAX_HEAD_DIM / ATTN_THREADS;

__device__ float block_reduce(float v, float *scratch, bool is_max) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        float other = __shfl_xor_sync(0xffffffffu, v, offset);
        v = is_max ? fmaxf(v, other) : v + other;
    }
    __syncthreads(); /* scratch may still be read from the last reduction */
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x / 32] = v;
    __syncthreads();
    float result = scratch[0];
    for (int w = 1; w < ATTN_THREADS / 32; w++) result = is_max ? fmaxf(result, scratch[w]) : result + scratch[w];
    return result;
}

__global__ void paged_attention_kernel(const uint16_t *__restrict__ q, const uint16_t *__restrict__ key_cache,
                                       const uint16_t *__restrict__ value_cache, const int32_t *__restrict__ block_tables,
                                       int table_stride, int block_size, const int32_t *__restrict__ positions,
                                       const int32_t *__restrict__ seq_of, int n_heads, int n_kv_heads, int head_dim,
                                       float scale, float softcap, int window, uint16_t *__restrict__ out) {
    const int token = blockIdx.x / n_heads, head = blockIdx.x % n_heads;
    if (seq_of[token] < 0) { /* a padding row of a recorded decode step */
        for (int d = threadIdx.x; d < head_dim; d += ATTN_THREADS) out[((size_t)token * n_heads + head) * head_dim + d] = 0;
        return;
    }
    const int kv_head = head / (n_heads / n_kv_heads), kv_dim = n_kv_heads * head_dim;
    const int pos = positions[token];
    const int first = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    const int32_t *table = block_tables + (size_t)seq_of[token] * table_stride;

    __shared__ float q_row[MAX_HEAD_DIM];
    __shared__ float weights[ATTN_THREADS];
    __shared__ float scratch[ATTN_THREADS / 32];
    const uint16_t *q_src = q + ((size_t)token * n_heads + head) * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += ATTN_THREADS) q_row[d] = dev_bf16_to_f32(q_src[d]);
    __syncthreads();

    float running_max = -INFINITY, running_sum = 0.0f, acc[DIMS_PER_THREAD] = {0.0f, 0.0f};
    for (int tile = first; tile <= pos; tile += ATTN_THREADS) {
        const int t = tile + threadIdx.x;
        float score = -INFINITY;
        if (t <= pos) {
            const uint16_t *k = key_cache + ((size_t)table[t / block_size] * block_size + t % block_size) * kv_dim +
                                (size_t)kv_head * head_dim;
            float dot = 0.0f;
            for (int d = 0; d < head_dim; d++) dot = fmaf(q_row[d], dev_bf16_to_f32(k[d]), dot);
            score = dot * scale;
            if (softcap > 0) score = softcap * tanhf(score / softcap);
        }
        const float tile_max = block_reduce(score, scratch, true);
        const float new_max = fmaxf(running_max, tile_max);
        const float weight = t <= pos ? expf(score - new_max) : 0.0f;
        weights[threadIdx.x] = weight;
        const float tile_sum = block_reduce(weight, scratch, false); /* its syncs publish weights[] */
        const float rescale = expf(running_max - new_max);           /* 0 on the first tile */
        running_sum = running_sum * rescale + tile_sum;
        running_max = new_max;
        const int tile_len = pos - tile + 1 < ATTN_THREADS ? pos - tile + 1 : ATTN_THREADS;
        for (int i = 0; i < DIMS_PER_THREAD; i++) {
            const int d = threadIdx.x + i * ATTN_THREADS;
            if (d >= head_dim) break;
            float sum = acc[i] * rescale;
            for (int j = 0; j < tile_len; j++) {
                const int tj = tile + j;
                const uint16_t *v = value_cache +
                                    ((size_t)table[tj / block_size] * block_size + tj % block_size) * kv_dim +
                                    (size_t)kv_head * head_dim;
                sum = fmaf(weights[j], dev_bf16_to_f32(v[d]), sum);
            }
            acc[i] = sum;
        }
        __syncthreads(); /* weights[] is rewritten by the next tile */
    }
    uint16_t *o = out + ((size_t)token * n_heads + head) * head_dim;
    for (int i = 0; i < DIMS_PER_THREAD; i++) {
        const int d = threadIdx.x + i * ATTN_THREADS;
        if (d < head_dim) o[d] = dev_f32_to_bf16(acc[i] / running_sum);
    }
}

} // namespace

extern "C" gale_status kernel_paged_attention_bf16(const void *q, const void *key_cache, const void *value_cache,
                                                   const int32_t *block_tables, int table_stride, int block_size,
                                                   const int32_t *positions, const int32_t *seq_of, int n, int n_heads,
                                                   int n_kv_heads, int head_dim, float scale, float softcap,
                                                   int window, void *out, void *stream) {
    if (n < 0 || n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads || head_dim <= 0 || head_dim > MAX_HEAD_DIM ||
        block_size <= 0 || table_stride <= 0 || window < 0)
        return gale_error(GALE_ERR_INVALID_ARG,
                          "attention: %d tokens, %d/%d heads of %d (at most %d), blocks of %d, window %d: bad shape", n,
                          n_heads, n_kv_heads, head_dim, MAX_HEAD_DIM, block_size, window);
    if (n > 0 && (!q || !key_cache || !value_cache || !block_tables || !positions || !seq_of || !out))
        return gale_error(GALE_ERR_INVALID_ARG, "attention: NULL buffer");
    if (n == 0) return GALE_OK;
    const uint64_t blocks = (uint64_t)n * (uint64_t)n_heads;
    if (blocks > 0x7fffffffu) return gale_error(GALE_ERR_INVALID_ARG, "attention: %llu (token, head) pairs", (unsigned long long)blocks);
    paged_attention_kernel<<<(unsigned)blocks, ATTN_THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const uint16_t *>(q), static_cast<const uint16_t *>(key_cache),
        static_cast<const uint16_t *>(value_cache), block_tables, table_stride, block_size, positions, seq_of, n_heads,
        n_kv_heads, head_dim, scale, softcap, window, static_cast<uint16_t *>(out));
    return cuda_check_launch("paged attention");
}
