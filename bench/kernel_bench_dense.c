/* gale bench kernels dense: the CUDA backend's own kernels against the memory roofline,
 * and the decode GEMM two ways.
 *
 *   gale bench kernels dense [--variant all|norm|rope|activation|embed|gemm] [--json]
 *
 * Each kernel runs on Mistral-7B-like shapes (hidden 4096, 32/8 heads of 128, intermediate
 * 14336, vocab 32000) on fresh random bf16 data; a measurement is the median over repeats
 * of a CUDA-event-timed loop of launches. GB/s counts the bytes the kernel must move (read
 * once + written once) and is set against the device-to-device copy bandwidth measured in
 * the same run (bench/bandwidth.c). The GEMM rows compare cuBLAS (what the backend uses)
 * with the hand-written GEMV (kernels/gemv.cu, GALE_GEMV=1) at 1–8 rows, over the weight's
 * bytes: the decode step's roofline; each launch reads one of several copies of the weight,
 * so that none is served from L2. The other kernels' small shapes (1 and 32 rows) fit in
 * L2 and measure latency more than bandwidth; their 2048-row shapes are the bandwidth
 * figures. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bandwidth.h"
#include "gpu_timer.h"
#include "kernel_bench.h"

#ifdef GALE_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backend/device.h"
#include "core/status.h"
#include "kernels.h"

typedef struct bench_ctx {
    cudaStream_t stream;
    cublasHandle_t cublas;
    double copy_gbs; /* device-to-device copy, GB/s */
    bool json;
} bench_ctx;

typedef gale_status (*launch_fn)(const bench_ctx *ctx, void *arg);

typedef struct timed_launch {
    const bench_ctx *ctx;
    launch_fn fn;
    void *arg;
} timed_launch;

static int run_timed(void *arg) {
    const timed_launch *t = arg;
    return t->fn(t->ctx, t->arg) != GALE_OK;
}

/* Milliseconds per launch: the median of 9 timed loops of `loops` launches; < 0 on failure. */
static double time_ms(const bench_ctx *ctx, launch_fn fn, void *arg, int loops) {
    timed_launch t = {.ctx = ctx, .fn = fn, .arg = arg};
    return bench_gpu_time_ms(&(gpu_timer){.stream = ctx->stream, .warmups = 1, .loops = loops, .samples = 9}, run_timed,
                             &t, "gale bench kernels dense");
}

static void report(const bench_ctx *ctx, const char *kernel, const char *shape, double ms, double bytes) {
    if (ms < 0) {
        printf("%-22s %-28s failed: %s\n", kernel, shape, gale_last_error());
        return;
    }
    const double gbs = bytes / (ms * 1e-3) / 1e9;
    if (ctx->json)
        printf("{\"kernel\":\"%s\",\"shape\":\"%s\",\"us\":%.2f,\"GBps\":%.1f,\"copy_GBps\":%.1f,\"roofline\":%.3f}\n", kernel,
               shape, ms * 1e3, gbs, ctx->copy_gbs, gbs / ctx->copy_gbs);
    else
        printf("%-22s %-28s %9.2f us %8.1f GB/s %6.1f %%\n", kernel, shape, ms * 1e3, gbs, 100 * gbs / ctx->copy_gbs);
}

/* n bf16 values uniform in (−1, 1] on the device (kernels/fill.cu), or NULL */
static void *random_device_bf16(size_t n) {
    static uint64_t seed;
    void *d = NULL;
    if (cudaMalloc(&d, n * 2) != cudaSuccess) return NULL;
    if (kernel_fill_uniform_bf16(d, n, 1.0f, ++seed, NULL) != GALE_OK) {
        cudaFree(d);
        return NULL;
    }
    return d;
}

/* ---- the kernels ---- */

typedef struct norm_arg {
    void *x, *residual, *out;
    float *w;
    int n, dim;
} norm_arg;

static gale_status run_norm(const bench_ctx *ctx, void *a) {
    norm_arg *p = a;
    return kernel_rmsnorm_bf16(NULL, p->residual, p->x, p->w, 0.0f, 1e-5f, p->n, p->dim, p->out, ctx->stream);
}

typedef struct rope_arg {
    void *q, *k, *v, *kc, *vc;
    int32_t *positions, *seq_of, *tables;
    float *inv_freq;
    const rope_qk_norm *norm; /* NULL, or Gemma 3's q/k norm fused in */
    int n, heads, kv_heads, head_dim, stride;
} rope_arg;

