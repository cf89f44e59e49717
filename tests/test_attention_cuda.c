/* The attention kernels of kernels/flash_attention.cu (kernel_attention_bf16, every
 * variant: naive, flash prefill tiles, split-KV decode, auto) against the CPU attention op
 * (src/backend/cpu/ops.c) on fresh random inputs, and their host-side planning.
 *
 * Inputs: bf16 queries in [−a, a] (a = 6 mostly: scores of standard deviation 2, so a few
 * keys dominate a row and a key wrongly seen or missed shows), keys and values in [−1, 1],
 * caches in shuffled, non-contiguous blocks of a pool; the CPU op runs on the same values
 * widened to fp32 and its result is rounded to bf16. Every cache slot no query may see —
 * positions past a sequence's length, before its window, spare pool blocks — holds NaN, and
 * blocks wholly before a window are −1 in the table as the engine leaves them: a kernel
 * that reads an invisible key, or lets 0·NaN into P·V, fails. Guard values follow every
 * output and workspace.
 *
 * Tolerance. With w_j the exact softmax weights of the visible keys, out = Σ w_j·v_j. The
 * GPU computes the scores with exact bf16 products accumulated in fp32, exponentials in
 * fp32 (exp2 against the running maximum), then rounds each unnormalised weight p_j to
 * bf16 (|δ_j| <= 2^-9) for the tensor-core P·V while the denominator sums the fp32 p_j: its
 * fp32 result is Σ w_j(1 + δ_j)·v_j, off by at most 2^-9·Σ w_j|v_j| <= 2^-9·max|v|. Both it
 * and the reference are then rounded to bf16 (2^-9 relative each). So
 *     |gpu − ref| <= 2^-8·|ref| + 2^-9·max|v| + (fp32 reassociation, exp2f vs expf, tanhf),
 * and the tests check |gpu − ref| <= 2^-7·|ref| + 2^-8·max|v| (max|v| <= 1 here): each term
 * doubled as margin for the fp32 effects, which are ~1e-6 relative. The naive kernel keeps
 * P in fp32 and meets the tighter bound; the same check covers it. Small windows (1, 7, 16)
 * and short sequences keep few keys per row, where a mask off by one moves outputs by far
 * more than the bound (window 1 returns v of the query's own position). NaN never passes.
 *
 * The GPU tests skip themselves without CUDA in the build or without a GPU; the planning
 * tests (suite attention_plan) need no GPU and run on CI. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/dtype.h"
#include "cuda_test_support.h"
#include "test_support.h"

#ifdef GALE_HAVE_CUDA
#include "kernels.h"
#endif

#ifdef GALE_HAVE_CUDA

/* the bound of the header comment */
#define ATTN_RTOL 0x1p-7
#define ATTN_ATOL_PER_V 0x1p-8
#define NAN_BITS ((uint16_t)0x7fc0)

enum { MAX_SEQS = 64 };

typedef struct seq_spec {
    int length;  /* positions cached */
    int queries; /* the batch computes the last `queries` of them */
} seq_spec;

typedef enum batch_order {
    ORDER_SEQUENTIAL,  /* each sequence's queries together, in position order */
    ORDER_ROUND_ROBIN, /* one query of each sequence in turn */
    ORDER_SHUFFLED,    /* a random permutation */
} batch_order;

typedef struct attn_case {
    int n_heads, n_kv_heads, head_dim, window, block_size;
    float softcap;
    float scale;   /* 0: head_dim^-0.5 */
    float q_range; /* queries uniform in [−q_range, q_range] */
    batch_order order;
    int max_context; /* passed to the launcher as is (0: the tables' capacity) */
    int n_seqs;
    seq_spec seqs[MAX_SEQS];
} attn_case;

/* A case made concrete: host data, device copies, the CPU reference. */
typedef struct attn_problem {
    attn_case c;
    int n, kv_dim, stride, n_blocks;
    float scale;
    int32_t *positions, *seq_of, *tables; /* [n], [n], [n_seqs, stride] */
    uint16_t *hq, *hk, *hv;               /* bf16 bits: [n, H, D], caches [n_blocks, bs, kv_dim] */
    float *q, *kc, *vc;                   /* the same widened */
    float *ref;                           /* [n, H, D] rounded to bf16 */
    float max_abs_v;
    uint16_t *d_q, *d_k, *d_v;
    int32_t *d_pos, *d_seq, *d_tables;
} attn_problem;

static int first_visible(int window, int pos) { return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0; }

static int rand_below(int n) { return (int)(uniform(0.0f, 1.0f) * (float)n) % n; }

static void shuffle_ints(int32_t *v, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = rand_below(i + 1);
        int32_t t = v[i];
        v[i] = v[j], v[j] = t;
    }
}

/* The batch: each sequence's last `queries` positions, ordered as the case says. */
static void make_batch(attn_problem *pr) {
    const attn_case *c = &pr->c;
    pr->n = 0;
    for (int s = 0; s < c->n_seqs; s++) pr->n += c->seqs[s].queries;
    pr->positions = malloc((size_t)pr->n * sizeof *pr->positions);
    pr->seq_of = malloc((size_t)pr->n * sizeof *pr->seq_of);
    int i = 0;
    if (c->order == ORDER_ROUND_ROBIN) {
        for (int k = 0; i < pr->n; k++)
            for (int s = 0; s < c->n_seqs; s++)
                if (k < c->seqs[s].queries)
                    pr->seq_of[i] = s, pr->positions[i++] = c->seqs[s].length - c->seqs[s].queries + k;
    } else {
        for (int s = 0; s < c->n_seqs; s++)
            for (int k = 0; k < c->seqs[s].queries; k++)
                pr->seq_of[i] = s, pr->positions[i++] = c->seqs[s].length - c->seqs[s].queries + k;
    }
    if (c->order == ORDER_SHUFFLED) {
        int32_t *perm = malloc((size_t)pr->n * sizeof *perm), *pos = malloc((size_t)pr->n * sizeof *pos),
                *seq = malloc((size_t)pr->n * sizeof *seq);
        for (int k = 0; k < pr->n; k++) perm[k] = k;
        shuffle_ints(perm, pr->n);
        for (int k = 0; k < pr->n; k++) pos[k] = pr->positions[perm[k]], seq[k] = pr->seq_of[perm[k]];
        memcpy(pr->positions, pos, (size_t)pr->n * sizeof *pos);
        memcpy(pr->seq_of, seq, (size_t)pr->n * sizeof *seq);
        free(perm), free(pos), free(seq);
    }
}

