/* UTF-8: strict decoding (no overlongs, surrogates or values past U+10FFFF), encoding,
 * and the two things a tokenizer needs: repairing invalid input and finding where a
 * byte stream can be cut without splitting a character. */
#ifndef GALE_TOKENIZER_UTF8_H
#define GALE_TOKENIZER_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_REPLACEMENT 0xFFFDu

/* Decodes the character at s[0..n): returns its length (1-4) and sets *cp, or returns 0
 * when the bytes there are not a valid character (or are cut short). */
size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Writes cp (must be valid) into out; returns 1-4. */
size_t utf8_encode(uint32_t cp, char out[4]);
bool utf8_is_valid(const uint8_t *s, size_t n);
/* Unicode's White_Space property: Rust's char::is_whitespace (Hugging Face's lstrip and
 * rstrip), and Python's str.isspace but for U+001C..U+001F. */
bool utf8_is_white_space(uint32_t cp);
/* A copy of s with every invalid sequence replaced by U+FFFD (one per maximal invalid
 * subpart, as Python's and Rust's lossy decoders do). NUL-terminated; NULL on OOM. */
char *utf8_repair(const uint8_t *s, size_t n, size_t *out_len);
/* Length of the longest prefix of s[0..n) that does not end inside a character that the
 * following bytes could still complete: the rest is held back for more bytes. */
size_t utf8_complete_prefix(const uint8_t *s, size_t n);

#endif
