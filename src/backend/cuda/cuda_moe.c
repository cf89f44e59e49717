/* The MoE layer on the GPU (backend.h: the moe op): the router GEMM on cuBLAS (bf16 x
 * and router, fp32 logits), then kernels/moe.cu's gate, dispatch, expert MLPs and combine
 * (kernel_moe_bf16) — no host round trip and no launch shaped by the routing, so a
 * forward with MoE layers can be captured in a CUDA graph once each layer has run once
 * (the first call of a layer uploads its expert pointer table) and the buffers are large
 * enough for the batch (they grow by capacity and are reused).
 *
 * Layers the kernels do not take (more than 64 experts or 8 per token, H or I not a
 * multiple of 8, unaligned activations) go to the generic backend_moe over the op table,
 * which routes on the host. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "kernels.h"

/* One layer's expert weights as device pointer arrays, keyed by the layer's tensor array. */
typedef struct layer_table {
    const gale_tensor *key; /* moe_weights.gate of the layer */
    int n_experts;
    const void **host;   /* [3E] data pointers of gate[0 … E), up[…], down[…] at upload */
    const void **device; /* the same [3E] in device memory */
} layer_table;

struct cuda_moe_state {
    moe_scratch generic;  /* backend_moe's buffers, for layers beyond the kernels */
    float *logits;        /* [n, E] router logits */
    size_t logits_cap;    /* bytes */
    void *workspace;      /* kernel_moe_bf16's routing arrays and expert activations */
    size_t workspace_cap; /* bytes */
    layer_table *tables;
    int n_tables, cap_tables;
};

static bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* The kernels' limits, and a router as the upload makes it (bf16 [E, H] on the device). */
static bool kernels_take(const void *x, const moe_weights *w, const void *out) {
    const gale_tensor *r = w->router;
    return moe_shape_supported(w->n_experts, w->top_k, w->hidden, w->intermediate) &&
           (w->act == GALE_ACT_SILU || w->act == GALE_ACT_GELU_TANH) && aligned16(x) && aligned16(out) &&
           r && r->dtype == GALE_BF16 && r->n_dims == 2 && r->shape[0] == w->n_experts && r->shape[1] == w->hidden;
}

static gale_status check_expert(const gale_tensor *t, int64_t rows, int64_t cols, const char *which, int e) {
    if (t->dtype != GALE_BF16 || t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols || !t->data)
        return gale_error(GALE_ERR_SHAPE, "CUDA MoE: expert %d %s weight must be an uploaded bf16 [%lld, %lld] tensor",
                          e, which, (long long)rows, (long long)cols);
    if (!aligned16(t->data))
        return gale_error(GALE_ERR_SHAPE, "CUDA MoE: expert %d %s weight is not 16-byte aligned", e, which);
    return GALE_OK;
}

/* t->host filled from w (shapes checked) and copied to t->device on the stream: ordered
 * before the kernels that read it; the host array lives as long as the table. */
static gale_status fill_table(cuda_state *st, layer_table *t, const moe_weights *w) {
    const int E = w->n_experts, H = w->hidden, I = w->intermediate;
    for (int e = 0; e < E; e++) {
        GALE_TRY(check_expert(&w->gate[e], I, H, "gate", e));
        GALE_TRY(check_expert(&w->up[e], I, H, "up", e));
        GALE_TRY(check_expert(&w->down[e], H, I, "down", e));
        t->host[e] = w->gate[e].data;
        t->host[E + e] = w->up[e].data;
        t->host[2 * E + e] = w->down[e].data;
    }
    CUDA_CALL(cudaMemcpyAsync((void *)t->device, (const void *)t->host, (size_t)3 * E * sizeof *t->host,
                              cudaMemcpyHostToDevice, st->stream),
              "MoE expert pointer table upload");
    return GALE_OK;
}

static bool table_current(const layer_table *t, const moe_weights *w) {
    const int E = w->n_experts;
    if (t->n_experts != E) return false;
    for (int e = 0; e < E; e++)
        if (t->host[e] != w->gate[e].data || t->host[E + e] != w->up[e].data || t->host[2 * E + e] != w->down[e].data)
            return false;
    return true;
}

static void table_free(layer_table *t) {
    free(t->host);
    if (t->device) cuda_note_freed(); /* a recorded graph may hold the table's address */
    cudaFree(t->device);
    memset(t, 0, sizeof *t);
}

