/* Chat templates. gale does not run Jinja: it recognises the template by its distinctive
 * markers and renders a built-in equivalent, as the C runtimes do (REFERENCE.md §8).
 * Each renderer reproduces what transformers' apply_chat_template gives for the template
 * it stands for, including its errors (Gemma 2 refuses a system role; Llama 2, Mistral
 * and Gemma insist on alternating user/assistant turns). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

typedef enum chat_kind {
    CHAT_CHATML = 0,
    CHAT_LLAMA2,
    CHAT_LLAMA3,
    CHAT_MISTRAL,
    CHAT_GEMMA,  /* Gemma 3: a system message becomes the start of the first user turn */
    CHAT_GEMMA2, /* Gemma 1/2: a system message is an error */
    CHAT_KIND_COUNT,
} chat_kind;

static const char *const kind_names[CHAT_KIND_COUNT] = {"chatml", "llama2", "llama3", "mistral", "gemma", "gemma2"};
static const char *const end_of_turn[CHAT_KIND_COUNT] = {"<|im_end|>", NULL, "<|eot_id|>", NULL, "<end_of_turn>",
                                                         "<end_of_turn>"};

static const char ALTERNATE[] = "Conversation roles must alternate user/assistant/user/assistant/...";

/* ---- a growing string ---- */

typedef struct text_buf {
    char *data;
    size_t len, cap;
    bool failed;
} text_buf;

static void put(text_buf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_all(text_buf *b, int count, ...) {
    va_list args;
    va_start(args, count);
    for (int i = 0; i < count; i++) {
        const char *s = va_arg(args, const char *);
        put(b, s, strlen(s));
    }
    va_end(args);
}

/* Python's str.strip() / Jinja's trim: Unicode White_Space (NBSP, ideographic space, …)
 * and U+001C..U+001F are all whitespace to Python. Bytes of the one at s[0..n), or 0. */
static size_t unicode_space_len(const char *s, size_t n) {
    uint32_t cp;
    const size_t len = utf8_decode((const uint8_t *)s, n, &cp);
    return len && (utf8_is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F)) ? len : 0;
}

static void put_stripped(text_buf *b, const char *s) {
    size_t n = strlen(s), k;
    while (n && (k = unicode_space_len(s, n)) > 0) s += k, n -= k;
    for (bool trimmed = true; trimmed && n;) {
        trimmed = false;
        for (size_t len = 1; len <= 3 && len <= n; len++) {
            if (unicode_space_len(s + n - len, len) == len) {
                n -= len;
                trimmed = true;
                break;
            }
        }
    }
    put(b, s, n);
}

/* ---- recognising the template ---- */

static bool is_kind_name(const char *name, chat_kind *out) {
    for (int k = 0; k < CHAT_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *out = (chat_kind)k;
            return true;
        }
    return false;
}

static chat_kind detect(const char *tmpl, bool *known) {
    *known = true;
    if (!tmpl) {
        *known = false;
        return CHAT_CHATML;
    }
    if (strstr(tmpl, "<|im_start|>")) return CHAT_CHATML;
    if (strstr(tmpl, "<|start_header_id|>")) return CHAT_LLAMA3;
    if (strstr(tmpl, "<start_of_turn>")) return strstr(tmpl, "System role not supported") ? CHAT_GEMMA2 : CHAT_GEMMA;
    if (strstr(tmpl, "[INST]")) return strstr(tmpl, "<<SYS>>") ? CHAT_LLAMA2 : CHAT_MISTRAL;
    *known = false;
    return CHAT_CHATML;
}

/* SmolLM2's ChatML adds a system turn of its own when the conversation has none: the
 * literal after `messages[0]['role'] != 'system' %}{{ '`, Jinja-unescaped. */
