#include "tokenizer/utf8.h"

#include <stdlib.h>
#include <string.h>

/* Valid second-byte range per lead byte (Unicode Table 3-7): it alone excludes
 * overlongs, surrogates and code points past U+10FFFF. */
static bool second_byte_ok(uint8_t lead, uint8_t b) {
    if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
    if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
    if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
    if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
    return b >= 0x80 && b <= 0xBF;
}

static size_t sequence_length(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}

/* Bytes of a valid prefix of the sequence starting at s (at most its full length). */
static size_t valid_run(const uint8_t *s, size_t n, size_t len) {
    size_t i = 1;
    if (i < n && i < len && second_byte_ok(s[0], s[1])) i++;
    else return 1;
    while (i < n && i < len && (s[i] & 0xC0) == 0x80) i++;
    return i;
}

size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    size_t len = sequence_length(s[0]);
    if (len == 0 || len > n) return 0;
    if (len == 1) {
        *cp = s[0];
        return 1;
    }
    if (valid_run(s, n, len) != len) return 0;
    uint32_t v = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) v = (v << 6) | (s[i] & 0x3F);
    *cp = v;
    return len;
}

size_t utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool utf8_is_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (!len) return false;
        i += len;
    }
    return true;
}

char *utf8_repair(const uint8_t *s, size_t n, size_t *out_len) {
    /* each invalid byte becomes at most 3 bytes of U+FFFD */
    char *out = malloc(n * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (len) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
            continue;
        }
        size_t seq = sequence_length(s[i]);
        i += seq ? valid_run(s + i, n - i, seq) : 1; /* skip the maximal invalid subpart */
        o += utf8_encode(UTF8_REPLACEMENT, out + o);
    }
    out[o] = '\0';
    if (out_len) *out_len = o;
    return out;
}

size_t utf8_complete_prefix(const uint8_t *s, size_t n) {
    /* look back at most 3 bytes for the start of a character that is still open */
    size_t start = n > 3 ? n - 3 : 0;
    for (size_t i = n; i > start; i--) {
        uint8_t b = s[i - 1];
        if ((b & 0xC0) == 0x80) continue; /* continuation byte: keep looking back */
        size_t len = sequence_length(b);
        size_t have = n - (i - 1);
        if (len > have && valid_run(s + i - 1, have, len) == have) return i - 1;
        return n;
    }
    return n;
}

bool utf8_is_white_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}
