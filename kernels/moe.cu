/* Mixtral's mixture-of-experts layer (REFERENCE.md §1) after the router GEMM, in four
 * steps that never wait for the host (moe_kernels.h has the API and the words). CPU
 * reference: backend_moe in src/backend/mlp.c, whose routing, row order and combine
 * order are reproduced exactly; only the GEMMs' summation order and the bf16 roundings
 * of the intermediate activations and expert outputs differ.
 *
 * 1. Gate: one warp per token, lane l holding experts l and l+32 (E ≤ 64). Maximum and
 *    the exponentials' sum (summed in expert order, like the CPU) by shuffles; then K
 *    rounds of a warp argmax under the order "higher probability, then lower index" — a
 *    strict total order, so every lane agrees on the winner — with the winner struck out.
 * 2. Dispatch: a counting sort of the n·K slots in one block of 1024 threads: shared
 *    counters give offsets, then the slots are ranked chunk by chunk (1024 at a time):
 *    within a warp by __match_any_sync (lanes below with the same expert), across warps
 *    by a per-expert scan of the warps' counts, across chunks by a running row per
 *    expert. So a slot's row is offsets[e] + the number of earlier slots of expert e: the
 *    CPU's stable counting sort. The same block writes the tile map of the grouped path
 *    (expert and first row of each MOE_TILE_ROWS-row tile, −1 past the last) and the
 *    list of experts with rows for the GEMV path.
 * 3. Experts, two paths of the same arithmetic (fp32 sums of bf16 products, the gated
 *    activation on the fp32 gate and up, one rounding to bf16 per stored value):
 *    - grouped: a GEMM over the tile map, blockIdx.x a row tile, blockIdx.y a 64-column
 *      tile, 128 threads as 2×2 warps of 32×32, mma.sync m16n8k16 (bf16 in, fp32
 *      accumulate) with fragments read from shared memory by plain 32-bit loads (rows
 *      padded to 40 values: conflict-free), a 3-stage cp.async pipeline over 32-wide k
 *      steps, zero-fill past the rows of the expert and past K. The gate/up pass computes
 *      both projections from the same x tile (two accumulators, 45 KiB of shared memory)
 *      and applies the activation in its epilogue; x rows are gathered through
 *      row_token as they are loaded, so x is never copied.
 *    - GEMV: blockIdx.y an entry of the active list, each warp one output column: the
 *      lanes stream the weight row in 16-byte vectors (4 in flight per matrix) and apply
 *      each to the expert's rows, at most 8 at a time, then a shuffle reduction. Every
 *      weight byte of a selected expert is read once: bandwidth-bound at batch 1.
 * 4. Combine: each thread 8 hidden values of one token, its K expert rows summed in
 *    top-k order in fp32 (y += w·e, as the CPU's scale_add), one rounding.
 *
 * Determinism: no atomics on floats (the dispatch's integer atomics only count), fixed
 * reduction orders — the same input gives the same bits. Batch invariance: a token's
 * result does not depend on the other tokens within one path (every sum over H or I runs
 * in a fixed order whatever the row's position in its tile or chunk); the GEMV and the
 * grouped path differ in the last bits. */
#include <math.h>

#include "common.cuh"
#include "kernels.h"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "kernels/moe.cu needs sm_80 or newer (cp.async and bf16 mma.sync)"
#endif

namespace {

constexpr unsigned FULL_MASK = 0xffffffffu;

constexpr int GATE_WARPS = 8; /* tokens per block of the gate */
constexpr int DISPATCH_THREADS = 1024;
constexpr int DISPATCH_WARPS = DISPATCH_THREADS / 32;

/* grouped GEMM tile: TILE_M rows × TILE_N columns, k steps of TILE_K */
constexpr int TILE_M = MOE_TILE_ROWS;
constexpr int TILE_N = 64;
constexpr int TILE_K = 32;
constexpr int TILE_KP = TILE_K + 8; /* padded row: 80 bytes, fragment loads hit 32 distinct banks */
constexpr int STAGES = 3;
constexpr int GEMM_THREADS = 128;                             /* 4 warps, 2 × 2 over the tile, 32 × 32 each */
constexpr int CHUNKS_PER_ROW = TILE_K / 8;                    /* 16-byte chunks of a tile row */
constexpr int LOADS = TILE_M * CHUNKS_PER_ROW / GEMM_THREADS; /* chunks per thread per tile */
static_assert(TILE_M == TILE_N, "the loader walks A and B tiles of the same shape");
static_assert(TILE_M * CHUNKS_PER_ROW % GEMM_THREADS == 0, "whole chunks per thread");

constexpr int GEMV_WARPS = 8;                  /* output columns per block */
constexpr int GEMV_ROWS = MOE_GEMV_MAX_TOKENS; /* rows per pass over a weight row */
constexpr int GEMV_UNROLL = 4;                 /* 16-byte weight vectors in flight per lane and matrix */

constexpr int COMBINE_THREADS = GALE_BLOCK_THREADS;

/* ---- shared device helpers ---- */

/* act(g)·u in fp32, operation by operation the expressions of activation.cu (and of
 * cpu_gated_activation) */
__device__ __forceinline__ float gated(float g, float u, int gelu) {
    if (!gelu) return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, g), g), g);
    float t = tanhf(__fmul_rn(c, __fadd_rn(g, cube)));
    return __fmul_rn(__fmul_rn(__fmul_rn(0.5f, g), __fadd_rn(1.0f, t)), u);
}

