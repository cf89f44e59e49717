/* GGUF metadata → gale_config, for the architectures llama.cpp writes as "llama"
 * (Llama, Mistral, Mixtral) and "gemma3". Keys are "{arch}.<name>" (REFERENCE.md §6). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "model/config.h"

typedef struct gguf_scope {
    const gguf_file *file;
    const char *arch; /* key prefix */
} gguf_scope;

static const char *arch_key(const gguf_scope *s, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", s->arch, name);
    return buf;
}

/* An integer key of the architecture; a per-layer array must hold one value for all
 * layers (gale's config has one head count per model). */
static gale_status get_arch_int(const gguf_scope *s, const char *name, bool required, int fallback, int *out) {
    char key[128];
    arch_key(s, name, key, sizeof key);
    const gguf_kv *kv = gguf_find(s->file, key);
    if (!kv) {
        if (required)
            return gale_error(GALE_ERR_MISSING, "%s: metadata key '%s' is missing", s->file->name, key);
        *out = fallback;
        return GALE_OK;
    }
    int64_t value;
    if (kv->type == GGUF_TYPE_ARRAY) {
        if (kv->v.arr.count == 0)
            return gale_error(GALE_ERR_FORMAT, "%s: metadata key '%s' is an empty array", s->file->name, key);
        GALE_TRY(gguf_array_get_i64(kv, 0, &value));
        for (uint64_t i = 1; i < kv->v.arr.count; i++) {
            int64_t other;
            GALE_TRY(gguf_array_get_i64(kv, i, &other));
            if (other != value)
                return gale_error(GALE_ERR_UNSUPPORTED, "%s: '%s' differs between layers; gale needs one value",
                                  s->file->name, key);
        }
    } else {
        GALE_TRY(gguf_get_i64(s->file, key, &value));
    }
    if (value < 0 || value > INT32_MAX)
        return gale_error(GALE_ERR_FORMAT, "%s: metadata key '%s' = %lld is out of range", s->file->name, key,
                          (long long)value);
    *out = (int)value;
    return GALE_OK;
}

static gale_status get_arch_float(const gguf_scope *s, const char *name, float fallback, float *out) {
    char key[128];
    arch_key(s, name, key, sizeof key);
    if (!gguf_find(s->file, key)) {
        *out = fallback;
        return GALE_OK;
    }
    double value;
    GALE_TRY(gguf_get_f64(s->file, key, &value));
    if (!isfinite(value))
        return gale_error(GALE_ERR_FORMAT, "%s: metadata key '%s' is not finite", s->file->name, key);
    *out = (float)value;
    return GALE_OK;
}

/* rope.scaling.type with its factor; files written before the type key existed (late 2023)
 * hold only a factor, rope.scaling.factor or the older rope.scale_linear, which llama.cpp
 * reads as linear scaling */
static gale_status read_rope_scaling(const gguf_scope *s, gale_rope_scaling *out) {
    memset(out, 0, sizeof *out);
    char key[128];
    arch_key(s, "rope.scaling.type", key, sizeof key);
    if (!gguf_find(s->file, key)) {
        float factor;
        GALE_TRY(get_arch_float(s, "rope.scaling.factor", 0.0f, &factor));
        if (factor == 0.0f) GALE_TRY(get_arch_float(s, "rope.scale_linear", 0.0f, &factor));
        if (factor == 0.0f || factor == 1.0f) return GALE_OK;
        if (!(factor > 0.0f))
            return gale_error(GALE_ERR_FORMAT, "%s: rope scaling factor %g must be positive", s->file->name,
                              (double)factor);
        out->type = GALE_ROPE_SCALING_LINEAR;
        out->factor = factor;
        return GALE_OK;
    }
    gguf_string type;
    GALE_TRY(gguf_get_string(s->file, key, &type));
    if (gguf_string_equals(type, "none")) return GALE_OK;
    if (!gguf_string_equals(type, "linear"))
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: rope scaling type '%.*s' is not supported (none, linear)",
                          s->file->name, (int)type.len, type.ptr);
    out->type = GALE_ROPE_SCALING_LINEAR;
    return get_arch_float(s, "rope.scaling.factor", 1.0f, &out->factor);
}

