/* `gale bench kernels moe [--variant grouped|gemv|auto] [--json]`: one Mixtral-8x7B MoE
 * layer (hidden 4096, intermediate 14336, 8 experts, top-2, bf16, random weights: 2.8 GB
 * of experts) at batch 1, 16, 64, 256 and 1024 — the router GEMM (cuBLAS) plus
 * kernel_moe_bf16 on the chosen expert path, as cuda_moe runs it — timed with CUDA
 * events (3 warm-ups, median of 10) against two rooflines measured in the same run:
 * - bandwidth: the bytes of the experts the routing actually selected (distinct experts ×
 *   3·H·I·2) over the device-to-device copy bandwidth (a 2 GiB copy, read + written
 *   bytes per second) — the bound at small batch;
 * - compute: the layer's FLOPs (2·3·H·I per token and chosen expert) over the rate of an
 *   8192³ cuBLAS bf16 GEMM (PERF.md's F) — the bound at large batch.
 * "%roof" is the larger of the two bound times over the measured time. For comparison, a
 * dense gated MLP with the same active FLOPs (intermediate 2·14336, cuBLAS GEMMs and the
 * gated activation kernel) at the same batch. The router is random, so the routing is
 * realistic: at batch 1 two experts are read, from batch 16 on nearly all eight.
 *
 * Without variant: both expert paths side by side, the one cuda_moe picks marked with *. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_bench.h"

#ifdef GALE_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backend/device.h"
#include "bandwidth.h"
#include "gpu_timer.h"
#include "kernels.h"

enum { H = 4096, I = 14336, E = 8, K = 2, MAX_BATCH = 1024, WARMUP = 3, REPEATS = 10 };
static const int batches[] = {1, 16, 64, 256, 1024};
enum { N_BATCHES = sizeof batches / sizeof batches[0] };

typedef struct bench {
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *expert_w[3 * E]; /* gate[0 … E), up[…], down[…]: bf16 [I, H], [I, H], [H, I] */
    const void **table;    /* device [3E]: the pointers above */
    void *router;          /* bf16 [E, H] */
    void *x;               /* bf16 [MAX_BATCH, H] */
    void *out;             /* bf16 [MAX_BATCH, H] */
    float *logits;         /* [MAX_BATCH, E] */
    void *workspace;
    size_t workspace_bytes;
    void *dense_gate, *dense_up, *dense_down; /* bf16 [K·I, H], [K·I, H], [H, K·I] */
    void *dense_g, *dense_u;                  /* bf16 [MAX_BATCH, K·I] */
} bench;

static int fail_cuda(cudaError_t err, const char *what) {
    fprintf(stderr, "gale bench kernels moe: %s: %s\n", what, cudaGetErrorString(err));
    return 1;
}
#define TRY_CUDA(call, what)                                                                                           \
    do {                                                                                                               \
        cudaError_t err_ = (call);                                                                                     \
        if (err_ != cudaSuccess) return fail_cuda(err_, (what));                                                       \
    } while (0)
#define TRY_CUBLAS(call, what)                                                                                         \
    do {                                                                                                               \
        cublasStatus_t st_ = (call);                                                                                   \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                                                            \
            fprintf(stderr, "gale bench kernels moe: %s: %s\n", (what), cublasGetStatusString(st_));                   \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)
