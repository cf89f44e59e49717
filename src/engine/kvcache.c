#include "engine/kvcache.h"

#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/status.h"

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

size_t kv_cache_block_bytes(const gale_config *c, int block_size, size_t act_size) {
    return (size_t)c->n_layers * (size_t)block_size * (size_t)c->n_kv_heads * (size_t)c->head_dim * 2 * act_size;
}

/* A window that covers the whole context never releases anything: count it as full. */
static int effective_window(const gale_config *c, int layer, int max_len) {
    int w = c->layers[layer].window;
    return w > 0 && w < max_len ? w : 0;
}

static gale_status group_layers(kv_cache *cache, const gale_config *c, int max_len) {
    for (int l = 0; l < c->n_layers; l++) {
        int w = effective_window(c, l, max_len), g = 0;
        while (g < cache->n_groups && cache->groups[g].window != w) g++;
        if (g == cache->n_groups) {
            if (g == KV_MAX_GROUPS)
                return gale_error(GALE_ERR_UNSUPPORTED, "KV cache: more than %d distinct attention windows", KV_MAX_GROUPS);
            cache->groups[cache->n_groups++].window = w;
        }
        cache->groups[g].n_layers++;
        cache->layer_group[l] = g;
    }
    return GALE_OK;
}

int kv_blocks_needed(const kv_cache *cache, int g, int length, int chunk) {
    int all = ceil_div(length, cache->block_size), w = cache->groups[g].window;
    if (w == 0) return all;
    int windowed = ceil_div(w - 1 + chunk, cache->block_size) + 1;
    return windowed < all ? windowed : all;
}

/* Sliding groups get what max_seqs sequences can hold (at most their layers' share of
 * the budget); the full group, if any, gets the rest. Sizes are in layer-blocks: one
 * layer's keys and values for block_size positions. */
static gale_status size_pools(kv_cache *cache, const kv_cache_params *p, size_t act_size) {
    size_t layer_block = (size_t)cache->block_size * (size_t)cache->kv_dim * 2 * act_size;
    size_t budget = p->budget_bytes / layer_block, used = 0;
    for (int g = 0; g < cache->n_groups; g++) {
        kv_group *group = &cache->groups[g];
        if (group->window == 0) continue;
        group->seq_cap = kv_blocks_needed(cache, g, p->max_len, p->max_chunk);
        size_t want = (size_t)group->seq_cap * (size_t)p->max_seqs;
        size_t share = budget / (size_t)cache->n_layers; /* blocks of its layers' share of the budget */
        group->n_blocks = (int)(want < share ? want : share);
        used += (size_t)group->n_blocks * (size_t)group->n_layers;
    }
    for (int g = 0; g < cache->n_groups; g++) {
        kv_group *group = &cache->groups[g];
        if (group->window != 0) continue;
        size_t blocks = (budget - used) / (size_t)group->n_layers, most = (size_t)INT32_MAX / 2;
        group->n_blocks = (int)(blocks < most ? blocks : most);
    }
    for (int g = 0; g < cache->n_groups; g++)
        if (cache->groups[g].n_blocks < 1)
            return gale_error(GALE_ERR_INVALID_ARG, "KV cache: a budget of %zu MiB leaves no block for the %s layers",
                              p->budget_bytes >> 20, cache->groups[g].window ? "sliding-window" : "full-attention");
    return GALE_OK;
}

/* One allocation for every layer's keys and values (each 256-byte aligned, as wide vector
 * loads want): the pools never grow, and a device pays one allocation, not 2·n_layers. */
static gale_status place_layers(kv_cache *cache, size_t act_size) {
    size_t total = 0, *offsets = malloc(2 * (size_t)cache->n_layers * sizeof *offsets);
    if (!offsets) return gale_error(GALE_ERR_OOM, "KV cache: out of memory");
    for (int l = 0; l < 2 * cache->n_layers; l++) {
        const int layer = l % cache->n_layers;
        offsets[l] = total;
        total += ((size_t)cache->groups[cache->layer_group[layer]].n_blocks * (size_t)cache->block_size * cache->kv_dim *
                      act_size + 255) & ~(size_t)255;
    }
    gale_status status = cache->storage->ops->alloc(cache->storage, total, &cache->arena);
    if (status != GALE_OK) {
        free(offsets);
        return gale_error(GALE_ERR_OOM, "KV cache: %zu MiB do not fit in %s memory", total >> 20, cache->storage->ops->name);
    }
    for (int l = 0; l < cache->n_layers; l++) {
        cache->keys[l] = (char *)cache->arena + offsets[l];
        cache->values[l] = (char *)cache->arena + offsets[cache->n_layers + l];
    }
    free(offsets);
    return GALE_OK;
}

