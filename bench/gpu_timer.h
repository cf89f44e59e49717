/* One CUDA-event timing loop for every GPU benchmark: warm-ups, then timed samples of
 * one or more launches on a stream, the median taken. */
#ifndef GALE_BENCH_GPU_TIMER_H
#define GALE_BENCH_GPU_TIMER_H

/* One launch (or sequence of launches) of what is timed, enqueued on the timer's stream;
 * 0 on success. */
typedef int (*gpu_timed_fn)(void *arg);

typedef struct gpu_timer {
    void *stream;     /* cudaStream_t the launches go to; NULL: the legacy default stream */
    int warmups;      /* untimed runs first (at least one: it also checks the launch) */
    int loops;        /* runs per timed sample (≥ 1): many for launches of microseconds */
    int samples;      /* timed samples; 0: as many as fit in budget_ms by the last
                         warm-up's time, 3 to 64 */
    double budget_ms;
} gpu_timer;

/* Median milliseconds per run of fn; < 0 when fn failed (reporting it is the caller's)
 * or the device did (a faulted kernel surfaces at the event: then stderr and
 * gale_last_error() say so, naming `what`). 0 without CUDA. */
double bench_gpu_time_ms(const gpu_timer *t, gpu_timed_fn fn, void *arg, const char *what);

#endif
