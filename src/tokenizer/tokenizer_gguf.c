/* GGUF tokenizer.ggml.* metadata → gale_tokenizer (REFERENCE.md §6): "gpt2" models are
 * byte-level BPE with merges and a pre-tokenizer named by tokenizer.ggml.pre; "llama"
 * models are SentencePiece-style BPE merged by token score, with byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "tokenizer/tokenizer_impl.h"
#include "model/gguf.h"

static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

static const gguf_kv *find_array(const gguf_file *g, const char *key, gguf_value_type elem, bool required,
                                 gale_status *status) {
    const gguf_kv *kv = gguf_find(g, key);
    *status = GALE_OK;
    if (!kv) {
        if (required) *status = gale_error(GALE_ERR_MISSING, "%s: metadata key '%s' is missing", g->name, key);
        return NULL;
    }
    if (kv->type != GGUF_TYPE_ARRAY || kv->v.arr.type != elem) {
        *status = gale_error(GALE_ERR_FORMAT, "%s: metadata key '%s' has the wrong type", g->name, key);
        return NULL;
    }
    return kv;
}

static token_kind kind_of(int64_t type) {
    switch (type) {
    case 2: return TOKEN_UNKNOWN;
    case 3: return TOKEN_CONTROL;
    case 4: return TOKEN_USER;
    case 5: return TOKEN_UNUSED;
    case 6: return TOKEN_BYTE;
    default: return TOKEN_NORMAL;
    }
}

static bool only_spaces(gguf_string s) {
    for (uint64_t i = 0; i < s.len; i++)
        if (s.ptr[i] != ' ') return false;
    return s.len > 0;
}

static gale_status set_metaspace_piece(gale_tokenizer *t, int32_t id, gguf_string spaces, float score) {
    char *piece = malloc(spaces.len * METASPACE_LEN);
    if (!piece) return gale_error(GALE_ERR_OOM, "%s: out of memory", t->source);
    for (uint64_t i = 0; i < spaces.len; i++) memcpy(piece + METASPACE_LEN * i, METASPACE, METASPACE_LEN);
    gale_status status = vocab_set(&t->vocab, id, piece, spaces.len * METASPACE_LEN, TOKEN_NORMAL, score);
    free(piece);
    return status;
}

static gale_status read_tokens(gale_tokenizer *t, const gguf_file *g, bool sentencepiece) {
    gale_status status;
    const gguf_kv *tokens = find_array(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, true, &status);
    if (!tokens) return status;
    const gguf_kv *scores = find_array(g, "tokenizer.ggml.scores", GGUF_TYPE_F32, false, &status);
    GALE_TRY(status);
    const gguf_kv *types = gguf_find(g, "tokenizer.ggml.token_type");
    uint64_t n = tokens->v.arr.count;
    if ((scores && scores->v.arr.count != n) || (types && (types->type != GGUF_TYPE_ARRAY || types->v.arr.count != n)))
        return gale_error(GALE_ERR_FORMAT, "%s: tokenizer scores / token types do not list one entry per token", g->name);
    if (n == 0 || n > (1u << 24)) return gale_error(GALE_ERR_FORMAT, "%s: %llu tokens", g->name, (unsigned long long)n);
    GALE_TRY(vocab_init(&t->vocab, (int32_t)n));
    uint64_t cursor = 0;
    for (uint64_t id = 0; id < n; id++) {
        gguf_string piece;
        GALE_TRY(gguf_array_next_string(tokens, &cursor, &piece));
        int64_t type = 1;
        if (types) GALE_TRY(gguf_array_get_i64(types, id, &type));
        float score = 0;
        if (scores) memcpy(&score, scores->v.arr.data + 4 * id, 4);
        token_kind kind = kind_of(type);
        if (sentencepiece && kind == TOKEN_USER && only_spaces(piece)) {
            /* Gemma's runs of spaces are user-defined symbols, which SentencePiece takes
             * whole before merging: as "▁▁…" pieces that outrank every merge (lower id
             * first, as transformers ranks them) they come out the same. */
            GALE_TRY(set_metaspace_piece(t, (int32_t)id, piece, 1e6f - (float)id));
            continue;
        }
        GALE_TRY(vocab_set(&t->vocab, (int32_t)id, piece.ptr, piece.len, kind, score));
        /* control and user-defined tokens are matched on the raw text */
        if (kind == TOKEN_CONTROL || kind == TOKEN_USER) GALE_TRY(tokenizer_add_added(t, (int32_t)id, kind == TOKEN_CONTROL, false, false));
        if (kind == TOKEN_UNKNOWN && t->unk_id < 0) t->unk_id = (int32_t)id;
    }
    int32_t duplicates;
    return vocab_index(&t->vocab, &duplicates);
}

static gale_status read_merges(gale_tokenizer *t, const gguf_kv *merges) {
    GALE_TRY(merges_init(&t->merges, merges->v.arr.count));
    uint64_t cursor = 0;
    for (uint64_t rank = 0; rank < merges->v.arr.count; rank++) {
        gguf_string m;
        GALE_TRY(gguf_array_next_string(merges, &cursor, &m));
        const char *space = memchr(m.ptr, ' ', m.len);
        if (!space || memchr(space + 1, ' ', m.len - (size_t)(space + 1 - m.ptr)))
            return gale_error(GALE_ERR_FORMAT, "%s: merge %llu is not two pieces separated by one space", t->source,
                              (unsigned long long)rank);
        size_t a_len = (size_t)(space - m.ptr);
        GALE_TRY(tokenizer_add_merge(t, m.ptr, a_len, space + 1, m.len - a_len - 1, (size_t)rank));
    }
    return GALE_OK;
}

