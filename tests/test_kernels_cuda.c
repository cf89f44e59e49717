/* The element-wise and row kernels of the CUDA backend (kernels/norm.cu, rope.cu,
 * activation.cu, embed.cu, attention.cu) against their CPU ops (src/backend/cpu/ops.c) on fresh random
 * inputs, never zeros, in odd shapes (hidden 576 and 640, head_dim 64/128/256, 1 and 37
 * rows, vocabularies that are not a multiple of 64), with guard values after every
 * output buffer.
 *
 * Tolerances: the kernels read bf16 inputs and write bf16 outputs; the CPU op runs on the
 * same bf16 inputs widened to fp32 and its result is compared with the GPU's after
 * rounding, so the difference is one bf16 rounding (relative 2^-8) plus the last bits of
 * transcendental functions and of a differently ordered sum: |gpu − cpu| ≤ 2^-7·|cpu| +
 * 1e-6. fp32 outputs (softcap) compare at 1e-6 relative; embed (one fp32 product rounded
 * once on both sides) compares bit for bit. NaN never passes.
 *
 * Without CUDA in the build, or without a GPU at run time (as on CI), every test skips
 * itself with the reason. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/device.h"
#include "core/dtype.h"
#include "cuda_test_support.h"
#include "test_support.h"

#ifdef GALE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "kernels.h"
#endif

#ifdef GALE_HAVE_CUDA

/* the bound of the header comment */
#define BF16_RTOL 0x1p-7
#define BF16_ATOL 1e-6

/* ---- rmsnorm ---- */

static void check_rmsnorm(int n, int dim, float offset, bool with_residual) {
    size_t count = (size_t)n * dim;
    float *x, *add, *w = malloc((size_t)dim * sizeof *w);
    uint16_t *hx = random_bf16(count, -3, 3, &x), *hadd = random_bf16(count, -1, 1, &add);
    for (int i = 0; i < dim; i++) w[i] = uniform(-0.5f, 1.5f);
    float *d_w = to_device(w, (size_t)dim * sizeof *w);
    uint16_t *d_x = guarded_device_bf16(count, hx), *d_add = guarded_device_bf16(count, hadd);
    uint16_t *d_out = guarded_device_bf16(count, NULL);
    gale_status status = with_residual
                             ? kernel_rmsnorm_bf16(NULL, d_x, d_add, d_w, offset, 1e-6f, n, dim, d_out, NULL)
                             : kernel_rmsnorm_bf16(d_x, NULL, NULL, d_w, offset, 1e-6f, n, dim, d_out, NULL);
    cr_assert_eq(status, GALE_OK, "%s", gale_last_error());
    float *gpu = download_bf16(d_out, count, "rmsnorm out");
    float *residual = download_bf16(d_x, count, "rmsnorm residual");
    /* CPU: the residual update rounded to bf16 as the kernel stores it, then the norm */
    float *expect_residual = malloc(count * sizeof *expect_residual);
    for (size_t i = 0; i < count; i++) expect_residual[i] = with_residual ? bf16_to_f32(f32_to_bf16(x[i] + add[i])) : x[i];
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(residual[i], expect_residual[i], "residual %zu: %.7g, expected %.7g", i, residual[i],
                     expect_residual[i]);
    float *ref = malloc(count * sizeof *ref);
    backend b = cpu_reference_backend();
    b.ops->rmsnorm(&b, expect_residual, n, dim, w, offset, 1e-6f, ref);
    for (size_t i = 0; i < count; i++) ref[i] = bf16_to_f32(f32_to_bf16(ref[i]));
    char what[96];
    snprintf(what, sizeof what, "rmsnorm %d×%d offset %g%s", n, dim, (double)offset, with_residual ? " + residual" : "");
    assert_bf16_close(gpu, ref, count, BF16_RTOL, BF16_ATOL, what);
    thread_pool_destroy(b.pool);
    CUDA_ASSERT(cudaFree(d_w));
    CUDA_ASSERT(cudaFree(d_add));
    free(hx), free(hadd), free(x), free(add), free(w), free(gpu), free(residual), free(expect_residual), free(ref);
}

#endif /* GALE_HAVE_CUDA */

Test(kernels_cuda, rmsnorm_matches_cpu) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    const int dims[] = {576, 640, 4096, 37}, rows[] = {1, 37};
    for (int d = 0; d < 4; d++)
        for (int r = 0; r < 2; r++) {
            check_rmsnorm(rows[r], dims[d], 0.0f, false);
            check_rmsnorm(rows[r], dims[d], 1.0f, true);
        }
