/* The loading progress bar: drawn on a terminal, silent on a pipe or when quiet. A
 * pseudo-terminal stands in for the user's terminal. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/progress.h"

/* Points stderr at fd for the duration of fn, then returns what the reader saw. */
static size_t run_with_stderr(int write_fd, int read_fd, void (*fn)(bool), bool quiet, char *out, size_t cap) {
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(write_fd, STDERR_FILENO), 0);
    fn(quiet);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(write_fd);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(read_fd, out + len, cap - 1 - len)) > 0) len += (size_t)n;
    out[len] = '\0';
    return len;
}

static void draw_bar(bool quiet) {
    progress_bar bar;
    progress_begin(&bar, "loading", 4 << 20, quiet);
    for (int i = 0; i < 4; i++) progress_advance(&bar, 1 << 20);
    progress_end(&bar);
}

static int open_pty(int *slave) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert_geq(master, 0, "no pseudo-terminal available");
    cr_assert_eq(grantpt(master), 0);
    cr_assert_eq(unlockpt(master), 0);
    *slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    cr_assert_geq(*slave, 0);
    return master;
}

Test(progress, draws_on_a_terminal) {
    int slave, master = open_pty(&slave);
    char seen[4096];
    run_with_stderr(slave, master, draw_bar, false, seen, sizeof seen);
    cr_assert(strstr(seen, "loading [") != NULL, "no bar drawn: \"%s\"", seen);
    cr_assert(strstr(seen, " 25%") != NULL, "no 25%% step: \"%s\"", seen);
    cr_assert(strstr(seen, "100% 4 MiB") != NULL, "no final 100%% with the size: \"%s\"", seen);
    close(master);
}

Test(progress, quiet_on_a_terminal_when_asked) {
    int slave, master = open_pty(&slave);
    /* nothing should arrive, so read without blocking */
    char seen[256];
    int flags = fcntl(master, F_GETFL);
    fcntl(master, F_SETFL, flags | O_NONBLOCK);
    cr_assert_eq(run_with_stderr(slave, master, draw_bar, true, seen, sizeof seen), 0, "quiet bar printed \"%s\"", seen);
    close(master);
}

Test(progress, silent_on_a_pipe) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    char seen[256];
    cr_assert_eq(run_with_stderr(fds[1], fds[0], draw_bar, false, seen, sizeof seen), 0, "bar printed to a pipe");
    close(fds[0]);
}
