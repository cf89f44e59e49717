#include "batch_workload.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

void make_workload(workload *w, const gale_config *c, int out_cap) {
    static const int lengths[N_REQUESTS] = {1, 300, 17, 2, 64, 33, 150, 9, 31, 100, 16, 200, 47, 5, 255, 32};
    static const int outs[N_REQUESTS] = {24, 3, 1, 20, 8, 24, 5, 12, 2, 16, 24, 7, 10, 24, 4, 18};
    uint64_t state = 12345;
    int room = c->max_position_embeddings < 4096 ? c->max_position_embeddings : 4096;
    memset(w, 0, sizeof *w);
    for (int r = 0; r < N_REQUESTS; r++) {
        w->n_out[r] = outs[r] < out_cap ? outs[r] : out_cap;
        w->n_prompt[r] = lengths[r] + w->n_out[r] <= room ? lengths[r] : room - w->n_out[r];
        w->prompt[r] = malloc((size_t)w->n_prompt[r] * sizeof(int32_t));
        for (int i = 0; i < w->n_prompt[r]; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            w->prompt[r][i] = (int32_t)((state >> 33) % (uint64_t)c->vocab);
        }
    }
}

void free_workload(workload *w) {
    for (int r = 0; r < N_REQUESTS; r++) {
        free(w->prompt[r]);
        free(w->text[r]);
    }
}

gale_engine *new_engine(const gale_model *m, int max_seqs, int budget, int kv_blocks) {
    gale_engine_params p = gale_engine_params_default();
    p.n_threads = 2;
    p.max_num_seqs = max_seqs;
    p.max_num_batched_tokens = budget;
    p.kv_blocks = kv_blocks;
    return engine_with(m, &p);
}

gale_engine *engine_with(const gale_model *m, const gale_engine_params *p) {
    gale_engine *e = NULL;
    cr_assert_eq(gale_engine_new(m, NULL, p, &e), GALE_OK, "%s", gale_last_error());
    return e;
}

static gale_request greedy_request(const workload *w, int r) {
    gale_request q = gale_request_default();
    q.ids = w->prompt[r];
    q.n_ids = (size_t)w->n_prompt[r];
    q.max_new_tokens = w->n_out[r];
    q.ignore_eos = true;
    return q;
}

static void collect(workload *w, int r, const gale_output *o) {
    cr_assert_lt(w->n_got[r], MAX_OUT + 1, "request %d got too many tokens", r);
    w->got[r][w->n_got[r]++] = o->token;
    if (o->finish != GALE_FINISH_NONE) cr_assert_eq(o->finish, GALE_FINISH_LENGTH, "request %d: finish %d", r, o->finish);
    if (o->text_len) {
        w->text[r] = realloc(w->text[r], w->text_len[r] + o->text_len + 1);
        memcpy(w->text[r] + w->text_len[r], o->text, o->text_len);
        w->text_len[r] += o->text_len;
        w->text[r][w->text_len[r]] = '\0';
    }
}

void run_workload(gale_engine *e, workload *w, int first, int count, int stagger) {
    uint64_t ids[N_REQUESTS];
    int submitted = 0, steps = 0;
    do {
        gale_request q = greedy_request(w, first + submitted);
        cr_assert_eq(gale_engine_submit(e, &q, &ids[submitted]), GALE_OK, "%s", gale_last_error());
        submitted++;
    } while (stagger == 0 && submitted < count);
    while (gale_engine_busy(e) || submitted < count) {
        if (submitted < count && steps % stagger == 0) {
            gale_request q = greedy_request(w, first + submitted);
            cr_assert_eq(gale_engine_submit(e, &q, &ids[submitted]), GALE_OK, "%s", gale_last_error());
            submitted++;
        }
        const gale_output *out;
        size_t n;
        cr_assert_eq(gale_engine_step(e, &out, &n), GALE_OK, "%s", gale_last_error());
        for (size_t k = 0; k < n; k++) {
            int r = (int)(out[k].request_id - ids[0]);
            cr_assert(r >= 0 && r < count, "output for an unknown request %llu", (unsigned long long)out[k].request_id);
            collect(w, first + r, &out[k]);
        }
        cr_assert_lt(++steps, 100000, "the engine does not finish");
    }
}

void run_alone(const gale_model *m, workload *w) {
    for (int r = 0; r < N_REQUESTS; r++) {
        gale_engine *e = new_engine(m, 1, 512, 0);
        run_workload(e, w, r, 1, 0);
        gale_engine_free(e);
        cr_assert_eq(w->n_got[r], w->n_out[r], "request %d alone: %d tokens, wanted %d", r, w->n_got[r], w->n_out[r]);
    }
}

void assert_same_tokens(const workload *alone, const workload *batched, const char *model, const char *how) {
    for (int r = 0; r < N_REQUESTS; r++) {
        cr_assert_eq(batched->n_got[r], alone->n_got[r], "%s %s: request %d got %d tokens, alone %d", model, how, r,
                     batched->n_got[r], alone->n_got[r]);
        for (int i = 0; i < alone->n_got[r]; i++)
            cr_assert_eq(batched->got[r][i], alone->got[r][i], "%s %s: request %d (prompt %d) token %d: %d, alone %d", model,
                         how, r, alone->n_prompt[r], i, batched->got[r][i], alone->got[r][i]);
    }
}

void assert_pool_full(const gale_engine *e) {
    gale_engine_stats st = gale_engine_get_stats(e);
    for (int g = 0; g < st.kv_groups; g++)
        cr_assert_eq(st.kv_blocks_free[g], st.kv_blocks_total[g], "group %d: %d of %d blocks back", g, st.kv_blocks_free[g],
                     st.kv_blocks_total[g]);
}
