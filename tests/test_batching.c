/* Continuous batching on the tiny checkpoint of every family: requests batched together,
 * staggered, chunked and preempted produce exactly the tokens they produce alone;
 * chunked prefill and the sliding-window cache against transformers; cancel and bad
 * requests. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/npy.h"
#include "engine/runner.h"
#include "batch_workload.h"
#include "test_support.h"

static const char *const families[] = {"llama", "mistral", "mixtral", "gemma", "gemma2", "gemma3_text"};
enum { N_FAMILIES = sizeof families / sizeof families[0] };

ParameterizedTestParameters(batching, batched_equals_alone) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *index, batching, batched_equals_alone, .timeout = 600) {
    const char *family = families[*index];
    gale_model *m = load_tiny(family);
    workload alone, batched;
    make_workload(&alone, gale_model_config(m), MAX_OUT);
    run_alone(m, &alone);
    struct {
        const char *how;
        int max_seqs, budget, stagger;
    } modes[] = {{"together", 16, 2048, 0}, {"together, 40-token steps", 16, 40, 0}, {"staggered", 8, 64, 3},
                 {"staggered, 4 seqs", 4, 16, 1}};
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        make_workload(&batched, gale_model_config(m), MAX_OUT);
        gale_engine *e = new_engine(m, modes[k].max_seqs, modes[k].budget, 0);
        run_workload(e, &batched, 0, N_REQUESTS, modes[k].stagger);
        assert_same_tokens(&alone, &batched, family, modes[k].how);
        assert_pool_full(e);
        gale_engine_free(e);
        free_workload(&batched);
    }
    free_workload(&alone);
    gale_model_free(m);
}

/* A pool of 40 blocks holds a few of the requests at a time: the newest get preempted
 * and recomputed, and still produce what they produce alone. */
ParameterizedTestParameters(batching, preempted_requests_finish_as_alone) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *index, batching, preempted_requests_finish_as_alone, .timeout = 600) {
    const char *family = families[*index];
    gale_model *m = load_tiny(family);
    workload alone, batched;
    make_workload(&alone, gale_model_config(m), MAX_OUT);
    run_alone(m, &alone);
    make_workload(&batched, gale_model_config(m), MAX_OUT);
    gale_engine *e = new_engine(m, 16, 64, 24);
    run_workload(e, &batched, 0, N_REQUESTS, 0);
    assert_same_tokens(&alone, &batched, family, "preempted");
    gale_engine_stats st = gale_engine_get_stats(e);
    fprintf(stderr, "%s: %llu preemptions in %llu steps\n", family, (unsigned long long)st.preemptions,
            (unsigned long long)st.steps);
    cr_assert_gt(st.preemptions, 0, "%s: a 24-block pool should have preempted", family);
    assert_pool_full(e);
    gale_engine_free(e);
    free_workload(&batched);
    free_workload(&alone);
    gale_model_free(m);
}

/* The engine alone reproduces transformers' greedy continuation of the engine fixtures. */
ParameterizedTestParameters(batching, engine_greedy_matches_transformers) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *index, batching, engine_greedy_matches_transformers) {
    const char *family = families[*index];
    gale_model *m = load_tiny(family);
    char path[256];
    snprintf(path, sizeof path, "engine/%s/greedy.json", family);
    cJSON *g = load_json(fixture(path));
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(g, "prompt_ids");
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(g, "generated_ids");
    int n_prompt = cJSON_GetArraySize(prompt), n_want = cJSON_GetArraySize(want);
    int32_t ids[64];
    for (int i = 0; i < n_prompt; i++) ids[i] = cJSON_GetArrayItem(prompt, i)->valueint;
    gale_engine *e = new_engine(m, 4, 7, 0); /* 7-token steps: the prompt is prefilled in chunks */
    gale_request q = gale_request_default();
    q.ids = ids;
    q.n_ids = (size_t)n_prompt;
    q.max_new_tokens = n_want;
    q.ignore_eos = true;
    cr_assert_eq(gale_engine_submit(e, &q, NULL), GALE_OK, "%s", gale_last_error());
    int n = 0;
    while (gale_engine_busy(e)) {
        const gale_output *out;
        size_t count;
        cr_assert_eq(gale_engine_step(e, &out, &count), GALE_OK, "%s", gale_last_error());
        for (size_t k = 0; k < count; k++) {
            cr_assert_lt(n, n_want);
            cr_assert_eq(out[k].token, cJSON_GetArrayItem(want, n)->valueint, "%s: token %d", family, n);
            n++;
        }
    }
    cr_assert_eq(n, n_want);
    gale_engine_free(e);
    cJSON_Delete(g);
    gale_model_free(m);
}

