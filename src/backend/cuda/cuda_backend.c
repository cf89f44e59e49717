/* The CUDA backend: the op table of backend.h on one GPU. Activations and the KV cache are
 * bf16 in device memory, norm weights and rotary frequencies fp32; weights are uploaded
 * once and dequantised to bf16 on the GPU (kernels/dequant.cu). GEMMs go to cuBLAS
 * (bf16 inputs, fp32 accumulation); everything else to the kernels of kernels/. All work
 * is queued on one stream; the host waits only where it reads results (to_host).
 *
 * Status: written and compiled without a GPU in reach — the kernels' own tests
 * (tests/test_kernels_cuda.c) and the end-to-end test (tests/test_engine_cuda.c) are what
 * scripts/gpu-check runs on one. Until they pass there, the CLI uses it only when asked
 * (--device cuda). */
#include "backend/cuda/cuda_backend.h"

#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/device.h"
#include "core/status.h"
#include "kernels.h"
#include "model/quant.h"

/* ---- memory ---- */

static size_t cuda_memory_size(backend *b) {
    (void)b;
    size_t free_bytes = 0, total = 0;
    return cudaMemGetInfo(&free_bytes, &total) == cudaSuccess ? free_bytes : 0;
}

static gale_status cuda_alloc(backend *b, size_t bytes, void **out) {
    (void)b;
    *out = NULL;
    cudaError_t err = cudaMalloc(out, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        *out = NULL;
        return gale_error(GALE_ERR_OOM, "CUDA: %zu MiB do not fit in GPU memory (%s)", bytes >> 20, cudaGetErrorString(err));
    }
    return GALE_OK;
}

static void cuda_release(backend *b, void *p) {
    (void)b;
    cudaFree(p);
}

static gale_status cuda_upload(backend *b, void *dst, const void *src, size_t bytes) {
    CUDA_CALL(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_backend_state(b)->stream), "upload");
    CUDA_CALL(cudaStreamSynchronize(cuda_backend_state(b)->stream), "upload");
    return GALE_OK;
}

gale_status cuda_grow_buffer(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return GALE_OK;
    cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    size_t want = bytes < 4096 ? 4096 : bytes * 2;
    CUDA_CALL(cudaMalloc(buf, want), "staging buffer");
    *cap = want;
    return GALE_OK;
}

/* Pageable host memory: the copy is staged by the driver before the call returns, so the
 * host array may change right after. */
static gale_status cuda_stage_ints(backend *b, int slot, const int32_t *src, size_t count, const int32_t **out) {
    cuda_state *st = cuda_backend_state(b);
    if (slot < 0 || slot >= CUDA_STAGE_SLOTS) return gale_error(GALE_ERR_INTERNAL, "CUDA: staging slot %d", slot);
    GALE_TRY(cuda_grow_buffer((void **)&st->stage[slot], &st->stage_cap[slot], count * sizeof *src));
    if (count) CUDA_CALL(cudaMemcpyAsync(st->stage[slot], src, count * sizeof *src, cudaMemcpyHostToDevice, st->stream), "stage");
    *out = st->stage[slot];
    return GALE_OK;
}

/* The stored bytes go up as they are and are dequantised to bf16 on the GPU. */
static gale_status cuda_upload_weight(backend *b, const gale_tensor *host, gale_tensor *out) {
    cuda_state *st = cuda_backend_state(b);
    uint64_t n = tensor_numel(host);
    void *raw = NULL, *bf16 = NULL;
    GALE_TRY(cuda_alloc(b, host->nbytes, &raw));
    gale_status status = cuda_alloc(b, n * 2, &bf16);
    if (status == GALE_OK) {
        cudaError_t err = cudaMemcpyAsync(raw, host->data, host->nbytes, cudaMemcpyHostToDevice, st->stream);
        status = err == cudaSuccess ? kernel_dequant_bf16(host->dtype, raw, n, bf16, st->stream) : cuda_fail(err, "weight upload");
    }
    if (status == GALE_OK) {
        cudaError_t err = cudaStreamSynchronize(st->stream);
        if (err != cudaSuccess) status = cuda_fail(err, "weight upload");
    }
    cudaFree(raw);
    if (status != GALE_OK) {
        cudaFree(bf16);
        return status;
    }
    *out = *host;
    out->dtype = GALE_BF16;
    out->data = bf16;
    out->nbytes = n * 2;
    return GALE_OK;
}

