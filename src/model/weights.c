#include "model/weights.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/log.h"
#include "core/status.h"

/* Multimodal Gemma 3 nests the language model; transformers has saved it under either
 * prefix over time. */
static const char *const model_prefixes[] = {"model.", "language_model.model.", "model.language_model."};
static const char *const lm_head_names[] = {"lm_head.weight", "language_model.lm_head.weight"};

typedef struct binder {
    tensor_table *table;
    const char *prefix; /* of the decoder's tensors: "model." */
    model_weights *dummy_into; /* non-NULL: make up every required tensor (weights_bind_dummy) */
    uint64_t rng;
    float norm_value;
} binder;

/* A bf16 tensor of the given shape as weights_bind_dummy describes, kept in
 * w->synthetic: norm weights hold their constant on the host (the runner reads them
 * there), matrices are left to be filled where they are placed (tensor_is_synthetic). */
static gale_status synthesize(binder *b, int n_dims, const int64_t *shape, const gale_tensor **out, const char *name) {
    model_weights *w = b->dummy_into;
    uint64_t count = 1;
    for (int d = 0; d < n_dims; d++) count *= (uint64_t)shape[d];
    if (w->n_synthetic == w->cap_synthetic) {
        size_t cap = w->cap_synthetic ? 2 * w->cap_synthetic : 64;
        gale_tensor **grown = realloc(w->synthetic, cap * sizeof *grown);
        if (!grown) return gale_error(GALE_ERR_OOM, "dummy weights: out of memory");
        w->synthetic = grown;
        w->cap_synthetic = cap;
    }
    const bool vector = n_dims == 1;
    gale_tensor *t = malloc(sizeof *t + (vector ? count * sizeof(uint16_t) : 0));
    if (!t) return gale_error(GALE_ERR_OOM, "dummy weights: no memory for '%s' (%llu values)", name, (unsigned long long)count);
    *t = (gale_tensor){.dtype = GALE_BF16, .n_dims = n_dims, .nbytes = count * sizeof(uint16_t)};
    for (int d = 0; d < n_dims; d++) t->shape[d] = shape[d];
    if (vector) {
        uint16_t *data = (uint16_t *)(t + 1), one = f32_to_bf16(b->norm_value);
        for (uint64_t i = 0; i < count; i++) data[i] = one;
        t->data = data;
    } else {
        /* uniform in [-a, a] has variance a²/3: a = sqrt(3 / fan_in) for matrices; the
         * embedding table's rows are inputs, not a product: a fixed 0.2 */
        t->fill_amplitude = strstr(name, "embed_tokens") ? 0.2f : sqrtf(3.0f / (float)shape[n_dims - 1]);
        b->rng ^= b->rng << 13, b->rng ^= b->rng >> 7, b->rng ^= b->rng << 17; /* a seed per tensor */
        t->fill_seed = b->rng;
    }
    w->synthetic[w->n_synthetic++] = t;
    *out = t;
    return GALE_OK;
}

/* Looks the tensor up, checks dtype and shape, and marks it bound. A missing optional
 * tensor leaves *out NULL. */
static gale_status bind_tensor(binder *b, bool required, int n_dims, const int64_t *shape,
                               const gale_tensor **out, const char *fmt, ...) GALE_PRINTF(6, 7);

static gale_status bind_tensor(binder *b, bool required, int n_dims, const int64_t *shape,
                               const gale_tensor **out, const char *fmt, ...) {
    char suffix[256], name[320];
    va_list args;
    va_start(args, fmt);
    vsnprintf(suffix, sizeof suffix, fmt, args);
    va_end(args);
    snprintf(name, sizeof name, "%s%s", b->prefix, suffix);
    *out = NULL;
    if (b->dummy_into) return required ? synthesize(b, n_dims, shape, out, name) : GALE_OK;
    tensor_entry *entry = tensor_table_find(b->table, name);
    if (!entry) {
        if (!required) return GALE_OK;
        return gale_error(GALE_ERR_MISSING, "tensor '%s' is missing", name);
    }
    if (entry->unsupported_dtype)
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; weights must be F32, F16, BF16 "
                          "or GGUF blocks", entry->source, name, entry->unsupported_dtype);
    if (!tensor_shape_equals(&entry->tensor, n_dims, shape)) {
        char want[96], got[96];
        return gale_error(GALE_ERR_SHAPE, "%s: tensor '%s' has shape %s, the config implies %s", entry->source, name,
                          tensor_shape_str(entry->tensor.shape, entry->tensor.n_dims, got, sizeof got),
                          tensor_shape_str(shape, n_dims, want, sizeof want));
    }
    entry->bound = true;
    *out = &entry->tensor;
    return GALE_OK;
}

