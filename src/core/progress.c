#include "core/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void progress_draw(const progress_bar *bar) {
    enum { WIDTH = 30 };
    int permille = bar->last_permille;
    int filled = permille * WIDTH / 1000;
    double elapsed = now_seconds() - bar->start_seconds;
    double mib = (double)bar->done / (1024.0 * 1024.0);
    fprintf(stderr, "\r%s [", bar->label);
    for (int i = 0; i < WIDTH; i++) fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %3d%% %.0f MiB %.1f s", permille / 10, mib, elapsed);
    fflush(stderr);
}

void progress_begin(progress_bar *bar, const char *label, uint64_t total, bool quiet) {
    bar->label = label;
    bar->total = total ? total : 1;
    bar->done = 0;
    bar->last_permille = -1;
    bar->start_seconds = now_seconds();
    bar->enabled = !quiet && isatty(STDERR_FILENO);
}

void progress_advance(progress_bar *bar, uint64_t amount) {
    bar->done += amount;
    if (!bar->enabled) return;
    int permille = (int)(bar->done >= bar->total ? 1000 : bar->done * 1000 / bar->total);
    if (permille == bar->last_permille) return;
    bar->last_permille = permille;
    progress_draw(bar);
}

void progress_end(progress_bar *bar) {
    if (!bar->enabled) return;
    bar->last_permille = 1000;
    bar->done = bar->total;
    progress_draw(bar);
    fputc('\n', stderr);
}
