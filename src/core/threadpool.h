/* A fixed pool of worker threads for data-parallel loops: parallel_for splits [0, n)
 * into one contiguous chunk per thread and waits for all of them. */
#ifndef GALE_CORE_THREADPOOL_H
#define GALE_CORE_THREADPOOL_H

#include <stddef.h>

#include "gale.h"

typedef struct thread_pool thread_pool;

/* fn(ctx, begin, end) handles items [begin, end). */
typedef void (*range_fn)(void *ctx, size_t begin, size_t end);

/* n_threads <= 0: one per online core. The calling thread works too. */
gale_status thread_pool_create(int n_threads, thread_pool **out);
void thread_pool_destroy(thread_pool *pool);
int thread_pool_size(const thread_pool *pool);
/* Runs fn over [0, n) split evenly; min_chunk keeps tiny loops on one thread. */
void parallel_for(thread_pool *pool, size_t n, size_t min_chunk, range_fn fn, void *ctx);

#endif
