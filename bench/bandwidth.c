#include "bandwidth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "bench_util.h"
#include "gpu_timer.h"

#ifdef GALE_HAVE_CUDA
#include <cuda_runtime.h>
#endif

enum { REPEATS = 5 };

double bench_cpu_copy_bandwidth(size_t bytes) {
    uint8_t *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) {
        free(src);
        free(dst);
        return 0;
    }
    memset(src, 1, bytes);
    memset(dst, 0, bytes);
    double t[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        double start = bench_now();
        memcpy(dst, src, bytes);
        t[r] = bench_now() - start;
    }
    free(src);
    free(dst);
    return 2.0 * (double)bytes / bench_median(t, REPEATS);
}

#ifdef GALE_HAVE_CUDA
typedef struct copy_job {
    void *dst;
    const void *src;
    size_t bytes;
} copy_job;

static int copy_on_device(void *arg) {
    const copy_job *c = arg;
    return cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, 0) != cudaSuccess;
}
#endif

double bench_gpu_copy_bandwidth(size_t bytes) {
#ifdef GALE_HAVE_CUDA
    if (device_cuda_count() == 0) return 0;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
        cudaFree(a);
        return 0;
    }
    copy_job job = {.dst = b, .src = a, .bytes = bytes};
    const double ms =
        bench_gpu_time_ms(&(gpu_timer){.warmups = 1, .loops = 1, .samples = REPEATS}, copy_on_device, &job, "copy");
    cudaFree(a);
    cudaFree(b);
    return ms > 0 ? 2.0 * (double)bytes / (ms * 1e-3) : 0;
#else
    (void)bytes;
    return 0;
#endif
}
