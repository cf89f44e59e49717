/* CPU backend: fp32 math over a thread pool. Loops are written as plain strided
 * reductions with several accumulators so the compiler vectorises them without
 * -ffast-math (which would change results run to run). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/status.h"
#include "model/quant.h"

/* ---- matmul: each thread takes a range of weight rows and computes tiles of up to 4
 * weight rows × 2 input rows, so 8 independent accumulator chains are in flight and each
 * loaded weight vector serves two tokens. Every (weight row, input row) pair is summed in
 * exactly the order dot() uses, so a token's result never depends on which tile or batch
 * it was in (a request gives the same tokens alone or batched). ---- */

/* 8-float vectors in GCC/Clang's vector extension: AVX registers with -march=native, two
 * SSE registers otherwise. Only static inline functions take them, so the note GCC gives
 * about their calling convention without AVX does not apply. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef float v8f __attribute__((vector_size(32)));

static inline v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* acc + x·w, fused into one rounding where the CPU has FMA (-march=native): every dot
 * product of the backend goes through here, so results stay batch-invariant. */
#if defined(__FMA__)
#include <immintrin.h>
static inline v8f madd(v8f acc, v8f x, v8f w) {
    __m256 a, b, c;
    memcpy(&a, &x, sizeof a), memcpy(&b, &w, sizeof b), memcpy(&c, &acc, sizeof c);
    __m256 r = _mm256_fmadd_ps(a, b, c);
    v8f out;
    memcpy(&out, &r, sizeof out);
    return out;
}
#else
static inline v8f madd(v8f acc, v8f x, v8f w) { return acc + x * w; }
#endif

/* dot()'s lane order and reduction tree */
static inline float reduce8(v8f acc) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* out[r * out_stride + c] = dot(x[c], w[r]) for r < NW, c < NX; NW, NX constants after
 * inlining, so the accumulators live in registers. */
static inline __attribute__((always_inline)) void dot_tile(const float *const *w, const float *const *x, int len,
                                                           float *out, size_t out_stride, const int NW, const int NX) {
    v8f acc[4][2];
    for (int r = 0; r < NW; r++)
        for (int c = 0; c < NX; c++) acc[r][c] = (v8f){0};
    int i = 0;
    for (; i + 8 <= len; i += 8) {
        v8f xv[2];
        for (int c = 0; c < NX; c++) xv[c] = load8(x[c] + i);
        for (int r = 0; r < NW; r++) {
            v8f wv = load8(w[r] + i);
            for (int c = 0; c < NX; c++) acc[r][c] = madd(acc[r][c], xv[c], wv);
        }
    }
    for (int r = 0; r < NW; r++)
        for (int c = 0; c < NX; c++) {
            float sum = reduce8(acc[r][c]);
            for (int k = i; k < len; k++) sum += x[c][k] * w[r][k];
            out[(size_t)c * out_stride + (size_t)r] = sum;
        }
}

static float dot(const float *a, const float *b, int n) {
    float out;
    dot_tile(&b, &a, n, &out, 1, 1, 1);
    return out;
}

/* ---- fused dequantise-and-dot for the block types decode reads most (Q8_0 and Q5_0:
 * Gemma 3's head and most layers; Q4_1: SmolLM2): each weight value is rebuilt in registers by the
 * same fp32 operations as model/quant.c and enters the same lane in the same order as
 * dot(), so results equal dequantise-then-dot bit for bit — only the row buffer's store
 * and reload are gone. Used when a tile has one or two input rows (decode); larger
 * batches dequantise each row once into a buffer and reuse it. ---- */

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#define GALE_FUSED_DOT 1

enum { BLOCK = 32, Q8_0_BYTES = 34, Q4_1_BYTES = 20, Q5_0_BYTES = 22 };

static inline float load_half(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); } /* exact, as f16_to_f32 */

static inline v8f m256_to_v8f(__m256 v) {
    v8f out;
    memcpy(&out, &v, sizeof out);
    return out;
}

/* the 8 weights of group g (0..3) of a block, as quant.c computes them */
static inline v8f q8_0_group(const uint8_t *block, float d, int g) {
    __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(block + 2 + 8 * g)));
    return m256_to_v8f(_mm256_cvtepi32_ps(q)) * d;
}

