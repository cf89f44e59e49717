/* gale_session_forward_sample, the CLI's generate/chat step, on the CPU. A test backend
 * wraps the CPU's ops and adds a sample op, as the CUDA backend has one: it expands each
 * row's penalty view (distinct ids with counts) back into a history and applies the
 * host's rules to it, greedily. So, in CI, where no GPU is:
 *   - where the backend samples, the session hands it the request's rule (draw counter,
 *     penalty view) and the logits never come to the host; the tokens equal the plain
 *     CPU session's forward + gale_sampler_sample, penalties included;
 *   - sample_on_host keeps the backend's sample op out;
 *   - without a sample op (the CPU), forward_sample draws exactly what forward and the
 *     host sampler draw, at temperature with top-k/top-p and a seed. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/status.h"
#include "engine/runner.h"
#include "test_support.h"

#define N_STEPS 24

static struct {
    int sample_calls, to_host_calls;
    uint64_t draws[N_STEPS + 1];
} fake;

static backend_ops sampling_ops;

static gale_status counting_to_host(backend *b, const void *src, size_t count, float *dst) {
    fake.to_host_calls++;
    return cpu_backend_ops.to_host(b, src, count, dst);
}

/* The host's rules over what the device receives: history rebuilt from the penalty view. */
static gale_status fake_sample(backend *b, const void *logits, int rows, int vocab, const sample_row *rule, int32_t *ids) {
    (void)b;
    for (int r = 0; r < rows; r++) {
        const sample_row *row = &rule[r];
        cr_assert_eq(row->params.temperature, 0.0f, "the fake draws greedily only");
        if (fake.sample_calls <= N_STEPS) fake.draws[fake.sample_calls] = row->draw;
        fake.sample_calls++;
        size_t n_history = 0;
        for (int j = 0; j < row->n_penalty; j++) n_history += (size_t)row->penalty_counts[j];
        int32_t *history = malloc((n_history + 1) * sizeof *history);
        float *copy = malloc((size_t)vocab * sizeof *copy);
        cr_assert(history && copy, "out of memory");
        size_t at = 0;
        for (int j = 0; j < row->n_penalty; j++)
            for (int c = 0; c < row->penalty_counts[j]; c++) history[at++] = row->penalty_ids[j];
        memcpy(copy, (const float *)logits + (size_t)r * vocab, (size_t)vocab * sizeof *copy);
        gale_sampler *host = NULL;
        cr_assert_eq(gale_sampler_new(&row->params, vocab, &host), GALE_OK, "%s", gale_last_error());
        cr_assert_eq(gale_sampler_sample(host, copy, history, n_history, &ids[r]), GALE_OK, "%s", gale_last_error());
        gale_sampler_free(host);
        free(copy);
        free(history);
    }
    return GALE_OK;
}

static gale_session *new_session(const gale_model *m, bool device_sampling, bool sample_on_host) {
    if (device_sampling) {
        sampling_ops = cpu_backend_ops;
        sampling_ops.name = "cpu (sampling)";
        sampling_ops.sample = fake_sample;
        sampling_ops.to_host = counting_to_host;
        runner_use_test_backend(&sampling_ops);
    }
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = 1;
    ep.sample_on_host = sample_on_host;
    gale_session *s = NULL;
    cr_assert_eq(gale_session_new(m, &ep, &s), GALE_OK, "%s", gale_last_error());
    runner_use_test_backend(NULL);
    return s;
}

static const int32_t prompt[] = {1, 17, 33, 5, 120, 9, 64, 2, 17, 17};
#define PROMPT_LEN ((int)(sizeof prompt / sizeof *prompt))