#endif
}

#ifdef GALE_HAVE_CUDA

/* ---- rope + store kv ---- */

/* qk_norm: Gemma 3's per-head q/k RMSNorm (offset 1) fused in before the rotation */
static void check_rope(int n, int n_heads, int n_kv_heads, int head_dim, bool qk_norm) {
    const int block_size = 16, n_blocks = 9, stride = 4, half = head_dim / 2; /* two sequences */
    const int kv_dim = n_kv_heads * head_dim;
    size_t q_count = (size_t)n * n_heads * head_dim, k_count = (size_t)n * kv_dim;
    float *q, *k, *v;
    uint16_t *hq = random_bf16(q_count, -2, 2, &q), *hk = random_bf16(k_count, -2, 2, &k),
             *hv = random_bf16(k_count, -2, 2, &v);
    /* two sequences, blocks scattered through the pool; token i at a distinct position */
    int32_t tables[2 * 4] = {7, 2, 5, 0, 1, 8, 3, 6}, positions[64], seq_of[64];
    for (int i = 0; i < n; i++) {
        seq_of[i] = i % 2;
        positions[i] = (i / 2) * 3 + (i % 2) * 5;
    }
    float inv_freq[128];
    for (int p = 0; p < half; p++) inv_freq[p] = powf(10000.0f, -2.0f * p / head_dim);
    uint16_t *d_q = guarded_device_bf16(q_count, hq), *d_k = guarded_device_bf16(k_count, hk);
    uint16_t *d_v = guarded_device_bf16(k_count, hv);
    size_t cache_count = (size_t)n_blocks * block_size * kv_dim;
    uint16_t *d_kc = guarded_device_bf16(cache_count, NULL), *d_vc = guarded_device_bf16(cache_count, NULL);
    int32_t *d_pos = to_device(positions, (size_t)n * sizeof(int32_t)), *d_seq = to_device(seq_of, (size_t)n * sizeof(int32_t));
    int32_t *d_tables = to_device(tables, sizeof tables);
    float *d_freq = to_device(inv_freq, (size_t)half * sizeof(float));
    float q_weight[512], k_weight[512];
    for (int i = 0; i < head_dim; i++) q_weight[i] = uniform(-0.5f, 1.5f), k_weight[i] = uniform(-0.5f, 1.5f);
    float *d_qw = to_device(q_weight, (size_t)head_dim * sizeof(float));
    float *d_kw = to_device(k_weight, (size_t)head_dim * sizeof(float));
    const rope_qk_norm gpu_norm = {.q_weight = d_qw, .k_weight = d_kw, .offset = 1.0f, .eps = 1e-6f};
    const head_norm cpu_norm = {.q_weight = q_weight, .k_weight = k_weight, .offset = 1.0f, .eps = 1e-6f};
    cr_assert_eq(kernel_rope_store_kv_bf16(d_q, d_k, d_v, d_pos, d_seq, d_freq, qk_norm ? &gpu_norm : NULL, n, n_heads,
                                           n_kv_heads, head_dim, d_kc, d_vc, d_tables, stride, block_size, NULL),
                 GALE_OK, "%s", gale_last_error());
    float *gq = download_bf16(d_q, q_count, "rope q"), *gk = download_bf16(d_k, k_count, "rope k");
    float *kc = download_bf16(d_kc, cache_count, "key cache"), *vc = download_bf16(d_vc, cache_count, "value cache");
    backend b = cpu_reference_backend();
    float *cpu_kc = calloc(cache_count, sizeof *cpu_kc), *cpu_vc = calloc(cache_count, sizeof *cpu_vc);
    paged_kv cpu_kv = {.keys = cpu_kc, .values = cpu_vc, .block_size = block_size, .kv_dim = kv_dim,
                       .block_tables = tables, .table_stride = stride};
    b.ops->rope_store_kv(&b, q, k, v, n, n_heads, n_kv_heads, head_dim, positions, seq_of, inv_freq,
                         qk_norm ? &cpu_norm : NULL, &cpu_kv);
    free(cpu_kc), free(cpu_vc); /* the GPU's cache is checked against its own k below */
    for (size_t i = 0; i < q_count; i++) q[i] = bf16_to_f32(f32_to_bf16(q[i]));
    for (size_t i = 0; i < k_count; i++) k[i] = bf16_to_f32(f32_to_bf16(k[i]));
    char what[96];
    snprintf(what, sizeof what, "%srope q %d×%d×%d", qk_norm ? "q norm + " : "", n, n_heads, head_dim);
    assert_bf16_close(gq, q, q_count, BF16_RTOL, BF16_ATOL, what);
    snprintf(what, sizeof what, "%srope k %d×%d×%d", qk_norm ? "k norm + " : "", n, n_kv_heads, head_dim);
    assert_bf16_close(gk, k, k_count, BF16_RTOL, BF16_ATOL, what);
    /* every token's rows sit in its slot, equal to what the kernel left in k and to v */
    bool *written = calloc(cache_count, sizeof *written);
    for (int i = 0; i < n; i++) {
        size_t slot = ((size_t)tables[seq_of[i] * stride + positions[i] / block_size] * block_size +
                       (size_t)(positions[i] % block_size)) * kv_dim;
        for (int c = 0; c < kv_dim; c++) {
            cr_assert_eq(kc[slot + c], gk[(size_t)i * kv_dim + c], "token %d key %d", i, c);
            cr_assert_eq(vc[slot + c], v[(size_t)i * kv_dim + c], "token %d value %d", i, c);
            written[slot + c] = true;
        }
    }
    /* and nothing else in the pool was touched (the guard pattern widens to NaN) */
    for (size_t i = 0; i < cache_count; i++)
        if (!written[i]) cr_assert(isnan(kc[i]) && isnan(vc[i]), "cache value %zu written though no token owns it", i);
    thread_pool_destroy(b.pool);
    CUDA_ASSERT(cudaFree(d_v));
    CUDA_ASSERT(cudaFree(d_pos));
    CUDA_ASSERT(cudaFree(d_seq));
    CUDA_ASSERT(cudaFree(d_tables));
    CUDA_ASSERT(cudaFree(d_freq));
    CUDA_ASSERT(cudaFree(d_qw));
    CUDA_ASSERT(cudaFree(d_kw));
    free(hq), free(hk), free(hv), free(q), free(k), free(v), free(gq), free(gk), free(kc), free(vc), free(written);
}

