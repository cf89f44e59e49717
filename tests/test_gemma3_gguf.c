/* A real Gemma 3 file: gemma-3-270m Q4_K_M GGUF (fetched by `scripts/fetch_model gemma3`).
 * Its config must be what transformers reads from the same file, and its tensors, once
 * dequantised, what transformers' GGUF loader produced (tests/tools/make_gemma3_reference.py):
 * Q5_0, Q6_K, Q4_K and Q8_0 rows, and the norm weights. The converter folded Gemma's
 * (1 + w) into the stored norm weights; gale keeps them as stored (norm_weight_offset 0)
 * while transformers subtracts 1, so gale's norm weight is transformers' + 1. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "test_support.h"

static gale_model *model;

static void load_model(void) {
    gale_load_params params = gale_load_params_default();
    params.quiet = true;
    gale_status status = gale_model_load(GALE_GEMMA3_GGUF, &params, &model);
    cr_assert_eq(status, GALE_OK, "%s (run scripts/fetch_model gemma3)", gale_last_error());
}

static void free_model(void) { gale_model_free(model); }

static const cJSON *item(const cJSON *e, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
    cr_assert_not_null(v, "expected.json has no '%s'", key);
    return v;
}

static int expected_int(const cJSON *e, const char *key) { return item(e, key)->valueint; }
static double expected_double(const cJSON *e, const char *key) { return item(e, key)->valuedouble; }

Test(gemma3_gguf, config_matches_transformers, .init = load_model, .fini = free_model) {
    const gale_config *c = gale_model_config(model);
    cJSON *e = load_json(fixture("gemma3/expected.json"));
    cr_assert_eq(c->arch, GALE_ARCH_GEMMA3);
    cr_assert_str_eq(c->model_type, item(e, "model_type")->valuestring);
    cr_assert_eq(c->n_layers, expected_int(e, "n_layers"));
    cr_assert_eq(c->hidden, expected_int(e, "hidden"));
    cr_assert_eq(c->intermediate, expected_int(e, "intermediate"));
    cr_assert_eq(c->n_heads, expected_int(e, "n_heads"));
    cr_assert_eq(c->n_kv_heads, expected_int(e, "n_kv_heads"));
    cr_assert_eq(c->head_dim, expected_int(e, "head_dim"));
    cr_assert_eq(c->vocab, expected_int(e, "vocab"));
    cr_assert_eq(c->max_position_embeddings, expected_int(e, "max_position_embeddings"));
    cr_assert_eq(c->tied_embeddings, cJSON_IsTrue(item(e, "tied")));
    cr_assert(c->tied_embeddings);
    cr_assert_eq(c->bos_id, expected_int(e, "bos_token_id"));
    cr_assert_eq(c->n_eos, 1, "the file names one eos (no eot_token_id)");
    cr_assert_eq(c->eos_ids[0], expected_int(e, "eos_token_id"));
    cr_assert_float_eq(c->rms_norm_eps, expected_double(e, "rms_norm_eps"), 1e-12);

    /* the Gemma 3 switches */
    cr_assert_eq(c->activation, GALE_ACT_GELU_TANH);
    cr_assert_str_eq(item(e, "hidden_activation")->valuestring, "gelu_pytorch_tanh");
    cr_assert_eq(c->norm_weight_offset, 0.0f, "the +1 is folded into the stored weights");
    cr_assert(c->embed_scale_sqrt_hidden);
    cr_assert(c->sandwich_norms);
    cr_assert(c->qk_norm);
    cr_assert(cJSON_IsNull(item(e, "attn_logit_softcapping")));
    cr_assert(cJSON_IsNull(item(e, "final_logit_softcapping")));
    cr_assert_eq(c->attn_softcap, 0.0f);
    cr_assert_eq(c->final_softcap, 0.0f);
    double scalar = expected_double(e, "query_pre_attn_scalar");
    cr_assert_float_eq(c->attn_scale, 1.0 / sqrt(scalar), 1e-7, "query_pre_attn_scalar^-0.5");
    cr_assert_float_eq(c->attn_scale, expected_double(e, "attn_scale"), 1e-7);

    /* per layer: window 512 and local base on sliding layers, full attention with the
     * global base on every sixth */
    const cJSON *types = item(e, "layer_types");
    cr_assert_eq(cJSON_GetArraySize(types), c->n_layers);
    int window = expected_int(e, "sliding_window");
    double global_theta = expected_double(e, "rope_theta"), local_theta = expected_double(e, "rope_local_base_freq");
    cr_assert_eq(window, 512);
    cr_assert_float_eq(global_theta, 1e6, 1e-3);
    cr_assert_float_eq(local_theta, 1e4, 1e-3);
    for (int i = 0; i < c->n_layers; i++) {
        const char *type = cJSON_GetArrayItem(types, i)->valuestring;
        bool full = strcmp(type, "full_attention") == 0;
        cr_assert(full || strcmp(type, "sliding_attention") == 0, "layer %d: unknown type %s", i, type);
        cr_assert_eq(full, (i + 1) % 6 == 0, "layer %d: transformers says %s", i, type);
        const gale_layer_config *l = &c->layers[i];
        cr_assert_eq(l->window, full ? 0 : window, "layer %d window %d", i, l->window);
        cr_assert_float_eq(l->rope_theta, full ? global_theta : local_theta, 1e-3, "layer %d theta %g", i,
                           (double)l->rope_theta);
        cr_assert_eq(l->rope_scaling.type, GALE_ROPE_SCALING_NONE, "layer %d", i);
    }

    gale_model_stats stats = gale_model_get_stats(model);
    cr_assert_eq(stats.n_params, (uint64_t)expected_double(e, "n_params"));
    cJSON_Delete(e);
}

