/* gale — LLM inference runtime. The one public header.
 *
 * Handles are opaque; parameter and description structs are plain data with
 * *_default() initialisers. Every fallible call returns a gale_status and leaves a
 * readable message (which file, which tensor or key, what was expected) that
 * gale_last_error() returns on the same thread. Nothing in the library exits or
 * aborts on bad input.
 */
#ifndef GALE_H
#define GALE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GALE_VERSION "0.1.0"

typedef enum gale_status {
    GALE_OK = 0,
    GALE_ERR_INVALID_ARG,  /* caller passed something unusable */
    GALE_ERR_IO,           /* open/read/mmap failed */
    GALE_ERR_FORMAT,       /* a file or request does not follow its format */
    GALE_ERR_UNSUPPORTED,  /* valid, but gale does not handle it (architecture, dtype…) */
    GALE_ERR_MISSING,      /* a required tensor, key or file is absent */
    GALE_ERR_SHAPE,        /* a tensor's shape disagrees with the config */
    GALE_ERR_OOM,          /* an allocation failed */
    GALE_ERR_DEVICE,       /* CUDA/cuBLAS/NCCL reported an error */
    GALE_ERR_INTERNAL,     /* a bug in gale */
} gale_status;

/* Short constant name of a status ("GALE_ERR_FORMAT" → "format error"). */
const char *gale_status_str(gale_status status);
/* The message of the last failure on this thread ("" when none). */
const char *gale_last_error(void);

/* Element types of weights. Quantised types are GGUF blocks (see REFERENCE.md §6). */
typedef enum gale_dtype {
    GALE_F32 = 0,
    GALE_F16,
    GALE_BF16,
    GALE_Q8_0,
    GALE_Q4_0,
    GALE_Q4_1,
    GALE_Q4_K,
    GALE_Q5_K,
    GALE_Q6_K,
    GALE_Q5_0,
    GALE_Q5_1,
    GALE_DTYPE_COUNT,
} gale_dtype;

const char *gale_dtype_name(gale_dtype dtype);

typedef enum gale_arch {
    GALE_ARCH_LLAMA = 0,
    GALE_ARCH_MISTRAL,
    GALE_ARCH_MIXTRAL,
    GALE_ARCH_GEMMA,
    GALE_ARCH_GEMMA2,
    GALE_ARCH_GEMMA3,
} gale_arch;

const char *gale_arch_name(gale_arch arch);

typedef enum gale_rope_scaling_type {
    GALE_ROPE_SCALING_NONE = 0,
    GALE_ROPE_SCALING_LINEAR, /* inv_freq / factor */
    GALE_ROPE_SCALING_LLAMA3, /* wavelength-banded, REFERENCE.md §2 */
} gale_rope_scaling_type;

typedef struct gale_rope_scaling {
    gale_rope_scaling_type type;
    float factor;
    float low_freq_factor;  /* llama3 only */
    float high_freq_factor; /* llama3 only */
    int original_max_position_embeddings; /* llama3 only */
} gale_rope_scaling;

typedef enum gale_activation {
    GALE_ACT_SILU = 0,
    GALE_ACT_GELU_TANH,
} gale_activation;

/* What differs between layers of one model. */
typedef struct gale_layer_config {
    int window;        /* 0: full attention; W: key j visible to query i iff 0 <= i-j < W */
    float rope_theta;  /* rotary base of this layer */
    gale_rope_scaling rope_scaling;
} gale_layer_config;

#define GALE_MAX_EOS 8

/* One normalised description of a model, whatever file it came from. The engine reads
 * only this: a family is a set of switches, not a code path. */
typedef struct gale_config {
    gale_arch arch;
    char model_type[32];      /* as the source named it: "llama", "gemma3_text"… */
    int n_layers;
    int hidden;               /* H */
    int intermediate;         /* I (per expert for MoE) */
    int n_heads;
    int n_kv_heads;
    int head_dim;             /* n_heads*head_dim may differ from hidden (Gemma) */
    int vocab;                /* V */
    int max_position_embeddings;
    float rms_norm_eps;
    float norm_weight_offset; /* RMSNorm multiplies by (offset + w): 1 for HF Gemma, else 0 */
    bool embed_scale_sqrt_hidden; /* Gemma: embeddings × sqrt(H) rounded to the act dtype */
    gale_activation activation;
    float attn_scale;         /* multiplier of q·k */
    float attn_softcap;       /* 0 = none; else cap·tanh(s/cap) before the mask */
    float final_softcap;      /* 0 = none; on the final logits */
    bool sandwich_norms;      /* Gemma 2/3: post-attention and pre/post-feedforward norms */
    bool qk_norm;             /* Gemma 3: per-head RMSNorm of q and k before RoPE */
    bool tied_embeddings;     /* lm_head shares embed_tokens */
    int n_experts;            /* 0 for dense MLP */
    int n_experts_per_tok;
    int bos_id;               /* -1 when unknown */
    int n_eos;
    int eos_ids[GALE_MAX_EOS];
    gale_layer_config *layers; /* [n_layers], owned by the model */
    float *rope_freq_divisors; /* [head_dim/2] or NULL: per-frequency divisors of inv_freq that
                                  GGUF stores as the rope_freqs tensor (precomputed llama3 scaling) */
} gale_config;

