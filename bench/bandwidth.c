#include "bandwidth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "bench_util.h"

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

double bench_gpu_copy_bandwidth(size_t bytes) {
#ifdef GALE_HAVE_CUDA
    if (device_cuda_count() == 0) return 0;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
        cudaFree(a);
        return 0;
    }
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    double t[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        cudaEventRecord(start, 0);
        cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaEventRecord(stop, 0);
        cudaEventSynchronize(stop);
        float ms = 0;
        cudaEventElapsedTime(&ms, start, stop);
        t[r] = (double)ms * 1e-3;
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaFree(a);
    cudaFree(b);
    return 2.0 * (double)bytes / bench_median(t, REPEATS);
#else
    (void)bytes;
    return 0;
#endif
}