/* Block tables over a shuffled pool with spare blocks; blocks wholly before the window of a
 * sequence's first query are −1, as the engine releases them. */
static void make_tables(attn_problem *pr) {
    const attn_case *c = &pr->c;
    const int bs = c->block_size;
    int needed = 0;
    pr->stride = 1;
    for (int s = 0; s < c->n_seqs; s++) {
        int blocks = (c->seqs[s].length + bs - 1) / bs;
        needed += blocks;
        if (blocks + 1 > pr->stride) pr->stride = blocks + 1; /* a spare −1 column */
    }
    pr->n_blocks = needed + 3;
    int32_t *pool = malloc((size_t)pr->n_blocks * sizeof *pool);
    for (int b = 0; b < pr->n_blocks; b++) pool[b] = b;
    shuffle_ints(pool, pr->n_blocks);
    pr->tables = malloc((size_t)c->n_seqs * pr->stride * sizeof *pr->tables);
    int next = 0;
    for (int s = 0; s < c->n_seqs; s++) {
        const int blocks = (c->seqs[s].length + bs - 1) / bs;
        const int first = first_visible(c->window, c->seqs[s].length - c->seqs[s].queries);
        for (int j = 0; j < pr->stride; j++) {
            int32_t *entry = &pr->tables[(size_t)s * pr->stride + j];
            *entry = j < blocks ? pool[next++] : -1;
            if ((j + 1) * bs <= first) *entry = -1; /* released: its pool block stays NaN */
        }
    }
    free(pool);
}

/* Caches full of NaN but at the positions some query sees; random queries. */
static void make_data(attn_problem *pr) {
    const attn_case *c = &pr->c;
    const int bs = c->block_size, D = c->head_dim;
    pr->kv_dim = c->n_kv_heads * D;
    const size_t cache_count = (size_t)pr->n_blocks * bs * pr->kv_dim;
    pr->hk = malloc(cache_count * sizeof *pr->hk), pr->hv = malloc(cache_count * sizeof *pr->hv);
    pr->kc = malloc(cache_count * sizeof *pr->kc), pr->vc = malloc(cache_count * sizeof *pr->vc);
    cr_assert(pr->hk && pr->hv && pr->kc && pr->vc, "out of memory");
    for (size_t i = 0; i < cache_count; i++) pr->hk[i] = pr->hv[i] = NAN_BITS, pr->kc[i] = pr->vc[i] = NAN;
    pr->max_abs_v = 0;
    for (int s = 0; s < c->n_seqs; s++) {
        const int length = c->seqs[s].length, first = first_visible(c->window, length - c->seqs[s].queries);
        for (int t = first; t < length; t++) {
            const size_t slot = ((size_t)pr->tables[(size_t)s * pr->stride + t / bs] * bs + t % bs) * pr->kv_dim;
            for (int d = 0; d < pr->kv_dim; d++) {
                pr->hk[slot + d] = f32_to_bf16(uniform(-1, 1));
                pr->hv[slot + d] = f32_to_bf16(uniform(-1, 1));
                pr->kc[slot + d] = bf16_to_f32(pr->hk[slot + d]);
                pr->vc[slot + d] = bf16_to_f32(pr->hv[slot + d]);
                pr->max_abs_v = fmaxf(pr->max_abs_v, fabsf(pr->vc[slot + d]));
            }
        }
    }
    pr->hq = random_bf16((size_t)pr->n * c->n_heads * D, -c->q_range, c->q_range, &pr->q);
}

static int reference_threads(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
}

/* pr->ref = the CPU op on the widened inputs at pr->positions, rounded to bf16 */
static void compute_reference(attn_problem *pr) {
    const attn_case *c = &pr->c;
    const size_t count = (size_t)pr->n * c->n_heads * c->head_dim;
    free(pr->ref);
    pr->ref = malloc(count * sizeof *pr->ref);
    backend b = {.ops = &cpu_backend_ops};
    cr_assert_eq(thread_pool_create(reference_threads(), &b.pool), GALE_OK);
    paged_kv kv = {.keys = pr->kc, .values = pr->vc, .block_size = c->block_size, .kv_dim = pr->kv_dim,
                   .block_tables = pr->tables, .table_stride = pr->stride};
    attention_params p = {.n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
                          .scale = pr->scale, .softcap = c->softcap, .window = c->window};
    cr_assert_eq(b.ops->attention(&b, pr->q, &kv, pr->n, pr->positions, pr->seq_of, &p, pr->ref), GALE_OK, "%s",
                 gale_last_error());
    for (size_t i = 0; i < count; i++) pr->ref[i] = round_bf16(pr->ref[i]);
    thread_pool_destroy(b.pool);
}

static void build_problem(const attn_case *c, attn_problem *pr) {
    memset(pr, 0, sizeof *pr);
    pr->c = *c;
    pr->scale = c->scale > 0 ? c->scale : 1.0f / sqrtf((float)c->head_dim);
    make_batch(pr);
    make_tables(pr);
    make_data(pr);
    compute_reference(pr);
    const size_t cache_bytes = (size_t)pr->n_blocks * c->block_size * pr->kv_dim * 2;
    pr->d_q = guarded_device_bf16((size_t)pr->n * c->n_heads * c->head_dim, pr->hq);
    pr->d_k = to_device(pr->hk, cache_bytes), pr->d_v = to_device(pr->hv, cache_bytes);
    pr->d_pos = to_device(pr->positions, (size_t)pr->n * sizeof(int32_t));
    pr->d_seq = to_device(pr->seq_of, (size_t)pr->n * sizeof(int32_t));
    pr->d_tables = to_device(pr->tables, (size_t)c->n_seqs * pr->stride * sizeof(int32_t));
}

static void free_problem(attn_problem *pr) {
    free(download_bf16(pr->d_q, (size_t)pr->n * pr->c.n_heads * pr->c.head_dim, "attention q")); /* q's guard */
    CUDA_ASSERT(cudaFree(pr->d_k));
    CUDA_ASSERT(cudaFree(pr->d_v));
    CUDA_ASSERT(cudaFree(pr->d_pos));
    CUDA_ASSERT(cudaFree(pr->d_seq));
    CUDA_ASSERT(cudaFree(pr->d_tables));
    free(pr->positions), free(pr->seq_of), free(pr->tables), free(pr->hq), free(pr->hk), free(pr->hv);
    free(pr->q), free(pr->kc), free(pr->vc), free(pr->ref);
}

