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

#include <stdatomic.h>
#include <stdio.h>
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
        (void)cudaGetLastError(); /* handled here: the next launch check must not report it */
        *out = NULL;
        return gale_error(GALE_ERR_OOM, "CUDA: %zu MiB do not fit in GPU memory (%s)", bytes >> 20, cudaGetErrorString(err));
    }
    return GALE_OK;
}

/* Bumped whenever device memory is freed (cuda_release, cuda_grow_buffer): a recorded
 * graph may hold the freed address. Process-wide (engines on other threads bump it too,
 * hence atomic), so graphs are at worst re-recorded once more than needed. */
static _Atomic uint64_t freed_epoch;

void cuda_note_freed(void) { atomic_fetch_add(&freed_epoch, 1); }

static void cuda_release(backend *b, void *p) {
    (void)b;
    if (p) cuda_note_freed();
    cudaFree(p);
}

static uint64_t cuda_buffers_epoch(backend *b) {
    (void)b;
    return atomic_load(&freed_epoch);
}

static gale_status cuda_upload(backend *b, void *dst, const void *src, size_t bytes) {
    CUDA_CALL(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_backend_state(b)->stream), "upload");
    CUDA_CALL(cudaStreamSynchronize(cuda_backend_state(b)->stream), "upload");
    return GALE_OK;
}

/* graphs_may_hold: the buffer may be one a recorded graph reads or writes; exact: the
 * caller already rounds its sizes up, so no doubling on top */
static gale_status grow(void **buf, size_t *cap, size_t bytes, bool graphs_may_hold, bool exact) {
    if (bytes <= *cap) return GALE_OK;
    if (*buf && graphs_may_hold) cuda_note_freed();
    cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    size_t want = bytes < 4096 ? 4096 : exact ? bytes : bytes * 2;
    cudaError_t err = cudaMalloc(buf, want);
    if (err != cudaSuccess) {
        (void)cudaGetLastError(); /* reported here, not by the next launch check */
        *buf = NULL;
        return cuda_fail(err, "scratch buffer");
    }
    *cap = want;
    return GALE_OK;
}

gale_status cuda_grow_buffer(void **buf, size_t *cap, size_t bytes) { return grow(buf, cap, bytes, true, false); }

void cuda_defer(cuda_state *st, gale_status status) {
    if (status == GALE_OK || st->deferred != GALE_OK) return;
    st->deferred = status;
    snprintf(st->deferred_why, sizeof st->deferred_why, "%s", gale_last_error());
}

gale_status cuda_take_deferred(cuda_state *st) {
    if (st->deferred == GALE_OK) return GALE_OK;
    const gale_status status = st->deferred;
    st->deferred = GALE_OK;
    return gale_error(status, "%s", st->deferred_why);
}

/* For the buffers only work outside any graph uses (sampling, to_host, gather_rows): their
 * growth leaves recorded graphs valid. */
static gale_status grow_unrecorded(void **buf, size_t *cap, size_t bytes) { return grow(buf, cap, bytes, false, false); }

/* Pageable host memory: the copy is staged by the driver before the call returns, so the
 * host array may change right after. */
static gale_status cuda_stage_ints(backend *b, int slot, const int32_t *src, size_t count, const int32_t **out) {
    cuda_state *st = cuda_backend_state(b);
    if (slot < 0 || slot >= CUDA_STAGE_SLOTS) return gale_error(GALE_ERR_INTERNAL, "CUDA: staging slot %d", slot);
    GALE_TRY(cuda_grow_buffer((void **)&st->stage[slot], &st->stage_cap[slot], count * sizeof *src));
    if (count * sizeof *src > st->stage_host_cap[slot]) {
        int32_t *grown = realloc(st->stage_host[slot], count * sizeof *src);
        if (!grown) return gale_error(GALE_ERR_OOM, "CUDA: out of memory staging %zu integers", count);
        st->stage_host[slot] = grown;
        st->stage_host_cap[slot] = count * sizeof *src;
    }
    st->stage_generation++;
    if (count) {
        memcpy(st->stage_host[slot], src, count * sizeof *src);
        CUDA_CALL(cudaMemcpyAsync(st->stage[slot], src, count * sizeof *src, cudaMemcpyHostToDevice, st->stream), "stage");
    }
    *out = st->stage[slot];
    return GALE_OK;
}

