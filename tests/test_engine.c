/* The CPU forward against transformers (fixtures: tests/tools/make_engine_fixtures.py,
 * fp32, eager attention): logits at every position of a 100-token sequence within 1e-4
 * relative (max |a-b| / max |ref|) for every family, and the 32-token greedy continuation
 * identical — generated with the KV cache, one token at a time. Also: bad prompts, and a
 * step whose buffers could not grow leaves the session usable. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/npy.h"
#include "engine/runner.h"
#include "test_support.h"

static const char *const families[] = {"llama", "mistral", "mixtral", "gemma", "gemma2", "gemma3_text"};
enum { N_FAMILIES = sizeof families / sizeof families[0] };

static gale_session *new_session(const gale_model *m, int threads) {
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = threads;
    gale_session *s = NULL;
    cr_assert_eq(gale_session_new(m, &ep, &s), GALE_OK, "%s", gale_last_error());
    return s;
}

static void check_logits(const char *family, int threads) {
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "tiny/%s", family);
    gale_model *m = load_model_quiet(fixture(dir));
    gale_session *s = new_session(m, threads);
    snprintf(path, sizeof path, "engine/%s/meta.json", family);
    cJSON *meta = load_json(fixture(path));
    size_t n;
    int32_t *ids = json_int_array(cJSON_GetObjectItemCaseSensitive(meta, "input_ids"), &n);
    float *ref;
    int64_t shape[2];
    int n_dims;
    snprintf(path, sizeof path, "engine/%s/logits.npy", family);
    cr_assert_eq(npy_read_f32(fixture(path), &ref, shape, &n_dims, 2), GALE_OK, "%s", gale_last_error());
    int vocab = gale_model_config(m)->vocab;
    cr_assert_eq(shape[0], (int64_t)n);
    cr_assert_eq(shape[1], vocab);
    float *got = guarded_alloc(n * (size_t)vocab);
    cr_assert_eq(gale_session_forward(s, ids, n, true, got), GALE_OK, "%s", gale_last_error());
    double err = max_relative_error(got, ref, n * (size_t)vocab);
    fprintf(stderr, "parity %s (%d threads): max|a-b|/max|ref| = %.3g over %zu positions\n", family, threads, err, n);
    cr_assert(err <= 1e-4, "%s (%d threads): logits differ from transformers by %.3g relative", family, threads, err);
    guarded_check_free(got, n * (size_t)vocab, "logits");
    free(ref);
    free(ids);
    cJSON_Delete(meta);
    gale_session_free(s);
    gale_model_free(m);
}

static void check_greedy(const char *family) {
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "tiny/%s", family);
    gale_model *m = load_model_quiet(fixture(dir));
    gale_session *s = new_session(m, 0);
    snprintf(path, sizeof path, "engine/%s/greedy.json", family);
    cJSON *g = load_json(fixture(path));
    size_t n_prompt, n_want;
    int32_t *prompt = json_int_array(cJSON_GetObjectItemCaseSensitive(g, "prompt_ids"), &n_prompt);
    int32_t *want = json_int_array(cJSON_GetObjectItemCaseSensitive(g, "generated_ids"), &n_want);
    int vocab = gale_model_config(m)->vocab;
    float *logits = malloc((size_t)vocab * sizeof *logits);
    cr_assert_eq(gale_session_forward(s, prompt, n_prompt, false, logits), GALE_OK);
    for (size_t i = 0; i < n_want; i++) {
        int32_t best = 0;
        for (int v = 1; v < vocab; v++)
            if (logits[v] > logits[best]) best = v;
        cr_assert_eq(best, want[i], "%s: greedy token %zu is %d, transformers chose %d", family, i, best, want[i]);
        cr_assert_eq(gale_session_forward(s, &best, 1, false, logits), GALE_OK);
    }
    free(logits);
    free(prompt);
    free(want);
    cJSON_Delete(g);
    gale_session_free(s);
    gale_model_free(m);
}

ParameterizedTestParameters(engine, logits_match_transformers) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *i, engine, logits_match_transformers) { check_logits(families[*i], 0); }

ParameterizedTestParameters(engine, logits_on_one_thread) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *i, engine, logits_on_one_thread) { check_logits(families[*i], 1); }

ParameterizedTestParameters(engine, greedy_matches_transformers) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *i, engine, greedy_matches_transformers) { check_greedy(families[*i]); }

/* ---- bad input ---- */

