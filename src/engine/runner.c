/* The forward pass: one function for every family, the config choosing the switches
 * (norm offset, embedding scale, sandwich norms, q/k norm, softcaps, per-layer window and
 * rope, dense or MoE MLP). It runs over backend ops, for a batch of tokens from several
 * sequences, over the paged KV cache; activations and parameters live in the backend's
 * memory (backend.h) and the runner only hands their pointers to the ops. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#ifdef GALE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "core/log.h"
#include "core/status.h"
#include "engine/runner.h"
#include "model/config.h"
#include "model/model.h"
#include "model/quant.h"

/* Sizes of the recorded decode steps: a step of n sequences replays the smallest that
 * holds it, its extra rows padding (seq_of -1: no KV written, attention zero). */
static const int graph_sizes[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256};
#define N_GRAPH_SIZES ((int)(sizeof graph_sizes / sizeof graph_sizes[0]))

typedef struct layer_norms {
    float *attn, *ffn, *post_attn, *post_ffn, *q, *k; /* fp32 in backend memory; NULL when absent */
} layer_norms;

struct model_runner {
    const gale_model *model;
    const gale_config *c;
    const model_weights *w;  /* the model's, or `mapped` */
    model_weights mapped;    /* weight structs pointing at fp32 copies (prepare_weights) or
                                at the backend's uploads */
    gale_tensor *slots;      /* the mapped tensors */
    bool prepare_fp32;       /* host weights: fp32 copies (prepare_weights, when they fit) */
    size_t n_slots;
    void **owned;            /* host buffers of fp32 copies and filled dummy weights */
    size_t n_owned;
    backend b;
    layer_norms *norms;      /* [n_layers] */
    float *final_norm;       /* [H] */
    float *params;           /* backend memory: every norm weight, then inv_freq */
    float *inv_freq;         /* [n_layers, head_dim/2], in params */
    /* activations in backend memory for cap_tokens tokens, regrown on demand */
    int cap_tokens, cap_logits;
    void *x, *h, *q, *k, *v, *attn, *gate, *up, *tmp;
    moe_scratch moe;         /* Mixtral's routing and expert buffers */
    void *logits;            /* [cap_logits, vocab] */
    int cap_tables;
    int32_t *tables;         /* host [n_groups, n_seqs, stride] block tables for the batch */
    /* decode steps recorded as backend graphs (CUDA graphs), one per size in graph_sizes */
    bool graphs_on;          /* the backend records, enforce_eager is off, no recording failed */
    bool graph_ready;        /* buffers grown once for the largest recorded size */
    int graph_max;           /* the largest graph size ≤ max_num_seqs */
    int n_ctx;               /* the context: recorded steps' block tables have its blocks */
    void *graphs[N_GRAPH_SIZES];
    uint64_t graph_epoch[N_GRAPH_SIZES]; /* the backend's buffers_epoch when recorded */
    int32_t *pad;            /* host [3, graph_max]: a recorded step's ids, positions, seq_of */
    uint64_t replays;        /* decode steps run as a replayed graph */
};

/* ---- set-up ---- */

static gale_status copy_norm(const gale_tensor *t, float **cursor, float **out) {
    *out = NULL;
    if (!t) return GALE_OK;
    *out = *cursor;
    *cursor += tensor_numel(t);
    return tensor_to_f32(t, *out);
}