__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    return (uint32_t)dev_f32_to_bf16(lo) | ((uint32_t)dev_f32_to_bf16(hi) << 16);
}

/* ---- 1. gate ---- */

/* (p, e) comes before (q, f): higher probability first, the lower index on ties — the
 * CPU's selection. A strict total order on distinct indices. */
__device__ __forceinline__ bool ranks_above(float p, int e, float q, int f) { return p > q || (p == q && e < f); }

__global__ void __launch_bounds__(GATE_WARPS * 32)
    moe_gate_kernel(const float *__restrict__ logits, const int32_t *__restrict__ seq_of, int n, int E, int K,
                    int32_t *__restrict__ expert, float *__restrict__ weight) {
    const int lane = threadIdx.x & 31;
    const int t = blockIdx.x * GATE_WARPS + (int)threadIdx.x / 32;
    if (t >= n) return; /* a whole warp: no block-wide barrier follows */
    /* a padding row takes token 0's experts: they are read for token 0 anyway */
    const int routed_as = seq_of && seq_of[t] < 0 ? 0 : t;
    const float *row = logits + (size_t)routed_as * E;
    const int e0 = lane, e1 = lane + 32;
    const float l0 = e0 < E ? row[e0] : -INFINITY, l1 = e1 < E ? row[e1] : -INFINITY;
    float max = fmaxf(l0, l1);
    for (int offset = 16; offset > 0; offset >>= 1) max = fmaxf(max, __shfl_xor_sync(FULL_MASK, max, offset));
    const float x0 = e0 < E ? expf(l0 - max) : 0.0f, x1 = e1 < E ? expf(l1 - max) : 0.0f;
    /* summed in expert order, as the CPU does, so the probabilities differ from its only
     * by expf's last bits */
    float sum = 0.0f;
    for (int e = 0; e < E; e++) sum += __shfl_sync(FULL_MASK, e < 32 ? x0 : x1, e & 31);
    /* −1 marks "never": no expert here, or already chosen; a NaN probability sorts
     * below every real one (−0.5) so the chosen experts stay in range */
    float p0 = -1.0f, p1 = -1.0f;
    if (e0 < E) p0 = x0 / sum >= 0.0f ? x0 / sum : -0.5f;
    if (e1 < E) p1 = x1 / sum >= 0.0f ? x1 / sum : -0.5f;
    float chosen_p[MOE_MAX_TOP_K], kept = 0.0f;
    int chosen_e[MOE_MAX_TOP_K];
#pragma unroll
    for (int k = 0; k < MOE_MAX_TOP_K; k++) {
        if (k < K) { /* K is the same in every lane */
            float best_p = p0;
            int best_e = e0;
            if (ranks_above(p1, e1, p0, e0)) best_p = p1, best_e = e1;
            for (int offset = 16; offset > 0; offset >>= 1) {
                const float other_p = __shfl_xor_sync(FULL_MASK, best_p, offset);
                const int other_e = __shfl_xor_sync(FULL_MASK, best_e, offset);
                if (ranks_above(other_p, other_e, best_p, best_e)) best_p = other_p, best_e = other_e;
            }
            chosen_p[k] = best_p;
            chosen_e[k] = best_e;
            kept += best_p; /* in top-k order, as the CPU */
            if (best_e == e0) p0 = -1.0f;
            if (best_e == e1) p1 = -1.0f;
        }
    }
    if (lane == 0) {
#pragma unroll
        for (int k = 0; k < MOE_MAX_TOP_K; k++)
            if (k < K) {
                expert[(size_t)t * K + k] = chosen_e[k];
                weight[(size_t)t * K + k] = chosen_p[k] / kept;
            }
    }
}

/* ---- 2. dispatch ---- */