/* Every tensor of reference.safetensors, by name; row slices end in ".rowsA_B". */
static const char *const reference_tensors[] = {
    "model.layers.0.self_attn.q_proj.weight.rows0_16",
    "model.layers.0.self_attn.k_proj.weight.rows0_16",
    "model.layers.0.mlp.down_proj.weight.rows0_8",
    "model.layers.5.mlp.down_proj.weight.rows0_8",
    "model.layers.0.self_attn.q_norm.weight",
    "model.layers.0.self_attn.k_norm.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.post_attention_layernorm.weight",
    "model.layers.0.pre_feedforward_layernorm.weight",
    "model.layers.0.post_feedforward_layernorm.weight",
    "model.norm.weight",
    "model.embed_tokens.weight.rows0_2",
};
#define N_REFERENCE (sizeof reference_tensors / sizeof reference_tensors[0])

Test(gemma3_gguf, reference_file_is_covered) {
    safetensors_set set = {0};
    tensor_table refs = {0};
    cr_assert_eq(safetensors_open_file(fixture("gemma3/reference.safetensors"), &set, &refs), GALE_OK, "%s",
                 gale_last_error());
    cr_assert_eq(refs.count, N_REFERENCE);
    for (size_t i = 0; i < N_REFERENCE; i++)
        cr_assert_not_null(tensor_table_find(&refs, reference_tensors[i]), "%s", reference_tensors[i]);
    tensor_table_free(&refs);
    safetensors_set_close(&set);
}

/* The leading rows (or all) of one GGUF tensor, dequantised by gale, against transformers. */
static void compare_tensor(const char *ref_name) {
    safetensors_set set = {0};
    tensor_table refs = {0};
    cr_assert_eq(safetensors_open_file(fixture("gemma3/reference.safetensors"), &set, &refs), GALE_OK, "%s",
                 gale_last_error());
    const tensor_entry *ref = tensor_table_find(&refs, ref_name);
    cr_assert_not_null(ref, "%s not in reference.safetensors", ref_name);

    cJSON *e = load_json(fixture("gemma3/expected.json"));
    const cJSON *info = item(item(e, "reference_tensors"), ref_name);
    const char *hf_name = item(info, "hf_name")->valuestring;
    const char *ggml_type = item(info, "ggml_type")->valuestring;

    const tensor_entry *got = tensor_table_find(model_get_tensor_table(model), hf_name);
    cr_assert_not_null(got, "%s not in the GGUF", hf_name);
    cr_assert_str_eq(gale_dtype_name(got->tensor.dtype), ggml_type, "%s", hf_name);
    /* gale's shape (HF order) is transformers' shape */
    const cJSON *hf_shape = item(info, "hf_shape");
    cr_assert_eq(got->tensor.n_dims, cJSON_GetArraySize(hf_shape), "%s", hf_name);
    for (int d = 0; d < got->tensor.n_dims; d++)
        cr_assert_eq(got->tensor.shape[d], (int64_t)cJSON_GetArrayItem(hf_shape, d)->valuedouble, "%s dim %d",
                     hf_name, d);
    cr_assert_eq(got->tensor.shape[got->tensor.n_dims - 1], ref->tensor.shape[ref->tensor.n_dims - 1]);
    cr_assert_leq(tensor_numel(&ref->tensor), tensor_numel(&got->tensor));

    uint64_t n = tensor_numel(&ref->tensor);
    /* rows are whole blocks, so the leading rows dequantise on their own */
    float *val = guarded_alloc(n), *want = malloc(n * sizeof *want);
    cr_assert_not_null(want);
    cr_assert_eq(quant_dequantize_f32(got->tensor.dtype, got->tensor.data, n, val), GALE_OK, "%s",
                 gale_last_error());
    cr_assert_eq(tensor_to_f32(&ref->tensor, want), GALE_OK);
    if (strstr(hf_name, "norm.weight")) {
        /* transformers subtracted 1 in fp32 from weights that are bf16 values: exact here */
        for (uint64_t i = 0; i < n; i++) want[i] += 1.0f;
        assert_allclose(val, want, n, 1e-6f, 0.0f, ref_name);
    } else {
        /* transformers dequantises with the gguf package in fp32: the same up to the
         * rounding order of d·scale·q − dmin·m */
        assert_allclose(val, want, n, 1e-6f, 1e-6f, ref_name);
    }
    free(want);
    guarded_check_free(val, n, ref_name);
    cJSON_Delete(e);
    tensor_table_free(&refs);
    safetensors_set_close(&set);
}

ParameterizedTestParameters(gemma3_gguf, tensor_matches_transformers) { return index_params(N_REFERENCE); }

ParameterizedTest(size_t *index, gemma3_gguf, tensor_matches_transformers, .init = load_model, .fini = free_model) {
    compare_tensor(reference_tensors[*index]);
}

/* The mix of a Q4_K_M file: Q8_0 embedding, Q5_0 projections, Q4_K and Q6_K elsewhere. */
Test(gemma3_gguf, weight_types, .init = load_model, .fini = free_model) {
    gale_model_stats stats = gale_model_get_stats(model);
    cr_assert_gt(stats.params_by_dtype[GALE_Q8_0], 0);
    cr_assert_gt(stats.params_by_dtype[GALE_Q5_0], 0);
    cr_assert_gt(stats.params_by_dtype[GALE_Q4_K], 0);
    cr_assert_gt(stats.params_by_dtype[GALE_Q6_K], 0);
    cr_assert_gt(stats.params_by_dtype[GALE_Q8_0], stats.n_params / 2, "the 262k x 640 embedding is Q8_0");
}