#endif

Test(kernels_cuda, rope_and_kv_store_match_cpu) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    check_rope(1, 9, 3, 64, false);
    check_rope(37, 9, 3, 64, false);
    check_rope(37, 8, 8, 128, false);
    check_rope(5, 4, 1, 256, false);
#endif
}

Test(kernels_cuda, qk_norm_fused_into_rope_matches_cpu) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    check_rope(1, 8, 4, 256, true); /* Gemma 3 1B's heads */
    check_rope(37, 4, 1, 256, true);
    check_rope(37, 9, 3, 64, true);
    check_rope(5, 8, 8, 128, true);
#endif
}

#ifdef GALE_HAVE_CUDA

static void check_activation(size_t count, gale_activation act) {
    float *gate, *up;
    uint16_t *hg = random_bf16(count, -6, 6, &gate), *hu = random_bf16(count, -2, 2, &up);
    uint16_t *d_g = guarded_device_bf16(count, hg), *d_u = guarded_device_bf16(count, hu);
    uint16_t *d_out = guarded_device_bf16(count, NULL);
    cr_assert_eq(kernel_gated_activation_bf16(d_g, d_u, count, act, d_out, NULL), GALE_OK, "%s", gale_last_error());
    float *gpu = download_bf16(d_out, count, "activation");
    backend b = cpu_reference_backend();
    b.ops->gated_activation(&b, gate, up, count, act);
    for (size_t i = 0; i < count; i++) gate[i] = bf16_to_f32(f32_to_bf16(gate[i]));
    assert_bf16_close(gpu, gate, count, BF16_RTOL, BF16_ATOL, act == GALE_ACT_SILU ? "SiLU" : "GELU");
    thread_pool_destroy(b.pool);
    CUDA_ASSERT(cudaFree(d_g));
    CUDA_ASSERT(cudaFree(d_u));
    free(hg), free(hu), free(gate), free(up), free(gpu);
}

#endif