__global__ void __launch_bounds__(DISPATCH_THREADS)
    moe_dispatch_kernel(moe_routing r, int slots, int K, int E, int tiles) {
    __shared__ int count[MOE_MAX_EXPERTS];
    __shared__ int next_row[MOE_MAX_EXPERTS]; /* row of the expert's next slot, chunk by chunk */
    __shared__ int warp_count[DISPATCH_WARPS][MOE_MAX_EXPERTS];
    __shared__ int used_tiles;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid / 32;

    if (tid < E) count[tid] = 0;
    __syncthreads();
    for (int s = tid; s < slots; s += DISPATCH_THREADS) atomicAdd(&count[r.expert[s]], 1);
    __syncthreads();
    if (tid == 0) { /* E ≤ 64 experts and a few tiles each: one thread is quickest */
        int row = 0, tile = 0, n_active = 0;
        for (int e = 0; e < E; e++) {
            r.offsets[e] = row;
            next_row[e] = row;
            for (int first = 0; first < count[e]; first += TILE_M, tile++)
                if (tile < tiles) { /* always true by moe_row_tiles' bound; guards memory */
                    r.tile_expert[tile] = e;
                    r.tile_row[tile] = row + first;
                }
            if (count[e] > 0) r.active[n_active++] = e;
            row += count[e];
        }
        r.offsets[E] = row;
        for (int a = n_active; a < E; a++) r.active[a] = -1;
        used_tiles = tile < tiles ? tile : tiles;
    }
    __syncthreads();
    for (int j = used_tiles + tid; j < tiles; j += DISPATCH_THREADS) {
        r.tile_expert[j] = -1;
        r.tile_row[j] = 0;
    }

    const unsigned lanes_below = (1u << lane) - 1u;
    for (int base = 0; base < slots; base += DISPATCH_THREADS) { /* the same trip count in every thread */
        const int s = base + tid;
        const int e = s < slots ? r.expert[s] : -1;
        for (int i = tid; i < DISPATCH_WARPS * MOE_MAX_EXPERTS; i += DISPATCH_THREADS) (&warp_count[0][0])[i] = 0;
        __syncthreads();
        const unsigned peers = __match_any_sync(FULL_MASK, e); /* lanes of this warp with the same expert */
        const int rank = __popc(peers & lanes_below);
        if (e >= 0 && rank == 0) warp_count[warp][e] = __popc(peers);
        __syncthreads();
        int chunk_total = 0;
        if (tid < E) /* exclusive scan of expert tid's count over the warps */
            for (int w = 0; w < DISPATCH_WARPS; w++) {
                const int c = warp_count[w][tid];
                warp_count[w][tid] = chunk_total;
                chunk_total += c;
            }
        __syncthreads();
        if (e >= 0) {
            const int row = next_row[e] + warp_count[warp][e] + rank;
            r.slot_row[s] = row;
            r.row_token[row] = s / K;
        }
        __syncthreads(); /* every read of warp_count and next_row of this chunk is done */
        if (tid < E) next_row[tid] += chunk_total;
    }
}

/* ---- 3a. grouped GEMM (tensor cores) ---- */