#define SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), ((const int64_t[]){__VA_ARGS__})

static gale_status bind_attention(binder *b, const gale_config *c, int i, layer_weights *l) {
    const int64_t H = c->hidden, q_rows = (int64_t)c->n_heads * c->head_dim;
    const int64_t kv_rows = (int64_t)c->n_kv_heads * c->head_dim, hd = c->head_dim;
    GALE_TRY(bind_tensor(b, true, SHAPE(H), &l->attn_norm, "layers.%d.input_layernorm.weight", i));
    GALE_TRY(bind_tensor(b, true, SHAPE(q_rows, H), &l->wq, "layers.%d.self_attn.q_proj.weight", i));
    GALE_TRY(bind_tensor(b, true, SHAPE(kv_rows, H), &l->wk, "layers.%d.self_attn.k_proj.weight", i));
    GALE_TRY(bind_tensor(b, true, SHAPE(kv_rows, H), &l->wv, "layers.%d.self_attn.v_proj.weight", i));
    GALE_TRY(bind_tensor(b, true, SHAPE(H, q_rows), &l->wo, "layers.%d.self_attn.o_proj.weight", i));
    if (c->qk_norm) {
        GALE_TRY(bind_tensor(b, true, SHAPE(hd), &l->q_norm, "layers.%d.self_attn.q_norm.weight", i));
        GALE_TRY(bind_tensor(b, true, SHAPE(hd), &l->k_norm, "layers.%d.self_attn.k_norm.weight", i));
    }
    if (c->sandwich_norms) {
        GALE_TRY(bind_tensor(b, true, SHAPE(H), &l->post_attn_norm, "layers.%d.post_attention_layernorm.weight", i));
        GALE_TRY(bind_tensor(b, true, SHAPE(H), &l->ffn_norm, "layers.%d.pre_feedforward_layernorm.weight", i));
        GALE_TRY(bind_tensor(b, true, SHAPE(H), &l->post_ffn_norm, "layers.%d.post_feedforward_layernorm.weight", i));
    } else {
        /* Llama naming: post_attention_layernorm is the norm before the MLP */
        GALE_TRY(bind_tensor(b, true, SHAPE(H), &l->ffn_norm, "layers.%d.post_attention_layernorm.weight", i));
    }
    return GALE_OK;
}

/* A view of expert e of a stacked [E, rows, cols] tensor, optionally the row range
 * [row0, row0+rows) of each expert's slab (the fused gate_up_proj holds gate then up). */
static gale_tensor expert_slice(const gale_tensor *stacked, int e, int64_t row0, int64_t rows) {
    const uint64_t slab_bytes = stacked->nbytes / (uint64_t)stacked->shape[0];
    const uint64_t row_bytes = slab_bytes / (uint64_t)stacked->shape[1];
    gale_tensor view = {.dtype = stacked->dtype, .n_dims = 2, .shape = {rows, stacked->shape[2]}};
    view.data = (const uint8_t *)stacked->data + (uint64_t)e * slab_bytes + (uint64_t)row0 * row_bytes;
    view.nbytes = (uint64_t)rows * row_bytes;
    return view;
}

/* Experts come as one tensor per expert (Mixtral checkpoints: w1 gate, w3 up, w2 down),
 * as fused [E, 2I, H] gate_up_proj + [E, H, I] down_proj (newer transformers), or as
 * separate stacks [E, I, H] (GGUF ffn_*_exps). */
