/* Streaming decoder and the tokenizer's small accessors. The text it streams, joined,
 * equals gale_tokenizer_decode of all the ids: the leading-space strip happens once at
 * the start, clean-up patterns that may continue in the next token are held back, and
 * bytes of an unfinished UTF-8 character wait for the rest. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

struct gale_detokenizer {
    const gale_tokenizer *t;
    bool skip_special;
    bool started;     /* some text has come: the leading-space strip is done */
    char *pending;    /* decoded bytes not yet emitted */
    size_t n_pending, cap_pending;
    char *out;        /* what the last call returned */
    size_t cap_out;
};

int32_t gale_tokenizer_vocab_size(const gale_tokenizer *t) { return t->vocab.n_tokens; }
int32_t gale_tokenizer_bos(const gale_tokenizer *t) { return t->bos_id; }
int32_t gale_tokenizer_eos(const gale_tokenizer *t) { return t->eos_id; }
const char *gale_tokenizer_chat_template(const gale_tokenizer *t) { return t->chat_template; }

const char *gale_tokenizer_piece(const gale_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab.n_tokens) {
        *len = 0;
        return NULL;
    }
    return vocab_piece(&t->vocab, id, len);
}

bool gale_tokenizer_is_special(const gale_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->vocab.n_tokens && tokenizer_is_special(t, id);
}

gale_status gale_detokenizer_new(const gale_tokenizer *t, bool skip_special, gale_detokenizer **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return gale_error(GALE_ERR_OOM, "detokenizer: out of memory");
    (*out)->t = t;
    (*out)->skip_special = skip_special;
    return GALE_OK;
}

void gale_detokenizer_free(gale_detokenizer *d) {
    if (!d) return;
    free(d->pending);
    free(d->out);
    free(d);
}

static gale_status grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return GALE_OK;
    size_t new_cap = *cap ? *cap : 64;
    while (new_cap < need) new_cap *= 2;
    char *grown = realloc(*buf, new_cap);
    if (!grown) return gale_error(GALE_ERR_OOM, "detokenizer: out of memory");
    *buf = grown;
    *cap = new_cap;
    return GALE_OK;
}

/* Length of the longest suffix of s that could still grow into a clean-up pattern
 * (all of them start with a space). */
static size_t cleanup_hold(const char *s, size_t len) {
    static const char *const patterns[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    for (size_t k = len < 4 ? len : 4; k > 0; k--) {
        const char *suffix = s + len - k;
        if (suffix[0] != ' ') continue;
        for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++)
            if (strlen(patterns[p]) > k && memcmp(patterns[p], suffix, k) == 0) return k;
    }
    return 0;
}

/* Emits pending[0..n) (repairing invalid UTF-8) and keeps the rest. */
static gale_status emit(gale_detokenizer *d, size_t n, const char **text, size_t *len) {
    size_t repaired_len;
    char *repaired = utf8_repair((const uint8_t *)d->pending, n, &repaired_len);
    if (!repaired) return gale_error(GALE_ERR_OOM, "detokenizer: out of memory");
    gale_status status = grow(&d->out, &d->cap_out, repaired_len + 1);
    if (status == GALE_OK) {
        memcpy(d->out, repaired, repaired_len + 1);
        if (d->n_pending > n) memmove(d->pending, d->pending + n, d->n_pending - n);
        d->n_pending -= n;
        *text = d->out;
        *len = repaired_len;
    }
    free(repaired);
    return status;
}

gale_status gale_detokenizer_push(gale_detokenizer *d, int32_t id, const char **text, size_t *len) {
    const gale_tokenizer *t = d->t;
    *text = "";
    *len = 0;
    if (id < 0 || id >= t->vocab.n_tokens)
        return gale_error(GALE_ERR_INVALID_ARG, "%s: token id %d is outside the vocabulary (%d tokens)", t->source, id,
                          t->vocab.n_tokens);
    if (d->skip_special && tokenizer_is_special(t, id)) return GALE_OK;
    size_t piece_len;
    const char *piece = vocab_decoded(&t->vocab, id, &piece_len);
    if (!d->started && piece_len > 0) {
        d->started = true;
        if (t->strip_leading_space && piece[0] == ' ') piece++, piece_len--;
    }
    GALE_TRY(grow(&d->pending, &d->cap_pending, d->n_pending + piece_len + 1));
    memcpy(d->pending + d->n_pending, piece, piece_len);
    d->n_pending += piece_len;
    size_t ready = d->n_pending;
    if (t->cleanup_spaces) {
        d->n_pending = tokenizer_cleanup_spaces(d->pending, d->n_pending);
        ready = d->n_pending - cleanup_hold(d->pending, d->n_pending);
    }
    ready = utf8_complete_prefix((const uint8_t *)d->pending, ready);
    return emit(d, ready, text, len);
}

gale_status gale_detokenizer_flush(gale_detokenizer *d, const char **text, size_t *len) {
    return emit(d, d->n_pending, text, len);
}