__device__ __forceinline__ void cp_async16(void *smem, const void *global, bool valid) {
    const unsigned dst = (unsigned)__cvta_generic_to_shared(smem);
    /* src-size 0 reads nothing and zero-fills the 16 bytes */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(__cvta_generic_to_global(global)),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int PENDING> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

__device__ __forceinline__ uint32_t lds32(const uint16_t *p) { return *reinterpret_cast<const uint32_t *>(p); }

/* c[16×8] += a[16×16] · b[16×8], bf16 inputs, fp32 accumulators (PTX ISA fragment
 * layouts, g = lane/4, q = lane%4): a = {(g, 2q…2q+1), (g+8, 2q…), (g, 2q+8…),
 * (g+8, 2q+8…)} as (row, k); b = {(k 2q…2q+1, n g), (k 2q+8…2q+9, n g)}; c = {(g, 2q),
 * (g, 2q+1), (g+8, 2q), (g+8, 2q+1)}. The lower k of each pair is the low half. */
__device__ __forceinline__ void mma_bf16_16816(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* One pipeline stage: the A tile (rows of the input) and NB weight tiles ([n][k]). */
template <int NB> struct gemm_stage {
    uint16_t a[TILE_M][TILE_KP];
    uint16_t b[NB][TILE_N][TILE_KP];
};

/* out[rows of the tile, N] for the rows of one expert: GATED, gated(A·W0ᵀ, A·W1ᵀ);
 * else A·W0ᵀ. A row r (expert order) is in[gather ? gather[r] : r] of Kd values. */
template <bool GATED>
__global__ void __launch_bounds__(GEMM_THREADS)
    moe_grouped_gemm_kernel(const uint16_t *__restrict__ in, const int32_t *__restrict__ gather, int Kd,
                            const void *const *__restrict__ w0, const void *const *__restrict__ w1,
                            const int32_t *__restrict__ offsets, const int32_t *__restrict__ tile_expert,
                            const int32_t *__restrict__ tile_row, int N, int gelu, uint16_t *__restrict__ out) {
    constexpr int NB = GATED ? 2 : 1;
    __shared__ __align__(16) gemm_stage<NB> stage[STAGES];
    const int e = tile_expert[blockIdx.x];
    if (e < 0) return; /* past the last tile of this routing: the whole block leaves */
    const int row0 = tile_row[blockIdx.x], row_end = offsets[e + 1];
    const int n0 = blockIdx.y * TILE_N;
    const uint16_t *w[NB];
    w[0] = static_cast<const uint16_t *>(w0[e]);
    if constexpr (GATED) w[NB - 1] = static_cast<const uint16_t *>(w1[e]);

    /* This thread's chunks: tile row ld_row, columns ld_col … +7, of A and of each weight
     * tile; rows past the expert's segment or past N read nothing (zero-fill) and point
     * at valid memory (row 0) all the same. */
    const int tid = threadIdx.x;
    int ld_row[LOADS], ld_col[LOADS];
    bool a_ok[LOADS], b_ok[LOADS];
    const uint16_t *a_src[LOADS], *b_src[NB][LOADS];
#pragma unroll
    for (int i = 0; i < LOADS; i++) {
        const int c = tid + i * GEMM_THREADS;
        ld_row[i] = c / CHUNKS_PER_ROW;
        ld_col[i] = (c % CHUNKS_PER_ROW) * 8;
        const int r = row0 + ld_row[i], col = n0 + ld_row[i];
        a_ok[i] = r < row_end;
        b_ok[i] = col < N;
        a_src[i] = in + (size_t)(a_ok[i] ? (gather ? gather[r] : r) : 0) * Kd;
#pragma unroll
        for (int m = 0; m < NB; m++) b_src[m][i] = w[m] + (size_t)(b_ok[i] ? col : 0) * Kd;
    }
    auto load_tile = [&](int slot, int kt) {
#pragma unroll
        for (int i = 0; i < LOADS; i++) {
            const int k = kt * TILE_K + ld_col[i];
            const bool k_ok = k < Kd; /* Kd % 8 == 0: a chunk is wholly inside or outside */
            const int at = k_ok ? k : 0;
            cp_async16(&stage[slot].a[ld_row[i]][ld_col[i]], a_src[i] + at, a_ok[i] && k_ok);
#pragma unroll
            for (int m = 0; m < NB; m++)
                cp_async16(&stage[slot].b[m][ld_row[i]][ld_col[i]], b_src[m][i] + at, b_ok[i] && k_ok);
        }
    };

    const int lane = tid & 31, warp = tid / 32, g = lane >> 2, q = lane & 3;
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32; /* the warp's 32 × 32 in the tile */
    float acc[NB][2][4][4];
#pragma unroll
    for (int m = 0; m < NB; m++)
#pragma unroll
        for (int mi = 0; mi < 2; mi++)
#pragma unroll
            for (int nj = 0; nj < 4; nj++)
#pragma unroll
                for (int v = 0; v < 4; v++) acc[m][mi][nj][v] = 0.0f;

    /* Pipeline: tiles kt+1 … kt+STAGES−1 are in flight while tile kt is multiplied. One
     * commit group per k tile (empty ones past the end), so "at most STAGES−2 pending"
     * means tile kt has landed. The barrier after the wait publishes every thread's
     * copies and ensures all warps finished tile kt−1, whose stage the next load reuses. */
    const int k_tiles = (Kd + TILE_K - 1) / TILE_K;
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < k_tiles) load_tile(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < k_tiles; kt++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        const int next = kt + STAGES - 1;
        if (next < k_tiles) load_tile(next % STAGES, next);
        cp_async_commit();
        const gemm_stage<NB> &sm = stage[kt % STAGES];
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk += 16) {
            uint32_t a[2][4];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const uint16_t *p = &sm.a[wm + mi * 16 + g][kk + 2 * q];
                a[mi][0] = lds32(p);
                a[mi][1] = lds32(p + 8 * TILE_KP);
                a[mi][2] = lds32(p + 8);
                a[mi][3] = lds32(p + 8 * TILE_KP + 8);
            }
#pragma unroll
            for (int m = 0; m < NB; m++)
#pragma unroll
                for (int nj = 0; nj < 4; nj++) {
                    const uint16_t *p = &sm.b[m][wn + nj * 8 + g][kk + 2 * q];
                    const uint32_t b[2] = {lds32(p), lds32(p + 8)};
#pragma unroll
                    for (int mi = 0; mi < 2; mi++) mma_bf16_16816(acc[m][mi][nj], a[mi], b);
                }
        }
    }
    cp_async_wait<0>(); /* only empty groups remain; nothing may land after the block ends */

    /* epilogue: accumulator pairs (row, 2q … 2q+1) → one 32-bit store of two bf16 (N is
     * a multiple of 8, so an even column inside N has its neighbour inside too) */
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int nj = 0; nj < 4; nj++)
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int r = row0 + wm + mi * 16 + g + half * 8;
                const int col = n0 + wn + nj * 8 + 2 * q;
                if (r >= row_end || col >= N) continue;
                float v0 = acc[0][mi][nj][2 * half], v1 = acc[0][mi][nj][2 * half + 1];
                if constexpr (GATED) {
                    v0 = gated(v0, acc[NB - 1][mi][nj][2 * half], gelu);
                    v1 = gated(v1, acc[NB - 1][mi][nj][2 * half + 1], gelu);
                }
                *reinterpret_cast<uint32_t *>(out + (size_t)r * N + col) = pack_bf16(v0, v1);
            }
}