static inline v8f q4_1_group(const uint8_t *block, float d, float m, int g) {
    __m256i wide = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(block + 4 + 8 * (g % 2))));
    __m256i nibble = g < 2 ? _mm256_and_si256(wide, _mm256_set1_epi32(15)) : _mm256_srli_epi32(wide, 4);
    v8f lo = d * m256_to_v8f(_mm256_cvtepi32_ps(nibble));
    return lo + m;
}

/* Q5_0: the nibble plus bit j of qh as bit 4, then d * (q - 16) */
static inline v8f q5_0_group(const uint8_t *block, float d, int g) {
    __m256i wide = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(block + 6 + 8 * (g % 2))));
    __m256i nibble = g < 2 ? _mm256_and_si256(wide, _mm256_set1_epi32(15)) : _mm256_srli_epi32(wide, 4);
    __m256i shifts = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(8 * g));
    __m256i bit = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)load_u32(block + 2)), shifts), _mm256_set1_epi32(1));
    __m256i q = _mm256_sub_epi32(_mm256_or_si256(nibble, _mm256_slli_epi32(bit, 4)), _mm256_set1_epi32(16));
    return d * m256_to_v8f(_mm256_cvtepi32_ps(q));
}

static inline __attribute__((always_inline)) void quant_dot_tile(gale_dtype dtype, const uint8_t *const *w,
                                                                 const float *const *x, int len, float *out,
                                                                 size_t out_stride, const int NW, const int NX) {
    v8f acc[4][2];
    for (int r = 0; r < NW; r++)
        for (int c = 0; c < NX; c++) acc[r][c] = (v8f){0};
    const int block_bytes = dtype == GALE_Q8_0 ? Q8_0_BYTES : dtype == GALE_Q5_0 ? Q5_0_BYTES : Q4_1_BYTES;
    for (int b = 0; b < len / BLOCK; b++) {
        float d[4], m[4];
        for (int r = 0; r < NW; r++) {
            const uint8_t *block = w[r] + (size_t)b * block_bytes;
            d[r] = load_half(block);
            m[r] = dtype == GALE_Q4_1 ? load_half(block + 2) : 0.0f;
        }
        for (int g = 0; g < BLOCK / 8; g++) {
            v8f xv[2];
            for (int c = 0; c < NX; c++) xv[c] = load8(x[c] + b * BLOCK + 8 * g);
            for (int r = 0; r < NW; r++) {
                const uint8_t *block = w[r] + (size_t)b * block_bytes;
                v8f wv = dtype == GALE_Q8_0   ? q8_0_group(block, d[r], g)
                         : dtype == GALE_Q5_0 ? q5_0_group(block, d[r], g)
                                              : q4_1_group(block, d[r], m[r], g);
                for (int c = 0; c < NX; c++) acc[r][c] = madd(acc[r][c], xv[c], wv);
            }
        }
    }
    for (int r = 0; r < NW; r++)
        for (int c = 0; c < NX; c++) out[(size_t)c * out_stride + (size_t)r] = reduce8(acc[r][c]);
}

static bool has_fused_dot(gale_dtype dtype) { return dtype == GALE_Q8_0 || dtype == GALE_Q4_1 || dtype == GALE_Q5_0; }

/* The same values into a buffer, for batches that reuse a row: the vector code above
 * instead of model/quant.c's (equal bit for bit, several times faster). */
static void dequant_row_fused(gale_dtype dtype, const uint8_t *row, int len, float *out) {
    const int block_bytes = dtype == GALE_Q8_0 ? Q8_0_BYTES : dtype == GALE_Q5_0 ? Q5_0_BYTES : Q4_1_BYTES;
    for (int b = 0; b < len / BLOCK; b++) {
        const uint8_t *block = row + (size_t)b * block_bytes;
        float d = load_half(block), m = dtype == GALE_Q4_1 ? load_half(block + 2) : 0.0f;
        for (int g = 0; g < BLOCK / 8; g++) {
            v8f wv = dtype == GALE_Q8_0   ? q8_0_group(block, d, g)
                     : dtype == GALE_Q5_0 ? q5_0_group(block, d, g)
                                          : q4_1_group(block, d, m, g);
            memcpy(out + b * BLOCK + 8 * g, &wv, sizeof wv);
        }
    }
}
#endif /* without AVX2 and F16C, rows are always dequantised into a buffer */

