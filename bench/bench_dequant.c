/* bench_dequant — weight dequantisation speed against the memory roofline.
 *
 * Dequantisation only moves bytes, so its ceiling is bandwidth: (bytes read + bytes
 * written) / B, with B measured in this run by a large copy on the same device (PERF.md).
 * CPU: quant_dequantize_f32 on one thread against a one-thread memcpy. GPU (when a
 * device is present): kernel_dequant_bf16 against cudaMemcpy device-to-device.
 *
 *   bench_dequant [--mib N]   N MiB of fp32 output per dtype on the CPU (default 64)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/device.h"
#include "bandwidth.h"
#include "bench_util.h"
#include "core/dtype.h"
#include "core/status.h"
#include "gpu_timer.h"
#include "model/quant.h"
#ifdef GALE_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels.h"
#endif

enum { REPEATS = 7 };

/* Random blocks with finite fp16 scales, so no NaN path distorts the timing. */
static uint8_t *random_blocks(gale_dtype dtype, uint64_t n_blocks) {
    const dtype_info *info = dtype_get_info(dtype);
    uint64_t bytes = n_blocks * info->block_bytes;
    uint8_t *b = malloc(bytes);
    if (!b) return NULL;
    uint32_t state = 12345;
    for (uint64_t i = 0; i < bytes; i++) {
        state = state * 1664525u + 1013904223u;
        b[i] = (uint8_t)(state >> 24);
    }
    int scale_offsets[2] = {-1, -1};
    switch (dtype) {
    case GALE_Q8_0: case GALE_Q4_0: case GALE_Q5_0: scale_offsets[0] = 0; break;
    case GALE_Q4_1: case GALE_Q5_1: case GALE_Q4_K: case GALE_Q5_K: scale_offsets[0] = 0, scale_offsets[1] = 2; break;
    case GALE_Q6_K: scale_offsets[0] = 208; break;
    default: break;
    }
    uint16_t scale = f32_to_f16(0.01f);
    for (uint64_t k = 0; k < n_blocks; k++)
        for (int s = 0; s < 2; s++)
            if (scale_offsets[s] >= 0) memcpy(b + k * info->block_bytes + scale_offsets[s], &scale, 2);
    return b;
}

static void bench_cpu(uint64_t n) {
    double bandwidth = bench_cpu_copy_bandwidth(n * 4);
    printf("CPU, one thread: copy bandwidth B = %.2f GB/s (memcpy of %.0f MiB, read + write)\n", bandwidth / 1e9,
           (double)n * 4 / (1 << 20));
    printf("%-6s %12s %10s %12s %8s\n", "dtype", "bytes/value", "ms", "GB/s", "of B");
    float *out = malloc(n * sizeof *out);
    for (int d = 0; d < GALE_DTYPE_COUNT; d++) {
        const dtype_info *info = dtype_get_info((gale_dtype)d);
        uint8_t *src = random_blocks((gale_dtype)d, n / info->block_elems);
        double t[REPEATS];
        for (int r = 0; r < REPEATS; r++) {
            double start = bench_now();
            quant_dequantize_f32((gale_dtype)d, src, n, out);
            t[r] = bench_now() - start;
        }
        double seconds = bench_median(t, REPEATS);
        double bytes = (double)n * info->block_bytes / info->block_elems + (double)n * 4;
        printf("%-6s %12.4f %10.2f %12.2f %7.1f%%\n", info->name, (double)info->block_bytes / info->block_elems,
               seconds * 1e3, bytes / seconds / 1e9, 100.0 * bytes / seconds / bandwidth);
        free(src);
    }
    free(out);
}

#ifdef GALE_HAVE_CUDA
typedef struct dequant_job {
    gale_dtype dtype;
    const void *src;
    uint64_t n;
    void *out;
} dequant_job;

static int dequant_on_device(void *arg) {
    const dequant_job *j = arg;
    return kernel_dequant_bf16(j->dtype, j->src, j->n, j->out, NULL) != GALE_OK;
}

static void bench_gpu(void) {
    const uint64_t n = UINT64_C(1) << 28; /* 256 Mi values: 512 MiB of bf16 out */
    const size_t copy_bytes = (size_t)2 << 30;
    double bandwidth = bench_gpu_copy_bandwidth(copy_bytes);
    void *a, *b;
    if (bandwidth <= 0 || cudaMalloc(&a, copy_bytes) != cudaSuccess || cudaMalloc(&b, copy_bytes) != cudaSuccess) {
        printf("GPU: cannot allocate the bandwidth buffers\n");
        return;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    printf("\nGPU %s: copy bandwidth B = %.0f GB/s (2 GiB device-to-device, read + write)\n", prop.name,
           bandwidth / 1e9);
    printf("%-6s %10s %12s %8s\n", "dtype", "ms", "GB/s", "of B");
    for (int d = 0; d < GALE_DTYPE_COUNT; d++) {
        const dtype_info *info = dtype_get_info((gale_dtype)d);
        uint64_t src_bytes = n / info->block_elems * info->block_bytes;
        uint8_t *host = random_blocks((gale_dtype)d, n / info->block_elems);
        cudaMemcpy(a, host, src_bytes, cudaMemcpyHostToDevice);
        free(host);
        dequant_job job = {.dtype = (gale_dtype)d, .src = a, .n = n, .out = b};
        const double ms = bench_gpu_time_ms(&(gpu_timer){.warmups = 1, .loops = 1, .samples = REPEATS},
                                            dequant_on_device, &job, info->name);
        if (ms <= 0) {
            printf("%-6s failed: %s\n", info->name, gale_last_error());
            continue;
        }
        double seconds = ms * 1e-3, bytes = (double)src_bytes + (double)n * 2;
        printf("%-6s %10.3f %12.0f %7.1f%%\n", info->name, seconds * 1e3, bytes / seconds / 1e9,
               100.0 * bytes / seconds / bandwidth);
    }
    cudaFree(a);
    cudaFree(b);
}
#endif

int main(int argc, char **argv) {
    uint64_t mib = 64;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc) {
            mib = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: bench_dequant [--mib N]\n");
            return 2;
        }
    }
    uint64_t n = mib << 18; /* fp32 values in mib MiB */
    n -= n % 256;
    if (n == 0) n = 256;
    bench_cpu(n);
#ifdef GALE_HAVE_CUDA
    if (device_cuda_count() > 0) bench_gpu();
    else printf("\nGPU: no CUDA device, GPU rows skipped\n");
#endif
    return 0;
}
