/* GGUF reading: a llama GGUF written with llama.cpp's conventions by the gguf package
 * (Q/K rows permuted, rope_freqs, BF16 and Q8_0 tensors) must give back the Hugging Face
 * tensors it came from; and every lie a header can tell ends in a clear error. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "file_builder.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "test_support.h"

static float *to_f32(const gale_tensor *t) {
    float *out = malloc(tensor_numel(t) * sizeof *out);
    cr_assert_eq(tensor_to_f32(t, out), GALE_OK, "%s", gale_last_error());
    return out;
}

static gale_model *load_quiet(const char *path) {
    gale_load_params params = gale_load_params_default();
    params.quiet = true;
    gale_model *model = NULL;
    cr_assert_eq(gale_model_load(path, &params, &model), GALE_OK, "%s", gale_last_error());
    return model;
}

Test(gguf, llama_gguf_gives_back_the_hugging_face_tensors) {
    gale_model *hf = load_quiet(fixture("tiny/llama"));
    gale_model *gg = load_quiet(fixture("gguf/tiny_llama.gguf"));
    safetensors_set q8_set = {0};
    tensor_table q8_table = {0};
    cr_assert_eq(safetensors_open_file(fixture("gguf/tiny_llama_q8_dequant.safetensors"), &q8_set, &q8_table), GALE_OK);
    cr_assert_eq(tensor_table_finish(&q8_table), GALE_OK);
    const tensor_table *hf_table = model_get_tensor_table(hf), *gg_table = model_get_tensor_table(gg);
    size_t compared = 0, permuted = 0;
    for (size_t i = 0; i < hf_table->count; i++) {
        const tensor_entry *want = &hf_table->entries[i];
        const tensor_entry *got = tensor_table_find(gg_table, want->name);
        cr_assert_not_null(got, "GGUF lacks %s", want->name);
        cr_assert(got->bound, "%s not bound", want->name);
        cr_assert(tensor_shape_equals(&got->tensor, want->tensor.n_dims, want->tensor.shape), "%s shape", want->name);
        /* Q8_0 tensors are lossy: compare with the gguf package's own dequantisation */
        const tensor_entry *q8 = tensor_table_find(&q8_table, want->name);
        float *ref = to_f32(q8 ? &q8->tensor : &want->tensor);
        float *val = to_f32(&got->tensor);
        assert_allclose(val, ref, tensor_numel(&want->tensor), 0.0f, 0.0f, want->name);
        permuted += strstr(want->name, "q_proj") || strstr(want->name, "k_proj");
        free(ref);
        free(val);
        compared++;
    }
    cr_assert_eq(compared, 21);
    cr_assert_eq(permuted, 4);
    tensor_table_free(&q8_table);
    safetensors_set_close(&q8_set);
    gale_model_free(hf);
    gale_model_free(gg);
}

Test(gguf, rope_freqs_reproduce_llama3_scaling) {
    gale_model *gg = load_quiet(fixture("gguf/tiny_llama.gguf"));
    const gale_config *c = gale_model_config(gg);
    cr_assert_not_null(c->rope_freq_divisors);
    cJSON *expected = load_json(fixture("tiny/llama/expected.json"));
    const cJSON *inv = cJSON_GetObjectItemCaseSensitive(expected, "inv_freq");
    for (int layer = 0; layer < c->n_layers; layer++) {
        float got[64], want[64];
        config_rope_inv_freq(c, layer, got);
        for (int k = 0; k < c->head_dim / 2; k++)
            want[k] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(inv, layer), k)->valuedouble;
        assert_allclose(got, want, (size_t)c->head_dim / 2, 0.0f, 4e-6f, "inv_freq from rope_freqs");
    }
    cJSON_Delete(expected);
    gale_model_free(gg);
}

