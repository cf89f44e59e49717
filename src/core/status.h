/* Error reporting inside the library: set a message, return the status. */
#ifndef GALE_CORE_STATUS_H
#define GALE_CORE_STATUS_H

#include "gale.h"

#if defined(__GNUC__)
#define GALE_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define GALE_PRINTF(fmt_index, first_arg)
#endif

/* Records a formatted message as this thread's last error and returns status, so a
 * failure path reads `return gale_error(GALE_ERR_FORMAT, "%s: ...", path);`. */
gale_status gale_error(gale_status status, const char *fmt, ...) GALE_PRINTF(2, 3);

/* Prefixes the current message with more context ("loading X: " + message). */
gale_status gale_error_prefix(gale_status status, const char *fmt, ...) GALE_PRINTF(2, 3);

void gale_error_clear(void);

#define GALE_TRY(expr)                                                                      \
    do {                                                                                    \
        gale_status gale_try_status_ = (expr);                                              \
        if (gale_try_status_ != GALE_OK) return gale_try_status_;                           \
    } while (0)

#endif