/* Generates N_STEPS tokens with forward_sample into out[PROMPT_LEN + N_STEPS]. */
static void generate_sampled(gale_session *s, const gale_sampling_params *p, int vocab, int32_t *out) {
    gale_sampler *sampler = NULL;
    cr_assert_eq(gale_sampler_new(p, vocab, &sampler), GALE_OK, "%s", gale_last_error());
    memcpy(out, prompt, sizeof prompt);
    int n = PROMPT_LEN;
    cr_assert_eq(gale_session_forward_sample(s, prompt, PROMPT_LEN, sampler, out, (size_t)n, &out[n]), GALE_OK, "%s",
                 gale_last_error());
    for (n++; n < PROMPT_LEN + N_STEPS; n++)
        cr_assert_eq(gale_session_forward_sample(s, &out[n - 1], 1, sampler, out, (size_t)n, &out[n]), GALE_OK, "%s",
                     gale_last_error());
    gale_sampler_free(sampler);
}

/* The same with forward (logits to the host) and gale_sampler_sample. */
static void generate_on_host(gale_session *s, const gale_sampling_params *p, int vocab, int32_t *out) {
    gale_sampler *sampler = NULL;
    cr_assert_eq(gale_sampler_new(p, vocab, &sampler), GALE_OK, "%s", gale_last_error());
    float *logits = malloc((size_t)vocab * sizeof *logits);
    cr_assert(logits, "out of memory");
    memcpy(out, prompt, sizeof prompt);
    int n = PROMPT_LEN;
    cr_assert_eq(gale_session_forward(s, prompt, PROMPT_LEN, false, logits), GALE_OK, "%s", gale_last_error());
    for (;; n++) {
        cr_assert_eq(gale_sampler_sample(sampler, logits, out, (size_t)n, &out[n]), GALE_OK, "%s", gale_last_error());
        if (n + 1 == PROMPT_LEN + N_STEPS) break;
        cr_assert_eq(gale_session_forward(s, &out[n], 1, false, logits), GALE_OK, "%s", gale_last_error());
    }
    free(logits);
    gale_sampler_free(sampler);
}

static gale_sampling_params greedy_with_penalties(void) {
    gale_sampling_params p = gale_sampling_params_default();
    p.temperature = 0;
    p.repetition_penalty = 1.5f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    return p;
}

/* Greedy with penalties: forward_sample on the fake-sampling backend (its counters reset
 * first) into sampled, and the plain CPU's forward + gale_sampler_sample into host. */
static void generate_both_ways(const gale_model *m, bool sample_on_host, int32_t *sampled, int32_t *host) {
    const int vocab = gale_model_config(m)->vocab;
    const gale_sampling_params p = greedy_with_penalties();
    memset(&fake, 0, sizeof fake);
    gale_session *s = new_session(m, true, sample_on_host);
    generate_sampled(s, &p, vocab, sampled);
    gale_session_free(s);
    s = new_session(m, false, false);
    generate_on_host(s, &p, vocab, host);
    gale_session_free(s);
}

Test(session_sample, the_device_gets_the_rule_and_the_logits_stay_there) {
    gale_model *m = load_tiny("llama");
    int32_t device[PROMPT_LEN + N_STEPS], host[PROMPT_LEN + N_STEPS];
    generate_both_ways(m, false, device, host);
    cr_assert_eq(fake.sample_calls, N_STEPS, "the backend drew every token (%d of %d)", fake.sample_calls, N_STEPS);
    cr_assert_eq(fake.to_host_calls, 0, "no logits came to the host (%d copies)", fake.to_host_calls);
    for (int i = 0; i < N_STEPS; i++) cr_assert_eq(fake.draws[i], (uint64_t)i, "draw %d carries counter %llu", i,
                                                   (unsigned long long)fake.draws[i]);
    for (int i = PROMPT_LEN; i < PROMPT_LEN + N_STEPS; i++)
        cr_assert_eq(device[i], host[i], "token %d: device rule drew %d, the host %d", i - PROMPT_LEN, device[i], host[i]);
    gale_model_free(m);
}

