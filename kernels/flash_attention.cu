/* Flash-style attention over the paged KV cache: a tiled prefill kernel and a split-KV
 * (flash-decoding) kernel on bf16 tensor cores, plus the launcher that picks one of them or
 * the simple kernel of attention.cu (semantics and API: attention_kernels.h; CPU reference:
 * cpu_attention in src/backend/cpu/ops.c; cache layout: src/engine/kvcache.h).
 *
 * Both kernels are built from the same warp-level steps on 16 query rows:
 *   S[16, BN] = Q·Kᵀ      mma.sync m16n8k16 (bf16 in, fp32 accumulate); Q and K fragments
 *                          come from shared memory with ldmatrix.x4;
 *   mask, online softmax   scores scaled, softcapped, masked to each row's visible keys
 *                          (assigned −inf), exponentiated in base 2 against the running row
 *                          maximum; the accumulator is rescaled when the maximum grows;
 *   O[16, D] += P·V        P rounded to bf16 and reused straight from the S accumulator
 *                          registers as the A operand (the m16n8 accumulator layout of two
 *                          adjacent key octets is the m16k16 A layout); V fragments come
 *                          from ldmatrix.x4.trans.
 * Fragment layouts (PTX ISA, mma.m16n8k16 .bf16; lane = 4·g + t): A reg0 (row g, k 2t..2t+1),
 * reg1 (row g+8, k 2t..), reg2 (row g, k 2t+8..), reg3 (row g+8, k 2t+8..); B reg0 (k 2t..2t+1,
 * n g), reg1 (k 2t+8.., n g); C c0,c1 (row g, n 2t..2t+1), c2,c3 (row g+8, n 2t..). ldmatrix.x4
 * takes the row addresses of matrix i from lanes 8i..8i+7 and gives each lane, in register i,
 * row lane/4, columns 2·(lane%4).. of matrix i (.trans: row and column swapped). The frag_*
 * helpers below hold every lane → address rule in one place.
 *
 * Shared-memory tiles are rows of head_dim bf16 padded by 8 (16 bytes): a row is 16-byte
 * aligned for cp.async and ldmatrix, and the eight rows one ldmatrix phase reads start in
 * eight different 4-bank groups, so it has no bank conflicts. K/V rows are copied from the
 * paged cache with cp.async (16 bytes per thread, zero-filled for keys outside the block's
 * range or in a block the table marks −1, so masked keys hold zeros, never NaN: P·V would
 * turn 0·NaN into NaN). Loads of the next K tile overlap P·V, those of the next V tile the
 * next Q·Kᵀ (one buffer each, cp.async groups committed in K, V order).
 *
 * Prefill (flash_prefill_kernel<D, BM, BN>): a block takes one tile of the host plan
 * (attention_plan_tiles: BM rows of one run, row = token·group + head in group) and one KV
 * head, so the query heads sharing that KV head read each K/V tile once. Warp w owns rows
 * 16w..16w+15. The block walks the keys from the first any row sees to the last (other
 * tiles of the causal/window region are never loaded); a warp skips the math of a key tile
 * none of its rows sees. Each row's mask comes from its own device position, so a tile is
 * correct whatever the plan groups; the plan only makes it tight.
 *
 * Decode (flash_decode_kernel<D, BN>): a block takes one query token, one split of its
 * visible keys (attention_split_range) and up to 16 query heads of one KV head (all of them
 * when the group is <= 16), so K/V are read once per group. Its 4 warps take the split's key
 * tiles round robin, each with its own K/V buffers and softmax state (only __syncwarp in the
 * loop); at the end the warps' states merge through shared memory into one partial
 * (max, sum, unnormalised output) per (token, head, split) in the workspace, or, with one
 * split, into the output itself. flash_combine_kernel then merges the splits' partials with
 * the log-sum-exp rescale. The grid is (tokens, splits, KV heads × head chunks) whatever the
 * positions; a block whose split holds no visible key writes an empty partial (sum 0) that
 * the combine skips.
 *
 * Maxima are kept in base-2 units (score·log2 e) throughout, partials included.
 *
 * Tiles and dynamic shared memory, (BM + 2·BN)·(D + 8)·2 bytes for the prefill kernel
 * (BM/16 warps) and (16 + 4·2·BN)·(D + 8)·2 for the decode kernel (4 warps):
 *     head_dim   prefill BM 64        prefill BM 128        decode
 *     64         BN 64: 27,648        BN 64: 36,864         BN 32: 39,168
 *     128        BN 64: 52,224        BN 64: 69,632         BN 32: 73,984
 *     256        BN 32: 67,584        BN 32: 101,376        BN 16: 76,032
 * BM 128 at head_dim 256 exceeds the 99 KiB a block gets on sm_86/sm_89: it returns
 * GALE_ERR_UNSUPPORTED there (AUTO never picks it). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>

#include "common.cuh"
#include "kernels.h"

namespace {

constexpr float LOG2E = 1.4426950408889634f;
constexpr int PAD = 8;          /* bf16 after each shared-memory row */
constexpr int DEC_WARPS = 4;    /* warps of a decode block */
constexpr int DEC_ROWS = 16;    /* query heads of a decode block: one m16 tile */
constexpr int SPLIT_GRANULE = 128; /* split sizes are multiples of DEC_WARPS × the largest decode tile */
constexpr int AUTO_MAX_SPLITS = 64, FIXED_MAX_SPLITS = 512;

/* The first position a query at pos sees: kv_first_visible of src/engine/kvcache.h, for both sides. */
__host__ __device__ __forceinline__ int first_visible(int window, int pos) {
    return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}

/* attention_split_range, for both sides */
__host__ __device__ __forceinline__ void split_keys(int first, int pos, int split, int n_splits, int split_size,
                                                    int *lo, int *hi) {
    *lo = first + split * split_size;
    const int end = *lo + split_size - 1;
    *hi = split == n_splits - 1 || end > pos ? pos : end;
}

/* ---- lane → fragment rules (PTX ISA; see the header comment) ------------------------- */

/* ldmatrix.x4 row address of the A operand (16 rows × 16 k, row-major): lanes 0-15 point at
 * rows 0-15 of the first 8 columns (matrices 0, 1 → regs 0, 1), lanes 16-31 at rows 0-15 of
 * the last 8 (matrices 2, 3 → regs 2, 3). The V tile of P·V (.trans) uses the same rule
 * with keys as rows and head dims as columns: regs 0, 1 are B of dims 0-7 (keys 0-7, 8-15),
 * regs 2, 3 B of dims 8-15. */
__host__ __device__ __forceinline__ int frag_a_row(int lane) { return lane & 15; }
__host__ __device__ __forceinline__ int frag_a_col(int lane) { return (lane >> 4) * 8; }
/* ldmatrix.x4 row address in the K tile ([keys, dims] row-major = Kᵀ column-major, the B
 * operand of Q·Kᵀ) for 16 keys × 16 dims: matrices 0, 1 are keys 0-7 at dims 0-7 and 8-15
 * (B regs 0, 1 of key octet 0), matrices 2, 3 keys 8-15 (B regs 0, 1 of key octet 1). */
