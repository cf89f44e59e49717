/* Encoding and decoding, the same for every source (tokenizer.json or GGUF). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mapped_file.h"
#include "core/status.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

const char GPT2_PRETOKENIZER_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

gale_tokenizer *tokenizer_alloc(const char *source) {
    gale_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->source = strdup(source);
    if (!t->source) {
        free(t);
        return NULL;
    }
    t->unk_id = t->bos_id = t->eos_id = -1;
    return t;
}

void gale_tokenizer_free(gale_tokenizer *t) {
    if (!t) return;
    vocab_free(&t->vocab);
    merges_free(&t->merges);
    for (size_t i = 0; i < t->n_steps; i++) pcre2_code_free(t->steps[i].regex);
    free(t->steps);
    free(t->added);
    free(t->trie.edge_keys);
    free(t->trie.edge_child);
    free(t->trie.node_token);
    free(t->chat_template);
    free(t->source);
    free(t);
}

gale_status tokenizer_set_chat_template(gale_tokenizer *t, const char *text, size_t len) {
    free(t->chat_template);
    t->chat_template = malloc(len + 1);
    if (!t->chat_template) return gale_error(GALE_ERR_OOM, "%s: out of memory", t->source);
    memcpy(t->chat_template, text, len);
    t->chat_template[len] = '\0';
    return GALE_OK;
}

gale_status gale_tokenizer_load(const char *path, gale_tokenizer **out) {
    if (!path || !out) return gale_error(GALE_ERR_INVALID_ARG, "gale_tokenizer_load: path and out are required");
    *out = NULL;
    gale_tokenizer *t = tokenizer_alloc(path);
    if (!t) return gale_error(GALE_ERR_OOM, "%s: out of memory", path);
    gale_status status;
    if (path_is_directory(path)) {
        status = tokenizer_load_json_dir(t, path);
    } else {
        gguf_file g;
        status = gguf_open(path, &g);
        if (status == GALE_OK) {
            status = tokenizer_load_gguf(t, &g); /* copies what it keeps: the file can close */
            gguf_close(&g);
        }
    }
    if (status != GALE_OK) {
        gale_tokenizer_free(t);
        return status;
    }
    *out = t;
    return GALE_OK;
}

/* ---- pre-tokenizer steps ---- */

static gale_status push_step(gale_tokenizer *t, pre_step step) {
    pre_step *grown = realloc(t->steps, (t->n_steps + 1) * sizeof *grown);
    if (!grown) return gale_error(GALE_ERR_OOM, "%s: out of memory", t->source);
    t->steps = grown;
    t->steps[t->n_steps++] = step;
    return GALE_OK;
}

/* pattern with \s and \S spelled \p{White_Space} and \P{White_Space}: PCRE2's \s under
 * UCP also takes U+180E (Mongolian vowel separator), which Unicode stopped calling a space
 * in 6.3 and Hugging Face's engines do not split at. Escaped backslashes are kept. NULL
 * when out of memory; free() it. */
static char *with_unicode_spaces(const char *pattern) {
    size_t len = strlen(pattern), n = 0;
    char *out = malloc(len * 8 + 1); /* "\s" (2 bytes) becomes "\p{White_Space}" (15) */
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        if (pattern[i] == '\\' && i + 1 < len && (pattern[i + 1] == 's' || pattern[i + 1] == 'S')) {
            const char *spelled = pattern[i + 1] == 's' ? "\\p{White_Space}" : "\\P{White_Space}";
            memcpy(out + n, spelled, strlen(spelled));
            n += strlen(spelled);
            i++;
        } else if (pattern[i] == '\\' && i + 1 < len) { /* any other escape, \\ included, as it is */
            out[n++] = pattern[i++];
            out[n++] = pattern[i];
        } else {
            out[n++] = pattern[i];
        }
    }
    out[n] = '\0';
    return out;
}

