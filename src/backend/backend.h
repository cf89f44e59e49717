/* The backend op table: what the one forward (engine/runner.c) asks of a device.
 *
 * Activations, the KV cache and the fp32 parameters the forward uploads (norm weights,
 * rotary frequencies) live in the backend's memory, as void pointers the runner never
 * dereferences: fp32 host memory on the CPU, bf16 (activations, cache) and fp32 device
 * memory on CUDA. act_size is the bytes of one activation value, so the runner can step
 * through rows. Small integer arrays (token ids, positions, sequence indices, block
 * tables) are staged into backend memory once per forward. Weights are gale_tensors: as
 * loaded on the CPU (any dtype, dequantised as they are read), uploaded (bf16) on CUDA.
 * Activations are row-major. The CPU backend (cpu/ops.c) is plain C over a thread pool
 * and is the reference every CUDA kernel is compared with.
 *
 * A token whose seq_of is negative is padding (a recorded decode step run for more rows
 * than it has): rope_store_kv stores nothing for it and attention writes zeros. */
#ifndef GALE_BACKEND_BACKEND_H
#define GALE_BACKEND_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "core/threadpool.h"
#include "gale.h"

typedef struct backend {
    const struct backend_ops *ops;
    thread_pool *pool; /* the CPU backend's workers */
    void *impl;        /* a device backend's state (stream, library handles, staging) */
} backend;

typedef struct moe_weights moe_weights; /* below */

/* One row's sampling rule for the sample op: the request's parameters, its draw counter
 * and the penalties' view of its history (distinct ids with their counts). */
typedef struct sample_row {
    gale_sampling_params params;
    uint64_t draw;                 /* how many draws the request made before this one */
    const int32_t *penalty_ids;    /* [n_penalty] host */
    const int32_t *penalty_counts; /* [n_penalty] host */
    int n_penalty;                 /* 0 when no penalty applies */
} sample_row;

/* Gemma 3's per-head RMSNorm of q and k (q_norm, k_norm), which rope_store_kv applies
 * before rotating when given: y = x · rsqrt(mean(x²) + eps) · (offset + w) over each
 * head's head_dim values. */
typedef struct head_norm {
    const float *q_weight, *k_weight; /* fp32 [head_dim], backend memory */
    float offset, eps;
} head_norm;

typedef struct attention_params {
    int n_heads, n_kv_heads, head_dim;
    float scale;   /* multiplier of q·k */
    float softcap; /* 0: none */
    int window;    /* 0: full; else key j visible to query i iff 0 <= i - j < window */
    int max_context; /* a bound on every position + 1 (the context): sizes a device's work
                        split, never changes the result; 0: unknown */
} attention_params;

/* One layer of the paged KV cache (engine/kvcache.h has the layout) and the block tables
 * of the sequences in the batch. */
typedef struct paged_kv {
    void *keys, *values;         /* [n_blocks, block_size, kv_dim] activation values */
    int block_size, kv_dim;
    const int32_t *block_tables; /* [n_seqs, table_stride]: block of each logical block */
    int table_stride;
} paged_kv;

