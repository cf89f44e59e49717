#include "gpu_timer.h"

#include <stdio.h>

#include "bench_util.h"
#include "core/status.h"

#ifdef GALE_HAVE_CUDA
#include <cuda_runtime.h>

enum { MIN_AUTO_SAMPLES = 3, MAX_SAMPLES = 64 };

/* Milliseconds of `loops` runs of fn between two events; < 0 on failure. */
static double time_loops(cudaStream_t stream, cudaEvent_t start, cudaEvent_t stop, int loops, gpu_timed_fn fn,
                         void *arg, const char *what) {
    cudaError_t err = cudaEventRecord(start, stream);
    for (int i = 0; i < loops && err == cudaSuccess; i++)
        if (fn(arg) != 0) return -1;
    if (err == cudaSuccess) err = cudaEventRecord(stop, stream);
    if (err == cudaSuccess) err = cudaEventSynchronize(stop);
    float ms = 0;
    if (err == cudaSuccess) err = cudaEventElapsedTime(&ms, start, stop);
    if (err != cudaSuccess) { /* a kernel that faulted shows here: said at once, as fn's callers may not */
        gale_error(GALE_ERR_DEVICE, "%s: %s", what, cudaGetErrorString(err));
        fprintf(stderr, "%s\n", gale_last_error());
        return -1;
    }
    return (double)ms;
}

double bench_gpu_time_ms(const gpu_timer *t, gpu_timed_fn fn, void *arg, const char *what) {
    cudaStream_t stream = (cudaStream_t)t->stream;
    const int loops = t->loops > 0 ? t->loops : 1;
    cudaEvent_t start = NULL, stop = NULL;
    if (cudaEventCreate(&start) != cudaSuccess || cudaEventCreate(&stop) != cudaSuccess) {
        if (start) cudaEventDestroy(start);
        gale_error(GALE_ERR_DEVICE, "%s: cannot create CUDA events", what);
        fprintf(stderr, "%s\n", gale_last_error());
        return -1;
    }
    double warm_ms = -1, result = -1;
    for (int w = 0; w < (t->warmups > 0 ? t->warmups : 1); w++)
        if ((warm_ms = time_loops(stream, start, stop, loops, fn, arg, what)) < 0) goto done;
    int samples = t->samples;
    if (samples <= 0) { /* sized by the warm-up: about budget_ms in all */
        samples = warm_ms > 0 ? (int)(t->budget_ms / warm_ms) : MAX_SAMPLES;
        samples = samples < MIN_AUTO_SAMPLES ? MIN_AUTO_SAMPLES : samples;
    }
    samples = samples > MAX_SAMPLES ? MAX_SAMPLES : samples;
    double per_run[MAX_SAMPLES];
    for (int s = 0; s < samples; s++) {
        double ms = time_loops(stream, start, stop, loops, fn, arg, what);
        if (ms < 0) goto done;
        per_run[s] = ms / loops;
    }
    result = bench_median(per_run, samples);
done:
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return result;
}

#else

double bench_gpu_time_ms(const gpu_timer *t, gpu_timed_fn fn, void *arg, const char *what) {
    (void)t, (void)fn, (void)arg, (void)what;
    return 0;
}

#endif
