/* gale_session: one sequence on the model runner, with a paged cache sized for its
 * context — the simple path the CLI's generate, chat and logits take. */
#include <stdlib.h>

#include "backend/backend.h"
#include "core/status.h"
#include "engine/runner.h"
#include "engine/sampler.h"
#include "model/config.h"
#include "model/model.h"

struct gale_session {
    model_runner *runner;
    kv_cache cache;
    kv_seq seq;
    int n_ctx, vocab;
    int32_t *scratch;     /* [3, cap]: positions, sequence of each token, logit rows */
    size_t scratch_cap;
    bool device_sampling; /* gale_session_forward_sample draws on the backend */
    float *host_logits;   /* [vocab] host sampling's logits, on demand */
};

gale_engine_params gale_engine_params_default(void) {
    return (gale_engine_params){.n_threads = 0,
                                .n_ctx = 0,
                                .prepare_weights = false,
                                .max_num_seqs = 256,
                                .max_num_batched_tokens = 2048,
                                .kv_blocks = 0,
                                .kv_memory_fraction = 0.3f,
                                .block_size = 16};
}

int engine_default_context(const gale_config *c, int n_ctx) {
    if (n_ctx > 0) return n_ctx;
    return c->max_position_embeddings > 0 && c->max_position_embeddings < 4096 ? c->max_position_embeddings : 4096;
}

gale_status gale_session_new(const gale_model *model, const gale_engine_params *params, gale_session **out) {
    if (!model || !out) return gale_error(GALE_ERR_INVALID_ARG, "gale_session_new: model and out are required");
    *out = NULL;
    gale_engine_params defaults = gale_engine_params_default();
    if (!params) params = &defaults;
    if (params->n_ctx < 0 || params->block_size < 0)
        return gale_error(GALE_ERR_INVALID_ARG, "session: n_ctx and block_size must not be negative");
    gale_session *s = calloc(1, sizeof *s);
    if (!s) return gale_error(GALE_ERR_OOM, "session: out of memory");
    const gale_config *c = gale_model_config(model);
    s->n_ctx = engine_default_context(c, params->n_ctx);
    s->vocab = c->vocab;
    int block_size = params->block_size ? params->block_size : KV_DEFAULT_BLOCK_SIZE;
    gale_engine_params one = *params;
    one.max_num_seqs = 1; /* one sequence: decode steps are recorded for a batch of one */
    gale_status status = runner_create(model, &one, &s->runner);
    if (status == GALE_OK) {
        s->device_sampling = runner_samples_on_device(s->runner) && !params->sample_on_host;
        backend *b = runner_backend(s->runner);
        size_t blocks = (size_t)((s->n_ctx + block_size - 1) / block_size);
        kv_cache_params kp = {.block_size = block_size,
                              .budget_bytes = kv_cache_block_bytes(c, block_size, b->ops->act_size) * blocks,
                              .max_seqs = 1,
                              .max_chunk = s->n_ctx,
                              .max_len = s->n_ctx,
                              .storage = b};
        status = kv_cache_init(&s->cache, c, &kp);
    }
    if (status != GALE_OK) {
        gale_session_free(s);
        return status;
    }
    *out = s;
    return GALE_OK;
}

void gale_session_free(gale_session *s) {
    if (!s) return;
    kv_seq_free(&s->cache, &s->seq);
    kv_cache_free(&s->cache);
    runner_free(s->runner);
    free(s->scratch);
    free(s->host_logits);
    free(s);
}

void gale_session_reset(gale_session *s) { kv_seq_release(&s->cache, &s->seq); }
bool gale_session_truncate(gale_session *s, int n) { return n >= 0 && kv_seq_truncate(&s->cache, &s->seq, n); }
int gale_session_position(const gale_session *s) { return s->seq.length; }
int gale_session_context(const gale_session *s) { return s->n_ctx; }
const kv_cache *session_kv_cache(const gale_session *s) { return &s->cache; }
const kv_seq *session_kv_seq(const gale_session *s) { return &s->seq; }
uint64_t session_graph_replays(const gale_session *s) { return runner_graph_replays(s->runner); }

/* Stages n_ids tokens after the sequence's end as a batch (blocks reserved); the caller
 * runs it and then advances the sequence with session_advance. */
