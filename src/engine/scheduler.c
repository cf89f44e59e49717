#include "engine/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

struct scheduler {
    kv_cache *cache;
    scheduler_params p;
    sched_seq **waiting; /* [cap] FIFO, front first */
    sched_seq **running; /* [max_num_seqs] admission order, oldest first */
    int n_waiting, cap_waiting, n_running;
    uint64_t preemptions;
    /* the step being built */
    int32_t *ids, *positions, *seq_of, *logit_rows; /* [max_num_batched_tokens] */
    sched_seq **members, **samplers;                /* [max_num_seqs] */
    kv_seq **member_kv;                             /* [max_num_seqs] */
    int *chunks;                                    /* [max_num_seqs] */
    int n_members, n_tokens, n_logits;
};

gale_status scheduler_new(kv_cache *cache, const scheduler_params *p, scheduler **out) {
    *out = NULL;
    if (p->max_num_seqs <= 0 || p->max_num_batched_tokens <= 0 || p->max_len <= 0)
        return gale_error(GALE_ERR_INVALID_ARG, "scheduler: max_num_seqs (%d), max_num_batched_tokens (%d) and the "
                          "context (%d) must be positive", p->max_num_seqs, p->max_num_batched_tokens, p->max_len);
    scheduler *s = calloc(1, sizeof *s);
    if (!s) return gale_error(GALE_ERR_OOM, "scheduler: out of memory");
    s->cache = cache;
    s->p = *p;
    size_t tokens = (size_t)p->max_num_batched_tokens, seqs = (size_t)p->max_num_seqs;
    s->running = calloc(seqs, sizeof *s->running);
    s->ids = malloc(tokens * sizeof *s->ids);
    s->positions = malloc(tokens * sizeof *s->positions);
    s->seq_of = malloc(tokens * sizeof *s->seq_of);
    s->logit_rows = malloc(seqs * sizeof *s->logit_rows);
    s->members = malloc(seqs * sizeof *s->members);
    s->samplers = malloc(seqs * sizeof *s->samplers);
    s->member_kv = malloc(seqs * sizeof *s->member_kv);
    s->chunks = malloc(seqs * sizeof *s->chunks);
    if (!s->running || !s->ids || !s->positions || !s->seq_of || !s->logit_rows || !s->members || !s->samplers ||
        !s->member_kv || !s->chunks) {
        scheduler_free(s);
        return gale_error(GALE_ERR_OOM, "scheduler: out of memory");
    }
    *out = s;
    return GALE_OK;
}

void scheduler_free(scheduler *s) {
    if (!s) return;
    void *bufs[] = {s->waiting, s->running, s->ids, s->positions, s->seq_of, s->logit_rows,
                    s->members, s->samplers, s->member_kv, s->chunks};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(s);
}

int scheduler_waiting(const scheduler *s) { return s->n_waiting; }
int scheduler_running(const scheduler *s) { return s->n_running; }
uint64_t scheduler_preemptions(const scheduler *s) { return s->preemptions; }

/* Room for one more waiting sequence. */
static gale_status waiting_room(scheduler *s) {
    if (s->n_waiting < s->cap_waiting) return GALE_OK;
    int cap = s->cap_waiting ? 2 * s->cap_waiting : 16;
    sched_seq **grown = realloc(s->waiting, (size_t)cap * sizeof *grown);
    if (!grown) return gale_error(GALE_ERR_OOM, "scheduler: out of memory for the waiting queue");
    s->waiting = grown;
    s->cap_waiting = cap;
    return GALE_OK;
}

static gale_status push_waiting(scheduler *s, sched_seq *seq, bool front) {
    GALE_TRY(waiting_room(s));
    if (front) {
        memmove(s->waiting + 1, s->waiting, (size_t)s->n_waiting * sizeof *s->waiting);
        s->waiting[0] = seq;
    } else {
        s->waiting[s->n_waiting] = seq;
    }
    s->n_waiting++;
    return GALE_OK;
}

static void remove_at(sched_seq **list, int *count, int index) {
    memmove(list + index, list + index + 1, (size_t)(*count - index - 1) * sizeof *list);
    (*count)--;
}

gale_status scheduler_add(scheduler *s, sched_seq *seq) {
    if (seq->n_tokens <= 0 || seq->max_tokens < seq->n_tokens)
        return gale_error(GALE_ERR_INVALID_ARG, "request %llu: empty prompt", (unsigned long long)seq->id);
    if (seq->max_tokens > s->p.max_len)
        return gale_error(GALE_ERR_INVALID_ARG, "request %llu: %d tokens (prompt and new tokens) exceed the context of %d",
                          (unsigned long long)seq->id, seq->max_tokens, s->p.max_len);
    /* the last token is sampled and never stored: at most max_tokens − 1 positions (and
     * the whole prompt) go into the cache */
    const int stored = seq->max_tokens - 1 > seq->n_tokens ? seq->max_tokens - 1 : seq->n_tokens;
    int chunk = stored < s->p.max_num_batched_tokens ? stored : s->p.max_num_batched_tokens;
    for (int g = 0; g < s->cache->n_groups; g++) {
        int need = kv_blocks_needed(s->cache, g, stored, chunk);
        if (need > s->cache->groups[g].n_blocks)
            return gale_error(GALE_ERR_INVALID_ARG, "request %llu: %d tokens need %d KV blocks, the whole pool has %d",
                              (unsigned long long)seq->id, seq->max_tokens, need, s->cache->groups[g].n_blocks);
    }
    seq->n_computed = 0;
    seq->running = false;
    return push_waiting(s, seq, false);
}

