/*
 * Run a program as a user runs it, for the tests of the command-line tool
 * and the examples: as a child process with its own environment, standard
 * input from a file or a terminal, output captured, bounded in time.
 */
#ifndef PL_TEST_CHILD_H
#define PL_TEST_CHILD_H

#include <stdbool.h>

typedef struct child_result {
    int status; /* exit status; -1 when killed or not run */
    char out[4096], err[4096];
} child_result;

/*
 * Run argv (argv[0] a path) with `env` (NAME=VALUE, ..., NULL) added to a
 * copy of this environment from which every API key variable and
 * PARLEY_ENDPOINT and PARLEY_LOG are removed; stdin is `input` through a
 * file in workdir, or a terminal (a pty) when tty is set. Fails the test
 * when the child cannot be run.
 */
void child_run(child_result *r, const char *workdir, const char *input, bool tty,
               const char *const *env, char *const *argv);

#endif