/* Bytes the KV cache of one sequence of n_ctx tokens takes: K and V of every layer,
 * sliding-window layers capped at their window. */
uint64_t gale_config_kv_bytes(const gale_config *config, uint64_t n_ctx, unsigned bytes_per_elem);

typedef struct gale_model gale_model;

typedef struct gale_load_params {
    bool quiet;         /* no progress bar (it is also off when stderr is not a tty) */
    bool metadata_only; /* bind and check tensors, but do not read their data (gale info):
                           the model then serves its config and stats only */
    bool dummy_weights; /* benchmarks: only the config is read (a directory's config.json
                           or a GGUF's metadata); every weight is made up, seeded bf16 */
    uint64_t dummy_seed;
} gale_load_params;

gale_load_params gale_load_params_default(void);

/* path: a directory with config.json and model.safetensors (or a sharded set with
 * model.safetensors.index.json), or a .gguf file. */
gale_status gale_model_load(const char *path, const gale_load_params *params, gale_model **out);
void gale_model_free(gale_model *model);

const gale_config *gale_model_config(const gale_model *model);

typedef struct gale_model_stats {
    uint64_t n_params;                        /* tied embeddings counted once */
    uint64_t n_tensors;
    uint64_t bytes_by_dtype[GALE_DTYPE_COUNT]; /* as stored in the file */
    uint64_t params_by_dtype[GALE_DTYPE_COUNT];
    const char *format;                       /* "safetensors" or "gguf" */
} gale_model_stats;

gale_model_stats gale_model_get_stats(const gale_model *model);

/* ---- running the model ------------------------------------------------------------ */

/* A model and one sequence's KV cache on a backend (params->device). The model must be
 * loaded with its data (not metadata_only) and outlive the session. */
typedef struct gale_session gale_session;

typedef enum gale_device {
    GALE_DEVICE_CPU = 0, /* fp32 on the host, the reference */
    GALE_DEVICE_CUDA,    /* bf16 on the first GPU (builds with CUDA) */
} gale_device;

typedef struct gale_engine_params {
    gale_device device; /* default CPU */
    int n_threads; /* 0: one per core */
    int n_ctx;     /* longest sequence; 0: min(max_position_embeddings, 4096) */
    bool prepare_weights; /* dequantise matmul weights to fp32 copies once (4 bytes a
                             parameter; used only when that fits in half the memory).
                             Default false: weights stay as loaded and the CPU matmul
                             dequantises them as it reads them, which measured faster
                             (less memory traffic) and gives the same numbers */
    /* continuous batching (gale_engine; a session holds one sequence) */
    int max_num_seqs;           /* sequences running at once (default 256) */
    int max_num_batched_tokens; /* tokens one step computes (default 2048) */
    int kv_blocks;              /* KV memory in blocks of block_size tokens of every layer;
                                   0: kv_memory_fraction of the backend's memory, at most
                                   what max_num_seqs full contexts need */
    float kv_memory_fraction;   /* (0, 1] (default 0.3) of the host's memory on the CPU, of
                                   the GPU's free memory (weights loaded) on CUDA */
    int block_size;             /* tokens per KV block (default 16) */
    bool sample_on_host;        /* debugging: copy logits to the host and sample there even
                                   where the backend samples on the device (CUDA) */
    bool enforce_eager;         /* debugging: run decode steps op by op, never as recorded
                                   CUDA graphs (vLLM's --enforce-eager) */
} gale_engine_params;

gale_engine_params gale_engine_params_default(void);
gale_status gale_session_new(const gale_model *model, const gale_engine_params *params, gale_session **out);
void gale_session_free(gale_session *session);
/* Appends n tokens to the sequence and runs them. logits: NULL, or [n, vocab] when
 * all_logits, else [vocab] for the last token. */
gale_status gale_session_forward(gale_session *session, const int32_t *ids, size_t n, bool all_logits, float *logits);
void gale_session_reset(gale_session *session);
/* Keeps the first n tokens of the sequence, dropping the rest (a chat turn reuses the
 * conversation so far this way). False, and nothing changed, when n is past the end, or
 * when a sliding-window layer has already let go of positions the next token needs:
 * then reset and run everything. */
