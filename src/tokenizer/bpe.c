#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

static uint64_t pair_key(int32_t a, int32_t b) { return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1; }

gale_status merges_init(merge_table *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t n_slots = 16;
    while (n_slots < expected * 2) n_slots *= 2;
    m->keys = calloc(n_slots, sizeof *m->keys);
    m->ranks = malloc(n_slots * sizeof *m->ranks);
    m->results = malloc(n_slots * sizeof *m->results);
    if (!m->keys || !m->ranks || !m->results) {
        merges_free(m);
        return gale_error(GALE_ERR_OOM, "merge table: out of memory");
    }
    m->n_slots = n_slots;
    return GALE_OK;
}

static size_t slot_of(const merge_table *m, uint64_t key) {
    size_t slot = (size_t)(key * 0x9E3779B97F4A7C15ull >> 20) & (m->n_slots - 1);
    while (m->keys[slot] && m->keys[slot] != key) slot = (slot + 1) & (m->n_slots - 1);
    return slot;
}

gale_status merges_add(merge_table *m, int32_t a, int32_t b, int32_t rank, int32_t result) {
    if (m->count * 2 >= m->n_slots) return gale_error(GALE_ERR_INTERNAL, "merge table sized too small");
    uint64_t key = pair_key(a, b);
    size_t slot = slot_of(m, key);
    if (m->keys[slot]) return GALE_OK;
    m->keys[slot] = key;
    m->ranks[slot] = rank;
    m->results[slot] = result;
    m->count++;
    return GALE_OK;
}

bool merges_find(const merge_table *m, int32_t a, int32_t b, int32_t *rank, int32_t *result) {
    if (!m->n_slots) return false;
    size_t slot = slot_of(m, pair_key(a, b));
    if (!m->keys[slot]) return false;
    *rank = m->ranks[slot];
    *result = m->results[slot];
    return true;
}

void merges_free(merge_table *m) {
    free(m->keys);
    free(m->ranks);
    free(m->results);
    memset(m, 0, sizeof *m);
}

void bpe_scratch_free(bpe_scratch *s) {
    free(s->symbols);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

gale_status bpe_reserve(bpe_scratch *s, size_t n) {
    if (n <= s->cap_symbols && n <= s->cap_heap) return GALE_OK;
    size_t cap = s->cap_symbols > 64 ? s->cap_symbols : 64;
    while (cap < n) cap *= 2;
    bpe_symbol *symbols = realloc(s->symbols, cap * sizeof *symbols);
    if (symbols) s->symbols = symbols;
    /* each merge pushes at most two candidates: n initial + 2n */
    bpe_candidate *heap = realloc(s->heap, 3 * cap * sizeof *heap);
    if (heap) s->heap = heap;
    if (!symbols || !heap) return gale_error(GALE_ERR_OOM, "tokenizer: out of memory");
    s->cap_symbols = s->cap_heap = cap;
    return GALE_OK;
}

static bool before(const bpe_candidate *x, const bpe_candidate *y) {
    return x->priority < y->priority || (x->priority == y->priority && x->left < y->left);
}

static void heap_push(bpe_scratch *s, bpe_candidate c) {
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&c, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = c;
}

static bpe_candidate heap_pop(bpe_scratch *s) {
    bpe_candidate top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= s->n_heap) break;
        if (child + 1 < s->n_heap && before(&s->heap[child + 1], &s->heap[child])) child++;
        if (!before(&s->heap[child], &last)) break;
        s->heap[i] = s->heap[child];
        i = child;
    }
    if (s->n_heap) s->heap[i] = last;
    return top;
}

/* What merging left with its right neighbour would give, if anything. */
typedef bool (*candidate_fn)(const void *ctx, const bpe_scratch *s, int32_t left, bpe_candidate *out);

static bool ranked_candidate(const void *ctx, const bpe_scratch *s, int32_t left, bpe_candidate *out) {
    const bpe_symbol *l = &s->symbols[left];
    if (l->next < 0) return false;
    const bpe_symbol *r = &s->symbols[l->next];
    int32_t rank, result;
    if (!merges_find(ctx, l->id, r->id, &rank, &result)) return false;
    *out = (bpe_candidate){.priority = (float)rank, .left = left, .left_id = l->id, .right_id = r->id,
                           .merged_len = l->len + r->len, .merged_id = result};
    return true;
}

typedef struct scored_ctx {
    const vocab *v;
    const char *text;
} scored_ctx;

static bool scored_candidate(const void *ctx, const bpe_scratch *s, int32_t left, bpe_candidate *out) {
    const scored_ctx *c = ctx;
    const bpe_symbol *l = &s->symbols[left];
    if (l->next < 0) return false;
    const bpe_symbol *r = &s->symbols[l->next];
    int32_t id = vocab_find(c->v, c->text + l->start, l->len + r->len);
    if (id < 0) return false;
    *out = (bpe_candidate){.priority = -c->v->tokens[id].score, .left = left, .left_id = l->id, .right_id = r->id,
                           .merged_len = l->len + r->len, .merged_id = id};
    return true;
}

/* Ranks are integers below 2^24 in practice, exact in a float; scores compare as floats. */
static gale_status merge_all(bpe_scratch *s, size_t n, candidate_fn candidate, const void *ctx, int32_t *first) {
    s->n_heap = 0;
    bpe_candidate c;
    for (size_t i = 0; i + 1 < n; i++)
        if (candidate(ctx, s, (int32_t)i, &c)) heap_push(s, c);
    while (s->n_heap) {
        c = heap_pop(s);
        bpe_symbol *l = &s->symbols[c.left];
        /* stale: one side has merged since this candidate was pushed */
        if (l->len == 0 || l->id != c.left_id || l->next < 0) continue;
        bpe_symbol *r = &s->symbols[l->next];
        if (r->id != c.right_id || l->len + r->len != c.merged_len) continue;
        l->id = c.merged_id;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s->symbols[r->next].prev = c.left;
        if (l->prev >= 0 && candidate(ctx, s, l->prev, &c)) heap_push(s, c);
        if (candidate(ctx, s, (int32_t)(l - s->symbols), &c)) heap_push(s, c);
    }
    *first = n ? 0 : -1;
    return GALE_OK;
}

gale_status bpe_merge_ranked(const merge_table *merges, bpe_scratch *s, size_t n, int32_t *first) {
    return merge_all(s, n, ranked_candidate, merges, first);
}

gale_status bpe_merge_scored(const vocab *v, const char *text, bpe_scratch *s, size_t n, int32_t *first) {
    scored_ctx ctx = {v, text};
    return merge_all(s, n, scored_candidate, &ctx, first);
}