typedef struct matmul_job {
    const float *x;
    int n, in, out;
    const gale_tensor *w;
    uint64_t row_bytes;
    float *y;
    gale_status status;
} matmul_job;

/* y[:, r0 .. r0+NW) for all n input rows */
static inline __attribute__((always_inline)) void matmul_tile_rows(const matmul_job *j, const float *const *w, size_t r0,
                                                                   const int NW) {
    int i = 0;
    for (; i + 2 <= j->n; i += 2) {
        const float *x[2] = {j->x + (size_t)i * j->in, j->x + (size_t)(i + 1) * j->in};
        dot_tile(w, x, j->in, j->y + (size_t)i * j->out + r0, (size_t)j->out, NW, 2);
    }
    if (i < j->n) {
        const float *x[1] = {j->x + (size_t)i * j->in};
        dot_tile(w, x, j->in, j->y + (size_t)i * j->out + r0, (size_t)j->out, NW, 1);
    }
}

#ifdef GALE_FUSED_DOT
/* y[i, r0 .. r0+NW) for i < n straight from the quantised rows (n ≤ 2) */
static inline __attribute__((always_inline)) void quant_tile_rows(const matmul_job *j, const uint8_t *const *w, size_t r0,
                                                                  const int NW) {
    const float *x[2] = {j->x, j->x + j->in};
    float *y = j->y + r0;
    if (j->w->dtype == GALE_Q8_0) {
        if (j->n == 2) quant_dot_tile(GALE_Q8_0, w, x, j->in, y, (size_t)j->out, NW, 2);
        else quant_dot_tile(GALE_Q8_0, w, x, j->in, y, (size_t)j->out, NW, 1);
    } else if (j->w->dtype == GALE_Q5_0) {
        if (j->n == 2) quant_dot_tile(GALE_Q5_0, w, x, j->in, y, (size_t)j->out, NW, 2);
        else quant_dot_tile(GALE_Q5_0, w, x, j->in, y, (size_t)j->out, NW, 1);
    } else {
        if (j->n == 2) quant_dot_tile(GALE_Q4_1, w, x, j->in, y, (size_t)j->out, NW, 2);
        else quant_dot_tile(GALE_Q4_1, w, x, j->in, y, (size_t)j->out, NW, 1);
    }
}

static void matmul_rows_fused(matmul_job *j, size_t begin, size_t end) {
    const uint8_t *base = j->w->data;
    for (size_t r = begin; r < end; r += 4) {
        int nw = end - r < 4 ? (int)(end - r) : 4;
        const uint8_t *w[4];
        for (int k = 0; k < nw; k++) w[k] = base + (r + (size_t)k) * j->row_bytes;
        if (nw == 4) {
            quant_tile_rows(j, w, r, 4);
        } else {
            for (int k = 0; k < nw; k++) quant_tile_rows(j, w + k, r + (size_t)k, 1);
        }
    }
}

#endif

static void matmul_rows(void *ctx, size_t begin, size_t end) {
    matmul_job *j = ctx;
    const uint8_t *base = j->w->data;
#ifdef GALE_FUSED_DOT
    if (j->n <= 2 && has_fused_dot(j->w->dtype)) {
        matmul_rows_fused(j, begin, end);
        return;
    }
#endif
    /* aligned fp32 weights are used in place; anything else is dequantised 4 rows at a time */
    const bool direct = j->w->dtype == GALE_F32 && ((uintptr_t)base % sizeof(float)) == 0;
    float *rows = direct ? NULL : malloc(4 * (size_t)j->in * sizeof *rows);
    if (!direct && !rows) {
        j->status = GALE_ERR_OOM;
        return;
    }
    for (size_t r = begin; r < end; r += 4) {
        int nw = end - r < 4 ? (int)(end - r) : 4;
        const float *w[4];
        for (int k = 0; k < nw; k++) {
            if (direct) {
                w[k] = (const float *)(base + (r + (size_t)k) * j->row_bytes);
            } else {
                w[k] = rows + (size_t)k * j->in;
#ifdef GALE_FUSED_DOT
                if (has_fused_dot(j->w->dtype)) {
                    dequant_row_fused(j->w->dtype, base + (r + (size_t)k) * j->row_bytes, j->in, rows + (size_t)k * j->in);
                    continue;
                }
#endif
                if (quant_dequantize_f32(j->w->dtype, base + (r + (size_t)k) * j->row_bytes, (uint64_t)j->in,
                                         rows + (size_t)k * j->in) != GALE_OK) {
                    j->status = GALE_ERR_INTERNAL;
                    free(rows);
                    return;
                }
            }
        }
        if (nw == 4) {
            matmul_tile_rows(j, w, r, 4);
        } else {
            for (int k = 0; k < nw; k++) matmul_tile_rows(j, w + k, r + (size_t)k, 1);
        }
    }
    free(rows);
}

