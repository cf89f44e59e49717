/* The runner's recorded decode steps (CUDA graphs on a GPU) checked on the CPU: a test
 * backend wraps the CPU's ops and, between graph_begin and graph_end, records each op call
 * (its arguments by value) instead of running it; graph_launch runs the list again. Like
 * CUDA it stages integer arrays into buffers it owns (replays read what was staged last)
 * and reports freed memory through buffers_epoch. So the runner's side of recording —
 * padding rows, the fixed block-table stride, buffers grown before a recording, re-staging
 * before each replay, re-recording after memory moved, falling back when a recording
 * fails — runs in CI, where no GPU is:
 *   - a session replaying graphs gives logits bit-identical to the plain CPU backend at
 *     every decode step, for every family;
 *   - the engine, with batches whose size changes (recorded sizes with padding rows),
 *     generates exactly the plain CPU engine's tokens, and replays happened;
 *   - Mixtral's generic MoE layer reads routing on the host, which a recording cannot
 *     hold: the recording fails, the runner warns and runs op by op, tokens unchanged;
 *   - like CUDA's attention and MoE scratch, the attention op's scratch grows with the
 *     rows of a step (and cannot grow while recording): with batches that grow, each
 *     graph size is still recorded once — the scratch is sized before the first one;
 *   - prompts longer than any before do not make graphs record again: the engine's
 *     profile run sized everything for its largest step at creation, and an engine whose
 *     largest step cannot run is refused then. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/status.h"
#include "engine/runner.h"
#include "batch_workload.h"
#include "test_support.h"

typedef enum op_kind { OP_EMBED, OP_RMSNORM, OP_MATMUL, OP_ROPE, OP_ATTENTION, OP_ACTIVATION, OP_SOFTCAP, OP_ADD } op_kind;

/* One recorded call: the union of what the recordable ops take. */
typedef struct recorded_op {
    op_kind kind;
    const void *in;
    void *io, *out, *out2;
    const gale_tensor *w;
    const int32_t *ints, *ints2;
    const float *f32;
    int n, dim, heads, kv_heads, head_dim;
    float a, b;
    size_t count;
    gale_activation act;
    paged_kv kv;
    attention_params attention;
    head_norm norm;
    bool has_norm;
} recorded_op;

typedef struct recording {
    recorded_op *ops;
    int n, cap;
} recording;

static struct {
    bool capturing, broken; /* broken: an op that cannot be recorded was called */
    recording *current;
    uint64_t epoch;
    int recordings, launches;
    int scratch_rows;            /* the attention op's per-step scratch, in rows */
    bool refuse_padding_steps;   /* attention fails on a step of padding rows only */
    int recorded_rows[257];      /* how often a graph of each size was recorded */
    int32_t *stage[4];
    size_t stage_cap[4];
} rec;

static backend_ops recording_ops;

static void record(const recorded_op *op) {
    recording *r = rec.current;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->ops = realloc(r->ops, (size_t)r->cap * sizeof *r->ops);
        cr_assert(r->ops, "out of memory");
    }
    r->ops[r->n++] = *op;
}

static gale_status rec_embed(backend *b, const gale_tensor *t, const int32_t *ids, int n, float scale, void *y) {
    if (!rec.capturing) return cpu_backend_ops.embed(b, t, ids, n, scale, y);
    record(&(recorded_op){.kind = OP_EMBED, .w = t, .ints = ids, .n = n, .a = scale, .out = y});
    return GALE_OK;
}

static void rec_rmsnorm(backend *b, const void *x, int n, int dim, const float *w, float offset, float eps, void *y) {
    if (!rec.capturing) return cpu_backend_ops.rmsnorm(b, x, n, dim, w, offset, eps, y);
    record(&(recorded_op){.kind = OP_RMSNORM, .in = x, .n = n, .dim = dim, .f32 = w, .a = offset, .b = eps, .out = y});
}

static gale_status rec_matmul(backend *b, const void *x, int n, const gale_tensor *w, void *y) {
    if (!rec.capturing) return cpu_backend_ops.matmul(b, x, n, w, y);
    record(&(recorded_op){.kind = OP_MATMUL, .in = x, .n = n, .w = w, .out = y});
    return GALE_OK;
}

