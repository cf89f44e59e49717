/* gale info MODEL: what a model is and what it needs, as text or JSON. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/log.h"
#include "gale.h"

typedef struct info_options {
    const char *model_path;
    int ctx; /* 0: the model's max_position_embeddings */
    bool json;
    bool quiet;
} info_options;

static void print_info_help(FILE *out) {
    fprintf(out,
            "usage: gale info [options] MODEL\n\n"
            "Shows architecture, layer count, sizes, per-layer attention (full or sliding\n"
            "window W) and rope settings, vocabulary, parameter count, weight bytes by dtype\n"
            "and the KV-cache memory of one sequence.\n\n"
            "MODEL is a directory with config.json and *.safetensors, or a .gguf file.\n\n"
            "options:\n"
            "  --ctx N     context length for the KV-cache estimate (default: the model's\n"
            "              max_position_embeddings)\n"
            "  --json      print JSON instead of text\n"
            "  -q, --quiet no progress or warnings on stderr\n"
            "  -h, --help  this text\n");
}

/* 0: parsed; otherwise the exit code (help: 0 via *done). */
static int parse_info_options(int argc, char **argv, info_options *opts, bool *done) {
    static const struct option long_options[] = {
        {"ctx", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(opts, 0, sizeof *opts);
    *done = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "qh", long_options, NULL)) != -1) {
        switch (c) {
        case 'c':
            /* past INT32_MAX no session could hold it, and the KV figure would overflow */
            if (!cli_option_int("info", "--ctx", optarg, 1, 2147483647L, "a positive integer (at most 2147483647)",
                                &opts->ctx))
                return 2;
            break;
        case 'j': opts->json = true; break;
        case 'q': opts->quiet = true; break;
        case 'h':
            print_info_help(stdout);
            *done = true;
            return 0;
        default: print_info_help(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "gale info: expected one MODEL argument\n\n");
        print_info_help(stderr);
        return 2;
    }
    opts->model_path = argv[optind];
    return 0;
}

static const char *scaling_name(gale_rope_scaling_type type) {
    switch (type) {
    case GALE_ROPE_SCALING_LINEAR: return "linear";
    case GALE_ROPE_SCALING_LLAMA3: return "llama3";
    default: return "none";
    }
}

static bool layers_alike(const gale_layer_config *a, const gale_layer_config *b) {
    return a->window == b->window && a->rope_theta == b->rope_theta && a->rope_scaling.type == b->rope_scaling.type &&
           a->rope_scaling.factor == b->rope_scaling.factor;
}

static void describe_layer(const gale_layer_config *l, char *buf, size_t cap) {
    int n = l->window ? snprintf(buf, cap, "window %d", l->window) : snprintf(buf, cap, "full");
    n += snprintf(buf + n, cap - (size_t)n, ", rope theta %g", (double)l->rope_theta);
    if (l->rope_scaling.type != GALE_ROPE_SCALING_NONE)
        snprintf(buf + n, cap - (size_t)n, ", %s scaling x%g", scaling_name(l->rope_scaling.type),
                 (double)l->rope_scaling.factor);
}

/* Runs of identical layers, one line each; an alternating pattern prints per layer. */
static void print_layers(const gale_config *c) {
    for (int i = 0; i < c->n_layers;) {
        int j = i;
        while (j + 1 < c->n_layers && layers_alike(&c->layers[i], &c->layers[j + 1])) j++;
        char text[160], label[32];
        describe_layer(&c->layers[i], text, sizeof text);
        if (i == j)
            snprintf(label, sizeof label, "layer %d", i);
        else
            snprintf(label, sizeof label, "layers %d-%d", i, j);
        printf("  %-14s %s\n", label, text);
        i = j + 1;
    }
}

static double mib(uint64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

static void print_text(const info_options *o, const gale_config *c, const gale_model_stats *s, uint64_t ctx) {
    printf("model           %s (%s)\n", o->model_path, s->format);
    printf("architecture    %s (model_type %s)\n", gale_arch_name(c->arch), c->model_type);
    printf("layers          %d\n", c->n_layers);
    printf("hidden          %d\n", c->hidden);
    printf("intermediate    %d%s\n", c->intermediate, c->n_experts ? " per expert" : "");
    printf("heads           %d, kv heads %d, head_dim %d\n", c->n_heads, c->n_kv_heads, c->head_dim);
    if (c->n_experts) printf("experts         %d, %d per token\n", c->n_experts, c->n_experts_per_tok);
    printf("vocab           %d\n", c->vocab);
    printf("tied embeddings %s\n", c->tied_embeddings ? "yes" : "no");
    printf("context         %d (max_position_embeddings)\n", c->max_position_embeddings);
    printf("norm            rms eps %g%s%s%s\n", (double)c->rms_norm_eps,
           c->norm_weight_offset != 0.0f ? ", weight (1+w)" : "", c->sandwich_norms ? ", sandwich norms" : "",
           c->qk_norm ? ", q/k norm" : "");
    printf("activation      %s\n", c->activation == GALE_ACT_SILU ? "silu" : "gelu (tanh)");
    printf("attention scale %g", (double)c->attn_scale);
    if (c->attn_softcap > 0) printf(", softcap %g", (double)c->attn_softcap);
    printf("\n");
    if (c->final_softcap > 0) printf("logit softcap   %g\n", (double)c->final_softcap);
    printf("attention       per layer:\n");
    print_layers(c);
    printf("parameters      %llu (%.2f M)\n", (unsigned long long)s->n_params, (double)s->n_params / 1e6);
    printf("weights         %llu tensors:", (unsigned long long)s->n_tensors);
    for (int d = 0; d < GALE_DTYPE_COUNT; d++)
        if (s->bytes_by_dtype[d]) printf(" %s %.1f MiB", gale_dtype_name((gale_dtype)d), mib(s->bytes_by_dtype[d]));
    printf("\n");
    printf("kv cache        %.1f MiB for %llu tokens (bf16, one sequence)\n", mib(gale_config_kv_bytes(c, ctx, 2)),
           (unsigned long long)ctx);
}

static cJSON *layer_json(const gale_layer_config *l) {
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "attention", l->window ? "sliding" : "full");
    cJSON_AddNumberToObject(obj, "window", l->window);
    cJSON_AddNumberToObject(obj, "rope_theta", l->rope_theta);
    cJSON *scaling = cJSON_AddObjectToObject(obj, "rope_scaling");
    cJSON_AddStringToObject(scaling, "type", scaling_name(l->rope_scaling.type));
    if (l->rope_scaling.type != GALE_ROPE_SCALING_NONE) cJSON_AddNumberToObject(scaling, "factor", l->rope_scaling.factor);
    if (l->rope_scaling.type == GALE_ROPE_SCALING_LLAMA3) {
        cJSON_AddNumberToObject(scaling, "low_freq_factor", l->rope_scaling.low_freq_factor);
        cJSON_AddNumberToObject(scaling, "high_freq_factor", l->rope_scaling.high_freq_factor);
        cJSON_AddNumberToObject(scaling, "original_max_position_embeddings",
                                l->rope_scaling.original_max_position_embeddings);
    }
    return obj;
}

