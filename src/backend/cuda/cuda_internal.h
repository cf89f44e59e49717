/* What the CUDA backend's source files share (cuda_backend.c, cuda_moe.c, …): the
 * backend's state and the error helpers. Not for code outside src/backend/cuda/. */
#ifndef GALE_BACKEND_CUDA_INTERNAL_H
#define GALE_BACKEND_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdbool.h>

#include "backend/backend.h"
#include "core/status.h"
#include "kernels.h"

enum { CUDA_STAGE_SLOTS = 4 };
/* cuBLAS's workspace (cublasSetWorkspace): NVIDIA suggests 32 MiB on Hopper */
#define CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)

typedef struct cuda_moe_state cuda_moe_state; /* cuda_moe.c's buffers */

typedef struct cuda_state {
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_workspace;           /* CUBLAS_WORKSPACE_BYTES */
    bool gemv;                        /* decode GEMMs of ≤ GEMV_MAX_ROWS rows on kernels/gemv.cu
                                         (GALE_GEMV=1) instead of cuBLAS */
    int32_t *stage[CUDA_STAGE_SLOTS]; /* device copies of the forward's integer arrays */
    size_t stage_cap[CUDA_STAGE_SLOTS];
    int32_t *stage_host[CUDA_STAGE_SLOTS]; /* the same arrays on the host, for planning work */
    size_t stage_host_cap[CUDA_STAGE_SLOTS];
    uint64_t stage_generation;        /* bumped by every stage_ints: names what stage_host holds */
    attention_plan_memo attention_memo; /* the attention plan in attention_work, for the next layer */
    bool capturing;                   /* between graph_begin and graph_end */
    /* the first failure of an op that returns nothing (norm, rope, activation, …), kept
     * for the next op that returns a status (cuda_defer, cuda_take_deferred) */
    gale_status deferred;
    char deferred_why[256];
    int attention_variant;            /* attention_variant (kernels/attention_kernels.h): GALE_ATTENTION */
    void *attention_work;             /* the attention kernels' workspace */
    size_t attention_work_cap;
    int32_t *gather_rows;             /* gather_rows's row indices on the device */
    size_t gather_rows_cap;
    void *pinned;                     /* to_host's pinned host buffer (bf16 values) */
    size_t pinned_cap;
    cuda_moe_state *moe;              /* NULL until the first MoE layer */
    /* the sample op's buffers, grown on demand */
    void *sample_dev;                 /* device: params, then pair ids, pair counts, out ids */
    size_t sample_dev_cap;
    float *sample_work;               /* device: [rows, vocab] fp32 */
    size_t sample_work_cap;
    void *sample_host;                /* host staging of sample_dev */
    size_t sample_host_cap;
} cuda_state;

static inline cuda_state *cuda_backend_state(backend *b) { return (cuda_state *)b->impl; }

/* The failure is reported here, so it is also cleared as the thread's last error: left
 * there, the next kernel launch's check would blame itself for it (a sticky error, a dead
 * context, stays whatever is done). */
static inline gale_status cuda_fail(cudaError_t err, const char *what) {
    (void)cudaGetLastError();
    return gale_error(GALE_ERR_DEVICE, "CUDA %s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
}

static inline gale_status cublas_fail(cublasStatus_t status, const char *what) {
    return gale_error(GALE_ERR_DEVICE, "cuBLAS %s: %s", what, cublasGetStatusString(status));
}

/* Returns from the enclosing function with a gale_status naming what when a CUDA call fails. */
#define CUDA_CALL(call, what)                                                                                          \
    do {                                                                                                               \
        cudaError_t err_ = (call);                                                                                     \
        if (err_ != cudaSuccess) return cuda_fail(err_, (what));                                                       \
    } while (0)

#define CUBLAS_CALL(call, what)                                                                                        \
    do {                                                                                                               \
        cublasStatus_t st_ = (call);                                                                                   \
        if (st_ != CUBLAS_STATUS_SUCCESS) return cublas_fail(st_, (what));                                             \
    } while (0)

/* Keeps status (a failed launch or a refused shape in an op that returns nothing) until
 * cuda_take_deferred reports it; only the first failure is kept. */
void cuda_defer(cuda_state *st, gale_status status);
/* GALE_OK, or the kept failure (then forgotten) with its message. */
gale_status cuda_take_deferred(cuda_state *st);

/* Tells recorded graphs that device memory they may hold was freed (cuda_grow_buffer and
 * the release op do it themselves; call it around any other cudaFree of such memory). */
void cuda_note_freed(void);

/* *buf grown to at least bytes of device memory (contents dropped; doubled to amortise). */
gale_status cuda_grow_buffer(void **buf, size_t *cap, size_t bytes);

/* y[n, out] = x[n, in] · wᵀ, row-major, x and w [out, in] bf16, y bf16 or fp32 (y_type),
 * fp32 accumulation on cuBLAS. In cuBLAS's column-major terms yᵀ[out, n] = w · xᵀ, i.e.
 * op(A) = Aᵀ with A the [in, out] column-major view of w. */
gale_status cuda_gemm_rows(cuda_state *st, const void *x, int n, const void *w, int out, int in, void *y,
                           cudaDataType_t y_type);

/* cuda_moe.c: the MoE layer on the GPU (backend.h: the moe op) and its buffers' release. */
gale_status cuda_moe(backend *b, const void *x, int n, const int32_t *seq_of, const moe_weights *w, void *out);
void cuda_moe_free(backend *b);

#endif
