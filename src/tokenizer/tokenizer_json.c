/* tokenizer.json (+ tokenizer_config.json) → gale_tokenizer. Reads the parts of the
 * Hugging Face tokenizers format that BPE models of the supported families use, and
 * names anything else it meets as unsupported rather than guessing. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mapped_file.h"
#include "core/status.h"
#include "tokenizer/tokenizer_impl.h"

static const char *json_type(const cJSON *obj) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(type) ? type->valuestring : "";
}

static bool json_flag(const cJSON *obj, const char *key, bool fallback) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(item) ? cJSON_IsTrue(item) : fallback;
}

static const char *json_string(const cJSON *obj, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* A Replace/Split pattern: {"String": s} or {"Regex": r}. */
static const char *pattern_text(const cJSON *obj, bool *is_regex) {
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(obj, "pattern");
    const char *s = json_string(pattern, "String");
    *is_regex = s == NULL;
    return s ? s : json_string(pattern, "Regex");
}

static gale_status unsupported(const gale_tokenizer *t, const char *what, const char *type) {
    return gale_error(GALE_ERR_UNSUPPORTED, "%s: %s of type \"%s\" is not supported", t->source, what, type);
}

/* ---- model ---- */

/* A token id: an integer from 0 below 2^24 (no vocabulary is larger). */
static bool json_token_id(const cJSON *item, int32_t *id) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0 && v < (double)(1 << 24)) || v != (double)(int32_t)v) return false;
    *id = (int32_t)v;
    return true;
}

/* The largest id named anywhere, or -1; -2 when some id is not a valid token id. */
static int32_t highest_id(const cJSON *vocab_obj, const cJSON *added) {
    int32_t highest = -1, id;
    const cJSON *item;
    cJSON_ArrayForEach(item, vocab_obj) {
        if (!json_token_id(item, &id)) return -2;
        if (id > highest) highest = id;
    }
    cJSON_ArrayForEach(item, added) {
        const cJSON *id_item = cJSON_GetObjectItemCaseSensitive(item, "id");
        if (id_item && json_token_id(id_item, &id) && id > highest) highest = id;
    }
    return highest;
}

static gale_status read_vocab(gale_tokenizer *t, const cJSON *vocab_obj, const cJSON *added) {
    if (!cJSON_IsObject(vocab_obj)) return gale_error(GALE_ERR_FORMAT, "%s: model.vocab must be an object", t->source);
    int32_t highest = highest_id(vocab_obj, added);
    if (highest == -2) return gale_error(GALE_ERR_FORMAT, "%s: model.vocab holds a value that is not a token id", t->source);
    if (highest < 0) return gale_error(GALE_ERR_FORMAT, "%s: the vocabulary is empty", t->source);
    GALE_TRY(vocab_init(&t->vocab, highest + 1));
    /* ids that neither the vocabulary nor the added tokens name stay empty and unused */
    for (int32_t id = 0; id <= highest; id++) GALE_TRY(vocab_set(&t->vocab, id, "", 0, TOKEN_UNUSED, 0));
    const cJSON *item;
    cJSON_ArrayForEach(item, vocab_obj) {
        int32_t id = 0;
        json_token_id(item, &id); /* checked by highest_id */
        GALE_TRY(vocab_set(&t->vocab, id, item->string, strlen(item->string), TOKEN_NORMAL, 0));
    }
    return GALE_OK;
}

static gale_status read_added_tokens(gale_tokenizer *t, const cJSON *added) {
    if (!added) return GALE_OK;
    if (!cJSON_IsArray(added)) return gale_error(GALE_ERR_FORMAT, "%s: added_tokens must be a list", t->source);
    const cJSON *item;
    cJSON_ArrayForEach(item, added) {
        int32_t id;
        const char *content = json_string(item, "content");
        if (!json_token_id(cJSON_GetObjectItemCaseSensitive(item, "id"), &id) || !content)
            return gale_error(GALE_ERR_FORMAT, "%s: an added token needs an \"id\" and a \"content\"", t->source);
        bool special = json_flag(item, "special", false);
        GALE_TRY(vocab_set(&t->vocab, id, content, strlen(content), special ? TOKEN_CONTROL : TOKEN_USER, 0));
        GALE_TRY(tokenizer_add_added(t, id, special, json_flag(item, "lstrip", false), json_flag(item, "rstrip", false)));
    }
    return GALE_OK;
}