/* ---- chunked prefill and the sliding window, against transformers ---- */

/* input ids of a fixture as an int count */
static int32_t *json_ids(const cJSON *list, int *n) {
    size_t count;
    int32_t *ids = json_int_array(list, &count);
    *n = (int)count;
    return ids;
}

/* The 100-token engine fixture prefilled 7 tokens at a time (chunk edges fall inside
 * the 32-token windows) gives transformers' logits at every position, as one shot does. */
ParameterizedTestParameters(batching, chunked_prefill_matches_one_shot) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *index, batching, chunked_prefill_matches_one_shot) {
    const char *family = families[*index];
    gale_model *m = load_tiny(family);
    char path[256];
    snprintf(path, sizeof path, "engine/%s/meta.json", family);
    cJSON *meta = load_json(fixture(path));
    int n;
    int32_t *ids = json_ids(cJSON_GetObjectItemCaseSensitive(meta, "input_ids"), &n);
    float *ref;
    int64_t shape[2];
    int n_dims;
    snprintf(path, sizeof path, "engine/%s/logits.npy", family);
    cr_assert_eq(npy_read_f32(fixture(path), &ref, shape, &n_dims, 2), GALE_OK, "%s", gale_last_error());
    const int vocab = gale_model_config(m)->vocab;
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = 2;
    gale_session *chunked, *one_shot;
    cr_assert_eq(gale_session_new(m, &ep, &chunked), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_new(m, &ep, &one_shot), GALE_OK, "%s", gale_last_error());
    float *a = guarded_alloc((size_t)n * vocab), *b = guarded_alloc((size_t)n * vocab);
    for (int start = 0; start < n; start += 7) {
        int len = n - start < 7 ? n - start : 7;
        cr_assert_eq(gale_session_forward(chunked, ids + start, (size_t)len, true, a + (size_t)start * vocab), GALE_OK, "%s",
                     gale_last_error());
    }
    cr_assert_eq(gale_session_forward(one_shot, ids, (size_t)n, true, b), GALE_OK, "%s", gale_last_error());
    double chunk_err = max_relative_error(a, ref, (size_t)n * vocab), shot_err = max_relative_error(b, ref, (size_t)n * vocab),
           between = max_relative_error(a, b, (size_t)n * vocab);
    fprintf(stderr, "%s: chunked %.3g, one-shot %.3g vs transformers; chunked vs one-shot %.3g\n", family, chunk_err,
            shot_err, between);
    cr_assert(chunk_err <= 1e-4, "%s: chunked prefill differs from transformers by %.3g", family, chunk_err);
    cr_assert(between <= 1e-5, "%s: chunked and one-shot prefill differ by %.3g", family, between);
    guarded_check_free(a, (size_t)n * vocab, "chunked logits");
    guarded_check_free(b, (size_t)n * vocab, "one-shot logits");
    gale_session_free(chunked);
    gale_session_free(one_shot);
    free(ref);
    free(ids);
    cJSON_Delete(meta);
    gale_model_free(m);
}

/* 320 tokens decoded one at a time after a 10-token prompt (10 windows): transformers'
 * logits at every position, and the sliding layers never hold more than
 * ceil(W/16) + 1 blocks while the full layers hold them all. */
static const char *const window_models[] = {"mistral", "gemma3_text"};

