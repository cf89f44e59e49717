#include "model/gguf.h"

#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/status.h"

/* A bounds-checked cursor over the file image. Every read checks the bytes left first,
 * so counts and lengths in a lying header end in an error, not an overread. */
typedef struct reader {
    const uint8_t *buf;
    size_t size;
    size_t pos;
    const char *name;
} reader;

static bool reader_take(reader *r, uint64_t n, const uint8_t **out) {
    if (n > r->size - r->pos) return false;
    *out = r->buf + r->pos;
    r->pos += (size_t)n;
    return true;
}

static gale_status reader_truncated(const reader *r, const char *what) {
    return gale_error(GALE_ERR_FORMAT, "%s: truncated GGUF: %s at byte %zu runs past the end (%zu bytes)",
                      r->name, what, r->pos, r->size);
}

static gale_status read_u32(reader *r, const char *what, uint32_t *out) {
    const uint8_t *p;
    if (!reader_take(r, 4, &p)) return reader_truncated(r, what);
    *out = load_u32(p);
    return GALE_OK;
}

static gale_status read_u64(reader *r, const char *what, uint64_t *out) {
    const uint8_t *p;
    if (!reader_take(r, 8, &p)) return reader_truncated(r, what);
    *out = load_u64(p);
    return GALE_OK;
}

static gale_status read_string(reader *r, const char *what, gguf_string *out) {
    uint64_t len = 0;
    GALE_TRY(read_u64(r, what, &len));
    const uint8_t *p;
    if (!reader_take(r, len, &p)) return reader_truncated(r, what);
    out->ptr = (const char *)p;
    out->len = len;
    return GALE_OK;
}

static unsigned scalar_size(gguf_value_type type) {
    switch (type) {
    case GGUF_TYPE_U8: case GGUF_TYPE_I8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_U16: case GGUF_TYPE_I16: return 2;
    case GGUF_TYPE_U32: case GGUF_TYPE_I32: case GGUF_TYPE_F32: return 4;
    case GGUF_TYPE_U64: case GGUF_TYPE_I64: case GGUF_TYPE_F64: return 8;
    default: return 0;
    }
}

/* Decodes a scalar of a numeric type from p into the kv's union. */
static void decode_scalar(gguf_value_type type, const uint8_t *p, gguf_kv *kv) {
    switch (type) {
    case GGUF_TYPE_U8: case GGUF_TYPE_BOOL: kv->v.u = p[0]; break;
    case GGUF_TYPE_I8: kv->v.i = (int8_t)p[0]; break;
    case GGUF_TYPE_U16: kv->v.u = load_u16(p); break;
    case GGUF_TYPE_I16: kv->v.i = (int16_t)load_u16(p); break;
    case GGUF_TYPE_U32: kv->v.u = load_u32(p); break;
    case GGUF_TYPE_I32: kv->v.i = (int32_t)load_u32(p); break;
    case GGUF_TYPE_F32: kv->v.f = load_f32(p); break;
    case GGUF_TYPE_U64: kv->v.u = load_u64(p); break;
    case GGUF_TYPE_I64: kv->v.i = (int64_t)load_u64(p); break;
    case GGUF_TYPE_F64: {
        uint64_t bits = load_u64(p);
        memcpy(&kv->v.f, &bits, sizeof kv->v.f);
        break;
    }
    default: break;
    }
}

static gale_status read_array(reader *r, gguf_kv *kv) {
    uint32_t elem_type = 0;
    uint64_t count = 0;
    GALE_TRY(read_u32(r, "array element type", &elem_type));
    GALE_TRY(read_u64(r, "array length", &count));
    size_t start = r->pos;
    if (elem_type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < count; i++) {
            gguf_string s;
            GALE_TRY(read_string(r, "string array element", &s));
        }
    } else if (elem_type == GGUF_TYPE_ARRAY) {
        /* nested arrays: no model metadata gale reads uses them */
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: key '%.*s': arrays of arrays are not supported",
                          r->name, (int)kv->key.len, kv->key.ptr);
    } else {
        unsigned size = scalar_size((gguf_value_type)elem_type);
        if (!size)
            return gale_error(GALE_ERR_FORMAT, "%s: key '%.*s': unknown array element type %u",
                              r->name, (int)kv->key.len, kv->key.ptr, elem_type);
        const uint8_t *p;
        if (count > (r->size - r->pos) / size || !reader_take(r, count * size, &p))
            return reader_truncated(r, "array data");
    }
    kv->v.arr.type = (gguf_value_type)elem_type;
    kv->v.arr.count = count;
    kv->v.arr.data = r->buf + start;
    kv->v.arr.nbytes = r->pos - start;
    return GALE_OK;
}

