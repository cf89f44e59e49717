/* Weight binding: every tensor the config implies is found with the right shape, the
 * parameter count equals transformers' num_parameters(), and bad checkpoints are
 * reported by tensor name. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_builder.h"
#include "core/mapped_file.h"
#include "model/model.h"
#include "model/quant.h"
#include "test_support.h"

static gale_status load(const char *path, gale_model **out) {
    gale_load_params params = gale_load_params_default();
    params.quiet = true;
    return gale_model_load(path, &params, out);
}

static void check_fixture(const char *dir) {
    gale_model *model = NULL;
    cr_assert_eq(load(fixture(dir), &model), GALE_OK, "%s", gale_last_error());
    char path[512];
    snprintf(path, sizeof path, "%s/expected.json", fixture(dir));
    cJSON *expected = load_json(path);
    gale_model_stats stats = gale_model_get_stats(model);
    double n_params = cJSON_GetObjectItemCaseSensitive(expected, "n_params")->valuedouble;
    cr_assert_eq(stats.n_params, (uint64_t)n_params, "%s: %llu parameters, transformers counts %.0f", dir,
                 (unsigned long long)stats.n_params, n_params);
    /* every tensor in the file is used */
    cr_assert_eq(stats.n_tensors, (uint64_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(expected, "tensors")));
    const gale_config *c = gale_model_config(model);
    const model_weights *w = model_get_weights(model);
    cr_assert_eq(w->lm_head == w->embed, c->tied_embeddings);
    for (int i = 0; i < c->n_layers; i++) {
        const layer_weights *l = &w->layers[i];
        cr_assert_not_null(l->wq);
        cr_assert_eq(l->wq->shape[0], (int64_t)c->n_heads * c->head_dim);
        cr_assert_eq(l->q_norm != NULL, c->qk_norm);
        cr_assert_eq(l->post_ffn_norm != NULL, c->sandwich_norms);
        cr_assert_eq(l->router != NULL, c->n_experts > 0);
        cr_assert_eq(l->w_gate != NULL, c->n_experts == 0);
    }
    cJSON_Delete(expected);
    gale_model_free(model);
}

ParameterizedTestParameters(weights, bind_every_family) { return index_params(N_TINY_CHECKPOINTS); }

ParameterizedTest(size_t *index, weights, bind_every_family) { check_fixture(tiny_checkpoints[*index]); }

Test(weights, mixtral_expert_views_point_at_each_expert) {
    gale_model *model = NULL;
    cr_assert_eq(load(fixture("tiny/mixtral"), &model), GALE_OK, "%s", gale_last_error());
    const gale_config *c = gale_model_config(model);
    const tensor_table *table = model_get_tensor_table(model);
    const model_weights *w = model_get_weights(model);
    for (int e = 0; e < c->n_experts; e++) {
        char name[128];
        snprintf(name, sizeof name, "model.layers.1.block_sparse_moe.experts.%d.w3.weight", e);
        const tensor_entry *up = tensor_table_find(table, name);
        cr_assert_not_null(up);
        cr_assert_eq(w->layers[1].expert_up[e].data, up->tensor.data, "expert %d up", e);
        cr_assert_eq(w->layers[1].expert_down[e].shape[0], c->hidden);
    }
    gale_model_free(model);
}

