/* The MoE layer on the GPU (kernels/moe.cu, src/backend/cuda/cuda_moe.c) against the CPU
 * MoE (backend_moe on the CPU backend, fp32, with weights equal to the bf16 ones widened).
 *
 * GPU tests (skip themselves without a GPU):
 * - gate: ids exactly the CPU rule's (softmax, top-k, first index on ties) on logits whose
 *   ranks are ≥ 0.17 apart and on logits with exact ties; weights within 1e-6; NaN logits
 *   still give distinct experts in range. E = 1 … 64, K = 1 … 8, 1 … 513 tokens. With
 *   padding rows (seq_of < 0, every third row after the first), those rows are routed
 *   exactly as token 0 is.
 * - dispatch: offsets, each slot's row, each row's token, the tile map and the active list
 *   exactly those of a host counting sort, for random routings and for routings where one
 *   expert takes every token and others none, up to 4104 slots (several 1024-slot chunks).
 * - the layer: the op (cuda_moe, cuBLAS router) and each expert path forced (kernel_moe_bf16
 *   on the CPU's own logits) against the CPU for E=8 k=2 (H 576, I 1536), E=4 k=1
 *   (H 640, I 1000), E=16 k=4 (H 200, I 104), E=6 k=3 with tanh-GELU (H 136, I 328),
 *   E=64 k=8 (H 96, I 72): every tail of the 64 × 64 × 32 GEMM tiles is crossed; batches
 *   1, 3, 64, 513; random routings and skewed ones (one router row biased up so one expert
 *   takes every token, some rows biased down so those experts get none). A layer the
 *   kernels do not take (H 36) goes through the generic fallback, checked the same way.
 *   Inputs are redrawn for a token whose K-th and (K+1)-th logits are within 0.02: the
 *   GPU's and the CPU's logits differ in the last bits, so a near-tie could flip the
 *   routing, which would be a legitimate difference, not an error.
 * - determinism: the op twice, bit-identical outputs (1, 64, 513 tokens).
 * - batch invariance, per path: a token alone and in a batch of 64 give the same bits
 *   through the same path (the kernels guarantee it: every sum over H or I runs in a fixed
 *   order whatever the row's place in a tile or pass). The op as a whole does not promise
 *   it: the cuBLAS router GEMM may change its last bits with the batch, and batches of at
 *   most 8 take the GEMV path, larger ones the grouped path.
 * Outputs and workspaces have guard values after them; NaN never passes.
 *
 * Host tests (no GPU needed, run wherever the build has CUDA): the GEMV/grouped rule, the
 * worst-case tile count (never exceeded by any split of the rows, reached by one), shape
 * limits and workspace sizes, and launchers refusing bad arguments before any launch.
 *
 * Tolerance of the layer, with u = 2^-9 (bf16's unit roundoff) and S = max |CPU output|:
 * the GPU rounds three times where the CPU keeps fp32 — (i) the gated activations [rows, I]
 * before the down projection, (ii) each expert's output [rows, H], (iii) the final output.
 * (iii) is ≤ u·S. (ii) is ≤ u·Σₖ wₖ|yₖ| ≤ u·max|yₖ|, and an expert's output can exceed the
 * mixture's (independent experts averaged with weights summing to 1: for k = 4 about 2×),
 * so ≤ 2u·S. (i) is a sum over I of independent rounding errors of random sign, each ≤ u
 * relative: a standard deviation of (u/√3)·|typical y| ≈ 0.26u·S, and ≈ 1.3u·S at the
 * largest of ~10⁵–10⁶ elements (4.8σ). Summation order (fp32, tensor cores) and the
 * routing weights (≤ 1e-6) add < 0.01u. Total ≈ 4.3u·S; the test allows 8u·S = 2^-6·S
 * element-wise. The same analysis gives an rms error ≈ u·rms(ref) (three roundings of
 * ≈ u/√3 each), so the normalised MSE Σ(gpu−cpu)²/Σcpu² must stay ≤ (4u)² ≈ 6.1e-5 — a
 * check that catches a dropped K tail or a misplaced weight (errors of ≥ 10% rms) even
 * where the element-wise bound would be loose. A host simulation of these roundings on
 * this file's shapes and input distributions gave at most 3.1u·S and 1.8u rms.
 *
 * The generic fallback (backend_moe over the CUDA ops) rounds more: the router logits to
 * bf16 (weights off by up to w(1−w)·|Δlogit| ≈ u, the same for a whole row of a token) and
 * gate and up before the activation. The same simulation gave up to 4.5u·S and 3.4u rms,
 * so that test allows 16u·S = 2^-5·S and a normalised MSE of (8u)². */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cuda_test_support.h"
#include "test_support.h"

#ifdef GALE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "kernels.h"
#endif

/* Host tests need the build's CUDA code (moe.cu's host functions), not a GPU. */
static void require_cuda_build(void) {
#ifndef GALE_HAVE_CUDA
    require_cuda(); /* skips, naming the build */
#endif
}

#ifdef GALE_HAVE_CUDA