static char *default_system_turn(const char *tmpl) {
    const char *cond = tmpl ? strstr(tmpl, "messages[0]['role'] != 'system'") : NULL;
    const char *open = cond ? strstr(cond, "{{ '") : NULL;
    if (!open || open - cond > 48) return NULL;
    const char *s = open + 4;
    char *out = malloc(strlen(s) + 1);
    if (!out) return NULL;
    size_t n = 0;
    for (; *s && *s != '\''; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            out[n++] = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
    if (*s != '\'' || strncmp(out, "<|im_start|>system", 18) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- renderers ---- */

typedef struct chat_ctx {
    const gale_chat_message *msgs;
    size_t n;
    bool add_generation_prompt;
    const char *bos, *eos;
    const char *default_system; /* ChatML only, may be NULL */
} chat_ctx;

static bool is_role(const gale_chat_message *m, const char *role) { return strcmp(m->role, role) == 0; }

static gale_status render_chatml(const chat_ctx *c, text_buf *b) {
    for (size_t i = 0; i < c->n; i++) {
        if (i == 0 && c->default_system && !is_role(&c->msgs[0], "system")) put(b, c->default_system, strlen(c->default_system));
        puts_all(b, 5, "<|im_start|>", c->msgs[i].role, "\n", c->msgs[i].content, "<|im_end|>\n");
    }
    if (c->add_generation_prompt) put(b, "<|im_start|>assistant\n", 22);
    return GALE_OK;
}

static gale_status render_llama3(const chat_ctx *c, text_buf *b) {
    for (size_t i = 0; i < c->n; i++) {
        if (i == 0) puts_all(b, 1, c->bos);
        puts_all(b, 3, "<|start_header_id|>", c->msgs[i].role, "<|end_header_id|>\n\n");
        put_stripped(b, c->msgs[i].content);
        put(b, "<|eot_id|>", 10);
    }
    if (c->add_generation_prompt) puts_all(b, 1, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return GALE_OK;
}

/* Llama 2, Mistral and Gemma: turns after an optional system message alternate, user first. */
static gale_status check_alternation(const chat_ctx *c, size_t first) {
    for (size_t i = first; i < c->n; i++)
        if (is_role(&c->msgs[i], "user") != ((i - first) % 2 == 0)) return gale_error(GALE_ERR_INVALID_ARG, "chat template: %s", ALTERNATE);
    return GALE_OK;
}

static gale_status render_llama2(const chat_ctx *c, text_buf *b) {
    size_t first = c->n && is_role(&c->msgs[0], "system") ? 1 : 0;
    const char *system = first ? c->msgs[0].content : NULL;
    for (size_t i = first; i < c->n; i++) {
        if (is_role(&c->msgs[i], "user") != ((i - first) % 2 == 0))
            return gale_error(GALE_ERR_INVALID_ARG, "chat template: %s", ALTERNATE);
        text_buf content = {0};
        if (i == first && system) puts_all(&content, 3, "<<SYS>>\n", system, "\n<</SYS>>\n\n");
        puts_all(&content, 1, c->msgs[i].content);
        if (content.failed) return gale_error(GALE_ERR_OOM, "chat template: out of memory");
        if (is_role(&c->msgs[i], "user")) {
            puts_all(b, 2, c->bos, "[INST] ");
            put_stripped(b, content.data);
            put(b, " [/INST]", 8);
        } else if (is_role(&c->msgs[i], "assistant")) {
            put(b, " ", 1);
            put_stripped(b, content.data);
            puts_all(b, 2, " ", c->eos);
        }
        free(content.data);
    }
    return GALE_OK;
}

static gale_status render_mistral(const chat_ctx *c, text_buf *b) {
    puts_all(b, 1, c->bos);
    for (size_t i = 0; i < c->n; i++) {
        if (is_role(&c->msgs[i], "user") != (i % 2 == 0)) return gale_error(GALE_ERR_INVALID_ARG, "chat template: %s", ALTERNATE);
        if (is_role(&c->msgs[i], "user")) puts_all(b, 3, "[INST] ", c->msgs[i].content, " [/INST]");
        else if (is_role(&c->msgs[i], "assistant")) puts_all(b, 2, c->msgs[i].content, c->eos);
        else return gale_error(GALE_ERR_INVALID_ARG, "chat template: Only user and assistant roles are supported!");
    }
    return GALE_OK;
}

static gale_status render_gemma(const chat_ctx *c, text_buf *b, bool fold_system) {
    size_t first = 0;
    const char *prefix = NULL;
    if (c->n && is_role(&c->msgs[0], "system")) {
        if (!fold_system) return gale_error(GALE_ERR_INVALID_ARG, "chat template: System role not supported");
        prefix = c->msgs[0].content;
        first = 1;
    }
    puts_all(b, 1, c->bos);
    GALE_TRY(check_alternation(c, first));
    for (size_t i = first; i < c->n; i++) {
        const char *role = is_role(&c->msgs[i], "assistant") ? "model" : c->msgs[i].role;
        puts_all(b, 3, "<start_of_turn>", role, "\n");
        if (i == first && prefix) puts_all(b, 2, prefix, "\n\n");
        put_stripped(b, c->msgs[i].content);
        put(b, "<end_of_turn>\n", 14);
    }
    if (c->add_generation_prompt) put(b, "<start_of_turn>model\n", 21);
    return GALE_OK;
}

static const char *token_text(const gale_tokenizer *t, int32_t id) {
    if (id < 0) return "";
    size_t len;
    const char *piece = vocab_piece(&t->vocab, id, &len);
    return piece; /* pieces are stored NUL-terminated */
}

/* How the format of a model's conversations was found. */
typedef enum kind_source { KIND_FROM_TEMPLATE, KIND_FROM_VOCABULARY, KIND_DEFAULT } kind_source;

/* The model's format: its chat template's; or, with no template (many GGUFs of base
 * models), the one its vocabulary's turn markers belong to (*marker); else ChatML. */
static chat_kind infer_kind(const gale_tokenizer *t, kind_source *source, const char **marker) {
    static const struct {
        const char *marker;
        chat_kind kind;
    } markers[] = {{"<start_of_turn>", CHAT_GEMMA}, {"<|start_header_id|>", CHAT_LLAMA3}, {"<|im_start|>", CHAT_CHATML}};
    bool known;
    chat_kind kind = detect(t->chat_template, &known);
    *source = known ? KIND_FROM_TEMPLATE : KIND_DEFAULT;
    *marker = NULL;
    if (known || t->chat_template) return kind;
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++)
        if (vocab_find(&t->vocab, markers[i].marker, strlen(markers[i].marker)) >= 0) {
            *source = KIND_FROM_VOCABULARY;
            *marker = markers[i].marker;
            return markers[i].kind;
        }
    return kind;
}

static gale_status resolve_kind(const gale_tokenizer *t, const char *name, chat_kind *kind) {
    if (name) {
        if (is_kind_name(name, kind)) return GALE_OK;
        return gale_error(GALE_ERR_INVALID_ARG, "chat template '%s' is unknown (chatml, llama2, llama3, mistral, gemma, gemma2)",
                          name);
    }
    kind_source source;
    const char *marker;
    *kind = infer_kind(t, &source, &marker);
    if (source == KIND_FROM_VOCABULARY)
        log_warn("%s: the model has no chat template; its %s token says the %s format (choose another with "
                 "--chat-template NAME)", t->source, marker, kind_names[*kind]);
    else if (source == KIND_DEFAULT)
        log_warn("%s: %s; using the ChatML template (choose another with --chat-template NAME)", t->source,
                 t->chat_template ? "the chat template is not one gale recognises" : "the model has no chat template");
    return GALE_OK;
}

gale_status gale_chat_render(const gale_tokenizer *t, const char *template_name, const gale_chat_message *messages,
                             size_t n, bool add_generation_prompt, char **out) {
    if (!t || !out || (!messages && n)) return gale_error(GALE_ERR_INVALID_ARG, "gale_chat_render: NULL argument");
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (!messages[i].role || !messages[i].content)
            return gale_error(GALE_ERR_INVALID_ARG, "chat message %zu has no role or content", i);
    chat_kind kind = CHAT_CHATML;
    GALE_TRY(resolve_kind(t, template_name, &kind));
    chat_ctx c = {.msgs = messages, .n = n, .add_generation_prompt = add_generation_prompt,
                  .bos = token_text(t, t->bos_id), .eos = token_text(t, t->eos_id)};
    char *default_system = kind == CHAT_CHATML ? default_system_turn(t->chat_template) : NULL;
    c.default_system = default_system;
    text_buf b = {0};
    gale_status status;
    switch (kind) {
    case CHAT_CHATML: status = render_chatml(&c, &b); break;
    case CHAT_LLAMA2: status = render_llama2(&c, &b); break;
    case CHAT_LLAMA3: status = render_llama3(&c, &b); break;
    case CHAT_MISTRAL: status = render_mistral(&c, &b); break;
    case CHAT_GEMMA: status = render_gemma(&c, &b, true); break;
    default: status = render_gemma(&c, &b, false); break;
    }
    free(default_system);
    if (status == GALE_OK && b.failed) status = gale_error(GALE_ERR_OOM, "chat template: out of memory");
    if (status != GALE_OK) {
        free(b.data);
        return status;
    }
    *out = b.data ? b.data : strdup("");
    return *out ? GALE_OK : gale_error(GALE_ERR_OOM, "chat template: out of memory");
}

const char *gale_chat_template_name(const gale_tokenizer *t) {
    kind_source source;
    const char *marker;
    chat_kind kind = infer_kind(t, &source, &marker);
    return source == KIND_DEFAULT ? NULL : kind_names[kind];
}

size_t gale_chat_stop_ids(const gale_tokenizer *t, const char *template_name, int32_t *ids, size_t cap) {
    size_t n = 0;
    if (t->eos_id >= 0 && n < cap) ids[n++] = t->eos_id;
    chat_kind kind = CHAT_CHATML;
    kind_source source;
    const char *marker;
    if (!template_name || !is_kind_name(template_name, &kind)) kind = infer_kind(t, &source, &marker);
    const char *eot = end_of_turn[kind];
    int32_t id = eot ? vocab_find(&t->vocab, eot, strlen(eot)) : -1;
    if (id >= 0 && id != t->eos_id && n < cap) ids[n++] = id;
    return n;
}
