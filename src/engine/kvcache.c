#include "engine/kvcache.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

gale_status kv_cache_init(kv_cache *c, int n_layers, int n_ctx, int kv_dim) {
    memset(c, 0, sizeof *c);
    if (n_ctx <= 0 || n_layers <= 0 || kv_dim <= 0)
        return gale_error(GALE_ERR_INVALID_ARG, "KV cache: context %d must be positive", n_ctx);
    size_t count = (size_t)n_layers * (size_t)n_ctx * (size_t)kv_dim;
    c->keys = malloc(count * sizeof(float));
    c->values = malloc(count * sizeof(float));
    if (!c->keys || !c->values) {
        kv_cache_free(c);
        return gale_error(GALE_ERR_OOM, "KV cache: %zu MiB for %d tokens do not fit in memory",
                          2 * count * sizeof(float) >> 20, n_ctx);
    }
    c->n_layers = n_layers;
    c->n_ctx = n_ctx;
    c->kv_dim = kv_dim;
    return GALE_OK;
}

void kv_cache_free(kv_cache *c) {
    free(c->keys);
    free(c->values);
    memset(c, 0, sizeof *c);
}