Test(kernels_cuda, gated_activation_and_softcap_match_cpu) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    const size_t counts[] = {1, 37 * 1536 + 3};
    for (int c = 0; c < 2; c++) {
        check_activation(counts[c], GALE_ACT_SILU);
        check_activation(counts[c], GALE_ACT_GELU_TANH);
    }
    enum { V = 49153 };
    float *logits = malloc((V + GUARD) * sizeof *logits), *ref = malloc(V * sizeof *ref);
    for (int i = 0; i < V; i++) ref[i] = logits[i] = uniform(-80, 80);
    for (int i = V; i < V + GUARD; i++) logits[i] = 12345.0f;
    float *d = to_device(logits, (V + GUARD) * sizeof *logits);
    cr_assert_eq(kernel_softcap_f32(d, V, 30.0f, NULL), GALE_OK, "%s", gale_last_error());
    CUDA_ASSERT(cudaMemcpy(logits, d, (V + GUARD) * sizeof *logits, cudaMemcpyDeviceToHost));
    backend b = cpu_reference_backend();
    b.ops->softcap(&b, ref, V, 30.0f);
    assert_allclose(logits, ref, V, 0, 1e-6f, "softcap");
    for (int i = V; i < V + GUARD; i++) cr_assert_eq(logits[i], 12345.0f, "softcap guard");
    assert_error(kernel_softcap_f32(d, V, 0.0f, NULL), GALE_ERR_INVALID_ARG, "must be positive");
    thread_pool_destroy(b.pool);
    CUDA_ASSERT(cudaFree(d));
    free(logits), free(ref);
#endif
}

Test(kernels_cuda, embed_matches_cpu) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    const int vocab = 1001, dims[] = {576, 640}, ns[] = {1, 37};
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < 2; k++) {
            int dim = dims[d], n = ns[k];
            float *table;
            uint16_t *ht = random_bf16((size_t)vocab * dim, -1, 1, &table);
            int32_t ids[37];
            for (int i = 0; i < n; i++) ids[i] = (int32_t)((i * 271 + 13) % vocab);
            ids[0] = vocab - 1;
            float scale = k ? sqrtf((float)dim) : 1.0f;
            uint16_t *d_t = to_device(ht, (size_t)vocab * dim * sizeof *ht);
            int32_t *d_ids = to_device(ids, (size_t)n * sizeof *ids);
            uint16_t *d_out = guarded_device_bf16((size_t)n * dim, NULL);
            cr_assert_eq(kernel_embed_bf16(d_t, vocab, dim, d_ids, n, scale, d_out, NULL), GALE_OK, "%s",
                         gale_last_error());
            float *gpu = download_bf16(d_out, (size_t)n * dim, "embed");
            gale_tensor t = {.dtype = GALE_BF16, .n_dims = 2, .shape = {vocab, dim}, .data = ht,
                             .nbytes = (uint64_t)vocab * dim * 2};
            float *ref = malloc((size_t)n * dim * sizeof *ref);
            backend b = cpu_reference_backend();
            /* the kernel holds the scale in bf16, as transformers' Gemma does (sqrt(640) →
             * 25.25); one fp32 product rounded once on both sides: the same bits */
            const float bf16_scale = bf16_to_f32(f32_to_bf16(scale));
            cr_assert_eq(b.ops->embed(&b, &t, ids, n, bf16_scale, ref), GALE_OK, "%s", gale_last_error());
            for (size_t i = 0; i < (size_t)n * dim; i++) ref[i] = bf16_to_f32(f32_to_bf16(ref[i]));
            assert_bf16_close(gpu, ref, (size_t)n * dim, 0, 0, "embed");
            thread_pool_destroy(b.pool);
            CUDA_ASSERT(cudaFree(d_t));
            CUDA_ASSERT(cudaFree(d_ids));
            free(ht), free(table), free(gpu), free(ref);
        }
#endif
}

#ifdef GALE_HAVE_CUDA

/* Two sequences of 150 and 40 cached positions (more than one 128-key tile) in blocks
 * scattered through a pool; queries at the last n positions of each, as a prefill chunk
 * and decodes of a batch would be. */