ParameterizedTestParameters(batching, sliding_window_far_past_the_window) { return index_params(2); }
ParameterizedTest(size_t *index, batching, sliding_window_far_past_the_window) {
    const char *family = window_models[*index];
    gale_model *m = load_tiny(family);
    char path[256];
    snprintf(path, sizeof path, "window/%s/ids.json", family);
    cJSON *meta = load_json(fixture(path));
    int n, prompt_len = cJSON_GetObjectItemCaseSensitive(meta, "prompt_len")->valueint;
    int window = cJSON_GetObjectItemCaseSensitive(meta, "window")->valueint;
    int32_t *ids = json_ids(cJSON_GetObjectItemCaseSensitive(meta, "ids"), &n);
    float *ref;
    int64_t shape[2];
    int n_dims;
    snprintf(path, sizeof path, "window/%s/logits.npy", family);
    cr_assert_eq(npy_read_f32(fixture(path), &ref, shape, &n_dims, 2), GALE_OK, "%s", gale_last_error());
    const int vocab = gale_model_config(m)->vocab;
    cr_assert_eq(shape[0], n);
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = 2;
    ep.n_ctx = cJSON_GetObjectItemCaseSensitive(meta, "n_ctx")->valueint;
    gale_session *s;
    cr_assert_eq(gale_session_new(m, &ep, &s), GALE_OK, "%s", gale_last_error());
    const kv_cache *cache = session_kv_cache(s);
    const kv_seq *seq = session_kv_seq(s);
    float *got = guarded_alloc((size_t)n * vocab);
    cr_assert_eq(gale_session_forward(s, ids, (size_t)prompt_len, true, got), GALE_OK, "%s", gale_last_error());
    int most_sliding = 0;
    for (int pos = prompt_len; pos < n; pos++) {
        cr_assert_eq(gale_session_forward(s, ids + pos, 1, true, got + (size_t)pos * vocab), GALE_OK, "%s", gale_last_error());
        for (int g = 0; g < cache->n_groups; g++) {
            if (cache->groups[g].window == 0) {
                cr_assert_eq(seq->held[g], (pos + 1 + 15) / 16);
            } else {
                cr_assert_eq(cache->groups[g].window, window);
                cr_assert_leq(seq->held[g], (window + 15) / 16 + 1, "%s: %d sliding blocks held at length %d", family,
                              seq->held[g], pos + 1);
                most_sliding = seq->held[g] > most_sliding ? seq->held[g] : most_sliding;
            }
        }
    }
    double err = max_relative_error(got, ref, (size_t)n * vocab);
    fprintf(stderr, "%s: %d positions (%.1f windows), max|a-b|/max|ref| = %.3g, at most %d sliding blocks held\n", family, n,
            (double)n / window, err, most_sliding);
    cr_assert(err <= 1e-4, "%s: logits differ from transformers by %.3g past the window", family, err);
    guarded_check_free(got, (size_t)n * vocab, "logits");
    gale_session_free(s);
    free(ref);
    free(ids);
    cJSON_Delete(meta);
    gale_model_free(m);
}

/* The same 320 tokens generated greedily by the engine, in a pool that could not hold
 * the whole sequence in every layer. */
ParameterizedTestParameters(batching, engine_generates_past_the_window) { return index_params(2); }
ParameterizedTest(size_t *index, batching, engine_generates_past_the_window) {
    const char *family = window_models[*index];
    gale_model *m = load_tiny(family);
    char path[256];
    snprintf(path, sizeof path, "window/%s/ids.json", family);
    cJSON *meta = load_json(fixture(path));
    int n, prompt_len = cJSON_GetObjectItemCaseSensitive(meta, "prompt_len")->valueint;
    int32_t *ids = json_ids(cJSON_GetObjectItemCaseSensitive(meta, "ids"), &n);
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = 2;
    ep.n_ctx = cJSON_GetObjectItemCaseSensitive(meta, "n_ctx")->valueint;
    ep.max_num_seqs = 1;
    ep.max_num_batched_tokens = 4;
    ep.kv_blocks = 12; /* the 330 positions would need 21 blocks in every layer */
    gale_engine *e;
    cr_assert_eq(gale_engine_new(m, NULL, &ep, &e), GALE_OK, "%s", gale_last_error());
    gale_request q = gale_request_default();
    q.ids = ids;
    q.n_ids = (size_t)prompt_len;
    q.max_new_tokens = n - prompt_len;
    q.ignore_eos = true;
    cr_assert_eq(gale_engine_submit(e, &q, NULL), GALE_OK, "%s", gale_last_error());
    int got = prompt_len;
    while (gale_engine_busy(e)) {
        const gale_output *out;
        size_t count;
        cr_assert_eq(gale_engine_step(e, &out, &count), GALE_OK, "%s", gale_last_error());
        for (size_t k = 0; k < count; k++) {
            cr_assert_lt(got, n);
            cr_assert_eq(out[k].token, ids[got], "%s: token %d", family, got);
            got++;
        }
        gale_engine_stats st = gale_engine_get_stats(e);
        for (int g = 0; g < st.kv_groups; g++)
            if (st.kv_window[g] > 0) cr_assert_leq(st.kv_blocks_total[g] - st.kv_blocks_free[g], (32 - 1 + 4 + 15) / 16 + 1);
    }
    cr_assert_eq(got, n);
    assert_pool_full(e);
    gale_engine_free(e);
    free(ids);
    cJSON_Delete(meta);
    gale_model_free(m);
}