/* Norm weights and rotary frequencies as fp32, in one backend buffer. */
static gale_status upload_params(model_runner *s) {
    const gale_config *c = s->c;
    const model_weights *w = s->w;
    const int half = c->head_dim / 2;
    size_t total = (size_t)c->hidden;
    for (int l = 0; l < c->n_layers; l++) {
        const layer_weights *lw = &w->layers[l];
        const gale_tensor *all[] = {lw->attn_norm, lw->ffn_norm, lw->post_attn_norm, lw->post_ffn_norm, lw->q_norm, lw->k_norm};
        for (size_t i = 0; i < 6; i++) total += all[i] ? tensor_numel(all[i]) : 0;
    }
    size_t norms_total = total;
    total += (size_t)c->n_layers * (size_t)half;
    float *host = malloc(total * sizeof *host);
    s->norms = calloc((size_t)c->n_layers, sizeof *s->norms);
    if (!host || !s->norms) {
        free(host);
        return gale_error(GALE_ERR_OOM, "engine: out of memory");
    }
    float *cursor = host;
    gale_status status = copy_norm(w->final_norm, &cursor, &s->final_norm);
    for (int l = 0; status == GALE_OK && l < c->n_layers; l++) {
        const layer_weights *lw = &w->layers[l];
        layer_norms *n = &s->norms[l];
        const gale_tensor *sources[] = {lw->attn_norm, lw->ffn_norm, lw->post_attn_norm, lw->post_ffn_norm, lw->q_norm, lw->k_norm};
        float **targets[] = {&n->attn, &n->ffn, &n->post_attn, &n->post_ffn, &n->q, &n->k};
        for (int i = 0; status == GALE_OK && i < 6; i++) status = copy_norm(sources[i], &cursor, targets[i]);
    }
    for (int l = 0; status == GALE_OK && l < c->n_layers; l++) config_rope_inv_freq(c, l, host + norms_total + (size_t)l * half);
    if (status == GALE_OK) status = s->b.ops->alloc(&s->b, total * sizeof(float), (void **)&s->params);
    if (status == GALE_OK) status = s->b.ops->upload(&s->b, s->params, host, total * sizeof(float));
    if (status == GALE_OK) {
        /* the same offsets in backend memory */
#define REBASE(p) ((p) = (p) ? s->params + ((p) - host) : NULL)
        REBASE(s->final_norm);
        for (int l = 0; l < c->n_layers; l++) {
            layer_norms *n = &s->norms[l];
            REBASE(n->attn), REBASE(n->ffn), REBASE(n->post_attn), REBASE(n->post_ffn), REBASE(n->q), REBASE(n->k);
        }
#undef REBASE
        s->inv_freq = s->params + norms_total;
    }
    free(host);
    return status;
}

/* ---- weights the backend reads: as loaded (CPU default), fp32 copies (prepare_weights:
 * decode reads them straight instead of dequantising every row; same values, 4 bytes a
 * parameter) or the backend's uploads (a device backend). ---- */

typedef gale_status (*weight_mapper)(model_runner *s, gale_tensor *slot);

static gale_status fp32_copy(model_runner *s, gale_tensor *slot) {
    if (slot->dtype == GALE_F32 && ((uintptr_t)slot->data % sizeof(float)) == 0) return GALE_OK;
    uint64_t n = tensor_numel(slot);
    float *buf = malloc(n * sizeof *buf);
    if (!buf) return gale_error(GALE_ERR_OOM, "engine: out of memory preparing weights");
    s->owned[s->n_owned++] = buf;
    GALE_TRY(tensor_to_f32(slot, buf));
    slot->dtype = GALE_F32;
    slot->data = buf;
    slot->nbytes = n * sizeof *buf;
    return GALE_OK;
}

/* Host weights: dummy matrices filled, then fp32 copies when asked for. */
static gale_status host_weight(model_runner *s, gale_tensor *slot) {
    if (tensor_is_synthetic(slot)) {
        uint16_t *bf16 = malloc(slot->nbytes);
        if (!bf16) return gale_error(GALE_ERR_OOM, "engine: out of memory filling dummy weights");
        tensor_fill_host(slot, bf16);
        slot->data = bf16;
        slot->fill_amplitude = 0;
        if (!s->prepare_fp32) {
            s->owned[s->n_owned++] = bf16;
            return GALE_OK;
        }
        gale_status status = fp32_copy(s, slot);
        free(bf16);
        return status;
    }
    return s->prepare_fp32 ? fp32_copy(s, slot) : GALE_OK;
}

static gale_status upload(model_runner *s, gale_tensor *slot) {
    gale_tensor host = *slot;
    return s->b.ops->upload_weight(&s->b, &host, slot);
}

/* fp32 copies take 4 bytes a parameter: only when they fit in half of the memory (a 7B
 * model's 29 GB would not); otherwise weights stay as loaded and rows are dequantised
 * on the fly. */
static bool prepared_weights_fit(model_runner *s) {
    uint64_t params = gale_model_get_stats(s->model).n_params;
    return params * 4 < (uint64_t)s->b.ops->memory_size(&s->b) / 2;
}

/* One tensor into the next slot. */
static gale_status map_one(model_runner *s, weight_mapper fn, const gale_tensor **field) {
    if (!*field) return GALE_OK;
    gale_tensor *slot = &s->slots[s->n_slots];
    *slot = **field;
    GALE_TRY(fn(s, slot));
    s->n_slots++;
    *field = slot;
    return GALE_OK;
}