static gale_status session_batch(gale_session *s, const int32_t *ids, size_t n_ids, bool all_logits, bool want_logits,
                                 kv_seq **seqs, runner_batch *batch) {
    if (!s || (!ids && n_ids)) return gale_error(GALE_ERR_INVALID_ARG, "gale_session_forward: NULL argument");
    if (n_ids == 0) return gale_error(GALE_ERR_INVALID_ARG, "forward: no tokens (empty prompt)");
    const int pos = s->seq.length;
    if ((size_t)pos + n_ids > (size_t)s->n_ctx)
        return gale_error(GALE_ERR_INVALID_ARG, "forward: %zu tokens after %d do not fit the context of %d tokens", n_ids,
                          pos, s->n_ctx);
    const int n = (int)n_ids;
    if (n_ids > s->scratch_cap) {
        int32_t *grown = realloc(s->scratch, 3 * n_ids * sizeof *grown);
        if (!grown) return gale_error(GALE_ERR_OOM, "forward: out of memory");
        s->scratch = grown;
        s->scratch_cap = n_ids;
    }
    int32_t *positions = s->scratch, *seq_of = s->scratch + n, *rows = s->scratch + 2 * n;
    for (int i = 0; i < n; i++) {
        positions[i] = pos + i;
        seq_of[i] = 0;
        rows[i] = i;
    }
    if (kv_seq_reserve(&s->cache, &s->seq, pos + n) != GALE_OK)
        return gale_error(GALE_ERR_OOM, "forward: the KV cache has no room for %d more tokens", n);
    seqs[0] = &s->seq;
    *batch = (runner_batch){.n_tokens = n,
                            .ids = ids,
                            .positions = positions,
                            .seq_of = seq_of,
                            .n_seqs = 1,
                            .seqs = seqs,
                            .n_logits = want_logits ? (all_logits ? n : 1) : 0,
                            .logit_rows = all_logits ? rows : rows + n - 1};
    return GALE_OK;
}

gale_status gale_session_forward(gale_session *s, const int32_t *ids, size_t n_ids, bool all_logits, float *logits) {
    kv_seq *seqs[1];
    runner_batch batch;
    GALE_TRY(session_batch(s, ids, n_ids, all_logits, logits != NULL, seqs, &batch));
    GALE_TRY(runner_forward(s->runner, &s->cache, &batch, logits));
    kv_seq_advance(&s->cache, &s->seq, s->seq.length + batch.n_tokens);
    return GALE_OK;
}

gale_status gale_session_forward_sample(gale_session *s, const int32_t *ids, size_t n_ids, gale_sampler *sampler,
                                        const int32_t *history, size_t n_history, int32_t *next) {
    if (!s || !sampler || !next || (!history && n_history))
        return gale_error(GALE_ERR_INVALID_ARG, "gale_session_forward_sample: NULL argument");
    /* the penalties index logits by the history's ids, bounded by the sampler's vocabulary */
    if (sampler_vocab(sampler) != s->vocab)
        return gale_error(GALE_ERR_INVALID_ARG,
                          "gale_session_forward_sample: the sampler was made for a vocabulary of %d tokens, the model "
                          "has %d",
                          sampler_vocab(sampler), s->vocab);
    if (!s->device_sampling) { /* the host rules, on logits copied back */
        if (!s->host_logits && !(s->host_logits = malloc((size_t)s->vocab * sizeof *s->host_logits)))
            return gale_error(GALE_ERR_OOM, "forward: out of memory");
        GALE_TRY(gale_session_forward(s, ids, n_ids, false, s->host_logits));
        return gale_sampler_sample(sampler, s->host_logits, history, n_history, next);
    }
    kv_seq *seqs[1];
    runner_batch batch;
    GALE_TRY(session_batch(s, ids, n_ids, false, true, seqs, &batch));
    sample_row rule;
    GALE_TRY(sampler_device_row(sampler, history, n_history, &rule));
    GALE_TRY(runner_forward_sample(s->runner, &s->cache, &batch, &rule, next));
    sampler_drew(sampler);
    kv_seq_advance(&s->cache, &s->seq, s->seq.length + batch.n_tokens);
    return GALE_OK;
}
