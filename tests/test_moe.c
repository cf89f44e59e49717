/* The mixture-of-experts op (backend_moe on the CPU backend, the reference of the GPU
 * dispatch to come) against a plain double-precision evaluation of Mixtral's layer —
 * softmax over all router logits, top-k, renormalise, weighted sum of the chosen
 * experts' SiLU MLPs — for E=8 k=2, E=4 k=1, E=16 k=4 and E=6 k=3, batches of 1, 3 and
 * 64 tokens, with random routings and with one where a single expert takes every token
 * (so the others get none). Each token's output is also the same bit for bit computed
 * alone. Tolerance: 1e-5 of the output's largest magnitude (fp32 against fp64). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "test_support.h"

enum { H = 24, I = 40 };

static uint64_t rng = 7;
static float uniform(float lo, float hi) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 11) % 1000003) / 1000003.0f;
}

typedef struct experts {
    int E, K;
    float *router;             /* [E, H] */
    float *gate, *up, *down;   /* [E, I, H], [E, I, H], [E, H, I] */
    gale_tensor router_t, *gate_t, *up_t, *down_t;
} experts;

static gale_tensor f32_tensor(const float *data, int64_t rows, int64_t cols) {
    return (gale_tensor){.dtype = GALE_F32, .n_dims = 2, .shape = {rows, cols}, .data = data,
                         .nbytes = (uint64_t)(rows * cols) * sizeof(float)};
}

static experts make_experts(int E, int K, bool one_takes_all) {
    experts x = {.E = E, .K = K};
    x.router = malloc((size_t)E * H * sizeof(float));
    x.gate = malloc((size_t)E * I * H * sizeof(float));
    x.up = malloc((size_t)E * I * H * sizeof(float));
    x.down = malloc((size_t)E * H * I * sizeof(float));
    for (int i = 0; i < E * H; i++) x.router[i] = uniform(-1, 1);
    if (one_takes_all) /* inputs are positive below: expert E-1's logit dominates */
        for (int i = 0; i < H; i++) x.router[(size_t)(E - 1) * H + i] = 20.0f;
    for (int i = 0; i < E * I * H; i++) x.gate[i] = uniform(-0.3f, 0.3f), x.up[i] = uniform(-0.3f, 0.3f);
    for (int i = 0; i < E * H * I; i++) x.down[i] = uniform(-0.3f, 0.3f);
    x.router_t = f32_tensor(x.router, E, H);
    x.gate_t = malloc((size_t)E * sizeof *x.gate_t);
    x.up_t = malloc((size_t)E * sizeof *x.up_t);
    x.down_t = malloc((size_t)E * sizeof *x.down_t);
    for (int e = 0; e < E; e++) {
        x.gate_t[e] = f32_tensor(x.gate + (size_t)e * I * H, I, H);
        x.up_t[e] = f32_tensor(x.up + (size_t)e * I * H, I, H);
        x.down_t[e] = f32_tensor(x.down + (size_t)e * H * I, H, I);
    }
    return x;
}

static void free_experts(experts *x) {
    free(x->router), free(x->gate), free(x->up), free(x->down), free(x->gate_t), free(x->up_t), free(x->down_t);
}

/* Mixtral's layer in double precision for one token. */
static void reference(const experts *x, const float *in, double *out) {
    double logits[16], probs[16], sum = 0, max = -INFINITY;
    for (int e = 0; e < x->E; e++) {
        logits[e] = 0;
        for (int i = 0; i < H; i++) logits[e] += (double)x->router[(size_t)e * H + i] * in[i];
        max = logits[e] > max ? logits[e] : max;
    }
    for (int e = 0; e < x->E; e++) sum += probs[e] = exp(logits[e] - max);
    int chosen[8];
    double kept = 0;
    for (int k = 0; k < x->K; k++) {
        int best = -1;
        for (int e = 0; e < x->E; e++) {
            bool taken = false;
            for (int j = 0; j < k; j++) taken |= chosen[j] == e;
            if (!taken && (best < 0 || probs[e] > probs[best])) best = e;
        }
        chosen[k] = best;
        kept += probs[best] / sum;
    }
    memset(out, 0, H * sizeof *out);
    for (int k = 0; k < x->K; k++) {
        int e = chosen[k];
        double act[I];
        for (int r = 0; r < I; r++) {
            double g = 0, u = 0;
            for (int i = 0; i < H; i++) {
                g += (double)x->gate[((size_t)e * I + r) * H + i] * in[i];
                u += (double)x->up[((size_t)e * I + r) * H + i] * in[i];
            }
            act[r] = g / (1 + exp(-g)) * u;
        }
        double weight = probs[e] / sum / kept;
        for (int d = 0; d < H; d++) {
            double y = 0;
            for (int r = 0; r < I; r++) y += (double)x->down[((size_t)e * H + d) * I + r] * act[r];
            out[d] += weight * y;
        }
    }
}

