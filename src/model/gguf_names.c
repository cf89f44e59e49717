/* GGUF tensors → Hugging Face names, shapes and row order, so that weight binding and
 * everything after it sees one layout whatever the file.
 *
 * llama.cpp's converter permutes the rows of Q and K in llama-architecture files so that
 * RoPE pairs adjacent elements (2i, 2i+1); Hugging Face pairs i with i + head_dim/2.
 * Within each head, HF row j·(hd/2) + i is stored at GGUF row 2i + j. Rows are whole
 * blocks even when quantised, so undoing the permutation is a copy of rows. */
#include "model/gguf_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

typedef struct name_rule {
    const char *gguf;     /* suffix after "blk.N." */
    const char *hf;       /* suffix after "model.layers.N." */
    bool gemma_sandwich;  /* rule differs in Gemma 2/3 files */
} name_rule;

/* In Llama, HF's post_attention_layernorm is the norm before the MLP (GGUF ffn_norm);
 * Gemma 3 GGUFs name its four norms separately. */
static const name_rule layer_rules[] = {
    {"attn_norm.weight", "input_layernorm.weight", false},
    {"attn_q.weight", "self_attn.q_proj.weight", false},
    {"attn_k.weight", "self_attn.k_proj.weight", false},
    {"attn_v.weight", "self_attn.v_proj.weight", false},
    {"attn_output.weight", "self_attn.o_proj.weight", false},
    {"attn_q_norm.weight", "self_attn.q_norm.weight", false},
    {"attn_k_norm.weight", "self_attn.k_norm.weight", false},
    {"ffn_gate.weight", "mlp.gate_proj.weight", false},
    {"ffn_up.weight", "mlp.up_proj.weight", false},
    {"ffn_down.weight", "mlp.down_proj.weight", false},
    {"ffn_gate_inp.weight", "block_sparse_moe.gate.weight", false},
    /* experts stacked as [E, out, in]; gale-internal names, bound by weights.c */
    {"ffn_gate_exps.weight", "block_sparse_moe.experts.gate_proj", false},
    {"ffn_up_exps.weight", "block_sparse_moe.experts.up_proj", false},
    {"ffn_down_exps.weight", "block_sparse_moe.experts.down_proj", false},
    {"ffn_norm.weight", "post_attention_layernorm.weight", false},
    {"ffn_norm.weight", "pre_feedforward_layernorm.weight", true},
    {"post_attention_norm.weight", "post_attention_layernorm.weight", true},
    {"post_ffw_norm.weight", "post_feedforward_layernorm.weight", true},
};

static const struct { const char *gguf, *hf; } global_rules[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
    {"rope_freqs.weight", "rope_freqs.weight"},
};

/* Old Mixtral GGUFs store one tensor per expert: blk.N.ffn_gate.E.weight. */
static bool map_expert_name(const char *rest, int layer, char *out, size_t cap) {
    static const struct { const char *gguf, *hf; } parts[] = {{"ffn_gate.", "w1"}, {"ffn_down.", "w2"}, {"ffn_up.", "w3"}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(parts[i].gguf);
        if (strncmp(rest, parts[i].gguf, n) != 0) continue;
        char *end;
        long expert = strtol(rest + n, &end, 10);
        if (end == rest + n || strcmp(end, ".weight") != 0 || expert < 0) return false;
        snprintf(out, cap, "model.layers.%d.block_sparse_moe.experts.%ld.%s.weight", layer, expert, parts[i].hf);
        return true;
    }
    return false;
}

