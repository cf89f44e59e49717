/* Sampling: seeded reproducibility, greedy limits, parameter checks, penalties, and a
 * chi-square test that draws follow the tempered, truncated distribution. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engine/sampler.h"
#include "test_support.h"

enum { V = 6 };
static const float base_logits[V] = {2.0f, 1.5f, 1.0f, 0.2f, -0.5f, -1.0f};

static gale_sampler *make(float temperature, int top_k, float top_p, float min_p, uint64_t seed) {
    gale_sampling_params p = gale_sampling_params_default();
    p.temperature = temperature, p.top_k = top_k, p.top_p = top_p, p.min_p = min_p, p.seed = seed;
    gale_sampler *s = NULL;
    cr_assert_eq(gale_sampler_new(&p, V, &s), GALE_OK, "%s", gale_last_error());
    return s;
}

static int32_t draw(gale_sampler *s) {
    float logits[V];
    memcpy(logits, base_logits, sizeof logits);
    int32_t id = -1;
    cr_assert_eq(gale_sampler_sample(s, logits, NULL, 0, &id), GALE_OK);
    cr_assert(id >= 0 && id < V);
    return id;
}

Test(sampler, same_seed_same_draws) {
    gale_sampler *a = make(1.0f, 0, 1.0f, 0.0f, 42), *b = make(1.0f, 0, 1.0f, 0.0f, 42), *c = make(1.0f, 0, 1.0f, 0.0f, 43);
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        int32_t x = draw(a), y = draw(b), z = draw(c);
        cr_assert_eq(x, y, "draw %d differs with the same seed", i);
        differ += x != z;
    }
    cr_assert_gt(differ, 20, "another seed gave nearly the same draws");
    gale_sampler_free(a), gale_sampler_free(b), gale_sampler_free(c);
}

Test(sampler, top_k_one_and_temperature_zero_are_greedy) {
    gale_sampler *k1 = make(1.5f, 1, 1.0f, 0.0f, 7), *t0 = make(0.0f, 0, 1.0f, 0.0f, 7);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(draw(k1), 0);
        cr_assert_eq(draw(t0), 0);
    }
    gale_sampler_free(k1), gale_sampler_free(t0);
}

/* A broken model's NaN or infinite logits: NaN is never picked nor drawn (greedy would
 * otherwise stick to a NaN at id 0), a row of NaN gives id 0, an infinite top logit is the
 * greedy pick at any temperature. kernels/sample.cu follows the same rules. */
