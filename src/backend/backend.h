/* The backend op table: what the one forward (engine/model.c) asks of a device.
 * Activations are fp32 row-major; weights are gale_tensors as loaded (any dtype). The
 * CPU backend (cpu/ops.c) is plain C over a thread pool and is the reference every
 * CUDA kernel is compared with. */
#ifndef GALE_BACKEND_BACKEND_H
#define GALE_BACKEND_BACKEND_H

#include <stdint.h>

#include "core/tensor.h"
#include "core/threadpool.h"
#include "gale.h"

typedef struct backend {
    const struct backend_ops *ops;
    thread_pool *pool;
} backend;

typedef struct attention_params {
    int n_heads, n_kv_heads, head_dim;
    float scale;   /* multiplier of q·k */
    float softcap; /* 0: none */
    int window;    /* 0: full; else key j visible to query i iff 0 <= i - j < window */
} attention_params;

/* One layer of the paged KV cache (engine/kvcache.h has the layout) and the block tables
 * of the sequences in the batch. */
typedef struct paged_kv {
    float *keys, *values;        /* [n_blocks, block_size, kv_dim] */
    int block_size, kv_dim;
    const int32_t *block_tables; /* [n_seqs, table_stride]: block of each logical block */
    int table_stride;
} paged_kv;

typedef struct backend_ops {
    /* y[n, out] = x[n, in] · wᵀ for w [out, in] of any dtype */
    gale_status (*matmul)(backend *b, const float *x, int n, const gale_tensor *w, float *y);
    /* rows of table [V, dim] (any dtype) for ids → y[n, dim], times scale */
    gale_status (*embed)(backend *b, const gale_tensor *table, const int32_t *ids, int n, float scale, float *y);
    /* y[n, dim] = x · rsqrt(mean(x²) + eps) · (offset + w) per row; w fp32 [dim] */
    void (*rmsnorm)(backend *b, const float *x, int n, int dim, const float *w, float offset, float eps, float *y);
    /* split-half rotary embedding in place: x [n, heads, head_dim], positions [n] */
    void (*rope)(backend *b, float *x, int n, int heads, int head_dim, const int32_t *positions, const float *inv_freq);
    /* writes k, v [n, kv_dim] of token i at positions[i] of sequence seq_of[i] */
    void (*store_kv)(backend *b, const paged_kv *kv, const float *k, const float *v, int n, const int32_t *positions,
                     const int32_t *seq_of);
    /* out[n, heads, hd]: query i (q[n, heads, hd], at positions[i] of sequence seq_of[i])
     * over that sequence's cached positions up to its own (causal, windowed, softcapped);
     * every position it sees is stored already */
    gale_status (*attention)(backend *b, const float *q, const paged_kv *kv, int n, const int32_t *positions,
                             const int32_t *seq_of, const attention_params *p, float *out);
    /* gate[n, dim] = act(gate) * up, act SiLU or tanh-GELU */
    void (*gated_activation)(backend *b, float *gate, const float *up, size_t count, gale_activation act);
    /* x[i] = cap · tanh(x[i] / cap) */
    void (*softcap)(backend *b, float *x, size_t count, float cap);
} backend_ops;

extern const backend_ops cpu_backend_ops;

#endif