gale_status tokenizer_add_regex_step(gale_tokenizer *t, const char *pattern, split_behavior behavior, bool invert) {
    if (invert && behavior != SPLIT_ISOLATED && behavior != SPLIT_REMOVED)
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: an inverted Split must be Isolated or Removed", t->source);
    int error;
    PCRE2_SIZE error_offset;
    /* UCP: \s, \w and \d follow Unicode, as the regex engines of Hugging Face do */
    char *unicode_pattern = with_unicode_spaces(pattern);
    if (!unicode_pattern) return gale_error(GALE_ERR_OOM, "%s: out of memory", t->source);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)unicode_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &error,
                                   &error_offset, NULL);
    free(unicode_pattern);
    if (!re) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error, message, sizeof message);
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: pre-tokenizer regex does not compile at offset %zu: %s",
                          t->source, (size_t)error_offset, (const char *)message);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT it still matches, only slower */
    gale_status status = push_step(t, (pre_step){.behavior = behavior, .invert = invert, .regex = re});
    if (status != GALE_OK) pcre2_code_free(re);
    return status;
}

/* Hugging Face's Digits tests char::is_numeric: the Unicode N categories, \p{N}. */
gale_status tokenizer_add_digits_step(gale_tokenizer *t, bool individual) {
    return tokenizer_add_regex_step(t, individual ? "\\p{N}" : "\\p{N}+", SPLIT_ISOLATED, false);
}

/* ---- merges ---- */

static gale_status merge_piece_id(const gale_tokenizer *t, const char *piece, size_t len, size_t rank, int32_t *id) {
    *id = vocab_find(&t->vocab, piece, len);
    if (*id < 0)
        return gale_error(GALE_ERR_FORMAT, "%s: merge %zu names \"%.*s\", which is not in the vocabulary", t->source,
                          rank, (int)len, piece);
    return GALE_OK;
}

gale_status tokenizer_add_merge(gale_tokenizer *t, const char *a, size_t a_len, const char *b, size_t b_len, size_t rank) {
    int32_t left, right, merged;
    GALE_TRY(merge_piece_id(t, a, a_len, rank, &left));
    GALE_TRY(merge_piece_id(t, b, b_len, rank, &right));
    char stack[256], *joined = a_len + b_len <= sizeof stack ? stack : malloc(a_len + b_len);
    if (!joined) return gale_error(GALE_ERR_OOM, "%s: out of memory", t->source);
    memcpy(joined, a, a_len);
    memcpy(joined + a_len, b, b_len);
    gale_status status = merge_piece_id(t, joined, a_len + b_len, rank, &merged);
    if (joined != stack) free(joined);
    GALE_TRY(status);
    return merges_add(&t->merges, left, right, (int32_t)rank, merged);
}

/* ---- added tokens: a byte trie for leftmost-longest matching ---- */

static gale_status trie_new_node(added_trie *trie, int32_t *node) {
    if (trie->n_nodes == trie->cap_nodes) {
        size_t cap = trie->cap_nodes ? trie->cap_nodes * 2 : 256;
        int32_t *grown = realloc(trie->node_token, cap * sizeof *grown);
        if (!grown) return gale_error(GALE_ERR_OOM, "tokenizer: out of memory");
        trie->node_token = grown;
        trie->cap_nodes = cap;
    }
    trie->node_token[trie->n_nodes] = -1;
    *node = (int32_t)trie->n_nodes++;
    return GALE_OK;
}

static size_t edge_slot(const added_trie *trie, uint64_t key) {
    size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (trie->n_edge_slots - 1);
    while (trie->edge_keys[slot] && trie->edge_keys[slot] != key) slot = (slot + 1) & (trie->n_edge_slots - 1);
    return slot;
}

static int32_t trie_child(const added_trie *trie, int32_t node, uint8_t byte) {
    uint64_t key = (((uint64_t)node << 8) | byte) + 1;
    size_t slot = edge_slot(trie, key);
    return trie->edge_keys[slot] ? trie->edge_child[slot] : -1;
}

