#include "model/config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"

const char *gale_arch_name(gale_arch arch) {
    switch (arch) {
    case GALE_ARCH_LLAMA: return "llama";
    case GALE_ARCH_MISTRAL: return "mistral";
    case GALE_ARCH_MIXTRAL: return "mixtral";
    case GALE_ARCH_GEMMA: return "gemma";
    case GALE_ARCH_GEMMA2: return "gemma2";
    case GALE_ARCH_GEMMA3: return "gemma3";
    }
    return "?";
}

gale_status config_alloc_layers(gale_config *config, const char *source) {
    if (config->n_layers <= 0 || config->n_layers > 4096)
        return gale_error(GALE_ERR_FORMAT, "%s: layer count (num_hidden_layers, block_count) %d is out of range (1 to 4096)", source,
                          config->n_layers);
    config->layers = calloc((size_t)config->n_layers, sizeof *config->layers);
    if (!config->layers) return gale_error(GALE_ERR_OOM, "%s: out of memory", source);
    return GALE_OK;
}

void config_free(gale_config *config) {
    free(config->layers);
    free(config->rope_freq_divisors);
    config->layers = NULL;
    config->rope_freq_divisors = NULL;
}

void config_add_eos(gale_config *config, int id) {
    for (int i = 0; i < config->n_eos; i++)
        if (config->eos_ids[i] == id) return;
    if (config->n_eos == GALE_MAX_EOS) {
        log_warn("more than %d end-of-sequence ids; ignoring %d", GALE_MAX_EOS, id);
        return;
    }
    config->eos_ids[config->n_eos++] = id;
}

static gale_status check_positive(const char *source, const char *what, long long value, long long max) {
    if (value <= 0 || value > max)
        return gale_error(GALE_ERR_FORMAT, "%s: %s is %lld (expected 1 to %lld)", source, what, value, max);
    return GALE_OK;
}

static gale_status validate_layer(const gale_config *c, int i, const char *source) {
    const gale_layer_config *layer = &c->layers[i];
    if (layer->window < 0)
        return gale_error(GALE_ERR_FORMAT, "%s: layer %d has a negative sliding window", source, i);
    if (!(layer->rope_theta > 0.0f) || !isfinite(layer->rope_theta))
        return gale_error(GALE_ERR_FORMAT, "%s: layer %d: rope theta %g is not a positive number",
                          source, i, (double)layer->rope_theta);
    const gale_rope_scaling *s = &layer->rope_scaling;
    if (s->type != GALE_ROPE_SCALING_NONE && !(s->factor > 0.0f))
        return gale_error(GALE_ERR_FORMAT, "%s: layer %d: rope scaling factor %g is not positive", source,
                          i, (double)s->factor);
    if (s->type == GALE_ROPE_SCALING_LLAMA3 &&
        (!(s->high_freq_factor > s->low_freq_factor) || !(s->low_freq_factor > 0.0f) ||
         s->original_max_position_embeddings <= 0))
        return gale_error(GALE_ERR_FORMAT, "%s: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor "
                          "and original_max_position_embeddings > 0", source);
    return GALE_OK;
}

gale_status config_validate(const gale_config *c, const char *source) {
    GALE_TRY(check_positive(source, "num_hidden_layers", c->n_layers, 4096));
    GALE_TRY(check_positive(source, "hidden_size", c->hidden, 1 << 20));
    GALE_TRY(check_positive(source, "intermediate_size", c->intermediate, 1 << 22));
    GALE_TRY(check_positive(source, "num_attention_heads", c->n_heads, 4096));
    GALE_TRY(check_positive(source, "num_key_value_heads", c->n_kv_heads, 4096));
    GALE_TRY(check_positive(source, "head_dim", c->head_dim, 4096));
    GALE_TRY(check_positive(source, "vocab_size", c->vocab, 1 << 26));
    if (c->n_heads % c->n_kv_heads != 0)
        return gale_error(GALE_ERR_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                          source, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return gale_error(GALE_ERR_FORMAT, "%s: head_dim %d is odd; rotary embeddings need it even", source,
                          c->head_dim);
    if (!(c->rms_norm_eps > 0.0f))
        return gale_error(GALE_ERR_FORMAT, "%s: rms_norm_eps %g is not positive", source, (double)c->rms_norm_eps);
    if (c->n_experts < 0 || c->n_experts > 1024 ||
        (c->n_experts > 0 && (c->n_experts_per_tok <= 0 || c->n_experts_per_tok > c->n_experts)))
        return gale_error(GALE_ERR_FORMAT, "%s: %d experts with %d per token is not a valid MoE setup",
                          source, c->n_experts, c->n_experts_per_tok);
    if (c->attn_softcap < 0.0f || c->final_softcap < 0.0f)
        return gale_error(GALE_ERR_FORMAT, "%s: softcapping values must not be negative", source);
    for (int i = 0; i < c->n_layers; i++) GALE_TRY(validate_layer(c, i, source));
    return GALE_OK;
}

void config_rope_inv_freq(const gale_config *config, int layer, float *out) {
    const gale_layer_config *l = &config->layers[layer];
    const int half = config->head_dim / 2;
    const gale_rope_scaling *s = &l->rope_scaling;
    for (int k = 0; k < half; k++) {
        float inv = 1.0f / powf(l->rope_theta, (float)(2 * k) / (float)config->head_dim);
        if (s->type == GALE_ROPE_SCALING_LINEAR) {
            inv /= s->factor;
        } else if (s->type == GALE_ROPE_SCALING_LLAMA3) {
            const float orig = (float)s->original_max_position_embeddings;
            const float low_wavelen = orig / s->low_freq_factor;
            const float high_wavelen = orig / s->high_freq_factor;
            const float wavelen = 6.28318530717958647692f / inv; /* 2π / inv */
            if (wavelen > low_wavelen) {
                inv /= s->factor;
            } else if (wavelen >= high_wavelen) {
                /* medium band: blend of scaled and unscaled */
                float smooth = (orig / wavelen - s->low_freq_factor) /
                               (s->high_freq_factor - s->low_freq_factor);
                inv = (1.0f - smooth) * inv / s->factor + smooth * inv;
            }
        }
        if (config->rope_freq_divisors) inv /= config->rope_freq_divisors[k];
        out[k] = inv;
    }
}

uint64_t gale_config_kv_bytes(const gale_config *config, uint64_t n_ctx, unsigned bytes_per_elem) {
    uint64_t total = 0;
    const uint64_t per_token = 2ull * (uint64_t)config->n_kv_heads * (uint64_t)config->head_dim * bytes_per_elem;
    for (int i = 0; i < config->n_layers; i++) {
        uint64_t window = (uint64_t)config->layers[i].window;
        uint64_t tokens = window && window < n_ctx ? window : n_ctx;
        total += per_token * tokens;
    }
    return total;
}