Test(engine, prompt_longer_than_the_context) {
    gale_model *m = load_model_quiet(fixture("tiny/llama"));
    gale_engine_params ep = gale_engine_params_default();
    ep.n_ctx = 8;
    gale_session *s;
    cr_assert_eq(gale_session_new(m, &ep, &s), GALE_OK);
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    assert_error(gale_session_forward(s, ids, 9, false, NULL), GALE_ERR_INVALID_ARG, "context of 8");
    assert_error(gale_session_forward(s, ids, 0, false, NULL), GALE_ERR_INVALID_ARG, "empty prompt");
    int32_t bad = 100000;
    assert_error(gale_session_forward(s, &bad, 1, false, NULL), GALE_ERR_INVALID_ARG, "100000");
    gale_session_free(s);
    ep.n_ctx = -1;
    assert_error(gale_session_new(m, &ep, &s), GALE_ERR_INVALID_ARG, "n_ctx");
    gale_model_free(m);
}

Test(engine, metadata_only_model_cannot_run) {
    gale_load_params p = gale_load_params_default();
    p.quiet = p.metadata_only = true;
    gale_model *m;
    cr_assert_eq(gale_model_load(fixture("gguf/tiny_llama.gguf"), &p, &m), GALE_OK);
    gale_session *s;
    /* the GGUF's un-permuted Q/K rows are not made in a metadata-only load */
    assert_error(gale_session_new(m, NULL, &s), GALE_ERR_INVALID_ARG, "metadata-only");
    gale_model_free(m);
}

/* Prepared (fp32 copies) and on-the-fly dequantisation read the same values: the same
 * logits to the bit, on a bf16 checkpoint and on a GGUF with Q8_0 and BF16 tensors. */
Test(engine, prepared_weights_change_nothing) {
    static const char *const models[] = {"tiny/llama", "gguf/tiny_llama.gguf"};
    for (size_t m_i = 0; m_i < 2; m_i++) {
        gale_model *m = load_model_quiet(fixture(models[m_i]));
        int vocab = gale_model_config(m)->vocab;
        int32_t ids[12] = {1, 5, 9, 33, 2, 70, 11, 12, 100, 4, 8, 50};
        float *a = malloc(12 * (size_t)vocab * sizeof *a), *b = malloc(12 * (size_t)vocab * sizeof *b);
        for (int prepared = 0; prepared < 2; prepared++) {
            gale_engine_params ep = gale_engine_params_default();
            ep.prepare_weights = prepared;
            gale_session *s;
            cr_assert_eq(gale_session_new(m, &ep, &s), GALE_OK, "%s", gale_last_error());
            cr_assert_eq(gale_session_forward(s, ids, 12, true, prepared ? b : a), GALE_OK);
            gale_session_free(s);
        }
        cr_assert_eq(memcmp(a, b, 12 * (size_t)vocab * sizeof *a), 0, "%s: prepared weights change the logits", models[m_i]);
        free(a);
        free(b);
        gale_model_free(m);
    }
}

/* The CPU backend whose allocations fail when test_alloc_fails_after says. */
static backend_ops failing_ops;

/* A forward whose buffers could not all grow (out of device memory partway) fails; the
 * session then runs shorter steps on buffers it regrows, not on the NULL one the failure
 * left: the same logits as a session that never failed. */
Test(engine, a_failed_buffer_growth_leaves_the_session_usable) {
    gale_model *m = load_model_quiet(fixture("tiny/llama"));
    const int vocab = gale_model_config(m)->vocab;
    failing_ops = cpu_backend_ops;
    failing_ops.name = "cpu (failing allocations)";
    failing_ops.alloc = test_failing_alloc;
    runner_use_test_backend(&failing_ops);
    gale_session *failing = new_session(m, 1);
    runner_use_test_backend(NULL);
    gale_session *plain = new_session(m, 1);
    int32_t prompt[4] = {1, 5, 9, 13}, longer[40], next = 21;
    for (int i = 0; i < 40; i++) longer[i] = 2 + i;
    float *want = malloc((size_t)vocab * sizeof *want), *got = malloc((size_t)vocab * sizeof *got);
    cr_assert_eq(gale_session_forward(failing, prompt, 4, false, NULL), GALE_OK, "%s", gale_last_error());
    test_alloc_fails_after = 3; /* the 4th buffer of the longer step's regrowth is refused */
    assert_error(gale_session_forward(failing, longer, 40, false, got), GALE_ERR_OOM, "refused");
    test_alloc_fails_after = -1;
    cr_assert_eq(gale_session_position(failing), 4, "the failed step took no position");
    cr_assert_eq(gale_session_forward(failing, &next, 1, false, got), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_forward(plain, prompt, 4, false, NULL), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_forward(plain, &next, 1, false, want), GALE_OK, "%s", gale_last_error());
    cr_assert(memcmp(got, want, (size_t)vocab * sizeof *got) == 0, "logits after the failed step differ");
    free(want), free(got);
    gale_session_free(failing);
    gale_session_free(plain);
    gale_model_free(m);
}

