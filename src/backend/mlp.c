/* Mixtral's mixture of experts over the backend op table (backend.h: backend_moe). */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/status.h"

gale_status backend_gated_mlp(backend *b, const gale_tensor *gate_w, const gale_tensor *up_w, const gale_tensor *down_w,
                              gale_activation act, int intermediate, const void *x, int n, void *gate, void *up,
                              void *out) {
    const backend_ops *ops = b->ops;
    GALE_TRY(ops->matmul(b, x, n, gate_w, gate));
    GALE_TRY(ops->matmul(b, x, n, up_w, up));
    ops->gated_activation(b, gate, up, (size_t)n * (size_t)intermediate, act);
    return ops->matmul(b, gate, n, down_w, out);
}

static int max_int(int a, int b) { return a > b ? a : b; }

/* Buffers for `tokens` tokens of layer w: kept while they are as large in every dimension
 * (one scratch may serve layers of different shapes), else sized for the larger of each. */
static gale_status grow(backend *b, moe_scratch *sc, size_t tokens, const moe_weights *w) {
    moe_scratch_shape need = {max_int(w->n_experts, sc->shape.n_experts), max_int(w->top_k, sc->shape.top_k),
                              max_int(w->hidden, sc->shape.hidden), max_int(w->intermediate, sc->shape.intermediate)};
    if (tokens <= sc->cap_tokens && memcmp(&need, &sc->shape, sizeof need) == 0) return GALE_OK;
    tokens = tokens > sc->cap_tokens ? tokens : sc->cap_tokens;
    backend_moe_free(b, sc);
    const size_t slots = tokens * (size_t)need.top_k, act = b->ops->act_size;
    const size_t H = (size_t)need.hidden, I = (size_t)need.intermediate, E = (size_t)need.n_experts;
    void **device[] = {&sc->router, &sc->rows, &sc->gate, &sc->up, &sc->expert_out};
    const size_t counts[] = {tokens * E, slots * H, slots * I, slots * I, slots * H};
    for (size_t i = 0; i < 5; i++) GALE_TRY(b->ops->alloc(b, counts[i] * act, device[i]));
    sc->logits = malloc(tokens * E * sizeof *sc->logits);
    sc->weight = malloc(slots * sizeof *sc->weight);
    sc->slot_expert = malloc(slots * sizeof *sc->slot_expert);
    sc->slot_token = malloc(slots * sizeof *sc->slot_token);
    sc->slot_position = malloc(slots * sizeof *sc->slot_position);
    if (!sc->logits || !sc->weight || !sc->slot_expert || !sc->slot_token || !sc->slot_position)
        return gale_error(GALE_ERR_OOM, "MoE: out of memory for %zu tokens", tokens);
    sc->cap_tokens = tokens;
    sc->shape = need;
    return GALE_OK;
}

void backend_moe_free(backend *b, moe_scratch *sc) {
    void *device[] = {sc->router, sc->rows, sc->gate, sc->up, sc->expert_out};
    for (size_t i = 0; i < 5; i++)
        if (device[i]) b->ops->release(b, device[i]);
    free(sc->logits);
    free(sc->weight);
    free(sc->slot_expert);
    free(sc->slot_token);
    free(sc->slot_position);
    memset(sc, 0, sizeof *sc);
}

void backend_moe_route(const float *logits, int E, int K, int32_t *chosen, float *weight) {
    float probs[1024];
    float max = logits[0], sum = 0;
    for (int e = 1; e < E; e++) max = logits[e] > max ? logits[e] : max;
    for (int e = 0; e < E; e++) sum += probs[e] = expf(logits[e] - max);
    for (int e = 0; e < E; e++) probs[e] /= sum;
    float kept = 0;
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int j = 0; j < k; j++) taken |= chosen[j] == e;
            if (!taken && (best < 0 || probs[e] > probs[best])) best = e;
        }
        chosen[k] = best;
        kept += probs[best];
    }
    for (int k = 0; k < K; k++) weight[k] = probs[chosen[k]] / kept;
}

gale_status backend_moe(backend *b, const void *x, int n, const moe_weights *w, moe_scratch *sc, void *out) {
    const backend_ops *ops = b->ops;
    const int E = w->n_experts, K = w->top_k, H = w->hidden, I = w->intermediate, slots = n * K;
    if (E > 1024 || K > 64 || K > E) return gale_error(GALE_ERR_UNSUPPORTED, "MoE: %d experts, %d per token", E, K);
    GALE_TRY(grow(b, sc, (size_t)n, w));
    GALE_TRY(ops->matmul(b, x, n, w->router, sc->router));
    GALE_TRY(ops->to_host(b, sc->router, (size_t)n * E, sc->logits));
    int count[1025] = {0};
    for (int t = 0; t < n; t++) {
        int32_t *chosen = sc->slot_expert + (size_t)t * K;
        backend_moe_route(sc->logits + (size_t)t * E, E, K, chosen, sc->weight + (size_t)t * K);
        for (int k = 0; k < K; k++) count[chosen[k] + 1]++;
    }
    /* counting sort of the (token, k) slots by expert; slot_position[slot] = its row */
    for (int e = 0; e < E; e++) count[e + 1] += count[e];
    int start[1025];
    memcpy(start, count, sizeof start);
    for (int slot = 0; slot < slots; slot++) {
        int row = start[sc->slot_expert[slot]]++;
        sc->slot_position[slot] = row;
        sc->slot_token[row] = slot / K;
    }
    gale_status status = ops->gather_rows(b, sc->rows, x, sc->slot_token, slots, H);
    for (int e = 0; status == GALE_OK && e < E; e++) {
        int first = count[e], rows = count[e + 1] - count[e];
        if (rows == 0) continue;
        const void *xs = backend_row(b, sc->rows, (size_t)first, (size_t)H);
        status = backend_gated_mlp(b, &w->gate[e], &w->up[e], &w->down[e], w->act, I, xs, rows,
                                   backend_row(b, sc->gate, (size_t)first, (size_t)I),
                                   backend_row(b, sc->up, (size_t)first, (size_t)I),
                                   backend_row(b, sc->expert_out, (size_t)first, (size_t)H));
    }
    GALE_TRY(status);
    ops->zero(b, out, (size_t)n * H);
    for (int t = 0; t < n; t++)
        for (int k = 0; k < K; k++)
            ops->scale_add(b, backend_row(b, out, (size_t)t, (size_t)H),
                           backend_row(b, sc->expert_out, (size_t)sc->slot_position[t * K + k], (size_t)H),
                           sc->weight[t * K + k], (size_t)H);
    return GALE_OK;
}
