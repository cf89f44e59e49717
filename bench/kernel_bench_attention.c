/* gale bench kernels attention [--variant NAME|all] [--json]: every attention variant
 * (kernels/attention_kernels.h) side by side on the paged cache.
 *
 * Prefill: one sequence of L tokens computing all of them (causal), Mistral-7B-like
 * (32 query heads, 8 KV heads, head_dim 128) at L = 1k, 4k, 16k and Gemma-2-9B-like (16/8,
 * head_dim 256, scale 256^-0.5, softcap 50, window 4096) at 4k and 16k. TFLOP/s counts the
 * work a query really has: 4·head_dim·heads·Σ_i visible(i) (two flops per multiply-add,
 * Q·Kᵀ and P·V), so keys outside the causal/window region do not count.
 *
 * The roof column: prefill TFLOP/s over the rate of an 8192³ cuBLAS bf16 GEMM, decode GB/s
 * over the copy bandwidth, both measured in the same run (bench/bandwidth.h).
 *
 * Decode: B sequences of context C, one query token each at position C−1, Mistral-7B-like,
 * C = 1k, 8k, 32k and B = 1, 16, 128; each sequence has its own blocks. GB/s counts the
 * keys and values a query must read once: B·C·kv_heads·head_dim·2 bytes·2, against the
 * device-to-device copy bandwidth measured in the same run (its read + write bytes per
 * second, as bench_decode uses it).
 *
 * Timing: CUDA events around one launch on the default stream, one warm-up launch, then the
 * median of up to 15 repeats (fewer when a launch is slow, so the whole run stays well
 * under a minute on an H100). The flash variants' time includes their host-side planning
 * and plan upload, as in the engine. The naive kernel and the fixed-split decode variants
 * are skipped on prompts over 4k tokens (they are not for them, and would take seconds). Same table and JSON fields as
 * bench/peer_torch_attention.py, so a script can put the two side by side. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bandwidth.h"
#include "gpu_timer.h"
#include "kernel_bench.h"

#ifdef GALE_HAVE_CUDA
#include <cuda_runtime.h>

#include "backend/device.h"
#include "kernels.h"

enum { SLOW_MAX_PREFILL = 4096 };

typedef struct bench_options {
    bool all;
    attention_variant variant;
    bool json;
} bench_options;

typedef struct shape {
    const char *kind;  /* "prefill" or "decode" */
    const char *model; /* "mistral7b" or "gemma2-9b" */
    int batch, context, tokens; /* sequences, positions each, query tokens in all */
    int n_heads, n_kv_heads, head_dim, window;
    float scale, softcap;
} shape;

/* The device buffers of one shape. */
typedef struct bench_buffers {
    void *q, *keys, *values, *out;
    int32_t *tables, *positions, *seq_of; /* device */
    int32_t *host_positions, *host_seq_of;
    int table_stride, n_blocks;
} bench_buffers;

static const int BLOCK = 16;

static int usage(void) {
    fprintf(stderr, "usage: gale bench kernels attention [--variant NAME|all] [--json]\nvariants:");
    for (int v = 0; v < ATTENTION_VARIANT_COUNT; v++) fprintf(stderr, " %s", attention_variant_name((attention_variant)v));
    fprintf(stderr, "\n");
    return 2;
}

static bool parse(int argc, char **argv, bench_options *o) {
    *o = (bench_options){.all = true};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) o->json = true;
        else if (strcmp(argv[i], "--variant") == 0 && i + 1 < argc) {
            const char *name = argv[++i];
            o->all = strcmp(name, "all") == 0;
            if (!o->all && !attention_variant_parse(name, &o->variant)) return false;
        } else return false;
    }
    return true;
}

/* count bf16 values uniform in (−1, 1] (kernels/fill.cu; the values only shape the timing
 * a little) */
static bool fill_random(void *d, size_t count) {
    static uint64_t seed;
    return kernel_fill_uniform_bf16(d, count, 1.0f, ++seed, NULL) == GALE_OK;
}

