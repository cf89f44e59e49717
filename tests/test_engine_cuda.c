/* The forward on the CUDA backend (bf16 weights, activations and KV cache; fp32
 * accumulation) against transformers' fp32 logits and the CPU engine, on the tiny
 * checkpoint of every family:
 *   - logits at every position of the 100-token engine fixture within 3e-2 of
 *     transformers' (max |a−b| / max |ref|; bf16 keeps 8 bits of mantissa, and the error
 *     of a 2-layer model's logits measured ~1e-2 in vLLM-style bf16 runs);
 *   - 32 greedy tokens, one forward per token through the paged cache: where the GPU's
 *     choice differs from the CPU's on the same prefix, it must be a near-tie in the CPU's
 *     fp32 logits (margin under 2 % of their range), and the comparison stops there.
 *   - decode steps replayed as CUDA graphs give bit-identical logits to the same steps run
 *     op by op (enforce_eager), every family; the engine with graphs, batches of changing
 *     size (padding rows), gives the same tokens in two runs and finishes every request;
 *   - dummy weights filled on the GPU give finite, bounded logits, the same for a seed.
 * Without CUDA in the build, or without a GPU at run time (as on CI), every test skips
 * itself with the reason. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "core/mapped_file.h"
#include "core/npy.h"
#include "engine/runner.h"
#include "batch_workload.h"
#include "cuda_test_support.h"
#include "test_support.h"

static const char *const families[] = {"llama", "mistral", "mixtral", "gemma", "gemma2", "gemma3_text"};
enum { N_FAMILIES = sizeof families / sizeof families[0] };

static gale_session *session_with(const gale_model *m, gale_device device, bool eager) {
    gale_engine_params ep = gale_engine_params_default();
    ep.device = device;
    ep.n_threads = 2;
    ep.enforce_eager = eager;
    gale_session *s = NULL;
    cr_assert_eq(gale_session_new(m, &ep, &s), GALE_OK, "%s", gale_last_error());
    return s;
}

static gale_session *session_on(const gale_model *m, gale_device device) { return session_with(m, device, false); }

static int32_t *fixture_ids(const char *family, int *n) {
    char path[256];
    snprintf(path, sizeof path, "engine/%s/meta.json", family);
    cJSON *meta = load_json(fixture(path));
    size_t count;
    int32_t *ids = json_int_array(cJSON_GetObjectItemCaseSensitive(meta, "input_ids"), &count);
    *n = (int)count;
    cJSON_Delete(meta);
    return ids;
}

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

ParameterizedTestParameters(engine_cuda, logits_within_bf16_of_transformers) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *index, engine_cuda, logits_within_bf16_of_transformers) {
    require_cuda();
    const char *family = families[*index];
    gale_model *m = load_tiny(family);
    int n;
    int32_t *ids = fixture_ids(family, &n);
    char path[256];
    snprintf(path, sizeof path, "engine/%s/logits.npy", family);
    float *ref;
    int64_t shape[2];
    int n_dims;
    cr_assert_eq(npy_read_f32(fixture(path), &ref, shape, &n_dims, 2), GALE_OK, "%s", gale_last_error());
    const int vocab = gale_model_config(m)->vocab;
    gale_session *gpu = session_on(m, GALE_DEVICE_CUDA);
    float *got = guarded_alloc((size_t)n * vocab);
    cr_assert_eq(gale_session_forward(gpu, ids, (size_t)n, true, got), GALE_OK, "%s", gale_last_error());
    double err = max_relative_error(got, ref, (size_t)n * vocab);
    fprintf(stderr, "cuda %s: max|a-b|/max|ref| = %.3g over %d positions\n", family, err, n);
    cr_assert(err <= 3e-2, "%s: GPU logits differ from transformers by %.3g relative", family, err);
    guarded_check_free(got, (size_t)n * vocab, "logits");
    gale_session_free(gpu);
    free(ref);
    free(ids);
    gale_model_free(m);
}

ParameterizedTestParameters(engine_cuda, greedy_follows_cpu_up_to_near_ties) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *index, engine_cuda, greedy_follows_cpu_up_to_near_ties) {
    require_cuda();
    const char *family = families[*index];
    gale_model *m = load_tiny(family);
    int n;
    int32_t *ids = fixture_ids(family, &n);
    const int prompt = 20, steps = 32, vocab = gale_model_config(m)->vocab;
    gale_session *gpu = session_on(m, GALE_DEVICE_CUDA), *cpu = session_on(m, GALE_DEVICE_CPU);
    float *a = malloc((size_t)vocab * sizeof *a), *b = malloc((size_t)vocab * sizeof *b);
    cr_assert_eq(gale_session_forward(gpu, ids, prompt, false, a), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_forward(cpu, ids, prompt, false, b), GALE_OK, "%s", gale_last_error());
    int same = 0;
    for (; same < steps; same++) {
        int32_t g = argmax(a, vocab), c = argmax(b, vocab);
        if (g != c) {
            float lo = b[0], hi = b[0];
            for (int v = 1; v < vocab; v++) lo = b[v] < lo ? b[v] : lo, hi = b[v] > hi ? b[v] : hi;
            float margin = b[c] - b[g];
            cr_assert(margin <= 0.02f * (hi - lo), "%s step %d: GPU chose %d, CPU %d with a margin of %.4g (range %.4g)",
                      family, same, g, c, (double)margin, (double)(hi - lo));
            break;
        }
        cr_assert_eq(gale_session_forward(gpu, &g, 1, false, a), GALE_OK, "%s", gale_last_error());
        cr_assert_eq(gale_session_forward(cpu, &c, 1, false, b), GALE_OK, "%s", gale_last_error());
    }
    fprintf(stderr, "cuda %s: %d of %d greedy tokens as the CPU's\n", family, same, steps);
    free(a), free(b);
    gale_session_free(gpu);
    gale_session_free(cpu);
    free(ids);
    gale_model_free(m);
}

ParameterizedTestParameters(engine_cuda, graph_replay_is_bit_identical_to_eager) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *index, engine_cuda, graph_replay_is_bit_identical_to_eager) {
    require_cuda();
    const char *family = families[*index];
    gale_model *m = load_tiny(family);
    int n;
    int32_t *ids = fixture_ids(family, &n);
    const int prompt = 20, vocab = gale_model_config(m)->vocab;
    gale_session *graphs = session_with(m, GALE_DEVICE_CUDA, false), *eager = session_with(m, GALE_DEVICE_CUDA, true);
    float *a = malloc((size_t)vocab * sizeof *a), *b = malloc((size_t)vocab * sizeof *b);
    cr_assert_eq(gale_session_forward(graphs, ids, prompt, false, a), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_forward(eager, ids, prompt, false, b), GALE_OK, "%s", gale_last_error());
    /* the fixture's next tokens one at a time: step 1 is recorded, the rest replay */
    for (int step = prompt; step < n; step++) {
        cr_assert_eq(gale_session_forward(graphs, &ids[step], 1, false, a), GALE_OK, "%s", gale_last_error());
        cr_assert_eq(gale_session_forward(eager, &ids[step], 1, false, b), GALE_OK, "%s", gale_last_error());
        cr_assert_eq(memcmp(a, b, (size_t)vocab * sizeof *a), 0, "%s position %d: replayed logits differ from eager ones",
                     family, step);
    }
    /* the first decode step records, every later one replays: a recording that failed
     * (a warning, then op by op) would make this test compare eager with eager */
    const uint64_t want = (uint64_t)(n - prompt - 1);
    cr_assert_eq(session_graph_replays(graphs), want, "%s: %llu of %llu decode steps replayed a graph", family,
                 (unsigned long long)session_graph_replays(graphs), (unsigned long long)want);
    cr_assert_eq(session_graph_replays(eager), 0, "%s: --enforce-eager replayed graphs", family);
    free(a), free(b);
    gale_session_free(graphs);
    gale_session_free(eager);
    free(ids);
    gale_model_free(m);
}