#define LAYER_TOL 0x1p-6     /* 8u of max |ref|: the header comment */
#define LAYER_NMSE 0x1p-14   /* (4u)² */
#define GENERIC_TOL 0x1p-5   /* the fallback's own bound: the header comment */
#define GENERIC_NMSE 0x1p-12 /* (8u)² */
#define GUARD_BYTES 64
#define GUARD_BYTE 0xA5

/* ---- helpers ---- */

/* A device buffer of bytes followed by GUARD_BYTES guard bytes, all set to GUARD_BYTE. */
static void *guarded_device(size_t bytes) {
    void *d = NULL;
    CUDA_ASSERT(cudaMalloc(&d, bytes + GUARD_BYTES));
    CUDA_ASSERT(cudaMemset(d, GUARD_BYTE, bytes + GUARD_BYTES));
    return d;
}

/* Synchronises, copies the buffer back (free()), checks the guard and frees the device copy. */
static void *download_guarded(void *d, size_t bytes, const char *what) {
    unsigned char *h = malloc(bytes + GUARD_BYTES);
    cr_assert(h, "out of memory");
    CUDA_ASSERT(cudaDeviceSynchronize());
    CUDA_ASSERT(cudaMemcpy(h, d, bytes + GUARD_BYTES, cudaMemcpyDeviceToHost));
    for (size_t i = bytes; i < bytes + GUARD_BYTES; i++)
        cr_assert_eq(h[i], GUARD_BYTE, "%s: guard byte %zu overwritten", what, i - bytes);
    CUDA_ASSERT(cudaFree(d));
    return h;
}

static int32_t *device_ints(const int32_t *host, size_t count) { return to_device(host, count * sizeof *host); }

/* ---- gate ---- */

enum { LOGITS_SPACED, LOGITS_TIED, LOGITS_NAN };

static void fill_logits(float *logits, int n, int E, int kind) {
    for (int t = 0; t < n; t++) {
        float *row = logits + (size_t)t * E;
        int rank[MOE_MAX_EXPERTS];
        for (int e = 0; e < E; e++) rank[e] = e;
        for (int e = E - 1; e > 0; e--) { /* a random permutation of the ranks */
            int j = (int)(uniform(0, 1) * (float)(e + 1)) % (e + 1), tmp = rank[e];
            rank[e] = rank[j], rank[j] = tmp;
        }
        for (int e = 0; e < E; e++) {
            if (kind == LOGITS_SPACED)
                row[e] = 0.37f * (float)rank[e] - 6.0f + uniform(-0.1f, 0.1f);
            else
                row[e] = (float)((e * 5 + t) % 3) - 1.0f; /* only three values: exact ties */
        }
        if (kind == LOGITS_TIED && t % 4 == 0)
            for (int e = 0; e < E; e++) row[e] = 0.25f; /* all equal: the first K, 1/K each */
        if (kind == LOGITS_NAN) row[t % E] = NAN;
    }
}

/* padded: rows 2, 5, 8 … are padding (seq_of −1), to be routed as token 0 */
static void check_gate(int E, int K, int n, int kind, bool padded) {
    const size_t slots = (size_t)n * K;
    float *logits = malloc((size_t)n * E * sizeof *logits);
    int32_t *seq_of = calloc((size_t)n, sizeof *seq_of);
    fill_logits(logits, n, E, kind);
    for (int t = 0; t < n; t++) seq_of[t] = padded && t % 3 == 2 ? -1 : t;
    float *d_logits = to_device(logits, (size_t)n * E * sizeof *logits);
    int32_t *d_seq_of = to_device(seq_of, (size_t)n * sizeof *seq_of);
    int32_t *d_expert = guarded_device(slots * sizeof(int32_t));
    float *d_weight = guarded_device(slots * sizeof(float));
    cr_assert_eq(kernel_moe_gate(d_logits, padded ? d_seq_of : NULL, n, E, K, d_expert, d_weight, NULL), GALE_OK, "%s",
                 gale_last_error());
    int32_t *expert = download_guarded(d_expert, slots * sizeof(int32_t), "gate experts");
    float *weight = download_guarded(d_weight, slots * sizeof(float), "gate weights");
    for (int t = 0; t < n; t++) {
        int32_t chosen[MOE_MAX_TOP_K];
        float w[MOE_MAX_TOP_K];
        const int routed_as = seq_of[t] < 0 ? 0 : t;
        backend_moe_route(logits + (size_t)routed_as * E, E, K, chosen, w);
        for (int k = 0; k < K; k++) {
            const int32_t got = expert[(size_t)t * K + k];
            if (kind == LOGITS_NAN) { /* only: in range and distinct */
                cr_assert(got >= 0 && got < E, "E=%d k=%d: token %d choice %d is expert %d", E, K, t, k, got);
                for (int j = 0; j < k; j++)
                    cr_assert_neq(expert[(size_t)t * K + j], got, "E=%d k=%d: token %d picks %d twice", E, K, t, got);
                continue;
            }
            cr_assert_eq(got, chosen[k], "E=%d k=%d n=%d: token %d (routed as %d) choice %d is expert %d, the CPU's %d",
                         E, K, n, t, routed_as, k, got, chosen[k]);
            const float gw = weight[(size_t)t * K + k];
            cr_assert(fabsf(gw - w[k]) <= 1e-6f, "E=%d k=%d: token %d weight %d is %.9g, the CPU's %.9g", E, K, t, k,
                      (double)gw, (double)w[k]);
        }
    }
    CUDA_ASSERT(cudaFree(d_logits));
    CUDA_ASSERT(cudaFree(d_seq_of));
    free(logits), free(seq_of), free(expert), free(weight);
}