static void check_attention(int n_heads, int n_kv_heads, int head_dim, int window, float softcap) {
    enum { BS = 16, N_BLOCKS = 16, STRIDE = 10, LEN0 = 150, LEN1 = 40, N = 12 };
    const int kv_dim = n_kv_heads * head_dim, lens[2] = {LEN0, LEN1};
    int32_t tables[2 * STRIDE] = {3, 11, 0, 7, 14, 5, 9, 1, 12, 6, 2, 15, 8, 4, -1, -1, -1, -1, -1, -1};
    size_t cache_count = (size_t)N_BLOCKS * BS * kv_dim;
    float *kc, *vc;
    uint16_t *hk = random_bf16(cache_count, -1, 1, &kc), *hv = random_bf16(cache_count, -1, 1, &vc);
    int32_t positions[N], seq_of[N];
    for (int i = 0; i < N; i++) {
        seq_of[i] = i < N / 2 ? 0 : 1;
        positions[i] = lens[seq_of[i]] - N / 2 + (i % (N / 2));
    }
    size_t q_count = (size_t)N * n_heads * head_dim;
    float *q;
    uint16_t *hq = random_bf16(q_count, -1, 1, &q);
    uint16_t *d_q = guarded_device_bf16(q_count, hq), *d_out = guarded_device_bf16(q_count, NULL);
    uint16_t *d_k = to_device(hk, cache_count * 2), *d_v = to_device(hv, cache_count * 2);
    int32_t *d_tables = to_device(tables, sizeof tables), *d_pos = to_device(positions, sizeof positions);
    int32_t *d_seq = to_device(seq_of, sizeof seq_of);
    float scale = 1.0f / sqrtf((float)head_dim);
    cr_assert_eq(kernel_paged_attention_bf16(d_q, d_k, d_v, d_tables, STRIDE, BS, d_pos, d_seq, N, n_heads, n_kv_heads,
                                             head_dim, scale, softcap, window, d_out, NULL),
                 GALE_OK, "%s", gale_last_error());
    float *gpu = download_bf16(d_out, q_count, "attention out");
    free(download_bf16(d_q, q_count, "attention q")); /* checks q's guard, frees it */
    float *ref = malloc(q_count * sizeof *ref);
    paged_kv kv = {.keys = kc, .values = vc, .block_size = BS, .kv_dim = kv_dim, .block_tables = tables, .table_stride = STRIDE};
    attention_params p = {.n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim, .scale = scale,
                          .softcap = softcap, .window = window};
    backend b = cpu_reference_backend();
    cr_assert_eq(b.ops->attention(&b, q, &kv, N, positions, seq_of, &p, ref), GALE_OK, "%s", gale_last_error());
    for (size_t i = 0; i < q_count; i++) ref[i] = bf16_to_f32(f32_to_bf16(ref[i]));
    char what[96];
    snprintf(what, sizeof what, "attention %d/%d heads × %d, window %d, softcap %g", n_heads, n_kv_heads, head_dim, window,
             (double)softcap);
    for (size_t i = 0; i < q_count; i++) {
        double diff = fabs((double)gpu[i] - ref[i]);
        cr_assert(diff <= 0x1p-7 * fabs(ref[i]) + 1e-3, "%s: value %zu is %.7g on the GPU, %.7g on the CPU", what, i,
                  gpu[i], ref[i]);
    }
    thread_pool_destroy(b.pool);
    CUDA_ASSERT(cudaFree(d_k));
    CUDA_ASSERT(cudaFree(d_v));
    CUDA_ASSERT(cudaFree(d_tables));
    CUDA_ASSERT(cudaFree(d_pos));
    CUDA_ASSERT(cudaFree(d_seq));
    free(hk), free(hv), free(kc), free(vc), free(hq), free(q), free(gpu), free(ref);
}

#endif

Test(kernels_cuda, paged_attention_matches_cpu) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    check_attention(9, 3, 64, 0, 0.0f);
    check_attention(8, 8, 128, 32, 0.0f);
    check_attention(4, 1, 256, 0, 50.0f);
    check_attention(4, 2, 64, 100, 0.0f);
#endif
}

#ifdef GALE_HAVE_CUDA

/* The decode GEMV against the CPU matmul on the same bf16 values: one bf16 rounding of the
 * result (2^-8 relative) plus the fp32 sum's order, bounded by 2^-20 · Σ|w·x| (in ≤ 14336
 * terms, each rounding at most 2^-24 of the running magnitude). */