static gale_status bind_experts(binder *b, const gale_config *c, int i, layer_weights *l) {
    const int64_t H = c->hidden, I = c->intermediate, E = c->n_experts;
    GALE_TRY(bind_tensor(b, false, SHAPE(E, H), &l->router, "layers.%d.block_sparse_moe.gate.weight", i));
    if (!l->router) GALE_TRY(bind_tensor(b, true, SHAPE(E, H), &l->router, "layers.%d.mlp.gate.weight", i));
    const gale_tensor *fused = NULL, *gate = NULL, *up = NULL, *down = NULL;
    GALE_TRY(bind_tensor(b, false, SHAPE(E, 2 * I, H), &fused, "layers.%d.mlp.experts.gate_up_proj", i));
    if (fused) {
        GALE_TRY(bind_tensor(b, true, SHAPE(E, H, I), &down, "layers.%d.mlp.experts.down_proj", i));
        for (int e = 0; e < E; e++) {
            l->expert_gate[e] = expert_slice(fused, e, 0, I);
            l->expert_up[e] = expert_slice(fused, e, I, I);
            l->expert_down[e] = expert_slice(down, e, 0, H);
        }
        return GALE_OK;
    }
    GALE_TRY(bind_tensor(b, false, SHAPE(E, I, H), &gate, "layers.%d.block_sparse_moe.experts.gate_proj", i));
    if (gate) {
        GALE_TRY(bind_tensor(b, true, SHAPE(E, I, H), &up, "layers.%d.block_sparse_moe.experts.up_proj", i));
        GALE_TRY(bind_tensor(b, true, SHAPE(E, H, I), &down, "layers.%d.block_sparse_moe.experts.down_proj", i));
        for (int e = 0; e < E; e++) {
            l->expert_gate[e] = expert_slice(gate, e, 0, I);
            l->expert_up[e] = expert_slice(up, e, 0, I);
            l->expert_down[e] = expert_slice(down, e, 0, H);
        }
        return GALE_OK;
    }
    for (int e = 0; e < E; e++) {
        GALE_TRY(bind_tensor(b, true, SHAPE(I, H), &gate, "layers.%d.block_sparse_moe.experts.%d.w1.weight", i, e));
        GALE_TRY(bind_tensor(b, true, SHAPE(I, H), &up, "layers.%d.block_sparse_moe.experts.%d.w3.weight", i, e));
        GALE_TRY(bind_tensor(b, true, SHAPE(H, I), &down, "layers.%d.block_sparse_moe.experts.%d.w2.weight", i, e));
        l->expert_gate[e] = *gate;
        l->expert_up[e] = *up;
        l->expert_down[e] = *down;
    }
    return GALE_OK;
}

static gale_status bind_mlp(binder *b, const gale_config *c, int i, layer_weights *l) {
    const int64_t H = c->hidden, I = c->intermediate;
    if (c->n_experts > 0) return bind_experts(b, c, i, l);
    GALE_TRY(bind_tensor(b, true, SHAPE(I, H), &l->w_gate, "layers.%d.mlp.gate_proj.weight", i));
    GALE_TRY(bind_tensor(b, true, SHAPE(I, H), &l->w_up, "layers.%d.mlp.up_proj.weight", i));
    GALE_TRY(bind_tensor(b, true, SHAPE(H, I), &l->w_down, "layers.%d.mlp.down_proj.weight", i));
    return GALE_OK;
}

static const char *find_model_prefix(const tensor_table *table) {
    for (size_t p = 0; p < sizeof model_prefixes / sizeof model_prefixes[0]; p++) {
        char name[128];
        snprintf(name, sizeof name, "%sembed_tokens.weight", model_prefixes[p]);
        if (tensor_table_find(table, name)) return model_prefixes[p];
    }
    return model_prefixes[0];
}