static gale_status build_trie(gale_tokenizer *t) {
    added_trie *trie = &t->trie;
    size_t total = 1;
    for (size_t i = 0; i < t->n_added; i++) total += t->vocab.tokens[t->added[i].id].piece_len;
    trie->n_edge_slots = 16;
    while (trie->n_edge_slots < total * 2) trie->n_edge_slots *= 2;
    trie->edge_keys = calloc(trie->n_edge_slots, sizeof *trie->edge_keys);
    trie->edge_child = malloc(trie->n_edge_slots * sizeof *trie->edge_child);
    if (!trie->edge_keys || !trie->edge_child) return gale_error(GALE_ERR_OOM, "%s: out of memory", t->source);
    int32_t root = 0;
    GALE_TRY(trie_new_node(trie, &root));
    for (size_t i = 0; i < t->n_added; i++) {
        size_t len;
        const uint8_t *content = (const uint8_t *)vocab_piece(&t->vocab, t->added[i].id, &len);
        if (len == 0) continue; /* an empty added token can never match */
        int32_t node = root;
        for (size_t k = 0; k < len; k++) {
            uint64_t key = (((uint64_t)node << 8) | content[k]) + 1;
            size_t slot = edge_slot(trie, key);
            if (!trie->edge_keys[slot]) {
                int32_t child = 0;
                GALE_TRY(trie_new_node(trie, &child));
                trie->edge_keys[slot] = key;
                trie->edge_child[slot] = child;
            }
            node = trie->edge_child[slot];
        }
        if (trie->node_token[node] < 0) trie->node_token[node] = (int32_t)i;
    }
    return GALE_OK;
}

/* Longest added token starting at text[pos]; returns its index in t->added or -1. */
static int32_t match_added(const gale_tokenizer *t, const char *text, size_t len, size_t pos, size_t *match_len) {
    int32_t node = 0, best = -1;
    for (size_t k = pos; k < len; k++) {
        node = trie_child(&t->trie, node, (uint8_t)text[k]);
        if (node < 0) break;
        if (t->trie.node_token[node] >= 0) {
            best = t->trie.node_token[node];
            *match_len = k + 1 - pos;
        }
    }
    return best;
}

gale_status tokenizer_add_added(gale_tokenizer *t, int32_t id, bool special, bool lstrip, bool rstrip) {
    added_token *grown = realloc(t->added, (t->n_added + 1) * sizeof *grown);
    if (!grown) return gale_error(GALE_ERR_OOM, "%s: out of memory", t->source);
    t->added = grown;
    t->added[t->n_added++] = (added_token){.id = id, .special = special, .lstrip = lstrip, .rstrip = rstrip};
    return GALE_OK;
}

/* ---- decoded bytes of every token ---- */

/* Byte-level pieces spell bytes in GPT-2's alphabet; a piece with a character outside
 * it (an added token such as "<|im_start|>" is fine, "\n" is not) decodes to its own
 * bytes, as Hugging Face's ByteLevel decoder does. */
