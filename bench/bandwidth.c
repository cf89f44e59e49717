#include "bandwidth.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "bench_util.h"
#include "gpu_timer.h"

#ifdef GALE_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels.h"
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

#ifdef GALE_HAVE_CUDA
enum { RATE_DIM = 8192 };

typedef struct gemm_job {
    cublasHandle_t cublas;
    const void *a, *b;
    void *c;
} gemm_job;

static int gemm_on_device(void *arg) {
    const gemm_job *g = arg;
    const float one = 1.0f, zero = 0.0f;
    return cublasGemmEx(g->cublas, CUBLAS_OP_T, CUBLAS_OP_N, RATE_DIM, RATE_DIM, RATE_DIM, &one, g->a, CUDA_R_16BF,
                        RATE_DIM, g->b, CUDA_R_16BF, RATE_DIM, &zero, g->c, CUDA_R_16BF, RATE_DIM, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS;
}
#endif

double bench_gpu_gemm_rate(void) {
#ifdef GALE_HAVE_CUDA
    if (device_cuda_count() == 0) return 0;
    const size_t count = (size_t)RATE_DIM * RATE_DIM;
    void *m[3] = {NULL, NULL, NULL};
    gemm_job job = {0};
    double ms = -1;
    bool ready = cublasCreate(&job.cublas) == CUBLAS_STATUS_SUCCESS;
    for (int i = 0; i < 3 && ready; i++) /* random data, as PERF.md asks: power, so clocks, depend on it */
        ready = cudaMalloc(&m[i], count * 2) == cudaSuccess && kernel_fill_uniform_bf16(m[i], count, 1.0f, 77u + (uint64_t)i, NULL) == GALE_OK;
    if (ready) {
        job.a = m[0], job.b = m[1], job.c = m[2];
        ms = bench_gpu_time_ms(&(gpu_timer){.warmups = 2, .loops = 1, .samples = REPEATS}, gemm_on_device, &job,
                               "cuBLAS bf16 GEMM rate");
    }
    for (int i = 0; i < 3; i++) cudaFree(m[i]);
    if (job.cublas) cublasDestroy(job.cublas);
    return ms > 0 ? 2.0 * RATE_DIM * (double)RATE_DIM * RATE_DIM / (ms * 1e-3) : 0;
#else
    return 0;
#endif
}
