/* Sampling on the GPU: each row of logits becomes one token id, so only ids travel back
 * to the host each step. The rules are the CPU sampler's (src/engine/sampler.c): the
 * penalties, then temperature 0 → argmax (lowest id on ties); otherwise top-k on the
 * unscaled logits, temperature, top-p, min-p, and a draw — here from cuRAND's Philox,
 * keyed by the request's seed at outputs 2·draw and 2·draw + 1 (draw: the request's draw
 * counter), so a request's tokens do not depend on the batch it ran in.
 *
 * Two kernels per step:
 *   prepare_kernel  bf16 logits [rows, vocab] → fp32 workspace [rows, vocab], then each
 *                   row's penalties (one block per row walks its (id, count) pairs:
 *                   distinct ids, so no two threads touch one logit);
 *   sample_kernel   one block of SAMPLE_THREADS per row, in passes over the row:
 *     1. argmax of the logits (lowest id on ties): the answer at temperature 0, the
 *        largest scaled logit max otherwise, and the fallback when nothing can be drawn;
 *     2. top-k: the k-th largest logit by a radix select on the order-preserving integer
 *        key of the float (4 passes of 8 bits, a shared histogram of counts); of the
 *        logits equal to it, the lowest ids are kept until k are — the CPU's tie rule;
 *     3. each logit l is overwritten by its probability relative to the top token,
 *        p = expf(l / temperature − max) in the CPU's operations, or DROPPED (−1) outside
 *        top-k or for a NaN: the logits are not needed again (the fallback is already
 *        known), and every later pass reads p instead of recomputing expf;
 *     4. top-p: the same select on the keys of p weighted by probability mass (fixed-point
 *        u64, so the shared-memory sums do not depend on the order of the atomics): the
 *        largest threshold whose set {p ≥ threshold} holds top_p of the mass. Ids tied
 *        exactly at that threshold are all kept, as the CPU keeps them;
 *     5. min-p: p < min_p is dropped — the CPU's probs[i] < min_p · probs[0], as the top
 *        token's p is expf(0) = 1;
 *     6. the draw: u in [0, 1) with 53 bits, as the CPU's, and the id where the running
 *        kept mass (in id order) passes u × the kept mass. The CPU walks its sorted order
 *        instead, so one u picks different ids on the two devices; the distribution is
 *        the same, which tests/test_sample_cuda.c checks statistically.
 * Passes whose result does not depend on order (maxima, histograms, integer sums) read
 * the row strided, i = thread + n·SAMPLE_THREADS, so a warp's load is one cache line.
 * The two that rank ids in id order (top-k's ties, the draw's prefix scan) give thread t
 * the contiguous ids [t·chunk, (t+1)·chunk): "in id order" is then "in thread order, then
 * in chunk order", and every scan is deterministic. */
#include <curand_kernel.h>
#include <math.h>

#include "common.cuh"
#include "kernels.h"