static gale_status read_vocab_size(const gguf_scope *s, gale_config *c) {
    const gguf_kv *tokens = gguf_find(s->file, "tokenizer.ggml.tokens");
    if (tokens && tokens->type == GGUF_TYPE_ARRAY) {
        c->vocab = tokens->v.arr.count > INT32_MAX ? -1 : (int)tokens->v.arr.count;
        return GALE_OK;
    }
    GALE_TRY(get_arch_int(s, "vocab_size", false, 0, &c->vocab));
    if (c->vocab) return GALE_OK;
    const gguf_tensor_info *embed = gguf_find_tensor(s->file, "token_embd.weight");
    if (!embed || embed->n_dims != 2)
        return gale_error(GALE_ERR_MISSING, "%s: no vocabulary size (tokenizer.ggml.tokens, %s.vocab_size "
                          "or token_embd.weight)", s->file->name, s->arch);
    c->vocab = embed->ne[1] > INT32_MAX ? -1 : (int)embed->ne[1];
    return GALE_OK;
}

static gale_status read_special_ids(const gguf_file *file, gale_config *c) {
    int64_t id;
    c->bos_id = -1;
    if (gguf_find(file, "tokenizer.ggml.bos_token_id")) {
        GALE_TRY(gguf_get_i64(file, "tokenizer.ggml.bos_token_id", &id));
        c->bos_id = (int)id;
    }
    /* eot (end of turn) also stops generation, as llama.cpp treats it */
    const char *const eos_keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"};
    for (size_t i = 0; i < 2; i++) {
        if (!gguf_find(file, eos_keys[i])) continue;
        GALE_TRY(gguf_get_i64(file, eos_keys[i], &id));
        if (id >= 0 && id <= INT32_MAX) config_add_eos(c, (int)id);
    }
    return GALE_OK;
}

static gale_status read_common(const gguf_scope *s, gale_config *c) {
    GALE_TRY(get_arch_int(s, "block_count", true, 0, &c->n_layers));
    GALE_TRY(get_arch_int(s, "embedding_length", true, 0, &c->hidden));
    GALE_TRY(get_arch_int(s, "feed_forward_length", true, 0, &c->intermediate));
    GALE_TRY(get_arch_int(s, "attention.head_count", true, 0, &c->n_heads));
    GALE_TRY(get_arch_int(s, "attention.head_count_kv", false, c->n_heads, &c->n_kv_heads));
    GALE_TRY(get_arch_int(s, "attention.key_length", false, c->n_heads ? c->hidden / c->n_heads : 0,
                          &c->head_dim));
    int rotated;
    GALE_TRY(get_arch_int(s, "rope.dimension_count", false, c->head_dim, &rotated));
    if (rotated != c->head_dim)
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: %s.rope.dimension_count %d: gale rotates the whole head (%d)",
                          s->file->name, s->arch, rotated, c->head_dim);
    GALE_TRY(get_arch_int(s, "context_length", false, 2048, &c->max_position_embeddings));
    GALE_TRY(get_arch_float(s, "attention.layer_norm_rms_epsilon", 1e-5f, &c->rms_norm_eps));
    GALE_TRY(read_vocab_size(s, c));
    c->tied_embeddings = gguf_find_tensor(s->file, "output.weight") == NULL;
    GALE_TRY(read_special_ids(s->file, c));
    return config_alloc_layers(c, s->file->name);
}