/* A copy of the weight structs whose tensors went through fn. */
static gale_status map_weights(model_runner *s, weight_mapper fn) {
    const gale_config *c = s->c;
    const model_weights *w = s->w;
    size_t per_layer = 8 + 3 * (size_t)c->n_experts, total = (size_t)c->n_layers * per_layer + 2;
    s->owned = calloc(total, sizeof *s->owned);
    s->slots = calloc(total, sizeof *s->slots);
    layer_weights *layers = calloc((size_t)c->n_layers, sizeof *layers);
    if (!s->owned || !s->slots || !layers) {
        free(layers);
        return gale_error(GALE_ERR_OOM, "engine: out of memory mapping weights");
    }
    s->mapped = *w;
    s->mapped.layers = layers;
    s->mapped.expert_views = NULL;
    s->w = &s->mapped; /* from here on freed with the runner */
    GALE_TRY(map_one(s, fn, &s->mapped.embed));
    if (w->lm_head == w->embed) s->mapped.lm_head = s->mapped.embed; /* tied: one copy */
    else GALE_TRY(map_one(s, fn, &s->mapped.lm_head));
    for (int l = 0; l < c->n_layers; l++) {
        layers[l] = w->layers[l];
        layer_weights *lw = &layers[l];
        const gale_tensor **fields[] = {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w_gate, &lw->w_up, &lw->w_down, &lw->router};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) GALE_TRY(map_one(s, fn, fields[i]));
        if (c->n_experts > 0) {
            gale_tensor *views = &s->slots[s->n_slots];
            for (int e = 0; e < c->n_experts; e++) {
                views[e] = lw->expert_gate[e];
                views[c->n_experts + e] = lw->expert_up[e];
                views[2 * c->n_experts + e] = lw->expert_down[e];
            }
            for (int k = 0; k < 3 * c->n_experts; k++, s->n_slots++) GALE_TRY(fn(s, &views[k]));
            lw->expert_gate = views;
            lw->expert_up = views + c->n_experts;
            lw->expert_down = views + 2 * c->n_experts;
        }
    }
    return GALE_OK;
}

/* Backend buffer *buf of `count` activation values, regrown (contents dropped) when short. */
static gale_status regrow(model_runner *s, void **buf, size_t count) {
    if (*buf) s->b.ops->release(&s->b, *buf);
    *buf = NULL;
    return s->b.ops->alloc(&s->b, count * s->b.ops->act_size, buf);
}

static gale_status grow_scratch(model_runner *s, int n, int n_logits) {
    const gale_config *c = s->c;
    if (n > s->cap_tokens) {
        size_t H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
        size_t I = (size_t)c->intermediate, wide = H > qd ? H : qd;
        void **bufs[] = {&s->x, &s->h, &s->q, &s->k, &s->v, &s->attn, &s->gate, &s->up, &s->tmp};
        size_t sizes[] = {H, wide, qd, kvd, kvd, qd, I, I, wide};
        s->cap_tokens = 0; /* until every buffer is regrown: a failure leaves some NULL or short */
        s->graph_ready = false; /* and the recorded steps, which never regrow, must prepare again */
        for (size_t i = 0; i < 9; i++) GALE_TRY(regrow(s, bufs[i], (size_t)n * sizes[i]));
        s->cap_tokens = n;
    }
    if (n_logits > s->cap_logits) {
        s->cap_logits = 0;
        s->graph_ready = false;
        GALE_TRY(regrow(s, &s->logits, (size_t)n_logits * (size_t)c->vocab));
        s->cap_logits = n_logits;
    }
    return GALE_OK;
}

/* runner_use_test_backend */
static const backend_ops *runner_test_ops;

void runner_use_test_backend(const struct backend_ops *ops) { runner_test_ops = ops; }

/* Weights stay in host memory as loaded: the CPU backend, or a test's wrapper of it. */
static bool on_host(const backend *b) { return b->ops == &cpu_backend_ops || b->ops == runner_test_ops; }

