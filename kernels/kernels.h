/* C-callable launchers of the CUDA kernels in the kernels/ .cu files.
 *
 * Host C11 code includes this header without any CUDA header: device buffers are plain
 * pointers to device memory and the stream is a cudaStream_t passed as void * (NULL is
 * the legacy default stream). Every launcher validates its arguments, enqueues its work
 * on the stream (it does not synchronise) and checks the launch: a failure returns a
 * gale_status with a message naming the kernel. Errors raised while the kernel runs
 * surface at the caller's next synchronising call. */
#ifndef GALE_KERNELS_H
#define GALE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gale.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dequant.cu: stored weights (REFERENCE.md §6) → fp32 / bf16 -------------------- */

/* n values encoded as dtype at src (device memory, the file's bytes as they are, no
 * alignment needed) → dst[n] in device memory. n must be a whole number of blocks.
 * Results are bit-identical to quant_dequantize_f32 / quant_dequantize_bf16 (src/model/
 * quant.h) except for the payload bits of NaNs that arithmetic on a NaN or infinite
 * scale produces (the GPU returns its canonical NaN). */
gale_status kernel_dequant_f32(gale_dtype dtype, const void *src, uint64_t n, float *dst,
                               void *stream);
/* dst_bf16: n bf16 values (bit patterns, uint16_t or __nv_bfloat16 in device memory). */
gale_status kernel_dequant_bf16(gale_dtype dtype, const void *src, uint64_t n,
                                void *dst_bf16, void *stream);

/* Activations on the GPU are bf16 bit patterns (uint16_t or __nv_bfloat16 in device
 * memory), row-major; norm weights, rotary frequencies and logits are fp32. Each kernel's
 * CPU reference is the backend op of the same name in src/backend/cpu/ops.c.
 *
 * A token whose seq_of is negative is padding (a recorded decode step run for more rows
 * than it has): the KV-store kernels skip it and the attention kernels write zeros. */

/* ---- norm.cu ---------------------------------------------------------------------- */

/* out[n, dim] = r · rsqrt(mean(r²) + eps) · (offset + w), statistics in fp32, where r is
 * the row of x — or, with residual given, of residual after residual += add (rounded to
 * bf16 and stored; add may be NULL). offset is 1 for Gemma's (1 + w), else 0. out may be
 * x or residual. dim ≤ 65536. */
gale_status kernel_rmsnorm_bf16(const void *x, void *residual, const void *add, const float *w, float offset,
                                float eps, int n, int dim, void *out, void *stream);

/* ---- rope.cu ---------------------------------------------------------------------- */

/* Per-head RMSNorm of q and k before the rotation (Gemma 3): x · rsqrt(mean(x²) + eps) ·
 * (offset + w) over each head's head_dim values, w fp32 [head_dim] on the device. */
typedef struct rope_qk_norm {
    const float *q_weight, *k_weight;
    float offset, eps;
} rope_qk_norm;

/* Split-half rotary embedding of q [n, n_heads, head_dim] and k [n, n_kv_heads, head_dim]
 * in place, token i at positions[i] with inv_freq[head_dim/2], each head normalised first
 * when norm is not NULL; then k and v [n, kv_dim] of token i stored at its position of
 * sequence seq_of[i] in the paged cache (key_cache/value_cache [n_blocks, block_size,
 * kv_dim], block_tables [n_seqs, table_stride]; layout of src/engine/kvcache.h).
 * head_dim even, at most 512. */
gale_status kernel_rope_store_kv_bf16(void *q, void *k, const void *v, const int32_t *positions, const int32_t *seq_of,
                                      const float *inv_freq, const rope_qk_norm *norm, int n, int n_heads, int n_kv_heads,
                                      int head_dim,
                                      void *key_cache, void *value_cache, const int32_t *block_tables, int table_stride,
                                      int block_size, void *stream);

/* ---- activation.cu ---------------------------------------------------------------- */

/* out[i] = act(gate[i]) · up[i] for count values, act SiLU or tanh-GELU; out may be gate. */
gale_status kernel_gated_activation_bf16(const void *gate, const void *up, uint64_t count, gale_activation act,
                                         void *out, void *stream);
