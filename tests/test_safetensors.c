/* safetensors reading: the tiny checkpoints transformers wrote, and every way a header
 * can lie (REFERENCE.md §5). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_builder.h"
#include "model/safetensors.h"
#include "test_support.h"

/* Every tensor transformers saved is found with its dtype and shape. */
static void check_checkpoint(const char *dir) {
    safetensors_set set = {0};
    tensor_table table = {0};
    cr_assert_eq(safetensors_open_dir(fixture(dir), &set, &table), GALE_OK, "%s", gale_last_error());
    char path[512];
    snprintf(path, sizeof path, "%s/expected.json", fixture(dir));
    cJSON *expected = load_json(path);
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(expected, "tensors");
    const cJSON *dtypes = cJSON_GetObjectItemCaseSensitive(expected, "dtypes");
    cr_assert_eq(table.count, (size_t)cJSON_GetArraySize(tensors), "tensor count");
    const cJSON *shape;
    cJSON_ArrayForEach(shape, tensors) {
        const tensor_entry *e = tensor_table_find(&table, shape->string);
        cr_assert_not_null(e, "tensor %s not found", shape->string);
        cr_assert_eq(e->tensor.n_dims, cJSON_GetArraySize(shape), "%s rank", shape->string);
        for (int d = 0; d < e->tensor.n_dims; d++)
            cr_assert_eq(e->tensor.shape[d], cJSON_GetArrayItem(shape, d)->valueint, "%s dim %d", shape->string, d);
        const char *dtype = cJSON_GetObjectItemCaseSensitive(dtypes, shape->string)->valuestring;
        cr_assert_str_eq(gale_dtype_name(e->tensor.dtype), dtype, "%s dtype", shape->string);
        cr_assert_null(e->unsupported_dtype);
    }
    cJSON_Delete(expected);
    tensor_table_free(&table);
    safetensors_set_close(&set);
}

ParameterizedTestParameters(safetensors, reads_transformers_checkpoints) { return index_params(N_TINY_CHECKPOINTS); }

ParameterizedTest(size_t *index, safetensors, reads_transformers_checkpoints) {
    check_checkpoint(tiny_checkpoints[*index]);
}

Test(safetensors, sharded_checkpoint_spans_several_files) {
    safetensors_set set = {0};
    tensor_table table = {0};
    cr_assert_eq(safetensors_open_dir(fixture("tiny/llama_sharded"), &set, &table), GALE_OK, "%s", gale_last_error());
    cr_assert_geq(set.n_files, 2);
    tensor_table_free(&table);
    safetensors_set_close(&set);
}

Test(safetensors, metadata_and_padding_are_accepted) {
    static const float values[2] = {1.5f, -2.0f};
    byte_buf file = {0};
    build_safetensors(&file, "{\"__metadata__\": {\"format\": \"pt\"}, \"w\": {\"dtype\": \"F32\", \"shape\": [2], "
                             "\"data_offsets\": [0, 8]}}    ", values, sizeof values);
    tensor_table table = {0};
    cr_assert_eq(safetensors_parse(file.data, file.len, "padded.safetensors", &table), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(table.count, 1);
    cr_assert_eq(memcmp(table.entries[0].tensor.data, values, sizeof values), 0);
    tensor_table_free(&table);
    bb_free(&file);
}

typedef struct bad_header {
    const char *header; /* NULL: raw bytes below */
    size_t data_len;
    gale_status status;
    const char *needle;
} bad_header;

static bad_header bad_headers_cases[] = {
        {"not json", 0, GALE_ERR_FORMAT, "not valid JSON"},
        {"[1, 2, 3]", 0, GALE_ERR_FORMAT, "not a JSON object"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}} xx", 8, GALE_ERR_FORMAT, "trailing"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, GALE_ERR_FORMAT, "past the end"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 4]}}", 8, GALE_ERR_FORMAT, "begin <= end"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 12, GALE_ERR_FORMAT, "needs 12"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
         "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12, GALE_ERR_FORMAT, "overlap"},
        {"{\"w\": {\"dtype\": \"F17\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, GALE_ERR_FORMAT, "unknown dtype"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8, GALE_ERR_FORMAT, "shape[0]"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", 8, GALE_ERR_FORMAT, "shape[0]"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, GALE_ERR_FORMAT, "data_offsets"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 8, GALE_ERR_FORMAT, "data_offsets"},
        {"{\"w\": 5}", 0, GALE_ERR_FORMAT, "not an object"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4, GALE_ERR_UNSUPPORTED,
         "dimensions"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 8]}}", 8,
         GALE_ERR_FORMAT, "too large"},
};