gale_status runner_create(const gale_model *model, const gale_engine_params *params, model_runner **out) {
    if (!model || !out) return gale_error(GALE_ERR_INVALID_ARG, "runner: model and out are required");
    *out = NULL;
    gale_engine_params defaults = gale_engine_params_default();
    if (!params) params = &defaults;
    if (params->n_threads < 0) return gale_error(GALE_ERR_INVALID_ARG, "engine: n_threads must not be negative");
    const gale_config *config = gale_model_config(model);
    if (config->n_experts > 1024 || config->n_experts_per_tok > 64)
        return gale_error(GALE_ERR_UNSUPPORTED, "engine: %d experts, %d per token: at most 1024 and 64",
                          config->n_experts, config->n_experts_per_tok);
    if (config->head_dim > 1024)
        return gale_error(GALE_ERR_UNSUPPORTED, "engine: head_dim %d is above 1024", config->head_dim);
    const tensor_table *table = model_get_tensor_table(model);
    for (size_t i = 0; i < table->count; i++)
        if (table->entries[i].bound && !table->entries[i].tensor.data)
            return gale_error(GALE_ERR_INVALID_ARG, "engine: tensor '%s' has no data (the model was loaded metadata-only)",
                              table->entries[i].name);
    model_runner *s = calloc(1, sizeof *s);
    if (!s) return gale_error(GALE_ERR_OOM, "engine: out of memory");
    s->model = model;
    s->c = config;
    s->w = model_get_weights(model);
    s->b.ops = runner_test_ops ? runner_test_ops : &cpu_backend_ops;
    gale_status status = thread_pool_create(params->n_threads, &s->b.pool);
    if (status == GALE_OK && params->device == GALE_DEVICE_CUDA) {
#ifdef GALE_HAVE_CUDA
        status = cuda_backend_open(&s->b);
#else
        status = gale_error(GALE_ERR_UNSUPPORTED, "engine: this build of gale has no CUDA (GALE_CUDA=OFF)");
#endif
    }
    s->n_ctx = engine_default_context(config, params->n_ctx);
    s->graphs_on = s->b.ops->graph_begin != NULL && !params->enforce_eager;
    for (int i = 0; i < N_GRAPH_SIZES && graph_sizes[i] <= (params->max_num_seqs > 0 ? params->max_num_seqs : 1); i++)
        s->graph_max = graph_sizes[i];
    if (status == GALE_OK) status = upload_params(s);
    const bool synthetic = s->w->n_synthetic > 0; /* dummy weights, to be filled */
    if (status == GALE_OK && !on_host(&s->b)) {
        status = map_weights(s, upload);
    } else if (status == GALE_OK) {
        s->prepare_fp32 = params->prepare_weights && prepared_weights_fit(s);
        if (synthetic || s->prepare_fp32) status = map_weights(s, host_weight);
    }
    if (status != GALE_OK) {
        runner_free(s);
        return status;
    }
    *out = s;
    return GALE_OK;
}

void runner_free(model_runner *s) {
    if (!s) return;
    backend *b = &s->b;
    for (int i = 0; i < N_GRAPH_SIZES; i++)
        if (s->graphs[i]) b->ops->graph_free(b, s->graphs[i]);
    free(s->pad);
    backend_moe_free(b, &s->moe);
    void *bufs[] = {s->x, s->h, s->q, s->k, s->v, s->attn, s->gate, s->up, s->tmp, s->logits, s->params};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) b->ops->release(b, bufs[i]);
    if (!on_host(b))
        for (size_t i = 0; i < s->n_slots; i++) b->ops->release_weight(b, &s->slots[i]);
    for (size_t i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    free(s->slots);
    if (s->w == &s->mapped) free(s->mapped.layers);
    thread_pool_destroy(b->pool);
#ifdef GALE_HAVE_CUDA
    if (b->ops == &cuda_backend_ops) cuda_backend_close(b);
#endif
    free(s->norms);
    free(s->tables);
    free(s);
}

backend *runner_backend(model_runner *s) { return &s->b; }
uint64_t runner_graph_replays(const model_runner *s) { return s->replays; }

/* ---- the forward ---- */

/* Where the batch's keys and values go: the layers' pools and, per group, the block
 * tables of the batch's sequences side by side. */
typedef struct batch_kv {
    kv_cache *cache;
    const int32_t *tables; /* [n_groups, n_seqs, stride] */
    int n_seqs, stride;
    const int32_t *positions, *seq_of;
} batch_kv;

/* x += delta (the last block's output, NULL for none), then out = norm(x) with w: one
 * fused op where the backend has it. */
static void residual_norm(model_runner *s, const void *delta, int n, const float *w, void *out) {
    const gale_config *c = s->c;
    const backend_ops *ops = s->b.ops;
    const int H = c->hidden;
    if (delta && ops->add_rmsnorm) {
        ops->add_rmsnorm(&s->b, s->x, delta, n, H, w, c->norm_weight_offset, c->rms_norm_eps, out);
        return;
    }
    if (delta) ops->add(&s->b, s->x, delta, (size_t)n * H);
    ops->rmsnorm(&s->b, s->x, n, H, w, c->norm_weight_offset, c->rms_norm_eps, out);
}

/* The attention half of layer l: x += pending, then its output (post-norm applied) in
 * s->tmp, for the MLP half to add. */