static void free_buffers(bench_buffers *b) {
    cudaFree(b->q), cudaFree(b->keys), cudaFree(b->values), cudaFree(b->out);
    cudaFree(b->tables), cudaFree(b->positions), cudaFree(b->seq_of);
    free(b->host_positions), free(b->host_seq_of);
    memset(b, 0, sizeof *b);
}

/* Each sequence its own blocks, in order; queries: prefill all positions of the one
 * sequence, decode the last position of each. */
static bool make_buffers(const shape *s, bench_buffers *b) {
    memset(b, 0, sizeof *b);
    const int kv_dim = s->n_kv_heads * s->head_dim;
    b->table_stride = (s->context + BLOCK - 1) / BLOCK;
    b->n_blocks = b->table_stride * s->batch;
    const size_t cache = (size_t)b->n_blocks * BLOCK * kv_dim, q = (size_t)s->tokens * s->n_heads * s->head_dim;
    int32_t *tables = malloc((size_t)b->n_blocks * sizeof *tables);
    b->host_positions = malloc((size_t)s->tokens * sizeof(int32_t));
    b->host_seq_of = malloc((size_t)s->tokens * sizeof(int32_t));
    bool ok = tables && b->host_positions && b->host_seq_of;
    for (int i = 0; ok && i < b->n_blocks; i++) tables[i] = i;
    for (int i = 0; ok && i < s->tokens; i++) {
        const bool prefill = strcmp(s->kind, "prefill") == 0;
        b->host_positions[i] = prefill ? i : s->context - 1;
        b->host_seq_of[i] = prefill ? 0 : i;
    }
    ok = ok && cudaMalloc(&b->q, q * 2) == cudaSuccess && cudaMalloc(&b->out, q * 2) == cudaSuccess &&
         cudaMalloc(&b->keys, cache * 2) == cudaSuccess && cudaMalloc(&b->values, cache * 2) == cudaSuccess &&
         cudaMalloc((void **)&b->tables, (size_t)b->n_blocks * 4) == cudaSuccess &&
         cudaMalloc((void **)&b->positions, (size_t)s->tokens * 4) == cudaSuccess &&
         cudaMalloc((void **)&b->seq_of, (size_t)s->tokens * 4) == cudaSuccess;
    ok = ok && fill_random(b->q, q) && fill_random(b->keys, cache) && fill_random(b->values, cache) &&
         cudaMemcpy(b->tables, tables, (size_t)b->n_blocks * 4, cudaMemcpyHostToDevice) == cudaSuccess &&
         cudaMemcpy(b->positions, b->host_positions, (size_t)s->tokens * 4, cudaMemcpyHostToDevice) == cudaSuccess &&
         cudaMemcpy(b->seq_of, b->host_seq_of, (size_t)s->tokens * 4, cudaMemcpyHostToDevice) == cudaSuccess;
    free(tables);
    if (!ok) {
        fprintf(stderr, "gale bench kernels attention: %s %s batch %d context %d does not fit in GPU memory\n", s->kind,
                s->model, s->batch, s->context);
        free_buffers(b);
    }
    return ok;
}

static attention_launch launch_for(const shape *s, const bench_buffers *b) {
    return (attention_launch){.q = b->q, .key_cache = b->keys, .value_cache = b->values, .block_tables = b->tables,
                              .table_stride = b->table_stride, .block_size = BLOCK, .positions = b->positions,
                              .seq_of = b->seq_of, .host_positions = b->host_positions, .host_seq_of = b->host_seq_of,
                              .n = s->tokens, .n_heads = s->n_heads, .n_kv_heads = s->n_kv_heads,
                              .head_dim = s->head_dim, .scale = s->scale, .softcap = s->softcap, .window = s->window,
                              .max_context = s->context, .out = b->out};
}

typedef struct variant_launch {
    attention_launch *launch;
    attention_variant variant;
} variant_launch;

static int run_variant(void *arg) {
    const variant_launch *v = arg;
    return kernel_attention_bf16(v->launch, v->variant, NULL) != GALE_OK;
}

/* Milliseconds of one launch: the median of about a quarter second of launches after a
 * warm-up; < 0 on failure (reported). */
