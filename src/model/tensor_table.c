#include "model/tensor_table.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

gale_status tensor_table_add(tensor_table *table, const char *name, const gale_tensor *tensor,
                             const char *source, const char *unsupported_dtype) {
    if (table->count == table->cap) {
        size_t cap = table->cap ? table->cap * 2 : 64;
        tensor_entry *grown = realloc(table->entries, cap * sizeof *grown);
        if (!grown) return gale_error(GALE_ERR_OOM, "tensor index: out of memory");
        table->entries = grown;
        table->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) return gale_error(GALE_ERR_OOM, "tensor index: out of memory");
    table->entries[table->count++] = (tensor_entry){
        .name = copy, .tensor = *tensor, .source = source, .unsupported_dtype = unsupported_dtype};
    return GALE_OK;
}

static int compare_entries(const void *a, const void *b) {
    return strcmp(((const tensor_entry *)a)->name, ((const tensor_entry *)b)->name);
}

gale_status tensor_table_finish(tensor_table *table) {
    if (table->count) qsort(table->entries, table->count, sizeof *table->entries, compare_entries);
    for (size_t i = 1; i < table->count; i++) {
        if (strcmp(table->entries[i - 1].name, table->entries[i].name) == 0)
            return gale_error(GALE_ERR_FORMAT, "tensor '%s' appears twice (in %s and %s)",
                              table->entries[i].name, table->entries[i - 1].source,
                              table->entries[i].source);
    }
    return GALE_OK;
}

static int compare_name_to_entry(const void *key, const void *entry) {
    return strcmp((const char *)key, ((const tensor_entry *)entry)->name);
}

tensor_entry *tensor_table_find(const tensor_table *table, const char *name) {
    if (!table->count) return NULL;
    return bsearch(name, table->entries, table->count, sizeof *table->entries,
                   compare_name_to_entry);
}

gale_status tensor_table_own(tensor_table *table, void *buffer) {
    if (table->n_owned == table->cap_owned) {
        size_t cap = table->cap_owned ? table->cap_owned * 2 : 16;
        void **grown = realloc(table->owned, cap * sizeof *grown);
        if (!grown) {
            free(buffer);
            return gale_error(GALE_ERR_OOM, "tensor index: out of memory");
        }
        table->owned = grown;
        table->cap_owned = cap;
    }
    table->owned[table->n_owned++] = buffer;
    return GALE_OK;
}

void tensor_table_free(tensor_table *table) {
    for (size_t i = 0; i < table->count; i++) free(table->entries[i].name);
    for (size_t i = 0; i < table->n_owned; i++) free(table->owned[i]);
    free(table->entries);
    free(table->owned);
    memset(table, 0, sizeof *table);
}