__host__ __device__ __forceinline__ int frag_k_key(int lane) { return ((lane >> 4) << 3) + (lane & 7); }
__host__ __device__ __forceinline__ int frag_k_dim(int lane) { return ((lane >> 3) & 1) * 8; }
/* Accumulator element e (0-3) of a lane: row in the 16, column in the 8. */
__host__ __device__ __forceinline__ int acc_row(int lane, int e) { return (lane >> 2) + (e >> 1) * 8; }
__host__ __device__ __forceinline__ int acc_col(int lane, int e) { return (lane & 3) * 2 + (e & 1); }

/* ---- PTX wrappers -------------------------------------------------------------------- */

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes global → shared, asynchronously; zero-filled (src not read) when !valid. */
__device__ __forceinline__ void cp_async_16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/* Waits until at most n of this thread's committed groups are pending. */
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const uint16_t *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

/* c[16×8] += a[16×16] · b[16×8], bf16 in, fp32 accumulate */
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two fp32 → bf16x2 (round to nearest even), lo in the low half: cvt puts its first source
 * in the high half. */
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

/* ---- warp-level steps on 16 query rows ----------------------------------------------- */

template <int D> struct warp_state {
    float o[D / 8][4]; /* unnormalised output: accumulator of 16 rows × D (D/8 octets of dims) */
    float m[2];        /* running maximum of rows g and g+8, base-2 units (−inf: none yet) */
    float l[2];        /* this lane's share of their sums of exponentials */
};

template <int D> __device__ __forceinline__ void warp_state_init(warp_state<D> &st) {
#pragma unroll
    for (int i = 0; i < D / 8; i++) st.o[i][0] = st.o[i][1] = st.o[i][2] = st.o[i][3] = 0.0f;
    st.m[0] = st.m[1] = -INFINITY;
    st.l[0] = st.l[1] = 0.0f;
}

/* s[16, BN] = q[16, D] · k[BN, D]ᵀ; q_s and k_s are shared tiles with rows of D + PAD. */
template <int D, int BN>
__device__ __forceinline__ void warp_scores(const uint16_t *q_s, const uint16_t *k_s, float (&s)[BN / 8][4], int lane) {
    constexpr int STRIDE = D + PAD;
#pragma unroll
    for (int j = 0; j < BN / 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t a[4];
        ldmatrix_x4(a, q_s + frag_a_row(lane) * STRIDE + kk * 16 + frag_a_col(lane));
#pragma unroll
        for (int jp = 0; jp < BN / 16; jp++) {
            uint32_t b[4];
            ldmatrix_x4(b, k_s + (jp * 16 + frag_k_key(lane)) * STRIDE + kk * 16 + frag_k_dim(lane));
            mma_bf16(s[2 * jp], a, b[0], b[1]);
            mma_bf16(s[2 * jp + 1], a, b[2], b[3]);
        }
    }
}

/* Scores of keys kv0 … kv0+BN−1 → scaled, softcapped, masked to [lo[h], hi[h]] for row
 * g + 8h, folded into the online softmax of st (rescaling st.o), and returned as the bf16
 * A operand p of P·V (p[ks] covers keys 16·ks … 16·ks+15). */
template <int D, int BN>
__device__ __forceinline__ void warp_softmax(float (&s)[BN / 8][4], uint32_t (&p)[BN / 16][4], warp_state<D> &st,
                                             int kv0, const int (&lo)[2], const int (&hi)[2], float scale,
                                             float softcap, int lane) {
#pragma unroll
    for (int j = 0; j < BN / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float x = s[j][e] * scale;
            if (softcap > 0.0f) x = softcap * tanhf(x / softcap);
            const int key = kv0 + j * 8 + acc_col(lane, e), h = e >> 1;
            s[j][e] = key >= lo[h] && key <= hi[h] ? x * LOG2E : -INFINITY;
        }
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float tile_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < BN / 8; j++) tile_max = fmaxf(tile_max, fmaxf(s[j][2 * h], s[j][2 * h + 1]));
        /* the four lanes of a quad hold the row between them */
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
        const float new_max = fmaxf(st.m[h], tile_max);
        /* a row that has seen no key yet keeps −inf: subtract 0 instead, so exp2 gives 0, not NaN */
        const float base = new_max == -INFINITY ? 0.0f : new_max;
        const float rescale = exp2f(st.m[h] - base);
        st.m[h] = new_max;
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < BN / 8; j++) {
            s[j][2 * h] = exp2f(s[j][2 * h] - base);
            s[j][2 * h + 1] = exp2f(s[j][2 * h + 1] - base);
            sum += s[j][2 * h] + s[j][2 * h + 1];
        }
        st.l[h] = st.l[h] * rescale + sum;
#pragma unroll
        for (int i = 0; i < D / 8; i++) {
            st.o[i][2 * h] *= rescale;
            st.o[i][2 * h + 1] *= rescale;
        }
    }
#pragma unroll
    for (int ks = 0; ks < BN / 16; ks++) {
        p[ks][0] = pack_bf16(s[2 * ks][0], s[2 * ks][1]);         /* row g,   keys 16ks + 2t */
        p[ks][1] = pack_bf16(s[2 * ks][2], s[2 * ks][3]);         /* row g+8, keys 16ks + 2t */
        p[ks][2] = pack_bf16(s[2 * ks + 1][0], s[2 * ks + 1][1]); /* row g,   keys 16ks + 8 + 2t */
        p[ks][3] = pack_bf16(s[2 * ks + 1][2], s[2 * ks + 1][3]); /* row g+8, keys 16ks + 8 + 2t */
    }
}

/* o[16, D] += p[16, BN] · v[BN, D]; v_s is a shared tile with rows of D + PAD. */
template <int D, int BN>
__device__ __forceinline__ void warp_pv(const uint32_t (&p)[BN / 16][4], const uint16_t *v_s, float (&o)[D / 8][4],
                                        int lane) {
    constexpr int STRIDE = D + PAD;
#pragma unroll
    for (int ks = 0; ks < BN / 16; ks++)
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
            uint32_t b[4];
            ldmatrix_x4_trans(b, v_s + (ks * 16 + frag_a_row(lane)) * STRIDE + dp * 16 + frag_a_col(lane));
            mma_bf16(o[2 * dp], p[ks], b[0], b[1]);
            mma_bf16(o[2 * dp + 1], p[ks], b[2], b[3]);
        }
}

/* Both halves of a row's sum, which the quad's four lanes share. */
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* Keys kv0 … kv0+BN−1 of one KV head (rows of D bf16 in the paged cache) → dst [BN, D+PAD],
 * copied by THREADS threads (tid among them); keys outside [lo, hi] or in a block the table
 * marks −1 become zeros. */
template <int D, int BN, int THREADS>
__device__ __forceinline__ void load_kv_tile(uint16_t *dst, const uint16_t *cache, const int32_t *table,
                                             int block_size, int kv_dim, int kv_head, int kv0, int lo, int hi,
                                             int tid) {
    constexpr int CHUNKS = D / 8; /* 16-byte pieces of a row */
#pragma unroll 4
    for (int c = tid; c < BN * CHUNKS; c += THREADS) {
        const int key = c / CHUNKS, chunk = c % CHUNKS, kv = kv0 + key;
        const uint16_t *src = cache;
        bool valid = kv >= lo && kv <= hi;
        if (valid) {
            const int block = table[kv / block_size];
            valid = block >= 0;
            src = cache + ((size_t)(valid ? block : 0) * block_size + kv % block_size) * kv_dim + (size_t)kv_head * D +
                  chunk * 8;
        }
        cp_async_16(dst + key * (D + PAD) + chunk * 8, src, valid);
    }
}

