/* The normalised model description (gale_config in gale.h), from a Hugging Face
 * config.json or from GGUF metadata. Families differ only in the switches set here. */
#ifndef GALE_MODEL_CONFIG_H
#define GALE_MODEL_CONFIG_H

#include <stddef.h>

#include "gale.h"
#include "model/gguf.h"

/* --- config.c: shared by both sources --- */
/* Allocates config->layers for config->n_layers (zeroed). */
gale_status config_alloc_layers(gale_config *config, const char *source);
void config_free(gale_config *config);
/* Sizes positive, GQA divisible, windows and rope settings sane. */
gale_status config_validate(const gale_config *config, const char *source);
/* Rotary inverse frequencies of one layer with its scaling applied, as transformers
 * computes them in fp32: out[head_dim/2]. */
void config_rope_inv_freq(const gale_config *config, int layer, float *out);
/* Adds an eos id unless present (ids beyond GALE_MAX_EOS are dropped with a warning). */
void config_add_eos(gale_config *config, int id);

/* --- config_hf.c --- */
/* Parses config.json text (source names the file in messages). */
gale_status config_parse_hf(const char *json, size_t len, const char *source, gale_config *out);
/* Merges generation_config.json: its eos_token_id (int or list) and bos_token_id. */
gale_status config_merge_generation_config(const char *json, size_t len, const char *source,
                                           gale_config *config);
/* config.json (required) and generation_config.json (optional) of a model directory. */
gale_status config_load_hf_dir(const char *dir, gale_config *out);

/* --- config_gguf.c --- */
/* From the metadata of architectures "llama" (also Mistral and Mixtral GGUFs) and
 * "gemma3". Other architectures give GALE_ERR_UNSUPPORTED. */
gale_status config_from_gguf(const gguf_file *file, gale_config *out);

#endif