Test(weights, tiny_llama_builder_loads) {
    char *dir = make_temp_dir();
    write_tiny_llama(dir, NULL);
    gale_model *model = NULL;
    cr_assert_eq(load(dir, &model), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(gale_model_get_stats(model).n_tensors, 12);
    gale_model_free(model);
    remove_tree(dir);
    free(dir);
}

typedef struct bad_checkpoint {
    tiny_llama_options opts;
    gale_status status;
    const char *needle;
} bad_checkpoint;

static bad_checkpoint bad_checkpoints_cases[] = {
        {{.drop_tensor = "model.layers.0.self_attn.k_proj.weight"}, GALE_ERR_MISSING,
         "'model.layers.0.self_attn.k_proj.weight' is missing"},
        {{.drop_tensor = "lm_head.weight"}, GALE_ERR_MISSING, "lm_head.weight"},
        {{.drop_tensor = "model.norm.weight"}, GALE_ERR_MISSING, "model.norm.weight"},
        {{.reshape_tensor = "model.layers.0.mlp.down_proj.weight"}, GALE_ERR_SHAPE,
         "'model.layers.0.mlp.down_proj.weight' has shape [3, 5], the config implies [8, 16]"},
        {{.reshape_tensor = "model.embed_tokens.weight"}, GALE_ERR_SHAPE, "[12, 8]"},
        {{.retype_tensor = "model.layers.0.self_attn.o_proj.weight"}, GALE_ERR_UNSUPPORTED, "dtype I64"},
        {{.config_json = "{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1, "
                         "\"num_attention_heads\": 2, \"vocab_size\": 12}"},
         GALE_ERR_MISSING, "intermediate_size"},
        {{.config_json = "{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 2, "
                         "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"intermediate_size\": 16, "
                         "\"vocab_size\": 12}"},
         GALE_ERR_MISSING, "model.layers.1.input_layernorm.weight"},
        {{.config_json = "{\"model_type\": \"mamba\"}"}, GALE_ERR_UNSUPPORTED, "mamba"},
        /* a projection's bias changes every output: refused, not left out */
        {{.extra_tensor = "model.layers.0.self_attn.q_proj.bias"}, GALE_ERR_UNSUPPORTED,
         "'model.layers.0.self_attn.q_proj.bias' is a bias"},
        {{.config_json = "{\"model_type\": \"llama\",}"}, GALE_ERR_FORMAT, "config.json: not valid JSON"},
};

ParameterizedTestParameters(weights, bad_checkpoints) {
    return index_params(sizeof bad_checkpoints_cases / sizeof bad_checkpoints_cases[0]);
}

ParameterizedTest(size_t *index, weights, bad_checkpoints) {
    bad_checkpoint *bad = &bad_checkpoints_cases[*index];
    char *dir = make_temp_dir();
    write_tiny_llama(dir, &bad->opts);
    gale_model *model = NULL;
    assert_error(load(dir, &model), bad->status, bad->needle);
    cr_assert_null(model);
    cr_assert(strstr(gale_last_error(), dir) != NULL, "message names the model path: %s", gale_last_error());
    remove_tree(dir);
    free(dir);
}

Test(weights, nonexistent_path) {
    gale_model *model = NULL;
    assert_error(load("/nonexistent/gale-model", &model), GALE_ERR_IO, "/nonexistent/gale-model");
}

Test(weights, null_arguments_are_rejected) {
    gale_model *model = NULL;
    assert_error(gale_model_load(NULL, NULL, &model), GALE_ERR_INVALID_ARG, "path");
    gale_model_free(NULL); /* a no-op, like free() */
}

/* ---- dummy weights: the config alone, every implied tensor made up ---- */

static gale_model *load_dummy(const char *dir, uint64_t seed) {
    gale_load_params p = gale_load_params_default();
    p.quiet = true;
    p.dummy_weights = true;
    p.dummy_seed = seed;
    gale_model *m = NULL;
    cr_assert_eq(gale_model_load(dir, &p, &m), GALE_OK, "%s", gale_last_error());
    return m;
}

static float *last_logits(const gale_model *m) {
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = 1;
    gale_session *s = NULL;
    cr_assert_eq(gale_session_new(m, &ep, &s), GALE_OK, "%s", gale_last_error());
    const int32_t ids[] = {1, 5, 9, 2, 7, 3, 11, 4};
    float *logits = malloc((size_t)gale_model_config(m)->vocab * sizeof *logits);
    cr_assert_eq(gale_session_forward(s, ids, 8, false, logits), GALE_OK, "%s", gale_last_error());
    gale_session_free(s);
    return logits;
}

static const char *const dummy_families[] = {"llama", "mixtral", "gemma", "gemma2", "gemma3_text"};

ParameterizedTestParameters(weights, dummy_weights_from_a_config_alone) { return index_params(5); }
ParameterizedTest(size_t *index, weights, dummy_weights_from_a_config_alone) {
    char rel[128], src[600];
    snprintf(rel, sizeof rel, "tiny/%s", dummy_families[*index]);
    char *dir = make_temp_dir();
    snprintf(src, sizeof src, "%s/config.json", fixture(rel));
    char *config = NULL;
    size_t len = 0;
    cr_assert_eq(read_text_file(src, &config, &len), GALE_OK, "%s", gale_last_error());
    write_text_file(dir, "config.json", config);
    free(config);
    gale_load_params p = gale_load_params_default();
    p.quiet = true;
    gale_model *real = NULL;
    cr_assert_eq(gale_model_load(fixture(rel), &p, &real), GALE_OK, "%s", gale_last_error());
    gale_model *a = load_dummy(dir, 1), *a2 = load_dummy(dir, 1), *b = load_dummy(dir, 2);
    /* every tensor the real checkpoint binds, with its shape: the same parameter count */
    cr_assert_eq(gale_model_get_stats(a).n_params, gale_model_get_stats(real).n_params, "%s: %llu made-up parameters, %llu real",
                 dummy_families[*index], (unsigned long long)gale_model_get_stats(a).n_params,
                 (unsigned long long)gale_model_get_stats(real).n_params);
    cr_assert_str_eq(gale_model_get_stats(a).format, "dummy");
    float *la = last_logits(a), *la2 = last_logits(a2), *lb = last_logits(b);
    const int vocab = gale_model_config(a)->vocab;
    bool differs = false;
    for (int v = 0; v < vocab; v++) {
        cr_assert(isfinite(la[v]), "%s: logit %d is %g", dummy_families[*index], v, la[v]);
        cr_assert(fabsf(la[v]) < 100, "%s: logit %d is %g: activations blew up", dummy_families[*index], v, la[v]);
        cr_assert_eq(la[v], la2[v], "same seed, same weights");
        differs |= la[v] != lb[v];
    }
    cr_assert(differs, "another seed gives other weights");
    free(la), free(la2), free(lb);
    gale_model_free(a), gale_model_free(a2), gale_model_free(b), gale_model_free(real);
    remove_tree(dir);
    free(dir);
}

Test(weights, dummy_weights_need_a_config) {
    gale_load_params p = gale_load_params_default();
    p.quiet = true;
    p.dummy_weights = true;
    gale_model *m = NULL;
    char *dir = make_temp_dir();
    assert_error(gale_model_load(dir, &p, &m), GALE_ERR_IO, "config.json");
    cr_assert_null(m);
    write_text_file(dir, "weights.bin", "x");
    char file[600];
    snprintf(file, sizeof file, "%s/weights.bin", dir);
    assert_error(gale_model_load(file, &p, &m), GALE_ERR_IO, "dummy weights need a directory with config.json or a GGUF");
    remove_tree(dir);
    free(dir);
}
