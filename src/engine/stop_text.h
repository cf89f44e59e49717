/* Stop strings over streamed text: text that may be the start of a stop string is held
 * back until the next piece tells; a complete stop string ends the stream, cutting it and
 * everything after. Used by gale_engine and the CLI alike. */
#ifndef GALE_ENGINE_STOP_TEXT_H
#define GALE_ENGINE_STOP_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "gale.h"

typedef struct stop_text {
    const char *const *stops; /* borrowed; n_stops of them, non-empty */
    size_t n_stops;
    char *held; /* text that may begin a stop string */
    size_t held_len, held_cap;
    char *out;  /* text released since the last take */
    size_t out_len, out_cap;
    bool taken, stopped;
} stop_text;

void stop_text_init(stop_text *f, const char *const *stops, size_t n_stops);
void stop_text_free(stop_text *f);
/* Feeds the next piece; text before a stop string, or that can no longer begin one, is
 * released. */
gale_status stop_text_push(stop_text *f, const char *text, size_t len);
/* End of the stream: held text is released (unless a stop string ended it). */
gale_status stop_text_finish(stop_text *f);
/* Text released since the last take (NUL-terminated, valid until the next push). */
const char *stop_text_take(stop_text *f, size_t *len);

#endif
