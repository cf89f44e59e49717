/* Paged KV cache: fixed-size blocks in pools, per-sequence block tables.
 *
 * Layers are grouped by attention window (0 = full attention): every layer of a group
 * sees the same positions, so they share one block table per sequence. Each group has
 * its own pool of n_blocks blocks; block b of a group holds, for every layer of the
 * group, the keys and values of block_size consecutive positions of one sequence.
 *
 * Memory layout of one layer (keys and values alike), fp32 on the CPU backend:
 *
 *     keys[layer] : [n_blocks, block_size, n_kv_heads, head_dim]   (row-major)
 *
 * A sequence's table for a group maps logical block j (positions j·bs … j·bs+bs-1) to a
 * block of the group's pool, or -1 once released. Position p of layer l is at
 *
 *     keys[l] + ((size_t)table[p / bs] * bs + p % bs) * kv_dim,   kv_dim = n_kv_heads·head_dim
 *
 * which is what the backend's store_kv and attention ops compute; the CUDA kernels read
 * the same layout. A sliding group releases a block as soon as it lies wholly before the
 * window of the next position the sequence will compute (last position < length − W + 1),
 * so a sequence holds at most ceil((W − 1 + chunk) / bs) + 1 blocks there (chunk: tokens
 * computed in one step), ceil(W / bs) + 1 when decoding. Full groups keep every block. */
#ifndef GALE_ENGINE_KVCACHE_H
#define GALE_ENGINE_KVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gale.h"

struct backend;

enum { KV_MAX_GROUPS = 4, KV_DEFAULT_BLOCK_SIZE = 16 };

typedef struct kv_group {
    int window;      /* 0: full attention */
    int n_layers;    /* layers in the group */
    int n_blocks;    /* the pool */
    int n_free;
    int32_t *free_list; /* [n_blocks]; the first n_free entries are free blocks */
    int seq_cap;     /* most blocks one sequence can hold here (sliding groups), or 0 */
} kv_group;

typedef struct kv_cache {
    int n_layers, kv_dim, block_size, n_groups;
    kv_group groups[KV_MAX_GROUPS];
    int *layer_group; /* [n_layers] */
    struct backend *storage; /* where keys and values live; NULL: block accounting only */
    void *arena;      /* the one allocation keys and values point into */
    void **keys;      /* [n_layers] → [n_blocks of its group, block_size, kv_dim] activation values */
    void **values;    /* same */
} kv_cache;

/* A sequence's view of the cache. Zero-initialise; kv_seq_free returns its blocks. */
typedef struct kv_seq {
    int length;                     /* positions stored */
    int n_logical;                  /* entries in each table */
    int cap;                        /* allocated entries per table */
    int32_t *tables[KV_MAX_GROUPS]; /* [cap] block ids, -1: released or never needed */
    int held[KV_MAX_GROUPS];        /* blocks this sequence holds in each group */
    int first_live[KV_MAX_GROUPS];  /* entries before it are released */
} kv_seq;

typedef struct kv_cache_params {
    int block_size;     /* 0: 16 */
    size_t budget_bytes; /* memory for all pools */
    int max_seqs;       /* sequences running at once (sizes the sliding pools) */
    int max_chunk;      /* most tokens one sequence computes in a step */
    int max_len;        /* longest sequence (the context) */
    struct backend *storage; /* allocates the keys and values (activation dtype); NULL:
                                no storage, for tests of the accounting alone */
} kv_cache_params;

/* Bytes of one block across all layers with act_size-byte values: the unit --kv-blocks
 * counts in. */
size_t kv_cache_block_bytes(const gale_config *c, int block_size, size_t act_size);

/* Groups the layers of c by window and sizes the pools: sliding groups get what max_seqs
 * sequences can hold at most (scaled down if the budget is short), full groups share
 * the rest. Fails when a pool would be empty. */
gale_status kv_cache_init(kv_cache *cache, const gale_config *c, const kv_cache_params *p);
void kv_cache_free(kv_cache *cache);

/* Blocks of group g a sequence needs to hold `length` positions while computing
 * `chunk` of them in its last step. */
int kv_blocks_needed(const kv_cache *cache, int g, int length, int chunk);

/* Makes room for positions [seq->length, new_length): allocates the blocks they fall in,
 * all or nothing. GALE_ERR_OOM (without a message: the scheduler preempts) when a pool
 * lacks blocks. */
gale_status kv_seq_reserve(kv_cache *cache, kv_seq *seq, int new_length);
/* Records that positions up to new_length are stored, then releases sliding blocks the
 * next position can no longer see. */
void kv_seq_advance(kv_cache *cache, kv_seq *seq, int new_length);
/* Cuts the sequence back to its first `length` positions (to recompute what follows, as
 * a chat turn does after the shared prefix), returning the blocks past them. False, and
 * nothing changed, when a sliding group already released a block the next position
 * would need: then only recomputing from the start works. */
bool kv_seq_truncate(kv_cache *cache, kv_seq *seq, int length);
/* Returns every block and empties the sequence (its tables stay allocated). */
void kv_seq_release(kv_cache *cache, kv_seq *seq);
void kv_seq_free(kv_cache *cache, kv_seq *seq);

/* The first position a query at `pos` sees under window W (0: full attention). */
static inline int kv_first_visible(int window, int pos) {
    return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}

static inline int kv_cache_free_blocks(const kv_cache *cache, int g) { return cache->groups[g].n_free; }

#endif