/* The batching tests' sixteen requests on the GPU, eight sequences at a time: decode
 * steps of changing size replay graphs with padding rows. */
static void run_on_gpu(const gale_model *m, workload *w) {
    gale_engine_params p = gale_engine_params_default();
    p.device = GALE_DEVICE_CUDA;
    p.max_num_seqs = 8;
    gale_engine *e = engine_with(m, &p);
    make_workload(w, gale_model_config(m), 16);
    run_workload(e, w, 0, N_REQUESTS, 0);
    const gale_engine_stats stats = gale_engine_get_stats(e);
    cr_assert_gt(stats.graph_replays, 0, "no decode step replayed a graph in %llu steps", (unsigned long long)stats.steps);
    gale_engine_free(e);
}

Test(engine_cuda, recorded_batches_of_changing_size_are_deterministic) {
    require_cuda();
    gale_model *m = load_tiny("mistral");
    workload a, b;
    run_on_gpu(m, &a);
    run_on_gpu(m, &b);
    assert_same_tokens(&a, &b, "mistral", "in a second run on the GPU");
    free_workload(&a);
    free_workload(&b);
    gale_model_free(m);
}

Test(engine_cuda, dummy_weights_filled_on_the_gpu) {
    require_cuda();
    char src[600];
    snprintf(src, sizeof src, "%s/config.json", fixture("tiny/llama"));
    char *config = NULL;
    size_t len = 0;
    cr_assert_eq(read_text_file(src, &config, &len), GALE_OK, "%s", gale_last_error());
    char *dir = make_temp_dir();
    write_text_file(dir, "config.json", config);
    free(config);
    float *logits[2];
    int vocab = 0;
    for (int run = 0; run < 2; run++) {
        gale_load_params p = gale_load_params_default();
        p.quiet = true, p.dummy_weights = true, p.dummy_seed = 5;
        gale_model *m = NULL;
        cr_assert_eq(gale_model_load(dir, &p, &m), GALE_OK, "%s", gale_last_error());
        vocab = gale_model_config(m)->vocab;
        gale_session *s = session_on(m, GALE_DEVICE_CUDA);
        const int32_t ids[] = {1, 2, 3, 4, 5};
        logits[run] = malloc((size_t)vocab * sizeof(float));
        cr_assert_eq(gale_session_forward(s, ids, 5, false, logits[run]), GALE_OK, "%s", gale_last_error());
        gale_session_free(s);
        gale_model_free(m);
    }
    for (int v = 0; v < vocab; v++) {
        cr_assert(isfinite(logits[0][v]) && fabsf(logits[0][v]) < 100, "logit %d is %g", v, logits[0][v]);
        cr_assert_eq(logits[0][v], logits[1][v], "logit %d: the same seed gave other weights", v);
    }
    free(logits[0]), free(logits[1]);
    remove_tree(dir);
    free(dir);
}