/* merges: "a b" strings or ["a", "b"] pairs; the merged piece must be in the vocabulary. */
static gale_status read_merges(gale_tokenizer *t, const cJSON *merges) {
    if (!cJSON_IsArray(merges)) return gale_error(GALE_ERR_FORMAT, "%s: model.merges must be a list", t->source);
    size_t n = (size_t)cJSON_GetArraySize(merges), rank = 0;
    GALE_TRY(merges_init(&t->merges, n));
    gale_status status = GALE_OK;
    const cJSON *item;
    cJSON_ArrayForEach(item, merges) {
        const char *a, *b;
        size_t a_len, b_len;
        if (cJSON_IsString(item)) {
            const char *space = strchr(item->valuestring, ' ');
            if (!space || strchr(space + 1, ' ')) {
                status = gale_error(GALE_ERR_FORMAT, "%s: merge %zu \"%s\" is not two pieces separated by one space",
                                    t->source, rank, item->valuestring);
                break;
            }
            a = item->valuestring, a_len = (size_t)(space - a), b = space + 1, b_len = strlen(b);
        } else if (cJSON_IsArray(item) && cJSON_GetArraySize(item) == 2 && cJSON_IsString(item->child) &&
                   cJSON_IsString(item->child->next)) {
            a = item->child->valuestring, a_len = strlen(a), b = item->child->next->valuestring, b_len = strlen(b);
        } else {
            status = gale_error(GALE_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", t->source, rank);
            break;
        }
        if ((status = tokenizer_add_merge(t, a, a_len, b, b_len, rank)) != GALE_OK) break;
        rank++;
    }
    return status;
}

static gale_status read_model(gale_tokenizer *t, const cJSON *model) {
    if (strcmp(json_type(model), "BPE") != 0) return unsupported(t, "model", json_type(model));
    const char *prefix = json_string(model, "continuing_subword_prefix");
    const char *suffix = json_string(model, "end_of_word_suffix");
    if ((prefix && *prefix) || (suffix && *suffix))
        return gale_error(GALE_ERR_UNSUPPORTED, "%s: BPE subword prefixes/suffixes are not supported", t->source);
    t->byte_fallback = json_flag(model, "byte_fallback", false);
    t->fuse_unk = json_flag(model, "fuse_unk", false);
    t->ignore_merges = json_flag(model, "ignore_merges", false);
    return GALE_OK;
}

/* ---- normalizer and pre-tokenizer ---- */

static gale_status read_normalizer(gale_tokenizer *t, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return GALE_OK;
    const char *type = json_type(n);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) GALE_TRY(read_normalizer(t, item));
        return GALE_OK;
    }
    if (strcmp(type, "Prepend") == 0) {
        const char *prepend = json_string(n, "prepend");
        if (!prepend || strcmp(prepend, METASPACE) != 0) return unsupported(t, "Prepend normalizer (not \"▁\")", type);
        t->prepend = PREPEND_ALWAYS;
        return GALE_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        bool is_regex;
        const char *pattern = pattern_text(n, &is_regex);
        const char *content = json_string(n, "content");
        if (is_regex || !pattern || !content || strcmp(pattern, " ") != 0 || strcmp(content, METASPACE) != 0)
            return unsupported(t, "Replace normalizer (other than \" \" → \"▁\")", type);
        t->spaces_to_metaspace = true;
        return GALE_OK;
    }
    return unsupported(t, "normalizer", type);
}