/* HF name of a GGUF tensor; an unknown name keeps its GGUF name (reported as unused). */
static void map_name(const char *gguf_name, bool sandwich, char *out, size_t cap) {
    for (size_t i = 0; i < sizeof global_rules / sizeof global_rules[0]; i++) {
        if (strcmp(gguf_name, global_rules[i].gguf) == 0) {
            snprintf(out, cap, "%s", global_rules[i].hf);
            return;
        }
    }
    int layer, consumed = 0;
    if (sscanf(gguf_name, "blk.%d.%n", &layer, &consumed) == 1 && consumed > 0 && layer >= 0) {
        const char *rest = gguf_name + consumed;
        for (size_t i = 0; i < sizeof layer_rules / sizeof layer_rules[0]; i++) {
            const name_rule *rule = &layer_rules[i];
            bool applies = strcmp(rest, rule->gguf) == 0 &&
                           (strcmp(rule->gguf, "ffn_norm.weight") != 0 || rule->gemma_sandwich == sandwich);
            if (applies) {
                snprintf(out, cap, "model.layers.%d.%s", layer, rule->hf);
                return;
            }
        }
        if (map_expert_name(rest, layer, out, cap)) return;
    }
    snprintf(out, cap, "%s", gguf_name);
}

static bool is_query_or_key(const char *hf_name, bool *is_key) {
    const char *q = strstr(hf_name, ".self_attn.q_proj.weight");
    const char *k = strstr(hf_name, ".self_attn.k_proj.weight");
    *is_key = k != NULL;
    return q || k;
}

/* Copies tensor rows back into Hugging Face order; the copy is owned by the table. */
static gale_status unpermute_rows(tensor_table *table, const char *name, gale_tensor *t, int n_heads,
                                  const char *source) {
    int64_t rows = t->shape[0];
    if (t->n_dims != 2 || n_heads <= 0 || rows % n_heads != 0 || (rows / n_heads) % 2 != 0)
        return gale_error(GALE_ERR_SHAPE, "%s: tensor '%s': %lld rows cannot be split into %d heads of even size",
                          source, name, (long long)rows, n_heads);
    const int64_t head_dim = rows / n_heads, half = head_dim / 2;
    const uint64_t row_bytes = t->nbytes / (uint64_t)rows;
    uint8_t *copy = malloc(t->nbytes ? t->nbytes : 1);
    if (!copy) return gale_error(GALE_ERR_OOM, "%s: tensor '%s': out of memory", source, name);
    const uint8_t *src = t->data;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < half; i++) {
                int64_t hf_row = h * head_dim + j * half + i;
                int64_t gguf_row = h * head_dim + 2 * i + j;
                memcpy(copy + (uint64_t)hf_row * row_bytes, src + (uint64_t)gguf_row * row_bytes, row_bytes);
            }
    GALE_TRY(tensor_table_own(table, copy));
    t->data = copy;
    return GALE_OK;
}

gale_status gguf_build_tensor_table(const gguf_file *file, const gale_config *config, bool metadata_only,
                                    tensor_table *table) {
    const bool permuted = config->arch == GALE_ARCH_LLAMA || config->arch == GALE_ARCH_MISTRAL ||
                          config->arch == GALE_ARCH_MIXTRAL;
    for (uint64_t i = 0; i < file->n_tensors; i++) {
        const gguf_tensor_info *info = &file->tensors[i];
        char gguf_name[256], hf_name[320];
        if (info->name.len >= sizeof gguf_name)
            return gale_error(GALE_ERR_FORMAT, "%s: tensor name of %llu bytes is too long", file->name,
                              (unsigned long long)info->name.len);
        memcpy(gguf_name, info->name.ptr, info->name.len);
        gguf_name[info->name.len] = '\0';
        map_name(gguf_name, config->sandwich_norms, hf_name, sizeof hf_name);
        gale_tensor t = {.dtype = info->dtype, .n_dims = (int)info->n_dims,
                         .data = gguf_tensor_data(file, info), .nbytes = info->nbytes};
        for (uint32_t d = 0; d < info->n_dims; d++) t.shape[d] = (int64_t)info->ne[info->n_dims - 1 - d];
        bool is_key;
        if (permuted && is_query_or_key(hf_name, &is_key)) {
            if (metadata_only)
                t.data = NULL;
            else
                GALE_TRY(unpermute_rows(table, hf_name, &t, is_key ? config->n_kv_heads : config->n_heads, file->name));
        }
        GALE_TRY(tensor_table_add(table, hf_name, &t, file->name, NULL));
    }
    return tensor_table_finish(table);
}
