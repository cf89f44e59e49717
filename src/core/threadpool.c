#include "core/threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/status.h"

struct thread_pool {
    pthread_t *threads;
    int n_threads; /* workers + the caller */
    pthread_mutex_t lock;
    pthread_cond_t work_ready, work_done;
    /* the current job */
    range_fn fn;
    void *ctx;
    size_t n, chunk;
    unsigned generation; /* bumps with each job so workers see new work */
    int pending;         /* workers still running the current job */
    int stop;
};

typedef struct worker_arg {
    thread_pool *pool;
    int index; /* 1..n_threads-1; the caller takes chunk 0 */
} worker_arg;

static void run_chunk(thread_pool *p, int index) {
    size_t begin = (size_t)index * p->chunk;
    size_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
    if (begin < end) p->fn(p->ctx, begin, end);
}

static void *worker_main(void *arg) {
    worker_arg *w = arg;
    thread_pool *p = w->pool;
    unsigned seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->work_ready, &p->lock);
        if (p->stop) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        run_chunk(p, w->index);
        pthread_mutex_lock(&p->lock);
        if (--p->pending == 0) pthread_cond_signal(&p->work_done);
    }
    pthread_mutex_unlock(&p->lock);
    free(w);
    return NULL;
}

gale_status thread_pool_create(int n_threads, thread_pool **out) {
    *out = NULL;
    if (n_threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cores > 0 ? (int)cores : 1;
    }
    if (n_threads > 256) n_threads = 256;
    thread_pool *p = calloc(1, sizeof *p);
    if (!p) return gale_error(GALE_ERR_OOM, "thread pool: out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_ready, NULL);
    pthread_cond_init(&p->work_done, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        thread_pool_destroy(p);
        return gale_error(GALE_ERR_OOM, "thread pool: out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *w = malloc(sizeof *w);
        if (!w || pthread_create(&p->threads[i], NULL, worker_main, w ? (*w = (worker_arg){p, i}, w) : NULL) != 0) {
            free(w);
            p->n_threads = i; /* the ones started so far get joined */
            thread_pool_destroy(p);
            return gale_error(GALE_ERR_INTERNAL, "thread pool: cannot start thread %d", i);
        }
    }
    *out = p;
    return GALE_OK;
}

void thread_pool_destroy(thread_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i < p->n_threads; i++)
        if (p->threads && p->threads[i]) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work_ready);
    pthread_cond_destroy(&p->work_done);
    free(p->threads);
    free(p);
}

int thread_pool_size(const thread_pool *p) { return p ? p->n_threads : 1; }

void parallel_for(thread_pool *p, size_t n, size_t min_chunk, range_fn fn, void *ctx) {
    if (n == 0) return;
    int threads = p ? p->n_threads : 1;
    if (min_chunk < 1) min_chunk = 1;
    if (threads == 1 || n <= min_chunk) {
        fn(ctx, 0, n);
        return;
    }
    size_t chunk = (n + (size_t)threads - 1) / (size_t)threads;
    if (chunk < min_chunk) chunk = min_chunk;
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = chunk;
    p->pending = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    run_chunk(p, 0);
    pthread_mutex_lock(&p->lock);
    while (p->pending > 0) pthread_cond_wait(&p->work_done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
