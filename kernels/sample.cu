/* Sampling on the GPU: each row of logits becomes one token id, so only ids travel back
 * to the host each step. The rules are the CPU sampler's (src/engine/sampler.c): the
 * penalties, then temperature 0 → argmax (lowest id on ties); otherwise temperature,
 * top-k, top-p, min-p, and a draw — here from cuRAND's Philox, keyed by the request's
 * seed at offset `draw` (the request's draw counter), so a request's tokens do not
 * depend on the batch it ran in.
 *
 * Two kernels per step:
 *   prepare_kernel  bf16 logits [rows, vocab] → fp32 workspace [rows, vocab], then each
 *                   row's penalties (one block per row walks its (id, count) pairs:
 *                   distinct ids, so no two threads touch one logit);
 *   sample_kernel   one block of SAMPLE_THREADS per row. Thread t owns the contiguous
 *                   ids [t·chunk, (t+1)·chunk), so "in id order" is "in thread order,
 *                   then in chunk order" and every scan below is deterministic.
 *
 * The kept set, without sorting the vocabulary:
 *   top-k  the k-th largest scaled logit found by a radix select on the order-preserving
 *          integer key of the float (4 passes of 8 bits, a shared histogram of counts);
 *          of the logits equal to it, the lowest ids are kept until k are kept — the
 *          CPU's tie rule;
 *   top-p  the same select weighted by probability mass (fixed-point integers, so the
 *          shared-memory sums do not depend on the order of the atomics): the largest
 *          threshold whose set {z ≥ threshold} holds top_p of the mass. Logits tied
 *          exactly at that threshold are all kept (the CPU keeps the lower ids first);
 *   min-p  probability ≥ min_p × the largest, relative to the top token.
 * The draw: u in [0, 1) times the kept mass, then the id where the running sum (in id
 * order) passes it. The CPU walks its sorted order instead, so one u picks different ids
 * on the two devices; the distribution is the same, which tests/test_sample_cuda.c
 * checks statistically. */
#include <curand_kernel.h>
#include <math.h>

#include "common.cuh"
#include "kernels.h"

namespace {

constexpr int SAMPLE_THREADS = 1024;
constexpr int WARPS = SAMPLE_THREADS / 32;
constexpr int PREPARE_THREADS = 256;
/* probabilities (≤ 1) as fixed point: 2^40 per unit leaves 2^23 units of headroom, far
 * above any vocabulary's total */
constexpr double MASS_ONE = 1099511627776.0;

/* Order-preserving integer key of a float: a > b ⇔ key(a) > key(b) (no NaN here). */
__device__ __forceinline__ uint32_t float_key(float f) {
    const uint32_t bits = __float_as_uint(f == 0.0f ? 0.0f : f); /* −0 and +0 are one value, as on the CPU */
    return bits & 0x80000000u ? ~bits : bits | 0x80000000u;
}

struct shared_scratch {
    float f[WARPS];
    int i[WARPS];
    unsigned long long u[WARPS];
    unsigned long long bins[256]; /* radix histograms (counts or masses) */
    uint32_t prefix, mask;
    unsigned long long remaining;
    int chosen;
};

__device__ float block_max(float v, shared_scratch &sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh.f[threadIdx.x / 32] = v;
    __syncthreads();
    float r = sh.f[0];
    for (int w = 1; w < WARPS; w++) r = fmaxf(r, sh.f[w]);
    return r;
}

/* Sum of one value per thread, added in thread order: warp partials in a fixed tree, then
 * the warps in order — the same result every run. */
__device__ unsigned long long block_sum_u64(unsigned long long v, shared_scratch &sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
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
        unsigned long long other = __shfl_up_sync(0xffffffffu, inclusive, o);
        if (lane >= o) inclusive += other;
    }
    __syncthreads();
    if (lane == 31) sh.u[warp] = inclusive;
    __syncthreads();
    unsigned long long before = 0;
    for (int w = 0; w < warp; w++) before += sh.u[w];
    return before + inclusive - v;
}

/* The id of the largest value, the lowest id on ties. */
__device__ int block_argmax(float best, int best_id, shared_scratch &sh) {
    for (int o = 16; o > 0; o >>= 1) {
        float v = __shfl_xor_sync(0xffffffffu, best, o);
        int id = __shfl_xor_sync(0xffffffffu, best_id, o);
        if (v > best || (v == best && id < best_id)) best = v, best_id = id;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh.f[threadIdx.x / 32] = best, sh.i[threadIdx.x / 32] = best_id;
    __syncthreads();
    float b = sh.f[0];
    int id = sh.i[0];
    for (int w = 1; w < WARPS; w++)
        if (sh.f[w] > b || (sh.f[w] == b && sh.i[w] < id)) b = sh.f[w], id = sh.i[w];
    return id;
}

/* Radix select over the keys of the eligible ids of [begin, end): the key at which the
 * weight of {key > k} is < target ≤ the weight of {key ≥ k}, weights being 1 (counts: the
 * target-th largest) or fixed-point masses. Returns the key; *left = target − weight of
 * {key > k} (how much of the tie at k is needed). */
template <typename Weight>
__device__ uint32_t radix_select(const float *z, int begin, int end, Weight weight, unsigned long long target,
                                 shared_scratch &sh, unsigned long long *left) {
    if (threadIdx.x == 0) sh.prefix = 0, sh.mask = 0, sh.remaining = target;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += SAMPLE_THREADS) sh.bins[b] = 0;
        __syncthreads();
        const uint32_t prefix = sh.prefix, mask = sh.mask;
        for (int i = begin; i < end; i++) {
            const unsigned long long w = weight(i);
            if (!w) continue;
            const uint32_t key = float_key(z[i]);
            if ((key & mask) == prefix) atomicAdd(&sh.bins[(key >> shift) & 255u], w);
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
        }
        __syncthreads();
    }
    *left = sh.remaining;
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