static gale_status run_rope(const bench_ctx *ctx, void *a) {
    rope_arg *p = a;
    return kernel_rope_store_kv_bf16(p->q, p->k, p->v, p->positions, p->seq_of, p->inv_freq, p->norm, p->n, p->heads,
                                     p->kv_heads, p->head_dim, p->kc, p->vc, p->tables, p->stride, 16, ctx->stream);
}

typedef struct act_arg {
    void *gate, *up;
    uint64_t count;
} act_arg;

static gale_status run_act(const bench_ctx *ctx, void *a) {
    act_arg *p = a;
    return kernel_gated_activation_bf16(p->gate, p->up, p->count, GALE_ACT_SILU, p->gate, ctx->stream);
}

typedef struct embed_arg {
    void *table, *out;
    int32_t *ids;
    int vocab, dim, n;
} embed_arg;

static gale_status run_embed(const bench_ctx *ctx, void *a) {
    embed_arg *p = a;
    return kernel_embed_bf16(p->table, p->vocab, p->dim, p->ids, p->n, 1.0f, p->out, ctx->stream);
}

/* Copies of the weight the GEMM rotates through, one per launch: together they hold three
 * times the L2 cache, so each launch reads its weight from memory, as a decode step does
 * (a 4096 x 4096 weight, 33.5 MB, would otherwise stay in an H100's 50 MB L2). */
enum { MAX_WEIGHT_COPIES = 16 };
typedef struct gemm_arg {
    void *x, *y;
    void *w[MAX_WEIGHT_COPIES];
    int copies, next;
    int n, out, in;
} gemm_arg;

static const void *next_weight(gemm_arg *p) { return p->w[p->next++ % p->copies]; }

static gale_status run_cublas(const bench_ctx *ctx, void *a) {
    gemm_arg *p = a;
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st = cublasGemmEx(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, p->out, p->n, p->in, &one, next_weight(p), CUDA_R_16BF,
                                     p->in, p->x, CUDA_R_16BF, p->in, &zero, p->y, CUDA_R_16BF, p->out, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT);
    return st == CUBLAS_STATUS_SUCCESS ? GALE_OK : gale_error(GALE_ERR_DEVICE, "cuBLAS: %s", cublasGetStatusString(st));
}

static gale_status run_gemv(const bench_ctx *ctx, void *a) {
    gemm_arg *p = a;
    return kernel_gemv_bf16(p->x, p->n, next_weight(p), p->out, p->in, p->y, ctx->stream);
}

enum { H = 4096, HEADS = 32, KV_HEADS = 8, HEAD_DIM = 128, I = 14336, VOCAB = 32000 };

static void bench_norm(const bench_ctx *ctx) {
    const int rows[] = {1, 32, 2048};
    for (int r = 0; r < 3; r++) {
        norm_arg a = {.n = rows[r], .dim = H};
        size_t count = (size_t)a.n * H;
        a.x = random_device_bf16(count), a.residual = random_device_bf16(count), a.out = random_device_bf16(count);
        cudaMalloc((void **)&a.w, H * sizeof(float));
        cudaMemset(a.w, 0, H * sizeof(float));
        char shape[64];
        snprintf(shape, sizeof shape, "%d x %d + residual", a.n, H);
        /* reads x and the residual, writes the residual and the output */
        report(ctx, "rmsnorm", shape, time_ms(ctx, run_norm, &a, 50), 4.0 * (double)count * 2);
        cudaFree(a.x), cudaFree(a.residual), cudaFree(a.out), cudaFree(a.w);
    }
}