static gale_status set_byte_level_decoded(gale_tokenizer *t, int32_t id, char *buf) {
    size_t len, out = 0;
    const uint8_t *piece = (const uint8_t *)vocab_piece(&t->vocab, id, &len);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_decode(piece + i, len - i, &cp);
        int byte = n ? byte_from_unicode(cp) : -1;
        if (byte < 0) return GALE_OK; /* keep the piece itself */
        buf[out++] = (char)byte;
        i += n;
    }
    return vocab_set_decoded(&t->vocab, id, buf, out);
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* SentencePiece (Hugging Face's Replace + ByteFallback decoders): a "<0xXX>" piece is
 * byte XX, and "▁" is a space. */
static gale_status set_sentencepiece_decoded(gale_tokenizer *t, int32_t id, char *buf) {
    size_t len, out = 0;
    const char *piece = vocab_piece(&t->vocab, id, &len);
    if (t->decode_byte_tokens && len == 6 && memcmp(piece, "<0x", 3) == 0 && piece[5] == '>' &&
        hex_value(piece[3]) >= 0 && hex_value(piece[4]) >= 0) {
        buf[0] = (char)(hex_value(piece[3]) * 16 + hex_value(piece[4]));
        return vocab_set_decoded(&t->vocab, id, buf, 1);
    }
    for (size_t i = 0; i < len;) {
        if (t->decode_metaspace && i + METASPACE_LEN <= len && memcmp(piece + i, METASPACE, METASPACE_LEN) == 0) {
            buf[out++] = ' ';
            i += METASPACE_LEN;
        } else {
            buf[out++] = piece[i++];
        }
    }
    return vocab_set_decoded(&t->vocab, id, buf, out);
}

gale_status tokenizer_finish(gale_tokenizer *t) {
    int32_t duplicates;
    GALE_TRY(vocab_index(&t->vocab, &duplicates));
    size_t longest = 0;
    for (int32_t id = 0; id < t->vocab.n_tokens; id++)
        if (t->vocab.tokens[id].piece_len > longest) longest = t->vocab.tokens[id].piece_len;
    char *buf = malloc(longest + 1);
    if (!buf) return gale_error(GALE_ERR_OOM, "%s: out of memory", t->source);
    gale_status status = GALE_OK;
    /* added tokens too: Hugging Face runs every token through the decoder chain */
    for (int32_t id = 0; id < t->vocab.n_tokens && status == GALE_OK; id++) {
        status = t->byte_level ? set_byte_level_decoded(t, id, buf) : set_sentencepiece_decoded(t, id, buf);
    }
    free(buf);
    if (status == GALE_OK) status = build_trie(t);
    return status;
}

/* ---- encoding ---- */

typedef struct encoder {
    const gale_tokenizer *t;
    gale_tokens *out;
    bpe_scratch scratch;
    span_list words, tmp;
    pcre2_match_data *md;
    char *buf; /* the normalized / byte-mapped text of one segment */
    size_t buf_cap;
} encoder;

static gale_status push_id(gale_tokens *out, int32_t id) {
    if (out->count == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 256;
        int32_t *grown = realloc(out->ids, cap * sizeof *grown);
        if (!grown) return gale_error(GALE_ERR_OOM, "tokenizer: out of memory");
        out->ids = grown;
        out->cap = cap;
    }
    out->ids[out->count++] = id;
    return GALE_OK;
}

static gale_status reserve_buf(encoder *e, size_t n) {
    if (n <= e->buf_cap) return GALE_OK;
    size_t cap = e->buf_cap ? e->buf_cap : 4096;
    while (cap < n) cap *= 2;
    char *grown = realloc(e->buf, cap);
    if (!grown) return gale_error(GALE_ERR_OOM, "tokenizer: out of memory");
    e->buf = grown;
    e->buf_cap = cap;
    return GALE_OK;
}

/* Initial symbols of a word: its characters, or byte tokens / <unk> for characters the
 * vocabulary lacks; with neither, such a character is left out and its neighbours merge
 * across the gap, as Hugging Face's BPE does (SmolLM2's vocabulary lacks the bytes 0x04,
 * 0x1D, 0xF1, …). */
static gale_status initial_symbols(encoder *e, const char *word, uint32_t word_start, uint32_t len, size_t *n) {
    const gale_tokenizer *t = e->t;
    GALE_TRY(bpe_reserve(&e->scratch, (size_t)len));
    bpe_symbol *sym = e->scratch.symbols;
    size_t count = 0;
    for (uint32_t i = 0; i < len;) {
        uint32_t cp;
        size_t clen = utf8_decode((const uint8_t *)word + i, len - i, &cp);
        if (!clen) clen = 1; /* cannot happen on repaired text; stay safe */
        int32_t id = vocab_find(&t->vocab, word + i, clen);
        if (id >= 0) {
            sym[count++] = (bpe_symbol){.id = id, .start = word_start + i, .len = (uint32_t)clen};
        } else if (t->byte_fallback) {
            for (size_t b = 0; b < clen; b++) {
                char name[7];
                snprintf(name, sizeof name, "<0x%02X>", (uint8_t)word[i + b]);
                int32_t byte_id = vocab_find(&t->vocab, name, 6);
                sym[count++] = (bpe_symbol){.id = byte_id >= 0 ? byte_id : t->unk_id, .start = word_start + i + (uint32_t)b,
                                            .len = 1};
            }
        } else if (t->unk_id >= 0) {
            bool fuse = t->fuse_unk && count > 0 && sym[count - 1].id == t->unk_id;
            if (fuse) sym[count - 1].len += (uint32_t)clen;
            else sym[count++] = (bpe_symbol){.id = t->unk_id, .start = word_start + i, .len = (uint32_t)clen};
        }
        i += (uint32_t)clen;
    }
    for (size_t k = 0; k < count; k++) {
        sym[k].prev = (int32_t)k - 1;
        sym[k].next = k + 1 < count ? (int32_t)k + 1 : -1;
    }
    *n = count;
    return GALE_OK;
}

/* One word (text[start, start+len) of e->buf-or-input) → ids. */
static gale_status encode_word(encoder *e, const char *text, uint32_t start, uint32_t len) {
    const gale_tokenizer *t = e->t;
    if (len == 0) return GALE_OK;
    if (t->ignore_merges) {
        int32_t id = vocab_find(&t->vocab, text + start, len);
        if (id >= 0) return push_id(e->out, id);
    }
    size_t n = 0;
    GALE_TRY(initial_symbols(e, text + start, start, len, &n));
    if (n == 0) return GALE_OK;
    int32_t first;
    if (t->merge_by_score) GALE_TRY(bpe_merge_scored(&t->vocab, text, &e->scratch, n, &first));
    else GALE_TRY(bpe_merge_ranked(&t->merges, &e->scratch, n, &first));
    for (int32_t s = first; s >= 0; s = e->scratch.symbols[s].next) {
        int32_t id = e->scratch.symbols[s].id;
        if (id < 0) return gale_error(GALE_ERR_FORMAT, "%s: a byte has no <0xXX> token and there is no unknown token", t->source);
        GALE_TRY(push_id(e->out, id));
    }
    return GALE_OK;
}

/* SentencePiece segment: spaces → "▁", maybe a leading "▁", then one word (or words
 * split before each "▁"). */
static gale_status encode_sentencepiece(encoder *e, const char *text, size_t len, bool starts_input) {
    const gale_tokenizer *t = e->t;
    GALE_TRY(reserve_buf(e, len * METASPACE_LEN + METASPACE_LEN + 1));
    size_t n = 0;
    bool starts_with_metaspace = (len > 0 && text[0] == ' ' && t->spaces_to_metaspace) ||
                                 (len >= METASPACE_LEN && memcmp(text, METASPACE, METASPACE_LEN) == 0);
    bool prepend = (t->prepend == PREPEND_ALWAYS || (t->prepend == PREPEND_FIRST && starts_input)) &&
                   !(t->prepend_unless_space && starts_with_metaspace);
    if (len > 0 && prepend) {
        memcpy(e->buf, METASPACE, METASPACE_LEN);
        n = METASPACE_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ' && t->spaces_to_metaspace) {
            memcpy(e->buf + n, METASPACE, METASPACE_LEN);
            n += METASPACE_LEN;
        } else {
            e->buf[n++] = text[i];
        }
    }
    if (!t->metaspace_split) return encode_word(e, e->buf, 0, (uint32_t)n);
    uint32_t word = 0;
    for (uint32_t i = METASPACE_LEN; i + METASPACE_LEN <= n; i++) {
        if (memcmp(e->buf + i, METASPACE, METASPACE_LEN) != 0) continue;
        GALE_TRY(encode_word(e, e->buf, word, i - word));
        word = i;
    }
    return encode_word(e, e->buf, word, (uint32_t)n - word);
}