/* ---- prefill ------------------------------------------------------------------------- */

struct prefill_args {
    const uint16_t *q;                       /* [n, n_heads, D] */
    const uint16_t *key_cache, *value_cache; /* [n_blocks, block_size, kv_dim] */
    const int32_t *block_tables;             /* [n_seqs, table_stride] */
    int table_stride, block_size;
    const int32_t *positions, *seq_of; /* [n] */
    int n_heads, group, kv_dim;
    float scale, softcap;
    int window;
    const attention_tile *tiles; /* [gridDim.x / n_kv_heads] */
    uint16_t *out;               /* [n, n_heads, D] */
};

template <int D, int BM, int BN> constexpr size_t prefill_smem_bytes() { return (size_t)(BM + 2 * BN) * (D + PAD) * 2; }

template <int D, int BM, int BN>
__global__ void __launch_bounds__(BM * 2) flash_prefill_kernel(const prefill_args a) {
    constexpr int THREADS = BM * 2, STRIDE = D + PAD, CHUNKS = D / 8;
    static_assert(BM % 16 == 0 && BN % 16 == 0 && D % 16 == 0, "tile shapes are whole mma tiles");
    extern __shared__ uint4 smem[];
    uint16_t *q_s = reinterpret_cast<uint16_t *>(smem); /* [BM, STRIDE], later the output */
    uint16_t *k_s = q_s + BM * STRIDE;                   /* [BN, STRIDE] */
    uint16_t *v_s = k_s + BN * STRIDE;                   /* [BN, STRIDE] */
    __shared__ int range_lo, range_hi;                   /* keys any row of the tile sees */

    /* block = tile · n_kv_heads + kv_head: the KV heads vary fastest, so every head's
     * longest tiles (the plan sorts them first) start in the first wave, not the last
     * head's after most of the grid */
    const int n_kv_heads = a.n_heads / a.group;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, kv_head = blockIdx.x % n_kv_heads;
    const attention_tile tile = a.tiles[blockIdx.x / n_kv_heads];
    const int rows = min(BM, tile.n_tokens * a.group - tile.first_row);
    /* row r of the tile → batch token and query head */
    auto row_token = [&](int r) { return tile.first_token + (tile.first_row + r) / a.group; };
    auto row_head = [&](int r) { return kv_head * a.group + (tile.first_row + r) % a.group; };
    if (a.seq_of[tile.first_token] < 0) { /* padding (a lone token: runs never hold one): zeros */
        for (int c = tid; c < rows * D; c += THREADS)
            a.out[((size_t)row_token(c / D) * a.n_heads + row_head(c / D)) * D + c % D] = 0;
        return;
    }
    const int32_t *table = a.block_tables + (size_t)a.seq_of[tile.first_token] * a.table_stride;

    if (tid == 0) range_lo = INT_MAX, range_hi = INT_MIN;
    __syncthreads();
    for (int c = tid; c < BM * CHUNKS; c += THREADS) {
        const int r = c / CHUNKS, chunk = c % CHUNKS;
        const uint16_t *src = r < rows ? a.q + ((size_t)row_token(r) * a.n_heads + row_head(r)) * D + chunk * 8 : a.q;
        cp_async_16(q_s + r * STRIDE + chunk * 8, src, r < rows);
    }
    for (int r = tid; r < rows; r += THREADS) {
        const int pos = a.positions[row_token(r)];
        atomicMin(&range_lo, first_visible(a.window, pos));
        atomicMax(&range_hi, pos);
    }
    /* this lane's rows g and g+8 of the warp's 16; rows past the tile see nothing */
    int lo[2], hi[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int r = warp * 16 + acc_row(lane, 2 * h);
        const int pos = r < rows ? a.positions[row_token(r)] : INT_MIN;
        lo[h] = r < rows ? first_visible(a.window, pos) : INT_MAX;
        hi[h] = pos;
    }
    int warp_lo = min(lo[0], lo[1]), warp_hi = max(hi[0], hi[1]);
    for (int offset = 16; offset > 0; offset >>= 1) {
        warp_lo = min(warp_lo, __shfl_xor_sync(0xffffffffu, warp_lo, offset));
        warp_hi = max(warp_hi, __shfl_xor_sync(0xffffffffu, warp_hi, offset));
    }
    __syncthreads();
    const int kv_lo = range_lo, kv_hi = range_hi;
    const int kv_begin = kv_lo - kv_lo % BN, n_tiles = (kv_hi - kv_begin) / BN + 1;

    /* groups: {Q, K0}, {V0}, then one K and one V group per tile (empty past the last) */
    load_kv_tile<D, BN, THREADS>(k_s, a.key_cache, table, a.block_size, a.kv_dim, kv_head, kv_begin, kv_lo, kv_hi, tid);
    cp_async_commit();
    load_kv_tile<D, BN, THREADS>(v_s, a.value_cache, table, a.block_size, a.kv_dim, kv_head, kv_begin, kv_lo, kv_hi,
                                 tid);
    cp_async_commit();

    warp_state<D> st;
    warp_state_init(st);
    const uint16_t *q_warp = q_s + warp * 16 * STRIDE;
    for (int t = 0; t < n_tiles; t++) {
        const int kv0 = kv_begin + t * BN;
        const bool active = kv0 <= warp_hi && kv0 + BN - 1 >= warp_lo; /* uniform in the warp */
        uint32_t p[BN / 16][4];
        cp_async_wait<1>(); /* K(t) (and Q) landed */
        __syncthreads();
        if (active) {
            float s[BN / 8][4];
            warp_scores<D, BN>(q_warp, k_s, s, lane);
            warp_softmax<D, BN>(s, p, st, kv0, lo, hi, a.scale, a.softcap, lane);
        }
        __syncthreads(); /* every warp is done with k_s */
        if (t + 1 < n_tiles)
            load_kv_tile<D, BN, THREADS>(k_s, a.key_cache, table, a.block_size, a.kv_dim, kv_head, kv0 + BN, kv_lo,
                                         kv_hi, tid);
        cp_async_commit();
        cp_async_wait<1>(); /* V(t) landed */
        __syncthreads();
        if (active) warp_pv<D, BN>(p, v_s, st.o, lane);
        __syncthreads(); /* every warp is done with v_s */
        if (t + 1 < n_tiles)
            load_kv_tile<D, BN, THREADS>(v_s, a.value_cache, table, a.block_size, a.kv_dim, kv_head, kv0 + BN, kv_lo,
                                         kv_hi, tid);
        cp_async_commit();
    }
    cp_async_wait<0>();

    /* normalise, stage the warp's 16 rows as bf16 in its own Q rows (no other warp reads
     * them), then store whole 16-byte pieces of each output row */
    float inv[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const float l = quad_sum(st.l[h]);
        inv[h] = l > 0.0f ? 1.0f / l : 0.0f; /* 0 only for rows past the tile */
    }
    uint16_t *o_s = q_s + warp * 16 * STRIDE;
#pragma unroll
    for (int i = 0; i < D / 8; i++)
#pragma unroll
        for (int h = 0; h < 2; h++)
            *reinterpret_cast<uint32_t *>(o_s + acc_row(lane, 2 * h) * STRIDE + i * 8 + acc_col(lane, 0)) =
                pack_bf16(st.o[i][2 * h] * inv[h], st.o[i][2 * h + 1] * inv[h]);
    __syncwarp();
    for (int c = lane; c < 16 * CHUNKS; c += 32) {
        const int r = warp * 16 + c / CHUNKS, chunk = c % CHUNKS;
        if (r >= rows) continue;
        *reinterpret_cast<uint4 *>(a.out + ((size_t)row_token(r) * a.n_heads + row_head(r)) * D + chunk * 8) =
            *reinterpret_cast<const uint4 *>(q_s + r * STRIDE + chunk * 8);
    }
}

