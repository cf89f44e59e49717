/* Conversion of stored weights (F32, F16, BF16 and GGUF blocks, REFERENCE.md §6) to
 * fp32 or bf16. This is the CPU reference of kernels/dequant.cu. */
#ifndef GALE_MODEL_QUANT_H
#define GALE_MODEL_QUANT_H

#include <stdint.h>

#include "core/tensor.h"
#include "gale.h"

/* n values of src encoded as dtype (n a whole number of blocks) → dst[n]. */
gale_status quant_dequantize_f32(gale_dtype dtype, const uint8_t *src, uint64_t n, float *dst);
gale_status quant_dequantize_bf16(gale_dtype dtype, const uint8_t *src, uint64_t n, uint16_t *dst);

/* Whole tensor → dst[tensor_numel(t)]. */
gale_status tensor_to_f32(const gale_tensor *t, float *dst);

#endif