/* The layer's device pointer table: found by its gate tensor array, refreshed when its
 * weights moved (a reload at the same address), created on first use. */
static gale_status layer_pointers(cuda_state *st, const moe_weights *w, const layer_table **out) {
    cuda_moe_state *m = st->moe;
    layer_table *t = NULL;
    for (int i = 0; i < m->n_tables && !t; i++)
        if (m->tables[i].key == w->gate) t = &m->tables[i];
    if (t && table_current(t, w)) {
        *out = t;
        return GALE_OK;
    }
    if (t)
        table_free(t);
    else {
        if (m->n_tables == m->cap_tables) {
            int cap = m->cap_tables ? 2 * m->cap_tables : 32;
            layer_table *grown = realloc(m->tables, (size_t)cap * sizeof *grown);
            if (!grown) return gale_error(GALE_ERR_OOM, "CUDA MoE: out of memory for %d layer tables", cap);
            m->tables = grown;
            m->cap_tables = cap;
        }
        t = &m->tables[m->n_tables++];
        memset(t, 0, sizeof *t);
    }
    t->key = w->gate;
    gale_status status = GALE_OK;
    t->host = calloc((size_t)3 * w->n_experts, sizeof *t->host);
    if (!t->host) status = gale_error(GALE_ERR_OOM, "CUDA MoE: out of memory for a pointer table");
    if (status == GALE_OK) {
        cudaError_t err = cudaMalloc((void **)&t->device, (size_t)3 * w->n_experts * sizeof *t->device);
        if (err != cudaSuccess) t->device = NULL; /* not freed by table_free: nothing was allocated */
        status = err == cudaSuccess ? fill_table(st, t, w) : cuda_fail(err, "MoE expert pointer table");
    }
    if (status != GALE_OK) {
        table_free(t); /* kept under its key with no experts: the next call rebuilds it */
        t->key = w->gate;
        return status;
    }
    t->n_experts = w->n_experts;
    *out = t;
    return GALE_OK;
}

gale_status cuda_moe(backend *b, const void *x, int n, const int32_t *seq_of, const moe_weights *w, void *out) {
    cuda_state *st = cuda_backend_state(b);
    if (!st->moe && !(st->moe = calloc(1, sizeof *st->moe))) return gale_error(GALE_ERR_OOM, "CUDA MoE: out of memory");
    cuda_moe_state *m = st->moe;
    if (n < 0) return gale_error(GALE_ERR_INVALID_ARG, "CUDA MoE: %d tokens", n);
    if (!w || !w->router || !w->gate || !w->up || !w->down || w->n_experts < 1)
        return gale_error(GALE_ERR_INVALID_ARG, "CUDA MoE: missing expert weights");
    if (n == 0) return GALE_OK;
    GALE_TRY(cuda_take_deferred(st)); /* an earlier void op's failure is reported here, as by matmul */
    if (!kernels_take(x, w, out)) return backend_moe(b, x, n, w, &m->generic, out);

    const layer_table *t = NULL;
    GALE_TRY(layer_pointers(st, w, &t));
    const int E = w->n_experts;
    GALE_TRY(cuda_grow_buffer((void **)&m->logits, &m->logits_cap, (size_t)n * E * sizeof(float)));
    const size_t need = moe_workspace_bytes(n, E, w->top_k, w->hidden, w->intermediate);
    GALE_TRY(cuda_grow_buffer(&m->workspace, &m->workspace_cap, need));
    GALE_TRY(cuda_gemm_rows(st, x, n, w->router->data, E, w->hidden, m->logits, CUDA_R_32F)); /* router logits [n, E] */
    const moe_experts ex = {.n_experts = E,
                            .top_k = w->top_k,
                            .hidden = w->hidden,
                            .intermediate = w->intermediate,
                            .act = w->act,
                            .gate = t->device,
                            .up = t->device + E,
                            .down = t->device + 2 * E};
    return kernel_moe_bf16(m->logits, seq_of, x, n, &ex, moe_choose_path(n), m->workspace, m->workspace_cap, out,
                           st->stream);
}

void cuda_moe_free(backend *b) {
    cuda_state *st = cuda_backend_state(b);
    cuda_moe_state *m = st->moe;
    if (!m) return;
    backend_moe_free(b, &m->generic);
    cudaFree(m->logits);
    cudaFree(m->workspace);
    for (int i = 0; i < m->n_tables; i++) table_free(&m->tables[i]);
    free(m->tables);
    free(m);
    st->moe = NULL;
}