ParameterizedTestParameters(safetensors, bad_headers) {
    return index_params(sizeof bad_headers_cases / sizeof bad_headers_cases[0]);
}

ParameterizedTest(size_t *index, safetensors, bad_headers) {
    bad_header *bad = &bad_headers_cases[*index];
    uint8_t data[64] = {0};
    byte_buf file = {0};
    build_safetensors(&file, bad->header, data, bad->data_len);
    tensor_table table = {0};
    assert_error(safetensors_parse(file.data, file.len, "bad.safetensors", &table), bad->status, bad->needle);
    cr_assert(strstr(gale_last_error(), "bad.safetensors"), "names the file: %s", gale_last_error());
    tensor_table_free(&table);
    bb_free(&file);
}

Test(safetensors, empty_and_short_files) {
    tensor_table table = {0};
    assert_error(safetensors_parse((const uint8_t *)"", 0, "empty.safetensors", &table), GALE_ERR_FORMAT, "too short");
    assert_error(safetensors_parse((const uint8_t *)"\x08\0\0\0", 4, "short.safetensors", &table), GALE_ERR_FORMAT,
                 "too short");
    tensor_table_free(&table);
}

Test(safetensors, header_length_past_end_of_file) {
    byte_buf file = {0};
    bb_u64(&file, 1000);
    bb_put(&file, "{}", 2);
    tensor_table table = {0};
    assert_error(safetensors_parse(file.data, file.len, "lying.safetensors", &table), GALE_ERR_FORMAT, "header length");
    bb_u64(&file, 0);
    /* 2^64-1: must not wrap around when added to 8 */
    memset(file.data, 0xff, 8);
    assert_error(safetensors_parse(file.data, file.len, "lying.safetensors", &table), GALE_ERR_FORMAT, "header length");
    tensor_table_free(&table);
    bb_free(&file);
}

Test(safetensors, every_truncation_of_a_valid_file_fails_cleanly) {
    static const float values[4] = {1, 2, 3, 4};
    byte_buf file = {0};
    build_safetensors(&file, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", values,
                      sizeof values);
    for (size_t len = 0; len < file.len; len++) {
        uint8_t *copy = malloc(len ? len : 1); /* exact size, so ASan sees any overread */
        memcpy(copy, file.data, len);
        tensor_table table = {0};
        cr_assert_neq(safetensors_parse(copy, len, "cut.safetensors", &table), GALE_OK, "length %zu accepted", len);
        cr_assert_neq(gale_last_error()[0], '\0');
        tensor_table_free(&table);
        free(copy);
    }
    bb_free(&file);
}

Test(safetensors, non_float_dtype_is_kept_but_marked) {
    static const uint8_t data[8] = {0};
    byte_buf file = {0};
    build_safetensors(&file, "{\"ids\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", data, 8);
    tensor_table table = {0};
    cr_assert_eq(safetensors_parse(file.data, file.len, "ids.safetensors", &table), GALE_OK);
    cr_assert_str_eq(table.entries[0].unsupported_dtype, "I64");
    tensor_table_free(&table);
    bb_free(&file);
}

/* ---- sharded sets ---- */

