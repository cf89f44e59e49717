/* C-callable launchers of kernels/flash_attention.cu (included by kernels.h): attention over
 * the paged KV cache with the flash-style prefill kernel, the split-KV (flash-decoding)
 * kernel, or the simple kernel of attention.cu, chosen at run time.
 *
 * Semantics, whatever the variant (CPU reference: cpu_attention in src/backend/cpu/ops.c):
 * query i (q [n, n_heads, head_dim]) sits at positions[i] of sequence seq_of[i] and sees
 * that sequence's cached keys j with kv_first_visible(window, positions[i]) <= j <=
 * positions[i] (window 0: all of them); its score is scale·q·k, then cap·tanh(s/cap) when
 * softcap > 0, softmax in fp32; out [n, n_heads, head_dim] bf16. Query head h reads KV head
 * h / (n_heads / n_kv_heads). The cache is as kernel_rope_store_kv_bf16 writes it (layout:
 * src/engine/kvcache.h), every position a query sees stored already. A token with
 * seq_of < 0 is padding (a recorded decode step's extra rows): its output is zeros.
 *
 * Host-side planning helpers (attention_plan_*, attention_decode_split, attention_split_range)
 * touch no device: they are what the launcher runs on the host, exported so tests check
 * them without a GPU. */
#ifndef GALE_ATTENTION_KERNELS_H
#define GALE_ATTENTION_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gale.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attention_variant {
    ATTENTION_AUTO,          /* the rule of kernel_attention_bf16 below */
    ATTENTION_NAIVE,         /* kernel_paged_attention_bf16: one block per (token, head) */
    ATTENTION_FLASH_M64,     /* prefill kernel, 64 query rows per block (4 warps) */
    ATTENTION_FLASH_M128,    /* prefill kernel, 128 query rows per block (8 warps) */
    ATTENTION_SPLIT_KV,      /* decode kernel, split size chosen to fill the GPU */
    ATTENTION_SPLIT_KV_256,  /* decode kernel, 256 keys per split */
    ATTENTION_SPLIT_KV_1024, /* decode kernel, 1024 keys per split */
    ATTENTION_SPLIT_KV_NONE, /* decode kernel, one split: a block walks the whole range */
    ATTENTION_VARIANT_COUNT
} attention_variant;

/* The prefill kernel's variants, and the decode kernel's (split-KV) ones. */
static inline bool attention_variant_is_flash(attention_variant v) {
    return v == ATTENTION_FLASH_M64 || v == ATTENTION_FLASH_M128;
}
static inline bool attention_variant_is_split(attention_variant v) {
    return v >= ATTENTION_SPLIT_KV && v <= ATTENTION_SPLIT_KV_NONE;
}

/* What the launcher keeps of the plan it last uploaded into a workspace (host memory the
 * caller owns, zero-initialised): a launch whose plan_key, token count, head grouping,
 * variant and workspace are the same reuses it instead of planning on the host and
 * uploading again, so the layers of one forward plan once. The plan does not depend on the
 * window, so Gemma 2/3's alternating sliding and global layers share it too. */
typedef struct attention_plan_memo {
    uint64_t key;          /* 0: nothing kept */
    const void *workspace; /* where the plan sits */
    int n, group, block_m, variant;
    int n_tiles, n_singles;
    uint64_t reuses; /* launches served from the memo: never reset here (tests read it) */
} attention_plan_memo;

typedef struct attention_launch {
    const void *q;                               /* [n, n_heads, head_dim] bf16 */
    const void *key_cache, *value_cache;         /* [n_blocks, block_size, n_kv_heads·head_dim] bf16 */
    const int32_t *block_tables;                 /* [n_seqs, table_stride] device; -1: no block */
    int table_stride, block_size;
    const int32_t *positions, *seq_of;           /* [n] device */
    const int32_t *host_positions, *host_seq_of; /* [n] host copies for planning, or both NULL */
    int n, n_heads, n_kv_heads, head_dim;
    float scale, softcap; /* softcap 0: none */
    int window;           /* 0: full attention */
    /* A bound on positions[i] + 1 (the context capacity), which sizes the decode splits;
     * 0: table_stride·block_size. Results never depend on it, only the work split. */
    int max_context;
    void *out; /* [n, n_heads, head_dim] bf16 */
    void *workspace; /* device scratch of kernel_attention_workspace_bytes, 256-byte aligned */
    size_t workspace_bytes;
    /* NULL, or the caller's memo of the last plan; plan_key (nonzero) names the contents of
     * host_positions and host_seq_of, and must change whenever they do */
    attention_plan_memo *memo;
    uint64_t plan_key;
} attention_launch;

/* Device scratch that kernel_attention_bf16(a, v) needs. It depends only on n, the head
 * counts, head_dim, window, max_context (or table_stride·block_size) and the GPU's SM count,
 * never on the values of positions: a buffer sized once for the largest batch serves every
 * smaller one. 0 for the naive kernel. */
size_t kernel_attention_workspace_bytes(const attention_launch *a, attention_variant v);