static void rec_rope(backend *b, void *q, void *k, const void *v, int n, int heads, int kv_heads, int head_dim,
                     const int32_t *positions, const int32_t *seq_of, const float *inv_freq, const head_norm *norm,
                     const paged_kv *kv) {
    if (!rec.capturing) return cpu_backend_ops.rope_store_kv(b, q, k, v, n, heads, kv_heads, head_dim, positions, seq_of,
                                                             inv_freq, norm, kv);
    record(&(recorded_op){.kind = OP_ROPE, .io = q, .out2 = k, .in = v, .n = n, .heads = heads, .kv_heads = kv_heads,
                          .head_dim = head_dim, .ints = positions, .ints2 = seq_of, .f32 = inv_freq, .kv = *kv,
                          .norm = norm ? *norm : (head_norm){0}, .has_norm = norm != NULL});
}

static gale_status rec_attention(backend *b, const void *q, const paged_kv *kv, int n, const int32_t *positions,
                                 const int32_t *seq_of, const attention_params *p, void *out) {
    if (n > rec.scratch_rows) { /* the scratch is reallocated: graphs may hold the old one */
        cr_assert(!rec.capturing, "a recording of %d rows needs more scratch than %d rows: it would allocate", n,
                  rec.scratch_rows);
        if (rec.scratch_rows) rec.epoch++;
        rec.scratch_rows = n;
    }
    if (rec.refuse_padding_steps && seq_of[0] < 0) /* as a device out of memory for the largest step */
        return gale_error(GALE_ERR_OOM, "test recording: no memory for %d padding rows", n);
    if (!rec.capturing) return cpu_backend_ops.attention(b, q, kv, n, positions, seq_of, p, out);
    record(&(recorded_op){.kind = OP_ATTENTION, .in = q, .kv = *kv, .n = n, .ints = positions, .ints2 = seq_of,
                          .attention = *p, .out = out});
    return GALE_OK;
}

static void rec_activation(backend *b, void *gate, const void *up, size_t count, gale_activation act) {
    if (!rec.capturing) return cpu_backend_ops.gated_activation(b, gate, up, count, act);
    record(&(recorded_op){.kind = OP_ACTIVATION, .io = gate, .in = up, .count = count, .act = act});
}

static void rec_softcap(backend *b, void *x, size_t count, float cap) {
    if (!rec.capturing) return cpu_backend_ops.softcap(b, x, count, cap);
    record(&(recorded_op){.kind = OP_SOFTCAP, .io = x, .count = count, .a = cap});
}

static void rec_add(backend *b, void *x, const void *y, size_t count) {
    if (!rec.capturing) return cpu_backend_ops.add(b, x, y, count);
    record(&(recorded_op){.kind = OP_ADD, .io = x, .in = y, .count = count});
}

/* What a GPU cannot record: a copy to the host (it synchronises) breaks the recording. */
static gale_status rec_to_host(backend *b, const void *src, size_t count, float *dst) {
    if (!rec.capturing) return cpu_backend_ops.to_host(b, src, count, dst);
    rec.broken = true;
    return gale_error(GALE_ERR_DEVICE, "test recording: a copy to the host while recording");
}

/* Staged arrays live in the backend's own buffers, as on a GPU: a replay reads the latest. */
static gale_status rec_stage_ints(backend *b, int slot, const int32_t *src, size_t count, const int32_t **out) {
    (void)b;
    cr_assert(!rec.capturing, "integer arrays are staged before a recording, never during one");
    if (count > rec.stage_cap[slot]) {
        if (rec.stage[slot]) rec.epoch++; /* the old buffer is freed: graphs may hold it */
        free(rec.stage[slot]);
        rec.stage[slot] = malloc(count * sizeof *src);
        cr_assert(rec.stage[slot], "out of memory");
        rec.stage_cap[slot] = count;
    }
    memcpy(rec.stage[slot], src, count * sizeof *src);
    *out = rec.stage[slot];
    return GALE_OK;
}

static void rec_release(backend *b, void *p) {
    if (p) rec.epoch++;
    cpu_backend_ops.release(b, p);
}

