/* GGUF tensors under Hugging Face names, shapes ([out, in]) and Q/K row order. */
#ifndef GALE_MODEL_GGUF_NAMES_H
#define GALE_MODEL_GGUF_NAMES_H

#include "model/gguf.h"
#include "model/tensor_table.h"

/* Fills and finishes table from the file's tensors. Q/K rows of llama-architecture files
 * are copied back into Hugging Face order (copies owned by the table); with
 * metadata_only those tensors get data = NULL instead, so nothing reads them in the
 * wrong order and no copy is paid for. */
gale_status gguf_build_tensor_table(const gguf_file *file, const gale_config *config, bool metadata_only,
                                    tensor_table *table);

#endif