/* ---- dispatch ---- */

/* K distinct experts for each token. skewed: expert E−1 first for every token, the others
 * from the K experts just below it, so experts 0 … E−K−2 get nothing. */
static void choose_experts(int E, int K, int n, bool skewed, int32_t *expert) {
    for (int t = 0; t < n; t++) {
        int32_t pool[MOE_MAX_EXPERTS];
        int size = 0;
        if (skewed) {
            expert[(size_t)t * K] = E - 1;
            for (int e = E - 2; e >= 0 && size < K; e--) pool[size++] = e;
        } else {
            for (int e = 0; e < E; e++) pool[size++] = e;
        }
        for (int k = skewed ? 1 : 0; k < K; k++) { /* draw without replacement */
            int j = (int)(uniform(0, 1) * (float)size) % size;
            expert[(size_t)t * K + k] = pool[j];
            pool[j] = pool[--size];
        }
    }
}

static void check_dispatch(int E, int K, int n, bool skewed) {
    const int slots = n * K, tiles = moe_row_tiles(slots, E);
    int32_t *expert = malloc((size_t)slots * sizeof *expert);
    choose_experts(E, K, n, skewed, expert);
    /* the host counting sort (backend_moe's) and the tile map and active list it implies */
    int32_t offsets[MOE_MAX_EXPERTS + 1] = {0}, active[MOE_MAX_EXPERTS], start[MOE_MAX_EXPERTS + 1];
    int32_t *slot_row = malloc((size_t)slots * sizeof *slot_row),
            *row_token = malloc((size_t)slots * sizeof *row_token);
    int32_t *tile_expert = malloc(((size_t)tiles + 1) * sizeof *tile_expert),
            *tile_row = malloc(((size_t)tiles + 1) * sizeof *tile_row);
    for (int s = 0; s < slots; s++) offsets[expert[s] + 1]++;
    for (int e = 0; e < E; e++) offsets[e + 1] += offsets[e];
    memcpy(start, offsets, sizeof start);
    for (int s = 0; s < slots; s++) {
        slot_row[s] = start[expert[s]]++;
        row_token[slot_row[s]] = s / K;
    }
    int used = 0, n_active = 0;
    for (int e = 0; e < E; e++) {
        for (int first = offsets[e]; first < offsets[e + 1]; first += MOE_TILE_ROWS, used++) {
            cr_assert_lt(used, tiles, "more tiles than moe_row_tiles(%d, %d) = %d", slots, E, tiles);
            tile_expert[used] = e, tile_row[used] = first;
        }
        if (offsets[e + 1] > offsets[e]) active[n_active++] = e;
    }
    for (int j = used; j < tiles; j++) tile_expert[j] = -1, tile_row[j] = 0;
    for (int a = n_active; a < E; a++) active[a] = -1;

    moe_routing r = {.expert = device_ints(expert, (size_t)slots),
                     .offsets = guarded_device(((size_t)E + 1) * sizeof(int32_t)),
                     .slot_row = guarded_device((size_t)slots * sizeof(int32_t)),
                     .row_token = guarded_device((size_t)slots * sizeof(int32_t)),
                     .tile_expert = guarded_device((size_t)tiles * sizeof(int32_t)),
                     .tile_row = guarded_device((size_t)tiles * sizeof(int32_t)),
                     .active = guarded_device((size_t)E * sizeof(int32_t))};
    r.weight = (float *)r.expert; /* not read by the dispatch; any non-NULL pointer */
    cr_assert_eq(kernel_moe_dispatch(&r, n, E, K, NULL), GALE_OK, "%s", gale_last_error());
    struct {
        void *device;
        const int32_t *expect;
        size_t count;
        const char *what;
    } arrays[] = {{r.offsets, offsets, (size_t)E + 1, "offsets"},
                  {r.slot_row, slot_row, (size_t)slots, "slot_row"},
                  {r.row_token, row_token, (size_t)slots, "row_token"},
                  {r.tile_expert, tile_expert, (size_t)tiles, "tile_expert"},
                  {r.tile_row, tile_row, (size_t)tiles, "tile_row"},
                  {r.active, active, (size_t)E, "active"}};
    for (size_t a = 0; a < sizeof arrays / sizeof arrays[0]; a++) {
        int32_t *got = download_guarded(arrays[a].device, arrays[a].count * sizeof(int32_t), arrays[a].what);
        for (size_t i = 0; i < arrays[a].count; i++)
            cr_assert_eq(got[i], arrays[a].expect[i], "E=%d k=%d n=%d%s: %s[%zu] is %d, expected %d", E, K, n,
                         skewed ? " skewed" : "", arrays[a].what, i, got[i], arrays[a].expect[i]);
        free(got);
    }
    CUDA_ASSERT(cudaFree(r.expert));
    free(expert), free(slot_row), free(row_token), free(tile_expert), free(tile_row);
}

/* ---- the layer ---- */