/* ---- decode -------------------------------------------------------------------------- */

struct decode_args {
    const uint16_t *q;                       /* [n, n_heads, D] */
    const uint16_t *key_cache, *value_cache; /* [n_blocks, block_size, kv_dim] */
    const int32_t *block_tables;             /* [n_seqs, table_stride] */
    int table_stride, block_size;
    const int32_t *positions, *seq_of; /* [n] */
    const int32_t *token_list;         /* [gridDim.x] batch tokens to compute, or NULL: all */
    int n_heads, group, kv_dim, head_chunks;
    float scale, softcap;
    int window, n_splits, split_size;
    float2 *partial_ml; /* [gridDim.x, n_heads, n_splits] (max, sum), when n_splits > 1 */
    float *partial_o;   /* [gridDim.x, n_heads, n_splits, D] unnormalised, when n_splits > 1 */
    uint16_t *out;      /* [n, n_heads, D] */
};

template <int D> constexpr int decode_tile_keys() { return D > 128 ? 16 : 32; }

template <int D> constexpr size_t decode_smem_bytes() {
    return (size_t)(DEC_ROWS + DEC_WARPS * 2 * decode_tile_keys<D>()) * (D + PAD) * 2;
}

template <int D, int BN>
__global__ void __launch_bounds__(DEC_WARPS * 32) flash_decode_kernel(const decode_args a) {
    constexpr int THREADS = DEC_WARPS * 32, STRIDE = D + PAD, CHUNKS = D / 8;
    /* the warps' K/V buffers are reused for their fp32 outputs at the end */
    static_assert(DEC_ROWS * D * 4 <= 2 * BN * STRIDE * 2, "merge scratch fits in a warp's K/V buffers");
    extern __shared__ uint4 smem[];
    uint16_t *q_s = reinterpret_cast<uint16_t *>(smem); /* [DEC_ROWS, STRIDE] */
    uint16_t *kv_s = q_s + DEC_ROWS * STRIDE;            /* per warp: K [BN, STRIDE], V [BN, STRIDE] */
    __shared__ float merge_m[DEC_WARPS][DEC_ROWS], merge_l[DEC_WARPS][DEC_ROWS];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int item = blockIdx.x, split = blockIdx.y;
    const int token = a.token_list ? a.token_list[item] : item;
    const int kv_head = blockIdx.z / a.head_chunks, chunk = blockIdx.z % a.head_chunks;
    const int head0 = kv_head * a.group + chunk * DEC_ROWS, rows = min(DEC_ROWS, a.group - chunk * DEC_ROWS);
    const int pos = a.positions[token];
    int lo, hi;
    split_keys(first_visible(a.window, pos), pos, split, a.n_splits, a.split_size, &lo, &hi);
    /* partial of (item, head0 + r, split) at part + r·n_splits */
    const size_t part = ((size_t)item * a.n_heads + head0) * a.n_splits + split;
    /* Nothing to see: a padding token, or a split past the keys a token sees (with one
     * split only for a bad position, which a replayed graph cannot check on the host):
     * zeros, or an empty partial the combine skips. */
    if (a.seq_of[token] < 0 || lo > hi) {
        if (a.n_splits == 1)
            for (int c = tid; c < rows * D; c += THREADS) a.out[((size_t)token * a.n_heads + head0 + c / D) * D + c % D] = 0;
        else
            for (int r = tid; r < rows; r += THREADS) a.partial_ml[part + (size_t)r * a.n_splits] = make_float2(-INFINITY, 0.0f);
        return;
    }
    const int32_t *table = a.block_tables + (size_t)a.seq_of[token] * a.table_stride;

    for (int c = tid; c < DEC_ROWS * CHUNKS; c += THREADS) {
        const int r = c / CHUNKS, ch = c % CHUNKS;
        const uint16_t *src = r < rows ? a.q + ((size_t)token * a.n_heads + head0 + r) * D + ch * 8 : a.q;
        cp_async_16(q_s + r * STRIDE + ch * 8, src, r < rows);
    }
    cp_async_commit();
    uint16_t *k_s = kv_s + warp * 2 * BN * STRIDE, *v_s = k_s + BN * STRIDE;
    const int n_tiles = (hi - lo) / BN + 1; /* warp w takes tiles w, w + DEC_WARPS, … */
    if (warp < n_tiles)
        load_kv_tile<D, BN, 32>(k_s, a.key_cache, table, a.block_size, a.kv_dim, kv_head, lo + warp * BN, lo, hi, lane);
    cp_async_commit();
    if (warp < n_tiles)
        load_kv_tile<D, BN, 32>(v_s, a.value_cache, table, a.block_size, a.kv_dim, kv_head, lo + warp * BN, lo, hi,
                                lane);
    cp_async_commit();
    cp_async_wait<2>(); /* Q landed (groups: Q, K, V) */
    __syncthreads();    /* … for every thread's share of it */

    warp_state<D> st;
    warp_state_init(st);
    const int lo2[2] = {lo, lo}, hi2[2] = {hi, hi}; /* every row of the block is the same query token */
    for (int t = warp; t < n_tiles; t += DEC_WARPS) {
        const int kv0 = lo + t * BN, next = kv0 + DEC_WARPS * BN; /* this warp's next tile */
        float s[BN / 8][4];
        uint32_t p[BN / 16][4];
        cp_async_wait<1>(); /* K(t) landed */
        __syncwarp();
        warp_scores<D, BN>(q_s, k_s, s, lane);
        warp_softmax<D, BN>(s, p, st, kv0, lo2, hi2, a.scale, a.softcap, lane);
        __syncwarp(); /* every lane is done with k_s */
        if (t + DEC_WARPS < n_tiles)
            load_kv_tile<D, BN, 32>(k_s, a.key_cache, table, a.block_size, a.kv_dim, kv_head, next, lo, hi, lane);
        cp_async_commit();
        cp_async_wait<1>(); /* V(t) landed */
        __syncwarp();
        warp_pv<D, BN>(p, v_s, st.o, lane);
        __syncwarp(); /* every lane is done with v_s */
        if (t + DEC_WARPS < n_tiles)
            load_kv_tile<D, BN, 32>(v_s, a.value_cache, table, a.block_size, a.kv_dim, kv_head, next, lo, hi, lane);
        cp_async_commit();
    }
    cp_async_wait<0>();

    /* merge the warps: each writes (max, sum, output) of its 16 rows, then the block
     * combines them per row (a warp without tiles holds −inf, 0, zeros: weight 0) */
    float l[2] = {quad_sum(st.l[0]), quad_sum(st.l[1])};
    __syncthreads(); /* every warp is done with its K/V buffers */
    float *merge_o = reinterpret_cast<float *>(kv_s) + (size_t)warp * DEC_ROWS * D; /* [DEC_ROWS, D] per warp */
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int r = acc_row(lane, 2 * h);
        if ((lane & 3) == 0) merge_m[warp][r] = st.m[h], merge_l[warp][r] = l[h];
#pragma unroll
        for (int i = 0; i < D / 8; i++)
            *reinterpret_cast<float2 *>(merge_o + r * D + i * 8 + acc_col(lane, 0)) =
                make_float2(st.o[i][2 * h], st.o[i][2 * h + 1]);
    }
    __syncthreads();
    const float *all_o = reinterpret_cast<const float *>(kv_s);
    for (int c = tid; c < rows * D; c += THREADS) {
        const int r = c / D, d = c % D;
        float row_max = -INFINITY, sum = 0.0f, o = 0.0f;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) row_max = fmaxf(row_max, merge_m[w][r]);
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) {
            const float weight = exp2f(merge_m[w][r] - row_max); /* finite: warp 0 saw key lo */
            sum += weight * merge_l[w][r];
            o += weight * all_o[((size_t)w * DEC_ROWS + r) * D + d];
        }
        if (a.n_splits == 1) {
            a.out[((size_t)token * a.n_heads + head0 + r) * D + d] = dev_f32_to_bf16(o / sum);
        } else {
            a.partial_o[(part + (size_t)r * a.n_splits) * D + d] = o;
            if (d == 0) a.partial_ml[part + (size_t)r * a.n_splits] = make_float2(row_max, sum);
        }
    }
}

