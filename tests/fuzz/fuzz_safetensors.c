/* Fuzz target: a safetensors image → tensor index. Must never crash, leak or read out
 * of bounds, whatever the header says. */
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "model/quant.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tensor_table table = {0};
    if (safetensors_parse(data, size, "fuzz.safetensors", &table) == GALE_OK &&
        tensor_table_finish(&table) == GALE_OK) {
        /* every accepted tensor must be readable in full */
        for (size_t i = 0; i < table.count; i++) {
            const gale_tensor *t = &table.entries[i].tensor;
            if (table.entries[i].unsupported_dtype || tensor_numel(t) > (1u << 16)) continue;
            float out[1 << 16];
            tensor_to_f32(t, out);
        }
    }
    tensor_table_free(&table);
    return 0;
}