static char *sharded_copy(const char *index_json) {
    char *dir = make_temp_dir();
    static const float values[2] = {1, 2};
    byte_buf file = {0};
    build_safetensors(&file, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", values, 8);
    char *path = malloc(strlen(dir) + 64);
    sprintf(path, "%s/shard-1.safetensors", dir);
    write_file(path, file.data, file.len);
    bb_free(&file);
    build_safetensors(&file, "{\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", values, 8);
    sprintf(path, "%s/shard-2.safetensors", dir);
    write_file(path, file.data, file.len);
    bb_free(&file);
    free(path);
    write_text_file(dir, "model.safetensors.index.json", index_json);
    return dir;
}

typedef struct bad_index {
    const char *json;
    gale_status status;
    const char *needle;
} bad_index;

static bad_index bad_index_cases[] = {
        {"{\"weight_map\": {\"a\": \"shard-1.safetensors\", \"b\": \"shard-2.safetensors\"}}", GALE_OK, ""},
        {"{\"weight_map\": ", GALE_ERR_FORMAT, "not valid JSON"},
        {"{\"metadata\": {}}", GALE_ERR_FORMAT, "weight_map"},
        {"{\"weight_map\": {\"a\": \"shard-1.safetensors\", \"c\": \"shard-2.safetensors\"}}", GALE_ERR_MISSING, "'c'"},
        {"{\"weight_map\": {\"a\": \"shard-2.safetensors\", \"b\": \"shard-2.safetensors\"}}", GALE_ERR_MISSING, "'a'"},
        {"{\"weight_map\": {\"b\": \"shard-1.safetensors\", \"a\": \"shard-2.safetensors\"}}", GALE_ERR_FORMAT,
         "'b' is listed in shard-1.safetensors but found in shard-2.safetensors"},
        {"{\"weight_map\": {\"a\": \"../shard-1.safetensors\"}}", GALE_ERR_FORMAT, "not a file name"},
        {"{\"weight_map\": {\"a\": \"shard-9.safetensors\"}}", GALE_ERR_IO, "shard-9"},
        {"{\"weight_map\": {\"a\": 3}}", GALE_ERR_FORMAT, "weight_map"},
};

ParameterizedTestParameters(safetensors, bad_index) {
    return index_params(sizeof bad_index_cases / sizeof bad_index_cases[0]);
}

ParameterizedTest(size_t *index, safetensors, bad_index) {
    bad_index *bad = &bad_index_cases[*index];
    char *dir = sharded_copy(bad->json);
    safetensors_set set = {0};
    tensor_table table = {0};
    gale_status status = safetensors_open_dir(dir, &set, &table);
    if (bad->status == GALE_OK)
        cr_assert_eq(status, GALE_OK, "%s", gale_last_error());
    else
        assert_error(status, bad->status, bad->needle);
    tensor_table_free(&table);
    safetensors_set_close(&set);
    remove_tree(dir);
    free(dir);
}

Test(safetensors, tensor_in_two_shards_is_rejected) {
    char *dir = sharded_copy("{\"weight_map\": {\"a\": \"shard-1.safetensors\", \"b\": \"shard-2.safetensors\"}}");
    /* shard-2 now also holds "a" */
    static const float values[4] = {0};
    byte_buf file = {0};
    build_safetensors(&file, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                             "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", values, 16);
    char path[600];
    snprintf(path, sizeof path, "%s/shard-2.safetensors", dir);
    write_file(path, file.data, file.len);
    bb_free(&file);
    safetensors_set set = {0};
    tensor_table table = {0};
    assert_error(safetensors_open_dir(dir, &set, &table), GALE_ERR_FORMAT, "twice");
    tensor_table_free(&table);
    safetensors_set_close(&set);
    remove_tree(dir);
    free(dir);
}

Test(safetensors, directory_without_weights) {
    char *dir = make_temp_dir();
    safetensors_set set = {0};
    tensor_table table = {0};
    assert_error(safetensors_open_dir(dir, &set, &table), GALE_ERR_MISSING, "model.safetensors");
    safetensors_set_close(&set);
    remove_tree(dir);
    free(dir);
}