static attention_launch launch_of(const attn_problem *pr, bool with_host, void *out, void *ws, size_t ws_bytes) {
    const attn_case *c = &pr->c;
    return (attention_launch){.q = pr->d_q, .key_cache = pr->d_k, .value_cache = pr->d_v, .block_tables = pr->d_tables,
                              .table_stride = pr->stride, .block_size = c->block_size, .positions = pr->d_pos,
                              .seq_of = pr->d_seq, .host_positions = with_host ? pr->positions : NULL,
                              .host_seq_of = with_host ? pr->seq_of : NULL, .n = pr->n, .n_heads = c->n_heads,
                              .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim, .scale = pr->scale,
                              .softcap = c->softcap, .window = c->window, .max_context = c->max_context, .out = out,
                              .workspace = ws, .workspace_bytes = ws_bytes};
}

enum { WS_GUARD = 256 };

/* A workspace of bytes followed by WS_GUARD bytes of 0xA5 (NULL when bytes is 0). */
static void *guarded_workspace(size_t bytes) {
    if (bytes == 0) return NULL;
    void *ws = NULL;
    CUDA_ASSERT(cudaMalloc(&ws, bytes + WS_GUARD));
    CUDA_ASSERT(cudaMemset((char *)ws + bytes, 0xA5, WS_GUARD));
    return ws;
}

static void check_free_workspace(void *ws, size_t bytes, const char *what) {
    if (!ws) return;
    unsigned char tail[WS_GUARD];
    CUDA_ASSERT(cudaDeviceSynchronize());
    CUDA_ASSERT(cudaMemcpy(tail, (char *)ws + bytes, WS_GUARD, cudaMemcpyDeviceToHost));
    for (int i = 0; i < WS_GUARD; i++) cr_assert_eq(tail[i], 0xA5, "%s: workspace guard byte %d overwritten", what, i);
    CUDA_ASSERT(cudaFree(ws));
}

static void compare(const float *gpu, const attn_problem *pr, const char *what) {
    const attn_case *c = &pr->c;
    const double atol = ATTN_ATOL_PER_V * pr->max_abs_v;
    const size_t count = (size_t)pr->n * c->n_heads * c->head_dim;
    for (size_t i = 0; i < count; i++) {
        const double diff = fabs((double)gpu[i] - pr->ref[i]);
        if (!(diff <= ATTN_RTOL * fabs(pr->ref[i]) + atol)) {
            const size_t token = i / ((size_t)c->n_heads * c->head_dim);
            cr_assert_fail("%s: token %zu (sequence %d, position %d), head %zu, dim %zu: %.7g on the GPU, %.7g on the CPU",
                           what, token, pr->seq_of[token], pr->positions[token], i / c->head_dim % c->n_heads,
                           i % c->head_dim, gpu[i], pr->ref[i]);
        }
    }
}

static bool fits_shared_memory(attention_variant v, int head_dim) {
    if (v != ATTENTION_FLASH_M128 || head_dim != 256) return true;
    int device = 0, optin = 0;
    CUDA_ASSERT(cudaGetDevice(&device));
    CUDA_ASSERT(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    /* BLOCK_M 128 + two 32-key tiles of 264-bf16 rows = 101,376 bytes, plus a little static memory:
     * more than the 99 KiB of sm_86/sm_89, within the 163/227 KiB of sm_80/sm_90 */
    return optin >= 100 * 1024;
}

/* One variant on the problem: output guard, workspace guard, values. */
static void run_variant(const attn_problem *pr, attention_variant v, bool with_host) {
    const attn_case *c = &pr->c;
    const size_t count = (size_t)pr->n * c->n_heads * c->head_dim;
    char what[200];
    snprintf(what, sizeof what, "attention %s%s: %d/%d heads × %d, window %d, softcap %g, blocks of %d, %d tokens",
             attention_variant_name(v), with_host ? "" : " (no host arrays)", c->n_heads, c->n_kv_heads, c->head_dim,
             c->window, (double)c->softcap, c->block_size, pr->n);
    uint16_t *d_out = guarded_device_bf16(count, NULL);
    attention_launch a = launch_of(pr, with_host, d_out, NULL, 0);
    const size_t ws_bytes = kernel_attention_workspace_bytes(&a, v);
    a.workspace = guarded_workspace(ws_bytes);
    a.workspace_bytes = ws_bytes;
    gale_status status = kernel_attention_bf16(&a, v, NULL);
    if (status == GALE_ERR_UNSUPPORTED && !fits_shared_memory(v, c->head_dim)) {
        cr_log_info("%s: skipped, %s", what, gale_last_error());
        CUDA_ASSERT(cudaFree(d_out));
        check_free_workspace(a.workspace, ws_bytes, what);
        return;
    }
    cr_assert_eq(status, GALE_OK, "%s: %s", what, gale_last_error());
    float *gpu = download_bf16(d_out, count, what);
    check_free_workspace(a.workspace, ws_bytes, what);
    compare(gpu, pr, what);
    free(gpu);
}

/* Every variant, with host arrays, and the ones that take none without. */
static void check_case(const attn_case *c) {
    attn_problem pr;
    build_problem(c, &pr);
    for (int v = 0; v < ATTENTION_VARIANT_COUNT; v++) {
        run_variant(&pr, (attention_variant)v, true);
        if (v == ATTENTION_AUTO || (v >= ATTENTION_SPLIT_KV && v <= ATTENTION_SPLIT_KV_NONE) || v == ATTENTION_NAIVE)
            run_variant(&pr, (attention_variant)v, false);
    }
    free_problem(&pr);
}

/* A batch mixing a prefill chunk over earlier cache, lone decode tokens, a whole prompt,
 * and a sequence of one position. */
static attn_case mixed_case(int n_heads, int n_kv_heads, int head_dim) {
    return (attn_case){.n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim, .block_size = 16,
                       .q_range = 6, .n_seqs = 6, .seqs = {{300, 37}, {1, 1}, {777, 1}, {50, 50}, {129, 1}, {16, 16}}};
}

#endif /* GALE_HAVE_CUDA */

/* ---- GPU: values against the CPU op --------------------------------------------------- */

Test(attention_cuda, sequence_lengths) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    /* whole prompts of 1, 2, 15, 16, 17, 127 and 1000 tokens in one batch */
    attn_case c = {.n_heads = 8, .n_kv_heads = 2, .head_dim = 128, .block_size = 16, .q_range = 6, .n_seqs = 7,
                   .seqs = {{1, 1}, {2, 2}, {15, 15}, {16, 16}, {17, 17}, {127, 127}, {1000, 1000}}};
    check_case(&c);
#endif
}