/* A synthetic (dummy) weight is filled on the GPU with cuRAND. */
static gale_status upload_synthetic(backend *b, const gale_tensor *host, gale_tensor *out) {
    const uint64_t n = tensor_numel(host);
    void *bf16 = NULL;
    GALE_TRY(cuda_alloc(b, n * 2, &bf16));
    gale_status status = kernel_fill_uniform_bf16(bf16, n, host->fill_amplitude, host->fill_seed, cuda_backend_state(b)->stream);
    if (status != GALE_OK) {
        cudaFree(bf16);
        return status;
    }
    *out = *host;
    out->data = bf16;
    out->fill_amplitude = 0;
    return GALE_OK;
}

/* The stored bytes go up as they are and are dequantised to bf16 on the GPU; bf16 weights
 * (Hugging Face checkpoints) go straight into place, with no second buffer. */
static gale_status cuda_upload_weight(backend *b, const gale_tensor *host, gale_tensor *out) {
    if (tensor_is_synthetic(host)) return upload_synthetic(b, host, out);
    cuda_state *st = cuda_backend_state(b);
    uint64_t n = tensor_numel(host);
    void *raw = NULL, *bf16 = NULL;
    const bool as_is = host->dtype == GALE_BF16;
    if (!as_is) GALE_TRY(cuda_alloc(b, host->nbytes, &raw));
    gale_status status = cuda_alloc(b, n * 2, &bf16);
    if (status == GALE_OK && as_is) {
        cudaError_t err = cudaMemcpyAsync(bf16, host->data, n * 2, cudaMemcpyHostToDevice, st->stream);
        if (err != cudaSuccess) status = cuda_fail(err, "weight upload");
    } else if (status == GALE_OK) {
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

/* The bf16 values come over as they are (half the bytes of fp32) into pinned memory (a
 * DMA at full speed, where pageable memory goes through a staging copy) and are widened
 * on the host: exact, as bf16 is the top half of an fp32. */
static gale_status cuda_to_host(backend *b, const void *src, size_t count, float *dst) {
    cuda_state *st = cuda_backend_state(b);
    GALE_TRY(cuda_take_deferred(st));
    if (count * sizeof(uint16_t) > st->pinned_cap) {
        /* the size asked for, to the MiB: page-locked memory is scarce, and growth
         * (cudaFreeHost, cudaMallocHost) stalls the device, so it happens only as the
         * largest request grows */
        cudaFreeHost(st->pinned);
        st->pinned = NULL;
        st->pinned_cap = 0;
        const size_t want = (count * sizeof(uint16_t) + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
        cudaError_t err = cudaMallocHost(&st->pinned, want);
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            st->pinned = NULL;
            return cuda_fail(err, "pinned host buffer");
        }
        st->pinned_cap = want;
    }
    CUDA_CALL(cudaMemcpyAsync(st->pinned, src, count * sizeof(uint16_t), cudaMemcpyDeviceToHost, st->stream), "to host");
    CUDA_CALL(cudaStreamSynchronize(st->stream), "to host");
    return quant_dequantize_f32(GALE_BF16, st->pinned, count, dst);
}

/* ---- ops ---- */

/* y[n, out] = x[n, in] · wᵀ in bf16: the decode GEMV where asked for and it applies, else
 * cuBLAS (cuda_gemm_rows). */
static gale_status cuda_matmul(backend *b, const void *x, int n, const gale_tensor *w, void *y) {
    GALE_TRY(cuda_take_deferred(cuda_backend_state(b)));
    if (w->n_dims != 2 || w->dtype != GALE_BF16)
        return gale_error(GALE_ERR_SHAPE, "CUDA matmul: weight must be an uploaded 2-D bf16 tensor");
    const int out = (int)w->shape[0], in = (int)w->shape[1];
    if (cuda_backend_state(b)->gemv && kernel_gemv_supported(x, w->data, n, in))
        return kernel_gemv_bf16(x, n, w->data, out, in, y, cuda_backend_state(b)->stream);
    return cuda_gemm_rows(cuda_backend_state(b), x, n, w->data, out, in, y, CUDA_R_16BF);
}

gale_status cuda_gemm_rows(cuda_state *st, const void *x, int n, const void *w, int out, int in, void *y,
                           cudaDataType_t y_type) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CALL(cublasGemmEx(st->cublas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, CUDA_R_16BF, in, x, CUDA_R_16BF,
                             in, &zero, y, y_type, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                y_type == CUDA_R_32F ? "bf16 GEMM → fp32" : "bf16 GEMM");
    return GALE_OK;
}

static gale_status cuda_embed(backend *b, const gale_tensor *table, const int32_t *ids, int n, float scale, void *y) {
    return kernel_embed_bf16(table->data, (int)table->shape[0], (int)table->shape[1], ids, n, scale, y, cuda_backend_state(b)->stream);
}

/* The op table's norm, rope and activation ops return nothing: a refused shape or a
 * failed launch there (a programming error, or a dead device) is kept by cuda_defer and
 * reported by the next op that returns a status — the next matmul, to_host, sample, or
 * the end of a recording, which then fails. */
static void cuda_rmsnorm(backend *b, const void *x, int n, int dim, const float *w, float offset, float eps, void *y) {
    cuda_state *st = cuda_backend_state(b);
    cuda_defer(st, kernel_rmsnorm_bf16(x, NULL, NULL, w, offset, eps, n, dim, y, st->stream));
}

static void cuda_add_rmsnorm(backend *b, void *x, const void *add, int n, int dim, const float *w, float offset, float eps,
                             void *y) {
    cuda_state *st = cuda_backend_state(b);
    cuda_defer(st, kernel_rmsnorm_bf16(NULL, x, add, w, offset, eps, n, dim, y, st->stream));
}

static void cuda_rope_store_kv(backend *b, void *q, void *k, const void *v, int n, int n_heads, int n_kv_heads, int head_dim,
                               const int32_t *positions, const int32_t *seq_of, const float *inv_freq, const head_norm *norm,
                               const paged_kv *kv) {
    const rope_qk_norm fused = norm ? (rope_qk_norm){.q_weight = norm->q_weight, .k_weight = norm->k_weight,
                                                     .offset = norm->offset, .eps = norm->eps}
                                    : (rope_qk_norm){0};
    cuda_state *st = cuda_backend_state(b);
    cuda_defer(st, kernel_rope_store_kv_bf16(q, k, v, positions, seq_of, inv_freq, norm ? &fused : NULL, n, n_heads,
                                             n_kv_heads, head_dim, kv->keys, kv->values, kv->block_tables,
                                             kv->table_stride, kv->block_size, st->stream));
}

/* The host copy of a staged array (stage_ints), or NULL when ints was not staged here. */
static const int32_t *staged_on_host(const cuda_state *st, const int32_t *ints) {
    for (int i = 0; i < CUDA_STAGE_SLOTS; i++)
        if (ints == st->stage[i]) return st->stage_host[i];
    return NULL;
}

/* Whether some run of the batch has two or more tokens: work for the prefill kernel. */
static bool has_runs(const int32_t *positions, const int32_t *seq_of, int n) {
    for (int i = 0; i + 1 < n; i++)
        if (attention_token_continues_run(positions, seq_of, i)) return true;
    return false;
}

/* kernels/flash_attention.cu's launcher: the prefill kernel over runs of a sequence's
 * tokens, planned on the host from the staged positions, and the split-KV decode kernel
 * over lone tokens. While a graph records, the host copies are withheld: the decode kernel
 * alone reads everything on the device, so the replay stays right when positions move. */
static gale_status cuda_attention(backend *b, const void *q, const paged_kv *kv, int n, const int32_t *positions,
                                  const int32_t *seq_of, const attention_params *p, void *out) {
    cuda_state *st = cuda_backend_state(b);
    attention_launch a = {.q = q,
                          .key_cache = kv->keys,
                          .value_cache = kv->values,
                          .block_tables = kv->block_tables,
                          .table_stride = kv->table_stride,
                          .block_size = kv->block_size,
                          .positions = positions,
                          .seq_of = seq_of,
                          .host_positions = st->capturing ? NULL : staged_on_host(st, positions),
                          .host_seq_of = st->capturing ? NULL : staged_on_host(st, seq_of),
                          .n = n,
                          .n_heads = p->n_heads,
                          .n_kv_heads = p->n_kv_heads,
                          .head_dim = p->head_dim,
                          .scale = p->scale,
                          .softcap = p->softcap,
                          .window = p->window,
                          .max_context = p->max_context,
                          .out = out,
                          .memo = &st->attention_memo,
                          .plan_key = st->stage_generation};
    if (!a.host_positions || !a.host_seq_of) a.host_positions = a.host_seq_of = NULL;
    attention_variant variant = (attention_variant)st->attention_variant;
    /* A forced prefill variant applies to batches with runs to plan. A decode step (no
     * runs) takes AUTO's decode kernel, both when it runs op by op before a recording and
     * while it records: the two must launch the same kernels into the same workspace.
     * A forced split-KV variant applies to batches without runs, recorded ones included;
     * on a prefill it would run the decode kernel per token with partials for every one
     * (gigabytes at 8k tokens), so prefills take AUTO. */
    const bool runs = a.host_positions && has_runs(a.host_positions, a.host_seq_of, n);
    if ((attention_variant_is_flash(variant) && !runs) || (attention_variant_is_split(variant) && runs))
        variant = ATTENTION_AUTO;
    if (kv->kv_dim != p->n_kv_heads * p->head_dim)
        return gale_error(GALE_ERR_SHAPE, "CUDA attention: cache rows of %d values, %d KV heads of %d expected",
                          kv->kv_dim, p->n_kv_heads, p->head_dim);
    const size_t had = st->attention_work_cap;
    GALE_TRY(cuda_grow_buffer(&st->attention_work, &st->attention_work_cap, kernel_attention_workspace_bytes(&a, variant)));
    if (st->attention_work_cap != had) st->attention_memo.key = 0; /* a new buffer, even at the old address */
    a.workspace = st->attention_work;
    a.workspace_bytes = st->attention_work_cap;
    return kernel_attention_bf16(&a, variant, st->stream);
}

static void cuda_gated_activation(backend *b, void *gate, const void *up, size_t count, gale_activation act) {
    cuda_state *st = cuda_backend_state(b);
    cuda_defer(st, kernel_gated_activation_bf16(gate, up, count, act, gate, st->stream));
}

static void cuda_softcap(backend *b, void *x, size_t count, float cap) {
    cuda_state *st = cuda_backend_state(b);
    cuda_defer(st, kernel_softcap_bf16(x, count, cap, st->stream));
}

static void cuda_add(backend *b, void *x, const void *y, size_t count) {
    cuda_state *st = cuda_backend_state(b);
    cuda_defer(st, kernel_axpy_bf16(x, y, 1.0f, count, st->stream));
}

static void cuda_scale_add(backend *b, void *y, const void *x, float a, size_t count) {
    cuda_state *st = cuda_backend_state(b);
    cuda_defer(st, kernel_axpy_bf16(y, x, a, count, st->stream));
}

static void cuda_zero(backend *b, void *x, size_t count) {
    cuda_state *st = cuda_backend_state(b);
    const cudaError_t err = cudaMemsetAsync(x, 0, count * 2, st->stream);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        cuda_defer(st, cuda_fail(err, "zero"));
    }
}

/* The rows go up in one copy and one launch of the embedding kernel gathers them: a row
 * index is a token id into a table of src's rows (scale 1: copied bit for bit). */
static gale_status cuda_gather_rows(backend *b, void *dst, const void *src, const int32_t *rows, int n, int width) {
    cuda_state *st = cuda_backend_state(b);
    if (n <= 0) return GALE_OK;
    GALE_TRY(grow_unrecorded((void **)&st->gather_rows, &st->gather_rows_cap, (size_t)n * sizeof *rows));
    CUDA_CALL(cudaMemcpyAsync(st->gather_rows, rows, (size_t)n * sizeof *rows, cudaMemcpyHostToDevice, st->stream),
              "gather rows");
    return kernel_embed_bf16(src, INT32_MAX, width, st->gather_rows, n, 1.0f, dst, st->stream);
}

/* The rows' rules and penalty pairs go up in one copy, the ids come back in one. */
static gale_status cuda_sample(backend *b, const void *logits, int rows, int vocab, const sample_row *rule, int32_t *ids) {
    cuda_state *st = cuda_backend_state(b);
    GALE_TRY(cuda_take_deferred(st));
    if (rows <= 0) return GALE_OK;
    size_t pairs = 0;
    for (int r = 0; r < rows; r++) pairs += (size_t)rule[r].n_penalty;
    const size_t params_bytes = (size_t)rows * sizeof(sample_params);
    const size_t bytes = params_bytes + 2 * pairs * sizeof(int32_t) + (size_t)rows * sizeof(int32_t);
    if (bytes > st->sample_host_cap) {
        void *grown = realloc(st->sample_host, bytes * 2);
        if (!grown) return gale_error(GALE_ERR_OOM, "CUDA sample: out of memory for %d rows", rows);
        st->sample_host = grown;
        st->sample_host_cap = bytes * 2;
    }
    GALE_TRY(grow_unrecorded(&st->sample_dev, &st->sample_dev_cap, bytes));
    /* [rows, vocab] fp32 is large (256 × 128k = 128 MiB): sized for the next power of two of
     * rows (the decode graphs' batch sizes) rather than doubled bytes, which would hold up
     * to twice the largest batch for nothing */
    int rows_cap = 1;
    while (rows_cap < rows) rows_cap *= 2;
    GALE_TRY(grow((void **)&st->sample_work, &st->sample_work_cap, kernel_sample_workspace_bytes(rows_cap, vocab), false,
                  true));
    sample_params *params = st->sample_host;
    int32_t *pair_ids = (int32_t *)((char *)st->sample_host + params_bytes), *pair_counts = pair_ids + pairs;
    size_t offset = 0;
    for (int r = 0; r < rows; r++) {
        const gale_sampling_params *p = &rule[r].params;
        params[r] = (sample_params){.temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p,
                                    .min_p = p->min_p, .repetition_penalty = p->repetition_penalty,
                                    .presence_penalty = p->presence_penalty, .frequency_penalty = p->frequency_penalty,
                                    .penalty_offset = (int32_t)offset, .penalty_count = rule[r].n_penalty,
                                    .seed = p->seed, .draw = rule[r].draw};
        if (rule[r].n_penalty) {
            memcpy(pair_ids + offset, rule[r].penalty_ids, (size_t)rule[r].n_penalty * sizeof *pair_ids);
            memcpy(pair_counts + offset, rule[r].penalty_counts, (size_t)rule[r].n_penalty * sizeof *pair_counts);
        }
        offset += (size_t)rule[r].n_penalty;
    }
    char *dev = st->sample_dev;
    const size_t in_bytes = bytes - (size_t)rows * sizeof(int32_t);
    CUDA_CALL(cudaMemcpyAsync(dev, st->sample_host, in_bytes, cudaMemcpyHostToDevice, st->stream), "sample parameters");
    int32_t *dev_ids = (int32_t *)(dev + in_bytes);
    GALE_TRY(kernel_sample_bf16(logits, rows, vocab, (const sample_params *)dev, (const int32_t *)(dev + params_bytes),
                                (const int32_t *)(dev + params_bytes) + pairs, st->sample_work, dev_ids, st->stream));
    CUDA_CALL(cudaMemcpyAsync(ids, dev_ids, (size_t)rows * sizeof *ids, cudaMemcpyDeviceToHost, st->stream), "sampled ids");
    CUDA_CALL(cudaStreamSynchronize(st->stream), "sample");
    return GALE_OK;
}

/* ---- CUDA graphs: a decode step recorded once per batch size and replayed ---- */

/* A failed recording must not fail the steps after it: the error a failed capture leaves
 * as the thread's last CUDA error is cleared here, or the next launch check would report it. */
static gale_status cuda_graph_begin(backend *b) {
    /* An op of the step just run failed: no recording, and the failure stays pending for
     * the next op that returns a status (the logits' to_host or sample), so the step
     * fails with its message instead of the recording taking it. */
    const cuda_state *pending = cuda_backend_state(b);
    if (pending->deferred != GALE_OK)
        return gale_error(GALE_ERR_DEVICE, "begin graph capture: an earlier op failed: %s", pending->deferred_why);
    /* thread-local: another thread's unrelated CUDA calls do not break the recording */
    cudaError_t err = cudaStreamBeginCapture(cuda_backend_state(b)->stream, cudaStreamCaptureModeThreadLocal);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return cuda_fail(err, "begin graph capture");
    }
    cuda_backend_state(b)->capturing = true;
    return GALE_OK;
}

