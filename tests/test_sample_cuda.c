/* Sampling on the GPU (kernels/sample.cu) against the CPU sampler's rules (src/engine/
 * sampler.c), and the engine drawing its tokens there:
 *   - greedy is the argmax with the lowest id on ties, exactly the CPU's, with and without
 *     the penalties (computed in the same fp32 operations on both devices);
 *   - with temperature, top-k, top-p and min-p, 20 000 draws (one per Philox offset) never
 *     leave the kept set the CPU's rules give, and each token's frequency is within
 *     5 standard deviations (+ 1e-3) of its probability there — also on a row of tied
 *     logits where top-p's edge falls inside a tie (every tied id kept, as on the CPU);
 *   - the same seed and draw give the same id; another seed other ids;
 *   - rows with NaN or infinite logits give the CPU's id (NaN never drawn);
 *   - the engine on CUDA generates the same greedy tokens for the batching tests' sixteen
 *     requests sampling on the GPU as copying the logits to the host (sample_on_host).
 * Skips itself without CUDA in the build or a GPU at run time (as on CI). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "batch_workload.h"
#include "cuda_test_support.h"
#include "engine/sampler.h"
#include "test_support.h"

#ifdef GALE_HAVE_CUDA
#include "kernels.h"

/* ids[rows] for bf16 logits [rows, vocab] under one rule per row, penalties none */
static void gpu_sample(const uint16_t *logits, int rows, int vocab, const sample_params *params, const int32_t *pair_ids,
                       const int32_t *pair_counts, int n_pairs, int32_t *ids) {
    uint16_t *d_logits = to_device(logits, (size_t)rows * vocab * sizeof *logits);
    sample_params *d_params = to_device(params, (size_t)rows * sizeof *params);
    int32_t *d_pair_ids = to_device(pair_ids, (size_t)n_pairs * sizeof(int32_t));
    int32_t *d_pair_counts = to_device(pair_counts, (size_t)n_pairs * sizeof(int32_t));
    float *d_work = NULL;
    int32_t *d_ids = NULL;
    CUDA_ASSERT(cudaMalloc((void **)&d_work, kernel_sample_workspace_bytes(rows, vocab)));
    CUDA_ASSERT(cudaMalloc((void **)&d_ids, (size_t)(rows + GUARD) * sizeof *d_ids));
    CUDA_ASSERT(cudaMemset(d_ids, 0xff, (size_t)(rows + GUARD) * sizeof *d_ids));
    cr_assert_eq(kernel_sample_bf16(d_logits, rows, vocab, d_params, d_pair_ids, d_pair_counts, d_work, d_ids, NULL),
                 GALE_OK, "%s", gale_last_error());
    int32_t *back = malloc((size_t)(rows + GUARD) * sizeof *back);
    CUDA_ASSERT(cudaDeviceSynchronize());
    CUDA_ASSERT(cudaMemcpy(back, d_ids, (size_t)(rows + GUARD) * sizeof *back, cudaMemcpyDeviceToHost));
    for (int i = rows; i < rows + GUARD; i++) cr_assert_eq(back[i], -1, "ids guard %d overwritten", i - rows);
    memcpy(ids, back, (size_t)rows * sizeof *ids);
    free(back);
    CUDA_ASSERT(cudaFree(d_logits));
    CUDA_ASSERT(cudaFree(d_params));
    CUDA_ASSERT(cudaFree(d_pair_ids));
    CUDA_ASSERT(cudaFree(d_pair_counts));
    CUDA_ASSERT(cudaFree(d_work));
    CUDA_ASSERT(cudaFree(d_ids));
}

static sample_params rule_of(const sample_row *row, int offset) {
    const gale_sampling_params *p = &row->params;
    return (sample_params){.temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p, .min_p = p->min_p,
                           .repetition_penalty = p->repetition_penalty, .presence_penalty = p->presence_penalty,
                           .frequency_penalty = p->frequency_penalty, .penalty_offset = offset,
                           .penalty_count = row->n_penalty, .seed = p->seed, .draw = row->draw};
}
#endif