static gale_status cpu_matmul(backend *b, const void *x, int n, const gale_tensor *w, void *y) {
    if (w->n_dims != 2) return gale_error(GALE_ERR_SHAPE, "matmul: weight must be 2-D");
    matmul_job j = {.x = x, .n = n, .in = (int)w->shape[1], .out = (int)w->shape[0], .w = w, .y = y, .status = GALE_OK};
    if (!dtype_row_bytes(w->dtype, (uint64_t)j.in, &j.row_bytes))
        return gale_error(GALE_ERR_SHAPE, "matmul: rows of %d %s values are not whole blocks", j.in, gale_dtype_name(w->dtype));
    parallel_for(b->pool, (size_t)j.out, 16, matmul_rows, &j);
    if (j.status != GALE_OK) return gale_error(j.status, "matmul: dequantisation failed");
    return GALE_OK;
}

static gale_status cpu_embed(backend *b, const gale_tensor *table, const int32_t *ids, int n, float scale, void *out) {
    (void)b;
    float *y = out;
    int dim = (int)table->shape[1];
    uint64_t row_bytes;
    if (!dtype_row_bytes(table->dtype, (uint64_t)dim, &row_bytes))
        return gale_error(GALE_ERR_SHAPE, "embed: rows are not whole blocks");
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= table->shape[0])
            return gale_error(GALE_ERR_INVALID_ARG, "token id %d is outside the vocabulary (%lld)", ids[i],
                              (long long)table->shape[0]);
        float *row = y + (size_t)i * dim;
        GALE_TRY(quant_dequantize_f32(table->dtype, (const uint8_t *)table->data + (uint64_t)ids[i] * row_bytes,
                                      (uint64_t)dim, row));
        if (scale != 1.0f)
            for (int k = 0; k < dim; k++) row[k] *= scale;
    }
    return GALE_OK;
}

static void cpu_rmsnorm(backend *b, const void *in, int n, int dim, const float *w, float offset, float eps, void *out) {
    (void)b;
    const float *x = in;
    float *y = out;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        float *yi = y + (size_t)i * dim;
        float mean_square = dot(xi, xi, dim) / (float)dim;
        float inv = 1.0f / sqrtf(mean_square + eps);
        for (int k = 0; k < dim; k++) yi[k] = (xi[k] * inv) * (offset + w[k]);
    }
}

static void cpu_rope(backend *b, void *data, int n, int heads, int head_dim, const int32_t *positions, const float *inv_freq) {
    (void)b;
    float *x = data;
    const int half = head_dim / 2;
    float cos_buf[512], sin_buf[512];
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < half && k < 512; k++) {
            float angle = (float)positions[i] * inv_freq[k];
            cos_buf[k] = cosf(angle);
            sin_buf[k] = sinf(angle);
        }
        for (int h = 0; h < heads; h++) {
            float *v = x + ((size_t)i * heads + h) * head_dim;
            for (int k = 0; k < half; k++) {
                float a = v[k], c = v[k + half];
                v[k] = a * cos_buf[k] - c * sin_buf[k];
                v[k + half] = c * cos_buf[k] + a * sin_buf[k];
            }
        }
    }
}

/* ---- paged KV cache ---- */

static inline size_t kv_slot(const paged_kv *kv, int seq, int pos) {
    int32_t block = kv->block_tables[(size_t)seq * kv->table_stride + pos / kv->block_size];
    return ((size_t)block * kv->block_size + (size_t)(pos % kv->block_size)) * kv->kv_dim;
}