/* out[token, head] = Σ_s 2^(m_s − M) · o_s / Σ_s 2^(m_s − M) · l_s over the splits with a
 * non-empty partial (empty ones are exactly (−inf, 0); at least split 0 is non-empty,
 * but for a padding token, whose output is zero). A NaN in a partial (a split whose
 * scores are all NaN leaves m = −inf, l = NaN) is kept, as one split would keep it.
 * One block per (list item, head). */
__global__ void __launch_bounds__(128)
    flash_combine_kernel(const float2 *__restrict__ partial_ml, const float *__restrict__ partial_o,
                         const int32_t *__restrict__ token_list, int n_heads, int head_dim, int n_splits,
                         uint16_t *__restrict__ out) {
    const int item = blockIdx.x / n_heads, head = blockIdx.x % n_heads;
    const int token = token_list ? token_list[item] : item;
    const size_t base = ((size_t)item * n_heads + head) * n_splits;
    float row_max = -INFINITY;
    bool seen = false; /* a non-empty split: empty ones are exactly (−inf, 0); a NaN counts */
    for (int s = 0; s < n_splits; s++) {
        const float2 ml = partial_ml[base + s];
        if (ml.x != -INFINITY || ml.y != 0.0f) row_max = fmaxf(row_max, ml.x), seen = true;
    }
    float sum = 0.0f;
    for (int s = 0; s < n_splits; s++) {
        const float2 ml = partial_ml[base + s];
        if (ml.x != -INFINITY || ml.y != 0.0f) sum += exp2f(ml.x - row_max) * ml.y;
    }
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < n_splits; s++) {
            const float2 ml = partial_ml[base + s];
            if (ml.x != -INFINITY || ml.y != 0.0f) o += exp2f(ml.x - row_max) * partial_o[(base + s) * head_dim + d];
        }
        out[((size_t)token * n_heads + head) * head_dim + d] = seen ? dev_f32_to_bf16(o / sum) : 0;
    }
}

/* ---- host side ----------------------------------------------------------------------- */

int ceil_div(long long a, long long b) { return (int)((a + b - 1) / b); }
size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

const char *const VARIANT_NAMES[ATTENTION_VARIANT_COUNT] = {
    "auto", "naive", "flash_m64", "flash_m128", "split_kv", "split_kv_256", "split_kv_1024", "split_kv_none"};


/* attention_decode_split's fixed_size of a split-KV variant (AUTO uses ATTENTION_SPLIT_KV's) */
int split_fixed_size(attention_variant v) {
    switch (v) {
    case ATTENTION_SPLIT_KV_256: return 256;
    case ATTENTION_SPLIT_KV_1024: return 1024;
    case ATTENTION_SPLIT_KV_NONE: return -1;
    default: return 0;
    }
}

int device_attribute(cudaDeviceAttr attr, int fallback) {
    int device = 0, value = 0;
    if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&value, attr, device) != cudaSuccess) {
        (void)cudaGetLastError(); /* no device: the launch reports it */
        return fallback;
    }
    return value;
}
int sm_count(void) { return device_attribute(cudaDevAttrMultiProcessorCount, 132); }

/* The most keys a query can see: the window, or the context bound. */
int max_visible(const attention_launch *a) {
    const long long context = a->max_context > 0 ? a->max_context : (long long)a->table_stride * a->block_size;
    const long long visible = a->window > 0 && a->window < context ? a->window : context;
    /* room for the split arithmetic's rounding up to whole 128-key granules */
    return visible > INT_MAX - 1024 ? INT_MAX - 1024 : (int)visible;
}

attention_split decode_split(const attention_launch *a, int n_items, attention_variant v, int sms) {
    return attention_decode_split(n_items, a->n_kv_heads, a->n_heads / a->n_kv_heads, max_visible(a),
                                  split_fixed_size(attention_variant_is_split(v) ? v : ATTENTION_SPLIT_KV), sms);
}

/* Partials of `units` (item, head, split) triples: (max, sum) pairs, then outputs. */
size_t partial_bytes(size_t units, int head_dim) {
    return align256(units * sizeof(float2)) + align256(units * head_dim * sizeof(float));
}

/* Where a variant keeps its scratch in the workspace: the prefill plan's tiles, the lone
 * tokens AUTO gives the decode kernel, the decode partials. Sizes are bounds over every
 * batch of n tokens with these shapes. */
struct ws_layout {
    size_t tiles, singles, partials, total; /* offsets, then the bytes in all */
};

ws_layout layout_of(const attention_launch *a, attention_variant v, int sms) {
    const int group = a->n_heads / a->n_kv_heads;
    ws_layout l = {0, 0, 0, 0};
    if (attention_variant_is_split(v)) {
        const attention_split s = decode_split(a, a->n, v, sms);
        if (v == ATTENTION_SPLIT_KV) /* fewer tokens get more splits: AUTO's bound over every k <= n, so
                                        a recording engine's start-up step sizes it once */
            l.total = partial_bytes(attention_auto_partial_items(a->n, a->n_kv_heads, group, sms) * a->n_heads,
                                    a->head_dim);
        else /* a fixed split size: the splits do not depend on the tokens */
            l.total = s.n_splits > 1 ? partial_bytes((size_t)a->n * a->n_heads * s.n_splits, a->head_dim) : 0;
        return l;
    }
    /* AUTO may pick BLOCK_M 64, which makes the most tiles */
    const int block_m = v == ATTENTION_FLASH_M128 ? 128 : 64;
    l.singles = align256((size_t)attention_plan_max_tiles(a->n, group, block_m) * sizeof(attention_tile));
    if (attention_variant_is_flash(v)) {
        l.total = l.singles;
        return l;
    }
    l.partials = l.singles + align256((size_t)a->n * sizeof(int32_t));
    /* AUTO's decode covers any k <= n tokens, and fewer tokens get more splits */
    l.total = l.partials +
              partial_bytes(attention_auto_partial_items(a->n, a->n_kv_heads, group, sms) * a->n_heads, a->head_dim);
    return l;
}

