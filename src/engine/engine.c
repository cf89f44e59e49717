/* gale_engine: requests over the scheduler and the model runner — sampling, stop rules
 * and streamed text per request, one batch per step. */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/log.h"
#include "core/status.h"
#include "engine/runner.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/stop_text.h"
#include "model/config.h"
#include "model/model.h"

enum { MAX_STOP_IDS = 32 };

typedef struct request {
    sched_seq seq;
    gale_sampler *sampler;
    gale_detokenizer *detok; /* NULL without a tokenizer */
    char **stop_strings;     /* owned copies */
    stop_text stop;
    int32_t stop_ids[MAX_STOP_IDS];
    int n_stop_ids;
    gale_finish finish;      /* set when it ended: reported, then freed next step */
    bool cancel_in_step;     /* a cancel's output is in the step being made */
    bool cancel_reported;    /* a cancel's output went out (with a step that succeeded) */
} request;

struct gale_engine {
    const gale_tokenizer *tok;
    const gale_config *c;
    model_runner *runner;
    kv_cache cache;
    scheduler *sched;
    int n_ctx;
    request **live; /* submitted and not yet freed */
    size_t n_live, cap_live;
    uint64_t next_id, steps, prompt_tokens, generated_tokens;
    int32_t eos_ids[MAX_STOP_IDS]; /* the config's and the tokenizer's end ids */
    int n_eos_ids;
    bool device_sampling;  /* the backend draws the tokens (runner_forward_sample) */
    float *logits;         /* host sampling: [max_num_seqs, vocab] */
    sample_row *rules;     /* device sampling: [max_num_seqs] */
    int32_t *sampled;      /* [max_num_seqs] the step's ids */
    gale_output *outputs; /* [cap_outputs] */
    size_t cap_outputs;
};

gale_request gale_request_default(void) {
    gale_sampling_params greedy = gale_sampling_params_default();
    greedy.temperature = 0;
    return (gale_request){.sampling = greedy, .max_new_tokens = 256};
}

static void request_free(kv_cache *cache, request *r) {
    if (!r) return;
    kv_seq_free(cache, &r->seq.kv);
    free(r->seq.tokens);
    gale_sampler_free(r->sampler);
    gale_detokenizer_free(r->detok);
    for (size_t i = 0; r->stop_strings && i < r->stop.n_stops; i++) free(r->stop_strings[i]);
    free(r->stop_strings);
    stop_text_free(&r->stop);
    free(r);
}

/* ---- set-up ---- */

static void add_eos(gale_engine *e, int32_t id) {
    for (int i = 0; i < e->n_eos_ids; i++)
        if (e->eos_ids[i] == id) return;
    if (e->n_eos_ids < MAX_STOP_IDS) e->eos_ids[e->n_eos_ids++] = id;
}

/* KV memory: kv_blocks blocks, or a fraction of the backend's memory (the host's, or the
 * GPU's free memory once the weights are there, as vLLM's gpu_memory_utilization), never
 * more than max_num_seqs full contexts need. */
static size_t kv_budget(const gale_config *c, const gale_engine_params *p, int block_size, int n_ctx, backend *b) {
    size_t block = kv_cache_block_bytes(c, block_size, b->ops->act_size);
    if (p->kv_blocks > 0) return (size_t)p->kv_blocks * block;
    size_t most = block * (size_t)((n_ctx + block_size - 1) / block_size) * (size_t)p->max_num_seqs;
    size_t memory = b->ops->memory_size(b);
    size_t share = memory ? (size_t)((double)memory * p->kv_memory_fraction) : most;
    return share < most ? share : most;
}