static gale_status attention_block(model_runner *s, int l, int n, const batch_kv *kv, const void *pending) {
    const gale_config *c = s->c;
    const layer_weights *lw = &s->w->layers[l];
    const layer_norms *norms = &s->norms[l];
    const backend_ops *ops = s->b.ops;
    const int H = c->hidden, hd = c->head_dim, half = hd / 2;
    residual_norm(s, pending, n, norms->attn, s->h);
    GALE_TRY(ops->matmul(&s->b, s->h, n, lw->wq, s->q));
    GALE_TRY(ops->matmul(&s->b, s->h, n, lw->wk, s->k));
    GALE_TRY(ops->matmul(&s->b, s->h, n, lw->wv, s->v));
    const head_norm qk_norm = {.q_weight = norms->q, .k_weight = norms->k, .offset = c->norm_weight_offset,
                               .eps = c->rms_norm_eps};
    const float *inv_freq = s->inv_freq + (size_t)l * half;
    int group = kv->cache->layer_group[l];
    paged_kv layer_kv = {.keys = kv->cache->keys[l],
                         .values = kv->cache->values[l],
                         .block_size = kv->cache->block_size,
                         .kv_dim = kv->cache->kv_dim,
                         .block_tables = kv->tables + (size_t)group * kv->n_seqs * kv->stride,
                         .table_stride = kv->stride};
    ops->rope_store_kv(&s->b, s->q, s->k, s->v, n, c->n_heads, c->n_kv_heads, hd, kv->positions, kv->seq_of, inv_freq,
                       c->qk_norm ? &qk_norm : NULL, &layer_kv);
    attention_params p = {.n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = hd, .scale = c->attn_scale,
                          .softcap = c->attn_softcap, .window = c->layers[l].window, .max_context = s->n_ctx};
    GALE_TRY(ops->attention(&s->b, s->q, &layer_kv, n, kv->positions, kv->seq_of, &p, s->attn));
    GALE_TRY(ops->matmul(&s->b, s->attn, n, lw->wo, s->tmp));
    if (norms->post_attn) ops->rmsnorm(&s->b, s->tmp, n, H, norms->post_attn, c->norm_weight_offset, c->rms_norm_eps, s->tmp);
    return GALE_OK;
}

/* The MLP half of layer l: x += the attention's output, then its own output in s->tmp. */
static gale_status mlp_block(model_runner *s, int l, int n, const batch_kv *kv) {
    const gale_config *c = s->c;
    const layer_weights *lw = &s->w->layers[l];
    const layer_norms *norms = &s->norms[l];
    const backend_ops *ops = s->b.ops;
    const int H = c->hidden;
    residual_norm(s, s->tmp, n, norms->ffn, s->h);
    if (c->n_experts > 0) {
        moe_weights experts = {.router = lw->router,
                               .gate = lw->expert_gate,
                               .up = lw->expert_up,
                               .down = lw->expert_down,
                               .n_experts = c->n_experts,
                               .top_k = c->n_experts_per_tok,
                               .hidden = H,
                               .intermediate = c->intermediate,
                               .act = c->activation};
        if (ops->moe) GALE_TRY(ops->moe(&s->b, s->h, n, kv->seq_of, &experts, s->tmp));
        else GALE_TRY(backend_moe(&s->b, s->h, n, &experts, &s->moe, s->tmp));
    } else {
        GALE_TRY(backend_gated_mlp(&s->b, lw->w_gate, lw->w_up, lw->w_down, c->activation, c->intermediate, s->h, n,
                                   s->gate, s->up, s->tmp));
    }
    if (norms->post_ffn) ops->rmsnorm(&s->b, s->tmp, n, H, norms->post_ffn, c->norm_weight_offset, c->rms_norm_eps, s->tmp);
    return GALE_OK;
}

/* Every position a token writes or reads must sit in a block its sequence holds. */
static gale_status check_batch(const kv_cache *cache, const runner_batch *batch, int vocab) {
    for (int i = 0; i < batch->n_tokens; i++) {
        int seq = batch->seq_of[i], pos = batch->positions[i];
        if (seq < 0 || seq >= batch->n_seqs || pos < 0)
            return gale_error(GALE_ERR_INVALID_ARG, "forward: token %d names sequence %d at position %d", i, seq, pos);
        const kv_seq *q = batch->seqs[seq];
        if (pos >= q->n_logical * cache->block_size)
            return gale_error(GALE_ERR_INVALID_ARG, "forward: position %d of sequence %d has no KV block reserved", pos, seq);
        for (int g = 0; g < cache->n_groups; g++) {
            int first = kv_first_visible(cache->groups[g].window, pos);
            if (q->tables[g][first / cache->block_size] < 0 || q->tables[g][pos / cache->block_size] < 0)
                return gale_error(GALE_ERR_INVALID_ARG, "forward: position %d of sequence %d sees a released block", pos, seq);
        }
        if (batch->ids[i] < 0 || batch->ids[i] >= vocab)
            return gale_error(GALE_ERR_INVALID_ARG, "forward: token id %d is outside the vocabulary (%d)", batch->ids[i], vocab);
    }
    for (int i = 0; i < batch->n_logits; i++)
        if (batch->logit_rows[i] < 0 || batch->logit_rows[i] >= batch->n_tokens)
            return gale_error(GALE_ERR_INVALID_ARG, "forward: logits asked for token %d of %d", batch->logit_rows[i],
                              batch->n_tokens);
    return GALE_OK;
}