static double time_variant(attention_launch *a, attention_variant v) {
    variant_launch job = {.launch = a, .variant = v};
    const double ms = bench_gpu_time_ms(&(gpu_timer){.warmups = 1, .loops = 1, .budget_ms = 250}, run_variant, &job,
                                        attention_variant_name(v));
    if (ms < 0) fprintf(stderr, "gale bench kernels attention: %s: %s\n", attention_variant_name(v), gale_last_error());
    return ms;
}

/* Σ over queries of the keys each sees */
static double visible_keys(const shape *s) {
    double keys = 0;
    if (strcmp(s->kind, "decode") == 0) {
        const int seen = s->window > 0 && s->window < s->context ? s->window : s->context;
        return (double)s->batch * seen;
    }
    for (int i = 0; i < s->tokens; i++) keys += s->window > 0 && i + 1 > s->window ? s->window : i + 1;
    return keys;
}

/* The run's ceilings (bench/bandwidth.h): B in bytes/s, F in FLOP/s. */
typedef struct rooflines {
    double copy_bandwidth, gemm_rate;
} rooflines;

static void print_row(const bench_options *o, const shape *s, const char *variant, double ms, const rooflines *r) {
    const bool prefill = strcmp(s->kind, "prefill") == 0;
    const double keys = visible_keys(s);
    const double tflops = prefill && ms > 0 ? 4.0 * s->head_dim * s->n_heads * keys / (ms * 1e-3) / 1e12 : NAN;
    const double gbps = !prefill && ms > 0 ? keys * s->n_kv_heads * s->head_dim * 4.0 / (ms * 1e-3) / 1e9 : NAN;
    /* prefill: the unmasked FLOPs over F; decode: the K/V bytes over B */
    const double roof = prefill ? (r->gemm_rate > 0 ? 100.0 * tflops * 1e12 / r->gemm_rate : NAN)
                                : (r->copy_bandwidth > 0 ? 100.0 * gbps * 1e9 / r->copy_bandwidth : NAN);
    if (o->json) {
        printf("{\"kind\":\"%s\",\"model\":\"%s\",\"batch\":%d,\"context\":%d,\"tokens\":%d,\"heads\":%d,\"kv_heads\":%d,"
               "\"head_dim\":%d,\"window\":%d,\"softcap\":%g,\"variant\":\"%s\",\"ms\":",
               s->kind, s->model, s->batch, s->context, s->tokens, s->n_heads, s->n_kv_heads, s->head_dim, s->window,
               (double)s->softcap, variant);
        if (ms > 0) printf("%.4f", ms);
        else printf("null");
        printf(",\"tflops\":");
        if (isnan(tflops)) printf("null");
        else printf("%.2f", tflops);
        printf(",\"gbps\":");
        if (isnan(gbps)) printf("null");
        else printf("%.1f", gbps);
        printf(",\"roof_pct\":");
        if (isnan(roof)) printf("null");
        else printf("%.1f", roof);
        printf("}\n");
    } else {
        char what[64];
        snprintf(what, sizeof what, "%s B=%d ctx=%d", s->model, s->batch, s->context);
        printf("%-8s %-28s %-14s ", s->kind, what, variant);
        if (ms > 0) printf("%9.3f", ms);
        else printf("%9s", "-");
        if (isnan(tflops)) printf(" %8s", "-");
        else printf(" %8.1f", tflops);
        if (isnan(gbps)) printf(" %8s", "-");
        else printf(" %8.0f", gbps);
        if (isnan(roof)) printf(" %6s\n", "-");
        else printf(" %5.0f%%\n", roof);
    }
    fflush(stdout);
}

