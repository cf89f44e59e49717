/* The token table: id → piece (as the file spells it) and the bytes it decodes to, with
 * a hash index from piece to id. Open addressing keeps lookups to one probe chain
 * without per-entry allocations; a 262k-entry vocabulary loads in milliseconds. */
#ifndef GALE_TOKENIZER_VOCAB_H
#define GALE_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gale.h"

typedef enum token_kind {
    TOKEN_NORMAL = 0,
    TOKEN_UNKNOWN,
    TOKEN_CONTROL, /* special: <s>, <|im_end|>; skipped by skip_special_tokens */
    TOKEN_USER,    /* added, not special: matched on raw text, kept when decoding */
    TOKEN_UNUSED,
    TOKEN_BYTE,    /* SentencePiece byte fallback <0xXX> */
} token_kind;

typedef struct token_info {
    uint32_t piece_offset, piece_len;   /* the piece as the vocabulary spells it */
    uint32_t decoded_offset, decoded_len; /* the bytes decoding emits */
    float score;                        /* SentencePiece merge priority (GGUF "llama") */
    token_kind kind;
} token_info;

typedef struct vocab {
    token_info *tokens; /* [n_tokens] */
    int32_t n_tokens;
    char *strings;      /* pieces and decoded bytes */
    size_t strings_len, strings_cap;
    int32_t *slots;     /* hash index of pieces: id + 1, 0 empty */
    size_t n_slots;     /* power of two */
} vocab;

/* Tokens are added with consecutive ids from 0; a hole is an error for the caller to report. */
gale_status vocab_init(vocab *v, int32_t n_tokens);
/* Sets token id's piece; decoded bytes default to the piece. */
gale_status vocab_set(vocab *v, int32_t id, const char *piece, size_t len, token_kind kind, float score);
gale_status vocab_set_decoded(vocab *v, int32_t id, const char *bytes, size_t len);
/* Builds the index; call after every vocab_set. A piece that appears twice is found as
 * its lowest id; *n_duplicates counts the others. */
gale_status vocab_index(vocab *v, int32_t *n_duplicates);
int32_t vocab_find(const vocab *v, const char *piece, size_t len);
void vocab_free(vocab *v);

static inline const char *vocab_piece(const vocab *v, int32_t id, size_t *len) {
    *len = v->tokens[id].piece_len;
    return v->strings + v->tokens[id].piece_offset;
}
static inline const char *vocab_decoded(const vocab *v, int32_t id, size_t *len) {
    *len = v->tokens[id].decoded_len;
    return v->strings + v->tokens[id].decoded_offset;
}

/* FNV-1a: short keys, good spread, no state. */
static inline uint64_t hash_bytes(const void *data, size_t len) {
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

#endif