static gale_status read_split(gale_tokenizer *t, const cJSON *p) {
    static const struct { const char *name; split_behavior behavior; } behaviors[] = {
        {"Isolated", SPLIT_ISOLATED}, {"Removed", SPLIT_REMOVED},
        {"MergedWithPrevious", SPLIT_MERGED_WITH_PREVIOUS}, {"MergedWithNext", SPLIT_MERGED_WITH_NEXT}};
    const char *behavior_name = json_string(p, "behavior");
    int found = -1;
    for (int i = 0; i < 4 && behavior_name; i++)
        if (strcmp(behavior_name, behaviors[i].name) == 0) found = i;
    if (found < 0) return unsupported(t, "Split behavior", behavior_name ? behavior_name : "");
    bool is_regex;
    const char *pattern = pattern_text(p, &is_regex);
    if (!pattern) return gale_error(GALE_ERR_FORMAT, "%s: a Split pre-tokenizer needs a pattern", t->source);
    char *regex = NULL;
    if (!is_regex) {
        /* a literal string: quote it for PCRE2 */
        regex = malloc(strlen(pattern) + 5);
        if (!regex) return gale_error(GALE_ERR_OOM, "%s: out of memory", t->source);
        sprintf(regex, "\\Q%s\\E", pattern);
    }
    gale_status status = tokenizer_add_regex_step(t, regex ? regex : pattern, behaviors[found].behavior,
                                                  json_flag(p, "invert", false));
    free(regex);
    return status;
}

/* Metaspace(replacement "▁", prepend_scheme first/always/never — or the older
 * add_prefix_space flag — and split). */
static gale_status read_metaspace(gale_tokenizer *t, const cJSON *p) {
    const char *replacement = json_string(p, "replacement");
    if (replacement && strcmp(replacement, METASPACE) != 0) return unsupported(t, "Metaspace replacement", replacement);
    t->spaces_to_metaspace = true;
    t->prepend_unless_space = true;
    t->metaspace_split = json_flag(p, "split", true);
    const char *scheme = json_string(p, "prepend_scheme");
    if (scheme) {
        if (strcmp(scheme, "first") == 0) t->prepend = PREPEND_FIRST;
        else if (strcmp(scheme, "always") == 0) t->prepend = PREPEND_ALWAYS;
        else if (strcmp(scheme, "never") == 0) t->prepend = PREPEND_NEVER;
        else return unsupported(t, "Metaspace prepend_scheme", scheme);
    } else {
        t->prepend = json_flag(p, "add_prefix_space", true) ? PREPEND_FIRST : PREPEND_NEVER;
    }
    return GALE_OK;
}

static gale_status read_pre_tokenizer(gale_tokenizer *t, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return GALE_OK;
    const char *type = json_type(p);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) GALE_TRY(read_pre_tokenizer(t, item));
        return GALE_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (json_flag(p, "add_prefix_space", false))
            return gale_error(GALE_ERR_UNSUPPORTED, "%s: ByteLevel add_prefix_space is not supported", t->source);
        t->byte_level = true;
        if (json_flag(p, "use_regex", true)) return tokenizer_add_regex_step(t, GPT2_PRETOKENIZER_REGEX, SPLIT_ISOLATED, false);
        return GALE_OK;
    }
    if (strcmp(type, "Split") == 0) return read_split(t, p);
    if (strcmp(type, "Digits") == 0) return tokenizer_add_digits_step(t, json_flag(p, "individual_digits", false));
    if (strcmp(type, "Metaspace") == 0) return read_metaspace(t, p);
    return unsupported(t, "pre_tokenizer", type);
}

/* ---- decoder and post-processor ---- */

static gale_status read_decoder(gale_tokenizer *t, const cJSON *d) {
    if (!d || cJSON_IsNull(d)) return GALE_OK;
    const char *type = json_type(d);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(d, "decoders")) GALE_TRY(read_decoder(t, item));
        return GALE_OK;
    }
    if (strcmp(type, "ByteLevel") == 0 || strcmp(type, "Fuse") == 0) return GALE_OK;
    if (strcmp(type, "ByteFallback") == 0) {
        t->decode_byte_tokens = true;
        return GALE_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        bool is_regex;
        const char *pattern = pattern_text(d, &is_regex);
        const char *content = json_string(d, "content");
        if (is_regex || !pattern || !content || strcmp(pattern, METASPACE) != 0 || strcmp(content, " ") != 0)
            return unsupported(t, "Replace decoder (other than \"▁\" → \" \")", type);
        t->decode_metaspace = true;
        return GALE_OK;
    }
    if (strcmp(type, "Strip") == 0) {
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(d, "stop");
        const char *content = json_string(d, "content");
        if (!content || strcmp(content, " ") != 0 || !cJSON_IsNumber(start) || start->valueint > 1 ||
            (cJSON_IsNumber(stop) && stop->valueint != 0))
            return unsupported(t, "Strip decoder (other than one leading space)", type);
        t->strip_leading_space = start->valueint == 1;
        return GALE_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        t->decode_metaspace = true;
        const char *scheme = json_string(d, "prepend_scheme");
        t->strip_leading_space = scheme ? strcmp(scheme, "never") != 0 : json_flag(d, "add_prefix_space", true);
        return GALE_OK;
    }
    return unsupported(t, "decoder", type);
}

