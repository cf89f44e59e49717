/* C-callable launchers of kernels/moe.cu (included by kernels.h): Mixtral's mixture of
 * experts on the GPU — gate, dispatch, expert MLPs, combine — with no host round trip, so
 * a forward that runs it can be captured in a CUDA graph: launch configurations depend on
 * n, E, K, H and I only, never on where the tokens go. CPU reference: backend_moe in
 * src/backend/mlp.c. Conventions of kernels.h: device pointers, bf16 activations as bit
 * patterns, the stream last as void *, no synchronisation, a gale_status naming the
 * kernel on bad arguments or a failed launch.
 *
 * Shapes: E experts (1 … MOE_MAX_EXPERTS), K of them per token (1 … min(E,
 * MOE_MAX_TOP_K)), hidden H and intermediate I multiples of 8 (16-byte rows); x, out,
 * workspaces and expert weights 16-byte aligned (cudaMalloc gives 256). Outside these,
 * backend_moe is the fallback (cuda_moe.c decides with moe_shape_supported).
 *
 * Words: a slot is one (token t, choice k) pair, slot s = t·K + k, n·K of them. The
 * dispatch sorts slots by expert (token order within an expert, as the CPU does): the
 * slots of expert e become rows offsets[e] … offsets[e+1]−1 of the expert-ordered
 * buffers. */
#ifndef GALE_MOE_KERNELS_H
#define GALE_MOE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gale.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    MOE_MAX_EXPERTS = 64,
    MOE_MAX_TOP_K = 8,
    MOE_GEMV_MAX_TOKENS = 8, /* moe_choose_path: at most this many tokens take the GEMV path */
    MOE_TILE_ROWS = 64,      /* rows of one grouped-GEMM tile: the unit of the dispatch's tile map */
};

/* How the expert MLPs run. GROUPED: tensor-core GEMM tiles over each expert's rows.
 * GEMV: each selected expert's weight rows read once and applied to all its rows (at most
 * MOE_GEMV_MAX_TOKENS at a time) — the bandwidth-bound decode path. AUTO: moe_choose_path. */
typedef enum moe_path { MOE_PATH_AUTO = 0, MOE_PATH_GROUPED, MOE_PATH_GEMV } moe_path;

/* ---- host-side rules (no GPU needed) ---- */

/* GEMV for n ≤ MOE_GEMV_MAX_TOKENS, GROUPED above: a function of n alone, so a captured
 * graph's choice holds for every routing. */
moe_path moe_choose_path(int n_tokens);
/* The row tiles the grouped path can need for `slots` rows split among n_experts experts
 * in any way: Σₑ ⌈mₑ/T⌉ ≤ ⌊(slots + a·(T−1))/T⌋ with T = MOE_TILE_ROWS and a =
 * min(n_experts, slots) the experts that can be non-empty. The grid of the grouped GEMM
 * and the length of the tile map. */
int moe_row_tiles(int slots, int n_experts);
/* Whether the kernels take this layer: the limits of the header comment. */
bool moe_shape_supported(int n_experts, int top_k, int hidden, int intermediate);
/* Bytes of the workspace kernel_moe_bf16 carves (routing arrays, [n·K, I] activations,
 * [n·K, H] expert outputs); 0 when the shape is not supported. */
size_t moe_workspace_bytes(int n, int n_experts, int top_k, int hidden, int intermediate);

/* ---- the steps ---- */

/* The routing of a batch: device arrays the gate and the dispatch fill. */
typedef struct moe_routing {
    int32_t *expert;      /* [n·K] expert of slot t·K + k, in the token's top-k order */
    float *weight;        /* [n·K] its weight, renormalised over the token's K */
    int32_t *offsets;     /* [E + 1] first row of each expert; offsets[E] = n·K */
    int32_t *slot_row;    /* [n·K] the row of each slot in expert order */
    int32_t *row_token;   /* [n·K] the token of each row */
    int32_t *tile_expert; /* [moe_row_tiles(n·K, E)] expert of each row tile, −1 past the last */
    int32_t *tile_row;    /* [moe_row_tiles(n·K, E)] first row of each row tile (0 past the last) */
    int32_t *active;      /* [E] the experts that have rows, in increasing order, then −1 */
} moe_routing;

/* A layer's experts as the kernels read them. */
typedef struct moe_experts {
    int n_experts, top_k, hidden, intermediate; /* E, K, H, I */
    gale_activation act;                        /* of the gate projection: SiLU (Mixtral) or tanh-GELU */
    const void *const *gate;                    /* device array [E] of device pointers to bf16 [I, H] */
    const void *const *up;                      /* device array [E]: bf16 [I, H] */
    const void *const *down;                    /* device array [E]: bf16 [H, I] */
} moe_experts;

/* logits [n, E] fp32 → expert and weight [n·K]: softmax over all E in fp32, the K most
 * probable (first index on ties), renormalised to sum 1 — the CPU's rule. NaN logits
 * give meaningless weights but experts in range. seq_of [n] or NULL: a token with
 * seq_of < 0 (a padding row of a recorded decode step, whose rows are real first) is
 * routed as token 0, so padding adds no expert whose weights the step must read. */
gale_status kernel_moe_gate(const float *logits, const int32_t *seq_of, int n, int n_experts, int top_k,
                            int32_t *expert, float *weight, void *stream);
/* From r->expert (each in [0, E)): offsets, slot_row, row_token, the tile map and the
 * active list — a counting sort in one thread block. */
gale_status kernel_moe_dispatch(const moe_routing *r, int n, int n_experts, int top_k, void *stream);
/* Each expert's MLP over its rows: act[n·K, I] = act(x·gateₑᵀ) ⊙ (x·upₑᵀ) with x's rows
 * gathered through row_token (fp32 accumulation, one bf16 rounding), then
 * expert_out[n·K, H] = act·downₑᵀ. path AUTO means moe_choose_path(n). */
gale_status kernel_moe_experts_bf16(const moe_routing *r, const void *x, int n, const moe_experts *ex, moe_path path,
                                    void *act, void *expert_out, void *stream);
/* out[t, :] = Σ over k in order of weight[t·K+k] · expert_out[slot_row[t·K+k], :], summed
 * in fp32 and rounded once to bf16: deterministic, no atomics. */
gale_status kernel_moe_combine_bf16(const moe_routing *r, const void *expert_out, int n, int top_k, int hidden,
                                    void *out, void *stream);

/* The whole layer after the router GEMM: out[n, H] from logits [n, E] (fp32), x [n, H]
 * and seq_of (NULL, or padding rows as kernel_moe_gate takes them), through the four
 * steps above, in a workspace of at least
 * moe_workspace_bytes(n, …) bytes. out must not overlap x. */
gale_status kernel_moe_bf16(const float *logits, const int32_t *seq_of, const void *x, int n, const moe_experts *ex,
                            moe_path path, void *workspace, size_t workspace_bytes, void *out, void *stream);

#ifdef __cplusplus
}
#endif

#endif