static gale_status check_params(const gale_engine_params *p) {
    if (p->max_num_seqs <= 0 || p->max_num_batched_tokens <= 0)
        return gale_error(GALE_ERR_INVALID_ARG, "engine: max_num_seqs (%d) and max_num_batched_tokens (%d) must be positive",
                          p->max_num_seqs, p->max_num_batched_tokens);
    if (p->kv_blocks < 0 || p->block_size < 0 || p->n_ctx < 0)
        return gale_error(GALE_ERR_INVALID_ARG, "engine: kv_blocks, block_size and n_ctx must not be negative");
    if (p->kv_blocks == 0 && !(p->kv_memory_fraction > 0 && p->kv_memory_fraction <= 1))
        return gale_error(GALE_ERR_INVALID_ARG, "engine: kv_memory_fraction %g is outside (0, 1]", (double)p->kv_memory_fraction);
    return GALE_OK;
}

gale_status gale_engine_new(const gale_model *model, const gale_tokenizer *tokenizer, const gale_engine_params *params,
                            gale_engine **out) {
    if (!model || !out) return gale_error(GALE_ERR_INVALID_ARG, "gale_engine_new: model and out are required");
    *out = NULL;
    gale_engine_params defaults = gale_engine_params_default();
    if (!params) params = &defaults;
    GALE_TRY(check_params(params));
    gale_engine *e = calloc(1, sizeof *e);
    if (!e) return gale_error(GALE_ERR_OOM, "engine: out of memory");
    e->tok = tokenizer;
    e->c = gale_model_config(model);
    e->n_ctx = engine_default_context(e->c, params->n_ctx);
    e->next_id = 1;
    int block_size = params->block_size ? params->block_size : KV_DEFAULT_BLOCK_SIZE;
    int chunk = params->max_num_batched_tokens < e->n_ctx ? params->max_num_batched_tokens : e->n_ctx;
    scheduler_params sp = {.max_num_seqs = params->max_num_seqs,
                           .max_num_batched_tokens = params->max_num_batched_tokens,
                           .max_len = e->n_ctx};
    gale_status status = runner_create(model, params, &e->runner);
    if (status == GALE_OK) {
        e->device_sampling = runner_samples_on_device(e->runner) && !params->sample_on_host;
        const size_t rows = (size_t)params->max_num_seqs;
        e->sampled = malloc(rows * sizeof *e->sampled);
        if (e->device_sampling) e->rules = malloc(rows * sizeof *e->rules);
        else e->logits = malloc(rows * (size_t)e->c->vocab * sizeof *e->logits);
        if (!e->sampled || !(e->device_sampling ? (void *)e->rules : (void *)e->logits))
            status = gale_error(GALE_ERR_OOM, "engine: out of memory for %zu rows of logits", rows);
    }
    if (status == GALE_OK) {
        backend *b = runner_backend(e->runner);
        kv_cache_params kp = {.block_size = block_size,
                              .budget_bytes = kv_budget(e->c, params, block_size, e->n_ctx, b),
                              .max_seqs = params->max_num_seqs,
                              .max_chunk = chunk,
                              .max_len = e->n_ctx,
                              .storage = b};
        status = kv_cache_init(&e->cache, e->c, &kp);
    }
    if (status == GALE_OK) status = scheduler_new(&e->cache, &sp, &e->sched);
    /* a step holds up to max_num_batched_tokens tokens of several sequences (one sequence's
     * chunk, above, is capped by the context): the profile run is that size, as vLLM's */
    const int step_tokens = params->max_num_batched_tokens;
    if (status == GALE_OK &&
        (status = runner_reserve(e->runner, &e->cache, step_tokens, params->max_num_seqs)) != GALE_OK)
        status = gale_error_prefix(status, "engine: a step of %d tokens (max_num_batched_tokens) does not fit beside "
                                   "the KV cache: ", step_tokens);
    if (status != GALE_OK) {
        gale_engine_free(e);
        return status;
    }
    for (int i = 0; i < e->c->n_eos; i++) add_eos(e, e->c->eos_ids[i]);
    if (tokenizer) {
        int32_t more[4];
        size_t n_more = gale_chat_stop_ids(tokenizer, NULL, more, 4);
        for (size_t i = 0; i < n_more; i++) add_eos(e, more[i]);
    }
    *out = e;
    return GALE_OK;
}