gale_status invalid(const char *variant, const char *what) {
    return gale_error(GALE_ERR_INVALID_ARG, "attention (%s): %s", variant, what);
}

gale_status check_args(const attention_launch *a, attention_variant v) {
    if (!a) return gale_error(GALE_ERR_INVALID_ARG, "attention: no launch arguments");
    if ((int)v < 0 || v >= ATTENTION_VARIANT_COUNT)
        return gale_error(GALE_ERR_INVALID_ARG, "attention: variant %d", (int)v);
    const char *name = VARIANT_NAMES[v];
    if (a->n < 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads || a->head_dim <= 0 ||
        a->block_size <= 0 || a->table_stride <= 0 || a->window < 0 || a->max_context < 0 || !(a->softcap >= 0.0f && isfinite(a->softcap)) ||
        !isfinite(a->scale))
        return gale_error(GALE_ERR_INVALID_ARG,
                          "attention (%s): %d tokens, %d/%d heads of %d, blocks of %d, table stride %d, window %d, "
                          "max context %d, scale %g, softcap %g: bad shape",
                          name, a->n, a->n_heads, a->n_kv_heads, a->head_dim, a->block_size, a->table_stride, a->window,
                          a->max_context, (double)a->scale, (double)a->softcap);
    if (v != ATTENTION_NAIVE && a->head_dim != 64 && a->head_dim != 128 && a->head_dim != 256)
        return gale_error(GALE_ERR_UNSUPPORTED,
                          "attention (%s): head_dim %d (64, 128 or 256; the naive variant takes any up to 256)", name,
                          a->head_dim);
    if ((long long)a->n * a->n_heads > INT_MAX || a->n_kv_heads > 65535)
        return gale_error(GALE_ERR_INVALID_ARG, "attention (%s): %d tokens × %d heads (%d KV) is too many", name, a->n,
                          a->n_heads, a->n_kv_heads);
    if (a->n == 0) return GALE_OK;
    if (!a->q || !a->key_cache || !a->value_cache || !a->block_tables || !a->positions || !a->seq_of || !a->out)
        return invalid(name, "NULL buffer");
    const uintptr_t addresses =
        (uintptr_t)a->q | (uintptr_t)a->key_cache | (uintptr_t)a->value_cache | (uintptr_t)a->out;
    if (v != ATTENTION_NAIVE && (addresses & 15u)) return invalid(name, "q, caches and out must be 16-byte aligned");
    if (!a->host_positions != !a->host_seq_of) return invalid(name, "host_positions and host_seq_of go together");
    if (attention_variant_is_flash(v) && !a->host_positions)
        return invalid(name, "the prefill kernel plans on the host copies of positions and seq_of, which are NULL");
    if (a->host_positions) {
        const long long capacity = (long long)a->table_stride * a->block_size;
        for (int i = 0; i < a->n; i++)
            if (a->host_seq_of[i] >= 0 && (a->host_positions[i] < 0 || a->host_positions[i] >= capacity))
                return gale_error(GALE_ERR_INVALID_ARG,
                                  "attention (%s): token %d at position %d of sequence %d (tables hold %lld positions)",
                                  name, i, a->host_positions[i], a->host_seq_of[i], capacity);
    }
    return GALE_OK;
}

/* Dynamic shared memory over 48 KiB needs the kernel's opt-in (allowed under graph capture);
 * with the kernel's static shared memory it must fit what the GPU gives a block. */
template <typename Kernel> gale_status set_smem(Kernel kernel, size_t bytes, const char *what) {
    /* once per (GPU, kernel) and size: later launches (a recording graph's among them) make
     * no function-attribute calls. The attribute is the current device's, so each GPU gets
     * its own; the lock keeps engines on different threads apart. */
    struct opted_in {
        const void *kernel;
        int device;
        size_t bytes;
    };
    static std::mutex lock;
    static opted_in done[128];
    static int n_done;
    int device = 0;
    CUDA_TRY(cudaGetDevice(&device), what);
    std::lock_guard<std::mutex> guard(lock);
    for (int i = 0; i < n_done; i++)
        if (done[i].kernel == reinterpret_cast<const void *>(kernel) && done[i].device == device && done[i].bytes >= bytes)
            return GALE_OK;
    cudaFuncAttributes attributes;
    CUDA_TRY(cudaFuncGetAttributes(&attributes, kernel), what);
    const int most = device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 * 1024);
    if (bytes + attributes.sharedSizeBytes > (size_t)most)
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: %zu bytes of shared memory, this GPU gives a block %d", what,
                          bytes + attributes.sharedSizeBytes, most);
    CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes), what);
    if (n_done < 128) done[n_done++] = opted_in{reinterpret_cast<const void *>(kernel), device, bytes};
    return GALE_OK;
}

template <int D, int BM>
gale_status launch_prefill(const prefill_args &args, int n_tiles, int n_kv_heads, cudaStream_t stream) {
    constexpr int BN = D > 128 ? 32 : 64;
    constexpr size_t smem = prefill_smem_bytes<D, BM, BN>();
    const char *what = BM == 64 ? "flash attention prefill (BLOCK_M 64)" : "flash attention prefill (BLOCK_M 128)";
    GALE_TRY(set_smem(flash_prefill_kernel<D, BM, BN>, smem, what));
    /* n_tiles · n_kv_heads ≤ n · n_heads (a tile holds a row at least), checked ≤ INT_MAX */
    flash_prefill_kernel<D, BM, BN><<<(unsigned)n_tiles * (unsigned)n_kv_heads, BM * 2, smem, stream>>>(args);
    return cuda_check_launch(what);
}

template <int BM>
gale_status prefill_for_dim(const prefill_args &args, int head_dim, int n_tiles, int n_kv_heads, cudaStream_t stream) {
    switch (head_dim) {
    case 64: return launch_prefill<64, BM>(args, n_tiles, n_kv_heads, stream);
    case 128: return launch_prefill<128, BM>(args, n_tiles, n_kv_heads, stream);
    default: return launch_prefill<256, BM>(args, n_tiles, n_kv_heads, stream);
    }
}

template <int D> gale_status launch_decode(const decode_args &args, int n_items, int n_kv_heads, cudaStream_t stream) {
    constexpr size_t smem = decode_smem_bytes<D>();
    const char *what = "flash attention decode (split KV)";
    GALE_TRY(set_smem(flash_decode_kernel<D, decode_tile_keys<D>()>, smem, what));
    const dim3 grid((unsigned)n_items, (unsigned)args.n_splits, (unsigned)(n_kv_heads * args.head_chunks));
    flash_decode_kernel<D, decode_tile_keys<D>()><<<grid, DEC_WARPS * 32, smem, stream>>>(args);
    return cuda_check_launch(what);
}

