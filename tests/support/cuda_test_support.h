/* Helpers shared by the GPU suites (test_kernels_cuda, test_attention_cuda, test_moe_cuda):
 * skipping without a device, random bf16 inputs that are never zero, device buffers with
 * guard values after them, and the bf16 comparison bound.
 *
 * Everything but require_cuda exists only in builds with CUDA (GALE_HAVE_CUDA). */
#ifndef GALE_CUDA_TEST_SUPPORT_H
#define GALE_CUDA_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

/* Skips the calling test, with the reason, when the build has no CUDA or no GPU answers. */
void require_cuda(void);

#ifdef GALE_HAVE_CUDA
#include <cuda_runtime.h>

#define CUDA_ASSERT(call)                                                                                              \
    do {                                                                                                               \
        cudaError_t err_ = (call);                                                                                     \
        cr_assert_eq(err_, cudaSuccess, "%s: %s", #call, cudaGetErrorString(err_));                                   \
    } while (0)

enum { GUARD = 8 };
#define GUARD_BITS ((uint16_t)0x7fc1) /* a bf16 NaN no kernel writes */

/* A uniform value in [lo, hi), never exactly zero (xorshift; the sequence is the same in
 * every run). */
float uniform(float lo, float hi);
/* n bf16 bit patterns of values in [lo, hi); their fp32 widening in *widened (free both). */
uint16_t *random_bf16(size_t n, float lo, float hi, float **widened);
/* A device copy of bytes of host memory (cudaFree it). */
void *to_device(const void *host, size_t bytes);
/* A device bf16 buffer of n values (init, or GUARD_BITS when NULL) followed by GUARD guard values. */
uint16_t *guarded_device_bf16(size_t n, const uint16_t *init);
/* Synchronises, copies n values back widened to fp32 (free()), asserts the guard is
 * intact and frees the device buffer. */
float *download_bf16(uint16_t *d, size_t n, const char *what);
/* x rounded to bf16 and widened back: what a bf16 output of the exact value holds */
float round_bf16(float x);
/* |gpu − cpu| ≤ rtol·|cpu| + atol element-wise, NaN failing; names what and the index. */
void assert_bf16_close(const float *gpu, const float *cpu, size_t n, double rtol, double atol, const char *what);
/* The CPU backend on one thread: every kernel's reference (thread_pool_destroy(b.pool)). */
backend cpu_reference_backend(void);
#endif

#endif
