/* kernels/dequant.cu against its CPU reference, quant.c: the blocks of the GGUF fixture
 * and pseudo-random blocks of every dtype in odd counts (1, 7 and 1000 blocks).
 *
 * Both outputs are expected bit-identical to the CPU: the kernel performs the same fp32
 * operations in the same order with explicit round-to-nearest intrinsics (no FMA
 * contraction), and no input here has a NaN or infinite scale (the one case where the
 * GPU's canonical NaN payload would differ). A NaN never matches.
 *
 * Without CUDA in the build, or without a GPU at run time (as on CI), every test skips
 * itself with the reason. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "core/dtype.h"
#include "core/status.h"
#include "model/gguf.h"
#include "model/quant.h"
#include "cuda_test_support.h"

#ifdef GALE_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels.h"
#endif

#ifdef GALE_HAVE_CUDA

#define QUANT_BLOCKS GALE_FIXTURES "/gguf/quant_blocks.gguf"

static const uint32_t GUARD_F32 = 0xdeadbeefu;
static const uint16_t GUARD_BF16 = 0xbeefu;

typedef enum out_kind { OUT_F32, OUT_BF16 } out_kind;

/* Dequantises nbytes of src (n values of dtype) on the GPU, from a source placed at an
 * odd device address, into a device buffer followed by guard words; checks the guard
 * and returns the n outputs on the host (float or bf16 bits as out_kind says). */
static void *gpu_dequant(gale_dtype dtype, const uint8_t *src, uint64_t nbytes, uint64_t n,
                         out_kind kind, cudaStream_t stream, const char *what) {
    size_t elem = kind == OUT_F32 ? sizeof(float) : sizeof(uint16_t);
    size_t out_bytes = (size_t)(n + GUARD) * elem;
    uint8_t *host = malloc(out_bytes);
    cr_assert_not_null(host);
    for (uint64_t i = 0; i < n + GUARD; i++) {
        if (kind == OUT_F32) memcpy(host + 4 * i, &GUARD_F32, 4);
        else memcpy(host + 2 * i, &GUARD_BF16, 2);
    }

    uint8_t *d_src = NULL, *d_out = NULL;
    CUDA_ASSERT(cudaMalloc((void **)&d_src, nbytes + 1));
    CUDA_ASSERT(cudaMalloc((void **)&d_out, out_bytes));
    CUDA_ASSERT(cudaMemcpy(d_src + 1, src, nbytes, cudaMemcpyHostToDevice));
    CUDA_ASSERT(cudaMemcpy(d_out, host, out_bytes, cudaMemcpyHostToDevice));

    gale_status status = kind == OUT_F32
        ? kernel_dequant_f32(dtype, d_src + 1, n, (float *)d_out, stream)
        : kernel_dequant_bf16(dtype, d_src + 1, n, d_out, stream);
    cr_assert_eq(status, GALE_OK, "%s: %s", what, gale_last_error());
    CUDA_ASSERT(cudaStreamSynchronize(stream));
    CUDA_ASSERT(cudaMemcpy(host, d_out, out_bytes, cudaMemcpyDeviceToHost));
    CUDA_ASSERT(cudaFree(d_src));
    CUDA_ASSERT(cudaFree(d_out));

    for (uint64_t i = n; i < n + GUARD; i++) {
        bool intact = kind == OUT_F32 ? memcmp(host + 4 * i, &GUARD_F32, 4) == 0
                                      : memcmp(host + 2 * i, &GUARD_BF16, 2) == 0;
        cr_assert(intact, "%s: the kernel wrote past the end of its output", what);
    }
    return host;
}