static gale_status cuda_graph_end(backend *b, void **graph) {
    *graph = NULL;
    cudaGraph_t recorded = NULL;
    cuda_state *st = cuda_backend_state(b);
    st->capturing = false;
    cudaError_t err = cudaStreamEndCapture(st->stream, &recorded);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        if (recorded) cudaGraphDestroy(recorded);
        st->deferred = GALE_OK; /* the recorded ops are dropped with the recording */
        return cuda_fail(err, "end graph capture");
    }
    const gale_status failed_op = cuda_take_deferred(st); /* a recording missing an op is no recording */
    if (failed_op != GALE_OK) {
        cudaGraphDestroy(recorded);
        return failed_op;
    }
    cudaGraphExec_t exec = NULL;
    err = cudaGraphInstantiate(&exec, recorded, 0);
    cudaGraphDestroy(recorded);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return cuda_fail(err, "instantiate graph");
    }
    *graph = exec;
    return GALE_OK;
}

static gale_status cuda_graph_launch(backend *b, void *graph) {
    CUDA_CALL(cudaGraphLaunch((cudaGraphExec_t)graph, cuda_backend_state(b)->stream), "graph launch");
    return GALE_OK;
}

static void cuda_graph_free(backend *b, void *graph) {
    (void)b;
    if (graph) cudaGraphExecDestroy((cudaGraphExec_t)graph);
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
    .add_rmsnorm = cuda_add_rmsnorm,
    .moe = cuda_moe,
    .sample = cuda_sample,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .buffers_epoch = cuda_buffers_epoch,
};