static void bench_rope(const bench_ctx *ctx) {
    const int rows[] = {1, 32, 2048};
    for (int r = 0; r < 3; r++) {
        const int n = rows[r], blocks = (n + 15) / 16 + 1;
        rope_arg a = {.n = n, .heads = HEADS, .kv_heads = KV_HEADS, .head_dim = HEAD_DIM, .stride = blocks};
        const size_t qd = (size_t)HEADS * HEAD_DIM, kvd = (size_t)KV_HEADS * HEAD_DIM;
        a.q = random_device_bf16(n * qd), a.k = random_device_bf16(n * kvd), a.v = random_device_bf16(n * kvd);
        a.kc = random_device_bf16((size_t)blocks * 16 * kvd), a.vc = random_device_bf16((size_t)blocks * 16 * kvd);
        int32_t *pos = malloc((size_t)n * 4), *seq = calloc((size_t)n, 4), *tab = malloc((size_t)blocks * 4);
        float freq[HEAD_DIM / 2];
        for (int i = 0; i < n; i++) pos[i] = i;
        for (int i = 0; i < blocks; i++) tab[i] = i;
        for (int i = 0; i < HEAD_DIM / 2; i++) freq[i] = 1.0f / (float)(1 + i);
        cudaMalloc((void **)&a.positions, (size_t)n * 4), cudaMemcpy(a.positions, pos, (size_t)n * 4, cudaMemcpyHostToDevice);
        cudaMalloc((void **)&a.seq_of, (size_t)n * 4), cudaMemcpy(a.seq_of, seq, (size_t)n * 4, cudaMemcpyHostToDevice);
        cudaMalloc((void **)&a.tables, (size_t)blocks * 4), cudaMemcpy(a.tables, tab, (size_t)blocks * 4, cudaMemcpyHostToDevice);
        cudaMalloc((void **)&a.inv_freq, sizeof freq), cudaMemcpy(a.inv_freq, freq, sizeof freq, cudaMemcpyHostToDevice);
        char shape[64];
        snprintf(shape, sizeof shape, "%d tok, %d/%d heads x %d", n, HEADS, KV_HEADS, HEAD_DIM);
        /* q and k read and written, v read, k and v written into the cache */
        const double bytes = (double)n * (2 * qd + 5 * kvd) * 2;
        report(ctx, "rope + kv store", shape, time_ms(ctx, run_rope, &a, 50), bytes);
        /* the same with Gemma 3's q/k norm fused in (weights: any fp32 [head_dim], here the frequencies) */
        const rope_qk_norm norm = {.q_weight = a.inv_freq, .k_weight = a.inv_freq, .offset = 1.0f, .eps = 1e-6f};
        a.norm = &norm;
        report(ctx, "qk norm + rope + kv", shape, time_ms(ctx, run_rope, &a, 50), bytes);
        void *bufs[] = {a.q, a.k, a.v, a.kc, a.vc, a.positions, a.seq_of, a.tables, a.inv_freq};
        for (size_t i = 0; i < 9; i++) cudaFree(bufs[i]);
        free(pos), free(seq), free(tab);
    }
}

static void bench_activation(const bench_ctx *ctx) {
    const int rows[] = {1, 32, 2048};
    for (int r = 0; r < 3; r++) {
        act_arg a = {.count = (uint64_t)rows[r] * I};
        a.gate = random_device_bf16(a.count), a.up = random_device_bf16(a.count);
        char shape[64];
        snprintf(shape, sizeof shape, "%d x %d SiLU", rows[r], I);
        report(ctx, "gated activation", shape, time_ms(ctx, run_act, &a, 50), 3.0 * (double)a.count * 2);
        cudaFree(a.gate), cudaFree(a.up);
    }
}

static void bench_embed(const bench_ctx *ctx) {
    const int rows[] = {1, 32, 2048};
    embed_arg a = {.vocab = VOCAB, .dim = H};
    a.table = random_device_bf16((size_t)VOCAB * H);
    for (int r = 0; r < 3; r++) {
        a.n = rows[r];
        int32_t *ids = malloc((size_t)a.n * 4);
        for (int i = 0; i < a.n; i++) ids[i] = (int32_t)(((uint64_t)i * 7919) % VOCAB);
        cudaMalloc((void **)&a.ids, (size_t)a.n * 4), cudaMemcpy(a.ids, ids, (size_t)a.n * 4, cudaMemcpyHostToDevice);
        a.out = random_device_bf16((size_t)a.n * H);
        char shape[64];
        snprintf(shape, sizeof shape, "%d of %d x %d", a.n, VOCAB, H);
        report(ctx, "embed", shape, time_ms(ctx, run_embed, &a, 50), 2.0 * a.n * H * 2);
        cudaFree(a.ids), cudaFree(a.out);
        free(ids);
    }
    cudaFree(a.table);
}