/* GPU vs CPU, both output types, on the default stream and on a created one. */
static void check_against_cpu(gale_dtype dtype, const uint8_t *src, uint64_t n, const char *what) {
    uint64_t nbytes = 0;
    cr_assert(dtype_row_bytes(dtype, n, &nbytes), "%s: bad test size", what);
    float *want = malloc((n ? n : 1) * sizeof *want);
    uint16_t *want_bf16 = malloc((n ? n : 1) * sizeof *want_bf16);
    cr_assert(want && want_bf16);
    cr_assert_eq(quant_dequantize_f32(dtype, src, n, want), GALE_OK, "%s: %s", what, gale_last_error());
    cr_assert_eq(quant_dequantize_bf16(dtype, src, n, want_bf16), GALE_OK, "%s: %s", what,
                 gale_last_error());

    cudaStream_t stream;
    CUDA_ASSERT(cudaStreamCreate(&stream));
    cudaStream_t streams[2] = {NULL, stream};
    for (int s = 0; s < 2; s++) {
        float *got = gpu_dequant(dtype, src, nbytes, n, OUT_F32, streams[s], what);
        uint64_t bad = 0, first = 0;
        for (uint64_t i = 0; i < n; i++) {
            bool same = !isnan(got[i]) && !isnan(want[i]) && f32_to_bits(got[i]) == f32_to_bits(want[i]);
            if (!same && bad++ == 0) first = i;
        }
        if (bad)
            cr_assert_fail("%s to F32: %llu of %llu values differ from the CPU; first at %llu: "
                           "GPU %.9g (0x%08x), CPU %.9g (0x%08x)",
                           what, (unsigned long long)bad, (unsigned long long)n,
                           (unsigned long long)first, (double)got[first], f32_to_bits(got[first]),
                           (double)want[first], f32_to_bits(want[first]));
        free(got);

        uint16_t *got_bf16 = gpu_dequant(dtype, src, nbytes, n, OUT_BF16, streams[s], what);
        for (uint64_t i = 0; i < n; i++)
            cr_assert_eq(got_bf16[i], want_bf16[i], "%s to BF16: value %llu is 0x%04x on the GPU, "
                         "0x%04x on the CPU", what, (unsigned long long)i, got_bf16[i], want_bf16[i]);
        free(got_bf16);
    }
    CUDA_ASSERT(cudaStreamDestroy(stream));
    free(want);
    free(want_bf16);
}

/* ---- inputs ----------------------------------------------------------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint32_t rng_next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

/* A random finite fp16 (every exponent but the all-ones one, subnormals included). */
static uint16_t random_finite_f16(void) {
    uint16_t h = (uint16_t)rng_next();
    return (h & 0x7c00u) == 0x7c00u ? (uint16_t)(h & ~0x4000u) : h;
}

/* n_blocks of dtype: random bytes, with every fp16 scale and every plain value finite. */
static uint8_t *random_blocks(gale_dtype dtype, uint64_t n_blocks) {
    const dtype_info *info = dtype_get_info(dtype);
    uint64_t nbytes = n_blocks * info->block_bytes;
    uint8_t *b = malloc(nbytes);
    cr_assert_not_null(b);
    for (uint64_t i = 0; i < nbytes; i++) b[i] = (uint8_t)rng_next();
    for (uint64_t k = 0; k < n_blocks; k++) {
        uint8_t *p = b + k * info->block_bytes;
        switch (dtype) {
        case GALE_F32:
            if ((load_u32(p) & 0x7f800000u) == 0x7f800000u) p[3] &= 0xbf; /* clear an exponent bit */
            break;
        case GALE_F16:
            put_u16(p, random_finite_f16());
            break;
        case GALE_BF16:
            if ((load_u16(p) & 0x7f80u) == 0x7f80u) p[1] &= 0xbf;
            break;
        case GALE_Q4_1:
        case GALE_Q5_1:
        case GALE_Q4_K:
        case GALE_Q5_K:
            put_u16(p + 2, random_finite_f16()); /* m or dmin */
            put_u16(p, random_finite_f16());
            break;
        case GALE_Q8_0:
        case GALE_Q4_0:
        case GALE_Q5_0:
            put_u16(p, random_finite_f16());
            break;
        case GALE_Q6_K:
            put_u16(p + 208, random_finite_f16());
            break;
        default:
            break;
        }
    }
    return b;
}

#endif /* GALE_HAVE_CUDA */