static gale_status read_kv(reader *r, gguf_kv *kv) {
    GALE_TRY(read_string(r, "metadata key", &kv->key));
    uint32_t type = 0;
    GALE_TRY(read_u32(r, "metadata value type", &type));
    kv->type = (gguf_value_type)type;
    if (type == GGUF_TYPE_STRING) return read_string(r, "metadata string", &kv->v.str);
    if (type == GGUF_TYPE_ARRAY) return read_array(r, kv);
    unsigned size = scalar_size(kv->type);
    if (!size)
        return gale_error(GALE_ERR_FORMAT, "%s: key '%.*s': unknown value type %u", r->name,
                          (int)kv->key.len, kv->key.ptr, type);
    const uint8_t *p;
    if (!reader_take(r, size, &p)) return reader_truncated(r, "metadata value");
    decode_scalar(kv->type, p, kv);
    return GALE_OK;
}

static bool ggml_type_to_dtype(uint32_t ggml_type, gale_dtype *out) {
    switch (ggml_type) {
    case 0: *out = GALE_F32; return true;
    case 1: *out = GALE_F16; return true;
    case 2: *out = GALE_Q4_0; return true;
    case 3: *out = GALE_Q4_1; return true;
    case 6: *out = GALE_Q5_0; return true;
    case 7: *out = GALE_Q5_1; return true;
    case 8: *out = GALE_Q8_0; return true;
    case 12: *out = GALE_Q4_K; return true;
    case 13: *out = GALE_Q5_K; return true;
    case 14: *out = GALE_Q6_K; return true;
    case 30: *out = GALE_BF16; return true;
    default: return false;
    }
}