static void run_shape(const bench_options *o, const shape *s, const rooflines *r) {
    bench_buffers b;
    if (!make_buffers(s, &b)) return;
    for (int v = 0; v < ATTENTION_VARIANT_COUNT; v++) {
        if (!o->all && v != (int)o->variant) continue;
        const char *name = attention_variant_name((attention_variant)v);
        /* the naive kernel and the decode kernel's fixed splits take seconds on the long
         * prompts, which they are not for: skipped there ("-") */
        const bool slow = v == ATTENTION_NAIVE || v == ATTENTION_SPLIT_KV_256 || v == ATTENTION_SPLIT_KV_1024 ||
                          v == ATTENTION_SPLIT_KV_NONE;
        if (slow && strcmp(s->kind, "prefill") == 0 && s->tokens > SLOW_MAX_PREFILL) {
            print_row(o, s, name, -1, r);
            continue;
        }
        attention_launch a = launch_for(s, &b);
        const size_t bytes = kernel_attention_workspace_bytes(&a, (attention_variant)v);
        if (bytes && cudaMalloc(&a.workspace, bytes) != cudaSuccess) {
            fprintf(stderr, "gale bench kernels attention: %s: no memory for %zu bytes of workspace\n", name, bytes);
            print_row(o, s, name, -1, r);
            continue;
        }
        a.workspace_bytes = bytes;
        print_row(o, s, name, time_variant(&a, (attention_variant)v), r);
        cudaFree(a.workspace);
    }
    free_buffers(&b);
}

static shape prefill_shape(const char *model, int tokens) {
    const bool gemma = strcmp(model, "gemma2-9b") == 0;
    return (shape){.kind = "prefill", .model = model, .batch = 1, .context = tokens, .tokens = tokens,
                   .n_heads = gemma ? 16 : 32, .n_kv_heads = 8, .head_dim = gemma ? 256 : 128,
                   .window = gemma ? 4096 : 0, .scale = gemma ? 0.0625f : 1.0f / sqrtf(128.0f),
                   .softcap = gemma ? 50.0f : 0.0f};
}

static shape decode_shape(int batch, int context) {
    return (shape){.kind = "decode", .model = "mistral7b", .batch = batch, .context = context, .tokens = batch,
                   .n_heads = 32, .n_kv_heads = 8, .head_dim = 128, .scale = 1.0f / sqrtf(128.0f)};
}

#endif /* GALE_HAVE_CUDA */

int kernel_bench_attention(int argc, char **argv) {
#ifdef GALE_HAVE_CUDA
    bench_options o;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage();
        return 0;
    }
    if (!parse(argc, argv, &o)) return usage();
    if (device_cuda_count() == 0) {
        fprintf(stderr, "gale bench kernels attention: no CUDA device (no usable GPU or driver found)\n");
        return 1;
    }
    const rooflines r = {.copy_bandwidth = bench_gpu_copy_bandwidth(BENCH_GPU_COPY_BYTES),
                         .gemm_rate = bench_gpu_gemm_rate()};
    if (!o.json) {
        printf("copy bandwidth %.0f GB/s (read + write), cuBLAS bf16 GEMM %.0f TFLOP/s (8192^3); prefill: TFLOP/s of\n"
               "unmasked work, roof against the GEMM rate; decode: GB/s of K/V read, roof against the copy\n",
               r.copy_bandwidth / 1e9, r.gemm_rate / 1e12);
        printf("%-8s %-28s %-14s %9s %8s %8s %6s\n", "kind", "shape", "variant", "ms", "TFLOP/s", "GB/s", "roof");
    }
    const int prefill_tokens[] = {1024, 4096, 16384};
    for (int i = 0; i < 3; i++) {
        shape s = prefill_shape("mistral7b", prefill_tokens[i]);
        run_shape(&o, &s, &r);
    }
    for (int i = 1; i < 3; i++) {
        shape s = prefill_shape("gemma2-9b", prefill_tokens[i]);
        run_shape(&o, &s, &r);
    }
    const int contexts[] = {1024, 8192, 32768}, batches[] = {1, 16, 128};
    for (int c = 0; c < 3; c++)
        for (int b = 0; b < 3; b++) {
            shape s = decode_shape(batches[b], contexts[c]);
            run_shape(&o, &s, &r);
        }
    return 0;
#else
    (void)argc, (void)argv;
    fprintf(stderr, "gale bench kernels attention: this build has no CUDA (GALE_CUDA=OFF)\n");
    return 1;
#endif
}