/* x[i] = cap · tanh(x[i] / cap) on fp32 or bf16 logits; cap > 0. */
gale_status kernel_softcap_f32(float *x, uint64_t count, float cap, void *stream);
gale_status kernel_softcap_bf16(void *x, uint64_t count, float cap, void *stream);
/* y[i] += a · x[i] in bf16 (a = 1: the residual add; else a weighted expert output) */
gale_status kernel_axpy_bf16(void *y, const void *x, float a, uint64_t count, void *stream);

/* ---- attention.cu ----------------------------------------------------------------- */

/* out[n, n_heads, head_dim] (bf16): query i (q [n, n_heads, head_dim], at positions[i] of
 * sequence seq_of[i]) over that sequence's cached keys and values up to its own position
 * (causal; window > 0: the last `window` positions; softcap > 0: cap·tanh(s/cap) on the
 * scores; scale multiplies q·k). Cache as kernel_rope_store_kv_bf16 writes it; every
 * position a query sees must be stored. head_dim ≤ 256, n_heads a multiple of n_kv_heads. */
gale_status kernel_paged_attention_bf16(const void *q, const void *key_cache, const void *value_cache,
                                        const int32_t *block_tables, int table_stride, int block_size,
                                        const int32_t *positions, const int32_t *seq_of, int n, int n_heads,
                                        int n_kv_heads, int head_dim, float scale, float softcap, int window, void *out,
                                        void *stream);

/* ---- embed.cu --------------------------------------------------------------------- */

/* out[n, dim] = table[ids[i]] · scale (bf16 table [vocab, dim]); ids checked by the caller
 * (an id outside the table gives a zero row). */
gale_status kernel_embed_bf16(const void *table, int vocab, int dim, const int32_t *ids, int n, float scale, void *out,
                              void *stream);

/* ---- fill.cu ---------------------------------------------------------------------- */

/* dst[n] (bf16) = uniform in [-amplitude, amplitude] from cuRAND Philox with this seed:
 * a synthetic tensor's values (core/tensor.h); amplitude > 0. */
gale_status kernel_fill_uniform_bf16(void *dst, uint64_t n, float amplitude, uint64_t seed, void *stream);

/* ---- gemv.cu ---------------------------------------------------------------------- */

#define GEMV_MAX_ROWS 8
/* y[n, out] = x[n, in] · wᵀ (bf16, fp32 accumulation) for a few rows: the decode GEMM
 * written to stream the weight at the memory bandwidth. Supported when 1 ≤ n ≤
 * GEMV_MAX_ROWS, in % 8 == 0 and x, w 16-byte aligned. */
bool kernel_gemv_supported(const void *x, const void *w, int n, int in_dim);
gale_status kernel_gemv_bf16(const void *x, int n, const void *w, int out_dim, int in_dim, void *y, void *stream);

/* ---- sample.cu -------------------------------------------------------------------- */

/* One row's sampling rule, in device memory (the CPU sampler's parameters). */
typedef struct sample_params {
    float temperature; /* 0: greedy (argmax, lowest id on ties) */
    int32_t top_k;     /* 0: off */
    float top_p;       /* (0, 1]; 1: off */
    float min_p;       /* [0, 1]; 0: off */
    float repetition_penalty, presence_penalty, frequency_penalty;
    int32_t penalty_offset, penalty_count; /* the row's (id, count) pairs in the pair arrays */
    uint64_t seed;     /* Philox key: the request's seed */
    uint64_t draw;     /* how many draws the request made before: Philox outputs 2·draw, 2·draw + 1 */
} sample_params;

/* Bytes of fp32 workspace kernel_sample_bf16 needs: [rows, vocab]. */
size_t kernel_sample_workspace_bytes(int rows, int vocab);
/* ids[rows] = one token per row of bf16 logits [rows, vocab] under params[rows], with the
 * penalties of each row's distinct history ids (penalty_ids/penalty_counts, [Σ counts]).
 * The logits are left as they are; workspace holds their fp32 copies (penalised), then
 * their probabilities relative to the top one. */
gale_status kernel_sample_bf16(const void *logits, int rows, int vocab, const sample_params *params,
                               const int32_t *penalty_ids, const int32_t *penalty_counts, float *workspace,
                               int32_t *ids, void *stream);

#ifdef __cplusplus
}
#endif

/* the attention issue's flash-style kernels and the MoE issue's expert dispatch */
#include "attention_kernels.h"
#include "moe_kernels.h"

#endif
