/* Mixtral GGUFs: experts stacked as ffn_{gate,up,down}_exps [E, out, in] (current
 * llama.cpp) or one tensor per expert blk.N.ffn_gate.E.weight (older files). A GGUF is
 * written here from the tiny Mixtral checkpoint transformers saved, the llama.cpp way
 * (Q/K rows permuted for adjacent-pair RoPE), and gale must bind the same experts. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_builder.h"
#include "model/model.h"
#include "test_support.h"

enum { GGML_F32 = 0 };

static const gale_tensor *hf_tensor(const gale_model *hf, const char *fmt, int a, int b) {
    char name[160];
    snprintf(name, sizeof name, fmt, a, b);
    const tensor_entry *e = tensor_table_find(model_get_tensor_table(hf), name);
    cr_assert_not_null(e, "fixture lacks %s", name);
    cr_assert_eq(e->tensor.dtype, GALE_F32);
    return &e->tensor;
}

/* GGUF ne order: innermost first. */
static void add_tensor(gguf_builder *g, const char *name, const gale_tensor *t) {
    uint64_t ne[4];
    for (int d = 0; d < t->n_dims; d++) ne[d] = (uint64_t)t->shape[t->n_dims - 1 - d];
    gb_tensor(g, name, (uint32_t)t->n_dims, ne, GGML_F32, t->data, t->nbytes);
}

/* llama.cpp's converter order: within each head, HF row j·(hd/2) + i goes to row 2i + j. */
static void add_permuted(gguf_builder *g, const char *name, const gale_tensor *t, int n_heads) {
    const int64_t rows = t->shape[0], cols = t->shape[1], hd = rows / n_heads, half = hd / 2;
    float *out = malloc(t->nbytes);
    const float *in = t->data;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < half; i++)
                memcpy(out + (h * hd + 2 * i + j) * cols, in + (h * hd + j * half + i) * cols, (size_t)cols * 4);
    gale_tensor permuted = *t;
    permuted.data = out;
    add_tensor(g, name, &permuted);
    free(out);
}

/* Experts of one kind ("w1", "w3", "w2") of a layer, stacked into one [E, out, in] tensor. */
static void add_stacked(gguf_builder *g, const gale_model *hf, int layer, const char *gguf_kind, const char *hf_kind,
                        int n_experts) {
    char fmt[128], name[64];
    snprintf(fmt, sizeof fmt, "model.layers.%%d.block_sparse_moe.experts.%%d.%s.weight", hf_kind);
    const gale_tensor *e0 = hf_tensor(hf, fmt, layer, 0);
    uint8_t *stack = malloc(e0->nbytes * (size_t)n_experts);
    for (int e = 0; e < n_experts; e++) memcpy(stack + e0->nbytes * (size_t)e, hf_tensor(hf, fmt, layer, e)->data, e0->nbytes);
    gale_tensor stacked = {.dtype = GALE_F32, .n_dims = 3, .shape = {n_experts, e0->shape[0], e0->shape[1]},
                           .data = stack, .nbytes = e0->nbytes * (uint64_t)n_experts};
    snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.weight", layer, gguf_kind);
    add_tensor(g, name, &stacked);
    free(stack);
}

static void add_per_expert(gguf_builder *g, const gale_model *hf, int layer, const char *gguf_kind, const char *hf_kind,
                           int n_experts) {
    char fmt[128], name[64];
    snprintf(fmt, sizeof fmt, "model.layers.%%d.block_sparse_moe.experts.%%d.%s.weight", hf_kind);
    for (int e = 0; e < n_experts; e++) {
        snprintf(name, sizeof name, "blk.%d.ffn_%s.%d.weight", layer, gguf_kind, e);
        add_tensor(g, name, hf_tensor(hf, fmt, layer, e));
    }
}

