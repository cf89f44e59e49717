/* Leveled logging to stderr. The CLI sets the level; the library only reports. */
#ifndef GALE_CORE_LOG_H
#define GALE_CORE_LOG_H

#include "core/status.h"

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_SILENT } log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
void log_message(log_level level, const char *fmt, ...) GALE_PRINTF(2, 3);

#define log_debug(...) log_message(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_message(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_message(LOG_WARN, __VA_ARGS__)

#endif