/* out = attention (semantics above), queued on stream (cudaStream_t; NULL: legacy default).
 *
 * ATTENTION_AUTO: without host copies of positions and seq_of, or when no two adjacent
 * tokens of the batch form a run (same sequence, consecutive positions), the decode
 * kernel over every token. Otherwise the prefill kernel over the runs of two or more tokens
 * (BLOCK_M 128 when head_dim <= 128 and the batch gives at least two blocks per SM, else
 * 64) and the decode kernel over the lone tokens.
 *
 * The flash variants (and AUTO with host copies) build a plan of tiles on the host and copy
 * it into the workspace with cudaMemcpyAsync: they need host_positions/host_seq_of and are
 * not for CUDA graph capture. The split-KV variants (and AUTO without host copies) are:
 * their grids and workspace depend on the shapes only, their kernels read positions on the
 * device. Nothing is allocated; q, caches and out must be 16-byte aligned for the fast
 * variants. head_dim 64/128/256 for the fast variants (GALE_ERR_UNSUPPORTED otherwise),
 * <= 256 for the naive one. */
gale_status kernel_attention_bf16(const attention_launch *a, attention_variant v, void *stream);

/* "auto", "naive", "flash_m64", "flash_m128", "split_kv", "split_kv_256", "split_kv_1024",
 * "split_kv_none"; NULL for a value outside the enum. */
const char *attention_variant_name(attention_variant v);
/* The variant named name (as attention_variant_name writes it); false if none is. */
bool attention_variant_parse(const char *name, attention_variant *out);

/* ---- host-side planning (no device needed) ------------------------------------------- */

/* Whether batch token i + 1 continues token i's run: the same sequence (padding never
 * does) at the next position. The one rule of the plan below and of the backend's choice
 * between the prefill and decode kernels. */
static inline bool attention_token_continues_run(const int32_t *positions, const int32_t *seq_of, int i) {
    return seq_of[i] >= 0 && seq_of[i + 1] == seq_of[i] && positions[i + 1] == positions[i] + 1;
}

/* One block of the prefill kernel: up to block_m rows of a run. A run is a maximal range of
 * consecutive batch tokens of one sequence at consecutive positions; its rows are
 * row = token_offset·group + head_in_group (group = n_heads / n_kv_heads), so the query
 * heads sharing a KV head sit in one tile and read each K/V tile once. */
typedef struct attention_tile {
    int32_t first_token; /* batch index of the run's first token */
    int32_t n_tokens;    /* tokens in the run */
    int32_t first_row;   /* the tile's first row among the run's n_tokens·group rows */
    /* keys its rows see without a window (its last position + 1): the work the tiles are
     * sorted by. A window caps a tile's keys at window + its positions − 1, which keeps that
     * order for tiles of equal height, so one plan serves windowed and global layers. */
    int32_t keys;
} attention_tile;

/* Most tiles attention_plan_tiles can write for n tokens (n + ceil(n·group/block_m)). */
int attention_plan_max_tiles(int n, int group, int block_m);

/* Splits the batch into runs and the runs into tiles of block_m rows, written to tiles[]
 * (attention_plan_max_tiles entries) longest first; returns their count. With singles
 * non-NULL, runs of one token are not tiled but their batch indices written to singles[]
 * (n entries), their count to *n_singles. */
int attention_plan_tiles(const int32_t *positions, const int32_t *seq_of, int n, int group, int block_m,
                         attention_tile *tiles, int32_t *singles, int *n_singles);

/* How the decode kernel splits each query's visible keys. */
typedef struct attention_split {
    int n_splits;   /* blocks per (token, KV head, head chunk) */
    int split_size; /* keys per split, a multiple of 128 */
} attention_split;

/* Splits for n_tokens queries seeing at most max_visible keys each: fixed_size > 0 uses that
 * many keys per split (rounded up to 128, and grown so there are at most 512 splits);
 * 0 picks the size that gives about 4·sm_count blocks (at most 64 splits); < 0 one split. */
attention_split attention_decode_split(int n_tokens, int n_kv_heads, int group, int max_visible, int fixed_size,
                                       int sm_count);

/* The (token, split) pairs AUTO reserves decode partials for in a batch of n tokens: with
 * B = n_kv_heads · ceil(group / 4) blocks per token and X = ceil(4·sm_count / B),
 * min(n, X) + X, which bounds k · attention_decode_split(k, …, 0, …).n_splits for every
 * k <= n that gets two splits or more (one split needs no partials). */
size_t attention_auto_partial_items(int n, int n_kv_heads, int group, int sm_count);

/* Keys [*lo, *hi] of split `split` for a query seeing [first, pos]: consecutive splits of
 * split_size keys from first, the last one reaching pos whatever its distance, so the
 * splits cover [first, pos] exactly once even past max_visible. Empty when *lo > *hi. */
void attention_split_range(int first, int pos, int split, attention_split s, int *lo, int *hi);

#ifdef __cplusplus
}
#endif

#endif
