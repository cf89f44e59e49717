#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/status.h"

/* The header is JSON text; real ones are well under a few MiB even for thousands of
 * tensors. A cap keeps a lying length from making cJSON chew on gigabytes. */
#define SAFETENSORS_HEADER_MAX (UINT64_C(100) << 20)

typedef struct safetensors_dtype {
    const char *name;
    unsigned size;
    int gale_dtype; /* -1: a dtype gale cannot use as a weight */
} safetensors_dtype;

static const safetensors_dtype known_dtypes[] = {
    {"F32", 4, GALE_F32},  {"F16", 2, GALE_F16},  {"BF16", 2, GALE_BF16}, {"F64", 8, -1},
    {"I64", 8, -1},        {"U64", 8, -1},        {"I32", 4, -1},         {"U32", 4, -1},
    {"I16", 2, -1},        {"U16", 2, -1},        {"I8", 1, -1},          {"U8", 1, -1},
    {"BOOL", 1, -1},       {"F8_E4M3", 1, -1},    {"F8_E5M2", 1, -1},
};

static const safetensors_dtype *find_dtype(const char *name) {
    for (size_t i = 0; i < sizeof known_dtypes / sizeof known_dtypes[0]; i++)
        if (strcmp(known_dtypes[i].name, name) == 0) return &known_dtypes[i];
    return NULL;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static bool json_to_u64(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0 || floor(v) != v) return false;
    *out = (uint64_t)v;
    return true;
}

/* Reads shape and checks that data_offsets spans exactly numel × element size. */
static gale_status parse_tensor_entry(const cJSON *entry, const char *source, uint64_t data_size,
                                      const safetensors_dtype **out_dtype, gale_tensor *t,
                                      uint64_t *out_begin) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return gale_error(GALE_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", source, name);
    const cJSON *dtype_item = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape_item = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offsets_item = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dtype_item) || !cJSON_IsArray(shape_item) || !cJSON_IsArray(offsets_item))
        return gale_error(GALE_ERR_FORMAT, "%s: tensor '%s': needs string \"dtype\", array \"shape\" and array \"data_offsets\"",
                          source, name);
    const safetensors_dtype *dtype = find_dtype(dtype_item->valuestring);
    if (!dtype)
        return gale_error(GALE_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%s\"", source, name,
                          dtype_item->valuestring);
    int n_dims = cJSON_GetArraySize(shape_item);
    if (n_dims > TENSOR_MAX_DIMS)
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d)", source,
                          name, n_dims, TENSOR_MAX_DIMS);
    memset(t, 0, sizeof *t);
    t->n_dims = n_dims;
    uint64_t numel = 1;
    for (int d = 0; d < n_dims; d++) {
        uint64_t extent;
        if (!json_to_u64(cJSON_GetArrayItem(shape_item, d), &extent))
            return gale_error(GALE_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                              source, name, d);
        if (extent != 0 && numel > (UINT64_C(1) << 53) / extent)
            return gale_error(GALE_ERR_FORMAT, "%s: tensor '%s': shape is too large", source, name);
        numel *= extent;
        t->shape[d] = (int64_t)extent;
    }
    uint64_t begin, end;
    if (cJSON_GetArraySize(offsets_item) != 2 ||
        !json_to_u64(cJSON_GetArrayItem(offsets_item, 0), &begin) ||
        !json_to_u64(cJSON_GetArrayItem(offsets_item, 1), &end) || begin > end)
        return gale_error(GALE_ERR_FORMAT, "%s: tensor '%s': data_offsets must be [begin, end] with begin <= end",
                          source, name);
    if (end > data_size)
        return gale_error(GALE_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data (%llu bytes)",
                          source, name, (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)data_size);
    if (end - begin != numel * dtype->size)
        return gale_error(GALE_ERR_FORMAT, "%s: tensor '%s': %llu bytes, but %s × %llu elements needs %llu",
                          source, name, (unsigned long long)(end - begin), dtype->name,
                          (unsigned long long)numel, (unsigned long long)(numel * dtype->size));
    t->dtype = dtype->gale_dtype >= 0 ? (gale_dtype)dtype->gale_dtype : GALE_F32;
    t->nbytes = end - begin;
    *out_dtype = dtype;
    *out_begin = begin;
    return GALE_OK;
}