/* how many copies of `bytes` hold three times the L2 cache (at least 1, at most MAX_WEIGHT_COPIES) */
static int copies_past_l2(size_t bytes) {
    int device = 0, l2 = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device);
    const size_t copies = (3 * (size_t)l2 + bytes - 1) / bytes;
    return copies < 1 ? 1 : copies > MAX_WEIGHT_COPIES ? MAX_WEIGHT_COPIES : (int)copies;
}

static void bench_gemm(const bench_ctx *ctx) {
    const int shapes[][2] = {{H, H}, {I, H}, {H, I}, {VOCAB, H}}; /* {out, in}: wq/wo, gate/up, down, lm_head */
    const int rows[] = {1, 2, 4, 8};
    for (int s = 0; s < 4; s++) {
        gemm_arg a = {.out = shapes[s][0], .in = shapes[s][1]};
        a.copies = copies_past_l2((size_t)a.out * a.in * 2);
        for (int c = 0; c < a.copies; c++) a.w[c] = random_device_bf16((size_t)a.out * a.in);
        a.x = random_device_bf16((size_t)8 * a.in);
        a.y = random_device_bf16((size_t)8 * a.out);
        for (int r = 0; r < 4; r++) {
            a.n = rows[r];
            char shape[64];
            snprintf(shape, sizeof shape, "%d x %d -> %d", a.n, a.in, a.out);
            const double bytes = (double)a.out * a.in * 2 + (double)a.n * (a.in + a.out) * 2;
            report(ctx, "gemm cuBLAS", shape, time_ms(ctx, run_cublas, &a, 20), bytes);
            report(ctx, "gemm gemv (GALE_GEMV)", shape, time_ms(ctx, run_gemv, &a, 20), bytes);
        }
        for (int c = 0; c < a.copies; c++) cudaFree(a.w[c]);
        cudaFree(a.x), cudaFree(a.y);
    }
}

static const struct {
    const char *name;
    void (*run)(const bench_ctx *ctx);
} variants[] = {
    {"norm", bench_norm}, {"rope", bench_rope}, {"activation", bench_activation}, {"embed", bench_embed}, {"gemm", bench_gemm},
};
enum { N_VARIANTS = sizeof variants / sizeof variants[0] };

#endif /* GALE_HAVE_CUDA */

static void usage(FILE *out) {
    fprintf(out, "usage: gale bench kernels dense [--variant all|norm|rope|activation|embed|gemm] [--json]\n\n"
                 "The CUDA backend's kernels on Mistral-7B shapes: time, GB/s and the share of the\n"
                 "device-to-device copy bandwidth; gemm compares cuBLAS with the hand-written GEMV.\n");
}

int kernel_bench_dense(int argc, char **argv) {
    const char *variant = "all";
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--variant") == 0 && i + 1 < argc) variant = argv[++i];
        else if (strcmp(argv[i], "--json") == 0) json = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
#ifdef GALE_HAVE_CUDA
    bool known = strcmp(variant, "all") == 0;
    for (int v = 0; v < N_VARIANTS; v++) known |= strcmp(variant, variants[v].name) == 0;
    if (!known) {
        fprintf(stderr, "gale bench kernels dense: unknown variant '%s'\n", variant);
        usage(stderr);
        return 2;
    }
    if (device_cuda_count() == 0) {
        fprintf(stderr, "gale bench kernels dense: no CUDA device (no usable GPU or driver found)\n");
        return 1;
    }
    bench_ctx ctx = {.json = json};
    ctx.copy_gbs = bench_gpu_copy_bandwidth(BENCH_GPU_COPY_BYTES) / 1e9;
    cudaStreamCreate(&ctx.stream);
    if (cublasCreate(&ctx.cublas) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "gale bench kernels dense: cuBLAS did not start\n");
        return 1;
    }
    cublasSetStream(ctx.cublas, ctx.stream);
    if (!json) printf("device-to-device copy: %.1f GB/s (read + write)\n", ctx.copy_gbs);
    for (int v = 0; v < N_VARIANTS; v++)
        if (strcmp(variant, "all") == 0 || strcmp(variant, variants[v].name) == 0) variants[v].run(&ctx);
    cublasDestroy(ctx.cublas);
    cudaStreamDestroy(ctx.stream);
    return 0;
#else
    (void)variant, (void)json;
    fprintf(stderr, "gale bench kernels dense: this build has no CUDA (GALE_CUDA=OFF)\n");
    return 1;
#endif
}