/* Byte-level segment: regex words, each mapped to GPT-2's alphabet, then merged. */
static gale_status encode_byte_level(encoder *e, const char *text, size_t len) {
    GALE_TRY(pretokenize_split(e->t, text, len, &e->words, &e->tmp, e->md));
    GALE_TRY(reserve_buf(e, len * 2 + 1));
    for (size_t w = 0; w < e->words.count; w++) {
        span word = e->words.items[w];
        uint32_t n = 0;
        for (uint32_t i = 0; i < word.len; i++) {
            char enc[4];
            size_t k = utf8_encode(byte_to_unicode((uint8_t)text[word.start + i]), enc);
            memcpy(e->buf + n, enc, k);
            n += (uint32_t)k;
        }
        GALE_TRY(encode_word(e, e->buf, 0, n));
    }
    return GALE_OK;
}

static gale_status encode_segment(encoder *e, const char *text, size_t start, size_t end) {
    if (end <= start) return GALE_OK;
    if (e->t->byte_level) return encode_byte_level(e, text + start, end - start);
    return encode_sentencepiece(e, text + start, end - start, start == 0);
}

/* Bytes of the white-space character ending at text[end) (not before floor), or 0. */
static size_t space_before(const char *text, size_t floor, size_t end) {
    size_t start = end;
    while (start > floor && end - start < 4) {
        start--;
        if (((uint8_t)text[start] & 0xC0) != 0x80) break; /* the character's first byte */
    }
    uint32_t cp;
    size_t clen = start < end ? utf8_decode((const uint8_t *)text + start, end - start, &cp) : 0;
    return clen == end - start && utf8_is_white_space(cp) ? clen : 0;
}