static gale_status bind_head(binder *b, const gale_config *c, model_weights *w) {
    const int64_t V = c->vocab, H = c->hidden;
    GALE_TRY(bind_tensor(b, true, SHAPE(V, H), &w->embed, "embed_tokens.weight"));
    GALE_TRY(bind_tensor(b, true, SHAPE(H), &w->final_norm, "norm.weight"));
    binder top = *b;
    top.prefix = "";
    for (size_t i = 0; i < sizeof lm_head_names / sizeof lm_head_names[0] && !w->lm_head; i++)
        GALE_TRY(bind_tensor(&top, b->dummy_into && !c->tied_embeddings && i == 0, SHAPE(V, H), &w->lm_head, "%s",
                             lm_head_names[i]));
    b->rng = top.rng;
    if (c->tied_embeddings) {
        /* a tied checkpoint may still carry a copy; transformers ignores it, so does gale */
        w->lm_head = w->embed;
    } else if (!w->lm_head) {
        return gale_error(GALE_ERR_MISSING, "tensor 'lm_head.weight' is missing (tie_word_embeddings is false)");
    }
    return GALE_OK;
}

/* Tensors a checkpoint may carry that inference does not use. */
static bool is_known_unused(const char *name) {
    return strstr(name, "rotary_emb.inv_freq") || strncmp(name, "vision_tower.", 13) == 0 ||
           strncmp(name, "model.vision_tower.", 19) == 0 || strncmp(name, "multi_modal_projector.", 22) == 0 ||
           strncmp(name, "model.multi_modal_projector.", 28) == 0 || strcmp(name, "rope_freqs.weight") == 0;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Tensors nothing bound: a bias (attention_bias / mlp_bias checkpoints, or a GGUF's
 * attn_q.bias) changes every output, so the model is refused rather than run without it;
 * anything else is reported and left. */
static gale_status check_unused(const tensor_table *table) {
    size_t unused = 0;
    for (size_t i = 0; i < table->count; i++) {
        const tensor_entry *e = &table->entries[i];
        if (e->bound || is_known_unused(e->name)) continue;
        if (ends_with(e->name, ".bias"))
            return gale_error(GALE_ERR_UNSUPPORTED, "%s: tensor '%s' is a bias, which gale's models do not have",
                              e->source, e->name);
        if (unused < 5) log_warn("%s: tensor '%s' is not used by the model", e->source, e->name);
        unused++;
    }
    if (unused > 5) log_warn("%zu tensors in all are not used by the model", unused);
    return GALE_OK;
}

static gale_status bind_all(const gale_config *c, binder *b, model_weights *w) {
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    size_t n_views = (size_t)c->n_layers * (size_t)c->n_experts * 3;
    w->expert_views = n_views ? calloc(n_views, sizeof *w->expert_views) : NULL;
    if (!w->layers || (n_views && !w->expert_views)) {
        weights_free(w);
        return gale_error(GALE_ERR_OOM, "binding weights: out of memory");
    }
    gale_status status = bind_head(b, c, w);
    for (int i = 0; i < c->n_layers && status == GALE_OK; i++) {
        layer_weights *l = &w->layers[i];
        if (c->n_experts > 0) {
            gale_tensor *views = w->expert_views + (size_t)i * (size_t)c->n_experts * 3;
            l->expert_gate = views;
            l->expert_up = views + c->n_experts;
            l->expert_down = views + 2 * c->n_experts;
        }
        status = bind_attention(b, c, i, l);
        if (status == GALE_OK) status = bind_mlp(b, c, i, l);
    }
    if (status != GALE_OK) weights_free(w);
    return status;
}

gale_status weights_bind(const gale_config *c, tensor_table *table, model_weights *w) {
    memset(w, 0, sizeof *w);
    binder b = {.table = table, .prefix = find_model_prefix(table)};
    GALE_TRY(bind_all(c, &b, w));
    const gale_status status = check_unused(table);
    if (status != GALE_OK) weights_free(w);
    return status;
}

gale_status weights_bind_dummy(const gale_config *c, uint64_t seed, tensor_table *table, model_weights *w) {
    memset(w, 0, sizeof *w);
    binder b = {.table = table,
                .prefix = model_prefixes[0],
                .dummy_into = w,
                .rng = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull,
                .norm_value = 1.0f - c->norm_weight_offset};
    return bind_all(c, &b, w);
}

void weights_free(model_weights *w) {
    free(w->layers);
    free(w->expert_views);
    for (size_t i = 0; i < w->n_synthetic; i++) free(w->synthetic[i]);
    free(w->synthetic);
    memset(w, 0, sizeof *w);
}