void gale_engine_free(gale_engine *e) {
    if (!e) return;
    for (size_t i = 0; i < e->n_live; i++) request_free(&e->cache, e->live[i]);
    free(e->live);
    scheduler_free(e->sched);
    kv_cache_free(&e->cache);
    runner_free(e->runner);
    free(e->logits);
    free(e->rules);
    free(e->sampled);
    free(e->outputs);
    free(e);
}

/* ---- requests ---- */

static gale_status request_prompt(const gale_engine *e, const gale_request *q, uint64_t id, gale_tokens *ids) {
    if (q->ids) {
        if (q->n_ids == 0) return gale_error(GALE_ERR_INVALID_ARG, "request %llu: empty prompt", (unsigned long long)id);
        ids->ids = malloc(q->n_ids * sizeof *ids->ids);
        if (!ids->ids) return gale_error(GALE_ERR_OOM, "request %llu: out of memory", (unsigned long long)id);
        memcpy(ids->ids, q->ids, q->n_ids * sizeof *ids->ids);
        ids->count = ids->cap = q->n_ids;
    } else {
        if (!q->prompt || !*q->prompt) return gale_error(GALE_ERR_INVALID_ARG, "request %llu: empty prompt", (unsigned long long)id);
        if (!e->tok)
            return gale_error(GALE_ERR_INVALID_ARG, "request %llu: a text prompt needs an engine with a tokenizer",
                              (unsigned long long)id);
        GALE_TRY(gale_tokenizer_encode(e->tok, q->prompt, strlen(q->prompt), true, ids));
    }
    for (size_t i = 0; i < ids->count; i++)
        if (ids->ids[i] < 0 || ids->ids[i] >= e->c->vocab)
            return gale_error(GALE_ERR_INVALID_ARG, "request %llu: token id %d is outside the vocabulary (%d)",
                              (unsigned long long)id, ids->ids[i], e->c->vocab);
    if ((int64_t)ids->count >= e->n_ctx)
        return gale_error(GALE_ERR_INVALID_ARG, "request %llu: the prompt has %zu tokens, the context holds %d with one new",
                          (unsigned long long)id, ids->count, e->n_ctx);
    return GALE_OK;
}

static gale_status request_stops(const gale_engine *e, const gale_request *q, request *r) {
    if (q->n_stop_ids + (q->ignore_eos ? 0 : (size_t)e->n_eos_ids) > MAX_STOP_IDS)
        return gale_error(GALE_ERR_INVALID_ARG, "request %llu: more than %d stop ids", (unsigned long long)r->seq.id,
                          MAX_STOP_IDS);
    if (!q->ignore_eos)
        for (int i = 0; i < e->n_eos_ids; i++) r->stop_ids[r->n_stop_ids++] = e->eos_ids[i];
    for (size_t i = 0; i < q->n_stop_ids; i++) r->stop_ids[r->n_stop_ids++] = q->stop_ids[i];
    if (q->n_stop == 0) return GALE_OK;
    r->stop_strings = calloc(q->n_stop, sizeof *r->stop_strings);
    if (!r->stop_strings) return gale_error(GALE_ERR_OOM, "request: out of memory");
    stop_text_init(&r->stop, (const char *const *)r->stop_strings, q->n_stop);
    for (size_t i = 0; i < q->n_stop; i++) {
        if (!q->stop[i] || !*q->stop[i])
            return gale_error(GALE_ERR_INVALID_ARG, "request %llu: stop string %zu is empty", (unsigned long long)r->seq.id, i);
        if (!(r->stop_strings[i] = strdup(q->stop[i]))) return gale_error(GALE_ERR_OOM, "request: out of memory");
    }
    return GALE_OK;
}

