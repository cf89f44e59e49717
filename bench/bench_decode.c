/* bench_decode — decode steps of B sequences at once, against the memory roofline.
 *
 *   bench_decode MODEL [--dummy-weights] [--device cpu|cuda] [--eager] [--batch 1,8,32]
 *                [--prompt P] [--steps S] [--threads N]
 *
 * For each batch size B: B requests of P random prompt tokens (a different prompt each,
 * so a mixture of experts routes them apart as real traffic does) go through
 * gale_engine; once every request has its first token, WARMUP_STEPS untimed decode steps
 * record the step's CUDA graph and load its kernels, then S steps are timed, each one
 * decode token of all B sequences (a step that is not fails the run). A decode step must read every weight once (the embedding table only when
 * it is also the head) and each sequence's cached keys and values (sliding layers: the
 * window), so its roofline time is those bytes over the measured copy bandwidth (the
 * CPU's memcpy on one thread, or the GPU's device-to-device copy). Printed: tokens/s, ms
 * per step, bytes per step and the share of the roofline reached. The weights' bytes are
 * as the backend reads them: as stored on the CPU, bf16 on CUDA; of a mixture of experts,
 * the experts a step's tokens are expected to choose (routing spread evenly). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bandwidth.h"
#include "bench_util.h"
#include "gale.h"

typedef struct options {
    const char *model;
    bool dummy, eager;
    gale_device device;
    int batches[8], n_batches, prompt, steps, threads;
} options;

static int usage(void) {
    fprintf(stderr, "usage: bench_decode MODEL [--dummy-weights] [--device cpu|cuda] [--eager] [--batch 1,8,32] [--prompt P] "
                    "[--steps S] [--threads N]\n");
    return 2;
}

static bool parse(int argc, char **argv, options *o) {
    *o = (options){.batches = {1, 8, 32}, .n_batches = 3, .prompt = 512, .steps = 32};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--dummy-weights") == 0) o->dummy = true;
        else if (strcmp(a, "--eager") == 0) o->eager = true;
        else if (strcmp(a, "--device") == 0 && v && (strcmp(v, "cpu") == 0 || strcmp(v, "cuda") == 0))
            o->device = strcmp(v, "cuda") == 0 ? GALE_DEVICE_CUDA : GALE_DEVICE_CPU, i++;
        else if (strcmp(a, "--batch") == 0 && v) {
            o->n_batches = 0;
            for (char *end, *p = argv[++i]; *p && o->n_batches < 8; p = *end ? end + 1 : end) {
                long b = strtol(p, &end, 10);
                if (b <= 0 || (*end && *end != ',')) return false;
                o->batches[o->n_batches++] = (int)b;
            }
        } else if (strcmp(a, "--prompt") == 0 && v) o->prompt = atoi(argv[++i]);
        else if (strcmp(a, "--steps") == 0 && v) o->steps = atoi(argv[++i]);
        else if (strcmp(a, "--threads") == 0 && v) o->threads = atoi(argv[++i]);
        else if (a[0] != '-' && !o->model) o->model = a;
        else return false;
    }
    return o->model && o->n_batches > 0 && o->prompt > 0 && o->steps > 0 && o->threads >= 0;
}

/* Bytes one decode step reads: the weights, and each sequence's visible cache. */
static double step_bytes(const gale_model *m, gale_device device, int batch, int length) {
    const gale_config *c = gale_model_config(m);
    gale_model_stats st = gale_model_get_stats(m);
    double weights = 0;
    if (device == GALE_DEVICE_CUDA) {
        weights = 2.0 * (double)st.n_params;
    } else {
        for (int d = 0; d < GALE_DTYPE_COUNT; d++) weights += (double)st.bytes_by_dtype[d];
    }
    const double bytes_per_param = weights / (double)st.n_params;
    if (!c->tied_embeddings) weights -= bytes_per_param * (double)c->vocab * c->hidden; /* rows only */
    if (c->n_experts > 0) {
        /* a step reads only the experts its tokens chose: with routing spread evenly, each
         * expert of a layer is left out by all `batch` tokens with probability (1 − k/E)^batch */
        const double experts = (double)c->n_layers * c->n_experts * 3.0 * c->hidden * c->intermediate;
        const double used = 1.0 - pow(1.0 - (double)c->n_experts_per_tok / c->n_experts, batch);
        weights -= bytes_per_param * experts * (1.0 - used);
    }
    const double act = device == GALE_DEVICE_CUDA ? 2 : 4, kv_dim = (double)c->n_kv_heads * c->head_dim;
    double kv = 0;
    for (int l = 0; l < c->n_layers; l++) {
        int w = c->layers[l].window, seen = w > 0 && w < length ? w : length;
        kv += (double)seen * kv_dim * 2 * act;
    }
    return weights + kv * batch;
}

/* Untimed decode steps before the timed ones: the first records the step's graph (or,
 * eager, loads the kernels of its sizes); the rest replay it as the timed steps do. */
enum { WARMUP_STEPS = 3 };

/* One step; *n = its outputs, *first = how many of them were a request's first token
 * (has_first[r] tracks request ids[r]). */
static gale_status step_counting(gale_engine *e, const uint64_t *ids, bool *has_first, int batch, int *n, int *first) {
    const gale_output *out;
    size_t count;
    const gale_status status = gale_engine_step(e, &out, &count);
    if (status != GALE_OK) return status;
    *n = (int)count, *first = 0;
    for (size_t i = 0; i < count; i++)
        for (int r = 0; r < batch; r++)
            if (ids[r] == out[i].request_id && !has_first[r]) has_first[r] = true, ++*first;
    return GALE_OK;
}