typedef struct extent {
    uint64_t begin, end;
    const char *name;
} extent;

static int compare_extents(const void *a, const void *b) {
    const extent *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static gale_status check_overlaps(extent *extents, size_t n, const char *source) {
    qsort(extents, n, sizeof *extents, compare_extents);
    for (size_t i = 1; i < n; i++)
        if (extents[i].begin < extents[i - 1].end)
            return gale_error(GALE_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data", source,
                              extents[i - 1].name, extents[i].name);
    return GALE_OK;
}

static gale_status parse_header_json(const cJSON *root, const uint8_t *data, uint64_t data_size,
                                     const char *source, tensor_table *table) {
    if (!cJSON_IsObject(root))
        return gale_error(GALE_ERR_FORMAT, "%s: header is not a JSON object", source);
    size_t n_entries = (size_t)cJSON_GetArraySize(root);
    extent *extents = calloc(n_entries ? n_entries : 1, sizeof *extents);
    if (!extents) return gale_error(GALE_ERR_OOM, "%s: out of memory", source);
    size_t n_extents = 0;
    gale_status status = GALE_OK;
    for (const cJSON *entry = root->child; entry && status == GALE_OK; entry = entry->next) {
        if (strcmp(entry->string, "__metadata__") == 0) continue;
        const safetensors_dtype *dtype = NULL;
        gale_tensor tensor;
        uint64_t begin = 0;
        status = parse_tensor_entry(entry, source, data_size, &dtype, &tensor, &begin);
        if (status != GALE_OK) break;
        tensor.data = data + begin;
        extents[n_extents++] = (extent){begin, begin + tensor.nbytes, entry->string};
        status = tensor_table_add(table, entry->string, &tensor, source,
                                  dtype->gale_dtype < 0 ? dtype->name : NULL);
    }
    if (status == GALE_OK) status = check_overlaps(extents, n_extents, source);
    free(extents);
    return status;
}

gale_status safetensors_parse(const uint8_t *buf, size_t size, const char *source,
                              tensor_table *table) {
    if (size < 8)
        return gale_error(GALE_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header", source, size);
    uint64_t header_len = load_u64(buf);
    if (header_len > size - 8)
        return gale_error(GALE_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)",
                          source, (unsigned long long)header_len, size);
    if (header_len > SAFETENSORS_HEADER_MAX)
        return gale_error(GALE_ERR_FORMAT, "%s: header length %llu exceeds %llu bytes", source,
                          (unsigned long long)header_len, (unsigned long long)SAFETENSORS_HEADER_MAX);
    const char *text = (const char *)buf + 8;
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)header_len, &parse_end, false);
    if (!root)
        return gale_error(GALE_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu of the header)",
                          source, parse_end ? (size_t)(parse_end - text) : (size_t)0);
    /* the format pads the header with spaces; anything else after the JSON is corrupt */
    for (const char *p = parse_end; p < text + header_len; p++) {
        if (!isspace((unsigned char)*p) && *p != '\0') {
            cJSON_Delete(root);
            return gale_error(GALE_ERR_FORMAT, "%s: trailing bytes after the header JSON", source);
        }
    }
    const uint8_t *data = buf + 8 + header_len;
    gale_status status = parse_header_json(root, data, size - 8 - header_len, source, table);
    cJSON_Delete(root);
    return status;
}

