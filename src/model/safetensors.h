/* safetensors reader (REFERENCE.md §5): memory-mapped, every header validated. */
#ifndef GALE_MODEL_SAFETENSORS_H
#define GALE_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/mapped_file.h"
#include "model/tensor_table.h"

/* Parses one safetensors image held in memory (the fuzz target's entry point) and adds
 * its tensors to table, pointing into buf. source names the file in messages and must
 * outlive the table. */
gale_status safetensors_parse(const uint8_t *buf, size_t size, const char *source,
                              tensor_table *table);

/* The mapped files of one checkpoint; tensors in the table point into them. */
typedef struct safetensors_set {
    mapped_file *files; /* [n_files] */
    size_t n_files;
} safetensors_set;

/* One .safetensors file. */
gale_status safetensors_open_file(const char *path, safetensors_set *set, tensor_table *table);
/* A model directory: model.safetensors, or the shards model.safetensors.index.json names
 * (every tensor of its weight_map must be in the shard it names). */
gale_status safetensors_open_dir(const char *dir, safetensors_set *set, tensor_table *table);
void safetensors_set_close(safetensors_set *set);

#endif