static gale_status rec_graph_begin(backend *b) {
    (void)b;
    cr_assert(!rec.capturing, "recordings do not nest");
    rec.capturing = true;
    rec.broken = false;
    rec.current = calloc(1, sizeof *rec.current);
    return GALE_OK;
}

static void rec_graph_free(backend *b, void *graph) {
    (void)b;
    recording *r = graph;
    if (r) free(r->ops);
    free(r);
}

static gale_status rec_graph_end(backend *b, void **graph) {
    rec.capturing = false;
    *graph = NULL;
    if (rec.broken) {
        rec_graph_free(b, rec.current);
        return gale_error(GALE_ERR_DEVICE, "test recording: invalidated");
    }
    rec.recordings++;
    const int rows = rec.current->n > 0 ? rec.current->ops[0].n : 0; /* the embedding's rows: the graph's size */
    cr_assert(rows > 0 && rows <= 256, "a recording of %d rows", rows);
    rec.recorded_rows[rows]++;
    *graph = rec.current;
    return GALE_OK;
}

static gale_status rec_graph_launch(backend *b, void *graph) {
    const recording *r = graph;
    const backend_ops *cpu = &cpu_backend_ops;
    rec.launches++;
    for (int i = 0; i < r->n; i++) {
        const recorded_op *o = &r->ops[i];
        switch (o->kind) {
        case OP_EMBED: GALE_TRY(cpu->embed(b, o->w, o->ints, o->n, o->a, o->out)); break;
        case OP_RMSNORM: cpu->rmsnorm(b, o->in, o->n, o->dim, o->f32, o->a, o->b, o->out); break;
        case OP_MATMUL: GALE_TRY(cpu->matmul(b, o->in, o->n, o->w, o->out)); break;
        case OP_ROPE:
            cpu->rope_store_kv(b, o->io, o->out2, o->in, o->n, o->heads, o->kv_heads, o->head_dim, o->ints, o->ints2,
                               o->f32, o->has_norm ? &o->norm : NULL, &o->kv);
            break;
        case OP_ATTENTION: GALE_TRY(cpu->attention(b, o->in, &o->kv, o->n, o->ints, o->ints2, &o->attention, o->out)); break;
        case OP_ACTIVATION: cpu->gated_activation(b, o->io, o->in, o->count, o->act); break;
        case OP_SOFTCAP: cpu->softcap(b, o->io, o->count, o->a); break;
        case OP_ADD: cpu->add(b, o->io, o->in, o->count); break;
        }
    }
    return GALE_OK;
}

static uint64_t rec_epoch(backend *b) {
    (void)b;
    return rec.epoch;
}

/* The CPU's ops with recording on top; ops a decode step does not use stay the CPU's. */
static void use_recording_backend(void) {
    recording_ops = cpu_backend_ops;
    recording_ops.name = "cpu (recording)";
    recording_ops.embed = rec_embed;
    recording_ops.rmsnorm = rec_rmsnorm;
    recording_ops.matmul = rec_matmul;
    recording_ops.rope_store_kv = rec_rope;
    recording_ops.attention = rec_attention;
    recording_ops.gated_activation = rec_activation;
    recording_ops.softcap = rec_softcap;
    recording_ops.add = rec_add;
    recording_ops.to_host = rec_to_host;
    recording_ops.stage_ints = rec_stage_ints;
    recording_ops.release = rec_release;
    recording_ops.graph_begin = rec_graph_begin;
    recording_ops.graph_end = rec_graph_end;
    recording_ops.graph_launch = rec_graph_launch;
    recording_ops.graph_free = rec_graph_free;
    recording_ops.buffers_epoch = rec_epoch;
    runner_use_test_backend(&recording_ops);
}

static gale_session *new_session(const gale_model *m, bool record_steps) {
    runner_use_test_backend(NULL);
    if (record_steps) use_recording_backend();
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = 1;
    gale_session *s = NULL;
    cr_assert_eq(gale_session_new(m, &ep, &s), GALE_OK, "%s", gale_last_error());
    runner_use_test_backend(NULL);
    return s;
}

static const char *const families[] = {"llama", "mistral", "gemma", "gemma2", "gemma3_text"};