/* ---- 3b. GEMV over the selected experts ---- */

/* acc + Σ w[j]·x[j] over 8 bf16 pairs, in element order */
__device__ __forceinline__ float dot8(uint4 w, uint4 x, float acc) {
    const uint32_t wv[4] = {w.x, w.y, w.z, w.w}, xv[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        acc = fmaf(bf16_lo(wv[j]), bf16_lo(xv[j]), acc);
        acc = fmaf(bf16_hi(wv[j]), bf16_hi(xv[j]), acc);
    }
    return acc;
}

/* out[row, col] for the rows of expert active[blockIdx.y] and col = one per warp:
 * GATED, gated(w0[col]·x_row, w1[col]·x_row); else w0[col]·x_row. Input rows as in the
 * grouped kernel. */
template <bool GATED>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    moe_gemv_kernel(const uint16_t *__restrict__ in, const int32_t *__restrict__ gather, int Kd,
                    const void *const *__restrict__ w0, const void *const *__restrict__ w1,
                    const int32_t *__restrict__ offsets, const int32_t *__restrict__ active, int N, int gelu,
                    uint16_t *__restrict__ out) {
    const int e = active[blockIdx.y];
    if (e < 0) return;
    const int col = blockIdx.x * GEMV_WARPS + (int)threadIdx.x / 32;
    if (col >= N) return; /* a whole warp; no barriers in this kernel */
    const int lane = threadIdx.x & 31;
    const int first = offsets[e], rows = offsets[e + 1] - first, n_vec = Kd / 8;
    const uint4 *wa = reinterpret_cast<const uint4 *>(static_cast<const uint16_t *>(w0[e]) + (size_t)col * Kd);
    const uint4 *wb =
        GATED ? reinterpret_cast<const uint4 *>(static_cast<const uint16_t *>(w1[e]) + (size_t)col * Kd) : wa;
    /* more rows than GEMV_ROWS (a batch moe_choose_path would not send here) take
     * several passes over the weight row */
    for (int pass = 0; pass < rows; pass += GEMV_ROWS) {
        const int m = rows - pass < GEMV_ROWS ? rows - pass : GEMV_ROWS;
        const uint4 *x[GEMV_ROWS];
        float acc0[GEMV_ROWS], acc1[GEMV_ROWS];
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
            const int row = first + pass + (r < m ? r : 0);
            x[r] = reinterpret_cast<const uint4 *>(in + (size_t)(gather ? gather[row] : row) * Kd);
            acc0[r] = acc1[r] = 0.0f;
        }
        for (int v0 = lane; v0 < n_vec; v0 += 32 * GEMV_UNROLL) {
            uint4 va[GEMV_UNROLL], vb[GEMV_UNROLL];
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++) { /* all loads first: several in flight */
                const int v = v0 + 32 * u;
                va[u] = vb[u] = make_uint4(0, 0, 0, 0);
                if (v < n_vec) {
                    va[u] = __ldcs(wa + v); /* streamed once: evict first */
                    if constexpr (GATED) vb[u] = __ldcs(wb + v);
                }
            }
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++) {
                const int v = v0 + 32 * u;
                if (v >= n_vec) continue;
#pragma unroll
                for (int r = 0; r < GEMV_ROWS; r++)
                    if (r < m) {
                        const uint4 xv = __ldg(x[r] + v);
                        acc0[r] = dot8(va[u], xv, acc0[r]);
                        if constexpr (GATED) acc1[r] = dot8(vb[u], xv, acc1[r]);
                    }
            }
        }
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++)
            if (r < m) {
                acc0[r] = dev_warp_sum(acc0[r]);
                if constexpr (GATED) acc1[r] = dev_warp_sum(acc1[r]);
                if (lane == 0)
                    out[(size_t)(first + pass + r) * N + col] =
                        dev_f32_to_bf16(GATED ? gated(acc0[r], acc1[r], gelu) : acc0[r]);
            }
    }
}

/* ---- 4. combine ---- */