typedef struct moe_case {
    int E, K, H, I;
    gale_activation act;
} moe_case;

static const moe_case cases[] = {
    {8, 2, 576, 1536, GALE_ACT_SILU},     {4, 1, 640, 1000, GALE_ACT_SILU}, {16, 4, 200, 104, GALE_ACT_SILU},
    {6, 3, 136, 328, GALE_ACT_GELU_TANH}, {64, 8, 96, 72, GALE_ACT_SILU},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

/* A layer's weights: bf16 bits, their fp32 widening (the CPU's weights), and device
 * copies (one allocation per expert matrix, as the runner uploads them). */
typedef struct layer {
    moe_case c;
    bool skewed;
    uint16_t *router, *gate, *up, *down;      /* [E, H], [E, I, H], [E, I, H], [E, H, I] */
    float *router_f, *gate_f, *up_f, *down_f; /* the same, widened */
    gale_tensor cpu_router, *cpu_gate, *cpu_up, *cpu_down;
    gale_tensor gpu_router, *gpu_gate, *gpu_up, *gpu_down;
    const void **table; /* device [3E]: gate, up, down data pointers */
} layer;

static gale_tensor tensor_2d(gale_dtype dtype, const void *data, int64_t rows, int64_t cols) {
    const uint64_t count = (uint64_t)(rows * cols);
    return (gale_tensor){.dtype = dtype,
                         .n_dims = 2,
                         .shape = {rows, cols},
                         .data = data,
                         .nbytes = count * (dtype == GALE_F32 ? 4u : 2u)};
}

/* Skewed: inputs are positive (x ∈ [0.05, 1], mean ≈ 0.525), so adding b/(0.525·H) to
 * every weight of a router row moves its logits by about b. */
static void skew_router(layer *l) {
    const int E = l->c.E, K = l->c.K, H = l->c.H, suppressed = (E - K) / 2;
    for (int e = 0; e < E; e++) {
        float bias = e == E - 1 ? 12.0f : e < suppressed ? -12.0f : 0.0f;
        if (bias == 0.0f) continue;
        for (int i = 0; i < H; i++) {
            size_t at = (size_t)e * H + i;
            l->router[at] = f32_to_bf16(l->router_f[at] + bias / (0.525f * (float)H));
            l->router_f[at] = bf16_to_f32(l->router[at]);
        }
    }
}

static layer make_layer(const moe_case *c, bool skewed) {
    layer l = {.c = *c, .skewed = skewed};
    const int E = c->E, H = c->H, I = c->I;
    const size_t mat = (size_t)I * H;
    const float r = 3.0f / sqrtf((float)H), gu = 1.5f * sqrtf(3.0f / (float)H), d = 1.5f * sqrtf(3.0f / (float)I);
    l.router = random_bf16((size_t)E * H, -r, r, &l.router_f); /* logits of standard deviation ≈ 1 */
    l.gate = random_bf16(E * mat, -gu, gu, &l.gate_f);         /* gate and up ≈ 0.9 */
    l.up = random_bf16(E * mat, -gu, gu, &l.up_f);
    l.down = random_bf16(E * mat, -d, d, &l.down_f);
    if (skewed) skew_router(&l);
    l.cpu_router = tensor_2d(GALE_F32, l.router_f, E, H);
    l.gpu_router = tensor_2d(GALE_BF16, to_device(l.router, (size_t)E * H * 2), E, H);
    l.cpu_gate = malloc((size_t)E * sizeof *l.cpu_gate), l.cpu_up = malloc((size_t)E * sizeof *l.cpu_up);
    l.cpu_down = malloc((size_t)E * sizeof *l.cpu_down), l.gpu_gate = malloc((size_t)E * sizeof *l.gpu_gate);
    l.gpu_up = malloc((size_t)E * sizeof *l.gpu_up), l.gpu_down = malloc((size_t)E * sizeof *l.gpu_down);
    const void **table = malloc((size_t)3 * E * sizeof *table);
    for (int e = 0; e < E; e++) {
        const size_t at = (size_t)e * mat;
        l.cpu_gate[e] = tensor_2d(GALE_F32, l.gate_f + at, I, H);
        l.cpu_up[e] = tensor_2d(GALE_F32, l.up_f + at, I, H);
        l.cpu_down[e] = tensor_2d(GALE_F32, l.down_f + at, H, I);
        l.gpu_gate[e] = tensor_2d(GALE_BF16, table[e] = to_device(l.gate + at, mat * 2), I, H);
        l.gpu_up[e] = tensor_2d(GALE_BF16, table[E + e] = to_device(l.up + at, mat * 2), I, H);
        l.gpu_down[e] = tensor_2d(GALE_BF16, table[2 * E + e] = to_device(l.down + at, mat * 2), H, I);
    }
    l.table = to_device(table, (size_t)3 * E * sizeof *table);
    free(table);
    return l;
}

static void free_layer(layer *l) {
    CUDA_ASSERT(cudaFree((void *)l->gpu_router.data));
    for (int e = 0; e < l->c.E; e++) {
        CUDA_ASSERT(cudaFree((void *)l->gpu_gate[e].data));
        CUDA_ASSERT(cudaFree((void *)l->gpu_up[e].data));
        CUDA_ASSERT(cudaFree((void *)l->gpu_down[e].data));
    }
    CUDA_ASSERT(cudaFree((void *)l->table));
    free(l->router), free(l->gate), free(l->up), free(l->down);
    free(l->router_f), free(l->gate_f), free(l->up_f), free(l->down_f);
    free(l->cpu_gate), free(l->cpu_up), free(l->cpu_down), free(l->gpu_gate), free(l->gpu_up), free(l->gpu_down);
}

static moe_weights weights_of(const layer *l, bool gpu) {
    return (moe_weights){.router = gpu ? &l->gpu_router : &l->cpu_router,
                         .gate = gpu ? l->gpu_gate : l->cpu_gate,
                         .up = gpu ? l->gpu_up : l->cpu_up,
                         .down = gpu ? l->gpu_down : l->cpu_down,
                         .n_experts = l->c.E,
                         .top_k = l->c.K,
                         .hidden = l->c.H,
                         .intermediate = l->c.I,
                         .act = l->c.act};
}

static moe_experts experts_of(const layer *l) {
    const int E = l->c.E;
    return (moe_experts){.n_experts = E,
                         .top_k = l->c.K,
                         .hidden = l->c.H,
                         .intermediate = l->c.I,
                         .act = l->c.act,
                         .gate = l->table,
                         .up = l->table + E,
                         .down = l->table + 2 * E};
}

/* The gap between a token's K-th and (K+1)-th logits, in double from the widened values. */
static double boundary_gap(const layer *l, const float *x) {
    const int E = l->c.E, K = l->c.K, H = l->c.H;
    if (K == E) return INFINITY;
    double logit[MOE_MAX_EXPERTS];
    for (int e = 0; e < E; e++) {
        logit[e] = 0;
        for (int i = 0; i < H; i++) logit[e] += (double)l->router_f[(size_t)e * H + i] * x[i];
    }
    for (int a = 0; a < K + 1; a++) /* partial selection sort: the K+1 largest first */
        for (int b = a + 1; b < E; b++)
            if (logit[b] > logit[a]) {
                double tmp = logit[a];
                logit[a] = logit[b], logit[b] = tmp;
            }
    return logit[K - 1] - logit[K];
}

/* x [n, H] as bf16 bits (free()) and widened in *widened, no token near a routing tie. */
static uint16_t *make_inputs(const layer *l, int n, float **widened) {
    const int H = l->c.H;
    const float lo = l->skewed ? 0.05f : -1.0f, hi = 1.0f;
    uint16_t *x = random_bf16((size_t)n * H, lo, hi, widened);
    for (int t = 0; t < n; t++) {
        uint16_t *row = x + (size_t)t * H;
        float *row_f = *widened + (size_t)t * H;
        int tries = 0;
        while (boundary_gap(l, row_f) < 0.02) {
            cr_assert_lt(++tries, 1000, "no routing without a near-tie for token %d", t);
            for (int i = 0; i < H; i++) row_f[i] = bf16_to_f32(row[i] = f32_to_bf16(uniform(lo, hi)));
        }
    }
    return x;
}

/* The CPU's output [n, H] (free()). */
static float *cpu_layer(const layer *l, const float *x, int n) {
    backend cb = cpu_reference_backend();
    moe_weights w = weights_of(l, false);
    moe_scratch scratch = {0};
    float *out = malloc((size_t)n * l->c.H * sizeof *out);
    cr_assert_eq(backend_moe(&cb, x, n, &w, &scratch, out), GALE_OK, "%s", gale_last_error());
    backend_moe_free(&cb, &scratch);
    thread_pool_destroy(cb.pool);
    return out;
}

/* The CPU's router logits [n, E] (free()): the same op backend_moe calls. */
static float *cpu_logits(const layer *l, const float *x, int n) {
    backend cb = cpu_reference_backend();
    float *logits = malloc((size_t)n * l->c.E * sizeof *logits);
    cr_assert_eq(cb.ops->matmul(&cb, x, n, &l->cpu_router, logits), GALE_OK, "%s", gale_last_error());
    thread_pool_destroy(cb.pool);
    return logits;
}

/* The op on the CUDA backend gb: out [n, H] widened (free()), guard checked. */
static float *gpu_op(backend *gb, const layer *l, const uint16_t *x, int n) {
    const size_t count = (size_t)n * l->c.H;
    uint16_t *d_x = guarded_device_bf16(count, x), *d_out = guarded_device_bf16(count, NULL);
    moe_weights w = weights_of(l, true);
    CUDA_ASSERT(cudaDeviceSynchronize()); /* the uploads land before the backend's own stream reads them */
    cr_assert_eq(gb->ops->moe(gb, d_x, n, NULL, &w, d_out), GALE_OK, "%s", gale_last_error());
    float *out = download_bf16(d_out, count, "moe out");
    float *x_back = download_bf16(d_x, count, "moe x"); /* x untouched, guard intact */
    for (size_t i = 0; i < count; i++) cr_assert_eq(x_back[i], bf16_to_f32(x[i]), "the op wrote into x at %zu", i);
    free(x_back);
    return out;
}

/* The kernels on a forced path with the given logits: out [n, H] widened (free()). */
static float *gpu_path(const layer *l, const uint16_t *x, const float *logits, int n, moe_path path) {
    const size_t count = (size_t)n * l->c.H;
    const moe_experts ex = experts_of(l);
    const size_t ws = moe_workspace_bytes(n, l->c.E, l->c.K, l->c.H, l->c.I);
    cr_assert_gt(ws, 0);
    float *d_logits = to_device(logits, (size_t)n * l->c.E * sizeof *logits);
    uint16_t *d_x = guarded_device_bf16(count, x), *d_out = guarded_device_bf16(count, NULL);
    void *d_ws = guarded_device(ws);
    cr_assert_eq(kernel_moe_bf16(d_logits, NULL, d_x, n, &ex, path, d_ws, ws, d_out, NULL), GALE_OK, "%s", gale_last_error());
    float *out = download_bf16(d_out, count, "moe out");
    free(download_guarded(d_ws, ws, "moe workspace"));
    CUDA_ASSERT(cudaFree(d_logits));
    CUDA_ASSERT(cudaFree(d_x));
    return out;
}

/* The bounds of the header comment: element-wise tol·max|ref| and normalised MSE ≤ nmse. */
static void assert_layer_close(const float *gpu, const float *ref, size_t count, double tol, double nmse,
                               const char *what) {
    const double worst = max_relative_error(gpu, ref, count);
    double err2 = 0, ref2 = 0;
    for (size_t i = 0; i < count; i++) {
        const double d = (double)gpu[i] - ref[i];
        err2 += d * d, ref2 += (double)ref[i] * ref[i];
    }
    cr_assert(worst <= tol, "%s: off by %.3g of max |ref| (allowed %.3g)", what, worst, tol);
    cr_assert(err2 <= nmse * ref2, "%s: normalised MSE %.3g (allowed %.3g)", what, err2 / ref2, nmse);
}

static const char *path_name(moe_path p) {
    return p == MOE_PATH_GEMV ? "GEMV" : p == MOE_PATH_GROUPED ? "grouped" : "auto";
}

/* One case at one batch: the op, and at small and middle batches each path forced. */
static void check_layer(backend *gb, const layer *l, int n) {
    const moe_case *c = &l->c;
    const bool kernels = moe_shape_supported(c->E, c->K, c->H, c->I);
    const double tol = kernels ? LAYER_TOL : GENERIC_TOL, nmse = kernels ? LAYER_NMSE : GENERIC_NMSE;
    float *x_f;
    uint16_t *x = make_inputs(l, n, &x_f);
    float *ref = cpu_layer(l, x_f, n);
    const size_t count = (size_t)n * c->H;
    char what[160];
    snprintf(what, sizeof what, "E=%d k=%d H=%d I=%d n=%d%s, the op%s", c->E, c->K, c->H, c->I, n,
             l->skewed ? " skewed" : "", kernels ? "" : " (generic fallback)");
    float *out = gpu_op(gb, l, x, n);
    assert_layer_close(out, ref, count, tol, nmse, what);
    free(out);
    if ((n == 3 || n == 64) && kernels) {
        float *logits = cpu_logits(l, x_f, n);
        const moe_path paths[] = {MOE_PATH_GEMV, MOE_PATH_GROUPED};
        for (int p = 0; p < 2; p++) {
            snprintf(what, sizeof what, "E=%d k=%d H=%d I=%d n=%d%s, %s path", c->E, c->K, c->H, c->I, n,
                     l->skewed ? " skewed" : "", path_name(paths[p]));
            out = gpu_path(l, x, logits, n, paths[p]);
            assert_layer_close(out, ref, count, tol, nmse, what);
            free(out);
        }
        free(logits);
    }
    free(x), free(x_f), free(ref);
}

static backend open_gpu(void) {
    backend gb = {0};
    cr_assert_eq(cuda_backend_open(&gb), GALE_OK, "%s", gale_last_error());
    return gb;
}

#endif /* GALE_HAVE_CUDA */

/* ---- host tests: no GPU needed ---- */

Test(moe_cuda_host, path_rule_is_a_function_of_the_batch) {
    require_cuda_build();
#ifdef GALE_HAVE_CUDA
    for (int n = 1; n <= MOE_GEMV_MAX_TOKENS; n++) cr_assert_eq(moe_choose_path(n), MOE_PATH_GEMV, "n=%d", n);
    const int larger[] = {MOE_GEMV_MAX_TOKENS + 1, 16, 64, 513, 1 << 20};
    for (int i = 0; i < 5; i++) cr_assert_eq(moe_choose_path(larger[i]), MOE_PATH_GROUPED, "n=%d", larger[i]);
#endif
}

Test(moe_cuda_host, row_tile_bound_holds_for_every_split_and_is_reached) {
    require_cuda_build();
#ifdef GALE_HAVE_CUDA
    const int experts[] = {1, 2, 4, 6, 8, 16, 64}, slot_counts[] = {0, 1, 2, 3, 63, 64, 65, 127, 128, 129, 1000, 4104};
    const int T = MOE_TILE_ROWS;
    for (int a = 0; a < 7; a++)
        for (int b = 0; b < 12; b++) {
            const int E = experts[a], slots = slot_counts[b], bound = moe_row_tiles(slots, E);
            int rows[MOE_MAX_EXPERTS];
            for (int trial = 0; trial < 300; trial++) { /* random splits, some very uneven */
                memset(rows, 0, sizeof rows);
                const int spread = trial % 3 == 0 ? 1 : E;
                for (int s = 0; s < slots; s++) rows[(int)(uniform(0, 1) * (float)spread) % spread]++;
                int tiles = 0;
                for (int e = 0; e < E; e++) tiles += (rows[e] + T - 1) / T;
                cr_assert_leq(tiles, bound, "E=%d slots=%d: a split needs %d tiles, bound %d", E, slots, tiles, bound);
            }
            /* the worst split: one row for each of a experts, then whole tiles */
            const int can = E < slots ? E : slots;
            memset(rows, 0, sizeof rows);
            for (int e = 0; e < can; e++) rows[e] = 1;
            rows[0] += slots - can;
            int tiles = 0;
            for (int e = 0; e < E; e++) tiles += (rows[e] + T - 1) / T;
            cr_assert_eq(tiles, bound, "E=%d slots=%d: the worst split needs %d tiles, bound %d", E, slots, tiles,
                         bound);
        }
#endif
}

Test(moe_cuda_host, shape_limits_and_workspace_sizes) {
    require_cuda_build();
#ifdef GALE_HAVE_CUDA
    cr_assert(moe_shape_supported(8, 2, 4096, 14336));
    cr_assert(moe_shape_supported(64, 8, 8, 8));
    cr_assert(moe_shape_supported(1, 1, 640, 1000));
    cr_assert(!moe_shape_supported(65, 2, 4096, 14336), "65 experts");
    cr_assert(!moe_shape_supported(16, 9, 4096, 14336), "9 per token");
    cr_assert(!moe_shape_supported(2, 3, 4096, 14336), "more per token than experts");
    cr_assert(!moe_shape_supported(8, 2, 36, 64), "H not a multiple of 8");
    cr_assert(!moe_shape_supported(8, 2, 64, 20), "I not a multiple of 8");
    cr_assert(!moe_shape_supported(8, 0, 64, 64), "no expert per token");
    cr_assert_eq(moe_workspace_bytes(4, 65, 2, 64, 64), 0);
    cr_assert_eq(moe_workspace_bytes(-1, 8, 2, 64, 64), 0);
    size_t last = 0;
    for (int n = 0; n <= 2048; n += 97) {
        const size_t bytes = moe_workspace_bytes(n, 8, 2, 4096, 14336);
        cr_assert_geq(bytes, last, "workspace shrinks at n=%d", n);
        cr_assert_geq(bytes, (size_t)n * 2 * (4096 + 14336) * 2, "n=%d: %zu bytes cannot hold the activations", n,
                      bytes);
        last = bytes;
    }
#endif
}

Test(moe_cuda_host, launchers_refuse_bad_arguments) {
    require_cuda_build();
#ifdef GALE_HAVE_CUDA
    /* every check runs before a launch: nothing here touches a GPU */
    float fake_logits[4] = {0};
    int32_t fake_ids[4] = {0};
    assert_error(kernel_moe_gate(fake_logits, NULL, 1, 65, 2, fake_ids, fake_logits, NULL), GALE_ERR_INVALID_ARG, "MoE gate");
    assert_error(kernel_moe_gate(fake_logits, NULL, 1, 4, 5, fake_ids, fake_logits, NULL), GALE_ERR_INVALID_ARG,
                 "5 per token");
    assert_error(kernel_moe_gate(NULL, NULL, 1, 4, 2, fake_ids, fake_logits, NULL), GALE_ERR_INVALID_ARG, "NULL");
    assert_error(kernel_moe_gate(fake_logits, NULL, -1, 4, 2, fake_ids, fake_logits, NULL), GALE_ERR_INVALID_ARG,
                 "-1 tokens");
    moe_routing empty = {0};
    assert_error(kernel_moe_dispatch(&empty, 3, 8, 2, NULL), GALE_ERR_INVALID_ARG, "MoE dispatch");
    const void *table[24] = {0};
    moe_experts ex = {.n_experts = 8,
                      .top_k = 2,
                      .hidden = 36,
                      .intermediate = 64,
                      .act = GALE_ACT_SILU,
                      .gate = table,
                      .up = table + 8,
                      .down = table + 16};
    assert_error(kernel_moe_bf16(fake_logits, NULL, table, 1, &ex, MOE_PATH_AUTO, table, sizeof table, table, NULL),
                 GALE_ERR_INVALID_ARG, "hidden 36");
    ex.hidden = 64;
    assert_error(kernel_moe_bf16(fake_logits, NULL, table, 1, &ex, MOE_PATH_AUTO, table, sizeof table, table, NULL),
                 GALE_ERR_INVALID_ARG, "workspace");
    ex.act = (gale_activation)7;
    assert_error(kernel_moe_bf16(fake_logits, NULL, table, 1, &ex, MOE_PATH_AUTO, table, sizeof table, table, NULL),
                 GALE_ERR_INVALID_ARG, "activation 7");
    ex.act = GALE_ACT_SILU;
    assert_error(kernel_moe_experts_bf16(&empty, table, 1, &ex, (moe_path)9, table, table, NULL), GALE_ERR_INVALID_ARG,
                 "path 9");
    assert_error(kernel_moe_combine_bf16(&empty, table, 1, 2, 12, table, NULL), GALE_ERR_INVALID_ARG, "hidden 12");
    cr_assert_eq(kernel_moe_bf16(NULL, NULL, NULL, 0, &ex, MOE_PATH_AUTO, NULL, 0, NULL, NULL), GALE_OK,
                 "no tokens: no work");
#endif
}

/* ---- GPU tests ---- */

Test(moe_cuda, gate_matches_cpu_routing) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    const int shapes[][2] = {{8, 2}, {4, 1}, {16, 4}, {6, 3}, {64, 8}, {33, 5}, {1, 1}, {2, 2}, {64, 1}, {40, 7}};
    const int batches[] = {1, 3, 64, 513};
    for (int s = 0; s < 10; s++)
        for (int b = 0; b < 4; b++) {
            check_gate(shapes[s][0], shapes[s][1], batches[b], LOGITS_SPACED, false);
            check_gate(shapes[s][0], shapes[s][1], batches[b], LOGITS_TIED, false);
            check_gate(shapes[s][0], shapes[s][1], batches[b], LOGITS_NAN, false);
            check_gate(shapes[s][0], shapes[s][1], batches[b], LOGITS_SPACED, true);
        }
#endif
}

