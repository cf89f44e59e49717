/* Token sampling: penalties, temperature, top-k, top-p, min-p, then a draw from a seeded
 * generator (xoshiro256**), so the same seed gives the same text. Temperature 0 is
 * greedy. The order follows llama.cpp's default chain and transformers' processors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "engine/sampler.h"
#include "gale.h"

/* a logit with its id, so the sort needs no global key (samplers on other threads) */
struct candidate {
    float logit;
    int32_t id;
};

struct gale_sampler {
    gale_sampling_params p;
    int vocab;
    uint64_t state[4];
    int32_t *order;  /* [vocab] candidate ids */
    struct candidate *sorted; /* [vocab] the sort's scratch */
    float *probs;    /* [vocab] */
    int32_t *counts; /* [vocab] occurrences in the history, for the penalties */
    int32_t *pair_counts; /* [vocab] the device rule's counts (sampler_device_row), on demand */
    uint64_t draws;       /* device rules handed out: the Philox offset of the next */
};

gale_sampling_params gale_sampling_params_default(void) {
    return (gale_sampling_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                                  .repetition_penalty = 1.0f, .seed = 0};
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return result;
}

/* uniform in [0, 1) with 53 random bits */
static double next_uniform(uint64_t s[4]) { return (double)(next_u64(s) >> 11) * 0x1p-53; }