static void cpu_store_kv(backend *b, const paged_kv *kv, const void *keys, const void *values, int n,
                         const int32_t *positions, const int32_t *seq_of) {
    (void)b;
    const float *k = keys, *v = values;
    float *key_cache = kv->keys, *value_cache = kv->values;
    for (int i = 0; i < n; i++) {
        if (seq_of[i] < 0) continue; /* padding: nothing to store */
        size_t slot = kv_slot(kv, seq_of[i], positions[i]);
        memcpy(key_cache + slot, k + (size_t)i * kv->kv_dim, (size_t)kv->kv_dim * sizeof(float));
        memcpy(value_cache + slot, v + (size_t)i * kv->kv_dim, (size_t)kv->kv_dim * sizeof(float));
    }
}

static void cpu_rope_store_kv(backend *b, void *q, void *k, const void *v, int n, int n_heads, int n_kv_heads, int head_dim,
                              const int32_t *positions, const int32_t *seq_of, const float *inv_freq, const head_norm *norm,
                              const paged_kv *kv) {
    if (norm) {
        cpu_rmsnorm(b, q, n * n_heads, head_dim, norm->q_weight, norm->offset, norm->eps, q);
        cpu_rmsnorm(b, k, n * n_kv_heads, head_dim, norm->k_weight, norm->offset, norm->eps, k);
    }
    cpu_rope(b, q, n, n_heads, head_dim, positions, inv_freq);
    cpu_rope(b, k, n, n_kv_heads, head_dim, positions, inv_freq);
    cpu_store_kv(b, kv, k, v, n, positions, seq_of);
}

/* ---- attention: one (query, head) per work item, two passes over the visible keys ---- */

typedef struct attention_job {
    const float *q;
    const paged_kv *kv;
    const int32_t *positions, *seq_of;
    const attention_params *p;
    float *out;
    int longest; /* most keys one query sees */
    bool failed;
} attention_job;

static void attention_items(void *ctx, size_t begin, size_t end) {
    attention_job *j = ctx;
    const attention_params *p = j->p;
    const paged_kv *kv = j->kv;
    const int hd = p->head_dim, group = p->n_heads / p->n_kv_heads;
    float *scores = malloc((size_t)j->longest * sizeof *scores);
    if (!scores) {
        j->failed = true;
        return;
    }
    for (size_t item = begin; item < end; item++) {
        int i = (int)(item / (size_t)p->n_heads), h = (int)(item % (size_t)p->n_heads), kvh = h / group;
        int query_pos = j->positions[i], seq = j->seq_of[i];
        if (seq < 0) { /* padding: zeros */
            memset(j->out + ((size_t)i * p->n_heads + h) * hd, 0, (size_t)hd * sizeof(float));
            continue;
        }
        int first = p->window > 0 && query_pos - p->window + 1 > 0 ? query_pos - p->window + 1 : 0;
        const float *q = j->q + ((size_t)i * p->n_heads + h) * hd;
        float max = -INFINITY;
        for (int t = first; t <= query_pos; t++) {
            float s = dot(q, (const float *)kv->keys + kv_slot(kv, seq, t) + (size_t)kvh * hd, hd) * p->scale;
            if (p->softcap > 0) s = p->softcap * tanhf(s / p->softcap);
            scores[t - first] = s;
            if (s > max) max = s;
        }
        float sum = 0;
        for (int t = first; t <= query_pos; t++) sum += scores[t - first] = expf(scores[t - first] - max);
        float *o = j->out + ((size_t)i * p->n_heads + h) * hd;
        memset(o, 0, (size_t)hd * sizeof *o);
        for (int t = first; t <= query_pos; t++) {
            const float *v = (const float *)kv->values + kv_slot(kv, seq, t) + (size_t)kvh * hd;
            float weight = scores[t - first] / sum;
            for (int d = 0; d < hd; d++) o[d] += weight * v[d];
        }
    }
    free(scores);
}