static void add_config_json(cJSON *root, const gale_config *c) {
    cJSON_AddStringToObject(root, "architecture", gale_arch_name(c->arch));
    cJSON_AddStringToObject(root, "model_type", c->model_type);
    cJSON_AddNumberToObject(root, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(root, "hidden", c->hidden);
    cJSON_AddNumberToObject(root, "intermediate", c->intermediate);
    cJSON_AddNumberToObject(root, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(root, "n_kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(root, "vocab", c->vocab);
    cJSON_AddNumberToObject(root, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(root, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(root, "norm_weight_offset", c->norm_weight_offset);
    cJSON_AddBoolToObject(root, "tied_embeddings", c->tied_embeddings);
    cJSON_AddStringToObject(root, "activation", c->activation == GALE_ACT_SILU ? "silu" : "gelu_tanh");
    cJSON_AddNumberToObject(root, "attn_scale", c->attn_scale);
    cJSON_AddNumberToObject(root, "attn_softcap", c->attn_softcap);
    cJSON_AddNumberToObject(root, "final_softcap", c->final_softcap);
    cJSON_AddBoolToObject(root, "sandwich_norms", c->sandwich_norms);
    cJSON_AddBoolToObject(root, "qk_norm", c->qk_norm);
    cJSON_AddNumberToObject(root, "n_experts", c->n_experts);
    cJSON_AddNumberToObject(root, "n_experts_per_tok", c->n_experts_per_tok);
    cJSON_AddNumberToObject(root, "bos_id", c->bos_id);
    cJSON *eos = cJSON_AddArrayToObject(root, "eos_ids");
    for (int i = 0; i < c->n_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber(c->eos_ids[i]));
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int i = 0; i < c->n_layers; i++) cJSON_AddItemToArray(layers, layer_json(&c->layers[i]));
}

static int print_json(const info_options *o, const gale_config *c, const gale_model_stats *s, uint64_t ctx) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "path", o->model_path);
    cJSON_AddStringToObject(root, "format", s->format);
    add_config_json(root, c);
    cJSON_AddNumberToObject(root, "n_params", (double)s->n_params);
    cJSON_AddNumberToObject(root, "n_tensors", (double)s->n_tensors);
    cJSON *weights = cJSON_AddObjectToObject(root, "weights_by_dtype");
    for (int d = 0; d < GALE_DTYPE_COUNT; d++) {
        if (!s->params_by_dtype[d]) continue;
        cJSON *entry = cJSON_AddObjectToObject(weights, gale_dtype_name((gale_dtype)d));
        cJSON_AddNumberToObject(entry, "params", (double)s->params_by_dtype[d]);
        cJSON_AddNumberToObject(entry, "bytes", (double)s->bytes_by_dtype[d]);
    }
    cJSON *kv = cJSON_AddObjectToObject(root, "kv_cache");
    cJSON_AddNumberToObject(kv, "ctx", (double)ctx);
    cJSON_AddNumberToObject(kv, "bytes_bf16", (double)gale_config_kv_bytes(c, ctx, 2));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "gale info: out of memory\n");
        return 1;
    }
    puts(text);
    cJSON_free(text);
    return 0;
}

int cmd_info(int argc, char **argv) {
    info_options opts;
    bool done;
    int rc = parse_info_options(argc, argv, &opts, &done);
    if (rc || done) return rc;
    if (opts.quiet) log_set_level(LOG_ERROR);
    gale_load_params params = gale_load_params_default();
    params.quiet = opts.quiet;
    params.metadata_only = true; /* info reads headers only */
    gale_model *model;
    if (gale_model_load(opts.model_path, &params, &model) != GALE_OK) return cli_fail("cannot load model");
    const gale_config *config = gale_model_config(model);
    gale_model_stats stats = gale_model_get_stats(model);
    uint64_t ctx = opts.ctx ? (uint64_t)opts.ctx : (uint64_t)config->max_position_embeddings;
    rc = 0;
    if (opts.json)
        rc = print_json(&opts, config, &stats, ctx);
    else
        print_text(&opts, config, &stats, ctx);
    gale_model_free(model);
    return rc;
}