Test(gguf, metadata_of_the_quant_fixture) {
    gguf_file g;
    cr_assert_eq(gguf_open(fixture("gguf/quant_blocks.gguf"), &g), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(g.version, 3);
    cr_assert_eq(g.n_tensors, 11);
    const gguf_tensor_info *q4k = gguf_find_tensor(&g, "t.q4_k");
    cr_assert_not_null(q4k);
    cr_assert_eq(q4k->dtype, GALE_Q4_K);
    cr_assert_eq(q4k->nbytes, q4k->ne[1] * (q4k->ne[0] / 256) * 144);
    gguf_close(&g);
}

/* ---- crafted files ---- */

static void llama_metadata(gguf_builder *g, const char *arch) {
    char key[64];
    gb_kv_string(g, "general.architecture", arch);
    snprintf(key, sizeof key, "%s.block_count", arch);
    gb_kv_u32(g, key, 1);
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    gb_kv_u32(g, key, 32);
    snprintf(key, sizeof key, "%s.feed_forward_length", arch);
    gb_kv_u32(g, key, 64);
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    gb_kv_u32(g, key, 2);
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    gb_kv_u32(g, key, 4);
}

static void build_small(byte_buf *out) {
    gguf_builder g = {0};
    llama_metadata(&g, "llama");
    float values[32] = {0};
    gb_tensor(&g, "output_norm.weight", 1, (uint64_t[]){32}, 0, values, sizeof values);
    gb_tensor(&g, "blk.0.attn_norm.weight", 1, (uint64_t[]){32}, 0, values, sizeof values);
    gb_finish(&g, out);
    gb_free(&g);
}

Test(gguf, every_truncation_fails_cleanly) {
    byte_buf file = {0};
    build_small(&file);
    gguf_file g;
    cr_assert_eq(gguf_parse(file.data, file.len, "small.gguf", &g), GALE_OK, "%s", gale_last_error());
    gguf_close(&g);
    for (size_t len = 0; len < file.len; len++) {
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan catches any overread */
        memcpy(copy, file.data, len);
        cr_assert_neq(gguf_parse(copy, len, "cut.gguf", &g), GALE_OK, "length %zu of %zu accepted", len, file.len);
        cr_assert(strstr(gale_last_error(), "cut.gguf"), "%s", gale_last_error());
        free(copy);
    }
    bb_free(&file);
}

/* Patches bytes of a valid image at a known offset and expects an error. */
typedef struct patch_case {
    size_t offset;
    uint64_t value;
    unsigned width;
    gale_status status;
    const char *needle;
} patch_case;

/* Layout of build_small: magic 0, version 4, n_tensors 8, n_kv 16, first kv key length 24. */
static patch_case lying_headers_cases[] = {
        {0, 0x46554747u ^ 0x20u, 4, GALE_ERR_FORMAT, "magic"},
        {4, 1, 4, GALE_ERR_UNSUPPORTED, "version 1"},
        {4, 99, 4, GALE_ERR_UNSUPPORTED, "version 99"},
        {8, UINT64_C(1) << 60, 8, GALE_ERR_FORMAT, "more than the file"},
        {16, UINT64_C(1) << 60, 8, GALE_ERR_FORMAT, "more than the file"},
        {24, UINT64_C(1) << 62, 8, GALE_ERR_FORMAT, "truncated"},
        {24 + 8 + 20, 77, 4, GALE_ERR_FORMAT, "unknown value type"},
};

ParameterizedTestParameters(gguf, lying_headers) {
    return index_params(sizeof lying_headers_cases / sizeof lying_headers_cases[0]);
}

static void patch(byte_buf *b, size_t offset, uint64_t value, unsigned width) {
    for (unsigned i = 0; i < width; i++) b->data[offset + i] = (uint8_t)(value >> (8 * i));
}

ParameterizedTest(size_t *index, gguf, lying_headers) {
    patch_case *c = &lying_headers_cases[*index];
    byte_buf file = {0};
    build_small(&file);
    patch(&file, c->offset, c->value, c->width);
    gguf_file g;
    assert_error(gguf_parse(file.data, file.len, "lying.gguf", &g), c->status, c->needle);
    bb_free(&file);
}

typedef struct tensor_case {
    uint32_t n_dims;
    uint64_t ne0, ne1;
    uint32_t type;
    size_t data_bytes;
    gale_status status;
    const char *needle;
} tensor_case;

static tensor_case bad_tensor_infos_cases[] = {
        {5, 4, 1, 0, 16, GALE_ERR_FORMAT, "dimensions"},
        {0, 4, 1, 0, 16, GALE_ERR_FORMAT, "dimensions"},
        {2, 4, 0, 0, 16, GALE_ERR_FORMAT, "dimension 1"},
        {1, 4, 1, 99, 16, GALE_ERR_UNSUPPORTED, "ggml type 99"},
        {1, 48, 1, 8, 64, GALE_ERR_FORMAT, "blocks"},             /* Q8_0 row of 48: not whole blocks */
        {1, 64, 1, 0, 16, GALE_ERR_FORMAT, "past the end"},       /* 256 bytes claimed, 16 present */
        {2, UINT64_C(1) << 40, UINT64_C(1) << 40, 0, 16, GALE_ERR_FORMAT, "too large"},
};

ParameterizedTestParameters(gguf, bad_tensor_infos) {
    return index_params(sizeof bad_tensor_infos_cases / sizeof bad_tensor_infos_cases[0]);
}

ParameterizedTest(size_t *index, gguf, bad_tensor_infos) {
    tensor_case *c = &bad_tensor_infos_cases[*index];
    gguf_builder g = {0};
    gb_kv_string(&g, "general.architecture", "llama");
    uint8_t data[256] = {0};
    gb_tensor(&g, "t", c->n_dims, (uint64_t[]){c->ne0, c->ne1, 1, 1, 1}, c->type, data, c->data_bytes);
    byte_buf file = {0};
    gb_finish(&g, &file);
    gguf_file parsed;
    assert_error(gguf_parse(file.data, file.len, "tensors.gguf", &parsed), c->status, c->needle);
    gb_free(&g);
    bb_free(&file);
}

Test(gguf, overlapping_and_misaligned_tensors) {
    gguf_builder g = {0};
    float data[16] = {0};
    gb_tensor(&g, "a", 1, (uint64_t[]){16}, 0, data, sizeof data);
    gb_tensor(&g, "b", 1, (uint64_t[]){16}, 0, data, sizeof data);
    byte_buf file = {0};
    gb_finish(&g, &file);
    /* tensor "b"'s offset field is the last 8 bytes of the infos: point it into "a" */
    size_t infos_end = 24 + g.kv.len + g.infos.len;
    gguf_file parsed;
    patch(&file, infos_end - 8, 32, 8);
    assert_error(gguf_parse(file.data, file.len, "overlap.gguf", &parsed), GALE_ERR_FORMAT, "overlap");
    patch(&file, infos_end - 8, 70, 8);
    assert_error(gguf_parse(file.data, file.len, "overlap.gguf", &parsed), GALE_ERR_FORMAT, "alignment");
    gb_free(&g);
    bb_free(&file);
}

Test(gguf, typed_lookups_name_the_key) {
    byte_buf file = {0};
    build_small(&file);
    gguf_file g;
    cr_assert_eq(gguf_parse(file.data, file.len, "small.gguf", &g), GALE_OK);
    int64_t i;
    gguf_string s;
    assert_error(gguf_get_i64(&g, "llama.context_length", &i), GALE_ERR_MISSING, "llama.context_length");
    assert_error(gguf_get_i64(&g, "general.architecture", &i), GALE_ERR_FORMAT, "general.architecture");
    assert_error(gguf_get_string(&g, "llama.block_count", &s), GALE_ERR_FORMAT, "llama.block_count");
    cr_assert_eq(gguf_get_i64(&g, "llama.block_count", &i), GALE_OK);
    cr_assert_eq(i, 1);
    gguf_close(&g);
    bb_free(&file);
}

static void write_and_load(const byte_buf *file, gale_status want, const char *needle) {
    char *dir = make_temp_dir();
    char path[600];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    write_file(path, file->data, file->len);
    gale_load_params params = gale_load_params_default();
    params.quiet = true;
    gale_model *model = NULL;
    assert_error(gale_model_load(path, &params, &model), want, needle);
    cr_assert_null(model);
    remove_tree(dir);
    free(dir);
}

/* config_from_gguf of llama_metadata plus one more key, into *c; its status. */
static gale_status config_with(const char *key, float value, gale_config *c) {
    gguf_builder g = {0};
    llama_metadata(&g, "llama");
    if (strstr(key, "dimension_count")) gb_kv_u32(&g, key, (uint32_t)value);
    else gb_kv_f32(&g, key, value);
    byte_buf file = {0};
    gb_finish(&g, &file);
    gguf_file parsed;
    cr_assert_eq(gguf_parse(file.data, file.len, "model.gguf", &parsed), GALE_OK, "%s", gale_last_error());
    const gale_status status = config_from_gguf(&parsed, c);
    gguf_close(&parsed);
    gb_free(&g);
    bb_free(&file);
    return status;
}

/* Files from before rope.scaling.type hold only a factor (rope.scaling.factor, or the
 * older rope.scale_linear): llama.cpp scales them linearly, and so does gale. */
Test(gguf, a_rope_factor_without_a_type_is_linear) {
    const char *const keys[] = {"llama.rope.scaling.factor", "llama.rope.scale_linear"};
    for (int k = 0; k < 2; k++) {
        gale_config c;
        cr_assert_eq(config_with(keys[k], 4.0f, &c), GALE_OK, "%s: %s", keys[k], gale_last_error());
        cr_assert_eq(c.layers[0].rope_scaling.type, GALE_ROPE_SCALING_LINEAR, "%s", keys[k]);
        cr_assert_float_eq(c.layers[0].rope_scaling.factor, 4.0f, 1e-6, "%s", keys[k]);
        config_free(&c);
    }
}

/* Partial rotary embedding (a rotated part smaller than the head) is refused by name. */
Test(gguf, partial_rotation_is_refused) {
    gale_config c;
    assert_error(config_with("llama.rope.dimension_count", 8, &c), GALE_ERR_UNSUPPORTED, "rope.dimension_count 8");
    /* the whole head (32 / 2 heads) is fine */
    cr_assert_eq(config_with("llama.rope.dimension_count", 16, &c), GALE_OK, "%s", gale_last_error());
    config_free(&c);
}

Test(gguf, unsupported_architecture) {
    gguf_builder g = {0};
    llama_metadata(&g, "phi3");
    byte_buf file = {0};
    gb_finish(&g, &file);
    write_and_load(&file, GALE_ERR_UNSUPPORTED, "'phi3'");
    gb_free(&g);
    bb_free(&file);
}

Test(gguf, missing_required_metadata) {
    gguf_builder g = {0};
    gb_kv_string(&g, "general.architecture", "llama");
    gb_kv_u32(&g, "llama.block_count", 1);
    byte_buf file = {0};
    gb_finish(&g, &file);
    write_and_load(&file, GALE_ERR_MISSING, "llama.embedding_length");
    gb_free(&g);
    bb_free(&file);
}

Test(gguf, missing_tensor_is_named) {
    byte_buf file = {0};
    build_small(&file);
    write_and_load(&file, GALE_ERR_MISSING, "model.embed_tokens.weight");
    bb_free(&file);
}

Test(gguf, empty_file_and_wrong_magic_through_the_loader) {
    byte_buf empty = {0};
    bb_put(&empty, "", 0);
    char *dir = make_temp_dir();
    char path[600];
    snprintf(path, sizeof path, "%s/empty.gguf", dir);
    write_file(path, "", 0);
    gale_model *model = NULL;
    gale_load_params params = gale_load_params_default();
    params.quiet = true;
    assert_error(gale_model_load(path, &params, &model), GALE_ERR_FORMAT, "empty.gguf");
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    write_file(path, "hello world", 11);
    assert_error(gale_model_load(path, &params, &model), GALE_ERR_FORMAT, "neither a model directory");
    remove_tree(dir);
    free(dir);
}
