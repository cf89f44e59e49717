#include "core/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"

gale_status npy_write_f32(const char *path, const float *data, const int64_t *shape, int n_dims) {
    char header[256];
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int d = 0; d < n_dims; d++) {
        len += snprintf(header + len, sizeof header - (size_t)len, "%lld,%s", (long long)shape[d],
                        d + 1 < n_dims ? " " : "");
        count *= (size_t)shape[d];
    }
    len += snprintf(header + len, sizeof header - (size_t)len, "), }");
    /* magic (6) + version (2) + length (2) + header, padded with spaces to 64, ends in \n */
    while ((10 + len + 1) % 64 != 0) header[len++] = ' ';
    header[len++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) return gale_error(GALE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    bool ok = fwrite(preamble, 1, 10, f) == 10 && fwrite(header, 1, (size_t)len, f) == (size_t)len &&
              fwrite(data, sizeof(float), count, f) == count; /* x86/ARM hosts are little-endian */
    ok = (fclose(f) == 0) && ok;
    return ok ? GALE_OK : gale_error(GALE_ERR_IO, "%s: write failed", path);
}

static gale_status parse_shape(const char *header, const char *path, int64_t *shape, int *n_dims, int max_dims) {
    const char *p = strstr(header, "'shape': (");
    if (!p) return gale_error(GALE_ERR_FORMAT, "%s: npy header has no shape", path);
    p += 10;
    *n_dims = 0;
    while (*p && *p != ')') {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) break;
        if (*n_dims == max_dims || v < 0) return gale_error(GALE_ERR_FORMAT, "%s: npy shape not supported", path);
        shape[(*n_dims)++] = v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return GALE_OK;
}

gale_status npy_read_f32(const char *path, float **data, int64_t *shape, int *n_dims, int max_dims) {
    *data = NULL;
    mapped_file f;
    GALE_TRY(mapped_file_open(path, &f));
    gale_status status = GALE_OK;
    if (f.size < 10 || memcmp(f.data, "\x93NUMPY", 6) != 0 || f.data[6] != 1) {
        status = gale_error(GALE_ERR_FORMAT, "%s: not a version 1 .npy file", path);
    } else {
        size_t header_len = (size_t)f.data[8] | ((size_t)f.data[9] << 8);
        char header[1024] = {0};
        if (10 + header_len > f.size || header_len >= sizeof header) {
            status = gale_error(GALE_ERR_FORMAT, "%s: npy header length is wrong", path);
        } else {
            memcpy(header, f.data + 10, header_len);
            bool f32 = strstr(header, "'<f4'") != NULL, f16 = strstr(header, "'<f2'") != NULL;
            if ((!f32 && !f16) || strstr(header, "'fortran_order': True"))
                status = gale_error(GALE_ERR_UNSUPPORTED, "%s: only C-order <f4 / <f2 arrays are read", path);
            if (status == GALE_OK) status = parse_shape(header, path, shape, n_dims, max_dims);
            size_t count = 1;
            for (int d = 0; status == GALE_OK && d < *n_dims; d++) count *= (size_t)shape[d];
            size_t elem = f32 ? 4 : 2;
            if (status == GALE_OK && 10 + header_len + count * elem > f.size)
                status = gale_error(GALE_ERR_FORMAT, "%s: npy data is shorter than its shape", path);
            if (status == GALE_OK && !(*data = malloc(count * sizeof(float) + 1)))
                status = gale_error(GALE_ERR_OOM, "%s: out of memory", path);
            const uint8_t *src = f.data + 10 + header_len;
            for (size_t i = 0; status == GALE_OK && i < count; i++)
                (*data)[i] = f32 ? load_f32(src + 4 * i) : f16_to_f32(load_u16(src + 2 * i));
        }
    }
    mapped_file_close(&f);
    return status;
}
