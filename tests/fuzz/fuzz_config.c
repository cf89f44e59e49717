/* Fuzz target: config.json text → gale_config (the same bytes also as a
 * generation_config.json). Must never crash or leak. */
#include <stddef.h>
#include <stdint.h>

#include "model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gale_config config;
    if (config_parse_hf((const char *)data, size, "fuzz/config.json", &config) == GALE_OK) {
        config_merge_generation_config((const char *)data, size, "fuzz/generation_config.json", &config);
        float inv_freq[2048];
        if (config.head_dim / 2 <= 2048)
            for (int i = 0; i < config.n_layers; i++) config_rope_inv_freq(&config, i, inv_freq);
        gale_config_kv_bytes(&config, 4096, 2);
        config_free(&config);
    }
    return 0;
}
