/* Pre-tokenizer splits (Hugging Face Split / Digits semantics) and the GPT-2 byte
 * alphabet. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

gale_status span_push(span_list *l, uint32_t start, uint32_t len) {
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        span *grown = realloc(l->items, cap * sizeof *grown);
        if (!grown) return gale_error(GALE_ERR_OOM, "tokenizer: out of memory");
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->count++] = (span){start, len};
    return GALE_OK;
}

/* Emits the parts of one piece given its matches ([start, end) pairs in order) as a
 * Split behaviour says. invert swaps the roles: the matches are kept, the gaps between
 * them are the delimiters (only Removed differs; Isolated emits both anyway). */
static gale_status emit_parts(span_list *out, span piece, const uint32_t *bounds, size_t n_matches,
                              split_behavior behavior, bool invert) {
    const uint32_t end = piece.start + piece.len;
    uint32_t start = piece.start;
    for (size_t m = 0; m < n_matches; m++) {
        uint32_t ms = bounds[2 * m], me = bounds[2 * m + 1];
        switch (behavior) {
        case SPLIT_ISOLATED:
            if (ms > start) GALE_TRY(span_push(out, start, ms - start));
            GALE_TRY(span_push(out, ms, me - ms));
            start = me;
            break;
        case SPLIT_REMOVED:
            if (invert) GALE_TRY(span_push(out, ms, me - ms));
            else if (ms > start) GALE_TRY(span_push(out, start, ms - start));
            start = me;
            break;
        case SPLIT_MERGED_WITH_PREVIOUS: /* "the-", "final-" */
            GALE_TRY(span_push(out, start, me - start));
            start = me;
            break;
        case SPLIT_MERGED_WITH_NEXT: /* "the", "-final" */
            if (ms > start) GALE_TRY(span_push(out, start, ms - start));
            start = ms;
            break;
        }
    }
    if (end > start && !(behavior == SPLIT_REMOVED && invert)) GALE_TRY(span_push(out, start, end - start));
    return GALE_OK;
}

/* Match bounds of a regex over one piece, with PCRE2's own handling of empty matches. */
static gale_status regex_bounds(const pre_step *step, const char *text, span piece, pcre2_match_data *md,
                                uint32_t **bounds, size_t *n, size_t *cap) {
    *n = 0;
    PCRE2_SIZE offset = 0;
    const PCRE2_SPTR subject = (PCRE2_SPTR)(text + piece.start);
    while (offset <= piece.len) {
        int rc = pcre2_match(step->regex, subject, piece.len, offset, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return gale_error(GALE_ERR_INTERNAL, "tokenizer: regex match failed (PCRE2 error %d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] == ov[0]) {
            /* empty match: contributes nothing; step past one character */
            if (ov[0] >= piece.len) break;
            uint32_t cp;
            size_t step_len = utf8_decode((const uint8_t *)subject + ov[0], piece.len - ov[0], &cp);
            offset = ov[0] + (step_len ? step_len : 1);
            continue;
        }
        if (*n + 1 > *cap) {
            size_t new_cap = *cap ? *cap * 2 : 64;
            uint32_t *grown = realloc(*bounds, new_cap * 2 * sizeof *grown);
            if (!grown) return gale_error(GALE_ERR_OOM, "tokenizer: out of memory");
            *bounds = grown;
            *cap = new_cap;
        }
        (*bounds)[2 * *n] = piece.start + (uint32_t)ov[0];
        (*bounds)[2 * *n + 1] = piece.start + (uint32_t)ov[1];
        (*n)++;
        offset = ov[1];
    }
    return GALE_OK;
}

gale_status pretokenize_split(const gale_tokenizer *t, const char *text, size_t len, span_list *out,
                              span_list *tmp, pcre2_match_data *md) {
    out->count = 0;
    if (len) GALE_TRY(span_push(out, 0, (uint32_t)len));
    uint32_t *bounds = NULL;
    size_t cap = 0, n = 0;
    gale_status status = GALE_OK;
    for (size_t s = 0; s < t->n_steps && status == GALE_OK; s++) {
        const pre_step *step = &t->steps[s];
        tmp->count = 0;
        for (size_t p = 0; p < out->count && status == GALE_OK; p++) {
            span piece = out->items[p];
            status = regex_bounds(step, text, piece, md, &bounds, &n, &cap);
            if (status == GALE_OK) status = emit_parts(tmp, piece, bounds, n, step->behavior, step->invert);
        }
        span_list swap = *out;
        *out = *tmp;
        *tmp = swap;
    }
    free(bounds);
    return status;
}

/* GPT-2: printable bytes stand for themselves; the other 68, in byte order, take
 * U+0100 upward. */
static bool byte_is_printable(uint8_t b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

uint32_t byte_to_unicode(uint8_t b) {
    if (byte_is_printable(b)) return b;
    uint32_t n = 0;
    for (int c = 0; c < b; c++) n += !byte_is_printable((uint8_t)c);
    return 0x100 + n;
}

int byte_from_unicode(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable((uint8_t)cp) ? (int)cp : -1;
    uint32_t n = 0;
    for (int b = 0; b < 256; b++) {
        if (byte_is_printable((uint8_t)b)) continue;
        if (0x100 + n == cp) return b;
        n++;
    }
    return -1;
}