ParameterizedTestParameters(graphs, replayed_session_steps_are_bit_identical) { return index_params(5); }
ParameterizedTest(size_t *index, graphs, replayed_session_steps_are_bit_identical) {
    const char *family = families[*index];
    gale_model *m = load_tiny(family);
    const int vocab = gale_model_config(m)->vocab;
    gale_session *replayed = new_session(m, true), *plain = new_session(m, false);
    float *a = malloc((size_t)vocab * sizeof *a), *b = malloc((size_t)vocab * sizeof *b);
    const int32_t prompt[] = {1, 17, 33, 5, 120, 9, 64, 2};
    cr_assert_eq(gale_session_forward(replayed, prompt, 8, false, a), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_forward(plain, prompt, 8, false, b), GALE_OK, "%s", gale_last_error());
    for (int step = 0; step < 40; step++) { /* past the tiny sliding windows */
        const int32_t id = (int32_t)((step * 37 + 11) % vocab);
        cr_assert_eq(gale_session_forward(replayed, &id, 1, false, a), GALE_OK, "%s", gale_last_error());
        cr_assert_eq(gale_session_forward(plain, &id, 1, false, b), GALE_OK, "%s", gale_last_error());
        cr_assert_eq(memcmp(a, b, (size_t)vocab * sizeof *a), 0, "%s step %d: replayed logits differ", family, step);
    }
    cr_assert_eq(rec.recordings, 1, "%s: one graph size recorded once, not %d times", family, rec.recordings);
    cr_assert_eq(rec.launches, 39, "%s: every step after the first replayed (%d replays)", family, rec.launches);
    cr_assert_eq(session_graph_replays(replayed), 39, "%s: the runner counts %llu replays", family,
                 (unsigned long long)session_graph_replays(replayed));
    cr_assert_eq(session_graph_replays(plain), 0, "%s: the plain CPU backend replays nothing", family);
    free(a), free(b);
    gale_session_free(replayed);
    gale_session_free(plain);
    gale_model_free(m);
}

/* The runner prepares its first recording with a step of padding rows; when that step
 * fails, decode steps run op by op — same logits, nothing recorded — instead of failing. */
Test(graphs, a_failed_preparation_falls_back_to_op_by_op) {
    gale_model *m = load_tiny("llama");
    const int vocab = gale_model_config(m)->vocab;
    rec.refuse_padding_steps = true;
    gale_session *replayed = new_session(m, true), *plain = new_session(m, false);
    float *a = malloc((size_t)vocab * sizeof *a), *b = malloc((size_t)vocab * sizeof *b);
    const int32_t prompt[] = {1, 17, 33, 5};
    cr_assert_eq(gale_session_forward(replayed, prompt, 4, false, a), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_forward(plain, prompt, 4, false, b), GALE_OK, "%s", gale_last_error());
    for (int step = 0; step < 6; step++) {
        const int32_t id = (int32_t)(step * 13 + 7);
        cr_assert_eq(gale_session_forward(replayed, &id, 1, false, a), GALE_OK, "step %d: %s", step, gale_last_error());
        cr_assert_eq(gale_session_forward(plain, &id, 1, false, b), GALE_OK, "%s", gale_last_error());
        cr_assert_eq(memcmp(a, b, (size_t)vocab * sizeof *a), 0, "step %d: logits differ from the plain CPU's", step);
    }
    cr_assert_eq(rec.recordings, 0, "nothing recorded (%d)", rec.recordings);
    cr_assert_eq(session_graph_replays(replayed), 0, "nothing replayed");
    free(a), free(b);
    gale_session_free(replayed);
    gale_session_free(plain);
    gale_model_free(m);
}

/* The batching tests' sixteen requests, eight sequences at a time: decode steps of every
 * size from 8 down, recorded at sizes 8, 4, 2 and 1 with padding rows. */
