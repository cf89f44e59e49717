#define _GNU_SOURCE /* memmem */
#include "engine/stop_text.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

void stop_text_init(stop_text *f, const char *const *stops, size_t n_stops) {
    memset(f, 0, sizeof *f);
    f->stops = stops;
    f->n_stops = n_stops;
}

void stop_text_free(stop_text *f) {
    free(f->held);
    free(f->out);
    memset(f, 0, sizeof *f);
}

static gale_status append(char **buf, size_t *len, size_t *cap, const char *text, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t grown_cap = (*len + n + 1) * 2;
        char *grown = realloc(*buf, grown_cap);
        if (!grown) return gale_error(GALE_ERR_OOM, "stop strings: out of memory");
        *buf = grown;
        *cap = grown_cap;
    }
    if (n) memcpy(*buf + *len, text, n);
    *len += n;
    (*buf)[*len] = '\0';
    return GALE_OK;
}

static gale_status release(stop_text *f, size_t n) {
    if (f->taken) {
        f->out_len = 0;
        f->taken = false;
    }
    GALE_TRY(append(&f->out, &f->out_len, &f->out_cap, f->held, n));
    memmove(f->held, f->held + n, f->held_len - n);
    f->held_len -= n;
    return GALE_OK;
}

/* The longest tail of the held text that is a proper prefix of some stop string. */
static size_t possible_prefix(const stop_text *f) {
    size_t best = 0;
    for (size_t s = 0; s < f->n_stops; s++) {
        size_t n = strlen(f->stops[s]);
        for (size_t k = n - 1; k > best; k--)
            if (k <= f->held_len && memcmp(f->held + f->held_len - k, f->stops[s], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

gale_status stop_text_push(stop_text *f, const char *text, size_t len) {
    if (f->stopped) return release(f, 0);
    GALE_TRY(append(&f->held, &f->held_len, &f->held_cap, text, len));
    if (f->n_stops == 0) return release(f, f->held_len);
    /* the earliest stop string wins */
    const char *first = NULL;
    for (size_t s = 0; s < f->n_stops; s++) {
        const char *hit = memmem(f->held, f->held_len, f->stops[s], strlen(f->stops[s]));
        if (hit && (!first || hit < first)) first = hit;
    }
    if (first) {
        f->stopped = true;
        GALE_TRY(release(f, (size_t)(first - f->held)));
        f->held_len = 0;
        return GALE_OK;
    }
    return release(f, f->held_len - possible_prefix(f));
}

gale_status stop_text_finish(stop_text *f) { return release(f, f->stopped ? 0 : f->held_len); }

const char *stop_text_take(stop_text *f, size_t *len) {
    if (f->taken) f->out_len = 0;
    *len = f->out_len;
    f->taken = true;
    return f->out ? f->out : "";
}