static int run_batch(const gale_model *m, const options *o, int batch, double bandwidth) {
    const gale_config *c = gale_model_config(m);
    gale_engine_params p = gale_engine_params_default();
    p.device = o->device;
    p.enforce_eager = o->eager; /* CUDA graphs are the default: --eager times the op-by-op steps */
    p.n_threads = o->threads;
    p.max_num_seqs = batch;
    p.max_num_batched_tokens = 4096;
    /* a request prefilled early decodes while the later ones prefill: up to one token per
     * prefill step more than the warm-up and timed steps need */
    const int prefill_steps = (int)(((long long)batch * o->prompt + p.max_num_batched_tokens - 1) / p.max_num_batched_tokens);
    const int new_tokens = 1 + prefill_steps + WARMUP_STEPS + o->steps + 2;
    p.n_ctx = o->prompt + new_tokens + 1;
    p.kv_blocks = batch * ((p.n_ctx + 15) / 16);
    gale_engine *e;
    if (gale_engine_new(m, NULL, &p, &e) != GALE_OK) {
        fprintf(stderr, "bench_decode: %s\n", gale_last_error());
        return 1;
    }
    int32_t *ids = malloc((size_t)o->prompt * sizeof *ids);
    uint64_t *request_ids = calloc((size_t)batch, sizeof *request_ids);
    bool *has_first = calloc((size_t)batch, sizeof *has_first);
    uint64_t state = 12345;
    if (!ids || !request_ids || !has_first) {
        fprintf(stderr, "bench_decode: out of memory\n");
        free(ids), free(request_ids), free(has_first);
        gale_engine_free(e);
        return 1;
    }
    gale_status status = GALE_OK;
    for (int r = 0; r < batch && status == GALE_OK; r++) {
        for (int i = 0; i < o->prompt; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            ids[i] = (int32_t)((state >> 33) % (uint64_t)c->vocab);
        }
        gale_request q = gale_request_default();
        q.ids = ids;
        q.n_ids = (size_t)o->prompt;
        q.max_new_tokens = new_tokens;
        q.ignore_eos = true;
        status = gale_engine_submit(e, &q, &request_ids[r]);
    }
    /* prefill: until every request has its first token; then the warm-up steps */
    int started = 0, n = 0, first = 0;
    while (status == GALE_OK && started < batch)
        if ((status = step_counting(e, request_ids, has_first, batch, &n, &first)) == GALE_OK) started += first;
    for (int s = 0; status == GALE_OK && s < WARMUP_STEPS; s++)
        status = step_counting(e, request_ids, has_first, batch, &n, &first);
    double t0 = bench_now();
    int generated = 0, short_step = -1; /* a timed step that was not one decode token of each */
    for (int s = 0; status == GALE_OK && short_step < 0 && s < o->steps; s++) {
        status = step_counting(e, request_ids, has_first, batch, &n, &first);
        if (status == GALE_OK && n != batch) short_step = s;
        generated += n;
    }
    double seconds = bench_now() - t0;
    if (status != GALE_OK) {
        fprintf(stderr, "bench_decode: batch %d: %s\n", batch, gale_last_error());
    } else if (short_step >= 0) {
        fprintf(stderr, "bench_decode: batch %d: timed step %d ran %d tokens, not one per sequence\n", batch, short_step, n);
    } else {
        /* the cache each sequence reads, at the middle of the timed steps */
        const int length = o->prompt + 1 + WARMUP_STEPS + o->steps / 2;
        double bytes = step_bytes(m, o->device, batch, length), step = seconds / o->steps;
        double roofline = bandwidth > 0 ? bytes / bandwidth : 0;
        printf("%6d %10.1f %10.2f %10.3f %11.2f %8.1f%%\n", batch, generated / seconds, step * 1e3, bytes / 1e9,
               roofline * 1e3, roofline > 0 ? 100 * roofline / step : 0.0);
    }
    const int rc = status != GALE_OK || short_step >= 0;
    free(ids), free(request_ids), free(has_first);
    gale_engine_free(e);
    return rc;
}

int main(int argc, char **argv) {
    options o;
    if (!parse(argc, argv, &o)) return usage();
    gale_load_params lp = gale_load_params_default();
    lp.quiet = true;
    lp.dummy_weights = o.dummy;
    gale_model *m;
    if (gale_model_load(o.model, &lp, &m) != GALE_OK) {
        fprintf(stderr, "bench_decode: %s\n", gale_last_error());
        return 1;
    }
    double bandwidth = o.device == GALE_DEVICE_CUDA ? bench_gpu_copy_bandwidth(BENCH_GPU_COPY_BYTES)
                                                    : bench_cpu_copy_bandwidth((size_t)256 << 20);
    printf("%s on %s: prompt %d, %d decode steps timed; copy bandwidth %.1f GB/s (%s)\n", o.model,
           o.device == GALE_DEVICE_CUDA ? "cuda" : "cpu", o.prompt, o.steps, bandwidth / 1e9,
           o.device == GALE_DEVICE_CUDA ? "device to device" : "memcpy, one thread");
    printf("%6s %10s %10s %10s %11s %9s\n", "batch", "tok/s", "ms/step", "GB/step", "roofline ms", "of roof");
    int rc = 0;
    for (int b = 0; b < o.n_batches && rc == 0; b++) rc = run_batch(m, &o, o.batches[b], bandwidth);
    gale_model_free(m);
    return rc;
}
