/* The forward on the CUDA backend (bf16 weights, activations and KV cache; fp32
 * accumulation) against transformers' fp32 logits and the CPU engine, on the tiny
 * checkpoint of every family:
 *   - logits at every position of the 100-token engine fixture within 3e-2 of
 *     transformers' (max |a−b| / max |ref|; bf16 keeps 8 bits of mantissa, and the error
 *     of a 2-layer model's logits measured ~1e-2 in vLLM-style bf16 runs);
 *   - 32 greedy tokens, one forward per token through the paged cache: where the GPU's
 *     choice differs from the CPU's on the same prefix, it must be a near-tie in the CPU's
 *     fp32 logits (margin under 2 % of their range), and the comparison stops there.
 * Without CUDA in the build, or without a GPU at run time (as on CI), every test skips
 * itself with the reason. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "core/npy.h"
#include "cuda_test_support.h"
#include "test_support.h"

static const char *const families[] = {"llama", "mistral", "mixtral", "gemma", "gemma2", "gemma3_text"};
enum { N_FAMILIES = sizeof families / sizeof families[0] };

static gale_session *session_on(const gale_model *m, gale_device device) {
    gale_engine_params ep = gale_engine_params_default();
    ep.device = device;
    ep.n_threads = 2;
    gale_session *s = NULL;
    cr_assert_eq(gale_session_new(m, &ep, &s), GALE_OK, "%s", gale_last_error());
    return s;
}

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
