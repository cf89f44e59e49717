/* The paged KV cache and the scheduler without a model: how layers group by window and
 * pools are sized, blocks held and released as a sequence grows, and block accounting
 * through 10,000 random submit / cancel / finish events. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/kvcache.h"
#include "engine/scheduler.h"
#include "test_support.h"

static gale_model *load_config_only(const char *tiny) {
    gale_load_params p = gale_load_params_default();
    p.quiet = true;
    p.metadata_only = true;
    gale_model *m = NULL;
    cr_assert_eq(gale_model_load(fixture(tiny), &p, &m), GALE_OK, "%s", gale_last_error());
    return m;
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

static int group_with_window(const kv_cache *cache, int window) {
    for (int g = 0; g < cache->n_groups; g++)
        if (cache->groups[g].window == window) return g;
    cr_assert_fail("no group with window %d", window);
    return -1;
}

Test(kvcache, groups_layers_by_window_and_sizes_pools) {
    gale_model *m = load_config_only("tiny/gemma3_text"); /* 8 layers: 7 windowed (32), layer 5 full */
    const gale_config *c = gale_model_config(m);
    kv_cache cache;
    kv_cache_params p = {.block_size = 16, .budget_bytes = kv_cache_block_bytes(c, 16, sizeof(float)) * 100, .max_seqs = 4,
                         .max_chunk = 64, .max_len = 512};
    cr_assert_eq(kv_cache_init(&cache, c, &p), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(cache.n_groups, 2);
    int sliding = group_with_window(&cache, 32), full = group_with_window(&cache, 0);
    cr_assert_eq(cache.groups[sliding].n_layers, 7);
    cr_assert_eq(cache.groups[full].n_layers, 1);
    cr_assert_eq(cache.layer_group[5], full);
    cr_assert_eq(cache.layer_group[0], sliding);
    /* a sliding sequence never holds more than ceil((W - 1 + chunk) / bs) + 1 blocks */
    int cap = ceil_div(32 - 1 + 64, 16) + 1;
    cr_assert_eq(cache.groups[sliding].n_blocks, cap * 4);
    /* the full layer gets the rest of 100 blocks' worth of memory: 8·100 − 7·cap·4 layer-blocks */
    cr_assert_eq(cache.groups[full].n_blocks, 8 * 100 - 7 * cap * 4);
    kv_cache_free(&cache);
    /* a budget too small for one block */
    p.budget_bytes = 10;
    assert_error(kv_cache_init(&cache, c, &p), GALE_ERR_INVALID_ARG, "leaves no block");
    gale_model_free(m);
}

Test(kvcache, sliding_blocks_stay_bounded_and_full_blocks_grow) {
    gale_model *m = load_config_only("tiny/gemma3_text");
    const gale_config *c = gale_model_config(m);
    kv_cache cache;
    kv_cache_params p = {.block_size = 16, .budget_bytes = kv_cache_block_bytes(c, 16, sizeof(float)) * 64, .max_seqs = 1,
                         .max_chunk = 1, .max_len = 512};
    cr_assert_eq(kv_cache_init(&cache, c, &p), GALE_OK, "%s", gale_last_error());
    int sliding = group_with_window(&cache, 32), full = group_with_window(&cache, 0);
    kv_seq seq = {0};
    for (int len = 1; len <= 500; len++) {
        cr_assert_eq(kv_seq_reserve(&cache, &seq, len), GALE_OK, "position %d", len - 1);
        kv_seq_advance(&cache, &seq, len);
        cr_assert_leq(seq.held[sliding], ceil_div(32, 16) + 1, "length %d holds %d sliding blocks", len, seq.held[sliding]);
        cr_assert_eq(seq.held[full], ceil_div(len, 16));
        /* every position the next query sees (len - 31 … len - 1) is still held */
        for (int pos = len - 31 > 0 ? len - 31 : 0; pos < len; pos++) cr_assert_geq(seq.tables[sliding][pos / 16], 0);
        cr_assert_eq(cache.groups[sliding].n_free + seq.held[sliding], cache.groups[sliding].n_blocks);
    }
    kv_seq_free(&cache, &seq);
    for (int g = 0; g < cache.n_groups; g++) cr_assert_eq(cache.groups[g].n_free, cache.groups[g].n_blocks);
    kv_cache_free(&cache);
    gale_model_free(m);
}