Test(session_sample, sample_on_host_keeps_the_sample_op_out) {
    gale_model *m = load_tiny("mistral");
    int32_t forced[PROMPT_LEN + N_STEPS], host[PROMPT_LEN + N_STEPS];
    generate_both_ways(m, true, forced, host);
    cr_assert_eq(fake.sample_calls, 0, "sample_on_host: the backend's sample op was called %d times", fake.sample_calls);
    cr_assert_eq(fake.to_host_calls, N_STEPS, "one logits copy per token (%d)", fake.to_host_calls);
    cr_assert_eq(memcmp(forced, host, sizeof host), 0, "the same tokens as forward + gale_sampler_sample");
    gale_model_free(m);
}

Test(session_sample, on_the_cpu_it_draws_what_forward_and_the_sampler_draw) {
    gale_model *m = load_tiny("gemma2");
    const int vocab = gale_model_config(m)->vocab;
    gale_sampling_params p = gale_sampling_params_default();
    p.temperature = 0.9f;
    p.top_k = 20;
    p.top_p = 0.9f;
    p.seed = 7;
    int32_t sampled[PROMPT_LEN + N_STEPS], host[PROMPT_LEN + N_STEPS];
    gale_session *s = new_session(m, false, false);
    generate_sampled(s, &p, vocab, sampled);
    gale_session_reset(s);
    generate_on_host(s, &p, vocab, host);
    gale_session_free(s);
    cr_assert_eq(memcmp(sampled, host, sizeof host), 0, "forward_sample differs from forward + gale_sampler_sample");
    int distinct = 0; /* a seeded draw at temperature, not a constant */
    for (int i = PROMPT_LEN + 1; i < PROMPT_LEN + N_STEPS; i++) distinct += sampled[i] != sampled[PROMPT_LEN];
    cr_assert_gt(distinct, 0, "24 draws at temperature 0.9 were all token %d", sampled[PROMPT_LEN]);
    gale_model_free(m);
}

Test(session_sample, missing_arguments_are_refused_by_name) {
    gale_model *m = load_tiny("llama");
    gale_session *s = new_session(m, false, false);
    int32_t next = -1;
    cr_assert_eq(gale_session_forward_sample(s, prompt, PROMPT_LEN, NULL, prompt, PROMPT_LEN, &next),
                 GALE_ERR_INVALID_ARG);
    cr_assert(strstr(gale_last_error(), "gale_session_forward_sample"), "message: %s", gale_last_error());
    cr_assert_eq(gale_session_position(s), 0, "nothing ran");
    gale_sampler *sampler = NULL;
    const gale_sampling_params p = gale_sampling_params_default();
    cr_assert_eq(gale_sampler_new(&p, gale_model_config(m)->vocab, &sampler), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_forward_sample(s, prompt, 0, sampler, prompt, 0, &next), GALE_ERR_INVALID_ARG);
    cr_assert(strstr(gale_last_error(), "no tokens"), "message: %s", gale_last_error());
    gale_sampler_free(sampler);
    gale_session_free(s);
    gale_model_free(m);
}

/* a sampler made for a larger vocabulary would let its penalties write past a row of
 * logits (the history's ids are bounded by the sampler's vocabulary) */
Test(session_sample, a_sampler_for_another_vocabulary_is_refused) {
    gale_model *m = load_tiny("llama");
    const int vocab = gale_model_config(m)->vocab;
    gale_sampling_params p = greedy_with_penalties();
    gale_sampler *sampler = NULL;
    cr_assert_eq(gale_sampler_new(&p, vocab + 1, &sampler), GALE_OK, "%s", gale_last_error());
    const int32_t history[] = {1, vocab}; /* the last id is past the model's logits */
    for (int device = 0; device < 2; device++) {
        gale_session *s = new_session(m, device, false);
        int32_t next = -1;
        cr_assert_eq(gale_session_forward_sample(s, prompt, PROMPT_LEN, sampler, history, 2, &next),
                     GALE_ERR_INVALID_ARG, "device sampling %d", device);
        cr_assert(strstr(gale_last_error(), "vocabulary of"), "message: %s", gale_last_error());
        cr_assert_eq(gale_session_position(s), 0, "nothing ran");
        gale_session_free(s);
    }
    gale_sampler_free(sampler);
    gale_model_free(m);
}