gale_status gale_sampler_new(const gale_sampling_params *p, int vocab, gale_sampler **out) {
    *out = NULL;
    if (!p || vocab <= 0) return gale_error(GALE_ERR_INVALID_ARG, "sampler: parameters and a vocabulary are required");
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return gale_error(GALE_ERR_INVALID_ARG, "sampler: temperature %g must be >= 0", (double)p->temperature);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return gale_error(GALE_ERR_INVALID_ARG, "sampler: top_p %g must be in (0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return gale_error(GALE_ERR_INVALID_ARG, "sampler: min_p %g must be in [0, 1]", (double)p->min_p);
    if (p->top_k < 0) return gale_error(GALE_ERR_INVALID_ARG, "sampler: top_k %d must be >= 0 (0: off)", p->top_k);
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return gale_error(GALE_ERR_INVALID_ARG, "sampler: repetition_penalty %g must be > 0", (double)p->repetition_penalty);
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        return gale_error(GALE_ERR_INVALID_ARG, "sampler: penalties must be finite");
    gale_sampler *s = calloc(1, sizeof *s);
    if (!s) return gale_error(GALE_ERR_OOM, "sampler: out of memory");
    s->p = *p;
    s->vocab = vocab;
    s->order = malloc((size_t)vocab * sizeof *s->order);
    s->probs = malloc((size_t)vocab * sizeof *s->probs);
    s->counts = calloc((size_t)vocab, sizeof *s->counts);
    s->sorted = malloc((size_t)vocab * sizeof *s->sorted);
    if (!s->order || !s->probs || !s->counts || !s->sorted) {
        gale_sampler_free(s);
        return gale_error(GALE_ERR_OOM, "sampler: out of memory");
    }
    uint64_t seed = p->seed;
    for (int i = 0; i < 4; i++) s->state[i] = splitmix64(&seed);
    *out = s;
    return GALE_OK;
}

void gale_sampler_free(gale_sampler *s) {
    if (!s) return;
    free(s->order);
    free(s->probs);
    free(s->counts);
    free(s->sorted);
    free(s->pair_counts);
    free(s);
}

int sampler_vocab(const gale_sampler *s) { return s->vocab; }

void sampler_drew(gale_sampler *s) { s->draws++; }

static bool has_penalty(const gale_sampling_params *p) {
    return p->repetition_penalty != 1.0f || p->presence_penalty != 0 || p->frequency_penalty != 0;
}

static void apply_penalties(gale_sampler *s, float *logits, const int32_t *history, size_t n) {
    const gale_sampling_params *p = &s->p;
    if (!has_penalty(p)) return;
    for (size_t i = 0; i < n; i++)
        if (history[i] >= 0 && history[i] < s->vocab) s->counts[history[i]]++;
    for (size_t i = 0; i < n; i++) {
        int32_t id = history[i];
        if (id < 0 || id >= s->vocab || s->counts[id] == 0) continue;
        float *l = &logits[id];
        /* transformers' repetition penalty: shrink positive logits, push negative ones down */
        *l = *l > 0 ? *l / p->repetition_penalty : *l * p->repetition_penalty;
        *l -= p->presence_penalty + p->frequency_penalty * (float)s->counts[id];
        s->counts[id] = 0; /* each id once */
    }
}

gale_status sampler_device_row(gale_sampler *s, const int32_t *history, size_t n, sample_row *row) {
    *row = (sample_row){.params = s->p, .draw = s->draws};
    if (!has_penalty(&s->p)) return GALE_OK;
    if (!s->pair_counts && !(s->pair_counts = malloc((size_t)s->vocab * sizeof *s->pair_counts)))
        return gale_error(GALE_ERR_OOM, "sampler: out of memory");
    int distinct = 0; /* s->order holds the distinct ids, in order of first use */
    for (size_t i = 0; i < n; i++)
        if (history[i] >= 0 && history[i] < s->vocab && s->counts[history[i]]++ == 0) s->order[distinct++] = history[i];
    for (int j = 0; j < distinct; j++) {
        s->pair_counts[j] = s->counts[s->order[j]];
        s->counts[s->order[j]] = 0;
    }
    row->penalty_ids = s->order;
    row->penalty_counts = s->pair_counts;
    row->n_penalty = distinct;
    return GALE_OK;
}

/* The largest logit's id, the lowest id on ties. A NaN logit is never picked (a model
 * that produced one is broken, but one bad id must not win every step because it sits at
 * id 0); a row of NaN gives 0. kernels/sample.cu picks the same id. */
static int32_t argmax(const float *x, int n) {
    int32_t best = -1;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
    return best < 0 ? 0 : best;
}

static int by_logit_desc(const void *a, const void *b) {
    const struct candidate *x = a, *y = b;
    if (isnan(x->logit) != isnan(y->logit)) return isnan(x->logit) ? 1 : -1; /* NaN last: a consistent order */
    if (x->logit != y->logit && !isnan(x->logit)) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : 1; /* ties: lower id first, deterministic */
}

/* Candidates sorted by logit, cut to top_k (0: all) and to the numbers (NaN is never
 * drawn). Returns how many. */
static int top_candidates(gale_sampler *s, const float *logits) {
    int n = s->vocab;
    for (int i = 0; i < n; i++) s->sorted[i] = (struct candidate){logits[i], i};
    qsort(s->sorted, (size_t)n, sizeof *s->sorted, by_logit_desc);
    for (int i = 0; i < n; i++) s->order[i] = s->sorted[i].id;
    while (n > 0 && isnan(logits[s->order[n - 1]])) n--;
    return s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
}

gale_status gale_sampler_sample(gale_sampler *s, float *logits, const int32_t *history, size_t n_history, int32_t *out) {
    apply_penalties(s, logits, history, n_history);
    if (s->p.temperature == 0) {
        *out = argmax(logits, s->vocab);
        return GALE_OK;
    }
    int n = top_candidates(s, logits);
    float max = n > 0 ? logits[s->order[0]] / s->p.temperature : NAN;
    /* nothing to draw from: every logit NaN, or the top one infinite (its probability
     * relative to itself is ∞ − ∞; every other one's is 0 or NaN) — the greedy pick, as
     * kernels/sample.cu */
    if (!isfinite(max)) {
        *out = argmax(logits, s->vocab);
        return GALE_OK;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) sum += s->probs[i] = expf(logits[s->order[i]] / s->p.temperature - max);
    /* top-p: the smallest prefix whose mass reaches p, and every token as probable as its
     * last (which of equal tokens made the cut would otherwise depend on their ids — bf16
     * logits tie often — and kernels/sample.cu keeps them all too); min-p: drop tokens
     * below min_p·p_max */
    double cumulative = 0;
    int keep = n;
    for (int i = 0; i < n; i++) {
        cumulative += s->probs[i] / sum;
        if (cumulative >= s->p.top_p) {
            keep = i + 1;
            while (keep < n && s->probs[keep] == s->probs[keep - 1]) keep++;
            break;
        }
    }
    float floor = s->p.min_p * s->probs[0];
    while (keep > 1 && s->probs[keep - 1] < floor) keep--;
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += s->probs[i];
    double r = next_uniform(s->state) * kept;
    for (int i = 0; i < keep; i++) {
        r -= s->probs[i];
        if (r < 0) {
            *out = s->order[i];
            return GALE_OK;
        }
    }
    *out = s->order[keep - 1];
    return GALE_OK;
}