static gale_status read_tensor_info(reader *r, gguf_tensor_info *t) {
    GALE_TRY(read_string(r, "tensor name", &t->name));
    GALE_TRY(read_u32(r, "tensor dimension count", &t->n_dims));
    const int name_len = (int)(t->name.len > 200 ? 200 : t->name.len);
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return gale_error(GALE_ERR_FORMAT, "%s: tensor '%.*s': %u dimensions (1 to %d allowed)",
                          r->name, name_len, t->name.ptr, t->n_dims, GGUF_MAX_DIMS);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        GALE_TRY(read_u64(r, "tensor dimension", &t->ne[d]));
        /* 2^62 bounds every product below so it cannot wrap */
        if (t->ne[d] == 0 || t->ne[d] > (UINT64_C(1) << 62) / numel)
            return gale_error(GALE_ERR_FORMAT, "%s: tensor '%.*s': dimension %u is %llu (zero or too large)",
                              r->name, name_len, t->name.ptr, d, (unsigned long long)t->ne[d]);
        numel *= t->ne[d];
    }
    for (uint32_t d = t->n_dims; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    GALE_TRY(read_u32(r, "tensor type", &t->ggml_type));
    GALE_TRY(read_u64(r, "tensor offset", &t->offset));
    if (!ggml_type_to_dtype(t->ggml_type, &t->dtype))
        return gale_error(GALE_ERR_UNSUPPORTED,
                          "%s: tensor '%.*s': ggml type %u is not supported (gale reads F32, F16, "
                          "BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                          r->name, name_len, t->name.ptr, t->ggml_type);
    uint64_t row_bytes;
    if (!dtype_row_bytes(t->dtype, t->ne[0], &row_bytes))
        return gale_error(GALE_ERR_FORMAT, "%s: tensor '%.*s': row of %llu values is not a whole number of %s blocks",
                          r->name, name_len, t->name.ptr, (unsigned long long)t->ne[0],
                          gale_dtype_name(t->dtype));
    uint64_t rows = numel / t->ne[0];
    if (rows > UINT64_MAX / row_bytes)
        return gale_error(GALE_ERR_FORMAT, "%s: tensor '%.*s': size overflows", r->name, name_len,
                          t->name.ptr);
    t->nbytes = rows * row_bytes;
    return GALE_OK;
}

static int compare_by_offset(const void *a, const void *b) {
    const gguf_tensor_info *x = *(const gguf_tensor_info *const *)a;
    const gguf_tensor_info *y = *(const gguf_tensor_info *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Tensors must lie inside the data section, aligned, and must not overlap. */
static gale_status check_tensor_extents(gguf_file *g) {
    if (g->n_tensors == 0) return GALE_OK;
    const gguf_tensor_info **by_offset = malloc(g->n_tensors * sizeof *by_offset);
    if (!by_offset) return gale_error(GALE_ERR_OOM, "%s: out of memory", g->name);
    for (uint64_t i = 0; i < g->n_tensors; i++) by_offset[i] = &g->tensors[i];
    qsort(by_offset, g->n_tensors, sizeof *by_offset, compare_by_offset);
    gale_status status = GALE_OK;
    for (uint64_t i = 0; i < g->n_tensors && status == GALE_OK; i++) {
        const gguf_tensor_info *t = by_offset[i];
        const int name_len = (int)(t->name.len > 200 ? 200 : t->name.len);
        if (t->offset % g->alignment != 0)
            status = gale_error(GALE_ERR_FORMAT, "%s: tensor '%.*s': offset %llu is not a multiple of the alignment %llu",
                                g->name, name_len, t->name.ptr, (unsigned long long)t->offset,
                                (unsigned long long)g->alignment);
        else if (t->offset > g->data_size || t->nbytes > g->data_size - t->offset)
            status = gale_error(GALE_ERR_FORMAT, "%s: tensor '%.*s': bytes [%llu, +%llu) lie past the end of the data section (%llu bytes)",
                                g->name, name_len, t->name.ptr, (unsigned long long)t->offset,
                                (unsigned long long)t->nbytes, (unsigned long long)g->data_size);
        else if (i > 0 && by_offset[i - 1]->offset + by_offset[i - 1]->nbytes > t->offset)
            status = gale_error(GALE_ERR_FORMAT, "%s: tensors '%.*s' and '%.*s' overlap", g->name,
                                (int)by_offset[i - 1]->name.len, by_offset[i - 1]->name.ptr,
                                name_len, t->name.ptr);
    }
    free(by_offset);
    return status;
}

static gale_status read_alignment(gguf_file *g) {
    g->alignment = 32;
    const gguf_kv *kv = gguf_find(g, "general.alignment");
    if (!kv) return GALE_OK;
    int64_t alignment = 0;
    GALE_TRY(gguf_get_i64(g, "general.alignment", &alignment));
    if (alignment <= 0 || alignment > (1 << 20) || (alignment & (alignment - 1)) != 0)
        return gale_error(GALE_ERR_FORMAT, "%s: general.alignment %lld is not a power of two up to 1 MiB",
                          g->name, (long long)alignment);
    g->alignment = (uint64_t)alignment;
    return GALE_OK;
}

static gale_status parse_sections(reader *r, gguf_file *g) {
    const uint8_t *magic;
    if (!reader_take(r, 4, &magic)) return reader_truncated(r, "magic");
    if (memcmp(magic, "GGUF", 4) != 0)
        return gale_error(GALE_ERR_FORMAT, "%s: not a GGUF file (magic is not \"GGUF\")", g->name);
    GALE_TRY(read_u32(r, "version", &g->version));
    if (g->version != 2 && g->version != 3)
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: GGUF version %u (gale reads 2 and 3)", g->name,
                          g->version);
    GALE_TRY(read_u64(r, "tensor count", &g->n_tensors));
    GALE_TRY(read_u64(r, "metadata count", &g->n_kv));
    /* each kv takes >= 12 bytes and each tensor info >= 24, which bounds the allocations
     * by the file size whatever the header claims */
    size_t left = r->size - r->pos;
    if (g->n_kv > left / 12 || g->n_tensors > left / 24)
        return gale_error(GALE_ERR_FORMAT, "%s: header claims %llu tensors and %llu metadata keys, more than the file can hold",
                          g->name, (unsigned long long)g->n_tensors, (unsigned long long)g->n_kv);
    g->kvs = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return gale_error(GALE_ERR_OOM, "%s: out of memory", g->name);
    for (uint64_t i = 0; i < g->n_kv; i++) GALE_TRY(read_kv(r, &g->kvs[i]));
    GALE_TRY(read_alignment(g));
    for (uint64_t i = 0; i < g->n_tensors; i++) GALE_TRY(read_tensor_info(r, &g->tensors[i]));
    uint64_t data_start = (r->pos + g->alignment - 1) / g->alignment * g->alignment;
    if (data_start > r->size) data_start = r->size;
    g->data = r->buf + data_start;
    g->data_size = r->size - data_start;
    return check_tensor_extents(g);
}

gale_status gguf_parse(const uint8_t *buf, size_t size, const char *name, gguf_file *out) {
    memset(out, 0, sizeof *out);
    out->name = name;
    reader r = {.buf = buf, .size = size, .pos = 0, .name = name};
    gale_status status = parse_sections(&r, out);
    if (status != GALE_OK) {
        free(out->kvs);
        free(out->tensors);
        out->kvs = NULL;
        out->tensors = NULL;
    }
    return status;
}

gale_status gguf_open(const char *path, gguf_file *out) {
    mapped_file file;
    memset(out, 0, sizeof *out);
    GALE_TRY(mapped_file_open(path, &file));
    gale_status status = gguf_parse(file.data, file.size, file.path, out);
    if (status != GALE_OK) {
        mapped_file_close(&file);
        return status;
    }
    out->file = file;
    out->name = out->file.path;
    return GALE_OK;
}

void gguf_close(gguf_file *file) {
    free(file->kvs);
    free(file->tensors);
    mapped_file_close(&file->file);
    memset(file, 0, sizeof *file);
}

bool gguf_string_equals(gguf_string s, const char *text) {
    size_t n = strlen(text);
    return s.len == n && memcmp(s.ptr, text, n) == 0;
}

char *gguf_string_dup(gguf_string s) {
    char *copy = malloc(s.len + 1);
    if (!copy) return NULL;
    memcpy(copy, s.ptr, s.len);
    copy[s.len] = '\0';
    return copy;
}

const gguf_kv *gguf_find(const gguf_file *file, const char *key) {
    for (uint64_t i = 0; i < file->n_kv; i++)
        if (gguf_string_equals(file->kvs[i].key, key)) return &file->kvs[i];
    return NULL;
}

static gale_status kv_to_i64(const gguf_file *file, const char *key, const gguf_kv *kv, int64_t *out) {
    switch (kv->type) {
    case GGUF_TYPE_U8: case GGUF_TYPE_U16: case GGUF_TYPE_U32: case GGUF_TYPE_U64:
        if (kv->v.u > INT64_MAX) break;
        *out = (int64_t)kv->v.u;
        return GALE_OK;
    case GGUF_TYPE_I8: case GGUF_TYPE_I16: case GGUF_TYPE_I32: case GGUF_TYPE_I64:
        *out = kv->v.i;
        return GALE_OK;
    default: break;
    }
    return gale_error(GALE_ERR_FORMAT, "%s: key '%s' is not an integer in range", file->name, key);
}

static gale_status find_required(const gguf_file *file, const char *key, const gguf_kv **out) {
    *out = gguf_find(file, key);
    if (!*out) return gale_error(GALE_ERR_MISSING, "%s: metadata key '%s' is missing", file->name, key);
    return GALE_OK;
}

gale_status gguf_get_i64(const gguf_file *file, const char *key, int64_t *out) {
    const gguf_kv *kv;
    GALE_TRY(find_required(file, key, &kv));
    return kv_to_i64(file, key, kv, out);
}

gale_status gguf_get_f64(const gguf_file *file, const char *key, double *out) {
    const gguf_kv *kv;
    GALE_TRY(find_required(file, key, &kv));
    if (kv->type == GGUF_TYPE_F32 || kv->type == GGUF_TYPE_F64) {
        *out = kv->v.f;
        return GALE_OK;
    }
    int64_t i = 0;
    if (kv_to_i64(file, key, kv, &i) != GALE_OK)
        return gale_error(GALE_ERR_FORMAT, "%s: key '%s' is not a number", file->name, key);
    *out = (double)i;
    return GALE_OK;
}

gale_status gguf_get_bool(const gguf_file *file, const char *key, bool *out) {
    const gguf_kv *kv;
    GALE_TRY(find_required(file, key, &kv));
    if (kv->type != GGUF_TYPE_BOOL)
        return gale_error(GALE_ERR_FORMAT, "%s: key '%s' is not a bool", file->name, key);
    *out = kv->v.u != 0;
    return GALE_OK;
}

gale_status gguf_get_string(const gguf_file *file, const char *key, gguf_string *out) {
    const gguf_kv *kv;
    GALE_TRY(find_required(file, key, &kv));
    if (kv->type != GGUF_TYPE_STRING)
        return gale_error(GALE_ERR_FORMAT, "%s: key '%s' is not a string", file->name, key);
    *out = kv->v.str;
    return GALE_OK;
}

gale_status gguf_array_get_i64(const gguf_kv *kv, uint64_t index, int64_t *out) {
    if (kv->type != GGUF_TYPE_ARRAY)
        return gale_error(GALE_ERR_FORMAT, "GGUF key '%.*s' is not an array", (int)kv->key.len, kv->key.ptr);
    unsigned size = scalar_size(kv->v.arr.type);
    if (kv->v.arr.type == GGUF_TYPE_F32 || kv->v.arr.type == GGUF_TYPE_F64 || size == 0 ||
        kv->v.arr.type == GGUF_TYPE_BOOL)
        return gale_error(GALE_ERR_FORMAT, "GGUF key '%.*s' is not an integer array", (int)kv->key.len,
                          kv->key.ptr);
    if (index >= kv->v.arr.count)
        return gale_error(GALE_ERR_FORMAT, "GGUF key '%.*s': index %llu past its %llu elements",
                          (int)kv->key.len, kv->key.ptr, (unsigned long long)index,
                          (unsigned long long)kv->v.arr.count);
    gguf_kv element = {.key = kv->key, .type = kv->v.arr.type};
    decode_scalar(kv->v.arr.type, kv->v.arr.data + index * size, &element);
    if (element.type == GGUF_TYPE_U64 && element.v.u > INT64_MAX)
        return gale_error(GALE_ERR_FORMAT, "GGUF key '%.*s': element out of range", (int)kv->key.len, kv->key.ptr);
    bool is_signed = element.type == GGUF_TYPE_I8 || element.type == GGUF_TYPE_I16 ||
                     element.type == GGUF_TYPE_I32 || element.type == GGUF_TYPE_I64;
    *out = is_signed ? element.v.i : (int64_t)element.v.u;
    return GALE_OK;
}

gale_status gguf_array_next_string(const gguf_kv *kv, uint64_t *cursor, gguf_string *out) {
    if (kv->type != GGUF_TYPE_ARRAY || kv->v.arr.type != GGUF_TYPE_STRING)
        return gale_error(GALE_ERR_FORMAT, "GGUF key '%.*s' is not a string array", (int)kv->key.len,
                          kv->key.ptr);
    /* the array was validated at parse time; still, stay inside it */
    reader r = {.buf = kv->v.arr.data, .size = (size_t)kv->v.arr.nbytes, .pos = (size_t)*cursor,
                .name = "GGUF string array"};
    if (*cursor >= kv->v.arr.nbytes)
        return gale_error(GALE_ERR_FORMAT, "GGUF key '%.*s': read past the last string", (int)kv->key.len,
                          kv->key.ptr);
    GALE_TRY(read_string(&r, "string array element", out));
    *cursor = r.pos;
    return GALE_OK;
}

const gguf_tensor_info *gguf_find_tensor(const gguf_file *file, const char *name) {
    for (uint64_t i = 0; i < file->n_tensors; i++)
        if (gguf_string_equals(file->tensors[i].name, name)) return &file->tensors[i];
    return NULL;
}