Test(moe_cuda, dispatch_matches_host_counting_sort) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    const int shapes[][3] = {{8, 2, 1},  {8, 2, 3},    {8, 2, 64}, {8, 2, 513}, {4, 1, 513},  {16, 4, 513},
                             {6, 3, 64}, {64, 8, 513}, {64, 8, 1}, {1, 1, 5},   {8, 2, 2000}, {2, 2, 700}};
    for (int s = 0; s < 12; s++) {
        check_dispatch(shapes[s][0], shapes[s][1], shapes[s][2], false);
        check_dispatch(shapes[s][0], shapes[s][1], shapes[s][2], true);
    }
#endif
}

ParameterizedTestParameters(moe_cuda, layer_matches_cpu) { return index_params(5); }
ParameterizedTest(size_t *index, moe_cuda, layer_matches_cpu) {
    (void)index; /* unused in builds without CUDA */
    require_cuda();
#ifdef GALE_HAVE_CUDA
    cr_assert_eq((int)N_CASES, 5, "the parameter count above");
    backend gb = open_gpu();
    const int batches[] = {1, 3, 64, 513};
    for (int skewed = 0; skewed < 2; skewed++) {
        layer l = make_layer(&cases[*index], skewed);
        for (int b = 0; b < 4; b++) check_layer(&gb, &l, batches[b]);
        free_layer(&l);
    }
    cuda_backend_close(&gb);
#endif
}