/* The debugging switches of the environment, read before any GPU work so that a bad
 * value is named even where no GPU is. */
static gale_status read_env_switches(bool *gemv, int *forced_attention) {
    /* the hand-written decode GEMV only when asked, until the GPU benchmark (gale bench
     * kernels dense) has shown where it beats cuBLAS */
    const char *gemv_env = getenv("GALE_GEMV");
    if (gemv_env && strcmp(gemv_env, "0") != 0 && strcmp(gemv_env, "1") != 0)
        return gale_error(GALE_ERR_INVALID_ARG, "GALE_GEMV=%s: must be 1 (hand-written GEMV for small batches) or 0 (cuBLAS)",
                          gemv_env);
    *gemv = gemv_env && strcmp(gemv_env, "1") == 0;
    /* GALE_ATTENTION=NAME forces one attention variant (gale bench kernels attention lists them) */
    const char *attention = getenv("GALE_ATTENTION");
    attention_variant variant = ATTENTION_AUTO;
    if (attention && !attention_variant_parse(attention, &variant))
        return gale_error(GALE_ERR_INVALID_ARG, "GALE_ATTENTION=%s: not an attention variant (auto, naive, flash_m64, …)",
                          attention);
    *forced_attention = (int)variant;
    return GALE_OK;
}