Test(attention_cuda, long_prompt_4097) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    attn_case c = {.n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .block_size = 16, .q_range = 6, .n_seqs = 1,
                   .seqs = {{4097, 4097}}};
    check_case(&c);
    c.window = 1000; /* smaller than the prompt: most keys skipped */
    check_case(&c);
#endif
}

#ifdef GALE_HAVE_CUDA
/* ratios 1, 4, 8, MQA 8 and 32; 3 (SmolLM2's 9/3: prefill tiles begin inside a token)
 * and MQA 20 (decode's second chunk of 16 heads holds 4) */
static const int gqa_shapes[][2] = {{4, 4}, {8, 2}, {16, 2}, {8, 1}, {32, 1}, {9, 3}, {20, 1}};
enum { N_GQA_SHAPES = sizeof gqa_shapes / sizeof gqa_shapes[0] };
static const int head_dims[] = {64, 128, 256};
#endif

ParameterizedTestParameters(attention_cuda, gqa_and_head_dims) { return index_params(21); } /* 7 shapes × 3 dims */

ParameterizedTest(size_t *index, attention_cuda, gqa_and_head_dims) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    const int *shape = gqa_shapes[*index % N_GQA_SHAPES];
    attn_case c = mixed_case(shape[0], shape[1], head_dims[*index / N_GQA_SHAPES]);
    check_case(&c);
#else
    (void)index;
#endif
}

Test(attention_cuda, windows) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    /* smaller than every sequence, equal to the longest, larger than all */
    const int windows[] = {1, 7, 16, 100, 200, 250};
    for (int w = 0; w < 6; w++) {
        attn_case c = {.n_heads = 8, .n_kv_heads = 2, .head_dim = 128, .window = windows[w], .block_size = 16,
                       .q_range = 6, .n_seqs = 3, .seqs = {{200, 200}, {200, 1}, {180, 40}}};
        check_case(&c);
    }
#endif
}

Test(attention_cuda, softcap) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    /* Gemma 2: scale 256^-0.5, cap 50, window 4096 just under the context */
    attn_case gemma2 = {.n_heads = 4, .n_kv_heads = 2, .head_dim = 256, .window = 4096, .block_size = 16,
                        .softcap = 50, .scale = 0.0625f, .q_range = 8, .n_seqs = 2, .seqs = {{4097, 64}, {4097, 1}}};
    check_case(&gemma2);
    /* a cap the scores reach often */
    attn_case tight = mixed_case(8, 2, 64);
    tight.softcap = 5;
    tight.q_range = 12;
    check_case(&tight);
#endif
}

Test(attention_cuda, batch_orders) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    /* queries of one sequence apart in the batch, in any order */
    for (int window = 0; window <= 64; window += 64) {
        attn_case c = mixed_case(8, 2, 128);
        c.window = window;
        c.order = ORDER_ROUND_ROBIN;
        check_case(&c);
        c.order = ORDER_SHUFFLED;
        check_case(&c);
    }
#endif
}

Test(attention_cuda, block_sizes) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    const int sizes[] = {32, 48, 64};
    for (int i = 0; i < 3; i++) {
        attn_case c = mixed_case(8, 2, 64);
        c.block_size = sizes[i];
        c.window = i == 1 ? 100 : 0;
        check_case(&c);
    }
#endif
}

Test(attention_cuda, many_decodes) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    /* 64 sequences of 1 … 3000 positions, one decode token each */
    attn_case c = {.n_heads = 8, .n_kv_heads = 2, .head_dim = 128, .block_size = 16, .q_range = 6, .n_seqs = 64};
    for (int s = 0; s < 64; s++) c.seqs[s] = (seq_spec){1 + rand_below(3000), 1};
    check_case(&c);
    c.window = 512;
    check_case(&c);
    /* a max_context below the real lengths sizes the splits wrong, never the result */
    c.window = 0;
    c.max_context = 300;
    check_case(&c);
#endif
}

/* The plan memo: the first launch of a forward plans and uploads, the next layers (same
 * key, shapes and workspace) launch on the plan already in the workspace — same values;
 * a new key plans again. */
