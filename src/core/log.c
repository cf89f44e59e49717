#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

static log_level current_level = LOG_WARN;

void log_set_level(log_level level) { current_level = level; }
log_level log_get_level(void) { return current_level; }

void log_message(log_level level, const char *fmt, ...) {
    if (level < current_level) return;
    static const char *const prefix[] = {"debug", "info", "warning", "error", ""};
    fprintf(stderr, "gale: %s: ", prefix[level]);
    va_list args;
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
}