static void check_gemv(int n, int out_dim, int in_dim) {
    float *x, *w;
    uint16_t *hx = random_bf16((size_t)n * in_dim, -1, 1, &x), *hw = random_bf16((size_t)out_dim * in_dim, -1, 1, &w);
    uint16_t *d_x = to_device(hx, (size_t)n * in_dim * 2), *d_w = to_device(hw, (size_t)out_dim * in_dim * 2);
    uint16_t *d_y = guarded_device_bf16((size_t)n * out_dim, NULL);
    cr_assert(kernel_gemv_supported(d_x, d_w, n, in_dim), "gemv %d×%d×%d should be supported", n, out_dim, in_dim);
    cr_assert_eq(kernel_gemv_bf16(d_x, n, d_w, out_dim, in_dim, d_y, NULL), GALE_OK, "%s", gale_last_error());
    float *gpu = download_bf16(d_y, (size_t)n * out_dim, "gemv out");
    gale_tensor t = {.dtype = GALE_F32, .n_dims = 2, .shape = {out_dim, in_dim}, .data = w,
                     .nbytes = (uint64_t)out_dim * in_dim * 4};
    float *ref = malloc((size_t)n * out_dim * sizeof *ref);
    backend b = cpu_reference_backend();
    cr_assert_eq(b.ops->matmul(&b, x, n, &t, ref), GALE_OK, "%s", gale_last_error());
    for (int r = 0; r < n; r++)
        for (int o = 0; o < out_dim; o++) {
            double magnitude = 0;
            for (int k = 0; k < in_dim; k++) magnitude += fabs((double)x[(size_t)r * in_dim + k] * w[(size_t)o * in_dim + k]);
            const float expect = ref[(size_t)r * out_dim + o], got = gpu[(size_t)r * out_dim + o];
            cr_assert(fabs((double)got - expect) <= 0x1p-8 * fabs(expect) + 0x1p-20 * magnitude,
                      "gemv %d×%d×%d: y[%d, %d] is %.7g on the GPU, %.7g on the CPU", n, out_dim, in_dim, r, o, got, expect);
        }
    thread_pool_destroy(b.pool);
    CUDA_ASSERT(cudaFree(d_x));
    CUDA_ASSERT(cudaFree(d_w));
    free(hx), free(hw), free(x), free(w), free(gpu), free(ref);
}

#endif

Test(kernels_cuda, gemv_matches_cpu_matmul) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    const int shapes[][2] = {{576, 576}, {1000, 640}, {49153, 576}, {37, 14336}, {4096, 4104}};
    for (int s = 0; s < 5; s++)
        for (int n = 1; n <= GEMV_MAX_ROWS; n += (s == 0 ? 1 : 3)) check_gemv(n, shapes[s][0], shapes[s][1]);
    cr_assert(!kernel_gemv_supported((void *)16, (void *)16, 9, 64), "9 rows: cuBLAS's");
    cr_assert(!kernel_gemv_supported((void *)16, (void *)16, 1, 60), "in not a multiple of 8");
    cr_assert(!kernel_gemv_supported((void *)18, (void *)16, 1, 64), "misaligned x");
#endif
}

/* The backend's ops that return nothing (norm, rope, activation, …) keep a refused launch
 * for the next op that returns a status: it fails with the first one's message, once. */
Test(kernels_cuda, a_failed_void_op_is_reported_by_the_next_op) {
    require_cuda();
#ifdef GALE_HAVE_CUDA
    backend gb = {0};
    cr_assert_eq(cuda_backend_open(&gb), GALE_OK, "%s", gale_last_error());
    float w[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    float *d_w = to_device(w, sizeof w);
    uint16_t *d_x = guarded_device_bf16(8, NULL);
    gb.ops->rmsnorm(&gb, d_x, 1, 70000, d_w, 0.0f, 1e-6f, d_x); /* 70000 values a row: more than the kernel takes */
    gb.ops->rmsnorm(&gb, d_x, 1, 0, d_w, 0.0f, 1e-6f, d_x);     /* a second failure: the first one is kept */
    float out[8];
    cr_assert_eq(gb.ops->to_host(&gb, d_x, 8, out), GALE_ERR_INVALID_ARG, "the refused norm is reported");
    cr_assert(strstr(gale_last_error(), "70000"), "the first failure's message: %s", gale_last_error());
    cr_assert_eq(gb.ops->to_host(&gb, d_x, 8, out), GALE_OK, "reported once: %s", gale_last_error());
    free(download_bf16(d_x, 8, "the refused norm's buffer")); /* untouched guard, buffer freed */
    CUDA_ASSERT(cudaFree(d_w));
    cuda_backend_close(&gb);
#endif
}