static void check_engine(const char *family, bool expect_replays) {
    gale_model *m = load_tiny(family);
    workload replayed, plain;
    make_workload(&replayed, gale_model_config(m), 12);
    make_workload(&plain, gale_model_config(m), 12);
    use_recording_backend();
    gale_engine *e = new_engine(m, 8, 512, 0);
    runner_use_test_backend(NULL);
    run_workload(e, &replayed, 0, N_REQUESTS, 0);
    gale_engine_free(e);
    const int recordings = rec.recordings, launches = rec.launches;
    e = new_engine(m, 8, 512, 0);
    run_workload(e, &plain, 0, N_REQUESTS, 0);
    gale_engine_free(e);
    assert_same_tokens(&plain, &replayed, family, "with recorded decode steps");
    fprintf(stderr, "%s: %d recordings, %d replays\n", family, recordings, launches);
    if (expect_replays) {
        cr_assert_geq(recordings, 3, "%s: several graph sizes recorded (%d recordings)", family, recordings);
        cr_assert_gt(launches, recordings, "%s: steps replayed (%d)", family, launches);
    } else {
        cr_assert_eq(recordings, 0, "%s: nothing could be recorded", family);
        cr_assert_eq(launches, 0, "%s: nothing replayed", family);
    }
    free_workload(&replayed);
    free_workload(&plain);
    gale_model_free(m);
}

Test(graphs, engine_batches_of_changing_size_replay_with_padding) { check_engine("mistral", true); }

Test(graphs, gemma2_softcaps_replay) { check_engine("gemma2", true); }

Test(graphs, a_recording_that_fails_falls_back_to_op_by_op) { check_engine("mixtral", false); }

/* No graph size was recorded twice, at least `sizes` were recorded, and steps replayed. */
static void assert_each_size_recorded_once(int sizes) {
    int recorded = 0;
    for (int rows = 1; rows <= 256; rows++) {
        cr_assert_leq(rec.recorded_rows[rows], 1, "the graph of %d rows was recorded %d times", rows,
                      rec.recorded_rows[rows]);
        recorded += rec.recorded_rows[rows];
    }
    cr_assert_geq(recorded, sizes, "%d sizes recorded, at least %d expected", recorded, sizes);
    cr_assert_gt(rec.launches, recorded, "steps replayed (%d)", rec.launches);
}

/* One-token prompts, a request joining every other step: steps of 1, 2, 3 … 8 decoding
 * sequences, each recorded size larger than any step before it, then fewer as requests
 * finish (the sizes recorded first come back). */
Test(graphs, growing_batches_record_each_size_once) {
    gale_model *m = load_tiny("llama");
    workload w;
    make_workload(&w, gale_model_config(m), 12);
    for (int i = 0; i < N_REQUESTS; i++) w.n_prompt[i] = 1;
    use_recording_backend();
    gale_engine *e = new_engine(m, 8, 512, 0);
    runner_use_test_backend(NULL);
    run_workload(e, &w, 0, N_REQUESTS, 2);
    gale_engine_free(e);
    assert_each_size_recorded_once(4); /* sizes 1, 2, 4 and 8 */
    free_workload(&w);
    gale_model_free(m);
}

/* Requests whose prompts grow — each prefill longer than any before — joining while others
 * decode. The engine's profile run (runner_reserve) sized every buffer for a step of
 * max_num_batched_tokens at creation — more than the context, as a step may hold several
 * sequences' prefills — so no prefill frees memory a graph holds: each graph size is
 * recorded once, and the tokens are the plain CPU engine's. */
Test(graphs, longer_prompts_later_record_each_size_once) {
    gale_model *m = load_tiny("mistral");
    const gale_config *c = gale_model_config(m);
    workload replayed, plain;
    make_workload(&replayed, c, 12);
    make_workload(&plain, c, 12);
    for (int r = 0; r < N_REQUESTS; r++) {
        const int n = 4 + 6 * r; /* 4, 10, … 94 tokens */
        workload *both[] = {&replayed, &plain};
        for (int k = 0; k < 2; k++) {
            int32_t *p = realloc(both[k]->prompt[r], (size_t)n * sizeof *p);
            cr_assert(p, "out of memory");
            for (int i = 0; i < n; i++) p[i] = (int32_t)((r * 31 + i * 7 + 1) % c->vocab);
            both[k]->prompt[r] = p, both[k]->n_prompt[r] = n;
        }
    }
    use_recording_backend();
    gale_engine *e = new_engine(m, 8, 512, 0);
    runner_use_test_backend(NULL);
    const int n_ctx = engine_default_context(c, 0), largest_step = 512; /* max_num_batched_tokens */
    cr_assert(4 + 6 * (N_REQUESTS - 1) + MAX_OUT <= n_ctx, "the prompts fit the tiny model's %d positions", n_ctx);
    cr_assert_lt(n_ctx, largest_step, "a step may be larger than one sequence's context");
    cr_assert_geq(rec.scratch_rows, largest_step,
                  "the engine's profile run sized the attention scratch for %d rows, not %d", rec.scratch_rows,
                  largest_step);
    run_workload(e, &replayed, 0, N_REQUESTS, 2);
    gale_engine_free(e);
    assert_each_size_recorded_once(3);
    e = new_engine(m, 8, 512, 0);
    run_workload(e, &plain, 0, N_REQUESTS, 2);
    gale_engine_free(e);
    assert_same_tokens(&plain, &replayed, "mistral", "with growing prompts and recorded decode steps");
    free_workload(&replayed);
    free_workload(&plain);
    gale_model_free(m);
}

