/* Request sets for the batching tests: sixteen requests of mixed prompt and output
 * lengths, run through a gale_engine together, staggered or one at a time, and the
 * comparison of their tokens. */
#ifndef GALE_TEST_BATCH_WORKLOAD_H
#define GALE_TEST_BATCH_WORKLOAD_H

#include <stdint.h>

#include "gale.h"

enum { N_REQUESTS = 16, MAX_OUT = 24 };

typedef struct workload {
    int n_prompt[N_REQUESTS], n_out[N_REQUESTS];
    int32_t *prompt[N_REQUESTS];
    int32_t got[N_REQUESTS][MAX_OUT + 1];
    int n_got[N_REQUESTS];
    char *text[N_REQUESTS]; /* streamed text (engines with a tokenizer) */
    size_t text_len[N_REQUESTS];
} workload;

/* Prompt lengths 1 … 300 (cut to fit the context with the output), outputs 1 … out_cap
 * (≤ MAX_OUT), ids drawn from a fixed generator below vocab. */
void make_workload(workload *w, const gale_config *c, int out_cap);
void free_workload(workload *w);

/* An engine on 2 threads without a tokenizer. */
gale_engine *new_engine(const gale_model *m, int max_seqs, int budget, int kv_blocks);
/* An engine with these parameters, without a tokenizer (the test fails if it cannot start). */
gale_engine *engine_with(const gale_model *m, const gale_engine_params *p);

/* Submits requests first … first+count-1 (all at once when stagger is 0, else one more
 * every `stagger` steps) greedy with EOS ignored, and steps until the engine is idle,
 * collecting tokens and text. */
void run_workload(gale_engine *e, workload *w, int first, int count, int stagger);
/* Each request alone, on a fresh one-sequence engine. */
void run_alone(const gale_model *m, workload *w);
void assert_same_tokens(const workload *alone, const workload *batched, const char *model, const char *how);
/* Every KV block is back in the pool. */
void assert_pool_full(const gale_engine *e);

#endif
