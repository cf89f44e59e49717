/* A one-line progress bar on stderr, drawn only when stderr is a terminal. */
#ifndef GALE_CORE_PROGRESS_H
#define GALE_CORE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct progress_bar {
    const char *label;
    uint64_t total;
    uint64_t done;
    int last_permille; /* redraw only when the shown value changes */
    double start_seconds;
    bool enabled;
} progress_bar;

void progress_begin(progress_bar *bar, const char *label, uint64_t total, bool quiet);
void progress_advance(progress_bar *bar, uint64_t amount);
void progress_end(progress_bar *bar);

#endif