/* The ids a TemplateProcessing puts before and after "$A". */
static gale_status read_template(gale_tokenizer *t, const cJSON *p) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    bool after = false;
    const cJSON *item;
    cJSON_ArrayForEach(item, single) {
        if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) {
            after = true;
            continue;
        }
        const char *name = json_string(cJSON_GetObjectItemCaseSensitive(item, "SpecialToken"), "id");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name ? name : ""), "ids");
        const cJSON *id;
        cJSON_ArrayForEach(id, ids) {
            int32_t *list = after ? t->suffix_ids : t->prefix_ids;
            int *count = after ? &t->n_suffix : &t->n_prefix;
            if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= t->vocab.n_tokens || *count == 4)
                return gale_error(GALE_ERR_FORMAT, "%s: post_processor special token \"%s\" has a bad id", t->source,
                                  name ? name : "?");
            list[(*count)++] = (int32_t)id->valuedouble;
        }
    }
    return GALE_OK;
}

static gale_status read_post_processor(gale_tokenizer *t, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return GALE_OK;
    const char *type = json_type(p);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(p, "processors")) GALE_TRY(read_post_processor(t, item));
        return GALE_OK;
    }
    if (strcmp(type, "TemplateProcessing") == 0) return read_template(t, p);
    if (strcmp(type, "ByteLevel") == 0) return GALE_OK;
    return unsupported(t, "post_processor", type);
}