/* ---- cancel and bad requests ---- */

Test(batching, cancel_frees_blocks_and_reports) {
    gale_model *m = load_tiny("llama");
    workload w;
    make_workload(&w, gale_model_config(m), MAX_OUT);
    gale_engine *e = new_engine(m, 8, 64, 0);
    uint64_t ids[3];
    for (int r = 0; r < 3; r++) {
        int which = r == 0 ? 5 : r; /* 33, 300, 17 tokens */
        gale_request q = gale_request_default();
        q.ids = w.prompt[which];
        q.n_ids = (size_t)w.n_prompt[which];
        q.max_new_tokens = 24;
        q.ignore_eos = true;
        cr_assert_eq(gale_engine_submit(e, &q, &ids[r]), GALE_OK, "%s", gale_last_error());
    }
    const gale_output *out;
    size_t n;
    for (int s = 0; s < 3; s++) cr_assert_eq(gale_engine_step(e, &out, &n), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_engine_cancel(e, ids[1]), GALE_OK, "%s", gale_last_error());
    assert_error(gale_engine_cancel(e, ids[1]), GALE_ERR_INVALID_ARG, "no running request");
    assert_error(gale_engine_cancel(e, 999), GALE_ERR_INVALID_ARG, "999");
    bool reported = false;
    int after_cancel = 0;
    while (gale_engine_busy(e)) {
        cr_assert_eq(gale_engine_step(e, &out, &n), GALE_OK, "%s", gale_last_error());
        for (size_t k = 0; k < n; k++) {
            if (out[k].request_id != ids[1]) continue;
            cr_assert_eq(out[k].finish, GALE_FINISH_CANCELLED);
            cr_assert_eq(out[k].token, -1);
            cr_assert_not(reported, "the cancel is reported once");
            reported = true;
            after_cancel++;
        }
    }
    cr_assert(reported);
    cr_assert_eq(after_cancel, 1);
    assert_pool_full(e);
    gale_engine_free(e);
    free_workload(&w);
    gale_model_free(m);
}