/* The longest table of the batch's sequences: the eager step's stride. */
static int batch_table_stride(const runner_batch *batch) {
    int stride = 1;
    for (int q = 0; q < batch->n_seqs; q++) stride = batch->seqs[q]->n_logical > stride ? batch->seqs[q]->n_logical : stride;
    return stride;
}

/* s->tables = per group, rows of `stride` block ids: the n_seqs sequences' tables, then
 * -1 up to n_rows rows (a recorded step's padding), each row padded with -1. */
static gale_status gather_tables(model_runner *s, const kv_cache *cache, kv_seq *const *seqs, int n_seqs, int n_rows,
                                 int stride) {
    int need = cache->n_groups * n_rows * stride;
    if (need > s->cap_tables) {
        int32_t *grown = realloc(s->tables, (size_t)need * sizeof *grown);
        if (!grown) return gale_error(GALE_ERR_OOM, "forward: out of memory for block tables");
        s->tables = grown;
        s->cap_tables = need;
    }
    for (int g = 0; g < cache->n_groups; g++)
        for (int q = 0; q < n_rows; q++) {
            int32_t *row = s->tables + ((size_t)g * n_rows + q) * stride;
            const int logical = q < n_seqs ? seqs[q]->n_logical : 0;
            if (logical) memcpy(row, seqs[q]->tables[g], (size_t)logical * sizeof *row);
            for (int j = logical; j < stride; j++) row[j] = -1;
        }
    return GALE_OK;
}

/* Staging slots of the forward's integer arrays (backend.h: stage_ints) */
enum { STAGE_IDS, STAGE_POSITIONS, STAGE_SEQ_OF, STAGE_TABLES };

/* n tokens' ids, positions and seq_of, and the block tables (gather_tables: n_rows rows of
 * `stride`, the first n_seqs those of seqs) staged in backend memory: *staged_ids and *kv
 * point at them. */
static gale_status stage_batch(model_runner *s, kv_cache *cache, const int32_t *ids, const int32_t *positions,
                               const int32_t *seq_of, int n, kv_seq *const *seqs, int n_seqs, int n_rows, int stride,
                               const int32_t **staged_ids, batch_kv *kv) {
    const backend_ops *ops = s->b.ops;
    GALE_TRY(gather_tables(s, cache, seqs, n_seqs, n_rows, stride));
    const int32_t *staged_positions, *staged_seq_of, *staged_tables;
    GALE_TRY(ops->stage_ints(&s->b, STAGE_IDS, ids, (size_t)n, staged_ids));
    GALE_TRY(ops->stage_ints(&s->b, STAGE_POSITIONS, positions, (size_t)n, &staged_positions));
    GALE_TRY(ops->stage_ints(&s->b, STAGE_SEQ_OF, seq_of, (size_t)n, &staged_seq_of));
    GALE_TRY(ops->stage_ints(&s->b, STAGE_TABLES, s->tables, (size_t)cache->n_groups * n_rows * stride, &staged_tables));
    *kv = (batch_kv){cache, staged_tables, n_rows, stride, staged_positions, staged_seq_of};
    return GALE_OK;
}

/* Embedding, layers, final norm, lm_head and softcap over n staged tokens; the logits of
 * `rows` of them land in s->logits: the tokens at logit_rows (host), or with logit_rows
 * NULL the first `rows` (a decode step: every token's). Only backend ops: a graph can
 * record it. */
