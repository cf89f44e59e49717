/* The model runner: the one forward pass over a batch of tokens from any number of
 * sequences (prefill chunks and decode steps mixed), on the backend's ops and the paged
 * KV cache. gale_session (one sequence) and gale_engine (continuous batching) drive it. */
#ifndef GALE_ENGINE_RUNNER_H
#define GALE_ENGINE_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/kvcache.h"
#include "gale.h"

typedef struct model_runner model_runner;
struct sample_row; /* backend/backend.h */

typedef struct runner_batch {
    int n_tokens;
    const int32_t *ids;       /* [n_tokens] */
    const int32_t *positions; /* [n_tokens] position of each token in its sequence */
    const int32_t *seq_of;    /* [n_tokens] index into seqs */
    int n_seqs;
    kv_seq *const *seqs;      /* [n_seqs] blocks reserved for every position in the batch */
    int n_logits;
    const int32_t *logit_rows; /* [n_logits] tokens whose logits are wanted */
} runner_batch;

gale_status runner_create(const gale_model *model, const gale_engine_params *params, model_runner **out);
void runner_free(model_runner *r);
/* The backend the runner computes on; the KV cache's storage comes from it. */
struct backend *runner_backend(model_runner *r);
/* Decode steps run so far as a replayed graph (CUDA graphs): 0 when recording is off or
 * failed — the tests' proof that replay was exercised, not eager run twice. */
uint64_t runner_graph_replays(const model_runner *r);

/* vLLM's profile run, for a runner that records decode steps (CUDA graphs; otherwise it
 * does nothing): one step of max(max_tokens, max_seqs) padding tokens grows every buffer
 * a step can need — activations, logits for max_seqs rows, the backend's attention and MoE
 * scratch — at once, so no later step (a longer prompt than any before) frees memory a
 * recorded graph holds and makes it record again, and a step that cannot fit fails here
 * rather than mid-serving. */
gale_status runner_reserve(model_runner *r, kv_cache *cache, int max_tokens, int max_seqs);

/* Runs the batch: stores every token's keys and values in the cache, returns logits
 * [n_logits, vocab] in batch order. The caller reserves blocks before (kv_seq_reserve)
 * and advances the sequences after (kv_seq_advance). */
gale_status runner_forward(model_runner *r, kv_cache *cache, const runner_batch *batch, float *logits);
/* Whether the backend draws tokens itself (the sample op). */
bool runner_samples_on_device(const model_runner *r);
/* Runs the batch as runner_forward, then ids[n_logits] = a token per logit row drawn on
 * the device under rules[n_logits]; only the ids come to the host. */
gale_status runner_forward_sample(model_runner *r, kv_cache *cache, const runner_batch *batch,
                                  const struct sample_row *rules, int32_t *ids);

/* Tests: runners created from now on in this process compute on ops — a wrapper of the
 * CPU backend's (weights stay on the host) — instead of the CPU's or CUDA's; NULL undoes it. */
struct backend_ops;
void runner_use_test_backend(const struct backend_ops *ops);

/* n_ctx, or min(max_position_embeddings, 4096) when 0 */
int engine_default_context(const gale_config *c, int n_ctx);

/* The session's cache, for tests that count blocks, and its runner's graph replays. */
const kv_cache *session_kv_cache(const gale_session *s);
const kv_seq *session_kv_seq(const gale_session *s);
uint64_t session_graph_replays(const gale_session *s);

#endif