bool gale_session_truncate(gale_session *session, int n);
int gale_session_position(const gale_session *session);
int gale_session_context(const gale_session *session);

typedef struct gale_sampling_params {
    float temperature;        /* 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* (0, 1]; 1: off */
    float min_p;              /* [0, 1]; 0: off */
    float repetition_penalty; /* 1: off (transformers' definition) */
    float presence_penalty;   /* 0: off (OpenAI's definition) */
    float frequency_penalty;  /* 0: off */
    uint64_t seed;            /* same seed, same draws */
} gale_sampling_params;

/* llama.cpp's defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05. */
gale_sampling_params gale_sampling_params_default(void);

typedef struct gale_sampler gale_sampler;
/* Invalid values (negative temperature, top_p outside (0, 1], …) are refused by name. */
gale_status gale_sampler_new(const gale_sampling_params *params, int vocab, gale_sampler **out);
/* Picks the next token from logits[vocab] (modified in place); history are the ids so
 * far, for the penalties. */
gale_status gale_sampler_sample(gale_sampler *sampler, float *logits, const int32_t *history, size_t n_history,
                                int32_t *out);
void gale_sampler_free(gale_sampler *sampler);

/* Appends n tokens and runs them, then draws the next token under sampler from the last
 * one's logits: on the device where the backend samples (CUDA; only the id comes back),
 * else on the host (gale_sampler_sample). history[n_history]: the sequence so far, for
 * the penalties. */
gale_status gale_session_forward_sample(gale_session *session, const int32_t *ids, size_t n, gale_sampler *sampler,
                                        const int32_t *history, size_t n_history, int32_t *next);

/* ---- continuous batching --------------------------------------------------------- */

/* Many requests at once over a paged KV cache: submit requests, call gale_engine_step
 * until gale_engine_busy is false, read each step's outputs (one new token per request
 * that advanced, with its text). The model (and tokenizer) must outlive the engine. */
typedef struct gale_engine gale_engine;
typedef struct gale_tokenizer gale_tokenizer;

typedef struct gale_request {
    const int32_t *ids;     /* the prompt as token ids (copied), or NULL and: */
    size_t n_ids;
    const char *prompt;     /* text, encoded with add_special (needs the engine's tokenizer) */
    gale_sampling_params sampling;
    int max_new_tokens;     /* > 0; also cut at the context */
    bool ignore_eos;        /* generate max_new_tokens whatever the model says (benchmarks) */
    const int32_t *stop_ids; /* more ids that end the request, besides EOS and end of turn */
    size_t n_stop_ids;
    const char *const *stop; /* stop strings (copied): the text ends before the first one */
    size_t n_stop;
} gale_request;

/* Greedy, 256 new tokens, no extra stop rules. */
gale_request gale_request_default(void);

typedef enum gale_finish {
    GALE_FINISH_NONE = 0,  /* still running */
    GALE_FINISH_STOP,      /* a stop id or stop string */
    GALE_FINISH_LENGTH,    /* max_new_tokens or the context */
    GALE_FINISH_CANCELLED, /* gale_engine_cancel */
    GALE_FINISH_ERROR,     /* its text could not be made (out of memory; logged): the others go on */
} gale_finish;

typedef struct gale_output {
    uint64_t request_id;
    int32_t token;     /* the new token (a stop id included), or -1 (cancelled) */
    const char *text;  /* its text, stop strings cut (empty without a tokenizer) */
    size_t text_len;
    gale_finish finish;
} gale_output;

typedef struct gale_engine_stats {
    int waiting, running;
    uint64_t steps, preemptions, prompt_tokens, generated_tokens;
    uint64_t graph_replays;        /* decode steps run as replayed CUDA graphs */
    int kv_block_size;
    int kv_groups;                 /* layer groups by attention window */
    int kv_window[4];              /* per group: 0 full, else the window */
    int kv_blocks_total[4], kv_blocks_free[4];
} gale_engine_stats;

/* tokenizer: NULL to work on ids only; with one, outputs carry text, EOS and the chat
 * template's end of turn stop requests, and text prompts are accepted. */
gale_status gale_engine_new(const gale_model *model, const gale_tokenizer *tokenizer, const gale_engine_params *params,
                            gale_engine **out);
void gale_engine_free(gale_engine *engine);
/* Queues a request; refuses (by name, with the reason) prompts that are empty, longer
 * than the context, or that need more KV blocks than the whole pool holds. */
