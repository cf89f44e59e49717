#include "core/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"

/* Text files gale reads (configs, indexes, tokenizers) are small; a limit keeps a
 * wrong path (a weights file given as config) from allocating gigabytes. */
enum { TEXT_FILE_MAX = 256 << 20 };

gale_status mapped_file_open(const char *path, mapped_file *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return gale_error(GALE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return gale_error(GALE_ERR_IO, "%s: not a regular file", path);
    }
    out->path = strdup(path);
    if (!out->path) {
        close(fd);
        return gale_error(GALE_ERR_OOM, "%s: out of memory", path);
    }
    out->size = (size_t)st.st_size;
    if (out->size > 0) {
        void *map = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            free(out->path);
            memset(out, 0, sizeof *out);
            return gale_error(GALE_ERR_IO, "%s: mmap failed: %s", path, strerror(err));
        }
        out->data = map;
    }
    close(fd);
    return GALE_OK;
}

void mapped_file_close(mapped_file *file) {
    if (file->data) munmap((void *)file->data, file->size);
    free(file->path);
    memset(file, 0, sizeof *file);
}

gale_status read_text_file(const char *path, char **out_text, size_t *out_len) {
    *out_text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return gale_error(GALE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            size_t new_cap = cap ? cap * 2 : 8192;
            char *grown = realloc(buf, new_cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return gale_error(GALE_ERR_OOM, "%s: out of memory", path);
            }
            buf = grown;
            cap = new_cap;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (len > TEXT_FILE_MAX) {
            free(buf);
            fclose(f);
            return gale_error(GALE_ERR_FORMAT, "%s: larger than %d MiB, not a text file gale reads",
                              path, TEXT_FILE_MAX >> 20);
        }
        if (n == 0) break;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return gale_error(GALE_ERR_IO, "%s: read error", path);
    }
    buf[len] = '\0';
    *out_text = buf;
    if (out_len) *out_len = len;
    return GALE_OK;
}

bool path_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    size_t pos = a;
    if (a > 0 && dir[a - 1] != '/') s[pos++] = '/';
    memcpy(s + pos, name, b + 1);
    return s;
}