#define TRY_GALE(call)                                                                                                 \
    do {                                                                                                               \
        if ((call) != GALE_OK) {                                                                                       \
            fprintf(stderr, "gale bench kernels moe: %s\n", gale_last_error());                                        \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

/* count bf16 values at d, uniform in (−scale, scale] from the seed (kernels/fill.cu): the
 * values only need realistic magnitudes and signs */
static int alloc_random(void **d, size_t count, float scale, uint64_t seed) {
    TRY_CUDA(cudaMalloc(d, count * 2), "allocation (the bench needs about 4 GB of GPU memory)");
    TRY_GALE(kernel_fill_uniform_bf16(*d, count, scale, seed, NULL));
    return 0;
}

static int setup(bench *b) {
    TRY_CUDA(cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking), "stream");
    TRY_CUBLAS(cublasCreate(&b->cublas), "cuBLAS handle");
    TRY_CUBLAS(cublasSetStream(b->cublas, b->stream), "cuBLAS stream");
    const size_t mat = (size_t)I * H;
    int rc = 0;
    uint64_t seed = 1;
    /* magnitudes as a trained layer's: gate/up ≈ 1.5·sqrt(3/H), down ≈ 1.5·sqrt(3/I), router 3/sqrt(H) (logits of
     * standard deviation ≈ 1, so the routing spreads over the experts) */
    const float gate_scale = 1.5f * 0.027f, down_scale = 1.5f * 0.0145f, router_scale = 3.0f / 64.0f;
    for (int m = 0; m < 3 * E && !rc; m++)
        rc = alloc_random(&b->expert_w[m], mat, m < 2 * E ? gate_scale : down_scale, seed++);
    if (!rc) rc = alloc_random(&b->dense_gate, (size_t)K * mat, gate_scale, seed++);
    if (!rc) rc = alloc_random(&b->dense_up, (size_t)K * mat, gate_scale, seed++);
    if (!rc) rc = alloc_random(&b->dense_down, (size_t)K * mat, down_scale, seed++);
    if (!rc) rc = alloc_random(&b->router, (size_t)E * H, router_scale, seed++);
    if (!rc) rc = alloc_random(&b->x, (size_t)MAX_BATCH * H, 1.0f, seed++);
    if (!rc) rc = alloc_random(&b->dense_g, (size_t)MAX_BATCH * K * I, 1.0f, seed++);
    if (rc) return rc;
    /* the fills ran on the legacy stream, the bench's own stream does not wait for it */
    TRY_CUDA(cudaDeviceSynchronize(), "random fill");
    TRY_CUDA(cudaMalloc((void **)&b->table, sizeof(void *) * 3 * E), "pointer table");
    TRY_CUDA(cudaMemcpy((void *)b->table, b->expert_w, sizeof(void *) * 3 * E, cudaMemcpyHostToDevice),
             "pointer table");
    TRY_CUDA(cudaMalloc(&b->out, (size_t)MAX_BATCH * H * 2), "output");
    TRY_CUDA(cudaMalloc((void **)&b->logits, (size_t)MAX_BATCH * E * sizeof(float)), "logits");
    b->workspace_bytes = moe_workspace_bytes(MAX_BATCH, E, K, H, I);
    TRY_CUDA(cudaMalloc(&b->workspace, b->workspace_bytes), "workspace");
    TRY_CUDA(cudaMalloc(&b->dense_u, (size_t)MAX_BATCH * K * I * 2), "dense activations");
    return 0;
}

static void teardown(bench *b) {
    for (int m = 0; m < 3 * E; m++) cudaFree(b->expert_w[m]);
    void *bufs[] = {(void *)b->table, b->router,   b->x,          b->out,     b->logits, b->workspace,
                    b->dense_gate,    b->dense_up, b->dense_down, b->dense_g, b->dense_u};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    if (b->cublas) cublasDestroy(b->cublas);
    if (b->stream) cudaStreamDestroy(b->stream);
}

/* y[n, out] = x[n, in] · wᵀ, row-major bf16 (cuda_matmul's mapping) */
static int gemm(bench *b, const void *x, int n, const void *w, int out, int in, void *y) {
    const float one = 1.0f, zero = 0.0f;
    TRY_CUBLAS(cublasGemmEx(b->cublas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, CUDA_R_16BF, in, x, CUDA_R_16BF,
                            in, &zero, y, CUDA_R_16BF, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "bf16 GEMM");
    return 0;
}

/* one MoE layer as cuda_moe runs it: router logits, then the kernels on the given path */
static int moe_layer(bench *b, int n, moe_path path) {
    const float one = 1.0f, zero = 0.0f;
    TRY_CUBLAS(cublasGemmEx(b->cublas, CUBLAS_OP_T, CUBLAS_OP_N, E, n, H, &one, b->router, CUDA_R_16BF, H, b->x,
                            CUDA_R_16BF, H, &zero, b->logits, CUDA_R_32F, E, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "router GEMM");
    const moe_experts ex = {.n_experts = E,
                            .top_k = K,
                            .hidden = H,
                            .intermediate = I,
                            .act = GALE_ACT_SILU,
                            .gate = b->table,
                            .up = b->table + E,
                            .down = b->table + 2 * E};
    TRY_GALE(kernel_moe_bf16(b->logits, NULL, b->x, n, &ex, path, b->workspace, b->workspace_bytes, b->out, b->stream));
    return 0;
}

/* the dense MLP of the same active FLOPs: intermediate K·I */
static int dense_mlp(bench *b, int n) {
    if (gemm(b, b->x, n, b->dense_gate, K * I, H, b->dense_g) || gemm(b, b->x, n, b->dense_up, K * I, H, b->dense_u))
        return 1;
    TRY_GALE(kernel_gated_activation_bf16(b->dense_g, b->dense_u, (uint64_t)n * K * I, GALE_ACT_SILU, b->dense_g,
                                          b->stream));
    return gemm(b, b->dense_g, n, b->dense_down, H, K * I, b->out);
}

typedef int (*bench_fn)(bench *b, int n, int arg);
static int run_moe(bench *b, int n, int path) { return moe_layer(b, n, (moe_path)path); }
static int run_dense(bench *b, int n, int unused) { return (void)unused, dense_mlp(b, n); }

typedef struct bench_job {
    bench *b;
    bench_fn fn;
    int n, arg;
} bench_job;

static int run_job(void *arg) {
    const bench_job *j = arg;
    return j->fn(j->b, j->n, j->arg);
}

/* median seconds of fn over REPEATS after WARMUP, or a negative value on failure */
static double time_median(bench *b, bench_fn fn, int n, int arg) {
    bench_job job = {.b = b, .fn = fn, .n = n, .arg = arg};
    const double ms = bench_gpu_time_ms(&(gpu_timer){.stream = b->stream, .warmups = WARMUP, .loops = 1, .samples = REPEATS},
                                        run_job, &job, "gale bench kernels moe");
    return ms < 0 ? -1 : ms * 1e-3;
}

/* the distinct experts the router picks for the first n tokens (host top-K of its logits) */
static int distinct_experts(bench *b, int n, int *out) {
    static float logits[MAX_BATCH * E];
    if (moe_layer(b, n, MOE_PATH_AUTO)) return 1;
    TRY_CUDA(cudaStreamSynchronize(b->stream), "routing");
    TRY_CUDA(cudaMemcpy(logits, b->logits, (size_t)n * E * sizeof *logits, cudaMemcpyDeviceToHost), "routing");
    bool used[E] = {false};
    for (int t = 0; t < n; t++) {
        bool taken[E] = {false};
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < E; e++)
                if (!taken[e] && (best < 0 || logits[(size_t)t * E + e] > logits[(size_t)t * E + best])) best = e;
            taken[best] = used[best] = true;
        }
    }
    *out = 0;
    for (int e = 0; e < E; e++) *out += used[e];
    return 0;
}

static const char *path_label(moe_path p) { return p == MOE_PATH_GEMV ? "gemv" : "grouped"; }

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: gale bench kernels moe [--variant grouped|gemv|auto] [--json]\n"
               "  one Mixtral-8x7B MoE layer (H 4096, I 14336, 8 experts, top-2) at batch 1, 16, 64, 256, 1024\n"
               "  against the copy-bandwidth and bf16-GEMM rooflines, and a dense MLP of the same active FLOPs;\n"
               "  without --variant both expert paths, * marking the one cuda_moe picks\n");
    return rc;
}