/* The fields the prefill and decode kernels' arguments share, from the launch. */
template <typename Args> void set_common_args(Args &args, const attention_launch *a) {
    args.q = static_cast<const uint16_t *>(a->q);
    args.key_cache = static_cast<const uint16_t *>(a->key_cache);
    args.value_cache = static_cast<const uint16_t *>(a->value_cache);
    args.block_tables = a->block_tables;
    args.table_stride = a->table_stride;
    args.block_size = a->block_size;
    args.positions = a->positions;
    args.seq_of = a->seq_of;
    args.n_heads = a->n_heads;
    args.group = a->n_heads / a->n_kv_heads;
    args.kv_dim = a->n_kv_heads * a->head_dim;
    args.scale = a->scale;
    args.softcap = a->softcap;
    args.window = a->window;
    args.out = static_cast<uint16_t *>(a->out);
}

/* The decode kernel, then the combine when the keys are split, over n_items tokens: all of
 * them, or those of token_list (device). partials: partial_bytes of scratch. */
gale_status run_decode(const attention_launch *a, const int32_t *token_list, int n_items, attention_split s,
                       char *partials, cudaStream_t stream) {
    const int group = a->n_heads / a->n_kv_heads, chunks = ceil_div(group, DEC_ROWS);
    if (s.n_splits > 65535 || (long long)a->n_kv_heads * chunks > 65535)
        return gale_error(GALE_ERR_UNSUPPORTED, "attention decode: %d splits, %d KV heads × %d head chunks",
                          s.n_splits, a->n_kv_heads, chunks);
    const size_t units = (size_t)n_items * a->n_heads * s.n_splits;
    decode_args args;
    set_common_args(args, a);
    args.token_list = token_list;
    args.head_chunks = chunks;
    args.n_splits = s.n_splits;
    args.split_size = s.split_size;
    args.partial_ml = s.n_splits > 1 ? reinterpret_cast<float2 *>(partials) : NULL;
    args.partial_o = s.n_splits > 1 ? reinterpret_cast<float *>(partials + align256(units * sizeof(float2))) : NULL;
    gale_status status;
    switch (a->head_dim) {
    case 64: status = launch_decode<64>(args, n_items, a->n_kv_heads, stream); break;
    case 128: status = launch_decode<128>(args, n_items, a->n_kv_heads, stream); break;
    default: status = launch_decode<256>(args, n_items, a->n_kv_heads, stream); break;
    }
    if (status != GALE_OK || s.n_splits == 1) return status;
    flash_combine_kernel<<<(unsigned)((size_t)n_items * a->n_heads), 128, 0, stream>>>(
        args.partial_ml, args.partial_o, token_list, a->n_heads, a->head_dim, s.n_splits, args.out);
    return cuda_check_launch("flash attention decode combine");
}

/* The prefill plan (tiles, and for AUTO the lone tokens) on the host. */
struct host_plan {
    attention_tile *tiles;
    int32_t *singles; /* NULL unless the lone tokens go apart */
    int n_tiles, n_singles;
};

gale_status build_plan(const attention_launch *a, int block_m, bool singles_apart, host_plan *plan) {
    const int group = a->n_heads / a->n_kv_heads, most = attention_plan_max_tiles(a->n, group, block_m);
    *plan = host_plan{NULL, NULL, 0, 0};
    plan->tiles = static_cast<attention_tile *>(malloc((size_t)most * sizeof(attention_tile)));
    plan->singles = singles_apart ? static_cast<int32_t *>(malloc((size_t)a->n * sizeof(int32_t))) : NULL;
    if (!plan->tiles || (singles_apart && !plan->singles)) {
        free(plan->tiles), free(plan->singles);
        return gale_error(GALE_ERR_OOM, "attention: out of memory for the plan of %d tokens", a->n);
    }
    plan->n_tiles = attention_plan_tiles(a->host_positions, a->host_seq_of, a->n, group, block_m, plan->tiles,
                                         plan->singles, singles_apart ? &plan->n_singles : NULL);
    return GALE_OK;
}

/* Host memory → workspace on the stream. The memory is pageable, so the copy has read it
 * when cudaMemcpyAsync returns (the plan is freed right after). */
gale_status upload(void *dst, const void *src, size_t bytes, cudaStream_t stream, const char *what) {
    return cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), what);
}

/* plan->tiles NULL: the tiles are in device_tiles already (a memo's plan) */
gale_status run_prefill(const attention_launch *a, int block_m, const host_plan *plan, char *device_tiles,
                        cudaStream_t stream) {
    if (plan->n_tiles == 0) return GALE_OK;
    if (plan->tiles)
        GALE_TRY(upload(device_tiles, plan->tiles, (size_t)plan->n_tiles * sizeof(attention_tile), stream,
                        "flash attention prefill plan"));
    prefill_args args;
    set_common_args(args, a);
    args.tiles = reinterpret_cast<const attention_tile *>(device_tiles);
    return block_m == 128 ? prefill_for_dim<128>(args, a->head_dim, plan->n_tiles, a->n_kv_heads, stream)
                          : prefill_for_dim<64>(args, a->head_dim, plan->n_tiles, a->n_kv_heads, stream);
}

/* AUTO's BLOCK_M: 128 (twice the K/V reuse) when the batch still gives two blocks per SM. */
int auto_block_m(const attention_launch *a, int sms) {
    if (a->head_dim > 128) return 64;
    const long long rows = (long long)a->n * (a->n_heads / a->n_kv_heads);
    return (rows + 127) / 128 * a->n_kv_heads >= 2LL * sms ? 128 : 64;
}

/* The flash variants, and AUTO with host arrays: tiles for the prefill kernel; for AUTO,
 * the lone tokens to the decode kernel. */
gale_status run_planned(const attention_launch *a, attention_variant v, const ws_layout &layout, int sms,
                        cudaStream_t stream) {
    char *ws = static_cast<char *>(a->workspace);
    const bool auto_mode = v == ATTENTION_AUTO;
    const int block_m = auto_mode ? auto_block_m(a, sms) : v == ATTENTION_FLASH_M128 ? 128 : 64;
    const int group = a->n_heads / a->n_kv_heads;
    attention_plan_memo *memo = a->memo;
    const bool kept = memo && a->plan_key && memo->key == a->plan_key && memo->workspace == a->workspace &&
                      memo->n == a->n && memo->group == group && memo->block_m == block_m &&
                      memo->variant == (int)v;
    host_plan plan = {NULL, NULL, 0, 0};
    if (kept) { /* the tiles and lone tokens are in the workspace from an earlier layer */
        plan.n_tiles = memo->n_tiles;
        plan.n_singles = memo->n_singles;
        memo->reuses++;
    } else {
        if (memo) memo->key = 0; /* the workspace's plan is about to change */
        GALE_TRY(build_plan(a, block_m, auto_mode, &plan));
    }
    gale_status status = GALE_OK;
    if (auto_mode && plan.n_tiles == 0) { /* every token alone: the decode kernel over all of them */
        status = run_decode(a, NULL, a->n, decode_split(a, a->n, v, sms), ws + layout.partials, stream);
    } else {
        status = run_prefill(a, block_m, &plan, ws + layout.tiles, stream);
        if (status == GALE_OK && plan.n_singles > 0 && !kept)
            status = upload(ws + layout.singles, plan.singles, (size_t)plan.n_singles * sizeof(int32_t), stream,
                            "attention lone-token list");
        if (status == GALE_OK && plan.n_singles > 0)
            status = run_decode(a, reinterpret_cast<const int32_t *>(ws + layout.singles), plan.n_singles,
                                decode_split(a, plan.n_singles, v, sms), ws + layout.partials, stream);
    }
    if (status == GALE_OK && memo && a->plan_key && !kept)
        *memo = attention_plan_memo{a->plan_key, a->workspace,   a->n,           group,       block_m,
                                    (int)v,      plan.n_tiles, plan.n_singles, memo->reuses};
    free(plan.tiles);
    free(plan.singles);
    return status;
}