/* Bytes of the white-space character starting at text[start] (before len), or 0. */
static size_t space_at(const char *text, size_t start, size_t len) {
    uint32_t cp;
    size_t clen = start < len ? utf8_decode((const uint8_t *)text + start, len - start, &cp) : 0;
    return clen && utf8_is_white_space(cp) ? clen : 0;
}

static gale_status encode_all(encoder *e, const char *text, size_t len, bool add_special) {
    const gale_tokenizer *t = e->t;
    if (add_special)
        for (int i = 0; i < t->n_prefix; i++) GALE_TRY(push_id(e->out, t->prefix_ids[i]));
    size_t segment = 0;
    for (size_t pos = 0; pos < len;) {
        size_t match_len = 0;
        int32_t hit = t->n_added ? match_added(t, text, len, pos, &match_len) : -1;
        if (hit < 0) {
            pos++;
            continue;
        }
        const added_token *a = &t->added[hit];
        size_t token_start = pos, token_end = pos + match_len;
        for (size_t n; a->lstrip && (n = space_before(text, segment, token_start)) > 0;) token_start -= n;
        for (size_t n; a->rstrip && (n = space_at(text, token_end, len)) > 0;) token_end += n;
        GALE_TRY(encode_segment(e, text, segment, token_start));
        GALE_TRY(push_id(e->out, a->id));
        pos = segment = token_end;
    }
    GALE_TRY(encode_segment(e, text, segment, len));
    if (add_special)
        for (int i = 0; i < t->n_suffix; i++) GALE_TRY(push_id(e->out, t->suffix_ids[i]));
    return GALE_OK;
}