static void cuda_release_weight(backend *b, gale_tensor *t) {
    (void)b;
    cudaFree((void *)t->data);
    t->data = NULL;
}

static gale_status cuda_to_host(backend *b, const void *src, size_t count, float *dst) {
    cuda_state *st = cuda_backend_state(b);
    GALE_TRY(cuda_grow_buffer((void **)&st->f32, &st->f32_cap, count * sizeof(float)));
    GALE_TRY(kernel_dequant_f32(GALE_BF16, src, count, st->f32, st->stream));
    CUDA_CALL(cudaMemcpyAsync(dst, st->f32, count * sizeof(float), cudaMemcpyDeviceToHost, st->stream), "to host");
    CUDA_CALL(cudaStreamSynchronize(st->stream), "to host");
    return GALE_OK;
}

/* ---- ops ---- */

/* y[n, out] = x[n, in] · wᵀ, all row-major bf16: in cuBLAS's column-major terms
 * yᵀ[out, n] = w[out, in] · xᵀ[in, n], i.e. op(A) = Aᵀ with A the [in, out] column-major
 * view of w. fp32 accumulation. */
static gale_status cuda_matmul(backend *b, const void *x, int n, const gale_tensor *w, void *y) {
    if (w->n_dims != 2 || w->dtype != GALE_BF16)
        return gale_error(GALE_ERR_SHAPE, "CUDA matmul: weight must be an uploaded 2-D bf16 tensor");
    const int out = (int)w->shape[0], in = (int)w->shape[1];
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t status = cublasGemmEx(cuda_backend_state(b)->cublas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w->data,
                                         CUDA_R_16BF, in, x, CUDA_R_16BF, in, &zero, y, CUDA_R_16BF, out,
                                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return status == CUBLAS_STATUS_SUCCESS ? GALE_OK : cublas_fail(status, "bf16 GEMM");
}

static gale_status cuda_embed(backend *b, const gale_tensor *table, const int32_t *ids, int n, float scale, void *y) {
    return kernel_embed_bf16(table->data, (int)table->shape[0], (int)table->shape[1], ids, n, scale, y, cuda_backend_state(b)->stream);
}

/* The op table's norm, rope and activation ops return nothing: a launch failure here is
 * a programming error (bad shape) or a dead device, which the next synchronising call
 * (to_host) reports. */
static void cuda_rmsnorm(backend *b, const void *x, int n, int dim, const float *w, float offset, float eps, void *y) {
    (void)kernel_rmsnorm_bf16(x, NULL, NULL, w, offset, eps, n, dim, y, cuda_backend_state(b)->stream);
}

static void cuda_rope_store_kv(backend *b, void *q, void *k, const void *v, int n, int n_heads, int n_kv_heads, int head_dim,
                               const int32_t *positions, const int32_t *seq_of, const float *inv_freq, const paged_kv *kv) {
    (void)kernel_rope_store_kv_bf16(q, k, v, positions, seq_of, inv_freq, n, n_heads, n_kv_heads, head_dim, kv->keys,
                                    kv->values, kv->block_tables, kv->table_stride, kv->block_size, cuda_backend_state(b)->stream);
}

static gale_status cuda_attention(backend *b, const void *q, const paged_kv *kv, int n, const int32_t *positions,
                                  const int32_t *seq_of, const attention_params *p, void *out) {
    return kernel_paged_attention_bf16(q, kv->keys, kv->values, kv->block_tables, kv->table_stride, kv->block_size,
                                       positions, seq_of, n, p->n_heads, p->n_kv_heads, p->head_dim, p->scale, p->softcap,
                                       p->window, out, cuda_backend_state(b)->stream);
}

static void cuda_gated_activation(backend *b, void *gate, const void *up, size_t count, gale_activation act) {
    (void)kernel_gated_activation_bf16(gate, up, count, act, gate, cuda_backend_state(b)->stream);
}

static void cuda_softcap(backend *b, void *x, size_t count, float cap) {
    (void)kernel_softcap_bf16(x, count, cap, cuda_backend_state(b)->stream);
}

static void cuda_add(backend *b, void *x, const void *y, size_t count) {
    (void)kernel_axpy_bf16(x, y, 1.0f, count, cuda_backend_state(b)->stream);
}

static void cuda_scale_add(backend *b, void *y, const void *x, float a, size_t count) {
    (void)kernel_axpy_bf16(y, x, a, count, cuda_backend_state(b)->stream);
}

static void cuda_zero(backend *b, void *x, size_t count) { cudaMemsetAsync(x, 0, count * 2, cuda_backend_state(b)->stream); }

static gale_status cuda_gather_rows(backend *b, void *dst, const void *src, const int32_t *rows, int n, int width) {
    const size_t row_bytes = (size_t)width * 2;
    for (int i = 0; i < n; i++)
        CUDA_CALL(cudaMemcpyAsync((char *)dst + (size_t)i * row_bytes, (const char *)src + (size_t)rows[i] * row_bytes,
                                  row_bytes, cudaMemcpyDeviceToDevice, cuda_backend_state(b)->stream),
                  "gather rows");
    return GALE_OK;
}

const backend_ops cuda_backend_ops = {
    .name = "cuda",
    .act_size = 2,
    .memory_size = cuda_memory_size,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .upload = cuda_upload,
    .stage_ints = cuda_stage_ints,
    .upload_weight = cuda_upload_weight,
    .release_weight = cuda_release_weight,
    .to_host = cuda_to_host,
    .matmul = cuda_matmul,
    .embed = cuda_embed,
    .rmsnorm = cuda_rmsnorm,
    .rope_store_kv = cuda_rope_store_kv,
    .attention = cuda_attention,
    .gated_activation = cuda_gated_activation,
    .softcap = cuda_softcap,
    .add = cuda_add,
    .scale_add = cuda_scale_add,
    .zero = cuda_zero,
    .gather_rows = cuda_gather_rows,
    .moe = cuda_moe,
};

gale_status cuda_backend_open(backend *b) {
    if (device_cuda_count() == 0) return gale_error(GALE_ERR_UNSUPPORTED, "CUDA: no usable GPU found");
    cuda_state *st = calloc(1, sizeof *st);
    if (!st) return gale_error(GALE_ERR_OOM, "CUDA backend: out of memory");
    b->impl = st;
    b->ops = &cuda_backend_ops;
    cudaError_t err = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
        cuda_backend_close(b);
        return cuda_fail(err, "stream");
    }
    cublasStatus_t status = cublasCreate(&st->cublas);
    if (status == CUBLAS_STATUS_SUCCESS) status = cublasSetStream(st->cublas, st->stream);
    if (status != CUBLAS_STATUS_SUCCESS) {
        cuda_backend_close(b);
        return cublas_fail(status, "handle");
    }
    return GALE_OK;
}

void cuda_backend_close(backend *b) {
    cuda_state *st = b->impl;
    if (!st) return;
    if (st->stream) cudaStreamSynchronize(st->stream);
    for (int i = 0; i < CUDA_STAGE_SLOTS; i++) cudaFree(st->stage[i]);
    cudaFree(st->f32);
    cuda_moe_free(b);
    if (st->cublas) cublasDestroy(st->cublas);
    if (st->stream) cudaStreamDestroy(st->stream);
    free(st);
    b->impl = NULL;
}
