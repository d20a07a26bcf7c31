/*
 * The hostile server of the I/O fuzz targets (fuzz_ws, fuzz_http): a plain
 * TCP listener on 127.0.0.1 with its own thread, which hands each accepted
 * connection to the target's handler, and the blocking socket helpers the
 * handlers are written with. Every wait is bounded, so that a client that
 * stops reading or writing costs an iteration time, never the run.
 *
 * One server and one parley client live for the whole process; the target
 * moves the server through the phases of an iteration (fz_phase) and resets
 * between inputs. Each connection is handled on a thread of its own.
 */
#ifndef FUZZ_SERVER_H
#define FUZZ_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Say what failed on stderr and in $FUZZ_FINDINGS_LOG (when set: in fork
 * mode libFuzzer keeps only one line of a crashed job's output), then
 * abort, which libFuzzer reports with the stack. */
__attribute__((noreturn, format(printf, 1, 2))) void fz_fail(const char *fmt, ...);

#define FZ_CHECK(cond)                                                       \
    do {                                                                     \
        if (!(cond))                                                         \
            fz_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);   \
    } while (0)

/* Where an iteration stands, as the server sees it. */
typedef enum fz_phase {
    FZ_IDLE,  /* between inputs: every connection is refused (HTTP 400) */
    FZ_SERVE, /* connections are answered with the input */
    FZ_DRAIN  /* the input was served: later connections are refused */
} fz_phase;

/* Runs on a thread of its own for each accepted connection; the server
 * closes fd when it returns. */
typedef void fz_conn_fn(int fd, void *arg);

/* Listen on an ephemeral port of 127.0.0.1 and serve from a new thread;
 * aborts when that fails (a fuzz target cannot run without it). */
unsigned short fz_server_start(fz_conn_fn *fn, void *arg);

/* Milliseconds on the monotonic clock. */
int64_t fz_now_ms(void);

/* Wait until fd is readable (or the peer closed) or the deadline passed. */
bool fz_wait_readable(int fd, int64_t deadline_ms);

/* Read into buf until it holds "\r\n\r\n"; returns the length of the head
 * (the terminator included) and the bytes read in all in *got, or -1 when
 * the peer closed, the deadline passed or the head does not fit. */
long fz_read_head(int fd, char *buf, size_t size, size_t *got, int64_t deadline_ms);

/* Read and discard up to n bytes; false when the peer closed or the
 * deadline passed first. */
bool fz_skip(int fd, uint64_t n, int64_t deadline_ms);

/* Read exactly n bytes; false when the peer closed or the deadline passed. */
bool fz_read_exact(int fd, void *buf, size_t n, int64_t deadline_ms);

/* Write all of data (or up to a failure: the peer may have gone, which is
 * the client's right); pieces of `piece` bytes each when piece > 0. */
void fz_write_all(int fd, const void *data, size_t len, size_t piece);

/* Half-close, then read and discard until the peer closes or the deadline
 * passes: the peer reads everything written before it sees the end. */
void fz_finish(int fd, int64_t deadline_ms);

/* How long fz_hold() holds a connection at most. */
#define FZ_HOLD_MAX_MS 15000

/* Half-close, then read and discard until the peer closes or wake_fd
 * becomes readable (the round is over: fz_wake). libcurl may keep a
 * connection that it read to the end in its cache, so the end of a round,
 * not the client, may have to end it; closing it before would reset it, and
 * the peer might lose what it had not read yet. */
void fz_hold(int fd, int wake_fd);

/* A pipe that wakes every fz_hold() on wake[0] once fz_wake() wrote to it,
 * until fz_wake_reset() empties it. */
void fz_wake_init(int wake[2]);
void fz_wake(int wake[2]);
void fz_wake_reset(int wake[2]);

/* Refuse a connection: read its request head, answer HTTP 400 (not
 * retryable for the parley client) and finish. */
void fz_refuse(int fd);

/* The value of header `name` (lower case, with the colon) in head, copied
 * into out; false when absent. */
bool fz_header(const char *head, const char *name, char *out, size_t size);

#endif