static gale_status run_model(model_runner *s, int n, const int32_t *ids, const batch_kv *kv, const int32_t *logit_rows,
                             int rows) {
    const gale_config *c = s->c;
    const backend_ops *ops = s->b.ops;
    const int H = c->hidden;
    /* Gemma scales embeddings by sqrt(H) in the activation dtype */
    float scale = c->embed_scale_sqrt_hidden ? (float)sqrt((double)H) : 1.0f;
    GALE_TRY(ops->embed(&s->b, s->w->embed, ids, n, scale, s->x));
    for (int l = 0; l < c->n_layers; l++) {
        GALE_TRY(attention_block(s, l, n, kv, l > 0 ? s->tmp : NULL));
        GALE_TRY(mlp_block(s, l, n, kv));
    }
    if (rows == 0) return GALE_OK;
    /* the last MLP's output (s->tmp) joins the residual stream before the final norm */
    if (logit_rows) {
        ops->add(&s->b, s->x, s->tmp, (size_t)n * H);
        GALE_TRY(ops->gather_rows(&s->b, s->tmp, s->x, logit_rows, rows, H));
        ops->rmsnorm(&s->b, s->tmp, rows, H, s->final_norm, c->norm_weight_offset, c->rms_norm_eps, s->h);
    } else {
        residual_norm(s, s->tmp, rows, s->final_norm, s->h);
    }
    GALE_TRY(ops->matmul(&s->b, s->h, rows, s->w->lm_head, s->logits));
    if (c->final_softcap > 0) ops->softcap(&s->b, s->logits, (size_t)rows * c->vocab, c->final_softcap);
    return GALE_OK;
}

/* Every sequence of the batch has one token, whose logits are wanted, in order. */
static bool is_decode_step(const runner_batch *batch) {
    if (batch->n_tokens != batch->n_seqs || batch->n_logits != batch->n_tokens) return false;
    for (int i = 0; i < batch->n_tokens; i++)
        if (batch->seq_of[i] != i || batch->logit_rows[i] != i) return false;
    return true;
}

/* The recorded steps' block-table stride: the context's blocks. */
static int recorded_stride(const model_runner *s, const kv_cache *cache) {
    return (s->n_ctx + cache->block_size - 1) / cache->block_size;
}

/* Once: every buffer a step can use grown by one step of padding tokens (seq_of −1: they
 * store and attend to nothing), run op by op — max(max_tokens, seqs) of them, the logits
 * and block tables of seqs = max(max_seqs, graph_max) rows. That sizes the runner's
 * activations and the backend's per-step scratch (attention plans and partials, MoE
 * routing and expert activations), which grows only as ops run; without it each new
 * size's first step would grow that scratch, free what recorded graphs hold, and make
 * every graph recorded before it record again. */
static gale_status prepare_recording(model_runner *s, kv_cache *cache, int max_tokens, int max_seqs) {
    const int seqs = max_seqs > s->graph_max ? max_seqs : s->graph_max;
    const int rows = max_tokens > seqs ? max_tokens : seqs;
    if (!s->pad && !(s->pad = calloc(3 * (size_t)s->graph_max, sizeof *s->pad)))
        return gale_error(GALE_ERR_OOM, "forward: out of memory");
    GALE_TRY(grow_scratch(s, rows, seqs));
    int32_t *pad = calloc(3 * (size_t)rows, sizeof *pad);
    if (!pad) return gale_error(GALE_ERR_OOM, "forward: out of memory for %d padding tokens", rows);
    int32_t *ids = pad, *positions = pad + rows, *seq_of = positions + rows;
    for (int i = 0; i < rows; i++) seq_of[i] = -1;
    const int32_t *staged;
    batch_kv kv;
    gale_status status =
        stage_batch(s, cache, ids, positions, seq_of, rows, NULL, 0, seqs, recorded_stride(s, cache), &staged, &kv);
    if (status == GALE_OK) status = run_model(s, rows, staged, &kv, NULL, seqs);
    free(pad);
    s->graph_ready = status == GALE_OK;
    return status;
}

gale_status runner_reserve(model_runner *s, kv_cache *cache, int max_tokens, int max_seqs) {
    if (!s || !cache || max_tokens <= 0 || max_seqs <= 0)
        return gale_error(GALE_ERR_INVALID_ARG, "runner_reserve: a runner, a cache and positive sizes are required");
    return s->graphs_on ? prepare_recording(s, cache, max_tokens, max_seqs) : GALE_OK;
}

/* A decode step as a replayed graph: *ran false when it does not fit one (too many
 * sequences, or a table longer than the context's). The first step of a size runs op by
 * op — growing whatever it needs — and is then recorded for the next ones; a recording
 * that fails turns graphs off for this runner, with a warning. */