gale_status gale_engine_submit(gale_engine *engine, const gale_request *request, uint64_t *id);
/* Ends a request now; its last output (GALE_FINISH_CANCELLED) comes with the next step. */
gale_status gale_engine_cancel(gale_engine *engine, uint64_t id);
/* Runs one batch; *outputs (valid until the next step) holds one entry per request that
 * got a token or finished. */
gale_status gale_engine_step(gale_engine *engine, const gale_output **outputs, size_t *n_outputs);
bool gale_engine_busy(const gale_engine *engine);
gale_engine_stats gale_engine_get_stats(const gale_engine *engine);

/* ---- tokenizer ------------------------------------------------------------------- */

typedef struct gale_tokenizer gale_tokenizer;

/* A growable list of token ids; zero-initialise, free with gale_tokens_free. */
typedef struct gale_tokens {
    int32_t *ids;
    size_t count, cap;
} gale_tokens;

void gale_tokens_free(gale_tokens *tokens);

/* path: a model directory with tokenizer.json (+ tokenizer_config.json), or a .gguf file
 * (its tokenizer.ggml.* metadata). */
gale_status gale_tokenizer_load(const char *path, gale_tokenizer **out);
void gale_tokenizer_free(gale_tokenizer *tokenizer);

/* text[0..len) (UTF-8; invalid sequences are read as U+FFFD) → ids, replacing out's
 * contents. add_special adds what the tokenizer's template adds (BOS, …); added and
 * special tokens written in the text are always matched, as Hugging Face does. */
gale_status gale_tokenizer_encode(const gale_tokenizer *tokenizer, const char *text, size_t len, bool add_special,
                                  gale_tokens *out);
/* ids → UTF-8 text in a new NUL-terminated buffer the caller frees with free(). */
gale_status gale_tokenizer_decode(const gale_tokenizer *tokenizer, const int32_t *ids, size_t n, bool skip_special,
                                  char **text, size_t *len);

int32_t gale_tokenizer_vocab_size(const gale_tokenizer *tokenizer);
/* The token as the vocabulary spells it ("Ġhello", "▁hello", "<0x0A>"); not NUL-terminated. */
const char *gale_tokenizer_piece(const gale_tokenizer *tokenizer, int32_t id, size_t *len);
bool gale_tokenizer_is_special(const gale_tokenizer *tokenizer, int32_t id);
int32_t gale_tokenizer_bos(const gale_tokenizer *tokenizer); /* -1 when none */
int32_t gale_tokenizer_eos(const gale_tokenizer *tokenizer);
/* The chat template text of the source (tokenizer_config.json or GGUF), or NULL. */
const char *gale_tokenizer_chat_template(const gale_tokenizer *tokenizer);

/* ---- chat templates ----------------------------------------------------------------- */

typedef struct gale_chat_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} gale_chat_message;

/* Renders messages as the model's chat template would (apply_chat_template with
 * tokenize=False). template_name: NULL to recognise the tokenizer's own template, or
 * one of chatml, llama2, llama3, mistral, gemma (system folded into the first user
 * turn, as Gemma 3), gemma2 (system refused, as Gemma 1/2). A model without a template
 * gets the format its vocabulary's turn markers name (<start_of_turn>: gemma,
 * <|start_header_id|>: llama3, <|im_start|>: chatml), with a warning; an unrecognised
 * template, or no template and no marker, warns and falls back to chatml. The text already holds any BOS the template writes:
 * encode it with add_special = false. *out is freed with free(). */
gale_status gale_chat_render(const gale_tokenizer *tokenizer, const char *template_name,
                             const gale_chat_message *messages, size_t n, bool add_generation_prompt, char **out);
/* The built-in the tokenizer's template was recognised as (without a template: the one
 * its turn markers name), or NULL. */
const char *gale_chat_template_name(const gale_tokenizer *tokenizer);
/* Ids that end an assistant turn: EOS and the template's end-of-turn token. */
size_t gale_chat_stop_ids(const gale_tokenizer *tokenizer, const char *template_name, int32_t *ids, size_t cap);

/* Streaming decoder: feed ids one at a time, get text that never ends inside a UTF-8
 * character (bytes are held until the character completes). */
typedef struct gale_detokenizer gale_detokenizer;

gale_status gale_detokenizer_new(const gale_tokenizer *tokenizer, bool skip_special, gale_detokenizer **out);
/* Returns the new text for id (valid until the next call; may be empty). */
gale_status gale_detokenizer_push(gale_detokenizer *d, int32_t id, const char **text, size_t *len);
/* End of stream: held bytes that never completed come out as U+FFFD. */
gale_status gale_detokenizer_flush(gale_detokenizer *d, const char **text, size_t *len);
void gale_detokenizer_free(gale_detokenizer *d);

#ifdef __cplusplus
}
#endif
#endif /* GALE_H */