/* One layer of E experts (top K) over n tokens with the given scratch, which may have
 * served other layers before. */
static void check_in(backend *b, moe_scratch *scratch, int E, int K, int n, bool one_takes_all) {
    experts x = make_experts(E, K, one_takes_all);
    float *in = malloc((size_t)n * H * sizeof *in);
    for (int i = 0; i < n * H; i++) in[i] = one_takes_all ? uniform(0.05f, 1) : uniform(-1, 1);
    moe_weights w = {.router = &x.router_t, .gate = x.gate_t, .up = x.up_t, .down = x.down_t, .n_experts = E,
                     .top_k = K, .hidden = H, .intermediate = I, .act = GALE_ACT_SILU};
    float *out = guarded_alloc((size_t)n * H), alone[H];
    cr_assert_eq(backend_moe(b, in, n, &w, scratch, out), GALE_OK, "%s", gale_last_error());
    double worst = 0, scale = 0, ref[H];
    for (int t = 0; t < n; t++) {
        reference(&x, in + (size_t)t * H, ref);
        for (int d = 0; d < H; d++) {
            double diff = fabs(ref[d] - out[(size_t)t * H + d]);
            worst = diff > worst || isnan(diff) ? diff : worst;
            scale = fabs(ref[d]) > scale ? fabs(ref[d]) : scale;
        }
        cr_assert_eq(backend_moe(b, in + (size_t)t * H, 1, &w, scratch, alone), GALE_OK, "%s", gale_last_error());
        cr_assert(memcmp(alone, out + (size_t)t * H, sizeof alone) == 0, "E=%d k=%d n=%d: token %d differs alone", E, K,
                  n, t);
    }
    cr_assert(worst <= 1e-5 * scale, "E=%d k=%d n=%d: off by %.3g of %.3g", E, K, n, worst, scale);
    guarded_check_free(out, (size_t)n * H, "moe out");
    free(in);
    free_experts(&x);
}

static void check(int E, int K, int n, bool one_takes_all) {
    backend b = {.ops = &cpu_backend_ops};
    cr_assert_eq(thread_pool_create(2, &b.pool), GALE_OK);
    moe_scratch scratch = {0};
    check_in(&b, &scratch, E, K, n, one_takes_all);
    backend_moe_free(&b, &scratch);
    thread_pool_destroy(b.pool);
}

static const int shapes[][2] = {{8, 2}, {4, 1}, {16, 4}, {6, 3}};

ParameterizedTestParameters(moe, matches_double_precision_and_is_batch_invariant) { return index_params(4); }
ParameterizedTest(size_t *index, moe, matches_double_precision_and_is_batch_invariant) {
    const int E = shapes[*index][0], K = shapes[*index][1];
    rng += *index;
    const int batches[] = {1, 3, 64};
    for (int i = 0; i < 3; i++) {
        check(E, K, batches[i], false);
        check(E, K, batches[i], true);
    }
}

/* One scratch for layers of different shapes (the CUDA backend's fallback keeps one for
 * every layer its kernels leave): the same token count with more experts chosen needs
 * more slots, so the buffers must grow although the tokens did not (ASan sees the
 * overflow; the results go wrong without it too). */
Test(moe, scratch_grows_for_a_larger_layer_at_the_same_token_count) {
    backend b = {.ops = &cpu_backend_ops};
    cr_assert_eq(thread_pool_create(2, &b.pool), GALE_OK);
    moe_scratch scratch = {0};
    check_in(&b, &scratch, 4, 1, 3, false);
    check_in(&b, &scratch, 16, 4, 3, false);
    check_in(&b, &scratch, 6, 3, 3, false);
    backend_moe_free(&b, &scratch);
    thread_pool_destroy(b.pool);
}

Test(moe, refuses_more_chosen_than_experts) {
    experts x = make_experts(4, 2, false);
    backend b = {.ops = &cpu_backend_ops};
    cr_assert_eq(thread_pool_create(1, &b.pool), GALE_OK);
    moe_weights w = {.router = &x.router_t, .gate = x.gate_t, .up = x.up_t, .down = x.down_t, .n_experts = 4,
                     .top_k = 5, .hidden = H, .intermediate = I, .act = GALE_ACT_SILU};
    moe_scratch scratch = {0};
    float in[H] = {0}, out[H];
    assert_error(backend_moe(&b, in, 1, &w, &scratch, out), GALE_ERR_UNSUPPORTED, "4 experts, 5 per token");
    backend_moe_free(&b, &scratch);
    thread_pool_destroy(b.pool);
    free_experts(&x);
}