static gale_status cpu_attention(backend *b, const void *q, const paged_kv *kv, int n, const int32_t *positions,
                                 const int32_t *seq_of, const attention_params *p, void *out) {
    int longest = 1;
    for (int i = 0; i < n; i++) longest = positions[i] + 1 > longest ? positions[i] + 1 : longest;
    if (p->window > 0 && longest > p->window) longest = p->window;
    attention_job j = {q, kv, positions, seq_of, p, out, longest, false};
    parallel_for(b->pool, (size_t)n * (size_t)p->n_heads, 4, attention_items, &j);
    return j.failed ? gale_error(GALE_ERR_OOM, "attention: out of memory for %d scores", longest) : GALE_OK;
}

static void cpu_gated_activation(backend *b, void *gate_data, const void *up_data, size_t count, gale_activation act) {
    (void)b;
    float *gate = gate_data;
    const float *up = up_data;
    if (act == GALE_ACT_SILU) {
        for (size_t i = 0; i < count; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    } else {
        const float c = 0.7978845608028654f; /* sqrt(2/pi) */
        for (size_t i = 0; i < count; i++) {
            float x = gate[i];
            gate[i] = 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x))) * up[i];
        }
    }
}

static void cpu_softcap(backend *b, void *data, size_t count, float cap) {
    (void)b;
    float *x = data;
    for (size_t i = 0; i < count; i++) x[i] = cap * tanhf(x[i] / cap);
}

static void cpu_add(backend *b, void *x_data, const void *y_data, size_t count) {
    (void)b;
    float *x = x_data;
    const float *y = y_data;
    for (size_t i = 0; i < count; i++) x[i] += y[i];
}

static void cpu_scale_add(backend *b, void *y_data, const void *x_data, float a, size_t count) {
    (void)b;
    float *y = y_data;
    const float *x = x_data;
    for (size_t i = 0; i < count; i++) y[i] += a * x[i];
}

static void cpu_zero(backend *b, void *x, size_t count) {
    (void)b;
    memset(x, 0, count * sizeof(float));
}

static gale_status cpu_gather_rows(backend *b, void *dst, const void *src, const int32_t *rows, int n, int width) {
    (void)b;
    for (int i = 0; i < n; i++)
        memcpy((float *)dst + (size_t)i * width, (const float *)src + (size_t)rows[i] * width, (size_t)width * sizeof(float));
    return GALE_OK;
}

/* ---- memory: plain host memory; weights are read as loaded ---- */

static size_t cpu_memory_size(backend *b) {
    (void)b;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
}

static gale_status cpu_alloc(backend *b, size_t bytes, void **out) {
    (void)b;
    *out = malloc(bytes ? bytes : 1);
    return *out ? GALE_OK : gale_error(GALE_ERR_OOM, "out of memory for %zu MiB", bytes >> 20);
}

static void cpu_release(backend *b, void *p) {
    (void)b;
    free(p);
}

static gale_status cpu_upload(backend *b, void *dst, const void *src, size_t bytes) {
    (void)b;
    memcpy(dst, src, bytes);
    return GALE_OK;
}

static gale_status cpu_stage_ints(backend *b, int slot, const int32_t *src, size_t count, const int32_t **out) {
    (void)b, (void)slot, (void)count;
    *out = src;
    return GALE_OK;
}

static gale_status cpu_upload_weight(backend *b, const gale_tensor *host, gale_tensor *out) {
    (void)b;
    *out = *host;
    return GALE_OK;
}

static void cpu_release_weight(backend *b, gale_tensor *t) { (void)b, (void)t; }

static gale_status cpu_to_host(backend *b, const void *src, size_t count, float *dst) {
    (void)b;
    if (dst != src) memcpy(dst, src, count * sizeof(float));
    return GALE_OK;
}

const backend_ops cpu_backend_ops = {
    .name = "cpu",
    .act_size = sizeof(float),
    .memory_size = cpu_memory_size,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_upload,
    .stage_ints = cpu_stage_ints,
    .upload_weight = cpu_upload_weight,
    .release_weight = cpu_release_weight,
    .to_host = cpu_to_host,
    .add = cpu_add,
    .scale_add = cpu_scale_add,
    .zero = cpu_zero,
    .gather_rows = cpu_gather_rows,
    .matmul = cpu_matmul,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .rope_store_kv = cpu_rope_store_kv,
    .attention = cpu_attention,
    .gated_activation = cpu_gated_activation,
    .softcap = cpu_softcap,
};
