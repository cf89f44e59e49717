/* Per-sequence KV cache: fp32 keys and values of every layer, [n_ctx, n_kv_heads·head_dim]
 * each. The forward touches it only through these accessors, so the paged cache of the
 * batching issue can replace it. */
#ifndef GALE_ENGINE_KVCACHE_H
#define GALE_ENGINE_KVCACHE_H

#include <stddef.h>

#include "gale.h"

typedef struct kv_cache {
    int n_layers, n_ctx, kv_dim;
    float *keys;   /* [n_layers, n_ctx, kv_dim] */
    float *values; /* [n_layers, n_ctx, kv_dim] */
} kv_cache;

gale_status kv_cache_init(kv_cache *c, int n_layers, int n_ctx, int kv_dim);
void kv_cache_free(kv_cache *c);

static inline float *kv_cache_keys(kv_cache *c, int layer) {
    return c->keys + (size_t)layer * c->n_ctx * c->kv_dim;
}
static inline float *kv_cache_values(kv_cache *c, int layer) {
    return c->values + (size_t)layer * c->n_ctx * c->kv_dim;
}

#endif
