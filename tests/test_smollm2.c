/* The real default model: SmolLM2-135M-Instruct, Q4_1 GGUF (fetched by scripts/fetch_model).
 * Its config must be what transformers reads from the same file, and its Q/K rows, once
 * dequantised and un-permuted, what transformers' GGUF loader produced
 * (tests/tools/make_smollm2_reference.py). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
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
    gale_status status = gale_model_load(GALE_SMOLLM2_GGUF, &params, &model);
    cr_assert_eq(status, GALE_OK, "%s (run scripts/fetch_model)", gale_last_error());
}

static void free_model(void) { gale_model_free(model); }

static int expected_int(const cJSON *e, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(e, key)->valueint;
}

Test(smollm2, config_matches_transformers, .init = load_model, .fini = free_model) {
    const gale_config *c = gale_model_config(model);
    cJSON *e = load_json(fixture("smollm2/expected.json"));
    cr_assert_eq(c->arch, GALE_ARCH_LLAMA);
    cr_assert_eq(c->n_layers, expected_int(e, "n_layers"));
    cr_assert_eq(c->hidden, expected_int(e, "hidden"));
    cr_assert_eq(c->intermediate, expected_int(e, "intermediate"));
    cr_assert_eq(c->n_heads, expected_int(e, "n_heads"));
    cr_assert_eq(c->n_kv_heads, expected_int(e, "n_kv_heads"));
    cr_assert_eq(c->head_dim, expected_int(e, "head_dim"));
    cr_assert_eq(c->vocab, expected_int(e, "vocab"));
    cr_assert_eq(c->max_position_embeddings, expected_int(e, "max_position_embeddings"));
    cr_assert_eq(c->tied_embeddings, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "tied")));
    cr_assert_eq(c->bos_id, expected_int(e, "bos_token_id"));
    cr_assert_eq(c->eos_ids[0], expected_int(e, "eos_token_id"));
    cr_assert_float_eq(c->rms_norm_eps, cJSON_GetObjectItemCaseSensitive(e, "rms_norm_eps")->valuedouble, 1e-12);
    cr_assert_float_eq(c->attn_scale, cJSON_GetObjectItemCaseSensitive(e, "attn_scale")->valuedouble, 1e-7);
    for (int i = 0; i < c->n_layers; i++) {
        cr_assert_eq(c->layers[i].window, 0);
        cr_assert_float_eq(c->layers[i].rope_theta, cJSON_GetObjectItemCaseSensitive(e, "rope_theta")->valuedouble, 1e-3);
    }
    gale_model_stats stats = gale_model_get_stats(model);
    cr_assert_eq(stats.n_params, (uint64_t)cJSON_GetObjectItemCaseSensitive(e, "n_params")->valuedouble);
    cr_assert_gt(stats.params_by_dtype[GALE_Q4_1], stats.n_params / 2, "most weights are Q4_1");
    cJSON_Delete(e);
}

/* Compares the first rows of a GGUF tensor, dequantised by gale, with transformers. */
static void compare_rows(const char *reference_file) {
    safetensors_set set = {0};
    tensor_table refs = {0};
    cr_assert_eq(safetensors_open_file(fixture(reference_file), &set, &refs), GALE_OK, "%s", gale_last_error());
    const tensor_table *table = model_get_tensor_table(model);
    for (size_t i = 0; i < refs.count; i++) {
        const tensor_entry *ref = &refs.entries[i];
        char name[256];
        snprintf(name, sizeof name, "%s", ref->name);
        char *suffix = strstr(name, ".rows");
        if (suffix) *suffix = '\0';
        const tensor_entry *got = tensor_table_find(table, name);
        cr_assert_not_null(got, "%s not in the GGUF", name);
        cr_assert_eq(got->tensor.shape[got->tensor.n_dims - 1], ref->tensor.shape[ref->tensor.n_dims - 1]);
        uint64_t n = tensor_numel(&ref->tensor);
        /* rows are whole blocks, so the leading rows dequantise on their own */
        float *val = guarded_alloc(n), *want = malloc(n * sizeof *want);
        cr_assert_eq(quant_dequantize_f32(got->tensor.dtype, got->tensor.data, n, val), GALE_OK);
        cr_assert_eq(tensor_to_f32(&ref->tensor, want), GALE_OK);
        /* transformers dequantises with the gguf package in fp32: the same up to the
         * rounding order of d·q + m */
        assert_allclose(val, want, n, 1e-6f, 1e-6f, ref->name);
        free(want);
        guarded_check_free(val, n, ref->name);
    }
    tensor_table_free(&refs);
    safetensors_set_close(&set);
}

Test(smollm2, first_layer_q_k_unpermuted, .init = load_model, .fini = free_model) {
    compare_rows("smollm2/qk_reference.safetensors");
}

Test(smollm2, last_layer_q_k_unpermuted, .init = load_model, .fini = free_model) {
    compare_rows("smollm2/qk_reference_last.safetensors");
}

Test(smollm2, norms_and_embedding_rows, .init = load_model, .fini = free_model) {
    compare_rows("smollm2/norm_embed_reference.safetensors");
}