static gale_status read_tokenizer_json(gale_tokenizer *t, const cJSON *root) {
    if (!cJSON_IsObject(root)) return gale_error(GALE_ERR_FORMAT, "%s: not a JSON object", t->source);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(model)) return gale_error(GALE_ERR_MISSING, "%s: no \"model\" object", t->source);
    GALE_TRY(read_model(t, model));
    GALE_TRY(read_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), added));
    GALE_TRY(read_added_tokens(t, added));
    int32_t duplicates;
    GALE_TRY(vocab_index(&t->vocab, &duplicates));
    const char *unk = json_string(model, "unk_token");
    if (unk && (t->unk_id = vocab_find(&t->vocab, unk, strlen(unk))) < 0)
        return gale_error(GALE_ERR_FORMAT, "%s: unk_token \"%s\" is not in the vocabulary", t->source, unk);
    if (t->unk_id >= 0 && t->vocab.tokens[t->unk_id].kind == TOKEN_NORMAL) t->vocab.tokens[t->unk_id].kind = TOKEN_UNKNOWN;
    GALE_TRY(read_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges")));
    GALE_TRY(read_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer")));
    GALE_TRY(read_pre_tokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")));
    GALE_TRY(read_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder")));
    return read_post_processor(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
}

/* ---- tokenizer_config.json ---- */

/* bos_token / eos_token: a string or {"content": ...}. */
static int32_t config_token(const gale_tokenizer *t, const cJSON *config, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, key);
    const char *content = cJSON_IsString(item) ? item->valuestring : json_string(item, "content");
    return content ? vocab_find(&t->vocab, content, strlen(content)) : -1;
}

static gale_status read_chat_template(gale_tokenizer *t, const cJSON *config) {
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(config, "chat_template");
    if (cJSON_IsString(tmpl)) return tokenizer_set_chat_template(t, tmpl->valuestring, strlen(tmpl->valuestring));
    /* a list of named templates: the one named "default", else the first */
    const cJSON *item, *chosen = NULL;
    cJSON_ArrayForEach(item, tmpl) {
        const char *name = json_string(item, "name");
        if (!chosen || (name && strcmp(name, "default") == 0)) chosen = item;
    }
    const char *text = json_string(chosen, "template");
    return text ? tokenizer_set_chat_template(t, text, strlen(text)) : GALE_OK;
}

/* transformers' tokenizer classes for Llama-style models rebuild the template from
 * add_bos_token / add_eos_token when the config has them. */
static gale_status read_tokenizer_config(gale_tokenizer *t, const cJSON *config, const char *path) {
    if (!cJSON_IsObject(config)) return gale_error(GALE_ERR_FORMAT, "%s: not a JSON object", path);
    t->bos_id = config_token(t, config, "bos_token");
    t->eos_id = config_token(t, config, "eos_token");
    const cJSON *add_bos = cJSON_GetObjectItemCaseSensitive(config, "add_bos_token");
    const cJSON *add_eos = cJSON_GetObjectItemCaseSensitive(config, "add_eos_token");
    if (cJSON_IsBool(add_bos) || cJSON_IsBool(add_eos)) {
        t->n_prefix = t->n_suffix = 0;
        if (cJSON_IsTrue(add_bos) && t->bos_id >= 0) t->prefix_ids[t->n_prefix++] = t->bos_id;
        if (cJSON_IsTrue(add_eos) && t->eos_id >= 0) t->suffix_ids[t->n_suffix++] = t->eos_id;
    }
    t->cleanup_spaces = json_flag(config, "clean_up_tokenization_spaces", false);
    return read_chat_template(t, config);
}

static gale_status parse_file(const char *path, bool required, cJSON **out) {
    *out = NULL;
    if (!required && !path_exists(path)) return GALE_OK;
    char *text;
    size_t len;
    GALE_TRY(read_text_file(path, &text, &len));
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    if (!*out) return gale_error(GALE_ERR_FORMAT, "%s: not valid JSON", path);
    return GALE_OK;
}

gale_status tokenizer_load_json_text(gale_tokenizer *t, const char *json, size_t len, const char *config_json,
                                     size_t config_len) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return gale_error(GALE_ERR_FORMAT, "%s: not valid JSON", t->source);
    gale_status status = read_tokenizer_json(t, root);
    cJSON_Delete(root);
    if (status == GALE_OK && config_json) {
        cJSON *config = cJSON_ParseWithLength(config_json, config_len);
        status = config ? read_tokenizer_config(t, config, "tokenizer_config.json")
                        : gale_error(GALE_ERR_FORMAT, "tokenizer_config.json: not valid JSON");
        cJSON_Delete(config);
    }
    return status == GALE_OK ? tokenizer_finish(t) : status;
}

/* transformers 5 saves the chat template as chat_template.jinja; it wins over the config's. */
static gale_status read_jinja_file(gale_tokenizer *t, const char *dir) {
    char *path = path_join(dir, "chat_template.jinja");
    if (!path) return gale_error(GALE_ERR_OOM, "%s: out of memory", dir);
    gale_status status = GALE_OK;
    if (path_exists(path)) {
        char *text;
        size_t len;
        status = read_text_file(path, &text, &len);
        if (status == GALE_OK) {
            status = tokenizer_set_chat_template(t, text, len);
            free(text);
        }
    }
    free(path);
    return status;
}

gale_status tokenizer_load_json_dir(gale_tokenizer *t, const char *dir) {
    char *path = path_join(dir, "tokenizer.json"), *config_path = path_join(dir, "tokenizer_config.json");
    cJSON *root = NULL, *config = NULL;
    gale_status status = path && config_path ? GALE_OK : gale_error(GALE_ERR_OOM, "%s: out of memory", dir);
    if (status == GALE_OK) {
        free(t->source);
        t->source = strdup(path);
        status = t->source ? parse_file(path, true, &root) : gale_error(GALE_ERR_OOM, "%s: out of memory", dir);
    }
    if (status == GALE_OK) status = read_tokenizer_json(t, root);
    if (status == GALE_OK) status = parse_file(config_path, false, &config);
    if (status == GALE_OK && config) status = read_tokenizer_config(t, config, config_path);
    if (status == GALE_OK) status = read_jinja_file(t, dir);
    if (status == GALE_OK) status = tokenizer_finish(t);
    cJSON_Delete(root);
    cJSON_Delete(config);
    free(path);
    free(config_path);
    return status;
}