static gale_status track(gale_engine *e, request *r) {
    if (e->n_live == e->cap_live) {
        size_t cap = e->cap_live ? 2 * e->cap_live : 16;
        request **grown = realloc(e->live, cap * sizeof *grown);
        if (!grown) return gale_error(GALE_ERR_OOM, "engine: out of memory");
        e->live = grown;
        e->cap_live = cap;
    }
    e->live[e->n_live++] = r;
    return GALE_OK;
}

static gale_status build_request(gale_engine *e, const gale_request *q, request *r) {
    if (q->max_new_tokens <= 0)
        return gale_error(GALE_ERR_INVALID_ARG, "request %llu: max_new_tokens %d must be positive",
                          (unsigned long long)r->seq.id, q->max_new_tokens);
    gale_tokens prompt = {0};
    gale_status status = request_prompt(e, q, r->seq.id, &prompt);
    if (status != GALE_OK) {
        gale_tokens_free(&prompt);
        return status;
    }
    int n = (int)prompt.count;
    int room = e->n_ctx - n; /* new tokens are cut at the context */
    r->seq.n_prompt = r->seq.n_tokens = n;
    r->seq.max_tokens = n + (q->max_new_tokens < room ? q->max_new_tokens : room);
    r->seq.tokens = realloc(prompt.ids, (size_t)r->seq.max_tokens * sizeof *r->seq.tokens);
    if (!r->seq.tokens) {
        free(prompt.ids);
        return gale_error(GALE_ERR_OOM, "request: out of memory");
    }
    r->seq.owner = r;
    GALE_TRY(gale_sampler_new(&q->sampling, e->c->vocab, &r->sampler));
    if (e->tok) GALE_TRY(gale_detokenizer_new(e->tok, true, &r->detok));
    return request_stops(e, q, r);
}

gale_status gale_engine_submit(gale_engine *e, const gale_request *q, uint64_t *id) {
    if (!e || !q) return gale_error(GALE_ERR_INVALID_ARG, "gale_engine_submit: engine and request are required");
    request *r = calloc(1, sizeof *r);
    if (!r) return gale_error(GALE_ERR_OOM, "engine: out of memory");
    r->seq.id = e->next_id++;
    gale_status status = build_request(e, q, r);
    if (status == GALE_OK) status = track(e, r);
    if (status == GALE_OK) {
        status = scheduler_add(e->sched, &r->seq);
        if (status != GALE_OK) e->n_live--;
    }
    if (status != GALE_OK) {
        request_free(&e->cache, r);
        return status;
    }
    e->prompt_tokens += (uint64_t)r->seq.n_prompt;
    if (id) *id = r->seq.id;
    return GALE_OK;
}

gale_status gale_engine_cancel(gale_engine *e, uint64_t id) {
    for (size_t i = 0; i < e->n_live; i++) {
        request *r = e->live[i];
        if (r->seq.id != id || r->finish != GALE_FINISH_NONE) continue;
        scheduler_remove(e->sched, &r->seq);
        r->finish = GALE_FINISH_CANCELLED;
        return GALE_OK;
    }
    return gale_error(GALE_ERR_INVALID_ARG, "cancel: no running request %llu", (unsigned long long)id);
}

/* Unfinished requests, or a cancel not reported yet. */
bool gale_engine_busy(const gale_engine *e) {
    for (size_t i = 0; i < e->n_live; i++) {
        const request *r = e->live[i];
        if (r->finish == GALE_FINISH_NONE || (r->finish == GALE_FINISH_CANCELLED && !r->cancel_reported)) return true;
    }
    return false;
}