Test(batching, bad_requests_are_refused_by_name) {
    gale_model *m = load_tiny("llama"); /* context 512 */
    gale_engine *e = new_engine(m, 4, 64, 8); /* 8 blocks: 128 positions */
    int32_t ids[600] = {0};
    gale_request q = gale_request_default();
    q.ids = ids;
    q.n_ids = 600;
    uint64_t id;
    assert_error(gale_engine_submit(e, &q, &id), GALE_ERR_INVALID_ARG, "the context holds 512");
    q.n_ids = 100;
    q.max_new_tokens = 100;
    assert_error(gale_engine_submit(e, &q, &id), GALE_ERR_INVALID_ARG, "need 13 KV blocks, the whole pool has 8");
    q.n_ids = 0;
    assert_error(gale_engine_submit(e, &q, &id), GALE_ERR_INVALID_ARG, "empty prompt");
    q.ids = NULL;
    q.prompt = "hello";
    assert_error(gale_engine_submit(e, &q, &id), GALE_ERR_INVALID_ARG, "needs an engine with a tokenizer");
    q.prompt = NULL;
    q.ids = ids;
    q.n_ids = 4;
    q.max_new_tokens = 0;
    assert_error(gale_engine_submit(e, &q, &id), GALE_ERR_INVALID_ARG, "max_new_tokens 0");
    q.max_new_tokens = 4;
    ids[2] = 100000;
    assert_error(gale_engine_submit(e, &q, &id), GALE_ERR_INVALID_ARG, "outside the vocabulary");
    ids[2] = 0;
    q.sampling.top_p = 1.5f;
    assert_error(gale_engine_submit(e, &q, &id), GALE_ERR_INVALID_ARG, "top_p");
    q.sampling.top_p = 1.0f;
    const char *empty_stop[] = {""};
    q.stop = empty_stop;
    q.n_stop = 1;
    assert_error(gale_engine_submit(e, &q, &id), GALE_ERR_INVALID_ARG, "stop string 0 is empty");
    cr_assert_not(gale_engine_busy(e), "refused requests leave nothing behind");
    assert_pool_full(e);
    gale_engine_free(e);
    gale_engine_params p = gale_engine_params_default();
    p.max_num_seqs = 0;
    assert_error(gale_engine_new(m, NULL, &p, &e), GALE_ERR_INVALID_ARG, "max_num_seqs");
    p = gale_engine_params_default();
    p.kv_memory_fraction = 1.5f;
    assert_error(gale_engine_new(m, NULL, &p, &e), GALE_ERR_INVALID_ARG, "kv_memory_fraction");
    gale_model_free(m);
}

/* A session cut back to a prefix and run on from there gives the logits a fresh
 * session gives (what `gale chat` relies on between turns); cutting below what a
 * sliding window has let go of is refused and changes nothing. */
ParameterizedTestParameters(batching, truncated_session_matches_fresh) { return index_params(N_FAMILIES); }
ParameterizedTest(size_t *index, batching, truncated_session_matches_fresh) {
    const char *family = families[*index];
    gale_model *m = load_tiny(family);
    char path[256];
    snprintf(path, sizeof path, "engine/%s/meta.json", family);
    cJSON *meta = load_json(fixture(path));
    int n;
    int32_t *ids = json_ids(cJSON_GetObjectItemCaseSensitive(meta, "input_ids"), &n);
    const int vocab = gale_model_config(m)->vocab;
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = 2;
    gale_session *reused, *fresh;
    cr_assert_eq(gale_session_new(m, &ep, &reused), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_new(m, &ep, &fresh), GALE_OK, "%s", gale_last_error());
    float *a = guarded_alloc((size_t)vocab), *b = guarded_alloc((size_t)vocab);
    /* 50 tokens, then 10 other ones, then back to token 50 and on with the real ids (a
     * 32-token window still holds what position 50 sees) */
    int32_t other[10];
    for (int i = 0; i < 10; i++) other[i] = (ids[i] + 7) % vocab;
    cr_assert_eq(gale_session_forward(reused, ids, 50, false, a), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_forward(reused, other, 10, false, a), GALE_OK, "%s", gale_last_error());
    cr_assert_not(gale_session_truncate(reused, 61), "past the end is refused");
    cr_assert(gale_session_truncate(reused, 50), "%s: cutting 60 tokens back to 50", family);
    cr_assert_eq(gale_session_position(reused), 50);
    cr_assert_eq(gale_session_forward(reused, ids + 50, 5, false, a), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_forward(fresh, ids, 55, false, b), GALE_OK, "%s", gale_last_error());
    for (int v = 0; v < vocab; v++)
        cr_assert(memcmp(&a[v], &b[v], sizeof(float)) == 0, "%s: logit %d is %.9g after the cut, %.9g fresh", family, v,
                  a[v], b[v]);
    /* a 32-token window has let go of the first blocks by position 55 */
    const kv_cache *cache = session_kv_cache(reused);
    bool sliding = false;
    for (int g = 0; g < cache->n_groups; g++) sliding |= cache->groups[g].window > 0;
    if (sliding) {
        cr_assert_not(gale_session_truncate(reused, 3), "%s: position 3's window was released", family);
        cr_assert_eq(gale_session_position(reused), 55, "a refused cut changes nothing");
    } else {
        cr_assert(gale_session_truncate(reused, 3));
    }
    guarded_check_free(a, (size_t)vocab, "logits");
    guarded_check_free(b, (size_t)vocab, "logits");
    gale_session_free(reused);
    gale_session_free(fresh);
    free(ids);
    cJSON_Delete(meta);
    gale_model_free(m);
}

