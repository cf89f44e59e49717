#include "cuda_test_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "backend/device.h"
#include "core/dtype.h"

void require_cuda(void) {
#ifdef GALE_HAVE_CUDA
    if (device_cuda_count() == 0) cr_skip_test("no CUDA device: no usable GPU or driver found, kernels not checked");
#else
    cr_skip_test("no CUDA device: this build has no CUDA (GALE_CUDA=OFF)");
#endif
}

#ifdef GALE_HAVE_CUDA

static uint64_t rng = 0x2545F4914F6CDD1Dull;

float uniform(float lo, float hi) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    float u = (float)((rng >> 11) % 1000003) / 1000003.0f;
    float v = lo + (hi - lo) * u;
    return v == 0.0f ? 0.5f * hi : v;
}

uint16_t *random_bf16(size_t n, float lo, float hi, float **widened) {
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    *widened = malloc((n ? n : 1) * sizeof **widened);
    cr_assert(h && *widened, "out of memory");
    for (size_t i = 0; i < n; i++) {
        h[i] = f32_to_bf16(uniform(lo, hi));
        (*widened)[i] = bf16_to_f32(h[i]);
    }
    return h;
}

void *to_device(const void *host, size_t bytes) {
    void *d = NULL;
    CUDA_ASSERT(cudaMalloc(&d, bytes ? bytes : 1));
    if (bytes) CUDA_ASSERT(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
    return d;
}

uint16_t *guarded_device_bf16(size_t n, const uint16_t *init) {
    uint16_t *h = malloc((n + GUARD) * sizeof *h);
    cr_assert(h, "out of memory");
    for (size_t i = 0; i < n + GUARD; i++) h[i] = i < n && init ? init[i] : GUARD_BITS;
    uint16_t *d = to_device(h, (n + GUARD) * sizeof *h);
    free(h);
    return d;
}

float *download_bf16(uint16_t *d, size_t n, const char *what) {
    uint16_t *h = malloc((n + GUARD) * sizeof *h);
    cr_assert(h, "out of memory");
    CUDA_ASSERT(cudaDeviceSynchronize());
    CUDA_ASSERT(cudaMemcpy(h, d, (n + GUARD) * sizeof *h, cudaMemcpyDeviceToHost));
    for (size_t i = n; i < n + GUARD; i++) cr_assert_eq(h[i], GUARD_BITS, "%s: guard %zu overwritten", what, i - n);
    float *out = malloc((n ? n : 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) out[i] = bf16_to_f32(h[i]);
    free(h);
    CUDA_ASSERT(cudaFree(d));
    return out;
}

float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

void assert_bf16_close(const float *gpu, const float *cpu, size_t n, double rtol, double atol, const char *what) {
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)gpu[i] - cpu[i]);
        cr_assert(diff <= rtol * fabs(cpu[i]) + atol, "%s: value %zu is %.7g on the GPU, %.7g on the CPU", what, i,
                  gpu[i], cpu[i]);
    }
}

backend cpu_reference_backend(void) {
    backend b = {.ops = &cpu_backend_ops};
    cr_assert_eq(thread_pool_create(1, &b.pool), GALE_OK);
    return b;
}

#endif