static void write_mixtral_gguf(const gale_model *hf, bool stacked, const char *path) {
    const gale_config *c = gale_model_config(hf);
    gguf_builder g = {0};
    gb_kv_string(&g, "general.architecture", "llama");
    gb_kv_u32(&g, "llama.block_count", (uint32_t)c->n_layers);
    gb_kv_u32(&g, "llama.embedding_length", (uint32_t)c->hidden);
    gb_kv_u32(&g, "llama.feed_forward_length", (uint32_t)c->intermediate);
    gb_kv_u32(&g, "llama.attention.head_count", (uint32_t)c->n_heads);
    gb_kv_u32(&g, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    gb_kv_u32(&g, "llama.attention.key_length", (uint32_t)c->head_dim);
    gb_kv_u32(&g, "llama.expert_count", (uint32_t)c->n_experts);
    gb_kv_u32(&g, "llama.expert_used_count", (uint32_t)c->n_experts_per_tok);
    gb_kv_u32(&g, "llama.vocab_size", (uint32_t)c->vocab);
    gb_kv_f32(&g, "llama.rope.freq_base", c->layers[0].rope_theta);
    gb_kv_f32(&g, "llama.attention.layer_norm_rms_epsilon", c->rms_norm_eps);
    add_tensor(&g, "token_embd.weight", hf_tensor(hf, "model.embed_tokens.weight", 0, 0));
    add_tensor(&g, "output_norm.weight", hf_tensor(hf, "model.norm.weight", 0, 0));
    add_tensor(&g, "output.weight", hf_tensor(hf, "lm_head.weight", 0, 0));
    for (int l = 0; l < c->n_layers; l++) {
        char name[64];
#define GGUF_NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, l), name)
        add_tensor(&g, GGUF_NAME("attn_norm.weight"), hf_tensor(hf, "model.layers.%d.input_layernorm.weight", l, 0));
        add_tensor(&g, GGUF_NAME("ffn_norm.weight"), hf_tensor(hf, "model.layers.%d.post_attention_layernorm.weight", l, 0));
        add_permuted(&g, GGUF_NAME("attn_q.weight"), hf_tensor(hf, "model.layers.%d.self_attn.q_proj.weight", l, 0), c->n_heads);
        add_permuted(&g, GGUF_NAME("attn_k.weight"), hf_tensor(hf, "model.layers.%d.self_attn.k_proj.weight", l, 0),
                     c->n_kv_heads);
        add_tensor(&g, GGUF_NAME("attn_v.weight"), hf_tensor(hf, "model.layers.%d.self_attn.v_proj.weight", l, 0));
        add_tensor(&g, GGUF_NAME("attn_output.weight"), hf_tensor(hf, "model.layers.%d.self_attn.o_proj.weight", l, 0));
        add_tensor(&g, GGUF_NAME("ffn_gate_inp.weight"), hf_tensor(hf, "model.layers.%d.block_sparse_moe.gate.weight", l, 0));
#undef GGUF_NAME
        static const char *const kinds[3][2] = {{"gate", "w1"}, {"up", "w3"}, {"down", "w2"}};
        for (int k = 0; k < 3; k++) {
            if (stacked) add_stacked(&g, hf, l, kinds[k][0], kinds[k][1], c->n_experts);
            else add_per_expert(&g, hf, l, kinds[k][0], kinds[k][1], c->n_experts);
        }
    }
    byte_buf file = {0};
    gb_finish(&g, &file);
    write_file(path, file.data, file.len);
    bb_free(&file);
    gb_free(&g);
}

static void same_bytes(const gale_tensor *got, const gale_tensor *want, const char *what, int layer, int expert) {
    cr_assert(tensor_shape_equals(got, want->n_dims, want->shape), "%s layer %d expert %d: shape", what, layer, expert);
    cr_assert_eq(got->nbytes, want->nbytes);
    cr_assert_eq(memcmp(got->data, want->data, want->nbytes), 0, "%s layer %d expert %d differs", what, layer, expert);
}

static void check_mixtral_gguf(bool stacked) {
    gale_load_params params = gale_load_params_default();
    params.quiet = true;
    gale_model *hf = NULL, *gg = NULL;
    cr_assert_eq(gale_model_load(fixture("tiny/mixtral"), &params, &hf), GALE_OK, "%s", gale_last_error());
    char *dir = make_temp_dir();
    char path[600];
    snprintf(path, sizeof path, "%s/mixtral.gguf", dir);
    write_mixtral_gguf(hf, stacked, path);
    cr_assert_eq(gale_model_load(path, &params, &gg), GALE_OK, "%s", gale_last_error());
    const gale_config *c = gale_model_config(gg);
    cr_assert_eq(c->arch, GALE_ARCH_MIXTRAL);
    cr_assert_eq(c->n_experts, gale_model_config(hf)->n_experts);
    cr_assert_eq(gale_model_get_stats(gg).n_params, gale_model_get_stats(hf).n_params);
    const model_weights *w = model_get_weights(gg), *ref = model_get_weights(hf);
    for (int l = 0; l < c->n_layers; l++) {
        same_bytes(w->layers[l].wq, ref->layers[l].wq, "q_proj", l, 0);
        same_bytes(w->layers[l].wk, ref->layers[l].wk, "k_proj", l, 0);
        same_bytes(w->layers[l].router, ref->layers[l].router, "router", l, 0);
        for (int e = 0; e < c->n_experts; e++) {
            same_bytes(&w->layers[l].expert_gate[e], &ref->layers[l].expert_gate[e], "gate (w1)", l, e);
            same_bytes(&w->layers[l].expert_up[e], &ref->layers[l].expert_up[e], "up (w3)", l, e);
            same_bytes(&w->layers[l].expert_down[e], &ref->layers[l].expert_down[e], "down (w2)", l, e);
        }
    }
    gale_model_free(gg);
    gale_model_free(hf);
    remove_tree(dir);
    free(dir);
}

Test(gguf_mixtral, stacked_experts) { check_mixtral_gguf(true); }

Test(gguf_mixtral, one_tensor_per_expert) { check_mixtral_gguf(false); }