Test(sample_cuda, greedy_is_the_cpu_argmax_with_and_without_penalties) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    enum { ROWS = 4, V = 49153, HISTORY = 300 };
    float *widened;
    uint16_t *logits = random_bf16((size_t)ROWS * V, -12, 12, &widened);
    /* row 3: the largest value at two ids; the lower one must win */
    logits[3 * V + 70] = logits[3 * V + 40000] = f32_to_bf16(20.0f);
    widened[3 * V + 70] = widened[3 * V + 40000] = 20.0f;
    int32_t history[HISTORY];
    for (int i = 0; i < HISTORY; i++) history[i] = (int32_t)((i * 7919) % V) / (i % 3 + 1); /* repeats */
    gale_sampling_params plain = gale_sampling_params_default(), penalised = plain;
    plain.temperature = penalised.temperature = 0;
    penalised.repetition_penalty = 1.3f, penalised.presence_penalty = 0.5f, penalised.frequency_penalty = 0.2f;
    const gale_sampling_params *rules[ROWS] = {&plain, &penalised, &penalised, &plain};
    sample_params params[ROWS];
    int32_t pair_ids[ROWS * HISTORY], pair_counts[ROWS * HISTORY], expect[ROWS], got[ROWS];
    int n_pairs = 0;
    for (int r = 0; r < ROWS; r++) {
        gale_sampler *cpu = NULL, *device = NULL;
        cr_assert_eq(gale_sampler_new(rules[r], V, &cpu), GALE_OK, "%s", gale_last_error());
        cr_assert_eq(gale_sampler_new(rules[r], V, &device), GALE_OK, "%s", gale_last_error());
        float *row = malloc(V * sizeof *row);
        memcpy(row, widened + (size_t)r * V, V * sizeof *row);
        cr_assert_eq(gale_sampler_sample(cpu, row, history, HISTORY, &expect[r]), GALE_OK, "%s", gale_last_error());
        sample_row device_row;
        cr_assert_eq(sampler_device_row(device, history, HISTORY, &device_row), GALE_OK, "%s", gale_last_error());
        params[r] = rule_of(&device_row, n_pairs);
        for (int j = 0; j < device_row.n_penalty; j++) {
            pair_ids[n_pairs + j] = device_row.penalty_ids[j];
            pair_counts[n_pairs + j] = device_row.penalty_counts[j];
        }
        n_pairs += device_row.n_penalty;
        free(row);
        gale_sampler_free(cpu);
        gale_sampler_free(device);
    }
    cr_assert_gt(n_pairs, 0, "the penalised rows hand pairs to the device");
    gpu_sample(logits, ROWS, V, params, pair_ids, pair_counts, n_pairs, got);
    for (int r = 0; r < ROWS; r++) cr_assert_eq(got[r], expect[r], "row %d: GPU greedy %d, CPU %d", r, got[r], expect[r]);
    cr_assert_eq(got[3], 70, "a tie goes to the lowest id");
    free(logits), free(widened);
#endif
}

/* Rows a broken model could produce: NaN at id 0, every logit NaN, −inf and NaN only, an
 * infinite top logit; greedy and at temperature 1 the GPU picks the CPU sampler's id. */