__global__ void __launch_bounds__(COMBINE_THREADS)
    moe_combine_kernel(const uint16_t *__restrict__ expert_out, const int32_t *__restrict__ slot_row,
                       const float *__restrict__ weight, int n, int K, int H, uint16_t *__restrict__ out) {
    const int n_vec = H / 8;
    const uint64_t total = (uint64_t)n * (uint64_t)n_vec;
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < total;
         i += (uint64_t)gridDim.x * blockDim.x) {
        const int t = (int)(i / (uint64_t)n_vec), v = (int)(i % (uint64_t)n_vec);
        float sum[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        for (int k = 0; k < K; k++) {
            const int slot = t * K + k;
            const float w = weight[slot];
            const uint4 y = *reinterpret_cast<const uint4 *>(expert_out + (size_t)slot_row[slot] * H + (size_t)v * 8);
            const uint32_t yv[4] = {y.x, y.y, y.z, y.w};
#pragma unroll
            for (int j = 0; j < 4; j++) { /* y += w·e without contraction, as cpu_scale_add */
                sum[2 * j] = __fadd_rn(sum[2 * j], __fmul_rn(w, bf16_lo(yv[j])));
                sum[2 * j + 1] = __fadd_rn(sum[2 * j + 1], __fmul_rn(w, bf16_hi(yv[j])));
            }
        }
        uint4 packed;
        packed.x = pack_bf16(sum[0], sum[1]);
        packed.y = pack_bf16(sum[2], sum[3]);
        packed.z = pack_bf16(sum[4], sum[5]);
        packed.w = pack_bf16(sum[6], sum[7]);
        *reinterpret_cast<uint4 *>(out + (size_t)t * H + (size_t)v * 8) = packed;
    }
}

/* ---- host helpers ---- */

bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

size_t round_up256(size_t bytes) { return (bytes + 255u) & ~(size_t)255u; }

/* Where kernel_moe_bf16 puts each array in its workspace (byte offsets, 256-aligned). */
struct workspace_layout {
    size_t expert, weight, offsets, slot_row, row_token, tile_expert, tile_row, active, act, expert_out, total;
};

workspace_layout layout_of(int n, int E, int K, int H, int I) {
    const size_t slots = (size_t)n * (size_t)K, tiles = (size_t)moe_row_tiles(n * K, E);
    workspace_layout l;
    size_t at = 0;
    auto take = [&at](size_t bytes) {
        const size_t here = at;
        at += round_up256(bytes);
        return here;
    };
    l.expert = take(slots * sizeof(int32_t));
    l.weight = take(slots * sizeof(float));
    l.offsets = take(((size_t)E + 1) * sizeof(int32_t));
    l.slot_row = take(slots * sizeof(int32_t));
    l.row_token = take(slots * sizeof(int32_t));
    l.tile_expert = take(tiles * sizeof(int32_t));
    l.tile_row = take(tiles * sizeof(int32_t));
    l.active = take((size_t)E * sizeof(int32_t));
    l.act = take(slots * (size_t)I * 2);
    l.expert_out = take(slots * (size_t)H * 2);
    l.total = at;
    return l;
}

gale_status check_shape(const char *what, int n, int E, int K) {
    if (n < 0 || E < 1 || E > MOE_MAX_EXPERTS || K < 1 || K > MOE_MAX_TOP_K || K > E)
        return gale_error(GALE_ERR_INVALID_ARG, "%s: %d tokens, %d experts (1 … %d), %d per token (1 … min(E, %d))",
                          what, n, E, MOE_MAX_EXPERTS, K, MOE_MAX_TOP_K);
    if ((int64_t)n * K > 0x7fffffff) return gale_error(GALE_ERR_INVALID_ARG, "%s: %d tokens × %d slots", what, n, K);
    return GALE_OK;
}

gale_status check_experts(const char *what, const moe_experts *ex) {
    if (!ex) return gale_error(GALE_ERR_INVALID_ARG, "%s: no experts", what);
    if (!moe_shape_supported(ex->n_experts, ex->top_k, ex->hidden, ex->intermediate))
        return gale_error(GALE_ERR_INVALID_ARG,
                          "%s: %d experts, %d per token, hidden %d, intermediate %d: need E ≤ %d, K ≤ min(E, %d), "
                          "H and I positive multiples of 8",
                          what, ex->n_experts, ex->top_k, ex->hidden, ex->intermediate, MOE_MAX_EXPERTS, MOE_MAX_TOP_K);
    if (ex->act != GALE_ACT_SILU && ex->act != GALE_ACT_GELU_TANH)
        return gale_error(GALE_ERR_INVALID_ARG, "%s: activation %d", what, (int)ex->act);
    if (!ex->gate || !ex->up || !ex->down)
        return gale_error(GALE_ERR_INVALID_ARG, "%s: NULL expert pointer array", what);
    if ((ex->intermediate + TILE_N - 1) / TILE_N > 65535 || (ex->hidden + TILE_N - 1) / TILE_N > 65535)
        return gale_error(GALE_ERR_INVALID_ARG, "%s: hidden %d / intermediate %d too large for the grid", what,
                          ex->hidden, ex->intermediate);
    return GALE_OK;
}

bool routing_complete(const moe_routing *r) {
    return r && r->expert && r->weight && r->offsets && r->slot_row && r->row_token && r->tile_expert && r->tile_row &&
           r->active;
}

