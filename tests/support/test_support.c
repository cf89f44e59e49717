#define _XOPEN_SOURCE 700
#include "test_support.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/mapped_file.h"
#include "core/status.h"

const char *const tiny_checkpoints[N_TINY_CHECKPOINTS] = {
    "tiny/llama", "tiny/mistral", "tiny/mixtral", "tiny/gemma", "tiny/gemma2", "tiny/gemma3_text", "tiny/llama_sharded",
};

const char *fixture(const char *rel) {
    static _Thread_local char buf[8][1024];
    static _Thread_local int next;
    char *out = buf[next++ % 8];
    snprintf(out, sizeof buf[0], "%s/%s", GALE_FIXTURES, rel);
    return out;
}

char *make_temp_dir(void) {
    const char *base = getenv("TMPDIR");
    char templ[512];
    snprintf(templ, sizeof templ, "%s/gale-test-XXXXXX", base && *base ? base : "/tmp");
    char *dir = mkdtemp(templ);
    cr_assert_not_null(dir, "mkdtemp failed");
    return strdup(dir);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void remove_tree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

void write_text_file(const char *dir, const char *name, const char *text) {
    char *path = path_join(dir, name);
    write_file(path, text, strlen(text));
    free(path);
}

cJSON *load_json(const char *path) {
    char *text;
    size_t len;
    cr_assert_eq(read_text_file(path, &text, &len), GALE_OK, "%s", gale_last_error());
    cJSON *json = cJSON_ParseWithLength(text, len);
    free(text);
    cr_assert_not_null(json, "%s: not JSON", path);
    return json;
}

void assert_allclose(const float *a, const float *ref, size_t n, float atol, float rtol, const char *what) {
    for (size_t i = 0; i < n; i++) {
        bool ok = isfinite(a[i]) && isfinite(ref[i]) && fabsf(a[i] - ref[i]) <= atol + rtol * fabsf(ref[i]);
        if (!ok) cr_assert_fail("%s: element %zu is %.9g, expected %.9g (atol %g, rtol %g)", what, i, (double)a[i],
                                (double)ref[i], (double)atol, (double)rtol);
    }
}

/* A NaN payload nothing computes by accident. */
static const uint32_t GUARD_BITS = 0x7fc0dead;
enum { GUARD_COUNT = 16 };

float *guarded_alloc(size_t n) {
    float *buf = malloc((n + GUARD_COUNT) * sizeof *buf);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < GUARD_COUNT; i++) memcpy(&buf[n + i], &GUARD_BITS, sizeof GUARD_BITS);
    return buf;
}

void guarded_check_free(float *buf, size_t n, const char *what) {
    for (size_t i = 0; i < GUARD_COUNT; i++)
        cr_assert(memcmp(&buf[n + i], &GUARD_BITS, sizeof GUARD_BITS) == 0, "%s: guard %zu after the buffer was overwritten",
                  what, i);
    free(buf);
}

void assert_error(gale_status got, gale_status want, const char *needle) {
    cr_assert_eq(got, want, "expected status '%s', got '%s' (%s)", gale_status_str(want), gale_status_str(got),
                 gale_last_error());
    cr_assert(strstr(gale_last_error(), needle) != NULL, "error message \"%s\" does not mention \"%s\"",
              gale_last_error(), needle);
}

static void free_indices(struct criterion_test_params *params) { cr_free(params->params); }

struct criterion_test_params index_params(size_t n) {
    size_t *indices = cr_malloc(n * sizeof *indices);
    for (size_t i = 0; i < n; i++) indices[i] = i;
    return cr_make_param_array(size_t, indices, n, free_indices);
}

int32_t *json_int_array(const cJSON *list, size_t *n) {
    cr_assert(cJSON_IsArray(list), "expected a JSON array");
    *n = (size_t)cJSON_GetArraySize(list);
    int32_t *ids = malloc(*n * sizeof *ids + 1);
    cr_assert_not_null(ids);
    for (size_t i = 0; i < *n; i++) ids[i] = cJSON_GetArrayItem(list, (int)i)->valueint;
    return ids;
}

gale_model *load_model_quiet(const char *path) {
    gale_load_params p = gale_load_params_default();
    p.quiet = true;
    gale_model *m = NULL;
    cr_assert_eq(gale_model_load(path, &p, &m), GALE_OK, "%s", gale_last_error());
    return m;
}

gale_model *load_tiny(const char *family) {
    char rel[128];
    snprintf(rel, sizeof rel, "tiny/%s", family);
    return load_model_quiet(fixture(rel));
}

double max_relative_error(const float *a, const float *ref, size_t n) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= diff)) diff = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
    }
    return diff / scale;
}

int test_alloc_fails_after = -1;

gale_status test_failing_alloc(struct backend *b, size_t bytes, void **out) {
    if (test_alloc_fails_after == 0) {
        *out = NULL;
        return gale_error(GALE_ERR_OOM, "test: allocation of %zu bytes refused", bytes);
    }
    if (test_alloc_fails_after > 0) test_alloc_fails_after--;
    return cpu_backend_ops.alloc(b, bytes, out);
}