Test(sample_cuda, non_finite_rows_pick_the_cpu_id) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    enum { ROWS = 4, V = 3001 };
    float *widened;
    uint16_t *logits = random_bf16((size_t)ROWS * V, -4, 4, &widened);
    const uint16_t nan_bits = 0x7fc0, inf_bits = 0x7f80, minus_inf_bits = 0xff80;
    logits[0] = nan_bits, logits[2000] = f32_to_bf16(9.0f);       /* row 0: NaN at id 0, the max at 2000 */
    for (int i = 0; i < V; i++) logits[V + i] = nan_bits;          /* row 1: all NaN */
    for (int i = 0; i < V; i++) logits[2 * V + i] = i % 2 ? minus_inf_bits : nan_bits; /* row 2 */
    logits[3 * V + 1234] = inf_bits;                               /* row 3: +inf */
    for (int i = 0; i < ROWS * V; i++) widened[i] = bf16_to_f32(logits[i]);
    for (int temperature = 0; temperature <= 1; temperature++) {
        gale_sampling_params rule = gale_sampling_params_default();
        rule.temperature = (float)temperature, rule.top_k = 0, rule.top_p = 1, rule.min_p = 0;
        sample_params params[ROWS];
        int32_t expect[ROWS], got[ROWS];
        for (int r = 0; r < ROWS; r++) {
            gale_sampler *cpu = NULL;
            cr_assert_eq(gale_sampler_new(&rule, V, &cpu), GALE_OK, "%s", gale_last_error());
            float *row = malloc(V * sizeof *row);
            memcpy(row, widened + (size_t)r * V, V * sizeof *row);
            cr_assert_eq(gale_sampler_sample(cpu, row, NULL, 0, &expect[r]), GALE_OK, "%s", gale_last_error());
            free(row);
            gale_sampler_free(cpu);
            params[r] = (sample_params){.temperature = rule.temperature, .top_p = 1, .repetition_penalty = 1,
                                        .seed = 5, .draw = (uint64_t)r};
        }
        gpu_sample(logits, ROWS, V, params, NULL, NULL, 0, got);
        const int32_t want[ROWS] = {temperature ? expect[0] : 2000, 0, 1, 1234};
        for (int r = 0; r < ROWS; r++) {
            if (r > 0 || !temperature) cr_assert_eq(expect[r], want[r], "temperature %d row %d: CPU %d", temperature, r, expect[r]);
            cr_assert(!isnan(widened[(size_t)r * V + got[r]]) || r == 1, "temperature %d row %d: a NaN id %d drawn",
                      temperature, r, got[r]);
            if (temperature == 0 || r > 0)
                cr_assert_eq(got[r], expect[r], "temperature %d row %d: GPU %d, CPU %d", temperature, r, got[r], expect[r]);
        }
    }
    free(logits), free(widened);
#endif
}