/* A recording engine whose largest step cannot run (the padding step fails, as a GPU out of
 * memory would) is refused at creation, naming the step, instead of failing mid-serving. */
Test(graphs, an_engine_whose_largest_step_cannot_run_is_refused) {
    gale_model *m = load_tiny("llama");
    rec.refuse_padding_steps = true;
    use_recording_backend();
    gale_engine_params p = gale_engine_params_default();
    p.n_threads = 1, p.max_num_seqs = 8, p.max_num_batched_tokens = 64;
    gale_engine *e = NULL;
    const gale_status status = gale_engine_new(m, NULL, &p, &e);
    runner_use_test_backend(NULL);
    cr_assert_eq(status, GALE_ERR_OOM, "status %d: %s", status, gale_last_error());
    cr_assert_null(e);
    cr_assert(strstr(gale_last_error(), "a step of 64 tokens (max_num_batched_tokens)") &&
                  strstr(gale_last_error(), "no memory for 64 padding rows"),
              "the message names the step and the cause: %s", gale_last_error());
    gale_model_free(m);
}

/* A longer step whose buffers could not all grow (out of device memory partway) leaves
 * some NULL; the next decode step, which a recorded graph would run without regrowing
 * anything, prepares its recording again instead of running on them: the same logits as
 * a session that never failed. */
Test(graphs, a_failed_regrowth_prepares_the_recording_again) {
    gale_model *m = load_tiny("llama");
    const int vocab = gale_model_config(m)->vocab;
    runner_use_test_backend(NULL);
    use_recording_backend();
    recording_ops.alloc = test_failing_alloc; /* when test_alloc_fails_after says */
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = 1;
    gale_session *replayed = NULL;
    cr_assert_eq(gale_session_new(m, &ep, &replayed), GALE_OK, "%s", gale_last_error());
    runner_use_test_backend(NULL);
    gale_session *plain = new_session(m, false);
    float *a = malloc((size_t)vocab * sizeof *a), *b = malloc((size_t)vocab * sizeof *b);
    const int32_t prompt[] = {1, 5, 9, 13}, first = 21, second = 22;
    int32_t longer[40];
    for (int i = 0; i < 40; i++) longer[i] = 2 + i;
    gale_session *both[] = {replayed, plain};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(gale_session_forward(both[k], prompt, 4, false, NULL), GALE_OK, "%s", gale_last_error());
        cr_assert_eq(gale_session_forward(both[k], &first, 1, false, k ? b : a), GALE_OK, "%s", gale_last_error());
    }
    cr_assert_eq(rec.recordings, 1, "the decode step was recorded");
    test_alloc_fails_after = 3; /* the longer step's 4th buffer is refused */
    assert_error(gale_session_forward(replayed, longer, 40, false, a), GALE_ERR_OOM, "refused");
    test_alloc_fails_after = -1;
    cr_assert_eq(gale_session_forward(replayed, &second, 1, false, a), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_session_forward(plain, &second, 1, false, b), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(memcmp(a, b, (size_t)vocab * sizeof *a), 0, "the decode step after the failure differs");
    free(a), free(b);
    gale_session_free(replayed);
    gale_session_free(plain);
    gale_model_free(m);
}