gale_engine_stats gale_engine_get_stats(const gale_engine *e) {
    gale_engine_stats st = {.waiting = scheduler_waiting(e->sched),
                            .running = scheduler_running(e->sched),
                            .steps = e->steps,
                            .preemptions = scheduler_preemptions(e->sched),
                            .prompt_tokens = e->prompt_tokens,
                            .generated_tokens = e->generated_tokens,
                            .graph_replays = runner_graph_replays(e->runner),
                            .kv_block_size = e->cache.block_size,
                            .kv_groups = e->cache.n_groups};
    for (int g = 0; g < e->cache.n_groups && g < 4; g++) {
        st.kv_window[g] = e->cache.groups[g].window;
        st.kv_blocks_total[g] = e->cache.groups[g].n_blocks;
        st.kv_blocks_free[g] = e->cache.groups[g].n_free;
    }
    return st;
}

/* ---- a step ---- */

/* Room for one output per live request, reserved before a step changes anything: a step
 * gives each request at most one (its token, or its cancel), so once the forward ran
 * nothing can fail for want of room. */
static gale_status reserve_outputs(gale_engine *e) {
    if (e->n_live <= e->cap_outputs) return GALE_OK;
    size_t cap = e->cap_outputs ? e->cap_outputs : 64;
    while (cap < e->n_live) cap *= 2;
    gale_output *grown = realloc(e->outputs, cap * sizeof *grown);
    if (!grown) return gale_error(GALE_ERR_OOM, "engine: out of memory for %zu outputs", cap);
    e->outputs = grown;
    e->cap_outputs = cap;
    return GALE_OK;
}

static void push_output(gale_engine *e, size_t *n, const gale_output *o) { e->outputs[(*n)++] = *o; }

/* Requests that ended were reported by the last step (or are cancelled and report
 * now): free the reported ones, report the cancelled. */
static void sweep(gale_engine *e, size_t *n_out) {
    size_t kept = 0;
    for (size_t i = 0; i < e->n_live; i++) {
        request *r = e->live[i];
        if (r->finish == GALE_FINISH_CANCELLED && !r->cancel_reported) {
            gale_output o = {.request_id = r->seq.id, .token = -1, .text = "", .finish = GALE_FINISH_CANCELLED};
            push_output(e, n_out, &o);
            r->cancel_in_step = true;
            e->live[kept++] = r;
        } else if (r->finish != GALE_FINISH_NONE) {
            request_free(&e->cache, r);
        } else {
            e->live[kept++] = r;
        }
    }
    e->n_live = kept;
}

/* The end of a step: its cancels went out with it, or (it failed) go out with the next. */
static void settle_cancels(gale_engine *e, bool delivered) {
    for (size_t i = 0; i < e->n_live; i++) {
        request *r = e->live[i];
        if (!r->cancel_in_step) continue;
        r->cancel_in_step = false;
        r->cancel_reported = delivered;
    }
}

static bool is_stop_id(const request *r, int32_t id) {
    for (int i = 0; i < r->n_stop_ids; i++)
        if (r->stop_ids[i] == id) return true;
    return false;
}

/* The text side of a new token: detokenized, stop strings applied, flushed at a finish. */
static gale_status advance_text(request *r, int32_t id, bool stop_id) {
    if (!stop_id) {
        const char *text;
        size_t len;
        GALE_TRY(gale_detokenizer_push(r->detok, id, &text, &len));
        GALE_TRY(stop_text_push(&r->stop, text, len));
        if (r->stop.stopped) r->finish = GALE_FINISH_STOP;
    }
    if (r->finish == GALE_FINISH_NONE && r->seq.n_tokens >= r->seq.max_tokens) r->finish = GALE_FINISH_LENGTH;
    if (r->finish != GALE_FINISH_NONE) {
        const char *tail;
        size_t tail_len;
        GALE_TRY(gale_detokenizer_flush(r->detok, &tail, &tail_len));
        GALE_TRY(stop_text_push(&r->stop, tail, tail_len));
        GALE_TRY(stop_text_finish(&r->stop));
    }
    return GALE_OK;
}

/* Takes the request's next token and applies the stop rules. Cannot fail: it runs after
 * the step's KV is committed, where a half-made step would leave requests that have no
 * next chunk; a request whose text cannot be made (out of memory) ends with
 * GALE_FINISH_ERROR instead, and the others go on. */