namespace {

constexpr int SAMPLE_THREADS = 1024;
constexpr int WARPS = SAMPLE_THREADS / 32;
constexpr int PREPARE_THREADS = 256;
constexpr unsigned FULL_WARP = 0xffffffffu;
/* probabilities (≤ 1) as fixed point: 2^40 per unit leaves 2^24 units of headroom, far
 * above any vocabulary's total */
constexpr double MASS_ONE = 1099511627776.0;
/* p of an id out of the kept set: below every probability, and of no mass */
constexpr float DROPPED = -1.0f;

/* Order-preserving integer key of a float: a > b ⇔ key(a) > key(b). Every NaN gets 0,
 * below −inf's 0x007fffff, and no number maps there (only the NaN 0xffffffff would), so
 * a NaN logit is never among the top k while a number is left. */
__device__ __forceinline__ uint32_t float_key(float f) {
    if (f != f) return 0u;
    const uint32_t bits = __float_as_uint(f == 0.0f ? 0.0f : f); /* −0 and +0 are one value, as on the CPU */
    return bits & 0x80000000u ? ~bits : bits | 0x80000000u;
}

/* A stored probability as fixed point: 0 for DROPPED, and for p below 2^-40 */
__device__ __forceinline__ unsigned long long mass_of(float p) {
    return p > 0.0f ? (unsigned long long)((double)p * MASS_ONE) : 0ull;
}

struct shared_scratch {
    float f[WARPS];
    int i[WARPS];
    unsigned long long u[WARPS];
    unsigned long long bins[256];                 /* radix histograms (counts or masses) */
    unsigned long long lane_mass[SAMPLE_THREADS]; /* one histogram step's masses, for the match groups' leaders */
    uint32_t prefix, mask;
    unsigned long long remaining, tied;
};

/* Sum of one value per thread, added in thread order: warp partials in a fixed tree, then
 * the warps in order — the same result every run. */
__device__ unsigned long long block_sum_u64(unsigned long long v, shared_scratch &sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_WARP, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh.u[threadIdx.x / 32] = v;
    __syncthreads();
    unsigned long long r = 0;
    for (int w = 0; w < WARPS; w++) r += sh.u[w];
    return r;
}

/* Exclusive prefix sum over threads of one value each (integers: exact). */
__device__ unsigned long long block_exclusive_scan_u64(unsigned long long v, shared_scratch &sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
    unsigned long long inclusive = v;
    for (int o = 1; o < 32; o <<= 1) {
        unsigned long long other = __shfl_up_sync(FULL_WARP, inclusive, o);
        if (lane >= o) inclusive += other;
    }
    __syncthreads();
    if (lane == 31) sh.u[warp] = inclusive;
    __syncthreads();
    unsigned long long before = 0;
    for (int w = 0; w < warp; w++) before += sh.u[w];
    return before + inclusive - v;
}

/* The id of the largest value, the lowest id on ties; *value = that value. */
__device__ int block_argmax(float best, int best_id, shared_scratch &sh, float *value) {
    for (int o = 16; o > 0; o >>= 1) {
        float v = __shfl_xor_sync(FULL_WARP, best, o);
        int id = __shfl_xor_sync(FULL_WARP, best_id, o);
        if (v > best || (v == best && id < best_id)) best = v, best_id = id;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh.f[threadIdx.x / 32] = best, sh.i[threadIdx.x / 32] = best_id;
    __syncthreads();
    float b = sh.f[0];
    int id = sh.i[0];
    for (int w = 1; w < WARPS; w++)
        if (sh.f[w] > b || (sh.f[w] == b && sh.i[w] < id)) b = sh.f[w], id = sh.i[w];
    *value = b;
    return id;
}

/* Radix select over the keys of z[0, vocab): the key k at which the weight of {key > k}
 * is < target ≤ the weight of {key ≥ k}, weights being 1 (BY_MASS false: the target-th
 * largest) or mass_of(z[i]). Returns k; *left = target − weight of {key > k} (how much of
 * the tie at k is needed), *tied = weight of {key = k}.
 * The first passes put most of a row in a few bins, where one shared atomic per id would
 * serialise; so each warp step's ids of one bin (a __match_any_sync group) are added by
 * one lane: the group's size, or its masses summed by that lane (integers: the bins do
 * not depend on the order of the adds). */
template <bool BY_MASS>
__device__ uint32_t radix_select(const float *z, int vocab, unsigned long long target, shared_scratch &sh,
                                 unsigned long long *left, unsigned long long *tied) {
    const int lane = threadIdx.x & 31;
    __syncthreads(); /* the last select's readers of sh.prefix are done */
    if (threadIdx.x == 0) sh.prefix = 0, sh.mask = 0, sh.remaining = target, sh.tied = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += SAMPLE_THREADS) sh.bins[b] = 0;
        __syncthreads();
        const uint32_t prefix = sh.prefix, mask = sh.mask;
        /* every thread takes the same number of steps, so whole warps vote and match */
        for (int base = 0; base < vocab; base += SAMPLE_THREADS) {
            const int i = base + threadIdx.x;
            uint32_t key = 0;
            unsigned long long w = 0;
            if (i < vocab) {
                const float v = z[i];
                key = float_key(v);
                if ((key & mask) == prefix) w = BY_MASS ? mass_of(v) : 1ull; /* the prefix first: most ids fail it */
            }
            const unsigned live = __ballot_sync(FULL_WARP, w != 0);
            if (!live) continue; /* the whole warp */
            const uint32_t bin = (key >> shift) & 255u;
            if constexpr (BY_MASS) {
                sh.lane_mass[threadIdx.x] = w;
                __syncwarp();
            }
            if (w) {
                const unsigned group = __match_any_sync(live, bin);
                if (lane == __ffs(group) - 1) {
                    unsigned long long sum;
                    if constexpr (BY_MASS) {
                        sum = 0;
                        for (unsigned g = group; g; g &= g - 1) sum += sh.lane_mass[(threadIdx.x & ~31u) + __ffs(g) - 1];
                    } else {
                        sum = (unsigned long long)__popc(group);
                    }
                    atomicAdd(&sh.bins[bin], sum);
                }
            }
            if constexpr (BY_MASS) __syncwarp(); /* the leaders' reads before the next step's writes */
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned long long above = 0;
            int b = 255;
            for (; b > 0; b--) {
                if (above + sh.bins[b] >= sh.remaining) break;
                above += sh.bins[b];
            }
            sh.remaining -= above;
            sh.prefix |= (uint32_t)b << shift;
            sh.mask |= 255u << shift;
            if (shift == 0) sh.tied = sh.bins[b];
        }
        __syncthreads();
    }
    *left = sh.remaining;
    *tied = sh.tied;
    return sh.prefix;
}

