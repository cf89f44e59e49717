/* gale_model_load: a Hugging Face directory or a GGUF file → config + bound weights. */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/progress.h"
#include "core/status.h"
#include "model/config.h"
#include "model/gguf_names.h"
#include "model/quant.h"
#include "model/safetensors.h"

struct gale_model {
    char *path;
    bool is_gguf;
    gale_config config;
    tensor_table table;
    safetensors_set safetensors; /* when !is_gguf */
    gguf_file gguf;              /* when is_gguf */
    model_weights weights;
};

gale_load_params gale_load_params_default(void) {
    return (gale_load_params){.quiet = false, .metadata_only = false};
}

static bool looks_like_gguf(const char *path) {
    size_t len = strlen(path);
    if (len >= 5 && strcmp(path + len - 5, ".gguf") == 0) return true;
    mapped_file file;
    if (mapped_file_open(path, &file) != GALE_OK) return false;
    bool magic = file.size >= 4 && memcmp(file.data, "GGUF", 4) == 0;
    mapped_file_close(&file);
    return magic;
}

/* GGUF stores llama3-style rope scaling precomputed as divisors of inv_freq. */
static gale_status take_rope_freqs(gale_model *m) {
    tensor_entry *entry = tensor_table_find(&m->table, "rope_freqs.weight");
    if (!entry) return GALE_OK;
    const int half = m->config.head_dim / 2;
    if (entry->tensor.n_dims != 1 || entry->tensor.shape[0] != half)
        return gale_error(GALE_ERR_SHAPE, "%s: tensor 'rope_freqs.weight' must have %d values", m->path, half);
    m->config.rope_freq_divisors = malloc((size_t)half * sizeof(float));
    if (!m->config.rope_freq_divisors) return gale_error(GALE_ERR_OOM, "%s: out of memory", m->path);
    /* not a parameter of the network: left unbound, so stats do not count it */
    return tensor_to_f32(&entry->tensor, m->config.rope_freq_divisors);
}

static gale_status open_gguf(gale_model *m, bool metadata_only) {
    m->is_gguf = true;
    GALE_TRY(gguf_open(m->path, &m->gguf));
    GALE_TRY(config_from_gguf(&m->gguf, &m->config));
    GALE_TRY(gguf_build_tensor_table(&m->gguf, &m->config, metadata_only, &m->table));
    return take_rope_freqs(m);
}

static gale_status open_hf_dir(gale_model *m) {
    GALE_TRY(config_load_hf_dir(m->path, &m->config));
    return safetensors_open_dir(m->path, &m->safetensors, &m->table);
}

/* Reads every bound weight once, in file order, so the page cache holds the model
 * before the first token and a progress bar shows the disk work. */
static void prefault_weights(gale_model *m, bool quiet) {
    uint64_t total = 0;
    for (size_t i = 0; i < m->table.count; i++)
        if (m->table.entries[i].bound) total += m->table.entries[i].tensor.nbytes;
    progress_bar bar;
    progress_begin(&bar, "loading", total, quiet);
    const long page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < m->table.count; i++) {
        const tensor_entry *e = &m->table.entries[i];
        if (!e->bound) continue;
        const uint8_t *data = e->tensor.data;
        for (uint64_t off = 0; off < e->tensor.nbytes; off += (uint64_t)page) sink ^= data[off];
        progress_advance(&bar, e->tensor.nbytes);
    }
    (void)sink;
    progress_end(&bar);
}

/* Config only, weights made up (gale_load_params.dummy_weights). */
static gale_status load_dummy(gale_model *m, const gale_load_params *params) {
    if (path_is_directory(m->path)) GALE_TRY(config_load_hf_dir(m->path, &m->config));
    else if (looks_like_gguf(m->path)) GALE_TRY(open_gguf(m, true));
    else return gale_error(GALE_ERR_IO, "%s: dummy weights need a directory with config.json or a GGUF file", m->path);
    gale_status status = weights_bind_dummy(&m->config, params->dummy_seed, &m->table, &m->weights);
    return status == GALE_OK ? GALE_OK : gale_error_prefix(status, "%s: ", m->path);
}

static gale_status load(gale_model *m, const gale_load_params *params) {
    if (params->dummy_weights) return load_dummy(m, params);
    if (path_is_directory(m->path))
        GALE_TRY(open_hf_dir(m));
    else if (looks_like_gguf(m->path))
        GALE_TRY(open_gguf(m, params->metadata_only));
    else if (!path_exists(m->path))
        return gale_error(GALE_ERR_IO, "%s: no such file or directory", m->path);
    else
        return gale_error(GALE_ERR_FORMAT, "%s: neither a model directory (config.json + safetensors) nor a GGUF file",
                          m->path);
    gale_status status = weights_bind(&m->config, &m->table, &m->weights);
    if (status != GALE_OK) return gale_error_prefix(status, "%s: ", m->path);
    if (!params->metadata_only) prefault_weights(m, params->quiet);
    return GALE_OK;
}

gale_status gale_model_load(const char *path, const gale_load_params *params, gale_model **out) {
    if (!path || !out) return gale_error(GALE_ERR_INVALID_ARG, "gale_model_load: path and out are required");
    *out = NULL;
    gale_load_params defaults = gale_load_params_default();
    if (!params) params = &defaults;
    gale_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return gale_error(GALE_ERR_OOM, "%s: out of memory", path);
    }
    gale_status status = load(m, params);
    if (status != GALE_OK) {
        gale_model_free(m);
        return status;
    }
    *out = m;
    return GALE_OK;
}

void gale_model_free(gale_model *m) {
    if (!m) return;
    weights_free(&m->weights);
    tensor_table_free(&m->table);
    safetensors_set_close(&m->safetensors);
    gguf_close(&m->gguf);
    config_free(&m->config);
    free(m->path);
    free(m);
}

const gale_config *gale_model_config(const gale_model *m) { return &m->config; }

gale_model_stats gale_model_get_stats(const gale_model *m) {
    gale_model_stats stats = {.format = m->is_gguf ? "gguf" : "safetensors"};
    for (size_t i = 0; i < m->table.count; i++) {
        const tensor_entry *e = &m->table.entries[i];
        if (!e->bound) continue;
        uint64_t numel = tensor_numel(&e->tensor);
        stats.n_tensors++;
        stats.n_params += numel;
        stats.params_by_dtype[e->tensor.dtype] += numel;
        stats.bytes_by_dtype[e->tensor.dtype] += e->tensor.nbytes;
    }
    for (size_t i = 0; i < m->weights.n_synthetic; i++) { /* dummy weights */
        const gale_tensor *t = m->weights.synthetic[i];
        stats.n_tensors++;
        stats.n_params += tensor_numel(t);
        stats.params_by_dtype[t->dtype] += tensor_numel(t);
        stats.bytes_by_dtype[t->dtype] += t->nbytes;
    }
    if (m->weights.n_synthetic) stats.format = "dummy";
    return stats;
}

const model_weights *model_get_weights(const gale_model *m) { return &m->weights; }
const tensor_table *model_get_tensor_table(const gale_model *m) { return &m->table; }