#ifdef GALE_HAVE_CUDA
/* The CPU sampler's kept set and probabilities for one row (its rules, in double). */
static void cpu_kept_distribution(const float *logits, int vocab, const gale_sampling_params *p, double *prob) {
    int order[256];
    for (int i = 0; i < vocab; i++) order[i] = i;
    for (int i = 1; i < vocab; i++) /* insertion sort, descending, lower id first on ties */
        for (int j = i; j > 0 && logits[order[j]] > logits[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    int n = p->top_k > 0 && p->top_k < vocab ? p->top_k : vocab;
    double w[256], sum = 0;
    for (int i = 0; i < n; i++) sum += w[i] = exp((double)logits[order[i]] / p->temperature - logits[order[0]] / p->temperature);
    int keep = n;
    double cumulative = 0;
    for (int i = 0; i < n; i++) {
        cumulative += w[i] / sum;
        if (cumulative >= p->top_p) {
            keep = i + 1;
            while (keep < n && w[keep] == w[keep - 1]) keep++; /* the tie at the edge stays */
            break;
        }
    }
    while (keep > 1 && w[keep - 1] < p->min_p * w[0]) keep--;
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += w[i];
    for (int i = 0; i < vocab; i++) prob[i] = 0;
    for (int i = 0; i < keep; i++) prob[order[i]] = w[i] / kept;
}
#endif

Test(sample_cuda, draws_follow_the_cpu_rules_distribution) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    enum { V = 64, ROWS = 1000, ROUNDS = 20, N = ROWS * ROUNDS };
    /* distinct values 0.09 apart (bf16 keeps them apart), shuffled over the ids; or
     * (tied) 8 groups of 8 equal values 0.5 apart, where top_p 0.5 is reached inside the
     * second group (its 8 are all kept, on the CPU too) */
    const struct {
        gale_sampling_params p;
        bool tied;
    } settings[] = {
        {{.temperature = 0.8f, .top_k = 20, .top_p = 0.9f, .min_p = 0.05f, .repetition_penalty = 1, .seed = 7}, false},
        {{.temperature = 1.5f, .top_k = 0, .top_p = 1.0f, .min_p = 0, .repetition_penalty = 1, .seed = 11}, false},
        {{.temperature = 1.0f, .top_k = 5, .top_p = 1.0f, .min_p = 0, .repetition_penalty = 1, .seed = 3}, false},
        {{.temperature = 0.5f, .top_k = 0, .top_p = 0.5f, .min_p = 0.2f, .repetition_penalty = 1, .seed = 5}, false},
        {{.temperature = 1.0f, .top_k = 0, .top_p = 0.5f, .min_p = 0, .repetition_penalty = 1, .seed = 13}, true},
    };
    uint16_t *logits = malloc((size_t)ROWS * V * sizeof *logits);
    sample_params *params = malloc(ROWS * sizeof *params);
    int32_t *ids = malloc(ROWS * sizeof *ids);
    for (size_t s = 0; s < sizeof settings / sizeof settings[0]; s++) {
        float values[V];
        uint16_t row_bits[V];
        for (int i = 0; i < V; i++)
            values[i] = settings[s].tied ? -3.0f + 0.5f * (float)(((i * 37) % V) / 8) : -3.0f + 0.09f * (float)((i * 37) % V);
        for (int i = 0; i < V; i++) row_bits[i] = f32_to_bf16(values[i]), values[i] = bf16_to_f32(row_bits[i]);
        for (int r = 0; r < ROWS; r++) memcpy(logits + (size_t)r * V, row_bits, sizeof row_bits);
        double prob[V];
        cpu_kept_distribution(values, V, &settings[s].p, prob);
        int count[V] = {0};
        for (int round = 0; round < ROUNDS; round++) {
            for (int r = 0; r < ROWS; r++) {
                sample_row row = {.params = settings[s].p, .draw = (uint64_t)(round * ROWS + r)};
                params[r] = rule_of(&row, 0);
            }
            gpu_sample(logits, ROWS, V, params, NULL, NULL, 0, ids);
            for (int r = 0; r < ROWS; r++) {
                cr_assert(ids[r] >= 0 && ids[r] < V, "setting %zu: id %d", s, ids[r]);
                cr_assert_gt(prob[ids[r]], 0, "setting %zu: drew %d, outside the CPU's kept set", s, ids[r]);
                count[ids[r]]++;
            }
        }
        for (int v = 0; v < V; v++) {
            double freq = (double)count[v] / N, sigma = sqrt(prob[v] * (1 - prob[v]) / N);
            cr_assert(fabs(freq - prob[v]) <= 5 * sigma + 1e-3, "setting %zu: token %d drawn %.4f of the time, p = %.4f", s,
                      v, freq, prob[v]);
        }
    }
    free(logits), free(params), free(ids);
#endif
}

Test(sample_cuda, same_seed_and_draw_same_id) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    enum { V = 5000, ROWS = 64 };
    float *widened;
    uint16_t *logits = random_bf16((size_t)ROWS * V, -2, 2, &widened);
    sample_params params[ROWS];
    int32_t a[ROWS], b[ROWS], c[ROWS];
    for (int r = 0; r < ROWS; r++)
        params[r] = (sample_params){.temperature = 1, .top_p = 1, .repetition_penalty = 1, .seed = 42, .draw = (uint64_t)r};
    gpu_sample(logits, ROWS, V, params, NULL, NULL, 0, a);
    gpu_sample(logits, ROWS, V, params, NULL, NULL, 0, b);
    for (int r = 0; r < ROWS; r++) params[r].seed = 43;
    gpu_sample(logits, ROWS, V, params, NULL, NULL, 0, c);
    int differ = 0;
    for (int r = 0; r < ROWS; r++) {
        cr_assert_eq(a[r], b[r], "row %d: %d then %d with the same seed and draw", r, a[r], b[r]);
        differ += a[r] != c[r];
    }
    cr_assert_gt(differ, ROWS / 2, "another seed changed only %d of %d draws", differ, ROWS);
    free(logits), free(widened);
#endif
}

#ifdef GALE_HAVE_CUDA
/* The batching tests' sixteen greedy requests on the GPU, drawn there or on the host. */
static void run_sampling(const gale_model *m, bool on_host, workload *w) {
    gale_engine_params p = gale_engine_params_default();
    p.device = GALE_DEVICE_CUDA;
    p.sample_on_host = on_host;
    p.max_num_seqs = 4;
    gale_engine *e = engine_with(m, &p);
    make_workload(w, gale_model_config(m), 16);
    run_workload(e, w, 0, N_REQUESTS, 0);
    gale_engine_free(e);
}
#endif

Test(sample_cuda, engine_samples_on_the_gpu_as_on_the_host) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    gale_model *m = load_tiny("llama");
    workload device, host;
    run_sampling(m, false, &device);
    run_sampling(m, true, &host);
    assert_same_tokens(&host, &device, "llama", "sampled on the GPU");
    free_workload(&device);
    free_workload(&host);
    gale_model_free(m);
#endif
}
