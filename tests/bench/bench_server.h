/*
 * The reference server in a child process, for the benchmarks that measure
 * the client: forked before the client starts any thread, so that the
 * server's memory and threads are not counted in the client's figures, and
 * driven through pipes so that it stops when the benchmark ends, however
 * it ends.
 */
#ifndef BENCH_SERVER_H
#define BENCH_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include "refserver.h"

typedef struct bench_server {
    pid_t pid;
    int stop_fd; /* closing it tells the child to stop */
    int port;
} bench_server;

/*
 * Fork a reference server with opts (pl_refserver_opts_init's defaults and
 * the caller's changes; the port should be 0, for a free one). Call before
 * any thread exists. Returns 0, or -1 with err set.
 */
int bench_server_fork(bench_server *srv, const pl_refserver_opts *opts, char *err,
                      size_t err_size);

/* Stop the child and wait for it. */
void bench_server_stop(bench_server *srv);

#endif
