#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { ERROR_MESSAGE_CAP = 2048 };

static _Thread_local char last_error[ERROR_MESSAGE_CAP];

const char *gale_status_str(gale_status status) {
    switch (status) {
    case GALE_OK: return "ok";
    case GALE_ERR_INVALID_ARG: return "invalid argument";
    case GALE_ERR_IO: return "I/O error";
    case GALE_ERR_FORMAT: return "format error";
    case GALE_ERR_UNSUPPORTED: return "unsupported";
    case GALE_ERR_MISSING: return "missing";
    case GALE_ERR_SHAPE: return "shape mismatch";
    case GALE_ERR_OOM: return "out of memory";
    case GALE_ERR_DEVICE: return "device error";
    case GALE_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *gale_last_error(void) { return last_error; }

void gale_error_clear(void) { last_error[0] = '\0'; }

gale_status gale_error(gale_status status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    return status;
}

gale_status gale_error_prefix(gale_status status, const char *fmt, ...) {
    char previous[ERROR_MESSAGE_CAP];
    memcpy(previous, last_error, sizeof previous);
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    if (n >= 0 && (size_t)n < sizeof last_error)
        snprintf(last_error + n, sizeof last_error - (size_t)n, "%s", previous);
    return status;
}
