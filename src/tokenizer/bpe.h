/* BPE merging of one pre-tokenized word, in O(n log n): symbols in a linked array, a
 * binary heap of candidate pairs, stale candidates dropped when popped.
 *
 * Two priorities: ranked merges (tokenizer.json "merges", lowest rank first, then the
 * leftmost pair — as Hugging Face tokenizers does) and scored merges (GGUF SentencePiece
 * vocabularies without merges: the pair whose joined piece has the highest score,
 * then the leftmost). */
#ifndef GALE_TOKENIZER_BPE_H
#define GALE_TOKENIZER_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/vocab.h"

/* (left id, right id) → (rank, merged id). */
typedef struct merge_table {
    uint64_t *keys;   /* (a << 32 | b) + 1, 0 empty */
    int32_t *ranks;
    int32_t *results;
    size_t n_slots, count;
} merge_table;

gale_status merges_init(merge_table *m, size_t expected);
/* A repeated pair keeps its first (lowest) rank, as Hugging Face does. */
gale_status merges_add(merge_table *m, int32_t a, int32_t b, int32_t rank, int32_t result);
bool merges_find(const merge_table *m, int32_t a, int32_t b, int32_t *rank, int32_t *result);
void merges_free(merge_table *m);

typedef struct bpe_symbol {
    int32_t id;
    int32_t prev, next; /* indices, -1 at the ends */
    uint32_t start, len; /* bytes of the word text; len 0: merged away */
} bpe_symbol;

typedef struct bpe_candidate {
    float priority;  /* lower pops first: rank, or -score */
    int32_t left;    /* symbol index */
    int32_t left_id, right_id;
    uint32_t merged_len;
    int32_t merged_id;
} bpe_candidate;

/* Reusable buffers; grow on demand. */
typedef struct bpe_scratch {
    bpe_symbol *symbols;
    bpe_candidate *heap;
    size_t cap_symbols, cap_heap, n_heap;
} bpe_scratch;

void bpe_scratch_free(bpe_scratch *s);

/* symbols[0..n) hold the initial symbols (linked in order); merges in place and returns
 * the index of the first symbol (follow .next). */
gale_status bpe_merge_ranked(const merge_table *merges, bpe_scratch *s, size_t n, int32_t *first);
/* As above, by the vocabulary score of the joined piece of the word text. */
gale_status bpe_merge_scored(const vocab *v, const char *text, bpe_scratch *s, size_t n, int32_t *first);
/* Makes room for n symbols in s->symbols. */
gale_status bpe_reserve(bpe_scratch *s, size_t n);

#endif