Test(moe_cuda, layer_beyond_the_kernels_falls_back_to_the_generic_routine) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    backend gb = open_gpu();
    const moe_case c = {4, 2, 36, 20, GALE_ACT_SILU}; /* H and I not multiples of 8 */
    layer l = make_layer(&c, false);
    check_layer(&gb, &l, 3);
    free_layer(&l);
    cuda_backend_close(&gb);
#endif
}

Test(moe_cuda, op_is_deterministic) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    backend gb = open_gpu();
    layer l = make_layer(&cases[0], false);
    const int batches[] = {1, 64, 513};
    for (int b = 0; b < 3; b++) {
        const int n = batches[b];
        float *x_f;
        uint16_t *x = make_inputs(&l, n, &x_f);
        float *first = gpu_op(&gb, &l, x, n), *second = gpu_op(&gb, &l, x, n);
        cr_assert(memcmp(first, second, (size_t)n * l.c.H * sizeof *first) == 0, "n=%d: two runs differ", n);
        free(first), free(second), free(x), free(x_f);
    }
    free_layer(&l);
    cuda_backend_close(&gb);
#endif
}

Test(moe_cuda, each_path_is_batch_invariant) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    const moe_case *cs[] = {&cases[0], &cases[1]};
    for (int ci = 0; ci < 2; ci++) {
        layer l = make_layer(cs[ci], false);
        const int n = 64, H = l.c.H, E = l.c.E;
        float *x_f;
        uint16_t *x = make_inputs(&l, n, &x_f);
        float *logits = cpu_logits(&l, x_f, n);
        const moe_path paths[] = {MOE_PATH_GEMV, MOE_PATH_GROUPED};
        for (int p = 0; p < 2; p++) {
            float *batch = gpu_path(&l, x, logits, n, paths[p]);
            const int tokens[] = {0, 17, 63};
            for (int i = 0; i < 3; i++) {
                const int t = tokens[i];
                float *alone = gpu_path(&l, x + (size_t)t * H, logits + (size_t)t * E, 1, paths[p]);
                cr_assert(memcmp(alone, batch + (size_t)t * H, (size_t)H * sizeof *alone) == 0,
                          "E=%d k=%d, %s path: token %d differs alone and in a batch of %d", l.c.E, l.c.K,
                          path_name(paths[p]), t, n);
                free(alone);
            }
            free(batch);
        }
        free(logits), free(x), free(x_f);
        free_layer(&l);
    }
#endif
}