typedef struct backend_ops {
    const char *name;
    size_t act_size; /* bytes per activation value */

    /* ---- memory ---- */
    /* bytes the KV cache may take a fraction of: the host's memory, or the GPU's free memory */
    size_t (*memory_size)(backend *b);
    gale_status (*alloc)(backend *b, size_t bytes, void **out);
    void (*release)(backend *b, void *p);
    /* host bytes → backend memory (fp32 parameters) */
    gale_status (*upload)(backend *b, void *dst, const void *src, size_t bytes);
    /* host int32[count] → backend memory valid until the next stage_ints call of the
     * same slot (0 … 3: one per kind of array in a forward); the CPU returns src */
    gale_status (*stage_ints)(backend *b, int slot, const int32_t *src, size_t count, const int32_t **out);
    /* a weight as the backend reads it (CPU: the loaded tensor itself) */
    gale_status (*upload_weight)(backend *b, const gale_tensor *host, gale_tensor *out);
    void (*release_weight)(backend *b, gale_tensor *t);
    /* activation values → fp32 host floats */
    gale_status (*to_host)(backend *b, const void *src, size_t count, float *dst);

    /* ---- ops (shapes in activation values) ---- */
    /* y[n, out] = x[n, in] · wᵀ for w [out, in] */
    gale_status (*matmul)(backend *b, const void *x, int n, const gale_tensor *w, void *y);
    /* rows of table [V, dim] for ids (staged) → y[n, dim], times scale as the activation
     * dtype holds it (bf16 on CUDA: Gemma multiplies by a tensor of that dtype) */
    gale_status (*embed)(backend *b, const gale_tensor *table, const int32_t *ids, int n, float scale, void *y);
    /* y[n, dim] = x · rsqrt(mean(x²) + eps) · (offset + w) per row; w fp32 [dim]; y may be x */
    void (*rmsnorm)(backend *b, const void *x, int n, int dim, const float *w, float offset, float eps, void *y);
    /* split-half rotary embedding of q [n, n_heads, head_dim] and k [n, n_kv_heads,
     * head_dim] in place (token i at positions[i], inv_freq [head_dim/2]), after each
     * head's RMSNorm when norm is not NULL; then k and v [n, kv_dim] of token i written at
     * positions[i] of sequence seq_of[i] in the cache */
    void (*rope_store_kv)(backend *b, void *q, void *k, const void *v, int n, int n_heads, int n_kv_heads, int head_dim,
                          const int32_t *positions, const int32_t *seq_of, const float *inv_freq, const head_norm *norm,
                          const paged_kv *kv);
    /* out[n, heads, hd]: query i (q[n, heads, hd], at positions[i] of sequence seq_of[i])
     * over that sequence's cached positions up to its own (causal, windowed, softcapped);
     * every position it sees is stored already */
    gale_status (*attention)(backend *b, const void *q, const paged_kv *kv, int n, const int32_t *positions,
                             const int32_t *seq_of, const attention_params *p, void *out);
    /* gate[count] = act(gate) * up, act SiLU or tanh-GELU */
    void (*gated_activation)(backend *b, void *gate, const void *up, size_t count, gale_activation act);
    /* x[i] = cap · tanh(x[i] / cap) */
    void (*softcap)(backend *b, void *x, size_t count, float cap);
    /* x[i] += y[i] */
    void (*add)(backend *b, void *x, const void *y, size_t count);
    /* y[i] += a · x[i] (a Mixtral expert's weighted output) */
    void (*scale_add)(backend *b, void *y, const void *x, float a, size_t count);
    /* x[i] = 0 */
    void (*zero)(backend *b, void *x, size_t count);
    /* dst[i, :] = src[rows[i], :] for rows given on the host, width values per row */
    gale_status (*gather_rows)(backend *b, void *dst, const void *src, const int32_t *rows, int n, int width);

    /* ---- optional fused routines (NULL: the generic one over the ops above) ---- */
    /* x[n, dim] += add, then y = rmsnorm(x) as the rmsnorm op (the residual stream's add
     * fused with the next norm); y is not x */
    void (*add_rmsnorm)(backend *b, void *x, const void *add, int n, int dim, const float *w, float offset, float eps,
                        void *y);
    /* out[n, H] = the MoE layer of backend_moe, on the device's own dispatch. seq_of [n]
     * (staged): a padding row (< 0) may take another row's experts instead of its own, so
     * that it switches on no expert the step would not read anyway; its output is unused */
    gale_status (*moe)(backend *b, const void *x, int n, const int32_t *seq_of, const moe_weights *w, void *out);
    /* ids[rows] (host) = a token per row of logits [rows, vocab] (activation values) under
     * each row's rule, drawn on the device: only the ids travel to the host */
    gale_status (*sample)(backend *b, const void *logits, int rows, int vocab, const sample_row *rule, int32_t *ids);

    /* ---- recorded steps (optional; NULL: every step runs op by op) ---- */
    /* Between graph_begin and graph_end the ops are recorded, not run: *graph then replays
     * them with graph_launch (same buffers, same sizes; staged integer arrays read anew).
     * graph_end must follow graph_begin even when an op failed in between. */
    gale_status (*graph_begin)(backend *b);
    gale_status (*graph_end)(backend *b, void **graph);
    gale_status (*graph_launch)(backend *b, void *graph);
    void (*graph_free)(backend *b, void *graph);
    /* changes whenever backend memory was freed: a graph recorded before may point at it */
    uint64_t (*buffers_epoch)(backend *b);
} backend_ops;

/* A Mixtral layer's experts, as the backend reads them. */
struct moe_weights {
    const gale_tensor *router;     /* [E, H] */
    const gale_tensor *gate, *up;  /* [E] tensors of [I, H] */
    const gale_tensor *down;       /* [E] tensors of [H, I] */
    int n_experts, top_k, hidden, intermediate;
    gale_activation act;
};

/* Buffers backend_moe grows on demand and reuses (zero-initialise; backend_moe_free). */
typedef struct moe_scratch_shape {
    int n_experts, top_k, hidden, intermediate;
} moe_scratch_shape;
typedef struct moe_scratch {
    void *router, *rows, *gate, *up, *expert_out; /* backend memory */
    size_t cap_tokens;
    moe_scratch_shape shape;                      /* the largest layer they are sized for */
    float *logits, *weight;                       /* host: [n, E], [n·k] */
    int32_t *slot_expert, *slot_token, *slot_position; /* host: [n·k] */
} moe_scratch;

/* out[n, H] = down(act(gate(x)) ⊙ up(x)) for x [n, H], the dense MLP and each expert;
 * gate and up are scratch of [n, intermediate] activations. */
gale_status backend_gated_mlp(backend *b, const gale_tensor *gate_w, const gale_tensor *up_w, const gale_tensor *down_w,
                              gale_activation act, int intermediate, const void *x, int n, void *gate, void *up,
                              void *out);

/* out[n, H] = Σ over each token's top-k experts of weight · expert(x): router logits
 * softmaxed over all experts in fp32, the top k kept and renormalised to sum 1. Tokens
 * are grouped by expert (a counting sort, in token order within an expert) so each
 * expert's MLP runs once over its tokens, then each token's outputs are added in its
 * top-k order — so a token's result does not depend on the batch. Written over the
 * other ops, for any backend (the GPU's own dispatch is the MoE issue's). */
gale_status backend_moe(backend *b, const void *x, int n, const moe_weights *w, moe_scratch *scratch, void *out);
/* The router's rule for one token: softmax over all E logits in fp32, the K largest (first
 * index on ties) into chosen[K], their probabilities renormalised to sum 1 into weight[K].
 * E ≤ 1024. */
void backend_moe_route(const float *logits, int E, int K, int32_t *chosen, float *weight);
void backend_moe_free(backend *b, moe_scratch *scratch);

/* row i of an activation buffer holding rows of `width` values */
static inline void *backend_row(const backend *b, void *base, size_t i, size_t width) {
    return (char *)base + i * width * b->ops->act_size;
}

extern const backend_ops cpu_backend_ops;

#endif