static gale_status set_add_file(safetensors_set *set, const char *path, mapped_file **out) {
    mapped_file *grown = realloc(set->files, (set->n_files + 1) * sizeof *grown);
    if (!grown) return gale_error(GALE_ERR_OOM, "%s: out of memory", path);
    set->files = grown;
    GALE_TRY(mapped_file_open(path, &set->files[set->n_files]));
    *out = &set->files[set->n_files++];
    return GALE_OK;
}

gale_status safetensors_open_file(const char *path, safetensors_set *set, tensor_table *table) {
    mapped_file *file = NULL;
    GALE_TRY(set_add_file(set, path, &file));
    return safetensors_parse(file->data, file->size, file->path, table);
}

/* Shard names come from a file gale did not write: keep them inside the directory. */
static bool shard_name_is_plain(const char *name) {
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, "..") != 0 &&
           strcmp(name, ".") != 0;
}

static gale_status open_shards(const char *dir, const char *index_path, const cJSON *weight_map,
                               safetensors_set *set, tensor_table *table) {
    /* each distinct shard once, in the order the map first names it */
    for (const cJSON *item = weight_map->child; item; item = item->next) {
        if (!cJSON_IsString(item) || !shard_name_is_plain(item->valuestring))
            return gale_error(GALE_ERR_FORMAT, "%s: weight_map['%s'] is not a file name in the model directory",
                              index_path, item->string);
        bool seen = false;
        for (const cJSON *prev = weight_map->child; prev != item && !seen; prev = prev->next)
            seen = strcmp(prev->valuestring, item->valuestring) == 0;
        if (seen) continue;
        char *shard_path = path_join(dir, item->valuestring);
        if (!shard_path) return gale_error(GALE_ERR_OOM, "%s: out of memory", index_path);
        gale_status status = safetensors_open_file(shard_path, set, table);
        free(shard_path);
        GALE_TRY(status);
    }
    GALE_TRY(tensor_table_finish(table));
    for (const cJSON *item = weight_map->child; item; item = item->next) {
        const tensor_entry *entry = tensor_table_find(table, item->string);
        if (!entry)
            return gale_error(GALE_ERR_MISSING, "%s: tensor '%s' is not in shard %s", index_path,
                              item->string, item->valuestring);
        const char *base = strrchr(entry->source, '/');
        base = base ? base + 1 : entry->source;
        if (strcmp(base, item->valuestring) != 0)
            return gale_error(GALE_ERR_FORMAT, "%s: tensor '%s' is listed in %s but found in %s",
                              index_path, item->string, item->valuestring, base);
    }
    return GALE_OK;
}

static gale_status open_index(const char *dir, const char *index_path, safetensors_set *set,
                              tensor_table *table) {
    char *text;
    size_t len;
    GALE_TRY(read_text_file(index_path, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return gale_error(GALE_ERR_FORMAT, "%s: not valid JSON", index_path);
    const cJSON *weight_map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    gale_status status;
    if (!cJSON_IsObject(weight_map) || !weight_map->child)
        status = gale_error(GALE_ERR_FORMAT, "%s: needs a non-empty object \"weight_map\"", index_path);
    else
        status = open_shards(dir, index_path, weight_map, set, table);
    cJSON_Delete(root);
    return status;
}

gale_status safetensors_open_dir(const char *dir, safetensors_set *set, tensor_table *table) {
    char *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    gale_status status;
    if (!single || !index)
        status = gale_error(GALE_ERR_OOM, "%s: out of memory", dir);
    else if (path_exists(single)) {
        status = safetensors_open_file(single, set, table);
        if (status == GALE_OK) status = tensor_table_finish(table);
    } else if (path_exists(index))
        status = open_index(dir, index, set, table);
    else
        status = gale_error(GALE_ERR_MISSING, "%s: neither model.safetensors nor model.safetensors.index.json is there",
                            dir);
    free(single);
    free(index);
    return status;
}

void safetensors_set_close(safetensors_set *set) {
    for (size_t i = 0; i < set->n_files; i++) mapped_file_close(&set->files[i]);
    free(set->files);
    memset(set, 0, sizeof *set);
}