/* A request cancelled just before a step that fails (out of memory in the forward) has its
 * cancel reported by the next step: an output promised by gale_engine_cancel is never
 * lost with a failed step. */
Test(engine, a_cancel_survives_a_failed_step) {
    gale_model *m = load_model_quiet(fixture("tiny/llama"));
    failing_ops = cpu_backend_ops;
    failing_ops.name = "cpu (failing allocations)";
    failing_ops.alloc = test_failing_alloc;
    runner_use_test_backend(&failing_ops);
    gale_engine_params p = gale_engine_params_default();
    p.n_threads = 1;
    gale_engine *e = NULL;
    cr_assert_eq(gale_engine_new(m, NULL, &p, &e), GALE_OK, "%s", gale_last_error());
    runner_use_test_backend(NULL);
    int32_t short_prompt[4] = {1, 5, 9, 13}, long_prompt[40];
    for (int i = 0; i < 40; i++) long_prompt[i] = 2 + i;
    gale_request a = gale_request_default(), b = gale_request_default();
    a.ids = short_prompt, a.n_ids = 4, a.max_new_tokens = 20, a.ignore_eos = true;
    b.ids = long_prompt, b.n_ids = 40, b.max_new_tokens = 4, b.ignore_eos = true;
    uint64_t id_a, id_b;
    const gale_output *out;
    size_t n;
    cr_assert_eq(gale_engine_submit(e, &a, &id_a), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_engine_step(e, &out, &n), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_engine_cancel(e, id_a), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_engine_submit(e, &b, &id_b), GALE_OK, "%s", gale_last_error());
    test_alloc_fails_after = 0; /* the longer prefill's buffers cannot grow */
    assert_error(gale_engine_step(e, &out, &n), GALE_ERR_OOM, "refused");
    test_alloc_fails_after = -1;
    int cancels = 0;
    for (int step = 0; step < 10 && gale_engine_busy(e); step++) {
        cr_assert_eq(gale_engine_step(e, &out, &n), GALE_OK, "%s", gale_last_error());
        for (size_t i = 0; i < n; i++) cancels += out[i].request_id == id_a && out[i].finish == GALE_FINISH_CANCELLED;
    }
    cr_assert_eq(cancels, 1, "request %llu's cancel was reported %d times", (unsigned long long)id_a, cancels);
    cr_assert(!gale_engine_busy(e), "every request finished");
    gale_engine_free(e);
    gale_model_free(m);
}

/* The last token of a request is sampled and never stored: a request of exactly the pool's
 * positions plus one token fits (8 + 9 tokens, 16 positions stored, one block of 16). */
Test(engine, a_request_needs_no_block_for_its_last_token) {
    gale_model *m = load_model_quiet(fixture("tiny/llama"));
    gale_engine_params p = gale_engine_params_default();
    p.n_threads = 1, p.kv_blocks = 1, p.block_size = 16;
    gale_engine *e = NULL;
    cr_assert_eq(gale_engine_new(m, NULL, &p, &e), GALE_OK, "%s", gale_last_error());
    int32_t prompt[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    gale_request q = gale_request_default();
    q.ids = prompt, q.n_ids = 8, q.max_new_tokens = 9, q.ignore_eos = true;
    cr_assert_eq(gale_engine_submit(e, &q, NULL), GALE_OK, "%s", gale_last_error());
    int generated = 0;
    const gale_output *out;
    size_t n;
    for (int step = 0; step < 20 && gale_engine_busy(e); step++) {
        cr_assert_eq(gale_engine_step(e, &out, &n), GALE_OK, "%s", gale_last_error());
        generated += (int)n;
    }
    cr_assert_eq(generated, 9, "%d tokens generated", generated);
    q.max_new_tokens = 10; /* 17 positions stored: more than the pool */
    assert_error(gale_engine_submit(e, &q, NULL), GALE_ERR_INVALID_ARG, "KV blocks");
    gale_engine_free(e);
    gale_model_free(m);
}
