/*
 * A program the test talks to while it runs: its stdin a pipe the test
 * writes lines to, its stdout a pipe the test reads lines from (with a
 * bound on every wait), its stderr a file shown when a test fails. For the
 * tests whose children must be killed or paused mid-run (store fleets).
 */
#ifndef PL_TEST_PIPED_CHILD_H
#define PL_TEST_PIPED_CHILD_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct piped_child {
    pid_t pid;
    FILE *in;          /* its stdin */
    int out_fd;        /* its stdout */
    char pending[4096]; /* read from out_fd, not yet returned as a line */
    size_t pending_len;
    char err_path[64]; /* its stderr */
} piped_child;

/* Start argv (argv[0] a path) with env (NAME=VALUE, ..., NULL) added to
 * this environment. Fails the test when it cannot be started. */
void piped_child_start(piped_child *c, const char *const *env, char *const *argv);

/* Write a line to its stdin (a newline is added) and flush it. */
void piped_child_say(piped_child *c, const char *line);

/* The next line of its stdout, without its newline, into line; false when
 * none came within timeout_ms or the pipe ended. */
bool piped_child_line(piped_child *c, char *line, size_t size, int timeout_ms);

/* Wait up to timeout_ms for its exit: its exit status, 128 + the signal
 * that killed it, or -1 when it did not end (then it is killed). */
int piped_child_wait(piped_child *c, int timeout_ms);

/* Send a signal (SIGKILL, SIGSTOP, SIGCONT). */
void piped_child_signal(piped_child *c, int sig);

/* Print its stderr to ours (for a failing test's report). */
void piped_child_show_stderr(const piped_child *c);

/* Close the pipes and remove the stderr file; the child must have ended. */
void piped_child_free(piped_child *c);

#endif