static int run(int only, bool json) {
    bench b = {0};
    int rc = setup(&b);
    double bw = 0, rate = 0;
    if (!rc) {
        bw = bench_gpu_copy_bandwidth(BENCH_GPU_COPY_BYTES);
        rate = bench_gpu_gemm_rate();
        if (!(bw > 0) || !(rate > 0)) {
            fprintf(stderr, "gale bench kernels moe: roofline measurement failed\n");
            rc = 1;
        }
    }
    struct cudaDeviceProp prop;
    if (!rc && cudaGetDeviceProperties(&prop, 0) != cudaSuccess) strcpy(prop.name, "unknown GPU");
    if (!rc && !json)
        printf("MoE layer, Mixtral-8x7B shapes (H %d, I %d, %d experts, top-%d), bf16, on %s\n"
               "copy bandwidth %.0f GB/s (read + written), cuBLAS bf16 GEMM %.0f TFLOP/s (8192^3)\n\n"
               "%6s %-9s %7s %10s %8s %6s %8s %6s %6s %10s\n",
               H, I, E, K, prop.name, bw * 1e-9, rate * 1e-12, "batch", "variant", "experts", "time us", "GB/s",
               "%bw", "TFLOP/s", "%gemm", "%roof", "dense us");
    if (!rc && json)
        printf("{\"gpu\": \"%s\", \"copy_gbps\": %.1f, \"gemm_tflops\": %.1f, \"rows\": [", prop.name, bw * 1e-9,
               rate * 1e-12);
    bool first_row = true;
    for (int bi = 0; bi < N_BATCHES && !rc; bi++) {
        const int n = batches[bi];
        int experts = 0;
        if (distinct_experts(&b, n, &experts)) {
            rc = 1;
            break;
        }
        const double dense = time_median(&b, run_dense, n, 0);
        const double bytes = (double)experts * 3.0 * H * I * 2.0, flops = 2.0 * 3.0 * H * I * (double)n * K;
        const moe_path chosen = moe_choose_path(n);
        for (int p = MOE_PATH_GROUPED; p <= MOE_PATH_GEMV && !rc; p++) {
            if (only >= 0 && p != (only == MOE_PATH_AUTO ? (int)chosen : only)) continue;
            const double t = time_median(&b, run_moe, n, p);
            if (!(t > 0) || !(dense > 0)) {
                rc = 1;
                break;
            }
            const double pct_bw = 100.0 * bytes / bw / t, pct_gemm = 100.0 * flops / rate / t;
            const double roof = pct_bw > pct_gemm ? pct_bw : pct_gemm;
            if (json) {
                printf(
                    "%s\n  {\"batch\": %d, \"variant\": \"%s\", \"auto\": %s, \"experts_read\": %d, \"time_us\": %.1f, "
                    "\"gbps\": %.1f, \"pct_bandwidth\": %.1f, \"tflops\": %.1f, \"pct_gemm\": %.1f, "
                    "\"pct_roofline\": %.1f, \"dense_us\": %.1f}",
                    first_row ? "" : ",", n, path_label((moe_path)p), p == (int)chosen ? "true" : "false", experts,
                    t * 1e6, bytes / t * 1e-9, pct_bw, flops / t * 1e-12, pct_gemm, roof, dense * 1e6);
                first_row = false;
            } else {
                printf("%6d %-8s%s %7d %10.1f %8.0f %6.1f %8.1f %6.1f %6.1f %10.1f\n", n, path_label((moe_path)p),
                       p == (int)chosen ? "*" : " ", experts, t * 1e6, bytes / t * 1e-9, pct_bw, flops / t * 1e-12,
                       pct_gemm, roof, dense * 1e6);
            }
        }
    }
    if (json && !rc) printf("\n]}\n");
    if (rc)
        fprintf(stderr, "gale bench kernels moe: a timed run failed%s%s\n", gale_last_error()[0] ? ": " : "",
                gale_last_error());
    teardown(&b);
    return rc;
}

int kernel_bench_moe(int argc, char **argv) {
    int only = -1; /* both paths */
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--variant") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            if (strcmp(v, "grouped") == 0)
                only = MOE_PATH_GROUPED;
            else if (strcmp(v, "gemv") == 0)
                only = MOE_PATH_GEMV;
            else if (strcmp(v, "auto") == 0)
                only = MOE_PATH_AUTO;
            else
                return fprintf(stderr, "gale bench kernels moe: unknown variant '%s'\n", v), usage(stderr, 2);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return usage(stdout, 0);
        else
            return fprintf(stderr, "gale bench kernels moe: unknown option '%s'\n", argv[i]), usage(stderr, 2);
    }
    if (device_cuda_count() == 0) {
        fprintf(stderr, "gale bench kernels moe: no CUDA device (no usable GPU or driver): nothing to time\n");
        return 1;
    }
    return run(only, json);
}

#else /* no CUDA in this build */

int kernel_bench_moe(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "gale bench kernels moe: this build has no CUDA (GALE_CUDA=OFF): nothing to time\n");
    return 1;
}

#endif
