/* Inside of gale_tokenizer, shared by the loaders (tokenizer_json.c, tokenizer_gguf.c),
 * the encoder (tokenizer.c) and the pre-tokenizer (pretokenize.c).
 *
 * The pipeline is Hugging Face tokenizers' for the two BPE flavours gale's models use:
 *   added tokens split out of the raw text → normalizer (SentencePiece: "▁" for spaces,
 *   optional "▁" prepended) → pre-tokenizer (regex / digit splits, GPT-2 byte mapping) →
 *   BPE merges per word → template (BOS/EOS). */
#ifndef GALE_TOKENIZER_IMPL_H
#define GALE_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gale.h"
#include "tokenizer/bpe.h"
#include "tokenizer/vocab.h"

/* SentencePiece's space, U+2581 "▁". */
#define METASPACE "\xE2\x96\x81"
enum { METASPACE_LEN = 3 };

/* GPT-2's pre-tokenizer regex: what ByteLevel(use_regex=true) and GGUF pre "gpt2" split with. */
extern const char GPT2_PRETOKENIZER_REGEX[];

typedef enum split_behavior {
    SPLIT_ISOLATED = 0, /* each match its own piece, the text between too */
    SPLIT_REMOVED,      /* matches dropped */
    SPLIT_MERGED_WITH_PREVIOUS,
    SPLIT_MERGED_WITH_NEXT,
} split_behavior;

/* One Split of the pre-tokenizer (Digits is a Split on \p{N} too). */
typedef struct pre_step {
    split_behavior behavior;
    bool invert;            /* split on what does not match */
    pcre2_code *regex;
} pre_step;

typedef enum prepend_scheme {
    PREPEND_NEVER = 0,
    PREPEND_FIRST,  /* only the text that starts the input (Metaspace "first") */
    PREPEND_ALWAYS, /* every text segment between added tokens (legacy Prepend normalizer) */
} prepend_scheme;

/* An added token: matched on the raw text before anything else. */
typedef struct added_token {
    int32_t id;
    bool special; /* dropped by skip_special_tokens */
    bool lstrip, rstrip;
} added_token;

/* Byte trie over added-token contents for leftmost-longest matching. */
typedef struct added_trie {
    uint64_t *edge_keys;  /* (node << 8 | byte) + 1, 0 empty */
    int32_t *edge_child;
    size_t n_edge_slots;
    int32_t *node_token;  /* [n_nodes]: index into added[] ending here, -1 none */
    size_t n_nodes, cap_nodes;
} added_trie;

struct gale_tokenizer {
    vocab vocab;
    bool byte_level;        /* pieces spell bytes in the GPT-2 byte↔unicode alphabet */
    merge_table merges;
    bool merge_by_score;    /* no merge list: SentencePiece scores decide */
    bool ignore_merges;     /* a word that is itself a token skips merging (Llama 3) */
    bool byte_fallback;     /* unknown characters become <0xXX> byte tokens */
    int32_t unk_id;         /* -1 none */
    bool fuse_unk;

    /* normalizer / SentencePiece pre-tokenizer */
    bool spaces_to_metaspace; /* " " → "▁" */
    prepend_scheme prepend;
    bool prepend_unless_space; /* Metaspace: no "▁" before text that starts with one */
    bool metaspace_split;     /* split words before each "▁" */

    pre_step *steps;          /* byte-level pre-tokenizer splits, in order */
    size_t n_steps;

    added_token *added;
    size_t n_added;
    added_trie trie;

    int32_t bos_id, eos_id;   /* -1 unknown */
    int32_t prefix_ids[4], suffix_ids[4]; /* added around the text with add_special (BOS, EOS) */
    int n_prefix, n_suffix;

    bool decode_metaspace;    /* decoder: "▁" is a space (SentencePiece) */
    bool decode_byte_tokens;  /* decoder: "<0xXX>" is byte XX (ByteFallback) */
    bool strip_leading_space; /* decoder: drop one leading space of the text */
    bool cleanup_spaces;      /* transformers' clean_up_tokenization_spaces */

    char *chat_template;      /* NULL when the source has none */
    char *source;             /* path, for messages */
};

/* ---- tokenizer.c ---- */
gale_tokenizer *tokenizer_alloc(const char *source);
/* After the vocabulary, merges and added tokens are set: builds the indexes, the added
 * token trie and each token's decoded bytes. */
gale_status tokenizer_finish(gale_tokenizer *t);
gale_status tokenizer_add_added(gale_tokenizer *t, int32_t id, bool special, bool lstrip, bool rstrip);
gale_status tokenizer_add_regex_step(gale_tokenizer *t, const char *pattern, split_behavior behavior, bool invert);
gale_status tokenizer_add_digits_step(gale_tokenizer *t, bool individual);
/* Merge `rank` of a and b: both pieces and their join must be in the (indexed) vocabulary. */
gale_status tokenizer_add_merge(gale_tokenizer *t, const char *a, size_t a_len, const char *b, size_t b_len, size_t rank);

gale_status tokenizer_set_chat_template(gale_tokenizer *t, const char *text, size_t len);

/* ---- loaders ---- */
struct gguf_file;
/* tokenizer.json (+ tokenizer_config.json when present) of a model directory. */
gale_status tokenizer_load_json_dir(gale_tokenizer *t, const char *dir);
/* The same from text in memory (fuzz target; config_json may be NULL). */
gale_status tokenizer_load_json_text(gale_tokenizer *t, const char *json, size_t len, const char *config_json,
                                     size_t config_len);
gale_status tokenizer_load_gguf(gale_tokenizer *t, const struct gguf_file *g);
bool tokenizer_is_special(const gale_tokenizer *t, int32_t id);
/* transformers' clean_up_tokenization_spaces, in place; returns the new length. */
size_t tokenizer_cleanup_spaces(char *s, size_t len);

/* ---- pretokenize.c ---- */
/* A piece of a word list: bytes [start, start+len) of a buffer. */
typedef struct span {
    uint32_t start, len;
} span;

typedef struct span_list {
    span *items;
    size_t count, cap;
} span_list;

gale_status span_push(span_list *l, uint32_t start, uint32_t len);
/* Applies the pre-tokenizer steps to text[0..len): out gets the word spans. */
gale_status pretokenize_split(const gale_tokenizer *t, const char *text, size_t len, span_list *out,
                              span_list *tmp, pcre2_match_data *md);
/* GPT-2's byte → printable code point table (REFERENCE.md §7). */
uint32_t byte_to_unicode(uint8_t b);
/* The reverse: -1 for a code point outside the table. */
int byte_from_unicode(uint32_t cp);

#endif
