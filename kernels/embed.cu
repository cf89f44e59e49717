/* Embedding lookup: rows of a bf16 table [vocab, dim] for token ids, times Gemma's
 * sqrt(hidden) scale held in bf16 (transformers multiplies by a tensor of the activation
 * dtype: bf16(sqrt(640)) = 25.25, not 25.298), in fp32, rounded to bf16. CPU reference: cpu_embed in
 * src/backend/cpu/ops.c. One thread block per token, threads across the row: reads and
 * writes are coalesced. Ids are checked on the host before they are uploaded (the engine
 * refuses ids outside the vocabulary); an id that slips through writes a zero row rather
 * than reading outside the table. */
#include "common.cuh"
#include "kernels.h"

extern "C" {
#include "core/dtype.h"
}

namespace {

constexpr int EMBED_THREADS = 256;

__global__ void embed_kernel(const uint16_t *__restrict__ table, const int32_t *__restrict__ ids, int vocab, int dim,
                             float scale, uint16_t *__restrict__ out) {
    const int token = blockIdx.x, id = ids[token];
    uint16_t *row = out + (size_t)token * dim;
    if (id < 0 || id >= vocab) {
        for (int i = threadIdx.x; i < dim; i += blockDim.x) row[i] = 0;
        return;
    }
    const uint16_t *src = table + (size_t)id * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        row[i] = scale == 1.0f ? src[i] : dev_f32_to_bf16(__fmul_rn(dev_bf16_to_f32(src[i]), scale));
}

} // namespace

extern "C" gale_status kernel_embed_bf16(const void *table, int vocab, int dim, const int32_t *ids, int n, float scale,
                                         void *out, void *stream) {
    if (n < 0 || vocab <= 0 || dim <= 0)
        return gale_error(GALE_ERR_INVALID_ARG, "embed: %d ids into a [%d, %d] table", n, vocab, dim);
    if (n > 0 && (!table || !ids || !out)) return gale_error(GALE_ERR_INVALID_ARG, "embed: NULL buffer");
    if (n == 0) return GALE_OK;
    scale = bf16_to_f32(f32_to_bf16(scale));
    embed_kernel<<<n, EMBED_THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const uint16_t *>(table), ids, vocab, dim, scale, static_cast<uint16_t *>(out));
    return cuda_check_launch("embed");
}