__global__ void prepare_kernel(const uint16_t *__restrict__ logits, int vocab, const sample_params *__restrict__ params,
                               const int32_t *__restrict__ penalty_ids, const int32_t *__restrict__ penalty_counts,
                               float *__restrict__ z) {
    const int row = blockIdx.x;
    const uint16_t *src = logits + (size_t)row * vocab;
    float *dst = z + (size_t)row * vocab;
    for (int i = threadIdx.x; i < vocab; i += PREPARE_THREADS) dst[i] = dev_bf16_to_f32(src[i]);
    const sample_params p = params[row];
    if (p.penalty_count == 0) return;
    __syncthreads(); /* the pairs below rewrite logits other threads converted */
    for (int j = threadIdx.x; j < p.penalty_count; j += PREPARE_THREADS) {
        const int id = penalty_ids[p.penalty_offset + j];
        const int count = penalty_counts[p.penalty_offset + j];
        float l = dst[id];
        /* transformers' repetition penalty, then OpenAI's presence and frequency — in the
         * CPU sampler's operations, rounded one by one (no contraction into an FMA), so
         * greedy picks the same id on both devices */
        l = l > 0 ? __fdiv_rn(l, p.repetition_penalty) : __fmul_rn(l, p.repetition_penalty);
        dst[id] = __fsub_rn(l, __fadd_rn(p.presence_penalty, __fmul_rn(p.frequency_penalty, (float)count)));
    }
}

/* asking for one block per SM lets ptxas use 64 registers: aiming at two, it spilled at
 * 32 on sm_80 (and the old kernel did on sm_90) */