Test(dequant_cuda, fixture_blocks) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    gguf_file f;
    cr_assert_eq(gguf_open(QUANT_BLOCKS, &f), GALE_OK, "%s: %s", QUANT_BLOCKS, gale_last_error());
    for (uint64_t t = 0; t < f.n_tensors; t++) {
        const gguf_tensor_info *info = &f.tensors[t];
        uint64_t n = 1;
        for (uint32_t d = 0; d < info->n_dims; d++) n *= info->ne[d];
        char what[160];
        snprintf(what, sizeof what, "fixture tensor '%.*s' (%s)", (int)info->name.len,
                 info->name.ptr, gale_dtype_name(info->dtype));
        check_against_cpu(info->dtype, gguf_tensor_data(&f, info), n, what);
    }
    gguf_close(&f);
#endif
}

Test(dequant_cuda, random_blocks_odd_counts) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    const uint64_t counts[] = {1, 7, 1000};
    for (int d = 0; d < GALE_DTYPE_COUNT; d++) {
        const dtype_info *info = dtype_get_info((gale_dtype)d);
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            uint8_t *src = random_blocks((gale_dtype)d, counts[c]);
            char what[64];
            snprintf(what, sizeof what, "%s x%llu blocks", info->name, (unsigned long long)counts[c]);
            check_against_cpu((gale_dtype)d, src, counts[c] * info->block_elems, what);
            free(src);
        }
    }
#endif
}

/* More values than one pass of the largest grid (4096 blocks of 256 threads, see
 * grid_blocks in kernels/common.cuh), so threads take a second grid-stride step: 4097
 * Q6_K blocks, and an F16 count that is not a multiple of the thread block. */
Test(dequant_cuda, beyond_one_grid_pass) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    uint8_t *src = random_blocks(GALE_Q6_K, 4097);
    check_against_cpu(GALE_Q6_K, src, 4097ull * 256, "Q6_K x4097 blocks");
    free(src);
    const uint64_t n = 4096ull * 256 + 77;
    src = random_blocks(GALE_F16, n);
    check_against_cpu(GALE_F16, src, n, "F16 x1048653");
    free(src);
#endif
}

Test(dequant_cuda, bad_arguments) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    float *d_out = NULL;
    uint8_t *d_src = NULL;
    CUDA_ASSERT(cudaMalloc((void **)&d_out, 1024 * sizeof(float)));
    CUDA_ASSERT(cudaMalloc((void **)&d_src, 1024));
    for (int d = 0; d < GALE_DTYPE_COUNT; d++) {
        const dtype_info *info = dtype_get_info((gale_dtype)d);
        if (info->block_elems == 1) continue;
        gale_error_clear();
        cr_assert_eq(kernel_dequant_f32((gale_dtype)d, d_src, info->block_elems + 1, d_out, NULL),
                     GALE_ERR_INVALID_ARG, "%s: n not a whole number of blocks accepted", info->name);
        cr_assert_neq(gale_last_error()[0], '\0', "no message");
        gale_error_clear();
        cr_assert_eq(kernel_dequant_bf16((gale_dtype)d, d_src, info->block_elems - 1, d_out, NULL),
                     GALE_ERR_INVALID_ARG, "%s: n not a whole number of blocks accepted", info->name);
        cr_assert_neq(gale_last_error()[0], '\0', "no message");
    }
    gale_error_clear();
    cr_assert_eq(kernel_dequant_f32(GALE_DTYPE_COUNT, d_src, 32, d_out, NULL), GALE_ERR_UNSUPPORTED);
    cr_assert_neq(gale_last_error()[0], '\0', "no message");
    gale_error_clear();
    cr_assert_eq(kernel_dequant_bf16((gale_dtype)-1, d_src, 32, d_out, NULL), GALE_ERR_UNSUPPORTED);
    cr_assert_neq(gale_last_error()[0], '\0', "no message");
    cr_assert_eq(kernel_dequant_f32(GALE_Q8_0, d_src, 0, d_out, NULL), GALE_OK, "n = 0 is a no-op");
    CUDA_ASSERT(cudaDeviceSynchronize());
    CUDA_ASSERT(cudaFree(d_out));
    CUDA_ASSERT(cudaFree(d_src));
#endif
}
