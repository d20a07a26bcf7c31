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

typedef struct bench_server {
    pid_t pid;
    int stop_fd; /* closing it tells the child to stop */
    int port;
} bench_server;

/*
 * Fork a quiet reference server on a free loopback port that requires
 * api_key, waits latency_ms before the first piece and token_ms between
 * pieces, and cuts replies into pieces of chunk_bytes (0: its default).
 * Call before any thread exists. Returns 0, or -1 with err set.
 */
int bench_server_fork(bench_server *srv, const char *api_key, unsigned latency_ms,
                      unsigned token_ms, unsigned chunk_bytes, char *err,
                      size_t err_size);

/* Stop the child and wait for it. */
void bench_server_stop(bench_server *srv);

#endif