gale_status cuda_backend_open(backend *b) {
    bool gemv = false;
    int forced_attention = ATTENTION_AUTO;
    GALE_TRY(read_env_switches(&gemv, &forced_attention));
    if (device_cuda_count() == 0) return gale_error(GALE_ERR_UNSUPPORTED, "CUDA: no usable GPU found");
    cuda_state *st = calloc(1, sizeof *st);
    if (!st) return gale_error(GALE_ERR_OOM, "CUDA backend: out of memory");
    b->impl = st;
    b->ops = &cuda_backend_ops;
    st->gemv = gemv;
    st->attention_variant = forced_attention;
    cudaError_t err = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
        cuda_backend_close(b);
        return cuda_fail(err, "stream");
    }
    /* cuBLAS gets its workspace from us: it must not allocate while a graph records */
    err = cudaMalloc(&st->cublas_workspace, CUBLAS_WORKSPACE_BYTES);
    if (err != cudaSuccess) {
        cuda_backend_close(b);
        return cuda_fail(err, "cuBLAS workspace");
    }
    cublasStatus_t status = cublasCreate(&st->cublas);
    if (status == CUBLAS_STATUS_SUCCESS) status = cublasSetStream(st->cublas, st->stream);
    if (status == CUBLAS_STATUS_SUCCESS)
        status = cublasSetWorkspace(st->cublas, st->cublas_workspace, CUBLAS_WORKSPACE_BYTES);
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
    for (int i = 0; i < CUDA_STAGE_SLOTS; i++) {
        cudaFree(st->stage[i]);
        free(st->stage_host[i]);
    }
    cudaFree(st->attention_work);
    cudaFree(st->gather_rows);
    cudaFreeHost(st->pinned);
    cudaFree(st->sample_dev);
    cudaFree(st->sample_work);
    free(st->sample_host);
    cuda_moe_free(b);
    if (st->cublas) cublasDestroy(st->cublas);
    cudaFree(st->cublas_workspace);
    if (st->stream) cudaStreamDestroy(st->stream);
    free(st);
    b->impl = NULL;
}