static void advance(gale_engine *e, request *r, int32_t id, gale_output *o) {
    sched_seq *seq = &r->seq;
    *o = (gale_output){.request_id = seq->id, .token = id, .text = "", .finish = GALE_FINISH_NONE};
    e->generated_tokens++;
    const bool stop_id = is_stop_id(r, id);
    if (stop_id) r->finish = GALE_FINISH_STOP;
    else seq->tokens[seq->n_tokens++] = id;
    if (r->detok) {
        if (advance_text(r, id, stop_id) == GALE_OK) {
            o->text = stop_text_take(&r->stop, &o->text_len);
        } else {
            log_warn("engine: request %llu ends: %s", (unsigned long long)seq->id, gale_last_error());
            r->finish = GALE_FINISH_ERROR;
        }
    } else if (r->finish == GALE_FINISH_NONE && seq->n_tokens >= seq->max_tokens) {
        r->finish = GALE_FINISH_LENGTH;
    }
    o->finish = r->finish;
    if (r->finish != GALE_FINISH_NONE) scheduler_remove(e->sched, seq);
}

/* One step into e->outputs[*n]: sweep, schedule, forward, sample (all of which may fail
 * and leave the requests as they were), then commit and advance (which cannot fail). */
static gale_status run_step(gale_engine *e, size_t *n_outputs) {
    size_t n = 0;
    GALE_TRY(reserve_outputs(e));
    sweep(e, &n);
    *n_outputs = n;
    sched_step step;
    GALE_TRY(scheduler_schedule(e->sched, &step));
    if (step.batch.n_tokens > 0) {
        const int rows = step.batch.n_logits;
        if (e->device_sampling) {
            for (int i = 0; i < rows; i++) {
                const sched_seq *seq = step.samplers[i];
                GALE_TRY(sampler_device_row(((request *)seq->owner)->sampler, seq->tokens, (size_t)seq->n_tokens,
                                            &e->rules[i]));
            }
            GALE_TRY(runner_forward_sample(e->runner, &e->cache, &step.batch, e->rules, e->sampled));
        } else {
            GALE_TRY(runner_forward(e->runner, &e->cache, &step.batch, e->logits));
            for (int i = 0; i < rows; i++) {
                const sched_seq *seq = step.samplers[i];
                GALE_TRY(gale_sampler_sample(((request *)seq->owner)->sampler, e->logits + (size_t)i * e->c->vocab,
                                             seq->tokens, (size_t)seq->n_tokens, &e->sampled[i]));
            }
        }
        scheduler_commit(e->sched, &step);
        e->steps++;
        if (e->device_sampling)
            for (int i = 0; i < rows; i++) sampler_drew(((request *)step.samplers[i]->owner)->sampler);
        for (int i = 0; i < rows; i++) {
            gale_output o;
            advance(e, step.samplers[i]->owner, e->sampled[i], &o);
            push_output(e, &n, &o);
        }
    } else if (n == 0 && scheduler_waiting(e->sched) + scheduler_running(e->sched) > 0) {
        return gale_error(GALE_ERR_INTERNAL, "engine: %d requests wait but none can be scheduled",
                          scheduler_waiting(e->sched));
    }
    *n_outputs = n;
    return GALE_OK;
}

gale_status gale_engine_step(gale_engine *e, const gale_output **outputs, size_t *n_outputs) {
    if (!e || !outputs || !n_outputs) return gale_error(GALE_ERR_INVALID_ARG, "gale_engine_step: NULL argument");
    *outputs = NULL;
    *n_outputs = 0;
    size_t n = 0;
    const gale_status status = run_step(e, &n);
    settle_cancels(e, status == GALE_OK);
    if (status != GALE_OK) return status;
    *outputs = e->outputs;
    *n_outputs = n;
    return GALE_OK;
}
