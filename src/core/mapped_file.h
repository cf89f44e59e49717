/* Read-only memory mapping of a whole file. Weights stay in the page cache and are
 * touched only when used, so loading a large checkpoint costs no copy. */
#ifndef GALE_CORE_MAPPED_FILE_H
#define GALE_CORE_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "gale.h"

typedef struct mapped_file {
    char *path;          /* owned copy, for messages */
    const uint8_t *data; /* [size]; NULL when size == 0 */
    size_t size;
} mapped_file;

gale_status mapped_file_open(const char *path, mapped_file *out);
void mapped_file_close(mapped_file *file);

/* Reads a whole (small, text) file into a NUL-terminated heap buffer. */
gale_status read_text_file(const char *path, char **out_text, size_t *out_len);

bool path_is_directory(const char *path);
bool path_exists(const char *path);
/* dir + "/" + name in a new heap string (NULL on OOM). */
char *path_join(const char *dir, const char *name);

#endif