Test(sampler, nan_is_never_picked_and_infinity_is_greedy) {
    const float inf = INFINITY;
    struct {
        float logits[V];
        int32_t greedy;
    } rows[] = {
        {{NAN, 1.0f, 3.0f, 3.0f, -2.0f, NAN}, 2},     /* NaN at id 0; the tie goes to the lower id */
        {{NAN, NAN, NAN, NAN, NAN, NAN}, 0},          /* nothing drawable */
        {{NAN, -inf, NAN, -inf, NAN, -inf}, 1},       /* the first number, even at −inf */
        {{0.5f, 2.0f, NAN, inf, 1.0f, -1.0f}, 3},     /* +inf wins at any temperature */
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
        for (int t = 0; t < 3; t++) {
            gale_sampler *s = make(t == 0 ? 0.0f : t == 1 ? 1.0f : 2.5f, t == 2 ? 3 : 0, t == 2 ? 0.9f : 1.0f, 0.0f, 99);
            for (int i = 0; i < 200; i++) {
                float logits[V];
                memcpy(logits, rows[r].logits, sizeof logits);
                int32_t id = -1;
                cr_assert_eq(gale_sampler_sample(s, logits, NULL, 0, &id), GALE_OK);
                cr_assert(id >= 0 && id < V, "row %zu: id %d", r, id);
                if (r == 0 && t > 0) /* drawn among the numbers */
                    cr_assert(!isnan(rows[r].logits[id]), "row %zu temperature case %d: NaN id %d drawn", r, t, id);
                else
                    cr_assert_eq(id, rows[r].greedy, "row %zu temperature case %d: id %d, %d expected", r, t, id,
                                 rows[r].greedy);
            }
            gale_sampler_free(s);
        }
}

/* chi-square with V-1 (or kept-1) degrees of freedom against the expected probabilities;
 * the bounds are the 0.001 critical values, so a correct sampler fails 1 run in 1000 —
 * with fixed seeds, never. */
static void chi_square(float temperature, float top_p, int expect_kept, double critical) {
    gale_sampler *s = make(temperature, 0, top_p, 0.0f, 1234);
    enum { DRAWS = 40000 };
    int counts[V] = {0};
    for (int i = 0; i < DRAWS; i++) counts[draw(s)]++;
    double p[V], sum = 0;
    for (int i = 0; i < V; i++) sum += p[i] = exp(base_logits[i] / temperature);
    double kept_mass = 0;
    for (int i = 0; i < expect_kept; i++) kept_mass += p[i];
    double chi = 0;
    for (int i = 0; i < V; i++) {
        if (i >= expect_kept) {
            cr_assert_eq(counts[i], 0, "token %d is outside top-p but was drawn %d times", i, counts[i]);
            continue;
        }
        double expected = DRAWS * p[i] / kept_mass;
        chi += (counts[i] - expected) * (counts[i] - expected) / expected;
    }
    cr_assert_lt(chi, critical, "chi-square %.2f (temperature %g, top_p %g)", chi, (double)temperature, (double)top_p);
    (void)sum;
    gale_sampler_free(s);
}

Test(sampler, draws_follow_the_softmax) { chi_square(1.0f, 1.0f, V, 20.52); }
Test(sampler, temperature_sharpens) { chi_square(0.7f, 1.0f, V, 20.52); }
/* softmax(base) ≈ .40 .24 .15 .07 .03 .02: top_p 0.75 keeps the first three (0.40+0.24 < 0.75 <= 0.79) */
Test(sampler, top_p_truncates_and_renormalises) { chi_square(1.0f, 0.75f, 3, 13.82); }

/* softmax([2, 1, 1, 1, 0, -1]) ≈ .43 .16 .16 .16 .06 .02: top_p 0.55 is reached inside the
 * tie of ids 1-3, and all three stay (kernels/sample.cu keeps the same set); a cut by id
 * would never draw 2 and 3 */
Test(sampler, top_p_keeps_the_tie_at_its_edge) {
    const float tied[V] = {2.0f, 1.0f, 1.0f, 1.0f, 0.0f, -1.0f};
    gale_sampler *s = make(1.0f, 0, 0.55f, 0.0f, 99);
    enum { DRAWS = 20000 };
    int counts[V] = {0};
    for (int i = 0; i < DRAWS; i++) {
        float logits[V];
        memcpy(logits, tied, sizeof logits);
        int32_t id = -1;
        cr_assert_eq(gale_sampler_sample(s, logits, NULL, 0, &id), GALE_OK);
        cr_assert(id >= 0 && id < V);
        counts[id]++;
    }
    cr_assert_eq(counts[4] + counts[5], 0, "ids 4 and 5 lie past the top-p edge but were drawn %d times",
                 counts[4] + counts[5]);
    /* kept {0,1,2,3}: id 0 has e/(e+3) ≈ .475 of the draws, each tied id ≈ .175 */
    double expect_tied = DRAWS / (exp(1.0) + 3.0);
    for (int i = 1; i <= 3; i++)
        cr_assert(fabs(counts[i] - expect_tied) < 5 * sqrt(expect_tied), "tied id %d drawn %d times, expected about %.0f", i,
                  counts[i], expect_tied);
    gale_sampler_free(s);
}

Test(sampler, penalties_follow_their_definitions) {
    gale_sampling_params p = gale_sampling_params_default();
    p.temperature = 0, p.repetition_penalty = 2.0f, p.presence_penalty = 0.5f, p.frequency_penalty = 0.25f;
    gale_sampler *s;
    cr_assert_eq(gale_sampler_new(&p, V, &s), GALE_OK);
    float logits[V] = {2.0f, -2.0f, 1.9f, 0, 0, 0};
    int32_t history[] = {0, 0, 1}, id;
    cr_assert_eq(gale_sampler_sample(s, logits, history, 3, &id), GALE_OK);
    /* token 0: 2/2 - 0.5 - 0.25·2 = 0; token 1: -2·2 - 0.5 - 0.25 = -4.75 */
    cr_assert_float_eq(logits[0], 0.0f, 1e-6);
    cr_assert_float_eq(logits[1], -4.75f, 1e-6);
    cr_assert_eq(id, 2);
    gale_sampler_free(s);
}

Test(sampler, invalid_parameters_are_refused) {
    struct {
        float temperature, top_p, min_p, repetition;
        int top_k;
        const char *needle;
    } cases[] = {
        {-0.1f, 1.0f, 0.0f, 1.0f, 0, "temperature"}, {1.0f, 0.0f, 0.0f, 1.0f, 0, "top_p"},
        {1.0f, 1.5f, 0.0f, 1.0f, 0, "top_p"},        {1.0f, 1.0f, -0.1f, 1.0f, 0, "min_p"},
        {1.0f, 1.0f, 0.0f, 0.0f, 0, "repetition_penalty"}, {1.0f, 1.0f, 0.0f, 1.0f, -1, "top_k"},
        {NAN, 1.0f, 0.0f, 1.0f, 0, "temperature"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gale_sampling_params p = gale_sampling_params_default();
        p.temperature = cases[i].temperature, p.top_p = cases[i].top_p, p.min_p = cases[i].min_p;
        p.repetition_penalty = cases[i].repetition, p.top_k = cases[i].top_k;
        gale_sampler *s = NULL;
        assert_error(gale_sampler_new(&p, V, &s), GALE_ERR_INVALID_ARG, cases[i].needle);
        cr_assert_null(s);
    }
}

/* The rule the engine hands a device sampler: parameters, a draw counter that advances
 * once a draw was made and, with a penalty, each distinct history id once with its count. */
Test(sampler, device_row_counts_distinct_history_ids) {
    gale_sampling_params p = gale_sampling_params_default();
    p.frequency_penalty = 0.5f;
    p.seed = 99;
    gale_sampler *s = NULL;
    cr_assert_eq(gale_sampler_new(&p, 50, &s), GALE_OK, "%s", gale_last_error());
    const int32_t history[] = {4, 9, 4, 4, 17, 9, -1, 50, 0};
    sample_row row;
    cr_assert_eq(sampler_device_row(s, history, 9, &row), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(row.draw, 0);
    cr_assert_eq(row.params.seed, 99);
    cr_assert_eq(row.n_penalty, 4, "ids 4, 9, 17, 0 (out-of-range ids skipped)");
    const int32_t ids[] = {4, 9, 17, 0}, counts[] = {3, 2, 1, 1};
    for (int j = 0; j < 4; j++) {
        cr_assert_eq(row.penalty_ids[j], ids[j], "pair %d", j);
        cr_assert_eq(row.penalty_counts[j], counts[j], "pair %d", j);
    }
    /* a row whose draw was not made (its step failed) is asked for again: the same draw */
    cr_assert_eq(sampler_device_row(s, history, 2, &row), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(row.draw, 0, "the draw counter waits for the draw");
    sampler_drew(s);
    cr_assert_eq(sampler_device_row(s, history, 2, &row), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(row.draw, 1, "the draw counter advances once the draw was made");
    cr_assert_eq(row.n_penalty, 2, "the counts start from zero again");
    cr_assert_eq(row.penalty_counts[0], 1);
    gale_sampler_free(s);

    p.frequency_penalty = 0;
    cr_assert_eq(gale_sampler_new(&p, 50, &s), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(sampler_device_row(s, history, 9, &row), GALE_OK, "%s", gale_last_error());
    cr_assert_eq(row.n_penalty, 0, "no penalty, no pairs");
    gale_sampler_free(s);
}