void scheduler_remove(scheduler *s, sched_seq *seq) {
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i] == seq) remove_at(s->running, &s->n_running, i);
    for (int i = 0; i < s->n_waiting; i++)
        if (s->waiting[i] == seq) remove_at(s->waiting, &s->n_waiting, i);
    kv_seq_release(s->cache, &seq->kv);
    seq->n_computed = 0;
    seq->running = false;
}

/* Back to the front of the queue, its cache dropped: it is recomputed later. The queue's
 * room comes first: a victim out of the running list and in no queue would be lost. */
static gale_status preempt(scheduler *s, int running_index) {
    GALE_TRY(waiting_room(s));
    sched_seq *victim = s->running[running_index];
    remove_at(s->running, &s->n_running, running_index);
    kv_seq_release(s->cache, &victim->kv);
    victim->n_computed = 0;
    victim->running = false;
    s->preemptions++;
    return push_waiting(s, victim, true);
}

static bool in_step(const scheduler *s, const sched_seq *seq) {
    for (int i = 0; i < s->n_members; i++)
        if (s->members[i] == seq) return true;
    return false;
}

static void add_to_step(scheduler *s, sched_seq *seq, int chunk) {
    int index = s->n_members++;
    s->members[index] = seq;
    s->member_kv[index] = &seq->kv;
    s->chunks[index] = chunk;
    for (int k = 0; k < chunk; k++) {
        s->ids[s->n_tokens] = seq->tokens[seq->n_computed + k];
        s->positions[s->n_tokens] = seq->n_computed + k;
        s->seq_of[s->n_tokens] = index;
        s->n_tokens++;
    }
    if (seq->n_computed + chunk == seq->n_tokens) {
        s->logit_rows[s->n_logits] = s->n_tokens - 1;
        s->samplers[s->n_logits++] = seq;
    }
}

/* Reserves blocks for `chunk` more tokens of running sequence `seq`, preempting the
 * newest running sequences outside the step while the pool is short (seq itself last).
 * *reserved: seq may join the step; *preempted: the running list changed. */
static gale_status reserve_running(scheduler *s, sched_seq *seq, int chunk, bool *reserved, bool *preempted) {
    *reserved = *preempted = false;
    while (kv_seq_reserve(s->cache, &seq->kv, seq->n_computed + chunk) != GALE_OK) {
        int victim = s->n_running - 1;
        while (victim >= 0 && in_step(s, s->running[victim])) victim--;
        if (victim < 0) return GALE_OK;
        bool self = s->running[victim] == seq;
        GALE_TRY(preempt(s, victim));
        *preempted = true;
        if (self) return GALE_OK;
    }
    *reserved = true;
    return GALE_OK;
}

gale_status scheduler_schedule(scheduler *s, sched_step *step) {
    s->n_members = s->n_tokens = s->n_logits = 0;
    int budget = s->p.max_num_batched_tokens;
    /* decodes first, then running prefills: oldest first, the list may shrink as we go */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < s->n_running && budget > 0; i++) {
            sched_seq *seq = s->running[i];
            int left = seq->n_tokens - seq->n_computed;
            if ((pass == 0) != (left == 1) || in_step(s, seq)) continue;
            int chunk = left < budget ? left : budget;
            bool reserved, preempted;
            GALE_TRY(reserve_running(s, seq, chunk, &reserved, &preempted));
            if (reserved) {
                add_to_step(s, seq, chunk);
                budget -= chunk;
            }
            if (preempted) i = -1; /* the list changed: scan again (members are skipped) */
        }
    }
    /* admit waiting sequences while they fit; admission never preempts */
    while (s->n_waiting > 0 && s->n_running < s->p.max_num_seqs && budget > 0) {
        sched_seq *seq = s->waiting[0];
        int left = seq->n_tokens - seq->n_computed;
        int chunk = left < budget ? left : budget;
        if (kv_seq_reserve(s->cache, &seq->kv, seq->n_computed + chunk) != GALE_OK) break;
        remove_at(s->waiting, &s->n_waiting, 0);
        s->running[s->n_running++] = seq;
        seq->running = true;
        add_to_step(s, seq, chunk);
        budget -= chunk;
    }
    step->batch = (runner_batch){.n_tokens = s->n_tokens,
                                 .ids = s->ids,
                                 .positions = s->positions,
                                 .seq_of = s->seq_of,
                                 .n_seqs = s->n_members,
                                 .seqs = s->member_kv,
                                 .n_logits = s->n_logits,
                                 .logit_rows = s->logit_rows};
    step->samplers = s->samplers;
    step->chunks = s->chunks;
    step->members = s->members;
    return GALE_OK;
}

void scheduler_commit(scheduler *s, const sched_step *step) {
    for (int i = 0; i < step->batch.n_seqs; i++) {
        sched_seq *seq = step->members[i];
        seq->n_computed += step->chunks[i];
        kv_seq_advance(s->cache, &seq->kv, seq->n_computed);
    }
}