Test(attention_cuda, plan_memo_serves_later_layers) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    /* Gemma 2/3's layers alternate sliding and global attention: the window changes from
     * layer to layer, the plan must not */
    enum { WINDOW = 40 };
    attn_case c = mixed_case(32, 8, 128);
    attn_problem pr;
    build_problem(&c, &pr); /* window 0: every cached key holds a value */
    const size_t count = (size_t)pr.n * c.n_heads * c.head_dim;
    float *global_ref = pr.ref;
    pr.ref = NULL;
    pr.c.window = WINDOW;
    compute_reference(&pr);
    float *window_ref = pr.ref;
    uint16_t *d_out = guarded_device_bf16(count, NULL);
    attention_launch a = launch_of(&pr, true, d_out, NULL, 0);
    a.window = 0; /* the larger workspace of the two */
    const size_t ws_bytes = kernel_attention_workspace_bytes(&a, ATTENTION_AUTO);
    a.workspace = guarded_workspace(ws_bytes);
    a.workspace_bytes = ws_bytes;
    attention_plan_memo memo = {0};
    a.memo = &memo;
    uint16_t *bits = malloc(count * sizeof *bits);
    float *gpu = malloc(count * sizeof *gpu);
    for (int layer = 0; layer < 4; layer++) {
        a.plan_key = layer < 3 ? 7 : 8; /* layers 0-2: one forward; layer 3: the next one */
        a.window = layer % 2 ? WINDOW : 0;
        pr.c.window = a.window, pr.ref = a.window ? window_ref : global_ref;
        CUDA_ASSERT(cudaMemset(d_out, 0, count * sizeof *bits));
        cr_assert_eq(kernel_attention_bf16(&a, ATTENTION_AUTO, NULL), GALE_OK, "layer %d: %s", layer, gale_last_error());
        cr_assert_eq(memo.key, a.plan_key, "layer %d: the memo holds key %llu", layer, (unsigned long long)memo.key);
        cr_assert(memo.n_tiles > 0 && memo.n_singles > 0 && memo.workspace == a.workspace,
                  "layer %d: %d tiles, %d lone tokens kept", layer, memo.n_tiles, memo.n_singles);
        /* layers 1 and 2 (windowed, then global) reuse layer 0's plan; layer 3 plans anew */
        const uint64_t reuses = layer == 0 ? 0 : layer < 3 ? (uint64_t)layer : 2;
        cr_assert_eq(memo.reuses, reuses, "layer %d (window %d): %llu launches served by the memo, %llu expected",
                     layer, a.window, (unsigned long long)memo.reuses, (unsigned long long)reuses);
        CUDA_ASSERT(cudaMemcpy(bits, d_out, count * sizeof *bits, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < count; i++) gpu[i] = bf16_to_f32(bits[i]);
        char what[64];
        snprintf(what, sizeof what, "attention with a plan memo, layer %d, window %d", layer, a.window);
        compare(gpu, &pr, what);
    }
    free(bits), free(gpu);
    free(download_bf16(d_out, count, "memo output"));
    check_free_workspace(a.workspace, ws_bytes, "memo workspace");
    pr.ref = global_ref;
    free(window_ref);
    free_problem(&pr);
#endif
}

/* ---- GPU: the decode path under CUDA graph capture ------------------------------------- */

#ifdef GALE_HAVE_CUDA
/* Captures one launch, replays it, then replays it again after the device positions
 * changed in place: the grid and workspace must not depend on them. */
