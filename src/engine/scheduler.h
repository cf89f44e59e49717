/* Continuous batching: which tokens of which sequences the next forward computes.
 *
 * Sequences wait (FIFO) until admitted, then run until they finish. Each step has a token
 * budget (max_num_batched_tokens) and a sequence cap (max_num_seqs). Running sequences
 * that decode (one token left to compute) go first, oldest first; then running sequences
 * still prefilling, then waiting ones, each taking a prompt chunk of what the budget has
 * left (chunked prefill). When the KV pool runs out, the newest running sequence not yet
 * in the step is preempted: its blocks are freed and it goes back to the front of the
 * waiting queue, to be recomputed (prompt and generated tokens) when there is room. */
#ifndef GALE_ENGINE_SCHEDULER_H
#define GALE_ENGINE_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/kvcache.h"
#include "engine/runner.h"

typedef struct sched_seq {
    uint64_t id;
    int32_t *tokens; /* [max_tokens]: prompt, then generated tokens */
    int n_tokens;
    int n_prompt;
    int max_tokens;  /* n_tokens stops growing here */
    int n_computed;  /* tokens whose keys and values are cached (kv.length) */
    bool running;
    kv_seq kv;
    void *owner;     /* the engine's request */
} sched_seq;

typedef struct scheduler_params {
    int max_num_seqs, max_num_batched_tokens, max_len;
} scheduler_params;

/* One step: the batch for the runner and, for each logit row, the sequence it samples. */
typedef struct sched_step {
    runner_batch batch;
    sched_seq **samplers; /* [batch.n_logits] */
    int *chunks;          /* [batch.n_seqs] tokens each sequence computes */
    sched_seq **members;  /* [batch.n_seqs] */
} sched_step;

typedef struct scheduler scheduler;

gale_status scheduler_new(kv_cache *cache, const scheduler_params *p, scheduler **out);
void scheduler_free(scheduler *s);

/* Checks that the sequence can ever run (context, pool sizes) and queues it. */
gale_status scheduler_add(scheduler *s, sched_seq *seq);
/* Takes the sequence out of whichever queue holds it and frees its blocks. */
void scheduler_remove(scheduler *s, sched_seq *seq);
/* Plans the next step (step->batch.n_tokens == 0: nothing to run). The step stays valid
 * until the next call. */
gale_status scheduler_schedule(scheduler *s, sched_step *step);
/* After the forward: the step's tokens are cached. */
void scheduler_commit(scheduler *s, const sched_step *step);

int scheduler_waiting(const scheduler *s);
int scheduler_running(const scheduler *s);
uint64_t scheduler_preemptions(const scheduler *s);

#endif