gale_status kv_cache_init(kv_cache *cache, const gale_config *c, const kv_cache_params *p) {
    memset(cache, 0, sizeof *cache);
    if (p->max_len <= 0 || p->max_seqs <= 0 || p->max_chunk <= 0 || p->block_size < 0)
        return gale_error(GALE_ERR_INVALID_ARG, "KV cache: context, sequences and chunk must be positive");
    cache->n_layers = c->n_layers;
    cache->kv_dim = c->n_kv_heads * c->head_dim;
    cache->block_size = p->block_size ? p->block_size : KV_DEFAULT_BLOCK_SIZE;
    cache->layer_group = calloc((size_t)c->n_layers, sizeof *cache->layer_group);
    cache->keys = calloc((size_t)c->n_layers, sizeof *cache->keys);
    cache->values = calloc((size_t)c->n_layers, sizeof *cache->values);
    gale_status status = cache->layer_group && cache->keys && cache->values
                             ? GALE_OK
                             : gale_error(GALE_ERR_OOM, "KV cache: out of memory");
    if (status == GALE_OK) status = group_layers(cache, c, p->max_len);
    size_t act_size = p->storage ? p->storage->ops->act_size : sizeof(float);
    if (status == GALE_OK) status = size_pools(cache, p, act_size);
    for (int g = 0; status == GALE_OK && g < cache->n_groups; g++) {
        kv_group *group = &cache->groups[g];
        group->free_list = malloc((size_t)group->n_blocks * sizeof *group->free_list);
        if (!group->free_list) status = gale_error(GALE_ERR_OOM, "KV cache: out of memory");
        /* handed out lowest first */
        for (int b = 0; status == GALE_OK && b < group->n_blocks; b++) group->free_list[b] = group->n_blocks - 1 - b;
        group->n_free = group->n_blocks;
    }
    cache->storage = p->storage;
    if (status == GALE_OK && p->storage) status = place_layers(cache, act_size);
    if (status != GALE_OK) kv_cache_free(cache);
    return status;
}

void kv_cache_free(kv_cache *cache) {
    if (cache->storage && cache->arena) cache->storage->ops->release(cache->storage, cache->arena);
    for (int g = 0; g < cache->n_groups; g++) free(cache->groups[g].free_list);
    free(cache->keys);
    free(cache->values);
    free(cache->layer_group);
    memset(cache, 0, sizeof *cache);
}

static gale_status grow_tables(kv_cache *cache, kv_seq *seq, int entries) {
    if (entries <= seq->cap) return GALE_OK;
    int cap = seq->cap ? seq->cap : 8;
    while (cap < entries) cap *= 2;
    for (int g = 0; g < cache->n_groups; g++) {
        int32_t *grown = realloc(seq->tables[g], (size_t)cap * sizeof *grown);
        if (!grown) return gale_error(GALE_ERR_OOM, "KV cache: out of memory for a block table");
        seq->tables[g] = grown;
    }
    seq->cap = cap;
    return GALE_OK;
}

gale_status kv_seq_reserve(kv_cache *cache, kv_seq *seq, int new_length) {
    int entries = ceil_div(new_length, cache->block_size), fresh = entries - seq->n_logical;
    if (fresh <= 0) return GALE_OK;
    for (int g = 0; g < cache->n_groups; g++)
        if (cache->groups[g].n_free < fresh) return GALE_ERR_OOM;
    GALE_TRY(grow_tables(cache, seq, entries));
    for (int g = 0; g < cache->n_groups; g++) {
        kv_group *group = &cache->groups[g];
        for (int j = seq->n_logical; j < entries; j++) seq->tables[g][j] = group->free_list[--group->n_free];
        seq->held[g] += fresh;
    }
    seq->n_logical = entries;
    return GALE_OK;
}

static void give_back(kv_group *group, kv_seq *seq, int g, int j) {
    int32_t block = seq->tables[g][j];
    if (block < 0) return;
    group->free_list[group->n_free++] = block;
    seq->tables[g][j] = -1;
    seq->held[g]--;
}

void kv_seq_advance(kv_cache *cache, kv_seq *seq, int new_length) {
    seq->length = new_length;
    for (int g = 0; g < cache->n_groups; g++) {
        kv_group *group = &cache->groups[g];
        if (group->window == 0) continue;
        /* the next position, new_length, sees nothing before this */
        int first_visible = kv_first_visible(group->window, new_length);
        while (seq->first_live[g] < seq->n_logical && (seq->first_live[g] + 1) * cache->block_size <= first_visible)
            give_back(group, seq, g, seq->first_live[g]++);
    }
}

bool kv_seq_truncate(kv_cache *cache, kv_seq *seq, int length) {
    if (length >= seq->length) return length == seq->length;
    if (length <= 0) {
        kv_seq_release(cache, seq);
        return true;
    }
    for (int g = 0; g < cache->n_groups; g++)
        if (seq->first_live[g] > kv_first_visible(cache->groups[g].window, length) / cache->block_size) return false;
    int entries = ceil_div(length, cache->block_size);
    for (int g = 0; g < cache->n_groups; g++)
        for (int j = entries; j < seq->n_logical; j++) give_back(&cache->groups[g], seq, g, j);
    seq->n_logical = entries;
    seq->length = length;
    return true;
}

void kv_seq_release(kv_cache *cache, kv_seq *seq) {
    for (int g = 0; g < cache->n_groups; g++) {
        for (int j = seq->first_live[g]; j < seq->n_logical; j++) give_back(&cache->groups[g], seq, g, j);
        seq->first_live[g] = 0;
    }
    seq->length = 0;
    seq->n_logical = 0;
}

void kv_seq_free(kv_cache *cache, kv_seq *seq) {
    kv_seq_release(cache, seq);
    for (int g = 0; g < KV_MAX_GROUPS; g++) free(seq->tables[g]);
    memset(seq, 0, sizeof *seq);
}
