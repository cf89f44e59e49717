/* The CPU matmul on weights of every dtype (random blocks): each input row's result is
 * the same bit for bit whatever the batch around it (1, 2, 3 or 7 rows: the fused
 * dequantise-and-dot path for one or two rows, the row-buffer path for more, ragged
 * tiles at the edges), and within 1e-5 of a double-precision dot over the dequantised
 * weights (model/quant.c, checked bit-exact against the gguf package elsewhere). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/dtype.h"
#include "model/quant.h"
#include "test_support.h"

static const gale_dtype dtypes[] = {GALE_F32,  GALE_F16,  GALE_BF16, GALE_Q8_0, GALE_Q4_0, GALE_Q4_1,
                                    GALE_Q5_0, GALE_Q5_1, GALE_Q4_K, GALE_Q5_K, GALE_Q6_K};
enum { N_DTYPES = sizeof dtypes / sizeof dtypes[0] };

static uint64_t rng = 88172645463325252ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() % 1000000) / 1e6f; }

static void put_f16(uint8_t *p, float v) {
    uint16_t h = f32_to_f16(v);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

/* Random bytes, with every fp16 scale field set to a modest value (random bits would
 * make infinities). */
static uint8_t *random_weights(gale_dtype dtype, int rows, int in, uint64_t *row_bytes) {
    cr_assert(dtype_row_bytes(dtype, (uint64_t)in, row_bytes));
    size_t total = (size_t)rows * *row_bytes;
    uint8_t *w = malloc(total);
    for (size_t i = 0; i < total; i++) w[i] = (uint8_t)next_u32();
    const dtype_info *info = dtype_get_info(dtype);
    for (size_t b = 0; b < total / info->block_bytes; b++) {
        uint8_t *block = w + b * info->block_bytes;
        switch (dtype) {
        case GALE_F32: {
            float v = uniform(-1, 1);
            memcpy(block, &v, 4);
            break;
        }
        case GALE_F16: put_f16(block, uniform(-1, 1)); break;
        case GALE_BF16: {
            uint16_t h = f32_to_bf16(uniform(-1, 1));
            block[0] = (uint8_t)h, block[1] = (uint8_t)(h >> 8);
            break;
        }
        case GALE_Q6_K: put_f16(block + 208, uniform(-0.01f, 0.01f)); break;
        case GALE_Q4_1: case GALE_Q5_1: case GALE_Q4_K: case GALE_Q5_K:
            put_f16(block, uniform(-0.05f, 0.05f));
            put_f16(block + 2, uniform(-0.05f, 0.05f));
            break;
        default: put_f16(block, uniform(-0.05f, 0.05f)); break;
        }
    }
    return w;
}

ParameterizedTestParameters(cpu_ops, matmul_is_batch_invariant_and_exact) { return index_params(N_DTYPES); }
ParameterizedTest(size_t *index, cpu_ops, matmul_is_batch_invariant_and_exact) {
    gale_dtype dtype = dtypes[*index];
    rng += *index;
    const int rows = 37; /* 9 tiles of 4 and one ragged row */
    const int in = dtype_get_info(dtype)->block_elems == 256 ? 512 : 96;
    uint64_t row_bytes;
    uint8_t *bytes = random_weights(dtype, rows, in, &row_bytes);
    gale_tensor w = {.dtype = dtype, .n_dims = 2, .shape = {rows, in}, .data = bytes, .nbytes = rows * row_bytes};
    float *dense = malloc((size_t)rows * in * sizeof *dense);
    cr_assert_eq(tensor_to_f32(&w, dense), GALE_OK, "%s", gale_last_error());
    enum { MAX_N = 7 };
    float x[MAX_N * 512];
    for (int i = 0; i < MAX_N * in; i++) x[i] = uniform(-1, 1);
    backend b = {.ops = &cpu_backend_ops};
    cr_assert_eq(thread_pool_create(2, &b.pool), GALE_OK);
    float *alone = guarded_alloc((size_t)MAX_N * rows);
    for (int i = 0; i < MAX_N; i++)
        cr_assert_eq(b.ops->matmul(&b, x + (size_t)i * in, 1, &w, alone + (size_t)i * rows), GALE_OK, "%s", gale_last_error());
    const int batches[] = {2, 3, 7};
    for (size_t k = 0; k < 3; k++) {
        int n = batches[k];
        float *batched = guarded_alloc((size_t)n * rows);
        cr_assert_eq(b.ops->matmul(&b, x, n, &w, batched), GALE_OK, "%s", gale_last_error());
        for (int i = 0; i < n * rows; i++)
            cr_assert(memcmp(&batched[i], &alone[i], sizeof(float)) == 0, "%s: row %d col %d: %.9g in a batch of %d, %.9g alone",
                      gale_dtype_name(dtype), i / rows, i % rows, batched[i], n, alone[i]);
        guarded_check_free(batched, (size_t)n * rows, "batched");
    }
    double worst = 0, scale = 0;
    for (int i = 0; i < MAX_N; i++)
        for (int r = 0; r < rows; r++) {
            double ref = 0;
            for (int c = 0; c < in; c++) ref += (double)x[i * in + c] * dense[(size_t)r * in + c];
            double diff = fabs(ref - alone[i * rows + r]);
            worst = diff > worst || isnan(diff) ? diff : worst;
            scale = fabs(ref) > scale ? fabs(ref) : scale;
        }
    cr_assert(worst <= 1e-5 * scale, "%s: off by %.3g of %.3g from the double-precision dot", gale_dtype_name(dtype), worst,
              scale);
    guarded_check_free(alone, (size_t)MAX_N * rows, "alone");
    thread_pool_destroy(b.pool);
    free(dense);
    free(bytes);
}