Test(kvcache, reserve_is_all_or_nothing) {
    gale_model *m = load_config_only("tiny/llama");
    const gale_config *c = gale_model_config(m);
    kv_cache cache;
    kv_cache_params p = {.block_size = 16, .budget_bytes = kv_cache_block_bytes(c, 16, sizeof(float)) * 4, .max_seqs = 2,
                         .max_chunk = 64, .max_len = 512};
    cr_assert_eq(kv_cache_init(&cache, c, &p), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(cache.n_groups, 1);
    cr_assert_eq(cache.groups[0].n_blocks, 4);
    kv_seq a = {0}, b = {0};
    cr_assert_eq(kv_seq_reserve(&cache, &a, 40), GALE_OK); /* 3 blocks */
    cr_assert_eq(kv_seq_reserve(&cache, &b, 20), GALE_ERR_OOM); /* needs 2, 1 left */
    cr_assert_eq(b.held[0], 0);
    cr_assert_eq(kv_cache_free_blocks(&cache, 0), 1);
    kv_seq_release(&cache, &a);
    cr_assert_eq(kv_cache_free_blocks(&cache, 0), 4);
    cr_assert_eq(kv_seq_reserve(&cache, &b, 20), GALE_OK);
    kv_seq_free(&cache, &a);
    kv_seq_free(&cache, &b);
    cr_assert_eq(kv_cache_free_blocks(&cache, 0), 4);
    kv_cache_free(&cache);
    gale_model_free(m);
}

/* ---- scheduler property test ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33) % n;
}

enum { MAX_LIVE = 48 };

typedef struct live_set {
    sched_seq *seqs[MAX_LIVE];
    int n;
} live_set;

static void drop(live_set *live, scheduler *s, kv_cache *cache, int index) {
    sched_seq *seq = live->seqs[index];
    scheduler_remove(s, seq);
    kv_seq_free(cache, &seq->kv);
    free(seq->tokens);
    free(seq);
    live->seqs[index] = live->seqs[--live->n];
}

static void check_accounting(const kv_cache *cache, const live_set *live) {
    for (int g = 0; g < cache->n_groups; g++) {
        int held = 0;
        for (int i = 0; i < live->n; i++) held += live->seqs[i]->kv.held[g];
        cr_assert_eq(held + cache->groups[g].n_free, cache->groups[g].n_blocks, "group %d: %d held + %d free != %d", g,
                     held, cache->groups[g].n_free, cache->groups[g].n_blocks);
    }
}

/* Random submits, cancels and finishes (and steps between them) on a pool small enough
 * that sequences get preempted; afterwards every block is back in the pool. */
static void random_events(const char *tiny, int kv_blocks, uint64_t seed) {
    rng_state = seed;
    gale_model *m = load_config_only(tiny);
    const gale_config *c = gale_model_config(m);
    kv_cache cache;
    kv_cache_params kp = {.block_size = 16, .budget_bytes = kv_cache_block_bytes(c, 16, sizeof(float)) * (size_t)kv_blocks,
                          .max_seqs = 8, .max_chunk = 48, .max_len = 256};
    cr_assert_eq(kv_cache_init(&cache, c, &kp), GALE_OK, "%s", gale_last_error());
    scheduler *s;
    scheduler_params sp = {.max_num_seqs = 8, .max_num_batched_tokens = 48, .max_len = 256};
    cr_assert_eq(scheduler_new(&cache, &sp, &s), GALE_OK, "%s", gale_last_error());
    live_set live = {.n = 0};
    int events = 0, steps = 0, finished = 0, cancelled = 0, submitted = 0;
    uint64_t next_id = 1;
    while (events < 10000) {
        uint32_t dice = rnd(10);
        if (dice < 3 && live.n < MAX_LIVE) {
            sched_seq *seq = calloc(1, sizeof *seq);
            seq->id = next_id++;
            seq->n_prompt = seq->n_tokens = 1 + (int)rnd(120);
            seq->max_tokens = seq->n_prompt + 1 + (int)rnd(60);
            seq->tokens = calloc((size_t)seq->max_tokens, sizeof *seq->tokens);
            cr_assert_eq(scheduler_add(s, seq), GALE_OK, "%s", gale_last_error());
            live.seqs[live.n++] = seq;
            events++, submitted++;
        } else if (dice < 4 && live.n > 0) {
            drop(&live, s, &cache, (int)rnd((uint32_t)live.n));
            events++, cancelled++;
        } else {
            sched_step step;
            cr_assert_eq(scheduler_schedule(s, &step), GALE_OK, "%s", gale_last_error());
            cr_assert(step.batch.n_tokens <= 48);
            cr_assert(step.batch.n_seqs <= 8);
            if (live.n > 0) cr_assert_gt(step.batch.n_tokens, 0, "step %d: %d live sequences but nothing to run", steps, live.n);
            /* every scheduled position has a block */
            for (int i = 0; i < step.batch.n_tokens; i++) {
                const kv_seq *kv = step.batch.seqs[step.batch.seq_of[i]];
                cr_assert_lt(step.batch.positions[i], kv->n_logical * cache.block_size);
            }
            scheduler_commit(s, &step);
            steps++;
            for (int k = 0; k < step.batch.n_logits; k++) {
                sched_seq *seq = step.samplers[k];
                int index = 0;
                while (live.seqs[index] != seq) index++;
                if (rnd(8) == 0 || seq->n_tokens + 1 >= seq->max_tokens) {
                    drop(&live, s, &cache, index);
                    events++, finished++;
                } else {
                    seq->tokens[seq->n_tokens++] = (int32_t)rnd(100);
                }
            }
        }
        check_accounting(&cache, &live);
    }
    while (live.n > 0) drop(&live, s, &cache, live.n - 1);
    for (int g = 0; g < cache.n_groups; g++)
        cr_assert_eq(cache.groups[g].n_free, cache.groups[g].n_blocks, "group %d: %d of %d blocks back", g,
                     cache.groups[g].n_free, cache.groups[g].n_blocks);
    cr_assert_eq(scheduler_waiting(s) + scheduler_running(s), 0);
    fprintf(stderr, "%s: %d events (%d submitted, %d cancelled, %d finished), %d steps, %llu preemptions\n", tiny, events,
            submitted, cancelled, finished, steps, (unsigned long long)scheduler_preemptions(s));
    cr_assert_gt(scheduler_preemptions(s), 0, "the pool was meant to be short enough to preempt");
    scheduler_free(s);
    kv_cache_free(&cache);
    gale_model_free(m);
}

Test(scheduler, random_events_return_every_block_full_attention) { random_events("tiny/llama", 24, 1); }
Test(scheduler, random_events_return_every_block_sliding_window) { random_events("tiny/gemma3_text", 24, 2); }
