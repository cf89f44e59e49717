#include "tokenizer/vocab.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

gale_status vocab_init(vocab *v, int32_t n_tokens) {
    memset(v, 0, sizeof *v);
    if (n_tokens <= 0 || n_tokens > (1 << 24))
        return gale_error(GALE_ERR_FORMAT, "vocabulary of %d tokens is out of range", n_tokens);
    v->tokens = calloc((size_t)n_tokens, sizeof *v->tokens);
    if (!v->tokens) return gale_error(GALE_ERR_OOM, "vocabulary: out of memory");
    v->n_tokens = n_tokens;
    return GALE_OK;
}

static gale_status append_string(vocab *v, const char *s, size_t len, uint32_t *offset) {
    if (v->strings_len + len + 1 > v->strings_cap) {
        size_t cap = v->strings_cap ? v->strings_cap : 1 << 16;
        while (cap < v->strings_len + len + 1) cap *= 2;
        if (cap > UINT32_MAX) return gale_error(GALE_ERR_FORMAT, "vocabulary strings exceed 4 GiB");
        char *grown = realloc(v->strings, cap);
        if (!grown) return gale_error(GALE_ERR_OOM, "vocabulary: out of memory");
        v->strings = grown;
        v->strings_cap = cap;
    }
    *offset = (uint32_t)v->strings_len;
    if (len) memcpy(v->strings + v->strings_len, s, len);
    v->strings[v->strings_len + len] = '\0';
    v->strings_len += len + 1;
    return GALE_OK;
}

gale_status vocab_set(vocab *v, int32_t id, const char *piece, size_t len, token_kind kind, float score) {
    if (id < 0 || id >= v->n_tokens) return gale_error(GALE_ERR_FORMAT, "token id %d outside the vocabulary (%d)", id, v->n_tokens);
    if (len > UINT32_MAX / 2) return gale_error(GALE_ERR_FORMAT, "token %d is too long", id);
    token_info *t = &v->tokens[id];
    GALE_TRY(append_string(v, piece, len, &t->piece_offset));
    t->piece_len = (uint32_t)len;
    t->decoded_offset = t->piece_offset;
    t->decoded_len = t->piece_len;
    t->kind = kind;
    t->score = score;
    return GALE_OK;
}

gale_status vocab_set_decoded(vocab *v, int32_t id, const char *bytes, size_t len) {
    token_info *t = &v->tokens[id];
    GALE_TRY(append_string(v, bytes, len, &t->decoded_offset));
    t->decoded_len = (uint32_t)len;
    return GALE_OK;
}

gale_status vocab_index(vocab *v, int32_t *n_duplicates) {
    *n_duplicates = 0;
    size_t n_slots = 16;
    while (n_slots < (size_t)v->n_tokens * 2) n_slots *= 2;
    free(v->slots);
    v->slots = calloc(n_slots, sizeof *v->slots);
    if (!v->slots) return gale_error(GALE_ERR_OOM, "vocabulary index: out of memory");
    v->n_slots = n_slots;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        size_t len;
        const char *piece = vocab_piece(v, id, &len);
        size_t slot = hash_bytes(piece, len) & (n_slots - 1);
        while (v->slots[slot]) {
            size_t other_len;
            const char *other = vocab_piece(v, v->slots[slot] - 1, &other_len);
            if (other_len == len && memcmp(other, piece, len) == 0) break;
            slot = (slot + 1) & (n_slots - 1);
        }
        /* a repeated piece (some GGUF vocabularies have them) keeps the lowest id */
        if (v->slots[slot]) (*n_duplicates)++;
        else v->slots[slot] = id + 1;
    }
    return GALE_OK;
}

int32_t vocab_find(const vocab *v, const char *piece, size_t len) {
    if (!v->n_slots) return -1;
    size_t slot = hash_bytes(piece, len) & (v->n_slots - 1);
    while (v->slots[slot]) {
        size_t other_len;
        const char *other = vocab_piece(v, v->slots[slot] - 1, &other_len);
        if (other_len == len && memcmp(other, piece, len) == 0) return v->slots[slot] - 1;
        slot = (slot + 1) & (v->n_slots - 1);
    }
    return -1;
}

void vocab_free(vocab *v) {
    free(v->tokens);
    free(v->strings);
    free(v->slots);
    memset(v, 0, sizeof *v);
}