__global__ void __launch_bounds__(SAMPLE_THREADS) sample_kernel(float *__restrict__ z_all, int vocab,
                                                                 const sample_params *__restrict__ params,
                                                                 int32_t *__restrict__ ids) {
    __shared__ shared_scratch sh;
    const int row = blockIdx.x;
    const sample_params p = params[row];
    float *z = z_all + (size_t)row * vocab;
    const int chunk = (vocab + SAMPLE_THREADS - 1) / SAMPLE_THREADS;
    const int begin = min(vocab, (int)threadIdx.x * chunk), end = min(vocab, begin + chunk);

    if (p.temperature == 0.0f) {
        float best = -INFINITY;
        int best_id = vocab;
        for (int i = begin; i < end; i++)
            if (z[i] > best) best = z[i], best_id = i;
        const int id = block_argmax(best, best_id, sh);
        if (threadIdx.x == 0) ids[row] = id < vocab ? id : 0; /* all -inf: id 0, as the CPU */
        return;
    }

    /* scaled logits in place (divided, as the CPU does); -inf marks an id out of the kept
     * set from here on */
    float local_max = -INFINITY;
    for (int i = begin; i < end; i++) {
        z[i] = __fdiv_rn(z[i], p.temperature);
        local_max = fmaxf(local_max, z[i]);
    }
    const float max = block_max(local_max, sh);

    /* top-k: drop below the k-th largest; of the tie at it, keep the lowest ids */
    if (p.top_k > 0 && p.top_k < vocab) {
        unsigned long long left;
        const uint32_t kth = radix_select(z, begin, end, [](int) { return 1ull; }, (unsigned long long)p.top_k, sh, &left);
        unsigned long long ties = 0;
        for (int i = begin; i < end; i++) ties += float_key(z[i]) == kth;
        unsigned long long rank = block_exclusive_scan_u64(ties, sh);
        for (int i = begin; i < end; i++) {
            const uint32_t key = float_key(z[i]);
            if (key < kth || (key == kth && rank++ >= left)) z[i] = -INFINITY;
        }
        __syncthreads();
    }

    /* probabilities relative to the top token, as fixed-point masses */
    auto mass = [&](int i) -> unsigned long long {
        return z[i] == -INFINITY ? 0ull : (unsigned long long)((double)expf(z[i] - max) * MASS_ONE);
    };
    unsigned long long local_total = 0;
    for (int i = begin; i < end; i++) local_total += mass(i);
    const unsigned long long total = block_sum_u64(local_total, sh);

    /* top-p: the smallest top set holding top_p of the mass (ties at its edge kept) */
    uint32_t top_p_key = 0;
    if (p.top_p < 1.0f && total > 0) {
        unsigned long long target = (unsigned long long)ceil((double)p.top_p * (double)total);
        if (target == 0) target = 1;
        unsigned long long left;
        top_p_key = radix_select(z, begin, end, mass, target, sh, &left);
    }
    /* min-p: probability at least min_p of the top token's (which is 1 here) */
    const float floor_z = p.min_p > 0.0f ? max + logf(p.min_p) : -INFINITY;

    unsigned long long kept = 0;
    for (int i = begin; i < end; i++) {
        if (z[i] == -INFINITY) continue;
        if (float_key(z[i]) < top_p_key || z[i] < floor_z) {
            z[i] = -INFINITY;
            continue;
        }
        kept += mass(i);
    }
    const unsigned long long before = block_exclusive_scan_u64(kept, sh);
    const unsigned long long kept_total = block_sum_u64(kept, sh);

    /* the draw: Philox keyed by the request's seed, one number per draw */
    curandStatePhilox4_32_10_t rng;
    curand_init(p.seed, 0, p.draw, &rng);
    const double u = 1.0 - (double)curand_uniform(&rng); /* (0, 1] → [0, 1) */
    const unsigned long long r = (unsigned long long)(u * (double)kept_total);
    if (threadIdx.x == 0) sh.chosen = -1;
    __syncthreads();
    if (kept > 0 && r >= before && r < before + kept) {
        unsigned long long run = before;
        for (int i = begin; i < end; i++) {
            run += mass(i);
            if (run > r) {
                sh.chosen = i;
                break;
            }
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int id = sh.chosen;
        if (id < 0) /* r rounded to the very end (or nothing kept): the last kept id, else the top one */
            for (int i = vocab - 1; i >= 0 && id < 0; i--)
                if (z[i] != -INFINITY) id = i;
        ids[row] = id < 0 ? 0 : id;
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
