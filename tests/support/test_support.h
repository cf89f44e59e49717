/* Helpers shared by the Criterion suites: fixture paths, temp dirs, float comparison
 * with NaN never passing, guard values after output buffers. */
#ifndef GALE_TEST_SUPPORT_H
#define GALE_TEST_SUPPORT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gale.h"

/* The tiny random-weight checkpoints transformers saved (tests/tools/make_tiny_checkpoints.py),
 * relative to the fixtures folder: one per family plus a sharded llama. */
enum { N_TINY_CHECKPOINTS = 7 };
extern const char *const tiny_checkpoints[N_TINY_CHECKPOINTS];

/* GALE_FIXTURES "/" rel, in a static buffer per call site use: copy if kept. */
const char *fixture(const char *rel);
/* A fresh directory under $TMPDIR (removed by remove_tree). Returns heap path. */
char *make_temp_dir(void);
void remove_tree(const char *path);
void write_file(const char *path, const void *data, size_t len);
void write_text_file(const char *dir, const char *name, const char *text);
/* Parses a JSON file or fails the test. */
cJSON *load_json(const char *path);
/* A JSON array of integers as int32 (free()), its length in *n. */
int32_t *json_int_array(const cJSON *list, size_t *n);

/* The CPU backend's alloc, refusing on purpose (an op table's alloc for tests of running
 * out of memory): with test_alloc_fails_after = k, k more allocations succeed, then every
 * one fails with GALE_ERR_OOM ("refused"); < 0, the start, none fails. */
struct backend;
extern int test_alloc_fails_after;
gale_status test_failing_alloc(struct backend *b, size_t bytes, void **out);

/* Loads a model without a progress bar, or fails the test. */
gale_model *load_model_quiet(const char *path);
/* The tiny random checkpoint of a family: fixtures tiny/<family>. */
gale_model *load_tiny(const char *family);

/* max |a − b| / max |ref|: the parity metric; a NaN gives infinity. */
double max_relative_error(const float *a, const float *ref, size_t n);

/* |a - ref| <= atol + rtol·|ref| element-wise; NaN or Inf in a fails. Fails the test
 * naming what and the first bad index. */
void assert_allclose(const float *a, const float *ref, size_t n, float atol, float rtol, const char *what);

/* n floats followed by guard values; check_guard fails the test when they changed. */
float *guarded_alloc(size_t n);
void guarded_check_free(float *buf, size_t n, const char *what);

/* Asserts a call failed with the given status and left a message containing needle. */
void assert_error(gale_status got, gale_status want, const char *needle);

/* Criterion runs each test in a fresh process and copies its parameter there; a
 * pointer inside a parameter would point into the parent's memory. So parameterized
 * tests take an index into a file-scope table: index_params(n) gives 0..n-1. */
#include <criterion/parameterized.h>
struct criterion_test_params index_params(size_t n);

#endif