static gale_status forward_recorded(model_runner *s, kv_cache *cache, const runner_batch *batch, bool *ran) {
    const backend_ops *ops = s->b.ops;
    const int n = batch->n_tokens, stride = recorded_stride(s, cache);
    int k = 0;
    while (k < N_GRAPH_SIZES && graph_sizes[k] < n) k++;
    *ran = false;
    if (k == N_GRAPH_SIZES || graph_sizes[k] > s->graph_max) return GALE_OK;
    for (int q = 0; q < batch->n_seqs; q++)
        if (batch->seqs[q]->n_logical > stride) return GALE_OK;
    if (!s->graph_ready && prepare_recording(s, cache, 1, 1) != GALE_OK) { /* e.g. no memory for the largest size */
        log_warn("decode steps run op by op from here: preparing their recording failed: %s", gale_last_error());
        s->graphs_on = false;
        return GALE_OK;
    }
    const int size = graph_sizes[k];
    int32_t *ids = s->pad, *positions = s->pad + s->graph_max, *seq_of = positions + s->graph_max;
    for (int i = 0; i < size; i++) {
        ids[i] = i < n ? batch->ids[i] : 0;
        positions[i] = i < n ? batch->positions[i] : 0;
        seq_of[i] = i < n ? i : -1;
    }
    const int32_t *d_ids;
    batch_kv kv;
    GALE_TRY(stage_batch(s, cache, ids, positions, seq_of, size, batch->seqs, n, size, stride, &d_ids, &kv));
    *ran = true;
    if (s->graphs[k] && s->graph_epoch[k] == ops->buffers_epoch(&s->b)) {
        GALE_TRY(ops->graph_launch(&s->b, s->graphs[k]));
        s->replays++;
        return GALE_OK;
    }
    if (s->graphs[k]) ops->graph_free(&s->b, s->graphs[k]);
    s->graphs[k] = NULL;
    GALE_TRY(run_model(s, size, d_ids, &kv, NULL, size)); /* this step, op by op */
    gale_status status = ops->graph_begin(&s->b);
    if (status == GALE_OK) {
        gale_status recorded = run_model(s, size, d_ids, &kv, NULL, size);
        char why[256] = "";
        if (recorded != GALE_OK) snprintf(why, sizeof why, "%s", gale_last_error()); /* graph_end's would hide it */
        void *graph = NULL;
        status = ops->graph_end(&s->b, &graph);
        if (recorded != GALE_OK) status = gale_error(recorded, "%s", why);
        if (status == GALE_OK) {
            s->graphs[k] = graph;
            s->graph_epoch[k] = ops->buffers_epoch(&s->b);
        } else if (graph) {
            ops->graph_free(&s->b, graph);
        }
    }
    if (status != GALE_OK) {
        log_warn("decode steps run op by op from here: recording one as a graph failed: %s", gale_last_error());
        s->graphs_on = false;
    }
    return GALE_OK;
}

/* The forward up to the logits of the batch's logit rows, left in s->logits. */
static gale_status forward_logits(model_runner *s, kv_cache *cache, const runner_batch *batch, bool want_logits) {
    if (!s || !cache || !batch || batch->n_tokens <= 0)
        return gale_error(GALE_ERR_INVALID_ARG, "forward: no tokens (empty prompt)");
    const gale_config *c = s->c;
    const int n = batch->n_tokens, rows = want_logits ? batch->n_logits : 0;
    GALE_TRY(check_batch(cache, batch, c->vocab));
    if (want_logits && s->graphs_on && is_decode_step(batch)) {
        bool ran;
        GALE_TRY(forward_recorded(s, cache, batch, &ran));
        if (ran) return GALE_OK;
    }
    GALE_TRY(grow_scratch(s, n, rows));
    const int32_t *ids;
    batch_kv kv;
    GALE_TRY(stage_batch(s, cache, batch->ids, batch->positions, batch->seq_of, n, batch->seqs, batch->n_seqs,
                         batch->n_seqs, batch_table_stride(batch), &ids, &kv));
    return run_model(s, n, ids, &kv, batch->logit_rows, rows);
}

gale_status runner_forward(model_runner *s, kv_cache *cache, const runner_batch *batch, float *logits) {
    GALE_TRY(forward_logits(s, cache, batch, logits != NULL));
    if (!logits || batch->n_logits == 0) return GALE_OK;
    return s->b.ops->to_host(&s->b, s->logits, (size_t)batch->n_logits * s->c->vocab, logits);
}

bool runner_samples_on_device(const model_runner *s) { return s->b.ops->sample != NULL; }

gale_status runner_forward_sample(model_runner *s, kv_cache *cache, const runner_batch *batch, const sample_row *rules,
                                  int32_t *ids) {
    if (!s->b.ops->sample) return gale_error(GALE_ERR_UNSUPPORTED, "forward: the %s backend does not sample", s->b.ops->name);
    GALE_TRY(forward_logits(s, cache, batch, true));
    if (batch->n_logits == 0) return GALE_OK;
    return s->b.ops->sample(&s->b, s->logits, batch->n_logits, s->c->vocab, rules, ids);
}