__global__ void __launch_bounds__(SAMPLE_THREADS, 1)
    sample_kernel(float *__restrict__ z_all, int vocab, const sample_params *__restrict__ params,
                  int32_t *__restrict__ ids) {
    __shared__ shared_scratch sh;
    const int row = blockIdx.x;
    const sample_params p = params[row];
    float *z = z_all + (size_t)row * vocab; /* [vocab] logits, then probabilities from pass 3 on */
    const int chunk = (vocab + SAMPLE_THREADS - 1) / SAMPLE_THREADS;
    const int begin = min(vocab, (int)threadIdx.x * chunk), end = min(vocab, begin + chunk);

    /* 1. the greedy pick (strided: each thread sees its ids in increasing order, so the
     * lowest id wins ties within a thread, and block_argmax across threads) */
    float max_l = -INFINITY;
    int top = vocab;
    for (int i = threadIdx.x; i < vocab; i += SAMPLE_THREADS) {
        const float l = z[i];
        /* the first number a thread sees counts even at −inf; NaN never does */
        if (l > max_l || (top == vocab && !isnan(l))) max_l = l, top = i;
    }
    top = block_argmax(max_l, top, sh, &max_l);
    if (top == vocab) top = 0; /* every logit NaN: id 0, as the CPU */
    if (p.temperature == 0.0f) {
        if (threadIdx.x == 0) ids[row] = top;
        return;
    }

    /* the CPU's max and probabilities: the logit divided by the temperature, minus the
     * scaled top logit (division by a positive number keeps the order, so that is the
     * top logit's own quotient). NaN — a NaN logit, or ∞ − ∞ — becomes DROPPED. */
    const float max_z = __fdiv_rn(max_l, p.temperature);
    auto prob = [&](float l) {
        const float q = expf(__fsub_rn(__fdiv_rn(l, p.temperature), max_z));
        return q >= 0.0f ? q : DROPPED;
    };

    /* 2–3. top-k on the unscaled logits, as the CPU sorts them, then each logit becomes p */
    unsigned long long local_total = 0;
    if (p.top_k > 0 && p.top_k < vocab) {
        unsigned long long left, tied;
        const uint32_t kth = radix_select<false>(z, vocab, (unsigned long long)p.top_k, sh, &left, &tied);
        if (left < tied) { /* only some of the tie at the k-th: the lowest ids, ranked in id order */
            unsigned long long ties = 0;
            for (int i = begin; i < end; i++) ties += float_key(z[i]) == kth;
            unsigned long long rank = block_exclusive_scan_u64(ties, sh);
            for (int i = begin; i < end; i++) {
                const float l = z[i];
                const uint32_t key = float_key(l);
                const float q = key > kth || (key == kth && rank++ < left) ? prob(l) : DROPPED;
                z[i] = q;
                local_total += mass_of(q);
            }
        } else {
            for (int i = threadIdx.x; i < vocab; i += SAMPLE_THREADS) {
                const float l = z[i];
                const float q = float_key(l) >= kth ? prob(l) : DROPPED;
                z[i] = q;
                local_total += mass_of(q);
            }
        }
    } else {
        for (int i = threadIdx.x; i < vocab; i += SAMPLE_THREADS) {
            const float q = prob(z[i]);
            z[i] = q;
            local_total += mass_of(q);
        }
    }
    /* its __syncthreads also orders the writes above before the reads below */
    const unsigned long long total = block_sum_u64(local_total, sh);

    /* 4. top-p: the smallest top set holding top_p of the mass (ties at its edge kept) */
    uint32_t top_p_key = 0;
    if (p.top_p < 1.0f && total > 0) {
        unsigned long long target = (unsigned long long)ceil((double)p.top_p * (double)total);
        if (target == 0) target = 1;
        unsigned long long left, tied;
        top_p_key = radix_select<true>(z, vocab, target, sh, &left, &tied);
    }

    /* 5. min-p, with top-p, as a test on p: the mass an id keeps */
    const float min_p = p.min_p;
    auto kept_mass = [&](float q) { return float_key(q) >= top_p_key && !(q < min_p) ? mass_of(q) : 0ull; };
    unsigned long long kept = 0;
    for (int i = begin; i < end; i++) kept += kept_mass(z[i]);
    const unsigned long long before = block_exclusive_scan_u64(kept, sh);
    const unsigned long long kept_total = block_sum_u64(kept, sh);
    if (kept_total == 0) { /* all −inf or NaN, an infinite scaled logit: the greedy pick */
        if (threadIdx.x == 0) ids[row] = top;
        return;
    }

    /* 6. the draw: two Philox outputs per draw make u = x·2^-53, 53 bits as the CPU's
     * next_uniform; r = ⌊u·kept_total⌋ in exact integer arithmetic (x·2^11 is the 64-bit
     * fraction u·2^64), so r < kept_total, and "run > r" for an integer running sum is
     * the CPU's "u·kept < cumulative". Exactly one thread's [before, before + kept) holds
     * r, and it writes the id. */
    curandStatePhilox4_32_10_t rng;
    curand_init(p.seed, 0, 2 * p.draw, &rng);
    const unsigned a = curand(&rng), b = curand(&rng);
    const unsigned long long x = ((unsigned long long)a << 21) | (b >> 11);
    const unsigned long long r = __umul64hi(x << 11, kept_total);
    if (r >= before && r - before < kept) {
        unsigned long long run = before;
        for (int i = begin; i < end; i++) {
            run += kept_mass(z[i]);
            if (run > r) {
                ids[row] = i;
                break;
            }
        }
    }
}

} // namespace

extern "C" size_t kernel_sample_workspace_bytes(int rows, int vocab) { return (size_t)rows * (size_t)vocab * sizeof(float); }

extern "C" gale_status kernel_sample_bf16(const void *logits, int rows, int vocab, const sample_params *params,
                                          const int32_t *penalty_ids, const int32_t *penalty_counts, float *workspace,
                                          int32_t *ids, void *stream) {
    if (rows < 0 || vocab <= 0 || (rows > 0 && (!logits || !params || !workspace || !ids)))
        return gale_error(GALE_ERR_INVALID_ARG, "sample: %d rows of %d logits, or a NULL buffer", rows, vocab);
    if (rows == 0) return GALE_OK;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    prepare_kernel<<<rows, PREPARE_THREADS, 0, s>>>(static_cast<const uint16_t *>(logits), vocab, params, penalty_ids,
                                                    penalty_counts, workspace);
    CUDA_TRY(cudaGetLastError(), "sample: prepare logits");
    sample_kernel<<<rows, SAMPLE_THREADS, 0, s>>>(workspace, vocab, params, ids);
    return cuda_check_launch("sample");
}