/* The public API under random use: submits (some refused), cancels of live, finished and
 * unknown ids, steps; every output names a live request, each request finishes exactly
 * once, and the pool is full at the end. Runs under ASan/LSan in CI. */
Test(batching, random_api_use_keeps_the_engine_consistent, .timeout = 300) {
    gale_model *m = load_tiny("gemma3_text");
    gale_engine *e = new_engine(m, 6, 24, 14); /* short enough to preempt */
    const int vocab = gale_model_config(m)->vocab;
    uint64_t rng = 99, ids[400];
    bool finished[400] = {false};
    int n_ids = 0, events = 0;
    int32_t prompt[200];
    for (int i = 0; i < 200; i++) prompt[i] = (int32_t)(i * 7 % vocab);
    while (events < 1500) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t dice = (uint32_t)(rng >> 33) % 10;
        if (dice < 3 && n_ids < 400) {
            gale_request q = gale_request_default();
            q.ids = prompt;
            q.n_ids = (size_t)((rng >> 20) % 180);          /* 0: refused, empty */
            q.max_new_tokens = (int)((rng >> 40) % 40) + 1;
            q.ignore_eos = (rng >> 50) & 1;
            uint64_t id;
            gale_status st = gale_engine_submit(e, &q, &id);
            if (q.n_ids == 0) {
                cr_assert_neq(st, GALE_OK, "an empty prompt is refused");
            } else {
                cr_assert_eq(st, GALE_OK, "%s", gale_last_error());
                ids[n_ids++] = id;
            }
        } else if (dice < 4 && n_ids > 0) {
            int k = (int)((rng >> 24) % (uint64_t)n_ids);
            gale_status st = gale_engine_cancel(e, ids[k]);
            cr_assert(st == GALE_OK || finished[k], "cancel of a live request %llu fails: %s", (unsigned long long)ids[k],
                      gale_last_error());
            if (st == GALE_OK) cr_assert_not(finished[k]);
        } else {
            const gale_output *out;
            size_t n;
            cr_assert_eq(gale_engine_step(e, &out, &n), GALE_OK, "%s", gale_last_error());
            for (size_t o = 0; o < n; o++) {
                int k = 0;
                while (k < n_ids && ids[k] != out[o].request_id) k++;
                cr_assert_lt(k, n_ids, "output for unknown request %llu", (unsigned long long)out[o].request_id);
                cr_assert_not(finished[k], "request %llu reported after it finished", (unsigned long long)ids[k]);
                if (out[o].finish != GALE_FINISH_NONE) finished[k] = true;
                if (out[o].finish == GALE_FINISH_CANCELLED) cr_assert_eq(out[o].token, -1);
                else cr_assert(out[o].token >= 0 && out[o].token < vocab);
            }
        }
        events++;
    }
    while (gale_engine_busy(e)) {
        const gale_output *out;
        size_t n;
        cr_assert_eq(gale_engine_step(e, &out, &n), GALE_OK, "%s", gale_last_error());
        for (size_t o = 0; o < n; o++) {
            int k = 0;
            while (k < n_ids && ids[k] != out[o].request_id) k++;
            cr_assert_lt(k, n_ids);
            if (out[o].finish != GALE_FINISH_NONE) finished[k] = true;
        }
    }
    for (int k = 0; k < n_ids; k++) cr_assert(finished[k], "request %llu never finished", (unsigned long long)ids[k]);
    gale_engine_stats st = gale_engine_get_stats(e);
    fprintf(stderr, "random API use: %d requests, %llu steps, %llu preemptions\n", n_ids, (unsigned long long)st.steps,
            (unsigned long long)st.preemptions);
    cr_assert_gt(st.preemptions, 0, "the pool was meant to run short");
    assert_pool_full(e);
    gale_engine_free(e);
    gale_model_free(m);
}