int compare_tiles(const void *x, const void *y) {
    const attention_tile *a = static_cast<const attention_tile *>(x), *b = static_cast<const attention_tile *>(y);
    if (a->keys != b->keys) return a->keys > b->keys ? -1 : 1; /* most work first: the long tiles start early */
    if (a->first_token != b->first_token) return a->first_token < b->first_token ? -1 : 1;
    return (a->first_row > b->first_row) - (a->first_row < b->first_row);
}

} // namespace

/* ---- C entry points ------------------------------------------------------------------ */

extern "C" int attention_plan_max_tiles(int n, int group, int block_m) {
    if (n <= 0 || group <= 0 || block_m <= 0) return 0;
    /* Σ over runs of ceil(len·group / block_m) <= n·group / block_m + runs, and runs <= n */
    const long long most = (long long)n + ((long long)n * group + block_m - 1) / block_m;
    return most > INT_MAX ? INT_MAX : (int)most;
}

extern "C" int attention_plan_tiles(const int32_t *positions, const int32_t *seq_of, int n, int group, int block_m,
                                    attention_tile *tiles, int32_t *singles, int *n_singles) {
    int count = 0, lone = 0;
    for (int i = 0; i < n;) {
        int len = 1;
        while (i + len < n && attention_token_continues_run(positions, seq_of, i + len - 1)) len++;
        if (len == 1 && singles) {
            singles[lone++] = i;
        } else {
            const long long rows = (long long)len * group;
            for (long long row = 0; row < rows; row += block_m) {
                const long long last = row + block_m - 1 < rows ? row + block_m - 1 : rows - 1;
                tiles[count++] = attention_tile{i, len, (int32_t)row, positions[i + last / group] + 1};
            }
        }
        i += len;
    }
    qsort(tiles, (size_t)count, sizeof *tiles, compare_tiles);
    if (n_singles) *n_singles = lone;
    return count;
}

extern "C" attention_split attention_decode_split(int n_tokens, int n_kv_heads, int group, int max_visible,
                                                  int fixed_size, int sm_count) {
    const int visible = max_visible > 1 ? max_visible : 1;
    int size;
    if (fixed_size < 0) {
        size = ceil_div(visible, SPLIT_GRANULE) * SPLIT_GRANULE;
    } else if (fixed_size > 0) {
        size = ceil_div(fixed_size, SPLIT_GRANULE) * SPLIT_GRANULE;
        if (ceil_div(visible, size) > FIXED_MAX_SPLITS)
            size = ceil_div(ceil_div(visible, FIXED_MAX_SPLITS), SPLIT_GRANULE) * SPLIT_GRANULE;
    } else { /* about 4 blocks per SM, each with at least a granule of keys */
        const long long blocks = (long long)(n_tokens > 1 ? n_tokens : 1) * (n_kv_heads > 1 ? n_kv_heads : 1) *
                                 ceil_div(group > 1 ? group : 1, DEC_ROWS);
        long long want = (4LL * (sm_count > 1 ? sm_count : 1) + blocks - 1) / blocks;
        const int most = ceil_div(visible, SPLIT_GRANULE);
        want = want > AUTO_MAX_SPLITS ? AUTO_MAX_SPLITS : want;
        want = want > most ? most : want < 1 ? 1 : want;
        size = ceil_div(ceil_div(visible, (int)want), SPLIT_GRANULE) * SPLIT_GRANULE;
    }
    return attention_split{ceil_div(visible, size), size};
}

/* With B blocks a token and X = ceil(4·SMs / B), the automatic count for k tokens is at
 * most ceil(4·SMs / (k·B)), so k·splits < X + k. Partials exist only with two splits or
 * more, which needs k·B < 4·SMs, i.e. k < X: k·splits < X + min(n, X) whatever n is — a
 * prefill of many tokens reserves no more than a decode step does. */
extern "C" size_t attention_auto_partial_items(int n, int n_kv_heads, int group, int sm_count) {
    const long long blocks_per_token = (long long)(n_kv_heads > 1 ? n_kv_heads : 1) * ceil_div(group > 1 ? group : 1, DEC_ROWS);
    const long long most_split = (4LL * (sm_count > 1 ? sm_count : 1) + blocks_per_token - 1) / blocks_per_token;
    return (size_t)((n < most_split ? n : most_split) + most_split);
}

extern "C" void attention_split_range(int first, int pos, int split, attention_split s, int *lo, int *hi) {
    split_keys(first, pos, split, s.n_splits, s.split_size, lo, hi);
}

extern "C" const char *attention_variant_name(attention_variant v) {
    return (int)v >= 0 && v < ATTENTION_VARIANT_COUNT ? VARIANT_NAMES[v] : NULL;
}

extern "C" bool attention_variant_parse(const char *name, attention_variant *out) {
    for (int v = 0; name && v < ATTENTION_VARIANT_COUNT; v++)
        if (strcmp(name, VARIANT_NAMES[v]) == 0) {
            *out = (attention_variant)v;
            return true;
        }
    return false;
}

extern "C" size_t kernel_attention_workspace_bytes(const attention_launch *a, attention_variant v) {
    if (check_args(a, v) != GALE_OK || a->n == 0 || v == ATTENTION_NAIVE) return 0;
    return layout_of(a, v, sm_count()).total;
}

extern "C" gale_status kernel_attention_bf16(const attention_launch *a, attention_variant v, void *stream_ptr) {
    GALE_TRY(check_args(a, v));
    if (a->n == 0) return GALE_OK;
    cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
    if (v == ATTENTION_NAIVE)
        return kernel_paged_attention_bf16(a->q, a->key_cache, a->value_cache, a->block_tables, a->table_stride,
                                           a->block_size, a->positions, a->seq_of, a->n, a->n_heads, a->n_kv_heads,
                                           a->head_dim, a->scale, a->softcap, a->window, a->out, stream);
    const int sms = sm_count();
    const ws_layout layout = layout_of(a, v, sms);
    if (layout.total > 0 && (!a->workspace || a->workspace_bytes < layout.total || ((uintptr_t)a->workspace & 255u)))
        return gale_error(GALE_ERR_INVALID_ARG,
                          "attention (%s): workspace of %zu bytes at %p, %zu bytes 256-byte aligned needed",
                          VARIANT_NAMES[v], a->workspace_bytes, a->workspace, layout.total);
    if (attention_variant_is_split(v) || !a->host_positions) /* the decode kernel over every token */
        return run_decode(a, NULL, a->n, decode_split(a, a->n, v, sms),
                          static_cast<char *>(a->workspace) + layout.partials, stream);
    return run_planned(a, v, layout, sms, stream);
}