static void check_graph_replay(attention_variant v) {
    attn_case c = {.n_heads = 8, .n_kv_heads = 2, .head_dim = 128, .block_size = 16, .q_range = 6, .n_seqs = 8,
                   .seqs = {{1500, 1}, {3, 1}, {800, 1}, {1, 1}, {2048, 1}, {77, 1}, {1024, 1}, {600, 1}}};
    attn_problem pr;
    build_problem(&c, &pr);
    const size_t count = (size_t)pr.n * c.n_heads * c.head_dim;
    uint16_t *d_out = guarded_device_bf16(count, NULL);
    attention_launch a = launch_of(&pr, false, d_out, NULL, 0);
    const size_t ws_bytes = kernel_attention_workspace_bytes(&a, v);
    a.workspace = guarded_workspace(ws_bytes);
    a.workspace_bytes = ws_bytes;
    cudaStream_t stream;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_ASSERT(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    /* one launch outside the graph first, as an engine warms up before capturing (and
     * kernels load lazily) */
    cr_assert_eq(kernel_attention_bf16(&a, v, stream), GALE_OK, "warm-up: %s", gale_last_error());
    CUDA_ASSERT(cudaStreamSynchronize(stream));
    CUDA_ASSERT(cudaMemset(d_out, 0xff, count * sizeof *d_out)); /* NaN until the graph writes it */
    CUDA_ASSERT(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    gale_status status = kernel_attention_bf16(&a, v, stream);
    CUDA_ASSERT(cudaStreamEndCapture(stream, &graph));
    cr_assert_eq(status, GALE_OK, "capture: %s", gale_last_error());
    CUDA_ASSERT(cudaGraphInstantiate(&exec, graph, 0));
    for (int round = 0; round < 2; round++) {
        if (round == 1) { /* new positions inside each sequence's cached range */
            for (int i = 0; i < pr.n; i++) pr.positions[i] = rand_below(c.seqs[pr.seq_of[i]].length);
            CUDA_ASSERT(cudaMemcpy(pr.d_pos, pr.positions, (size_t)pr.n * sizeof(int32_t), cudaMemcpyHostToDevice));
            compute_reference(&pr);
        }
        CUDA_ASSERT(cudaGraphLaunch(exec, stream));
        CUDA_ASSERT(cudaStreamSynchronize(stream));
        uint16_t *h = malloc((count + GUARD) * sizeof *h);
        CUDA_ASSERT(cudaMemcpy(h, d_out, (count + GUARD) * sizeof *h, cudaMemcpyDeviceToHost));
        for (size_t i = count; i < count + GUARD; i++) cr_assert_eq(h[i], GUARD_BITS, "graph replay: guard overwritten");
        float *gpu = malloc(count * sizeof *gpu);
        for (size_t i = 0; i < count; i++) gpu[i] = bf16_to_f32(h[i]);
        char what[96];
        snprintf(what, sizeof what, "attention %s, graph replay %d", attention_variant_name(v), round);
        compare(gpu, &pr, what);
        free(h), free(gpu);
    }
    CUDA_ASSERT(cudaGraphExecDestroy(exec));
    CUDA_ASSERT(cudaGraphDestroy(graph));
    CUDA_ASSERT(cudaStreamDestroy(stream));
    check_free_workspace(a.workspace, ws_bytes, "graph replay");
    CUDA_ASSERT(cudaFree(d_out));
    free_problem(&pr);
}
#endif

Test(attention_cuda, decode_replays_in_cuda_graph) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    check_graph_replay(ATTENTION_SPLIT_KV);
    check_graph_replay(ATTENTION_SPLIT_KV_256);
    check_graph_replay(ATTENTION_AUTO); /* without host arrays: the decode kernel */
#endif
}

/* ---- GPU: argument validation ---------------------------------------------------------- */

Test(attention_cuda, rejects_bad_arguments) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    attn_case c = mixed_case(8, 2, 64);
    attn_problem pr;
    build_problem(&c, &pr);
    uint16_t *d_out = guarded_device_bf16((size_t)pr.n * 8 * 64, NULL);
    const attention_launch good = launch_of(&pr, true, d_out, NULL, 0);
    attention_launch a = good;

    a.n_heads = 7; /* not a multiple of the KV heads */
    assert_error(kernel_attention_bf16(&a, ATTENTION_FLASH_M64, NULL), GALE_ERR_INVALID_ARG, "flash_m64");
    a = good, a.head_dim = 96;
    assert_error(kernel_attention_bf16(&a, ATTENTION_SPLIT_KV, NULL), GALE_ERR_UNSUPPORTED, "head_dim 96");
    a = good, a.head_dim = 320;
    assert_error(kernel_attention_bf16(&a, ATTENTION_NAIVE, NULL), GALE_ERR_INVALID_ARG, "320");
    a = good, a.window = -1;
    assert_error(kernel_attention_bf16(&a, ATTENTION_AUTO, NULL), GALE_ERR_INVALID_ARG, "window -1");
    a = good, a.softcap = NAN;
    assert_error(kernel_attention_bf16(&a, ATTENTION_AUTO, NULL), GALE_ERR_INVALID_ARG, "softcap");
    a = good, a.block_size = 0;
    assert_error(kernel_attention_bf16(&a, ATTENTION_SPLIT_KV, NULL), GALE_ERR_INVALID_ARG, "blocks of 0");
    a = good, a.q = NULL;
    assert_error(kernel_attention_bf16(&a, ATTENTION_SPLIT_KV, NULL), GALE_ERR_INVALID_ARG, "NULL");
    a = good, a.out = (char *)d_out + 2;
    assert_error(kernel_attention_bf16(&a, ATTENTION_FLASH_M64, NULL), GALE_ERR_INVALID_ARG, "aligned");
    a = good, a.host_positions = NULL, a.host_seq_of = NULL;
    assert_error(kernel_attention_bf16(&a, ATTENTION_FLASH_M128, NULL), GALE_ERR_INVALID_ARG, "host");
    a = good, a.host_seq_of = NULL;
    assert_error(kernel_attention_bf16(&a, ATTENTION_AUTO, NULL), GALE_ERR_INVALID_ARG, "together");
    a = good; /* no workspace where one is needed */
    assert_error(kernel_attention_bf16(&a, ATTENTION_FLASH_M64, NULL), GALE_ERR_INVALID_ARG, "workspace");
    a = good;
    assert_error(kernel_attention_bf16(&a, (attention_variant)99, NULL), GALE_ERR_INVALID_ARG, "variant 99");
    int32_t *bad_positions = malloc((size_t)pr.n * sizeof *bad_positions);
    memcpy(bad_positions, pr.positions, (size_t)pr.n * sizeof *bad_positions);
    bad_positions[3] = pr.stride * c.block_size; /* past the tables */
    a = good, a.host_positions = bad_positions;
    assert_error(kernel_attention_bf16(&a, ATTENTION_AUTO, NULL), GALE_ERR_INVALID_ARG, "token 3");
    free(bad_positions);
    /* nothing to do is fine, even without buffers */
    a = good, a.n = 0, a.q = NULL;
    cr_assert_eq(kernel_attention_bf16(&a, ATTENTION_FLASH_M64, NULL), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(kernel_attention_workspace_bytes(&a, ATTENTION_FLASH_M64), 0);

    float *untouched = download_bf16(d_out, (size_t)pr.n * 8 * 64, "rejected launches' out");
    for (size_t i = 0; i < (size_t)pr.n * 8 * 64; i++) cr_assert(isnan(untouched[i]), "a rejected launch wrote out[%zu]", i);
    free(untouched);
    free_problem(&pr);
#endif
}

/* ---- no GPU needed: planning ----------------------------------------------------------- */

#ifdef GALE_HAVE_CUDA
/* A batch of n tokens over 4 sequences: runs of random length at consecutive positions,
 * sometimes a jump, sometimes another sequence in between. */
static void random_batch(int n, int32_t *positions, int32_t *seq_of) {
    int next_pos[4] = {0, 5, 100, 4000};
    for (int i = 0; i < n;) {
        const int seq = rand_below(4), len = 1 + rand_below(rand_below(4) == 0 ? 40 : 3);
        if (rand_below(5) == 0) next_pos[seq] += rand_below(50); /* a gap: a new run */
        for (int k = 0; k < len && i < n; k++, i++) seq_of[i] = seq, positions[i] = next_pos[seq]++;
    }
}

/* Keys a tile over positions [lo_pos, hi_pos] reads under a window (0: none). */
static int windowed_keys(int lo_pos, int hi_pos, int window) { return hi_pos - first_visible(window, lo_pos) + 1; }

static void check_plan(const int32_t *positions, const int32_t *seq_of, int n, int group, int block_m,
                       bool singles_apart) {
    const int most = attention_plan_max_tiles(n, group, block_m);
    attention_tile *tiles = malloc((size_t)(most > 0 ? most : 1) * sizeof *tiles);
    int32_t *singles = malloc((size_t)n * sizeof *singles);
    int *covered = calloc((size_t)n * group, sizeof *covered);
    int n_singles = -1;
    const int count =
        attention_plan_tiles(positions, seq_of, n, group, block_m, tiles, singles_apart ? singles : NULL, &n_singles);
    cr_assert(count >= 0 && count <= most, "%d tiles, at most %d", count, most);
    for (int t = 0; t < count; t++) {
        const attention_tile *tile = &tiles[t];
        const int rows = tile->n_tokens * group;
        cr_assert(tile->first_row >= 0 && tile->first_row < rows && tile->first_row % block_m == 0, "tile %d rows", t);
        cr_assert(!singles_apart || tile->n_tokens >= 2, "a lone token was tiled");
        for (int k = 1; k < tile->n_tokens; k++) { /* one run: same sequence, consecutive positions */
            const int i = tile->first_token + k;
            cr_assert(seq_of[i] == seq_of[i - 1] && positions[i] == positions[i - 1] + 1, "tile %d is not a run", t);
        }
        const int first = tile->first_token, last = first + tile->n_tokens - 1; /* maximal */
        cr_assert(first == 0 || seq_of[first - 1] != seq_of[first] || positions[first - 1] + 1 != positions[first]);
        cr_assert(last == n - 1 || seq_of[last + 1] != seq_of[last] || positions[last] + 1 != positions[last + 1]);
        const int end = tile->first_row + block_m < rows ? tile->first_row + block_m : rows;
        for (int r = tile->first_row; r < end; r++) covered[(size_t)(first + r / group) * group + r % group]++;
        const int lo_pos = positions[first + tile->first_row / group], hi_pos = positions[first + (end - 1) / group];
        cr_assert_eq(tile->keys, hi_pos + 1, "tile %d work", t);
        if (t > 0) cr_assert(tiles[t - 1].keys >= tile->keys, "tiles not sorted by work");
        /* one plan serves every window: among tiles of the same span, the order by work
         * without a window is an order by work with one */
        for (int u = 0; u < t; u++) {
            const attention_tile *before = &tiles[u];
            const int b_end = before->first_row + block_m < before->n_tokens * group ? before->first_row + block_m
                                                                                    : before->n_tokens * group;
            const int b_lo = positions[before->first_token + before->first_row / group],
                      b_hi = positions[before->first_token + (b_end - 1) / group];
            if (b_hi - b_lo != hi_pos - lo_pos) continue;
            for (int window = 1; window <= 300; window += 37)
                cr_assert(windowed_keys(b_lo, b_hi, window) >= windowed_keys(lo_pos, hi_pos, window),
                          "tiles %d and %d out of order under window %d", u, t, window);
        }
    }
    if (singles_apart)
        for (int s = 0; s < n_singles; s++)
            for (int h = 0; h < group; h++) covered[(size_t)singles[s] * group + h]++;
    for (int i = 0; i < n * group; i++)
        cr_assert_eq(covered[i], 1, "token %d head %d covered %d times (group %d, BLOCK_M %d)", i / group, i % group,
                     covered[i], group, block_m);
    free(tiles), free(singles), free(covered);
}
#endif

Test(attention_plan, tiles_cover_every_query_head_once) {
#ifdef GALE_HAVE_CUDA
    const int groups[] = {1, 3, 4, 8, 32, 100};
    int32_t positions[700], seq_of[700];
    for (int trial = 0; trial < 40; trial++) {
        const int n = 1 + rand_below(700);
        random_batch(n, positions, seq_of);
        for (int g = 0; g < 6; g++)
            for (int block_m = 64; block_m <= 128; block_m *= 2) {
                check_plan(positions, seq_of, n, groups[g], block_m, false);
                check_plan(positions, seq_of, n, groups[g], block_m, true);
            }
    }
    /* all lone tokens: no tiles */
    for (int i = 0; i < 10; i++) positions[i] = 7 * i, seq_of[i] = i % 2;
    attention_tile tiles[32];
    int32_t singles[10];
    int n_singles = 0;
    cr_assert_eq(attention_plan_tiles(positions, seq_of, 10, 4, 64, tiles, singles, &n_singles), 0);
    cr_assert_eq(n_singles, 10);
#else
    cr_skip_test("no CUDA in this build: the planner lives in kernels/flash_attention.cu");
#endif
}

Test(attention_plan, splits_cover_visible_keys_once) {
#ifdef GALE_HAVE_CUDA
    const int visibles[] = {1, 2, 127, 128, 129, 1000, 4096, 32768, 131072};
    const int fixed[] = {0, 256, 1024, -1, 100};
    for (int vi = 0; vi < 9; vi++)
        for (int fi = 0; fi < 5; fi++)
            for (int n = 1; n <= 512; n *= 8) {
                const attention_split s = attention_decode_split(n, 8, 4, visibles[vi], fixed[fi], 132);
                cr_assert(s.n_splits >= 1 && s.split_size > 0 && s.split_size % 128 == 0, "split %d × %d", s.n_splits,
                          s.split_size);
                cr_assert((long long)s.n_splits * s.split_size >= visibles[vi], "splits do not reach max_visible");
                cr_assert((long long)(s.n_splits - 1) * s.split_size < visibles[vi], "an always-empty split");
                cr_assert(fixed[fi] != 0 || s.n_splits <= 64);
                cr_assert(fixed[fi] <= 0 || s.n_splits <= 512);
                cr_assert(fixed[fi] >= 0 || s.n_splits == 1);
                /* queries anywhere, even past max_visible: every visible key in exactly one split */
                for (int trial = 0; trial < 20; trial++) {
                    const int pos = rand_below(2 * visibles[vi] + 300), first = rand_below(pos + 1);
                    int expect = first;
                    for (int k = 0; k < s.n_splits; k++) {
                        int lo, hi;
                        attention_split_range(first, pos, k, s, &lo, &hi);
                        if (lo > hi) continue;
                        cr_assert_eq(lo, expect, "split %d of [%d, %d] starts at %d", k, first, pos, lo);
                        expect = hi + 1;
                    }
                    cr_assert_eq(expect, pos + 1, "splits of [%d, %d] end at %d", first, pos, expect - 1);
                }
            }
    /* one sequence, long context: enough blocks for the GPU; a big batch: one split */
    cr_assert_geq(attention_decode_split(1, 8, 4, 32768, 0, 132).n_splits, 32);
    cr_assert_eq(attention_decode_split(256, 8, 4, 2048, 0, 132).n_splits, 1);
#else
    cr_skip_test("no CUDA in this build: the planner lives in kernels/flash_attention.cu");
#endif
}

/* The workspace AUTO reserves for decode partials holds every lone-token count k <= n a
 * batch of n can have, at any context, for GPUs of 1 to 160 SMs; and stays small for big n
 * (a prefill of thousands of tokens once reserved partials for each). */
Test(attention_plan, auto_partials_fit_every_decode_count) {
#ifdef GALE_HAVE_CUDA
    const int sms[] = {1, 46, 108, 132, 160}, kv_heads[] = {1, 2, 8, 32}, groups[] = {1, 4, 7, 8, 16, 33};
    const int visibles[] = {1, 128, 1000, 4096, 32768, 131072}, ns[] = {1, 2, 3, 16, 100, 300, 4096};
    for (int a = 0; a < 5; a++)
        for (int h = 0; h < 4; h++)
            for (int g = 0; g < 6; g++)
                for (int v = 0; v < 6; v++)
                    for (int i = 0; i < 7; i++) {
                        const int n = ns[i];
                        const size_t reserved = attention_auto_partial_items(n, kv_heads[h], groups[g], sms[a]);
                        for (int k = 1; k <= n && k <= 600; k++) {
                            const attention_split s =
                                attention_decode_split(k, kv_heads[h], groups[g], visibles[v], 0, sms[a]);
                            if (s.n_splits > 1)
                                cr_assert_leq((size_t)k * s.n_splits, reserved,
                                              "%d SMs, %d KV heads × group %d, %d keys: %d tokens × %d splits > %zu "
                                              "reserved for %d",
                                              sms[a], kv_heads[h], groups[g], visibles[v], k, s.n_splits, reserved, n);
                        }
                        cr_assert_leq(reserved, (size_t)8 * 160 + 2, "a batch of %d reserves %zu", n, reserved);
                    }
#else
    cr_skip_test("no CUDA in this build: the planner lives in kernels/flash_attention.cu");
#endif
}

Test(attention_plan, variant_names) {
#ifdef GALE_HAVE_CUDA
    for (int v = 0; v < ATTENTION_VARIANT_COUNT; v++) {
        attention_variant parsed;
        cr_assert(attention_variant_parse(attention_variant_name((attention_variant)v), &parsed));
        cr_assert_eq(parsed, (attention_variant)v);
    }
    attention_variant out;
    cr_assert(!attention_variant_parse("flash", &out));
    cr_assert(!attention_variant_parse(NULL, &out));
    cr_assert_null(attention_variant_name(ATTENTION_VARIANT_COUNT));
#else
    cr_skip_test("no CUDA in this build");
#endif
}

Test(attention_plan, workspace_depends_on_shapes_only) {
#ifdef GALE_HAVE_CUDA
    /* the sizes a launch asks for are computed from the shapes: no device memory is
     * touched, and the values of positions never enter */
    int32_t positions[300], seq_of[300];
    for (int i = 0; i < 300; i++) positions[i] = i, seq_of[i] = 0;
    attention_launch a = {.q = (void *)16, .key_cache = (void *)16, .value_cache = (void *)16, .block_tables = positions,
                          .table_stride = 64, .block_size = 16, .positions = positions, .seq_of = seq_of,
                          .host_positions = positions, .host_seq_of = seq_of, .n = 300, .n_heads = 32,
                          .n_kv_heads = 8, .head_dim = 128, .scale = 0.1f, .out = (void *)16};
    for (int v = 0; v < ATTENTION_VARIANT_COUNT; v++) {
        const size_t before = kernel_attention_workspace_bytes(&a, (attention_variant)v);
        for (int i = 0; i < 300; i++) positions[i] = 1000 - i, seq_of[i] = i % 3;
        cr_assert_eq(kernel_attention_workspace_bytes(&a, (attention_variant)v), before, "%s",
                     attention_variant_name((attention_variant)v));
        for (int i = 0; i < 300; i++) positions[i] = i, seq_of[i] = 0;
        if (v == ATTENTION_NAIVE) cr_assert_eq(before, 0);
        if (v == ATTENTION_FLASH_M64 || v == ATTENTION_AUTO)
            cr_assert_geq(before, (size_t)attention_plan_max_tiles(300, 4, 64) * sizeof(attention_tile));
    }
    a.head_dim = 96; /* unsupported: nothing to size */
    cr_assert_eq(kernel_attention_workspace_bytes(&a, ATTENTION_SPLIT_KV), 0);
#else
    cr_skip_test("no CUDA in this build");
#endif
}

#ifdef GALE_HAVE_CUDA
/* A recorded decode step runs for more rows than it has: those rows carry seq_of −1 and
 * must come out as zeros, without disturbing the real rows or reading any table. */
static void check_padding(attention_variant v, bool with_host) {
    attn_case c = mixed_case(8, 2, 128);
    attn_problem pr;
    build_problem(&c, &pr);
    enum { PAD = 5 };
    const int n = pr.n + PAD;
    const size_t row = (size_t)c.n_heads * c.head_dim, count = (size_t)n * row;
    int32_t *positions = malloc((size_t)n * sizeof *positions), *seq_of = malloc((size_t)n * sizeof *seq_of);
    memcpy(positions, pr.positions, (size_t)pr.n * sizeof *positions);
    memcpy(seq_of, pr.seq_of, (size_t)pr.n * sizeof *seq_of);
    for (int i = pr.n; i < n; i++) positions[i] = 0, seq_of[i] = -1;
    float *unused;
    uint16_t *hq = random_bf16(count, -6, 6, &unused);
    memcpy(hq, pr.hq, (size_t)pr.n * row * sizeof *hq);
    uint16_t *d_q = guarded_device_bf16(count, hq), *d_out = guarded_device_bf16(count, NULL);
    int32_t *d_pos = to_device(positions, (size_t)n * sizeof *positions), *d_seq = to_device(seq_of, (size_t)n * sizeof *seq_of);
    attention_launch a = launch_of(&pr, with_host, d_out, NULL, 0);
    a.q = d_q, a.positions = d_pos, a.seq_of = d_seq, a.n = n;
    if (with_host) a.host_positions = positions, a.host_seq_of = seq_of;
    const size_t ws_bytes = kernel_attention_workspace_bytes(&a, v);
    a.workspace = guarded_workspace(ws_bytes);
    a.workspace_bytes = ws_bytes;
    char what[96];
    snprintf(what, sizeof what, "attention %s%s with %d padding rows", attention_variant_name(v),
             with_host ? "" : " (no host arrays)", PAD);
    cr_assert_eq(kernel_attention_bf16(&a, v, NULL), GALE_OK, "%s: %s", what, gale_last_error());
    float *gpu = download_bf16(d_out, count, what);
    check_free_workspace(a.workspace, ws_bytes, what);
    compare(gpu, &pr, what); /* the first pr.n rows */
    for (size_t i = (size_t)pr.n * row; i < count; i++) cr_assert_eq(gpu[i], 0.0f, "%s: padding value %zu is %g", what, i, gpu[i]);
    free(download_bf16(d_q, count, "padded q"));
    CUDA_ASSERT(cudaFree(d_pos));
    CUDA_ASSERT(cudaFree(d_seq));
    free(gpu), free(hq), free(unused), free(positions), free(seq_of);
    free_problem(&pr);
}
#endif

Test(attention_cuda, padding_rows_are_zero) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    for (int v = 0; v < ATTENTION_VARIANT_COUNT; v++) {
        check_padding((attention_variant)v, true);
        if (v == ATTENTION_AUTO || v == ATTENTION_NAIVE || (v >= ATTENTION_SPLIT_KV && v <= ATTENTION_SPLIT_KV_NONE))
            check_padding((attention_variant)v, false);
    }
#endif
}