gale_status gale_tokenizer_encode(const gale_tokenizer *t, const char *text, size_t len, bool add_special,
                                  gale_tokens *out) {
    if (!t || (!text && len) || !out) return gale_error(GALE_ERR_INVALID_ARG, "gale_tokenizer_encode: NULL argument");
    out->count = 0;
    /* invalid UTF-8 is repaired to U+FFFD first, as a Python str of the same bytes decoded
     * with errors="replace" would be: documented behaviour, never a crash */
    char *repaired = NULL;
    if (!utf8_is_valid((const uint8_t *)text, len)) {
        repaired = utf8_repair((const uint8_t *)text, len, &len);
        if (!repaired) return gale_error(GALE_ERR_OOM, "tokenizer: out of memory");
        text = repaired;
    }
    encoder e = {.t = t, .out = out};
    gale_status status = GALE_OK;
    if (len > UINT32_MAX / 4) status = gale_error(GALE_ERR_INVALID_ARG, "tokenizer: text of %zu bytes is too long", len);
    if (status == GALE_OK && t->n_steps) {
        e.md = pcre2_match_data_create(4, NULL);
        if (!e.md) status = gale_error(GALE_ERR_OOM, "tokenizer: out of memory");
    }
    if (status == GALE_OK) status = encode_all(&e, text, len, add_special);
    pcre2_match_data_free(e.md);
    bpe_scratch_free(&e.scratch);
    free(e.words.items);
    free(e.tmp.items);
    free(e.buf);
    free(repaired);
    return status;
}

void gale_tokens_free(gale_tokens *tokens) {
    free(tokens->ids);
    memset(tokens, 0, sizeof *tokens);
}

/* ---- decoding ---- */

bool tokenizer_is_special(const gale_tokenizer *t, int32_t id) {
    token_kind kind = t->vocab.tokens[id].kind;
    return kind == TOKEN_CONTROL || kind == TOKEN_UNKNOWN;
}

/* transformers' clean_up_tokenization_spaces: " ." → "." and the like, in place. */
size_t tokenizer_cleanup_spaces(char *s, size_t len) {
    static const char *const patterns[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    static const char *const replacements[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
        size_t plen = strlen(patterns[p]), rlen = strlen(replacements[p]), out = 0;
        for (size_t i = 0; i < len;) {
            if (i + plen <= len && memcmp(s + i, patterns[p], plen) == 0) {
                memmove(s + out, replacements[p], rlen);
                out += rlen;
                i += plen;
            } else {
                s[out++] = s[i++];
            }
        }
        len = out;
    }
    return len;
}

gale_status gale_tokenizer_decode(const gale_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out,
                                  size_t *out_len) {
    if (!t || (!ids && n) || !out) return gale_error(GALE_ERR_INVALID_ARG, "gale_tokenizer_decode: NULL argument");
    *out = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab.n_tokens)
            return gale_error(GALE_ERR_INVALID_ARG, "%s: token id %d is outside the vocabulary (%d tokens)", t->source,
                              ids[i], t->vocab.n_tokens);
        total += t->vocab.tokens[ids[i]].decoded_len;
    }
    char *raw = malloc(total + 1);
    if (!raw) return gale_error(GALE_ERR_OOM, "tokenizer: out of memory");
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip_special && tokenizer_is_special(t, ids[i])) continue;
        size_t piece_len;
        const char *piece = vocab_decoded(&t->vocab, ids[i], &piece_len);
        memcpy(raw + len, piece, piece_len);
        len += piece_len;
    }
    size_t skip = t->strip_leading_space && len > 0 && raw[0] == ' ' ? 1 : 0;
    memmove(raw, raw + skip, len - skip);
    len -= skip;
    if (t->cleanup_spaces) len = tokenizer_cleanup_spaces(raw, len);
    /* byte tokens can spell invalid UTF-8: shown as U+FFFD, as Hugging Face does */
    *out = utf8_repair((const uint8_t *)raw, len, out_len);
    free(raw);
    if (!*out) return gale_error(GALE_ERR_OOM, "tokenizer: out of memory");
    return GALE_OK;
}