static gale_status read_llama(const gguf_scope *s, gale_config *c) {
    GALE_TRY(read_common(s, c));
    GALE_TRY(get_arch_int(s, "expert_count", false, 0, &c->n_experts));
    GALE_TRY(get_arch_int(s, "expert_used_count", false, 0, &c->n_experts_per_tok));
    c->arch = c->n_experts > 0 ? GALE_ARCH_MIXTRAL : GALE_ARCH_LLAMA;
    snprintf(c->model_type, sizeof c->model_type, "%s", c->n_experts > 0 ? "mixtral" : "llama");
    c->activation = GALE_ACT_SILU;
    c->attn_scale = 1.0f / sqrtf((float)c->head_dim);
    float theta = 0;
    int window = 0;
    gale_rope_scaling scaling;
    GALE_TRY(get_arch_float(s, "rope.freq_base", 10000.0f, &theta));
    GALE_TRY(get_arch_int(s, "attention.sliding_window", false, 0, &window));
    GALE_TRY(read_rope_scaling(s, &scaling));
    for (int i = 0; i < c->n_layers; i++)
        c->layers[i] = (gale_layer_config){.window = window, .rope_theta = theta, .rope_scaling = scaling};
    return GALE_OK;
}

/* llama.cpp keeps Gemma 3's layer pattern and local rope base in code, not metadata:
 * five sliding layers to one full, local base 10000. */
static gale_status read_gemma3(const gguf_scope *s, gale_config *c) {
    GALE_TRY(read_common(s, c));
    c->arch = GALE_ARCH_GEMMA3;
    snprintf(c->model_type, sizeof c->model_type, "gemma3_text");
    c->activation = GALE_ACT_GELU_TANH;
    c->norm_weight_offset = 0.0f; /* the converter folded the +1 into the weights */
    c->embed_scale_sqrt_hidden = true;
    c->sandwich_norms = true;
    c->qk_norm = true;
    /* query_pre_attn_scalar: hidden/heads for the 27B (62 layers), head_dim otherwise */
    float scalar = c->n_layers == 62 ? (float)c->hidden / (float)c->n_heads : (float)c->head_dim;
    c->attn_scale = 1.0f / sqrtf(scalar);
    GALE_TRY(get_arch_float(s, "attn_logit_softcapping", 0.0f, &c->attn_softcap));
    GALE_TRY(get_arch_float(s, "final_logit_softcapping", 0.0f, &c->final_softcap));
    float theta = 0;
    int window = 0, pattern = 0;
    gale_rope_scaling scaling;
    GALE_TRY(get_arch_float(s, "rope.freq_base", 1e6f, &theta));
    GALE_TRY(get_arch_int(s, "attention.sliding_window", true, 0, &window));
    GALE_TRY(get_arch_int(s, "attention.sliding_window_pattern", false, 6, &pattern));
    if (pattern <= 0) return gale_error(GALE_ERR_FORMAT, "%s: sliding window pattern must be positive", s->file->name);
    GALE_TRY(read_rope_scaling(s, &scaling));
    for (int i = 0; i < c->n_layers; i++) {
        bool full = (i + 1) % pattern == 0;
        c->layers[i] = full ? (gale_layer_config){.window = 0, .rope_theta = theta, .rope_scaling = scaling}
                            : (gale_layer_config){.window = window, .rope_theta = 10000.0f};
    }
    return GALE_OK;
}

gale_status config_from_gguf(const gguf_file *file, gale_config *out) {
    memset(out, 0, sizeof *out);
    gguf_string arch;
    GALE_TRY(gguf_get_string(file, "general.architecture", &arch));
    gale_status status;
    if (gguf_string_equals(arch, "llama"))
        status = read_llama(&(gguf_scope){file, "llama"}, out);
    else if (gguf_string_equals(arch, "gemma3"))
        status = read_gemma3(&(gguf_scope){file, "gemma3"}, out);
    else
        status = gale_error(GALE_ERR_UNSUPPORTED, "%s: GGUF architecture '%.*s' is not supported (gale reads llama, "
                            "which covers Mistral and Mixtral, and gemma3)", file->name,
                            (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    if (status == GALE_OK) status = config_validate(out, file->name);
    if (status != GALE_OK) config_free(out);
    return status;
}