/* The pre-tokenizer llama.cpp names in tokenizer.ggml.pre. */
static gale_status set_pre_tokenizer(gale_tokenizer *t, const gguf_file *g) {
    const gguf_kv *pre = gguf_find(g, "tokenizer.ggml.pre");
    if (!pre || (pre->type == GGUF_TYPE_STRING && (gguf_string_equals(pre->v.str, "default") ||
                                                   gguf_string_equals(pre->v.str, "gpt2"))))
        return tokenizer_add_regex_step(t, GPT2_PRETOKENIZER_REGEX, SPLIT_ISOLATED, false);
    if (pre->type == GGUF_TYPE_STRING && gguf_string_equals(pre->v.str, "smollm")) {
        GALE_TRY(tokenizer_add_digits_step(t, true));
        return tokenizer_add_regex_step(t, GPT2_PRETOKENIZER_REGEX, SPLIT_ISOLATED, false);
    }
    if (pre->type == GGUF_TYPE_STRING && (gguf_string_equals(pre->v.str, "llama-bpe") ||
                                          gguf_string_equals(pre->v.str, "llama3"))) {
        t->ignore_merges = true; /* Llama 3's tokenizer.json says so; llama.cpp sets it for this pre-tokenizer */
        return tokenizer_add_regex_step(t, LLAMA3_REGEX, SPLIT_ISOLATED, false);
    }
    if (pre->type != GGUF_TYPE_STRING) return gale_error(GALE_ERR_FORMAT, "%s: tokenizer.ggml.pre is not a string", g->name);
    return gale_error(GALE_ERR_UNSUPPORTED, "%s: pre-tokenizer '%.*s' is not supported (gpt2, smollm, llama-bpe)",
                      g->name, (int)(pre->v.str.len > 64 ? 64 : pre->v.str.len), pre->v.str.ptr);
}

static int32_t optional_id(const gguf_file *g, const char *key, int32_t n_tokens) {
    int64_t id;
    if (!gguf_find(g, key) || gguf_get_i64(g, key, &id) != GALE_OK || id < 0 || id >= n_tokens) return -1;
    return (int32_t)id;
}

static bool optional_flag(const gguf_file *g, const char *key, bool fallback) {
    bool value;
    return gguf_find(g, key) && gguf_get_bool(g, key, &value) == GALE_OK ? value : fallback;
}

gale_status tokenizer_load_gguf(gale_tokenizer *t, const gguf_file *g) {
    gguf_string model;
    GALE_TRY(gguf_get_string(g, "tokenizer.ggml.model", &model));
    bool sentencepiece = gguf_string_equals(model, "llama");
    if (!sentencepiece && !gguf_string_equals(model, "gpt2"))
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: tokenizer model '%.*s' is not supported (llama, gpt2)", g->name,
                          (int)(model.len > 64 ? 64 : model.len), model.ptr);
    GALE_TRY(read_tokens(t, g, sentencepiece));
    gale_status status;
    const gguf_kv *merges = find_array(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, !sentencepiece, &status);
    GALE_TRY(status);
    if (merges) GALE_TRY(read_merges(t, merges));
    else t->merge_by_score = true;
    if (sentencepiece) {
        t->spaces_to_metaspace = true;
        t->byte_fallback = true;
        t->decode_metaspace = t->decode_byte_tokens = true;
        bool prefix = optional_flag(g, "tokenizer.ggml.add_space_prefix", true);
        t->prepend = prefix ? PREPEND_ALWAYS : PREPEND_NEVER;
        t->strip_leading_space = prefix;
    } else {
        t->byte_level = true;
        GALE_TRY(set_pre_tokenizer(t, g));
    }
    int32_t n = t->vocab.n_tokens;
    t->bos_id = optional_id(g, "tokenizer.ggml.bos_token_id", n);
    t->eos_id = optional_id(g, "tokenizer.ggml.eos_token_id", n);
    int32_t unk = optional_id(g, "tokenizer.ggml.unknown_token_id", n);
    if (unk >= 0) t->unk_id = unk;
    /* byte-level BPE has no unknown token, whatever the file names (SmolLM2's says 0,
     * <|endoftext|>): transformers' reading of the GGUF drops a character its vocabulary
     * lacks, and so does gale, rather than writing end-of-text into the prompt */
    if (!sentencepiece) t->unk_id = -1;
    if (optional_flag(g, "tokenizer.ggml.add_bos_token", sentencepiece) && t->bos_id >= 0) t->prefix_ids[t->n_prefix++] = t->bos_id;
    if (optional_flag(g, "tokenizer.ggml.add_eos_token", false) && t->eos_id >= 0) t->suffix_ids[t->n_suffix++] = t->eos_id;
    gguf_string tmpl;
    if (gguf_find(g, "tokenizer.chat_template") && gguf_get_string(g, "tokenizer.chat_template", &tmpl) == GALE_OK)
        GALE_TRY(tokenizer_set_chat_template(t, tmpl.ptr, tmpl.len));
    return tokenizer_finish(t);
}