/* one pass (gate/up or down) of the chosen path */
template <bool GATED>
gale_status launch_pass(moe_path path, const moe_routing *r, const uint16_t *in, const int32_t *gather, int Kd,
                        const void *const *w0, const void *const *w1, int N, int slots, int E, int gelu, uint16_t *out,
                        cudaStream_t stream) {
    if (path == MOE_PATH_GROUPED) {
        const dim3 grid((unsigned)moe_row_tiles(slots, E), (unsigned)((N + TILE_N - 1) / TILE_N));
        moe_grouped_gemm_kernel<GATED><<<grid, GEMM_THREADS, 0, stream>>>(in, gather, Kd, w0, w1, r->offsets,
                                                                          r->tile_expert, r->tile_row, N, gelu, out);
        return cuda_check_launch(GATED ? "MoE grouped gate/up GEMM" : "MoE grouped down GEMM");
    }
    const dim3 grid((unsigned)((N + GEMV_WARPS - 1) / GEMV_WARPS), (unsigned)(E < slots ? E : slots));
    moe_gemv_kernel<GATED>
        <<<grid, GEMV_WARPS * 32, 0, stream>>>(in, gather, Kd, w0, w1, r->offsets, r->active, N, gelu, out);
    return cuda_check_launch(GATED ? "MoE gate/up GEMV" : "MoE down GEMV");
}

} // namespace

/* ---- host-side rules ---- */

extern "C" moe_path moe_choose_path(int n_tokens) {
    return n_tokens <= MOE_GEMV_MAX_TOKENS ? MOE_PATH_GEMV : MOE_PATH_GROUPED;
}

extern "C" int moe_row_tiles(int slots, int n_experts) {
    if (slots <= 0 || n_experts <= 0) return 0;
    const int64_t can_have_rows = n_experts < slots ? n_experts : slots;
    return (int)(((int64_t)slots + can_have_rows * (TILE_M - 1)) / TILE_M);
}

extern "C" bool moe_shape_supported(int n_experts, int top_k, int hidden, int intermediate) {
    return n_experts >= 1 && n_experts <= MOE_MAX_EXPERTS && top_k >= 1 && top_k <= MOE_MAX_TOP_K &&
           top_k <= n_experts && hidden > 0 && hidden % 8 == 0 && intermediate > 0 && intermediate % 8 == 0;
}

extern "C" size_t moe_workspace_bytes(int n, int n_experts, int top_k, int hidden, int intermediate) {
    if (n < 0 || !moe_shape_supported(n_experts, top_k, hidden, intermediate) || (int64_t)n * top_k > 0x7fffffff)
        return 0;
    return layout_of(n, n_experts, top_k, hidden, intermediate).total;
}

/* ---- launchers ---- */

extern "C" gale_status kernel_moe_gate(const float *logits, const int32_t *seq_of, int n, int n_experts, int top_k,
                                       int32_t *expert, float *weight, void *stream) {
    GALE_TRY(check_shape("MoE gate", n, n_experts, top_k));
    if (n > 0 && (!logits || !expert || !weight)) return gale_error(GALE_ERR_INVALID_ARG, "MoE gate: NULL buffer");
    if (n == 0) return GALE_OK;
    const unsigned blocks = (unsigned)((n + GATE_WARPS - 1) / GATE_WARPS);
    moe_gate_kernel<<<blocks, GATE_WARPS * 32, 0, static_cast<cudaStream_t>(stream)>>>(logits, seq_of, n, n_experts,
                                                                                       top_k, expert, weight);
    return cuda_check_launch("MoE gate");
}

extern "C" gale_status kernel_moe_dispatch(const moe_routing *r, int n, int n_experts, int top_k, void *stream) {
    GALE_TRY(check_shape("MoE dispatch", n, n_experts, top_k));
    if (n > 0 && !routing_complete(r)) return gale_error(GALE_ERR_INVALID_ARG, "MoE dispatch: NULL routing array");
    if (n == 0) return GALE_OK;
    const int slots = n * top_k;
    moe_dispatch_kernel<<<1, DISPATCH_THREADS, 0, static_cast<cudaStream_t>(stream)>>>(*r, slots, top_k, n_experts,
                                                                                       moe_row_tiles(slots, n_experts));
    return cuda_check_launch("MoE dispatch");
}

extern "C" gale_status kernel_moe_experts_bf16(const moe_routing *r, const void *x, int n, const moe_experts *ex,
                                               moe_path path, void *act, void *expert_out, void *stream) {
    GALE_TRY(check_experts("MoE experts", ex));
    GALE_TRY(check_shape("MoE experts", n, ex->n_experts, ex->top_k));
    if (path != MOE_PATH_AUTO && path != MOE_PATH_GROUPED && path != MOE_PATH_GEMV)
        return gale_error(GALE_ERR_INVALID_ARG, "MoE experts: path %d", (int)path);
    if (n > 0 && (!routing_complete(r) || !x || !act || !expert_out))
        return gale_error(GALE_ERR_INVALID_ARG, "MoE experts: NULL buffer");
    if (!aligned16(x) || !aligned16(act) || !aligned16(expert_out))
        return gale_error(GALE_ERR_INVALID_ARG, "MoE experts: x, act and expert_out must be 16-byte aligned");
    if (n == 0) return GALE_OK;
    if (path == MOE_PATH_AUTO) path = moe_choose_path(n);
    const int slots = n * ex->top_k, E = ex->n_experts, H = ex->hidden, I = ex->intermediate;
    const int gelu = ex->act == GALE_ACT_GELU_TANH;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    /* gate/up: x rows gathered through row_token (reduction over H) → act [slots, I] */
    GALE_TRY(launch_pass<true>(path, r, static_cast<const uint16_t *>(x), r->row_token, H, ex->gate, ex->up, I, slots,
                               E, gelu, static_cast<uint16_t *>(act), s));
    /* down: act rows in place (reduction over I) → expert_out [slots, H] */
    return launch_pass<false>(path, r, static_cast<const uint16_t *>(act), nullptr, I, ex->down, nullptr, H, slots, E,
                              gelu, static_cast<uint16_t *>(expert_out), s);
}

extern "C" gale_status kernel_moe_combine_bf16(const moe_routing *r, const void *expert_out, int n, int top_k,
                                               int hidden, void *out, void *stream) {
    if (n < 0 || top_k < 1 || top_k > MOE_MAX_TOP_K || hidden <= 0 || hidden % 8)
        return gale_error(GALE_ERR_INVALID_ARG, "MoE combine: %d tokens, %d per token, hidden %d (a multiple of 8)", n,
                          top_k, hidden);
    if (n > 0 && (!r || !r->slot_row || !r->weight || !expert_out || !out))
        return gale_error(GALE_ERR_INVALID_ARG, "MoE combine: NULL buffer");
    if (!aligned16(expert_out) || !aligned16(out))
        return gale_error(GALE_ERR_INVALID_ARG, "MoE combine: expert_out and out must be 16-byte aligned");
    if (n == 0) return GALE_OK;
    const uint64_t vectors = (uint64_t)n * (uint64_t)(hidden / 8);
    moe_combine_kernel<<<grid_blocks(vectors, COMBINE_THREADS), COMBINE_THREADS, 0,
                         static_cast<cudaStream_t>(stream)>>>(static_cast<const uint16_t *>(expert_out), r->slot_row,
                                                              r->weight, n, top_k, hidden,
                                                              static_cast<uint16_t *>(out));
    return cuda_check_launch("MoE combine");
}

extern "C" gale_status kernel_moe_bf16(const float *logits, const int32_t *seq_of, const void *x, int n,
                                       const moe_experts *ex, moe_path path, void *workspace, size_t workspace_bytes,
                                       void *out, void *stream) {
    GALE_TRY(check_experts("MoE layer", ex));
    GALE_TRY(check_shape("MoE layer", n, ex->n_experts, ex->top_k));
    if (n == 0) return GALE_OK;
    const int E = ex->n_experts, K = ex->top_k, H = ex->hidden, I = ex->intermediate;
    const workspace_layout l = layout_of(n, E, K, H, I);
    if (!logits || !x || !out || !workspace) return gale_error(GALE_ERR_INVALID_ARG, "MoE layer: NULL buffer");
    if (workspace_bytes < l.total)
        return gale_error(GALE_ERR_INVALID_ARG, "MoE layer: workspace of %zu bytes, %d tokens need %zu",
                          workspace_bytes, n, l.total);
    if (!aligned16(workspace)) return gale_error(GALE_ERR_INVALID_ARG, "MoE layer: workspace must be 16-byte aligned");
    char *base = static_cast<char *>(workspace);
    moe_routing r;
    r.expert = reinterpret_cast<int32_t *>(base + l.expert);
    r.weight = reinterpret_cast<float *>(base + l.weight);
    r.offsets = reinterpret_cast<int32_t *>(base + l.offsets);
    r.slot_row = reinterpret_cast<int32_t *>(base + l.slot_row);
    r.row_token = reinterpret_cast<int32_t *>(base + l.row_token);
    r.tile_expert = reinterpret_cast<int32_t *>(base + l.tile_expert);
    r.tile_row = reinterpret_cast<int32_t *>(base + l.tile_row);
    r.active = reinterpret_cast<int32_t *>(base + l.active);
    void *act = base + l.act, *expert_out = base + l.expert_out;
    GALE_TRY(kernel_moe_gate(logits, seq_of, n, E, K, r.expert, r.weight, stream));
    GALE_TRY(kernel_moe_dispatch(&r, n, E, K, stream));
    GALE_TRY(kernel_moe_experts_bf16(&r, x, n, ex, path, act, expert_out, stream));
    return kernel_moe_combine_bf16(&r, expert_out, n, K, H, out, stream);
}
